#include "operators/aggregator.h"

#include <algorithm>

#include "core/time.h"

namespace sluice {

Aggregator::AddResult Aggregator::Add(std::span<Value> row, int64_t late_before,
                                      int64_t* event_time_out, std::string* null_key_name) {
  Value t = spec_->time->Eval(row);
  if (t.type() != Type::kTimestamp) return AddResult::kNoTime;
  const int64_t event_time = t.time_value().micros;
  *event_time_out = event_time;
  const int64_t start = WindowStart(event_time);
  if (late_before != kNoLateness && spec_->allowed_lateness_micros >= 0 &&
      start + spec_->window_micros + spec_->allowed_lateness_micros <= late_before) {
    return AddResult::kLate;
  }
  row[spec_->window_start_slot] = Value::TimeMicros(start);
  row[spec_->window_end_slot] = Value::TimeMicros(start + spec_->window_micros);

  scratch_.window_start = start;
  scratch_.keys.resize(spec_->keys.size());
  for (size_t i = 0; i < spec_->keys.size(); ++i) {
    const KeySpec& k = spec_->keys[i];
    if (k.slot >= 0) {
      scratch_.keys[i] = row[k.slot];
    } else {
      scratch_.keys[i] = k.expr->Eval(row);
    }
    if (scratch_.keys[i].is_null()) {
      *null_key_name = k.name;
      return AddResult::kNullKey;
    }
  }
  auto it = groups_.find(scratch_);
  if (it == groups_.end()) {
    it = groups_.emplace(scratch_, std::vector<MetricState>(spec_->metrics.size())).first;
  }
  std::vector<MetricState>& states = it->second;
  for (size_t i = 0; i < spec_->metrics.size(); ++i) {
    const MetricSpec& m = spec_->metrics[i];
    if (m.where && !expr::IsTrue(m.where->Eval(row))) continue;
    if (m.arg) {
      UpdateMetric(m, states[i], m.arg->Eval(row), event_time);
    } else {
      UpdateMetric(m, states[i], Value::Null(), event_time);
    }
  }
  return AddResult::kAdded;
}

std::vector<DeltaRow> Aggregator::TakeAll() {
  std::vector<DeltaRow> out;
  out.reserve(groups_.size());
  for (auto& [key, states] : groups_) {
    out.push_back(DeltaRow{key.window_start, key.keys, std::move(states)});
  }
  groups_.clear();
  return out;
}

std::vector<DeltaRow> Aggregator::TakeClosed(int64_t watermark) {
  std::vector<DeltaRow> out;
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (it->first.window_start + spec_->window_micros <= watermark) {
      out.push_back(DeltaRow{it->first.window_start, it->first.keys, std::move(it->second)});
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void Aggregator::Merge(std::vector<DeltaRow>&& rows) {
  for (auto& r : rows) {
    GroupKey key{r.window_start, std::move(r.keys)};
    auto it = groups_.find(key);
    if (it == groups_.end()) {
      groups_.emplace(std::move(key), std::move(r.metrics));
      continue;
    }
    for (size_t i = 0; i < spec_->metrics.size(); ++i) {
      MergeMetric(spec_->metrics[i], it->second[i], r.metrics[i]);
    }
  }
}

std::vector<DeltaRow> Aggregator::Snapshot() const {
  std::vector<DeltaRow> out;
  out.reserve(groups_.size());
  for (const auto& [key, states] : groups_) out.push_back(DeltaRow{key.window_start, key.keys, states});
  return out;
}

std::vector<DeltaRow> MergeDeltas(const AggregateSpec& spec,
                                  std::vector<std::vector<DeltaRow>>&& parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  Aggregator merged(&spec);
  for (auto& p : parts) merged.Merge(std::move(p));
  std::vector<DeltaRow> out = merged.TakeAll();
  return out;
}

}  // namespace sluice
