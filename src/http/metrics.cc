#include "http/metrics.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "core/time.h"

namespace sluice::http {

std::string PrometheusWriter::EscapeLabel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PrometheusWriter::EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PrometheusWriter::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return FormatDouble(v);
}

void PrometheusWriter::Family(std::string_view name, std::string_view type, std::string_view help) {
  for (auto& [n, text] : families_) {
    if (n == name) {
      out_ = &text;
      return;
    }
  }
  families_.emplace_back(std::string(name), std::string());
  out_ = &families_.back().second;
  *out_ += "# HELP ";
  *out_ += name;
  *out_ += ' ';
  *out_ += EscapeHelp(help);
  *out_ += "\n# TYPE ";
  *out_ += name;
  *out_ += ' ';
  *out_ += type;
  *out_ += '\n';
}

void PrometheusWriter::Begin(std::string_view name, const Labels& labels) {
  if (out_ == nullptr) {
    families_.emplace(families_.begin(), std::string(), std::string());
    out_ = &families_.front().second;
  }
  *out_ += name;
  if (!labels.empty()) {
    *out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) *out_ += ',';
      first = false;
      *out_ += k;
      *out_ += "=\"";
      *out_ += EscapeLabel(v);
      *out_ += '"';
    }
    *out_ += '}';
  }
  *out_ += ' ';
}

void PrometheusWriter::Sample(std::string_view name, const Labels& labels, double value) {
  Begin(name, labels);
  *out_ += FormatValue(value);
  *out_ += '\n';
}

void PrometheusWriter::Sample(std::string_view name, const Labels& labels, int64_t value) {
  Begin(name, labels);
  *out_ += std::to_string(value);
  *out_ += '\n';
}

std::string PrometheusWriter::str() const {
  size_t size = 0;
  for (const auto& [name, text] : families_) size += text.size();
  std::string out;
  out.reserve(size);
  for (const auto& [name, text] : families_) out += text;
  return out;
}

namespace {

using Labels = PrometheusWriter::Labels;
constexpr double kMicros = 1e6;

/// The label sets most series carry: the pipeline, with its source or its sink, and the stage
/// (last; none for a pipeline of one stage).
struct PipelineLabels {
  std::string_view pipeline;
  std::string_view source;
  std::string_view stage;  ///< "": no stage label
  Labels p;   ///< pipeline
  Labels ps;  ///< pipeline, source
  Labels pk;  ///< pipeline, sink
  /// `labels` with the stage label added.
  Labels With(Labels labels) const {
    if (!stage.empty()) labels.emplace_back("stage", stage);
    return labels;
  }
};

PipelineLabels LabelsFor(const MetricsInfo& info, std::string_view stage) {
  PipelineLabels l;
  l.pipeline = info.pipeline;
  l.source = info.source;
  l.stage = stage;
  l.p = l.With({{"pipeline", l.pipeline}});
  l.ps = l.With({{"pipeline", l.pipeline}, {"source", info.source}});
  l.pk = l.With({{"pipeline", l.pipeline}, {"sink", info.sink}});
  return l;
}

/// Writes a counter family with its one sample.
void Counter(PrometheusWriter& w, std::string_view name, std::string_view help,
             const Labels& labels, int64_t v) {
  w.Family(name, "counter", help);
  w.Sample(name, labels, v);
}

/// Writes a gauge family with its one sample.
void Gauge(PrometheusWriter& w, std::string_view name, std::string_view help,
           const Labels& labels, double v) {
  w.Family(name, "gauge", help);
  w.Sample(name, labels, v);
}

/// Writes the binary's version.
void WriteBuildInfo(PrometheusWriter& w, const MetricsInfo& info) {
  w.Family("sluice_build_info", "gauge", "Version of the sluice binary (always 1).");
  w.Sample("sluice_build_info", {{"version", info.version}}, int64_t{1});
}

/// Writes the pipeline's state and its worker count.
void WritePipelineInfo(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  w.Family("sluice_pipeline_state", "gauge",
           "1 for the pipeline's current state (starting, running, draining, finished, failed).");
  const std::string state = s.state.empty() ? "starting" : s.state;
  for (const char* st : {"starting", "running", "draining", "finished", "failed"}) {
    w.Sample("sluice_pipeline_state", l.With({{"pipeline", l.pipeline}, {"state", st}}),
             int64_t{state == st ? 1 : 0});
  }
  Gauge(w, "sluice_pipeline_workers", "Worker threads of the pipeline.", l.p, s.workers);
}

/// Writes what the source read, its failed polls and the source's own counters.
void WriteSourceCounters(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  Counter(w, "sluice_source_records_total", "Records read from the source.", l.ps, s.records_in);
  Counter(w, "sluice_source_bytes_total", "Bytes of record payload read from the source.", l.ps,
          s.bytes_in);
  Counter(w, "sluice_source_errors_total", "Failed source polls (each retried with backoff).", l.ps,
          s.source_errors);
  // The source's own counters (sluice_http_requests_total, ...): one family per name, its
  // samples together, whatever order the source listed them in.
  std::vector<std::string_view> families;
  for (const SourceCounter& c : s.source_counters) {
    if (std::find(families.begin(), families.end(), c.name) == families.end()) {
      families.push_back(c.name);
    }
  }
  for (std::string_view family : families) {
    const std::string name = "sluice_" + std::string(family) + "_total";
    bool first = true;
    for (const SourceCounter& c : s.source_counters) {
      if (c.name != family) continue;
      if (first) w.Family(name, "counter", c.help);
      first = false;
      Labels labels{{"pipeline", l.pipeline}, {"source", l.source}};
      if (!c.kind.empty()) labels.emplace_back("kind", c.kind);
      w.Sample(name, l.With(std::move(labels)), c.value);
    }
  }
}

/// Writes the records ignored on purpose, by reason; what the reasons do not cover is "other".
void WriteIgnoredRecords(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  w.Family("sluice_records_ignored_total", "counter",
           "Records ignored on purpose (ignore_if and filter steps), by reason.");
  int64_t by_reason = 0;
  for (const auto& [reason, n] : s.ignored_by_reason) {
    w.Sample("sluice_records_ignored_total", l.With({{"pipeline", l.pipeline}, {"reason", reason}}), n);
    by_reason += n;
  }
  if (s.ignored > by_reason || s.ignored_by_reason.empty()) {
    w.Sample("sluice_records_ignored_total", l.With({{"pipeline", l.pipeline}, {"reason", "other"}}),
             s.ignored - by_reason);
  }
}

/// Writes what the store holds, across runs (read at start, kept current by each commit), by
/// reason. Reasons can carry values ("decode: field bid: 'x' ..."): past kMaxStoredReasons the
/// rest are summed under one label so a scrape stays bounded.
void WriteStoredDeadLetters(PrometheusWriter& w, const StoredDeadLetterCounts& stored,
                            const PipelineLabels& l) {
  if (!stored.known) return;
  constexpr size_t kMaxStoredReasons = 50;
  w.Family("sluice_dead_letters_stored", "gauge",
           "Dead letters of the pipeline in the sink's store (or its dead-letter file), by "
           "reason, across runs; the 50 most frequent reasons, the rest as \"(other reasons)\".");
  int64_t rest = 0;
  for (size_t i = 0; i < stored.by_reason.size(); ++i) {
    const auto& [reason, n] = stored.by_reason[i];
    if (i < kMaxStoredReasons) {
      w.Sample("sluice_dead_letters_stored", l.With({{"pipeline", l.pipeline}, {"reason", reason}}), n);
    } else {
      rest += n;
    }
  }
  if (stored.by_reason.size() > kMaxStoredReasons) {
    w.Sample("sluice_dead_letters_stored", l.With({{"pipeline", l.pipeline}, {"reason", "(other reasons)"}}),
             rest);
  }
}

/// Writes where the records went: aggregated, ignored, dead-lettered (and stored), late,
/// undecodable, missed by a lookup, and the waits for a slow sink.
void WriteRecordOutcomes(PrometheusWriter& w, const PipelineSnapshot& s,
                         const StoredDeadLetterCounts& stored, const PipelineLabels& l) {
  Counter(w, "sluice_records_aggregated_total",
          "Records that reached the aggregation (or the output without one).", l.p, s.aggregated);
  WriteIgnoredRecords(w, s, l);
  Counter(w, "sluice_records_dead_lettered_total",
          "Records written to the dead-letter output (decode errors, dead_letter_if, lookups).", l.p,
          s.dead_lettered);
  WriteStoredDeadLetters(w, stored, l);
  Counter(w, "sluice_records_late_total", "Records behind the watermark beyond the allowed lateness.",
          l.p, s.late);
  Counter(w, "sluice_late_windows_total",
          "Hopping windows a record missed because they were late, while other windows took it.",
          l.p, s.late_windows);
  Counter(w, "sluice_decode_errors_total", "Records that could not be decoded (dead-lettered).", l.p,
          s.decode_errors);
  Counter(w, "sluice_lookup_misses_total", "Dimension lookups that found no row.", l.p,
          s.lookup_misses);
  Counter(w, "sluice_backpressure_waits_total",
          "Times a worker paused its source because the sink was behind.", l.p,
          s.backpressure_waits);
}

/// Writes the rows the sink committed (inserted/updated/unchanged when it can tell), its
/// retries and whether it is up.
void WriteSinkMetrics(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  Counter(w, "sluice_sink_rows_written_total", "Rows (merged deltas or finished rows) committed.",
          l.pk, s.rows_written);
  if (s.row_counts_known) {
    Counter(w, "sluice_sink_rows_inserted_total", "Rows the sink's commits inserted as new.", l.pk,
            s.rows_inserted);
    Counter(w, "sluice_sink_rows_updated_total",
            "Rows the sink's commits updated (an existing key, values changed).", l.pk,
            s.rows_updated);
    Counter(w, "sluice_sink_rows_unchanged_total",
            "Rows the sink's commits found with the values they already had (MySQL).", l.pk,
            s.rows_unchanged);
  }
  Counter(w, "sluice_sink_retries_total", "Sink commits that failed and were retried.", l.pk,
          s.sink_retries);
  Gauge(w, "sluice_sink_up", "1 when the last sink operation succeeded, else 0.", l.pk,
        s.sink_healthy ? 1 : 0);
}

/// A partition's labels: its number (`id`, kept alive by the caller), and with a source reading
/// several topics the topic, with the topic's partition number in place of the internal id.
PrometheusWriter::Labels PartitionLabels(const PipelineSnapshot::PartitionInfo& part, const std::string& id,
                                         const PipelineLabels& l) {
  if (part.input.empty()) return l.With({{"pipeline", l.pipeline}, {"source", l.source}, {"partition", id}});
  return l.With({{"pipeline", l.pipeline}, {"source", l.source}, {"topic", part.input}, {"partition", id}});
}

/// The partition label's value: the id, or the topic's partition number (see PartitionLabels).
std::string PartitionNumber(const PipelineSnapshot::PartitionInfo& part) {
  return std::to_string(part.input.empty() ? part.partition : part.input_partition);
}

/// Writes each source partition's read position and, when known, its lag.
void WritePartitionMetrics(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  w.Family("sluice_source_partition_position", "gauge",
           "Next offset (or sequence number) to read in each source partition.");
  for (const auto& part : s.partitions) {
    const std::string id = PartitionNumber(part);
    w.Sample("sluice_source_partition_position", PartitionLabels(part, id, l), part.position);
  }
  w.Family("sluice_source_partition_lag_records", "gauge",
           "Records between the read position and the end of each partition (when known).");
  for (const auto& part : s.partitions) {
    if (part.lag < 0) continue;
    const std::string id = PartitionNumber(part);
    w.Sample("sluice_source_partition_lag_records", PartitionLabels(part, id, l), part.lag);
  }
  w.Family("sluice_source_partition_committed_position", "gauge",
           "Position committed in the sink for each source partition this process reads (when "
           "this process committed one).");
  for (const auto& part : s.partitions) {
    if (part.committed < 0) continue;
    const std::string id = PartitionNumber(part);
    w.Sample("sluice_source_partition_committed_position", PartitionLabels(part, id, l), part.committed);
  }
  w.Family("sluice_source_partition_watermark_timestamp_seconds", "gauge",
           "Each source partition's own event-time watermark as last committed (Unix seconds; "
           "stage two: the lowest of its upstream partitions').");
  for (const auto& part : s.partitions) {
    if (part.watermark_micros == INT64_MIN) continue;
    const std::string id = PartitionNumber(part);
    w.Sample("sluice_source_partition_watermark_timestamp_seconds", PartitionLabels(part, id, l),
             part.watermark_micros / kMicros);
  }
}

/// Writes the watermark, its delay behind `now_micros`, the newest event time, and what the
/// pipeline holds in memory (open windows, held records).
void WriteEventTimeMetrics(PrometheusWriter& w, const PipelineSnapshot& s, int64_t now_micros,
                           const PipelineLabels& l) {
  w.Family("sluice_watermark_timestamp_seconds", "gauge",
           "The pipeline's event-time watermark (Unix seconds).");
  if (s.watermark_micros != INT64_MIN) {
    w.Sample("sluice_watermark_timestamp_seconds", l.p, s.watermark_micros / kMicros);
  }
  w.Family("sluice_watermark_delay_seconds", "gauge",
           "Wall-clock time minus the event-time watermark.");
  if (s.watermark_micros != INT64_MIN) {
    w.Sample("sluice_watermark_delay_seconds", l.p, (now_micros - s.watermark_micros) / kMicros);
  }
  w.Family("sluice_max_event_timestamp_seconds", "gauge",
           "Highest event time seen so far (Unix seconds).");
  if (s.max_event_time != INT64_MIN) {
    w.Sample("sluice_max_event_timestamp_seconds", l.p, s.max_event_time / kMicros);
  }
  Gauge(w, "sluice_open_windows", "Groups held in memory until their window closes.", l.p,
        static_cast<double>(s.open_windows));
  Gauge(w, "sluice_records_held", "Records a lookup holds until their dimension key appears.", l.p,
        static_cast<double>(s.held));
}

/// Writes one family with a series per [dimension.NAME]: `value(d)` of each dimension for which
/// `present` (when given) is true.
template <typename ValueOf>
void WriteDimensionFamily(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l,
                          std::string_view name, std::string_view type, std::string_view help,
                          ValueOf value, bool (*present)(const PipelineSnapshot::DimensionInfo&)) {
  w.Family(name, type, help);
  for (const auto& d : s.dimensions) {
    if (present && !present(d)) continue;
    w.Sample(name, l.With({{"pipeline", l.pipeline}, {"dimension", d.name}}), value(d));
  }
}

/// Writes each dimension's size, changes, refresh errors, misses, last update and lag.
void WriteDimensionMetrics(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  WriteDimensionFamily(w, s, l, "sluice_dimension_rows", "gauge",
                       "Keys in the dimension's current snapshot.",
                       [](const auto& d) { return d.size; }, nullptr);
  WriteDimensionFamily(w, s, l, "sluice_dimension_updates_total", "counter",
                       "Dimension rows added, changed or deleted since the start.",
                       [](const auto& d) { return d.changes; }, nullptr);
  WriteDimensionFamily(w, s, l, "sluice_dimension_refresh_errors_total", "counter",
                       "Dimension refreshes that failed, and change records skipped.",
                       [](const auto& d) { return d.refresh_errors; }, nullptr);
  WriteDimensionFamily(w, s, l, "sluice_dimension_lookup_misses_total", "counter",
                       "Lookups in the dimension that found no row.",
                       [](const auto& d) { return d.misses; }, nullptr);
  WriteDimensionFamily(
      w, s, l, "sluice_dimension_last_update_timestamp_seconds", "gauge",
      "Wall-clock time the dimension last changed (Unix seconds).",
      [](const auto& d) { return d.last_update_micros / kMicros; },
      [](const PipelineSnapshot::DimensionInfo& d) { return d.last_update_micros > 0; });
  WriteDimensionFamily(
      w, s, l, "sluice_dimension_lag_seconds", "gauge",
      "How far the newest change seen in the dimension's source is behind now.",
      [](const auto& d) { return d.lag_micros / kMicros; },
      [](const PipelineSnapshot::DimensionInfo& d) { return d.lag_micros >= 0; });
}

/// Writes the checkpoints committed and failed, their durations, and the last one's time.
void WriteCheckpointMetrics(PrometheusWriter& w, const PipelineSnapshot& s, const PipelineLabels& l) {
  Counter(w, "sluice_checkpoints_total", "Checkpoints committed to the sink.", l.p, s.checkpoints);
  Counter(w, "sluice_checkpoint_failures_total", "Checkpoint commits that failed (then retried).",
          l.p, s.checkpoint_failures);
  Counter(w, "sluice_partitions_lost_total",
          "Source partitions the consumer group took away without a revoke (lost assignment), dropped "
          "uncommitted: their next owner reads again what was not committed.",
          l.ps, s.partitions_lost);
  Counter(w, "sluice_fenced_restarts_total",
          "Times `sluice run` started the pipeline again from the committed state after another process "
          "claimed partitions it still held (its commit was fenced).",
          l.p, s.fenced_restarts);
  w.Family("sluice_checkpoint_duration_seconds", "summary",
           "Time to write and commit a checkpoint, over the committed checkpoints.");
  w.Sample("sluice_checkpoint_duration_seconds_sum", l.p,
           s.checkpoint_duration_total_micros / kMicros);
  w.Sample("sluice_checkpoint_duration_seconds_count", l.p, s.checkpoints);
  Gauge(w, "sluice_last_checkpoint_duration_seconds", "Duration of the last committed checkpoint.",
        l.p, s.last_checkpoint_duration_micros / kMicros);
  w.Family("sluice_last_checkpoint_timestamp_seconds", "gauge",
           "Wall-clock time of the last committed checkpoint (Unix seconds).");
  if (s.last_checkpoint_micros > 0) {
    w.Sample("sluice_last_checkpoint_timestamp_seconds", l.p, s.last_checkpoint_micros / kMicros);
  }
}

/// Writes the standard process_* metrics the platform could read (negative: unknown, left out).
void WriteProcessMetrics(PrometheusWriter& w, const ProcessStats& process) {
  if (process.resident_bytes >= 0) {
    Gauge(w, "process_resident_memory_bytes", "Resident memory size in bytes.", {},
          static_cast<double>(process.resident_bytes));
  }
  if (process.virtual_bytes >= 0) {
    Gauge(w, "process_virtual_memory_bytes", "Virtual memory size in bytes.", {},
          static_cast<double>(process.virtual_bytes));
  }
  if (process.cpu_seconds >= 0) {
    w.Family("process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
    w.Sample("process_cpu_seconds_total", {}, process.cpu_seconds);
  }
  if (process.start_time_seconds >= 0) {
    Gauge(w, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          {}, process.start_time_seconds);
  }
  if (process.open_fds >= 0) {
    Gauge(w, "process_open_fds", "Number of open file descriptors.", {},
          static_cast<double>(process.open_fds));
  }
  if (process.max_fds >= 0) {
    Gauge(w, "process_max_fds", "Maximum number of open file descriptors.", {},
          static_cast<double>(process.max_fds));
  }
}

}  // namespace

std::string RenderMetrics(const PipelineSnapshot& s, const MetricsInfo& info,
                          const ProcessStats& process, int64_t now_micros,
                          const StoredDeadLetterCounts& stored) {
  return RenderMetrics({MetricsStage{&s, info, "", stored}}, process, now_micros);
}

std::string RenderMetrics(const std::vector<MetricsStage>& stages, const ProcessStats& process,
                          int64_t now_micros) {
  PrometheusWriter w;
  if (!stages.empty()) WriteBuildInfo(w, stages.front().info);
  for (const MetricsStage& stage : stages) {
    const PipelineSnapshot& s = *stage.snapshot;
    const PipelineLabels l = LabelsFor(stage.info, stage.stage);
    WritePipelineInfo(w, s, l);
    WriteSourceCounters(w, s, l);
    WriteRecordOutcomes(w, s, stage.stored, l);
    WriteSinkMetrics(w, s, l);
    WritePartitionMetrics(w, s, l);
    WriteEventTimeMetrics(w, s, now_micros, l);
    WriteDimensionMetrics(w, s, l);
    WriteCheckpointMetrics(w, s, l);
  }
  WriteProcessMetrics(w, process);
  return w.str();
}

}  // namespace sluice::http
