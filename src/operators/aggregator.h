#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/value.h"
#include "core/time.h"
#include "operators/aggregate_spec.h"

namespace sluice {

/// Keys one group: the window it belongs to and its key values.
struct GroupKey {
  int64_t window_start = 0;
  std::vector<Value> keys;
  friend bool operator==(const GroupKey&, const GroupKey&) = default;
};

struct GroupKeyHash {
  size_t operator()(const GroupKey& k) const {
    size_t h = std::hash<int64_t>{}(k.window_start);
    for (const auto& v : k.keys) h = h * 1000003u ^ v.Hash();
    return h;
  }
};

/// Keeps one worker's partial aggregates per (window, key).
///
/// Owned by one worker thread; not thread-safe. In update mode the state is a delta that
/// TakeDelta() drains at each checkpoint. In append mode groups stay until their window closes.
class Aggregator {
 public:
  explicit Aggregator(const AggregateSpec* spec) : spec_(spec) {}

  enum class AddResult { kAdded, kNoTime, kNullKey, kLate };

  /// Evaluates time, keys and metrics on `row` (a working row; this fills its window slots).
  /// A record is late, and not added, when its window end plus the allowed lateness is at or
  /// before `late_before` (pass kNoLateness to accept every record). `*event_time` receives the
  /// record's event time whenever it has one.
  AddResult Add(std::span<Value> row, int64_t late_before, int64_t* event_time,
                std::string* null_key_name);
  AddResult Add(std::span<Value> row, std::string* null_key_name) {
    int64_t t;
    return Add(row, kNoLateness, &t, null_key_name);
  }
  static constexpr int64_t kNoLateness = std::numeric_limits<int64_t>::min();

  /// Computes the window start for an event time.
  int64_t WindowStart(int64_t event_time) const {
    return FloorTo(event_time, spec_->window_micros);
  }

  /// Moves every group out (update mode checkpoints, and end of input in append mode).
  std::vector<DeltaRow> TakeAll();
  /// Moves out the groups whose window ends at or before `watermark` (append mode).
  std::vector<DeltaRow> TakeClosed(int64_t watermark);
  /// Merges rows taken from another aggregator (or a restored snapshot) into this one.
  void Merge(std::vector<DeltaRow>&& rows);
  /// Copies every group out, leaving the state as it is (checkpointing open windows).
  std::vector<DeltaRow> Snapshot() const;

  size_t size() const { return groups_.size(); }

 private:
  const AggregateSpec* spec_;
  std::unordered_map<GroupKey, std::vector<MetricState>, GroupKeyHash> groups_;
  GroupKey scratch_;
};

/// Merges several workers' deltas into one list, combining rows of the same group.
std::vector<DeltaRow> MergeDeltas(const AggregateSpec& spec, std::vector<std::vector<DeltaRow>>&& parts);

}  // namespace sluice
