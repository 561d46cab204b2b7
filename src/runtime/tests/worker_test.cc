// One worker on its own, with a scripted source: what it hands over (rows, partial aggregates,
// dead letters, positions) and what it counts, for records whose fate is worked out by hand
// from the pipeline text below.

#include "runtime/worker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runtime/registry.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

/// Returns the given NDJSON lines in one batch (partition 0, offsets 0, 1, ...), then kEnd.
class ScriptedSource : public Source {
 public:
  explicit ScriptedSource(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (polled_) return PollState::kEnd;
    polled_ = true;
    for (size_t i = 0; i < lines_.size(); ++i) {
      RawRecord& r = out->Append(lines_[i]);
      r.partition = 0;
      r.offset = static_cast<int64_t>(i);
      r.next_offset = static_cast<int64_t>(i) + 1;
    }
    return PollState::kData;
  }
  std::string_view kind() const override { return "scripted"; }
  DecoderOptions decoder_options() const override { return {}; }
  std::vector<int32_t> Partitions() const override { return {0}; }

 private:
  std::vector<std::string> lines_;
  bool polled_ = false;
};

/// A requester that is never asked: the scripted source never gives partitions up.
class NoRequester : public CheckpointRequester {
 public:
  int64_t RequestCheckpoint() override { return 0; }
  Status WaitCommitted(int64_t) override { return Status::OK(); }
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_worker_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "job.csv") << "id,company_id\n1,10\n2,20\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Builds the plan of `select` (top-level keys come before any table), kHead and `body`,
  /// runs one worker over `lines` to the end of its input and returns its last handoff.
  Handoff Run(const std::string& select, const std::string& body, std::vector<std::string> lines) {
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(select + "\n" + kHead + body, (dir_ / "p.toml").string(), vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    if (!cfg.ok()) return {};
    config_ = std::move(cfg).value();
    auto plan = BuildPlan(config_);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    if (!plan.ok()) return {};
    plan_ = std::move(plan).value();
    step_counts_ = std::vector<std::atomic<int64_t>>(plan_->steps.size());
    Worker worker(0, plan_.get(), "events", std::make_unique<ScriptedSource>(std::move(lines)),
                  SourceContext{}, &counters_, &step_counts_, &requester_);
    worker.Start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!worker.finished() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(worker.finished());
    EXPECT_TRUE(worker.error().ok()) << worker.error().ToString();
    auto handoff = worker.TakeHandoff(1, [] { return false; });
    EXPECT_TRUE(handoff.has_value());
    return handoff ? std::move(*handoff) : Handoff{};
  }

  static constexpr const char* kHead = R"([pipeline]
name = "p"
[source]
uri = "generator:"
[source.fields]
job_id = "int64"
bid = "int64"
kind = "string"
ts = "timestamp"
[sink]
uri = "sqlite:x.db"
table = "t"
[dimension.job]
uri = "job.csv"
key = "id"
fields = { id = "int64", company_id = "int64" }
)";

  fs::path dir_;
  PipelineConfig config_;
  std::unique_ptr<Plan> plan_;
  WorkerCounters counters_;
  std::vector<std::atomic<int64_t>> step_counts_;
  NoRequester requester_;
};

std::vector<int64_t> Ints(const std::vector<Value>& row) {
  std::vector<int64_t> out;
  for (const Value& v : row) out.push_back(v.is_null() ? -999 : v.int_value());
  return out;
}

// Each record meets one step that decides its fate:
//   0 job 1, bid 5, click  -> kept: company 10 from job.csv, bid2 = 10
//   1 kind null            -> ignored by ignore_if (step 1)
//   2 not JSON             -> dead letter "decode: ..."
//   3 bid -1               -> dead letter "negative bid" (step 2)
//   4 kind spam            -> ignored by filter (step 3)
//   5 job 7 (not in csv)   -> lookup miss, on_missing default: company 0, bid2 = 8
TEST_F(WorkerTest, StepsDecideEachRecordsFate) {
  Handoff h = Run(R"(select = ["job_id", "company_id", "bid2"])", R"toml(
[[step]]
ignore_if = "kind is null"
reason = "no kind"
[[step]]
dead_letter_if = "bid < 0"
reason = "negative bid"
[[step]]
filter = "kind != 'spam'"
[[step]]
let = "bid2"
expr = "bid * 2"
[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "default"
defaults = { company_id = 0 }
)toml",
                  {R"({"job_id":1,"bid":5,"kind":"click"})", R"({"job_id":2,"bid":3,"kind":null})",
                   "not json", R"({"job_id":3,"bid":-1,"kind":"click"})",
                   R"({"job_id":4,"bid":2,"kind":"spam"})", R"({"job_id":7,"bid":4,"kind":"click"})"});
  ASSERT_EQ(h.rows.size(), 2u);
  EXPECT_EQ(Ints(h.rows[0]), (std::vector<int64_t>{1, 10, 10}));
  EXPECT_EQ(Ints(h.rows[1]), (std::vector<int64_t>{7, 0, 8}));
  ASSERT_EQ(h.dead_letters.size(), 2u);
  EXPECT_EQ(h.dead_letters[0].offset, 2);
  EXPECT_EQ(h.dead_letters[0].reason.rfind("decode: ", 0), 0u) << h.dead_letters[0].reason;
  EXPECT_EQ(h.dead_letters[0].payload, "not json");
  EXPECT_EQ(h.dead_letters[0].source, "events");
  EXPECT_EQ(h.dead_letters[1].offset, 3);
  EXPECT_EQ(h.dead_letters[1].reason, "negative bid");
  EXPECT_EQ(h.positions, (std::map<int32_t, int64_t>{{0, 6}}));
  EXPECT_TRUE(h.input_ended);
  EXPECT_EQ(counters_.records_in.load(), 6);
  EXPECT_EQ(counters_.aggregated.load(), 2);
  EXPECT_EQ(counters_.ignored.load(), 2);
  EXPECT_EQ(counters_.dead_lettered.load(), 2);
  EXPECT_EQ(counters_.decode_errors.load(), 1);
  EXPECT_EQ(counters_.lookup_misses.load(), 1);
  // Per step: ignore_if 1, dead_letter_if 1, filter 1, let 0, lookup misses 1.
  std::vector<int64_t> per_step;
  for (const auto& c : step_counts_) per_step.push_back(c.load());
  EXPECT_EQ(per_step, (std::vector<int64_t>{1, 1, 1, 0, 1}));
}

// A missing key under on_missing = "drop" ignores the record; "dead_letter" names the key.
TEST_F(WorkerTest, LookupMissDropsOrDeadLetters) {
  const std::string lines[] = {R"({"job_id":2,"bid":1,"kind":"a"})", R"({"job_id":5,"bid":1,"kind":"a"})"};
  Handoff dropped = Run(R"(select = ["job_id", "company_id"])", R"toml(
[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "drop"
)toml",
                        {lines[0], lines[1]});
  ASSERT_EQ(dropped.rows.size(), 1u);
  EXPECT_EQ(Ints(dropped.rows[0]), (std::vector<int64_t>{2, 20}));
  EXPECT_TRUE(dropped.dead_letters.empty());
  EXPECT_EQ(counters_.ignored.load(), 1);

  counters_.ignored.store(0);
  counters_.dead_lettered.store(0);
  Handoff lettered = Run(R"(select = ["job_id", "company_id"])", R"toml(
[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "dead_letter"
)toml",
                         {lines[0], lines[1]});
  ASSERT_EQ(lettered.rows.size(), 1u);
  ASSERT_EQ(lettered.dead_letters.size(), 1u);
  EXPECT_EQ(lettered.dead_letters[0].reason, "no job for key 5");
  EXPECT_EQ(lettered.dead_letters[0].offset, 1);
  EXPECT_EQ(counters_.ignored.load(), 0);
  EXPECT_EQ(counters_.dead_lettered.load(), 1);
}

// A held record whose key never comes is dead-lettered after hold_for, saying how long it was
// held; the worker's input ends only then.
TEST_F(WorkerTest, HeldRecordGivesUpAfterHoldFor) {
  Handoff h = Run(R"(select = ["job_id", "company_id"])", R"toml(
[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "hold"
hold_for = "300ms"
then = "dead_letter"
)toml",
                  {R"({"job_id":1,"bid":1,"kind":"a"})", R"({"job_id":9,"bid":1,"kind":"a"})"});
  ASSERT_EQ(h.rows.size(), 1u);
  EXPECT_EQ(Ints(h.rows[0]), (std::vector<int64_t>{1, 10}));
  ASSERT_EQ(h.dead_letters.size(), 1u);
  EXPECT_EQ(h.dead_letters[0].reason, "no job for key 9 after holding it 300ms");
  EXPECT_EQ(h.dead_letters[0].offset, 1);
  EXPECT_TRUE(h.held_reported);
  EXPECT_TRUE(h.held.empty());
  EXPECT_EQ(counters_.lookup_misses.load(), 1);  // counted once, not at every retry
  EXPECT_EQ(counters_.held.load(), 0);
}

// Hourly count and sum per job: 2024-01-01 10:05 and 10:55 fall in the 10:00 window, 11:10 in
// the 11:00 one; a null key and a null time are dead letters.
TEST_F(WorkerTest, AggregatesIntoPartialWindows) {
  Handoff h = Run("", R"toml(
[aggregate]
time = "ts"
window = "1h"
keys = ["job_id"]
metrics = ["n = count()", "spend = sum(bid)"]
)toml",
                  {R"({"job_id":1,"bid":5,"ts":"2024-01-01T10:05:00Z"})",
                   R"({"job_id":1,"bid":7,"ts":"2024-01-01T10:55:00Z"})",
                   R"({"job_id":1,"bid":2,"ts":"2024-01-01T11:10:00Z"})",
                   R"({"job_id":null,"bid":1,"ts":"2024-01-01T10:00:00Z"})",
                   R"({"job_id":2,"bid":1,"ts":null})"});
  // 2024-01-01T10:00:00Z = 1704103200 s.
  const int64_t ten = 1704103200LL * 1'000'000;
  const int64_t eleven = ten + 3600LL * 1'000'000;
  ASSERT_EQ(h.deltas.size(), 2u);
  std::map<int64_t, std::pair<int64_t, int64_t>> by_window;  // window -> (count, sum)
  for (const DeltaRow& d : h.deltas) {
    ASSERT_EQ(d.keys.size(), 1u);
    EXPECT_EQ(d.keys[0].int_value(), 1);
    ASSERT_EQ(d.metrics.size(), 2u);
    by_window[d.window_start] = {d.metrics[0].count, d.metrics[1].isum};
  }
  EXPECT_EQ(by_window[ten], std::make_pair(int64_t{2}, int64_t{12}));
  EXPECT_EQ(by_window[eleven], std::make_pair(int64_t{1}, int64_t{2}));
  ASSERT_EQ(h.dead_letters.size(), 2u);
  EXPECT_EQ(h.dead_letters[0].reason, "group key job_id is null");
  EXPECT_EQ(h.dead_letters[1].reason, "aggregate time is null");
  EXPECT_EQ(counters_.aggregated.load(), 3);
  EXPECT_EQ(counters_.max_event_time.load(), eleven + 600LL * 1'000'000);
  EXPECT_EQ(h.positions, (std::map<int32_t, int64_t>{{0, 5}}));
}

}  // namespace
}  // namespace sluice
