#pragma once

// Internal to src/expr: the compiled node tree and the helpers the parser and the function
// table share. Nothing outside src/expr should include this header.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/value.h"
#include "expr/expr.h"
#include "expr/shape.h"

namespace sluice::expr::internal {

/// Holds the result of a condition under SQL's three-valued logic.
enum class Tri : uint8_t { kFalse, kTrue, kNull };

inline Tri ToTri(bool b) { return b ? Tri::kTrue : Tri::kFalse; }

/// Is the base of every compiled node.
///
/// Invariant relied on by all nodes: the value a node yields is either null or of the node's
/// static type(), so parents only test for null before using the typed accessors.
class Node : public Expr {
 public:
  explicit Node(Type type) : type_(type) {}

  Type type() const final { return type_; }
  Value Eval(std::span<const Value> row) const final;
  const Value& EvalRef(std::span<const Value> row, Value& scratch) const final {
    return Ref(row, scratch);
  }
  bool EvalTrue(std::span<const Value> row) const final { return Test(row) == Tri::kTrue; }

  /// Evaluates and returns a reference to the result: either a value that outlives the call
  /// (a row slot, a literal) or `scratch`, which receives computed values. Lets parents read
  /// field strings without copying them.
  virtual const Value& Ref(std::span<const Value> row, Value& scratch) const = 0;

  /// Evaluates a bool-typed node without building a Value.
  virtual Tri Test(std::span<const Value> row) const;

 private:
  Type type_;
};

using NodePtr = std::unique_ptr<Node>;

/// Is the base of nodes whose natural result is a Tri (comparisons, logic).
class BoolNode : public Node {
 public:
  BoolNode() : Node(Type::kBool) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const final;
};

/// Yields a constant. A typed null (type() != kNull, value null) comes from constant folding.
class Literal final : public Node {
 public:
  Literal(Type type, Value value) : Node(type), value_(std::move(value)) {}
  const Value& Ref(std::span<const Value>, Value&) const override { return value_; }
  const Value& value() const { return value_; }

 private:
  Value value_;
};

/// Yields the row slot of a field. A value whose type does not match the schema yields null
/// (an int64 in a double field is widened), so the node invariant holds even for bad rows.
class FieldRef final : public Node {
 public:
  FieldRef(Type type, size_t slot) : Node(type), slot_(slot) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override;
  size_t slot() const { return slot_; }

 private:
  size_t slot_;
};

/// Formats compile errors as "FILE:LINE:COL: message".
class Diag {
 public:
  Diag(std::string_view text, const SourceLocation& where) : text_(text), where_(where) {}

  /// Returns an InvalidArgument (type and name errors) pointing at byte `pos` of the text.
  Status Error(size_t pos, std::string_view message) const;
  /// Returns a ParseError (syntax errors) pointing at byte `pos` of the text.
  Status SyntaxError(size_t pos, std::string_view message) const;
  /// Returns the column that error messages give for byte `pos`.
  int Column(size_t pos) const;

 private:
  void LineColumn(size_t pos, int* line, int* column) const;
  std::string Locate(size_t pos) const;

  std::string_view text_;
  const SourceLocation& where_;
};

/// Carries a compiled sub-expression through the parser together with where it starts.
struct Operand {
  NodePtr node;
  size_t pos = 0;
  bool constant = false;  ///< node is a Literal
  int depth = 1;          ///< height of the node tree, bounded by the parser

  Type type() const { return node->type(); }
  /// Returns the literal's value; only for constant operands.
  const Value& value() const { return static_cast<const Literal&>(*node).value(); }
};

/// Returns a constant operand.
Operand MakeLiteral(Type type, Value value, size_t pos);

/// Returns a non-constant operand, or its folded value when `all_inputs_constant`: nodes are
/// pure, so a node over constants is evaluated once at compile time.
Operand Finish(NodePtr node, size_t pos, bool all_inputs_constant);

inline bool IsNumeric(Type t) { return t == Type::kInt64 || t == Type::kDouble; }

/// Converts `op` to `target` where that is lossless and implicit: null to any type, int64 to
/// double, a constant string to a timestamp. Fails otherwise; `what` names the operand.
Result<Operand> CoerceTo(Operand op, Type target, const Diag& diag, std::string_view what);

/// Returns the type that both `a` and `b` convert to (int64 + double -> double; null + T -> T),
/// or false when there is none.
bool CommonType(Type a, Type b, Type* out);

/// Reads an int64 or double value as a double.
inline double NumberOf(const Value& v) {
  return v.type() == Type::kInt64 ? static_cast<double>(v.int_value()) : v.double_value();
}

/// Parses a whole string as a base-10 int64 (optional sign, digits only, no spaces).
bool ParseStrictInt(std::string_view s, int64_t* out);

// Operator builders, called by the parser. `op_pos` is where the operator is written.

enum class ArithOp { kAdd, kSub, kMul, kDiv, kMod };
enum class CmpOp { kEq, kNe, kLt, kLe, kGt, kGe };

Result<Operand> BuildArith(ArithOp op, std::string_view op_text, Operand lhs, Operand rhs,
                           size_t op_pos, const Diag& diag);
Result<Operand> BuildNegate(Operand operand, size_t op_pos, const Diag& diag);
Result<Operand> BuildConcatOp(Operand lhs, Operand rhs);
Result<Operand> BuildCompare(CmpOp op, std::string_view op_text, Operand lhs, Operand rhs,
                             size_t op_pos, const Diag& diag);
Result<Operand> BuildIsNull(Operand operand, bool negate);
Result<Operand> BuildIn(Operand x, std::vector<Operand> items, bool negate, const Diag& diag);
Result<Operand> BuildAnd(Operand lhs, Operand rhs, const Diag& diag);
Result<Operand> BuildOr(Operand lhs, Operand rhs, const Diag& diag);
Result<Operand> BuildNot(Operand operand, size_t op_pos, const Diag& diag);

/// Describes a function call node for Describe() (coalesce, timeuuid_time, one-argument
/// parse_time); returns false, leaving `*out` kOther, for any other node.
bool DescribeCall(const Node& n, Shape* out);

}  // namespace sluice::expr::internal
