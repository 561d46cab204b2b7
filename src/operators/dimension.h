#pragma once

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

/// Loads a dimension from a CSV file (',' or ';' delimited, sniffed from the header).
/// Rows whose key is blank or whose values do not decode are skipped and counted in
/// `*skipped`, with the first reason in `*first_error`.
Result<std::shared_ptr<DimensionTable>> LoadCsvDimension(const DimensionConfig& config,
                                                         size_t* skipped,
                                                         std::string* first_error);

/// Loads a dimension from the location named by config.uri.
Result<std::shared_ptr<DimensionTable>> LoadDimension(const DimensionConfig& config);

/// Reads a whole file into memory.
Result<std::string> ReadFile(const std::string& path);

/// Guesses the CSV delimiter of a header line: ';' when it has more semicolons than commas.
char SniffDelimiter(std::string_view header_line);

}  // namespace sluice
