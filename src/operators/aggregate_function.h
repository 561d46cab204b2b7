#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/aggregate_spec.h"

namespace sluice {

/// The SQL dialects of the update-mode sinks that merge a delta into a stored row.
enum class SqlDialect { kSqlite, kMysql };

/// How a sink spells SQL for the catalog's merge statements: its dialect, its identifier
/// quoting and its literals. The sinks fill one each; the catalog writes the statements.
struct SqlSpelling {
  SqlDialect dialect = SqlDialect::kSqlite;
  std::string (*quote)(const std::string& identifier) = nullptr;
  /// Appends `v` as an SQL literal (used for defaults).
  Status (*literal)(const Value& v, std::string* out) = nullptr;
};

/// One value a delta sends to an SQL sink, as the statement spells it: a parameter (`?3`) of a
/// prepared statement, or a literal, whose value is then known while the statement is written.
struct SqlInput {
  std::string text;
  const Value* known = nullptr;  ///< set for a literal
};

/// A column an update-mode SQL sink keeps for a metric: the visible one (named as the metric)
/// first, then hidden ones (`_NAME_sum`, ...) that make the merge exact.
struct StoredColumn {
  std::string name;
  Type type = Type::kNull;           ///< mapped to SQL by the sink (INTEGER/BIGINT, REAL/DOUBLE, ...)
  bool not_null_default_zero = false;  ///< declared NOT NULL DEFAULT 0
  bool hidden = false;
};

/// Everything about one aggregate function: its name and typing, how a record updates its state
/// (MetricState), how two states merge, its final value, what an update-mode SQL sink stores
/// and how it merges a delta into a stored row (per dialect), what explain says it keeps, and
/// whether the dashboard charts it. Adding an aggregate is adding one of these (and its tests);
/// nothing else switches on the function.
struct AggregateFunction {
  /// What the function accepts between its parentheses.
  enum class Arg {
    kOptional,  ///< `fn()`, `fn(*)` or `fn(x)` of any type (count)
    kAny,       ///< `fn(x)`, x of any type
    kNumeric,   ///< `fn(x)`, x an integer or a double
  };
  /// Which parts of MetricState the function uses. kCount and kCountSum need no Value: the
  /// aggregator keeps them as three numbers (see UpdateCountSum).
  enum class State { kCount, kCountSum, kValue, kValueAt };

  std::string_view name;  ///< lower case, as written in a metric: "last"
  AggFn id = AggFn::kCount;
  Arg arg = Arg::kAny;
  State state = State::kValue;
  bool allows_round = false;    ///< `round(fn(x), n)`
  bool allows_default = false;  ///< `fn(x) default 0`: the value when no record matched
  /// The result type given the argument's (kNull: no argument).
  Type (*result_type)(Type arg) = nullptr;
  /// Folds one matching record's argument (Null when there is none) into the state.
  void (*update)(const MetricSpec& m, MetricState& s, const Value& arg, int64_t event_time) = nullptr;
  /// Folds `from` into `into`; the order of merges does not change the result.
  void (*merge)(const MetricSpec& m, MetricState& into, const MetricState& from) = nullptr;
  /// The final value of a state.
  Value (*finalize)(const MetricSpec& m, const MetricState& s) = nullptr;
  /// The columns an update-mode SQL sink keeps: the visible one first, then hidden ones.
  std::vector<StoredColumn> (*stored_columns)(const MetricSpec& m) = nullptr;
  /// How many values a delta of this function sends to an SQL sink (stored_values' size).
  size_t inputs = 0;
  /// Appends the `inputs` values a delta sends to an SQL sink.
  void (*stored_values)(const MetricSpec& m, const MetricState& s, std::vector<Value>* out) = nullptr;
  /// The value inserted into each stored column (stored_columns' order), from the `inputs`.
  Result<std::vector<std::string>> (*insert_sql)(const MetricSpec& m, const SqlSpelling& sql,
                                                 const std::vector<SqlInput>& inputs) = nullptr;
  /// The assignments (`c = ...`) that merge an incoming row into the stored one, in `sql`'s
  /// dialect: SQLite evaluates every assignment against the old row, MySQL left to right.
  Result<std::vector<std::string>> (*merge_sql)(const MetricSpec& m, const SqlSpelling& sql) = nullptr;
  /// What a group keeps between checkpoints, for explain ("sum of x and its count ...").
  std::string (*kept_state)(const MetricSpec& m, const std::string& arg) = nullptr;
  /// The dashboard charts the metric (numeric results only, and not last()).
  bool charted = false;
};

/// Returns the function named `name` (any case), or nullptr when there is none.
const AggregateFunction* FindAggregateFunction(std::string_view name);
/// Returns every aggregate function, in the order the README lists them.
std::span<const AggregateFunction> AllAggregateFunctions();
/// Returns the descriptor of `fn`.
const AggregateFunction& AggregateFunctionOf(AggFn fn);
/// Returns the descriptor of the metric's function.
inline const AggregateFunction& FunctionOf(const MetricSpec& m) { return AggregateFunctionOf(m.fn); }
/// Returns "count, sum, avg, min, max or last" (with `suffix` after each name, e.g. "()").
std::string AggregateFunctionList(std::string_view suffix = "");
/// Returns an error naming the first field `f` leaves unset (tests check every entry).
Status CheckAggregateFunction(const AggregateFunction& f);

/// The spelling of stored column `quoted`'s incoming value in an upsert: `excluded.c` in
/// SQLite, `VALUES(c)` in MySQL.
std::string SqlIncoming(const SqlSpelling& sql, const std::string& quoted);
/// The SQL expression of m's average from SQL expressions of a sum and a count (> 0), rounded
/// as m says: SQLite divides as REAL, MySQL rounds an exact DECIMAL(65,20) quotient.
std::string SqlAverage(const MetricSpec& m, const SqlSpelling& sql, const std::string& sum,
                       const std::string& count);

/// The count/sum rule, shared by the count, sum and avg descriptors and the aggregator's
/// compact state (any struct with count, isum and dsum): a record with a null argument is
/// skipped when the metric has an argument; `sums` adds the argument too.
template <class CountSum>
inline void UpdateCountSum(bool sums, bool has_arg, CountSum& s, const Value& arg) {
  if (has_arg && arg.is_null()) return;
  ++s.count;
  if (!sums) return;
  if (arg.type() == Type::kInt64) {
    s.isum += arg.int_value();
  } else {
    s.dsum += arg.AsDouble();
  }
}

/// Merges two count/sum states.
template <class Into, class From>
inline void MergeCountSum(Into& into, const From& from) {
  into.count += from.count;
  into.isum += from.isum;
  into.dsum += from.dsum;
}

}  // namespace sluice
