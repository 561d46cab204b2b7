#include "runtime/runner.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "operators/dimension.h"
#include "core/uri.h"
#include "runtime/registry.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

const std::string kRepo = SLUICE_SOURCE_DIR;

/// Dumps the visible columns of `table` as sorted text lines, read with plain SQL.
std::vector<std::string> Dump(const std::string& db_path, const std::string& table = "events") {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::string sql = "SELECT * FROM " + table;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::vector<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string line;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      std::string name = sqlite3_column_name(st, c);
      if (name[0] == '_') continue;
      const unsigned char* t = sqlite3_column_text(st, c);
      line += (t ? reinterpret_cast<const char*>(t) : "NULL") + std::string("|");
    }
    out.push_back(line);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::sort(out.begin(), out.end());
  return out;
}

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() /
           ("sluice_runner_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<PipelineConfig> Config(const std::string& tracking, const std::string& db,
                                const std::string& count = "") {
    Variables vars;
    vars.use_environment = false;
    vars.values = {{"TRACKING", tracking},
                   {"JOBS", kRepo + "/examples/data/job.csv"},
                   {"SINK", "sqlite:" + db},
                   {"DLQ", file_dead_letters_ ? db + ".dlq.ndjson" : ""},
                   {"RATE", "0"},
                   {"COUNT", count}};
    return LoadPipelineConfig(kRepo + "/examples/recruitment.toml", vars);
  }

  /// Runs to completion.
  void RunAll(const std::string& tracking, const std::string& db, const std::string& count = "") {
    auto cfg = Config(tracking, db, count);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    Status s = (*runner)->Run();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  /// Runs with graceful stops after random delays, restarting until a run ends by itself
  /// (the input is consumed) without having been stopped. Returns the number of runs.
  int RunInterrupted(const std::string& tracking, const std::string& db, const std::string& count,
                     int workers) {
    std::mt19937 rng(7);
    for (int runs = 1; runs <= 40; ++runs) {
      auto cfg = Config(tracking, db, count);
      EXPECT_TRUE(cfg.ok());
      cfg->checkpoint_interval_micros = 20'000;
      RunOptions options;
      options.workers = workers;
      auto runner = Runner::Make(std::move(cfg).value(), options);
      EXPECT_TRUE(runner.ok()) << runner.status().ToString();
      std::atomic<bool> done{false};
      std::atomic<bool> stopped{false};
      Runner* r = runner->get();
      const bool interrupt = runs < 10;
      const auto delay = std::chrono::milliseconds(10 + rng() % 50);
      std::thread stopper([&] {
        auto until = std::chrono::steady_clock::now() + delay;
        while (!done.load() && std::chrono::steady_clock::now() < until) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (!done.load() && interrupt) {
          stopped = true;
          r->RequestStop();
        }
      });
      Status s = r->Run();
      done = true;
      stopper.join();
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!stopped.load()) return runs;
    }
    ADD_FAILURE() << "the run never finished";
    return 40;
  }

  fs::path dir_;
  bool file_dead_letters_ = true;  ///< DLQ set: dead letters to a file, else into the sink
};

/// Removes the "time" member of every dead-letter line: the wall-clock time differs between runs.
std::string WithoutTimes(const std::string& lines) {
  return std::regex_replace(lines, std::regex("\"time\":\"[^\"]*\","), "");
}

/// The sink's dead letters without their time, as sorted lines.
std::vector<std::string> SinkDeadLetters(const std::string& db) {
  return Dump(db,
              "(SELECT pipeline, source, partition, offset, seq, reason, payload, payload_base64, "
              "payload_bytes, truncated, payload_sha256 FROM _sluice_dead_letters)");
}

TEST_F(RunnerTest, GeneratorRestartsGiveTheUninterruptedResult) {
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string();
  // Enough input that several runs are stopped before the input is consumed.
  RunAll("generator:", a, "200000");
  int runs = RunInterrupted("generator:", b, "200000", 1);
  EXPECT_GT(runs, 2);
  auto expected = Dump(a);
  ASSERT_GT(expected.size(), 1000u);
  EXPECT_EQ(Dump(b), expected);
  // Dead letters are exactly once as well: same lines, same order.
  EXPECT_EQ(WithoutTimes(*ReadFile(b + ".dlq.ndjson")), WithoutTimes(*ReadFile(a + ".dlq.ndjson")));
  EXPECT_NE(ReadFile(a + ".dlq.ndjson")->find("\"reason\":"), std::string::npos);
}

TEST_F(RunnerTest, DeadLettersInTheSinkAreExactlyOnceAcrossRestarts) {
  file_dead_letters_ = false;
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string();
  RunAll("generator:", a, "200000");
  EXPECT_GT(RunInterrupted("generator:", b, "200000", 1), 2);
  auto expected = SinkDeadLetters(a);
  ASSERT_GT(expected.size(), 10u);
  EXPECT_EQ(SinkDeadLetters(b), expected);
  EXPECT_FALSE(fs::exists(dir_ / "a.dead-letters.ndjson"));
  EXPECT_FALSE(fs::exists(dir_ / "recruitment.dead-letters.ndjson"));
}

TEST_F(RunnerTest, SeedCsvRestartsGiveTheUninterruptedResult) {
  const std::string seed = std::string(SLUICE_SEED_DIR) + "/TrannXuanTien__ETL-streaming-project/tracking.csv";
  ASSERT_TRUE(fs::exists(seed)) << seed;
  // Six copies of the log give several batches to interrupt.
  const std::string input = (dir_ / "tracking.csv").string();
  {
    std::string text = *ReadFile(seed);
    size_t header_end = text.find('\n') + 1;
    std::ofstream out(input, std::ios::binary);
    out << text;
    for (int i = 0; i < 5; ++i) out << text.substr(header_end);
  }
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string();
  RunAll(input, a);
  RunInterrupted(input, b, "", 1);
  auto expected = Dump(a);
  ASSERT_GT(expected.size(), 100u);
  EXPECT_EQ(Dump(b), expected);
}

TEST_F(RunnerTest, MultipleWorkersGiveTheSameResultAsOne) {
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string();
  auto one = Config("generator:", a, "20000");
  ASSERT_TRUE(one.ok());
  // Four generator partitions read by one worker, then by three.
  one->source.options.Set("partitions", {"4", {}});
  auto r1 = Runner::Make(std::move(one).value(), RunOptions{.workers = 1});
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  ASSERT_TRUE((*r1)->Run().ok());
  auto three = Config("generator:", b, "20000");
  three->source.options.Set("partitions", {"4", {}});
  auto r3 = Runner::Make(std::move(three).value(), RunOptions{.workers = 3});
  ASSERT_TRUE(r3.ok());
  ASSERT_TRUE((*r3)->Run().ok());
  EXPECT_EQ((*r3)->Snapshot().workers, 3);
  EXPECT_EQ(Dump(b), Dump(a));
}

TEST_F(RunnerTest, SecondRunOverTheSameFileChangesNothing) {
  const std::string seed = std::string(SLUICE_SEED_DIR) + "/TrannXuanTien__ETL-streaming-project/tracking.csv";
  const std::string db = (dir_ / "x.db").string();
  RunAll(seed, db);
  auto first = Dump(db);
  auto cfg = Config(seed, db);
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{.until_caught_up = true});
  ASSERT_TRUE(runner.ok());
  ASSERT_TRUE((*runner)->Run().ok());
  EXPECT_EQ((*runner)->Snapshot().records_in, 0);
  EXPECT_EQ(Dump(db), first);
}

/// Wraps the SQLite sink; its commits fail while `down` is set, like an unreachable database.
class FlakySink : public Sink {
 public:
  static std::atomic<bool> down;
  explicit FlakySink(std::unique_ptr<Sink> inner) : inner_(std::move(inner)) {}
  Status Open(const SinkContext& ctx) override { return inner_->Open(ctx); }
  Result<std::vector<StoredPosition>> LoadPositions() override { return inner_->LoadPositions(); }
  Status Commit(const Checkpoint& cp) override {
    if (down.load()) return Status::Unavailable("the test holds the sink down");
    return inner_->Commit(cp);
  }

 private:
  std::unique_ptr<Sink> inner_;
};
std::atomic<bool> FlakySink::down{false};

TEST_F(RunnerTest, UnreachableSinkPausesTheSourceAndRecovers) {
  ConnectorRegistry::Instance().AddSink("flaky", [](const SinkConfig& config) -> Result<std::unique_ptr<Sink>> {
    SinkConfig inner = config;
    inner.uri = "sqlite:" + SplitUri(config.uri).second;
    ASSIGN_OR_RETURN(auto sink, ConnectorRegistry::Instance().MakeSink(inner));
    return std::unique_ptr<Sink>(new FlakySink(std::move(sink)));
  });
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string();
  RunAll("generator:", a, "100000");

  auto cfg = Config("generator:", b, "100000");
  ASSERT_TRUE(cfg.ok());
  cfg->sink.uri = "flaky:" + b;
  cfg->max_pending = 1000;
  cfg->checkpoint_interval_micros = 20'000;
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  FlakySink::down = true;
  Status result;
  std::thread run([&] { result = (*runner)->Run(); });
  // While the sink is down the coordinator retries one checkpoint and asks for nothing new;
  // the worker fills its pending state once more, then stops reading until a commit succeeds.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto stuck = [&] {
    PipelineSnapshot s = (*runner)->Snapshot();
    return s.backpressure_waits > 0 && s.checkpoint_failures > 0;
  };
  while (!stuck() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const PipelineSnapshot paused1 = (*runner)->Snapshot();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const PipelineSnapshot paused2 = (*runner)->Snapshot();
  EXPECT_EQ(paused1.records_in, paused2.records_in) << "the source kept reading";
  EXPECT_LT(paused2.records_in, 100000);
  EXPECT_GT(paused2.backpressure_waits, 0);
  EXPECT_GT(paused2.checkpoint_failures, 0);
  EXPECT_EQ(paused2.checkpoints, 0);
  FlakySink::down = false;
  run.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ((*runner)->Snapshot().records_in, 100000);
  EXPECT_EQ(Dump(b), Dump(a));
}

TEST_F(RunnerTest, MissingSourceFileIsAClearError) {
  auto cfg = Config((dir_ / "nope.csv").string(), (dir_ / "x.db").string());
  ASSERT_TRUE(cfg.ok());
  // Refused while the pipeline is checked (Make), before the sink is opened.
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), StatusCode::kNotFound);
  EXPECT_NE(runner.status().message().find("nope.csv"), std::string::npos) << runner.status().message();
  EXPECT_FALSE(fs::exists(dir_ / "x.db"));
}

// Issue 13: `sluice validate` (which stops after Make) must refuse what a run refuses before it
// touches data: the sink's own capability checks run in Make, without opening the sink.
TEST_F(RunnerTest, SinkCapabilityIsCheckedInMakeWithoutTouchingTheSink) {
  const std::string out = (dir_ / "pq").string();
  Variables vars;
  vars.use_environment = false;
  auto cfg = ParsePipelineConfig(
      "[pipeline]\nname = \"p\"\n[source]\nuri = \"generator:\"\ncount = 10\n"
      "fields = { job_id = \"int64\" }\n[aggregate]\ntime = \"parse_time('2026-01-01')\"\n"
      "window = \"1m\"\nkeys = [\"job_id\"]\nmetrics = [\"n = count()\"]\n"
      "[sink]\nuri = \"parquet:" + out + "\"\n",
      "p.toml", vars);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(runner.status().message().find("mode = \"append\""), std::string::npos)
      << runner.status().message();
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(RunnerTest, SourceThatIsADirectoryIsRefusedAtStart) {
  fs::create_directories(dir_ / "in.csv");
  auto cfg = Config((dir_ / "in.csv").string(), (dir_ / "x.db").string());
  ASSERT_TRUE(cfg.ok());
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(runner.status().message().find("is a directory"), std::string::npos)
      << runner.status().message();
}

}  // namespace
}  // namespace sluice
