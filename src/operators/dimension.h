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
class DimensionTable {
 public:
  DimensionTable(std::string name, Schema fields, size_t key_index)
      : name_(std::move(name)), fields_(std::move(fields)), key_index_(key_index) {}

  const std::string& name() const { return name_; }
  const Schema& fields() const { return fields_; }
  size_t key_index() const { return key_index_; }
  Type key_type() const { return fields_.field(key_index_).type; }

  /// Returns the row for `key`, or nullptr.
  const std::vector<Value>* Find(const Value& key) const {
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
    rows_[std::move(key)] = std::move(row);
  }
  void Erase(const Value& key) { rows_.erase(key); }

 private:
  std::string name_;
  Schema fields_;
  size_t key_index_;
  std::unordered_map<Value, std::vector<Value>, ValueHash> rows_;
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

/// Reads the refresh settings of [dimension.NAME]: `refresh` (interval; default "5s" for MySQL
/// tables and CSV files, "0" turns it off), `updated_column` (MySQL; default "updated_at" when
/// the table has it) and `grace` (MySQL, default "5s").
Result<DimensionRefresh> ParseDimensionRefresh(const DimensionConfig& config);

/// Loads a dimension from a CSV file (',' or ';' delimited, sniffed from the header).
/// Rows whose key is blank or whose values do not decode are skipped and counted in
/// `*skipped`, with the first reason in `*first_error`.
Result<std::shared_ptr<DimensionTable>> LoadCsvDimension(const DimensionConfig& config,
                                                         size_t* skipped,
                                                         std::string* first_error);

/// Loads a dimension from the location named by config.uri, with its refresh settings.
Result<std::shared_ptr<Dimension>> LoadDimension(const DimensionConfig& config);

/// Reads a whole file into memory.
Result<std::string> ReadFile(const std::string& path);

/// Guesses the CSV delimiter of a header line: ';' when it has more semicolons than commas.
char SniffDelimiter(std::string_view header_line);

}  // namespace sluice
