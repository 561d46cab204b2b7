#include "operators/aggregator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <tuple>

#include "core/time.h"
#include "expr/expr.h"

namespace sluice {
namespace {

// A row layout: t (timestamp), k (int64), x (int64), window_start, window_end.
class AggregatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    schema_ = Schema({{"t", Type::kTimestamp, ""}, {"k", Type::kInt64, ""}, {"x", Type::kInt64, ""},
                      {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
    spec_.time = Compile("t");
    spec_.window_micros = kMicrosPerHour;
    spec_.window_start_slot = 3;
    spec_.window_end_slot = 4;
    spec_.emit_window_start = spec_.emit_window_end = false;
    KeySpec k;
    k.name = "k";
    k.type = Type::kInt64;
    k.expr = Compile("k");
    k.slot = 1;
    spec_.keys.push_back(std::move(k));
    AddMetric("n", AggFn::kCount, "", "");
    AddMetric("s", AggFn::kSum, "x", "");
    AddMetric("a", AggFn::kAvg, "x", "x > 0", 2);
    AddMetric("lo", AggFn::kMin, "x", "");
    AddMetric("hi", AggFn::kMax, "x", "");
    AddMetric("last_x", AggFn::kLast, "x", "");
  }

  std::unique_ptr<expr::Expr> Compile(const std::string& text) {
    auto e = expr::Compile(text, schema_);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(e).value();
  }

  void AddMetric(const std::string& name, AggFn fn, const std::string& arg, const std::string& where,
                 int round = -1) {
    MetricSpec m;
    m.name = name;
    m.fn = fn;
    if (!arg.empty()) {
      m.arg = Compile(arg);
      m.arg_type = m.arg->type();
    }
    if (!where.empty()) m.where = Compile(where);
    m.round_digits = round;
    m.result_type = fn == AggFn::kAvg ? Type::kDouble : Type::kInt64;
    spec_.metrics.push_back(std::move(m));
  }

  std::vector<Value> Row(int64_t t, int64_t k, Value x) {
    return {Value::TimeMicros(t), Value::Int(k), std::move(x), Value(), Value()};
  }

  Schema schema_;
  AggregateSpec spec_;
};

TEST_F(AggregatorTest, ComputesConditionalAggregatesPerWindowAndKey) {
  Aggregator agg(&spec_);
  const int64_t h = kMicrosPerHour;
  std::string null_key;
  // Window [0,1h) key 1: x = 3, 0, 4, null. Window [1h,2h) key 1: x = 5.
  for (auto row : {Row(10, 1, Value::Int(3)), Row(20, 1, Value::Int(0)), Row(h - 1, 1, Value::Int(4)),
                   Row(30, 1, Value::Null()), Row(h, 1, Value::Int(5))}) {
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  auto rows = agg.TakeAll();
  ASSERT_EQ(rows.size(), 2u);
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.window_start < b.window_start; });
  // Layout (no window columns emitted): k, n, s, a, lo, hi, last_x.
  std::vector<Value> first = FinalRow(spec_, rows[0]);
  EXPECT_EQ(first[0], Value::Int(1));
  EXPECT_EQ(first[1], Value::Int(4));            // count() counts every record, null x too
  EXPECT_EQ(first[2], Value::Int(7));            // 3 + 0 + 4
  EXPECT_EQ(first[3], Value::Double(3.5));       // avg over x > 0: (3 + 4) / 2
  EXPECT_EQ(first[4], Value::Int(0));
  EXPECT_EQ(first[5], Value::Int(4));
  EXPECT_EQ(first[6], Value::Int(4));            // the latest event (t = 1h - 1) had x = 4
  EXPECT_EQ(rows[1].window_start, h);
  EXPECT_EQ(FinalRow(spec_, rows[1])[2], Value::Int(5));
}

TEST_F(AggregatorTest, MergeIsOrderIndependent) {
  // Split 200 random records over 1..5 partial aggregators in random order: merged results
  // must equal a single aggregator's.
  std::mt19937_64 rng(42);
  std::vector<std::vector<Value>> rows;
  for (int i = 0; i < 200; ++i) {
    rows.push_back(Row(static_cast<int64_t>(rng() % (3 * kMicrosPerHour)), static_cast<int64_t>(rng() % 4),
                       rng() % 7 == 0 ? Value::Null() : Value::Int(static_cast<int64_t>(rng() % 100) - 20)));
  }
  std::string null_key;
  Aggregator whole(&spec_);
  for (auto r : rows) ASSERT_EQ(whole.Add(r, &null_key), Aggregator::AddResult::kAdded);
  auto expected = whole.TakeAll();
  auto key_less = [](const DeltaRow& a, const DeltaRow& b) {
    return std::tie(a.window_start, a.keys) < std::tie(b.window_start, b.keys);
  };
  std::sort(expected.begin(), expected.end(), key_less);
  for (int trial = 0; trial < 10; ++trial) {
    std::shuffle(rows.begin(), rows.end(), rng);
    int parts = 1 + static_cast<int>(rng() % 5);
    std::vector<Aggregator> aggs(parts, Aggregator(&spec_));
    for (size_t i = 0; i < rows.size(); ++i) {
      auto r = rows[i];
      ASSERT_EQ(aggs[rng() % parts].Add(r, &null_key), Aggregator::AddResult::kAdded);
    }
    std::vector<std::vector<DeltaRow>> taken;
    for (auto& a : aggs) taken.push_back(a.TakeAll());
    auto merged = MergeDeltas(spec_, std::move(taken));
    std::sort(merged.begin(), merged.end(), key_less);
    ASSERT_EQ(merged.size(), expected.size());
    for (size_t i = 0; i < merged.size(); ++i) {
      EXPECT_EQ(FinalRow(spec_, merged[i]), FinalRow(spec_, expected[i])) << "trial " << trial;
    }
  }
}

TEST_F(AggregatorTest, NullKeyAndNullTimeAreReported) {
  Aggregator agg(&spec_);
  std::string null_key;
  auto no_key = std::vector<Value>{Value::TimeMicros(1), Value::Null(), Value::Int(1), Value(), Value()};
  EXPECT_EQ(agg.Add(no_key, &null_key), Aggregator::AddResult::kNullKey);
  EXPECT_EQ(null_key, "k");
  auto no_time = std::vector<Value>{Value::Null(), Value::Int(1), Value::Int(1), Value(), Value()};
  EXPECT_EQ(agg.Add(no_time, &null_key), Aggregator::AddResult::kNoTime);
  EXPECT_EQ(agg.size(), 0u);
}

// Keys computed from the window alone (date/hour of window_start) and string keys, as the
// recruitment pipeline groups, checked against counts worked out by hand.
TEST(AggregatorKeysTest, WindowKeysAndStringKeysGroupLikeTheirValues) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"s", Type::kString, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  Schema window_row({{"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  spec.window_micros = kMicrosPerHour;
  spec.window_start_slot = 2;
  spec.window_end_slot = 3;
  spec.emit_window_start = spec.emit_window_end = false;
  auto add_key = [&](const std::string& name, const std::string& text, int slot, bool window) {
    KeySpec k;
    k.name = name;
    k.expr = expr::Compile(text, schema).value();
    k.type = k.expr->type();
    k.slot = slot;
    if (window) k.window_expr = expr::Compile(text, window_row).value();
    spec.keys.push_back(std::move(k));
  };
  add_key("dates", "date(window_start)", -1, true);
  add_key("s", "s", 1, false);
  add_key("hours", "hour(window_start)", -1, true);
  MetricSpec n;
  n.name = "n";
  n.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(n));

  Aggregator agg(&spec);
  std::string null_key;
  const int64_t day = 20000 * kMicrosPerDay;  // 2024-10-04
  const int64_t h = kMicrosPerHour;
  // (time, s): hour 0 "a" x3, hour 0 "ab" x1, hour 5 "a" x2, next day hour 0 "a" x1, "" x1.
  std::vector<std::pair<int64_t, std::string>> input = {
      {day + 1, "a"},  {day + 2, "ab"},      {day + 5 * h + 1, "a"}, {day + 3, "a"},
      {day + 4, "a"},  {day + 5 * h + 9, "a"}, {day + 24 * h, "a"},  {day + 7, ""}};
  for (const auto& [t, str] : input) {
    std::vector<Value> row = {Value::TimeMicros(t), Value::String(str), Value(), Value()};
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  std::vector<Value> no_key = {Value::TimeMicros(day), Value::Null(), Value(), Value()};
  EXPECT_EQ(agg.Add(no_key, &null_key), Aggregator::AddResult::kNullKey);
  EXPECT_EQ(null_key, "s");
  std::vector<std::vector<Value>> got;
  for (const DeltaRow& r : agg.TakeAll()) got.push_back(FinalRow(spec, r));
  std::sort(got.begin(), got.end());
  std::vector<std::vector<Value>> want = {
      {Value::String("2024-10-04"), Value::String(""), Value::Int(0), Value::Int(1)},
      {Value::String("2024-10-04"), Value::String("a"), Value::Int(0), Value::Int(3)},
      {Value::String("2024-10-04"), Value::String("a"), Value::Int(5), Value::Int(2)},
      {Value::String("2024-10-04"), Value::String("ab"), Value::Int(0), Value::Int(1)},
      {Value::String("2024-10-05"), Value::String("a"), Value::Int(0), Value::Int(1)},
  };
  EXPECT_EQ(got, want);
  EXPECT_EQ(agg.size(), 0u);
}

// NaN keys group together whatever their bits (as SQL GROUP BY and Spark do), as -0.0 with 0.0.
TEST(AggregatorKeysTest, EveryNaNIsOneGroupAndNegativeZeroIsZero) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"d", Type::kDouble, ""}});
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  spec.window_micros = kMicrosPerHour;
  spec.emit_window_start = spec.emit_window_end = false;
  KeySpec k;
  k.name = "d";
  k.expr = expr::Compile("d", schema).value();
  k.type = Type::kDouble;
  k.slot = 1;
  k.uses_window = false;
  spec.keys.push_back(std::move(k));
  MetricSpec n;
  n.name = "n";
  n.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(n));
  Aggregator agg(&spec);
  std::string null_key;
  auto nan_with_bits = [](uint64_t bits) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  };
  const std::vector<double> keys = {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN(),
                                    nan_with_bits(0x7ff800000000007bULL), nan_with_bits(0x7ff0000000000001ULL),
                                    0.0, -0.0, 1.5};
  for (double d : keys) {
    ASSERT_TRUE(std::isnan(d) || d == 0.0 || d == 1.5);
    std::vector<Value> row = {Value::TimeMicros(7), Value::Double(d)};
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  int64_t nan_groups = 0, zero = 0, other = 0;
  for (const DeltaRow& r : agg.TakeAll()) {
    const double d = r.keys[0].double_value();
    if (std::isnan(d)) {
      ++nan_groups;
      EXPECT_EQ(r.metrics[0].count, 4);
    } else if (d == 0.0) {
      ++zero;
      EXPECT_EQ(r.metrics[0].count, 2);
    } else {
      ++other;
    }
  }
  EXPECT_EQ(nan_groups, 1);
  EXPECT_EQ(zero, 1);
  EXPECT_EQ(other, 1);
}

// Many groups force the table to grow; every group must keep its own count.
TEST(AggregatorKeysTest, ManyGroupsSurviveGrowth) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"k", Type::kInt64, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  spec.window_micros = kMicrosPerMinute;
  spec.window_start_slot = 2;
  spec.window_end_slot = 3;
  KeySpec k;
  k.name = "k";
  k.expr = expr::Compile("k", schema).value();
  k.type = Type::kInt64;
  k.slot = 1;
  spec.keys.push_back(std::move(k));
  MetricSpec n;
  n.name = "n";
  n.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(n));
  Aggregator agg(&spec);
  std::string null_key;
  // Key i gets (i % 3) + 1 records, in three passes.
  constexpr int kKeys = 5000;
  for (int pass = 0; pass < 3; ++pass) {
    for (int i = 0; i < kKeys; ++i) {
      if (i % 3 < pass) continue;
      std::vector<Value> row = {Value::TimeMicros(7), Value::Int(i * 7919), Value(), Value()};
      ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
    }
  }
  EXPECT_EQ(agg.size(), static_cast<size_t>(kKeys));
  for (const DeltaRow& r : agg.TakeAll()) {
    const int64_t i = r.keys[0].int_value() / 7919;
    EXPECT_EQ(r.metrics[0].count, i % 3 + 1) << "key " << i;
  }
}

// Add() stages records and folds them kStageSize at a time: over several stages, with new
// groups and existing ones in the same stage, every group gets exactly its own records, in
// order (last() on equal times keeps the larger value, so the order shows only through the
// group order). Expected values worked out by hand: record j (j = 0..199) has key j % 3, x = j.
TEST_F(AggregatorTest, StagedRecordsFoldIntoTheirGroupsAcrossStages) {
  static_assert(Aggregator::kStageSize < 200);
  Aggregator agg(&spec_);
  std::string null_key;
  for (int64_t j = 0; j < 200; ++j) {
    auto row = Row(1000 + j, j % 3, Value::Int(j));
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  auto rows = agg.TakeAll();
  ASSERT_EQ(rows.size(), 3u);
  // Groups in the order their first record came: keys 0, 1, 2.
  // Layout: k, n, s, a (avg over x > 0), lo, hi, last_x.
  // key 0: j = 0, 3, ..., 198: 67 records, sum 3 * (0 + ... + 66) = 6633, avg over the 66 > 0.
  // key 1: j = 1, 4, ..., 199: 67 records, sum 6633 + 67 = 6700.
  // key 2: j = 2, 5, ..., 197: 66 records, sum 3 * (0 + ... + 65) + 2 * 66 = 6567.
  const std::vector<std::vector<Value>> want = {
      {Value::Int(0), Value::Int(67), Value::Int(6633), Value::Double(100.5), Value::Int(0),
       Value::Int(198), Value::Int(198)},
      {Value::Int(1), Value::Int(67), Value::Int(6700), Value::Double(100.0), Value::Int(1),
       Value::Int(199), Value::Int(199)},
      {Value::Int(2), Value::Int(66), Value::Int(6567), Value::Double(99.5), Value::Int(2),
       Value::Int(197), Value::Int(197)},
  };
  for (size_t g = 0; g < 3; ++g) EXPECT_EQ(FinalRow(spec_, rows[g]), want[g]) << "group " << g;
  EXPECT_EQ(agg.size(), 0u);
}

// Everything that reads the groups sees the records staged before it: size(), Snapshot(),
// Merge() (a merged state adds to the staged records' state) and TakeAll().
TEST_F(AggregatorTest, ReadersSeeStagedRecords) {
  Aggregator agg(&spec_);
  std::string null_key;
  auto r1 = Row(10, 1, Value::Int(3));
  auto r2 = Row(20, 2, Value::Int(4));
  ASSERT_EQ(agg.Add(r1, &null_key), Aggregator::AddResult::kAdded);
  ASSERT_EQ(agg.Add(r2, &null_key), Aggregator::AddResult::kAdded);
  EXPECT_EQ(agg.size(), 2u);
  auto r3 = Row(30, 1, Value::Int(5));
  ASSERT_EQ(agg.Add(r3, &null_key), Aggregator::AddResult::kAdded);
  auto snap = agg.Snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].keys[0], Value::Int(1));
  EXPECT_EQ(snap[0].metrics[0].count, 2);  // r1 and r3
  EXPECT_EQ(snap[0].metrics[1].isum, 8);
  // A staged record of key 2 (x = 6), then a merged delta of key 2 (count 1, x = 4 -> sum 4,
  // min 4) and one of a new key 3.
  auto r4 = Row(40, 2, Value::Int(6));
  ASSERT_EQ(agg.Add(r4, &null_key), Aggregator::AddResult::kAdded);
  std::vector<DeltaRow> more = {snap[1], snap[1]};
  more[1].keys[0] = Value::Int(3);
  agg.Merge(std::move(more));
  auto rows = agg.TakeAll();
  ASSERT_EQ(rows.size(), 3u);
  // key 2: r2 (x = 4), r4 (x = 6), merged (x = 4): count 3, sum 14, min 4, max 6, last 6 (t = 40).
  const std::vector<Value> want2 = {Value::Int(2), Value::Int(3), Value::Int(14), Value::Double(4.67),
                                    Value::Int(4), Value::Int(6), Value::Int(6)};
  EXPECT_EQ(FinalRow(spec_, rows[1]), want2);
  EXPECT_EQ(rows[2].keys[0], Value::Int(3));
  EXPECT_EQ(rows[2].metrics[0].count, 1);
}

// Many new groups per stage, in an order that is not the keys' order: the groups come out in
// the order of their first record, as when every record was folded on its own. Record j
// (j = 0..2999) has key (7 * j) % 1000: the first 1000 records have 1000 different keys
// (7 and 1000 are coprime), and each key gets 3 records.
TEST_F(AggregatorTest, StagedGroupsKeepTheOrderOfTheirFirstRecord) {
  Aggregator agg(&spec_);
  std::string null_key;
  for (int64_t j = 0; j < 3000; ++j) {
    auto row = Row(5, (7 * j) % 1000, Value::Int(1));
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  auto rows = agg.TakeAll();
  ASSERT_EQ(rows.size(), 1000u);
  for (int64_t g = 0; g < 1000; ++g) {
    EXPECT_EQ(rows[g].keys[0], Value::Int((7 * g) % 1000)) << "group " << g;
    EXPECT_EQ(rows[g].metrics[0].count, 3) << "group " << g;
    EXPECT_EQ(rows[g].metrics[1].isum, 3) << "group " << g;
  }
}

// Encoded keys longer than an entry holds (a 50-character string) live apart from their group
// entries, also after TakeClosed() compacts the groups; short ones live in the entries. Counts
// worked out by hand: per window, key "<50 x>" + "1" gets 2 records, "<50 x>" + "2" 1, "s" 1.
TEST(AggregatorKeysTest, LongAndShortKeysSurviveCompaction) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"s", Type::kString, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  spec.window_micros = kMicrosPerMinute;
  spec.window_start_slot = 2;
  spec.window_end_slot = 3;
  spec.append_mode = true;
  KeySpec k;
  k.name = "s";
  k.expr = expr::Compile("s", schema).value();
  k.type = Type::kString;
  k.slot = 1;
  k.uses_window = false;
  spec.keys.push_back(std::move(k));
  MetricSpec n;
  n.name = "n";
  n.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(n));
  Aggregator agg(&spec);
  std::string null_key;
  const std::string long1 = std::string(50, 'x') + "1", long2 = std::string(50, 'x') + "2";
  auto add = [&](int64_t t, const std::string& key) {
    std::vector<Value> row = {Value::TimeMicros(t), Value::String(key), Value(), Value()};
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  };
  const int64_t m = kMicrosPerMinute;
  for (int64_t w : {0, 1}) {
    add(w * m + 1, long1);
    add(w * m + 2, "s");
    add(w * m + 3, long2);
    add(w * m + 4, long1);
  }
  auto count_of = [](const std::vector<DeltaRow>& rows) {
    std::map<std::pair<int64_t, std::string>, int64_t> out;
    for (const DeltaRow& r : rows) out[{r.window_start, r.keys[0].string_value()}] = r.metrics[0].count;
    return out;
  };
  using Counts = std::map<std::pair<int64_t, std::string>, int64_t>;
  EXPECT_EQ(count_of(agg.TakeClosed(m)), (Counts{{{0, long1}, 2}, {{0, "s"}, 1}, {{0, long2}, 1}}));
  // The window-1 groups were compacted: they must still be found by their keys.
  add(m + 5, long2);
  add(m + 6, "s");
  EXPECT_EQ(agg.size(), 3u);
  EXPECT_EQ(count_of(agg.TakeAll()), (Counts{{{m, long1}, 2}, {{m, "s"}, 2}, {{m, long2}, 2}}));
}

// Metrics whose `where` is the same comparison of a string field share one evaluation per
// record; different comparisons (`<>`, `in`) keep their own. Worked out by hand over
// (s, x) = (a, 1), (b, 2), (null, 4), (a, 8), (a, 32): s = 'a' matches 3 records (x sum 41),
// s <> 'a' 1 (b; null is not true), s in ('a', 'b') 4.
TEST(AggregatorKeysTest, RepeatedWhereConditionsAgreeWithTheirOwnEvaluation) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"s", Type::kString, ""}, {"x", Type::kInt64, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  spec.window_micros = kMicrosPerMinute;
  spec.window_start_slot = 3;
  spec.window_end_slot = 4;
  spec.emit_window_start = spec.emit_window_end = false;
  KeySpec k;
  k.name = "one";
  k.expr = expr::Compile("1", schema).value();
  k.type = Type::kInt64;
  k.uses_window = false;
  spec.keys.push_back(std::move(k));
  auto metric = [&](const std::string& name, AggFn fn, const std::string& arg, const std::string& where) {
    MetricSpec m;
    m.name = name;
    m.fn = fn;
    if (!arg.empty()) {
      m.arg = expr::Compile(arg, schema).value();
      m.arg_type = m.arg->type();
    }
    m.where = expr::Compile(where, schema).value();
    spec.metrics.push_back(std::move(m));
  };
  metric("n_a", AggFn::kCount, "", "s = 'a'");
  metric("n_not_a", AggFn::kCount, "", "s <> 'a'");
  metric("sum_a", AggFn::kSum, "x", "s = 'a'");
  metric("n_in", AggFn::kCount, "", "s in ('a', 'b')");
  metric("n_in_again", AggFn::kCount, "", "s in ('a', 'b')");
  metric("n_a_again", AggFn::kCount, "", "s = 'a'");
  Aggregator agg(&spec);
  std::string null_key;
  const std::vector<std::pair<Value, int64_t>> input = {
      {Value::String("a"), 1}, {Value::String("b"), 2}, {Value::Null(), 4}, {Value::String("a"), 8},
      {Value::String("a"), 32}};
  for (const auto& [str, x] : input) {
    std::vector<Value> row = {Value::TimeMicros(1), str, Value::Int(x), Value(), Value()};
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  auto rows = agg.TakeAll();
  ASSERT_EQ(rows.size(), 1u);
  const std::vector<int64_t> counts = {rows[0].metrics[0].count, rows[0].metrics[1].count,
                                       rows[0].metrics[2].count, rows[0].metrics[3].count,
                                       rows[0].metrics[4].count, rows[0].metrics[5].count};
  EXPECT_EQ(counts, (std::vector<int64_t>{3, 1, 3, 4, 4, 3}));
  EXPECT_EQ(rows[0].metrics[2].isum, 41);
}

// Hopping windows: 10-minute windows every 5 minutes (two per record), checked against
// window starts and counts worked out by hand.
TEST_F(AggregatorTest, HoppingWindowStartsOldestFirst) {
  const int64_t m = kMicrosPerMinute;
  spec_.window_micros = 10 * m;
  spec_.slide_micros = 5 * m;
  Aggregator agg(&spec_);
  // 12:07 is in [12:00, 12:10) and [12:05, 12:15); 12:05 exactly in [12:00,..) and [12:05,..).
  EXPECT_EQ(agg.WindowStart(7 * m), 5 * m);
  EXPECT_EQ(agg.WindowStarts(7 * m), (std::vector<int64_t>{0, 5 * m}));
  EXPECT_EQ(agg.WindowStarts(5 * m), (std::vector<int64_t>{0, 5 * m}));
  EXPECT_EQ(agg.WindowStarts(5 * m - 1), (std::vector<int64_t>{-5 * m, 0}));
  // Before the epoch windows floor downwards: -1 us is in [-10m, 0) and [-5m, 5m).
  EXPECT_EQ(agg.WindowStarts(-1), (std::vector<int64_t>{-10 * m, -5 * m}));
  spec_.slide_micros = 2 * m;  // five windows per record
  Aggregator five(&spec_);
  EXPECT_EQ(five.WindowStarts(7 * m), (std::vector<int64_t>{-2 * m, 0, 2 * m, 4 * m, 6 * m}));
  spec_.slide_micros = 0;  // tumbling: one window
  Aggregator one(&spec_);
  EXPECT_EQ(one.WindowStarts(17 * m), (std::vector<int64_t>{10 * m}));
}

TEST_F(AggregatorTest, HoppingAddsARecordToEveryWindowThatHoldsIt) {
  const int64_t m = kMicrosPerMinute;
  spec_.window_micros = 10 * m;
  spec_.slide_micros = 5 * m;
  for (bool key_reads_window : {true, false}) {
    spec_.keys[0].uses_window = key_reads_window;
    Aggregator agg(&spec_);
    std::string null_key;
    // key 1: x=3 at 00:02, x=5 at 00:07, x=-1 at 00:12. key 2: x=10 at 00:07.
    for (auto row : {Row(2 * m, 1, Value::Int(3)), Row(7 * m, 1, Value::Int(5)),
                     Row(12 * m, 1, Value::Int(-1)), Row(7 * m, 2, Value::Int(10))}) {
      ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
    }
    // By hand (n, s, a over x > 0, lo, hi, last_x):
    //   [-5,5) k1: 00:02               -> 1, 3, 3, 3, 3, 3
    //   [0,10) k1: 00:02, 00:07        -> 2, 8, 4, 3, 5, 5
    //   [5,15) k1: 00:07, 00:12        -> 2, 4, 5, -1, 5, -1
    //   [10,20) k1: 00:12              -> 1, -1, (no x > 0) null, -1, -1, -1
    //   [0,10) and [5,15) k2: 00:07    -> 1, 10, 10, 10, 10, 10
    std::vector<std::pair<int64_t, std::vector<Value>>> got;
    for (const DeltaRow& r : agg.TakeAll()) got.emplace_back(r.window_start, FinalRow(spec_, r));
    std::sort(got.begin(), got.end());
    auto row = [](int64_t k, int64_t n, int64_t s, Value a, int64_t lo, int64_t hi, int64_t last) {
      return std::vector<Value>{Value::Int(k), Value::Int(n), Value::Int(s), std::move(a),
                                Value::Int(lo), Value::Int(hi), Value::Int(last)};
    };
    std::vector<std::pair<int64_t, std::vector<Value>>> want = {
        {-5 * m, row(1, 1, 3, Value::Double(3), 3, 3, 3)},
        {0, row(1, 2, 8, Value::Double(4), 3, 5, 5)},
        {0, row(2, 1, 10, Value::Double(10), 10, 10, 10)},
        {5 * m, row(1, 2, 4, Value::Double(5), -1, 5, -1)},
        {5 * m, row(2, 1, 10, Value::Double(10), 10, 10, 10)},
        {10 * m, row(1, 1, -1, Value::Null(), -1, -1, -1)},
    };
    EXPECT_EQ(got, want) << "key reads the window: " << key_reads_window;
  }
}

// A record some of whose windows are late goes into the others; it is late (and added nowhere)
// only when every window of it is late.
TEST_F(AggregatorTest, HoppingSkipsOnlyTheLateWindows) {
  const int64_t m = kMicrosPerMinute;
  spec_.window_micros = 10 * m;
  spec_.slide_micros = 5 * m;
  spec_.allowed_lateness_micros = 0;
  Aggregator agg(&spec_);
  std::string null_key;
  int64_t t = 0;
  int64_t late_windows = -1;
  // late_before = 00:12: [00:00, 00:10) has ended (10 <= 12), [00:05, 00:15) has not.
  auto row = Row(7 * m, 1, Value::Int(1));
  EXPECT_EQ(agg.Add(row, 12 * m, &t, &null_key, &late_windows), Aggregator::AddResult::kAdded);
  EXPECT_EQ(late_windows, 1);
  EXPECT_EQ(t, 7 * m);
  // Exactly at the watermark is late: late_before = 00:15 closes [00:05, 00:15) too.
  row = Row(7 * m, 1, Value::Int(1));
  EXPECT_EQ(agg.Add(row, 15 * m, &t, &null_key, &late_windows), Aggregator::AddResult::kLate);
  EXPECT_EQ(late_windows, 0);  // a late record is counted as late, not by its windows
  // Nothing late: both windows.
  row = Row(7 * m, 1, Value::Int(1));
  EXPECT_EQ(agg.Add(row, 10 * m - 1, &t, &null_key, &late_windows), Aggregator::AddResult::kAdded);
  EXPECT_EQ(late_windows, 0);
  std::vector<std::pair<int64_t, int64_t>> counts;
  for (const DeltaRow& r : agg.TakeAll()) counts.emplace_back(r.window_start, r.metrics[0].count);
  std::sort(counts.begin(), counts.end());
  EXPECT_EQ(counts, (std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {5 * m, 2}}));
  // Allowed lateness of 3 minutes keeps [00:00, 00:10) open until 00:13.
  spec_.allowed_lateness_micros = 3 * m;
  Aggregator lenient(&spec_);
  row = Row(7 * m, 1, Value::Int(1));
  EXPECT_EQ(lenient.Add(row, 12 * m, &t, &null_key, &late_windows), Aggregator::AddResult::kAdded);
  EXPECT_EQ(late_windows, 0);
  EXPECT_EQ(lenient.size(), 2u);
}

// A key computed from the window alone gets each window's own value; a key that is null in one
// window of a record keeps the record out of all of them.
TEST(AggregatorKeysTest, HoppingWindowKeysPerWindow) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"s", Type::kString, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  Schema window_row({{"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  const int64_t m = kMicrosPerMinute;
  spec.window_micros = 60 * m;
  spec.slide_micros = 20 * m;
  spec.window_start_slot = 2;
  spec.window_end_slot = 3;
  spec.emit_window_start = spec.emit_window_end = false;
  auto add_key = [&](const std::string& name, const std::string& text, int slot, bool window) {
    KeySpec k;
    k.name = name;
    k.expr = expr::Compile(text, schema).value();
    k.type = k.expr->type();
    k.slot = slot;
    k.uses_window = window;
    if (window) k.window_expr = expr::Compile(text, window_row).value();
    spec.keys.push_back(std::move(k));
  };
  add_key("s", "s", 1, false);
  add_key("end_hour", "hour(window_end)", -1, true);
  MetricSpec n;
  n.name = "n";
  n.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(n));
  Aggregator agg(&spec);
  std::string null_key;
  // 01:30 is in the windows starting 00:40, 01:00, 01:20 (ending 01:40, 02:00, 02:20): end hours
  // 1, 2, 2. 01:10 is in 00:20, 00:40, 01:00 (ending 01:20, 01:40, 02:00): end hours 1, 1, 2.
  const int64_t h = kMicrosPerHour;
  for (int64_t t : {h + 30 * m, h + 10 * m}) {
    std::vector<Value> row = {Value::TimeMicros(t), Value::String("a"), Value(), Value()};
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  std::vector<Value> no_key = {Value::TimeMicros(h), Value::Null(), Value(), Value()};
  EXPECT_EQ(agg.Add(no_key, &null_key), Aggregator::AddResult::kNullKey);
  EXPECT_EQ(null_key, "s");
  std::vector<std::tuple<int64_t, int64_t, int64_t>> got;  // start, end hour, count
  for (const DeltaRow& r : agg.TakeAll()) {
    got.emplace_back(r.window_start, r.keys[1].int_value(), r.metrics[0].count);
  }
  std::sort(got.begin(), got.end());
  std::vector<std::tuple<int64_t, int64_t, int64_t>> want = {
      {20 * m, 1, 1}, {40 * m, 1, 2}, {60 * m, 2, 2}, {80 * m, 2, 1}};
  EXPECT_EQ(got, want);

  // if(hour(window_end) = 2, null, 1) is null in the windows ending at 02:xx: a record of 01:30 has
  // one such window, so it goes nowhere.
  spec.keys.pop_back();
  add_key("end_hour", "if(hour(window_end) = 2, null, hour(window_end))", -1, true);
  Aggregator partly_null(&spec);
  std::vector<Value> row = {Value::TimeMicros(h + 30 * m), Value::String("a"), Value(), Value()};
  EXPECT_EQ(partly_null.Add(row, &null_key), Aggregator::AddResult::kNullKey);
  EXPECT_EQ(null_key, "end_hour");
  EXPECT_EQ(partly_null.size(), 0u);
}

// Update mode takes the delta at checkpoints; append mode takes windows as the watermark passes
// their end. Both see each record in each of its windows.
TEST_F(AggregatorTest, HoppingWindowsCloseByTheirOwnEnd) {
  const int64_t m = kMicrosPerMinute;
  spec_.window_micros = 10 * m;
  spec_.slide_micros = 5 * m;
  spec_.append_mode = true;
  Aggregator agg(&spec_);
  std::string null_key;
  for (int64_t t : {1 * m, 6 * m, 11 * m}) {
    auto row = Row(t, 1, Value::Int(1));
    ASSERT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
  }
  // Windows: [-5,5): 00:01; [0,10): 00:01, 00:06; [5,15): 00:06, 00:11; [10,20): 00:11.
  EXPECT_EQ(agg.size(), 4u);
  auto closed = agg.TakeClosed(10 * m);  // ends at or before 00:10: [-5,5) and [0,10)
  std::vector<std::pair<int64_t, int64_t>> got;
  for (const DeltaRow& r : closed) got.emplace_back(r.window_start, r.metrics[0].count);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, int64_t>>{{-5 * m, 1}, {0, 2}}));
  EXPECT_EQ(agg.size(), 2u);
  // Update mode: a checkpoint's delta, merged into an earlier one, adds up per window.
  spec_.append_mode = false;
  Aggregator update(&spec_);
  auto r1 = Row(6 * m, 1, Value::Int(2));
  ASSERT_EQ(update.Add(r1, &null_key), Aggregator::AddResult::kAdded);
  auto first = update.TakeAll();
  auto r2 = Row(9 * m, 1, Value::Int(3));
  ASSERT_EQ(update.Add(r2, &null_key), Aggregator::AddResult::kAdded);
  std::vector<std::vector<DeltaRow>> parts;
  parts.push_back(std::move(first));
  parts.push_back(update.TakeAll());
  got.clear();
  for (const DeltaRow& r : MergeDeltas(spec_, std::move(parts))) {
    got.emplace_back(r.window_start, r.metrics[1].isum);
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {5 * m, 5}}));
}

TEST(RoundTest, HalfAwayFromZero) {
  EXPECT_DOUBLE_EQ(RoundHalfAway(1.125, 2), 1.13);
  EXPECT_DOUBLE_EQ(RoundHalfAway(2.0 / 3.0, 2), 0.67);
  EXPECT_DOUBLE_EQ(RoundHalfAway(-1.125, 2), -1.13);
  EXPECT_DOUBLE_EQ(RoundHalfAway(0.5, 0), 1.0);
}

}  // namespace
}  // namespace sluice
