#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <set>
#include <unistd.h>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "commands.h"
#include "status.h"
#include "logging.h"
#include "progress.h"
#include "repartition_purge.h"
#include "serve.h"
#include "config/pipeline_config.h"
#include "sql/load_pipeline.h"
#include "runtime/explain.h"
#include "runtime/plan.h"
#include "core/uri.h"
#include "core/time.h"
#include "runtime/registry.h"
#include "runtime/restart_budget.h"
#include "runtime/runner.h"
#include "runtime/verify.h"

namespace {

using sluice::Status;

/// Exit codes of every command (README.md, "Exit codes", has the same table):
///
///   0  done: a bounded input ended, --until-caught-up caught up, or a signal (SIGINT/SIGTERM)
///      stopped the run after its final checkpoint
///   1  runtime failure: anything that goes wrong once the run has started (a sink or source
///      error, a checkpoint that cannot be written, an --http port in use), and a server that
///      cannot be reached while the pipeline is checked (a MySQL dimension, say)
///   2  bad pipeline file or arguments, found before any data is read: an unknown option or key,
///      a --var the pipeline does not reference, a variable without a value, a missing pipeline
///      or input file, a source path that is a directory, a sink that cannot take the pipeline's
///      output (update mode into parquet:), a pipeline that would run in one stage where its
///      sink's positions were written by two or the reverse (CheckSinkStageShape)
///
/// `sluice validate` runs the same checks as the start of `sluice run` (Runner::Make), so
/// whatever validate passes, run does not reject for its configuration alone (run also compares
/// it with what the sink holds, CheckSinkStageShape, which validate does not read).
constexpr int kExitDone = 0;
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;

/// `sluice run` starts again from the committed state after its commits were fenced (cut off
/// from its group) at most this many times within this window; one more exits 1.
constexpr int kMaxFencedRestarts = 5;
constexpr int kFencedRestartWindowSeconds = 600;

/// Exit code of a failure found while checking the pipeline (before any data is touched): the
/// file or arguments are wrong (2) unless a server could not be reached (1).
int CheckExitCode(const Status& s) {
  return s.code() == sluice::StatusCode::kInvalidArgument || s.code() == sluice::StatusCode::kNotFound ||
                 s.code() == sluice::StatusCode::kParseError
             ? kExitConfig
             : kExitFailure;
}

sluice::Result<sluice::Variables> ParseVars(const std::vector<std::string>& items) {
  sluice::Variables vars;
  for (const auto& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--var expects NAME=VALUE, got '" + item + "'");
    }
    vars.values[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return vars;
}

using sluice::cli::ReportError;

/// Settings of the HTTP endpoints of `sluice run`.
struct HttpOptions {
  std::string address;       ///< "" : no server
  double linger_seconds = 0;  ///< keep serving this long after the run ends
};

/// Keeps serving after the run until `seconds` passed or SIGINT/SIGTERM arrives (both are
/// blocked on this thread by WatchSignals, so they are waited for here).
void Linger(const sluice::cli::HttpEndpoint& endpoint, double seconds) {
  spdlog::info("http: still serving {} for {} s (Ctrl-C to exit)", endpoint.url, seconds);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  timespec timeout{};
  timeout.tv_sec = static_cast<time_t>(seconds);
  timeout.tv_nsec = static_cast<long>((seconds - static_cast<double>(timeout.tv_sec)) * 1e9);
  sigtimedwait(&set, nullptr, &timeout);
}

/// The one check path of `validate` and `run`: reads the file with the variables, shows each
/// variable with where its value came from (`show`), and builds the runner, which runs every
/// check that needs no data (see Runner::Make). On failure reports the error and sets
/// `*exit_code`.
std::unique_ptr<sluice::Runner> Prepare(
    const std::string& path, const sluice::Variables& vars, const sluice::RunOptions& options,
    const std::function<void(const std::vector<sluice::VariableUse>&)>& show, int* exit_code) {
  auto config = sluice::LoadPipeline(path, vars);
  if (!config.ok()) {
    ReportError(config.status().message());
    *exit_code = CheckExitCode(config.status());
    return nullptr;
  }
  sluice::cli::SetLogPipeline(config->name);
  show(config->variables);
  auto runner = sluice::Runner::Make(std::move(config).value(), options);
  if (!runner.ok()) {
    ReportError(runner.status().message());
    *exit_code = CheckExitCode(runner.status());
    return nullptr;
  }
  return std::move(runner).value();
}

/// `sluice connectors`: the reference generated from the connectors' option tables.
int PrintConnectors(const std::string& output) {
  const std::string text = sluice::RenderConnectorReference(sluice::ConnectorRegistry::Instance().Reference());
  if (output.empty()) {
    std::cout << text;
    return kExitDone;
  }
  std::ofstream out(output, std::ios::trunc);
  out << text;
  if (!out.flush()) {
    ReportError("connectors: cannot write " + output);
    return kExitFailure;
  }
  return kExitDone;
}

/// What `validate` and `explain` share over several files: one --var set applies to each, and a
/// --var is unused only when no file references it; the exit code is the worst (2 outranks 1).
class FileBatch {
 public:
  explicit FileBatch(size_t files) : files_(files) {}
  bool several() const { return files_ > 1; }
  size_t failed() const { return failed_; }
  void Referenced(const std::string& name) { referenced_.insert(name); }
  void Failed(int exit_code) {
    ++failed_;
    worst_ = std::max(worst_, exit_code == kExitConfig ? 3 : exit_code);
  }
  /// Reports every --var no file referenced (several files only; one file's loader refuses an
  /// unused --var itself) and returns the exit code.
  int Finish(const sluice::Variables& vars) {
    if (several()) {
      std::vector<std::string> names(referenced_.begin(), referenced_.end());
      for (const auto& [name, value] : vars.values) {
        if (referenced_.count(name)) continue;
        const std::string hint = sluice::ClosestName(name, names);
        ReportError("--var " + name + ": none of the " + std::to_string(files_) + " files references ${" +
                    name + "}" + (hint.empty() ? "" : " (did you mean " + hint + "?)"));
        worst_ = 3;
      }
    }
    return worst_ == 3 ? kExitConfig : worst_;
  }

 private:
  size_t files_;
  std::set<std::string> referenced_;
  int worst_ = kExitDone;
  size_t failed_ = 0;
};

/// `sluice validate FILE...`: checks each file as `run` would and prints its plan.
int Validate(const std::vector<std::string>& paths, const std::vector<std::string>& var_items) {
  auto vars = ParseVars(var_items);
  if (!vars.ok()) {
    ReportError(vars.status().message());
    return kExitConfig;
  }
  FileBatch batch(paths.size());
  const bool several = batch.several();
  if (several) vars->reject_unused = false;
  for (const std::string& path : paths) {
    if (several) std::cout << path << "\n" << std::flush;
    const std::string indent = several ? "  " : "";
    auto show = [&](const std::vector<sluice::VariableUse>& variables) {
      for (const auto& v : variables) batch.Referenced(v.name);
      if (variables.empty()) return;
      std::cout << indent << "variables\n";
      for (const auto& v : variables) std::cout << indent << "  " << sluice::DescribeVariable(v) << "\n";
      std::cout << std::flush;
    };
    int exit_code = kExitDone;
    auto runner = Prepare(path, *vars, sluice::RunOptions{}, show, &exit_code);
    if (!runner) {
      batch.Failed(exit_code);
      if (several) std::cout << "  failed (see stderr)\n" << std::flush;
      continue;
    }
    std::string plan = sluice::DescribePlan(runner->plan()) +
                       sluice::ConnectorRegistry::Instance().DescribeOptions(*runner->plan().config);
    if (several) {
      std::string indented;
      size_t start = 0;
      while (start < plan.size()) {
        size_t end = plan.find('\n', start);
        if (end == std::string::npos) end = plan.size();
        indented += "  " + plan.substr(start, end - start) + "\n";
        start = end + 1;
      }
      plan = indented;
    }
    std::cout << plan << indent << "ok\n" << std::flush;
  }
  const int exit_code = batch.Finish(*vars);
  if (several) {
    std::cout << paths.size() << " files: " << paths.size() - batch.failed() << " ok, " << batch.failed()
              << " failed\n";
  }
  return exit_code;
}

/// `sluice explain FILE...`: prints each pipeline's operator graph, built from the plan
/// `validate` checks and the sink's own statement builders (nothing is connected to or read).
/// `json`: one JSON object per file, one per line. Exit 2 when a file is bad (each failure on
/// stderr names its file), 1 when a server it needs to check the pipeline cannot be reached.
int Explain(const std::vector<std::string>& paths, const std::vector<std::string>& var_items, bool json) {
  auto vars = ParseVars(var_items);
  if (!vars.ok()) {
    ReportError(vars.status().message());
    return kExitConfig;
  }
  FileBatch batch(paths.size());
  const bool several = batch.several();
  if (several) vars->reject_unused = false;
  auto fail = [&](const std::string& path, const Status& s) {
    // Name the file unless the message already starts with it (file:line:column).
    const std::string& m = s.message();
    ReportError(m.rfind(path, 0) == 0 ? m : path + ": " + m);
    batch.Failed(CheckExitCode(s));
  };
  for (const std::string& path : paths) {
    auto config = sluice::LoadPipeline(path, *vars);
    if (!config.ok()) {
      fail(path, config.status());
      continue;
    }
    for (const auto& v : config->variables) batch.Referenced(v.name);
    sluice::cli::SetLogPipeline(config->name);
    auto runner = sluice::Runner::Make(std::move(config).value(), sluice::RunOptions{});
    if (!runner.ok()) {
      fail(path, runner.status());
      continue;
    }
    const sluice::Runner& r = **runner;
    // A second sink from the same factory, never opened: the one the runner checked stays
    // untouched, and explaining one cannot change what a run would do.
    auto sink = sluice::ConnectorRegistry::Instance().MakeSink(r.config().sink);
    if (!sink.ok()) {
      fail(path, sink.status());
      continue;
    }
    auto explanation = sluice::ExplainPipeline(r.plan(), sink->get(), r.dead_letter_location());
    if (!explanation.ok()) {
      fail(path, explanation.status());
      continue;
    }
    if (json) {
      std::cout << sluice::ExplanationJson(*explanation) << "\n";
    } else {
      std::cout << (several && &path != &paths.front() ? "\n" : "") << sluice::FormatExplanation(*explanation);
    }
    std::cout << std::flush;
  }
  const int exit_code = batch.Finish(*vars);
  if (several && !json) {
    std::cout << "\n" << paths.size() << " files: " << paths.size() - batch.failed() << " explained, "
              << batch.failed() << " failed\n";
  }
  return exit_code;
}

/// `sluice verify FILE`: recomputes the pipeline's output from its source up to the sink's
/// committed positions and compares it with what the sink holds. Exit 0 when they are equal
/// (rows that differ only because a dimension changed since do not count), 1 when they differ
/// or cannot be compared (the input changed, the sink cannot be read), 2 for a bad file or
/// arguments.
int Verify(const std::string& path, const std::vector<std::string>& var_items, bool json,
           const sluice::VerifyOptions& options) {
  auto vars = ParseVars(var_items);
  if (!vars.ok()) {
    ReportError(vars.status().message());
    return kExitConfig;
  }
  auto config = sluice::LoadPipeline(path, *vars);
  if (!config.ok()) {
    ReportError(config.status().message());
    return CheckExitCode(config.status());
  }
  sluice::cli::SetLogPipeline(config->name);
  auto report = sluice::VerifyPipeline(std::move(config).value(), options);
  if (!report.ok()) {
    ReportError(report.status().message());
    return CheckExitCode(report.status());
  }
  std::cout << (json ? sluice::VerifyReportJson(*report) + "\n" : sluice::FormatVerifyReport(*report))
            << std::flush;
  return report->equal() ? kExitDone : kExitFailure;
}

/// Settings of `sluice run` that only the command line uses.
struct RunCliOptions {
  sluice::cli::ProgressOptions progress;
  std::string summary_json;  ///< "": none; "-": stdout (instead of the text summary); else a file
};

/// Writes `json` and a newline to `path` ("-": stdout).
Status WriteSummaryJson(const std::string& path, const std::string& json) {
  if (path == "-") {
    std::cout << json << "\n" << std::flush;
    return Status::OK();
  }
  std::ofstream out(path, std::ios::trunc);
  out << json << "\n";
  out.close();
  if (!out) return Status::IOError("--summary-json: cannot write " + path);
  return Status::OK();
}

/// Ends the start-up signal watch on every way out of Run() (a joinable thread must not be
/// destroyed).
struct StartupSignalWatchEnd {
  ~StartupSignalWatchEnd() { sluice::cli::StopStartupSignalWatch(); }
};

/// One stage of a repartitioned pipeline as `sluice run` drives it: its runner (replaced by a
/// fenced restart), its progress lines and how it ended.
struct StageRun {
  std::string name;  ///< "stage one", "stage two"
  sluice::PipelineConfig config;
  sluice::RunOptions options;
  std::unique_ptr<sluice::Runner> runner;  ///< guarded by TwoStageRun::mu
  bool stop_sent = false;                  ///< RequestStop called on `runner` (guarded by mu)
  std::unique_ptr<sluice::cli::ProgressReporter> reporter;
  Status status;
};

/// What both stages' threads share.
struct TwoStageRun {
  std::mutex mu;
  bool stopping = false;  ///< a signal or a failed stage asked both to stop (guarded by mu)
  std::atomic<bool> stage_one_ended{false};  ///< stage one's Run() returned OK: its end controls are committed
  StageRun stages[2];

  /// Asks both stages' runners to stop (each once: a second RequestStop forces the stop).
  void StopAll() {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
    for (StageRun& st : stages) {
      if (st.runner && !st.stop_sent) {
        st.stop_sent = true;
        st.runner->RequestStop();
      }
    }
  }
};

/// Runs one stage to its end, restarting it from the committed state when it was fenced (the
/// single-runner loop's rules). `endpoint` (stage two's, with --http): its result view follows
/// the runner made again; the server itself reads whichever runner a stage has.
void DriveStage(TwoStageRun& run, int index, sluice::cli::HttpEndpoint* endpoint,
                const sluice::cli::ProgressOptions& progress, std::chrono::steady_clock::time_point started) {
  StageRun& st = run.stages[index];
  Status s = st.runner->Run();
  sluice::RestartBudget fenced_restarts(kMaxFencedRestarts, kFencedRestartWindowSeconds * 1000000);
  for (int restarts = 1; s.code() == sluice::StatusCode::kFenced && st.runner->RestartsWhenFenced() &&
                         !st.runner->abandoned() && sluice::cli::ReceivedSignal().empty();
       ++restarts) {
    {
      std::lock_guard<std::mutex> lock(run.mu);
      if (run.stopping) break;
    }
    if (!fenced_restarts.Allow(sluice::SteadyClockMicros())) {
      s = Status::FailedPrecondition(
          st.name + " fenced " + std::to_string(kMaxFencedRestarts + 1) + " times within " +
          std::to_string(kFencedRestartWindowSeconds) +
          " s: another process keeps claiming this pipeline's partitions (is another process of pipeline " +
          st.config.name + " reading other topics or another consumer group? give it another pipeline name); "
          "not restarting again (last: " + s.message() + ")");
      break;
    }
    spdlog::warn("{}: {}; restarting from the committed state", st.name, s.message());
    st.reporter->Stop();
    st.reporter.reset();
    {
      std::lock_guard<std::mutex> lock(run.mu);
      st.runner.reset();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 500 * restarts)));
    sluice::RunOptions again = st.options;
    again.fenced_restarts = restarts;
    auto made = sluice::Runner::Make(st.config, again);
    if (!made.ok()) {
      s = made.status();
      break;
    }
    {
      std::lock_guard<std::mutex> lock(run.mu);
      st.runner = std::move(made).value();
      st.stop_sent = run.stopping;
      if (run.stopping) st.runner->RequestStop();
    }
    if (endpoint && endpoint->server) sluice::cli::ObserveCommits(*endpoint, st.runner.get());
    st.reporter = std::make_unique<sluice::cli::ProgressReporter>(st.runner.get(), progress, started);
    st.reporter->Start();
    s = st.runner->Run();
  }
  if (st.reporter) st.reporter->Stop();
  st.status = s;
  if (index == 0 && s.ok()) run.stage_one_ended = true;
  // A stage that failed (or was stopped short by a failure) ends the other: stage two cannot
  // go on without stage one, and stage one's output is useless without stage two.
  if (!s.ok()) {
    spdlog::error("{} failed: {}; stopping the other stage", st.name, s.message());
    run.StopAll();
  }
}

/// `sluice run` of a repartitioned pipeline: stage one and stage two as two runners in this
/// process (docs/notes-16/repartition.md, "Shape"). A signal stops both; a failure of either
/// stops the other and exits 1 (2 when a source refused to open for a configuration reason);
/// each is restarted alone when fenced. --until-caught-up: stage one ends at the end offsets
/// seen at its start with its `end` controls committed (its Run() returned OK); only then does
/// stage two take the repartition topic's last stable offsets and end there.
int RunTwoStages(sluice::cli::TwoStages plan, const HttpOptions& http, const RunCliOptions& cli) {
  spdlog::info("pipeline {} repartitions through topic {} ({} partitions): stage one and stage two in this process",
               plan.one_config.name, plan.topic, plan.partitions);
  auto run = std::make_unique<TwoStageRun>();
  const bool until_caught_up = plan.one_options.until_caught_up;
  TwoStageRun* shared = run.get();
  plan.two_options.stage_two.take_end_offsets_when = [shared] { return shared->stage_one_ended.load(); };
  StageRun& one = run->stages[0];
  StageRun& two = run->stages[1];
  one.name = "stage one";
  one.config = plan.one_config;
  one.options = plan.one_options;
  two.name = "stage two";
  two.config = plan.two_config;
  two.options = plan.two_options;
  for (StageRun* st : {&one, &two}) {
    auto made = sluice::Runner::Make(st->config, st->options);
    if (!made.ok()) {
      ReportError(st->name + ": " + made.status().message());
      return CheckExitCode(made.status());
    }
    st->runner = std::move(made).value();
  }
  sluice::cli::HttpEndpoint endpoint;
  if (!http.address.empty()) {
    // Both stages: /metrics with a `stage` label, /api/status with `stages` (the top level and
    // the dashboard's results are stage two's: the user's sink and its windows). The server
    // reads each stage's runner under the lock a fenced restart replaces it under.
    std::vector<sluice::cli::HttpStage> served;
    for (int i = 0; i < 2; ++i) {
      sluice::cli::HttpStage h;
      h.name = i == 0 ? "one" : "two";
      h.runner = run->stages[i].runner.get();
      if (i == 0) h.sink = plan.topic;
      h.snapshot = [shared, i] {
        std::lock_guard<std::mutex> lock(shared->mu);
        const StageRun& st = shared->stages[i];
        sluice::PipelineSnapshot s;
        if (st.runner) s = st.runner->Snapshot();  // none while a fenced restart makes it again
        if (s.pipeline.empty()) s.pipeline = st.config.name;
        return s;
      };
      h.stored_dead_letters = [shared, i] {
        std::lock_guard<std::mutex> lock(shared->mu);
        const StageRun& st = shared->stages[i];
        return st.runner ? st.runner->StoredDeadLetters() : sluice::StoredDeadLetterCounts{};
      };
      served.push_back(std::move(h));
    }
    auto started_http = sluice::cli::StartHttpStages(two.runner.get(), std::move(served), http.address);
    if (!started_http.ok()) {
      ReportError("--http: " + started_http.status().message());
      return started_http.status().code() == sluice::StatusCode::kInvalidArgument ? kExitConfig : kExitFailure;
    }
    endpoint = std::move(started_http).value();
  }
  // Records of the repartition topic stage two has committed past are deleted from time to
  // time, best effort (a purger that cannot be made only means they stay until retention).
  std::unique_ptr<sluice::cli::RepartitionPurger> purger;
  {
    sluice::cli::RepartitionPurger::Options purge;
    purge.brokers = plan.brokers;
    purge.topic = plan.topic;
    purge.properties = plan.properties;
    auto made = sluice::cli::RepartitionPurger::Make(purge, [shared] {
      std::lock_guard<std::mutex> lock(shared->mu);
      const StageRun& st = shared->stages[1];
      return st.runner ? st.runner->Snapshot().committed_positions : std::vector<std::pair<int32_t, int64_t>>();
    });
    if (made.ok()) {
      purger = std::move(made).value();
      purger->Start();
    } else {
      spdlog::warn("repartition: the records of {} stage two has committed past are not deleted: {}", plan.topic,
                   made.status().message());
    }
  }
  sluice::cli::WatchSignals([shared] { shared->StopAll(); },
                            std::max(one.config.shutdown_timeout_micros, two.config.shutdown_timeout_micros));
  const auto started = std::chrono::steady_clock::now();
  sluice::cli::ProgressOptions progress = cli.progress;
  // On a terminal the live bar shows stage one (the source's progress and lag) and stage two
  // logs no progress lines (they would break the bar); otherwise each logs lines naming it.
  progress.bar = !progress.quiet && isatty(STDERR_FILENO) && !sluice::cli::JsonLogs();
  sluice::cli::ProgressOptions progress_one = progress, progress_two = progress;
  progress_one.stage = one.name;
  progress_two.stage = two.name;
  progress_two.bar = false;
  if (progress.bar) progress_two.interval_seconds = 0;
  one.reporter = std::make_unique<sluice::cli::ProgressReporter>(one.runner.get(), progress_one, started);
  two.reporter = std::make_unique<sluice::cli::ProgressReporter>(two.runner.get(), progress_two, started);
  one.reporter->Start();
  two.reporter->Start();
  std::thread stage_one_thread(
      [&] { DriveStage(*run, 0, nullptr, progress_one, started); });
  DriveStage(*run, 1, &endpoint, progress_two, started);
  stage_one_thread.join();
  sluice::cli::StopWatchingSignals();
  if (purger) purger->Stop();  // once more, up to stage two's last commit

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  int exit_code = kExitDone;
  std::vector<std::string> jsons;
  for (StageRun* st : {&one, &two}) {
    if (!st->runner) {
      // A fenced restart could not make the stage's runner again.
      ReportError("pipeline " + st->config.name + " (" + st->name + ") failed: " + st->status.ToString());
      exit_code = kExitFailure;
      jsons.push_back("{\"event\":\"summary\",\"stage\":\"" + st->name + "\",\"outcome\":\"failed\"}");
      continue;
    }
    sluice::cli::RunEnd end;
    end.status = st->status;
    end.signal = sluice::cli::ReceivedSignal();
    end.until_caught_up = until_caught_up;
    end.follow = st->options.follow;
    end.seconds = seconds;
    end.stage = st->name;
    end.exit_code = st->status.ok() ? kExitDone
                    : st->runner->FailedOpeningSource() && CheckExitCode(st->status) == kExitConfig ? kExitConfig
                                                                                                    : kExitFailure;
    if (end.exit_code != kExitDone && exit_code == kExitDone) exit_code = end.exit_code;
    // The summary names the stage; stage one's output is the repartition topic.
    sluice::PipelineConfig shown = st->runner->config();
    if (st == &one) shown.sink.uri = "kafka://" + plan.brokers + "/" + plan.topic;
    const sluice::PipelineSnapshot snapshot = st->runner->Snapshot();
    const std::string location = st == &one ? plan.topic : st->runner->dead_letter_location();
    jsons.push_back(sluice::cli::SummaryJson(snapshot, shown, location, end));  // with "stage"
    shown.name += " (" + st->name + ")";
    if (!st->status.ok()) {
      ReportError(sluice::cli::FailureSummary(shown.name, snapshot, seconds) + ": " + st->status.ToString());
    } else if (!cli.progress.quiet && cli.summary_json != "-") {
      const bool rows_on_stdout = sluice::SplitUri(two.config.sink.uri).first == "stdout";
      std::ostream& out = rows_on_stdout ? std::cerr : std::cout;
      if (sluice::cli::JsonLogs()) {
        out << jsons.back() << "\n" << std::flush;
      } else {
        out << sluice::cli::SummaryText(snapshot, shown, location, end) << "\n" << std::flush;
      }
    }
  }
  if (!cli.summary_json.empty()) {
    // One object per stage, one per line: stage one's, then stage two's.
    if (Status w = WriteSummaryJson(cli.summary_json, jsons[0] + "\n" + jsons[1]); !w.ok()) {
      ReportError(w.message());
      if (exit_code == kExitDone) exit_code = kExitFailure;
    }
  }
  if (endpoint.server && http.linger_seconds > 0) {
    sluice::cli::DisarmSignalBackstop();
    Linger(endpoint, http.linger_seconds);
  }
  if (endpoint.server) endpoint.server->Stop();
  if ((one.runner && one.runner->abandoned()) || (two.runner && two.runner->abandoned())) {
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(kExitFailure);
  }
  return exit_code;
}

int Run(const std::string& path, const std::vector<std::string>& var_items,
        const sluice::RunOptions& options, const HttpOptions& http, const RunCliOptions& cli) {
  // First: every thread started from here on (dimension loads, clients, HTTP) inherits the
  // blocked stop signals, so only the watchers ever take them.
  sluice::cli::WatchSignalsDuringStartup();
  StartupSignalWatchEnd end_startup_watch;
  auto vars = ParseVars(var_items);
  if (!vars.ok()) {
    ReportError(vars.status().message());
    return kExitConfig;
  }
  if (!cli.summary_json.empty() && cli.summary_json != "-") {
    // A path that cannot be written is an argument error, found before any data is read.
    std::ofstream probe(cli.summary_json, std::ios::app);
    if (!probe) {
      ReportError("--summary-json: cannot write " + cli.summary_json);
      return kExitConfig;
    }
  }
  int exit_code = 0;
  auto show = [&cli](const std::vector<sluice::VariableUse>& variables) {
    if (cli.progress.quiet) return;
    for (const auto& v : variables) spdlog::info("variable {}", sluice::DescribeVariable(v));
  };
  auto runner = Prepare(path, *vars, options, show, &exit_code);
  if (!runner) return exit_code;
  // A pipeline that repartitions (append-mode windows over an unkeyed Kafka source of several
  // partitions) runs as its two stages; every other one as one runner, below.
  std::string shape_why;
  auto stages = sluice::cli::PlanTwoStages(*runner, options, &shape_why);
  if (!stages.ok()) {
    ReportError(stages.status().message());
    return CheckExitCode(stages.status());
  }
  // A pipeline whose sink holds positions written by the other shape (it ran in one stage and
  // would run in two now, or the reverse) is refused before either shape reads anything.
  if (options.sink_override == nullptr && !options.stage_one && !options.stage_two.enabled) {
    Status shape = sluice::cli::CheckSinkStageShape(runner->config(), stages->has_value(), shape_why);
    if (!shape.ok()) {
      ReportError(shape.message());
      return CheckExitCode(shape);
    }
  }
  if (stages->has_value()) {
    runner.reset();
    return RunTwoStages(std::move(**stages), http, cli);
  }
  sluice::cli::HttpEndpoint endpoint;
  if (!http.address.empty()) {
    auto started_http = sluice::cli::StartHttp(runner.get(), http.address);
    if (!started_http.ok()) {
      ReportError("--http: " + started_http.status().message());
      // A malformed address is an argument error; a port in use is not.
      return started_http.status().code() == sluice::StatusCode::kInvalidArgument ? kExitConfig
                                                                                  : kExitFailure;
    }
    endpoint = std::move(started_http).value();
  }
  sluice::cli::WatchSignals(runner.get());
  const auto started = std::chrono::steady_clock::now();
  sluice::cli::ProgressOptions progress = cli.progress;
  // The live bar only on a terminal and with text logs; otherwise a log line every interval.
  progress.bar = !progress.quiet && isatty(STDERR_FILENO) && !sluice::cli::JsonLogs();
  auto reporter = std::make_unique<sluice::cli::ProgressReporter>(runner.get(), progress, started);
  reporter->Start();
  Status s = runner->Run();
  // Another process of the group claimed partitions this one still held (it was cut off past
  // its session timeout): what it had not committed is dropped, and a new runner goes on from
  // the committed state, in the group again. (A source no group shares ends the run instead.)
  // Fenced over and over (another process keeps claiming this one's tasks: two processes of one
  // pipeline name reading different topics or groups into one sink, say), it stops with exit 1.
  sluice::RestartBudget fenced_restarts(kMaxFencedRestarts, kFencedRestartWindowSeconds * 1000000);
  for (int restarts = 1; s.code() == sluice::StatusCode::kFenced && runner->RestartsWhenFenced() &&
                         !runner->abandoned() && sluice::cli::ReceivedSignal().empty();
       ++restarts) {
    if (!fenced_restarts.Allow(sluice::SteadyClockMicros())) {
      s = Status::FailedPrecondition(
          "fenced " + std::to_string(kMaxFencedRestarts + 1) + " times within " +
          std::to_string(kFencedRestartWindowSeconds) +
          " s: another process keeps claiming this pipeline's partitions in the sink (is another process "
          "of pipeline " + runner->config().name +
          " reading other topics or another consumer group into the same sink? give it another pipeline "
          "name); not restarting again (last: " + s.message() + ")");
      break;
    }
    spdlog::warn("{}; restarting from the committed state", s.message());
    reporter->Stop();
    reporter.reset();
    sluice::cli::StopWatchingSignals();
    if (endpoint.server) endpoint.server->Stop();
    endpoint = {};
    runner.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 500 * restarts)));
    sluice::RunOptions again = options;
    again.fenced_restarts = restarts;  // sluice_fenced_restarts_total goes on counting
    runner = Prepare(path, *vars, again, [](const std::vector<sluice::VariableUse>&) {}, &exit_code);
    if (!runner) return exit_code == kExitDone ? kExitFailure : exit_code;
    if (!http.address.empty()) {
      auto again = sluice::cli::StartHttp(runner.get(), http.address);
      if (!again.ok()) {
        ReportError("--http: " + again.status().message());
        return kExitFailure;
      }
      endpoint = std::move(again).value();
    }
    sluice::cli::WatchSignals(runner.get());
    reporter = std::make_unique<sluice::cli::ProgressReporter>(runner.get(), progress, started);
    reporter->Start();
    s = runner->Run();
  }
  reporter->Stop();
  sluice::cli::StopWatchingSignals();
  sluice::cli::RunEnd end;
  end.status = s;
  end.signal = sluice::cli::ReceivedSignal();
  end.until_caught_up = options.until_caught_up;
  end.follow = options.follow;
  end.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The run had started: whatever stopped it is a runtime failure, whatever its status code,
  // except a source that refused to open for a reason no retry changes (credentials, a URL
  // that does not exist): that is a configuration error, like a source path that is a folder.
  end.exit_code = s.ok()                                                       ? kExitDone
                  : runner->FailedOpeningSource() && CheckExitCode(s) == kExitConfig ? kExitConfig
                                                                              : kExitFailure;
  const sluice::PipelineSnapshot snapshot = runner->Snapshot();
  const std::string json =
      sluice::cli::SummaryJson(snapshot, runner->config(), runner->dead_letter_location(), end);
  if (!s.ok()) {
    // One line on stderr; stdout's summary is for runs that finished.
    ReportError(sluice::cli::FailureSummary(runner->config().name, snapshot, end.seconds) + ": " +
                s.ToString());
  } else if (!cli.progress.quiet && cli.summary_json != "-") {
    // With the `stdout:` sink, stdout carries the rows only: the summary goes to stderr.
    const bool rows_on_stdout = sluice::SplitUri(runner->config().sink.uri).first == "stdout";
    std::ostream& out = rows_on_stdout ? std::cerr : std::cout;
    // Under --log-format json every line is JSON, the summary on stdout included.
    if (sluice::cli::JsonLogs()) {
      out << json << "\n" << std::flush;
    } else {
      out << sluice::cli::SummaryText(snapshot, runner->config(), runner->dead_letter_location(), end)
                << "\n"
                << std::flush;
    }
  }
  if (!cli.summary_json.empty()) {
    if (Status w = WriteSummaryJson(cli.summary_json, json); !w.ok()) {
      ReportError(w.message());
      if (end.exit_code == kExitDone) end.exit_code = kExitFailure;
    }
  }
  if (endpoint.server && http.linger_seconds > 0) {
    sluice::cli::DisarmSignalBackstop();
    Linger(endpoint, http.linger_seconds);
  }
  if (endpoint.server) endpoint.server->Stop();
  if (!s.ok() && runner->abandoned()) {
    // Draining timed out: a worker may still be blocked, so the runner's destructor could
    // block too. Nothing uncommitted is lost by ending here; the next run replays it.
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(kExitFailure);
  }
  return end.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::RegisterBuiltins();
  CLI::App app{"sluice: near-real-time analytics for clickstream and tracking logs"};
  app.set_version_flag("--version", "sluice " SLUICE_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text (human-readable) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  // --log-level and --log-format may also follow the subcommand.
  app.fallthrough();

  std::string pipeline;
  std::vector<std::string> vars;
  sluice::RunOptions options;

  auto* run = app.add_subcommand("run", "Run a pipeline file");
  run->add_option("pipeline", pipeline, "pipeline file (.toml or .sql)")->required()->check(CLI::ExistingFile);
  run->add_option("--var", vars, "set a pipeline variable: NAME=VALUE (repeatable)");
  run->add_flag("--until-caught-up", options.until_caught_up,
                "process what is there now (end of files, end offsets seen at start), checkpoint, exit 0");
  run->add_flag("--follow", options.follow, "keep reading file sources as they grow");
  run->add_option("--workers", options.workers, "worker threads (default: one per partition, at most the cores)");
  run->add_option("--reset-source", options.reset_source,
                  "forget the committed position of source NAME and read it from its beginning "
                  "(results already in the sink stay)");
  RunCliOptions run_cli;
  run->add_flag("--quiet,-q", run_cli.progress.quiet,
                "no progress, no summary on stdout, no info logs (warnings and errors still go "
                "to stderr; --summary-json still writes)");
  run->add_option("--progress-interval", run_cli.progress.interval_seconds,
                  "when stderr is not a terminal: a progress log line every this many seconds "
                  "(0: none; a terminal shows a live bar instead)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  run->add_option("--summary-json", run_cli.summary_json,
                  "write the run's summary as one JSON object to FILE ('-': stdout, instead of "
                  "the text summary), also for a failed run");
  HttpOptions http;
  run->add_option("--http", http.address,
                  "serve /metrics, /healthz, /readyz, /api/status and the dashboard on HOST:PORT "
                  "(e.g. 127.0.0.1:8080)");
  run->add_option("--http-linger", http.linger_seconds,
                  "with --http: keep serving this many seconds after the run ends (a signal "
                  "ends it)")
      ->check(CLI::NonNegativeNumber);

  auto* validate = app.add_subcommand("validate", "Check pipeline files and print their plans");
  std::vector<std::string> pipelines;
  validate->add_option("pipeline", pipelines, "pipeline files (.toml or .sql)")->required()->check(CLI::ExistingFile);
  validate->add_option("--var", vars,
                       "set a pipeline variable: NAME=VALUE (repeatable; with several files, the "
                       "same set for each)");

  auto* explain = app.add_subcommand(
      "explain",
      "Print each pipeline's operator graph: source, steps, lookups, aggregation and the "
      "statements its sink runs (connects to nothing)");
  std::vector<std::string> explain_pipelines;
  explain->add_option("pipeline", explain_pipelines, "pipeline files (.toml or .sql)")->required()->check(CLI::ExistingFile);
  explain->add_option("--var", vars,
                      "set a pipeline variable: NAME=VALUE (repeatable; with several files, the "
                      "same set for each)");
  std::string explain_format = "text";
  explain->add_option("--format", explain_format, "text, or json (one object per file and line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  auto* verify = app.add_subcommand(
      "verify",
      "Recompute a pipeline's output from its source up to the sink's committed positions and "
      "compare it with the sink, row by row (exit 0: equal, 1: they differ)");
  std::string verify_pipeline;
  verify->add_option("pipeline", verify_pipeline, "pipeline TOML file")->required()->check(CLI::ExistingFile);
  verify->add_option("--var", vars, "set a pipeline variable: NAME=VALUE (repeatable)");
  bool verify_json = false;
  verify->add_flag("--json", verify_json, "print the report as one JSON object");
  sluice::VerifyOptions verify_options;
  verify->add_option("--show", verify_options.show, "rows listed of each kind of difference")
      ->capture_default_str();
  verify->add_option("--workers", verify_options.workers, "workers of the recomputation")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  auto* demo = app.add_subcommand("demo", "Run the recruitment pipeline on generated data, no servers needed");
  sluice::cli::DemoOptions demo_options;
  demo->add_option("--dir", demo_options.dir,
                   "directory the demo writes its pipeline, job dimension, results and dead "
                   "letters under (created; printed; default: the folder of --db, else "
                   "sluice-demo)");
  demo->add_option("--pipeline", demo_options.pipeline,
                   "run this pipeline file instead of the built-in examples/recruitment.toml");
  demo->add_option("--db", demo_options.db, "SQLite file for the results (recreated; default: DIR/recruitment.db)");
  double& demo_rate = demo_options.rate;
  double& demo_duration = demo_options.duration_seconds;
  demo->add_option("--rate", demo_rate, "generated events per second")->capture_default_str();
  demo->add_option("--duration", demo_duration, "stop after this many seconds (0: until Ctrl-C)");
  std::string demo_http = "127.0.0.1:8080";
  bool demo_no_http = false;
  demo->add_option("--http", demo_http, "dashboard and /metrics address (a busy port only warns)")
      ->capture_default_str();
  demo->add_flag("--no-http", demo_no_http, "do not serve the dashboard");

  auto* generate = app.add_subcommand("generate", "Produce synthetic events to Kafka or an NDJSON file");
  sluice::cli::GenerateOptions gen;
  generate->add_option("--profile", gen.profile, "generator profile")->capture_default_str();
  generate->add_option("--to", gen.to, "kafka://HOST:PORT/TOPIC or a file path (NDJSON)")->required();
  generate->add_option("--rate", gen.rate, "events per second (0: as fast as possible)")->capture_default_str();
  generate->add_option("--count", gen.count, "number of events (-1: until Ctrl-C)")->capture_default_str();
  generate->add_option("--seed", gen.seed, "random seed")->capture_default_str();
  generate->add_option("--jobs", gen.jobs, "job dimension CSV the ids are drawn from (default: examples/data/job.csv, built in)");
  generate->add_option("--start", gen.start, "event time of the first event (ISO 8601)");
  generate->add_option("--format", gen.format,
                       "json, or avro (recruitment profile, Kafka only): the Confluent wire format with "
                       "the value schema registered at --schema-registry")
      ->capture_default_str();
  generate->add_option("--schema-registry", gen.schema_registry,
                       "with --format avro: the schema registry, http://HOST:PORT");
  generate->add_option("--set", gen.settings,
                       "a generator or profile setting as under [source]: NAME=VALUE (repeatable; "
                       "e.g. spacing=100ms, campaigns=FILE, out_of_order=0.05, late=0.01, "
                       "invalid=0.02)");

  auto* fake_api = app.add_subcommand(
      "fake-api",
      "Serve randomuser-style profiles at /api/?results=N&seed=S&page=P (deterministic, with "
      "optional error injection) for the http source, until SIGINT/SIGTERM");
  sluice::cli::FakeApiCliOptions fake;
  fake_api->add_option("--port", fake.port, "port (0: any free port; the URL is printed)")
      ->capture_default_str();
  fake_api->add_option("--host", fake.host, "address to bind")->capture_default_str();
  fake_api->add_option("--seed", fake.seed, "seed of requests that send none")->capture_default_str();
  fake_api->add_option("--error-rate", fake.error_rate,
                       "share of pages that fail, chosen by (seed, page)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  fake_api->add_option("--errors", fake.errors,
                       "failure kinds: 5xx (500/502/503), timeout (answer --hang ms late), "
                       "malformed (truncated JSON)")
      ->capture_default_str();
  fake_api->add_option("--delay", fake.delay_ms, "delay every answer by this many ms")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  fake_api->add_option("--hang", fake.hang_ms, "how late a 'timeout' answer comes, ms")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  fake_api->add_option("--fail-times", fake.fail_times,
                       "0: a failing page fails every time; N: only its first N requests")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  fake_api->add_option("--max-results", fake.max_results,
                       "most users per page, whatever 'results' asks (an API that caps its page size)")
      ->check(CLI::Range(int64_t{1}, int64_t{5000}))
      ->capture_default_str();

  auto* init = app.add_subcommand("init", "Write a commented pipeline skeleton for a source and a sink");
  sluice::cli::InitOptions init_options;
  init->add_option("--source", init_options.source,
                   "source URI (a file path, kafka://HOST:PORT/TOPIC, http://..., generator:)")
      ->required();
  init->add_option("--sink", init_options.sink,
                   "sink URI (sqlite:FILE, mysql://..., parquet:DIR, kafka://..., cassandra://...)")
      ->required();
  init->add_option("-o,--output", init_options.output, "pipeline file to write (default: stdout)");
  init->add_option("--name", init_options.name, "pipeline name (default: the output file's stem)");
  init->add_flag("--force", init_options.force, "overwrite the output file");

  auto* inspect = app.add_subcommand(
      "inspect",
      "Show what a sink holds: pipelines, committed positions, state size, last checkpoint, "
      "dead letters by reason with samples (runs no pipeline)");
  sluice::cli::InspectCliOptions inspect_options;
  inspect->add_option("sink", inspect_options.uri,
                      "sink URI: sqlite:PATH, mysql://USER@HOST:PORT/DB, parquet:DIR, "
                      "cassandra://HOST:PORT/KEYSPACE or kafka://HOST:PORT/TOPIC")
      ->required();
  inspect->add_option("--pipeline", inspect_options.pipeline, "only this pipeline");
  inspect->add_flag("--json", inspect_options.json, "one JSON object on stdout, for machines");
  inspect->add_option("--samples", inspect_options.samples, "dead-letter samples per reason (newest first)")
      ->capture_default_str();
  inspect->add_option("--reasons", inspect_options.reasons,
                      "dead-letter reasons shown with samples, most frequent first (--json lists "
                      "every reason)")
      ->capture_default_str();
  inspect->add_option("--payload-bytes", inspect_options.payload_bytes,
                      "cut each sample's payload to this many bytes")
      ->capture_default_str();
  auto* status = app.add_subcommand(
      "status",
      "Show who reads each partition of a pipeline's Kafka source (the group's members), the "
      "position committed in the sink, the partition's end and the lag; with state per task, "
      "the process that holds each partition's task and its committed watermark");
  std::string status_pipeline;
  status->add_option("pipeline", status_pipeline, "pipeline TOML file")->required()->check(CLI::ExistingFile);
  status->add_option("--var", vars, "set a pipeline variable: NAME=VALUE (repeatable)");
  sluice::cli::StatusCliOptions status_options;
  status->add_option("--sink", status_options.sink, "read the positions from this sink URI instead of the file's");
  std::string status_format = "text";
  status->add_option("--format", status_format, "text, or json (one object)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  auto* takeover = app.add_subcommand(
      "takeover",
      "Take over a results table another job filled: print the plan, apply it with --apply");
  sluice::cli::TakeoverOptions takeover_options;
  takeover->add_option("pipeline", pipeline, "pipeline TOML file")->required()->check(CLI::ExistingFile);
  takeover->add_option("--var", vars, "set a pipeline variable: NAME=VALUE (repeatable)");
  takeover->add_option("--from-position", takeover_options.from_positions,
                       "where the source starts: OFFSET (a file's byte offset, or partition 0), "
                       "PARTITION=OFFSET or SOURCE:PARTITION=OFFSET (repeat per partition)");
  takeover->add_flag("--apply", takeover_options.apply, "apply the plan (default: print it only)");

  auto* connectors = app.add_subcommand(
      "connectors", "Print the reference of every connector's options (the text of docs/connectors.md)");
  std::string connectors_output;
  connectors->add_option("-o,--output", connectors_output, "write it to FILE instead of stdout");

  app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a usage error (unknown option, missing pipeline file) is a
    // configuration error: exit 2, like a pipeline file sluice rejects.
    const int rc = app.exit(e);
    return rc == 0 ? kExitDone : kExitConfig;
  }
  // --quiet keeps stderr to warnings and errors unless --log-level says otherwise.
  if (run->parsed() && run_cli.progress.quiet && app.get_option("--log-level")->count() == 0) {
    log_level = "warn";
  }
  // verify's report is its output; the recomputation's own log lines only with --log-level.
  if (verify->parsed() && app.get_option("--log-level")->count() == 0) log_level = "warn";
  // status's report is its output too (building the plan loads dimensions, which logs).
  if (status->parsed() && app.get_option("--log-level")->count() == 0) log_level = "warn";
  if (Status s = sluice::cli::SetupLogging(log_level, log_format); !s.ok()) {
    std::cerr << "sluice: " << s.message() << "\n";
    return kExitConfig;
  }

  if (run->parsed()) return Run(pipeline, vars, options, http, run_cli);
  if (validate->parsed()) return Validate(pipelines, vars);
  if (explain->parsed()) return Explain(explain_pipelines, vars, explain_format == "json");
  if (verify->parsed()) return Verify(verify_pipeline, vars, verify_json, verify_options);
  if (generate->parsed()) {
    static std::atomic<bool> stop{false};
    std::signal(SIGINT, [](int) { stop.store(true); });
    std::signal(SIGTERM, [](int) { stop.store(true); });
    return sluice::cli::RunGenerate(gen, stop);
  }
  if (init->parsed()) return sluice::cli::RunInit(init_options);
  if (inspect->parsed()) return sluice::cli::RunInspect(inspect_options);
  if (status->parsed()) {
    auto parsed = ParseVars(vars);
    if (!parsed.ok()) {
      ReportError(parsed.status().message());
      return kExitConfig;
    }
    auto config = sluice::LoadPipelineConfig(status_pipeline, *parsed);
    if (!config.ok()) {
      ReportError(config.status().message());
      return CheckExitCode(config.status());
    }
    status_options.json = status_format == "json";
    return sluice::cli::RunStatus(*config, status_options);
  }
  if (takeover->parsed()) {
    auto parsed = ParseVars(vars);
    if (!parsed.ok()) {
      ReportError(parsed.status().message());
      return kExitConfig;
    }
    int code = kExitDone;
    auto runner = Prepare(pipeline, *parsed, sluice::RunOptions{},
                          [](const std::vector<sluice::VariableUse>&) {}, &code);
    if (!runner) return code;
    return sluice::cli::RunTakeover(*runner, takeover_options);
  }
  if (fake_api->parsed()) return sluice::cli::RunFakeApi(fake);
  if (connectors->parsed()) return PrintConnectors(connectors_output);
  if (demo->parsed()) {
    demo_options.http_address = demo_no_http ? std::string() : demo_http;
    return sluice::cli::RunDemo(demo_options);
  }
  std::cout << "sluice " << SLUICE_VERSION << "\n";
  return 0;
}
