#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/value.h"
#include "core/time.h"
#include "operators/aggregate_spec.h"

namespace sluice {

/// Keeps one worker's partial aggregates per (window, key).
///
/// Owned by one worker thread; not thread-safe. In update mode the state is a delta that
/// TakeDelta() drains at each checkpoint. In append mode groups stay until their window closes.
///
/// Groups live in flat arrays indexed by an open-addressing table over a compact byte encoding
/// of their key values, so adding a record to an existing group allocates nothing. Keys that
/// depend on the window alone (KeySpec::window_expr) are computed once per window.
class Aggregator {
 public:
  explicit Aggregator(const AggregateSpec* spec);

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
  struct Group {
    int64_t window_start = 0;
    uint64_t hash = 0;
    size_t key_begin = 0;  ///< offset of the encoded key in key_bytes_
    size_t key_size = 0;
  };
  /// The values of the window-only keys of one window (null for the other keys).
  struct WindowKeys {
    bool valid = false;
    int64_t window_start = 0;
    std::vector<Value> values;
  };

  /// Returns the window-only key values for `window_start`, computing them on a cache miss.
  const std::vector<Value>& KeysOfWindow(int64_t window_start);
  /// Finds the group of (window_start, key_scratch_) with hash `hash`, or adds it with
  /// `keys` as its key values (one per KeySpec). Returns its index.
  size_t FindOrAdd(int64_t window_start, uint64_t hash, const Value* const* keys);
  /// Builds a delta row from group `g`, moving its values out.
  DeltaRow MoveOut(size_t g);
  void Rehash(size_t capacity);
  void Clear();
  /// Rebuilds the arrays and the table keeping only the groups for which keep[g] is true.
  void Compact(const std::vector<bool>& keep);

  const AggregateSpec* spec_;
  const size_t num_keys_;
  const size_t num_metrics_;
  bool has_window_keys_ = false;
  std::vector<Group> groups_;
  std::string key_bytes_;
  std::vector<Value> key_values_;  ///< num_keys_ per group
  /// Functions whose catalog state is kCount or kCountSum (count, sum, avg) need no Value: their
  /// state is three numbers, kept apart from the min/max/last states so that a group's state is compact (the table is cache-bound).
  struct NumState {
    int64_t count = 0;
    int64_t isum = 0;
    double dsum = 0;
  };
  /// Returns true when metric `i` keeps a NumState.
  bool IsNumeric(size_t i) const { return numeric_[i]; }
  /// Returns a copy of metric `i`'s state in group `g`.
  MetricState StateOf(size_t g, size_t i) const;
  std::vector<bool> numeric_;      ///< per metric
  std::vector<bool> sums_;         ///< per metric with a NumState: it sums its argument (not count)
  std::vector<size_t> state_slot_;  ///< per metric: index among its kind's states in a group
  size_t num_numeric_ = 0;
  size_t num_values_ = 0;
  std::vector<NumState> nums_;       ///< num_numeric_ per group
  std::vector<MetricState> states_;  ///< num_values_ per group (min, max, last)
  /// Open-addressing table (power-of-two size): high 32 bits of the hash, low 32 bits the
  /// group index + 1; 0 is an empty slot.
  std::vector<uint64_t> table_;
  std::string key_scratch_;
  std::vector<Value> value_scratch_;       ///< per key: computed key values
  std::vector<const Value*> key_pointers_;  ///< per key: the record's key values
  std::vector<WindowKeys> window_cache_;
  Value window_row_[2];
  Value null_;
};

/// Merges several workers' deltas into one list, combining rows of the same group.
std::vector<DeltaRow> MergeDeltas(const AggregateSpec& spec, std::vector<std::vector<DeltaRow>>&& parts);

}  // namespace sluice
