// The aggregate catalog: every entry is complete (a test-only first() shows that a missing field
// fails), every entry's merge agrees with its update however the records are split, and each
// function's values are worked out by hand.

#include "operators/aggregate_function.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "expr/expr.h"

namespace sluice {
namespace {

const Value N;
Value I(int64_t v) { return Value::Int(v); }
Value D(double v) { return Value::Double(v); }

/// A metric of `f` over an int64 field `x` (or no argument for count()).
MetricSpec Metric(const AggregateFunction& f, bool with_arg = true) {
  MetricSpec m;
  m.name = "m";
  m.fn = f.id;
  if (with_arg) {
    Schema schema({{"x", Type::kInt64, ""}});
    auto e = expr::Compile("x", schema, {});
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    m.arg = std::move(e).value();
    m.arg_type = Type::kInt64;
  }
  m.result_type = f.result_type(m.arg_type);
  return m;
}

struct Record {
  Value x;
  int64_t at;
};

MetricState Fold(const AggregateFunction& f, const MetricSpec& m, const std::vector<Record>& rs) {
  MetricState s;
  for (const Record& r : rs) f.update(m, s, r.x, r.at);
  return s;
}

Value FinalOf(const AggregateFunction& f, const MetricSpec& m, const std::vector<Record>& rs) {
  return f.finalize(m, Fold(f, m, rs));
}

std::string Show(const Value& v) { return v.is_null() ? "NULL" : v.ToString(); }

SqlSpelling Spelling(SqlDialect d) {
  SqlSpelling s;
  s.dialect = d;
  s.quote = [](const std::string& n) { return "\"" + n + "\""; };
  s.literal = [](const Value& v, std::string* out) {
    *out += v.is_null() ? "NULL" : v.ToString();
    return Status::OK();
  };
  return s;
}

/// What every entry must satisfy, whatever the function: split states merge to the state of
/// all records (in any order), and the SQL layout has one visible column, its name, followed
/// by hidden ones, with as many inserted values as columns.
void CheckLaws(const AggregateFunction& f) {
  SCOPED_TRACE(std::string(f.name));
  ASSERT_TRUE(CheckAggregateFunction(f).ok()) << CheckAggregateFunction(f).ToString();
  const MetricSpec m = Metric(f);
  // Ties on time, nulls, negative numbers: the cases where an order could leak through.
  const std::vector<Record> rs = {{I(3), 10}, {N, 20}, {I(8), 20}, {I(-1), 5},
                                  {I(8), 20}, {I(2), 20}, {N, 30}, {I(4), 30}};
  const Value whole = FinalOf(f, m, rs);
  for (size_t cut = 0; cut <= rs.size(); ++cut) {
    for (bool reversed : {false, true}) {
      MetricState a = Fold(f, m, {rs.begin(), rs.begin() + static_cast<std::ptrdiff_t>(cut)});
      MetricState b = Fold(f, m, {rs.begin() + static_cast<std::ptrdiff_t>(cut), rs.end()});
      if (reversed) std::swap(a, b);
      f.merge(m, a, b);
      EXPECT_EQ(Show(f.finalize(m, a)), Show(whole)) << "cut " << cut << " reversed " << reversed;
    }
  }
  // One state per record, merged last to first.
  MetricState merged;
  for (size_t i = rs.size(); i-- > 0;) f.merge(m, merged, Fold(f, m, {rs[i]}));
  EXPECT_EQ(Show(f.finalize(m, merged)), Show(whole));

  const std::vector<StoredColumn> columns = f.stored_columns(m);
  ASSERT_FALSE(columns.empty());
  EXPECT_EQ(columns[0].name, "m");
  EXPECT_FALSE(columns[0].hidden);
  for (size_t i = 1; i < columns.size(); ++i) {
    EXPECT_TRUE(columns[i].hidden);
    EXPECT_EQ(columns[i].name.rfind("_m_", 0), 0u) << columns[i].name;
  }
  std::vector<Value> values;
  f.stored_values(m, Fold(f, m, rs), &values);
  EXPECT_EQ(values.size(), f.inputs);
  for (SqlDialect d : {SqlDialect::kSqlite, SqlDialect::kMysql}) {
    std::vector<SqlInput> inputs(f.inputs);
    for (size_t i = 0; i < inputs.size(); ++i) inputs[i].text = "?" + std::to_string(i + 1);
    auto inserted = f.insert_sql(m, Spelling(d), inputs);
    ASSERT_TRUE(inserted.ok());
    EXPECT_EQ(inserted->size(), columns.size());
    auto merge = f.merge_sql(m, Spelling(d));
    ASSERT_TRUE(merge.ok());
    EXPECT_FALSE(merge->empty());
  }
  EXPECT_FALSE(f.kept_state(m, "x").empty());
}

TEST(AggregateFunctionTest, EveryEntryIsCompleteAndFound) {
  ASSERT_EQ(AllAggregateFunctions().size(), 6u);
  for (const AggregateFunction& f : AllAggregateFunctions()) {
    EXPECT_TRUE(CheckAggregateFunction(f).ok()) << CheckAggregateFunction(f).ToString();
    EXPECT_EQ(FindAggregateFunction(f.name), &f);
    EXPECT_EQ(&AggregateFunctionOf(f.id), &f);
    EXPECT_EQ(AggFnName(f.id), f.name);
  }
  EXPECT_EQ(FindAggregateFunction("LaSt"), &AggregateFunctionOf(AggFn::kLast));
  EXPECT_EQ(FindAggregateFunction("median"), nullptr);
  EXPECT_EQ(FindAggregateFunction(""), nullptr);
  EXPECT_EQ(AggregateFunctionList(), "count, sum, avg, min, max or last");
  EXPECT_EQ(AggregateFunctionList("()"), "count(), sum(), avg(), min(), max() or last()");
}

TEST(AggregateFunctionTest, EveryEntryMergesAsItUpdates) {
  for (const AggregateFunction& f : AllAggregateFunctions()) CheckLaws(f);
}

// A function added for this test only: first(x), the value with the earliest event time (the
// smaller value on a tie, null first). Adding it takes this one entry; the laws above then hold.
void FirstUpdate(const MetricSpec&, MetricState& s, const Value& x, int64_t t) {
  ++s.count;
  if (s.count == 1 || t < s.at || (t == s.at && x < s.value)) {
    s.at = t;
    s.value = x;
  }
}
void FirstMerge(const MetricSpec&, MetricState& into, const MetricState& from) {
  if (from.count == 0) return;
  if (into.count == 0 || from.at < into.at || (from.at == into.at && from.value < into.value)) {
    into.at = from.at;
    into.value = from.value;
  }
  into.count += from.count;
}
Value FirstFinal(const MetricSpec&, const MetricState& s) { return s.value; }
std::vector<StoredColumn> FirstColumns(const MetricSpec& m) {
  return {{m.name, m.result_type, false, false}, {"_" + m.name + "_at", Type::kInt64, false, true}};
}
void FirstValues(const MetricSpec&, const MetricState& s, std::vector<Value>* out) {
  out->push_back(s.value);
  out->push_back(s.count > 0 ? Value::Int(s.at) : Value::Null());
}
Result<std::vector<std::string>> FirstInsert(const MetricSpec&, const SqlSpelling&,
                                             const std::vector<SqlInput>& in) {
  return std::vector<std::string>{in[0].text, in[1].text};
}
Result<std::vector<std::string>> FirstMergeSql(const MetricSpec& m, const SqlSpelling& sql) {
  const std::string c = sql.quote(m.name), at = sql.quote("_" + m.name + "_at");
  const std::string vat = SqlIncoming(sql, at), v = SqlIncoming(sql, c);
  const std::string earlier = vat + " IS NOT NULL AND (" + at + " IS NULL OR " + vat + " < " + at;
  return std::vector<std::string>{
      c + " = CASE WHEN " + earlier + " OR (" + vat + " = " + at + " AND " + c +
          " IS NOT NULL AND (" + v + " IS NULL OR " + v + " < " + c + "))) THEN " + v + " ELSE " +
          c + " END",
      at + " = CASE WHEN " + earlier + ") THEN " + vat + " ELSE " + at + " END"};
}
std::string FirstKept(const MetricSpec&, const std::string& arg) {
  return "value of " + arg + " with the earliest event time, and that time";
}

AggregateFunction First() {
  AggregateFunction f;
  f.name = "first";
  f.id = AggFn::kLast;  // unused by the laws, which call the descriptor itself
  f.arg = AggregateFunction::Arg::kAny;
  f.state = AggregateFunction::State::kValueAt;
  f.result_type = [](Type t) { return t; };
  f.update = FirstUpdate;
  f.merge = FirstMerge;
  f.finalize = FirstFinal;
  f.stored_columns = FirstColumns;
  f.inputs = 2;
  f.stored_values = FirstValues;
  f.insert_sql = FirstInsert;
  f.merge_sql = FirstMergeSql;
  f.kept_state = FirstKept;
  return f;
}

TEST(AggregateFunctionTest, ATestOnlyEntryIsOneDescriptor) {
  const AggregateFunction first = First();
  CheckLaws(first);
  // first(x) of the laws' records: the earliest time is 5, x = -1.
  const MetricSpec m = Metric(first);
  EXPECT_EQ(Show(FinalOf(first, m, {{I(3), 10}, {I(-1), 5}, {N, 5}})), "NULL");
  EXPECT_EQ(Show(FinalOf(first, m, {{I(3), 10}, {I(-1), 5}})), "-1");
}

TEST(AggregateFunctionTest, AnEntryLackingAFieldFailsTheCheck) {
  // Each field left out in turn: the check names it.
  const std::vector<std::pair<std::string, std::function<void(AggregateFunction&)>>> drops = {
      {"result_type", [](AggregateFunction& f) { f.result_type = nullptr; }},
      {"update", [](AggregateFunction& f) { f.update = nullptr; }},
      {"merge", [](AggregateFunction& f) { f.merge = nullptr; }},
      {"finalize", [](AggregateFunction& f) { f.finalize = nullptr; }},
      {"stored_columns", [](AggregateFunction& f) { f.stored_columns = nullptr; }},
      {"inputs", [](AggregateFunction& f) { f.inputs = 0; }},
      {"stored_values", [](AggregateFunction& f) { f.stored_values = nullptr; }},
      {"insert_sql", [](AggregateFunction& f) { f.insert_sql = nullptr; }},
      {"merge_sql", [](AggregateFunction& f) { f.merge_sql = nullptr; }},
      {"kept_state", [](AggregateFunction& f) { f.kept_state = nullptr; }},
  };
  for (const auto& [field, drop] : drops) {
    AggregateFunction f = First();
    drop(f);
    const Status s = CheckAggregateFunction(f);
    EXPECT_FALSE(s.ok()) << field;
    EXPECT_EQ(s.message(), "aggregate function 'first' has no " + field);
  }
  AggregateFunction unnamed = First();
  unnamed.name = "";
  EXPECT_FALSE(CheckAggregateFunction(unnamed).ok());
  AggregateFunction upper = First();
  upper.name = "First";
  EXPECT_FALSE(CheckAggregateFunction(upper).ok());
}

// Values worked out by hand from the records.
TEST(AggregateFunctionTest, ValuesByHand) {
  const auto& count = AggregateFunctionOf(AggFn::kCount);
  const auto& sum = AggregateFunctionOf(AggFn::kSum);
  const auto& avg = AggregateFunctionOf(AggFn::kAvg);
  const auto& min = AggregateFunctionOf(AggFn::kMin);
  const auto& max = AggregateFunctionOf(AggFn::kMax);
  const auto& last = AggregateFunctionOf(AggFn::kLast);
  const std::vector<Record> rs = {{I(3), 10}, {N, 20}, {I(8), 20}, {I(1), 5}};
  EXPECT_EQ(Show(FinalOf(count, Metric(count, false), rs)), "4");  // count(): every record
  EXPECT_EQ(Show(FinalOf(count, Metric(count), rs)), "3");         // count(x): non-null x
  EXPECT_EQ(Show(FinalOf(sum, Metric(sum), rs)), "12");
  EXPECT_EQ(FinalOf(avg, Metric(avg), rs).double_value(), 4.0);    // 12 / 3
  EXPECT_EQ(Show(FinalOf(min, Metric(min), rs)), "1");
  EXPECT_EQ(Show(FinalOf(max, Metric(max), rs)), "8");
  // Time 20 has null and 8: the larger value wins a tie, null being the smallest.
  EXPECT_EQ(Show(FinalOf(last, Metric(last), rs)), "8");
  // A newer null wins over an older value.
  EXPECT_EQ(Show(FinalOf(last, Metric(last), {{I(3), 10}, {N, 11}})), "NULL");

  // last(): on equal time a value replaces a stored null, whichever state is merged into which.
  const MetricSpec lm = Metric(last);
  for (bool null_first : {true, false}) {
    MetricState a = Fold(last, lm, {{N, 7}}), b = Fold(last, lm, {{I(5), 7}});
    if (!null_first) std::swap(a, b);
    last.merge(lm, a, b);
    EXPECT_EQ(Show(last.finalize(lm, a)), "5") << null_first;
    EXPECT_EQ(a.count, 2);
  }

  // avg(): no record gives the default (or null); round() rounds half away from zero.
  MetricSpec am = Metric(avg);
  EXPECT_TRUE(avg.finalize(am, MetricState()).is_null());
  am.default_value = D(0);
  EXPECT_EQ(avg.finalize(am, MetricState()).double_value(), 0.0);
  am.round_digits = 0;
  EXPECT_EQ(FinalOf(avg, am, {{I(1), 0}, {I(2), 0}}).double_value(), 2.0);
  EXPECT_EQ(FinalOf(avg, am, {{I(-1), 0}, {I(-2), 0}}).double_value(), -2.0);
  am.round_digits = 2;
  EXPECT_EQ(FinalOf(avg, am, {{I(1), 0}, {I(1), 0}, {I(2), 0}}).double_value(), 1.33);
  // sum(x) of doubles is a double; of no records 0.
  MetricSpec dm = Metric(sum);
  dm.arg_type = Type::kDouble;
  dm.result_type = sum.result_type(Type::kDouble);
  EXPECT_EQ(dm.result_type, Type::kDouble);
  EXPECT_EQ(FinalOf(sum, dm, {{D(0.5), 0}, {D(0.25), 0}}).double_value(), 0.75);
  EXPECT_EQ(Show(sum.finalize(Metric(sum), MetricState())), "0");

  // Typing.
  EXPECT_EQ(count.result_type(Type::kString), Type::kInt64);
  EXPECT_EQ(avg.result_type(Type::kInt64), Type::kDouble);
  EXPECT_EQ(max.result_type(Type::kTimestamp), Type::kTimestamp);
  EXPECT_EQ(count.arg, AggregateFunction::Arg::kOptional);
  EXPECT_EQ(sum.arg, AggregateFunction::Arg::kNumeric);
  EXPECT_EQ(last.arg, AggregateFunction::Arg::kAny);
  EXPECT_TRUE(avg.allows_round && avg.allows_default);
  EXPECT_FALSE(sum.allows_round || sum.allows_default);
  EXPECT_FALSE(last.charted);
}

TEST(AggregateFunctionTest, LastMergeSqlTakesAValueOverAStoredNullOnATie) {
  const auto& last = AggregateFunctionOf(AggFn::kLast);
  const MetricSpec m = Metric(last);
  auto sqlite = last.merge_sql(m, Spelling(SqlDialect::kSqlite));
  ASSERT_TRUE(sqlite.ok());
  ASSERT_EQ(sqlite->size(), 2u);
  EXPECT_EQ((*sqlite)[0],
            "\"m\" = CASE WHEN excluded.\"_m_at\" IS NOT NULL AND (\"_m_at\" IS NULL OR "
            "excluded.\"_m_at\" > \"_m_at\" OR (excluded.\"_m_at\" = \"_m_at\" AND excluded.\"m\" "
            "IS NOT NULL AND (\"m\" IS NULL OR excluded.\"m\" > \"m\"))) THEN excluded.\"m\" ELSE "
            "\"m\" END");
  auto mysql = last.merge_sql(m, Spelling(SqlDialect::kMysql));
  ASSERT_TRUE(mysql.ok());
  EXPECT_NE((*mysql)[0].find("VALUES(\"m\") IS NOT NULL AND (\"m\" IS NULL OR VALUES(\"m\") > \"m\")"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice
