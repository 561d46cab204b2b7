#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/option_spec.h"
#include "connectors/cassandra/cql_client.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"
#include "runtime/sink_inventory.h"
#include "runtime/task_state.h"

namespace sluice {

/// The options of a cassandra:// sink (CassandraSink::Make reads them).
const OptionTable& CassandraSinkOptions();

/// Upserts results into a Cassandra table, exactly once by idempotence: every row is an INSERT
/// (an upsert by primary key) of final values, and a checkpoint's source positions and engine
/// state are written only after all its rows have been acknowledged. A crash in between replays
/// the same upserts, which leave the same rows. Dead letters are upserts too, into
/// `_sluice_dead_letters` keyed by ((pipeline, source, partition), offset, seq), written with
/// the rows, before the positions.
///
/// URI `cassandra://[USER@]HOST[:PORT]/KEYSPACE`; the keyspace (SimpleStrategy with
/// `replication_factor`, default 1) and tables are created when missing. Options: `table`
/// (default: the pipeline name), `key` (primary key columns of a select pipeline; aggregates in
/// append mode use their keys), `partition_key` (the leading key columns that form the partition
/// key; default all of them), `column_types = "name:TYPE,..."` (text, ascii, int, bigint,
/// double, boolean, timestamp, uuid, timeuuid), `consistency` (of the writes, default
/// local_quorum), `read_consistency` (of the reads of positions and state at start; default
/// `consistency`, local_quorum when that is a write-only level, any or each_quorum),
/// `concurrency` (requests in flight, default 4), `batch_rows` (rows per unlogged batch of one
/// partition, default 50), `retries` (attempts per request on timeouts, unavailable, overloaded,
/// with exponential backoff; default 6), `timeout` (default 12s), `password_file`.
///
/// A row the server cannot store (a value that does not fit its column, a null key, a key
/// over 64 KiB, found before sending; or a request the server refuses as invalid, whose rows are
/// then sent one by one) is dead-lettered with reason "sink_rejected: ..." and the rest of the
/// checkpoint is written. Its letter's offset is a hash of the row, so a replay writes the same
/// letter again rather than a second one.
///
/// Update-mode aggregates (deltas merged into stored rows) are rejected by Check(): Cassandra
/// cannot apply them idempotently.
///
/// Tasks (SinkContext::tasks): state and positions per (source, partition) in `_sluice_tasks`,
/// one row each in the pipeline's partition. A claim is a lightweight transaction (read the row
/// at SERIAL, then `UPDATE ... SET fence = f + 1 ... IF fence = f AND ts_limit = L`); a
/// checkpoint writes its rows, then every task's position, progress and state in one
/// conditional batch (`IF fence = ?` per task: all applied or none, kFenced when one failed),
/// then mirrors the positions into `_sluice_positions`. Rows and mirrored positions are written
/// `USING TIMESTAMP T`, T taken from a range the task's row reserves for its owner (below
/// `ts_limit`, which the next claim starts above), so a fenced owner's late upserts lose to the
/// next owner's. README "Tasks" says what is and is not guaranteed.
///
/// Lifecycle and threading as Sink; Healthy() may be called from any thread.
class CassandraSink : public Sink, public SinkReader, public SinkExplainer {
 public:
  static Result<std::unique_ptr<Sink>> Make(const SinkConfig& config);
  ~CassandraSink() override;

  Status Check(const SinkContext& ctx) const override;
  Status Open(const SinkContext& ctx) override;
  Result<std::vector<StoredPosition>> LoadPositions() override;
  Result<std::string> LoadState() override;
  bool SupportsState() const override { return true; }
  bool SupportsTasks() const override { return true; }
  /// Append mode's open windows go into the task states: a state too large for the tasks'
  /// conditional batch is written in chunks first (`_sluice_task_state`), and the batch points
  /// the task row at them (README "Large task states").
  bool StoresTaskWindows() const override { return true; }
  Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) override;
  /// Returns the task rows of the pipeline (no state); an empty list when the keyspace or
  /// `_sluice_tasks` does not exist. After Open() or OpenForReading().
  Result<std::vector<TaskRow>> LoadTaskProgress() override;
  /// Connects without creating or changing anything (`sluice status`, `sluice verify`):
  /// LoadPositions() and LoadTaskProgress() may follow.
  Status OpenForReading(const SinkContext& ctx) override;
  /// Not implemented: `sluice verify` cannot check a Cassandra table yet (says so).
  Result<std::vector<std::vector<Value>>> ReadOutput() override {
    return Status::InvalidArgument("the cassandra sink cannot read its table back yet, so sluice verify cannot check it");
  }
  Status Commit(const Checkpoint& checkpoint) override;
  bool StoresDeadLetters() const override { return true; }
  int64_t RowsRejected() const override { return rows_rejected_; }
  std::string DeadLetterLocation() const override;
  bool Healthy() const override { return healthy_.load(); }
  /// Connects and reads the keyspace's sluice tables (creating nothing): positions through
  /// LoadPositions(), the last checkpoint time as the newest WRITETIME of the pipeline's
  /// positions and state, and every dead letter of the pipeline, partition by partition.
  Result<SinkInventory> Inventory(const InventoryOptions& options) override;
  /// Reads the reason of every dead letter of the pipeline (CQL cannot group by it).
  Result<std::map<std::string, int64_t>> CountDeadLetters() override;
  void Close() override;
  /// The table and the INSERT Open() creates and prepares, without connecting.
  Result<SinkExplanation> Explain(const SinkContext& ctx) override;

  /// Called with "rows_written" after the rows of a checkpoint are acknowledged and before its
  /// positions are written, and (tasks) with "tasks_committed" after the tasks' conditional
  /// batch and before the positions are mirrored into _sluice_positions, and with "state_moved"
  /// after Open's migration moved a legacy state into task rows and before it deletes the legacy
  /// row; a non-OK status aborts the Commit (or Open) there (a crash simulation).
  /// With tasks also "task_row_read" in ClaimTask, after it read the task row and before it
  /// reads the row's state chunks.
  using TestHook = std::function<Status(std::string_view stage)>;
  void SetTestHook(TestHook hook) { hook_ = std::move(hook); }

  /// The levels state chunks are written and read at: the sink's `consistency` and
  /// `read_consistency`, raised to QUORUM when weaker (ONE, LOCAL_QUORUM, ...). The task row
  /// that names the chunks is written and read through Paxos at SERIAL (a majority of all
  /// replicas), and only QUORUM writes and reads overlap that in every data center: a state the
  /// row names stays readable while a minority of its replicas is lost.
  std::pair<cassandra::Consistency, cassandra::Consistency> StateChunkConsistency() const;

  /// One column of the results table.
  struct Column {
    std::string name;
    cassandra::CqlType type = cassandra::CqlType::kVarchar;
  };

 private:
  CassandraSink() = default;
  Status Connect();
  Status CreateSchema();
  /// What Open() computes before connecting: the columns, their CQL types and the key.
  Status SetLayout(const SinkContext& ctx);
  std::string TableCql() const;
  std::string InsertCql() const;
  /// Adds the generation column to a dead-letter table of an older sluice (a regular column:
  /// Cassandra cannot change a key) and sets legacy_dead_letter_key_.
  Status MigrateDeadLetters();
  /// The seq a dead letter is stored under: its own, or in a table whose key lacks the
  /// generation, generation * 65536 + seq, so other inputs' letters at the same offset stay apart.
  int32_t LegacyDeadLetterSeq(const DeadLetter& d) const {
    if (!legacy_dead_letter_key_ || d.generation <= 0) return d.seq;
    return static_cast<int32_t>(std::min<int64_t>(d.generation, 32767) * 65536 + (d.seq & 0xffff));
  }
  /// Prepares the INSERTs of rows, positions and state on the current connection.
  Status PrepareStatements();
  Status CheckExistingTable();
  /// With SinkContext::tasks: moves a legacy _sluice_state row of the pipeline into task rows
  /// (one conditional batch, only when the pipeline has no task rows, that also sets the mark:
  /// the legacy row's WRITETIME), then deletes it (USING TIMESTAMP of that row). Reads the mark
  /// into migrated_legacy_ts_; refuses a legacy row written after it (CheckNoLegacyState).
  Status MigrateLegacyState();
  /// Adds the columns a task table of an earlier sluice lacks: the mark (legacy_state_ts,
  /// static) and the pointer to a chunked state (state_version, state_chunks, state_bytes).
  Status AddTaskColumns();
  /// Whether table `name` of the keyspace exists (a missing keyspace: false).
  Result<bool> TableExists(const std::string& name);
  /// Writes the chunks of a task state too large for the conditional batch under version `ts`
  /// (USING TIMESTAMP ts), before the batch that points the task row at them.
  Status WriteStateChunks(const TaskId& task, int64_t ts, const std::string& state);
  /// Reads the `chunks` chunks (`bytes` in all) of version `version` of a task's state (at
  /// StateChunkConsistency().second). std::nullopt, with what differs in `*mismatch`, when the
  /// chunks read do not make that state or the row's numbers cannot be one (chunks or bytes out
  /// of bounds, checked before anything is allocated): the caller re-reads the row to tell a
  /// commit it raced from a corrupt row.
  Result<std::optional<std::string>> ReadStateChunks(const TaskId& task, int64_t version, int64_t chunks,
                                                     int64_t bytes, std::string* mismatch);
  /// The pipeline's legacy _sluice_state row: its state and WRITETIME (0 when it holds none).
  struct LegacyRow {
    std::string state;
    int64_t written = 0;
  };
  Result<LegacyRow> ReadLegacyState();
  /// kFailedPrecondition when the pipeline's legacy _sluice_state row holds a state written
  /// after the migration's mark (an older sluice still running next to the task rows).
  Status CheckNoLegacyState();
  /// Runs one conditional request (an LWT or a conditional batch) with retries; returns whether
  /// it was applied (the `[applied]` column of its answer).
  Result<bool> RunConditional(cassandra::Request request);
  /// Returns the write timestamp of checkpoint `cp`: above this sink's last one and above the
  /// floor of each of its tasks, and below each task's ts_limit (extended first with one
  /// conditional batch when it is not); kFenced when a task is no longer this sink's.
  Result<int64_t> ReserveTimestamp(const Checkpoint& cp);
  /// The task rows' part of a commit: positions, progress, state, owner, all under `IF fence`.
  Status CommitTasks(const Checkpoint& cp, int64_t t);
  std::string TasksTable() const;
  /// Runs the requests that `build` makes for the still-pending groups, retrying the retryable
  /// failures with backoff (and reconnecting when the connection broke).
  /// A group whose failure is not retryable is given to `reject` when set: true means the
  /// caller took care of it (the other groups go on), false fails the whole run.
  Status RunWithRetry(size_t groups, const std::function<cassandra::Request(size_t group)>& build,
                      const std::function<bool(size_t group, const Status&)>& reject = nullptr);
  /// Converts a row for the table; kInvalidArgument when a value does not fit its column or a
  /// key is null or over the server's 64 KiB limit (the row is refused), kInternal for a bug.
  Result<std::vector<cassandra::CqlValue>> ConvertRow(const std::vector<Value>& row) const;
  Status Failed(Status s);

  cassandra::CassandraUri uri_;
  std::string password_file_;
  cassandra::ClientOptions client_options_;
  cassandra::Consistency consistency_ = cassandra::Consistency::kLocalQuorum;  ///< writes
  cassandra::Consistency read_consistency_ = cassandra::Consistency::kLocalQuorum;
  std::string table_;
  std::vector<std::string> key_option_;
  std::vector<std::string> partition_key_option_;
  std::map<std::string, std::string> column_types_;
  std::string where_;  ///< file:line of the sink section, for messages
  int concurrency_ = 4;
  size_t batch_rows_ = 50;
  int retries_ = 6;
  int replication_factor_ = 1;

  SinkContext ctx_;
  std::vector<Column> columns_;
  std::vector<size_t> key_slots_;   ///< primary key columns, in order
  size_t partition_key_count_ = 0;  ///< leading key_slots_ forming the partition key
  std::unique_ptr<cassandra::Connection> conn_;
  /// The dead-letter table is keyed without the generation (made by an older sluice).
  bool legacy_dead_letter_key_ = false;
  bool schema_ready_ = false;  ///< the tables exist (statements can be prepared)
  bool tasks_table_ = false;   ///< _sluice_tasks exists (LoadPositions reads it too)
  std::shared_ptr<const cassandra::Prepared> insert_;
  std::shared_ptr<const cassandra::Prepared> insert_position_;
  std::shared_ptr<const cassandra::Prepared> insert_state_;
  std::shared_ptr<const cassandra::Prepared> insert_dead_letter_;
  std::shared_ptr<const cassandra::Prepared> insert_ts_;          ///< rows USING TIMESTAMP
  std::shared_ptr<const cassandra::Prepared> insert_dead_letter_ts_;
  std::shared_ptr<const cassandra::Prepared> insert_position_ts_;
  std::shared_ptr<const cassandra::Prepared> insert_state_chunk_;  ///< USING TIMESTAMP
  /// Opened by OpenForReading(): nothing is created, Commit() and ClaimTask() refuse.
  bool reading_only_ = false;
  /// `_sluice_tasks` exists, so LoadTaskProgress() reads it (also without SinkContext::tasks).
  bool task_rows_readable_ = false;
  /// What this sink knows of each task it claimed: the fence, the first timestamp its rows may
  /// use (`floor`, above every earlier owner's) and the ts_limit stored in its row.
  struct OwnedTask {
    int64_t fence = 0;
    int64_t floor = 0;
    int64_t limit = 0;
    /// Chunks of other versions than the one a state commit writes may exist in
    /// `_sluice_task_state` (the committed state is chunked, or a claim found chunks, or a
    /// commit wrote chunks and failed): the next commit with a state deletes the versions
    /// below its own.
    bool sweep = false;
  };
  std::map<TaskId, OwnedTask> owned_;
  /// The write timestamp (microseconds) of this sink's last checkpoint in task mode: each
  /// checkpoint uses a larger one, so a later checkpoint's upserts win over an earlier one's.
  int64_t last_write_ts_ = 0;
  /// The WRITETIME of the legacy state row moved into the task rows (their static column
  /// legacy_state_ts; 0: none was): a legacy row written later is an older sluice's.
  int64_t migrated_legacy_ts_ = 0;
  std::atomic<bool> healthy_{true};
  int64_t rows_rejected_ = 0;
  TestHook hook_;
};

/// How far above a task's write timestamp its row's ts_limit is set (microseconds): a checkpoint
/// whose timestamp reaches a task's limit extends it first with one more conditional write.
inline constexpr int64_t kTaskTimestampRange = 1'000'000;

/// A task state of at most this many bytes goes inline into the tasks' conditional batch (as
/// long as the checkpoint's inline states stay within kTaskStateInlineBudget); a larger one is
/// written in chunks of kTaskStateChunkBytes into `_sluice_task_state` first. The server takes
/// a single-partition conditional batch up to its frame limit (16 MiB, measured on Cassandra
/// 5.0: batch_size_fail_threshold applies to multi-partition batches only), and every claim and
/// commit goes through Paxos on the pipeline's one partition: it is kept small.
inline constexpr size_t kTaskStateInlineBytes = 16 * 1024;
inline constexpr size_t kTaskStateInlineBudget = 1024 * 1024;
inline constexpr size_t kTaskStateChunkBytes = 256 * 1024;
/// The most chunks a task row may name (4 GiB of state): a row naming more is corrupt.
inline constexpr int64_t kTaskStateMaxChunks = 16 * 1024;

/// The largest key component (partition or clustering column value) Cassandra stores.
inline constexpr size_t kMaxKeyComponentBytes = 65535;
/// Returns the offset of the dead letter of a refused row: the first 60 bits of the SHA-256 of
/// its payload, the same for the same row in every attempt.
int64_t RejectionOffset(std::string_view payload);

/// Returns the CQL type for a sluice type (int64 -> bigint, string -> text, ...).
cassandra::CqlType CqlTypeFor(Type type);
/// Parses a CQL type name accepted by column_types.
bool ParseCqlTypeName(std::string_view name, cassandra::CqlType* out);
/// Converts a sluice value for a column of `type` (timestamps to milliseconds, strings to UUIDs,
/// ...); fails with a message naming the value when it does not fit.
Result<cassandra::CqlValue> ToCqlValue(const Value& value, cassandra::CqlType type);

}  // namespace sluice
