#include "operators/aggregate_spec.h"

#include <cmath>

#include "operators/aggregate_function.h"

namespace sluice {

std::string_view AggFnName(AggFn fn) { return AggregateFunctionOf(fn).name; }

Schema AggregateSpec::OutputSchema() const {
  Schema out;
  if (emit_window_start) out.Add({"window_start", Type::kTimestamp, ""});
  if (emit_window_end) out.Add({"window_end", Type::kTimestamp, ""});
  for (const auto& k : keys) out.Add({k.name, k.type, ""});
  for (const auto& m : metrics) out.Add({m.name, m.result_type, ""});
  return out;
}

std::vector<std::string> AggregateSpec::KeyColumns() const {
  std::vector<std::string> out;
  if (emit_window_start) out.push_back("window_start");
  if (emit_window_end) out.push_back("window_end");
  for (const auto& k : keys) out.push_back(k.name);
  return out;
}

void UpdateMetric(const MetricSpec& spec, MetricState& s, const Value& arg, int64_t event_time) {
  FunctionOf(spec).update(spec, s, arg, event_time);
}

void MergeMetric(const MetricSpec& spec, MetricState& into, const MetricState& from) {
  FunctionOf(spec).merge(spec, into, from);
}

double RoundHalfAway(double v, int digits) {
  double scale = std::pow(10.0, digits);
  double x = v * scale;
  // Nudge by a relative epsilon so values like 2.675 (stored as 2.67499999...) round the way
  // SQL engines print them.
  double r = std::round(x + (x >= 0 ? 1 : -1) * std::abs(x) * 1e-15);
  return r / scale;
}

Value FinalValue(const MetricSpec& spec, const MetricState& s) {
  return FunctionOf(spec).finalize(spec, s);
}

std::vector<Value> FinalRow(const AggregateSpec& spec, const DeltaRow& row) {
  std::vector<Value> out;
  out.reserve(2 + row.keys.size() + row.metrics.size());
  if (spec.emit_window_start) out.push_back(Value::TimeMicros(row.window_start));
  if (spec.emit_window_end) out.push_back(Value::TimeMicros(row.window_start + spec.window_micros));
  for (const auto& k : row.keys) out.push_back(k);
  for (size_t i = 0; i < spec.metrics.size(); ++i) {
    out.push_back(FinalValue(spec.metrics[i], row.metrics[i]));
  }
  return out;
}

}  // namespace sluice
