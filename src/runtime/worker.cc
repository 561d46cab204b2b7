#include "runtime/worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "core/time.h"
#include "runtime/columnar.h"

namespace sluice {
namespace {

constexpr size_t kBatchRecords = 4096;
constexpr auto kPollBudget = std::chrono::milliseconds(100);

constexpr int64_t kHeldRetryMicros = 200'000;

}  // namespace

Worker::Worker(int index, const Plan* plan, std::string source_name, std::unique_ptr<Source> source,
               SourceContext context, WorkerCounters* counters,
               std::vector<std::atomic<int64_t>>* step_counts, CheckpointRequester* requester)
    : index_(index),
      plan_(plan),
      source_name_(std::move(source_name)),
      source_(std::move(source)),
      context_(std::move(context)),
      counters_(counters),
      step_counts_(step_counts),
      requester_(requester) {
  context_.checkpoint_before_revoke = [this](const std::vector<int32_t>& revoked) {
    return CheckpointBeforeRevoke(revoked);
  };
  context_.drop_lost = [this](const std::vector<int32_t>& lost) { return DropLost(lost); };
}

Worker::~Worker() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

void Worker::Start() { thread_ = std::thread([this] { Run(); }); }

void Worker::RequestHandoff(int64_t epoch) {
  requested_epoch_.store(epoch);
}

void Worker::PublishClosedBound(int64_t closed_before) {
  int64_t have = closed_before_.load();
  while (closed_before > have && !closed_before_.compare_exchange_weak(have, closed_before)) {
  }
}

int64_t Worker::LateBefore(int32_t partition) {
  // The partition's own watermark: how far the other partitions are does not matter (issue 16).
  // The closed bound only rises above it for windows an idle partition no longer held back.
  closed_before_seen_ = std::max(closed_before_seen_, closed_before_.load(std::memory_order_relaxed));
  return std::max(closed_before_seen_, clocks_->PartitionWatermark(partition));
}

void Worker::TrackPartition(int32_t partition) {
  last_partition_ = partition;
  if (clocks_->Tracks(partition)) return;
  if (restored_event_time_) {
    if (auto t = restored_event_time_(partition)) {
      clocks_->Restore(partition, *t, now_micros_);
      return;
    }
  }
  clocks_->Track(partition, now_micros_);
}

void Worker::RequestStop() {
  stop_.store(true);
  cv_.notify_all();
}

void Worker::NotifyCommitted(const std::map<int32_t, int64_t>& positions) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [p, o] : positions) {
    if (reported_positions_.count(p)) committed_to_report_[p] = o;
  }
}

Status Worker::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

std::optional<Handoff> Worker::TakeHandoff(int64_t epoch, const std::function<bool()>& give_up) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(50),
                       [&] { return handed_epoch_ >= epoch || finished_.load() || in_callback_ || closing_; })) {
    if (give_up()) return std::nullopt;
  }
  Handoff out = std::move(outbox_);
  outbox_ = Handoff();
  return out;
}

std::vector<PipelineSnapshot::PartitionInfo> Worker::Partitions() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (read_positions_known_) return read_positions_;
  std::vector<PipelineSnapshot::PartitionInfo> out;
  for (const auto& [p, pos] : reported_positions_) {
    if (p >= kIdentityPartitionBase) continue;  // what the source stores to recognise its input
    int64_t lag = -1;
    for (const auto& [lp, l] : reported_lag_) {
      if (lp == p) lag = l;
    }
    out.push_back({p, pos, lag, -1});
  }
  return out;
}

void Worker::PublishReadPositions(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now < next_read_positions_) return;
  next_read_positions_ = now + std::chrono::milliseconds(200);
  std::vector<Source::ReadPosition> read = source_->ReadPositions();
  std::vector<PipelineSnapshot::PartitionInfo> out;
  out.reserve(read.size());
  for (const auto& r : read) {
    out.push_back({r.partition, r.position,
                   r.end >= 0 ? std::max<int64_t>(0, r.end - r.position) : -1, r.end});
    if (auto name = source_->NamePartition(r.partition)) {
      out.back().input = std::move(name->input);
      out.back().input_partition = name->partition;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  // A source that never reported a partition keeps the checkpoint-time report (file, table).
  if (out.empty() && !read_positions_known_) return;
  read_positions_known_ = true;
  read_positions_ = std::move(out);
}

size_t Worker::PendingSize() {
  size_t groups = aggregator_ ? aggregator_->size() : 0;
  for (const auto& [p, a] : partition_aggregators_) groups += a->size();
  for (const auto& [p, list] : pending_.stage_two) groups += list.size();
  return groups + pending_.rows.size() + pending_.dead_letters.size();
}

Aggregator* Worker::AggregatorFor(int32_t partition) {
  if (!per_partition_) return aggregator_.get();
  if (current_aggregator_ && partition == current_aggregator_partition_) return current_aggregator_;
  std::unique_ptr<Aggregator>& a = partition_aggregators_[partition];
  if (!a) a = std::make_unique<Aggregator>(plan_->aggregate.get());
  current_aggregator_ = a.get();
  current_aggregator_partition_ = partition;
  return current_aggregator_;
}

Status Worker::Setup() {
  if (Status open = source_->Open(context_); !open.ok()) {
    setup_failed_.store(true);
    return open;
  }
  ASSIGN_OR_RETURN(decoder_, MakeDecoder(source_->decoder_options(), plan_->input));
  if (auto header = source_->Header()) {
    Status s = decoder_->SetHeader(*header);
    if (!s.ok()) return s.WithContext("source " + source_name_);
  }
  std::string row_path_reason = "SLUICE_COLUMNAR=0";
  if (stage_two_spec_) {
    row_path_reason = "stage two: records bypass decoding";
  } else if (ColumnarWanted()) {
    row_path_reason = ColumnarIneligibility(*plan_, source_->decoder_options());
    if (row_path_reason.empty()) {
      const std::optional<std::string> header = source_->Header();
      std::optional<std::string_view> header_view;
      if (header) header_view = *header;
      ASSIGN_OR_RETURN(columnar_,
                       MakeColumnarDecoder(source_->decoder_options(), plan_->input, header_view));
      if (columnar_) {
        ColumnPrefix prefix = ColumnStepPrefix(*plan_);
        source_kind_ = Value::String(std::string(source_->kind()));
        aggregate_columns_ = AggregateColumnsOf(*plan_, prefix, source_kind_);
        column_steps_ = std::move(prefix.steps);
        columns_.SetDerived(std::move(prefix.derived));
        first_row_step_ = column_steps_.size();
      }
      if (!columnar_) row_path_reason = "no columnar decoder for this input";
    }
  }
  spdlog::debug("source {} (worker {}): the {} path{}", source_name_, index_, columnar_ ? "columnar" : "row",
                columnar_ ? " (" + std::to_string(column_steps_.size()) + " step(s) over columns" +
                                (aggregate_columns_ ? ", the aggregate over columns)" : ")")
                          : " (" + row_path_reason + ")");
  if (plan_->aggregate) {
    const AggregateSpec& spec = *plan_->aggregate;
    aggregator_ = std::make_unique<Aggregator>(&spec);
    clocks_ = std::make_unique<WatermarkTracker>(spec.watermark_delay_micros, spec.idle_timeout_micros);
    lateness_ = spec.allowed_lateness_micros >= 0;
  }
  now_micros_ = SteadyClockMicros();
  row_.assign(plan_->schema.size(), Value());
  snapshots_.resize(plan_->steps.size());
  source_kind_ = Value::String(std::string(source_->kind()));
  return Status::OK();
}

Status Worker::CheckpointBeforeRevoke(const std::vector<int32_t>& revoked) {
  // Hand over first, then ask for the checkpoint: a checkpoint that starts after the request
  // is sure to find this handoff in the outbox.
  HandOver(revoked);
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_callback_ = true;
    cv_.notify_all();
  }
  const int64_t epoch = requester_->RequestCheckpoint();
  Status s = requester_->WaitCommitted(epoch);
  std::lock_guard<std::mutex> lock(mu_);
  in_callback_ = false;
  return s;
}

Result<bool> Worker::DropLost(const std::vector<int32_t>& lost) {
  if (!drops_lost_) return false;
  const std::set<int32_t> gone(lost.begin(), lost.end());
  // The identity positions (a topic's slot, a generation) are the source's, not a partition's.
  auto ours = [&](int32_t p) { return p >= kIdentityPartitionBase || gone.count(p) > 0; };
  // What the worker read since its last handoff is merged in its aggregator, whatever the
  // partition: it can drop it only when every partition it has is lost (as with librdkafka,
  // which loses a member's whole assignment at once).
  for (int32_t p : source_->Partitions()) {
    if (!ours(p)) return false;
  }
  for (const auto& [p, o] : pending_.positions) {
    if (!ours(p)) return false;
  }
  for (const HeldRecord& h : held_) {
    if (!ours(h.partition)) return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const HeldRecord& h : claimed_held_) {
      if (!ours(h.partition)) return false;
    }
    for (const auto& [p, o] : outbox_.positions) {
      if (!ours(p)) return false;
    }
  }
  if (aggregator_) aggregator_->TakeAll();
  partition_aggregators_.clear();  // append mode on tasks: one aggregator per partition
  current_aggregator_ = nullptr;
  if (plan_->aggregate) {
    for (int32_t p : lost) clocks_->Forget(p);
    last_partition_ = -1;
  }
  pending_.deltas.clear();
  pending_.partition_deltas.clear();
  pending_.stage_two.clear();
  pending_.rows.clear();
  pending_.dead_letters.clear();
  pending_.positions.clear();
  held_.clear();
  counters_->held.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // An untaken handoff holds only these partitions' work too (an earlier revoke's was
    // committed before its callback returned).
    outbox_.deltas.clear();
    outbox_.partition_deltas.clear();
    outbox_.stage_two.clear();
    outbox_.rows.clear();
    outbox_.dead_letters.clear();
    outbox_.positions.clear();
    for (int32_t p : lost) {
      outbox_.progress.erase(p);
      outbox_.lost.push_back(p);
      reported_positions_.erase(p);
    }
    claimed_held_.clear();
    claimed_held_waiting_.store(false);
    claimed_taken_ = claimed_added_;
    if (plan_->holds) {
      outbox_.held.clear();
      outbox_.held_reported = true;
      outbox_.claimed_taken = claimed_taken_;
    }
    in_callback_ = true;
    cv_.notify_all();
  }
  // The coordinator takes the loss with its next collection (it does not wait for a handoff
  // while this callback runs); from then on no checkpoint carries these partitions.
  const int64_t epoch = requester_->RequestCheckpoint();
  Status s = requester_->WaitCommitted(epoch);
  std::lock_guard<std::mutex> lock(mu_);
  in_callback_ = false;
  if (!s.ok()) return s;
  return true;
}

int64_t Worker::AddClaimedHeld(std::vector<HeldRecord> held) {
  if (held.empty()) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& h : held) claimed_held_.push_back(std::move(h));
  claimed_held_waiting_.store(true);
  return ++claimed_added_;
}

void Worker::TakeClaimedHeld() {
  if (!claimed_held_waiting_.load()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& h : claimed_held_) held_.push_back(std::move(h));
    claimed_held_.clear();
    claimed_held_waiting_.store(false);
    claimed_taken_ = claimed_added_;
  }
  next_retry_micros_ = 0;  // retried at once: the key may have come meanwhile
  counters_->held.store(static_cast<int64_t>(held_.size()), std::memory_order_relaxed);
}

void Worker::HandOver(const std::vector<int32_t>& revoked) {
  // A task claimed since the last handoff: its held records are this worker's to report now.
  TakeClaimedHeld();
  if (aggregator_) {
    std::vector<DeltaRow> rows = aggregator_->TakeAll();
    if (pending_.deltas.empty()) {
      pending_.deltas = std::move(rows);
    } else {
      for (auto& r : rows) pending_.deltas.push_back(std::move(r));
    }
    for (auto& [p, a] : partition_aggregators_) {
      std::vector<DeltaRow> taken = a->TakeAll();
      if (taken.empty()) continue;
      std::vector<DeltaRow>& to = pending_.partition_deltas[p];
      for (auto& r : taken) to.push_back(std::move(r));
    }
    // A partition given up keeps no aggregator here (its open windows go with its task).
    for (int32_t p : revoked) partition_aggregators_.erase(p);
    current_aggregator_ = nullptr;
    current_aggregator_partition_ = -1;
    now_micros_ = SteadyClockMicros();
    // Every partition the source reads now is tracked from its assignment, not from the first
    // batch that holds a record of this worker: a partition that never delivers one is reported
    // (and goes idle after the idle timeout) instead of being known to nobody here.
    for (int32_t p : source_->Partitions()) {
      if (p < kIdentityPartitionBase && !clocks_->Tracks(p)) TrackPartition(p);
    }
    clocks_->Advance(now_micros_);
    // From here on every record is judged against at least this bound, which the coordinator
    // may rely on when it emits windows an idle partition no longer holds back.
    closed_before_seen_ = std::max(closed_before_seen_, closed_before_.load());
    pending_.progress = clocks_->Progress();
    pending_.enforced = closed_before_seen_;
    pending_.input_partitions.clear();
    for (int32_t p : source_->InputPartitions()) {
      if (p < kIdentityPartitionBase) pending_.input_partitions.push_back(p);
    }
    for (int32_t p : revoked) clocks_->Forget(p);
    last_partition_ = -1;
  }
  std::lock_guard<std::mutex> lock(mu_);
  // The coordinator takes every handoff before requesting the next, so outbox_ is empty unless
  // it is a stop after an untaken handoff; merge rather than overwrite in that case.
  for (auto& d : pending_.deltas) outbox_.deltas.push_back(std::move(d));
  for (auto& [p, list] : pending_.partition_deltas) {
    std::vector<DeltaRow>& to = outbox_.partition_deltas[p];
    for (auto& d : list) to.push_back(std::move(d));
  }
  pending_.partition_deltas.clear();
  for (auto& [p, list] : pending_.stage_two) {
    std::vector<RepartitionInput>& to = outbox_.stage_two[p];
    for (auto& r : list) to.push_back(std::move(r));
  }
  pending_.stage_two.clear();
  for (auto& r : pending_.rows) outbox_.rows.push_back(std::move(r));
  for (auto& d : pending_.dead_letters) outbox_.dead_letters.push_back(std::move(d));
  for (const auto& [p, o] : pending_.positions) outbox_.positions[p] = o;
  if (aggregator_) {
    // An untaken earlier handoff may list partitions given up since: keep their progress.
    for (const auto& [p, pr] : pending_.progress) outbox_.progress[p] = pr;
    outbox_.input_partitions = pending_.input_partitions;
    outbox_.enforced = pending_.enforced;
  }
  outbox_.input_ended = input_ended_;
  outbox_.input_done = input_done_;
  if (plan_->holds) {
    outbox_.held = held_;
    outbox_.held_reported = true;
    outbox_.claimed_taken = claimed_taken_;
    if (held_per_partition_ && !revoked.empty()) {
      // They go with this handoff's checkpoint, which releases their partitions' tasks.
      std::erase_if(held_, [&](const HeldRecord& h) {
        return std::find(revoked.begin(), revoked.end(), h.partition) != revoked.end();
      });
      counters_->held.store(static_cast<int64_t>(held_.size()), std::memory_order_relaxed);
    }
  }
  for (int32_t p : revoked) {
    outbox_.revoked.push_back(p);
    pending_.positions.erase(p);
  }
  reported_positions_ = pending_.positions;
  reported_lag_ = source_->Lag();
  pending_.deltas.clear();
  pending_.rows.clear();
  pending_.dead_letters.clear();
  handed_epoch_ = requested_epoch_.load();
  cv_.notify_all();
}

void Worker::Run() {
  Status setup = Setup();
  if (!setup.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = setup;
    finished_.store(true);
    cv_.notify_all();
    return;
  }
  TakeClaimedHeld();  // the source's Open claimed its tasks
  int64_t backoff_ms = 100;
  while (!stop_.load()) {
    {
      bool requested;
      std::map<int32_t, int64_t> committed;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requested = requested_epoch_.load() > handed_epoch_;
        committed.swap(committed_to_report_);
      }
      if (!committed.empty()) {
        source_->OnCommitted(std::vector<std::pair<int32_t, int64_t>>(committed.begin(), committed.end()));
      }
      if (requested) HandOver();
    }
    // Above max_pending a worker stops consuming until the coordinator has taken its state: a
    // slow or unreachable sink pauses the source instead of growing memory.
    if (static_cast<int64_t>(PendingSize()) >= plan_->config->max_pending) {
      counters_->backpressure_waits.fetch_add(1, std::memory_order_relaxed);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(50),
                   [&] { return stop_.load() || requested_epoch_.load() > handed_epoch_; });
      continue;
    }
    if (!held_.empty() && SteadyClockMicros() >= next_retry_micros_) {
      RefreshSnapshots();
      RetryHeld();
    }
    if (input_done_) {
      // The input is exhausted; held records wait for their key or their deadline.
      if (held_.empty()) break;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(50),
                   [&] { return stop_.load() || requested_epoch_.load() > handed_epoch_; });
      continue;
    }
    batch_.Clear();
    auto state = source_->Poll(&batch_, kBatchRecords, kPollBudget);
    TakeClaimedHeld();  // a rebalance inside Poll may have claimed tasks
    if (!state.ok() && state.status().code() == StatusCode::kFailedPrecondition) {
      // Permanent (a source file that turned into a directory, say): retrying cannot help.
      counters_->source_errors.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lock(mu_);
      error_ = state.status().WithContext("source " + source_name_);
      break;
    }
    if (!state.ok()) {
      counters_->source_errors.fetch_add(1, std::memory_order_relaxed);
      if (state.status().code() == StatusCode::kAborted && !stop_.load()) {
        // The source gave up (see Source::Poll): the run ends with its error.
        std::lock_guard<std::mutex> lock(mu_);
        error_ = state.status().WithContext("source " + source_name_);
        break;
      }
      if (context_.until_caught_up) {
        // A batch run must end: a source whose reads keep failing for catch_up_timeout fails
        // the run with the server's message.
        const auto now = std::chrono::steady_clock::now();
        if (!failing_since_) failing_since_ = now;
        if (now - *failing_since_ >= context_.catch_up_timeout) {
          std::lock_guard<std::mutex> lock(mu_);
          error_ = Status::Unavailable(
              "--until-caught-up gave up: the reads of source " + source_name_ +
              " kept failing for " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *failing_since_).count()) +
              " s (catch_up_timeout); the last error: " + state.status().ToString());
          break;
        }
      }
      spdlog::warn("source {} (worker {}): {}; retrying in {} ms", source_name_, index_,
                   state.status().ToString(), backoff_ms);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms), [&] { return stop_.load(); });
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
      continue;
    }
    backoff_ms = 100;
    failing_since_.reset();
    if (!batch_.empty() || !batch_.dead_letters().empty()) ProcessBatch();
    if (!stage_two_error_.ok()) {
      counters_->source_errors.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lock(mu_);
      error_ = stage_two_error_;
      break;
    }
    for (const auto& [p, o] : source_->PositionsPastRecords()) {
      auto it = pending_.positions.find(p);
      if (it == pending_.positions.end() || it->second < o) pending_.positions[p] = o;
    }
    PublishReadPositions(false);
    if (*state == PollState::kEnd) {
      input_done_ = true;
      if (held_.empty()) break;
    }
  }
  // Ended by its input (not by a stop, which leaves held records to the next run).
  if (input_done_ && held_.empty()) input_ended_ = source_->EndIsFinal();
  PublishReadPositions(true);  // where it ended, kept after Close()
  HandOver();
  {
    // All it read is handed over: a close that blocks (a Kafka consumer's close() waits for a
    // rebalance that another worker of this process may hold up in its revoke callback, which
    // waits for a checkpoint) must not hold up the checkpoints, the final one included.
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    cv_.notify_all();
  }
  source_->Close();
  std::lock_guard<std::mutex> lock(mu_);
  finished_.store(true);
  cv_.notify_all();
}

void Worker::ProcessBatch() {
  counters_->records_in.fetch_add(static_cast<int64_t>(batch_.size()), std::memory_order_relaxed);
  counters_->bytes_in.fetch_add(static_cast<int64_t>(batch_.bytes()), std::memory_order_relaxed);
  // Dimension updates apply here, between batches.
  RefreshSnapshots();
  if (!held_.empty()) RetryHeld();
  if (clocks_) {
    now_micros_ = SteadyClockMicros();
    for (int32_t p : source_->Partitions()) {
      if (!clocks_->Tracks(p)) TrackPartition(p);
    }
    clocks_->Advance(now_micros_);
    closed_before_seen_ = std::max(closed_before_seen_, closed_before_.load());
  }
  if (columnar_) {
    columnar_->Decode(batch_, &columns_);
    ApplyColumnSteps(column_steps_, &columns_, snapshots_);
  }
  int64_t* position = nullptr;  // std::map values stay put while others are inserted
  int32_t position_partition = 0;
  for (size_t i = 0; i < batch_.size(); ++i) {
    Process(i);
    // A repartition record that does not decode: nothing from it on is handed over.
    if (!stage_two_error_.ok()) return;
    const RawRecord& r = batch_.record(i);
    if (position == nullptr || r.partition != position_partition) {
      position = &pending_.positions[r.partition];
      position_partition = r.partition;
    }
    *position = r.next_offset;
  }
  for (const auto& d : batch_.dead_letters()) {
    DeadLetter(Current{d.payload, d.partition, d.offset}, d.reason);
  }
  FlushCounters();
  for (const auto& [p, o] : source_->PositionsAfterBatch()) pending_.positions[p] = o;
}

void Worker::DeadLetter(const Current& c, std::string reason) {
  counters_->dead_lettered.fetch_add(1, std::memory_order_relaxed);
  sluice::DeadLetter d{std::move(reason), std::string(c.payload), source_name_, c.partition, c.offset,
                       WallClockMicros()};
  auto stored = stored_generations_.find(c.partition);
  if (stored == stored_generations_.end()) {
    std::optional<int64_t> g;
    if (context_.committed_position) g = context_.committed_position(kGenerationPartitionBase + c.partition);
    stored = stored_generations_.emplace(c.partition, g.value_or(0)).first;
  }
  d.generation = std::max(source_->Generation(c.partition), stored->second);
  // A source reading several topics: the letter names the topic and its partition, not the id.
  if (auto name = source_->NamePartition(c.partition)) {
    d.source += ":" + name->input;
    d.partition = name->partition;
  }
  pending_.dead_letters.push_back(std::move(d));
}

void Worker::RefreshSnapshots() {
  for (size_t k = 0; k < plan_->steps.size(); ++k) {
    if (Dimension* d = plan_->steps[k]->dimension()) snapshots_[k] = d->snapshot();
  }
}

void Worker::RetryHeld() {
  next_retry_micros_ = SteadyClockMicros() + kHeldRetryMicros;
  std::vector<HeldRecord> list;
  list.swap(held_);
  for (auto& h : list) {
    retrying_ = true;
    retry_deadline_ = h.deadline_micros;
    keep_holding_ = false;
    Process(Current{h.payload, h.partition, h.offset});
    if (keep_holding_) held_.push_back(std::move(h));
  }
  retrying_ = false;
  FlushCounters();
  counters_->held.store(static_cast<int64_t>(held_.size()), std::memory_order_relaxed);
}

void Worker::ProcessStageTwo(size_t i) {
  const RawRecord& rec = batch_.record(i);
  Result<RepartitionRecord> decoded = DecodeRepartitionValue(batch_.payload(i), *stage_two_spec_);
  if (!decoded.ok()) {
    stage_two_error_ = decoded.status().WithContext("source " + source_name_ + " partition " +
                                                    std::to_string(rec.partition) + " offset " +
                                                    std::to_string(rec.offset));
    return;
  }
  pending_.stage_two[rec.partition].push_back(RepartitionInput{std::move(decoded).value(), rec.offset});
  ++unflushed_aggregated_;
}

void Worker::Process(size_t i) {
  if (stage_two_spec_) {
    ProcessStageTwo(i);
    return;
  }
  const RawRecord& rec = batch_.record(i);
  const Current current{batch_.payload(i), rec.partition, rec.offset};
  if (columnar_) {
    ProcessColumnar(i, current);
    return;
  }
  Process(current);
}

void Worker::ProcessColumnar(size_t i, const Current& rec) {
  if (columns_.failed(i)) {
    counters_->decode_errors.fetch_add(1, std::memory_order_relaxed);
    DeadLetter(rec, "decode: " + columns_.error(i));
    return;
  }
  if (const int32_t k = columns_.dropped_at(i); k >= 0) {
    // A leading step over the columns ignored or dead-lettered it, or is a lookup that missed:
    // the record runs that step and the ones after it on its row.
    const ColumnStep& step = column_steps_[static_cast<size_t>(k)];
    if (step.kind == ColumnStep::Kind::kLookup) {
      ProcessRow(i, rec, static_cast<size_t>(k));
      return;
    }
    if (step.kind == ColumnStep::Kind::kDeadLetterIf) {
      step_context_.reason = step.reason;
      Divert(static_cast<size_t>(k), Step::Outcome::kDeadLetter, rec);
    } else {
      Divert(static_cast<size_t>(k), Step::Outcome::kIgnored, rec);
    }
    return;
  }
  if (aggregate_columns_) {
    // Every step ran over the columns and the aggregate reads them: no row.
    std::string null_key;
    int64_t event_time = 0;
    int64_t late_windows = 0;
    if (rec.partition != last_partition_) TrackPartition(rec.partition);
    const int64_t late_before = lateness_ ? LateBefore(rec.partition) : Aggregator::kNoLateness;
    const Aggregator::AddResult result = AggregatorFor(rec.partition)->AddColumns(
        columns_, i, *aggregate_columns_, late_before, &event_time, &null_key, &late_windows);
    Aggregated(rec, result, event_time, null_key, late_windows);
    return;
  }
  ProcessRow(i, rec, first_row_step_);
}

void Worker::ProcessRow(size_t i, const Current& rec, size_t first) {
  std::span<Value> row(row_);
  columns_.LoadRow(i, row);
  row[plan_->source_slot] = source_kind_;
  row[plan_->partition_slot] = Value::Int(rec.partition);
  row[plan_->offset_slot] = Value::Int(rec.offset);
  if (!RunSteps(rec, row, first)) return;
  if (aggregator_) {
    AddToAggregate(rec, row);
  } else {
    AppendOutputRow(row);
  }
}

bool Worker::DecodeInto(const Current& rec, std::span<Value> row) {
  Status s = decoder_->Decode(rec.payload, row.first(plan_->input.size()));
  if (!s.ok()) {
    counters_->decode_errors.fetch_add(1, std::memory_order_relaxed);
    DeadLetter(rec, "decode: " + s.message());
    return false;
  }
  row[plan_->source_slot] = source_kind_;
  row[plan_->partition_slot] = Value::Int(rec.partition);
  row[plan_->offset_slot] = Value::Int(rec.offset);
  return true;
}

bool Worker::RunSteps(const Current& rec, std::span<Value> row, size_t first) {
  StepContext& ctx = step_context_;
  ctx.retrying = retrying_;
  ctx.retry_deadline_micros = retry_deadline_;
  const auto& steps = plan_->steps;
  for (size_t k = first; k < steps.size(); ++k) {
    ctx.snapshot = snapshots_[k].get();
    const Step::Outcome outcome = steps[k]->Apply(row, ctx);
    if (outcome != Step::Outcome::kContinue && !Divert(k, outcome, rec)) return false;
  }
  return true;
}

bool Worker::Divert(size_t k, Step::Outcome outcome, const Current& rec) {
  if (plan_->steps[k]->counting() == StepCounting::kLookupMisses) {
    // A miss counts once per record, not again each time a held record is retried.
    if (!retrying_) {
      counters_->lookup_misses.fetch_add(1, std::memory_order_relaxed);
      (*step_counts_)[k].fetch_add(1, std::memory_order_relaxed);
    }
  } else if (outcome == Step::Outcome::kIgnored || outcome == Step::Outcome::kDeadLetter) {
    (*step_counts_)[k].fetch_add(1, std::memory_order_relaxed);
  }
  switch (outcome) {
    case Step::Outcome::kContinue:
    case Step::Outcome::kDefaulted:
      return true;
    case Step::Outcome::kIgnored:
      counters_->ignored.fetch_add(1, std::memory_order_relaxed);
      return false;
    case Step::Outcome::kDeadLetter:
      DeadLetter(rec, std::move(step_context_.reason));
      return false;
    case Step::Outcome::kHold:
      // A late-arriving dimension row: keep the record and retry it between batches.
      if (retrying_) {
        keep_holding_ = true;
        return false;
      }
      held_.push_back(HeldRecord{std::string(rec.payload), rec.partition, rec.offset,
                                 step_context_.hold_until_micros});
      counters_->held.store(static_cast<int64_t>(held_.size()), std::memory_order_relaxed);
      return false;
  }
  return false;
}

void Worker::AddToAggregate(const Current& rec, std::span<Value> row) {
  std::string null_key;
  int64_t event_time = 0;
  int64_t late_windows = 0;
  if (rec.partition != last_partition_) TrackPartition(rec.partition);
  // Judged before its own event time counts: a record is never late by itself.
  const int64_t late_before = lateness_ ? LateBefore(rec.partition) : Aggregator::kNoLateness;
  const Aggregator::AddResult result =
      AggregatorFor(rec.partition)->Add(row, late_before, &event_time, &null_key, &late_windows);
  Aggregated(rec, result, event_time, null_key, late_windows);
}

void Worker::Aggregated(const Current& rec, Aggregator::AddResult result, int64_t event_time,
                        const std::string& null_key, int64_t late_windows) {
  switch (result) {
    case Aggregator::AddResult::kAdded:
      // A record of hopping windows that some of its windows took is not dead-lettered; the
      // windows it missed are counted.
      if (late_windows > 0) counters_->late_windows.fetch_add(late_windows, std::memory_order_relaxed);
      ++unflushed_aggregated_;
      clocks_->Observe(rec.partition, event_time, now_micros_);
      unflushed_max_event_time_ = std::max(unflushed_max_event_time_, event_time);
      break;
    case Aggregator::AddResult::kLate:
      counters_->late.fetch_add(1, std::memory_order_relaxed);
      DeadLetter(rec, "late");
      break;
    case Aggregator::AddResult::kNoTime:
      DeadLetter(rec, "aggregate time is null");
      break;
    case Aggregator::AddResult::kNullKey:
      DeadLetter(rec, "group key " + null_key + " is null");
      break;
  }
}

void Worker::AppendOutputRow(std::span<const Value> row) {
  std::vector<Value> out;
  if (plan_->select.empty()) {
    out.assign(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(plan_->input.size()));
  } else {
    out.reserve(plan_->select.size());
    for (const auto& c : plan_->select) out.push_back(c.expr->Eval(row));
  }
  pending_.rows.push_back(std::move(out));
  ++unflushed_aggregated_;
}

void Worker::Process(const Current& rec) {
  std::span<Value> row(row_);
  if (!DecodeInto(rec, row) || !RunSteps(rec, row)) return;
  if (aggregator_) {
    AddToAggregate(rec, row);
  } else {
    AppendOutputRow(row);
  }
}

void Worker::FlushCounters() {
  if (unflushed_aggregated_ > 0) {
    counters_->aggregated.fetch_add(unflushed_aggregated_, std::memory_order_relaxed);
    unflushed_aggregated_ = 0;
  }
  if (unflushed_max_event_time_ > counters_->max_event_time.load(std::memory_order_relaxed)) {
    counters_->max_event_time.store(unflushed_max_event_time_, std::memory_order_relaxed);
  }
}

}  // namespace sluice
