#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/value.h"
#include "core/time.h"
#include "operators/aggregate_spec.h"
#include "operators/batch.h"
#include "operators/column_filter.h"

namespace sluice {

/// Where an aggregate's inputs are in a ColumnBatch (Aggregator::AddColumns): the columns of its
/// time, keys and metric arguments, and its metrics' conditions over the columns.
struct AggregateColumns {
  size_t time = 0;                 ///< a timestamp column
  std::vector<int> keys;           ///< per key: its column, or -1 for a key of the window alone
  /// Per metric: its `where` over the columns, or null when it has none.
  std::vector<std::unique_ptr<ColumnCondition>> where;
  std::vector<int> args;           ///< per metric: its argument's column, or -1
  /// Per metric with an argument and no column (args[i] < 0): its value for every record.
  std::vector<Value> constants;
};

/// Keeps one worker's partial aggregates per (window, key).
///
/// Owned by one worker thread; not thread-safe. In update mode the state is a delta that
/// TakeDelta() drains at each checkpoint. In append mode groups stay until their window closes.
///
/// Groups live in flat arrays indexed by an open-addressing table over a compact byte encoding
/// of their key values, so adding a record to an existing group allocates nothing. Keys that
/// depend on the window alone (KeySpec::window_expr) are computed once per window.
///
/// Add() evaluates a record and stages it (its key bytes, hash, metric arguments); the staged
/// records are folded into their groups, in the order they were added, when the stage is full
/// or before anything reads the groups (TakeAll, TakeClosed, Merge, Snapshot, size). Folding a
/// stage at once lets the table slots and group states of the next records be prefetched while
/// the current ones are updated: the table is larger than the caches at high cardinality. The
/// groups and their states are the same as with one record at a time, by construction.
class Aggregator {
 public:
  explicit Aggregator(const AggregateSpec* spec);

  enum class AddResult { kAdded, kNoTime, kNullKey, kLate };

  /// Evaluates time, keys and metrics on `row` (a working row; this fills its window slots) and
  /// adds the record to every window that holds it: one for tumbling windows, window/slide for
  /// hopping ones. Time, metric arguments and metric conditions are evaluated once per record,
  /// keys once per window only when they read the window. A window is late for the record when
  /// its end plus the allowed lateness is at or before `late_before` (pass kNoLateness to accept
  /// every record); late windows are skipped and counted in `*late_windows` (when not null), and
  /// the record is kLate, added nowhere, only when every window of it is late. `*event_time`
  /// receives the record's event time whenever it has one. A record with a null key in any of
  /// its windows is added nowhere (kNullKey).
  AddResult Add(std::span<Value> row, int64_t late_before, int64_t* event_time,
                std::string* null_key_name, int64_t* late_windows = nullptr);
  AddResult Add(std::span<Value> row, std::string* null_key_name) {
    int64_t t;
    return Add(row, kNoLateness, &t, null_key_name);
  }
  static constexpr int64_t kNoLateness = std::numeric_limits<int64_t>::min();

  /// The same as Add() for record `r` of `batch`, reading its time, keys, conditions and
  /// arguments from the columns `in` names instead of a row: the same result, the same groups
  /// and states (the key bytes and hash are computed from the column values once per window).
  AddResult AddColumns(const ColumnBatch& batch, size_t r, const AggregateColumns& in,
                       int64_t late_before, int64_t* event_time, std::string* null_key_name,
                       int64_t* late_windows = nullptr);

  /// Computes the start of the newest window holding an event time (for tumbling windows, the
  /// one window holding it).
  int64_t WindowStart(int64_t event_time) const { return FloorTo(event_time, spec_->slide()); }
  /// Computes the starts of every window holding an event time, oldest first: the newest start
  /// minus k slides for k = windows_per_record()-1 .. 0.
  std::vector<int64_t> WindowStarts(int64_t event_time) const;

  /// Moves every group out (update mode checkpoints, and end of input in append mode).
  std::vector<DeltaRow> TakeAll();
  /// Moves out the groups whose window ends at or before `watermark` (append mode).
  std::vector<DeltaRow> TakeClosed(int64_t watermark);
  /// Merges rows taken from another aggregator (or a restored snapshot) into this one.
  void Merge(std::vector<DeltaRow>&& rows);
  /// Copies every group out, leaving the state as it is (checkpointing open windows).
  std::vector<DeltaRow> Snapshot();

  /// Returns the number of groups (folding the staged records first).
  size_t size() {
    Flush();
    return groups_.size();
  }
  /// Folds the staged records into their groups.
  void Flush() {
    if (!staged_.empty()) FoldStaged();
  }

  /// How many (record, window) pairs Add() stages before it folds them.
  static constexpr size_t kStageSize = 64;

 private:
  /// Encoded keys up to this size live in their group's entry, so that finding a group reads
  /// one cache line (the entry) rather than two; longer ones in key_bytes_.
  static constexpr size_t kInlineKey = 44;
  struct alignas(64) Group {
    int64_t window_start = 0;
    uint64_t hash = 0;
    uint32_t key_size = 0;
    /// The encoded key when key_size <= kInlineKey, else its offset in key_bytes_ (a size_t).
    char key[kInlineKey] = {};

    size_t KeyOffset() const {
      size_t offset;
      std::memcpy(&offset, key, sizeof offset);
      return offset;
    }
    const char* KeyData(const std::string& key_bytes) const {
      return key_size <= kInlineKey ? key : key_bytes.data() + KeyOffset();
    }
  };
  static_assert(sizeof(Group) == 64);
  /// The values of the window-only keys of one window (null for the other keys).
  struct WindowKeys {
    bool valid = false;
    int64_t window_start = 0;
    std::vector<Value> values;
  };

  /// Returns the window-only key values for `window_start`, computing them on a cache miss.
  const std::vector<Value>& KeysOfWindow(int64_t window_start);
  /// Sets the row's window slots to the window starting at `window_start`, and points
  /// key_pointers_ of the keys that read the window at their values. Returns false (setting
  /// `*null_key_name`) when one of them is null.
  bool WindowKeyValues(std::span<Value> row, int64_t window_start, std::string* null_key_name);
  /// One (record, window) pair waiting to be folded into its group.
  struct Staged {
    int64_t window_start = 0;
    uint64_t hash = 0;
    int64_t event_time = 0;
    uint32_t key_begin = 0;  ///< offset of the encoded key in stage_key_bytes_
    uint32_t key_size = 0;
    uint32_t record = 0;     ///< the record's block in stage_matched_ / stage_args_
    uint32_t candidate = 0;  ///< a group whose tag the table holds at the hash's slot, + 1; 0 none
  };

  /// Finds the group of (window_start, key) with hash `hash`, or adds it with `keys` as its key
  /// values (one per KeySpec). Returns its index.
  size_t FindOrAdd(int64_t window_start, uint64_t hash, std::string_view key,
                   const Value* const* keys);
  /// Folds one record's metric arguments into group `g`: `matched` and `args` per metric (an
  /// argument is read only when its metric matched and has one).
  void UpdateGroup(size_t g, int64_t event_time, const char* matched, const Value* const* args);
  /// Computes the record's windows, oldest first: false (kLate) when every one is late.
  bool Windows(int64_t event_time, int64_t late_before, int64_t* first, int64_t* last,
               int64_t* skipped) const;
  /// Stages the record's windows first..last (key_pointers_ of the keys that do not read the
  /// window are set; metric arguments are in matched_ / metric_args_).
  bool Stage(std::span<Value> row, int64_t first, int64_t last, int64_t event_time,
             std::string* null_key_name);
  /// Folds every staged record into its group, in the order they were staged.
  void FoldStaged();
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
  std::string key_bytes_;  ///< encoded keys longer than kInlineKey
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
  std::vector<WindowKeys> window_cache_;  ///< indexed by window_start / slide
  size_t window_cache_mask_ = 0;
  int64_t windows_per_record_ = 1;
  /// True when some key reads the window and a record has several windows: keys are checked for
  /// null in every window before any window is updated.
  bool check_window_keys_first_ = false;
  std::vector<char> matched_;               ///< per metric: the record matched its `where`
  /// Per metric: an earlier metric whose `where` is the same comparison of a string field with
  /// constants (its result is reused: recruitment's three `custom_track = 'click'`), else itself.
  std::vector<size_t> where_from_;
  std::vector<const Value*> metric_args_;  ///< per metric: the record's argument
  std::vector<Value> metric_scratch_;      ///< per metric: storage for computed arguments
  Value window_row_[2];
  Value null_;

  std::vector<Staged> staged_;
  std::string stage_key_bytes_;
  std::vector<Value> stage_keys_;    ///< num_keys_ per stage entry (window-only keys unset)
  std::vector<char> stage_matched_;  ///< num_metrics_ per staged record
  std::vector<Value> stage_args_;    ///< num_metrics_ per staged record
  size_t staged_records_ = 0;
  size_t stage_capacity_ = kStageSize;  ///< stage entries (at least one record's windows)
  std::vector<const Value*> fold_keys_;  ///< per key, while folding
  std::vector<const Value*> fold_args_;  ///< per metric, while folding
};

/// Merges several workers' deltas into one list, combining rows of the same group.
std::vector<DeltaRow> MergeDeltas(const AggregateSpec& spec, std::vector<std::vector<DeltaRow>>&& parts);

}  // namespace sluice
