#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/schema.h"
#include "core/value.h"

namespace sluice {

/// Holds one declared field of a batch of records as a typed vector: int64, timestamp
/// (microseconds) and bool values in `ints`, doubles in `doubles`, strings as views in `strings`
/// (into the decoder's copy of the input, or into the batch's arena). `valid[i]` is 0 for null.
///
/// Only the vector of the column's own type is sized; the others stay empty.
struct Column {
  Type type = Type::kNull;
  std::vector<uint8_t> valid;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  std::vector<std::string_view> strings;

  /// Sizes the column for `n` records, every one null.
  void Reset(Type t, size_t n);
  void SetNull(size_t i) { valid[i] = 0; }
  void SetInt(size_t i, int64_t v) {
    valid[i] = 1;
    ints[i] = v;
  }
  void SetDouble(size_t i, double v) {
    valid[i] = 1;
    doubles[i] = v;
  }
  void SetString(size_t i, std::string_view v) {
    valid[i] = 1;
    strings[i] = v;
  }
  /// Stores `v` (null or of the column's type; an int64 in a double column is widened, any
  /// other mismatch stores null) at record `i`; strings are copied into `arena`.
  void Set(size_t i, const Value& v, std::deque<std::string>* arena);
  /// Writes record `i` into `out` the way a row decoder would: strings reuse `out`'s buffer.
  void Load(size_t i, Value* out) const;
};

/// A batch of records decoded column by column: one Column per declared field (in schema
/// order), the derived columns (SetDerived), a per-record decode error (empty when the record
/// decoded), and the selection vector of the records still alive. Reused from batch to batch;
/// views stay valid until the next Reset() of the batch or of the decoder that filled it.
class ColumnBatch {
 public:
  /// Prepares for `n` records of `schema`: every value null, every record selected, no errors.
  void Reset(const Schema& schema, size_t n);
  /// Adds columns for working-row slots past the declared fields, which `let` steps over the
  /// columns fill (operators/column_filter.h): (slot, type) pairs, kept across Reset().
  void SetDerived(std::vector<std::pair<size_t, Type>> derived) { derived_ = std::move(derived); }

  size_t size() const { return size_; }
  Column& column(size_t field) { return columns_[field]; }
  const Column& column(size_t field) const { return columns_[field]; }
  /// The declared fields' columns and room up to the last derived slot (columns between them
  /// are empty, of type kNull).
  size_t num_columns() const { return columns_.size(); }

  /// The indexes of the records still alive, ascending.
  std::vector<uint32_t>& selection() { return selection_; }
  const std::vector<uint32_t>& selection() const { return selection_; }

  /// Marks record `i` as failed to decode with `message` (the row decoder's own message).
  void SetError(size_t i, std::string message) {
    errors_[i] = std::move(message);
    failed_[i] = 1;
  }
  bool failed(size_t i) const { return failed_[i] != 0; }
  /// Marks record `i` as dropped by filter step `step` (operators/column_filter.h).
  void MarkDropped(size_t i, int32_t step) { dropped_at_[i] = step; }
  /// The step that dropped record `i`, or -1.
  int32_t dropped_at(size_t i) const { return dropped_at_[i]; }
  const std::string& error(size_t i) const { return errors_[i]; }

  /// Storage for strings that are not views into the input (unescaped, from a fallback).
  std::deque<std::string>* arena() { return &arena_; }

  /// Writes record `i`'s declared fields into `row[0 .. num_declared())` and its derived
  /// columns into their slots.
  void LoadRow(size_t i, std::span<Value> row) const {
    for (size_t c = 0; c < declared_; ++c) columns_[c].Load(i, &row[c]);
    for (const auto& [slot, type] : derived_) columns_[slot].Load(i, &row[slot]);
  }
  size_t num_declared() const { return declared_; }

 private:
  size_t size_ = 0;
  size_t declared_ = 0;
  std::vector<std::pair<size_t, Type>> derived_;
  std::vector<Column> columns_;
  std::vector<uint32_t> selection_;
  std::vector<uint8_t> failed_;
  std::vector<int32_t> dropped_at_;
  std::vector<std::string> errors_;
  std::deque<std::string> arena_;
};

}  // namespace sluice
