// Tasks (issue 16): the per-partition state a checkpoint stores (TaskState), the split of the
// legacy single state into tasks, and the pipeline clock fed with other processes' committed
// progress. Expected values are worked by hand.
#include <gtest/gtest.h>

#include "core/serialize.h"
#include "runtime/task_state.h"
#include "runtime/watermark.h"
#include "runtime/window_state.h"

namespace sluice {
namespace {

constexpr int64_t kSec = 1'000'000;

AggregateSpec CountSpec(const std::string& key) {
  AggregateSpec spec;
  spec.window_micros = 60 * kSec;
  KeySpec k;
  k.name = key;
  k.type = Type::kString;
  spec.keys.push_back(std::move(k));
  MetricSpec m;
  m.name = "n";
  m.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(m));
  return spec;
}

TEST(TaskStateTest, RoundTripsProgressHeldRecordsAndOpenWindows) {
  const AggregateSpec spec = CountSpec("user");
  TaskState s;
  s.progress = TaskProgress{120 * kSec, 110 * kSec, 60 * kSec, true};
  s.emitted_before = 60 * kSec;
  s.held.push_back(HeldRecord{"{\"a\":1}", 3, 17, 999});
  s.held.push_back(HeldRecord{std::string("\0b", 2), 3, 18, 1000});
  DeltaRow row;
  row.window_start = 60 * kSec;
  row.keys = {Value::String("ann")};
  row.metrics.resize(1);
  row.metrics[0].count = 4;
  s.open.push_back(row);

  auto parsed = TaskState::Parse(s.Serialize(&spec), &spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->progress, (TaskProgress{120 * kSec, 110 * kSec, 60 * kSec, true}));
  EXPECT_EQ(parsed->emitted_before, 60 * kSec);
  ASSERT_EQ(parsed->held.size(), 2u);
  EXPECT_EQ(parsed->held[0].payload, "{\"a\":1}");
  EXPECT_EQ(parsed->held[1].payload, std::string("\0b", 2));
  EXPECT_EQ(parsed->held[1].partition, 3);
  EXPECT_EQ(parsed->held[1].offset, 18);
  EXPECT_EQ(parsed->held[1].deadline_micros, 1000);
  ASSERT_EQ(parsed->open.size(), 1u);
  EXPECT_EQ(parsed->open[0].window_start, 60 * kSec);
  EXPECT_EQ(parsed->open[0].metrics[0].count, 4);
}

TEST(TaskStateTest, WithoutAnAggregateAndEmpty) {
  TaskState s;
  s.held.push_back(HeldRecord{"x", 0, 5, 7});
  auto parsed = TaskState::Parse(s.Serialize(nullptr), nullptr);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->held.size(), 1u);
  EXPECT_EQ(parsed->progress.max_event_time, kNoWatermark);
  auto none = TaskState::Parse("", nullptr);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->held.empty());
}

TEST(TaskStateTest, AStateOfAnotherAggregateIsRefused) {
  const AggregateSpec a = CountSpec("user");
  const AggregateSpec b = CountSpec("country");
  TaskState s;
  auto parsed = TaskState::Parse(s.Serialize(&a), &b);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("different [aggregate]"), std::string::npos);
  // A legacy window state is not a task state.
  WindowState legacy;
  auto wrong = TaskState::Parse(legacy.Serialize(&a), &a);
  EXPECT_FALSE(wrong.ok());
  // Trailing bytes.
  std::string data = s.Serialize(&a) + "x";
  EXPECT_FALSE(TaskState::Parse(data, &a).ok());
}

TEST(TaskStateTest, TheLegacyStateSplitsIntoTasksByPartition) {
  WindowState legacy;
  legacy.closed_before = 50 * kSec;
  legacy.max_event_times[{"in", 0}] = 100 * kSec;
  legacy.max_event_times[{"in", 2}] = 70 * kSec;
  legacy.held.push_back(HeldRecord{"h0", 0, 1, 0});
  legacy.held.push_back(HeldRecord{"h1", 1, 2, 0});
  legacy.held.push_back(HeldRecord{"h0b", 0, 3, 0});
  auto tasks = SplitLegacyState(legacy, "in", 10 * kSec);
  ASSERT_EQ(tasks.size(), 3u);  // partitions 0, 1 (held only), 2
  const TaskState& t0 = tasks.at(TaskId{"in", 0});
  EXPECT_EQ(t0.progress.max_event_time, 100 * kSec);
  EXPECT_EQ(t0.progress.watermark, 90 * kSec);
  EXPECT_EQ(t0.progress.enforced, 50 * kSec);
  ASSERT_EQ(t0.held.size(), 2u);
  EXPECT_EQ(t0.held[0].payload, "h0");
  EXPECT_EQ(t0.held[1].payload, "h0b");
  const TaskState& t1 = tasks.at(TaskId{"in", 1});
  EXPECT_EQ(t1.progress.max_event_time, kNoWatermark);
  EXPECT_EQ(t1.progress.enforced, 50 * kSec);
  ASSERT_EQ(t1.held.size(), 1u);
  EXPECT_EQ(tasks.at(TaskId{"in", 2}).progress.watermark, 60 * kSec);
}

// Two processes, A reading partition 0 and B partition 1, each fed the other's committed
// progress, decide the same bounds; without it each would, after the idle timeout, close by its
// own partition alone.
TEST(TaskStateTest, TwoClocksFedEachOthersCommittedProgressAgree) {
  const int64_t idle = 5 * kSec;
  PipelineClock a(0, idle), b(0, idle);
  const PipelineClock::Key p0{"in", 0}, p1{"in", 1};
  int64_t now = 0;
  a.Report(0, "in", {{0, PartitionProgress{100 * kSec, false}}}, {}, now);
  b.Report(0, "in", {{1, PartitionProgress{40 * kSec, false}}}, {}, now);
  a.Committed(p1, 40 * kSec, false, kNoWatermark, now);
  b.Committed(p0, 100 * kSec, false, kNoWatermark, now);
  now += 2 * idle;  // long past the idle timeout: the other's partition is still read
  a.Report(0, "in", {{0, PartitionProgress{100 * kSec, false}}}, {}, now);
  b.Report(0, "in", {{1, PartitionProgress{40 * kSec, false}}}, {}, now);
  const auto ba = a.Compute(now, kNoWatermark), bb = b.Compute(now, kNoWatermark);
  EXPECT_EQ(ba.release, 40 * kSec);
  EXPECT_EQ(bb.release, 40 * kSec);
  EXPECT_EQ(ba.emit, bb.emit);
  EXPECT_EQ(ba.emit, 40 * kSec);

  // Only known (no committed progress): after the idle timeout A would close by its own.
  PipelineClock c(0, idle);
  c.Know(p1, 40 * kSec, 0);
  c.Report(0, "in", {{0, PartitionProgress{100 * kSec, false}}}, {}, 2 * idle);
  EXPECT_EQ(c.Compute(2 * idle, kNoWatermark).release, 100 * kSec);

  // B's partition goes idle and B commits that with the bound it enforces (40 s): A no longer
  // waits for it, and emits up to what B enforces.
  a.Committed(p1, 40 * kSec, true, 40 * kSec, now);
  const auto idle_a = a.Compute(now, kNoWatermark);
  EXPECT_EQ(idle_a.release, 100 * kSec);
  EXPECT_EQ(idle_a.emit, 40 * kSec);
  // Progress only grows: an older read does not move it back.
  a.Committed(p1, 10 * kSec, true, 20 * kSec, now);
  EXPECT_EQ(a.Compute(now, kNoWatermark).emit, 40 * kSec);
}

}  // namespace
}  // namespace sluice
