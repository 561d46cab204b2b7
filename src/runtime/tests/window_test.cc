// Event-time windows: the watermark tracker, the checkpointed window state, and append mode /
// lateness end to end through the runner, against hand-worked and independently computed results.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include "core/serialize.h"
#include "core/time.h"
#include "operators/dimension.h"
#include "core/uri.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/watermark.h"
#include "runtime/window_state.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSec = 1'000'000;

// ---------------------------------------------------------------------------------------------
// WatermarkTracker

TEST(WatermarkTrackerTest, EachPartitionsHighestEventTimeMinusDelay) {
  WatermarkTracker w(10 * kSec, 0);
  EXPECT_EQ(w.PartitionWatermark(0), kNoWatermark);
  w.Observe(0, 100 * kSec, 0);
  EXPECT_EQ(w.PartitionWatermark(0), 90 * kSec);
  w.Observe(0, 50 * kSec, 0);  // out of order: no step back
  EXPECT_EQ(w.PartitionWatermark(0), 90 * kSec);
  w.Observe(1, 30 * kSec, 0);  // another partition has its own
  EXPECT_EQ(w.PartitionWatermark(1), 20 * kSec);
  w.Observe(0, 130 * kSec, 0);
  EXPECT_EQ(w.PartitionWatermark(0), 120 * kSec);
  EXPECT_EQ(w.PartitionWatermark(1), 20 * kSec);
}

TEST(WatermarkTrackerTest, APartitionWithNoRecordIsReportedWithoutATime) {
  WatermarkTracker w(0, 0);
  w.Track(0, 0);
  w.Track(1, 0);
  w.Observe(0, 100 * kSec, 0);
  EXPECT_EQ(w.Progress(), (std::map<int32_t, PartitionProgress>{{0, {100 * kSec, false}},
                                                                {1, {kNoWatermark, false}}}));
  EXPECT_EQ(w.MaxEventTimes(), (std::map<int32_t, int64_t>{{0, 100 * kSec}}));
}

TEST(WatermarkTrackerTest, IdleAfterTheTimeoutUntilTheNextRecord) {
  const int64_t idle = 30 * kSec;
  WatermarkTracker w(0, idle);
  w.Track(1, 0);
  w.Observe(0, 100 * kSec, 0);
  w.Advance(idle - 1);
  EXPECT_FALSE(w.Progress().at(1).idle);
  w.Observe(0, 110 * kSec, idle - 1);
  w.Advance(idle);  // partition 1 silent for exactly the timeout since it was assigned
  EXPECT_TRUE(w.Progress().at(1).idle);
  EXPECT_FALSE(w.Progress().at(0).idle);
  w.Observe(1, 50 * kSec, idle + 1);
  EXPECT_FALSE(w.Progress().at(1).idle);
  EXPECT_EQ(w.PartitionWatermark(1), 50 * kSec);
}

TEST(WatermarkTrackerTest, NoIdleTimeoutMeansNeverIdle) {
  WatermarkTracker w(0, 0);
  w.Track(1, 0);
  w.Advance(int64_t{1} << 50);
  EXPECT_FALSE(w.Progress().at(1).idle);
}

TEST(WatermarkTrackerTest, RestoredAndForgottenPartitions) {
  WatermarkTracker w(0, 0);
  w.Restore(3, 500 * kSec, 0);
  EXPECT_TRUE(w.Tracks(3));
  EXPECT_EQ(w.PartitionWatermark(3), 500 * kSec);
  w.Observe(3, 400 * kSec, 0);
  EXPECT_EQ(w.MaxEventTimes().at(3), 500 * kSec);
  w.Observe(4, 600 * kSec, 0);
  w.Forget(3);
  EXPECT_FALSE(w.Tracks(3));
  EXPECT_EQ(w.PartitionWatermark(3), kNoWatermark);
  EXPECT_EQ(w.MaxEventTimes().size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// PipelineClock: the minimum over all partitions, worked by hand (delay 0 unless said).

TEST(PipelineClockTest, TheSlowestPartitionHoldsEveryWindowBack) {
  PipelineClock c(0, 0);
  c.Report(0, "s", {{0, {100 * kSec, false}}, {1, {40 * kSec, false}}}, {}, 0);
  auto b = c.Compute(0, kNoWatermark);
  EXPECT_TRUE(b.any);
  EXPECT_EQ(b.watermark, 40 * kSec);
  EXPECT_EQ(b.release, 40 * kSec);
  EXPECT_EQ(b.emit, 40 * kSec);
  // Two workers: the same minimum.
  PipelineClock d(5 * kSec, 0);
  d.Report(0, "s", {{0, {100 * kSec, false}}}, {}, 0);
  d.Report(1, "s", {{1, {40 * kSec, false}}}, {}, 0);
  EXPECT_EQ(d.Compute(0, kNoWatermark).emit, 35 * kSec);
}

TEST(PipelineClockTest, APartitionWithoutARecordHoldsItBackUntilIdle) {
  const int64_t idle = 10 * kSec;
  PipelineClock c(0, idle);
  // Partition 1 exists (the source listed it) but nobody here reads it yet.
  c.Know({"s", 1}, kNoWatermark, 0);
  c.Report(0, "s", {{0, {100 * kSec, false}}}, {}, 0);
  EXPECT_EQ(c.Compute(idle - 1, kNoWatermark).release, kNoWatermark);
  EXPECT_EQ(c.Compute(idle - 1, kNoWatermark).emit, kNoWatermark);
  // Idle for the timeout: it holds nothing back; windows are released at once, and emitted once
  // every worker enforces the released bound (its records for them are late from then on).
  auto b = c.Compute(idle, kNoWatermark);
  EXPECT_EQ(b.release, 100 * kSec);
  EXPECT_EQ(b.emit, kNoWatermark);
  EXPECT_EQ(c.Compute(idle, 100 * kSec).emit, 100 * kSec);
  // Without an idle timeout it holds the watermark back for ever.
  PipelineClock never(0, 0);
  never.Know({"s", 1}, kNoWatermark, 0);
  never.Report(0, "s", {{0, {100 * kSec, false}}}, {}, 0);
  EXPECT_EQ(never.Compute(int64_t{1} << 50, 100 * kSec).emit, kNoWatermark);
}

TEST(PipelineClockTest, AnIdlePartitionReportedByItsWorkerIsReleased) {
  PipelineClock c(0, 10 * kSec);
  c.Report(0, "s", {{0, {100 * kSec, false}}, {1, {40 * kSec, true}}}, {}, 0);
  auto b = c.Compute(0, 60 * kSec);
  EXPECT_EQ(b.release, 100 * kSec);
  EXPECT_EQ(b.emit, 60 * kSec);  // partition 1's records are late from 60 s on, not yet from 100 s
  // Every partition idle: the highest watermark counts.
  c.Report(0, "s", {{0, {100 * kSec, true}}, {1, {40 * kSec, true}}}, {}, 0);
  EXPECT_EQ(c.Compute(0, 100 * kSec).release, 100 * kSec);
  EXPECT_EQ(c.Compute(0, 100 * kSec).emit, 100 * kSec);
}

TEST(PipelineClockTest, ARevokedPartitionKeepsHoldingItBackFromItsProgress) {
  PipelineClock c(0, 10 * kSec);
  c.Report(0, "s", {{0, {100 * kSec, false}}, {1, {40 * kSec, false}}}, {1}, 0);
  // Nobody here reads partition 1 now (another member of the group may): it holds the
  // watermark at its committed progress until it has been idle for the timeout.
  c.Report(0, "s", {{0, {200 * kSec, false}}}, {}, 1 * kSec);
  EXPECT_EQ(c.Compute(5 * kSec, kNoWatermark).emit, 40 * kSec);
  EXPECT_EQ(c.Compute(11 * kSec, 200 * kSec).emit, 200 * kSec);
  // Assigned again, to another worker, behind: the minimum is its own progress again.
  c.Report(1, "s", {{1, {50 * kSec, false}}}, {}, 12 * kSec);
  EXPECT_EQ(c.Compute(12 * kSec, 200 * kSec).watermark, 50 * kSec);
  EXPECT_EQ(c.MaxEventTimes(), (std::map<PipelineClock::Key, int64_t>{{{"s", 0}, 200 * kSec},
                                                                      {{"s", 1}, 50 * kSec}}));
}

TEST(PipelineClockTest, NothingReadHereClosesNothingAndEndedInputsHoldNothingBack) {
  PipelineClock c(0, 10 * kSec);
  c.Know({"s", 0}, 100 * kSec, 0);
  EXPECT_FALSE(c.Compute(20 * kSec, kNoWatermark).any);  // idle, and nobody reads it
  c.Report(0, "s", {{0, {100 * kSec, false}}}, {}, 20 * kSec);
  c.Report(1, "s", {{1, {10 * kSec, false}}}, {}, 20 * kSec);
  EXPECT_EQ(c.Compute(20 * kSec, kNoWatermark).emit, 10 * kSec);
  c.WorkerEnded(1);
  EXPECT_EQ(c.Compute(20 * kSec, kNoWatermark).emit, 100 * kSec);
}

// ---------------------------------------------------------------------------------------------
// WindowState

std::unique_ptr<Plan> CompileAggregate(const std::string& aggregate) {
  Variables vars;
  vars.use_environment = false;
  const std::string text = "[pipeline]\nname = \"t\"\n[source]\nuri = \"x.ndjson\"\n[source.fields]\n"
                           "k = \"string\"\nv = \"int64\"\nt = \"string\"\n[[step]]\nlet = \"et\"\n"
                           "expr = \"parse_time(t)\"\n" +
                           aggregate + "\n[sink]\nuri = \"sqlite:x.db\"\ntable = \"w\"\n";
  auto cfg = ParsePipelineConfig(text, "t.toml", vars);
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  static std::vector<std::unique_ptr<PipelineConfig>> keep;
  keep.push_back(std::make_unique<PipelineConfig>(std::move(cfg).value()));
  auto plan = BuildPlan(*keep.back());
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return std::move(plan).value();
}

TEST(WindowStateTest, RoundTrips) {
  auto plan = CompileAggregate(
      "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nmode = \"append\"\nkeys = [\"k\"]\n"
      "metrics = [\"n = count()\", \"a = avg(v)\", \"l = last(k)\"]");
  WindowState s;
  s.watermark = 123 * kSec;
  s.closed_before = 120 * kSec;
  s.max_event_times[{"src", 0}] = 133 * kSec;
  s.max_event_times[{"src", 7}] = -5;
  DeltaRow row;
  row.window_start = 60 * kSec;
  row.keys = {Value::String("a\0b")};
  row.metrics.resize(3);
  row.metrics[0].count = 4;
  row.metrics[1].count = 2;
  row.metrics[1].isum = -17;
  row.metrics[2].value = Value::String("x");
  row.metrics[2].at = 99;
  s.open.push_back(row);
  auto back = WindowState::Parse(s.Serialize(plan->aggregate.get()), plan->aggregate.get());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->watermark, s.watermark);
  EXPECT_EQ(back->closed_before, s.closed_before);
  EXPECT_EQ(back->max_event_times, s.max_event_times);
  ASSERT_EQ(back->open.size(), 1u);
  EXPECT_EQ(back->open[0].window_start, row.window_start);
  EXPECT_EQ(back->open[0].keys, row.keys);
  EXPECT_EQ(back->open[0].metrics[1].isum, -17);
  EXPECT_EQ(back->open[0].metrics[2].value, Value::String("x"));
  EXPECT_EQ(back->open[0].metrics[2].at, 99);
}

TEST(WindowStateTest, RejectsAStateOfAnotherAggregateAndCorruption) {
  auto a = CompileAggregate("[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nmode = \"append\"\n"
                            "keys = [\"k\"]\nmetrics = [\"n = count()\"]");
  auto b = CompileAggregate("[aggregate]\ntime = \"et\"\nwindow = \"5m\"\nmode = \"append\"\n"
                            "keys = [\"k\"]\nmetrics = [\"n = count()\"]");
  WindowState s;
  s.open.push_back(DeltaRow{0, {Value::String("a")}, std::vector<MetricState>(1)});
  const std::string data = s.Serialize(a->aggregate.get());
  auto other = WindowState::Parse(data, b->aggregate.get());
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("different [aggregate]"), std::string::npos);
  for (size_t cut : {size_t{0}, size_t{5}, data.size() / 2, data.size() - 1}) {
    EXPECT_FALSE(WindowState::Parse(data.substr(0, cut), a->aggregate.get()).ok()) << cut;
  }
  EXPECT_FALSE(WindowState::Parse(data + "x", a->aggregate.get()).ok());
}

// A state stored by a tumbling pipeline before hopping windows existed (its bytes written here
// field by field, as that version's Serialize laid them out) still parses; a hopping pipeline
// with the same keys and metrics refuses it, and hopping states of different slides differ.
TEST(WindowStateTest, TumblingStatesKeepTheirFingerprintHoppingOnesNameTheSlide) {
  const std::string agg = "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nmode = \"append\"\nkeys = [\"k\"]\n";
  auto tumbling = CompileAggregate(agg + "metrics = [\"n = count()\"]");
  auto also_tumbling = CompileAggregate(agg + "slide = \"1m\"\nmetrics = [\"n = count()\"]");
  auto hop30 = CompileAggregate(agg + "slide = \"30s\"\nmetrics = [\"n = count()\"]");
  auto hop20 = CompileAggregate(agg + "slide = \"20s\"\nmetrics = [\"n = count()\"]");
  BinaryWriter w;
  w.PutString("sluice-window-state");
  w.PutI64(2);                         // version
  w.PutString("60000000|k:k|m:n:count");  // window micros, keys, metrics
  w.PutI64(123 * kSec);                // watermark
  w.PutI64(120 * kSec);                // closed_before
  w.PutI64(0);                         // no partitions
  w.PutI64(1);                         // one open group
  w.PutI64(120 * kSec);
  w.PutRow({Value::String("a")});
  w.PutI64(1);
  w.PutI64(5);  // count
  w.PutI64(0);
  w.PutF64(0);
  w.PutValue(Value::Null());
  w.PutI64(std::numeric_limits<int64_t>::min());
  w.PutI64(0);  // no held records
  const std::string stored = w.Take();
  for (const Plan* p : {tumbling.get(), also_tumbling.get()}) {
    auto back = WindowState::Parse(stored, p->aggregate.get());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ASSERT_EQ(back->open.size(), 1u);
    EXPECT_EQ(back->open[0].metrics[0].count, 5);
    EXPECT_EQ(back->closed_before, 120 * kSec);
  }
  EXPECT_EQ(tumbling->aggregate->slide_micros, 0);
  auto refused = WindowState::Parse(stored, hop30->aggregate.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("different [aggregate]"), std::string::npos);
  WindowState s;
  const std::string hopping = s.Serialize(hop30->aggregate.get());
  EXPECT_TRUE(WindowState::Parse(hopping, hop30->aggregate.get()).ok());
  EXPECT_FALSE(WindowState::Parse(hopping, hop20->aggregate.get()).ok());
  EXPECT_FALSE(WindowState::Parse(hopping, tumbling->aggregate.get()).ok());
}

// ---------------------------------------------------------------------------------------------
// Append mode and lateness through the runner

std::vector<std::string> Query(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::vector<std::string> out;
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    std::string line;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const unsigned char* t = sqlite3_column_text(st, c);
      line += (c ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
    }
    out.push_back(line);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class WindowRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() /
           ("sluice_window_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  Result<PipelineConfig> Config(const std::string& input, const std::string& db,
                                const std::string& aggregate_extra, const std::string& mode = "append") {
    Variables vars;
    vars.use_environment = false;
    const std::string text = "[pipeline]\nname = \"w\"\n[source]\nuri = \"" + input +
                             "\"\n[source.fields]\nk = \"string\"\nt = \"string\"\nv = \"int64\"\n"
                             "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
                             "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nmode = \"" + mode + "\"\n" +
                             aggregate_extra +
                             "keys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
                             "[sink]\nuri = \"sqlite:" + db + "\"\ntable = \"w\"\n"
                             "[dead_letter]\npath = \"" + db + ".dlq\"\n";
    return ParsePipelineConfig(text, "w.toml", vars);
  }

  Status Run(const std::string& input, const std::string& db, const std::string& extra,
             const std::string& mode = "append") {
    ASSIGN_OR_RETURN(PipelineConfig cfg, Config(input, db, extra, mode));
    ASSIGN_OR_RETURN(auto runner, Runner::Make(std::move(cfg), RunOptions{}));
    return runner->Run();
  }

  fs::path dir_;
};

// Worked by hand (delay 10 s, lateness 0): the watermark after each record is its highest event
// time so far minus 10 s; a record is late when its minute ends at or before the watermark.
constexpr const char* kHandFixture =
    R"({"k":"a","t":"2024-01-01 00:00:05","v":1}
{"k":"a","t":"2024-01-01T00:00:59Z","v":2}
{"k":"b","t":"2024-01-01 00:01:00","v":3}
{"k":"a","t":"2024-01-01 01:01:09+01:00","v":4}
{"k":"a","t":"2024-01-01 00:00:50.000001","v":5}
{"k":"a","t":"2024-01-01 00:01:10","v":6}
{"k":"a","t":"2024-01-01 00:00:51","v":7}
{"k":"b","t":"2024-01-01 00:03:00","v":8}
{"k":"b","t":"2024-01-01 00:02:49.999","v":9}
{"k":"b","t":"2024-01-01 00:02:50","v":10}
{"k":"b","t":"not a time","v":11}
)";
// Record by record (W = watermark before the record):
//  1 a 00:05   W=-inf        -> [00:00,00:01) a          W=-00:05
//  2 a 00:59   W=-00:05      -> [00:00) a                W=00:49
//  3 b 01:00   W=00:49       -> [00:01) b (boundary: a new minute)   W=00:50
//  4 a 01:09 (00:01:09 UTC)  -> [00:01) a                W=00:59
//  5 a 00:50   W=00:59: window end 01:00 > 00:59 -> [00:00) a (out of order, not late)
//  6 a 01:10                 -> [00:01) a                W=01:00
//  7 a 00:51   W=01:00: window end 01:00 <= 01:00 -> late (exactly at the watermark)
//  8 b 03:00                 -> [00:03) b                W=02:50
//  9 b 02:49.999 W=02:50: end 03:00 > 02:50 -> [00:02) b
// 10 b 02:50                 -> [00:02) b
// 11 no event time           -> dead letter
TEST_F(WindowRunTest, AppendModeMatchesTheHandWorkedFixture) {
  const std::string in = Write("in.ndjson", kHandFixture);
  const std::string db = (dir_ / "out.db").string();
  ASSERT_TRUE(Run(in, db, "").ok());
  EXPECT_EQ(Query(db, "SELECT window_start, window_end, k, n, s FROM w ORDER BY window_start, k"),
            (std::vector<std::string>{
                "2024-01-01 00:00:00|2024-01-01 00:01:00|a|3|8",
                "2024-01-01 00:01:00|2024-01-01 00:02:00|a|2|10",
                "2024-01-01 00:01:00|2024-01-01 00:02:00|b|1|3",
                "2024-01-01 00:02:00|2024-01-01 00:03:00|b|2|19",
                "2024-01-01 00:03:00|2024-01-01 00:04:00|b|1|8",
            }));
  auto letters = Lines(db + ".dlq");
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_NE(letters[0].find("\"reason\":\"late\""), std::string::npos) << letters[0];
  EXPECT_NE(letters[0].find("00:00:51"), std::string::npos) << letters[0];
  EXPECT_NE(letters[1].find("aggregate time is null"), std::string::npos) << letters[1];
}

TEST_F(WindowRunTest, AllowedLatenessKeepsAWindowOpenLonger) {
  const std::string in = Write("in.ndjson", kHandFixture);
  const std::string db = (dir_ / "out.db").string();
  // With 1 s of lateness record 7 (window end 01:00, watermark 01:00) is no longer late.
  ASSERT_TRUE(Run(in, db, "allowed_lateness = \"1s\"\n").ok());
  EXPECT_EQ(Query(db, "SELECT n, s FROM w WHERE k = 'a' AND window_start = '2024-01-01 00:00:00'"),
            std::vector<std::string>{"4|15"});
  EXPECT_EQ(Lines(db + ".dlq").size(), 1u);
}

TEST_F(WindowRunTest, UpdateModeWithLatenessDeadLettersLateRecords) {
  const std::string in = Write("in.ndjson", kHandFixture);
  const std::string db = (dir_ / "out.db").string();
  ASSERT_TRUE(Run(in, db, "allowed_lateness = \"0s\"\n", "update").ok());
  EXPECT_EQ(Query(db, "SELECT SUM(n), SUM(s) FROM w"), std::vector<std::string>{"9|48"});
  EXPECT_EQ(Lines(db + ".dlq").size(), 2u);
}

TEST_F(WindowRunTest, UpdateModeWithoutLatenessAcceptsEveryRecord) {
  const std::string in = Write("in.ndjson", kHandFixture);
  const std::string db = (dir_ / "out.db").string();
  ASSERT_TRUE(Run(in, db, "", "update").ok());
  EXPECT_EQ(Query(db, "SELECT SUM(n), SUM(s) FROM w"), std::vector<std::string>{"10|55"});
}

/// An independent model of the rules, record by record in file order.
struct Expected {
  std::map<std::pair<int64_t, std::string>, std::pair<int64_t, int64_t>> windows;  // -> (n, s)
  int64_t late = 0;
};

Expected Model(const std::vector<std::tuple<std::string, int64_t, int64_t>>& records, int64_t delay) {
  Expected e;
  int64_t max_t = INT64_MIN;
  for (const auto& [k, t, v] : records) {
    const int64_t start = t - (((t % (60 * kSec)) + 60 * kSec) % (60 * kSec));
    const bool late = max_t != INT64_MIN && start + 60 * kSec <= max_t - delay;
    if (late) {
      ++e.late;
      continue;
    }
    auto& w = e.windows[{start, k}];
    w.first += 1;
    w.second += v;
    max_t = std::max(max_t, t);
  }
  return e;
}

TEST_F(WindowRunTest, InterruptedRunsEqualTheModelOnDisorderedData) {
  // 200000 records over ~55 minutes: mostly in order, some shifted back by less than the delay,
  // some by minutes (late unless their window is still open).
  std::mt19937_64 rng(11);
  std::vector<std::tuple<std::string, int64_t, int64_t>> records;
  std::string text;
  const int64_t base = 1'700'000'000 * kSec;
  for (int i = 0; i < 200000; ++i) {
    int64_t t = base + int64_t{i} * 16'000;
    const int r = static_cast<int>(rng() % 100);
    if (r < 10) t -= static_cast<int64_t>(rng() % (9 * kSec));
    if (r >= 97) t -= static_cast<int64_t>(60 * kSec + rng() % (240 * kSec));
    std::string k = std::string(1, static_cast<char>('a' + rng() % 5));
    const int64_t v = static_cast<int64_t>(rng() % 1000);
    records.emplace_back(k, t, v);
    text += "{\"k\":\"" + k + "\",\"t\":\"" + FormatTimestamp(t, "%Y-%m-%dT%H:%M:%S.%fZ") +
            "\",\"v\":" + std::to_string(v) + "}\n";
  }
  const Expected want = Model(records, 10 * kSec);
  ASSERT_GT(want.late, 100);
  const std::string in = Write("in.ndjson", text);

  const std::string db = (dir_ / "out.db").string();
  std::mt19937 pick(3);
  int runs = 0;
  for (bool done = false; !done && runs < 60; ++runs) {
    auto cfg = Config(in, db, "");
    ASSERT_TRUE(cfg.ok());
    cfg->checkpoint_interval_micros = 5'000;
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    Runner* r = runner->get();
    std::atomic<bool> finished{false}, stopped{false};
    const auto delay = std::chrono::milliseconds(runs < 8 ? 2 + pick() % 30 : 100000);
    std::thread stopper([&] {
      const auto until = std::chrono::steady_clock::now() + delay;
      while (!finished.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (!finished.load()) {
        stopped = true;
        r->RequestStop();
      }
    });
    Status s = r->Run();
    finished = true;
    stopper.join();
    ASSERT_TRUE(s.ok()) << s.ToString();
    done = !stopped.load();
  }
  EXPECT_GT(runs, 2);
  std::vector<std::string> expected;
  for (const auto& [key, ns] : want.windows) {
    expected.push_back(FormatTimestamp(key.first) + "|" + key.second + "|" + std::to_string(ns.first) +
                       "|" + std::to_string(ns.second));
  }
  EXPECT_EQ(Query(db, "SELECT window_start, k, n, s FROM w ORDER BY window_start, k"), expected);
  auto letters = Lines(db + ".dlq");
  EXPECT_EQ(static_cast<int64_t>(letters.size()), want.late);
  for (const auto& l : letters) EXPECT_NE(l.find("\"reason\":\"late\""), std::string::npos) << l;
}

// The recruitment pipeline in append mode over four generator partitions: three workers close
// windows from each other's watermarks and must give what one worker gives, interrupted or not.
TEST_F(WindowRunTest, AppendModeWithSeveralWorkersEqualsOneWorker) {
  const std::string repo = SLUICE_SOURCE_DIR;
  auto config = [&](const std::string& db) {
    Variables vars;
    vars.use_environment = false;
    vars.values = {{"TRACKING", "generator:"}, {"JOBS", repo + "/examples/data/job.csv"},
                   {"SINK", "sqlite:" + db}, {"DLQ", db + ".dlq"}, {"RATE", "0"}, {"COUNT", "40000"}};
    std::string text = *ReadFile(repo + "/examples/recruitment.toml");
    const std::string from = "mode = \"update\"";
    text.replace(text.find(from), from.size(), "mode = \"append\"");
    auto cfg = ParsePipelineConfig(text, "recruitment-append.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    cfg->source.options.Set("partitions", {"4", {}});
    cfg->checkpoint_interval_micros = 10'000;
    return std::move(cfg).value();
  };
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string();
  auto one = Runner::Make(config(a), RunOptions{.workers = 1});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_TRUE((*one)->Run().ok());
  for (int run = 0; run < 6; ++run) {
    auto three = Runner::Make(config(b), RunOptions{.workers = 3});
    ASSERT_TRUE(three.ok());
    Runner* r = three->get();
    std::thread stopper([&] {
      if (run < 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(15 + 10 * run));
        r->RequestStop();
      }
    });
    ASSERT_TRUE(r->Run().ok());
    stopper.join();
  }
  const std::string sql = "SELECT job_id, dates, hours, publisher_id, campaign_id, group_id, clicks, "
                          "spend_hour, conversion FROM events ORDER BY 1, 2, 3, 4, 5, 6";
  auto want = Query(a, sql);
  ASSERT_GT(want.size(), 1000u);
  EXPECT_EQ(Query(b, sql), want);
  EXPECT_EQ(Lines(b + ".dlq").size(), Lines(a + ".dlq").size());
}

TEST_F(WindowRunTest, AppendModeNeedsASinkThatKeepsState) {
  ConnectorRegistry::Instance().AddSink("stateless", [](const SinkConfig& config) -> Result<std::unique_ptr<Sink>> {
    SinkConfig inner = config;
    inner.uri = "sqlite:" + SplitUri(config.uri).second;
    ASSIGN_OR_RETURN(auto sink, ConnectorRegistry::Instance().MakeSink(inner));
    struct Stateless : Sink {
      std::unique_ptr<Sink> in;
      Status Open(const SinkContext& c) override { return in->Open(c); }
      Result<std::vector<StoredPosition>> LoadPositions() override { return in->LoadPositions(); }
      Status Commit(const Checkpoint& cp) override { return in->Commit(cp); }
    };
    auto s = std::make_unique<Stateless>();
    s->in = std::move(sink);
    return std::unique_ptr<Sink>(std::move(s));
  });
  auto cfg = Config(Write("in.ndjson", kHandFixture), (dir_ / "x.db").string(), "");
  ASSERT_TRUE(cfg.ok());
  cfg->sink.uri = "stateless:" + (dir_ / "x.db").string();
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_FALSE(runner.ok());
  EXPECT_NE(runner.status().message().find("cannot store window state"), std::string::npos)
      << runner.status().message();
}

}  // namespace
}  // namespace sluice
