// A stage-two task's per-upstream watermarks (issue 16, repartition stage) and their place in
// the task state. Expected values are worked by hand.
#include <gtest/gtest.h>

#include "core/serialize.h"
#include "runtime/delta_codec.h"
#include "runtime/task_state.h"
#include "runtime/upstream_watermarks.h"

namespace sluice {
namespace {

const UpstreamId kU0{0, 0};
const UpstreamId kU1{0, 1};
const UpstreamId kV0{1, 0};

RepartitionControl Control(UpstreamId u, int64_t watermark, bool idle = false, bool end = false) {
  RepartitionControl c;
  c.upstream = u;
  c.watermark = watermark;
  c.max_event_time = watermark == kNoWatermark ? kNoWatermark : watermark + 10;
  c.idle = idle;
  c.end = end;
  return c;
}

TEST(UpstreamWatermarksTest, AnUpstreamThatNeverSentAControlHoldsTheMinimumBack) {
  UpstreamWatermarks w({kU0, kU1});
  EXPECT_EQ(w.Minimum(), kNoWatermark);
  EXPECT_TRUE(w.Apply(Control(kU0, 100)));
  EXPECT_EQ(w.Minimum(), kNoWatermark);  // u1 is expected and silent
  EXPECT_TRUE(w.Apply(Control(kU1, 50)));
  EXPECT_EQ(w.Minimum(), 50);
  EXPECT_TRUE(w.Apply(Control(kU1, 120)));
  EXPECT_EQ(w.Minimum(), 100);
  EXPECT_EQ(w.MaxEventTime(), 130);
  // No upstream at all: nothing is known, nothing may close.
  EXPECT_EQ(UpstreamWatermarks().Minimum(), kNoWatermark);
}

TEST(UpstreamWatermarksTest, AControlOfAnUnexpectedUpstreamAddsIt) {
  UpstreamWatermarks w({kU0});
  w.Apply(Control(kU0, 100));
  EXPECT_EQ(w.Minimum(), 100);
  EXPECT_TRUE(w.Expected(kU0));
  EXPECT_FALSE(w.Expected(kV0));
  w.Apply(Control(kV0, 30));
  EXPECT_EQ(w.Minimum(), 30);
  ASSERT_EQ(w.latest().size(), 2u);
  EXPECT_EQ(w.latest()[1].upstream, kV0);
  EXPECT_FALSE(w.Expected(kV0));  // added, still not expected (the caller says so)
  // Expect adds the missing ones only, in order.
  w.Expect({kU1, kU0});
  ASSERT_EQ(w.latest().size(), 3u);
  EXPECT_EQ(w.latest()[1].upstream, kU1);
  EXPECT_EQ(w.latest()[0].watermark, 100);
  EXPECT_EQ(w.Minimum(), kNoWatermark);
}

// An idle upstream is not left out: stage one's control of an idle task carries the closed
// bound its worker already enforces (when above its own watermark), and the minimum may not pass
// that, or a record the worker reads before it applies a higher bound would come as a partial
// for an emitted window (repartition.md, review finding "idle controls vs. partials in flight").
TEST(UpstreamWatermarksTest, AnIdleUpstreamHoldsTheMinimumAtItsControlsWatermark) {
  UpstreamWatermarks w({kU0, kU1});
  w.Apply(Control(kU0, 100));
  w.Apply(Control(kU1, 40, /*idle=*/true));
  EXPECT_EQ(w.Minimum(), 40);
  // Still idle, its worker now enforcing 100 (the others' watermark): it holds nothing back.
  w.Apply(Control(kU1, 100, /*idle=*/true));
  EXPECT_EQ(w.Minimum(), 100);
  // An upstream idle before it ever had a record, whose worker enforces nothing yet.
  UpstreamWatermarks fresh({kU0, kU1});
  fresh.Apply(Control(kU0, 100));
  fresh.Apply(Control(kU1, kNoWatermark, /*idle=*/true));
  EXPECT_EQ(fresh.Minimum(), kNoWatermark);
}

TEST(UpstreamWatermarksTest, WhenEveryUpstreamIsIdleTheLowestStillCounts) {
  UpstreamWatermarks w({kU0, kU1});
  w.Apply(Control(kU0, 100, /*idle=*/true));
  w.Apply(Control(kU1, 40, /*idle=*/true));
  EXPECT_EQ(w.Minimum(), 40);
}

TEST(UpstreamWatermarksTest, ALowerControlIsIgnoredAndCanOnlyClearFlags) {
  UpstreamWatermarks w({kU0, kU1});
  w.Apply(Control(kU0, 100));
  w.Apply(Control(kU1, 80));
  EXPECT_EQ(w.Minimum(), 80);
  // A replay of an older control of u1 does not move it back.
  EXPECT_FALSE(w.Apply(Control(kU1, 20)));
  EXPECT_EQ(w.Minimum(), 80);
  EXPECT_EQ(w.latest()[1].max_event_time, 90);
  // ... nor makes it idle (which would let the minimum pass it).
  EXPECT_FALSE(w.Apply(Control(kU1, 20, /*idle=*/true)));
  EXPECT_FALSE(w.latest()[1].idle);
  EXPECT_EQ(w.Minimum(), 80);
  // An equal watermark is applied with its flags.
  EXPECT_TRUE(w.Apply(Control(kU1, 80, /*idle=*/true)));
  EXPECT_TRUE(w.latest()[1].idle);
  EXPECT_EQ(w.Minimum(), 80);
  // A lower control without idle clears it; the watermark stays.
  EXPECT_FALSE(w.Apply(Control(kU1, 10)));
  EXPECT_FALSE(w.latest()[1].idle);
  EXPECT_EQ(w.Minimum(), 80);
}

// A stored state of a run that read topics 0 and 1 (v0), restored where only topic 0 is read:
// v0's watermark is dropped (it would hold every window back for ever, never updated again),
// u2 is kept though the set has partitions 0 and 1 of topic 0 only (its topic gained it).
TEST(UpstreamWatermarksTest, RestoreDropsUpstreamsOfATopicNoLongerRead) {
  const UpstreamId kU2{0, 2};
  UpstreamWatermarks w({kU0, kU1});
  const std::vector<UpstreamId> dropped = w.Restore({Control(kU0, 100), Control(kU2, 60), Control(kV0, 10)});
  EXPECT_EQ(dropped, (std::vector<UpstreamId>{kV0}));
  ASSERT_EQ(w.latest().size(), 3u);
  EXPECT_EQ(w.latest()[0].upstream, kU0);
  EXPECT_EQ(w.latest()[1].upstream, kU1);
  EXPECT_EQ(w.latest()[2].upstream, kU2);
  EXPECT_EQ(w.latest()[2].watermark, 60);
  w.Apply(Control(kU1, 200));
  EXPECT_EQ(w.Minimum(), 60);
  // No expected set at all: nothing is dropped.
  UpstreamWatermarks none;
  EXPECT_TRUE(none.Restore({Control(kV0, 10)}).empty());
  EXPECT_EQ(none.Minimum(), 10);
}

TEST(UpstreamWatermarksTest, EndIsRecordedButDoesNotReleaseTheUpstream) {
  UpstreamWatermarks w({kU0, kU1});
  w.Apply(Control(kU0, 100, false, /*end=*/true));
  EXPECT_FALSE(w.AllEnded());
  w.Apply(Control(kU1, 50, false, /*end=*/true));
  EXPECT_TRUE(w.AllEnded());
  EXPECT_EQ(w.Minimum(), 50);  // its watermark, not +infinity
  // The next run's control (no end) clears it.
  w.Apply(Control(kU1, 55));
  EXPECT_FALSE(w.AllEnded());
  EXPECT_FALSE(UpstreamWatermarks().AllEnded());
}

TEST(UpstreamWatermarksTest, RestoreTakesTheStoredControls) {
  UpstreamWatermarks w({kU0, kU1});
  w.Apply(Control(kU0, 100, false, true));
  w.Apply(Control(kU1, 70, true));
  UpstreamWatermarks back({kU0, kU1, kV0});
  back.Restore(w.latest());
  ASSERT_EQ(back.latest().size(), 3u);
  EXPECT_EQ(back.latest()[0], w.latest()[0]);
  EXPECT_EQ(back.latest()[1], w.latest()[1]);
  EXPECT_EQ(back.latest()[2].watermark, kNoWatermark);
  EXPECT_EQ(back.Minimum(), kNoWatermark);  // v0 never heard from
}

AggregateSpec CountSpec() {
  AggregateSpec spec;
  spec.window_micros = 60;
  KeySpec k;
  k.name = "k";
  k.type = Type::kString;
  spec.keys.push_back(std::move(k));
  MetricSpec m;
  m.name = "n";
  m.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(m));
  return spec;
}

TEST(UpstreamWatermarksTest, TheTaskStateKeepsTheUpstreams) {
  const AggregateSpec spec = CountSpec();
  TaskState s;
  s.emitted_before = 60;
  s.upstreams = {Control(kU0, 100, false, true), Control(kU1, kNoWatermark), Control(kV0, -5, true)};
  auto parsed = TaskState::Parse(s.Serialize(&spec), &spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->emitted_before, 60);
  ASSERT_EQ(parsed->upstreams.size(), 3u);
  EXPECT_EQ(parsed->upstreams[0], Control(kU0, 100, false, true));
  EXPECT_EQ(parsed->upstreams[1], Control(kU1, kNoWatermark));
  EXPECT_EQ(parsed->upstreams[2], Control(kV0, -5, true));
}

// A state written before the upstreams existed (version 1), laid out by hand: progress,
// emitted_before, open windows, held records, nothing after.
TEST(UpstreamWatermarksTest, AVersionOneTaskStateIsReadWithNoUpstreams) {
  const AggregateSpec spec = CountSpec();
  auto v1 = [&](int64_t version) {
    BinaryWriter w;
    WriteStateHeader("sluice-task-state", version, &spec, &w);
    w.PutI64(120);  // max_event_time
    w.PutI64(110);  // watermark
    w.PutI64(60);   // enforced
    w.PutU8(1);     // idle
    w.PutI64(60);   // emitted_before
    DeltaRow row;
    row.window_start = 60;
    row.keys = {Value::String("a")};
    row.metrics.resize(1);
    row.metrics[0].count = 3;
    EncodeDeltaRows({row}, &w);
    EncodeHeldRecords({HeldRecord{"h", 2, 7, 9}}, &w);
    return w.Take();
  };
  auto parsed = TaskState::Parse(v1(1), &spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->progress, (TaskProgress{120, 110, 60, true}));
  EXPECT_EQ(parsed->emitted_before, 60);
  ASSERT_EQ(parsed->open.size(), 1u);
  EXPECT_EQ(parsed->open[0].metrics[0].count, 3);
  ASSERT_EQ(parsed->held.size(), 1u);
  EXPECT_EQ(parsed->held[0].offset, 7);
  EXPECT_TRUE(parsed->upstreams.empty());
  // The same bytes under version 2 lack the upstream count; a version 3 is refused.
  EXPECT_FALSE(TaskState::Parse(v1(2), &spec).ok());
  auto v3 = TaskState::Parse(v1(3), &spec);
  ASSERT_FALSE(v3.ok());
  EXPECT_NE(v3.status().message().find("versions 1 to 2"), std::string::npos) << v3.status().ToString();
  // What this build writes is version 2.
  const std::string written = TaskState().Serialize(&spec);
  BinaryReader r(written);
  std::string magic;
  int64_t version = 0;
  ASSERT_TRUE(r.GetString(&magic) && r.GetI64(&version));
  EXPECT_EQ(version, 2);
}

TEST(UpstreamWatermarksTest, AMalformedUpstreamIsRefused) {
  const AggregateSpec spec = CountSpec();
  TaskState s;
  s.upstreams = {Control(kU0, 100)};
  std::string data = s.Serialize(&spec);
  std::string bad_flags = data;
  bad_flags.back() = static_cast<char>(4);  // the last byte is the flags
  EXPECT_FALSE(TaskState::Parse(bad_flags, &spec).ok());
  EXPECT_FALSE(TaskState::Parse(data.substr(0, data.size() - 1), &spec).ok());
}

}  // namespace
}  // namespace sluice
