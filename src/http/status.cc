#include "http/status.h"

#include <algorithm>
#include <climits>

#include "core/json_builder.h"

namespace sluice::http {

void StatusHistory::Add(const PipelineSnapshot& s, int64_t now_micros) {
  StatusSample x;
  x.t_micros = now_micros;
  x.records_in = s.records_in;
  x.bytes_in = s.bytes_in;
  x.aggregated = s.aggregated;
  x.ignored = s.ignored;
  x.dead_lettered = s.dead_lettered;
  x.late = s.late;
  x.checkpoints = s.checkpoints;
  x.checkpoint_failures = s.checkpoint_failures;
  x.rows_written = s.rows_written;
  for (const auto& p : s.partitions) {
    if (p.lag >= 0) x.lag = (x.lag < 0 ? 0 : x.lag) + p.lag;
  }
  x.watermark_micros = s.watermark_micros;
  x.last_checkpoint_duration_micros = s.last_checkpoint_duration_micros;
  std::lock_guard<std::mutex> lock(mu_);
  if (s.checkpoints != last_checkpoints_) {
    last_checkpoints_ = s.checkpoints;
    records_at_checkpoint_ = s.records_in;
  }
  samples_.push_back(x);
  while (samples_.size() > capacity_) samples_.pop_front();
}

std::vector<StatusSample> StatusHistory::Samples() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {samples_.begin(), samples_.end()};
}

int64_t StatusHistory::records_at_last_checkpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_at_checkpoint_;
}

Readiness CheckReadiness(const PipelineSnapshot& s, int64_t now_micros,
                         int64_t checkpoint_interval_micros, int64_t records_at_last_checkpoint) {
  Readiness r;
  if (s.state != "running")
    r.reasons.push_back("pipeline is " + (s.state.empty() ? std::string("starting") : s.state));
  if (s.state == "running" && s.workers <= 0) r.reasons.push_back("no worker running");
  if (!s.sink_healthy) r.reasons.push_back("sink not reachable (last commit failed)");
  const int64_t grace = std::max<int64_t>(3 * checkpoint_interval_micros, 10'000'000);
  const int64_t since = s.last_checkpoint_micros > 0 ? s.last_checkpoint_micros : s.started_micros;
  const bool pending = records_at_last_checkpoint >= 0 && s.records_in > records_at_last_checkpoint;
  if (s.state == "running" && since > 0 && pending && now_micros - since > grace) {
    r.reasons.push_back("no checkpoint for " + std::to_string((now_micros - since) / 1'000'000) +
                        " s while records arrive");
  }
  r.ready = r.reasons.empty();
  return r;
}

namespace {

/// Returns the per-second rate of `field` between the last sample and the one about `window`
/// microseconds before it.
template <typename F>
double Rate(const std::vector<StatusSample>& h, int64_t window, F field) {
  if (h.size() < 2) return 0;
  const StatusSample& last = h.back();
  size_t i = h.size() - 1;
  while (i > 0 && last.t_micros - h[i - 1].t_micros <= window) --i;
  if (i == h.size() - 1) i = h.size() - 2;
  const double dt = static_cast<double>(last.t_micros - h[i].t_micros) / 1e6;
  if (dt <= 0) return 0;
  return static_cast<double>(field(last) - field(h[i])) / dt;
}

}  // namespace

std::string RenderStatusJson(const PipelineSnapshot& s, const StatusInfo& info,
                             const std::vector<StatusSample>& history, const Readiness& readiness,
                             int64_t now_micros, size_t max_points,
                             const StoredDeadLetterCounts& stored) {
  JsonBuilder j;
  j.BeginObject();
  j.Key("pipeline").String(info.pipeline);
  j.Key("source").String(info.source);
  j.Key("sink").String(info.sink);
  j.Key("version").String(info.version);
  j.Key("state").String(s.state.empty() ? "starting" : s.state);
  j.Key("now_micros").Int(now_micros);
  j.Key("started_micros").Int(s.started_micros);
  j.Key("uptime_seconds").Double(s.started_micros > 0 ? (now_micros - s.started_micros) / 1e6 : 0);
  j.Key("workers").Int(s.workers);
  j.Key("checkpoint_interval_seconds").Double(info.checkpoint_interval_micros / 1e6);
  j.Key("ready").Bool(readiness.ready);
  j.Key("not_ready_reasons").BeginArray();
  for (const auto& reason : readiness.reasons) j.String(reason);
  j.EndArray();

  j.Key("counts").BeginObject();
  j.Key("records_in").Int(s.records_in);
  j.Key("bytes_in").Int(s.bytes_in);
  j.Key("aggregated").Int(s.aggregated);
  j.Key("ignored").Int(s.ignored);
  j.Key("dead_lettered").Int(s.dead_lettered);
  j.Key("decode_errors").Int(s.decode_errors);
  j.Key("late").Int(s.late);
  j.Key("late_windows").Int(s.late_windows);
  j.Key("lookup_misses").Int(s.lookup_misses);
  j.Key("source_errors").Int(s.source_errors);
  j.Key("backpressure_waits").Int(s.backpressure_waits);
  j.Key("rows_written").Int(s.rows_written);
  j.EndObject();

  constexpr int64_t kRateWindow = 5'000'000;
  j.Key("rates").BeginObject();
  j.Key("records_in_per_second").Double(Rate(history, kRateWindow, [](const StatusSample& x) {
    return x.records_in;
  }));
  j.Key("bytes_in_per_second").Double(Rate(history, kRateWindow, [](const StatusSample& x) {
    return x.bytes_in;
  }));
  j.Key("aggregated_per_second").Double(Rate(history, kRateWindow, [](const StatusSample& x) {
    return x.aggregated;
  }));
  j.Key("ignored_per_second").Double(Rate(history, kRateWindow, [](const StatusSample& x) {
    return x.ignored;
  }));
  j.Key("dead_lettered_per_second").Double(Rate(history, kRateWindow, [](const StatusSample& x) {
    return x.dead_lettered;
  }));
  j.Key("rows_written_per_second").Double(Rate(history, kRateWindow, [](const StatusSample& x) {
    return x.rows_written;
  }));
  j.EndObject();

  auto reasons = [&](const char* key, const std::vector<std::pair<std::string, int64_t>>& v) {
    j.Key(key).BeginArray();
    for (const auto& [reason, n] : v)
      j.BeginObject().Key("reason").String(reason).Key("count").Int(n).EndObject();
    j.EndArray();
  };
  reasons("ignored_by_reason", s.ignored_by_reason);
  reasons("dead_lettered_by_reason", s.dead_lettered_by_reason);
  // The store's dead letters across runs (null when they cannot be read back).
  j.Key("stored_dead_letters");
  if (stored.known) {
    int64_t total = 0;
    for (const auto& [reason, n] : stored.by_reason) total += n;
    j.BeginObject();
    j.Key("location").String(stored.location);
    j.Key("total").Int(total);
    reasons("by_reason", stored.by_reason);
    j.EndObject();
  } else {
    j.Null();
  }

  // The source's own counters, named as on /metrics without "sluice_" and "_total".
  j.Key("source_counters").BeginArray();
  for (const SourceCounter& c : s.source_counters) {
    j.BeginObject().Key("name").String(c.name).Key("kind");
    c.kind.empty() ? j.Null() : j.String(c.kind);
    j.Key("value").Int(c.value).EndObject();
  }
  j.EndArray();

  int64_t total_lag = -1;
  j.Key("partitions").BeginArray();
  for (const auto& p : s.partitions) {
    j.BeginObject();
    // A source reading several topics: the topic and its partition, not the id.
    if (!p.input.empty()) j.Key("topic").String(p.input);
    j.Key("partition").Int(p.input.empty() ? p.partition : p.input_partition);
    j.Key("position").Int(p.position).Key("lag");
    if (p.lag >= 0) {
      j.Int(p.lag);
      total_lag = (total_lag < 0 ? 0 : total_lag) + p.lag;
    } else {
      j.Null();
    }
    // What this process committed for it last, and the partition's own watermark then.
    j.Key("committed");
    p.committed >= 0 ? j.Int(p.committed) : j.Null();
    j.Key("watermark_micros");
    p.watermark_micros != INT64_MIN ? j.Int(p.watermark_micros) : j.Null();
    j.EndObject();
  }
  j.EndArray();
  j.Key("total_lag");
  total_lag >= 0 ? j.Int(total_lag) : j.Null();

  j.Key("watermark").BeginObject();
  j.Key("timestamp_micros");
  s.watermark_micros != INT64_MIN ? j.Int(s.watermark_micros) : j.Null();
  j.Key("delay_seconds");
  s.watermark_micros != INT64_MIN ? j.Double((now_micros - s.watermark_micros) / 1e6) : j.Null();
  j.Key("max_event_time_micros");
  s.max_event_time != INT64_MIN ? j.Int(s.max_event_time) : j.Null();
  j.Key("open_windows").Int(s.open_windows);
  j.EndObject();

  j.Key("checkpoints").BeginObject();
  j.Key("count").Int(s.checkpoints);
  j.Key("failures").Int(s.checkpoint_failures);
  j.Key("sink_retries").Int(s.sink_retries);
  j.Key("sink_healthy").Bool(s.sink_healthy);
  j.Key("last_micros");
  s.last_checkpoint_micros > 0 ? j.Int(s.last_checkpoint_micros) : j.Null();
  j.Key("age_seconds");
  s.last_checkpoint_micros > 0 ? j.Double((now_micros - s.last_checkpoint_micros) / 1e6) : j.Null();
  j.Key("last_duration_seconds").Double(s.last_checkpoint_duration_micros / 1e6);
  j.Key("mean_duration_seconds")
      .Double(s.checkpoints > 0
                  ? s.checkpoint_duration_total_micros / 1e6 / static_cast<double>(s.checkpoints)
                  : 0);
  j.EndObject();

  // Columns of the history, oldest first; watermark delay and lag are null where unknown.
  const size_t from = history.size() > max_points ? history.size() - max_points : 0;
  auto column = [&](const char* key, auto value) {
    j.Key(key).BeginArray();
    for (size_t i = from; i < history.size(); ++i) value(history[i]);
    j.EndArray();
  };
  j.Key("history").BeginObject();
  column("t", [&](const StatusSample& x) { j.Int(x.t_micros / 1000); });
  column("records_in", [&](const StatusSample& x) { j.Int(x.records_in); });
  column("aggregated", [&](const StatusSample& x) { j.Int(x.aggregated); });
  column("ignored", [&](const StatusSample& x) { j.Int(x.ignored); });
  column("dead_lettered", [&](const StatusSample& x) { j.Int(x.dead_lettered); });
  column("checkpoints", [&](const StatusSample& x) { j.Int(x.checkpoints); });
  column("checkpoint_failures", [&](const StatusSample& x) { j.Int(x.checkpoint_failures); });
  column("checkpoint_duration_ms",
         [&](const StatusSample& x) { j.Double(x.last_checkpoint_duration_micros / 1e3); });
  column("lag", [&](const StatusSample& x) { x.lag >= 0 ? j.Int(x.lag) : j.Null(); });
  column("watermark_delay_seconds", [&](const StatusSample& x) {
    x.watermark_micros != INT64_MIN ? j.Double((x.t_micros - x.watermark_micros) / 1e6) : j.Null();
  });
  j.EndObject();
  j.EndObject();
  return j.Take();
}

}  // namespace sluice::http
