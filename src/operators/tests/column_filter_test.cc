// Differential tests of conditions over columns: ColumnCondition must give EvalTrue() on the
// same record's row, for every record, null and messy values included.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/raw_batch.h"
#include "core/schema.h"
#include "core/value.h"
#include "expr/expr.h"
#include "operators/batch.h"
#include "operators/column_filter.h"
#include "operators/columnar_json_decoder.h"

namespace sluice {
namespace {

Schema TestSchema() {
  return Schema({{"s", Type::kString, ""}, {"t", Type::kString, ""}, {"i", Type::kInt64, ""}});
}

std::vector<std::string> Records() {
  return {
      R"({"s":"click","t":"a","i":1})",  R"({"s":"conversion","i":null})",
      R"({"s":"qualified","t":null})",   R"({"s":"unqualified","t":"b","i":2})",
      R"({"s":"alive","t":"click"})",    R"({"s":"","t":""})",
      R"({"s":null,"t":"x"})",           R"({"t":"click"})",
      R"({"s":"Click"})",                R"({"s":"click ","i":3})",
      R"({"s":"cl\u0069ck"})",           R"({"s":"a"})",
      R"({"s":"b","t":"a"})",            R"({"s":12})",
      R"({"s":true})",                   R"({"s":"x","i":"not a number"})",
      R"({})",                           R"({"s":"caf\u00e9"})",
  };
}

/// Decodes `records`; the batch's strings point into the decoder, which must outlive it.
ColumnBatch Decode(const std::vector<std::string>& records,
                   std::unique_ptr<ColumnarJsonDecoder>* decoder) {
  auto made = ColumnarJsonDecoder::Make(TestSchema());
  EXPECT_TRUE(made.ok());
  *decoder = std::move(made).value();
  RawBatch raw;
  for (const auto& r : records) raw.Append(r);
  ColumnBatch batch;
  (*decoder)->Decode(raw, &batch);
  return batch;
}

const std::vector<std::string>& Supported() {
  static const std::vector<std::string> list = {
      "s is null",
      "s is not null",
      "i is null",
      "not i is not null",
      "s = 'click'",
      "s <> 'click'",
      "'click' = s",
      "s in ('a', 'b')",
      "s not in ('a', 'b')",
      "s in ('a', null)",
      "s not in ('a', null)",
      "s is null or s not in ('click', 'conversion', 'qualified', 'unqualified')",
      "not (s = 'x') and i is not null",
      "(s = 'a' or t = 'a') and not (t is null)",
      "(s = 'b' or t = 'click') and not (t is null)",
      "s = '' or t = ''",
  };
  return list;
}

TEST(ColumnConditionTest, AgreesWithTheRowPath) {
  const Schema schema = TestSchema();
  const std::vector<std::string> records = Records();
  std::unique_ptr<ColumnarJsonDecoder> decoder;
  ColumnBatch batch = Decode(records, &decoder);
  std::vector<Value> row(schema.size());
  for (const std::string& text : Supported()) {
    auto compiled = expr::CompilePredicate(text, schema);
    ASSERT_TRUE(compiled.ok()) << text << ": " << compiled.status().ToString();
    auto condition = ColumnCondition::Make(**compiled, schema);
    ASSERT_NE(condition, nullptr) << text << " should be evaluated over columns";
    size_t trues = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      if (batch.failed(i)) continue;
      batch.LoadRow(i, row);
      const bool expected = (*compiled)->EvalTrue(row);
      trues += expected ? 1 : 0;
      EXPECT_EQ(condition->True(batch, i), expected) << text << " on " << records[i];
    }
    // `not in` a list holding null is never true (SQL); every other condition here is for some
    // record, so a wrong answer would show.
    if (text != "s not in ('a', null)") {
      EXPECT_GT(trues, 0u) << text << " is true for no record: the test would not see a difference";
    } else {
      EXPECT_EQ(trues, 0u);
    }
  }
}

TEST(ColumnConditionTest, OtherNodesStayOnTheRowPath) {
  const Schema schema = TestSchema();
  for (const char* text : {"i = 1", "s = t", "length(s) = 5", "i > 0 and s is null", "s < 'b'",
                           "coalesce(s, 'x') = 'x'", "s in ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i')"}) {
    auto compiled = expr::CompilePredicate(text, schema);
    ASSERT_TRUE(compiled.ok()) << text << ": " << compiled.status().ToString();
    EXPECT_EQ(ColumnCondition::Make(**compiled, schema), nullptr) << text;
  }
  // A slot past the declared fields (a derived field) has no column.
  Schema wider({{"s", Type::kString, ""}, {"t", Type::kString, ""}, {"i", Type::kInt64, ""},
                {"derived", Type::kString, ""}});
  auto compiled = expr::CompilePredicate("derived is null", wider);
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ(ColumnCondition::Make(**compiled, TestSchema()), nullptr);
}

TEST(ColumnConditionTest, FiltersRunInOrderAndMarkTheirStep) {
  const Schema schema = TestSchema();
  const std::vector<std::string> records = Records();
  std::unique_ptr<ColumnarJsonDecoder> decoder;
  ColumnBatch batch = Decode(records, &decoder);
  std::vector<ColumnFilterStep> steps;
  auto ignore = expr::CompilePredicate("s is null", schema);
  auto keep = expr::CompilePredicate("s in ('click', 'a', 'b')", schema);
  ASSERT_TRUE(ignore.ok() && keep.ok());
  steps.push_back(ColumnFilterStep{3, true, ColumnCondition::Make(**ignore, schema)});
  steps.push_back(ColumnFilterStep{5, false, ColumnCondition::Make(**keep, schema)});
  ApplyColumnFilters(steps, &batch);
  std::vector<Value> row(schema.size());
  std::vector<uint32_t> expected_selection;
  for (size_t i = 0; i < records.size(); ++i) {
    if (batch.failed(i)) {
      EXPECT_EQ(batch.dropped_at(i), -1);
      continue;
    }
    batch.LoadRow(i, row);
    int32_t expected = -1;
    if ((*ignore)->EvalTrue(row)) {
      expected = 3;
    } else if (!(*keep)->EvalTrue(row)) {
      expected = 5;
    } else {
      expected_selection.push_back(static_cast<uint32_t>(i));
    }
    EXPECT_EQ(batch.dropped_at(i), expected) << records[i];
  }
  EXPECT_EQ(batch.selection(), expected_selection);
  EXPECT_FALSE(expected_selection.empty());
}

}  // namespace
}  // namespace sluice
