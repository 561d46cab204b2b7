#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "core/dead_letter.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/aggregate_function.h"
#include "operators/aggregate_spec.h"
#include "runtime/repartition_output.h"
#include "runtime/task_state.h"

namespace sluice {

/// The committed position of one source partition.
struct StoredPosition {
  std::string source;
  int32_t partition = 0;
  int64_t offset = 0;
  friend bool operator==(const StoredPosition&, const StoredPosition&) = default;
};

/// One task's part of a checkpoint (sinks whose SupportsTasks() is true): the sink commits it
/// only if the task's fence is still `fence` (no other process claimed it since), else the whole
/// checkpoint fails with StatusCode::kFenced and nothing of it is applied.
struct TaskCommit {
  TaskId task;
  int64_t fence = 0;
  TaskProgress progress;
  /// The task's state (TaskState::Serialize); null when it did not change since the last commit
  /// of the task (the stored one stays).
  const std::string* state = nullptr;
  /// The last commit before giving the task up (a rebalance revoked it): the owner is cleared.
  bool release = false;
};

/// What one checkpoint writes. Exactly one of `deltas` (update mode: partial aggregates to merge
/// into stored rows) or `rows` (final rows to append or upsert) is used.
struct Checkpoint {
  int64_t id = 0;
  const std::vector<DeltaRow>* deltas = nullptr;
  const std::vector<std::vector<Value>>* rows = nullptr;
  std::vector<StoredPosition> positions;
  /// The engine's state after this checkpoint (open windows, per-partition watermarks; see
  /// WindowState), stored atomically with the positions. Null when the pipeline keeps none
  /// (update mode without lateness): the sink then stores nothing and LoadState() returns "".
  const std::string* state = nullptr;
  /// The tasks this checkpoint commits for (SupportsTasks() sinks; empty for a pipeline on the
  /// legacy single state): one for every task the process owns whose partition has a position
  /// in `positions` or that it releases. Every fence is checked inside the transaction.
  std::vector<TaskCommit> tasks;
  /// For each row of `rows`, the index into `tasks` of the task it belongs to (the task whose
  /// records produced it): a sink that stores output per task (Parquet) writes a row with its
  /// task's files. The runner sets it in append mode on tasks (`[source] keyed_by`: a row is a
  /// window closed by one task). Null when `tasks` is empty (the legacy single state), or when
  /// the runner does not tell (a select pipeline on tasks for its held records): the Parquet
  /// sink then writes every row with the checkpoint's first task, which stays exact because it
  /// commits all tasks of a checkpoint or none. Sinks whose transaction covers every task at
  /// once (SQL) ignore it. Dead letters belong to the task of their (source, partition).
  const std::vector<uint32_t>* row_tasks = nullptr;
  /// Set on the last checkpoint of a run (end of input, caught up, or a stop): a sink that
  /// buffers output (Parquet roll size/interval) writes everything it holds.
  bool final = false;
  /// Dead letters to store in the same transaction (null: none), each with its `seq` set. Only
  /// given to a sink whose StoresDeadLetters() is true. Besides the records the workers
  /// dead-lettered, a sink may add letters of its own (rows it rejects) through the same path.
  const std::vector<DeadLetter>* dead_letters = nullptr;
  /// Stage one of a repartitioned pipeline (RunOptions::stage_one; only given to a sink whose
  /// TakesStageOne() is true): for each entry of `tasks`, in the same order, the task's partials
  /// drained at this checkpoint and its control record (docs/notes-16/repartition.md). Written
  /// in the same transaction as the task records; `rows` and `deltas` are empty then. Null
  /// otherwise.
  const std::vector<StageOneOutput>* stage_one = nullptr;
};

/// What one Commit() did to the rows of the results table (SQL sinks; others leave it zero).
/// `unchanged` counts rows found with the values they already had (MySQL's affected-rows 0).
struct SinkRowCounts {
  int64_t inserted = 0;
  int64_t updated = 0;
  int64_t unchanged = 0;
};

/// Describes what a sink receives, fixed at Open().
struct SinkContext {
  std::string pipeline;
  /// Set when the pipeline aggregates; deltas follow its layout.
  const AggregateSpec* aggregate = nullptr;
  /// The output columns of `rows` (aggregate output in append mode, or select columns).
  Schema output;
  /// Names the key columns of `output` (upsert sinks use them as the primary key).
  std::vector<std::string> key_columns;
  /// The pipeline's source (its name in positions and tasks).
  std::string source;
  /// The runner keeps its state per task (Checkpoint::tasks, ClaimTask) rather than in the one
  /// state of LoadState(): a SupportsTasks() sink then moves a legacy state it finds into task
  /// rows at Open() (held records and event-time progress by partition).
  bool tasks = false;
};

/// Writes results together with source positions, atomically.
///
/// Lifecycle: Make -> Check -> Open -> LoadPositions/LoadState -> Commit* -> Close.
///
/// Threads (as the Runner calls it):
/// - Check() comes from the thread that makes the runner (Runner::Make, `sluice validate` too).
/// - Open and LoadState: the coordinator's thread (Runner::Run). Commit, RowsRejected and
///   LastCommitRowCounts: the thread that commits (one commit at a time, in checkpoint order).
///   Close: the thread that destroys the runner, once Run() returned and no commit runs.
/// - LoadPositions() comes from the coordinator at start, and from worker threads: when a
///   rebalance hands a worker new partitions, and while a worker checks whether every partition
///   has caught up (--until-caught-up).
/// - The runner serializes LoadPositions(), Commit() and RowsRejected() (and SinkReader's
///   CountDeadLetters()) under its sink mutex, so none of them overlaps another. The other
///   coordinator calls are made without it: LastCommitRowCounts() may overlap a worker's
///   LoadPositions(), so it must only read what the last Commit() left.
/// - Healthy() and DeadLetterLocation() may be called from any thread at any time, from before
///   Open() returns until Close(), concurrently with every other call (the HTTP server's
///   /readyz, /metrics and dead-letter counts, the demo's console), and must not block:
///   Healthy() should read an atomic, DeadLetterLocation() only what Make() fixed.
///
/// Commit() either applies everything it is given (results and positions) or nothing, and may be
/// retried with the same Checkpoint after a failure. Sinks that cannot be transactional (files)
/// must make a replay rewrite the same output.
class Sink {
 public:
  virtual ~Sink() = default;
  /// Checks, without connecting or touching any data, that the sink can take what `ctx`
  /// describes (a sink that only writes rows rejects update-mode deltas; named columns must be
  /// output columns). Runner::Make calls it, so `sluice validate` and `sluice run` reject the
  /// same pipelines; Open() checks the same again.
  virtual Status Check(const SinkContext& ctx) const {
    (void)ctx;
    return Status::OK();
  }
  virtual Status Open(const SinkContext& ctx) = 0;
  /// Returns the positions committed by earlier runs of this pipeline.
  virtual Result<std::vector<StoredPosition>> LoadPositions() = 0;
  /// Returns the engine state stored by the last Commit() whose `state` was set ("" if none).
  /// A sink that cannot store state keeps SupportsState() false, and the runner rejects
  /// pipelines that need state (append mode, lateness) at start.
  virtual Result<std::string> LoadState() { return std::string(); }
  virtual bool SupportsState() const { return false; }

  // Tasks (runtime/task_state.h): per-partition state and ownership. A sink that implements
  // them keeps SupportsTasks() true and stores state per task; the others keep the one state of
  // LoadState()/Checkpoint::state. Called under the runner's sink mutex, like Commit().

  virtual bool SupportsTasks() const { return false; }
  /// True when a task's state may also hold append mode's open windows (any size, stored with
  /// the rows it emits in one transaction): append mode over a source declared `keyed_by` then
  /// keeps its open windows per task, and each checkpoint's rows come with Checkpoint::row_tasks.
  /// Only with SupportsTasks().
  virtual bool StoresTaskWindows() const { return false; }
  /// True when the sink is stage one's internal sink of a repartitioned pipeline: it writes
  /// Checkpoint::stage_one (partials, controls) and the dead letters to the repartition topic
  /// (the Kafka sink made by MakeStageOneSink). Only with SupportsTasks().
  virtual bool TakesStageOne() const { return false; }
  /// Claims `task` for this process: in one transaction, bumps the task's fence (creating the
  /// task when new), records `owner`, and returns the new fence with the task's state and
  /// positions as they stand after the bump. From then on a Commit() carrying the task with an
  /// older fence fails with kFenced: a process that lost the task commits nothing of it.
  virtual Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) {
    (void)task;
    (void)owner;
    return Status::FailedPrecondition("this sink does not store state per task");
  }
  /// Returns every task of the pipeline with its committed progress, fence and owner (a quick
  /// read: no state blob).
  virtual Result<std::vector<TaskRow>> LoadTaskProgress() {
    return Status::FailedPrecondition("this sink does not store state per task");
  }
  virtual Status Commit(const Checkpoint& checkpoint) = 0;
  /// Returns true when Commit() stores `dead_letters` with the results, atomically, and
  /// idempotently by (pipeline, source, partition, offset, seq) so a replay never duplicates one.
  virtual bool StoresDeadLetters() const { return false; }
  /// Returns how many result rows this sink refused and dead-lettered itself in the commits
  /// that succeeded since Open() (see runtime/sink_rejection.h). Called from the checkpoint
  /// thread only, under the runner's sink mutex.
  virtual int64_t RowsRejected() const { return 0; }
  /// Says where the stored dead letters are, for the log ("table _sluice_dead_letters"). Any
  /// thread (see Threads above); must not block.
  virtual std::string DeadLetterLocation() const { return std::string(); }
  /// Returns false when the sink knows it cannot be reached now (its connection dropped), so
  /// /readyz reports it before the next commit fails. Any thread; must not block.
  virtual bool Healthy() const { return true; }
  /// Returns what the last successful Commit() did to the results table's rows, when the sink
  /// can tell (SQL sinks: inserted vs updated vs unchanged); nullopt otherwise.
  virtual std::optional<SinkRowCounts> LastCommitRowCounts() const { return std::nullopt; }
  virtual void Close() {}

  // `sluice verify` (runtime/verify.h) reads a sink back through these three calls.

  /// Opens the sink to read what it holds without changing anything: no table is created, no
  /// lock taken, no file removed. LoadPositions(), ReadOutput() and, on a SupportsTasks()
  /// sink, LoadTaskProgress() may follow, nothing else (`sluice status` reads the task rows so;
  /// a store where no task was ever claimed has none, which is no error).
  /// A sink that cannot be read back leaves the default, which refuses.
  virtual Status OpenForReading(const SinkContext& ctx) {
    (void)ctx;
    return Status::InvalidArgument("this sink cannot be read back, so sluice verify cannot check it");
  }
  /// Returns every row the sink holds for the pipeline: only the columns the pipeline declares
  /// (SinkContext::output, in that order, never the internal merge columns), each read back
  /// into its column's type (ParseStoredValue for a value stored as text).
  virtual Result<std::vector<std::vector<Value>>> ReadOutput() {
    return Status::InvalidArgument("this sink cannot be read back");
  }
  /// Returns `v`, a value computed for output column `column`, as ReadOutput() would return it
  /// once stored: timestamps cut to whole seconds in a SQL table, a DECIMAL(p,s) column's value
  /// rounded half away from zero to s digits, ... The default stores values exactly.
  virtual Value AsStored(size_t column, const Value& v) const {
    (void)column;
    return v;
  }
};

/// Reads a value a sink stored as text back as `type` (what ReadOutput() returns): integers,
/// decimals, `YYYY-MM-DD[ HH:MM:SS[.f]]` timestamps, 0/1 or true/false for booleans. A text that
/// is not of the type is an InvalidArgument error naming it.
Result<Value> ParseStoredValue(std::string_view text, Type type);
/// The columns an SQL sink keeps for exact merges of an update-mode aggregate, which the user's
/// table does not show: the hidden stored columns of the catalog (`_NAME_sum` and `_NAME_count`
/// behind avg(), `_NAME_at`, the event time, behind last()). Empty for append mode, rows, and
/// aggregates whose functions keep none.
inline std::vector<std::string> InternalColumnNames(const AggregateSpec* a) {
  std::vector<std::string> out;
  if (a == nullptr || a->append_mode) return out;
  for (const MetricSpec& m : a->metrics) {
    for (StoredColumn& c : FunctionOf(m).stored_columns(m)) {
      if (c.hidden) out.push_back(std::move(c.name));
    }
  }
  return out;
}

/// The table that holds every column (declared and internal) of the SQL sinks' `table`, when the
/// pipeline has internal columns; `table` itself is then a view of the declared columns (plus
/// the old columns of a table taken over, see `sluice takeover`), so `SELECT *` shows no
/// internal column.
inline std::string InternalTableName(const std::string& table) { return "_sluice_table_" + table; }

using SinkFactory = std::function<Result<std::unique_ptr<Sink>>(const SinkConfig& config)>;

}  // namespace sluice
