#include "operators/dimension.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace sluice {
namespace {

// Random puts, replacements and deletions of integer keys, checked against a std::map model.
TEST(DimensionTableTest, IntegerKeysFollowPutsAndErases) {
  DimensionTable table("job", Schema({{"id", Type::kInt64, ""}, {"company_id", Type::kInt64, ""}}), 0);
  std::map<int64_t, int64_t> model;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    const int64_t key = static_cast<int64_t>(rng() % 3000) - 1000;
    if (rng() % 4 == 0) {
      table.Erase(Value::Int(key));
      model.erase(key);
    } else {
      const int64_t company = static_cast<int64_t>(rng() % 100);
      table.Put({Value::Int(key), Value::Int(company)});
      model[key] = company;
    }
  }
  EXPECT_EQ(table.size(), model.size());
  DimensionTable copy(table);
  for (int64_t key = -1100; key < 2100; ++key) {
    auto it = model.find(key);
    const DimensionTable* tables[] = {&table, &copy};
    for (const DimensionTable* t : tables) {
      const std::vector<Value>* row = t->Find(Value::Int(key));
      if (it == model.end()) {
        EXPECT_EQ(row, nullptr) << "key " << key;
      } else {
        ASSERT_NE(row, nullptr) << "key " << key;
        EXPECT_EQ((*row)[1], Value::Int(it->second)) << "key " << key;
      }
    }
  }
}

TEST(DimensionTableTest, StringKeysStillWork) {
  DimensionTable table("c", Schema({{"code", Type::kString, ""}, {"n", Type::kInt64, ""}}), 0);
  table.Put({Value::String("a"), Value::Int(1)});
  table.Put({Value::String("b"), Value::Int(2)});
  table.Erase(Value::String("a"));
  EXPECT_EQ(table.Find(Value::String("a")), nullptr);
  ASSERT_NE(table.Find(Value::String("b")), nullptr);
  EXPECT_EQ((*table.Find(Value::String("b")))[1], Value::Int(2));
  EXPECT_EQ(table.Find(Value::Int(1)), nullptr);
}

}  // namespace
}  // namespace sluice
