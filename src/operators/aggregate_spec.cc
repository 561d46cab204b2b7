#include "operators/aggregate_spec.h"

#include <cmath>

namespace sluice {

std::string_view AggFnName(AggFn fn) {
  switch (fn) {
    case AggFn::kCount: return "count";
    case AggFn::kSum: return "sum";
    case AggFn::kAvg: return "avg";
    case AggFn::kMin: return "min";
    case AggFn::kMax: return "max";
    case AggFn::kLast: return "last";
  }
  return "?";
}

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
  switch (spec.fn) {
    case AggFn::kCount:
      if (spec.arg && arg.is_null()) return;  // count(x) counts non-null x
      ++s.count;
      return;
    case AggFn::kSum:
    case AggFn::kAvg:
      if (arg.is_null()) return;
      ++s.count;
      if (arg.type() == Type::kInt64) {
        s.isum += arg.int_value();
      } else {
        s.dsum += arg.AsDouble();
      }
      return;
    case AggFn::kMin:
      if (arg.is_null()) return;
      ++s.count;
      if (s.value.is_null() || arg < s.value) s.value = arg;
      return;
    case AggFn::kMax:
      if (arg.is_null()) return;
      ++s.count;
      if (s.value.is_null() || s.value < arg) s.value = arg;
      return;
    case AggFn::kLast:
      ++s.count;
      // The latest event wins; equal times pick the larger value, so the result does not
      // depend on arrival order.
      if (event_time > s.at || (event_time == s.at && s.value < arg)) {
        s.at = event_time;
        s.value = arg;
      }
      return;
  }
}

void MergeMetric(const MetricSpec& spec, MetricState& into, const MetricState& from) {
  if (from.count == 0) return;
  switch (spec.fn) {
    case AggFn::kCount:
    case AggFn::kSum:
    case AggFn::kAvg:
      into.count += from.count;
      into.isum += from.isum;
      into.dsum += from.dsum;
      return;
    case AggFn::kMin:
      into.count += from.count;
      if (into.value.is_null() || from.value < into.value) into.value = from.value;
      return;
    case AggFn::kMax:
      into.count += from.count;
      if (into.value.is_null() || into.value < from.value) into.value = from.value;
      return;
    case AggFn::kLast:
      into.count += from.count;
      if (from.at > into.at || (from.at == into.at && into.value < from.value)) {
        into.at = from.at;
        into.value = from.value;
      }
      return;
  }
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
  switch (spec.fn) {
    case AggFn::kCount:
      return Value::Int(s.count);
    case AggFn::kSum:
      return spec.integer_sum() ? Value::Int(s.isum) : Value::Double(s.dsum);
    case AggFn::kAvg: {
      if (s.count == 0) return spec.default_value.value_or(Value::Null());
      double sum = spec.integer_sum() ? static_cast<double>(s.isum) : s.dsum;
      double avg = sum / static_cast<double>(s.count);
      if (spec.round_digits >= 0) avg = RoundHalfAway(avg, spec.round_digits);
      return Value::Double(avg);
    }
    case AggFn::kMin:
    case AggFn::kMax:
    case AggFn::kLast:
      return s.value;
  }
  return Value::Null();
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
