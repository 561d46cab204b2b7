#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "config/pipeline_config.h"
#include "core/status.h"
#include "runtime/runner.h"
#include "runtime/stats.h"

namespace sluice::cli {

/// Formats `v` with thousands separators: 1234567 -> "1,234,567".
std::string Thousands(int64_t v);

/// How far a run is, computed from a snapshot: the facts the live bar, the progress log lines
/// and the summary show.
struct Progress {
  std::string pipeline;
  std::string source;       ///< the source's URI
  bool file = false;        ///< a file source: position and total are bytes of the file
  bool kafka = false;       ///< a Kafka source: lag is messages behind the end offsets
  int64_t records_in = 0, bytes_in = 0;
  int64_t position = -1;    ///< files: bytes of the file read (committed or not); -1 unknown
  int64_t total = -1;       ///< files: the file's size when last measured; -1 unknown
  double percent = -1;      ///< files: position of total; -1 unknown
  int64_t lag = -1;         ///< Kafka: messages behind, summed over partitions; -1 unknown
  double records_per_second = 0;
  double eta_seconds = -1;  ///< files: time to the end at the current byte rate; -1 unknown
  int64_t ignored = 0, dead_lettered = 0, checkpoints = 0;
  double elapsed_seconds = 0;
};

/// Computes the progress of `config`'s run from `s`, `elapsed_seconds` after it started.
/// `recent_rate` (records/s over the last moments; < 0: use the average) is shown as is.
Progress MeasureProgress(const PipelineSnapshot& s, const PipelineConfig& config,
                         double elapsed_seconds, double recent_rate = -1);

/// One line of text, for logs: "progress recruitment: 57.3% of 743,112,000 bytes, ...".
std::string ProgressText(const Progress& p);

/// Settings of the progress display of `sluice run`.
struct ProgressOptions {
  bool quiet = false;             ///< no bar, no progress lines, no text summary
  double interval_seconds = 10;   ///< a progress log line this often (0: never) when not a tty
  bool bar = false;               ///< a live bar on stderr (stderr is a terminal, text logs)
  /// A repartitioned pipeline's stage ("stage one", "stage two"): named after the pipeline in
  /// each progress line; "" for a pipeline run as one stage.
  std::string stage;
};

/// Shows a run's progress while it runs: a live bar redrawn on stderr, or a log line (with the
/// facts as JSON fields under --log-format json) every interval.
class ProgressReporter {
 public:
  ProgressReporter(const Runner* runner, ProgressOptions options,
                   std::chrono::steady_clock::time_point started)
      : runner_(runner), options_(options), started_(started) {}
  ~ProgressReporter() { Stop(); }
  void Start();
  /// Stops the display and erases the bar.
  void Stop();

 private:
  void Loop();
  const Runner* runner_;
  ProgressOptions options_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// How a run ended, for its summary.
struct RunEnd {
  Status status;
  std::string signal;  ///< "SIGINT"/"SIGTERM" when a signal stopped it, else ""
  bool until_caught_up = false;
  bool follow = false;
  double seconds = 0;
  int exit_code = 0;
  std::string stage;  ///< a repartitioned pipeline's stage ("stage one"), else ""
};

/// The run's summary as text (stdout): what happened (done / caught up / interrupted at X% /
/// nothing new since a position / failed), counts by reason, what went to the sink and where.
std::string SummaryText(const PipelineSnapshot& s, const PipelineConfig& config,
                        const std::string& dead_letter_path, const RunEnd& end);
/// The same as one JSON object on one line (no newline).
std::string SummaryJson(const PipelineSnapshot& s, const PipelineConfig& config,
                        const std::string& dead_letter_path, const RunEnd& end);

}  // namespace sluice::cli
