#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/option_spec.h"
#include "connectors/mysql/mysql_connection.h"
#include "connectors/mysql/mysql_sql.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"
#include "runtime/sink_inventory.h"
#include "runtime/sink_rejection.h"

namespace sluice {

/// The options of a mysql:// sink (MysqlSink::Make reads them).
const OptionTable& MysqlSinkOptions();

/// Writes results to a MySQL or MariaDB table, exactly once: each checkpoint is one InnoDB
/// transaction holding the merged deltas (multi-row INSERT ... ON DUPLICATE KEY UPDATE with the
/// SQLite sink's merge rules and table layout), the dead letters (`_sluice_dead_letters`) and the
/// source positions (`_sluice_positions`).
///
/// With internal columns (avg, last) the rows live in `_sluice_table_TABLE` and TABLE is a view
/// of the declared columns (the SQLite sink's layout, see there); a TABLE created by an older
/// sluice with the internal columns in it is renamed at Open() (RENAME TABLE: no row changes).
/// Commit() counts rows inserted, updated and found unchanged from the affected rows and
/// mysql_info() of each statement (LastCommitRowCounts).
///
/// URI `mysql://USER@HOST[:PORT]/DATABASE`; the database must exist, the tables are created.
/// Options: `password_file` (else $SLUICE_MYSQL_PASSWORD_FILE / $SLUICE_MYSQL_PASSWORD),
/// `column_types = "name:TYPE,..."` (e.g. "dates:DATE,bid_set:DECIMAL(10,2)"), `timeout`
/// (connect, read and write; lock waits give up 2 s earlier; "10s"), `batch_rows` (rows per
/// statement, 1000) and `batch_bytes` (about 1 MiB per statement).
///
/// State per task (runtime/task_state.h; SupportsTasks()): `_sluice_tasks(pipeline, source,
/// partition, fence, owner, progress columns, state LONGBLOB, updated_at)` in InnoDB. ClaimTask
/// bumps a task's fence in one transaction and reads its state and positions; Commit() first
/// locks the rows of the checkpoint's tasks in primary-key order (SELECT ... FOR UPDATE) and
/// fails whole with kFenced when one was claimed by another process since (or is missing).
/// With SinkContext::tasks, Open() moves a legacy `_sluice_state` row into task rows.
///
/// A lost connection or a deadlock makes Commit() return kUnavailable (the runner retries) and
/// the next call reconnects. When the connection is lost at COMMIT, whether it was applied is
/// unknown: the retry first locks the tasks' rows and reads the positions back (locking reads,
/// so a COMMIT still in flight on the server is waited for); a task claimed meanwhile makes it
/// kFenced, and it returns OK without writing again when the positions (and the tasks' progress
/// and state) already equal the checkpoint's.
///
/// Lifecycle and threading as Sink; Healthy() may be called from any thread.
class MysqlSink : public Sink, public SinkReader, public SinkExplainer {
 public:
  static Result<std::unique_ptr<Sink>> Make(const SinkConfig& config);
  ~MysqlSink() override;

  Status Check(const SinkContext& ctx) const override;
  Status Open(const SinkContext& ctx) override;
  Result<std::vector<StoredPosition>> LoadPositions() override;
  Result<std::string> LoadState() override;
  bool SupportsState() const override { return true; }
  bool SupportsTasks() const override { return true; }
  bool StoresTaskWindows() const override { return true; }
  Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) override;
  Result<std::vector<TaskRow>> LoadTaskProgress() override;
  Status Commit(const Checkpoint& checkpoint) override;
  bool StoresDeadLetters() const override { return true; }
  int64_t RowsRejected() const override { return rows_rejected_; }
  std::string DeadLetterLocation() const override;
  bool Healthy() const override { return healthy_.load(); }
  /// Connects (kUnavailable when the server cannot be reached, kInvalidArgument for an
  /// unknown database or wrong credentials), creates nothing, and reads every pipeline's
  /// positions and state with LoadPositions() and LoadState().
  Result<SinkInventory> Inventory(const InventoryOptions& options) override;
  Result<std::map<std::string, int64_t>> CountDeadLetters() override;
  std::optional<SinkRowCounts> LastCommitRowCounts() const override { return counts_; }
  void Close() override;
  /// Connects without creating or altering anything (sluice verify).
  Status OpenForReading(const SinkContext& ctx) override;
  /// Reads the output columns of every row of the table (the one place that names them for
  /// reading, so the hidden merge columns stay out of it wherever they live).
  Result<std::vector<std::vector<Value>>> ReadOutput() override;
  /// As the column stores it: a DECIMAL(p,s) rounded half away from zero to s digits, a DATE
  /// to the day, other timestamps to the second.
  Value AsStored(size_t column, const Value& v) const override;
  /// The DDL and the upsert Open() and Commit() send, built by the same mysql::TableSql,
  /// without connecting (the collation is the one chosen when the server offers it).
  Result<SinkExplanation> Explain(const SinkContext& ctx) override;

  /// Called at the stages "before_commit" (all statements sent, COMMIT not yet) and
  /// "after_commit" (COMMIT succeeded); a non-OK status is treated as a lost connection there.
  /// Also called at "row_refused", each time the server refused a range of rows while they are
  /// being isolated (after the rollback to the savepoint).
  using TestHook = std::function<Status(std::string_view stage)>;
  void SetTestHook(TestHook hook) { hook_ = std::move(hook); }
  /// Makes the next connection not offer LOCAL INFILE, as a server that refuses it would.
  void DisableLocalInfileForTesting() {
    options_.local_infile = false;
    conn_.reset();
  }
  /// Returns how many ranges of deltas went through the bulk path (LOAD DATA into the stage).
  int64_t BulkLoadsForTesting() const { return bulk_loads_; }
  /// Returns the server's id of the current connection, or 0 when there is none.
  unsigned long ConnectionIdForTesting() const { return conn_ ? conn_->id() : 0; }

 private:
  MysqlSink() = default;
  Status Connect();
  /// Adds the generation column to the key of a dead-letter table of an older sluice.
  Status MigrateDeadLetters();
  Status CreateTables();
  /// Returns "BASE TABLE", "VIEW" or "" for `name` in the connection's database.
  Result<std::string> TableType(const std::string& name);
  /// Renames an older sluice's TABLE (internal columns in it) to the internal name.
  Status MigrateOldLayout();
  /// Returns true when the stored positions already equal the checkpoint's, and its tasks'
  /// progress and state too (read with locks, inside the current transaction).
  Result<bool> AlreadyApplied(const Checkpoint& cp);
  /// Inside the commit's transaction, before anything is written: locks the rows of the
  /// checkpoint's tasks and fails with kFenced unless each still has the checkpoint's fence (and
  /// with kFailedPrecondition when a legacy state row appeared, CheckNoLegacyState).
  Status CheckFences(const Checkpoint& cp);
  /// Fails (kFailedPrecondition) when the pipeline has a `_sluice_state` row with a state: next
  /// to task rows, that is an older sluice still running (a rolling upgrade), whose row would be
  /// ignored. Checked at Open (MigrateLegacyState) and by CheckFences at each commit.
  Status CheckNoLegacyState();
  /// With SinkContext::tasks: moves a legacy `_sluice_state` row of the pipeline into task rows
  /// (SplitLegacyState) in one transaction, when the pipeline has no task row yet; a legacy
  /// state with open windows is refused.
  Status MigrateLegacyState();
  /// After a failure: drops the connection when `lost` (returning kUnavailable), else rolls
  /// back; returns `s`.
  Status Failed(Status s, bool lost);
  /// Writes items [0, n) with `write` (which sends their statements), bisecting a range the
  /// server refuses for its values (IsRowRejection) under a savepoint; returns the refused
  /// items with the server's message.
  Result<std::vector<RejectedItem>> WriteIsolatingRows(
      size_t n, const std::function<Status(size_t begin, size_t end)>& write);
  /// Writes `deltas` by the bulk path (BulkDeltas: LOAD DATA LOCAL INFILE into a temporary
  /// table, one INSERT ... SELECT ... ON DUPLICATE KEY UPDATE), sending the merge through `run`.
  /// Returns false, having written nothing, when the path does not apply: the stage could not
  /// hold the values exactly (the server warned while loading), or the server refuses LOCAL
  /// INFILE or temporary tables (then bulk_off_, for the rest of the sink's life).
  Result<bool> WriteDeltasBulk(std::span<const DeltaRow> deltas,
                               const std::function<Status(const std::string&, size_t)>& run);
  /// Returns true when `s`, the failure of a write, is a permanent refusal of its values (a
  /// value the column cannot hold, or one row whose statement alone is over max_allowed_packet).
  bool IsRowRejection(const Status& s) const;
  /// The bytes a statement of several rows may take: batch_bytes, and within the server's
  /// max_allowed_packet (less room for the statement's tail), so that batching never makes a
  /// statement the server refuses; only a single row can be over the packet.
  size_t StatementBytes() const;

  mysql::Connection::Options options_;
  std::string table_;
  std::map<std::string, std::string> column_types_;
  std::string column_types_where_;
  size_t batch_rows_ = 1000;
  size_t batch_bytes_ = 1 << 20;
  /// A range of at least this many deltas goes by the bulk path (0: never).
  size_t bulk_rows_ = 1000;
  bool bulk_off_ = false;
  int64_t bulk_loads_ = 0;
  SinkContext ctx_;
  std::optional<mysql::TableSql> sql_;
  std::unique_ptr<mysql::Connection> conn_;
  /// Set when the connection broke at COMMIT: the next Commit() checks the positions first.
  bool ambiguous_ = false;
  int64_t rows_rejected_ = 0;
  SinkRowCounts counts_;
  std::atomic<bool> healthy_{true};
  TestHook hook_;
};

}  // namespace sluice
