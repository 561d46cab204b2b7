// Differential tests of conditions over columns: ColumnCondition must give EvalTrue() on the
// same record's row, for every record, null and messy values included.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
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
      // Blank and padded strings: what trim() strips (space, \t, \n, \r, \f, \v) and what it
      // keeps (Unicode spaces, NUL).
      R"({"s":" \t\n\r\f\u000b ","t":"  click\t"})", R"({"s":"\u00a0","t":" a"})",
      R"({"s":" click\u2003","t":"\u3000"})",     R"({"s":"\u000b","t":"\u0000"})",
      R"({"s":"\tclick\n","i":-4})",              R"({"s":"  ","t":"\r\n"})",
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
      "trim(s) = ''",
      "s is null or trim(s) = ''",
      "trim(s) = 'click'",
      "trim(s) <> ''",
      "trim(t) in ('a', 'click')",
      "trim(t) not in ('a', null)",
      "i = 1",
      "i > 1 or s is null",
      "1 < i",
      "i <> 2",
      "i < 0.5",
      "i >= -4 and trim(s) = 'click'",
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
    if (text != "s not in ('a', null)" && text != "trim(t) not in ('a', null)") {
      EXPECT_GT(trues, 0u) << text << " is true for no record: the test would not see a difference";
    } else {
      EXPECT_EQ(trues, 0u);
    }
  }
}

TEST(ColumnConditionTest, OtherNodesStayOnTheRowPath) {
  const Schema schema = TestSchema();
  for (const char* text : {"i = to_int(t)", "s = t", "length(s) = 5", "i + 1 > 0 and s is null", "s < 'b'",
                           "coalesce(s, 'x') = 'x'", "s in ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i')",
                           "trim(lower(s)) = ''", "trim(s) is null", "trim(s) < 'b'", "i = i"}) {
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

// Comparisons of a number column with a constant (viewlog's `view_duration < 0`): int64 and
// double columns in the int64 and double domains, -0.0, huge values, an int64 that a double
// cannot hold exactly, NaN-free JSON extremes, null and absent.
TEST(ColumnConditionTest, ComparesNumbersAsTheRowPath) {
  const Schema schema({{"d", Type::kDouble, ""}, {"i", Type::kInt64, ""}});
  const std::vector<std::string> records = {
      R"({"d":-0.0,"i":0})",   R"({"d":0,"i":-1})",         R"({"d":1.5,"i":9007199254740993})",
      R"({"d":-1e308,"i":9007199254740992})", R"({"d":1e308})", R"({"d":null,"i":null})", R"({})",
      R"({"d":-0.000001,"i":-9223372036854775808})", R"({"d":3,"i":3})", R"({"d":"x"})",
      R"({"d":2.9999999999999996,"i":9223372036854775807})"};
  auto made = ColumnarJsonDecoder::Make(schema);
  ASSERT_TRUE(made.ok());
  RawBatch raw;
  for (const auto& r : records) raw.Append(r);
  ColumnBatch batch;
  (*made)->Decode(raw, &batch);
  std::vector<Value> row(schema.size());
  for (const char* text : {"d < 0", "d <= 0", "d = 0", "d <> 0", "d > -0.0", "d >= 1.5", "0 > d",
                           "3 = d", "d < 3", "i < 0.5", "i = 9007199254740992", "i > 9007199254740992",
                           "i = 9007199254740992.0", "i >= 3", "-1 >= i", "d <> 3 and i <> 3",
                           "d is null or d < 0"}) {
    auto compiled = expr::CompilePredicate(text, schema);
    ASSERT_TRUE(compiled.ok()) << text << ": " << compiled.status().ToString();
    auto condition = ColumnCondition::Make(**compiled, schema);
    ASSERT_NE(condition, nullptr) << text << " should be evaluated over columns";
    size_t trues = 0, falses = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      if (batch.failed(i)) continue;
      batch.LoadRow(i, row);
      const bool expected = (*compiled)->EvalTrue(row);
      (expected ? trues : falses) += 1;
      EXPECT_EQ(condition->True(batch, i), expected) << text << " on " << records[i];
    }
    EXPECT_GT(trues, 0u) << text;
    EXPECT_GT(falses, 0u) << text;
  }
  // Two columns compared with each other stay on the row path.
  auto compiled = expr::CompilePredicate("d < i", schema);
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ(ColumnCondition::Make(**compiled, schema), nullptr);
}

TEST(ColumnConditionTest, FiltersRunInOrderAndMarkTheirStep) {
  const Schema schema = TestSchema();
  const std::vector<std::string> records = Records();
  std::unique_ptr<ColumnarJsonDecoder> decoder;
  ColumnBatch batch = Decode(records, &decoder);
  std::vector<ColumnStep> steps;
  auto ignore = expr::CompilePredicate("s is null", schema);
  auto keep = expr::CompilePredicate("s in ('click', 'a', 'b')", schema);
  ASSERT_TRUE(ignore.ok() && keep.ok());
  steps.push_back(ColumnStep{3, ColumnStep::Kind::kIgnoreIf, ColumnCondition::Make(**ignore, schema), nullptr, 0, "", {}});
  steps.push_back(ColumnStep{5, ColumnStep::Kind::kFilter, ColumnCondition::Make(**keep, schema), nullptr, 0, "", {}});
  ApplyColumnSteps(steps, &batch);
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

// Values over columns (`let` steps): a TimeUUID string, a timestamp string and two integers,
// with nulls, absent keys, wrong versions, garbage and edge values.
Schema LetSchema() {
  return Schema({{"u", Type::kString, ""}, {"ts", Type::kString, ""}, {"a", Type::kInt64, ""},
                 {"b", Type::kInt64, ""}});
}

std::vector<std::string> LetRecords() {
  return {
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2024-01-02 03:04:05","a":1,"b":2})",
      R"({"u":"b4cc8000-a838-41ee-9234-0123456789ab","ts":"2024-01-02T03:04:05Z","a":null})",
      R"({"u":"not a uuid","ts":"2024-13-40 99:00:00","b":-7})",
      R"({"u":null,"ts":"1700000000"})",
      R"({"ts":"2024-01-02 03:04:05.123456","a":9223372036854775807})",
      R"({"u":"","ts":"","a":-9223372036854775808,"b":0})",
      R"({"u":"B4CC8000-A838-11EE-9234-0123456789AB"})",
      R"({"u":"b4cc8000a83811ee92340123456789ab","ts":"yesterday"})",
      R"({"u":"00000000-0000-1000-8000-000000000000","ts":"0001-01-01 00:00:00"})",
      R"({"a":"12"})",
      R"({})",
      // ISO edges: offsets, fractions, leap days (and a 29 February that does not exist), far
      // years, out-of-range parts, a US date, a date alone.
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2024-02-29T12:00:00+02:00"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2023-02-29T00:00:00"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2024-01-02T03:04:05.5-05:30"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"9999-12-31T23:59:59.999999Z"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"0001-01-01T00:00:00"})",
      R"({"u":"00000000-0000-1000-8000-000000000000","ts":"1/2/2024 03:04"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2024-01-02"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2024-01-01T24:00:00"})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":" 2024-01-02T03:04:05 "})",
      R"({"u":"b4cc8000-a838-11ee-9234-0123456789ab","ts":"2024-01-02T03:04:05+14:00"})",
  };
}

/// Decodes `records` of LetSchema() with room for `derived` columns.
ColumnBatch DecodeLet(const std::vector<std::string>& records,
                      std::vector<std::pair<size_t, Type>> derived,
                      std::unique_ptr<ColumnarJsonDecoder>* decoder) {
  auto made = ColumnarJsonDecoder::Make(LetSchema());
  EXPECT_TRUE(made.ok());
  *decoder = std::move(made).value();
  RawBatch raw;
  for (const auto& r : records) raw.Append(r);
  ColumnBatch batch;
  batch.SetDerived(std::move(derived));
  (*decoder)->Decode(raw, &batch);
  return batch;
}

TEST(ColumnValueTest, AgreesWithTheRowPath) {
  const Schema schema = LetSchema();
  const std::vector<Type> columns = {Type::kString, Type::kString, Type::kInt64, Type::kInt64};
  const std::vector<std::string> records = LetRecords();
  std::unique_ptr<ColumnarJsonDecoder> decoder;
  ColumnBatch batch = DecodeLet(records, {}, &decoder);
  std::vector<Value> row(schema.size());
  for (const char* text : {"a", "coalesce(a, 0)", "coalesce(a, b)", "coalesce(a, b, 5)",
                           "coalesce(a, -3, b)", "timeuuid_time(u)", "parse_time(ts)",
                           "coalesce(timeuuid_time(u), parse_time(ts))",
                           "coalesce(parse_time(ts), timeuuid_time(u))",
                           "coalesce(timeuuid_time(u), parse_time(ts), '2020-01-01'::timestamp)",
                           "coalesce(timeuuid_time(u), timestamp '2020-01-01')",
                           "parse_time(ts, 'iso')", "parse_time(ts, 'us')", "parse_time(ts, 'auto')",
                           "coalesce(parse_time(ts, 'us'), parse_time(ts, 'iso'))",
                           "seconds_between(parse_time(ts, 'iso'), timeuuid_time(u))",
                           "seconds_between(timeuuid_time(u), parse_time(ts))",
                           "seconds_between(parse_time(ts, 'iso'), parse_time(ts, 'auto'))"}) {
    auto compiled = expr::Compile(text, schema);
    if (!compiled.ok()) {
      // A spelling of a constant timestamp this expression language does not have.
      EXPECT_TRUE(std::string(text).find("2020") != std::string::npos)
          << text << ": " << compiled.status().ToString();
      continue;
    }
    auto value = ColumnValue::Make(**compiled, columns);
    ASSERT_NE(value, nullptr) << text << " should be computed over columns";
    size_t nulls = 0, values = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      if (batch.failed(i)) continue;
      batch.LoadRow(i, row);
      Value scratch;
      const Value& expected = (*compiled)->EvalRef(row, scratch);
      EXPECT_EQ(value->type(), (*compiled)->type()) << text;
      if (value->type() == Type::kDouble) {  // seconds_between()
        double seconds = 0;
        const bool valid = value->EvalDouble(batch, i, &seconds);
        ASSERT_EQ(valid, !expected.is_null()) << text << " on " << records[i];
        if (!valid) {
          ++nulls;
          continue;
        }
        ++values;
        EXPECT_EQ(expected.type(), Type::kDouble);
        EXPECT_EQ(seconds, expected.double_value()) << text << " on " << records[i];
        continue;
      }
      int64_t got = 0;
      const bool valid = value->Eval(batch, i, &got);
      ASSERT_EQ(valid, !expected.is_null()) << text << " on " << records[i];
      if (!valid) {
        ++nulls;
        continue;
      }
      ++values;
      const int64_t want = expected.type() == Type::kTimestamp ? expected.time_value().micros
                                                               : expected.int_value();
      EXPECT_EQ(got, want) << text << " on " << records[i];
      EXPECT_EQ(value->type(), expected.type()) << text;
    }
    EXPECT_GT(values, 0u) << text;
    if (std::string(text) != "coalesce(a, 0)" && std::string(text) != "coalesce(a, b, 5)" &&
        std::string(text) != "coalesce(a, -3, b)" && std::string(text).find("2020") == std::string::npos) {
      EXPECT_GT(nulls, 0u) << text << " is never null: the test would not see a wrong null";
    }
  }
}

TEST(ColumnValueTest, OtherNodesStayOnTheRowPath) {
  const Schema schema = LetSchema();
  const std::vector<Type> columns = {Type::kString, Type::kString, Type::kInt64, Type::kInt64};
  for (const char* text : {"a + 1", "coalesce(a, 0.5)", "u", "length(u)", "parse_time(lower(ts), 'iso')",
                           "epoch_seconds(parse_time(ts))", "seconds_between(parse_time(ts), parse_time(trim(ts)))",
                           "coalesce(seconds_between(parse_time(ts), parse_time(ts)), 0.0)",
                           "timeuuid_time(lower(u))", "if(a is null, 0, a)", "coalesce(u, 'x')",
                           "coalesce(a, b) * 2"}) {
    auto compiled = expr::Compile(text, schema);
    ASSERT_TRUE(compiled.ok()) << text << ": " << compiled.status().ToString();
    EXPECT_EQ(ColumnValue::Make(**compiled, columns), nullptr) << text;
  }
  // A slot without a column (b here) is not read.
  auto compiled = expr::Compile("coalesce(a, b)", schema);
  ASSERT_TRUE(compiled.ok());
  const std::vector<Type> without_b = {Type::kString, Type::kString, Type::kInt64, Type::kNull};
  EXPECT_EQ(ColumnValue::Make(**compiled, without_b), nullptr);
}

// The recruitment kind of prefix: a derived timestamp column, a condition that dead-letters on
// it, and a `let` over a declared field, in order; checked against the same steps on rows.
TEST(ColumnValueTest, LetsAndDeadLettersRunInOrder) {
  Schema schema = LetSchema();
  const size_t t_slot = schema.Add({"t", Type::kTimestamp, ""});
  const std::vector<std::string> records = LetRecords();
  std::unique_ptr<ColumnarJsonDecoder> decoder;
  ColumnBatch batch = DecodeLet(records, {{t_slot, Type::kTimestamp}}, &decoder);
  std::vector<Type> columns = {Type::kString, Type::kString, Type::kInt64, Type::kInt64,
                               Type::kTimestamp};
  auto t = expr::Compile("coalesce(timeuuid_time(u), parse_time(ts))", schema);
  auto no_time = expr::CompilePredicate("t is null", schema);
  auto a = expr::Compile("coalesce(a, 0)", schema);
  ASSERT_TRUE(t.ok() && no_time.ok() && a.ok());
  std::vector<ColumnStep> steps;
  steps.push_back(ColumnStep{0, ColumnStep::Kind::kLet, nullptr, ColumnValue::Make(**t, columns), t_slot, "", {}});
  steps.push_back(ColumnStep{1, ColumnStep::Kind::kDeadLetterIf, ColumnCondition::Make(**no_time, columns),
                             nullptr, 0, "no time", {}});
  steps.push_back(ColumnStep{2, ColumnStep::Kind::kLet, nullptr, ColumnValue::Make(**a, columns), 2, "", {}});
  for (const ColumnStep& s : steps) ASSERT_TRUE(s.condition || s.value) << s.step;
  ApplyColumnSteps(steps, &batch);

  std::vector<Value> expected_row(schema.size()), got_row(schema.size());
  std::vector<uint32_t> expected_selection;
  size_t dead = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (batch.failed(i)) continue;
    // The row path: the decoded row, then the three steps.
    std::unique_ptr<ColumnarJsonDecoder> fresh_decoder;  // `decoder` holds `batch`'s strings
    ColumnBatch fresh = DecodeLet({records[i]}, {}, &fresh_decoder);
    for (size_t c = 0; c < 4; ++c) fresh.column(c).Load(0, &expected_row[c]);
    Value scratch;
    expected_row[t_slot] = (*t)->EvalRef(expected_row, scratch);
    if ((*no_time)->EvalTrue(expected_row)) {
      EXPECT_EQ(batch.dropped_at(i), 1) << records[i];
      ++dead;
      continue;
    }
    expected_row[2] = (*a)->EvalRef(expected_row, scratch);
    expected_selection.push_back(static_cast<uint32_t>(i));
    EXPECT_EQ(batch.dropped_at(i), -1) << records[i];
    batch.LoadRow(i, got_row);
    for (size_t c = 0; c < schema.size(); ++c) {
      EXPECT_EQ(got_row[c], expected_row[c]) << records[i] << " field " << schema.field(c).name;
    }
  }
  EXPECT_EQ(batch.selection(), expected_selection);
  EXPECT_GT(dead, 0u);
  EXPECT_GT(expected_selection.size(), 2u);
}

}  // namespace
}  // namespace sluice
