#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "runtime/runner.h"

namespace sluice::cli {

/// Installs SIGINT/SIGTERM handling: the first signal drains `runner` (workers stop, a final
/// checkpoint is written), a second one exits at once. Returns a function that uninstalls it.
void WatchSignals(Runner* runner);
/// Ends the watching. After a stop signal the watcher stays armed as a backstop (the process
/// ends 3 s after shutdown_timeout if it is still winding down) and a second signal still exits.
void StopWatchingSignals();
/// Disarms that backstop (before waiting on purpose, e.g. --http-linger).
void DisarmSignalBackstop();

/// Prints a one-line run summary to stdout.
void PrintSummary(const PipelineSnapshot& s, const std::string& dead_letter_path, double seconds);

/// Settings of `sluice generate`.
struct GenerateOptions {
  std::string profile = "recruitment";
  std::string to;
  double rate = 10000;
  int64_t count = -1;
  uint64_t seed = 1;
  std::string jobs;
  std::string start;
  /// Further generator or profile settings, NAME=VALUE as under [source] (e.g. spacing=100ms,
  /// out_of_order=0.1 for the viewlog profile).
  std::vector<std::string> settings;
};

/// Produces synthetic events to Kafka (keyed, idempotent producer) or an NDJSON file, with a
/// progress bar on stderr. Returns the process exit code.
int RunGenerate(const GenerateOptions& options, const std::atomic<bool>& stop);

/// Runs the demo: generator -> recruitment pipeline -> SQLite, with a live console summary and
/// the dashboard on `http_address` ("" : none; a busy port only logs a warning).
int RunDemo(const std::string& pipeline_path, const std::string& db_path, double rate,
            double duration_seconds, const std::string& http_address);

/// Settings of `sluice fake-api` (see src/connectors/http/README.md).
struct FakeApiCliOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string seed = "sluice";
  double error_rate = 0;
  std::string errors = "5xx,timeout,malformed";
  int64_t delay_ms = 0;
  int64_t hang_ms = 5000;
  int fail_times = 0;
};

/// Serves randomuser-shaped JSON at /api/ until SIGINT/SIGTERM. Returns the exit code.
int RunFakeApi(const FakeApiCliOptions& options);

}  // namespace sluice::cli
