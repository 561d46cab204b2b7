#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/cassandra/cql_protocol.h"
#include "core/status.h"

namespace sluice::cassandra {

/// Where a Cassandra node and keyspace (and, for sources, table) are:
/// cassandra://[USER@]HOST[:PORT]/KEYSPACE[/TABLE]. A password in the URI is rejected.
struct CassandraUri {
  std::string user;  ///< empty: from the environment (see ResolveCredentials)
  std::string host;
  int port = 9042;
  std::string keyspace;
  std::string table;
  /// Returns "HOST:PORT/KEYSPACE[/TABLE]" for messages.
  std::string Display() const;
};

/// Parses a cassandra:// URI (without query string). `with_table` requires /TABLE (sources) or
/// forbids it (sinks).
Result<CassandraUri> ParseCassandraUri(std::string_view uri, bool with_table);

struct Credentials {
  std::string user;  ///< empty: no authentication offered
  std::string password;
};

/// Returns the credentials: the user from `uri_user`, else $SLUICE_CASSANDRA_USER; the password
/// from the file `password_file` (an option), else the file named by
/// $SLUICE_CASSANDRA_PASSWORD_FILE, else $SLUICE_CASSANDRA_PASSWORD. One trailing newline of a
/// file is dropped. Never from the command line.
Result<Credentials> ResolveCredentials(const std::string& uri_user,
                                       const std::string& password_file);

struct ClientOptions {
  std::string host = "127.0.0.1";
  int port = 9042;
  Credentials credentials;
  /// Sent as USE after the handshake when not empty.
  std::string keyspace;
  std::chrono::milliseconds connect_timeout{5000};
  /// Bounds every socket read and write, and the wait for each response.
  std::chrono::milliseconds request_timeout{12000};
  /// Requests in flight at once on the connection (stream ids used: 0..max_in_flight-1).
  int max_in_flight = 32;
};

/// One request for Connection::Run: a QUERY (cql), an EXECUTE (prepared) or, with `batch`
/// non-empty, a BATCH of its entries (of batch_type; consistency from options). Prepared
/// statements named by batch entries must outlive the call.
struct Request {
  std::string cql;
  std::shared_ptr<const Prepared> prepared;
  std::vector<CqlValue> values;
  std::vector<BatchEntry> batch;
  BatchType batch_type = BatchType::kUnlogged;
  QueryOptions options;
};

/// Owns one connection to one node, protocol v4, no compression.
///
/// Thread-safe: calls are serialised by an internal mutex; concurrency comes from pipelining,
/// Run() keeps up to max_in_flight requests on the wire with distinct stream ids. Errors come back
/// as Status (CqlError::ToStatus for server errors; kUnavailable for connect failures and
/// timeouts, kIOError for a lost connection). After a socket error or a timeout broken() is true
/// and the connection must be discarded (a late response could not be told apart).
class Connection {
 public:
  /// Connects (with connect_timeout), sends STARTUP with CQL_VERSION 3.0.0, answers
  /// AUTHENTICATE with a SASL PLAIN AUTH_RESPONSE (PasswordAuthenticator), then USE keyspace.
  static Result<std::unique_ptr<Connection>> Open(const ClientOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Sends OPTIONS and returns the SUPPORTED map.
  Result<std::map<std::string, std::vector<std::string>>> Options();
  /// Runs a QUERY; values are encoded by their own kind.
  Result<QueryResult> Query(std::string_view cql, std::span<const CqlValue> values = {},
                            const QueryOptions& options = {});
  /// Prepares a statement (cached by its text for the life of the connection).
  Result<std::shared_ptr<const Prepared>> Prepare(std::string_view cql);
  /// Runs an EXECUTE. An UNPREPARED error re-prepares the statement and retries once.
  Result<QueryResult> Execute(const std::shared_ptr<const Prepared>& prepared,
                              std::span<const CqlValue> values, const QueryOptions& options = {});
  /// Runs a BATCH (unlogged unless told otherwise).
  Status Batch(std::span<const BatchEntry> entries,
               Consistency consistency = Consistency::kLocalQuorum,
               BatchType type = BatchType::kUnlogged);
  /// Runs several requests with up to max_in_flight in flight; returns one result each, in order.
  /// EXECUTEs and batches answered UNPREPARED are re-prepared and run again once.
  std::vector<Result<QueryResult>> Run(std::span<const Request> requests);
  /// Runs a query and all its following pages (page_size from options) and returns every row.
  Result<QueryResult> QueryAllPages(std::string_view cql, std::span<const CqlValue> values = {},
                                    QueryOptions options = {});

  /// The authenticator the server asked for ("" when it did not ask).
  const std::string& authenticator() const { return authenticator_; }
  bool broken() const { return broken_; }
  /// "HOST:PORT", for messages.
  const std::string& display() const { return display_; }

 private:
  Connection(int fd, ClientOptions options);
  Status Handshake();
  Status WriteAll(std::string_view bytes);
  /// Reads one whole frame (header and body) within the request timeout.
  Status ReadFrame(FrameHeader* header, std::string* body);
  Result<Response> RoundTrip(const std::string& frame);
  std::vector<Result<QueryResult>> RunRound(std::span<const Request> requests);
  std::vector<Result<QueryResult>> RunLocked(std::span<const Request> requests);
  Result<std::shared_ptr<const Prepared>> PrepareLocked(std::string_view cql, bool refresh);
  Status Fail(Status status);

  int fd_;
  ClientOptions options_;
  std::string display_;
  std::string authenticator_;
  bool broken_ = false;
  std::map<std::string, std::shared_ptr<const Prepared>, std::less<>> prepared_cache_;
  std::mutex mutex_;
};

/// Converts a Status from this client into "is it worth retrying with backoff": timeouts,
/// unavailable, overloaded, bootstrapping and lost connections.
bool IsRetryable(const Status& status);

/// Quotes a CQL identifier with double quotes (inner quotes doubled), keeping its case.
std::string QuoteIdentifier(std::string_view name);
/// Renders a CQL string literal with single quotes (inner quotes doubled).
std::string QuoteLiteral(std::string_view text);

}  // namespace sluice::cassandra
