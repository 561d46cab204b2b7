#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "runtime/dead_letter_file.h"
#include "runtime/dimension_refresh.h"
#include "runtime/plan.h"
#include "runtime/sink.h"
#include "runtime/sink_inventory.h"
#include "runtime/stage_two.h"
#include "runtime/stats.h"
#include "runtime/task_state.h"
#include "runtime/window_state.h"
#include "runtime/worker.h"

namespace sluice {

/// Makes a Runner stage two of a repartitioned pipeline (docs/notes-16/repartition.md): its
/// source is the repartition topic `<pipeline>-repartition` (a Kafka source, read_committed),
/// one task per partition of it. The pipeline's [aggregate] must be append mode and its sink
/// one that stores task windows (SQLite, MySQL, Parquet, Cassandra). Each record bypasses the
/// decoder, the steps and the worker's aggregate (Worker::SetStageTwo); the coordinator keeps
/// a StageTwoMerge per task in place of append mode's per-task aggregator: claim -> Restore
/// from the task's TaskState, each record -> Add, each checkpoint -> Emit() (rows into the
/// sink), the dead letters (stage one's, late partials) and State() (the task's state), all
/// in the commit that carries the repartition topic's positions.
struct StageTwoRunOptions {
  bool enabled = false;
  /// Every stage-one task, from the source topics' metadata (StageTwoUpstreams): a window is
  /// emitted only when each of them has sent a control past it.
  std::vector<UpstreamId> upstreams;
  /// --until-caught-up: when set, the source takes the repartition topic's end offsets (last
  /// stable offsets) only once this returns true — after stage one ended — instead of at
  /// start (SourceContext::take_end_offsets_when). Called on worker threads; must be cheap
  /// and thread-safe (an atomic flag).
  std::function<bool()> take_end_offsets_when;
};

/// How a run behaves, from the command line.
struct RunOptions {
  bool until_caught_up = false;  ///< stop at the end offsets seen at start, then exit
  bool follow = false;           ///< keep reading files as they grow
  int workers = 0;               ///< 0: the pipeline's setting, else one per partition (max cores)
  /// --reset-source NAME: forget the committed positions of that source (it must be the
  /// pipeline's), so it is read from its beginning; what it produced before stays in the sink.
  std::string reset_source = {};
  /// `sluice verify` (runtime/verify.h): the sink to write to instead of the pipeline's own (an
  /// in-memory collector). Unset: the pipeline's sink.
  std::function<Result<std::unique_ptr<Sink>>()> sink_override = {};
  /// `sluice verify`: wraps each source instance, to read it only up to the positions the
  /// pipeline's sink committed. Unset: the sources as they are.
  std::function<std::unique_ptr<Source>(std::unique_ptr<Source>)> wrap_source = {};
  /// How many times `sluice run` built a new runner for this pipeline after kFenced (reported
  /// as sluice_fenced_restarts_total, which counts on across those runners).
  int64_t fenced_restarts = 0;
  /// Stage two of a repartitioned pipeline (set by the planner's split, never by a flag).
  StageTwoRunOptions stage_two = {};
  /// Runs the pipeline as stage one of a repartitioned pipeline (docs/notes-16/repartition.md):
  /// the plan must be an append-mode [aggregate] and the sink one whose TakesStageOne() is true
  /// (the Kafka sink of MakeStageOneSink). Each worker aggregates each partition apart, as
  /// append mode with keyed_by does; at every checkpoint each task's deltas are drained into
  /// Checkpoint::stage_one with the task's progress as its control record, instead of being kept
  /// as open windows. A task's state is its progress and its held records. Records are judged
  /// late by their own partition's watermark (or the closed bound where that is higher, as on
  /// tasks) and dead-lettered `late`; the dead letters go to the sink with the checkpoint
  /// ('D' records), whatever [dead_letter] says. With until_caught_up, the controls of tasks
  /// whose worker's source reached its end carry `end`.
  bool stage_one = false;
};

/// Runs one pipeline: starts its workers, and as checkpoint coordinator periodically collects
/// their deltas and positions and commits them to the sink in one transaction. Commits are
/// pipelined: while checkpoint N commits (on a committer thread), N+1 is collected and merged;
/// N+1 commits as soon as N is done (not earlier than checkpoint_interval after N started),
/// so commits run back to back when they take longer than the interval. One commit at a time,
/// in checkpoint order; a failed one is retried before any later one.
///
/// Thread-safety: Run() blocks on the calling thread. RequestStop() and Snapshot() may be called
/// from any thread while Run() is in progress.
class Runner : public CheckpointRequester {
 public:
  static Result<std::unique_ptr<Runner>> Make(PipelineConfig config, RunOptions options);
  ~Runner();

  /// Runs until a bounded input is consumed, RequestStop() is called, or a fatal error.
  /// Always ends with a checkpoint of everything processed, unless the sink stays unreachable.
  Status Run();
  /// Drains: workers stop after their current batch, then a final checkpoint is written.
  /// Draining is bounded by the pipeline's shutdown_timeout: after it Run() returns kAborted
  /// without committing, and abandoned() is true.
  void RequestStop();
  /// True when Run() gave up draining after shutdown_timeout. Workers may still be blocked
  /// (a source or sink call that does not return), so destroying the runner may block too: the
  /// caller should end the process without destructors (nothing uncommitted is lost, the next
  /// run replays from the last commit).
  bool abandoned() const { return abandoned_.load(); }
  /// True when a worker could not open its source (bad credentials, a URL that does not exist):
  /// the run failed before reading anything. Call after Run() returned.
  bool FailedOpeningSource() const;
  PipelineSnapshot Snapshot() const;
  /// The pipeline's dead letters where they are kept (the sink's store, or the dead-letter
  /// file), by reason, across runs and processes: counted at start and again after
  /// checkpoints that stored dead letters (at most every max(5 s, 20 counting times), and on
  /// the final one), never per call. Not `known` for sinks that cannot be read back (Kafka)
  /// and while the store could not be read (retried after later checkpoints). Thread-safe.
  StoredDeadLetterCounts StoredDeadLetters() const;
  const Plan& plan() const { return *plan_; }
  const PipelineConfig& config() const { return config_; }
  /// Path of the dead-letter file; empty when the sink stores the dead letters.
  const std::string& dead_letter_path() const { return dead_letter_path_; }
  /// Says where dead letters go: the file's path, or the sink's store.
  std::string dead_letter_location() const;

  /// Called on the thread that committed (the committer thread; Run()'s for the final
  /// checkpoint), one call at a time in commit order, after each successful commit with what it wrote (merged
  /// deltas in update mode, finished rows in append mode or without an aggregate). For live
  /// views such as the dashboard; must be quick and must not call back into the runner. Set it
  /// before Run().
  using CommitObserver =
      std::function<void(const std::vector<DeltaRow>& deltas, const std::vector<std::vector<Value>>& rows)>;
  void SetCommitObserver(CommitObserver observer) { commit_observer_ = std::move(observer); }

  /// How many times a checkpoint was collected while the previous one was still committing
  /// (pipelined commits). Thread-safe.
  int64_t collections_while_committing() const { return collections_while_committing_.load(); }

  int64_t RequestCheckpoint() override;
  Status WaitCommitted(int64_t epoch) override;

  /// True when the pipeline keeps its state per task (runtime/task_state.h): update mode or no
  /// [aggregate], with lateness or held records, or append mode over a source declared
  /// `keyed_by` the group key, into a sink that stores tasks. Set by Make().
  bool uses_tasks() const { return tasks_; }
  /// True when append mode keeps its open windows per task ([source] keyed_by). Set by Make().
  bool append_on_tasks() const { return append_tasks_; }
  /// True when this runner is stage two of a repartitioned pipeline (RunOptions::stage_two).
  bool stage_two() const { return stage_two_; }
  /// True when the run is stage one of a repartitioned pipeline (RunOptions::stage_one).
  bool stage_one() const { return stage_one_; }
  /// How often this run warned that other members of its group read part of its input while
  /// its state is one for all processes (append mode, or a sink without tasks).
  int64_t split_with_one_state_warnings() const { return split_with_one_state_warnings_.load(); }
  /// True when a group decides which process reads which partition (Kafka): a run that ended
  /// with kFenced (another process claimed one of its partitions' tasks while this one was cut
  /// off) may start again from the committed state. Valid once Run() started the workers.
  bool RestartsWhenFenced() const { return group_managed_.load(); }

 private:
  Runner(PipelineConfig config, RunOptions options)
      : config_(std::move(config)), options_(options) {}
  Status Start();

  // Checkpoints are pipelined: one commit at a time runs on a committer thread (commit_), in
  // checkpoint order, while the coordinator collects and merges the next checkpoint into
  // pending_. A commit starts when the previous one is done and at least checkpoint_interval
  // after the previous one started (or at once for a requested checkpoint); while a commit
  // runs, the coordinator collects once more, checkpoint_interval after it started, and tops
  // the pending checkpoint up when the commit ends. A commit that fails is retried (on the
  // committer thread) before any later one starts.

  /// The final checkpoint: waits for the commit in flight, collects the rest and commits it on
  /// the calling thread. Returns the commit status.
  Status FinalCheckpoint();
  /// Collects a checkpoint into pending_ (merged with what it already holds). A collection that
  /// releases tasks (a revoke, or `releases_every_task` for the final checkpoint) reads the
  /// other processes' committed progress first (ReadRemoteProgressBeforeRelease).
  Status CollectPending(bool releases_every_task = false);
  /// Starts committing pending_ on the committer thread (commit_), or marks it committed at
  /// once when it holds nothing new. No commit may be in flight.
  Status StartCommit();
  /// Waits for the commit in flight, if any, and returns its status.
  Status WaitForCommit();

  // The steps of a checkpoint, in order.

  /// What the workers handed over for one checkpoint, and what the coordinator made of it.
  struct CheckpointWork {
    int64_t epoch = 0;  ///< the last epoch collected into it (what its commit completes)
    /// The positions to commit: every position handed over up to `epoch`, the revoked
    /// partitions' last ones included.
    std::map<std::pair<std::string, int32_t>, int64_t> positions;
    std::vector<DeltaRow> deltas;  ///< merged (update mode); sorted before the commit
    bool deltas_sorted = false;    ///< `deltas` are in DeltaLess order already (merged in order)
    std::vector<std::vector<Value>> rows;
    /// Append mode on tasks: for each row of `rows`, the partition whose task's windows it is
    /// (Checkpoint::row_tasks is made from it). Empty otherwise.
    std::vector<int32_t> row_partitions;
    std::vector<DeadLetter> letters;
    std::vector<int32_t> revoked;  ///< partitions workers gave up since the last checkpoint
    std::vector<int32_t> lost;     ///< partitions the group took away (Handoff::lost)
    bool held_changed = false;     ///< the held records changed
    bool state_changed = false;    ///< the serialized state differs from the last commit's
    std::string state;             ///< the WindowState to store (needs_state_)
    std::map<std::pair<std::string, int32_t>, int64_t> event_times;  ///< as `state` stores them
    /// Tasks (tasks_): each task's progress and serialized state as of the collection, by
    /// partition of the pipeline's source. Committed only for the tasks this process owns.
    std::map<int32_t, TaskProgress> task_progress;
    std::map<int32_t, std::string> task_states;
    /// Append mode on tasks: the workers' deltas by partition, merged into task_open_ when the
    /// checkpoint is collected.
    std::map<int32_t, std::vector<std::vector<DeltaRow>>> partition_deltas;
    /// Stage two: the repartition records read, by partition, fed to the tasks' merges when the
    /// checkpoint is collected.
    std::map<int32_t, std::vector<RepartitionInput>> stage_two;
    /// Stage one: each task's deltas drained by the collections of this checkpoint, merged per
    /// (window, group); they go to the sink as Checkpoint::stage_one and are kept nowhere else.
    std::map<int32_t, std::vector<DeltaRow>> stage_one_partials;
    /// Stage one with until_caught_up: the tasks whose worker's source had reached its end when
    /// this work was collected (a copy of ended_partitions_ then): their controls carry `end`.
    /// Taken at collection, so a commit (on its own thread) never reads the coordinator's set.
    std::set<int32_t> stage_one_ended;
    /// Stage one: each task's control watermark, as of the collection: the highest of its own
    /// watermark and the closed bound its worker had applied at its last handoff (every later
    /// record of the task is judged late against at least this, so stage two may emit up to it
    /// whether or not the task is idle). By partition, like task_progress.
    std::map<int32_t, int64_t> stage_one_watermarks;
  };
  /// Starts a new epoch and asks every worker to hand over its work for it.
  void RequestHandoffs();
  /// Takes every worker's handoff into `work` and the latest positions into positions_; merges
  /// the deltas. Gives up (Abandon) when a worker does not hand over before the drain expires.
  Status CollectHandoffs(CheckpointWork* work);
  /// Adds `later` (collected after `into`) to `into`: deltas merged, rows and letters appended,
  /// positions and state from the later one.
  void Absorb(CheckpointWork* into, CheckpointWork&& later) const;
  /// Merges the deltas of several workers or collections into `work->deltas` (in DeltaLess
  /// order when no window state needs them in their own, setting deltas_sorted).
  void MergeParts(std::vector<std::vector<DeltaRow>>&& parts, CheckpointWork* work) const;
  /// Commits `work` (committer thread, or the caller's for the final checkpoint): dead letters,
  /// the sink transaction with retries, then what follows a commit.
  Status CommitWork(CheckpointWork* work, bool final);
  /// Folds worker `i`'s event-time report of handoff `h` into the pipeline's clock.
  void ReportEventTime(size_t i, const Handoff& h);
  /// With state (needs_state_): closes the windows the watermark allows (their rows join
  /// `work->rows`) and serializes the state to store.
  void AdvanceEventTime(CheckpointWork* work);
  /// Writes the dead letters (to the file, if any) and commits `work` to the sink, retrying
  /// until it succeeds, the stop is forced or the drain expires, or the sink refuses for good.
  Status CommitWithRetries(CheckpointWork* work, bool final, int64_t* sink_rejected_total);
  /// The sink's view of `work`, with every position handed over so far.
  ::sluice::Checkpoint MakeSinkCheckpoint(CheckpointWork* work, bool final,
                                          int64_t dead_letter_length);
  /// After a commit: records what is committed (positions, event times), wakes the waiters
  /// and tells the workers.
  void PublishCommitted(const CheckpointWork& work);
  /// Forgets the revoked partitions' committed positions and wakes whoever waits for the
  /// work's epoch.
  void MarkCommitted(const CheckpointWork& work);
  /// Adds a committed checkpoint to the run's statistics.
  void RecordCheckpointStats(const CheckpointWork& work, int64_t sink_rejected_total,
                             int64_t duration_micros);
  /// The checkpoint being collected while a commit runs (null: none).
  std::unique_ptr<CheckpointWork> pending_;  // coordinator thread
  /// The commit in flight on the committer thread (valid() while one is).
  std::future<Status> commit_;  // coordinator thread
  bool collected_while_committing_ = false;  ///< pending_ got a collection during commit_
  std::atomic<int64_t> collections_while_committing_{0};
  std::atomic<int64_t> split_with_one_state_warnings_{0};
  /// Loads the event-time state of the last run from the sink (append mode, lateness).
  Status RestoreWindowState();
  /// Folds the workers' per-partition event-time reports into the pipeline's clock, closes the
  /// windows the minimum over all partitions' watermarks allows (append mode; all of them at the
  /// end of a bounded input), publishes the closed bound to the workers and returns the rows.
  /// Append mode on tasks: the windows of the tasks in `close_tasks` only (those this process
  /// owns, or releases with this checkpoint), and `row_partitions` gets each row's partition.
  std::vector<std::vector<Value>> AdvanceWindows(std::vector<DeltaRow>&& deltas, bool* all_ended,
                                                 const std::set<int32_t>& close_tasks = {},
                                                 std::vector<int32_t>* row_partitions = nullptr);
  /// Reads the committed position of one partition from the sink (worker threads, on
  /// assignment). While the sink cannot be read it waits and retries, never guesses: another
  /// process may have moved the position. Only a stop ends the wait (positions_uncertain_).
  std::optional<int64_t> LookupCommitted(const std::string& source, int32_t partition);
  /// --reset-source: replaces the loaded positions of that source by kForgottenPosition, which
  /// the next checkpoints store until the source has new ones.
  Status ForgetSourcePositions();
  /// Tasks: claims the task of `partition` for worker `worker` (its source assigned the
  /// partition, or opened it), hands the worker the task's held records and event-time
  /// progress, and returns the committed position as LookupCommitted does. Retried while the
  /// sink cannot be read, like LookupCommitted.
  std::optional<int64_t> ClaimPartition(size_t worker, const std::string& source, int32_t partition);
  /// Tasks: adds to `cp` a TaskCommit for every task of `work` this process owns (under
  /// sink_mu_). Append mode on tasks: fills `row_tasks` with each row's index into cp->tasks
  /// and points cp->row_tasks at it. Stage one: fills `stage_one` (one output per task) and
  /// points cp->stage_one at it; fails (kInternal) when `work` holds partials of a task not
  /// committed here (AssignStageOnePartials): the checkpoint is not committed.
  Status AddTaskCommits(const CheckpointWork& work, ::sluice::Checkpoint* cp,
                        std::vector<uint32_t>* row_tasks, std::vector<StageOneOutput>* stage_one);
  /// Tasks: reads every task's committed progress from the sink (under sink_mu_) into
  /// remote_progress_, for the tasks other processes own.
  void ReadRemoteProgress();
  /// Append mode on tasks with a group-managed source: ReadRemoteProgress() (taking sink_mu_)
  /// before a collection that releases tasks (a revoke, the final checkpoint), so their
  /// windows close by the others' progress as committed now.
  void ReadRemoteProgressBeforeRelease();
  /// Tasks: feeds the other processes' committed progress read since into the clock.
  void FoldRemoteProgress();
  /// Tasks: partitions a worker lost (SourceContext::drop_lost). Waits for the commit in
  /// flight, then forgets their tasks, positions and states, so no later checkpoint carries
  /// them. kFenced when what was handed over of them is not all committed (their records are
  /// merged into the pending checkpoint's results and cannot be taken out alone): the run then
  /// starts again from the committed state, as after a fenced commit.
  Status DropLostTasks(const std::vector<int32_t>& lost);
  /// Tasks: the progress and state of each task in `owned` (as read under claims_mu_) and of
  /// each task `work` releases, into `work`.
  void CollectTaskStates(CheckpointWork* work, std::set<int32_t> owned);
  /// Append mode on tasks: the open windows of `partition`'s task (created empty).
  Aggregator& TaskOpen(int32_t partition);
  /// Reads the committed positions of every partition of `source` from the sink.
  std::map<int32_t, int64_t> LookupAllCommitted(const std::string& source);
  /// Counts the stored dead letters by reason (the sink's CountDeadLetters(), or the
  /// dead-letter file) into stored_letters_. Called at start and by UpdateStoredDeadLetters.
  void LoadStoredDeadLetters();
  /// After a successful commit (`committed_letters`: it stored dead letters): counts them again
  /// when they changed, at most every max(5 s, 20 counting times), and always on the `final`
  /// checkpoint.
  void UpdateStoredDeadLetters(bool committed_letters, bool final);

  PipelineConfig config_;
  RunOptions options_;
  std::unique_ptr<Plan> plan_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<DimensionRefresher> refresher_;  ///< null when no dimension refreshes
  std::unique_ptr<DeadLetterFile> dead_letters_;  ///< null when the sink stores dead letters
  std::string dead_letter_path_;                  ///< empty when the sink stores dead letters
  std::string dead_letter_key_;  ///< positions-table source name of its committed length
  std::vector<std::unique_ptr<WorkerCounters>> counters_;
  std::vector<std::atomic<int64_t>> step_counts_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::map<std::pair<std::string, int32_t>, int64_t> loaded_;     ///< the sink's, at start
  /// What this process wrote; written by the coordinator under sink_mu_, read by worker threads
  /// (LookupCommitted) under it.
  std::map<std::pair<std::string, int32_t>, int64_t> committed_;
  std::map<std::pair<std::string, int32_t>, int64_t> positions_;  ///< latest handed over
  bool forgetting_ = false;  ///< --reset-source: the sink's positions of the source are stale
  std::set<int32_t> reset_written_;  ///< ... except these partitions', written by this run (sink_mu_)
  /// --reset-source: the input's next generation by generation partition
  /// (kGenerationPartitionBase + p), answered for the source until this run commits; set at
  /// start, read-only afterwards.
  std::map<int32_t, int64_t> reset_generations_;
  int64_t epoch_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex sink_mu_;  ///< the sink is used by the coordinator and by rebalance callbacks
  std::mutex epoch_mu_;
  std::condition_variable epoch_cv_;
  int64_t committed_epoch_ = 0;   // guarded by epoch_mu_
  int64_t requested_epoch_ = 0;   // guarded by epoch_mu_: an urgent checkpoint is wanted
  bool failing_ = false;          // guarded by epoch_mu_
  std::atomic<bool> force_stop_{false};
  /// Steady-clock micros of the first stop (RequestStop, or a worker's failure); 0 before.
  std::atomic<int64_t> stop_started_micros_{0};
  std::atomic<bool> abandoned_{false};
  /// Set when a partition was assigned while stopping and the sink could not be read: its
  /// position is a guess, so no checkpoint is committed after that.
  std::atomic<bool> positions_uncertain_{false};
  /// Notes when stopping began (once).
  void MarkStopping();
  /// True when a stop began more than shutdown_timeout ago.
  bool DrainExpired() const;
  /// Gives up draining: marks the runner abandoned and returns the error that says so. Ends a stop whose draining ran out of time. `commit_in_flight`: a commit may still land, so
  /// rebalance callbacks waiting for a checkpoint are not released (see runner.cc).
  Status Abandon(const std::string& where, bool commit_in_flight);
  bool CommitInFlight() const;  ///< coordinator thread only

  // Event time, owned by the coordinator thread.
  bool needs_state_ = false;          ///< append mode or lateness: state goes with each commit
  std::unique_ptr<Aggregator> open_;  ///< append mode: groups of windows not closed yet
  WindowState window_;                ///< watermark, closed bound, max event times (open_ apart)
  /// Every partition's event-time progress (with an [aggregate]).
  std::unique_ptr<PipelineClock> clock_;
  /// (source, partition) -> highest event time as last committed (restored at start, then what
  /// this process committed): a worker that is assigned a partition starts from it, so the
  /// partition's own watermark survives a restart and a rebalance. Read by worker threads.
  std::map<std::pair<std::string, int32_t>, int64_t> committed_event_times_;  // guarded by event_mu_
  mutable std::mutex event_mu_;
  struct WorkerReport {
    int64_t enforced = kNoWatermark;  ///< the closed bound it had applied at its last handoff
    bool ended = false;               ///< its bounded input is exhausted
    std::set<int32_t> reading;        ///< the partitions it reads now (group-managed sources)
    std::set<int32_t> input;          ///< every partition of the input it knows of
  };
  std::vector<WorkerReport> reports_;
  /// A pipeline whose state is one for all its processes (append mode, or a sink without tasks)
  /// warns when other members of its group read part of its input: since when this process
  /// reads only part of it (0: it reads all), and when it last warned.
  int64_t partial_since_micros_ = 0;
  int64_t partial_warned_micros_ = 0;
  void WarnIfSplitWithOneState(int64_t now);
  std::vector<std::vector<HeldRecord>> held_by_worker_;  ///< each worker's held records, last handoff
  /// Tasks: held records handed to a worker with a claim (batch number, records), per worker,
  /// until a handoff of that worker includes them: a checkpoint collected in between stores
  /// them from here, so the claimed task's state never goes out without them.
  std::vector<std::vector<std::pair<int64_t, std::vector<HeldRecord>>>> claimed_held_;  // claimed_held_mu_
  std::mutex claimed_held_mu_;
  std::vector<HeldRecord> restored_held_;                ///< from the last run, until Start()

  // Tasks (tasks_): state and ownership per partition of the source.
  bool tasks_ = false;
  /// Append mode on tasks ([source] keyed_by): every group's records are in one partition, so
  /// each task keeps its own open windows and emits them; open_ is null then.
  bool append_tasks_ = false;
  /// Stage one of a repartitioned pipeline (RunOptions::stage_one): tasks, per-partition
  /// aggregates drained at every checkpoint; open_ is null and append_tasks_ false.
  bool stage_one_ = false;
  /// Stage one with until_caught_up: partitions whose worker's source reached its end (their
  /// controls carry `end`). Coordinator thread.
  std::set<int32_t> ended_partitions_;
  /// Coordinator: each task's open windows, and the bound up to which its windows are emitted
  /// (TaskState::emitted_before). A released task's are dropped with the collection that
  /// releases it.
  std::map<int32_t, std::unique_ptr<Aggregator>> task_open_;
  std::map<int32_t, int64_t> task_emitted_;
  /// Stage two (RunOptions::stage_two; append_tasks_ is true too): each task's merge, in place
  /// of task_open_ and task_emitted_ (coordinator thread).
  bool stage_two_ = false;
  std::map<int32_t, std::unique_ptr<StageTwoMerge>> stage_two_tasks_;
  /// Stage two: the merge of `partition`'s task (created empty).
  StageTwoMerge& StageTwoFor(int32_t partition);
  /// Stage two: feeds the records of `work` to their tasks' merges and takes their dead
  /// letters into `work`. An error (a record the merge refuses) fails the run.
  Status FeedStageTwo(CheckpointWork* work);
  /// A task's open windows and emitted bound as claimed, until the coordinator takes them.
  struct ClaimedWindows {
    std::vector<DeltaRow> open;
    int64_t emitted_before = kNoWatermark;
    std::vector<RepartitionControl> upstreams;  ///< stage two: the upstream vector
  };
  std::map<int32_t, ClaimedWindows> claimed_windows_;  // guarded by claims_mu_
  /// Stage one: the bound each task's claim published to its worker (its last owner's enforced
  /// bound, which that owner's controls may have carried): the floor of the task's controls
  /// from the claim on, also before the worker's first handoff that reports the task.
  std::map<int32_t, int64_t> claimed_control_floor_;  // guarded by claims_mu_
  /// Coordinator: partition -> the epoch of the collection that released its task, until that
  /// epoch is committed.
  std::map<int32_t, int64_t> released_at_;
  std::atomic<bool> group_managed_{false};  ///< the source's partitions are handed out by a group
  struct OwnedTask {
    int64_t fence = 0;
    size_t worker = 0;
    std::string committed_state;  ///< the state as stored (to skip writing it unchanged)
  };
  /// Partition of the pipeline's source -> the task this process claimed. Guarded by sink_mu_.
  std::map<int32_t, OwnedTask> owned_;
  /// The partitions of owned_, for the coordinator without waiting for a commit's sink_mu_.
  std::set<int32_t> owned_partitions_;  // guarded by claims_mu_
  std::mutex claims_mu_;
  /// The highest enforced bound of a task claimed: the workers judge lateness at least by it.
  std::atomic<int64_t> claimed_enforced_{kNoWatermark};
  /// Coordinator: the latest progress each worker reported per partition, and the bound it
  /// enforced then.
  std::map<int32_t, std::pair<PartitionProgress, int64_t>> partition_progress_;
  std::map<int32_t, std::string> last_task_states_;  ///< coordinator: as last collected
  /// Stage one, coordinator: each task's control watermark as last collected
  /// (CheckpointWork::stage_one_watermarks); a change is committed even with nothing else new.
  std::map<int32_t, int64_t> last_control_watermarks_;
  /// Other processes' tasks' committed progress, read after each commit.
  std::vector<TaskRow> remote_progress_;  // guarded by remote_mu_
  bool remote_progress_fresh_ = false;    // guarded by remote_mu_
  std::mutex remote_mu_;
  /// A claimed task whose state cannot be used (another [aggregate]): the run fails with it.
  Status claim_error_;  // guarded by epoch_mu_

  /// The dead letters in the store by reason (guarded by stats_mu_); valid when
  /// stored_letters_known_. stored_letters_unreadable_: the sink cannot be read back.
  std::map<std::string, int64_t> stored_letters_;
  bool stored_letters_known_ = false;    // guarded by stats_mu_
  bool stored_letters_unreadable_ = false;  // coordinator thread only
  bool letters_count_stale_ = false;          // coordinator thread only
  int64_t next_letters_count_micros_ = 0;     // coordinator thread only (steady clock)
  CommitObserver commit_observer_;
  /// Guards counters_, workers_ and step_counts_ against Snapshot() while Start() builds them.
  mutable std::mutex topology_mu_;
  mutable std::mutex stats_mu_;
  PipelineSnapshot stats_;  // guarded by stats_mu_ (coordinator-owned fields)
  /// Partition of the source -> the position and the watermark committed for it last
  /// (PipelineSnapshot::PartitionInfo::committed, watermark_micros). Guarded by stats_mu_.
  std::map<int32_t, std::pair<int64_t, int64_t>> committed_partitions_;
};

/// Records in `PATH.owner` that the dead-letter file `path` belongs to this pipeline and sink,
/// or fails when another pipeline or sink already owns it (its committed length is stored in
/// that sink, so sharing the file would cut back the other's letters). `check_only` only
/// checks, writing nothing (for `sluice validate` and the start of `run`).
Status ClaimDeadLetterFile(const std::string& path, const std::string& pipeline,
                           const std::string& sink, bool check_only = false);

/// The prefix of the source name under which a dead-letter file's committed length is stored
/// ("__dead_letters:" followed by the file's absolute path).
inline constexpr const char* kDeadLetterPositionSource = "__dead_letters";

}  // namespace sluice
