#include "operators/delta_order.h"

#include <cstring>

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "operators/aggregator.h"

namespace sluice {
namespace {

// The order by definition: window start, then the key vectors as std::vector's operator< orders
// them over Value's operator< (the variant's: type index first, then the held value).
bool Defined(const DeltaRow& a, const DeltaRow& b) {
  return std::tie(a.window_start, a.keys) < std::tie(b.window_start, b.keys);
}

DeltaRow Row(int64_t window_start, std::vector<Value> keys, int64_t tag) {
  DeltaRow r;
  r.window_start = window_start;
  r.keys = std::move(keys);
  MetricState m;
  m.count = tag;  // follows its row through the sort
  r.metrics.push_back(m);
  return r;
}

Value RandomValue(std::mt19937_64& rng, bool doubles) {
  static const std::vector<std::string> kStrings = {
      "", "a", "ab", "abc", "b", std::string("a\0", 2), std::string("a\0b", 3),
      std::string("\0", 1), std::string("\0\0", 2), "\xff", "\xff\xff", "a\xff", "\x7f", "\x80",
      "2026-01-01", "2026-01-02", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"};
  static const std::vector<int64_t> kInts = {
      std::numeric_limits<int64_t>::min(), -1000000, -256, -255, -1, 0, 1, 255, 256, 65536,
      1LL << 40, std::numeric_limits<int64_t>::max()};
  switch (rng() % (doubles ? 6 : 5)) {
    case 0: return rng() % 8 == 0 ? Value::Null() : Value::Bool(rng() % 2 == 0);
    case 1: return Value::Int(kInts[rng() % kInts.size()]);
    case 2: return Value::String(kStrings[rng() % kStrings.size()]);
    case 3: return Value::TimeMicros(kInts[rng() % kInts.size()]);
    case 4: return Value::Int(static_cast<int64_t>(rng() % 5) - 2);
    default: return Value::Double(static_cast<double>(rng() % 5) - 2.5);
  }
}

// Distinct rows of 0-4 keys of mixed types, shuffled; sorted by SortDeltas they come out in the
// defined order, each with its own metrics.
void CheckRandom(bool doubles, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<DeltaRow> rows;
  std::set<std::pair<int64_t, std::vector<Value>>> seen;
  for (int i = 0; i < 3000; ++i) {
    const int64_t ws = static_cast<int64_t>(rng() % 3) * 3600000000LL - 3600000000LL;
    std::vector<Value> keys;
    const size_t n = rng() % 5;
    for (size_t k = 0; k < n; ++k) keys.push_back(RandomValue(rng, doubles));
    if (!seen.insert({ws, keys}).second) continue;
    rows.push_back(Row(ws, std::move(keys), static_cast<int64_t>(rows.size())));
  }
  ASSERT_GT(rows.size(), 1000u);
  std::vector<DeltaRow> expected;
  for (const DeltaRow& r : rows) expected.push_back(r);
  std::sort(expected.begin(), expected.end(), Defined);
  std::vector<DeltaRow> sorted = rows;
  SortDeltas(&sorted);
  ASSERT_EQ(sorted.size(), expected.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    EXPECT_EQ(sorted[i].window_start, expected[i].window_start) << i;
    EXPECT_EQ(sorted[i].keys, expected[i].keys) << i;
    EXPECT_EQ(sorted[i].metrics.at(0).count, expected[i].metrics.at(0).count) << i;
  }
  // DeltaLess agrees with the definition on every adjacent pair.
  for (size_t i = 0; i + 1 < sorted.size(); ++i) {
    EXPECT_TRUE(DeltaLess(sorted[i], sorted[i + 1])) << i;
    EXPECT_FALSE(DeltaLess(sorted[i + 1], sorted[i])) << i;
  }
}

TEST(DeltaOrderTest, SortsMixedKeysInValueOrder) {
  for (uint64_t seed = 1; seed <= 5; ++seed) CheckRandom(/*doubles=*/false, seed);
}

TEST(DeltaOrderTest, SortsRowsWithDoubleKeysInValueOrder) {
  for (uint64_t seed = 1; seed <= 3; ++seed) CheckRandom(/*doubles=*/true, seed);
}

TEST(DeltaOrderTest, StringsOrderByUnsignedBytesThenLength) {
  std::vector<DeltaRow> rows;
  const std::vector<std::string> in = {"b", std::string("a\0", 2), "a\xff", "a", "", "\x80", "a\x01"};
  for (size_t i = 0; i < in.size(); ++i) rows.push_back(Row(0, {Value::String(in[i])}, static_cast<int64_t>(i)));
  SortDeltas(&rows);
  std::vector<std::string> got;
  for (const DeltaRow& r : rows) got.push_back(r.keys[0].string_value());
  const std::vector<std::string> want = {"", "a", std::string("a\0", 2), "a\x01", "a\xff", "b", "\x80"};
  EXPECT_EQ(got, want);
}

TEST(DeltaOrderTest, NegativeWindowStartsAndIntsOrderNumerically) {
  std::vector<DeltaRow> rows;
  rows.push_back(Row(5, {Value::Int(-1)}, 0));
  rows.push_back(Row(-5, {Value::Int(7)}, 1));
  rows.push_back(Row(5, {Value::Int(-300)}, 2));
  rows.push_back(Row(5, {Value::Int(2)}, 3));
  rows.push_back(Row(-5, {Value::Null()}, 4));
  SortDeltas(&rows);
  std::vector<int64_t> tags;
  for (const DeltaRow& r : rows) tags.push_back(r.metrics[0].count);
  EXPECT_EQ(tags, (std::vector<int64_t>{4, 1, 2, 0, 3}));
}

// Several parts with overlapping groups: MergeDeltasInOrder gives, row for row and bit for bit,
// what the hash-table merge (MergeDeltas) gives once sorted.
TEST(DeltaOrderTest, MergeInOrderEqualsMergeDeltasSorted) {
  AggregateSpec spec;
  for (const char* name : {"a", "b", "c"}) {
    KeySpec k;
    k.name = name;
    spec.keys.push_back(std::move(k));
  }
  auto metric = [&](AggFn fn, Type arg) {
    MetricSpec m;
    m.name = "m" + std::to_string(spec.metrics.size());
    m.fn = fn;
    m.arg_type = arg;
    m.result_type = arg == Type::kNull ? Type::kInt64 : arg;
    spec.metrics.push_back(std::move(m));
  };
  metric(AggFn::kCount, Type::kNull);
  metric(AggFn::kSum, Type::kInt64);
  metric(AggFn::kSum, Type::kDouble);
  metric(AggFn::kAvg, Type::kDouble);
  metric(AggFn::kLast, Type::kString);
  metric(AggFn::kMax, Type::kTimestamp);
  metric(AggFn::kMin, Type::kInt64);
  std::mt19937_64 rng(11);
  const std::vector<double> doubles = {-0.0, 0.0, 0.1, 0.2, 0.3, -1e16, 1e16, 3.5};
  auto state = [&](size_t m) {
    MetricState s;
    switch (m) {
      case 0: s.count = static_cast<int64_t>(rng() % 9); break;
      case 1: s.count = 1; s.isum = static_cast<int64_t>(rng() % 1000) - 500; break;
      case 2: case 3: s.count = 1 + static_cast<int64_t>(rng() % 3); s.dsum = doubles[rng() % doubles.size()]; break;
      case 4: s.count = 1; s.value = Value::String("s" + std::to_string(rng() % 5)); s.at = static_cast<int64_t>(rng() % 4); break;
      case 5: s.count = 1; s.value = Value::TimeMicros(static_cast<int64_t>(rng() % 100)); break;
      default: s.count = 1; s.value = Value::Int(static_cast<int64_t>(rng() % 100) - 50); break;
    }
    return s;
  };
  for (int round = 0; round < 20; ++round) {
    std::vector<std::vector<DeltaRow>> parts(2 + rng() % 3);
    for (auto& part : parts) {
      std::set<std::pair<int64_t, std::vector<Value>>> seen;
      for (int i = 0; i < 400; ++i) {
        const int64_t ws = static_cast<int64_t>(rng() % 2) * 3600;
        std::vector<Value> keys = {Value::Int(static_cast<int64_t>(rng() % 7) - 3),
                                   Value::String(rng() % 2 ? "x" : std::string("x\0", 2)),
                                   rng() % 5 == 0 ? Value::Null() : Value::TimeMicros(static_cast<int64_t>(rng() % 3))};
        if (!seen.insert({ws, keys}).second) continue;
        DeltaRow r;
        r.window_start = ws;
        r.keys = std::move(keys);
        for (size_t m = 0; m < spec.metrics.size(); ++m) r.metrics.push_back(state(m));
        part.push_back(std::move(r));
      }
    }
    std::vector<std::vector<DeltaRow>> copy = parts;
    std::vector<DeltaRow> expected = MergeDeltas(spec, std::move(copy));
    std::sort(expected.begin(), expected.end(), Defined);
    std::vector<DeltaRow> got;
    ASSERT_TRUE(MergeDeltasInOrder(spec, &parts, &got));
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].window_start, expected[i].window_start) << i;
      ASSERT_EQ(got[i].keys, expected[i].keys) << i;
      ASSERT_EQ(got[i].metrics.size(), expected[i].metrics.size());
      for (size_t m = 0; m < got[i].metrics.size(); ++m) {
        const MetricState& g = got[i].metrics[m];
        const MetricState& e = expected[i].metrics[m];
        EXPECT_EQ(g.count, e.count) << i << " " << m;
        EXPECT_EQ(g.isum, e.isum) << i << " " << m;
        EXPECT_EQ(std::memcmp(&g.dsum, &e.dsum, sizeof(double)), 0) << i << " " << m << " " << g.dsum << " " << e.dsum;
        EXPECT_EQ(g.value, e.value) << i << " " << m;
        EXPECT_EQ(g.at, e.at) << i << " " << m;
      }
    }
  }
}

TEST(DeltaOrderTest, MergeInOrderRefusesDoubleKeysAndLeavesThePartsAlone) {
  AggregateSpec spec;
  KeySpec k;
  k.name = "k";
  spec.keys.push_back(std::move(k));
  std::vector<std::vector<DeltaRow>> parts(2);
  parts[0].push_back(Row(0, {Value::Int(1)}, 1));
  parts[1].push_back(Row(0, {Value::Double(-0.0)}, 2));
  std::vector<DeltaRow> out;
  EXPECT_FALSE(MergeDeltasInOrder(spec, &parts, &out));
  ASSERT_EQ(parts[0].size(), 1u);
  ASSERT_EQ(parts[1].size(), 1u);
  EXPECT_EQ(parts[0][0].keys[0], Value::Int(1));
  EXPECT_EQ(parts[1][0].metrics[0].count, 2);
}

}  // namespace
}  // namespace sluice
