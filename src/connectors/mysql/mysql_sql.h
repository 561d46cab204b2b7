#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/value.h"
#include "runtime/sink.h"
#include "runtime/task_state.h"

namespace sluice::mysql {

/// Says how to react to a MySQL/MariaDB error number.
enum class ErrorKind {
  kConnection,  ///< the connection is gone or unusable: drop it, reconnect, retry
  kTransient,   ///< the transaction failed but the connection is fine (deadlock, lock wait)
  kConfig,      ///< wrong credentials, database, privileges: fatal until someone fixes it
  kData,        ///< a value the column cannot hold: fatal
  kBug,         ///< SQL that sluice should never have sent: fatal
  kOther,       ///< anything else: retried at commit
};

/// Classifies a server (1xxx-4xxx) or client (2xxx, 5xxx) error number.
ErrorKind ClassifyError(unsigned error_number);
/// Classifies an error by its number and message: a full disk on the server (ER_DISK_FULL,
/// "The table is full", or any error whose message carries errno 28, as CREATE TABLE's and
/// the storage engine's do) is kTransient, since space freed on the server ends it; the rest
/// as ClassifyError(error_number).
ErrorKind ClassifyError(unsigned error_number, std::string_view message);
/// True when the error says the server's disk is full.
bool IsDiskFull(unsigned error_number, std::string_view message);
/// Returns the Status code the runner expects for `kind` (kUnavailable and kIOError retry).
StatusCode StatusCodeFor(ErrorKind kind);

/// Where a server, database and (for dimensions) table are: mysql://USER@HOST[:PORT]/DB[/TABLE].
struct Uri {
  std::string user;
  std::string host;
  int port = 3306;
  std::string database;
  std::string table;  ///< dimension URIs only

  /// Returns "USER@HOST:PORT/DB", for messages (there is never a password to hide).
  std::string Display() const;
};

/// Parses a mysql:// URI. `with_table` requires a /TABLE part (dimensions) or forbids it (sinks).
/// A password in the URI (USER:PASSWORD@) is rejected without repeating it in the message.
Result<Uri> ParseUri(std::string_view uri, bool with_table);

/// Returns the password for a connection: the file named by `password_file` (an option), else
/// the file named by $SLUICE_MYSQL_PASSWORD_FILE, else $SLUICE_MYSQL_PASSWORD, else "" (none).
/// One trailing newline of a file is dropped.
Result<std::string> ResolvePassword(const std::string& password_file);

/// Parses the column_types option: "name:TYPE,name:TYPE" where TYPE is an SQL column type such
/// as DATE, TINYINT or DECIMAL(10,2) (commas inside parentheses belong to the type).
Result<std::map<std::string, std::string>> ParseColumnTypes(std::string_view text);

/// Quotes an identifier with backquotes (inner backquotes doubled).
std::string QuoteIdentifier(std::string_view name);
/// Renders a quoted string literal, escaped like mysql_real_escape_string for utf8mb4 (valid
/// because the sink's sessions never enable NO_BACKSLASH_ESCAPES).
std::string StringLiteral(std::string_view text);
/// Appends the SQL literal for `v`: NULL, integers, doubles as approximate literals (always with
/// an exponent, so the server computes with the same double), strings, timestamps as
/// 'YYYY-MM-DD HH:MM:SS'. Fails for NaN and infinities, which no MySQL column can hold.
Status AppendLiteral(const Value& v, std::string* out);

/// The string collation of created tables: binary and NO PAD, so that keys compare exactly as
/// sluice compares them ("a" != "A", "a" != "a "). Picks the best of `available`.
std::string ChooseCollation(const std::vector<std::string>& available);

/// Counts the `generation` column of `_sluice_dead_letters` (0: a table of an older sluice).
std::string DeadLettersHaveGenerationSql();
/// Adds `generation` to an older `_sluice_dead_letters` and to its primary key, in one statement
/// (the stored letters get generation 0).
std::string MigrateDeadLettersSql();

/// Returns the DDL of the dead-letter table `_sluice_dead_letters` (one row per dead letter, the
/// columns of core/dead_letter.h; primary key pipeline, source, partition, offset, generation,
/// seq).
std::string CreateDeadLettersTableSql(const std::string& collation);
/// Calls `run` with INSERT statements that store `letters` of `pipeline`, each statement at
/// most about `max_bytes` long (one letter per statement when a letter is longer); a letter
/// already stored under the same key is left as it is, so a replay never duplicates one.
Status ForEachDeadLetterStatement(const std::string& pipeline, const std::vector<DeadLetter>& letters,
                                  size_t max_bytes,
                                  const std::function<Status(const std::string&)>& run);

/// Returns the query for (reason, count) of the stored dead letters of `pipeline`.
std::string CountDeadLettersSql(const std::string& pipeline);
/// Returns the query for the newest `limit` dead letters of `pipeline` with `reason`: source,
/// partition, offset, time (ISO 8601 UTC, as in the record format), payload,
/// payload_bytes, truncated.
std::string SampleDeadLettersSql(const std::string& pipeline, const std::string& reason,
                                 size_t limit);
/// Returns the query for the names of the sluice tables (`_sluice_positions`, `_sluice_state`,
/// `_sluice_tasks`, `_sluice_dead_letters`) that exist in the connection's database.
std::string SluiceTablesSql();
/// Returns the query for the distinct pipelines named in `tables` (sluice tables that exist).
std::string PipelinesSql(const std::vector<std::string>& tables);
/// Returns the query for the latest `updated_at` of `pipeline` in `table` (`_sluice_positions`,
/// `_sluice_state` or `_sluice_tasks`), as 'YYYY-MM-DD HH:MM:SS' UTC, NULL when it has no row there.
std::string LastUpdateSql(const std::string& table, const std::string& pipeline);

/// Returns the DDL of the positions table.
std::string CreatePositionsTableSql(const std::string& collation);
/// Returns the statement that upserts `positions` of `pipeline` (one row each).
std::string UpsertPositionsSql(const std::string& pipeline,
                               const std::vector<StoredPosition>& positions);
/// Returns the query for (source, partition, offset) of `pipeline`.
std::string SelectPositionsSql(const std::string& pipeline);

/// Returns the DDL of the event-time state table (one opaque blob per pipeline).
std::string CreateStateTableSql(const std::string& collation);
/// Returns the statement that stores `state` for `pipeline` (as a hex literal: any bytes).
std::string UpsertStateSql(const std::string& pipeline, std::string_view state);
/// Returns the query for HEX(state) of `pipeline`.
std::string SelectStateSql(const std::string& pipeline);
/// Decodes what HEX() returned; false on a malformed string.
bool DecodeHex(std::string_view hex, std::string* out);
/// Renders `bytes` as a hex literal (X'...'): any bytes, no escaping.
std::string HexLiteral(std::string_view bytes);

// Tasks (runtime/task_state.h): state and ownership per (pipeline, source, partition).

/// Returns the DDL of `_sluice_tasks` (pipeline, source, partition, fence, owner, max_event_time,
/// watermark, enforced, idle, state LONGBLOB, updated_at; the SQLite sink's columns).
std::string CreateTasksTableSql(const std::string& collation);
/// Returns the statement that claims `task` for `owner`: inserts the row with fence 1, or bumps
/// the fence of the existing row by one (taking its exclusive lock) and records the owner.
std::string ClaimTaskSql(const std::string& pipeline, const TaskId& task, const std::string& owner);
/// Returns the locking query for (fence, HEX(state)) of `task`.
std::string SelectTaskSql(const std::string& pipeline, const TaskId& task);
/// Returns the locking query for (partition, offset) of the positions of `task`'s partition p
/// and its generation partition (kGenerationPartitionBase + p).
std::string SelectTaskPositionsSql(const std::string& pipeline, const TaskId& task);
/// Returns the locking query for (source, partition, fence) of the rows of `tasks` (not empty),
/// in primary-key order (source, partition), so that two commits, or a commit and a claim,
/// take the rows' locks in one order. `with_progress` adds owner, max_event_time, watermark,
/// enforced, idle and HEX(state) (the read-back of a commit in doubt).
std::string LockTasksSql(const std::string& pipeline, const std::vector<TaskId>& tasks,
                         bool with_progress = false);
/// Returns the statement that writes a commit's part for one task: the progress columns, the
/// state when `t.state` is set (else the stored one stays), the owner cleared when `t.release`.
std::string UpdateTaskSql(const std::string& pipeline, const TaskCommit& t);
/// Returns the statement that inserts a task row (fence 0, no owner) moved from a legacy state.
std::string InsertMigratedTaskSql(const std::string& pipeline, const TaskId& task,
                                  const TaskProgress& progress, std::string_view state);
/// Returns the query for (source, partition, fence, owner, max_event_time, watermark, enforced,
/// idle, UNIX_TIMESTAMP(updated_at)) of every task of `pipeline`, in (source, partition) order.
std::string SelectTaskProgressSql(const std::string& pipeline);
/// Returns the locking query for one task row of `pipeline` (any; none: the pipeline has no task).
std::string AnyTaskSql(const std::string& pipeline);
/// Returns the statement that deletes the legacy state row of `pipeline`.
std::string DeleteStateSql(const std::string& pipeline);
/// Returns the query for (count, total state bytes) of the tasks of `pipeline`.
std::string TaskStateSizeSql(const std::string& pipeline);

/// One column of the results table.
struct Column {
  std::string name;
  std::string type;        ///< the SQL type, e.g. "BIGINT" or an override such as "DATE"
  std::string attributes;  ///< e.g. " NOT NULL DEFAULT 0"
};

/// One range of deltas as a bulk load: the rows go into a temporary table by LOAD DATA LOCAL
/// INFILE and one INSERT ... SELECT ... ON DUPLICATE KEY UPDATE merges them into the table
/// with the same assignments as the chunked upserts.
struct BulkLoad {
  std::string create;  ///< CREATE TEMPORARY TABLE of the stage, a column per value of a tuple
  std::string load;    ///< LOAD DATA LOCAL INFILE into the stage
  std::string data;    ///< the rows, one line each, tab-separated, in the order of the deltas
  std::string merge;   ///< INSERT INTO the table (...) SELECT ... FROM the stage ON DUPLICATE ...
  size_t rows = 0;
};
/// Returns the statement that drops the bulk load's temporary table when it exists.
std::string DropStageSql();

/// Renders the SQL the MySQL sink sends for its results table: the DDL and the chunked
/// INSERT ... ON DUPLICATE KEY UPDATE statements whose merge rules match MergeMetric().
///
/// MariaDB and MySQL evaluate ON DUPLICATE KEY UPDATE assignments left to right, each seeing
/// the columns already assigned, so assignments are ordered: an average's hidden sum and count
/// before the average, a last() value before its `_at` time.
class TableSql {
 public:
  /// `types` overrides column types by name (from column_types); unknown names are an error.
  static Result<TableSql> Make(const SinkContext& ctx, std::string table,
                               const std::map<std::string, std::string>& types);

  /// The table the pipeline names (a view of the declared columns when view() is true).
  const std::string& table() const { return table_; }
  /// The table the rows are written to: table(), or InternalTableName(table()) when view().
  const std::string& physical() const { return physical_; }
  /// True when the pipeline has internal columns: they live in physical() and table() is a
  /// view that leaves them out.
  bool view() const { return view_; }
  /// Returns the statement that makes table() a view of `table_columns` (the columns of
  /// physical(), in order) without the internal ones.
  std::string CreateViewSql(const std::vector<std::string>& table_columns) const;
  const std::vector<Column>& columns() const { return columns_; }
  std::vector<std::string> column_names() const;
  std::string CreateTableSql(const std::string& collation) const;
  /// Returns the statement ForEachDeltaStatement / ForEachRowStatement send, for one row with
  /// `?` in place of each value (sluice explain; a commit sends many tuples per statement).
  std::string UpsertTemplateSql() const;
  /// Returns the query for the names, types, nullability and defaults of the existing columns
  /// of physical(), in order.
  std::string DescribeTableSql() const;

  /// Renders `deltas` as upserts of at most `max_rows` rows and about `max_bytes` each and calls
  /// `run` with each statement; stops at the first error.
  Status ForEachDeltaStatement(std::span<const DeltaRow> deltas, size_t max_rows, size_t max_bytes,
                               const std::function<Status(const std::string&)>& run) const;
  /// Same, also giving `run` the number of rows in each statement.
  Status ForEachDeltaStatement(std::span<const DeltaRow> deltas, size_t max_rows, size_t max_bytes,
                               const std::function<Status(const std::string&, size_t)>& run) const;
  /// Renders `deltas` as one bulk load into `out`. Returns false (and leaves the deltas to
  /// ForEachDeltaStatement) when the stage could not hold them as the statements' literals
  /// would: a column whose values are of different types, or a number no column can hold.
  ///
  /// The stage's columns take each value as the literal of the chunked upserts does: integers
  /// and booleans BIGINT, doubles DOUBLE (written with 17 significant digits, read back to the
  /// same double), strings utf8mb4 LONGTEXT, timestamps their 'YYYY-MM-DD HH:MM:SS' text; so
  /// the server converts each into its column exactly as it converts the literal.
  bool BulkDeltas(std::span<const DeltaRow> deltas, BulkLoad* out) const;
  /// Same for final rows (no aggregate): INSERT, or upsert replacing non-key columns.
  Status ForEachRowStatement(std::span<const std::vector<Value>> rows, size_t max_rows,
                             size_t max_bytes,
                             const std::function<Status(const std::string&)>& run) const;
  Status ForEachRowStatement(std::span<const std::vector<Value>> rows, size_t max_rows,
                             size_t max_bytes,
                             const std::function<Status(const std::string&, size_t)>& run) const;

 private:
  TableSql() = default;
  Status AppendDeltaTuple(const DeltaRow& row, std::string* out) const;
  /// Appends the values a delta's tuple is made of (keys, then each metric's stored values).
  void DeltaValues(const DeltaRow& row, std::vector<Value>* out) const;
  Status AppendRowTuple(const std::vector<Value>& row, std::string* out) const;
  template <typename T, typename F>
  Status Chunk(std::span<const T> items, size_t max_rows, size_t max_bytes, F&& append,
               const std::function<Status(const std::string&, size_t)>& run) const;

  std::string table_;
  std::string physical_;
  bool view_ = false;
  std::vector<std::string> internal_;
  const AggregateSpec* aggregate_ = nullptr;  ///< null: rows mode
  std::vector<Column> columns_;
  std::vector<std::string> keys_;
  /// Per metric: the catalog inserts the values a delta sends as they are (no expression), so
  /// a tuple appends their literals directly.
  std::vector<bool> inserts_inputs_;
  std::string insert_into_;    ///< "INSERT INTO `t` (`a`, `b`) "
  std::string insert_prefix_;  ///< "INSERT INTO `t` (`a`, `b`) VALUES "
  std::string update_suffix_;  ///< " ON DUPLICATE KEY UPDATE ..." (may be empty)
  size_t tuple_columns_ = 0;   ///< values per row tuple
};

}  // namespace sluice::mysql
