#include "operators/aggregate_function.h"

#include <array>
#include <cctype>

namespace sluice {
namespace {

using Fn = AggregateFunction;

std::string In(const SqlSpelling& sql, const std::string& quoted) { return SqlIncoming(sql, quoted); }

Type Int64Result(Type) { return Type::kInt64; }
Type DoubleResult(Type) { return Type::kDouble; }
Type ArgResult(Type arg) { return arg; }

/// The inputs inserted as they are, one per stored column.
Result<std::vector<std::string>> InsertInputs(const MetricSpec&, const SqlSpelling&,
                                              const std::vector<SqlInput>& inputs) {
  std::vector<std::string> out;
  out.reserve(inputs.size());
  for (const auto& i : inputs) out.push_back(i.text);
  return out;
}

/// `c = c + incoming`: counts and sums.
Result<std::vector<std::string>> AddSql(const MetricSpec& m, const SqlSpelling& sql) {
  const std::string c = sql.quote(m.name);
  return std::vector<std::string>{c + " = " + c + " + " + In(sql, c)};
}

std::string Hidden(const MetricSpec& m, std::string_view suffix) {
  return "_" + m.name + "_" + std::string(suffix);
}

// count() / count(x) -------------------------------------------------------------------------

void CountUpdate(const MetricSpec& m, MetricState& s, const Value& arg, int64_t) {
  UpdateCountSum(false, m.arg != nullptr, s, arg);
}
void CountSumMerge(const MetricSpec&, MetricState& into, const MetricState& from) {
  MergeCountSum(into, from);
}
Value CountFinal(const MetricSpec&, const MetricState& s) { return Value::Int(s.count); }
std::vector<StoredColumn> CountColumns(const MetricSpec& m) {
  return {{m.name, Type::kInt64, true, false}};
}
void CountValues(const MetricSpec&, const MetricState& s, std::vector<Value>* out) {
  out->push_back(Value::Int(s.count));
}
std::string CountKept(const MetricSpec& m, const std::string& arg) {
  return "count of records" + std::string(m.arg ? " with " + arg + " not null" : "");
}

// sum(x) -------------------------------------------------------------------------------------

void SumUpdate(const MetricSpec&, MetricState& s, const Value& arg, int64_t) {
  UpdateCountSum(true, true, s, arg);
}
Value SumFinal(const MetricSpec& m, const MetricState& s) {
  return m.integer_sum() ? Value::Int(s.isum) : Value::Double(s.dsum);
}
std::vector<StoredColumn> SumColumns(const MetricSpec& m) {
  return {{m.name, m.result_type, true, false}};
}
void SumValues(const MetricSpec& m, const MetricState& s, std::vector<Value>* out) {
  out->push_back(SumFinal(m, s));
}
std::string SumKept(const MetricSpec&, const std::string& arg) { return "sum of " + arg; }

// avg(x) -------------------------------------------------------------------------------------

Value AvgFinal(const MetricSpec& m, const MetricState& s) {
  if (s.count == 0) return m.default_value.value_or(Value::Null());
  double sum = m.integer_sum() ? static_cast<double>(s.isum) : s.dsum;
  double avg = sum / static_cast<double>(s.count);
  if (m.round_digits >= 0) avg = RoundHalfAway(avg, m.round_digits);
  return Value::Double(avg);
}
std::vector<StoredColumn> AvgColumns(const MetricSpec& m) {
  return {{m.name, Type::kDouble, false, false},
          {Hidden(m, "sum"), m.integer_sum() ? Type::kInt64 : Type::kDouble, true, true},
          {Hidden(m, "count"), Type::kInt64, true, true}};
}
void AvgValues(const MetricSpec& m, const MetricState& s, std::vector<Value>* out) {
  out->push_back(m.integer_sum() ? Value::Int(s.isum) : Value::Double(s.dsum));
  out->push_back(Value::Int(s.count));
}
Status AvgDefault(const MetricSpec& m, const SqlSpelling& sql, std::string* out) {
  if (!m.default_value) {
    *out += "NULL";
    return Status::OK();
  }
  return sql.literal(*m.default_value, out);
}
/// The average of SQL `sum` and `count`: the default when count is 0.
Result<std::string> AvgCase(const MetricSpec& m, const SqlSpelling& sql, const std::string& sum,
                            const std::string& count) {
  std::string def;
  RETURN_IF_ERROR(AvgDefault(m, sql, &def));
  return "CASE WHEN " + count + " > 0 THEN " + SqlAverage(m, sql, sum, count) + " ELSE " + def +
         " END";
}
Result<std::vector<std::string>> AvgInsert(const MetricSpec& m, const SqlSpelling& sql,
                                           const std::vector<SqlInput>& in) {
  std::string visible;
  if (in[1].known != nullptr) {
    // A literal count: the statement holds the average (or the default) alone.
    if (in[1].known->int_value() > 0) {
      visible = SqlAverage(m, sql, in[0].text, in[1].text);
    } else {
      RETURN_IF_ERROR(AvgDefault(m, sql, &visible));
    }
  } else {
    ASSIGN_OR_RETURN(visible, AvgCase(m, sql, in[0].text, in[1].text));
  }
  return std::vector<std::string>{visible, in[0].text, in[1].text};
}
Result<std::vector<std::string>> AvgMerge(const MetricSpec& m, const SqlSpelling& sql) {
  const std::string c = sql.quote(m.name);
  const std::string hs = sql.quote(Hidden(m, "sum")), hc = sql.quote(Hidden(m, "count"));
  std::vector<std::string> out = {hs + " = " + hs + " + " + In(sql, hs),
                                  hc + " = " + hc + " + " + In(sql, hc)};
  std::string avg;
  if (sql.dialect == SqlDialect::kMysql) {
    // MySQL assigns left to right: the average reads the new sum and count.
    ASSIGN_OR_RETURN(avg, AvgCase(m, sql, hs, hc));
  } else {
    // SQLite evaluates every assignment against the old row.
    ASSIGN_OR_RETURN(avg, AvgCase(m, sql, hs + " + " + In(sql, hs), hc + " + " + In(sql, hc)));
  }
  out.push_back(c + " = " + avg);
  return out;
}
std::string AvgKept(const MetricSpec&, const std::string& arg) {
  return "sum of " + arg + " and its count (the average is their quotient)";
}

// min(x) / max(x) ----------------------------------------------------------------------------

template <bool kMin>
void ExtremeUpdate(const MetricSpec&, MetricState& s, const Value& arg, int64_t) {
  if (arg.is_null()) return;
  ++s.count;
  if (s.value.is_null() || (kMin ? arg < s.value : s.value < arg)) s.value = arg;
}
template <bool kMin>
void ExtremeMerge(const MetricSpec&, MetricState& into, const MetricState& from) {
  if (from.count == 0) return;
  into.count += from.count;
  if (into.value.is_null() || (kMin ? from.value < into.value : into.value < from.value)) {
    into.value = from.value;
  }
}
Value ValueFinal(const MetricSpec&, const MetricState& s) { return s.value; }
std::vector<StoredColumn> ValueColumns(const MetricSpec& m) {
  return {{m.name, m.result_type, false, false}};
}
void ValueValues(const MetricSpec&, const MetricState& s, std::vector<Value>* out) {
  out->push_back(s.value);
}
template <bool kMin>
Result<std::vector<std::string>> ExtremeMergeSql(const MetricSpec& m, const SqlSpelling& sql) {
  const std::string c = sql.quote(m.name), v = In(sql, c);
  const char* op = kMin ? " < " : " > ";
  return std::vector<std::string>{c + " = CASE WHEN " + v + " IS NOT NULL AND (" + c +
                                  " IS NULL OR " + v + op + c + ") THEN " + v + " ELSE " + c +
                                  " END"};
}
std::string MinKept(const MetricSpec&, const std::string& arg) { return "smallest " + arg; }
std::string MaxKept(const MetricSpec&, const std::string& arg) { return "largest " + arg; }

// last(x) ------------------------------------------------------------------------------------

// The latest event wins; equal times pick the larger value, a null being the smallest (Value's
// order), so the result depends neither on arrival order nor on checkpoint boundaries. Records
// with a null x count: the value kept may be null.
void LastUpdate(const MetricSpec&, MetricState& s, const Value& arg, int64_t event_time) {
  ++s.count;
  if (event_time > s.at || (event_time == s.at && s.value < arg)) {
    s.at = event_time;
    s.value = arg;
  }
}
void LastMerge(const MetricSpec&, MetricState& into, const MetricState& from) {
  if (from.count == 0) return;
  into.count += from.count;
  if (from.at > into.at || (from.at == into.at && into.value < from.value)) {
    into.at = from.at;
    into.value = from.value;
  }
}
std::vector<StoredColumn> LastColumns(const MetricSpec& m) {
  return {{m.name, m.result_type, false, false}, {Hidden(m, "at"), Type::kInt64, false, true}};
}
void LastValues(const MetricSpec&, const MetricState& s, std::vector<Value>* out) {
  out->push_back(s.value);
  out->push_back(s.count > 0 ? Value::Int(s.at) : Value::Null());
}
Result<std::vector<std::string>> LastMergeSql(const MetricSpec& m, const SqlSpelling& sql) {
  const std::string c = sql.quote(m.name), v = In(sql, c);
  const std::string at = sql.quote(Hidden(m, "at")), vat = In(sql, at);
  // Newer time wins; on equal times the larger value, a null being the smallest (as LastMerge
  // orders values): SQL's `v > NULL` is not true, hence the explicit null tests. The value goes
  // first, while `at` is still the old time (MySQL assigns left to right).
  const std::string later = vat + " IS NOT NULL AND (" + at + " IS NULL OR " + vat + " > " + at;
  return std::vector<std::string>{
      c + " = CASE WHEN " + later + " OR (" + vat + " = " + at + " AND " + v + " IS NOT NULL AND (" +
          c + " IS NULL OR " + v + " > " + c + "))) THEN " + v + " ELSE " + c + " END",
      at + " = CASE WHEN " + later + ") THEN " + vat + " ELSE " + at + " END"};
}
std::string LastKept(const MetricSpec&, const std::string& arg) {
  return "value of " + arg + " with the latest event time, and that time";
}

// The catalog, in AggFn order. --------------------------------------------------------------

constexpr std::array<Fn, 6> kFunctions = {{
    {.name = "count", .id = AggFn::kCount, .arg = Fn::Arg::kOptional, .state = Fn::State::kCount,
     .result_type = Int64Result, .update = CountUpdate, .merge = CountSumMerge,
     .finalize = CountFinal, .stored_columns = CountColumns, .inputs = 1,
     .stored_values = CountValues, .insert_sql = InsertInputs, .merge_sql = AddSql,
     .kept_state = CountKept, .charted = true},
    {.name = "sum", .id = AggFn::kSum, .arg = Fn::Arg::kNumeric, .state = Fn::State::kCountSum,
     .result_type = ArgResult, .update = SumUpdate, .merge = CountSumMerge, .finalize = SumFinal,
     .stored_columns = SumColumns, .inputs = 1, .stored_values = SumValues,
     .insert_sql = InsertInputs, .merge_sql = AddSql, .kept_state = SumKept, .charted = true},
    {.name = "avg", .id = AggFn::kAvg, .arg = Fn::Arg::kNumeric, .state = Fn::State::kCountSum,
     .allows_round = true, .allows_default = true, .result_type = DoubleResult,
     .update = SumUpdate, .merge = CountSumMerge, .finalize = AvgFinal,
     .stored_columns = AvgColumns, .inputs = 2, .stored_values = AvgValues,
     .insert_sql = AvgInsert, .merge_sql = AvgMerge, .kept_state = AvgKept, .charted = true},
    {.name = "min", .id = AggFn::kMin, .arg = Fn::Arg::kAny, .state = Fn::State::kValue,
     .result_type = ArgResult, .update = ExtremeUpdate<true>, .merge = ExtremeMerge<true>,
     .finalize = ValueFinal, .stored_columns = ValueColumns, .inputs = 1,
     .stored_values = ValueValues, .insert_sql = InsertInputs, .merge_sql = ExtremeMergeSql<true>,
     .kept_state = MinKept, .charted = true},
    {.name = "max", .id = AggFn::kMax, .arg = Fn::Arg::kAny, .state = Fn::State::kValue,
     .result_type = ArgResult, .update = ExtremeUpdate<false>, .merge = ExtremeMerge<false>,
     .finalize = ValueFinal, .stored_columns = ValueColumns, .inputs = 1,
     .stored_values = ValueValues, .insert_sql = InsertInputs, .merge_sql = ExtremeMergeSql<false>,
     .kept_state = MaxKept, .charted = true},
    {.name = "last", .id = AggFn::kLast, .arg = Fn::Arg::kAny, .state = Fn::State::kValueAt,
     .result_type = ArgResult, .update = LastUpdate, .merge = LastMerge, .finalize = ValueFinal,
     .stored_columns = LastColumns, .inputs = 2, .stored_values = LastValues,
     .insert_sql = InsertInputs, .merge_sql = LastMergeSql, .kept_state = LastKept,
     // A last() value is a reading, not a quantity: summing it over windows means nothing.
     .charted = false},
}};

// AggregateFunctionOf() indexes the catalog by AggFn.
static_assert([] {
  for (size_t i = 0; i < kFunctions.size(); ++i) {
    if (static_cast<size_t>(kFunctions[i].id) != i) return false;
  }
  return true;
}());

}  // namespace

const AggregateFunction* FindAggregateFunction(std::string_view name) {
  for (const Fn& f : kFunctions) {
    if (f.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(name[i])) == f.name[i];
    }
    if (same) return &f;
  }
  return nullptr;
}

std::span<const AggregateFunction> AllAggregateFunctions() { return kFunctions; }

const AggregateFunction& AggregateFunctionOf(AggFn fn) {
  return kFunctions[static_cast<size_t>(fn)];
}

std::string AggregateFunctionList(std::string_view suffix) {
  std::string out;
  for (size_t i = 0; i < kFunctions.size(); ++i) {
    if (i > 0) out += i + 1 == kFunctions.size() ? " or " : ", ";
    out += std::string(kFunctions[i].name) + std::string(suffix);
  }
  return out;
}

Status CheckAggregateFunction(const AggregateFunction& f) {
  const std::string who = "aggregate function '" + std::string(f.name) + "'";
  if (f.name.empty()) return Status::InvalidArgument("an aggregate function has no name");
  for (char c : f.name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return Status::InvalidArgument(who + ": the name must be lower case");
    }
  }
  auto missing = [&](const char* field) {
    return Status::InvalidArgument(who + " has no " + field);
  };
  if (f.result_type == nullptr) return missing("result_type");
  if (f.update == nullptr) return missing("update");
  if (f.merge == nullptr) return missing("merge");
  if (f.finalize == nullptr) return missing("finalize");
  if (f.stored_columns == nullptr) return missing("stored_columns");
  if (f.inputs == 0) return missing("inputs");
  if (f.stored_values == nullptr) return missing("stored_values");
  if (f.insert_sql == nullptr) return missing("insert_sql");
  if (f.merge_sql == nullptr) return missing("merge_sql");
  if (f.kept_state == nullptr) return missing("kept_state");
  return Status::OK();
}

std::string SqlIncoming(const SqlSpelling& sql, const std::string& quoted) {
  return sql.dialect == SqlDialect::kMysql ? "VALUES(" + quoted + ")" : "excluded." + quoted;
}

std::string SqlAverage(const MetricSpec& m, const SqlSpelling& sql, const std::string& sum,
                       const std::string& count) {
  if (sql.dialect == SqlDialect::kMysql) {
    // An exact quotient: DECIMAL(65,20)'s 45 integer digits hold any BIGINT or double sum
    // sluice writes, and 20 decimals (24 after the division) keep sum/count far enough from a
    // rounding boundary that ROUND(..., n) rounds the true quotient, half away from zero, like
    // the engine's final value.
    if (m.round_digits >= 0) {
      return "ROUND(CAST(" + sum + " AS DECIMAL(65,20)) / " + count + ", " +
             std::to_string(m.round_digits) + ")";
    }
    return "CAST(" + sum + " AS DOUBLE) / " + count;
  }
  std::string q = "CAST(" + sum + " AS REAL) / (" + count + ")";
  if (m.round_digits >= 0) q = "ROUND(" + q + ", " + std::to_string(m.round_digits) + ")";
  return q;
}

}  // namespace sluice
