#include "operators/delta_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

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

}  // namespace
}  // namespace sluice
