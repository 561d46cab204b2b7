#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/schema.h"
#include "core/value.h"
#include "expr/expr.h"

namespace sluice {

/// The aggregate functions a metric can use: one per entry of the catalog
/// (operators/aggregate_function.h), in its order, which holds every rule of each.
enum class AggFn { kCount, kSum, kAvg, kMin, kMax, kLast };

/// The function's name in the catalog ("count", ...).
std::string_view AggFnName(AggFn fn);

/// One conditional aggregate: `fn(arg) where cond`, with optional rounding and default.
struct MetricSpec {
  std::string name;
  AggFn fn = AggFn::kCount;
  Type arg_type = Type::kNull;     ///< type of `arg`; kNull for count()
  Type result_type = Type::kInt64;  ///< type of the final value
  std::unique_ptr<expr::Expr> arg;    ///< null for count()
  std::unique_ptr<expr::Expr> where;  ///< null: every record
  int round_digits = -1;              ///< avg only; -1: no rounding
  std::optional<Value> default_value;  ///< avg only: the value when no record matched

  /// True when the sum is kept as an integer (sum/avg over int64).
  bool integer_sum() const { return arg_type == Type::kInt64 || fn == AggFn::kCount; }
};

/// One group-key column: a name and the expression that computes it (may use window_start).
struct KeySpec {
  std::string name;
  Type type = Type::kNull;
  std::unique_ptr<expr::Expr> expr;
  int slot = -1;  ///< when the key is a plain field reference: its slot, else -1
  /// Set when the key depends on nothing but the window (`date(window_start)`, constants): the
  /// same expression compiled against a row of [window_start, window_end]. The aggregator
  /// computes such keys once per window instead of once per record.
  std::unique_ptr<expr::Expr> window_expr;
  /// False when the key reads neither window_start nor window_end, so a record of hopping
  /// windows has the same key value in each of its windows (the planner sets it).
  bool uses_window = true;
};

/// A compiled [aggregate] section. Immutable after planning; shared by all workers.
struct AggregateSpec {
  std::unique_ptr<expr::Expr> time;
  int64_t window_micros = 0;  ///< the window's size
  int64_t slide_micros = 0;   ///< hopping windows start every slide; 0: tumbling (slide = size)
  bool append_mode = false;
  bool emit_window_start = true;
  bool emit_window_end = true;
  int64_t watermark_delay_micros = 0;
  int64_t allowed_lateness_micros = -1;  ///< -1: records are never late
  int64_t idle_timeout_micros = 0;
  std::vector<KeySpec> keys;
  std::vector<MetricSpec> metrics;
  size_t window_start_slot = 0;  ///< slots in the working row the engine fills before keys
  size_t window_end_slot = 0;

  /// Returns the distance between window starts (the size for tumbling windows).
  int64_t slide() const { return slide_micros > 0 ? slide_micros : window_micros; }
  /// Returns true when windows overlap, so that a record falls into window/slide windows.
  bool hopping() const { return slide() != window_micros; }
  /// Returns how many windows hold each record (1 for tumbling windows).
  int64_t windows_per_record() const { return window_micros / std::max<int64_t>(slide(), 1); }

  /// Returns the final output layout: [window_start][window_end] keys... metrics...
  Schema OutputSchema() const;
  /// Returns the names of the output's key columns (window columns emitted, then keys).
  std::vector<std::string> KeyColumns() const;
};

/// A partial aggregate. Two states for the same group merge into the state of the union of
/// their records, in any order (the basis of delta checkpoints and multi-worker merging).
struct MetricState {
  int64_t count = 0;  ///< records that matched `where` (and had a non-null arg)
  int64_t isum = 0;
  double dsum = 0;
  Value value;  ///< min, max, last: the current value
  int64_t at = std::numeric_limits<int64_t>::min();  ///< last: event time of `value`
};

/// The partial aggregates of one group since the last checkpoint.
struct DeltaRow {
  int64_t window_start = 0;
  std::vector<Value> keys;
  std::vector<MetricState> metrics;
};

/// Folds one matching record's argument into `state` (the catalog's rule for spec.fn).
void UpdateMetric(const MetricSpec& spec, MetricState& state, const Value& arg, int64_t event_time);
/// Folds `from` into `into`.
void MergeMetric(const MetricSpec& spec, MetricState& into, const MetricState& from);
/// Returns the metric's final value (avg: rounded sum/count, or the default when count is 0).
Value FinalValue(const MetricSpec& spec, const MetricState& state);
/// Rounds half away from zero to `digits` decimals, as SQL ROUND does.
double RoundHalfAway(double v, int digits);

/// Renders a delta row as a final output row in OutputSchema() order.
std::vector<Value> FinalRow(const AggregateSpec& spec, const DeltaRow& row);

}  // namespace sluice
