#include "http/result_view.h"

#include <algorithm>
#include <chrono>

#include "core/time.h"
#include "core/json_builder.h"
#include "operators/aggregate_function.h"

namespace sluice::http {
namespace {

/// The dashboard charts a metric its function allows charting (the catalog's `charted`) whose
/// result is a number.
bool IsNumericMetric(const MetricSpec& m) {
  if (!FunctionOf(m).charted) return false;
  return m.result_type == Type::kInt64 || m.result_type == Type::kDouble;
}

}  // namespace

std::unique_ptr<ResultView> ResultView::ForAggregate(const AggregateSpec* spec,
                                                     std::vector<size_t> tracked_keys,
                                                     Limits limits) {
  std::unique_ptr<ResultView> v(new ResultView());
  v->spec_ = spec;
  v->limits_ = limits;
  for (size_t i = 0; i < spec->metrics.size(); ++i) {
    if (IsNumericMetric(spec->metrics[i])) v->metrics_.push_back(i);
  }
  for (size_t k : tracked_keys) {
    if (k < spec->keys.size()) v->tracked_keys_.push_back(k);
  }
  v->output_ = spec->OutputSchema();
  return v;
}

std::unique_ptr<ResultView> ResultView::ForRows(Schema output, Limits limits) {
  std::unique_ptr<ResultView> v(new ResultView());
  v->output_ = std::move(output);
  v->limits_ = limits;
  return v;
}

std::vector<size_t> ResultView::DefaultTrackedKeys(const AggregateSpec& spec) {
  std::vector<size_t> out;
  for (size_t i = 0; i < spec.keys.size(); ++i) {
    if (spec.keys[i].slot >= 0) out.push_back(i);
  }
  return out;
}

void ResultView::Merge(States& into, const std::vector<MetricState>& delta_metrics) const {
  if (into.empty()) into.resize(metrics_.size());
  for (size_t i = 0; i < metrics_.size(); ++i) {
    MergeMetric(spec_->metrics[metrics_[i]], into[i], delta_metrics[metrics_[i]]);
  }
}

void ResultView::MergeStates(States& into, const States& from) const {
  if (into.empty()) into.resize(metrics_.size());
  for (size_t i = 0; i < metrics_.size(); ++i) {
    MergeMetric(spec_->metrics[metrics_[i]], into[i], from[i]);
  }
}

void ResultView::OnCommit(const std::vector<DeltaRow>& deltas,
                          const std::vector<std::vector<Value>>& rows) {
  std::lock_guard<std::mutex> lock(mu_);
  ++commits_;
  last_commit_micros_ = WallClockMicros();
  if (spec_ != nullptr) {
    for (const DeltaRow& d : deltas) {
      auto it = windows_.find(d.window_start);
      if (it == windows_.end()) {
        if (windows_.size() >= limits_.max_windows && d.window_start < windows_.begin()->first) {
          ++dropped_deltas_;
          continue;
        }
        it = windows_.emplace(d.window_start, Window{}).first;
        it->second.by_key.resize(tracked_keys_.size());
        while (windows_.size() > limits_.max_windows) windows_.erase(windows_.begin());
      }
      Window& w = it->second;
      Merge(w.totals, d.metrics);
      for (size_t k = 0; k < tracked_keys_.size(); ++k) {
        const size_t key = tracked_keys_[k];
        if (key >= d.keys.size()) continue;
        ByValue& values = w.by_key[k];
        auto vit = values.find(d.keys[key]);
        if (vit == values.end()) {
          if (values.size() >= limits_.max_values) {
            ++dropped_values_;
            continue;
          }
          vit = values.emplace(d.keys[key], States()).first;
        }
        Merge(vit->second, d.metrics);
      }
    }
  }
  for (const auto& r : rows) {
    ++rows_seen_;
    if (spec_ == nullptr) {
      rows_.push_back(r);
      while (rows_.size() > limits_.max_rows) rows_.pop_front();
    }
  }
}

std::string ResultView::RenderJson(const ResultQuery& query) const {
  JsonBuilder j;
  j.BeginObject();
  std::lock_guard<std::mutex> lock(mu_);
  j.Key("commits").Int(commits_);
  j.Key("last_commit_micros");
  last_commit_micros_ > 0 ? j.Int(last_commit_micros_) : j.Null();
  j.Key("columns").BeginArray();
  for (const auto& f : output_.fields()) j.String(f.name);
  j.EndArray();
  if (spec_ == nullptr) {
    j.Key("mode").String("rows");
    j.Key("rows_seen").Int(rows_seen_);
    j.Key("rows").BeginArray();
    for (const auto& r : rows_) {
      j.BeginArray();
      for (const auto& v : r) j.ValueOf(v);
      j.EndArray();
    }
    j.EndArray();
    j.EndObject();
    return j.Take();
  }
  j.Key("mode").String("aggregate");
  j.Key("window_seconds").Double(spec_->window_micros / 1e6);
  j.Key("slide_seconds").Double(spec_->slide() / 1e6);
  j.Key("max_windows").Int(static_cast<int64_t>(limits_.max_windows));
  j.Key("dropped_deltas").Int(dropped_deltas_);
  j.Key("truncated").Bool(dropped_values_ > 0);

  // The ordering metric: the requested one, else "clicks", else the first numeric metric.
  size_t by = metrics_.size();
  for (size_t i = 0; i < metrics_.size(); ++i) {
    const std::string& name = spec_->metrics[metrics_[i]].name;
    if (name == query.by || (query.by.empty() && name == "clicks")) by = i;
  }
  if (by == metrics_.size() && !metrics_.empty()) by = 0;

  j.Key("metrics").BeginArray();
  for (size_t m : metrics_) {
    const MetricSpec& spec = spec_->metrics[m];
    j.BeginObject().Key("name").String(spec.name).Key("fn").String(AggFnName(spec.fn));
    j.Key("type").String(TypeName(spec.result_type)).EndObject();
  }
  j.EndArray();
  j.Key("keys").BeginArray();
  for (size_t k : tracked_keys_) j.String(spec_->keys[k].name);
  j.EndArray();
  j.Key("top_by");
  by < metrics_.size() ? j.String(spec_->metrics[metrics_[by]].name) : j.Null();

  auto values = [&](const States& states) {
    j.BeginObject();
    for (size_t i = 0; i < metrics_.size(); ++i) {
      const MetricSpec& spec = spec_->metrics[metrics_[i]];
      j.Key(spec.name);
      if (states.empty()) {
        j.ValueOf(FinalValue(spec, MetricState()));
      } else {
        j.ValueOf(FinalValue(spec, states[i]));
      }
    }
    j.EndObject();
  };

  // Hopping windows overlap: totals and top lists add up only the windows that start at a
  // multiple of the window size, which do not overlap, so that each record counts once.
  auto counted = [&](int64_t start) {
    return !spec_->hopping() || start - FloorTo(start, spec_->window_micros) == 0;
  };
  States totals;
  j.Key("windows").BeginArray();
  for (const auto& [start, w] : windows_) {
    j.BeginObject();
    j.Key("start_micros").Int(start);
    j.Key("start").String(FormatTimestamp(start));
    j.Key("values");
    values(w.totals);
    j.EndObject();
    if (!w.totals.empty() && counted(start)) MergeStates(totals, w.totals);
  }
  j.EndArray();
  j.Key("totals");
  values(totals);

  j.Key("top").BeginObject();
  for (size_t k = 0; k < tracked_keys_.size(); ++k) {
    ByValue merged;
    for (const auto& [start, w] : windows_) {
      if (!counted(start)) continue;
      for (const auto& [value, states] : w.by_key[k]) MergeStates(merged[value], states);
    }
    std::vector<std::pair<double, const ByValue::value_type*>> order;
    order.reserve(merged.size());
    for (const auto& entry : merged) {
      double score = by < metrics_.size()
                         ? FinalValue(spec_->metrics[metrics_[by]], entry.second[by]).AsDouble()
                         : 0;
      order.emplace_back(score, &entry);
    }
    const size_t n = std::min(query.top, order.size());
    auto better = [](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first > b.first;
      return a.second->first < b.second->first;
    };
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      better);
    j.Key(spec_->keys[tracked_keys_[k]].name).BeginObject();
    j.Key("distinct").Int(static_cast<int64_t>(merged.size()));
    j.Key("rows").BeginArray();
    for (size_t i = 0; i < n; ++i) {
      j.BeginObject().Key("key").ValueOf(order[i].second->first).Key("values");
      values(order[i].second->second);
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
  }
  j.EndObject();
  j.EndObject();
  return j.Take();
}

}  // namespace sluice::http
