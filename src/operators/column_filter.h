#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/schema.h"
#include "expr/expr.h"
#include "operators/batch.h"

namespace sluice {

/// A condition evaluated over a ColumnBatch's typed columns instead of rows (issue 19): the
/// node kinds expr::Describe() names (is null / is not null of a field, a string field = or <>
/// a constant, in / not in a list of constant strings, and, or, not), three-valued exactly as
/// the row path's EvalTrue() (null compares to null; `in` with a null item and no match is
/// null), reading declared fields only (the batch's columns).
class ColumnCondition {
 public:
  /// Returns null when a node of `condition` is of another kind or reads a slot that is not a
  /// declared field of `input` (the columns of the batches it will read).
  static std::unique_ptr<ColumnCondition> Make(const expr::Expr& condition, const Schema& input);

  /// The condition for record `i`: true only when it holds (not null, not false), as EvalTrue().
  bool True(const ColumnBatch& batch, size_t i) const { return Eval(batch, i, 0) == kTrue; }

 private:
  enum Tri : uint8_t { kFalse, kTrue, kNull };
  enum class Op : uint8_t { kIsNull, kStringEq, kStringIn, kAnd, kOr, kNot };
  struct Node {
    Op op = Op::kIsNull;
    bool negate = false;
    bool has_null = false;
    uint32_t slot = 0;      ///< kIsNull, kStringEq, kStringIn: the column read
    uint32_t a = 0, b = 0;  ///< kAnd, kOr, kNot: operand nodes
    std::vector<std::string> strings;
  };
  /// Appends the node for `e` (and its operands); returns its index or -1 when unsupported.
  int Add(const expr::Expr& e, const Schema& input);
  Tri Eval(const ColumnBatch& batch, size_t i, uint32_t node) const;

  std::vector<Node> nodes_;  ///< nodes_[0] is the top
};

/// One leading filter step evaluated over the columns: the step's index in the plan, its
/// condition, and whether a true condition drops the record (ignore_if) or keeps it (filter).
struct ColumnFilterStep {
  size_t step = 0;
  bool drop_when_true = true;
  std::unique_ptr<ColumnCondition> condition;
};

/// Runs `steps` in order over the records of `batch` that decoded and are still selected: a
/// record a step drops is marked with that step's index (ColumnBatch::dropped_at) and leaves
/// the selection vector, as the row path would have ignored it at that step.
void ApplyColumnFilters(const std::vector<ColumnFilterStep>& steps, ColumnBatch* batch);

}  // namespace sluice
