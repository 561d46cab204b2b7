#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "commands.h"
#include "core/time.h"
#include "demo_files.h"
#include "logging.h"
#include "serve.h"
#include "sql/load_pipeline.h"

namespace sluice::cli {
namespace {

std::string Thousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

/// Reads business totals and the top jobs from the sink, through its own read-only connection.
std::string BusinessPanel(const std::string& db_path) {
  sqlite3* db = nullptr;
  std::ostringstream out;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "  (no results yet)\n";
  }
  sqlite3_busy_timeout(db, 200);
  sqlite3_stmt* st = nullptr;
  const char* totals =
      "SELECT COUNT(*), SUM(clicks), SUM(conversion), SUM(qualified_application), "
      "SUM(disqualified_application), SUM(spend_hour) FROM events";
  if (sqlite3_prepare_v2(db, totals, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    out << "  rows " << Thousands(sqlite3_column_int64(st, 0)) << "   clicks "
        << Thousands(sqlite3_column_int64(st, 1)) << "   conversions "
        << Thousands(sqlite3_column_int64(st, 2)) << "   qualified "
        << Thousands(sqlite3_column_int64(st, 3)) << "   disqualified "
        << Thousands(sqlite3_column_int64(st, 4)) << "   spend "
        << Thousands(sqlite3_column_int64(st, 5)) << "\n";
  } else {
    out << "  (no results yet)\n";
  }
  sqlite3_finalize(st);
  const char* top =
      "SELECT job_id, MAX(company_id), SUM(clicks) AS c, SUM(spend_hour), SUM(conversion) FROM "
      "events GROUP BY job_id ORDER BY c DESC, job_id LIMIT 5";
  if (sqlite3_prepare_v2(db, top, -1, &st, nullptr) == SQLITE_OK) {
    out << "  top jobs by clicks:   job   company    clicks     spend  conversions\n";
    while (sqlite3_step(st) == SQLITE_ROW) {
      char line[160];
      std::snprintf(line, sizeof line, "                      %5lld  %8lld  %8lld  %8lld  %11lld\n",
                    static_cast<long long>(sqlite3_column_int64(st, 0)),
                    static_cast<long long>(sqlite3_column_int64(st, 1)),
                    static_cast<long long>(sqlite3_column_int64(st, 2)),
                    static_cast<long long>(sqlite3_column_int64(st, 3)),
                    static_cast<long long>(sqlite3_column_int64(st, 4)));
      out << line;
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out.str();
}

/// Writes the demo's pipeline and job dimension under `dir` (replacing earlier copies).
Status WriteDemoFiles(const std::filesystem::path& dir) {
  for (const DemoFile& f : DemoFiles()) {
    if (f.path != "recruitment.toml" && f.path != "data/job.csv") continue;
    const std::filesystem::path path = dir / std::string(f.path);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    std::FILE* out = std::fopen(path.c_str(), "wb");
    if (!out) return Status::IOError("cannot write " + path.string() + ": " + std::strerror(errno));
    const bool ok = std::fwrite(f.body.data(), 1, f.body.size(), out) == f.body.size();
    if (std::fclose(out) != 0 || !ok) {
      return Status::IOError("cannot write " + path.string() + ": " + std::strerror(errno));
    }
  }
  return Status::OK();
}

}  // namespace

const DemoFile* FindDemoFile(std::string_view path) { return FindEmbeddedFile(DemoFiles(), path); }

std::string FailureSummary(const std::string& pipeline, const PipelineSnapshot& s, double seconds) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.2f", seconds);
  return "pipeline " + pipeline + " failed after " + secs + "s (" + Thousands(s.records_in) +
         " records in, " + Thousands(s.checkpoints) + " checkpoints committed)";
}

void PrintSummary(const PipelineSnapshot& s, const std::string& dead_letter_path, double seconds,
                  std::FILE* out) {
  std::string rows = Thousands(s.rows_written) + " rows upserted";
  if (s.row_counts_known) {
    rows += " (" + Thousands(s.rows_inserted) + " inserted, " + Thousands(s.rows_updated) +
            " updated)";
  }
  std::fprintf(out, "%s: %s records in %.2fs (%s/s): %s aggregated, %s ignored, %s dead-lettered%s%s; "
              "%s in %s checkpoints\n",
              s.pipeline.c_str(), Thousands(s.records_in).c_str(), seconds,
              Thousands(static_cast<int64_t>(s.records_in / std::max(seconds, 1e-9))).c_str(),
              Thousands(s.aggregated).c_str(), Thousands(s.ignored).c_str(),
              Thousands(s.dead_lettered).c_str(), s.dead_lettered > 0 ? " -> " : "",
              s.dead_lettered > 0 ? dead_letter_path.c_str() : "", rows.c_str(),
              Thousands(s.checkpoints).c_str());
  std::fflush(out);
}

int RunDemo(const DemoOptions& options) {
  const double rate = options.rate;
  const double duration_seconds = options.duration_seconds;
  const std::string& http_address = options.http_address;
  std::filesystem::path dir = options.dir;
  if (dir.empty()) dir = options.db.empty() ? "sluice-demo" : std::filesystem::path(options.db).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    ReportError("--dir " + dir.string() + ": " + ec.message());
    return 2;
  }
  std::string pipeline_path = options.pipeline;
  if (pipeline_path.empty()) {
    pipeline_path = (dir / "recruitment.toml").string();
    if (Status s = WriteDemoFiles(dir); !s.ok()) {
      ReportError(s.message());
      return 1;
    }
  }
  const std::string db_path = options.db.empty() ? (dir / "recruitment.db").string() : options.db;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db_path + suffix, ec);
  const std::string where = std::filesystem::absolute(dir, ec).lexically_normal().string();
  std::cout << "sluice demo: writing under " << where << "\n"
            << "  pipeline " << pipeline_path << (options.pipeline.empty() ? " (built in)" : "")
            << ", results and dead letters (table _sluice_dead_letters) in " << db_path << "\n"
            << "  input: synthetic recruitment tracking events from the generator (seed 7, "
            << (rate > 0 ? FormatDouble(rate) + " events/s" : std::string("unthrottled"))
            << ", event times from now), not real data; job ids from the job dimension\n"
            << std::flush;

  Variables vars;
  // The demo's own settings: named as such, and a --pipeline that uses fewer of them is fine.
  vars.values_label = "demo";
  vars.reject_unused = false;
  vars.values["TRACKING"] = "generator:";
  vars.values["SINK"] = "sqlite:" + db_path;
  vars.values["RATE"] = FormatDouble(rate);
  vars.values["COUNT"] = "";
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  vars.values["START"] = FormatTimestamp(FloorTo(now, kMicrosPerSecond), "%Y-%m-%dT%H:%M:%SZ");
  auto config = LoadPipeline(pipeline_path, vars);
  if (!config.ok()) {
    ReportError(config.status().message());
    return 2;
  }
  for (const auto& v : config->variables) spdlog::info("variable {}", DescribeVariable(v));
  auto runner = Runner::Make(std::move(config).value(), RunOptions{});
  if (!runner.ok()) {
    ReportError(runner.status().message());
    return runner.status().code() == StatusCode::kUnavailable ||
                   runner.status().code() == StatusCode::kIOError
               ? 1
               : 2;
  }
  Runner* r = runner->get();
  HttpEndpoint endpoint;
  if (!http_address.empty()) {
    auto started_http = StartHttp(r, http_address);
    if (started_http.ok()) {
      endpoint = std::move(started_http).value();
    } else if (started_http.status().code() == StatusCode::kInvalidArgument) {
      ReportError("--http: " + started_http.status().message());
      return 2;
    } else {
      spdlog::warn("dashboard not served: {} (choose another port with --http HOST:PORT, "
                   "or --no-http)",
                   started_http.status().message());
    }
  }
  WatchSignals(r);
  Status result;
  std::atomic<bool> finished{false};
  const auto started = std::chrono::steady_clock::now();
  std::thread worker([&] {
    result = r->Run();
    finished = true;
  });
  const bool tty = isatty(STDOUT_FILENO);
  int64_t last_records = 0;
  auto last = started;
  int tick = 0;
  while (!finished.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (++tick % 10 != 0) continue;
    const auto now_tp = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now_tp - started).count();
    if (duration_seconds > 0 && elapsed >= duration_seconds) r->RequestStop();
    PipelineSnapshot s = r->Snapshot();
    const double dt = std::chrono::duration<double>(now_tp - last).count();
    const auto per_second = static_cast<int64_t>((s.records_in - last_records) / std::max(dt, 1e-9));
    last_records = s.records_in;
    last = now_tp;
    std::ostringstream frame;
    frame << "sluice demo: synthetic tracking events (generator:) -> recruitment pipeline -> "
             "SQLite "
          << db_path << "\n";
    frame << "  uptime " << static_cast<int64_t>(elapsed) << "s   events " << Thousands(s.records_in)
          << " (" << Thousands(per_second) << "/s)   checkpoints " << Thousands(s.checkpoints)
          << "   last checkpoint " << s.last_checkpoint_duration_micros / 1000 << " ms\n";
    frame << "  ignored " << Thousands(s.ignored);
    for (const auto& [reason, n] : s.ignored_by_reason) {
      frame << " | " << reason << ": " << Thousands(n);
    }
    frame << "\n  dead-lettered " << Thousands(s.dead_lettered) << " (decode errors "
          << Thousands(s.decode_errors);
    for (const auto& [reason, n] : s.dead_lettered_by_reason) {
      frame << ", " << reason.substr(0, reason.find(':')) << " " << Thousands(n);
    }
    frame << ") -> " << r->dead_letter_location() << "\n";
    frame << BusinessPanel(db_path);
    if (endpoint.server) {
      frame << "  dashboard " << endpoint.url << "   metrics " << endpoint.url << "metrics\n";
    }
    frame << "  Ctrl-C drains, checkpoints and exits.\n";
    if (tty) {
      std::cout << "\033[H\033[2J" << frame.str() << std::flush;
    } else if (tick % 50 == 0) {
      std::cout << frame.str() << std::flush;
    }
  }
  worker.join();
  StopWatchingSignals();
  if (endpoint.server) endpoint.server->Stop();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result.ok()) {
    ReportError(FailureSummary(r->config().name, r->Snapshot(), secs) + ": " + result.ToString());
    return 1;
  }
  PrintSummary(r->Snapshot(), r->dead_letter_location(), secs);
  std::cout << "results: sqlite3 " << db_path
            << " 'SELECT * FROM events ORDER BY clicks DESC LIMIT 10'\n"
            << "the demo's files are under " << where << "\n";
  return 0;
}

}  // namespace sluice::cli
