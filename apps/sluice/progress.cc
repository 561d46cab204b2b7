#include "progress.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "core/json_writer.h"
#include "logging.h"
#include "core/uri.h"

namespace sluice::cli {
namespace {

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// "4s", "3m05s", "1h02m".
std::string Duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  }
  return buf;
}

/// "743.1 MB": a byte count for the live bar.
std::string Bytes(int64_t b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? std::to_string(b) + " B" : Fixed(v, 1) + " " + units[u];
}

/// "1 checkpoint", "3 checkpoints".
std::string Checkpoints(int64_t n) {
  return Thousands(n) + (n == 1 ? " checkpoint" : " checkpoints");
}

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

/// {"reason": count, ...} and "reason: count, ..." of the reasons with a count.
std::string ReasonsJson(const std::vector<std::pair<std::string, int64_t>>& reasons) {
  std::string out = "{";
  for (const auto& [reason, n] : reasons) {
    if (out.size() > 1) out += ',';
    out += Json(reason) + ":" + std::to_string(n);
  }
  return out + "}";
}

std::string ReasonsText(const std::vector<std::pair<std::string, int64_t>>& reasons) {
  std::string out;
  for (const auto& [reason, n] : reasons) {
    if (n == 0) continue;
    out += (out.empty() ? "" : ", ") + reason + ": " + Thousands(n);
  }
  return out;
}

std::string PartitionsJson(const PipelineSnapshot& s) {
  std::string out = "[";
  for (const auto& p : s.partitions) {
    if (out.size() > 1) out += ',';
    // A source reading several topics: the topic and its partition, not the id.
    out += '{';
    if (!p.input.empty()) {
      out += "\"topic\":";
      AppendJsonString(p.input, &out);
      out += ',';
    }
    out += "\"partition\":" + std::to_string(p.input.empty() ? p.partition : p.input_partition) + ",\"position\":" +
           std::to_string(p.position) + ",\"lag\":" + std::to_string(p.lag) +
           (p.end >= 0 ? ",\"end\":" + std::to_string(p.end) : std::string()) + "}";
  }
  return out + "]";
}

/// What happened: done, caught_up, interrupted, nothing_new, stopped or failed.
std::string Outcome(const PipelineSnapshot& s, const RunEnd& end) {
  if (!end.status.ok()) return "failed";
  if (!end.signal.empty()) return "interrupted";
  if (s.records_in == 0) return "nothing_new";
  return end.until_caught_up ? "caught_up" : "done";
}

/// Where the source stands, in words: "byte 1,234 of data/x.ndjson" or "partition 0 offset 12".
std::string PositionText(const PipelineSnapshot& s, const Progress& p) {
  if (p.file && p.position >= 0) return "byte " + Thousands(p.position) + " of " + p.source;
  std::string out;
  for (const auto& part : s.partitions) {
    out += (out.empty() ? "" : ", ") +
           (part.input.empty() ? std::string("partition ") + std::to_string(part.partition)
                               : part.input + "[" + std::to_string(part.input_partition) + "]") +
           " offset " + Thousands(part.position);
  }
  return out.empty() ? p.source : p.source + " " + out;
}

/// "rows upserted" (stored rows merged or replaced by key: inserted and updated rows are not
/// told apart) or "rows appended" (files and topics).
bool Appends(const PipelineConfig& config) {
  const std::string scheme = SplitUri(config.sink.uri).first;
  return scheme == "parquet" || scheme == "kafka";
}

}  // namespace

std::string Thousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

Progress MeasureProgress(const PipelineSnapshot& s, const PipelineConfig& config,
                         double elapsed_seconds, double recent_rate) {
  Progress p;
  p.pipeline = config.name;
  p.source = config.source.uri;
  const std::string scheme = SplitUri(config.source.uri).first;
  p.file = scheme == "file";
  p.kafka = scheme == "kafka";
  p.records_in = s.records_in;
  p.bytes_in = s.bytes_in;
  p.ignored = s.ignored;
  p.dead_lettered = s.dead_lettered;
  p.checkpoints = s.checkpoints;
  p.elapsed_seconds = elapsed_seconds;
  p.records_per_second =
      recent_rate >= 0 ? recent_rate : s.records_in / std::max(elapsed_seconds, 1e-9);
  int64_t position = 0, lag = 0;
  bool lag_known = !s.partitions.empty();
  for (const auto& part : s.partitions) {
    position += part.position;
    if (part.lag < 0) lag_known = false;
    lag += std::max<int64_t>(part.lag, 0);
  }
  if (p.file && !s.partitions.empty()) {
    p.position = position;
    if (lag_known) {
      p.total = position + lag;
      p.percent = p.total > 0 ? 100.0 * static_cast<double>(position) / static_cast<double>(p.total)
                              : 100.0;
      const double byte_rate = s.bytes_in / std::max(elapsed_seconds, 1e-9);
      if (byte_rate > 0) p.eta_seconds = static_cast<double>(lag) / byte_rate;
    }
  } else if (lag_known) {
    p.lag = lag;
    // Kafka: the backlog at the recent rate (one record a message).
    if (lag > 0 && p.records_per_second > 0) {
      p.eta_seconds = static_cast<double>(lag) / p.records_per_second;
    }
  }
  return p;
}

std::string ProgressText(const Progress& p) {
  std::string out = "progress " + p.pipeline + ": ";
  if (p.percent >= 0) {
    out += Fixed(p.percent, 1) + "% of " + p.source + " (" + Thousands(p.position) + " of " +
           Thousands(p.total) + " bytes), ";
  }
  out += Thousands(p.records_in) + " records (" +
         Thousands(static_cast<int64_t>(p.records_per_second)) + "/s)";
  if (p.eta_seconds >= 0) out += ", ETA " + Duration(p.eta_seconds);
  if (p.lag >= 0) out += ", lag " + Thousands(p.lag) + " messages";
  out += ", " + Thousands(p.ignored) + " ignored, " + Thousands(p.dead_lettered) +
         " dead-lettered, " + Checkpoints(p.checkpoints);
  return out;
}

namespace {

JsonFields ProgressFields(const Progress& p, const PipelineSnapshot& s) {
  JsonFields f;
  f.Add("event", "progress").Add("pipeline", p.pipeline).Add("source", p.source);
  f.Add("records_in", p.records_in).Add("bytes_in", p.bytes_in);
  f.Add("records_per_second", p.records_per_second);
  if (p.position >= 0) f.Add("position", p.position);
  if (p.total >= 0) f.Add("total_bytes", p.total);
  if (p.percent >= 0) f.Add("percent", p.percent);
  if (p.eta_seconds >= 0) f.Add("eta_seconds", p.eta_seconds);
  if (p.lag >= 0) f.Add("lag", p.lag);
  f.Add("ignored", p.ignored).Add("dead_lettered", p.dead_lettered).Add("checkpoints", p.checkpoints);
  f.AddRaw("partitions", PartitionsJson(s));
  return f;
}

/// "recruitment [######......] 57.3% 425.0 MB/743.1 MB 254,738 rec/s ETA 4s".
std::string BarLine(const Progress& p) {
  std::string out = p.pipeline + " ";
  if (p.percent >= 0) {
    constexpr int kWidth = 24;
    const int filled = std::clamp(static_cast<int>(p.percent / 100.0 * kWidth), 0, kWidth);
    out += "[" + std::string(static_cast<size_t>(filled), '#') +
           std::string(static_cast<size_t>(kWidth - filled), '.') + "] " + Fixed(p.percent, 1) +
           "% " + Bytes(p.position) + "/" + Bytes(p.total) + " ";
  }
  out += Thousands(p.records_in) + " records " +
         Thousands(static_cast<int64_t>(p.records_per_second)) + " rec/s";
  if (p.eta_seconds >= 0) out += " ETA " + Duration(p.eta_seconds);
  if (p.lag >= 0) out += " lag " + Thousands(p.lag);
  if (p.dead_lettered > 0) out += " " + Thousands(p.dead_lettered) + " dead-lettered";
  return out;
}

}  // namespace

void ProgressReporter::Start() {
  if (options_.quiet || (!options_.bar && options_.interval_seconds <= 0)) return;
  thread_ = std::thread([this] { Loop(); });
}

void ProgressReporter::Stop() {
  done_ = true;
  if (thread_.joinable()) thread_.join();
}

void ProgressReporter::Loop() {
  using Clock = std::chrono::steady_clock;
  const auto period = options_.bar ? std::chrono::milliseconds(250)
                                   : std::chrono::milliseconds(static_cast<int64_t>(
                                         options_.interval_seconds * 1000));
  auto next = Clock::now() + period;
  // The rate shown is over the last few seconds (the average hides a stall).
  auto last_time = started_;
  int64_t last_records = 0;
  double rate = -1;
  bool drawn = false;
  while (!done_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = Clock::now();
    if (now < next) continue;
    next += period;
    const PipelineSnapshot s = runner_->Snapshot();
    const double dt = std::chrono::duration<double>(now - last_time).count();
    if (dt >= (options_.bar ? 1.0 : 0.0)) {
      rate = (s.records_in - last_records) / std::max(dt, 1e-9);
      last_time = now;
      last_records = s.records_in;
    }
    const double elapsed = std::chrono::duration<double>(now - started_).count();
    const Progress p = MeasureProgress(s, runner_->config(), elapsed, rate);
    if (options_.bar) {
      std::fprintf(stderr, "\r\033[K%s", BarLine(p).c_str());
      std::fflush(stderr);
      drawn = true;
    } else {
      if (options_.stage.empty()) {
        LogWithFields(spdlog::level::info, ProgressText(p), ProgressFields(p, s));
      } else {
        // A repartitioned pipeline's stage: named in the text and as the field `stage`.
        Progress named = p;
        named.pipeline += " (" + options_.stage + ")";
        JsonFields fields = ProgressFields(p, s);
        fields.Add("stage", options_.stage);
        LogWithFields(spdlog::level::info, ProgressText(named), fields);
      }
    }
  }
  if (drawn) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
}

namespace {

/// The progress of a finished run. A file run that read nothing stopped at the end of the file
/// it found (no poll consumed anything, so no position was reported): its position is the size.
Progress FinalProgress(const PipelineSnapshot& s, const PipelineConfig& config, const RunEnd& end) {
  Progress p = MeasureProgress(s, config, end.seconds);
  if (p.file && p.position < 0 && Outcome(s, end) == "nothing_new") {
    struct stat st;
    if (::stat(SplitUri(config.source.uri).second.c_str(), &st) == 0) {
      p.position = p.total = static_cast<int64_t>(st.st_size);
      p.percent = 100.0;
    }
  }
  return p;
}

}  // namespace

std::string SummaryText(const PipelineSnapshot& s, const PipelineConfig& config,
                        const std::string& dead_letter_path, const RunEnd& end) {
  const Progress p = FinalProgress(s, config, end);
  const std::string outcome = Outcome(s, end);
  std::string out = config.name + ": " + Thousands(s.records_in) + " records in " +
                    Fixed(end.seconds, 2) + "s (" +
                    Thousands(static_cast<int64_t>(p.records_per_second)) + "/s): ";
  if (outcome == "failed") {
    out += "failed";
  } else if (outcome == "interrupted") {
    out += "interrupted by " + end.signal;
    if (p.percent >= 0) out += " at " + Fixed(p.percent, 1) + "% of " + p.source;
    out += " (the next run continues from " + PositionText(s, p) + ")";
  } else if (outcome == "nothing_new") {
    out += "nothing new since " + PositionText(s, p);
  } else if (outcome == "caught_up") {
    out += "caught up at " + PositionText(s, p);
  } else {
    out += "done";
    if (p.file && p.total >= 0) out += ", read " + p.source + " to its end (" + Thousands(p.total) + " bytes)";
  }
  out += "\n  " + Thousands(s.aggregated) + " aggregated, " + Thousands(s.ignored) + " ignored";
  if (const std::string r = ReasonsText(s.ignored_by_reason); !r.empty()) out += " (" + r + ")";
  out += ", " + Thousands(s.dead_lettered) + " dead-lettered";
  if (const std::string r = ReasonsText(s.dead_lettered_by_reason); !r.empty()) out += " (" + r + ")";
  if (s.dead_lettered > 0) out += " -> " + dead_letter_path;
  if (s.decode_errors > 0) out += ", " + Thousands(s.decode_errors) + " undecodable";
  if (s.late > 0) out += ", " + Thousands(s.late) + " late";
  if (s.late_windows > 0) out += ", " + Thousands(s.late_windows) + " late windows skipped";
  out += "\n  output: " + config.sink.uri;
  if (!config.sink.table.empty()) out += " table " + config.sink.table;
  out += ": " + Thousands(s.rows_written) + (Appends(config) ? " rows appended" : " rows upserted");
  if (s.row_counts_known) {
    out += " (" + Thousands(s.rows_inserted) + " inserted, " + Thousands(s.rows_updated) +
           " updated";
    if (s.rows_unchanged > 0) out += ", " + Thousands(s.rows_unchanged) + " unchanged";
    out += ")";
  }
  out += " in " + Checkpoints(s.checkpoints);
  return out;
}

std::string SummaryJson(const PipelineSnapshot& s, const PipelineConfig& config,
                        const std::string& dead_letter_path, const RunEnd& end) {
  const Progress p = FinalProgress(s, config, end);
  JsonFields f;
  f.Add("event", "summary").Add("pipeline", config.name).Add("outcome", Outcome(s, end));
  if (!end.stage.empty()) f.Add("stage", end.stage);
  if (!end.signal.empty()) f.Add("signal", end.signal);
  if (!end.status.ok()) f.Add("error", end.status.ToString());
  f.Add("exit_code", end.exit_code).Add("seconds", end.seconds);
  f.Add("records_in", s.records_in).Add("bytes_in", s.bytes_in);
  f.Add("records_per_second", p.records_per_second);
  f.Add("source", config.source.uri);
  if (p.position >= 0) f.Add("position", p.position);
  if (p.total >= 0) f.Add("total_bytes", p.total);
  if (p.percent >= 0) f.Add("percent", p.percent);
  if (p.lag >= 0) f.Add("lag", p.lag);
  f.AddRaw("partitions", PartitionsJson(s));
  f.Add("aggregated", s.aggregated).Add("ignored", s.ignored);
  f.AddRaw("ignored_by_reason", ReasonsJson(s.ignored_by_reason));
  f.Add("dead_lettered", s.dead_lettered);
  f.AddRaw("dead_lettered_by_reason", ReasonsJson(s.dead_lettered_by_reason));
  f.Add("dead_letter_path", dead_letter_path);
  f.Add("decode_errors", s.decode_errors).Add("late", s.late).Add("late_windows", s.late_windows);
  f.Add("sink", config.sink.uri).Add("table", config.sink.table);
  f.Add(Appends(config) ? "rows_appended" : "rows_upserted", s.rows_written);
  if (s.row_counts_known) {
    f.Add("rows_inserted", s.rows_inserted).Add("rows_updated", s.rows_updated);
    f.Add("rows_unchanged", s.rows_unchanged);
  }
  f.Add("checkpoints", s.checkpoints);
  return "{" + f.str().substr(1) + "}";
}

}  // namespace sluice::cli
