#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/time.h"
#include "operators/aggregate_spec.h"

namespace sluice::aggregate_test {

inline void AddKey(AggregateSpec& a, std::string name, Type type) {
  KeySpec k;
  k.name = std::move(name);
  k.type = type;
  a.keys.push_back(std::move(k));
}

inline void AddMetric(AggregateSpec& a, std::string name, AggFn fn, Type arg, Type result,
                      int round_digits = -1, std::optional<Value> default_value = std::nullopt) {
  MetricSpec m;
  m.name = std::move(name);
  m.fn = fn;
  m.arg_type = arg;
  m.result_type = result;
  m.round_digits = round_digits;
  m.default_value = std::move(default_value);
  a.metrics.push_back(std::move(m));
}

/// The layout of examples/recruitment.toml's aggregate (keys and metrics, no window columns).
inline std::unique_ptr<AggregateSpec> RecruitmentSpec() {
  auto a = std::make_unique<AggregateSpec>();
  a->window_micros = kMicrosPerHour;
  a->emit_window_start = false;
  a->emit_window_end = false;
  AddKey(*a, "job_id", Type::kInt64);
  AddKey(*a, "dates", Type::kString);
  AddKey(*a, "hours", Type::kInt64);
  AddKey(*a, "publisher_id", Type::kInt64);
  AddKey(*a, "campaign_id", Type::kInt64);
  AddKey(*a, "group_id", Type::kInt64);
  AddMetric(*a, "company_id", AggFn::kLast, Type::kInt64, Type::kInt64);
  AddMetric(*a, "clicks", AggFn::kCount, Type::kNull, Type::kInt64);
  AddMetric(*a, "bid_set", AggFn::kAvg, Type::kInt64, Type::kDouble, 2, Value::Double(0));
  AddMetric(*a, "spend_hour", AggFn::kSum, Type::kInt64, Type::kInt64);
  AddMetric(*a, "conversion", AggFn::kCount, Type::kNull, Type::kInt64);
  AddMetric(*a, "qualified_application", AggFn::kCount, Type::kNull, Type::kInt64);
  AddMetric(*a, "disqualified_application", AggFn::kCount, Type::kNull, Type::kInt64);
  AddMetric(*a, "sources", AggFn::kLast, Type::kString, Type::kString);
  AddMetric(*a, "latest_update_time", AggFn::kMax, Type::kTimestamp, Type::kTimestamp);
  return a;
}

/// One group key and a metric of each kind: window columns, a string key, count, integer sum,
/// rounded integer average with a default, unrounded double average, double min, string max,
/// int last, timestamp max.
inline std::unique_ptr<AggregateSpec> AllKindsSpec() {
  auto a = std::make_unique<AggregateSpec>();
  a->window_micros = kMicrosPerHour;
  AddKey(*a, "k", Type::kString);
  AddMetric(*a, "n", AggFn::kCount, Type::kNull, Type::kInt64);
  AddMetric(*a, "total", AggFn::kSum, Type::kInt64, Type::kInt64);
  AddMetric(*a, "mean", AggFn::kAvg, Type::kInt64, Type::kDouble, 2, Value::Double(0));
  AddMetric(*a, "dmean", AggFn::kAvg, Type::kDouble, Type::kDouble);
  AddMetric(*a, "lo", AggFn::kMin, Type::kDouble, Type::kDouble);
  AddMetric(*a, "hi", AggFn::kMax, Type::kString, Type::kString);
  AddMetric(*a, "latest", AggFn::kLast, Type::kInt64, Type::kInt64);
  AddMetric(*a, "seen", AggFn::kMax, Type::kTimestamp, Type::kTimestamp);
  return a;
}

/// Builds a delta row by folding records into fresh states, as a worker would.
struct Rec {
  Rec(std::vector<Value> a, int64_t t, std::vector<bool> m = {})
      : args(std::move(a)), time(t), match(std::move(m)) {}
  std::vector<Value> args;  ///< one per metric (ignored for count)
  int64_t time = 0;
  std::vector<bool> match;  ///< one per metric; empty: all match
};

inline DeltaRow MakeDelta(const AggregateSpec& a, int64_t window_start, std::vector<Value> keys,
                          const std::vector<Rec>& records) {
  DeltaRow d;
  d.window_start = window_start;
  d.keys = std::move(keys);
  d.metrics.resize(a.metrics.size());
  for (const auto& r : records) {
    for (size_t i = 0; i < a.metrics.size(); ++i) {
      if (!r.match.empty() && !r.match[i]) continue;
      UpdateMetric(a.metrics[i], d.metrics[i], i < r.args.size() ? r.args[i] : Value(), r.time);
    }
  }
  return d;
}

}  // namespace sluice::aggregate_test
