#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/option_spec.h"
#include "connectors/parquet/parquet_file.h"
#include "connectors/parquet/parquet_state.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"
#include "runtime/sink_inventory.h"

namespace sluice {

/// The options of a parquet: sink (ParquetSink::Make reads them).
const OptionTable& ParquetSinkOptions();

/// Writes result rows as Parquet files under a directory (`parquet:DIR`), exactly once.
///
/// Commit() appends the checkpoint's rows to a buffer. When the buffer holds `roll_rows` rows,
/// `roll_interval` has passed since the last roll, or the checkpoint is final, the buffer is
/// written: one file per Hive partition directory (`DIR/col=value/...`), first under a
/// temporary name, then renamed to `part-<pipeline>-<seq>-<hash>.parquet`, where seq is the
/// last committed sequence number + 1 and hash depends on the partition directory and the
/// checkpoint's positions. Only after every rename does the state file
/// `DIR/_sluice/<pipeline>.state` (sequence number, positions, engine state, rows still
/// buffered) replace the previous one, atomically; that is the commit. Open() removes the part
/// files of a roll whose state file was never written (seq above the committed one) and
/// temporary files, so a replay rewrites the same names without duplicates.
///
/// Dead letters: a checkpoint that has some writes them, in the record format of
/// core/dead_letter.h, to `DIR/_sluice/dead_letters/dead-letters-<pipeline>-<n>.ndjson` (n is one
/// more than the committed count, kept in the state file) under a temporary name first, then
/// renamed, before the state file: the same discipline as the part files, so a replay rewrites
/// the same file and Open() removes one whose commit never happened. Readers of the dataset
/// skip the `_sluice` folder (Hive, Spark and Arrow ignore names starting with `_`).
///
/// A roll writes at most max_files_per_checkpoint files (one per partition directory, the
/// directories of the oldest buffered rows first) and makes them durable with one sync of the
/// file system; the other rows stay buffered in the state file and the next checkpoint rolls
/// again. A final checkpoint then commits further rolls of the same positions until nothing is
/// buffered, so every commit's work is bounded and a process killed often still advances.
///
/// Options (`[sink]`): partition_by ("a,b" or ["a", "b"]), compression (zstd, snappy, gzip,
/// none), roll_rows, roll_interval, max_files_per_checkpoint. Needs rows (append mode or select);
/// update-mode deltas are refused. One process per pipeline and directory (a lock file enforces
/// it).
///
/// Tasks (SinkContext::tasks; README "Tasks"): the state lives per task in
/// `DIR/_sluice/<pipeline>/task-<source>-<p>.state` (fence, owner, positions, progress, state,
/// the task's own file numbering), several processes of the pipeline share the directory, and
/// an exclusive flock(2) of `DIR/_sluice/<pipeline>/tasks.lock`, held for a whole claim and a
/// whole commit, makes the fences hold. A commit writes each task's rows into files of its own
/// (`part-<pipeline>-<seq>-<hash>-<source>-<p>.parquet`) at that commit: nothing is buffered
/// across checkpoints, roll_rows, roll_interval and max_files_per_checkpoint do not apply.
///
/// Lifecycle as Sink: every call from the checkpoint coordinator's thread (tasks: the runner's
/// sink mutex serializes ClaimTask, LoadTaskProgress, LoadPositions and Commit).
class ParquetSink : public Sink, public SinkReader, public SinkExplainer {
 public:
  static Result<std::unique_ptr<Sink>> Make(const SinkConfig& config);
  ~ParquetSink() override;

  Status Check(const SinkContext& ctx) const override;
  Status Open(const SinkContext& ctx) override;
  Result<std::vector<StoredPosition>> LoadPositions() override;
  Result<std::string> LoadState() override;
  bool SupportsState() const override { return true; }
  Status Commit(const Checkpoint& checkpoint) override;
  bool SupportsTasks() const override { return true; }
  /// A task file holds any state, and its rows (Checkpoint::row_tasks) are written with it.
  bool StoresTaskWindows() const override { return true; }
  /// Under the tasks lock: removes the task's orphans (files of a seq above the committed one),
  /// bumps its fence and writes its task file.
  Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) override;
  /// Reads every task file of the pipeline (none: an empty list, also after OpenForReading).
  Result<std::vector<TaskRow>> LoadTaskProgress() override;
  bool StoresDeadLetters() const override { return true; }
  int64_t RowsRejected() const override { return rows_rejected_; }
  std::string DeadLetterLocation() const override;
  /// Reads the state file of each pipeline in DIR/_sluice (without the lock: a running
  /// pipeline replaces it atomically), counts the committed part and dead-letter files, and
  /// reads the dead letters. A missing directory is kNotFound.
  Result<SinkInventory> Inventory(const InventoryOptions& options) override;
  Result<std::map<std::string, int64_t>> CountDeadLetters() override;
  void Close() override;
  /// Reads the state file only: no lock, no directory created, no orphan removed (sluice verify).
  Status OpenForReading(const SinkContext& ctx) override;
  /// Reads the rows of every part file of the pipeline under DIR (partition columns from the
  /// directory names) and the committed rows still buffered in the state file.
  Result<std::vector<std::vector<Value>>> ReadOutput() override;
  /// The folder layout, file names, columns in the files and roll settings (touches no file).
  Result<SinkExplanation> Explain(const SinkContext& ctx) override;

  /// Replaces the monotonic clock (microseconds) that roll_interval is measured with.
  void SetClockForTesting(std::function<int64_t()> clock) { clock_ = std::move(clock); }
  /// Returns how many fsync(2) and syncfs(2) calls Parquet sinks of this process have made.
  static int64_t SyncCountForTesting();
  /// Makes the next commits of tasks fail after their part and dead-letter files are written
  /// and before any task file is renamed (a crash between the two, as the files see it); a
  /// commit of several tasks fails after its intent is renamed (committed, task files not).
  void FailBeforeTaskFilesForTesting(bool fail) { fail_before_task_files_ = fail; }
  /// Returns the number of rows buffered and not yet written to a Parquet file.
  size_t buffered_rows() const { return buffer_.size(); }

 private:
  struct Settings {
    std::string dir;
    std::vector<std::string> partition_by;
    std::string partition_by_where;
    std::string where;  ///< the [sink] section, for errors
    ParquetCompression compression = ParquetCompression::kZstd;
    int64_t roll_rows = 1'000'000;
    int64_t roll_interval_micros = 60'000'000;
    int64_t max_files_per_checkpoint = 64;
  };
  explicit ParquetSink(Settings settings);

  /// What Open() and OpenForReading() share: the context, the partition and data columns.
  Status SetContext(const SinkContext& ctx);
  std::string StatePath() const;
  /// Takes the pipeline's lock file: exclusively without tasks (one process), shared with
  /// tasks (every process of the pipeline on tasks, none without).
  Status LockDirectory(bool shared = false);
  Status ReadState();
  Status RemoveOrphans();
  Status CheckRow(const std::vector<Value>& row) const;
  /// Fails with kInvalidArgument when a partition_by value of `row` makes a folder name longer
  /// than a file system allows (255 bytes): no retry could write that row.
  Status CheckPartitionPath(const std::vector<Value>& row) const;
  /// Writes buffered rows as part files of sequence number `seq`: one file per partition
  /// directory, at most max_files_per_checkpoint directories, those of the oldest buffered rows
  /// first; then one sync makes them durable. `written[i]` tells whether buffer_[i] went into a
  /// file; `files` is the number of files.
  Status WriteFiles(int64_t seq, const std::vector<StoredPosition>& positions,
                    std::vector<bool>* written, int64_t* files);
  /// One commit: when `roll`, writes files (WriteFiles); writes `refused` as a dead-letter file;
  /// then replaces the state file with the positions, the engine state and the rows still
  /// buffered (buffer_encoded_ + `added`, whose rows end at `added_ends`, without a roll). On
  /// failure the members are unchanged (the caller cuts buffer_ and buffer_dirs_ back). `now`
  /// is the roll clock's time of the checkpoint.
  Status CommitStep(const Checkpoint& cp, bool roll, const std::vector<DeadLetter>& refused,
                    const std::string& added, const std::vector<size_t>& added_ends, int64_t now);
  /// Returns the partition directory of `row`, relative to DIR ("" without partition_by).
  std::string PartitionDir(const std::vector<Value>& row) const;
  /// After a final checkpoint's commit: commits further rolls of the same positions until the
  /// buffer is empty, each bounded by max_files_per_checkpoint.
  Status Drain(const Checkpoint& cp);
  Status WriteStateFile(const std::string& content);
  /// Writes `content` to `path` through the temporary file `tmp`, fsync and rename.
  /// Writes `content` to `tmp` (created or truncated) and fsyncs it; no rename.
  Status WriteAndSync(const std::string& tmp, const std::string& content);
  Status WriteAtomically(const std::string& path, const std::string& tmp,
                         const std::string& content);
  std::string DeadLetterDir() const;

  // Tasks (parquet_tasks.cc).
  std::string TaskDir() const;
  std::string TaskFilePath(const TaskId& task) const;
  Status OpenTasks();
  /// Takes the exclusive lock of DIR/_sluice/<pipeline>/tasks.lock (waits for it); the returned
  /// object releases it.
  Result<std::shared_ptr<void>> LockTasks();
  std::string IntentPath() const;
  /// Under the tasks lock: writes the task files a commit intent holds (those not newer on
  /// disk already), then removes it. Nothing when there is none.
  Status ApplyCommitIntent();
  /// Reads the task file of `task`; nullopt when there is none.
  Result<std::optional<ParquetTaskFile>> ReadTaskFile(const TaskId& task) const;
  /// Reads every task file of the pipeline (none when the folder does not exist).
  Result<std::map<TaskId, ParquetTaskFile>> ReadTaskFiles() const;
  /// Writes task files: each to a temporary file, fsynced, then each renamed, then one fsync
  /// of the folder. `renamed` counts the files renamed into place.
  Status WriteTaskFiles(const std::vector<const ParquetTaskFile*>& files, size_t* renamed);
  /// Removes the files of `committed`'s tasks that no commit of theirs took: part files of a
  /// seq above the task's, dead-letter files above its count, temporary files.
  Status RemoveTaskOrphans(const std::map<TaskId, ParquetTaskFile>& committed);
  /// Under the tasks lock: refuses a legacy state file next to task files; moves a legacy
  /// state into task files (fence 0) and leaves the state file as a `moved` marker.
  Status MigrateLegacyState();
  /// Fails with kFailedPrecondition when `<pipeline>.state` holds a state that did not move
  /// into the task files (an older sluice wrote it).
  Status CheckNoLegacyState() const;
  Status CommitTasks(const Checkpoint& cp);
  /// Dead-letter counts by reason over the legacy files the marker counts and every task's.
  /// What Inventory() shows of a pipeline on tasks (moved_ set to its marker, if any).
  Result<PipelineInventory> TasksInventory(const std::string& name,
                                           const std::map<TaskId, ParquetTaskFile>& tasks,
                                           const InventoryOptions& options) const;
  Status TallyTaskDeadLetters(const std::map<TaskId, ParquetTaskFile>& files,
                              size_t samples_per_reason, DeadLetterTally* tally) const;
  /// Counts the dead letters of ctx_.pipeline in the committed dead-letter files (numbers 1 to
  /// `committed`), keeping `samples_per_reason` samples each, newest first.
  Status TallyDeadLetters(int64_t committed, size_t samples_per_reason, DeadLetterTally* tally) const;
  /// Writes the checkpoint's dead letters as dead-letter file number `n`.
  Status WriteDeadLetters(int64_t n, const std::vector<DeadLetter>& letters);

  Settings settings_;
  SinkContext ctx_;
  bool opened_ = false;
  std::vector<size_t> partition_slots_;
  std::vector<size_t> data_slots_;  ///< the columns written into the files
  std::function<int64_t()> clock_;
  int lock_fd_ = -1;

  // Committed state (what the state file on disk says).
  int64_t seq_ = 0;
  int64_t dead_letter_seq_ = 0;  ///< dead-letter files committed
  int64_t rows_rejected_ = 0;
  std::map<std::pair<std::string, int32_t>, int64_t> positions_;
  std::string engine_state_;
  std::vector<std::vector<Value>> buffer_;
  std::vector<std::string> buffer_dirs_;  ///< the partition directory of each row of buffer_
  std::string buffer_encoded_;  ///< buffer_ as BinaryWriter rows, for the state file
  std::vector<size_t> buffer_ends_;  ///< where each row of buffer_ ends in buffer_encoded_
  int64_t last_roll_micros_ = 0;
  /// Set when a roll failed after it may have renamed files: the next roll removes them first.
  bool roll_failed_ = false;
  /// Set when the last roll left rows for the next checkpoint (max_files_per_checkpoint); kept
  /// in the state file, so a restarted process goes on writing them at its first checkpoint.
  bool carried_ = false;
  /// The id of a final checkpoint that is committed but whose Drain() failed: a retry of it
  /// drains, without taking its rows a second time.
  std::optional<int64_t> draining_checkpoint_;

  // Tasks.
  bool task_mode_ = false;  ///< opened with SinkContext::tasks, or read with task files present
  int tasks_lock_fd_ = -1;
  /// The task files as last read or written by this sink.
  std::map<TaskId, ParquetTaskFile> task_files_;
  /// The legacy state file's `moved` marker, when the state moved into task files.
  std::optional<ParquetSinkState> moved_;
  int64_t commit_number_ = 0;  ///< the highest commit number this sink knows of
  /// The checkpoint each task was last committed in by this sink: a retry of a checkpoint whose
  /// commit stopped after some task files were renamed skips those tasks.
  std::map<TaskId, int64_t> committed_in_;
  /// Set when a commit of tasks failed after it may have written files: the next one removes
  /// its tasks' orphans first.
  bool task_write_failed_ = false;
  bool fail_before_task_files_ = false;
};

}  // namespace sluice
