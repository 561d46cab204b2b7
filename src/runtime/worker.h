#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <limits>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/dead_letter.h"
#include "operators/aggregator.h"
#include "operators/batch.h"
#include "operators/column_filter.h"
#include "operators/columnar_decoder.h"
#include "runtime/plan.h"
#include "runtime/repartition_record.h"
#include "runtime/source.h"
#include "runtime/stats.h"
#include "runtime/watermark.h"
#include "runtime/window_state.h"

namespace sluice {

/// A record of a repartition topic read by a stage-two worker (Worker::SetStageTwo), decoded,
/// with its offset in its partition.
struct RepartitionInput {
  RepartitionRecord record;
  int64_t offset = 0;
};

/// What a worker hands to the checkpoint coordinator: everything it produced since its previous
/// handoff, and the positions just after the last record that went into it.
struct Handoff {
  std::vector<DeltaRow> deltas;
  /// With Worker::SetAggregatePerPartition: the deltas by the partition of their records
  /// (`deltas` stays empty).
  std::map<int32_t, std::vector<DeltaRow>> partition_deltas;
  /// With Worker::SetStageTwo: the repartition records read, by partition, in topic order.
  std::map<int32_t, std::vector<RepartitionInput>> stage_two;
  std::vector<std::vector<Value>> rows;
  std::vector<DeadLetter> dead_letters;
  std::map<int32_t, int64_t> positions;  ///< partition -> next offset
  std::vector<int32_t> revoked;          ///< partitions given up; commit, then forget them
  /// Partitions the group took away without a revoke (SourceContext::drop_lost): nothing read
  /// of them is in this or a later handoff; the coordinator drops their tasks uncommitted.
  std::vector<int32_t> lost;
  // Event time (pipelines with an [aggregate]):
  /// Every partition the worker reads now (those in `revoked` included), with its progress up to
  /// `positions`.
  std::map<int32_t, PartitionProgress> progress;
  /// Every partition of the input the source knows of, read by this worker or not (a Kafka
  /// topic's partitions): the pipeline's watermark waits for each.
  std::vector<int32_t> input_partitions;
  /// The closed bound the worker had applied at this handoff: every later record of any of its
  /// partitions is judged late against at least this.
  int64_t enforced = kNoWatermark;
  bool input_ended = false;  ///< its bounded input is exhausted: it will never hold back windows
  /// The source said kEnd (a bounded input's end, or --until-caught-up's end offsets reached),
  /// whether or not that end is final (Source::EndIsFinal).
  bool input_done = false;
  /// Lookups with on_missing = "hold": every record the worker holds now (all of them, each
  /// handoff), which the checkpoint stores since their positions are committed.
  std::vector<HeldRecord> held;
  bool held_reported = false;
  /// How many batches of claimed held records (Worker::AddClaimedHeld) `held` includes: those
  /// added later are not in it yet.
  int64_t claimed_taken = 0;
};

/// Lets a worker ask the coordinator for an immediate checkpoint and wait for it to commit.
class CheckpointRequester {
 public:
  virtual ~CheckpointRequester() = default;
  /// Requests a checkpoint that starts after this call; returns its epoch.
  virtual int64_t RequestCheckpoint() = 0;
  /// Waits until checkpoint `epoch` committed (OK) or the run is failing/stopping (error).
  virtual Status WaitCommitted(int64_t epoch) = 0;
};

/// Runs one shard of a pipeline on its own thread: polls its source instance, decodes, runs the
/// steps and aggregates into state it alone owns. Nothing on this path takes a lock; the only
/// synchronisation is the handoff to the coordinator between batches.
class Worker {
 public:
  Worker(int index, const Plan* plan, std::string source_name, std::unique_ptr<Source> source,
         SourceContext context, WorkerCounters* counters, std::vector<std::atomic<int64_t>>* step_counts,
         CheckpointRequester* requester);
  ~Worker();

  void Start();
  /// Asks the worker to hand over its state for checkpoint `epoch` at its next batch boundary.
  void RequestHandoff(int64_t epoch);
  /// Waits until the worker has handed over `epoch` (or finished, or handed over all it read and
  /// is closing its source, or waits in a rebalance callback), then takes its handoff.
  /// Returns nullopt, taking nothing, when `give_up` (checked every 50 ms) says so first.
  std::optional<Handoff> TakeHandoff(int64_t epoch, const std::function<bool()>& give_up);
  /// Tells the worker what the sink now holds; it passes its own partitions on to the source
  /// (Source::OnCommitted) on its thread.
  void NotifyCommitted(const std::map<int32_t, int64_t>& positions);
  /// Passes on the coordinator's closed bound: windows whose end plus the allowed lateness is at
  /// or before it are closed, and every record for them is late. Only ever grows.
  void PublishClosedBound(int64_t closed_before);
  /// Supplies the committed highest event time of a partition (restored state, or what this
  /// process committed for it before a rebalance took it away), so a partition assigned to the
  /// worker starts from its own committed watermark.
  void SetRestoredEventTimes(std::function<std::optional<int64_t>(int32_t)> lookup) {
    restored_event_time_ = std::move(lookup);
  }
  /// Gives the worker records held by an earlier run (before Start()).
  void RestoreHeld(std::vector<HeldRecord> held) { held_ = std::move(held); }
  /// Held records belong to their partition's task (before Start()): a partition given up in a
  /// rebalance takes its held records along (they go with the checkpoint that releases it, and
  /// its next owner gets them with its claim), so the worker drops them after that handoff.
  void SetHeldPerPartition(bool on) { held_per_partition_ = on; }
  /// Aggregates each partition's records apart and hands the deltas over by partition
  /// (Handoff::partition_deltas), before Start(): append mode keeps its open windows per task
  /// when the source is keyed by group key ([source] keyed_by).
  void SetAggregatePerPartition(bool on) { per_partition_ = on; }
  /// Stage two of a repartitioned pipeline (before Start()): the source is the repartition
  /// topic, whose records bypass decoding, the steps and the aggregate: each is decoded with
  /// DecodeRepartitionValue for `spec` and handed over by partition (Handoff::stage_two). A
  /// record that does not decode (another [aggregate]'s, or corrupt) ends the worker with the
  /// codec's error, before the record's position is handed over.
  void SetStageTwo(const AggregateSpec* spec) { stage_two_spec_ = spec; }
  /// A partition the group takes away without a revoke (SourceContext::drop_lost) is dropped
  /// uncommitted (before Start(); tasks only). Off: the loss takes the revoke way.
  void SetDropsLost(bool on) { drops_lost_ = on; }
  /// Adds the held records of a partition's task just claimed for this worker. Any thread; the
  /// worker takes them before its next record and its next handoff. Returns the batch's number
  /// (1, 2, ...; 0 when `held` is empty): a handoff whose `claimed_taken` is at least that
  /// includes them.
  int64_t AddClaimedHeld(std::vector<HeldRecord> held);
  /// Asks the worker to stop after its current batch (it hands over what it has).
  void RequestStop();
  bool finished() const { return finished_.load(); }
  /// True when the source's Open() failed: nothing was read.
  bool setup_failed() const { return setup_failed_.load(); }
  /// True when the worker took the columnar path (runtime/columnar.h); read after finished().
  bool columnar() const { return columnar_ != nullptr; }
  /// Returns the error that stopped the worker, if any.
  Status error() const;
  /// Returns per-partition positions and lag, for monitoring: the source's ReadPositions()
  /// when it reports them (Kafka: from assignment on, as read), else the positions handed over
  /// at the last checkpoint request with the source's Lag().
  std::vector<PipelineSnapshot::PartitionInfo> Partitions() const;
  /// Returns the source's own counters (Source::Counters()); callable from any thread while
  /// the worker exists.
  std::vector<SourceCounter> SourceCounters() const { return source_->Counters(); }

 private:
  void Run();
  Status Setup();
  void ProcessBatch();
  /// The record being processed: from the batch, or a held record retried.
  struct Current {
    std::string_view payload;
    int32_t partition;
    int64_t offset;
  };
  void Process(size_t i);
  /// SetStageTwo: decodes record `i` into pending_.stage_two, or sets stage_two_error_.
  void ProcessStageTwo(size_t i);
  /// The columnar path (runtime/columnar.h): record `i` of a batch that ProcessBatch() decoded
  /// into columns_ runs the steps and the aggregate like Process(const Current&).
  void ProcessColumnar(size_t i, const Current& record);
  /// Makes record `i`'s row from the columns and runs the steps from `first` on, then the
  /// aggregate or the output (the columnar path's records that need a row).
  void ProcessRow(size_t i, const Current& record, size_t first);
  /// Counts, dead-letters or observes what adding a record to the aggregate gave.
  void Aggregated(const Current& record, Aggregator::AddResult result, int64_t event_time,
                  const std::string& null_key, int64_t late_windows);
  /// Runs one record through the pipeline: decode, steps, then the aggregate or the output.
  void Process(const Current& record);
  // The steps of Process(). Each returns false when the record goes no further (ignored,
  // dead-lettered or held; counted).
  /// Decodes the record's declared fields into `row` and sets _source, _partition, _offset.
  bool DecodeInto(const Current& record, std::span<Value> row);
  /// Applies the plan's steps (operators/step.h) from step `first` on to `row` in order.
  bool RunSteps(const Current& record, std::span<Value> row, size_t first = 0);
  /// Counts and carries out what step `k` said other than kContinue (ignore, dead-letter,
  /// hold, a lookup's miss); returns whether the record goes on.
  bool Divert(size_t k, Step::Outcome outcome, const Current& record);
  /// Adds the row to the worker's aggregator (late, timeless and null-keyed rows are
  /// dead-lettered).
  void AddToAggregate(const Current& record, std::span<Value> row);
  /// The aggregator the records of `partition` go to (per_partition_: its own).
  Aggregator* AggregatorFor(int32_t partition);
  /// Appends the output row (the select columns, or the declared fields) to the pending rows.
  void AppendOutputRow(std::span<const Value> row);
  void DeadLetter(const Current& record, std::string reason);
  /// Adds the per-record counts gathered since the last flush to the shared counters.
  void FlushCounters();
  void HandOver(const std::vector<int32_t>& revoked = {});
  /// Publishes source_->ReadPositions() for Partitions(), at most every 200 ms unless forced.
  void PublishReadPositions(bool force);
  /// Folds the aggregators' staged records (Aggregator::size()): worker thread only.
  size_t PendingSize();
  Status CheckpointBeforeRevoke(const std::vector<int32_t>& revoked);
  /// SourceContext::drop_lost: drops what was read of `lost` since the last handoff (and an
  /// untaken handoff), hands the loss to the coordinator and waits until it took it. False when
  /// the worker holds work of partitions that are not lost (mixed in its aggregator).
  Result<bool> DropLost(const std::vector<int32_t>& lost);
  /// Returns the bound a record of `partition` is judged late against: its own watermark, or
  /// the closed bound when that is higher.
  int64_t LateBefore(int32_t partition);
  void TrackPartition(int32_t partition);
  void RefreshSnapshots();
  /// Processes the held records again; those still missing their key stay held.
  void RetryHeld();
  /// Moves the held records of tasks claimed since (AddClaimedHeld) into held_.
  void TakeClaimedHeld();

  const int index_;
  const Plan* plan_;
  const std::string source_name_;
  std::unique_ptr<Source> source_;
  SourceContext context_;
  /// The generation of each partition committed in the sink (kGenerationPartitionBase + p, 0
  /// when none), read at its first dead letter: a source that keeps none itself (a table after
  /// --reset-source) gets its dead letters stamped with it.
  std::map<int32_t, int64_t> stored_generations_;
  WorkerCounters* counters_;
  std::vector<std::atomic<int64_t>>* step_counts_;
  CheckpointRequester* requester_;

  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Aggregator> aggregator_;
  /// per_partition_: one aggregator per partition read since the last handoff.
  bool per_partition_ = false;
  const AggregateSpec* stage_two_spec_ = nullptr;
  Status stage_two_error_;  ///< the first record SetStageTwo could not decode
  std::map<int32_t, std::unique_ptr<Aggregator>> partition_aggregators_;
  Aggregator* current_aggregator_ = nullptr;  ///< of current_aggregator_partition_
  int32_t current_aggregator_partition_ = -1;
  /// Set when the plan takes the columnar path (runtime/columnar.h); null on the row path.
  std::unique_ptr<ColumnarDecoder> columnar_;
  ColumnBatch columns_;
  std::vector<ColumnStep> column_steps_;  ///< the leading steps, over the columns
  size_t first_row_step_ = 0;             ///< the columnar path: the first step run per row
  /// Set when every step runs over the columns and the aggregate reads them too: such records
  /// make no row (Aggregator::AddColumns).
  std::unique_ptr<AggregateColumns> aggregate_columns_;
  RawBatch batch_;
  std::vector<Value> row_;
  Value source_kind_;
  Handoff pending_;  ///< what is being accumulated (owned by the worker thread)
  std::vector<std::shared_ptr<const DimensionTable>> snapshots_;  ///< per lookup step, this batch
  StepContext step_context_;  ///< what the steps get per record (reused: no allocation)
  std::unique_ptr<WatermarkTracker> clocks_;
  bool lateness_ = false;            ///< the pipeline dead-letters late records
  int64_t closed_before_seen_ = kNoWatermark;  ///< closed_before_ as read at the batch's start
  int64_t now_micros_ = 0;           ///< steady clock, read once per batch
  int32_t last_partition_ = -1;
  bool input_ended_ = false;
  bool input_done_ = false;  ///< the source returned kEnd (held records may still be pending)
  std::vector<HeldRecord> held_;
  bool held_per_partition_ = false;
  bool drops_lost_ = false;
  std::atomic<bool> claimed_held_waiting_{false};
  std::vector<HeldRecord> claimed_held_;  // guarded by mu_
  int64_t claimed_added_ = 0;             // guarded by mu_: batches given by AddClaimedHeld
  int64_t claimed_taken_ = 0;             // guarded by mu_: ... of which moved into held_
  int64_t unflushed_aggregated_ = 0;
  int64_t unflushed_max_event_time_ = std::numeric_limits<int64_t>::min();
  bool retrying_ = false;     ///< processing a held record again
  int64_t retry_deadline_ = 0;
  bool keep_holding_ = false;  ///< set by a retry whose key is still missing
  int64_t next_retry_micros_ = 0;
  /// With until_caught_up: when the source's reads started failing without a success since.
  std::optional<std::chrono::steady_clock::time_point> failing_since_;
  std::function<std::optional<int64_t>(int32_t)> restored_event_time_;
  std::atomic<int64_t> closed_before_{kNoWatermark};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int64_t> requested_epoch_{0};
  int64_t handed_epoch_ = 0;  // guarded by mu_
  bool in_callback_ = false;  // guarded by mu_: waiting inside a rebalance callback
  bool closing_ = false;  // guarded by mu_; all read is handed over, the source is closing
  std::map<int32_t, int64_t> committed_to_report_;  // guarded by mu_
  Handoff outbox_;            // guarded by mu_
  std::map<int32_t, int64_t> reported_positions_;  // guarded by mu_
  std::vector<std::pair<int32_t, int64_t>> reported_lag_;  // guarded by mu_
  /// The source's ReadPositions() as last published (a few times a second, and once more
  /// before the source closes, so a finished worker keeps where it ended).
  std::vector<PipelineSnapshot::PartitionInfo> read_positions_;  // guarded by mu_
  bool read_positions_known_ = false;  // guarded by mu_: the source reports ReadPositions()
  std::chrono::steady_clock::time_point next_read_positions_{};  ///< worker thread only
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> setup_failed_{false};
  Status error_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sluice
