// The stage-two merge of a repartitioned pipeline (issue 16): partials merged per (window,
// group), windows emitted once by the minimum of the upstream tasks' watermarks, its state
// carried over a restart. Fixtures are worked by hand; the randomized test checks against a
// brute-force aggregation of the raw records it generates.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "runtime/stage_two.h"
#include "runtime/task_state.h"

namespace sluice {
namespace {

const UpstreamId kU0{0, 0};
const UpstreamId kU1{0, 1};
const UpstreamId kU2{1, 0};

/// count(*) as n, sum(v) as s, max(v) as m, by k.
AggregateSpec Spec(int64_t window, int64_t slide, int64_t lateness) {
  AggregateSpec spec;
  spec.window_micros = window;
  spec.slide_micros = slide == window ? 0 : slide;
  spec.append_mode = true;
  spec.allowed_lateness_micros = lateness;
  KeySpec k;
  k.name = "k";
  k.type = Type::kString;
  k.uses_window = false;
  spec.keys.push_back(std::move(k));
  MetricSpec n;
  n.name = "n";
  n.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(n));
  MetricSpec s;
  s.name = "s";
  s.fn = AggFn::kSum;
  s.arg_type = Type::kInt64;
  s.result_type = Type::kInt64;
  spec.metrics.push_back(std::move(s));
  MetricSpec m;
  m.name = "m";
  m.fn = AggFn::kMax;
  m.arg_type = Type::kInt64;
  m.result_type = Type::kInt64;
  spec.metrics.push_back(std::move(m));
  return spec;
}

/// A group's values as the test states them: (window start, key) -> (n, s, m).
using GroupKey = std::pair<int64_t, std::string>;
using GroupValue = std::tuple<int64_t, int64_t, int64_t>;
using Groups = std::map<GroupKey, GroupValue>;

RepartitionRecord Partial(int64_t window_start, const std::string& key, int64_t n, int64_t s, int64_t m) {
  RepartitionRecord r;
  r.kind = RepartitionRecord::Kind::kPartial;
  r.partial.window_start = window_start;
  r.partial.keys = {Value::String(key)};
  r.partial.metrics.resize(3);
  r.partial.metrics[0].count = n;
  r.partial.metrics[1].count = n;
  r.partial.metrics[1].isum = s;
  r.partial.metrics[2].count = n;
  r.partial.metrics[2].value = Value::Int(m);
  return r;
}

RepartitionRecord Control(UpstreamId u, int64_t watermark, bool idle = false, bool end = false) {
  RepartitionRecord r;
  r.kind = RepartitionRecord::Kind::kControl;
  r.control.upstream = u;
  r.control.watermark = watermark;
  r.control.max_event_time = watermark;
  r.control.idle = idle;
  r.control.end = end;
  return r;
}

/// Reads rows the unit returned the way a sink would see them (FinalRow), checking each is a
/// group of the spec's shape.
Groups Read(const AggregateSpec& spec, const std::vector<DeltaRow>& rows) {
  Groups out;
  for (const auto& d : rows) {
    const std::vector<Value> row = FinalRow(spec, d);
    EXPECT_EQ(row.size(), 6u);
    if (row.size() != 6u) continue;
    const GroupKey key{d.window_start, row[2].string_value()};
    EXPECT_EQ(out.count(key), 0u) << "a group returned twice in one list";
    out[key] = {row[3].int_value(), row[4].int_value(), row[5].int_value()};
  }
  return out;
}

class Feeder {
 public:
  Feeder(const AggregateSpec* spec, std::vector<UpstreamId> upstreams)
      : unit_(StageTwoOptions{spec, std::move(upstreams), "rp", 3}) {}
  void Add(RepartitionRecord r) { ASSERT_TRUE(unit_.Add(std::move(r), offset_++).ok()); }
  StageTwoMerge& unit() { return unit_; }

 private:
  StageTwoMerge unit_;
  int64_t offset_ = 0;
};

// Window 60, lateness 10: window [0, 60) may be emitted at a minimum of 70, [60, 120) at 130.
TEST(StageTwoTest, AWindowIsEmittedOnlyWhenBothUpstreamsPassIt) {
  const AggregateSpec spec = Spec(60, 60, 10);
  Feeder f(&spec, {kU0, kU1});
  f.Add(Partial(60, "a", 1, 5, 5));  // u1's, before u0's: partials come in any order
  f.Add(Partial(0, "a", 2, 3, 2));
  f.Add(Partial(60, "a", 1, 7, 7));
  f.Add(Control(kU0, 75));
  EXPECT_TRUE(f.unit().Emit().empty());  // u1 has said nothing
  f.Add(Partial(0, "a", 1, 10, 10));
  f.Add(Partial(0, "b", 1, 1, 1));
  f.Add(Control(kU1, 69));
  EXPECT_TRUE(f.unit().Emit().empty());  // 60 + 10 > 69
  f.Add(Control(kU1, 70));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{0, "a"}, {3, 13, 10}}, {{0, "b"}, {1, 1, 1}}}));
  EXPECT_EQ(f.unit().emitted_before(), 70);
  f.Add(Control(kU0, 200));
  EXPECT_TRUE(f.unit().Emit().empty());  // u1 still at 70
  EXPECT_TRUE(f.unit().Emit().empty());  // and nothing twice
  f.Add(Control(kU1, 130));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{60, "a"}, {2, 12, 7}}}));
  EXPECT_EQ(f.unit().open_groups(), 0u);
  EXPECT_EQ(f.unit().late_partials(), 0);
  EXPECT_TRUE(f.unit().TakeDeadLetters().empty());
}

TEST(StageTwoTest, AnUpstreamThatNeverSentAControlHoldsEverythingBack) {
  const AggregateSpec spec = Spec(60, 60, 0);
  Feeder f(&spec, {kU0, kU1, kU2});
  f.Add(Partial(0, "a", 1, 4, 4));
  f.Add(Partial(60, "a", 1, 6, 6));
  f.Add(Control(kU0, 1000));
  f.Add(Control(kU2, 1000));
  EXPECT_TRUE(f.unit().Emit().empty());
  EXPECT_EQ(f.unit().State().progress.watermark, kNoWatermark);
  // u1 has had nothing to send (no partial ever), but its control releases both windows.
  f.Add(Control(kU1, 120));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{0, "a"}, {1, 4, 4}}, {{60, "a"}, {1, 6, 6}}}));
}

// u1 goes idle at 30 (its worker enforcing nothing higher yet): the minimum stays at 30 however
// far u0 goes, so u1's partial of [60, 120) read after its idle control is merged, not late. Once
// u1's control carries the bound its worker enforces (130, still idle), both windows close with
// u1's partial in them. Should a partial come for a window emitted already (a stage one that
// broke its word), it is a dead letter, not a second row.
TEST(StageTwoTest, AnIdleUpstreamHoldsWindowsBackAtItsControlAndALatePartialIsADeadLetter) {
  const AggregateSpec spec = Spec(60, 60, 0);
  Feeder f(&spec, {kU0, kU1});
  f.Add(Partial(0, "a", 1, 1, 1));
  f.Add(Partial(60, "a", 1, 2, 2));
  f.Add(Partial(120, "a", 1, 3, 3));
  f.Add(Control(kU1, 30, /*idle=*/true));
  f.Add(Control(kU0, 130));
  EXPECT_TRUE(f.unit().Emit().empty());  // u1 at 30
  EXPECT_EQ(f.unit().emitted_before(), 30);
  f.Add(Partial(60, "a", 1, 50, 50));  // u1's record read before its worker saw the others' bound
  f.Add(Control(kU1, 130, /*idle=*/true));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{0, "a"}, {1, 1, 1}}, {{60, "a"}, {2, 52, 50}}}));
  EXPECT_EQ(f.unit().emitted_before(), 130);
  EXPECT_EQ(f.unit().late_partials(), 0);
  // The backstop: a partial of [60, 120) now (offset 7) and one of [120, 180) (open).
  f.Add(Partial(60, "a", 1, 9, 9));
  f.Add(Partial(120, "a", 1, 40, 40));
  f.Add(Control(kU1, 140));
  f.Add(Control(kU0, 400));
  EXPECT_TRUE(f.unit().Emit().empty());  // u1 at 140 holds [120, 180) back
  EXPECT_EQ(f.unit().late_partials(), 1);
  const auto letters = f.unit().TakeDeadLetters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].reason, "late");
  EXPECT_EQ(letters[0].source, "rp");
  EXPECT_EQ(letters[0].partition, 3);
  EXPECT_EQ(letters[0].offset, 7);
  EXPECT_EQ(letters[0].payload, R"({"partial":{"window_start":60,"keys":["a"],"counts":[1,1,1]}})");
  EXPECT_TRUE(f.unit().TakeDeadLetters().empty());
  f.Add(Control(kU1, 180, /*idle=*/true));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{120, "a"}, {2, 43, 40}}}));
}

// A control of an upstream outside the set is counted once (and logged) and holds windows back;
// a restored state's upstream of a topic no longer read is dropped and counted.
TEST(StageTwoTest, UnexpectedUpstreamsAreCountedAndStoredOnesOfATopicNoLongerReadDropped) {
  const AggregateSpec spec = Spec(60, 60, 0);
  const UpstreamId kV0{1, 0};
  Feeder f(&spec, {kU0, kU1});
  f.Add(Partial(0, "a", 1, 1, 1));
  f.Add(Control(kU0, 100));
  f.Add(Control(kV0, 30));
  f.Add(Control(kU1, 100));
  EXPECT_TRUE(f.unit().Emit().empty());  // v0 at 30
  f.Add(Control(kV0, 40));
  EXPECT_EQ(f.unit().unexpected_upstreams(), 1);
  f.Add(Control(kV0, 100));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{0, "a"}, {1, 1, 1}}}));

  // Its state restored where topic 1 is no longer read: v0 goes, u0 and u1 stay.
  StageTwoMerge again(StageTwoOptions{&spec, {kU0, kU1}, "rp", 3});
  TaskState st = f.unit().State();
  ASSERT_EQ(st.upstreams.size(), 3u);
  ASSERT_TRUE(again.Restore(std::move(st)).ok());
  EXPECT_EQ(again.dropped_upstreams(), 1);
  ASSERT_EQ(again.watermarks().latest().size(), 2u);
  EXPECT_EQ(again.watermarks().Minimum(), 100);
  EXPECT_EQ(again.unexpected_upstreams(), 0);
}

TEST(StageTwoTest, AReplayedLowerControlDoesNotMoveTheMinimumBack) {
  const AggregateSpec spec = Spec(60, 60, 0);
  Feeder f(&spec, {kU0, kU1});
  f.Add(Partial(0, "a", 1, 1, 1));
  f.Add(Control(kU0, 100));
  f.Add(Control(kU1, 100));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{0, "a"}, {1, 1, 1}}}));
  f.Add(Partial(60, "b", 1, 8, 8));
  f.Add(Control(kU1, 40));  // an older copy
  EXPECT_EQ(f.unit().stale_controls(), 1);
  EXPECT_EQ(f.unit().watermarks().Minimum(), 100);
  f.Add(Control(kU1, 140));
  EXPECT_TRUE(f.unit().Emit().empty());  // u0 at 100
  f.Add(Control(kU0, 120));
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{60, "b"}, {1, 8, 8}}}));
}

// --until-caught-up: both upstreams end at 75. Window [0, 60) is emitted, [60, 120) stays open
// in the state for the next run, whose controls come without `end`.
TEST(StageTwoTest, EndIsRecordedAndWindowsPastTheWatermarkStayOpenForTheNextRun) {
  const AggregateSpec spec = Spec(60, 60, 0);
  Feeder f(&spec, {kU0, kU1});
  f.Add(Partial(0, "a", 1, 1, 1));
  f.Add(Partial(60, "a", 1, 2, 2));
  f.Add(Control(kU0, 75, false, /*end=*/true));
  EXPECT_FALSE(f.unit().watermarks().AllEnded());
  f.Add(Control(kU1, 75, false, /*end=*/true));
  EXPECT_TRUE(f.unit().watermarks().AllEnded());
  EXPECT_EQ(Read(spec, f.unit().Emit()), (Groups{{{0, "a"}, {1, 1, 1}}}));
  const TaskState state = f.unit().State();
  EXPECT_EQ(Read(spec, state.open), (Groups{{{60, "a"}, {1, 2, 2}}}));

  auto parsed = TaskState::Parse(state.Serialize(&spec), &spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  Feeder next(&spec, {kU0, kU1});
  ASSERT_TRUE(next.unit().Restore(std::move(*parsed)).ok());
  EXPECT_TRUE(next.unit().watermarks().AllEnded());  // as committed
  EXPECT_EQ(next.unit().emitted_before(), 75);
  next.Add(Partial(60, "a", 1, 3, 3));
  next.Add(Control(kU0, 130));
  EXPECT_FALSE(next.unit().watermarks().AllEnded());
  EXPECT_TRUE(next.unit().Emit().empty());
  next.Add(Control(kU1, 130));
  EXPECT_EQ(Read(spec, next.unit().Emit()), (Groups{{{60, "a"}, {2, 5, 3}}}));
  // A record of the emitted window in the next run is late, as in the first.
  next.Add(Partial(0, "a", 1, 9, 9));
  EXPECT_EQ(next.unit().late_partials(), 1);
}

TEST(StageTwoTest, StageOnesDeadLettersPassThroughUnchanged) {
  const AggregateSpec spec = Spec(60, 60, 0);
  Feeder f(&spec, {kU0});
  RepartitionRecord r;
  r.kind = RepartitionRecord::Kind::kDeadLetter;
  r.dead_letter.reason = "decode: field v: 'x' is not an int64";
  r.dead_letter.payload = "{\"v\":\"x\"}";
  r.dead_letter.source = "views";
  r.dead_letter.partition = 5;
  r.dead_letter.offset = 77;
  r.dead_letter.generation = 2;
  f.Add(r);
  const auto letters = f.unit().TakeDeadLetters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].reason, r.dead_letter.reason);
  EXPECT_EQ(letters[0].payload, r.dead_letter.payload);
  EXPECT_EQ(letters[0].source, "views");
  EXPECT_EQ(letters[0].partition, 5);
  EXPECT_EQ(letters[0].offset, 77);
  EXPECT_EQ(letters[0].generation, 2);
  EXPECT_EQ(f.unit().late_partials(), 0);
}

TEST(StageTwoTest, RefusesAWrongWidthAndARestoreAfterTheFirstRecord) {
  const AggregateSpec spec = Spec(60, 60, 0);
  StageTwoMerge unit(StageTwoOptions{&spec, {kU0}, "rp", 0});
  RepartitionRecord narrow = Partial(0, "a", 1, 1, 1);
  narrow.partial.metrics.pop_back();
  EXPECT_EQ(unit.Add(narrow, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(unit.Restore(TaskState()).code(), StatusCode::kFailedPrecondition);
  StageTwoMerge fresh(StageTwoOptions{&spec, {kU0}, "rp", 0});
  TaskState wide;
  wide.open.push_back(Partial(0, "a", 1, 1, 1).partial);
  wide.open[0].keys.push_back(Value::String("extra"));
  EXPECT_EQ(fresh.Restore(std::move(wide)).code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Randomized: upstreams read raw records (out of order, some late), pre-aggregate them per
// checkpoint into partials, and send a control after each checkpoint's partials; the upstreams'
// streams are interleaved at random (each in its own order), as one repartition partition
// receives them. The unit's output, over one uninterrupted run and over runs cut at random
// points (state serialized, parsed and restored into a new unit), must equal a brute-force
// aggregation of the raw records.

struct Raw {
  int64_t event_time;
  std::string key;
  int64_t value;
};

struct Scenario {
  std::vector<RepartitionRecord> records;  ///< one repartition partition's, in topic order
  std::vector<bool> emit_after;            ///< call Emit after record i
  Groups expected_emitted;                 ///< windows the final minimum passes
  Groups expected_open;                    ///< the others
};

/// The window starts of an event time, oldest first.
std::vector<int64_t> WindowsOf(const AggregateSpec& spec, int64_t t) {
  const int64_t slide = spec.slide();
  int64_t newest = t >= 0 ? t / slide * slide : -((-t + slide - 1) / slide) * slide;
  std::vector<int64_t> out;
  for (int64_t s = newest - spec.window_micros + slide; s <= newest; s += slide) out.push_back(s);
  return out;
}

Scenario Generate(const AggregateSpec& spec, const std::vector<UpstreamId>& upstreams, int64_t delay,
                  std::mt19937_64& rng) {
  const char* kKeys[] = {"a", "b", "c", "d"};
  const int64_t lateness = spec.allowed_lateness_micros;
  Scenario sc;
  Groups all;  // brute force: every (record, window) not late at its upstream
  std::vector<std::vector<RepartitionRecord>> streams;
  int64_t final_minimum = std::numeric_limits<int64_t>::max();
  for (const UpstreamId& u : upstreams) {
    // The raw records of u, in the order u reads them.
    std::vector<Raw> raws;
    int64_t clock = std::uniform_int_distribution<int64_t>(0, 50)(rng);
    const int n = std::uniform_int_distribution<int>(20, 60)(rng);
    for (int i = 0; i < n; ++i) {
      clock += std::uniform_int_distribution<int64_t>(0, 12)(rng);
      // Mostly a little behind the newest, now and then far behind (late at u).
      const int64_t behind = std::uniform_int_distribution<int>(0, 9)(rng) == 0
                                 ? std::uniform_int_distribution<int64_t>(0, 150)(rng)
                                 : std::uniform_int_distribution<int64_t>(0, delay)(rng);
      raws.push_back(Raw{clock - behind, kKeys[std::uniform_int_distribution<int>(0, 3)(rng)],
                         std::uniform_int_distribution<int64_t>(-5, 20)(rng)});
    }
    // Brute force over u's records: a (record, window) counts unless the window's end plus the
    // lateness is at or before u's watermark when the record is read.
    {
      int64_t max_et = kNoWatermark;
      for (const Raw& r : raws) {
        const int64_t wm = max_et == kNoWatermark ? kNoWatermark : max_et - delay;
        for (int64_t w : WindowsOf(spec, r.event_time)) {
          if (wm != kNoWatermark && w + spec.window_micros + lateness <= wm) continue;
          auto [it, fresh] = all.try_emplace(GroupKey{w, r.key}, GroupValue{0, 0, r.value});
          auto& [cnt, sum, mx] = it->second;
          ++cnt;
          sum += r.value;
          mx = std::max(mx, r.value);
          (void)fresh;
        }
        max_et = std::max(max_et, r.event_time);
      }
      final_minimum = std::min(final_minimum, max_et - delay);
    }
    // u as stage one: checkpoints of 1..8 records, each its partials (shuffled) then a control;
    // now and then an older control replayed; an end control last.
    std::vector<RepartitionRecord> stream;
    std::vector<RepartitionRecord> sent_controls;
    int64_t max_et = kNoWatermark;
    size_t i = 0;
    while (i < raws.size()) {
      const size_t end = std::min(raws.size(), i + std::uniform_int_distribution<size_t>(1, 8)(rng));
      std::map<GroupKey, std::tuple<int64_t, int64_t, int64_t>> chunk;
      for (; i < end; ++i) {
        const Raw& r = raws[i];
        const int64_t wm = max_et == kNoWatermark ? kNoWatermark : max_et - delay;
        for (int64_t w : WindowsOf(spec, r.event_time)) {
          if (wm != kNoWatermark && w + spec.window_micros + lateness <= wm) continue;
          auto [it, fresh] = chunk.try_emplace(GroupKey{w, r.key}, std::tuple<int64_t, int64_t, int64_t>{0, 0, r.value});
          ++std::get<0>(it->second);
          std::get<1>(it->second) += r.value;
          std::get<2>(it->second) = std::max(std::get<2>(it->second), r.value);
          (void)fresh;
        }
        max_et = std::max(max_et, r.event_time);
      }
      std::vector<RepartitionRecord> partials;
      for (const auto& [g, v] : chunk) {
        partials.push_back(Partial(g.first, g.second, std::get<0>(v), std::get<1>(v), std::get<2>(v)));
      }
      std::shuffle(partials.begin(), partials.end(), rng);
      for (auto& p : partials) stream.push_back(std::move(p));
      RepartitionRecord c = Control(u, max_et - delay);
      c.control.max_event_time = max_et;
      stream.push_back(c);
      if (!sent_controls.empty() && std::uniform_int_distribution<int>(0, 4)(rng) == 0) {
        stream.push_back(sent_controls[std::uniform_int_distribution<size_t>(0, sent_controls.size() - 1)(rng)]);
      }
      sent_controls.push_back(c);
    }
    RepartitionRecord last = Control(u, max_et - delay, false, /*end=*/true);
    last.control.max_event_time = max_et;
    stream.push_back(last);
    streams.push_back(std::move(stream));
  }
  // Interleave the streams, each in its own order.
  std::vector<size_t> next(streams.size(), 0);
  size_t left = 0;
  for (const auto& s : streams) left += s.size();
  while (left > 0) {
    size_t pick = std::uniform_int_distribution<size_t>(0, streams.size() - 1)(rng);
    while (next[pick] == streams[pick].size()) pick = (pick + 1) % streams.size();
    sc.records.push_back(streams[pick][next[pick]++]);
    sc.emit_after.push_back(std::uniform_int_distribution<int>(0, 3)(rng) == 0);
    --left;
  }
  for (const auto& [g, v] : all) {
    (g.first + spec.window_micros + lateness <= final_minimum ? sc.expected_emitted : sc.expected_open)[g] = v;
  }
  return sc;
}

/// Feeds records [from, to) to `unit`, emitting where the scenario says; appends what each Emit
/// returned (as one list per Emit call, so two runs can be compared call by call).
void Feed(const Scenario& sc, size_t from, size_t to, StageTwoMerge* unit, std::vector<std::vector<DeltaRow>>* out) {
  for (size_t i = from; i < to; ++i) {
    ASSERT_TRUE(unit->Add(sc.records[i], static_cast<int64_t>(i)).ok());
    if (sc.emit_after[i] || i + 1 == sc.records.size()) out->push_back(unit->Emit());
  }
}

Groups Union(const AggregateSpec& spec, const std::vector<std::vector<DeltaRow>>& lists) {
  Groups out;
  for (const auto& list : lists) {
    for (const auto& [k, v] : Read(spec, list)) {
      EXPECT_TRUE(out.emplace(k, v).second) << "window " << k.first << " key " << k.second << " emitted twice";
    }
  }
  return out;
}

void CheckRandomized(const AggregateSpec& spec, int64_t delay, uint64_t seed) {
  const std::vector<UpstreamId> upstreams = {kU0, kU1, kU2};
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    const Scenario sc = Generate(spec, upstreams, delay, rng);
    ASSERT_FALSE(sc.expected_emitted.empty());  // the fixture exercises emission

    StageTwoMerge whole(StageTwoOptions{&spec, upstreams, "rp", 0});
    std::vector<std::vector<DeltaRow>> whole_out;
    Feed(sc, 0, sc.records.size(), &whole, &whole_out);
    EXPECT_EQ(Union(spec, whole_out), sc.expected_emitted);
    EXPECT_EQ(Read(spec, whole.State().open), sc.expected_open);
    EXPECT_EQ(whole.late_partials(), 0);
    const std::string whole_state = whole.State().Serialize(&spec);

    for (int cut_round = 0; cut_round < 12; ++cut_round) {
      const size_t cut = std::uniform_int_distribution<size_t>(0, sc.records.size())(rng);
      SCOPED_TRACE("cut at " + std::to_string(cut));
      StageTwoMerge before(StageTwoOptions{&spec, upstreams, "rp", 0});
      std::vector<std::vector<DeltaRow>> out;
      Feed(sc, 0, cut, &before, &out);
      auto parsed = TaskState::Parse(before.State().Serialize(&spec), &spec);
      ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
      StageTwoMerge after(StageTwoOptions{&spec, upstreams, "rp", 0});
      ASSERT_TRUE(after.Restore(std::move(*parsed)).ok());
      Feed(sc, cut, sc.records.size(), &after, &out);
      EXPECT_EQ(Union(spec, out), sc.expected_emitted);
      // Call by call the same rows as the uninterrupted run, and the same state at the end.
      ASSERT_EQ(out.size(), whole_out.size());
      for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(Read(spec, out[i]), Read(spec, whole_out[i])) << "emit " << i;
      EXPECT_EQ(after.State().Serialize(&spec), whole_state);
      EXPECT_EQ(after.late_partials(), 0);
    }
  }
}

TEST(StageTwoTest, ARunCutAndRestoredAnywhereEqualsTheBruteForceAggregation) {
  CheckRandomized(Spec(60, 60, 10), /*delay=*/20, 16001);
  CheckRandomized(Spec(60, 60, 0), /*delay=*/5, 16002);
}

TEST(StageTwoTest, HoppingWindowsCutAndRestoredAnywhereEqualTheBruteForceAggregation) {
  CheckRandomized(Spec(60, 20, 5), /*delay=*/15, 16003);
}

}  // namespace
}  // namespace sluice
