// Bounded endings: a stop (SIGTERM) ends a run within shutdown_timeout whatever the sink or the
// source does, and --until-caught-up gives up on a source whose reads keep failing.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "core/uri.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kRepo = SLUICE_SOURCE_DIR;

/// Rows of `sql` in the SQLite file at `path`, read with plain SQL (-1: no such table).
int64_t Count(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/// A sink whose commits always fail, like a full disk or a database server that is gone.
class BrokenSink : public Sink {
 public:
  explicit BrokenSink(std::unique_ptr<Sink> inner) : inner_(std::move(inner)) {}
  Status Open(const SinkContext& ctx) override { return inner_->Open(ctx); }
  Result<std::vector<StoredPosition>> LoadPositions() override { return inner_->LoadPositions(); }
  Status Commit(const Checkpoint&) override {
    return Status::IOError("database or disk is full (the test's sink)");
  }

 private:
  std::unique_ptr<Sink> inner_;
};

/// A source that reads one record, then blocks in Poll() until released, ignoring stops (a
/// client call that does not return).
std::atomic<bool> g_release{false};
class StuckSource : public Source {
 public:
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (!sent_) {
      sent_ = true;
      RawRecord& r = out->Append(R"({"create_time":"2024-01-01 00:00:00","job_id":1,"custom_track":"click"})");
      r.next_offset = 1;
      return PollState::kData;
    }
    while (!g_release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return PollState::kIdle;
  }
  std::string_view kind() const override { return "stuck"; }
  DecoderOptions decoder_options() const override { return DecoderOptions{}; }

 private:
  bool sent_ = false;
};

/// A source whose every read fails with a server's message.
class FailingSource : public Source {
 public:
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch*, size_t, std::chrono::milliseconds) override {
    return Status::Unavailable("HTTP 503 from the test server: overloaded, try later");
  }
  std::string_view kind() const override { return "failing"; }
  DecoderOptions decoder_options() const override { return DecoderOptions{}; }
};

/// Two workers of one process, as two Kafka consumers in a rebalance. Worker 0's input ends after
/// one record, and its Close() does not return until worker 1 has answered its revoke (a
/// consumer's close() waits for the rebalance, and the rebalance for every member's revoke
/// callback). Worker 1 reads a record each time the test allows one more; after its second it
/// is revoked its partition, and its callback waits for the checkpoint of what it read.
std::atomic<bool> g_close_entered{false};
std::atomic<bool> g_revoke_answered{false};
std::atomic<int> g_trickle_allowed{0};
class EndingSource : public Source {
 public:
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (sent_) return PollState::kEnd;
    sent_ = true;
    RawRecord& r = out->Append(R"({"create_time":"2024-01-01 00:00:00","job_id":1,"custom_track":"click"})");
    r.partition = 0;
    r.next_offset = 1;
    return PollState::kData;
  }
  void Close() override {
    g_close_entered = true;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!g_revoke_answered.load() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  bool EndIsFinal() const override { return false; }
  std::string_view kind() const override { return "ending"; }
  DecoderOptions decoder_options() const override { return DecoderOptions{}; }

 private:
  bool sent_ = false;
};
class TrickleSource : public Source {
 public:
  Status Open(const SourceContext& ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (sent_ == 2 && !revoked_) {
      revoked_ = true;
      Status s = ctx_.checkpoint_before_revoke({1});
      g_revoke_answered = true;
      RETURN_IF_ERROR(s);
    }
    if (revoked_ || sent_ >= g_trickle_allowed.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return PollState::kIdle;
    }
    RawRecord& r = out->Append(R"({"create_time":"2024-01-01 00:00:01","job_id":1,"custom_track":"click"})");
    r.partition = 1;
    r.offset = sent_;
    r.next_offset = ++sent_;
    return PollState::kData;
  }
  std::vector<int32_t> Partitions() const override {
    if (revoked_) return {};
    return {1};
  }
  std::string_view kind() const override { return "trickle"; }
  DecoderOptions decoder_options() const override { return DecoderOptions{}; }

 private:
  SourceContext ctx_;
  int64_t sent_ = 0;
  bool revoked_ = false;
};

class ShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    auto& reg = ConnectorRegistry::Instance();
    reg.AddSink("broken", [](const SinkConfig& config) -> Result<std::unique_ptr<Sink>> {
      SinkConfig inner = config;
      inner.uri = "sqlite:" + SplitUri(config.uri).second;
      ASSIGN_OR_RETURN(auto sink, ConnectorRegistry::Instance().MakeSink(inner));
      return std::unique_ptr<Sink>(new BrokenSink(std::move(sink)));
    });
    reg.AddSource("stuck", [](const SourceConfig&, int) -> Result<std::vector<std::unique_ptr<Source>>> {
      std::vector<std::unique_ptr<Source>> v;
      v.push_back(std::make_unique<StuckSource>());
      return v;
    });
    reg.AddSource("closing", [](const SourceConfig&, int) -> Result<std::vector<std::unique_ptr<Source>>> {
      std::vector<std::unique_ptr<Source>> v;
      v.push_back(std::make_unique<EndingSource>());
      v.push_back(std::make_unique<TrickleSource>());
      return v;
    });
    reg.AddSource("failing", [](const SourceConfig&, int) -> Result<std::vector<std::unique_ptr<Source>>> {
      std::vector<std::unique_ptr<Source>> v;
      v.push_back(std::make_unique<FailingSource>());
      return v;
    });
    dir_ = fs::temp_directory_path() /
           ("sluice_shutdown_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  PipelineConfig Config(const std::string& tracking, const std::string& sink) {
    Variables vars;
    vars.use_environment = false;
    vars.values = {{"TRACKING", tracking},
                   {"JOBS", kRepo + "/examples/data/job.csv"},
                   {"SINK", sink},
                   {"DLQ", (dir_ / "dlq.ndjson").string()},
                   {"RATE", "0"},
                   {"COUNT", "50000"}};
    auto cfg = LoadPipelineConfig(kRepo + "/examples/recruitment.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    cfg->checkpoint_interval_micros = 20'000;
    return std::move(cfg).value();
  }

  fs::path dir_;
};

TEST_F(ShutdownTest, PipelineSettingsAreRead) {
  const fs::path p = dir_ / "p.toml";
  std::ofstream(p) << "select = [\"job_id\"]\n[pipeline]\nname = \"p\"\ncatch_up_timeout = \"90s\"\n"
                      "shutdown_timeout = \"5s\"\n[source]\nuri = \"generator:\"\n[sink]\n"
                      "uri = \"sqlite:x.db\"\ntable = \"t\"\n";
  auto cfg = LoadPipelineConfig(p.string(), Variables{});
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->catch_up_timeout_micros, 90'000'000);
  EXPECT_EQ(cfg->shutdown_timeout_micros, 5'000'000);
  std::ofstream(p) << "select = [\"job_id\"]\n[pipeline]\nname = \"p\"\nshutdown_timeout = \"soon\"\n"
                      "[source]\nuri = \"generator:\"\n[sink]\nuri = \"sqlite:x.db\"\ntable = \"t\"\n";
  auto bad = LoadPipelineConfig(p.string(), Variables{});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.toml:4:"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("shutdown_timeout must be a duration"), std::string::npos);
}

TEST_F(ShutdownTest, StopEndsARunWhoseCheckpointKeepsFailing) {
  const std::string db = (dir_ / "x.db").string();
  PipelineConfig cfg = Config("generator:", "broken:" + db);
  cfg.shutdown_timeout_micros = 1'000'000;
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();
  auto result = std::async(std::launch::async, [r] { return r->Run(); });
  // Wait until checkpoints fail, then stop as SIGTERM does.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (r->Snapshot().checkpoint_failures == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(r->Snapshot().checkpoint_failures, 0);
  const auto stopped = Clock::now();
  r->RequestStop();
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "Run() still retrying the checkpoint 10 s after the stop (shutdown_timeout 1 s)";
    r->RequestStop();  // a second stop abandons the checkpoint, so the test can end
    result.wait();
    return;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - stopped).count();
  Status s = result.get();
  EXPECT_LT(secs, 2.5);
  EXPECT_GE(secs, 0.9);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("shutdown_timeout"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("disk is full"), std::string::npos) << s.message();
  EXPECT_TRUE(r->abandoned());
  // Nothing was committed: no positions in the sink.
  EXPECT_LE(Count(db, "SELECT count(*) FROM _sluice_positions"), 0);
}

TEST_F(ShutdownTest, StopEndsARunWhoseSourceDoesNotReturn) {
  g_release = false;
  const std::string db = (dir_ / "x.db").string();
  PipelineConfig cfg = Config("stuck:", "sqlite:" + db);
  cfg.shutdown_timeout_micros = 1'000'000;
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();
  auto result = std::async(std::launch::async, [r] { return r->Run(); });
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (r->Snapshot().records_in == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto stopped = Clock::now();
  r->RequestStop();
  const bool ended = result.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  const double secs = std::chrono::duration<double>(Clock::now() - stopped).count();
  g_release = true;  // lets the worker thread end, so the runner can be destroyed
  ASSERT_TRUE(ended) << "Run() did not return 10 s after the stop (shutdown_timeout 1 s)";
  Status s = result.get();
  EXPECT_LT(secs, 2.5);
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("shutdown_timeout"), std::string::npos) << s.message();
  EXPECT_TRUE(r->abandoned());
}

TEST_F(ShutdownTest, UntilCaughtUpGivesUpOnReadsThatKeepFailing) {
  const std::string db = (dir_ / "x.db").string();
  PipelineConfig cfg = Config("failing:", "sqlite:" + db);
  cfg.catch_up_timeout_micros = 1'000'000;
  auto runner = Runner::Make(std::move(cfg), RunOptions{.until_caught_up = true});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();
  const auto started = Clock::now();
  auto result = std::async(std::launch::async, [r] { return r->Run(); });
  if (result.wait_for(std::chrono::seconds(15)) != std::future_status::ready) {
    ADD_FAILURE() << "--until-caught-up still retrying failing reads after 15 s (catch_up_timeout 1 s)";
    r->RequestStop();
    result.wait();
    return;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  Status s = result.get();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.code(), StatusCode::kInvalidArgument);  // a runtime failure, not a config error
  EXPECT_NE(s.message().find("HTTP 503 from the test server"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("catch_up_timeout"), std::string::npos) << s.message();
  EXPECT_GE(secs, 0.9);
  EXPECT_LT(secs, 8);
  EXPECT_FALSE(r->abandoned());
}

TEST_F(ShutdownTest, FailingReadsWithoutUntilCaughtUpAreRetried) {
  const std::string db = (dir_ / "x.db").string();
  PipelineConfig cfg = Config("failing:", "sqlite:" + db);
  cfg.catch_up_timeout_micros = 200'000;  // applies to --until-caught-up only
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();
  auto result = std::async(std::launch::async, [r] { return r->Run(); });
  EXPECT_EQ(result.wait_for(std::chrono::milliseconds(1500)), std::future_status::timeout);
  EXPECT_GT(r->Snapshot().source_errors, 0);
  r->RequestStop();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Status s = result.get();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// A worker that has handed over all it read and is closing its source holds nothing back: the
// checkpoint another worker's revoke callback waits for is committed while the close blocks, so
// the rebalance completes and the close returns (seen under load: a SIGTERM during a Kafka
// rebalance ended "worker 0 did not hand over its work", without the final checkpoint).
TEST_F(ShutdownTest, AWorkerClosingItsSourceDoesNotHoldUpTheCheckpointOfAnotherWorkersRevoke) {
  g_close_entered = false;
  g_revoke_answered = false;
  g_trickle_allowed = 1;
  const std::string db = (dir_ / "x.db").string();
  PipelineConfig cfg = Config("closing:", "sqlite:" + db);
  cfg.shutdown_timeout_micros = 3'000'000;
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();
  auto result = std::async(std::launch::async, [r] { return r->Run(); });
  auto position = [&](int partition) {
    return Count(db, "SELECT offset FROM _sluice_positions WHERE partition = " + std::to_string(partition));
  };
  auto wait = [](auto pred) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!pred() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return pred();
  };
  const bool closing = wait([] { return g_close_entered.load(); });
  bool answered = false;
  if (closing) {
    g_trickle_allowed = 2;  // worker 1 reads one more record, then is revoked its partition
    answered = wait([] { return g_revoke_answered.load(); });
  }
  const int64_t after_revoke = position(1);
  r->RequestStop();
  const bool ended = result.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  g_revoke_answered = true;  // lets worker 0 end in any case, so the runner can be destroyed
  ASSERT_TRUE(closing) << "worker 0 never closed its source";
  EXPECT_TRUE(answered) << "worker 1's revoke callback did not return while worker 0's close blocked";
  EXPECT_EQ(after_revoke, 2) << "the revoke's checkpoint did not commit worker 1's records";
  ASSERT_TRUE(ended) << "Run() did not return 10 s after the stop";
  Status s = result.get();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(r->abandoned());
  EXPECT_EQ(position(0), 1);
}

}  // namespace
}  // namespace sluice
