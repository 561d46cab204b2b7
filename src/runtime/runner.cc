#include "runtime/runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <queue>
#include <thread>
#include <tuple>

#include <unistd.h>

#include "core/time.h"
#include "operators/delta_order.h"
#include "operators/dimension.h"
#include "core/uri.h"
#include "runtime/registry.h"
#include "runtime/repartition_upstream.h"

namespace sluice {
namespace {

std::string DefaultDeadLetterPath(const PipelineConfig& config) {
  if (ConnectorRegistry::Instance().SinkTraitsFor(config.sink.uri).local_file) {
    std::filesystem::path p(SplitUri(config.sink.uri).second);
    return (p.parent_path() / (p.stem().string() + ".dead-letters.ndjson")).string();
  }
  return config.name + ".dead-letters.ndjson";
}

/// What the sink is told about the pipeline's output.
SinkContext ContextFor(const PipelineConfig& config, const Plan& plan, bool tasks) {
  SinkContext ctx;
  ctx.pipeline = config.name;
  ctx.source = config.source.name;
  ctx.tasks = tasks;
  ctx.aggregate = plan.aggregate.get();
  ctx.output = plan.OutputSchema();
  if (plan.aggregate) ctx.key_columns = plan.aggregate->KeyColumns();
  return ctx;
}

/// Names the sink a dead-letter file belongs to: its URI (an SQLite path made absolute) and table.
std::string SinkIdentity(const PipelineConfig& config) {
  auto [scheme, path] = SplitUri(config.sink.uri);
  std::string id = config.sink.uri;
  if (ConnectorRegistry::Instance().SinkTraitsFor(config.sink.uri).local_file) {
    id = scheme + ":" + std::filesystem::absolute(path).lexically_normal().string();
  }
  if (!config.sink.table.empty()) id += " table " + config.sink.table;
  return id;
}

}  // namespace

Status ClaimDeadLetterFile(const std::string& path, const std::string& pipeline,
                           const std::string& sink, bool check_only) {
  // The file's committed length lives in the sink: a second sink (or pipeline) writing to the
  // same file would cut back the first one's letters. The owner file records who writes it.
  const std::string owner_path = path + ".owner";
  const std::string want = "pipeline " + pipeline + "\nsink " + sink + "\n";
  std::error_code ec;
  if (std::filesystem::exists(owner_path, ec)) {
    ASSIGN_OR_RETURN(std::string have, ReadFile(owner_path));
    if (have == want) return Status::OK();
    std::string who = have;
    std::replace(who.begin(), who.end(), '\n', ' ');
    return Status::InvalidArgument(
        "dead-letter file " + path + " belongs to another pipeline or sink (" + who +
        "per " + owner_path + "); this run (pipeline " + pipeline + ", sink " + sink +
        ") needs its own: set [dead_letter] to = \"file:OTHER_PATH\", or to = \"sink\" to keep "
        "dead letters with the results");
  }
  if (check_only) return Status::OK();
  RETURN_IF_ERROR(EnsureParentDirectory(owner_path));
  const std::string tmp = owner_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << want;
    out.close();
    if (!out) return Status::IOError("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, owner_path, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + ": " + ec.message());
  return Status::OK();
}

Result<std::unique_ptr<Runner>> Runner::Make(PipelineConfig config, RunOptions options) {
  std::unique_ptr<Runner> runner(new Runner(std::move(config), options));
  ASSIGN_OR_RETURN(runner->plan_, BuildPlan(runner->config_));
  if (runner->options_.sink_override) {
    ASSIGN_OR_RETURN(runner->sink_, runner->options_.sink_override());
  } else {
    ASSIGN_OR_RETURN(runner->sink_, ConnectorRegistry::Instance().MakeSink(runner->config_.sink));
  }
  std::string needs;  // what makes the pipeline keep state across checkpoints
  if (const AggregateSpec* spec = runner->plan_->aggregate.get()) {
    if (spec->append_mode) {
      needs = "mode = \"append\"";
      if (runner->options_.stage_one && runner->options_.stage_two.enabled) {
        return Status::InvalidArgument("pipeline " + runner->config_.name +
                                       ": a runner is stage one or stage two of a repartitioned pipeline, not both");
      }
      if (runner->options_.stage_two.enabled && runner->options_.stage_two.upstreams.empty()) {
        // Without the expected upstream tasks a window would be emitted once the first control
        // passed it, and the other upstreams' partials of it would all be late.
        return Status::InvalidArgument("pipeline " + runner->config_.name +
                                       ": stage two needs the upstream tasks it waits for (the source topics' "
                                       "partitions), none given");
      }
      if (runner->options_.stage_one && !runner->config_.source.keyed_by.empty()) {
        return Status::InvalidArgument("pipeline " + runner->config_.name +
                                       ": [source] keyed_by says the source is keyed by the group key, so it "
                                       "needs no repartition stage");
      }
      if (runner->options_.stage_one) {
        // Stage one keeps no windows: each task's deltas leave with every checkpoint.
        if (!runner->sink_->TakesStageOne() || !runner->sink_->SupportsTasks()) {
          return Status::InvalidArgument("pipeline " + runner->config_.name + ": stage one of a repartitioned "
                                         "pipeline needs the repartition topic's sink, not " +
                                         runner->config_.sink.uri);
        }
        runner->stage_one_ = true;
      } else {
        // A source keyed by (part of) the group key puts every group's records in one
        // partition: each task can keep and emit its own open windows, where the sink stores
        // them.
        runner->append_tasks_ = !runner->config_.source.keyed_by.empty() && runner->sink_->SupportsTasks() &&
                                runner->sink_->StoresTaskWindows();
        // Stage two: the repartition topic is keyed by the group key by construction, so it is
        // append mode on tasks with partials merged instead of records aggregated.
        if (runner->options_.stage_two.enabled) {
          if (!runner->sink_->SupportsTasks() || !runner->sink_->StoresTaskWindows()) {
            return Status::InvalidArgument(runner->config_.sink.options.Where("uri") + ": sink " +
                                           runner->config_.sink.uri +
                                           " does not keep open windows per task, which the repartition stage "
                                           "needs; use an sqlite:, mysql:, parquet: or cassandra: sink");
          }
          // An aborted transaction of stage one (a fenced or crashed process) must never count.
          const Options& so = runner->config_.source.options;
          if (so.Has("kafka.isolation.level") && so.GetString("kafka.isolation.level") != "read_committed") {
            return Status::InvalidArgument(so.Where("kafka.isolation.level") +
                                           ": the repartition stage reads its topic read_committed only");
          }
          runner->append_tasks_ = true;
          runner->stage_two_ = true;
        }
        if (!runner->append_tasks_) runner->open_ = std::make_unique<Aggregator>(spec);
      }
    } else if (spec->allowed_lateness_micros >= 0) {
      needs = "allowed_lateness";
    }
  }
  if (runner->options_.stage_two.enabled && !runner->stage_two_) {
    return Status::InvalidArgument("pipeline " + runner->config_.name +
                                   ": the repartition stage needs an [aggregate] with mode = \"append\"");
  }
  if (runner->options_.stage_one && !runner->stage_one_) {
    return Status::InvalidArgument("pipeline " + runner->config_.name +
                                   ": stage one of a repartitioned pipeline needs an [aggregate] in mode = \"append\"");
  }
  if (needs.empty() && runner->plan_->holds) needs = "on_missing = \"hold\"";
  if (const AggregateSpec* spec = runner->plan_->aggregate.get()) {
    runner->clock_ = std::make_unique<PipelineClock>(spec->watermark_delay_micros, spec->idle_timeout_micros);
    // Stage two waits for every upstream task's first control, however long it takes: stage
    // one's closed bound waits for each partition's first report just as long, so that it
    // never judges a record late for a window stage two has not emitted and will.
    if (runner->stage_one_) runner->clock_->HoldUnreported();
  }
  runner->needs_state_ = !needs.empty();
  if (runner->needs_state_ && !runner->sink_->SupportsState()) {
    return Status::InvalidArgument(runner->config_.sink.options.Where("uri") + ": sink " +
                                   runner->config_.sink.uri + " cannot store window state, which " +
                                   needs + " needs; use an sqlite:, mysql: or parquet: sink");
  }
  // State per task (a partition's held records and event-time progress, committed with its
  // position, written only by the process that owns the partition) where the sink stores
  // tasks. Append mode's open windows stay in the one state of the pipeline unless the source
  // is keyed by the group key (append_tasks_).
  runner->tasks_ = runner->needs_state_ && !runner->open_ && runner->sink_->SupportsTasks();
  // Every check that needs no connection and touches no data runs here, so `sluice validate`
  // (which stops after Make) rejects what a run would reject before reading anything.
  RETURN_IF_ERROR(runner->sink_->Check(ContextFor(runner->config_, *runner->plan_, runner->tasks_)));
  RETURN_IF_ERROR(ConnectorRegistry::Instance().MakeSources(runner->config_.source, 1).status());
  if (!runner->options_.reset_source.empty() &&
      runner->options_.reset_source != runner->config_.source.name) {
    return Status::InvalidArgument("--reset-source " + runner->options_.reset_source +
                                   ": the pipeline's source is named '" +
                                   runner->config_.source.name + "'");
  }
  using Store = PipelineConfig::DeadLetterStore;
  const Store store = runner->config_.dead_letter_store;
  if (runner->stage_one_) {
    // Stage one's dead letters go with its checkpoints to the repartition topic; stage two
    // stores them where the pipeline's [dead_letter] says.
    if (!runner->sink_->StoresDeadLetters()) {
      return Status::InvalidArgument("pipeline " + runner->config_.name + ": stage one's sink must store dead letters");
    }
    return runner;
  }
  if (store == Store::kSink && !runner->sink_->StoresDeadLetters()) {
    return Status::InvalidArgument(runner->config_.dead_letter_where + ": sink " +
                                   runner->config_.sink.uri +
                                   " cannot store dead letters; use [dead_letter] to = \"file:PATH\"");
  }
  if (store == Store::kFile || !runner->sink_->StoresDeadLetters()) {
    runner->dead_letter_path_ = store == Store::kFile ? runner->config_.dead_letter_path
                                                      : DefaultDeadLetterPath(runner->config_);
    // Each dead-letter file has its own committed length, so processes of one pipeline that
    // share a sink (scale-out) each keep their own file exact.
    runner->dead_letter_key_ =
        std::string(kDeadLetterPositionSource) + ":" +
        std::filesystem::absolute(runner->dead_letter_path_).lexically_normal().string();
    // A file that belongs to another pipeline or sink is a configuration error, found here so
    // that `validate` finds it too (Start() claims the file).
    RETURN_IF_ERROR(ClaimDeadLetterFile(runner->dead_letter_path_, runner->config_.name,
                                        SinkIdentity(runner->config_), /*check_only=*/true));
  }
  return runner;
}

Runner::~Runner() {
  // A commit still in flight (Run() returned early) uses the sink and tells the workers.
  if (commit_.valid()) commit_.wait();
  {
    // No commit can land any more: rebalance callbacks still waiting for one (an abandoned stop
    // kept them waiting) give up, so the workers can end.
    std::lock_guard<std::mutex> lock(epoch_mu_);
    failing_ = true;
    epoch_cv_.notify_all();
  }
  std::lock_guard<std::mutex> topology(topology_mu_);
  for (auto& w : workers_) w->RequestStop();
  workers_.clear();
  refresher_.reset();
  if (sink_) sink_->Close();
}

void Runner::RequestStop() {
  // Only flags here: this may run on a signal-handling thread while Start() builds workers_.
  // The coordinator loop passes the stop on to the workers.
  MarkStopping();
  if (stop_.exchange(true)) force_stop_.store(true);
}

void Runner::MarkStopping() {
  int64_t expected = 0;
  stop_started_micros_.compare_exchange_strong(expected, std::max<int64_t>(1, SteadyClockMicros()));
}

bool Runner::DrainExpired() const {
  const int64_t since = stop_started_micros_.load();
  return since != 0 && SteadyClockMicros() - since > config_.shutdown_timeout_micros;
}

bool Runner::CommitInFlight() const {
  return commit_.valid() && commit_.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

Status Runner::Abandon(const std::string& where, bool commit_in_flight) {
  abandoned_.store(true);
  if (!commit_in_flight) {
    std::lock_guard<std::mutex> lock(epoch_mu_);
    failing_ = true;  // rebalance callbacks waiting for a checkpoint give up
    epoch_cv_.notify_all();
  }
  // else: a commit may still land. A rebalance callback released now would let its consumer leave
  // the group, and the partition's next owner could read the position before that commit and
  // count its records again. The callbacks keep waiting; the process ends (_Exit) without leaving
  // the group, so the partitions move only after the session timeout, when the server has
  // committed or rolled back that transaction.
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.state = "failed";
  }
  return Status::Aborted("draining did not finish within shutdown_timeout (" +
                         std::to_string(config_.shutdown_timeout_micros / 1'000'000) + " s; " +
                         where + "): exiting without the final checkpoint; the next run reads again "
                         "what was not committed");
}

Status Runner::Start() {
  const SinkContext ctx = ContextFor(config_, *plan_, tasks_);
  // Opening the sink is retried: a database that is still starting is not a configuration error.
  int64_t backoff_ms = 200;
  while (true) {
    Status s = sink_->Open(ctx);
    if (s.ok()) break;
    if (s.code() != StatusCode::kUnavailable || stop_.load()) return s.WithContext("sink");
    spdlog::warn("sink not available ({}); retrying in {} ms", s.message(), backoff_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
  }
  ASSIGN_OR_RETURN(std::vector<StoredPosition> stored, sink_->LoadPositions());
  int64_t dead_letter_length = 0;
  for (const auto& p : stored) {
    if (p.source == dead_letter_key_) {
      dead_letter_length = p.offset;
    } else if (p.source.rfind(kDeadLetterPositionSource, 0) == 0) {
      continue;  // another process's dead-letter file
    } else {
      loaded_[{p.source, p.partition}] = p.offset;
    }
  }
  if (!options_.reset_source.empty()) RETURN_IF_ERROR(ForgetSourcePositions());
  if (open_ && !tasks_ && sink_->SupportsTasks()) {
    // Append mode on the one state of the pipeline: task rows of it hold open windows (a run
    // with [source] keyed_by) or held records that this run would never read.
    Result<std::vector<TaskRow>> rows = sink_->LoadTaskProgress();
    if (rows.ok() && !rows->empty()) {
      return Status::FailedPrecondition(
          "pipeline " + config_.name + ": " + config_.sink.uri +
          " keeps this pipeline's state per partition (an earlier run with [source] keyed_by, or in "
          "update mode with allowed_lateness or a hold lookup), which this run would not read: run it "
          "as it was, or give it another name to start over");
    }
  }
  if (needs_state_ && !tasks_) RETURN_IF_ERROR(RestoreWindowState());
  // positions_ and committed_ start empty: a checkpoint carries only the partitions this
  // process has read. Writing back positions it merely loaded would move another process's
  // partitions backwards.
  if (!dead_letter_path_.empty()) {
    RETURN_IF_ERROR(ClaimDeadLetterFile(dead_letter_path_, config_.name, SinkIdentity(config_),
                                        /*check_only=*/false));
    ASSIGN_OR_RETURN(dead_letters_, DeadLetterFile::Open(dead_letter_path_, dead_letter_length));
  }

  LoadStoredDeadLetters();

  int max_instances = options_.workers > 0 ? options_.workers : config_.workers;
  if (max_instances <= 0) {
    max_instances = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  }
  ASSIGN_OR_RETURN(auto sources,
                   ConnectorRegistry::Instance().MakeSources(config_.source, max_instances));
  if (options_.wrap_source) {
    for (auto& source : sources) source = options_.wrap_source(std::move(source));
  }
  group_managed_.store(!sources.empty() && sources[0]->GroupManaged());
  if (tasks_ && group_managed_.load()) {
    // Every partition's committed progress holds the pipeline's watermark back, whoever reads
    // it; this process claims the tasks it reads as the group assigns their partitions. (A
    // source no group shares is read by this process alone: nobody else's progress counts.)
    std::lock_guard<std::mutex> lock(sink_mu_);
    ReadRemoteProgress();
  }
  // Snapshot() may run on another thread (HTTP) while this builds the workers.
  std::unique_lock<std::mutex> topology(topology_mu_);
  step_counts_ = std::vector<std::atomic<int64_t>>(plan_->steps.size());
  const std::string source_name = config_.source.name;
  for (size_t i = 0; i < sources.size(); ++i) {
    SourceContext sc;
    sc.until_caught_up = options_.until_caught_up;
    if (stage_two_ && options_.until_caught_up) sc.take_end_offsets_when = options_.stage_two.take_end_offsets_when;
    sc.catch_up_timeout = std::chrono::microseconds(config_.catch_up_timeout_micros);
    sc.follow = options_.follow;
    sc.instance = static_cast<int>(i);
    sc.instances = static_cast<int>(sources.size());
    sc.committed_position = [this, source_name, i](int32_t partition) {
      // A source no group shares out is read by this process alone: the tasks of the
      // partitions it opens are claimed then (a second process claiming them fences this one).
      if (tasks_ && !group_managed_.load() && partition < kIdentityPartitionBase) {
        return ClaimPartition(i, source_name, partition);
      }
      return LookupCommitted(source_name, partition);
    };
    if (tasks_) {
      sc.claim_position = [this, source_name, i](int32_t partition) {
        return ClaimPartition(i, source_name, partition);
      };
    }
    sc.committed_positions = [this, source_name] { return LookupAllCommitted(source_name); };
    counters_.push_back(std::make_unique<WorkerCounters>());
    workers_.push_back(std::make_unique<Worker>(static_cast<int>(i), plan_.get(), source_name,
                                                std::move(sources[i]), std::move(sc),
                                                counters_.back().get(), &step_counts_, this));
    if (needs_state_) {
      workers_.back()->SetRestoredEventTimes([this, source_name](int32_t p) -> std::optional<int64_t> {
        std::lock_guard<std::mutex> lock(event_mu_);
        auto it = committed_event_times_.find({source_name, p});
        if (it == committed_event_times_.end()) return std::nullopt;
        return it->second;
      });
      // A restarted run closes nothing that is already closed: records for windows emitted
      // before the restart are late, as they would have been without it.
      workers_.back()->PublishClosedBound(window_.closed_before);
      workers_.back()->SetHeldPerPartition(tasks_);
      workers_.back()->SetAggregatePerPartition(append_tasks_ || stage_one_);
      if (stage_two_) workers_.back()->SetStageTwo(plan_->aggregate.get());
    }
    // A lost partition's task is dropped uncommitted (its next owner's claim has its last
    // commit); without tasks nothing fences a commit, and a loss takes the revoke way.
    workers_.back()->SetDropsLost(tasks_ && group_managed_.load());
  }
  // Every worker applies the restored closed bound from its first record on.
  reports_.assign(workers_.size(), WorkerReport{window_.closed_before, false, {}, {}});
  held_by_worker_.assign(workers_.size(), {});
  {
    // One entry per worker before any starts (its source claims tasks from then on).
    std::lock_guard<std::mutex> lock(claimed_held_mu_);
    claimed_held_.resize(workers_.size());
  }
  if (!restored_held_.empty() && !workers_.empty()) {
    // Held records are retried by the first worker; until it hands over, checkpoints keep them.
    held_by_worker_[0] = restored_held_;
    workers_[0]->RestoreHeld(std::move(restored_held_));
    restored_held_.clear();
  }
  topology.unlock();
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.pipeline = config_.name;
    stats_.state = "running";
    stats_.started_micros = WallClockMicros();
    stats_.workers = static_cast<int>(workers_.size());
    stats_.fenced_restarts = options_.fenced_restarts;
  }
  spdlog::info("pipeline {}: {} worker(s), {} committed position(s) in the sink, dead letters to {}",
               config_.name, workers_.size(), loaded_.size(), dead_letter_location());
  if (open_ && !config_.source.keyed_by.empty()) {
    spdlog::info("pipeline {}: [source] keyed_by has no effect with sink {}: append mode keeps its open "
                 "windows in one state for all processes there", config_.name, config_.sink.uri);
  }
  ASSIGN_OR_RETURN(refresher_, DimensionRefresher::Make(*plan_));
  if (refresher_) refresher_->Start();
  for (auto& w : workers_) w->Start();
  return Status::OK();
}

Status Runner::Run() {
  Status started = Start();
  if (!started.ok()) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.state = "failed";
    return started;
  }
  const auto interval = std::chrono::microseconds(config_.checkpoint_interval_micros);
  // next_commit: the earliest start of the next commit (checkpoint_interval after the previous
  // one started); next_collect: when a commit in flight gets the next checkpoint collected.
  auto next_commit = std::chrono::steady_clock::now() + interval;
  auto next_collect = next_commit;
  // A commit that failed for good (or was abandoned) ends the run as it did inline.
  auto fail = [this](Status s) {
    if (abandoned_.load()) return s;
    std::lock_guard<std::mutex> lock(epoch_mu_);
    failing_ = true;
    epoch_cv_.notify_all();
    return s;
  };
  Status failure;
  while (true) {
    bool all_finished = true;
    for (auto& w : workers_) {
      if (!w->finished()) all_finished = false;
      Status e = w->error();
      if (!e.ok() && failure.ok()) {
        failure = e;
        // Run() returns it and the caller reports it once; say only that the run is stopping.
        spdlog::info("a worker failed; draining the others and checkpointing before exiting");
        stop_.store(true);
      }
    }
    {
      std::lock_guard<std::mutex> lock(epoch_mu_);
      if (!claim_error_.ok() && failure.ok()) {
        failure = claim_error_;
        stop_.store(true);
      }
    }
    if (all_finished) break;
    // On stop, keep serving checkpoints until every worker is done: closing a Kafka consumer
    // revokes its partitions, and that waits for a checkpoint.
    if (stop_.load()) {
      MarkStopping();
      if (DrainExpired()) {
        std::string busy;
        for (size_t i = 0; i < workers_.size(); ++i) {
          if (workers_[i]->finished()) continue;
          busy += (busy.empty() ? "" : ", ") + std::to_string(i);
        }
        return Abandon("worker(s) " + busy + " still busy", CommitInFlight());
      }
      for (auto& w : workers_) w->RequestStop();
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.state = "draining";
    }
    if (commit_.valid() && commit_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      Status s = commit_.get();
      if (!s.ok()) return fail(s);
    }
    bool urgent, uncollected;
    {
      std::lock_guard<std::mutex> lock(epoch_mu_);
      urgent = requested_epoch_ > committed_epoch_;
      uncollected = requested_epoch_ > epoch_;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!commit_.valid()) {
      if (urgent || now >= next_commit) {
        Status s = CollectPending();
        if (s.ok()) s = StartCommit();
        if (!s.ok()) return fail(s);
        next_commit = now + interval;
        next_collect = next_commit;
      }
    } else if (uncollected || (!collected_while_committing_ && now >= next_collect)) {
      // The previous checkpoint is still committing: collect and merge the next one meanwhile
      // (once, unless a worker asks for a checkpoint: beyond that the workers hold their state,
      // and a sink that stays down pauses them through max_pending).
      Status s = CollectPending();
      if (!s.ok()) return fail(s);
      collected_while_committing_ = true;
      collections_while_committing_.fetch_add(1);
    }
    if (commit_.valid()) {
      commit_.wait_for(std::chrono::milliseconds(20));  // returns as soon as the commit ends
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  for (auto& w : workers_) w->RequestStop();
  if (refresher_) refresher_->Stop();
  Status s = FinalCheckpoint();
  {
    std::lock_guard<std::mutex> lock(epoch_mu_);
    failing_ = true;  // nothing waits for later checkpoints
    epoch_cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.state = (s.ok() && failure.ok()) ? "finished" : "failed";
  }
  {
    // A claimed task whose state cannot be used: the final checkpoint is refused because of it
    // (nothing of this run is committed), and the reason to report is the claim's.
    std::lock_guard<std::mutex> lock(epoch_mu_);
    if (!claim_error_.ok()) return claim_error_;
  }
  if (!s.ok()) return s;
  return failure;
}

int64_t Runner::RequestCheckpoint() {
  std::lock_guard<std::mutex> lock(epoch_mu_);
  // epoch_ may be a checkpoint in progress that already took this worker's handoff slot; the
  // next one surely includes what was handed over before this call.
  requested_epoch_ = std::max(requested_epoch_, epoch_ + 1);
  return requested_epoch_;
}

Status Runner::WaitCommitted(int64_t epoch) {
  std::unique_lock<std::mutex> lock(epoch_mu_);
  epoch_cv_.wait(lock, [&] { return committed_epoch_ >= epoch || failing_; });
  if (committed_epoch_ >= epoch) return Status::OK();
  return Status::Aborted("the pipeline is stopping; the checkpoint before the rebalance was not written");
}

Status Runner::RestoreWindowState() {
  ASSIGN_OR_RETURN(std::string stored, sink_->LoadState());
  if (stored.empty()) return Status::OK();
  auto parsed = WindowState::Parse(stored, plan_->aggregate.get());
  if (!parsed.ok()) return parsed.status().WithContext("pipeline " + config_.name + ": sink " + config_.sink.uri);
  window_ = std::move(*parsed);
  {
    std::lock_guard<std::mutex> lock(event_mu_);
    committed_event_times_ = window_.max_event_times;
  }
  if (clock_) {
    // Each partition of the source holds the watermark back from its committed progress until
    // it is read again or has been idle for the idle timeout.
    const int64_t now = SteadyClockMicros();
    for (const auto& [key, t] : window_.max_event_times) {
      if (key.first == config_.source.name) clock_->Know(key, t, now);
    }
  }
  if (open_) open_->Merge(std::move(window_.open));
  window_.open.clear();
  restored_held_ = std::move(window_.held);
  window_.held.clear();
  spdlog::info("pipeline {}: restored state: {} open group(s), {} held record(s), watermark {}",
               config_.name, open_ ? open_->size() : 0, restored_held_.size(),
               window_.watermark == kNoWatermark ? std::string("none") : FormatTimestamp(window_.watermark));
  return Status::OK();
}

std::vector<std::vector<Value>> Runner::AdvanceWindows(std::vector<DeltaRow>&& deltas, bool* all_ended,
                                                       const std::set<int32_t>& close_tasks,
                                                       std::vector<int32_t>* row_partitions) {
  const AggregateSpec& spec = *plan_->aggregate;
  // Workers whose bounded input is exhausted hold nothing back; when every one is, all open
  // windows are emitted.
  bool any_reading = false;
  int64_t enforced = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < reports_.size(); ++i) {
    if (reports_[i].ended) continue;
    any_reading = true;
    if (!workers_[i]->finished()) enforced = std::min(enforced, reports_[i].enforced);
  }
  *all_ended = !any_reading;
  const PipelineClock::Bounds bounds = clock_->Compute(SteadyClockMicros(), enforced);
  if (bounds.any) window_.watermark = std::max(window_.watermark, bounds.watermark);
  std::vector<DeltaRow> closed;
  if (open_) {
    open_->Merge(std::move(deltas));
    if (*all_ended) {
      closed = open_->TakeAll();
      // Every window just written is closed for good: a later run (a replaced file, say) must
      // find its records late rather than write the window a second time.
      for (const auto& d : closed) {
        window_.closed_before = std::max(window_.closed_before,
                                         d.window_start + spec.window_micros + spec.allowed_lateness_micros);
      }
    } else if (bounds.any && bounds.emit != kNoWatermark) {
      // A window is emitted when its end plus the allowed lateness is at or before the minimum
      // of all partitions' watermarks (and the bound every worker already enforces).
      closed = open_->TakeClosed(bounds.emit - spec.allowed_lateness_micros);
    }
  }
  // Append mode on tasks: each task's closed windows, sorted, by partition.
  std::vector<std::pair<int32_t, std::vector<DeltaRow>>> by_task;
  if (append_tasks_) {
    // Each task emits its own windows: with the source keyed by the group key, no other task
    // holds a part of them. Only tasks this process owns (or releases now) emit.
    for (int32_t p : close_tasks) {
      int64_t& emitted = task_emitted_.try_emplace(p, kNoWatermark).first->second;
      auto it = task_open_.find(p);
      std::vector<DeltaRow> mine;
      if (stage_two_) {
        // Emitted by the upstreams' minimum watermark, not by this process's clock; never all
        // at the end (the repartition topic is never exhausted for good).
        auto merge = stage_two_tasks_.find(p);
        if (merge != stage_two_tasks_.end()) mine = merge->second->Emit();
      } else if (*all_ended) {
        if (it == task_open_.end()) continue;
        mine = it->second->TakeAll();
        for (const auto& d : mine) {
          const int64_t bound = d.window_start + spec.window_micros + spec.allowed_lateness_micros;
          window_.closed_before = std::max(window_.closed_before, bound);
          emitted = std::max(emitted, bound);
        }
      } else if (bounds.any && bounds.emit != kNoWatermark) {
        if (it != task_open_.end()) mine = it->second->TakeClosed(bounds.emit - spec.allowed_lateness_micros);
        emitted = std::max(emitted, bounds.emit);
      }
      if (mine.empty()) continue;
      SortDeltas(&mine);
      by_task.emplace_back(p, std::move(mine));
    }
  }
  if (bounds.any && bounds.release != kNoWatermark) {
    window_.closed_before = std::max(window_.closed_before, bounds.release);
  }
  // A task claimed from another process keeps at least the bound that process enforced on it.
  window_.closed_before = std::max(window_.closed_before, claimed_enforced_.load());
  for (auto& w : workers_) w->PublishClosedBound(window_.closed_before);
  std::vector<std::vector<Value>> rows;
  if (by_task.empty()) {
    SortDeltas(&closed);
    rows.reserve(closed.size());
    for (const auto& d : closed) rows.push_back(FinalRow(spec, d));
    return rows;
  }
  // The tasks' rows in one DeltaLess order, as one sorted list would give them, each row
  // remembering its task (a sink that writes rows per task needs it: Checkpoint::row_tasks).
  // open_ is null on tasks, so `closed` holds nothing here.
  size_t total = 0;
  for (const auto& [p, list] : by_task) total += list.size();
  rows.reserve(total);
  if (row_partitions) row_partitions->reserve(row_partitions->size() + total);
  using Head = std::pair<size_t, size_t>;  // (index into by_task, index into its list)
  auto after = [&](const Head& a, const Head& b) {
    return DeltaLess(by_task[b.first].second[b.second], by_task[a.first].second[a.second]);
  };
  std::priority_queue<Head, std::vector<Head>, decltype(after)> heads(after);
  for (size_t t = 0; t < by_task.size(); ++t) heads.emplace(t, 0);
  while (!heads.empty()) {
    const auto [t, i] = heads.top();
    heads.pop();
    rows.push_back(FinalRow(spec, by_task[t].second[i]));
    if (row_partitions) row_partitions->push_back(by_task[t].first);
    if (i + 1 < by_task[t].second.size()) heads.emplace(t, i + 1);
  }
  return rows;
}

Status Runner::ForgetSourcePositions() {
  const std::string& name = options_.reset_source;
  if (name != config_.source.name) {
    return Status::InvalidArgument("--reset-source " + name + ": the pipeline's source is named '" +
                                   config_.source.name + "'");
  }
  std::string forgotten;
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    if (it->first.first != name) {
      ++it;
      continue;
    }
    if (it->first.second < kIdentityPartitionBase && it->second != kForgottenPosition) {
      forgotten += (forgotten.empty() ? "" : ", ") + std::string("partition ") + std::to_string(it->first.second) +
                   " at " + std::to_string(it->second);
    }
    // Stored with the next checkpoint, so a restart before the source has new positions still
    // starts from the beginning.
    positions_[it->first] = kForgottenPosition;
    if (it->first.second < kIdentityPartitionBase && it->second != kForgottenPosition) {
      // The input is read again from its start, perhaps another one: the next generation, so
      // its dead letters keep apart from those stored at the same offsets before.
      auto g = loaded_.find({name, kGenerationPartitionBase + it->first.second});
      reset_generations_[kGenerationPartitionBase + it->first.second] = g == loaded_.end() ? 1 : g->second + 1;
    } else if (it->first.second >= kGenerationPartitionBase) {
      reset_generations_.try_emplace(it->first.second, it->second);  // not read since: kept
    }
    it = loaded_.erase(it);
  }
  for (const auto& [partition, generation] : reset_generations_) positions_[{name, partition}] = generation;
  forgetting_ = true;
  if (forgotten.empty()) {
    spdlog::info("pipeline {}: --reset-source {}: no committed position to forget; reading it from its beginning",
                 config_.name, name);
  } else {
    spdlog::info("pipeline {}: --reset-source {}: forgetting its committed position(s) ({}); reading it from its "
                 "beginning (results already in the sink stay)",
                 config_.name, name, forgotten);
  }
  return Status::OK();
}

std::optional<int64_t> Runner::LookupCommitted(const std::string& source, int32_t partition) {
  int64_t backoff_ms = 100;
  for (int failures = 0;; ++failures) {
    Status failed;
    {
      std::lock_guard<std::mutex> lock(sink_mu_);
      if (forgetting_ && source == options_.reset_source && !reset_written_.count(partition)) {
        // The sink still holds the forgotten positions until this run commits; only what this
        // run committed counts.
        auto it = committed_.find({source, partition});
        if (it == committed_.end()) {
          if (auto g = reset_generations_.find(partition); g != reset_generations_.end()) return g->second;
        }
        if (it == committed_.end() || it->second == kForgottenPosition) return std::nullopt;
        return it->second;
      }
      auto stored = sink_->LoadPositions();
      if (stored.ok()) {
        if (failures > 0) spdlog::info("the sink answers again: positions read");
        for (const auto& p : *stored) {
          if (p.source == source && p.partition == partition) {
            if (p.offset == kForgottenPosition) return std::nullopt;  // forgotten by --reset-source
            return p.offset;
          }
        }
        return std::nullopt;
      }
      failed = stored.status();
    }
    // No guess is safe: another process of the group may have committed this partition further
    // since this one last knew, and starting behind it would count those records again (and
    // move the committed position back). Wait for the sink instead.
    if (stop_.load() || force_stop_.load()) {
      positions_uncertain_.store(true);
      spdlog::warn("{}[{}]: the sink cannot be read while stopping ({}); nothing more is committed "
                   "by this run", source, partition, failed.ToString());
      std::lock_guard<std::mutex> lock(sink_mu_);
      auto it = committed_.find({source, partition});
      if (it == committed_.end() || it->second == kForgottenPosition) return std::nullopt;
      return it->second;
    }
    if (failures % 10 == 0) {
      spdlog::warn("{}[{}] was assigned but its committed position cannot be read from the sink: "
                   "{}; waiting for the sink (retry in {} ms)", source, partition, failed.ToString(),
                   backoff_ms);
    }
    const int64_t wake = SteadyClockMicros() + backoff_ms * 1000;
    while (SteadyClockMicros() < wake && !stop_.load() && !force_stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(50, backoff_ms)));
    }
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
  }
}

std::optional<int64_t> Runner::ClaimPartition(size_t worker, const std::string& source, int32_t partition) {
  // A source read by this process alone claims each task once (it asks for positions again);
  // a group's assignment is claimed every time.
  bool claimed_before = false;
  {
    std::lock_guard<std::mutex> lock(claims_mu_);
    claimed_before = !group_managed_.load() && owned_partitions_.count(partition) > 0;
  }
  if (claimed_before) return LookupCommitted(source, partition);
  OwnerInfo owner;
  {
    char host[256] = {0};
    if (gethostname(host, sizeof(host) - 1) == 0) owner.host = host;
    owner.pid = static_cast<int64_t>(getpid());
    owner.client_id = "sluice-" + config_.name + "-" + std::to_string(worker);
  }
  int64_t backoff_ms = 100;
  for (int failures = 0;; ++failures) {
    Result<TaskClaim> claim = Status::Unavailable("not claimed yet");
    {
      std::lock_guard<std::mutex> lock(sink_mu_);
      if (auto held = owned_.find(partition); held != owned_.end() && held->second.worker != worker) {
        // Another worker (consumer) of this process still holds the task: its member lost the
        // partition without having reported it yet. Its uncommitted work and this claim's
        // cannot be told apart any more: start again from the committed state.
        std::lock_guard<std::mutex> epoch(epoch_mu_);
        if (claim_error_.ok()) {
          claim_error_ = Status::Fenced(source + "[" + std::to_string(partition) + "] was assigned to worker " +
                                        std::to_string(worker) + " while worker " +
                                        std::to_string(held->second.worker) +
                                        " of this process still held it (its member lost it)");
        }
        positions_uncertain_.store(true);  // nothing of this run may be committed
        return std::nullopt;
      }
      claim = sink_->ClaimTask(TaskId{source, partition}, owner);
      if (claim.ok()) {
        auto state = TaskState::Parse(claim->state, plan_->aggregate.get());
        if (state.ok() && !append_tasks_ && !state->open.empty()) {
          state = Status::FailedPrecondition(
              "the task holds open windows of an append-mode run with [source] keyed_by, which this "
              "pipeline would not read: run it as it was, or give it another name to start over");
        }
        if (!state.ok()) {
          std::lock_guard<std::mutex> epoch(epoch_mu_);
          if (claim_error_.ok()) {
            claim_error_ = state.status().WithContext("pipeline " + config_.name + ": " + source + "[" +
                                                      std::to_string(partition) + "] in " + config_.sink.uri);
          }
          positions_uncertain_.store(true);  // nothing of this run may be committed
          return std::nullopt;
        }
        owned_[partition] = OwnedTask{claim->fence, worker, claim->state};
        size_t open_rows = 0;  // the task's open windows (append mode), for the log line
        {
          // One critical section: a collection that sees the task owned also takes its windows.
          std::lock_guard<std::mutex> claims(claims_mu_);
          if (append_tasks_) {
            open_rows = state->open.size();
            claimed_windows_[partition] =
                ClaimedWindows{std::move(state->open), state->emitted_before, std::move(state->upstreams)};
          }
          if (stage_one_) {
            // Published to the worker below, before it reads any record of the task.
            claimed_control_floor_[partition] = std::max(state->progress.enforced, state->emitted_before);
          }
          owned_partitions_.insert(partition);
        }
        const TaskProgress& pr = state->progress;
        // Windows its last owner emitted are closed here too: their records are late.
        const int64_t claimed_bound = std::max(pr.enforced, state->emitted_before);
        if (pr.max_event_time != kNoWatermark) {
          std::lock_guard<std::mutex> events(event_mu_);
          auto [it, inserted] = committed_event_times_.try_emplace({source, partition}, pr.max_event_time);
          if (!inserted) it->second = std::max(it->second, pr.max_event_time);
        }
        if (claimed_bound != kNoWatermark) {
          int64_t have = claimed_enforced_.load();
          while (claimed_bound > have && !claimed_enforced_.compare_exchange_weak(have, claimed_bound)) {
          }
          workers_[worker]->PublishClosedBound(claimed_bound);
        }
        spdlog::info("{}[{}]: task claimed (fence {}): {} held record(s), {} open window row(s), "
                     "event time {}",
                     source, partition, claim->fence, state->held.size(), open_rows,
                     pr.max_event_time == kNoWatermark ? std::string("none") : FormatTimestamp(pr.max_event_time));
        {
          // Kept here too until the worker's handoff includes them (CollectTaskStates).
          std::lock_guard<std::mutex> held(claimed_held_mu_);
          std::vector<HeldRecord> copy = state->held;
          const int64_t batch = workers_[worker]->AddClaimedHeld(std::move(state->held));
          if (batch > 0) claimed_held_[worker].emplace_back(batch, std::move(copy));
        }
        break;
      }
    }
    // As LookupCommitted: no guess is safe, wait for the sink.
    if (stop_.load() || force_stop_.load()) {
      positions_uncertain_.store(true);
      spdlog::warn("{}[{}]: its task cannot be claimed while stopping ({}); nothing more is committed by this run",
                   source, partition, claim.status().ToString());
      return std::nullopt;
    }
    if (failures % 10 == 0) {
      spdlog::warn("{}[{}] was assigned but its task cannot be claimed in the sink: {}; waiting for the sink "
                   "(retry in {} ms)", source, partition, claim.status().ToString(), backoff_ms);
    }
    const int64_t wake = SteadyClockMicros() + backoff_ms * 1000;
    while (SteadyClockMicros() < wake && !stop_.load() && !force_stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(50, backoff_ms)));
    }
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
  }
  // Read after the claim: no commit of an earlier owner can land any more.
  return LookupCommitted(source, partition);
}

StageTwoMerge& Runner::StageTwoFor(int32_t partition) {
  std::unique_ptr<StageTwoMerge>& m = stage_two_tasks_[partition];
  if (!m) {
    m = std::make_unique<StageTwoMerge>(
        StageTwoOptions{plan_->aggregate.get(), options_.stage_two.upstreams, config_.source.name, partition});
  }
  return *m;
}

Status Runner::FeedStageTwo(CheckpointWork* work) {
  for (auto& [p, list] : work->stage_two) {
    StageTwoMerge& merge = StageTwoFor(p);
    for (auto& in : list) {
      Status s = merge.Add(std::move(in.record), in.offset);
      if (!s.ok()) {
        return s.WithContext("pipeline " + config_.name + ": " + config_.source.name + "[" + std::to_string(p) +
                             "] offset " + std::to_string(in.offset));
      }
    }
  }
  work->stage_two.clear();
  const int64_t now = WallClockMicros();
  for (auto& [p, merge] : stage_two_tasks_) {
    for (DeadLetter& d : merge->TakeDeadLetters()) {
      // Stage one's keep the time they were dead-lettered there; late partials get this one.
      if (d.time_micros == 0) d.time_micros = now;
      work->letters.push_back(std::move(d));
    }
  }
  return Status::OK();
}

Aggregator& Runner::TaskOpen(int32_t partition) {
  std::unique_ptr<Aggregator>& a = task_open_[partition];
  if (!a) a = std::make_unique<Aggregator>(plan_->aggregate.get());
  return *a;
}

void Runner::CollectTaskStates(CheckpointWork* work, std::set<int32_t> owned) {
  const AggregateSpec* spec = plan_->aggregate.get();
  const int64_t delay = spec ? spec->watermark_delay_micros : 0;
  std::set<int32_t> tasks = std::move(owned);
  for (int32_t p : work->revoked) tasks.insert(p);
  std::map<int32_t, TaskState> states;
  for (int32_t p : tasks) states[p];
  for (const auto& list : held_by_worker_) {
    for (const auto& h : list) {
      if (auto it = states.find(h.partition); it != states.end()) it->second.held.push_back(h);
    }
  }
  {
    // Held records of a task claimed after its worker's last handoff: not in it yet.
    std::lock_guard<std::mutex> lock(claimed_held_mu_);
    for (const auto& batches : claimed_held_) {
      for (const auto& [batch, list] : batches) {
        for (const auto& h : list) {
          if (auto it = states.find(h.partition); it != states.end()) it->second.held.push_back(h);
        }
      }
    }
  }
  const auto times = clock_ ? clock_->MaxEventTimes() : std::map<PipelineClock::Key, int64_t>();
  for (auto& [p, st] : states) {
    TaskProgress& pr = st.progress;
    if (auto t = times.find({config_.source.name, p}); t != times.end()) pr.max_event_time = t->second;
    if (auto it = partition_progress_.find(p); it != partition_progress_.end()) {
      pr.max_event_time = std::max(pr.max_event_time, it->second.first.max_event_time);
      pr.idle = it->second.first.idle;
      pr.enforced = it->second.second;
    }
    {
      // Claimed with this progress: a task not read since (no record yet, or its worker has not
      // handed over since the claim) keeps it rather than committing less, also when the clock
      // still holds an older view of it (another process's progress read before that process's
      // last commit). Progress never goes back.
      std::lock_guard<std::mutex> lock(event_mu_);
      if (auto c = committed_event_times_.find({config_.source.name, p}); c != committed_event_times_.end()) {
        pr.max_event_time = std::max(pr.max_event_time, c->second);
      }
    }
    pr.enforced = std::max(pr.enforced, claimed_enforced_.load());
    if (pr.max_event_time != kNoWatermark) pr.watermark = pr.max_event_time - delay;
    if (stage_one_) {
      // The task's control: its own watermark, or the closed bound its worker had applied at its
      // last handoff where that is higher (an idle task's, once the others passed it). Not
      // pr.enforced, which also holds bounds of tasks claimed since that the worker may not
      // have applied yet. And at least the bound its claim published to the worker, which the
      // worker enforces from the claim on: the last owner's controls may have carried it, and
      // a task claimed after its worker's last handoff (the worker handed over, then its Poll
      // claimed the task, then this collection saw it owned) has only its own restored
      // watermark here; lower than the last owner's control, it was stale to stage two
      // (ignored and counted; its `end` could never count).
      int64_t control = pr.watermark;
      if (auto it = partition_progress_.find(p); it != partition_progress_.end()) {
        control = std::max(control, it->second.second);
      }
      {
        std::lock_guard<std::mutex> lock(claims_mu_);
        if (auto it = claimed_control_floor_.find(p); it != claimed_control_floor_.end()) {
          control = std::max(control, it->second);
        }
      }
      auto [last, inserted] = last_control_watermarks_.try_emplace(p, control);
      if (inserted || last->second != control) work->state_changed = true;
      last->second = control;
      work->stage_one_watermarks[p] = control;
    }
    if (stage_two_) {
      // The merge's own state: open windows, emitted bound, the upstream vector, and as
      // progress the upstreams' minimum watermark and highest event time.
      st = StageTwoFor(p).State();  // pr refers to st.progress
    } else if (append_tasks_) {
      if (auto it = task_open_.find(p); it != task_open_.end()) st.open = it->second->Snapshot();
      if (auto it = task_emitted_.find(p); it != task_emitted_.end()) st.emitted_before = it->second;
    }
    std::string blob = st.Serialize(spec);
    auto last = last_task_states_.find(p);
    if (last == last_task_states_.end() || last->second != blob) work->state_changed = true;
    last_task_states_[p] = blob;
    work->task_progress[p] = pr;
    work->task_states[p] = std::move(blob);
  }
  for (int32_t p : work->revoked) {
    last_task_states_.erase(p);
    last_control_watermarks_.erase(p);
    if (stage_one_) {
      std::lock_guard<std::mutex> lock(claims_mu_);
      claimed_control_floor_.erase(p);
    }
    // Its open windows leave with this checkpoint, which releases the task: nothing of them may
    // be emitted here any more (the next owner emits them).
    task_open_.erase(p);
    task_emitted_.erase(p);
    stage_two_tasks_.erase(p);
    released_at_[p] = work->epoch;
  }
}

Status Runner::AddTaskCommits(const CheckpointWork& work, ::sluice::Checkpoint* cp,
                              std::vector<uint32_t>* row_tasks, std::vector<StageOneOutput>* stage_one) {
  std::set<int32_t> released(work.revoked.begin(), work.revoked.end());
  for (const auto& [p, state] : work.task_states) {
    auto owned = owned_.find(p);
    if (owned == owned_.end()) continue;  // not (or no longer) this process's
    TaskCommit t;
    t.task = TaskId{config_.source.name, p};
    t.fence = owned->second.fence;
    if (auto pr = work.task_progress.find(p); pr != work.task_progress.end()) t.progress = pr->second;
    t.state = state == owned->second.committed_state ? nullptr : &state;
    // The final checkpoint of a run releases every task: this process commits none of them
    // again, so the sink shows them without an owner (sluice status) until the next claim.
    t.release = released.count(p) > 0 || cp->final;
    cp->tasks.push_back(std::move(t));
  }
  if (stage_one_) {
    // Each task's partials of this checkpoint and its progress, in the order of cp->tasks. A
    // task's partials are only ever here: should the commit be fenced, the run starts again
    // from the committed positions and reads them again.
    stage_one->clear();
    stage_one->reserve(cp->tasks.size());
    std::vector<int32_t> partitions;
    partitions.reserve(cp->tasks.size());
    for (const TaskCommit& t : cp->tasks) {
      StageOneOutput out;
      // A Kafka source's partition id holds its topic's slot and the partition (kafka_ids.h).
      out.control.upstream = UpstreamOfPartitionId(t.task.partition);
      // Not only an idle task's: whatever its worker already judges late, stage two may emit.
      auto w = work.stage_one_watermarks.find(t.task.partition);
      out.control.watermark = w != work.stage_one_watermarks.end() ? w->second : t.progress.watermark;
      out.control.max_event_time = t.progress.max_event_time;
      out.control.idle = t.progress.idle;
      out.control.end = options_.until_caught_up && work.stage_one_ended.count(t.task.partition) > 0;
      stage_one->push_back(std::move(out));
      partitions.push_back(t.task.partition);
    }
    // Partials of a task not committed here cannot be left out while the positions (which go
    // with every checkpoint) pass their records: the checkpoint fails instead.
    RETURN_IF_ERROR(AssignStageOnePartials(partitions, work.stage_one_partials, stage_one)
                        .WithContext("checkpoint " + std::to_string(cp->id)));
    cp->stage_one = stage_one;
  }
  // Append mode on tasks: each row goes with the task whose windows it is (the Parquet sink
  // writes it under that task's files). A row whose task is not committed here cannot be (its
  // windows left with the task's release, or the task was lost with nothing of it uncommitted);
  // should one be, it goes with the first task, which the sink commits atomically with the rest.
  row_tasks->clear();
  if (!append_tasks_ || work.rows.empty() || cp->tasks.empty()) return Status::OK();
  if (work.row_partitions.size() != work.rows.size()) {
    spdlog::warn("checkpoint {}: {} rows but {} row partitions; every row goes with the first task", cp->id,
                 work.rows.size(), work.row_partitions.size());
    return Status::OK();
  }
  std::map<int32_t, uint32_t> index;
  for (size_t i = 0; i < cp->tasks.size(); ++i) index.emplace(cp->tasks[i].task.partition, static_cast<uint32_t>(i));
  row_tasks->reserve(work.rows.size());
  size_t strays = 0;
  for (int32_t p : work.row_partitions) {
    auto it = index.find(p);
    strays += it == index.end();
    row_tasks->push_back(it == index.end() ? 0 : it->second);
  }
  if (strays > 0) {
    spdlog::warn("checkpoint {}: {} rows of tasks it does not commit go with the first task", cp->id, strays);
  }
  cp->row_tasks = row_tasks;
  return Status::OK();
}

void Runner::ReadRemoteProgress() {
  auto rows = sink_->LoadTaskProgress();
  if (!rows.ok()) {
    spdlog::debug("reading the tasks' progress from the sink failed: {}", rows.status().ToString());
    return;
  }
  std::vector<TaskRow> others;
  for (auto& row : *rows) {
    if (row.task.source != config_.source.name || owned_.count(row.task.partition)) continue;
    others.push_back(std::move(row));
  }
  std::lock_guard<std::mutex> lock(remote_mu_);
  remote_progress_ = std::move(others);
  remote_progress_fresh_ = true;
}

void Runner::FoldRemoteProgress() {
  std::vector<TaskRow> rows;
  {
    std::lock_guard<std::mutex> lock(remote_mu_);
    if (!remote_progress_fresh_) return;
    rows.swap(remote_progress_);
    remote_progress_fresh_ = false;
  }
  if (!clock_) return;
  const int64_t now = SteadyClockMicros();
  for (const auto& row : rows) {
    clock_->Committed({row.task.source, row.task.partition}, row.progress.max_event_time, row.progress.idle,
                      row.progress.enforced, now);
  }
}

Status Runner::DropLostTasks(const std::vector<int32_t>& lost) {
  // The commit in flight may carry them, under the fence they were claimed with: committed
  // (their next owner's claim came after it and takes it over) or fenced (the run ends as before).
  if (commit_.valid()) RETURN_IF_ERROR(commit_.get());
  const std::string& source = config_.source.name;
  auto held_of = [&](const std::string& blob) {
    std::vector<std::pair<int32_t, int64_t>> out;
    auto st = TaskState::Parse(blob, plan_->aggregate.get());
    if (st.ok()) {
      for (const HeldRecord& h : st->held) out.emplace_back(h.partition, h.offset);
    }
    return out;
  };
  std::string unsafe;
  {
    std::lock_guard<std::mutex> lock(sink_mu_);
    for (int32_t p : lost) {
      // Records handed over since the last commit (their position moved), or held records
      // applied or expired since (the held set changed): their results are merged into the
      // pending checkpoint's.
      auto handed = positions_.find({source, p});
      auto committed = committed_.find({source, p});
      bool uncommitted = handed != positions_.end() &&
                         (committed == committed_.end() || committed->second != handed->second);
      auto owned = owned_.find(p);
      if (!uncommitted && pending_ && owned != owned_.end()) {
        auto st = pending_->task_states.find(p);
        // With open windows per task (append mode, keyed_by) any change of the state may be a
        // window written into the pending checkpoint's rows: those rows cannot be taken out.
        uncommitted = st != pending_->task_states.end() && st->second != owned->second.committed_state &&
                      (append_tasks_ || held_of(st->second) != held_of(owned->second.committed_state));
      }
      if (uncommitted) unsafe += (unsafe.empty() ? "" : ", ") + std::to_string(p);
    }
    if (unsafe.empty()) {
      for (int32_t p : lost) {
        owned_.erase(p);
        committed_.erase({source, p});
        committed_.erase({source, kGenerationPartitionBase + p});
      }
    }
  }
  if (!unsafe.empty()) {
    return Status::Fenced("partition(s) " + unsafe + " of " + source +
                          " were taken away by the group (lost) while records read of them were handed to a "
                          "checkpoint not committed yet");
  }
  {
    std::lock_guard<std::mutex> lock(claims_mu_);
    for (int32_t p : lost) {
      owned_partitions_.erase(p);
      claimed_windows_.erase(p);
      claimed_control_floor_.erase(p);
    }
  }
  for (int32_t p : lost) {
    for (const std::pair<std::string, int32_t>& key :
         {std::pair(source, p), std::pair(source, kGenerationPartitionBase + p)}) {
      positions_.erase(key);
      if (pending_) pending_->positions.erase(key);
    }
    if (pending_) {
      pending_->task_states.erase(p);
      pending_->task_progress.erase(p);
      pending_->stage_one_watermarks.erase(p);
    }
    last_task_states_.erase(p);
    last_control_watermarks_.erase(p);
    partition_progress_.erase(p);
    // Append mode on tasks: its open windows are its next owner's now (claimed as committed).
    task_open_.erase(p);
    task_emitted_.erase(p);
    stage_two_tasks_.erase(p);
    if (pending_) {
      pending_->partition_deltas.erase(p);
      pending_->stage_two.erase(p);
      pending_->stage_one_partials.erase(p);
    }
  }
  {
    std::lock_guard<std::mutex> lock(claimed_held_mu_);
    const std::set<int32_t> gone(lost.begin(), lost.end());
    for (auto& batches : claimed_held_) {
      for (auto& [batch, list] : batches) {
        std::erase_if(list, [&](const HeldRecord& h) { return gone.count(h.partition) > 0; });
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.partitions_lost += static_cast<int64_t>(lost.size());
  }
  spdlog::debug("pipeline {}: {} lost partition(s) dropped uncommitted", config_.name, lost.size());
  return Status::OK();
}

std::map<int32_t, int64_t> Runner::LookupAllCommitted(const std::string& source) {
  std::map<int32_t, int64_t> out;
  std::lock_guard<std::mutex> lock(sink_mu_);
  auto stored = sink_->LoadPositions();
  if (!stored.ok()) {
    // Nothing is known then; the caller (a catch-up check) asks again later.
    spdlog::warn("reading positions from the sink failed: {}", stored.status().ToString());
    return out;
  }
  for (const auto& p : *stored) {
    if (p.source == source) out[p.partition] = p.offset;
  }
  return out;
}

void Runner::RequestHandoffs() {
  {
    std::lock_guard<std::mutex> lock(epoch_mu_);
    ++epoch_;
  }
  for (auto& w : workers_) w->RequestHandoff(epoch_);
}

void Runner::ReportEventTime(size_t i, const Handoff& h) {
  // A worker that handed over nothing new (finished earlier) keeps its last report.
  if (!needs_state_ || !clock_ || (h.progress.empty() && !h.input_ended && workers_[i]->finished())) {
    return;
  }
  const int64_t now = SteadyClockMicros();
  for (int32_t p : h.input_partitions) clock_->Know({config_.source.name, p}, kNoWatermark, now);
  clock_->Report(static_cast<int>(i), config_.source.name, h.progress, h.revoked, now);
  reports_[i].enforced = std::max(reports_[i].enforced, h.enforced);
  if (h.input_ended) {
    reports_[i].ended = true;
    clock_->WorkerEnded(static_cast<int>(i));
  }
  if (!tasks_ && group_managed_.load()) {
    WorkerReport& r = reports_[i];
    r.reading.clear();
    for (const auto& [p, progress] : h.progress) r.reading.insert(p);
    for (int32_t p : h.revoked) r.reading.erase(p);
    r.input.insert(h.input_partitions.begin(), h.input_partitions.end());
  }
}

void Runner::WarnIfSplitWithOneState(int64_t now) {
  std::set<int32_t> reading, input;
  for (const WorkerReport& r : reports_) {
    reading.insert(r.reading.begin(), r.reading.end());
    input.insert(r.input.begin(), r.input.end());
  }
  std::vector<int32_t> others;
  for (int32_t p : input) {
    if (!reading.count(p)) others.push_back(p);
  }
  // Nothing read yet (a start, a rebalance under way) says nothing about other members.
  if (reading.empty() || others.empty()) {
    partial_since_micros_ = 0;
    return;
  }
  if (partial_since_micros_ == 0) partial_since_micros_ = now;
  constexpr int64_t kSettle = 10'000'000;        // a rebalance has settled by then
  constexpr int64_t kEvery = 5 * 60'000'000LL;   // then once every 5 minutes
  if (now - partial_since_micros_ < kSettle) return;
  if (partial_warned_micros_ != 0 && now - partial_warned_micros_ < kEvery) return;
  partial_warned_micros_ = now;
  split_with_one_state_warnings_.fetch_add(1);
  std::string list;
  for (int32_t p : others) list += (list.empty() ? "" : ", ") + std::to_string(p);
  const std::string why = open_ ? std::string("append mode keeps its open windows in one state for all processes")
                                : "sink " + config_.sink.uri + " keeps one state for all processes (no state per partition)";
  spdlog::warn("pipeline {}: another member of its consumer group reads partition(s) {} of {}, but {}: "
               "results can be inexact while several processes run it; run it as one process "
               "(README, \"To scale out\")",
               config_.name, list, config_.source.name, why);
}

Status Runner::CollectHandoffs(CheckpointWork* work) {
  std::vector<std::vector<DeltaRow>> parts;
  for (size_t i = 0; i < workers_.size(); ++i) {
    // While draining, a worker blocked in its source (a close that does not return) must not
    // hold the stop beyond shutdown_timeout; its handoff is left uncommitted.
    std::optional<Handoff> taken = workers_[i]->TakeHandoff(epoch_, [this] { return DrainExpired(); });
    if (!taken) return Abandon("worker " + std::to_string(i) + " did not hand over its work", CommitInFlight());
    Handoff h = std::move(*taken);
    if (h.held_reported) {
      work->held_changed = work->held_changed || !h.held.empty() || !held_by_worker_[i].empty();
      held_by_worker_[i] = std::move(h.held);
      std::lock_guard<std::mutex> lock(claimed_held_mu_);
      std::erase_if(claimed_held_[i], [&](const auto& b) { return b.first <= h.claimed_taken; });
    }
    ReportEventTime(i, h);
    if (stage_one_ && options_.until_caught_up) {
      // Its source reached the end offsets seen at start: its tasks' controls say so, until a
      // worker that reads on hands one of them over.
      for (const auto& [p, pr] : h.progress) {
        if (h.input_done) {
          ended_partitions_.insert(p);
        } else {
          ended_partitions_.erase(p);
        }
      }
      work->stage_one_ended = ended_partitions_;
    }
    if (tasks_) {
      for (const auto& [p, pr] : h.progress) partition_progress_[p] = {pr, h.enforced};
    }
    if (!h.deltas.empty()) parts.push_back(std::move(h.deltas));
    for (auto& [p, list] : h.partition_deltas) {
      if (!list.empty()) work->partition_deltas[p].push_back(std::move(list));
    }
    for (auto& [p, list] : h.stage_two) {
      std::vector<RepartitionInput>& to = work->stage_two[p];
      for (auto& r : list) to.push_back(std::move(r));
    }
    for (auto& r : h.rows) work->rows.push_back(std::move(r));
    for (auto& d : h.dead_letters) work->letters.push_back(std::move(d));
    for (const auto& [p, o] : h.positions) positions_[{config_.source.name, p}] = o;
    if (tasks_ && !group_managed_.load()) {
      // A partition the source read without asking for its position first: its task is
      // claimed now, so its state is committed with it from this checkpoint on.
      for (const auto& [p, o] : h.positions) {
        if (p >= kIdentityPartitionBase) continue;
        bool owned = false;
        {
          std::lock_guard<std::mutex> lock(claims_mu_);
          owned = owned_partitions_.count(p) > 0;
        }
        if (!owned) ClaimPartition(i, config_.source.name, p);
      }
    }
    for (int32_t p : h.revoked) work->revoked.push_back(p);
    for (int32_t p : h.lost) work->lost.push_back(p);
  }
  // Judged once every worker has reported: between two reports of one collection, a partition
  // moving from one worker to another was read by neither.
  if (needs_state_ && clock_ && !tasks_ && group_managed_.load()) WarnIfSplitWithOneState(SteadyClockMicros());
  if (!parts.empty() && plan_->aggregate) MergeParts(std::move(parts), work);
  return Status::OK();
}

void Runner::MergeParts(std::vector<std::vector<DeltaRow>>&& parts, CheckpointWork* work) const {
  if (parts.size() == 1) {
    work->deltas = std::move(parts[0]);
    work->deltas_sorted = false;
    return;
  }
  // In update mode the merged rows go to the commit only, which wants them sorted: merge in
  // order. With open windows (open_) they are merged into the open groups first, whose order
  // the stored state keeps: as before.
  if (!open_ && MergeDeltasInOrder(*plan_->aggregate, &parts, &work->deltas)) {
    work->deltas_sorted = true;
    return;
  }
  work->deltas = MergeDeltas(*plan_->aggregate, std::move(parts));
  work->deltas_sorted = false;
}

void Runner::Absorb(CheckpointWork* into, CheckpointWork&& later) const {
  into->epoch = later.epoch;
  // Positions only grow; a partition revoked earlier keeps its last position.
  for (auto& [key, offset] : later.positions) into->positions[key] = offset;
  if (into->deltas.empty()) {
    into->deltas = std::move(later.deltas);
    into->deltas_sorted = later.deltas_sorted;
  } else if (!later.deltas.empty()) {
    std::vector<std::vector<DeltaRow>> parts;
    parts.push_back(std::move(into->deltas));
    parts.push_back(std::move(later.deltas));
    MergeParts(std::move(parts), into);
  }
  for (auto& [p, partials] : later.stage_one_partials) {
    std::vector<DeltaRow>& have = into->stage_one_partials[p];
    if (have.empty()) {
      have = std::move(partials);
    } else if (!partials.empty()) {
      std::vector<std::vector<DeltaRow>> both;
      both.push_back(std::move(have));
      both.push_back(std::move(partials));
      have = MergeDeltas(*plan_->aggregate, std::move(both));
    }
  }
  for (auto& r : later.rows) into->rows.push_back(std::move(r));
  into->row_partitions.insert(into->row_partitions.end(), later.row_partitions.begin(), later.row_partitions.end());
  for (auto& d : later.letters) into->letters.push_back(std::move(d));
  for (int32_t p : later.revoked) into->revoked.push_back(p);
  if (stage_one_ && options_.until_caught_up) into->stage_one_ended = std::move(later.stage_one_ended);
  into->held_changed = into->held_changed || later.held_changed;
  into->state_changed = into->state_changed || later.state_changed;
  // The state is the engine's as of the later collection, which includes the earlier one.
  into->state = std::move(later.state);
  into->event_times = std::move(later.event_times);
  // A task released by the earlier collection keeps its (last) state in it.
  for (auto& [p, pr] : later.task_progress) into->task_progress[p] = pr;
  for (const auto& [p, w] : later.stage_one_watermarks) into->stage_one_watermarks[p] = w;
  for (auto& [p, st] : later.task_states) into->task_states[p] = std::move(st);
}

void Runner::AdvanceEventTime(CheckpointWork* work) {
  bool all_ended = false;  // every bounded input is exhausted: all open windows are emitted
  const int64_t watermark_before = window_.watermark;
  const size_t open_before = open_ ? open_->size() : 0;
  work->state_changed = (open_ && !work->deltas.empty()) || work->held_changed;
  std::set<int32_t> owned;  // the tasks this process owns, as of this collection
  if (tasks_) {
    std::map<int32_t, ClaimedWindows> claimed;
    // The committed epoch is read before the owned tasks: MarkCommitted drops a released task
    // from owned_partitions_ before it raises committed_epoch_, so a release committed between
    // the two reads is seen in one of them.
    int64_t committed_epoch = 0;
    {
      std::lock_guard<std::mutex> lock(epoch_mu_);
      committed_epoch = committed_epoch_;
    }
    {
      std::lock_guard<std::mutex> lock(claims_mu_);
      owned = owned_partitions_;
      claimed.swap(claimed_windows_);
    }
    {
      // A task released by a collection whose commit has not landed yet is no longer this
      // process's to write or emit (it stays in owned_partitions_ until that commit).
      for (auto it = released_at_.begin(); it != released_at_.end();) {
        if (it->second <= committed_epoch) {
          it = released_at_.erase(it);
        } else {
          owned.erase(it->first);
          ++it;
        }
      }
    }
    for (auto& [p, c] : claimed) {
      // The claim's windows are the task's, as committed: they replace what this process may
      // still hold of an earlier ownership. A task lost or released since is not ours.
      task_open_.erase(p);
      task_emitted_.erase(p);
      stage_two_tasks_.erase(p);
      if (owned.count(p) == 0) continue;
      if (stage_two_) {
        TaskState st;
        st.open = std::move(c.open);
        st.emitted_before = c.emitted_before;
        st.upstreams = std::move(c.upstreams);
        if (Status s = StageTwoFor(p).Restore(std::move(st)); !s.ok()) {
          stage_two_tasks_.erase(p);
          std::lock_guard<std::mutex> lock(epoch_mu_);
          if (claim_error_.ok()) {
            claim_error_ = s.WithContext("pipeline " + config_.name + ": " + config_.source.name + "[" +
                                         std::to_string(p) + "] in " + config_.sink.uri);
          }
          positions_uncertain_.store(true);  // nothing of this run may be committed
        }
        continue;
      }
      TaskOpen(p).Merge(std::move(c.open));
      task_emitted_[p] = c.emitted_before;
    }
    for (auto& [p, parts] : work->partition_deltas) {
      if (stage_one_) {
        // Drained: what this checkpoint read of the task leaves with it as partials.
        work->stage_one_partials[p] = MergeDeltas(*plan_->aggregate, std::move(parts));
        work->state_changed = true;
        continue;
      }
      for (auto& d : parts) TaskOpen(p).Merge(std::move(d));
    }
    work->partition_deltas.clear();
    if (stage_two_) {
      if (Status s = FeedStageTwo(work); !s.ok()) {
        std::lock_guard<std::mutex> lock(epoch_mu_);
        if (claim_error_.ok()) claim_error_ = s;
        positions_uncertain_.store(true);  // nothing of this run may be committed
      }
    }
  }
  if (plan_->aggregate) {
    std::set<int32_t> close = owned;
    close.insert(work->revoked.begin(), work->revoked.end());
    std::vector<int32_t> closed_partitions;
    std::vector<std::vector<Value>> closed =
        AdvanceWindows(open_ ? std::move(work->deltas) : std::vector<DeltaRow>(), &all_ended, close,
                       append_tasks_ ? &closed_partitions : nullptr);
    if (open_) work->deltas.clear();
    work->state_changed = work->state_changed || !closed.empty() ||
                          window_.watermark != watermark_before ||
                          (open_ && open_->size() != open_before);
    for (auto& r : closed) work->rows.push_back(std::move(r));
    work->row_partitions.insert(work->row_partitions.end(), closed_partitions.begin(), closed_partitions.end());
  }
  if (tasks_) {
    CollectTaskStates(work, std::move(owned));
    int64_t open_windows = 0;
    for (const auto& [p, a] : task_open_) open_windows += static_cast<int64_t>(a->size());
    for (const auto& [p, m] : stage_two_tasks_) open_windows += static_cast<int64_t>(m->open_groups());
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.watermark_micros = window_.watermark;
    stats_.open_windows = open_windows;
    return;
  }
  WindowState snapshot;
  for (const auto& list : held_by_worker_) {
    snapshot.held.insert(snapshot.held.end(), list.begin(), list.end());
  }
  snapshot.watermark = window_.watermark;
  snapshot.closed_before = window_.closed_before;
  snapshot.max_event_times = clock_ ? clock_->MaxEventTimes() : window_.max_event_times;
  work->event_times = snapshot.max_event_times;
  if (open_) snapshot.open = open_->Snapshot();
  work->state = snapshot.Serialize(plan_->aggregate.get());
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.watermark_micros = window_.watermark;
  stats_.open_windows = open_ ? static_cast<int64_t>(open_->size()) : 0;
}

void Runner::MarkCommitted(const CheckpointWork& work) {
  // (positions_ forgot the revoked partitions when the work was collected.)
  for (int32_t p : work.revoked) {
    std::lock_guard<std::mutex> lock(sink_mu_);  // LookupCommitted reads it on worker threads
    committed_.erase({config_.source.name, p});
    if (tasks_) {
      // Released with this commit: its next owner claims it (this process too, later).
      owned_.erase(p);
      std::lock_guard<std::mutex> claims(claims_mu_);
      owned_partitions_.erase(p);
    }
    // --reset-source: this run has now written p's position, so the sink's is no longer stale.
    // Should p come back (a rebalance), it resumes from the sink, not from the beginning.
    if (forgetting_ && config_.source.name == options_.reset_source) reset_written_.insert(p);
  }
  std::lock_guard<std::mutex> lock(epoch_mu_);
  committed_epoch_ = std::max(committed_epoch_, work.epoch);
  epoch_cv_.notify_all();
}

::sluice::Checkpoint Runner::MakeSinkCheckpoint(CheckpointWork* work, bool final,
                                                int64_t dead_letter_length) {
  ::sluice::Checkpoint cp;
  cp.id = work->epoch;
  cp.deltas = &work->deltas;
  cp.rows = &work->rows;
  cp.state = needs_state_ && !tasks_ ? &work->state : nullptr;
  cp.final = final;
  for (const auto& [key, offset] : work->positions) cp.positions.push_back({key.first, key.second, offset});
  if (dead_letters_) {
    cp.positions.push_back({dead_letter_key_, 0, dead_letter_length});
  } else {
    cp.dead_letters = &work->letters;
  }
  return cp;
}

Status Runner::CommitWithRetries(CheckpointWork* work, bool final, int64_t* sink_rejected_total) {
  int64_t backoff_ms = 100;
  // Several dead letters of one record are told apart by their order (the sink's key). Stage
  // two forwards stage one's dead letters ('D' records, named by stage one's source) with the
  // order stage one gave them: two letters of one record can arrive in different checkpoints
  // of stage two, and numbering them again per checkpoint would give both seq 0, so the sink
  // would keep one of them.
  std::map<std::tuple<std::string, int32_t, int64_t>, int32_t> seen;
  for (auto& d : work->letters) {
    if (stage_two_ && d.source != config_.source.name) continue;
    d.seq = seen[{d.source, d.partition, d.offset}]++;
  }
  int64_t dead_letter_length = dead_letters_ ? dead_letters_->length() : 0;
  bool letters_written = !dead_letters_;
  while (true) {
    Status s;
    if (!letters_written) {
      auto len = dead_letters_->Append(config_.name, work->letters);
      if (len.ok()) {
        dead_letter_length = *len;
        letters_written = true;
      } else {
        s = len.status();
      }
    }
    if (letters_written) {
      ::sluice::Checkpoint cp = MakeSinkCheckpoint(work, final, dead_letter_length);
      std::vector<uint32_t> row_tasks;
      std::vector<StageOneOutput> stage_one;
      std::lock_guard<std::mutex> lock(sink_mu_);
      if (tasks_) s = AddTaskCommits(*work, &cp, &row_tasks, &stage_one);
      if (s.ok()) s = sink_->Commit(cp);
      if (s.ok()) {
        *sink_rejected_total = sink_->RowsRejected();
        for (const TaskCommit& t : cp.tasks) {
          auto it = owned_.find(t.task.partition);
          if (t.state && it != owned_.end()) it->second.committed_state = *t.state;
        }
        if (tasks_ && group_managed_.load()) ReadRemoteProgress();
      }
    }
    if (s.ok()) return s;
    if (s.code() == StatusCode::kFenced) {
      // Another process claimed one of this process's tasks: what it holds of them is stale,
      // and no retry can commit it.
      if (group_managed_.load()) {
        return Status::Fenced("partitions moved to another process while this one was cut off (" + s.message() +
                              ")");
      }
      return Status::Fenced("another process took over this pipeline's input in " + config_.sink.uri +
                            "; a source no consumer group shares out (a file, a table, a generator) is read "
                            "by one process (" + s.message() + ")");
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      ++stats_.checkpoint_failures;
      ++stats_.sink_retries;
      stats_.sink_healthy = false;
    }
    if (force_stop_.load()) {
      return s.WithContext("checkpoint abandoned on forced stop (the next run replays it)");
    }
    if (DrainExpired()) return Abandon("the checkpoint kept failing: " + s.ToString(), false);
    // kFailedPrecondition: the sink's stored state says this process must not go on (a legacy
    // state row next to task rows: an older sluice still running); no retry changes that.
    if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kInternal ||
        s.code() == StatusCode::kFailedPrecondition) {
      return s.WithContext("checkpoint");
    }
    spdlog::warn("checkpoint {} failed: {}; retrying in {} ms", work->epoch, s.ToString(), backoff_ms);
    // Sleep in slices: a stop's shutdown_timeout may run out meanwhile.
    const int64_t wake = SteadyClockMicros() + backoff_ms * 1000;
    while (SteadyClockMicros() < wake && !DrainExpired()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(50, backoff_ms)));
    }
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
  }
}

void Runner::PublishCommitted(const CheckpointWork& work) {
  {
    std::lock_guard<std::mutex> lock(sink_mu_);  // LookupCommitted reads it on worker threads
    committed_ = work.positions;
  }
  if (needs_state_) {
    // Before MarkCommitted(): a worker that gave up partitions waits for it, and their next
    // owner here restores from this.
    std::lock_guard<std::mutex> lock(event_mu_);
    for (const auto& [key, t] : work.event_times) {
      auto [it, inserted] = committed_event_times_.try_emplace(key, t);
      if (!inserted) it->second = std::max(it->second, t);
    }
  }
  MarkCommitted(work);
  std::map<int32_t, int64_t> by_partition;
  for (const auto& [key, offset] : committed_) by_partition[key.second] = offset;
  for (auto& w : workers_) w->NotifyCommitted(by_partition);
}

void Runner::RecordCheckpointStats(const CheckpointWork& work, int64_t sink_rejected_total,
                                   int64_t duration_micros) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  ++stats_.checkpoints;
  const int64_t refused = sink_rejected_total - stats_.sink_rejected;
  stats_.sink_rejected += refused;
  stats_.rows_written += static_cast<int64_t>(work.deltas.size() + work.rows.size()) - refused;
  if (const std::optional<SinkRowCounts> c = sink_->LastCommitRowCounts()) {
    stats_.row_counts_known = true;
    stats_.rows_inserted += c->inserted;
    stats_.rows_updated += c->updated;
    stats_.rows_unchanged += c->unchanged;
  }
  // Each partition's committed position and watermark, for /api/status and /metrics.
  for (const auto& [key, offset] : work.positions) {
    if (key.first != config_.source.name || offset < 0) continue;
    committed_partitions_.try_emplace(key.second, -1, kNoWatermark).first->second.first = offset;
  }
  // Tasks commit each partition's watermark with its progress (stage two: its upstreams'
  // lowest); otherwise the state stores each partition's highest event time.
  const int64_t delay = plan_->aggregate ? plan_->aggregate->watermark_delay_micros : 0;
  for (const auto& [key, t] : work.event_times) {
    if (tasks_ || key.first != config_.source.name || t == kNoWatermark) continue;
    int64_t& w = committed_partitions_.try_emplace(key.second, -1, kNoWatermark).first->second.second;
    w = std::max(w, t - delay);
  }
  for (const auto& [p, progress] : work.task_progress) {
    if (progress.watermark == kNoWatermark) continue;
    int64_t& w = committed_partitions_.try_emplace(p, -1, kNoWatermark).first->second.second;
    w = std::max(w, progress.watermark);
  }
  stats_.last_checkpoint_micros = WallClockMicros();
  stats_.last_checkpoint_duration_micros = duration_micros;
  stats_.checkpoint_duration_total_micros += duration_micros;
  stats_.sink_healthy = true;
}

Status Runner::CollectPending(bool releases_every_task) {
  RequestHandoffs();
  CheckpointWork work;
  work.epoch = epoch_;
  RETURN_IF_ERROR(CollectHandoffs(&work));
  if (!work.lost.empty()) RETURN_IF_ERROR(DropLostTasks(work.lost));
  // The revoked partitions' last positions go with this checkpoint, and with no later one:
  // another process may own them by then.
  work.positions = positions_;
  for (int32_t p : work.revoked) positions_.erase({config_.source.name, p});
  if (releases_every_task || !work.revoked.empty()) ReadRemoteProgressBeforeRelease();
  if (tasks_) FoldRemoteProgress();
  if (needs_state_) AdvanceEventTime(&work);
  if (!pending_) {
    pending_ = std::make_unique<CheckpointWork>(std::move(work));
  } else {
    Absorb(pending_.get(), std::move(work));
  }
  return Status::OK();
}

Status Runner::StartCommit() {
  std::unique_ptr<CheckpointWork> work = std::move(pending_);
  collected_while_committing_ = false;
  if (!work) return Status::OK();
  // Nothing new since the last commit (no commit is in flight, so committed_ is current). A
  // revoke with nothing new still commits when tasks are kept: it releases them in the sink.
  if (work->deltas.empty() && work->rows.empty() && work->letters.empty() && work->stage_one_partials.empty() &&
      work->positions == committed_ && !work->state_changed && (!tasks_ || work->revoked.empty())) {
    MarkCommitted(*work);
    if ((append_tasks_ || stage_one_) && group_managed_.load()) {
      // Its windows close by the other processes' progress too: a process with nothing new to
      // commit still reads it (after a commit it is read anyway), or its windows would wait for
      // its own next record. Stage one likewise: an idle task's control carries the bound its
      // worker enforces, which rises only with the others' progress, and stage two's minimum
      // counts idle upstreams, so a process whose partitions stay empty would hold every window
      // back for good if it stopped reading that progress.
      std::lock_guard<std::mutex> lock(sink_mu_);
      ReadRemoteProgress();
    }
    return Status::OK();
  }
  if (positions_uncertain_.load()) {
    {
      // A claim that failed says why itself (a state that cannot be used, a task another
      // worker of this process still holds).
      std::lock_guard<std::mutex> lock(epoch_mu_);
      if (!claim_error_.ok()) return claim_error_;
    }
    // A partition was assigned while the sink could not be read: what was read of it may
    // start behind the committed position. The next run starts from the sink's positions.
    return Status::Aborted("a partition was assigned while the sink could not be read; this "
                           "checkpoint is not committed (the next run goes on from the sink's "
                           "positions)");
  }
  commit_ = std::async(std::launch::async, [this, w = std::move(work)]() mutable {
    return CommitWork(w.get(), /*final=*/false);
  });
  return Status::OK();
}

Status Runner::WaitForCommit() {
  if (!commit_.valid()) return Status::OK();
  return commit_.get();
}

void Runner::ReadRemoteProgressBeforeRelease() {
  if (!append_tasks_ || !group_managed_.load()) return;
  // A released task's windows that the pipeline's bound closes now are written by this
  // collection, the others go to its next owner. The bound counts the other processes'
  // progress as committed now, not as read after this process's last commit (or a checkpoint
  // interval ago): an --until-caught-up run releases its tasks when it sees the others'
  // positions at the end offsets, and the progress committed with them can be newer than
  // what it read last; with the older one, windows the final watermarks close stayed open in
  // the released tasks until the next run.
  std::lock_guard<std::mutex> lock(sink_mu_);
  ReadRemoteProgress();
}

Status Runner::FinalCheckpoint() {
  RETURN_IF_ERROR(WaitForCommit());
  RETURN_IF_ERROR(CollectPending(/*releases_every_task=*/true));
  std::unique_ptr<CheckpointWork> work = std::move(pending_);
  // The last checkpoint of a run is always committed: a sink that buffers output flushes it.
  if (positions_uncertain_.load()) {
    return Status::Aborted("a partition was assigned while the sink could not be read; this "
                           "checkpoint is not committed (the next run goes on from the sink's "
                           "positions)");
  }
  RETURN_IF_ERROR(CommitWork(work.get(), /*final=*/true));
  spdlog::debug("final checkpoint {} committed", work->epoch);
  return Status::OK();
}

Status Runner::CommitWork(CheckpointWork* work, bool final) {
  // A fixed order makes concurrent writers lock rows in the same order.
  if (!work->deltas_sorted) SortDeltas(&work->deltas);
  const auto started = std::chrono::steady_clock::now();
  int64_t sink_rejected_total = 0;
  RETURN_IF_ERROR(CommitWithRetries(work, final, &sink_rejected_total));
  PublishCommitted(*work);
  UpdateStoredDeadLetters(!work->letters.empty(), final);
  if (commit_observer_) commit_observer_(work->deltas, work->rows);
  const int64_t duration = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count();
  RecordCheckpointStats(*work, sink_rejected_total, duration);
  return Status::OK();
}

void Runner::LoadStoredDeadLetters() {
  const int64_t started = SteadyClockMicros();
  Result<std::map<std::string, int64_t>> counted = std::map<std::string, int64_t>();
  if (dead_letters_) {
    // The file was cut back to its committed length when opened, and is appended to by this
    // thread only: all of it is committed.
    auto data = ReadFile(dead_letters_->path());
    if (!data.ok()) {
      counted = data.status();
    } else {
      DeadLetterTally tally;
      Status s = TallyDeadLetterLines(*data, config_.name, 0, &tally);
      counted = s.ok() ? Result<std::map<std::string, int64_t>>(std::move(tally.by_reason))
                       : Result<std::map<std::string, int64_t>>(s);
    }
  } else if (auto* reader = dynamic_cast<SinkReader*>(sink_.get())) {
    std::lock_guard<std::mutex> lock(sink_mu_);
    counted = reader->CountDeadLetters();
  } else {
    stored_letters_unreadable_ = true;  // Kafka: not read back (yet)
    return;
  }
  // The next count waits at least 5 s, and 20 times as long as this one took, so counting a
  // large store costs the checkpoints at most about 5% of their time.
  const int64_t took = SteadyClockMicros() - started;
  next_letters_count_micros_ = SteadyClockMicros() + std::max<int64_t>(5'000'000, 20 * took);
  if (!counted.ok()) {
    if (counted.status().code() == StatusCode::kFailedPrecondition) {
      stored_letters_unreadable_ = true;
      spdlog::debug("stored dead letters are not counted: {}", counted.status().message());
      return;
    }
    spdlog::warn("counting the stored dead letters in {} failed: {}; trying again after a later "
                 "checkpoint", dead_letter_location(), counted.status().ToString());
    return;
  }
  letters_count_stale_ = false;
  std::lock_guard<std::mutex> lock(stats_mu_);
  stored_letters_ = std::move(counted).value();
  stored_letters_known_ = true;
}

void Runner::UpdateStoredDeadLetters(bool committed_letters, bool final) {
  if (stored_letters_unreadable_) return;
  // Counted again from the store rather than adding this commit's letters: the store may have
  // kept fewer (a letter whose key is already stored is not stored twice) or more (another
  // process of the pipeline), and the gauge must say what it holds.
  if (committed_letters) letters_count_stale_ = true;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    if (!stored_letters_known_) letters_count_stale_ = true;
  }
  if (!letters_count_stale_) return;
  if (!final && SteadyClockMicros() < next_letters_count_micros_) return;
  LoadStoredDeadLetters();
}

StoredDeadLetterCounts Runner::StoredDeadLetters() const {
  StoredDeadLetterCounts out;
  out.location = dead_letter_location();
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    out.known = stored_letters_known_;
    if (out.known) out.by_reason.assign(stored_letters_.begin(), stored_letters_.end());
  }
  std::stable_sort(out.by_reason.begin(), out.by_reason.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

std::string Runner::dead_letter_location() const {
  if (!dead_letter_path_.empty()) return dead_letter_path_;
  return sink_->DeadLetterLocation();
}

bool Runner::FailedOpeningSource() const {
  std::lock_guard<std::mutex> lock(topology_mu_);
  for (const auto& w : workers_) {
    if (w->setup_failed()) return true;
  }
  return false;
}

PipelineSnapshot Runner::Snapshot() const {
  PipelineSnapshot s;
  std::map<int32_t, std::pair<int64_t, int64_t>> committed;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    s = stats_;
    committed = committed_partitions_;
  }
  // A sink that watches its connection says so before the next commit fails (Healthy() may be
  // called from any thread).
  if (sink_ && !sink_->Healthy()) s.sink_healthy = false;
  std::lock_guard<std::mutex> topology(topology_mu_);
  for (const auto& c : counters_) {
    s.records_in += c->records_in.load(std::memory_order_relaxed);
    s.bytes_in += c->bytes_in.load(std::memory_order_relaxed);
    s.aggregated += c->aggregated.load(std::memory_order_relaxed);
    s.ignored += c->ignored.load(std::memory_order_relaxed);
    s.dead_lettered += c->dead_lettered.load(std::memory_order_relaxed);
    s.decode_errors += c->decode_errors.load(std::memory_order_relaxed);
    s.late += c->late.load(std::memory_order_relaxed);
    s.late_windows += c->late_windows.load(std::memory_order_relaxed);
    s.lookup_misses += c->lookup_misses.load(std::memory_order_relaxed);
    s.source_errors += c->source_errors.load(std::memory_order_relaxed);
    s.backpressure_waits += c->backpressure_waits.load(std::memory_order_relaxed);
    s.max_event_time = std::max(s.max_event_time, c->max_event_time.load(std::memory_order_relaxed));
    s.held += c->held.load(std::memory_order_relaxed);
  }
  for (size_t k = 0; k < step_counts_.size() && k < plan_->steps.size(); ++k) {
    const Step& step = *plan_->steps[k];
    const StepCounting counting = step.counting();
    if (counting != StepCounting::kIgnored && counting != StepCounting::kDeadLettered) continue;
    StepDescription d;
    step.Describe(&d);
    const int64_t n = step_counts_[k].load(std::memory_order_relaxed);
    (counting == StepCounting::kIgnored ? s.ignored_by_reason : s.dead_lettered_by_reason)
        .emplace_back(d.reason, n);
  }
  // A partition reported by two workers (one that finished or lost it in a rebalance, one that
  // reads it now) counts once, at the furthest position.
  std::map<int32_t, PipelineSnapshot::PartitionInfo> partitions;
  if (s.sink_rejected > 0) {
    s.dead_lettered += s.sink_rejected;
    s.dead_lettered_by_reason.emplace_back("sink_rejected", s.sink_rejected);
  }
  for (const auto& w : workers_) {
    for (const auto& p : w->Partitions()) {
      auto [it, fresh] = partitions.emplace(p.partition, p);
      if (!fresh && p.position >= it->second.position) it->second = p;
    }
    AddSourceCounters(w->SourceCounters(), &s.source_counters);
  }
  for (const auto& [id, c] : committed) {
    if (c.first >= 0) s.committed_positions.emplace_back(id, c.first);
  }
  for (auto& [id, p] : partitions) {
    if (auto c = committed.find(id); c != committed.end()) {
      p.committed = c->second.first;
      p.watermark_micros = c->second.second;
    }
    s.partitions.push_back(p);
  }
  for (const auto& [name, dim] : plan_->dimensions) {
    const Dimension::Stats d = dim->stats();
    s.dimensions.push_back({name, d.size, d.versions, d.changes, d.last_update_micros, d.lag_micros,
                            d.refresh_errors, d.misses});
  }
  return s;
}

}  // namespace sluice
