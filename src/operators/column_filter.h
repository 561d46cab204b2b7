#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/schema.h"
#include "expr/expr.h"
#include "expr/shape.h"
#include "operators/batch.h"
#include "operators/dimension.h"

namespace sluice {

/// A condition evaluated over a ColumnBatch's typed columns instead of rows (issue 19): the
/// node kinds expr::Describe() names (is null / is not null of a field, a string field or
/// trim() of one = or <> a constant, in / not in a list of constant strings, an int64, double
/// or timestamp field compared with a constant, and, or, not), three-valued exactly as the row
/// path's EvalTrue() (null compares to null; `in` with a null item and no match is null; NaN
/// compares unordered), reading the batch's columns (declared fields, and fields derived over
/// the columns).
class ColumnCondition {
 public:
  /// Returns null when a node of `condition` is of another kind or reads a slot that has no
  /// column: `columns[slot]` is the type of the column the batches will hold for a working-row
  /// slot, kNull for none.
  static std::unique_ptr<ColumnCondition> Make(const expr::Expr& condition,
                                               std::span<const Type> columns);
  /// The same with the columns of the declared fields of `input` alone.
  static std::unique_ptr<ColumnCondition> Make(const expr::Expr& condition, const Schema& input);

  /// The condition for record `i`: true only when it holds (not null, not false), as EvalTrue().
  bool True(const ColumnBatch& batch, size_t i) const { return Eval(batch, i, 0) == kTrue; }

 private:
  enum Tri : uint8_t { kFalse, kTrue, kNull };
  enum class Op : uint8_t { kIsNull, kStringEq, kStringIn, kCompare, kAnd, kOr, kNot };
  struct Node {
    Op op = Op::kIsNull;
    bool negate = false;
    bool has_null = false;
    bool trim = false;      ///< kStringEq, kStringIn: compare trim() of the column's string
    uint32_t slot = 0;      ///< kIsNull, kStringEq, kStringIn, kCompare: the column read
    uint32_t a = 0, b = 0;  ///< kAnd, kOr, kNot: operand nodes
    std::vector<std::string> strings;
    /// kCompare: the operator, the domain (kInt64, kDouble, kTimestamp) and the constant in
    /// it (ints for kInt64 and kTimestamp, number for kDouble)
    expr::Shape::Cmp cmp = expr::Shape::Cmp::kEq;
    Type domain = Type::kNull;
    int64_t ints = 0;
    double number = 0;
  };
  /// Appends the node for `e` (and its operands); returns its index or -1 when unsupported.
  int Add(const expr::Expr& e, std::span<const Type> columns);
  Tri Eval(const ColumnBatch& batch, size_t i, uint32_t node) const;

  std::vector<Node> nodes_;  ///< nodes_[0] is the top
};

/// An int64, timestamp or double value computed over a ColumnBatch's columns instead of rows
/// (issue 19): the node kinds the `let`s of recruitment and viewlog need (expr::Describe: a
/// field, a constant, coalesce() without conversions, timeuuid_time() and parse_time() in any
/// of its formats of a string field; a double only as seconds_between() of two such timestamp
/// values), each exactly as the row path's evaluator computes it (the same parsing and
/// arithmetic functions, on the same bytes).
class ColumnValue {
 public:
  /// Returns null when `value` is not of type int64, timestamp or double, or a node of it is of
  /// another kind or reads a slot without a column of its type (`columns` as for
  /// ColumnCondition).
  static std::unique_ptr<ColumnValue> Make(const expr::Expr& value, std::span<const Type> columns);

  /// Computes the value of record `i` into `*out`; returns false when it is null. For an int64
  /// or timestamp value (type()).
  bool Eval(const ColumnBatch& batch, size_t i, int64_t* out) const { return Eval(batch, i, 0, out); }
  /// The same for a double value (type() kDouble).
  bool EvalDouble(const ColumnBatch& batch, size_t i, double* out) const;
  Type type() const { return type_; }
  /// True when the value is `coalesce(field, constant)` (recruitment's `coalesce(bid, 0)`),
  /// which ApplyColumnSteps computes in one loop without walking the nodes.
  bool FieldOrConstant(uint32_t* slot, int64_t* constant) const;

 private:
  enum class Op : uint8_t {
    kField,
    kConstant,
    kCoalesce,
    kTimeUuidTime,
    kParseTime,       ///< either format (ParseTimestamp)
    kParseIsoTime,    ///< parse_time(s, 'iso')
    kParseUsTime,     ///< parse_time(s, 'us')
    kSecondsBetween,  ///< the top node of a double value
  };
  struct Node {
    Op op = Op::kField;
    uint32_t slot = 0;        ///< kField, kTimeUuidTime, kParseTime...: the column read
    int64_t constant = 0;     ///< kConstant
    std::vector<uint32_t> args;  ///< kCoalesce, kSecondsBetween: operand nodes
  };
  /// Appends the node for `e` (and its operands) of result type `want`; returns its index or
  /// -1 when unsupported.
  int Add(const expr::Expr& e, Type want, std::span<const Type> columns);
  bool Eval(const ColumnBatch& batch, size_t i, uint32_t node, int64_t* out) const;

  Type type_ = Type::kNull;
  std::vector<Node> nodes_;  ///< nodes_[0] is the top
};

/// One leading step evaluated over the columns: the step's index in the plan and what it does.
struct ColumnStep {
  enum class Kind : uint8_t {
    kIgnoreIf,      ///< a true condition drops the record (counted as ignored)
    kFilter,        ///< a condition not true drops the record (counted as ignored)
    kDeadLetterIf,  ///< a true condition dead-letters the record with `reason`
    kLet,           ///< sets column `slot` to `value`
    /// Looks column `slot`'s value up in the step's dimension snapshot and copies the found
    /// row's `fields` into their columns. A record whose key is null or not found leaves the
    /// selection marked with the step (ColumnBatch::dropped_at), like a dropped one: the worker
    /// runs this step and the ones after it on the record's row, so a miss (its count, default,
    /// drop or dead letter and reason) is the row path's by construction.
    kLookup,
  };
  /// kLookup: one field copied, from the dimension row's `column` into the batch's `slot`.
  struct LookupField {
    size_t slot = 0;
    size_t column = 0;
  };
  size_t step = 0;
  Kind kind = Kind::kIgnoreIf;
  std::unique_ptr<ColumnCondition> condition;  ///< the condition kinds
  std::unique_ptr<ColumnValue> value;          ///< kLet
  size_t slot = 0;  ///< kLet: the working-row slot it sets; kLookup: the key's column
  std::string reason;                          ///< kDeadLetterIf
  std::vector<LookupField> fields;             ///< kLookup
};

/// Runs `steps` in order over the records of `batch` that decoded and are still selected: a
/// record a condition step drops is marked with that step's index (ColumnBatch::dropped_at)
/// and leaves the selection vector, as the row path would have ignored or dead-lettered it at
/// that step; a `let` sets its column for the records still selected. The columns a `let`
/// sets must exist in the batch (ColumnBatch::SetDerived for slots past the declared fields).
/// A lookup reads `snapshots[step]`, the snapshot the row path would use for this batch; the
/// string columns it fills view that snapshot's values, so it must outlive the batch's use.
void ApplyColumnSteps(const std::vector<ColumnStep>& steps, ColumnBatch* batch,
                      std::span<const std::shared_ptr<const DimensionTable>> snapshots = {});

}  // namespace sluice
