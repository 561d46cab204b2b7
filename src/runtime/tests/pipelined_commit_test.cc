// Pipelined commits (Runner): checkpoint N+1 is collected while N commits, one commit at a time
// in checkpoint order, a failed commit retried before the next, a stop waits for the commit in
// flight. The sink is SQLite behind a wrapper that can hold, slow down or fail commits and
// records every attempt. The reference result is a run of the same input committed once, at
// its end (no pipelining at all).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "core/uri.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

const std::string kRepo = SLUICE_SOURCE_DIR;

std::vector<std::string> Dump(const std::string& db_path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT * FROM events", -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::vector<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string line;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
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

/// One Commit() call as the gated sink saw it.
struct Attempt {
  int64_t id = 0;
  int64_t position = -1;  ///< the source's partition 0 position in it
  bool final = false;
  bool ok = false;
};

/// What the test controls and observes of the gated sink (one sink per test at a time).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  int hold_at = -1;          ///< this attempt (0-based) waits until `released`
  bool holding = false;      ///< an attempt is waiting now
  bool released = false;
  std::set<int> fail_at;     ///< these attempts fail with Unavailable
  int fail_from = -1;        ///< every attempt from this one on fails (-1: none)
  int delay_ms = 0;          ///< each commit takes at least this long
  std::vector<Attempt> attempts;
  bool in_commit = false;
  bool overlapped = false;   ///< two commits ran at once

  void Reset() {
    std::lock_guard<std::mutex> lock(mu);
    hold_at = -1;
    holding = released = in_commit = overlapped = false;
    fail_at.clear();
    fail_from = -1;
    delay_ms = 0;
    attempts.clear();
  }
  bool WaitHolding(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return holding; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }
  std::vector<Attempt> Attempts() {
    std::lock_guard<std::mutex> lock(mu);
    return attempts;
  }
};
Gate gate;

class GatedSink : public Sink {
 public:
  explicit GatedSink(std::unique_ptr<Sink> inner) : inner_(std::move(inner)) {}
  Status Open(const SinkContext& ctx) override { return inner_->Open(ctx); }
  Result<std::vector<StoredPosition>> LoadPositions() override { return inner_->LoadPositions(); }
  Status Commit(const Checkpoint& cp) override {
    int index;
    int delay;
    bool fail;
    {
      std::unique_lock<std::mutex> lock(gate.mu);
      if (gate.in_commit) gate.overlapped = true;
      gate.in_commit = true;
      index = static_cast<int>(gate.attempts.size());
      Attempt a;
      a.id = cp.id;
      a.final = cp.final;
      for (const auto& p : cp.positions) {
        if (p.source == "tracking" && p.partition == 0) a.position = p.offset;
      }
      gate.attempts.push_back(a);
      if (index == gate.hold_at) {
        gate.holding = true;
        gate.cv.notify_all();
        gate.cv.wait(lock, [] { return gate.released; });
        gate.holding = false;
      }
      delay = gate.delay_ms;
      fail = gate.fail_at.count(index) > 0 || (gate.fail_from >= 0 && index >= gate.fail_from);
    }
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    Status s = fail ? Status::Unavailable("the test fails this commit") : inner_->Commit(cp);
    std::lock_guard<std::mutex> lock(gate.mu);
    gate.attempts[static_cast<size_t>(index)].ok = s.ok();
    gate.in_commit = false;
    return s;
  }

 private:
  std::unique_ptr<Sink> inner_;
};

class PipelinedCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    ConnectorRegistry::Instance().AddSink("gated", [](const SinkConfig& config) -> Result<std::unique_ptr<Sink>> {
      SinkConfig inner = config;
      inner.uri = "sqlite:" + SplitUri(config.uri).second;
      ASSIGN_OR_RETURN(auto sink, ConnectorRegistry::Instance().MakeSink(inner));
      return std::unique_ptr<Sink>(new GatedSink(std::move(sink)));
    });
    gate.Reset();
    dir_ = fs::temp_directory_path() /
           ("sluice_pipelined_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    gate.Release();
    fs::remove_all(dir_);
  }

  PipelineConfig Config(const std::string& sink_uri, int64_t interval_micros) {
    Variables vars;
    vars.use_environment = false;
    vars.values = {{"TRACKING", "generator:"},
                   {"JOBS", kRepo + "/examples/data/job.csv"},
                   {"SINK", sink_uri},
                   // The gated sink keeps no dead letters: they go to a file beside its database.
                   {"DLQ", SplitUri(sink_uri).second + ".dlq.ndjson"},
                   {"RATE", "0"},
                   {"COUNT", std::to_string(kEvents)}};
    auto cfg = LoadPipelineConfig(kRepo + "/examples/recruitment.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    cfg->checkpoint_interval_micros = interval_micros;
    return std::move(cfg).value();
  }

  /// The reference: the whole input, committed once at the end of the run.
  std::vector<std::string> Reference() {
    const std::string db = (dir_ / "reference.db").string();
    auto runner = Runner::Make(Config("sqlite:" + db, 3'600'000'000), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    Status s = (*runner)->Run();
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ((*runner)->Snapshot().checkpoints, 1);
    auto rows = Dump(db);
    EXPECT_GT(rows.size(), 1000u);
    return rows;
  }

  /// Every commit attempt's checkpoint comes after the previous successful one's, with
  /// positions that never go back, and never two at a time.
  static void ExpectInOrder(const std::vector<Attempt>& attempts) {
    int64_t last_id = 0, last_position = -1;
    for (size_t i = 0; i < attempts.size(); ++i) {
      const Attempt& a = attempts[i];
      const bool retry = i > 0 && !attempts[i - 1].ok;
      if (retry) {
        EXPECT_EQ(a.id, attempts[i - 1].id) << "attempt " << i << ": a failed commit is retried first";
      } else {
        EXPECT_GT(a.id, last_id) << "attempt " << i;
      }
      EXPECT_GE(a.position, last_position) << "attempt " << i;
      last_id = a.id;
      last_position = a.position;
    }
    std::lock_guard<std::mutex> lock(gate.mu);
    EXPECT_FALSE(gate.overlapped) << "two commits ran at once";
  }

  static constexpr int kEvents = 60000;
  fs::path dir_;
};

TEST_F(PipelinedCommitTest, NextCheckpointIsCollectedWhileACommitRuns) {
  const auto expected = Reference();
  const std::string db = (dir_ / "x.db").string();
  gate.hold_at = 1;
  auto cfg = Config("gated:" + db, 20'000);
  cfg.max_pending = 1000;  // the source pauses soon while the commit is held
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Status result;
  std::thread run([&] { result = (*runner)->Run(); });
  ASSERT_TRUE(gate.WaitHolding(std::chrono::seconds(20)));
  // The coordinator collects the next checkpoint while this one's commit is held (the count
  // may already include one made while the first commit ran).
  const int64_t before = (*runner)->collections_while_committing();
  EXPECT_LE(before, 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*runner)->collections_while_committing() == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ((*runner)->collections_while_committing(), before + 1);
  // ... once: beyond that the workers keep their state and pause at max_pending.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const PipelineSnapshot held = (*runner)->Snapshot();
  EXPECT_EQ((*runner)->collections_while_committing(), before + 1);
  EXPECT_EQ(held.checkpoints, 1);  // the first commit; the second is held
  EXPECT_LT(held.records_in, kEvents);
  gate.Release();
  run.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  const auto attempts = gate.Attempts();
  ExpectInOrder(attempts);
  ASSERT_GE(attempts.size(), 3u);
  // The commit after the held one carries two collections: the one made during the hold and
  // the one made when it ended.
  EXPECT_EQ(attempts[2].id, attempts[1].id + 2);
  EXPECT_TRUE(attempts.back().final);
  EXPECT_EQ(Dump(db), expected);
}

/// The snapshot's committed positions (for /api/status, /metrics and the repartition topic's
/// purge) are what the sink committed: a commit in flight does not show, a failed one neither.
TEST_F(PipelinedCommitTest, SnapshotShowsOnlyCommittedPositions) {
  const std::string db = (dir_ / "x.db").string();
  gate.hold_at = 2;
  gate.fail_at = {1};
  auto cfg = Config("gated:" + db, 20'000);
  cfg.max_pending = 1000;
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  auto committed = [&]() -> int64_t {
    for (const auto& [p, offset] : (*runner)->Snapshot().committed_positions) {
      if (p == 0) return offset;
    }
    return -1;
  };
  EXPECT_EQ(committed(), -1);
  Status result;
  std::thread run([&] { result = (*runner)->Run(); });
  ASSERT_TRUE(gate.WaitHolding(std::chrono::seconds(20)));
  std::vector<Attempt> attempts = gate.Attempts();
  ASSERT_EQ(attempts.size(), 3u);
  ASSERT_TRUE(attempts[0].ok);
  ASSERT_FALSE(attempts[1].ok);
  // Attempt 1 failed and its retry (attempt 2) is held: only attempt 0 is committed.
  ASSERT_GT(attempts[2].position, attempts[0].position);
  EXPECT_EQ(committed(), attempts[0].position);
  const PipelineSnapshot held = (*runner)->Snapshot();
  for (const auto& part : held.partitions) {
    if (part.partition == 0) {
      EXPECT_EQ(part.committed, attempts[0].position);
    }
  }
  gate.Release();
  run.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  attempts = gate.Attempts();
  ASSERT_TRUE(attempts.back().ok);
  EXPECT_EQ(committed(), attempts.back().position);
}

TEST_F(PipelinedCommitTest, SlowCommitsRunBackToBackInOrder) {
  const auto expected = Reference();
  const std::string db = (dir_ / "x.db").string();
  gate.delay_ms = 100;  // every commit takes longer than the 5 ms interval
  auto cfg = Config("gated:" + db, 5'000);
  cfg.max_pending = 2000;  // the input lasts many commits
  auto runner = Runner::Make(std::move(cfg), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Status s = (*runner)->Run();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto attempts = gate.Attempts();
  ExpectInOrder(attempts);
  EXPECT_GT(attempts.size(), 3u);
  for (const auto& a : attempts) EXPECT_TRUE(a.ok);
  EXPECT_GT((*runner)->collections_while_committing(), 0);
  EXPECT_EQ(Dump(db), expected);
}

TEST_F(PipelinedCommitTest, FailedCommitIsRetriedBeforeTheNext) {
  const auto expected = Reference();
  const std::string db = (dir_ / "x.db").string();
  gate.fail_at = {1, 2};
  auto runner = Runner::Make(Config("gated:" + db, 20'000), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Status s = (*runner)->Run();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto attempts = gate.Attempts();
  ASSERT_GE(attempts.size(), 5u);
  EXPECT_FALSE(attempts[1].ok);
  EXPECT_FALSE(attempts[2].ok);
  EXPECT_TRUE(attempts[3].ok);
  // The same checkpoint three times (retries do not take in later work), then later ones.
  EXPECT_EQ(attempts[2].id, attempts[1].id);
  EXPECT_EQ(attempts[3].id, attempts[1].id);
  EXPECT_EQ(attempts[3].position, attempts[1].position);
  EXPECT_GT(attempts[4].id, attempts[3].id);
  ExpectInOrder(attempts);
  const PipelineSnapshot snap = (*runner)->Snapshot();
  EXPECT_EQ(snap.checkpoint_failures, 2);
  // The retries (100 + 200 ms of back-off) left time to collect the next checkpoint.
  EXPECT_GE((*runner)->collections_while_committing(), 1);
  EXPECT_EQ(Dump(db), expected);
}

TEST_F(PipelinedCommitTest, StopWaitsForTheCommitInFlightThenCommitsTheRest) {
  const auto expected = Reference();
  const std::string db = (dir_ / "x.db").string();
  gate.hold_at = 1;
  auto runner = Runner::Make(Config("gated:" + db, 20'000), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Status result;
  std::atomic<bool> returned{false};
  std::thread run([&] {
    result = (*runner)->Run();
    returned = true;
  });
  ASSERT_TRUE(gate.WaitHolding(std::chrono::seconds(20)));
  (*runner)->RequestStop();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(returned.load()) << "Run() returned while a commit was in flight";
  gate.Release();
  run.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  const auto attempts = gate.Attempts();
  ExpectInOrder(attempts);
  ASSERT_GE(attempts.size(), 3u);
  EXPECT_TRUE(attempts.back().final);
  EXPECT_FALSE(attempts[1].final);
  // A restart reads the rest: together, exactly the reference.
  runner->reset();
  gate.Reset();
  auto again = Runner::Make(Config("gated:" + db, 20'000), RunOptions{});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Status s = (*again)->Run();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*again)->Snapshot().records_in + attempts.back().position, kEvents);
  EXPECT_EQ(Dump(db), expected);
}

TEST_F(PipelinedCommitTest, ForcedStopWhileACommitKeepsFailingEndsTheRun) {
  const std::string db = (dir_ / "x.db").string();
  gate.fail_from = 1;
  auto runner = Runner::Make(Config("gated:" + db, 20'000), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Status result;
  std::thread run([&] { result = (*runner)->Run(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((*runner)->Snapshot().checkpoint_failures == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT((*runner)->Snapshot().checkpoint_failures, 0);
  const auto stopped = std::chrono::steady_clock::now();
  (*runner)->RequestStop();
  (*runner)->RequestStop();  // the second request forces the stop
  run.join();
  EXPECT_FALSE(result.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, std::chrono::seconds(10));
  // Only the first checkpoint was committed; the failing one never was.
  const auto attempts = gate.Attempts();
  ExpectInOrder(attempts);
  ASSERT_GE(attempts.size(), 2u);
  EXPECT_TRUE(attempts[0].ok);
  for (size_t i = 1; i < attempts.size(); ++i) EXPECT_FALSE(attempts[i].ok);
}

}  // namespace
}  // namespace sluice
