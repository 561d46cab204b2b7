#include "runtime/sink_rejection.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/time.h"

namespace sluice {
namespace {

/// A store that takes a range of items all or nothing, refusing any range holding a "poison"
/// item (a negative number), like a statement the server undoes.
struct FakeStore {
  std::vector<int> items;
  std::vector<int> stored;
  int writes = 0;
  int transient_at = -1;  ///< fail the write with this number with a transient error

  Status Write(size_t b, size_t e) {
    ++writes;
    if (writes == transient_at) return Status::Unavailable("connection lost");
    for (size_t i = b; i < e; ++i) {
      if (items[i] < 0) return Status::InvalidArgument("value " + std::to_string(items[i]));
    }
    stored.insert(stored.end(), items.begin() + b, items.begin() + e);
    return Status::OK();
  }
};

FakeStore Store(std::vector<int> items) {
  FakeStore store;
  store.items = std::move(items);
  return store;
}

Result<std::vector<RejectedItem>> WriteAll(FakeStore& store) {
  return WriteIsolatingRejects(
      store.items.size(), [&](size_t b, size_t e) { return store.Write(b, e); },
      [](const Status& s) { return s.code() == StatusCode::kInvalidArgument; });
}

TEST(WriteIsolatingRejectsTest, CleanBatchIsOneWrite) {
  FakeStore store = Store({1, 2, 3, 4, 5});
  auto r = WriteAll(store);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(store.writes, 1);
  EXPECT_EQ(store.stored, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(WriteIsolatingRejectsTest, IsolatesEachPoisonItemAndStoresTheRest) {
  // Random batches with random poison items: the refused ones are exactly the negative items,
  // with their own message, and every other item is stored once, in order.
  std::mt19937 rng(14);
  for (int round = 0; round < 200; ++round) {
    const size_t n = 1 + rng() % 300;
    FakeStore store;
    std::vector<size_t> poison;
    std::vector<int> clean;
    for (size_t i = 0; i < n; ++i) {
      const bool bad = rng() % 20 == 0;
      store.items.push_back(bad ? -static_cast<int>(i) - 1 : static_cast<int>(i) + 1);
      if (bad) {
        poison.push_back(i);
      } else {
        clean.push_back(static_cast<int>(i) + 1);
      }
    }
    auto r = WriteAll(store);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<size_t> got;
    for (const auto& item : *r) {
      got.push_back(item.index);
      EXPECT_EQ(item.message, "value " + std::to_string(-static_cast<int>(item.index) - 1));
    }
    EXPECT_EQ(got, poison);
    EXPECT_EQ(store.stored, clean);
    // Each poison item costs at most two writes per level of the halving.
    int levels = 0;
    while ((size_t{1} << levels) < n) ++levels;
    EXPECT_LE(store.writes, 1 + 2 * static_cast<int>(poison.size()) * (levels + 1));
  }
}

TEST(WriteIsolatingRejectsTest, AllPoison) {
  FakeStore store = Store({-1, -2, -3});
  auto r = WriteAll(store);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE(store.stored.empty());
}

TEST(WriteIsolatingRejectsTest, TransientFailureIsReturnedNotIsolated) {
  // A lost connection while bisecting is not a refusal of the rows: the whole checkpoint is
  // retried by the caller, so it comes back as the error.
  FakeStore store = Store({1, -2, 3, 4});
  store.transient_at = 3;
  auto r = WriteAll(store);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);

  FakeStore first = Store({1, 2});
  first.transient_at = 1;
  auto r2 = WriteAll(first);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(first.writes, 1);
}

TEST(WriteIsolatingRejectsTest, EmptyBatchWritesNothing) {
  FakeStore store;
  auto r = WriteAll(store);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(store.writes, 0);
}

TEST(RejectedRowLetterTest, NamesTheRowAndTheServersReason) {
  Schema schema;
  schema.Add(Field{"job_id", Type::kString, ""});
  schema.Add(Field{"n", Type::kInt64, ""});
  DeadLetter d = RejectedRowLetter(schema, {Value::String("j\"1"), Value::Int(3)},
                                   "mysql error 1406: Data too long for column 'job_id' at row 1",
                                   "delta of group", 77, 2, 5);
  EXPECT_EQ(d.reason,
            "sink_rejected: delta of group refused by the sink: mysql error 1406: Data too long "
            "for column 'job_id' at row 1");
  EXPECT_EQ(d.payload, R"({"job_id":"j\"1","n":3})");
  EXPECT_EQ(d.source, "_sink");
  EXPECT_EQ(d.offset, 77);
  EXPECT_EQ(d.seq, 2);
  EXPECT_EQ(d.time_micros, 5);
}

}  // namespace
}  // namespace sluice
