#pragma once

#include <sqlite3.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"
#include "runtime/sink_inventory.h"

namespace sluice {

/// The options of an sqlite: sink (SqliteSink::Make reads them).
const OptionTable& SqliteSinkOptions();

/// Writes results to an SQLite table, exactly once: each checkpoint is one transaction holding
/// the merged deltas (upserted with additive counts and sums, min/max, latest value, exact
/// averages from hidden sum and count columns) and the source positions.
///
/// Table layout: key columns (primary key), one column per metric, and the internal `_NAME_sum`,
/// `_NAME_count` (avg) or `_NAME_at` (last) columns exact merges need. With internal columns
/// the rows live in `_sluice_table_TABLE` (see InternalTableName) and `TABLE` is a view of the
/// declared columns, so `SELECT *` shows none of them; a TABLE created by an older sluice with
/// the internal columns in it is renamed to that name at Open() (a log line says so; no row
/// changes). Columns of an existing table that the pipeline does not write (a table taken over
/// with `sluice takeover`) are left as they are, and must accept NULL or have a default.
/// Pipelines without an update-mode aggregate
/// write their output columns; with a key (the option `key`, or an append-mode aggregate's keys)
/// rows are upserted by it (`INSERT ... ON CONFLICT (key) DO UPDATE`), without one appended.
/// Timestamps are TEXT "YYYY-MM-DD HH:MM:SS".
/// Positions live in `_sluice_positions(pipeline, source, partition, offset)`, the event-time
/// state per task (held records and progress of one source partition, with the task's fence and
/// owner; see runtime/task_state.h) in `_sluice_tasks(pipeline, source, partition, ...)`, the
/// legacy one-per-pipeline state (append mode's open windows) in `_sluice_state(pipeline,
/// state)`, the dead letters in
/// `_sluice_dead_letters` (see core/dead_letter.h; primary key pipeline, source, partition,
/// offset, seq, so a replayed checkpoint does not add them twice).
///
/// A result row SQLite refuses for its values (a null key, a value over its length limit) is
/// left out and dead-lettered in the same transaction with reason "sink_rejected: ..." (see
/// runtime/sink_rejection.h); the rest of the checkpoint commits. Each row is its own statement,
/// and a failed statement is undone by SQLite without ending the transaction.
class SqliteSink : public Sink, public SinkReader, public SinkExplainer {
 public:
  static Result<std::unique_ptr<Sink>> Make(const SinkConfig& config);
  ~SqliteSink() override;

  /// Checks the option `key`: output columns only, and equal to an aggregate's keys if given
  /// with an aggregate.
  Status Check(const SinkContext& ctx) const override;
  Status Open(const SinkContext& ctx) override;
  Result<std::vector<StoredPosition>> LoadPositions() override;
  Result<std::string> LoadState() override;
  bool SupportsState() const override { return true; }
  Status Commit(const Checkpoint& checkpoint) override;
  bool SupportsTasks() const override { return true; }
  bool StoresTaskWindows() const override { return true; }
  Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) override;
  Result<std::vector<TaskRow>> LoadTaskProgress() override;
  bool StoresDeadLetters() const override { return true; }
  int64_t RowsRejected() const override { return rows_rejected_; }
  std::string DeadLetterLocation() const override;
  /// Opens the database read-only (a missing file is kNotFound) and reads every pipeline's
  /// positions and state with LoadPositions() and LoadState().
  Result<SinkInventory> Inventory(const InventoryOptions& options) override;
  Result<std::map<std::string, int64_t>> CountDeadLetters() override;
  void Close() override;
  /// Opens the database read-only (sluice verify, sluice status); the table must exist for
  /// ReadOutput(). LoadTaskProgress() then finds no tasks in a database without `_sluice_tasks`.
  Status OpenForReading(const SinkContext& ctx) override;
  /// Reads the output columns of every row of the table (the one place that names them for
  /// reading, so the hidden merge columns stay out of it wherever they live).
  Result<std::vector<std::vector<Value>>> ReadOutput() override;
  /// Timestamps are stored as text to the second.
  Value AsStored(size_t column, const Value& v) const override;
  std::optional<SinkRowCounts> LastCommitRowCounts() const override { return counts_; }
  /// The table, view and upsert Open() creates and prepares, without opening the database.
  Result<SinkExplanation> Explain(const SinkContext& ctx) override;

 private:
  SqliteSink(std::string path, std::string table) : path_(std::move(path)), table_(std::move(table)) {}
  /// The primary key of the table: the aggregate's keys, else the option `key`.
  std::vector<std::string> Keys(const SinkContext& ctx) const {
    return ctx.key_columns.empty() ? key_option_ : ctx.key_columns;
  }
  /// What Open() and OpenForReading() share: the context, the key and the table name.
  Status SetContext(const SinkContext& ctx);
  Status Exec(const std::string& sql);
  Status Prepare(const std::string& sql, sqlite3_stmt** stmt);
  /// The CREATE TABLE of the dead-letter table, under `name`.
  static std::string DeadLettersTableSql(const std::string& name);
  /// Adds the generation column to the key of a dead-letter table of an older sluice.
  Status MigrateDeadLetters();
  Status CreateTables();
  /// With SinkContext::tasks: moves a legacy `_sluice_state` row of the pipeline into task rows
  /// (SplitLegacyState), in one transaction, when the pipeline has no task row yet; another
  /// process may have done it first.
  Status MigrateLegacyState();
  /// Fails (kFailedPrecondition) when the pipeline has a non-empty `_sluice_state` row: next to
  /// task rows, that is an older sluice still running (a rolling upgrade), whose row would be ignored.
  Status CheckNoLegacyState();
  /// Inside the commit's transaction: fails when a legacy state row appeared (CheckNoLegacyState),
  /// with kFenced unless every task of `cp` still has its fence, then writes the tasks' progress
  /// (and state when given).
  Status CommitTasks(const Checkpoint& cp);
  /// The results table's columns (name, declaration; internal ones last), primary key and DDL.
  struct TableLayout {
    std::vector<std::pair<std::string, std::string>> columns;
    std::vector<std::string> keys;
    std::string create_sql;
  };
  TableLayout Layout() const;
  /// The statement that writes one row or merges one delta (parameters ?1, ?2, ...).
  Result<std::string> UpsertSql() const;
  /// The view TABLE over the internal table, given the internal table's columns in order.
  std::string ViewSql(const std::vector<std::string>& table_columns) const;
  /// Returns "table", "view" or "" (no such object) for `name`.
  Result<std::string> ObjectType(const std::string& name);
  /// With internal columns: moves an older sluice's TABLE (internal columns in it) to the
  /// internal name, in one transaction with the view that replaces it.
  Status MigrateOldLayout(const std::vector<std::string>& expected);
  /// With internal columns: (re)creates the view TABLE over the internal table.
  Status EnsureView(const std::vector<std::string>& table_columns);
  /// Counts what the last upsert step did (see LastCommitRowCounts).
  void CountStep();
  Status BuildStatements();
  /// Binds `v` to parameter `index`. `copy` false lets SQLite keep pointing at a string `v`,
  /// which must then live until the statement's Step() (which resets it).
  Status Bind(sqlite3_stmt* stmt, int index, const Value& v, bool copy = true);
  Status Step(sqlite3_stmt* stmt, const char* what);
  Status WriteDelta(const DeltaRow& row);
  Status WriteRow(const std::vector<Value>& row);
  /// Writes the deltas and rows of `cp`, one statement each; a row SQLite refuses for its
  /// values (IsRowRejection) is left out, and its dead letter added to `rejected`.
  Status WriteResults(const Checkpoint& cp, std::vector<DeadLetter>* rejected);
  /// Returns true when the last write failed for its values: a constraint (a null key), a value
  /// over SQLite's length limit, a type mismatch. Busy, full or I/O errors are not.
  bool IsRowRejection() const;
  /// Inserts one dead letter (ignored when already stored), inside the open transaction.
  Status WriteDeadLetter(const DeadLetter& letter);
  /// Runs `sql` with text parameters `params` (?1, ?2, ...), calling `row` for each result row.
  Status Query(const std::string& sql, const std::vector<std::string>& params,
               const std::function<void(sqlite3_stmt*)>& row);
  /// Reads what Inventory() shows of the pipeline ctx_.pipeline; `tables` are the sluice
  /// tables that exist.
  Result<PipelineInventory> InventoryOf(const std::vector<std::string>& tables,
                                        const InventoryOptions& options);

  std::string path_;
  std::string table_;
  /// The table written: table_, or InternalTableName(table_) when view_.
  std::string physical_;
  bool view_ = false;
  SinkRowCounts counts_;
  std::vector<std::string> key_option_;  ///< `key = "id"` / `key = ["a", "b"]`
  std::string key_where_;
  /// Slots of the key columns in a row, when the key comes from the option (checked not null).
  std::vector<size_t> key_slots_;
  SinkContext ctx_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* upsert_ = nullptr;
  std::vector<Value> delta_values_;  ///< WriteDelta: the metrics' bound values
  sqlite3_stmt* position_ = nullptr;
  sqlite3_stmt* state_ = nullptr;
  sqlite3_stmt* dead_letter_ = nullptr;
  /// The result code of the last failed bind or step (SQLITE_OK after success) and its message.
  int last_rc_ = SQLITE_OK;
  int64_t rows_rejected_ = 0;
  std::string last_message_;
};

/// Renders a value for a text column: timestamps as "YYYY-MM-DD HH:MM:SS" (seconds).
std::string SqlText(const Value& v);
/// Quotes an identifier for SQL ("name" with doubled quotes).
std::string QuoteIdent(const std::string& name);

}  // namespace sluice
