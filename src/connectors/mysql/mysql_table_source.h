#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "connectors/mysql/mysql_connection.h"
#include "runtime/source.h"

namespace sluice {

/// The options of a mysql:// table source, in [source] or the URI's query (MysqlTableSource::Make reads them).
const OptionTable& MysqlTableSourceOptions();

/// Reads new rows of a MySQL/MariaDB table incrementally: the exact form of timestamp change
/// data capture (`[source] uri = "mysql://USER@HOST:PORT/DB/TABLE?order_by=COL&key=COL"`).
///
/// Rows are read in (order_by, key) order, in pages of `page_rows`, after a cursor that is the
/// source's position: partition 0 holds the last order_by value read (microseconds for a
/// timestamp column, the number for an integer one), partition 1 the last key. The cursor is
/// committed with the results in one sink transaction, so a re-run never counts a row twice and
/// never skips one, also when rows share an order_by value. With a timestamp order_by, rows
/// newer than the server's clock minus `grace` (default 5 s) are left for later: a transaction
/// that commits up to `grace` after a later one is not skipped. `key` must be an integer column
/// unique within one order_by value (default: order_by itself, e.g. an AUTO_INCREMENT id).
///
/// Each row becomes one NDJSON record of the declared fields (values as strings, NULL as null),
/// decoded like any JSON record. Options may also be given in the URI's query string.
///
/// With the cursor goes a hash of the last row read (kCursorRowPartition). On start that row is
/// read again at the cursor; when it is gone or holds other values the table was dropped and
/// recreated, truncated or rewritten, and Open() refuses with FailedPrecondition naming
/// --reset-source (and the table's CREATE_TIME).
///
/// Lifecycle and threads: as every table source (connectors/table/table_util.h).
class MysqlTableSource : public Source {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config, int max_instances);

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records, std::chrono::milliseconds budget) override;
  std::string_view kind() const override { return "mysql"; }
  DecoderOptions decoder_options() const override { return {}; }
  bool EndIsFinal() const override { return false; }  // the table keeps growing
  std::vector<int32_t> Partitions() const override { return {0}; }
  std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const override;

  struct Settings {
    std::string name;  ///< the source's name in the pipeline
    mysql::Connection::Options connection;
    std::vector<std::string> columns;  ///< the declared fields' column names
    std::string order_by;
    std::string key;
    int64_t grace_micros = 5'000'000;
    int64_t page_rows = 10000;
  };

 private:
  explicit MysqlTableSource(Settings s) : settings_(std::move(s)) {}
  Status Connect();
  std::string PageSql(size_t limit) const;
  /// Returns "SELECT cols, order, key FROM table".
  std::string SelectSql() const;
  /// Returns the SQL literal of an order_by value.
  std::string OrderLiteral(int64_t order) const;
  /// Refuses to start when the last row read is no longer at the committed cursor.
  Status CheckCursorRow();

  Settings settings_;
  SourceContext ctx_;
  std::unique_ptr<mysql::Connection> conn_;
  bool timestamp_order_ = false;
  std::optional<int64_t> cursor_order_;  ///< last order_by value read (none: from the start)
  int64_t cursor_key_ = 0;
  std::optional<int64_t> cursor_row_hash_;  ///< Fingerprint64 of the last row read
  std::string scratch_;
  std::vector<std::optional<std::string_view>> values_;
};

}  // namespace sluice
