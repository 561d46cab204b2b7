// The http source's own counters on /metrics: a whole pipeline (http source -> SQLite) against a
// live fake API with injected faults; the rendered counters must equal what the fault formula
// predicts for the pages requested.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "connectors/http/fake_api.h"
#include "http/metrics.h"
#include "runtime/registry.h"
#include "runtime/runner.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

/// Parses the sample lines of a Prometheus text exposition: "name{labels}" -> value.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(HttpSourceMetrics, CountersOnMetricsMatchTheFaultFormula) {
  RegisterBuiltins();
  FakeApiOptions o;
  o.error_rate = 0.4;
  o.hang_ms = 1500;  // longer than the source's 400ms timeout
  const int pages = 12, size = 4;
  // The first seed whose pages 1..12 include every kind of fault, so each counter is exercised.
  std::string seed;
  std::map<FakeFault, int> faults;
  for (int i = 0; i < 100 && seed.empty(); ++i) {
    const std::string candidate = "metrics-" + std::to_string(i);
    std::map<FakeFault, int> f;
    for (int page = 1; page <= pages; ++page) ++f[FakeFaultFor(o, candidate, page)];
    if (f[FakeFault::k5xx] > 0 && f[FakeFault::kTimeout] > 0 && f[FakeFault::kMalformed] > 0) {
      seed = candidate;
      faults = f;
    }
  }
  ASSERT_FALSE(seed.empty());
  auto server = FakeApiServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status().message();

  const fs::path dir = fs::temp_directory_path() /
                       ("sluice_http_metrics_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string toml = R"(
select = ["uuid", "page = _offset"]

[pipeline]
name = "http_metrics"
checkpoint_interval = "100ms"

[source]
name = "users"
uri = "http://127.0.0.1:)" + std::to_string((*server)->port()) + R"(/api/"
records = "results"
page_size = )" + std::to_string(size) + R"(
seed = ")" + seed + R"("
pages = )" + std::to_string(pages) + R"(
interval = "0s"
timeout = "400ms"
retries = 2
backoff = "10ms"
backoff_max = "40ms"

[source.fields]
uuid = { type = "string", path = "login.uuid" }

[sink]
uri = "sqlite:)" + (dir / "out.db").string() + R"("
table = "users"

[dead_letter]
path = ")" + (dir / "dlq.ndjson").string() + R"("
)";
  Variables vars;
  vars.use_environment = false;
  auto config = ParsePipelineConfig(toml, "http_metrics.toml", vars);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto runner = Runner::Make(std::move(config).value(), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();

  // Scrape concurrently with the run (as the HTTP thread does): counters only ever grow.
  std::atomic<bool> done{false};
  bool monotone = true;
  std::thread scraper([&] {
    std::map<std::pair<std::string, std::string>, int64_t> last;
    while (!done.load()) {
      for (const SourceCounter& c : r->Snapshot().source_counters) {
        int64_t& prev = last[{c.name, c.kind}];
        if (c.value < prev) monotone = false;
        prev = c.value;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  Status s = r->Run();
  done = true;
  scraper.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(monotone);

  const PipelineSnapshot snap = r->Snapshot();
  http::MetricsInfo info{"http_metrics", "users", "users", "test"};
  const std::string text = http::RenderMetrics(snap, info, http::ProcessStats{}, 0);

  // Expected, from the fault formula alone: 5xx and timeouts are retried twice (3 attempts),
  // malformed bodies are not retried; every failing page is dead-lettered.
  const int64_t n5xx = faults[FakeFault::k5xx], ntimeout = faults[FakeFault::kTimeout];
  const int64_t nmalformed = faults[FakeFault::kMalformed];
  const int64_t failed = n5xx + ntimeout + nmalformed;
  const int64_t retries = 2 * (n5xx + ntimeout);
  const std::string labels = R"(pipeline="http_metrics",source="users")";
  const std::map<std::string, int64_t> expected = {
      {"sluice_http_requests_total{" + labels + "}", pages + retries},
      {"sluice_http_retries_total{" + labels + "}", retries},
      {"sluice_http_pages_total{" + labels + "}", pages - failed},
      {"sluice_http_records_total{" + labels + "}", (pages - failed) * size},
      {"sluice_http_dead_lettered_pages_total{" + labels + "}", failed},
      {"sluice_http_failures_total{" + labels + R"(,kind="timeout"})", 3 * ntimeout},
      {"sluice_http_failures_total{" + labels + R"(,kind="connection"})", 0},
      {"sluice_http_failures_total{" + labels + R"(,kind="http_5xx"})", 3 * n5xx},
      {"sluice_http_failures_total{" + labels + R"(,kind="http_429"})", 0},
      {"sluice_http_failures_total{" + labels + R"(,kind="http_4xx"})", 0},
      {"sluice_http_failures_total{" + labels + R"(,kind="invalid_body"})", nmalformed},
      {"sluice_http_failures_total{" + labels + R"(,kind="too_large"})", 0},
      // The engine's own counters agree: one record per user, one dead letter per failed page.
      {"sluice_source_records_total{" + labels + "}", (pages - failed) * size},
      {"sluice_records_dead_lettered_total{pipeline=\"http_metrics\"}", failed},
  };
  const auto samples = Samples(text);
  for (const auto& [series, value] : expected) {
    auto it = samples.find(series);
    ASSERT_NE(it, samples.end()) << series << " missing in\n" << text;
    EXPECT_EQ(it->second, std::to_string(value)) << series;
  }
  for (const char* family : {"sluice_http_requests_total", "sluice_http_failures_total"}) {
    EXPECT_EQ(Count(text, std::string("# TYPE ") + family + " counter\n"), 1) << family;
    EXPECT_EQ(Count(text, std::string("# HELP ") + family + " "), 1) << family;
  }
  // /api/status carries them too, through the same snapshot.
  int64_t requests = -1;
  for (const SourceCounter& c : snap.source_counters) {
    if (c.name == "http_requests") requests = c.value;
  }
  EXPECT_EQ(requests, pages + retries);

  // A real reader of the format, when installed.
  if (std::system("command -v promtool > /dev/null 2>&1") == 0) {
    const std::string path = (dir / "metrics.txt").string();
    std::ofstream(path) << text;
    const std::string cmd = "promtool check metrics < " + path + " > " + path + ".out 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream result(path + ".out");
    std::string out((std::istreambuf_iterator<char>(result)), std::istreambuf_iterator<char>());
    EXPECT_EQ(rc, 0) << out;
  } else {
    std::fprintf(stderr, "SKIP promtool check: promtool (Debian `prometheus`) is not installed\n");
  }
  (*server)->Stop();
  runner->reset();
  fs::remove_all(dir);
}

/// Sources without counters of their own add no series (and no empty families).
TEST(HttpSourceMetrics, NoSourceCountersNoFamilies) {
  PipelineSnapshot snap;
  const std::string text =
      http::RenderMetrics(snap, http::MetricsInfo{"p", "s", "k", "v"}, http::ProcessStats{}, 0);
  EXPECT_EQ(text.find("sluice_http_"), std::string::npos);
  snap.source_counters = {{"x_things", "Things.", "", 2}, {"x_fails", "Fails.", "a", 1},
                          {"x_things", "Things.", "", 0}, {"x_fails", "Fails.", "b", 3}};
  std::vector<SourceCounter> sum;
  AddSourceCounters(snap.source_counters, &sum);
  AddSourceCounters(snap.source_counters, &sum);
  ASSERT_EQ(sum.size(), 3u);  // x_things, x_fails{a}, x_fails{b}
  EXPECT_EQ(sum[0].value, 4);
  EXPECT_EQ(sum[1].value, 2);
  EXPECT_EQ(sum[2].value, 6);
  snap.source_counters = sum;
  const std::string rendered =
      http::RenderMetrics(snap, http::MetricsInfo{"p", "s", "k", "v"}, http::ProcessStats{}, 0);
  EXPECT_NE(rendered.find("# TYPE sluice_x_fails_total counter\n"
                          "sluice_x_fails_total{pipeline=\"p\",source=\"s\",kind=\"a\"} 2\n"
                          "sluice_x_fails_total{pipeline=\"p\",source=\"s\",kind=\"b\"} 6\n"),
            std::string::npos)
      << rendered;
  EXPECT_NE(rendered.find("sluice_x_things_total{pipeline=\"p\",source=\"s\"} 4\n"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice
