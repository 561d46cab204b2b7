// Lateness per partition (issue 16) through the runner, worked by hand: a record is late if and
// only if its window's end plus the allowed lateness is at or before its OWN partition's
// watermark; a window is emitted when the minimum of all partitions' watermarks passes its end
// plus the allowed lateness. A scripted two-partition source plays a fast partition 0 and a slow
// partition 1, step by step, and the test looks at the sink after each step.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/tests/sqlite_query_test_util.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

/// One step of the script: partitions given up first (with the checkpoint a rebalance makes),
/// then records, each (partition, payload). A partition is assigned with its first record, like
/// a Kafka partition whose assignment comes late; both partitions exist from the start
/// (InputPartitions), like a topic's.
struct Step {
  std::vector<std::pair<int32_t, std::string>> records;
  std::vector<int32_t> revoke;
};

struct Script {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Step> steps;
  size_t released = 0;  ///< steps the test let the source deliver
  size_t taken = 0;
  bool finish = false;  ///< after the last released step, the source ends
  std::vector<std::pair<int32_t, int64_t>> resumed;  ///< (partition, offset) of each re-assignment
  std::atomic<int> revokes_returned{0};  ///< checkpoint_before_revoke calls that have returned
};

/// A gate in front of the sink's commits: while `hold` is set, the next commit waits for
/// `release` (one test at a time).
struct CommitGate {
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false, holding = false, released = false;
};
CommitGate g_gate;

class GatedSink : public Sink {
 public:
  explicit GatedSink(std::unique_ptr<Sink> inner) : inner_(std::move(inner)) {}
  Status Open(const SinkContext& ctx) override { return inner_->Open(ctx); }
  Result<std::vector<StoredPosition>> LoadPositions() override { return inner_->LoadPositions(); }
  Result<std::string> LoadState() override { return inner_->LoadState(); }
  bool SupportsState() const override { return inner_->SupportsState(); }
  Status Commit(const Checkpoint& cp) override {
    {
      std::unique_lock<std::mutex> lock(g_gate.mu);
      if (g_gate.hold && !g_gate.released) {
        g_gate.holding = true;
        g_gate.cv.notify_all();
        g_gate.cv.wait(lock, [] { return g_gate.released; });
      }
    }
    return inner_->Commit(cp);
  }
  void Close() override { inner_->Close(); }

 private:
  std::unique_ptr<Sink> inner_;
};
Script* g_script = nullptr;

class ScriptSource : public Source {
 public:
  Status Open(const SourceContext& ctx) override {
    ctx_ = ctx;
    for (int32_t p : {0, 1}) next_[p] = ctx.committed_position(p).value_or(0);
    return Status::OK();
  }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds budget) override {
    Step step;
    {
      std::unique_lock<std::mutex> lock(g_script->mu);
      if (g_script->taken >= g_script->released) {
        if (g_script->finish) return PollState::kEnd;
        g_script->cv.wait_for(lock, budget);
        return PollState::kIdle;
      }
      step = g_script->steps[g_script->taken++];
    }
    if (!step.revoke.empty()) {
      Status s = ctx_.checkpoint_before_revoke(step.revoke);
      g_script->revokes_returned.fetch_add(1);
      if (!s.ok()) return s;
      for (int32_t p : step.revoke) {
        assigned_.erase(p);
        next_.erase(p);
      }
    }
    for (const auto& [p, payload] : step.records) {
      assigned_.insert(p);
      if (!next_.count(p)) {  // assigned again after a revocation: from the committed position
        next_[p] = ctx_.committed_position(p).value_or(0);
        std::lock_guard<std::mutex> lock(g_script->mu);
        g_script->resumed.emplace_back(p, next_[p]);
      }
      RawRecord& r = out->Append(payload);
      r.partition = p;
      r.offset = next_[p]++;
      r.next_offset = next_[p];
    }
    return PollState::kData;
  }
  std::string_view kind() const override { return "script"; }
  DecoderOptions decoder_options() const override { return {}; }
  bool EndIsFinal() const override { return false; }  // like Kafka: open windows stay open
  std::vector<int32_t> Partitions() const override { return {assigned_.begin(), assigned_.end()}; }
  std::vector<int32_t> InputPartitions() const override { return {0, 1}; }

 private:
  SourceContext ctx_;
  std::set<int32_t> assigned_;
  std::map<int32_t, int64_t> next_;
};

std::string Rec(const std::string& t, int v) {
  return R"({"k":"a","t":"2024-01-01 )" + t + R"(","v":)" + std::to_string(v) + "}";
}

using sqlite_test::Query;

class PartitionWatermarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    ConnectorRegistry::Instance().AddSource(
        "script", [](const SourceConfig&, int) -> Result<std::vector<std::unique_ptr<Source>>> {
          std::vector<std::unique_ptr<Source>> out;
          out.push_back(std::make_unique<ScriptSource>());
          return out;
        });
    ConnectorRegistry::Instance().AddSink("gated", [](const SinkConfig& config) -> Result<std::unique_ptr<Sink>> {
      SinkConfig inner = config;
      inner.uri = "sqlite:" + config.uri.substr(config.uri.find(':') + 1);
      ASSIGN_OR_RETURN(auto sink, ConnectorRegistry::Instance().MakeSink(inner));
      return std::unique_ptr<Sink>(new GatedSink(std::move(sink)));
    });
    {
      std::lock_guard<std::mutex> lock(g_gate.mu);
      g_gate.hold = g_gate.holding = g_gate.released = false;
    }
    dir_ = fs::temp_directory_path() / ("sluice_partition_wm_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "out.db").string();
    script_ = std::make_unique<Script>();
    g_script = script_.get();
  }
  void TearDown() override {
    Finish();
    g_script = nullptr;
    fs::remove_all(dir_);
  }

  /// Starts a run (delay 10 s, 1-minute windows, append mode, lateness 0) on a thread.
  void Start(const std::string& idle_timeout, RunOptions options = {}, const std::string& sink = "sqlite",
             const std::string& pipeline_extra = "") {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"pw\"\ncheckpoint_interval = \"5ms\"\n" + pipeline_extra + "[source]\nname = \"in\"\n"
        "uri = \"script:x\"\n[source.fields]\nk = \"string\"\nt = \"string\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nmode = \"append\"\nwatermark_delay = \"10s\"\n"
        "idle_timeout = \"" + idle_timeout + "\"\nkeys = [\"k\"]\n"
        "metrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"" + sink + ":" + db_ + "\"\ntable = \"w\"\n[dead_letter]\npath = \"" + db_ + ".dlq\"\n";
    auto cfg = ParsePipelineConfig(text, "pw.toml", vars);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), options);
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    runner_ = std::move(runner).value();
    {
      std::lock_guard<std::mutex> lock(script_->mu);
      script_->finish = false;
    }
    status_ = Status::OK();
    thread_ = std::thread([this] { status_ = runner_->Run(); });
  }

  /// Lets the source deliver the records (after giving up `revoke`), then waits until the sink
  /// has committed their positions: the checkpoint that commits them has also emitted what the
  /// watermarks allow and written the dead letters.
  void Play(std::vector<std::pair<int32_t, std::string>> records, std::vector<int32_t> revoke = {}) {
    Step step;
    step.records = std::move(records);
    step.revoke = std::move(revoke);
    played_ += static_cast<int64_t>(step.records.size());
    {
      std::lock_guard<std::mutex> lock(script_->mu);
      script_->steps.push_back(std::move(step));
      ++script_->released;
    }
    script_->cv.notify_all();
    // Offsets count records per partition, across runs: their sum is the records committed.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      auto sum = Query(db_, "SELECT SUM(offset) FROM _sluice_positions WHERE source = 'in' AND partition < 2");
      if (!sum.empty() && sum[0] != "NULL" && std::stoll(sum[0]) >= played_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ADD_FAILURE() << "the records played were not committed within 20 s";
  }

  /// Lets the source deliver one step, without waiting.
  void Release(std::vector<std::pair<int32_t, std::string>> records, std::vector<int32_t> revoke) {
    {
      std::lock_guard<std::mutex> lock(script_->mu);
      script_->steps.push_back(Step{std::move(records), std::move(revoke)});
      ++script_->released;
    }
    script_->cv.notify_all();
  }

  /// Waits (20 s at most) until the sink holds `offset` as partition `p`'s position.
  bool WaitPosition(int32_t p, int64_t offset) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    const std::string sql = "SELECT offset FROM _sluice_positions WHERE source = 'in' AND partition = " +
                            std::to_string(p);
    while (std::chrono::steady_clock::now() < deadline) {
      auto got = Query(db_, sql);
      if (!got.empty() && got[0] == std::to_string(offset)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  /// Ends the run: the source ends once everything released is taken.
  void Finish() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(script_->mu);
      script_->finish = true;
    }
    script_->cv.notify_all();
    thread_.join();
    EXPECT_TRUE(status_.ok()) << status_.ToString();
    runner_.reset();
    std::lock_guard<std::mutex> lock(script_->mu);
    script_->steps.clear();
    script_->released = script_->taken = 0;
  }

  std::vector<std::string> Rows() {
    return Query(db_, "SELECT window_start, n, s FROM w ORDER BY window_start");
  }
  /// Returns the v of every record dead-lettered as late, in order.
  std::vector<int> Late() {
    std::vector<int> out;
    std::ifstream in(db_ + ".dlq");
    for (std::string line; std::getline(in, line);) {
      if (line.find("\"reason\":\"late\"") == std::string::npos) continue;
      const size_t at = line.find("\\\"v\\\":");
      if (at != std::string::npos) out.push_back(std::stoi(line.substr(at + 6)));
      else if (size_t j = line.find("\"v\":"); j != std::string::npos) out.push_back(std::stoi(line.substr(j + 4)));
    }
    return out;
  }

  fs::path dir_;
  std::string db_;
  std::unique_ptr<Script> script_;
  std::unique_ptr<Runner> runner_;
  std::thread thread_;
  Status status_;
  int64_t played_ = 0;  ///< records released, over every run
};

// Watermarks W0, W1 (highest event time of the partition minus 10 s); windows are minutes.
TEST_F(PartitionWatermarkTest, FastAndSlowPartitionEachJudgedByItsOwnWatermark) {
  Start("1h");
  // Partition 0 runs ahead: W0 = 00:02:20. Partition 1 (a topic partition not assigned yet) has
  // delivered nothing: it holds every window back.
  Play({{0, Rec("00:00:30", 1)}, {0, Rec("00:01:30", 2)}, {0, Rec("00:02:30", 4)}});
  EXPECT_TRUE(Rows().empty());
  // Partition 1, for the window partition 0 is past: NOT late (W1 has no time yet), counted.
  // Partition 0, 00:00:50: its window ends at 00:01:00 <= W0 = 00:02:20: late, although the
  // slow partition is behind that window.
  Play({{1, Rec("00:00:40", 8)}, {0, Rec("00:00:50", 16)}});  // W1 = 00:00:30
  EXPECT_TRUE(Rows().empty());  // min(W0, W1) = 00:00:30 < 00:01:00
  EXPECT_EQ(Late(), std::vector<int>{16});
  // W1 = 00:01:10 passes 00:01:00: window [00:00, 00:01) is emitted with records 1 and 8.
  Play({{1, Rec("00:01:20", 32)}});
  EXPECT_EQ(Rows(), std::vector<std::string>{"2024-01-01 00:00:00|2|9"});
  // Partition 1 is now past 00:01:00 itself: its record for that window is late.
  Play({{1, Rec("00:00:59", 128)}});
  EXPECT_EQ(Late(), (std::vector<int>{16, 128}));
  // W1 = 00:02:30, W0 = 00:02:20: the minimum passes 00:02:00 only.
  Play({{1, Rec("00:02:40", 64)}});
  EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:00:00|2|9", "2024-01-01 00:01:00|2|34"}));
  Finish();
  // Window [00:02, 00:03) (records 4 and 64) stays open in the state.
  EXPECT_EQ(Rows().size(), 2u);
}

TEST_F(PartitionWatermarkTest, TheIdleTimeoutReleasesASilentPartition) {
  Start("300ms");
  const auto started = std::chrono::steady_clock::now();
  Play({{0, Rec("00:00:30", 1)}, {0, Rec("00:01:30", 2)}, {0, Rec("00:02:30", 4)}});
  if (std::chrono::steady_clock::now() - started < std::chrono::milliseconds(250)) {
    EXPECT_TRUE(Rows().empty());  // partition 1 still holds everything back
  }
  // After 300 ms partition 1 (and 0) is idle: windows up to W0 = 00:02:20 are emitted.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Rows().size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:00:00|1|1", "2024-01-01 00:01:00|1|2"}));
  // Partition 1 wakes up: a record for an emitted window is late (the idle exception), one for
  // an open window counts.
  Play({{1, Rec("00:00:40", 8)}, {1, Rec("00:02:45", 16)}});
  EXPECT_EQ(Late(), std::vector<int>{8});
  Finish();
}

TEST_F(PartitionWatermarkTest, APartitionsWatermarkSurvivesARebalanceAndARestart) {
  Start("1h");
  Play({{0, Rec("00:02:30", 1)}, {1, Rec("00:00:30", 2)}});  // W0 = 00:02:20, W1 = 00:00:20
  // Partition 0 is revoked (committed first) and assigned again: it starts from its committed
  // watermark, so its record for window 00:00 is late; partition 1's is not.
  Play({}, {0});
  Play({{0, Rec("00:00:45", 4)}, {1, Rec("00:00:50", 8)}});
  EXPECT_EQ(Late(), std::vector<int>{4});
  Finish();
  // A restarted run judges the same way from the committed state.
  Start("1h");
  Play({{0, Rec("00:00:46", 16)}, {1, Rec("00:00:51", 32)}});
  EXPECT_EQ(Late(), (std::vector<int>{4, 16}));
  Play({{1, Rec("00:01:15", 64)}});  // W1 = 00:01:05: window 00:00 closes
  EXPECT_EQ(Rows(), std::vector<std::string>{"2024-01-01 00:00:00|3|42"});
  Finish();
}

// --reset-source: a partition given up in a rebalance and assigned again to the same run resumes
// from the position this run committed, not from the beginning (which would read and count its
// records again).
TEST_F(PartitionWatermarkTest, ResetSourceAPartitionAssignedAgainResumesFromThisRunsPosition) {
  Start("1h");
  Play({{0, Rec("00:00:10", 1)}, {0, Rec("00:00:11", 2)}, {1, Rec("00:00:20", 4)}});  // p0 at 2
  Finish();
  RunOptions reset;
  reset.reset_source = "in";
  Start("1h", reset);  // p0 and p1 read again from the beginning
  Release({{0, Rec("00:00:12", 8)}, {1, Rec("00:00:21", 16)}}, {});
  ASSERT_TRUE(WaitPosition(0, 1));
  Release({}, {0});                         // revoked: its position (1) committed first
  Release({{0, Rec("00:00:13", 32)}}, {});  // and assigned again
  ASSERT_TRUE(WaitPosition(0, 2));
  {
    std::lock_guard<std::mutex> lock(script_->mu);
    EXPECT_EQ(script_->resumed, (std::vector<std::pair<int32_t, int64_t>>{{0, 1}}));
  }
  Finish();
}

// A stop whose draining outlives shutdown_timeout while a commit is still in flight gives up,
// but must not let a rebalance callback go on: its consumer would leave the group, and the
// partition's next owner could read the position from before that commit and count its records
// again once it lands. The callback keeps waiting (the process ends without leaving the group);
// once the runner is destroyed, after the commit has ended, it is let go.
TEST_F(PartitionWatermarkTest, AStopAbandonedWithACommitInFlightKeepsTheRebalanceWaiting) {
  Start("1h", {}, "gated", "shutdown_timeout = \"1s\"\n");
  Play({{0, Rec("00:00:10", 1)}, {1, Rec("00:00:20", 2)}});
  {
    std::lock_guard<std::mutex> lock(g_gate.mu);
    g_gate.hold = true;
  }
  Release({{0, Rec("00:00:11", 4)}}, {});  // the checkpoint that commits it is held
  {
    std::unique_lock<std::mutex> lock(g_gate.mu);
    ASSERT_TRUE(g_gate.cv.wait_for(lock, std::chrono::seconds(20), [] { return g_gate.holding; }));
  }
  Release({}, {0});  // a rebalance: partition 0 is revoked and waits for a checkpoint
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::lock_guard<std::mutex> lock(script_->mu);
    if (script_->taken == script_->released) break;
  }
  runner_->RequestStop();
  thread_.join();  // draining gives up after 1 s: the revocation cannot complete
  EXPECT_EQ(status_.code(), StatusCode::kAborted) << status_.ToString();
  EXPECT_TRUE(runner_->abandoned());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // time to return, were it let go
  EXPECT_EQ(script_->revokes_returned.load(), 0) << "the revocation went on with a commit in flight";
  {
    std::lock_guard<std::mutex> lock(g_gate.mu);
    g_gate.released = true;
  }
  g_gate.cv.notify_all();
  runner_.reset();  // waits for the commit, then lets the revocation go
  EXPECT_EQ(script_->revokes_returned.load(), 1);
  status_ = Status::OK();  // (TearDown expects a clean end of the runs it did not end itself)
}

}  // namespace
}  // namespace sluice
