#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/schema.h"
#include "core/value.h"
#include "operators/aggregate_spec.h"

namespace sluice::http {

/// What /api/results is asked for.
struct ResultQuery {
  std::string by;   ///< metric that orders the top lists ("" : clicks if present, else the first)
  size_t top = 10;  ///< entries per top list
};

/// A bounded in-memory view of what the pipeline committed, for the dashboard. It is fed by
/// Runner::SetCommitObserver, so it holds exactly what the sink received from this process.
///
/// With an aggregate it keeps, for the most recent `max_windows` windows, the merged state of
/// every numeric metric (count, sum, avg, min, max over numbers) in total and per value of each
/// tracked key column; the per-window series and the top lists are final values of merges of
/// those states, so they equal a GROUP BY over the sink's rows of the same windows. Without an
/// aggregate it keeps the last `max_rows` rows.
///
/// Thread-safety: OnCommit (the thread that commits) and RenderJson (HTTP threads) may run
/// concurrently; both take one mutex briefly.
class ResultView {
 public:
  struct Limits {
    size_t max_windows = 48;
    size_t max_values = 100'000;  ///< distinct values kept per window and key column
    size_t max_rows = 200;
  };

  /// Views an aggregating pipeline; `tracked_keys` indexes `spec.keys` (see DefaultTrackedKeys).
  /// `spec` must outlive the view.
  static std::unique_ptr<ResultView> ForAggregate(const AggregateSpec* spec,
                                                  std::vector<size_t> tracked_keys, Limits limits);
  static std::unique_ptr<ResultView> ForAggregate(const AggregateSpec* spec,
                                                  std::vector<size_t> tracked_keys) {
    return ForAggregate(spec, std::move(tracked_keys), Limits());
  }
  /// Views a pipeline that writes rows of `output`.
  static std::unique_ptr<ResultView> ForRows(Schema output, Limits limits);

  /// Returns the key columns worth ranking: plain field references (keys computed from the
  /// window, such as `date(window_start)`, are left out).
  static std::vector<size_t> DefaultTrackedKeys(const AggregateSpec& spec);

  /// Folds in what one checkpoint committed.
  void OnCommit(const std::vector<DeltaRow>& deltas, const std::vector<std::vector<Value>>& rows);

  /// Renders /api/results (see src/http/README.md for the layout).
  std::string RenderJson(const ResultQuery& query) const;

 private:
  using States = std::vector<MetricState>;
  struct ValueHash {
    size_t operator()(const Value& v) const { return v.Hash(); }
  };
  using ByValue = std::unordered_map<Value, States, ValueHash>;
  struct Window {
    States totals;
    std::vector<ByValue> by_key;  ///< per tracked key
  };

  ResultView() = default;
  void Merge(States& into, const std::vector<MetricState>& delta_metrics) const;
  void MergeStates(States& into, const States& from) const;

  const AggregateSpec* spec_ = nullptr;
  std::vector<size_t> metrics_;       ///< indexes of the numeric metrics in spec_->metrics
  std::vector<size_t> tracked_keys_;  ///< indexes in spec_->keys
  Schema output_;
  Limits limits_;

  mutable std::mutex mu_;
  std::map<int64_t, Window> windows_;    // guarded by mu_
  std::deque<std::vector<Value>> rows_;  // guarded by mu_
  int64_t commits_ = 0;                  // guarded by mu_
  int64_t last_commit_micros_ = 0;       // guarded by mu_
  int64_t dropped_deltas_ = 0;           // guarded by mu_: for windows older than the kept ones
  int64_t dropped_values_ = 0;           // guarded by mu_: over max_values
  int64_t rows_seen_ = 0;                // guarded by mu_
};

}  // namespace sluice::http
