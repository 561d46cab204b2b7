#pragma once

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/repartition_plan.h"
#include "runtime/runner.h"

namespace sluice::cli {

/// Blocks SIGINT/SIGTERM in the calling thread, and so in every thread it starts later, and
/// watches them while a run is being prepared (pipeline, dimensions, sink, source): a signal then
/// ends the process at once with exit 0 and a log line (nothing was read or committed yet), so a
/// stop during start-up neither kills the process by the signal's default action nor waits for
/// the start to finish. Call it first in `sluice run`; WatchSignals takes over.
void WatchSignalsDuringStartup();
/// Ends that start-up watch (WatchSignals does; a signal sent meanwhile stays pending for it).
void StopStartupSignalWatch();
/// Installs SIGINT/SIGTERM handling: the first signal drains `runner` (workers stop, a final
/// checkpoint is written), a second one exits at once.
void WatchSignals(Runner* runner);
/// The same for a run of several runners (a repartitioned pipeline's two stages): the first
/// signal calls `request_stop`; the backstop counts from `shutdown_timeout_micros`.
void WatchSignals(std::function<void()> request_stop, int64_t shutdown_timeout_micros);
/// Ends the watching. After a stop signal the watcher stays armed as a backstop (the process
/// ends 3 s after shutdown_timeout if it is still winding down) and a second signal still exits.
void StopWatchingSignals();
/// Disarms that backstop (before waiting on purpose, e.g. --http-linger).
void DisarmSignalBackstop();
/// "SIGINT" or "SIGTERM" when WatchSignals saw one (the run was asked to stop), else "".
std::string ReceivedSignal();

/// The two runners of a repartitioned pipeline (docs/notes-16/repartition.md, "Shape"): stage
/// one (the user's source, steps and [aggregate] in partial mode into the repartition topic) and
/// stage two (the repartition topic into the user's sink).
struct TwoStages {
  std::string brokers;     ///< of the source and the repartition topic
  std::string topic;       ///< `<pipeline>-repartition`
  int32_t partitions = 0;  ///< R
  std::map<std::string, std::string> properties;  ///< librdkafka connection settings (security)
  PipelineConfig one_config;
  RunOptions one_options;  ///< stage_one, sink_override = the stage-one Kafka sink
  PipelineConfig two_config;
  RunOptions two_options;  ///< stage_two with the split's upstreams (take_end_offsets_when: the caller's)
};

/// The planner's split of `config` when it repartitions as `sluice run` runs it: DecideRepartition,
/// the source topics' partitions read from the brokers (10 s), RepartitionsWith, a user sink
/// (`user_sink`) that keeps stage two's windows per task, then SplitPlan; nullopt for a pipeline
/// run as one stage (with a warning for the run-time reasons when `warn`). Fails with kIOError when
/// the brokers cannot be asked, else with the refusal. `sluice run` and `sluice status` both decide
/// through it. `why`, when given, is set to why the pipeline runs in the shape decided (the
/// decision's why, or the run-time reason that keeps it in one stage).
Result<std::optional<RepartitionSplit>> RepartitionSplitFor(const PipelineConfig& config, const SinkConfig& user_sink,
                                                            const Plan& plan, bool warn, std::string* why = nullptr);

/// When `runner`'s pipeline repartitions (DecideRepartition, then RepartitionsWith on the source
/// topics' partitions read from the brokers), the two stages' configurations from SplitPlan;
/// nullopt for a pipeline run as one stage. Fails when the brokers cannot be asked or the split
/// is refused. `why` as RepartitionSplitFor's.
Result<std::optional<TwoStages>> PlanTwoStages(const Runner& runner, const RunOptions& options,
                                               std::string* why = nullptr);

/// Refuses to run `config` in the shape decided (`two_stages`, for the reason `why`) when the
/// positions its sink holds were written by the other shape (CheckStoredShape;
/// docs/notes-16/repartition.md, "A pipeline that ran in one stage before"). Reads the sink's
/// stored positions of the pipeline, read-only (SinkReader::Inventory, positions only), only
/// for an append-mode aggregate over Kafka into a sink that keeps windows per task (the sinks
/// stage two writes to); a sink that does not exist yet holds none, and a server not available
/// yet is asked again (backoff up to 5 s, as the runner opens its sink). Fails with the refusal
/// (kInvalidArgument: exit 2) or when the sink cannot be read.
Status CheckSinkStageShape(const PipelineConfig& config, bool two_stages, const std::string& why);

/// Prints a one-line run summary to stdout (for a run that finished).
/// Prints the one-line run summary to `out` (stderr when stdout carries the rows: `stdout:`).
void PrintSummary(const PipelineSnapshot& s, const std::string& dead_letter_path, double seconds,
                  std::FILE* out = stdout);
/// Describes how far a failed run got: "pipeline P failed after 1.20s (N records in, M
/// checkpoints committed)".
std::string FailureSummary(const std::string& pipeline, const PipelineSnapshot& s, double seconds);

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
  /// "json", or "avro": each event in the Confluent Avro wire format, its value schema
  /// (AvroEventFields) registered under TOPIC-value at `schema_registry`.
  std::string format = "json";
  std::string schema_registry;
};

/// Produces synthetic events to Kafka (keyed, idempotent producer) or an NDJSON file, with a
/// progress bar on stderr. Returns the process exit code.
int RunGenerate(const GenerateOptions& options, const std::atomic<bool>& stop);

/// Settings of `sluice demo`.
struct DemoOptions {
  /// Everything the demo writes goes under here: the built-in pipeline and job dimension
  /// (recruitment.toml, data/job.csv), the results and the dead letters.
  /// "": the folder of `db` when that is given, else sluice-demo in the working directory.
  std::string dir;
  std::string pipeline;  ///< "": the built-in examples/recruitment.toml, written to `dir`
  std::string db;        ///< "": DIR/recruitment.db
  double rate = 20000;
  double duration_seconds = 0;  ///< 0: until a signal
  std::string http_address;     ///< "": no dashboard; a busy port only logs a warning
};

/// Runs the demo: generator -> recruitment pipeline -> SQLite, with a live console summary and
/// the dashboard. Runs from any working directory: the pipeline and its job dimension are
/// compiled into the binary. Returns the exit code.
int RunDemo(const DemoOptions& options);

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
  int64_t max_results = 5000;
};

/// Serves randomuser-shaped JSON at /api/ until SIGINT/SIGTERM. Returns the exit code.
int RunFakeApi(const FakeApiCliOptions& options);

/// Settings of `sluice init`.
struct InitOptions {
  std::string source;  ///< source URI
  std::string sink;    ///< sink URI
  std::string output;  ///< "" or "-": stdout
  std::string name;    ///< "": the output file's stem, else "pipeline"
  bool force = false;  ///< overwrite an existing output file
};

/// The commented pipeline file `sluice init` writes for a source and a sink.
std::string PipelineSkeleton(const std::string& name, const std::string& source_uri,
                             const std::string& sink_uri);

/// Writes the skeleton. Returns the exit code (2: the output exists or cannot be written).
int RunInit(const InitOptions& options);

/// Settings of `sluice inspect`.
struct InspectCliOptions {
  std::string uri;  ///< the sink: sqlite:PATH, mysql://USER@HOST:PORT/DB, parquet:DIR, cassandra://...
  std::string pipeline;     ///< "": every pipeline the sink holds
  bool json = false;        ///< one JSON object on stdout instead of text
  size_t samples = 3;       ///< dead-letter samples per reason (newest)
  size_t reasons = 10;      ///< reasons shown in text (most frequent first) and given samples
  size_t payload_bytes = 200;  ///< a sample's payload is cut to this many bytes
};

/// Prints what a sink holds for the pipelines that committed to it (positions, state size,
/// last checkpoint, dead letters by reason with samples) without running any. Returns the exit
/// code: 2 for a URI that names no readable sink, 1 when it cannot be read now.
int RunInspect(const InspectCliOptions& options);
/// Settings of `sluice takeover`.
struct TakeoverOptions {
  /// Where the pipeline's source starts: "OFFSET" (partition 0), "PARTITION=OFFSET" or
  /// "SOURCE:PARTITION=OFFSET"; one per partition.
  std::vector<std::string> from_positions;
  bool apply = false;  ///< false: print the plan only
};

/// Prints how sluice takes over the existing results table of `runner`'s pipeline (columns
/// added, internal state created, old columns with no source left as they are, where reading
/// starts) and, with `apply`, applies it and stores the start positions. Returns the exit code.
int RunTakeover(const Runner& runner, const TakeoverOptions& options);

}  // namespace sluice::cli
