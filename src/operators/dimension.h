#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/pipeline_config.h"
#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace sluice {

struct ValueHash {
  size_t operator()(const Value& v) const { return v.Hash(); }
};

/// An immutable snapshot of a dimension: key -> row of the declared fields.
///
/// Shared read-only by all workers through std::shared_ptr<const DimensionTable>; a refresh
/// (reload, CDC) builds a new snapshot and swaps the pointer between batches.
///
/// Integer keys, the common case, are also indexed by a flat open-addressing table, so a
/// lookup is a multiply and a probe or two instead of a walk through hash buckets.
class DimensionTable {
 public:
  DimensionTable(std::string name, Schema fields, size_t key_index)
      : name_(std::move(name)), fields_(std::move(fields)), key_index_(key_index) {}
  /// Copies the rows (a refresh starts from the current snapshot) and indexes them anew.
  DimensionTable(const DimensionTable& other)
      : name_(other.name_), fields_(other.fields_), key_index_(other.key_index_),
        rows_(other.rows_) {
    RebuildIntIndex();
  }
  DimensionTable& operator=(const DimensionTable&) = delete;

  const std::string& name() const { return name_; }
  const Schema& fields() const { return fields_; }
  size_t key_index() const { return key_index_; }
  Type key_type() const { return fields_.field(key_index_).type; }

  /// Returns the row for `key`, or nullptr.
  const std::vector<Value>* Find(const Value& key) const {
    if (key.type() == Type::kInt64) return FindInt(key.int_value());
    auto it = rows_.find(key);
    return it == rows_.end() ? nullptr : &it->second;
  }
  size_t size() const { return rows_.size(); }

  /// Calls `f(row)` for every row, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [key, row] : rows_) f(row);
  }

  /// Inserts or replaces the row keyed by row[key_index()].
  void Put(std::vector<Value> row) {
    Value key = row[key_index_];
    const bool is_int = key.type() == Type::kInt64;
    const int64_t int_key = is_int ? key.int_value() : 0;
    std::vector<Value>& stored = rows_[std::move(key)];
    stored = std::move(row);
    if (is_int) IndexInt(int_key, &stored);
  }
  void Erase(const Value& key) {
    if (rows_.erase(key) == 0 || key.type() != Type::kInt64) return;
    IntSlot* slot = FindIntSlot(key.int_value());
    if (slot != nullptr) slot->row = &kErased;
  }

 private:
  struct IntSlot {
    int64_t key = 0;
    const std::vector<Value>* row = nullptr;  ///< nullptr: empty; &kErased: deleted
  };
  static inline const std::vector<Value> kErased{};

  static uint64_t HashInt(int64_t key) {
    uint64_t h = static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
  }
  const IntSlot* FindIntSlotConst(int64_t key) const {
    if (int_index_.empty()) return nullptr;
    const size_t mask = int_index_.size() - 1;
    for (size_t pos = HashInt(key) & mask;; pos = (pos + 1) & mask) {
      const IntSlot& slot = int_index_[pos];
      if (slot.row == nullptr) return nullptr;
      if (slot.key == key) return &slot;
    }
  }
  IntSlot* FindIntSlot(int64_t key) { return const_cast<IntSlot*>(FindIntSlotConst(key)); }
  const std::vector<Value>* FindInt(int64_t key) const {
    const IntSlot* slot = FindIntSlotConst(key);
    return slot == nullptr || slot->row == &kErased ? nullptr : slot->row;
  }
  void IndexInt(int64_t key, const std::vector<Value>* row) {
    if (IntSlot* slot = FindIntSlot(key)) {
      slot->row = row;
      return;
    }
    if ((int_used_ + 1) * 2 > int_index_.size()) {
      RebuildIntIndex();  // picks up `row` from rows_
      return;
    }
    const size_t mask = int_index_.size() - 1;
    size_t pos = HashInt(key) & mask;
    while (int_index_[pos].row != nullptr) pos = (pos + 1) & mask;
    int_index_[pos] = IntSlot{key, row};
    ++int_used_;
  }
  void RebuildIntIndex() {
    size_t capacity = 16;
    while (capacity < rows_.size() * 4) capacity *= 2;
    int_index_.assign(capacity, IntSlot{});
    int_used_ = 0;
    const size_t mask = capacity - 1;
    for (const auto& [key, row] : rows_) {
      if (key.type() != Type::kInt64) continue;
      size_t pos = HashInt(key.int_value()) & mask;
      while (int_index_[pos].row != nullptr) pos = (pos + 1) & mask;
      int_index_[pos] = IntSlot{key.int_value(), &row};
      ++int_used_;
    }
  }

  std::string name_;
  Schema fields_;
  size_t key_index_;
  std::unordered_map<Value, std::vector<Value>, ValueHash> rows_;
  std::vector<IntSlot> int_index_;  ///< power-of-two size, at most half full (with deletions)
  size_t int_used_ = 0;             ///< slots in use, deleted ones included
};

/// How a dimension follows its source after the snapshot taken at start.
struct DimensionRefresh {
  /// How often to look for changes; 0: never (a static snapshot).
  int64_t interval_micros = 0;
  /// MySQL: the column whose increase marks a changed row (timestamp change data capture).
  std::string updated_column;
  /// MySQL: also re-read rows this far behind the newest change seen, for transactions that
  /// commit after a later one (re-applying a row is harmless: it is the current version).
  int64_t grace_micros = 0;
};

/// A dimension the pipeline looks records up in: the newest complete snapshot, replaced as a
/// whole when its source changes. Workers take the current snapshot at the start of each batch,
/// so an update applies between batches and never in the middle of a record.
///
/// Lifecycle: made by the connector's DimensionFactory::load while the plan is built, owned by
/// the plan (shared with its poller) until the run ends.
///
/// Threads: every method may be called from any thread at any time. snapshot() (workers, each
/// batch) and Publish() (the refresher's thread, or the thread that starts the run while a
/// poller catches up) exchange the snapshot atomically; stats() and the Record/Set counters (the
/// monitoring thread, workers, the refresher) use relaxed atomics. A published DimensionTable
/// is never changed again: a refresh copies it, changes the copy and publishes that.
class Dimension {
 public:
  Dimension(DimensionConfig config, DimensionRefresh refresh, std::shared_ptr<const DimensionTable> table)
      : config_(std::move(config)), refresh_(std::move(refresh)), table_(std::move(table)) {
    size_.store(static_cast<int64_t>(table_.load()->size()));
  }

  const std::string& name() const { return config_.name; }
  const DimensionConfig& config() const { return config_; }
  const DimensionRefresh& refresh() const { return refresh_; }
  /// Returns the current snapshot. Its schema never changes between versions.
  std::shared_ptr<const DimensionTable> snapshot() const { return table_.load(std::memory_order_acquire); }

  /// Publishes a new version with `changes` rows added, replaced or deleted.
  void Publish(std::shared_ptr<const DimensionTable> table, int64_t changes, int64_t now_micros);

  struct Stats {
    int64_t size = 0;
    int64_t versions = 0;            ///< snapshots published after the first
    int64_t changes = 0;             ///< rows changed by them
    int64_t last_update_micros = 0;  ///< wall clock of the last change applied (0: none)
    int64_t lag_micros = -1;         ///< how far the newest change seen is behind now; -1 unknown
    int64_t refresh_errors = 0;
    int64_t misses = 0;              ///< lookups that found no row
  };
  Stats stats() const;
  void RecordRefreshError() { refresh_errors_.fetch_add(1, std::memory_order_relaxed); }
  void SetLag(int64_t micros) { lag_.store(micros, std::memory_order_relaxed); }
  void RecordMiss() { misses_.fetch_add(1, std::memory_order_relaxed); }

 private:
  const DimensionConfig config_;
  const DimensionRefresh refresh_;
  std::atomic<std::shared_ptr<const DimensionTable>> table_;
  std::atomic<int64_t> size_{0}, versions_{0}, changes_{0}, last_update_{0}, lag_{-1};
  std::atomic<int64_t> refresh_errors_{0}, misses_{0};
};

/// Follows one dimension's source and publishes a new snapshot (Dimension::Publish) when it
/// changed. Dimension connectors implement it; ConnectorRegistry::MakeDimensionPoller makes one.
///
/// Lifecycle and threads: made on the thread that starts the run (a poller that fills its table,
/// as a Kafka changelog does, catches up there); then Poll() is called by one thread at a time,
/// the refresher's background thread, until the run ends. Workers never call it: they only read
/// the published snapshots.
class DimensionPoller {
 public:
  virtual ~DimensionPoller() = default;
  /// Looks for changes once; publishes a new version of the dimension when there are any. An
  /// error keeps the current snapshot (the refresher counts it and retries at the next interval).
  virtual Status Poll() = 0;
};

/// Loads a dimension from a CSV file (',' or ';' delimited, sniffed from the header).
/// Rows whose key is blank or whose values do not decode are skipped and counted in
/// `*skipped`, with the first reason in `*first_error`.
Result<std::shared_ptr<DimensionTable>> LoadCsvDimension(const DimensionConfig& config,
                                                         size_t* skipped,
                                                         std::string* first_error);

/// Reads a whole file into memory.
Result<std::string> ReadFile(const std::string& path);

/// Guesses the CSV delimiter of a header line: ';' when it has more semicolons than commas.
char SniffDelimiter(std::string_view header_line);

}  // namespace sluice
