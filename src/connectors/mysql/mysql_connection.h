#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/mysql/mysql_sql.h"
#include "core/status.h"

struct st_mysql;  // MYSQL, from <mysql.h>, kept out of this header.

namespace sluice::mysql {

/// One result row: each column as text, nullopt for NULL. Valid only during the callback.
using RowView = std::span<const std::optional<std::string_view>>;
/// A fully read result set.
using Rows = std::vector<std::vector<std::optional<std::string>>>;

/// Owns one MariaDB Connector/C connection (text protocol, TCP, utf8mb4, no auto-reconnect).
///
/// Not thread-safe: one thread at a time. Errors come back as Status with the code the runner
/// expects (see ClassifyError); after a connection-level error broken() is true and the
/// connection must be discarded.
class Connection {
 public:
  struct Options {
    Uri uri;
    std::string password_file;      ///< see ResolvePassword
    unsigned timeout_seconds = 10;  ///< connect, read and write timeouts
    bool local_infile = true;       ///< offer LOAD DATA LOCAL INFILE (LoadLocal) to the server
  };

  /// Connects and prepares the session: strict sql_mode (and never NO_BACKSLASH_ESCAPES, which
  /// StringLiteral relies on), UTC time zone, lock waits shorter than the read timeout.
  /// Fails with kUnavailable when the server cannot be reached, kInvalidArgument for a wrong
  /// password, an unknown database or missing privileges.
  static Result<std::unique_ptr<Connection>> Open(const Options& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Runs a statement, discarding any result. A statement the server would refuse as larger
  /// than its max_allowed_packet (which would also end the connection) is not sent: it fails
  /// with error 1153 (ER_NET_PACKET_TOO_LARGE), kInvalidArgument, the connection intact.
  Status Execute(std::string_view sql);
  /// What an INSERT ... ON DUPLICATE KEY UPDATE reported: the affected rows (1 per inserted row,
  /// 2 per updated row, 0 per row found unchanged) and, for a multi-row statement, the rows the
  /// update changed ("Duplicates" of mysql_info(): MariaDB does not count rows found unchanged
  /// there; -1 when the server sent no info, which it does not for a single row).
  struct Affected {
    int64_t rows = 0;
    int64_t duplicates = -1;
    unsigned warnings = 0;  ///< mysql_warning_count(): values changed or notes
  };
  /// Runs a statement that returns no result set and reports what it affected.
  Result<Affected> ExecuteCounted(std::string_view sql);
  /// Runs a `LOAD DATA LOCAL INFILE` statement whose file is `data` (the name in the statement
  /// is not opened: the connection serves `data` to the server from memory) and reports what
  /// it affected and the warnings, by which the server says a field did not fit its column
  /// (with LOCAL it keeps going rather than failing). Fails like Execute; a server that does
  /// not allow LOCAL INFILE answers with an error (4166 on MariaDB, 1148 before 10.5, 3948 on
  /// MySQL 8).
  Result<Affected> LoadLocal(std::string_view sql, std::string_view data);
  /// Runs a query and calls `row` for each result row, streaming.
  Status Query(std::string_view sql, const std::function<Status(RowView)>& row);
  /// Runs a query and returns all its rows.
  Result<Rows> QueryAll(std::string_view sql);

  /// Returns true after a connection-level error: the connection is unusable.
  bool broken() const { return broken_; }
  /// Returns the number of the last error (0 after success).
  unsigned last_error() const { return last_error_; }
  /// Returns the server's message for the last error ("" after success).
  const std::string& last_message() const { return last_message_; }
  /// Returns the server's max_allowed_packet, read at connect: a statement must be shorter
  /// than this by at least one byte (the command byte) to be accepted.
  size_t max_packet() const { return max_packet_; }
  /// True when `sql` is small enough to be sent (see max_packet()).
  bool Fits(std::string_view sql) const { return sql.size() + 1 < max_packet_; }
  /// Returns the server's id of this connection (for KILL).
  unsigned long id() const;
  const std::string& display() const { return display_; }

 private:
  Connection(st_mysql* mysql, std::string display) : mysql_(mysql), display_(std::move(display)) {}
  Status Fail(std::string_view sql);
  Status TooLarge(std::string_view sql);

  // The LOCAL INFILE callbacks of Connector/C (they read infile_).
  static int InfileInit(void** ptr, const char* name, void* self);
  static int InfileRead(void* ptr, char* buf, unsigned int size);
  static void InfileEnd(void* ptr);
  static int InfileError(void* ptr, char* message, unsigned int size);

  st_mysql* mysql_;
  std::string display_;
  /// What LoadLocal serves; nullopt between loads, so a file the server asks for at any other
  /// time is refused.
  std::optional<std::string_view> infile_;
  size_t infile_read_ = 0;
  bool broken_ = false;
  unsigned last_error_ = 0;
  std::string last_message_;
  size_t max_packet_ = SIZE_MAX;  // until read at connect
};

/// Builds the Status for error `number` with the server's `message` on `display`, naming the
/// statement (its beginning only: values are not logged) and adding a hint where one helps.
Status ErrorStatus(unsigned number, std::string_view message, const std::string& display,
                   std::string_view sql);

}  // namespace sluice::mysql
