// Nodes and builders for the operators: arithmetic, ||, comparisons, is null, in, and/or/not.

#include <cmath>
#include <compare>
#include <limits>
#include <unordered_set>

#include "expr/node.h"
#include "expr/shape.h"

namespace sluice::expr::internal {
namespace {

constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

std::string TypeStr(Type t) { return std::string(TypeName(t)); }

// ---- arithmetic ----

/// Computes int64 arithmetic; overflow and division by zero yield null.
template <ArithOp Op>
class IntArith final : public Node {
 public:
  IntArith(NodePtr lhs, NodePtr rhs)
      : Node(Type::kInt64), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}

  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value ta, tb;
    const Value& a = lhs_->Ref(row, ta);
    if (a.is_null()) return scratch = Value();
    const Value& b = rhs_->Ref(row, tb);
    if (b.is_null()) return scratch = Value();
    const int64_t x = a.int_value();
    const int64_t y = b.int_value();
    int64_t r = 0;
    if constexpr (Op == ArithOp::kAdd) {
      if (__builtin_add_overflow(x, y, &r)) return scratch = Value();
    } else if constexpr (Op == ArithOp::kSub) {
      if (__builtin_sub_overflow(x, y, &r)) return scratch = Value();
    } else if constexpr (Op == ArithOp::kMul) {
      if (__builtin_mul_overflow(x, y, &r)) return scratch = Value();
    } else if constexpr (Op == ArithOp::kDiv) {
      if (y == 0 || (x == kInt64Min && y == -1)) return scratch = Value();
      r = x / y;
    } else {
      if (y == 0) return scratch = Value();
      r = y == -1 ? 0 : x % y;
    }
    return scratch = Value::Int(r);
  }

 private:
  NodePtr lhs_, rhs_;
};

/// Computes double arithmetic on int64/double operands; division by zero yields null.
template <ArithOp Op>
class DoubleArith final : public Node {
 public:
  DoubleArith(NodePtr lhs, NodePtr rhs)
      : Node(Type::kDouble), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}

  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value ta, tb;
    const Value& a = lhs_->Ref(row, ta);
    if (a.is_null()) return scratch = Value();
    const Value& b = rhs_->Ref(row, tb);
    if (b.is_null()) return scratch = Value();
    const double x = NumberOf(a);
    const double y = NumberOf(b);
    double r;
    if constexpr (Op == ArithOp::kAdd) {
      r = x + y;
    } else if constexpr (Op == ArithOp::kSub) {
      r = x - y;
    } else if constexpr (Op == ArithOp::kMul) {
      r = x * y;
    } else if constexpr (Op == ArithOp::kDiv) {
      if (y == 0) return scratch = Value();
      r = x / y;
    } else {
      if (y == 0) return scratch = Value();
      r = std::fmod(x, y);
    }
    return scratch = Value::Double(r);
  }

 private:
  NodePtr lhs_, rhs_;
};

template <template <ArithOp> class N>
NodePtr MakeArith(ArithOp op, NodePtr lhs, NodePtr rhs) {
  switch (op) {
    case ArithOp::kAdd: return std::make_unique<N<ArithOp::kAdd>>(std::move(lhs), std::move(rhs));
    case ArithOp::kSub: return std::make_unique<N<ArithOp::kSub>>(std::move(lhs), std::move(rhs));
    case ArithOp::kMul: return std::make_unique<N<ArithOp::kMul>>(std::move(lhs), std::move(rhs));
    case ArithOp::kDiv: return std::make_unique<N<ArithOp::kDiv>>(std::move(lhs), std::move(rhs));
    case ArithOp::kMod: return std::make_unique<N<ArithOp::kMod>>(std::move(lhs), std::move(rhs));
  }
  return nullptr;
}

class NegateInt final : public Node {
 public:
  explicit NegateInt(NodePtr arg) : Node(Type::kInt64), arg_(std::move(arg)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value t;
    const Value& a = arg_->Ref(row, t);
    if (a.is_null() || a.int_value() == kInt64Min) return scratch = Value();
    return scratch = Value::Int(-a.int_value());
  }

 private:
  NodePtr arg_;
};

class NegateDouble final : public Node {
 public:
  explicit NegateDouble(NodePtr arg) : Node(Type::kDouble), arg_(std::move(arg)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value t;
    const Value& a = arg_->Ref(row, t);
    if (a.is_null()) return scratch = Value();
    return scratch = Value::Double(-a.double_value());
  }

 private:
  NodePtr arg_;
};

// ---- string concatenation ----

/// Appends the text of a non-null value to `out`.
void AppendText(const Value& v, std::string* out) {
  if (v.type() == Type::kString) {
    out->append(v.string_value());
  } else {
    out->append(v.ToString());
  }
}

/// Joins the operands of a chain `a || b || c`; any null operand makes the result null.
class ConcatOp final : public Node {
 public:
  ConcatOp() : Node(Type::kString) {}
  void Add(NodePtr part) { parts_.push_back(std::move(part)); }

  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    std::string out;
    for (const NodePtr& part : parts_) {
      Value t;
      const Value& v = part->Ref(row, t);
      if (v.is_null()) return scratch = Value();
      AppendText(v, &out);
    }
    return scratch = Value::String(std::move(out));
  }

 private:
  std::vector<NodePtr> parts_;
};

// ---- comparisons ----

struct IntDomain {
  static std::partial_ordering Cmp(const Value& a, const Value& b) {
    return a.int_value() <=> b.int_value();
  }
};
struct DoubleDomain {
  static std::partial_ordering Cmp(const Value& a, const Value& b) {
    return NumberOf(a) <=> NumberOf(b);
  }
};
struct StringDomain {
  static std::partial_ordering Cmp(const Value& a, const Value& b) {
    return a.string_value().compare(b.string_value()) <=> 0;
  }
};
struct TimeDomain {
  static std::partial_ordering Cmp(const Value& a, const Value& b) {
    return a.time_value().micros <=> b.time_value().micros;
  }
};
struct BoolDomain {
  static std::partial_ordering Cmp(const Value& a, const Value& b) {
    return a.bool_value() <=> b.bool_value();
  }
};

enum class Domain { kInt, kDouble, kString, kTime, kBool };

inline bool Holds(CmpOp op, std::partial_ordering c) {
  switch (op) {
    case CmpOp::kEq: return c == 0;
    case CmpOp::kNe: return c != 0;
    case CmpOp::kLt: return c < 0;
    case CmpOp::kLe: return c <= 0;
    case CmpOp::kGt: return c > 0;
    case CmpOp::kGe: return c >= 0;
  }
  return false;
}

template <typename D>
class Compare final : public BoolNode {
 public:
  Compare(CmpOp op, NodePtr lhs, NodePtr rhs)
      : op_(op), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}

  Tri Test(std::span<const Value> row) const override {
    Value ta, tb;
    const Value& a = lhs_->Ref(row, ta);
    if (a.is_null()) return Tri::kNull;
    const Value& b = rhs_->Ref(row, tb);
    if (b.is_null()) return Tri::kNull;
    return ToTri(Holds(op_, D::Cmp(a, b)));
  }

 private:
  CmpOp op_;
  NodePtr lhs_, rhs_;
};

/// Compares with a non-null constant on the right, the common shape (`track = 'click'`).
template <typename D>
class CompareConst final : public BoolNode {
 public:
  CompareConst(CmpOp op, NodePtr lhs, Value rhs)
      : op_(op), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}

  Tri Test(std::span<const Value> row) const override {
    Value ta;
    const Value& a = lhs_->Ref(row, ta);
    if (a.is_null()) return Tri::kNull;
    return ToTri(Holds(op_, D::Cmp(a, rhs_)));
  }
  CmpOp op() const { return op_; }
  const Node& lhs() const { return *lhs_; }
  const Value& rhs() const { return rhs_; }

 private:
  CmpOp op_;
  NodePtr lhs_;
  Value rhs_;
};

/// Returns the operator that gives the same result with the operands swapped.
CmpOp Mirror(CmpOp op) {
  switch (op) {
    case CmpOp::kLt: return CmpOp::kGt;
    case CmpOp::kLe: return CmpOp::kGe;
    case CmpOp::kGt: return CmpOp::kLt;
    case CmpOp::kGe: return CmpOp::kLe;
    default: return op;
  }
}

template <typename D>
NodePtr MakeCompare(CmpOp op, Operand lhs, Operand rhs) {
  if (rhs.constant && !lhs.constant) {
    return std::make_unique<CompareConst<D>>(op, std::move(lhs.node), rhs.value());
  }
  if (lhs.constant && !rhs.constant) {
    return std::make_unique<CompareConst<D>>(Mirror(op), std::move(rhs.node), lhs.value());
  }
  return std::make_unique<Compare<D>>(op, std::move(lhs.node), std::move(rhs.node));
}

/// Picks the comparison domain of two non-null types, or returns false when they do not mix.
bool PickDomain(Type a, Type b, Domain* out) {
  if (IsNumeric(a) && IsNumeric(b)) {
    *out = (a == Type::kInt64 && b == Type::kInt64) ? Domain::kInt : Domain::kDouble;
    return true;
  }
  if (a != b) return false;
  switch (a) {
    case Type::kString: *out = Domain::kString; return true;
    case Type::kTimestamp: *out = Domain::kTime; return true;
    case Type::kBool: *out = Domain::kBool; return true;
    default: return false;
  }
}

/// Lets a constant string stand for a timestamp when compared with one ("ts >= '2024-01-01'").
Status CoerceForTime(Type other, Operand* op, const Diag& diag) {
  if (other == Type::kTimestamp && op->type() == Type::kString && op->constant) {
    ASSIGN_OR_RETURN(*op, CoerceTo(std::move(*op), Type::kTimestamp, diag, "operand"));
  }
  return Status::OK();
}

std::string MismatchHint(Type a, Type b) {
  if ((a == Type::kString && IsNumeric(b)) || (b == Type::kString && IsNumeric(a))) {
    return "; convert the string with to_int() or to_double()";
  }
  if ((a == Type::kString && b == Type::kTimestamp) ||
      (b == Type::kString && a == Type::kTimestamp)) {
    return "; convert the string with parse_time()";
  }
  return "";
}

// ---- is null, in ----

class IsNull final : public BoolNode {
 public:
  IsNull(NodePtr arg, bool negate) : arg_(std::move(arg)), negate_(negate) {}
  Tri Test(std::span<const Value> row) const override {
    Value t;
    return ToTri(arg_->Ref(row, t).is_null() != negate_);
  }
  const Node& arg() const { return *arg_; }
  bool negate() const { return negate_; }

 private:
  NodePtr arg_;
  bool negate_;
};

/// Tests membership by comparing with each item in turn (short lists, or non-constant items).
template <typename D>
class InList final : public BoolNode {
 public:
  InList(NodePtr x, std::vector<NodePtr> items, bool negate)
      : x_(std::move(x)), items_(std::move(items)), negate_(negate) {}

  Tri Test(std::span<const Value> row) const override {
    Value tx;
    const Value& x = x_->Ref(row, tx);
    if (x.is_null()) return Tri::kNull;
    bool saw_null = false;
    for (const NodePtr& item : items_) {
      Value ti;
      const Value& v = item->Ref(row, ti);
      if (v.is_null()) {
        saw_null = true;
      } else if (D::Cmp(x, v) == 0) {
        return ToTri(!negate_);
      }
    }
    return saw_null ? Tri::kNull : ToTri(negate_);
  }

 private:
  NodePtr x_;
  std::vector<NodePtr> items_;
  bool negate_;
};

/// Tests membership in a short list of constants without evaluating nodes.
template <typename D>
class InConst final : public BoolNode {
 public:
  InConst(NodePtr x, std::vector<Value> items, bool has_null, bool negate)
      : x_(std::move(x)), items_(std::move(items)), has_null_(has_null), negate_(negate) {}

  Tri Test(std::span<const Value> row) const override {
    Value tx;
    const Value& x = x_->Ref(row, tx);
    if (x.is_null()) return Tri::kNull;
    for (const Value& v : items_) {
      if (D::Cmp(x, v) == 0) return ToTri(!negate_);
    }
    return has_null_ ? Tri::kNull : ToTri(negate_);
  }
  const Node& x() const { return *x_; }
  const std::vector<Value>& items() const { return items_; }
  bool has_null() const { return has_null_; }
  bool negate() const { return negate_; }

 private:
  NodePtr x_;
  std::vector<Value> items_;  ///< never null
  bool has_null_;
  bool negate_;
};

template <template <typename> class N, typename... Args>
NodePtr MakeForDomain(Type domain_type, Args&&... args) {
  switch (domain_type) {
    case Type::kInt64: return std::make_unique<N<IntDomain>>(std::forward<Args>(args)...);
    case Type::kDouble: return std::make_unique<N<DoubleDomain>>(std::forward<Args>(args)...);
    case Type::kString: return std::make_unique<N<StringDomain>>(std::forward<Args>(args)...);
    case Type::kTimestamp: return std::make_unique<N<TimeDomain>>(std::forward<Args>(args)...);
    case Type::kBool: return std::make_unique<N<BoolDomain>>(std::forward<Args>(args)...);
    case Type::kNull: break;
  }
  return nullptr;
}

struct ValueHash {
  size_t operator()(const Value& v) const { return v.Hash(); }
};

/// Tests membership in a long list of constants with a hash set.
class InSet final : public BoolNode {
 public:
  InSet(NodePtr x, std::unordered_set<Value, ValueHash> set, bool has_null, bool widen,
        bool negate)
      : x_(std::move(x)), set_(std::move(set)), has_null_(has_null), widen_(widen),
        negate_(negate) {}

  Tri Test(std::span<const Value> row) const override {
    Value tx;
    const Value& x = x_->Ref(row, tx);
    if (x.is_null()) return Tri::kNull;
    bool found;
    if (widen_ && x.type() == Type::kInt64) {
      found = set_.count(Value::Double(static_cast<double>(x.int_value()))) != 0;
    } else {
      found = set_.count(x) != 0;
    }
    if (found) return ToTri(!negate_);
    return has_null_ ? Tri::kNull : ToTri(negate_);
  }

 private:
  NodePtr x_;
  std::unordered_set<Value, ValueHash> set_;
  bool has_null_;
  bool widen_;  ///< the set holds doubles; look int64 values up as doubles
  bool negate_;
};

constexpr size_t kMinItemsForHashSet = 8;

// ---- logic ----

class And final : public BoolNode {
 public:
  And(NodePtr lhs, NodePtr rhs) : lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}
  Tri Test(std::span<const Value> row) const override {
    const Tri a = lhs_->Test(row);
    if (a == Tri::kFalse) return Tri::kFalse;
    const Tri b = rhs_->Test(row);
    if (b == Tri::kFalse) return Tri::kFalse;
    return (a == Tri::kNull || b == Tri::kNull) ? Tri::kNull : Tri::kTrue;
  }
  const Node& lhs() const { return *lhs_; }
  const Node& rhs() const { return *rhs_; }

 private:
  NodePtr lhs_, rhs_;
};

class Or final : public BoolNode {
 public:
  Or(NodePtr lhs, NodePtr rhs) : lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}
  Tri Test(std::span<const Value> row) const override {
    const Tri a = lhs_->Test(row);
    if (a == Tri::kTrue) return Tri::kTrue;
    const Tri b = rhs_->Test(row);
    if (b == Tri::kTrue) return Tri::kTrue;
    return (a == Tri::kNull || b == Tri::kNull) ? Tri::kNull : Tri::kFalse;
  }
  const Node& lhs() const { return *lhs_; }
  const Node& rhs() const { return *rhs_; }

 private:
  NodePtr lhs_, rhs_;
};

class Not final : public BoolNode {
 public:
  explicit Not(NodePtr arg) : arg_(std::move(arg)) {}
  Tri Test(std::span<const Value> row) const override {
    switch (arg_->Test(row)) {
      case Tri::kFalse: return Tri::kTrue;
      case Tri::kTrue: return Tri::kFalse;
      case Tri::kNull: return Tri::kNull;
    }
    return Tri::kNull;
  }
  const Node& arg() const { return *arg_; }

 private:
  NodePtr arg_;
};

Status ExpectBool(const Operand& op, std::string_view what, const Diag& diag) {
  if (op.type() == Type::kBool || op.type() == Type::kNull) return Status::OK();
  return diag.Error(op.pos, std::string(what) + " must be a condition (bool), got " +
                                TypeStr(op.type()));
}

}  // namespace

Result<Operand> BuildArith(ArithOp op, std::string_view op_text, Operand lhs, Operand rhs,
                           size_t op_pos, const Diag& diag) {
  const Type a = lhs.type();
  const Type b = rhs.type();
  const bool a_ok = IsNumeric(a) || a == Type::kNull;
  const bool b_ok = IsNumeric(b) || b == Type::kNull;
  if (!a_ok || !b_ok) {
    std::string hint;
    if (op == ArithOp::kAdd && (a == Type::kString || b == Type::kString)) {
      hint = "; use || or concat() to join strings";
    } else if (op == ArithOp::kSub && a == Type::kTimestamp && b == Type::kTimestamp) {
      hint = "; use seconds_between(a, b) for the seconds from a to b";
    } else if (a == Type::kString || b == Type::kString) {
      hint = "; convert the string with to_int() or to_double()";
    }
    return diag.Error(op_pos, "operator '" + std::string(op_text) + "' needs numbers, got " +
                                  TypeStr(a) + " and " + TypeStr(b) + hint);
  }
  if (a == Type::kNull || b == Type::kNull) {
    Type t = Type::kNull;
    if (!CommonType(a, b, &t)) t = Type::kNull;
    return MakeLiteral(t, Value(), lhs.pos);
  }
  const bool constant = lhs.constant && rhs.constant;
  NodePtr node = (a == Type::kInt64 && b == Type::kInt64)
                     ? MakeArith<IntArith>(op, std::move(lhs.node), std::move(rhs.node))
                     : MakeArith<DoubleArith>(op, std::move(lhs.node), std::move(rhs.node));
  return Finish(std::move(node), lhs.pos, constant);
}

Result<Operand> BuildNegate(Operand operand, size_t op_pos, const Diag& diag) {
  const Type t = operand.type();
  if (t == Type::kNull) return MakeLiteral(Type::kNull, Value(), op_pos);
  NodePtr node;
  if (t == Type::kInt64) {
    node = std::make_unique<NegateInt>(std::move(operand.node));
  } else if (t == Type::kDouble) {
    node = std::make_unique<NegateDouble>(std::move(operand.node));
  } else {
    return diag.Error(op_pos, "unary '-' needs a number, got " + TypeStr(t));
  }
  return Finish(std::move(node), op_pos, operand.constant);
}

Result<Operand> BuildConcatOp(Operand lhs, Operand rhs) {
  if (lhs.type() == Type::kNull || rhs.type() == Type::kNull) {
    return MakeLiteral(Type::kString, Value(), lhs.pos);
  }
  const bool constant = lhs.constant && rhs.constant;
  std::unique_ptr<ConcatOp> node;
  if (auto* chain = dynamic_cast<ConcatOp*>(lhs.node.get())) {
    lhs.node.release();
    node.reset(chain);
  } else {
    node = std::make_unique<ConcatOp>();
    node->Add(std::move(lhs.node));
  }
  node->Add(std::move(rhs.node));
  return Finish(std::move(node), lhs.pos, constant);
}

Result<Operand> BuildCompare(CmpOp op, std::string_view op_text, Operand lhs, Operand rhs,
                             size_t op_pos, const Diag& diag) {
  if (lhs.type() == Type::kNull || rhs.type() == Type::kNull) {
    return diag.Error(op_pos, "comparing with null with '" + std::string(op_text) +
                                  "' always gives null; use 'is null' or 'is not null'");
  }
  RETURN_IF_ERROR(CoerceForTime(lhs.type(), &rhs, diag));
  RETURN_IF_ERROR(CoerceForTime(rhs.type(), &lhs, diag));
  Domain domain;
  if (!PickDomain(lhs.type(), rhs.type(), &domain)) {
    return diag.Error(op_pos, "cannot compare " + TypeStr(lhs.type()) + " with " +
                                  TypeStr(rhs.type()) + MismatchHint(lhs.type(), rhs.type()));
  }
  const bool constant = lhs.constant && rhs.constant;
  const size_t pos = lhs.pos;
  if ((lhs.constant && lhs.value().is_null()) || (rhs.constant && rhs.value().is_null())) {
    return MakeLiteral(Type::kBool, Value(), pos);  // e.g. clicks > 1 / 0
  }
  NodePtr node;
  switch (domain) {
    case Domain::kInt: node = MakeCompare<IntDomain>(op, std::move(lhs), std::move(rhs)); break;
    case Domain::kDouble:
      node = MakeCompare<DoubleDomain>(op, std::move(lhs), std::move(rhs));
      break;
    case Domain::kString:
      node = MakeCompare<StringDomain>(op, std::move(lhs), std::move(rhs));
      break;
    case Domain::kTime: node = MakeCompare<TimeDomain>(op, std::move(lhs), std::move(rhs)); break;
    case Domain::kBool: node = MakeCompare<BoolDomain>(op, std::move(lhs), std::move(rhs)); break;
  }
  return Finish(std::move(node), pos, constant);
}

Result<Operand> BuildIsNull(Operand operand, bool negate) {
  return Finish(std::make_unique<IsNull>(std::move(operand.node), negate), operand.pos,
                operand.constant);
}

Result<Operand> BuildIn(Operand x, std::vector<Operand> items, bool negate, const Diag& diag) {
  const size_t pos = x.pos;
  if (x.type() == Type::kNull) return MakeLiteral(Type::kBool, Value(), pos);
  bool constant = x.constant;
  bool items_constant = true;
  Type domain_type = x.type();
  for (Operand& item : items) {
    if (item.type() == Type::kNull) continue;
    RETURN_IF_ERROR(CoerceForTime(x.type(), &item, diag));
    Domain d;
    if (!PickDomain(x.type(), item.type(), &d)) {
      return diag.Error(item.pos, "cannot compare " + TypeStr(x.type()) + " with " +
                                      TypeStr(item.type()) + " in the 'in' list" +
                                      MismatchHint(x.type(), item.type()));
    }
    if (d == Domain::kDouble) domain_type = Type::kDouble;
    items_constant = items_constant && item.constant;
  }
  constant = constant && items_constant;

  if (items_constant && !constant && items.size() >= kMinItemsForHashSet) {
    std::unordered_set<Value, ValueHash> set;
    bool has_null = false;
    const bool widen = domain_type == Type::kDouble;
    for (const Operand& item : items) {
      const Value& v = item.value();
      if (v.is_null()) {
        has_null = true;
      } else if (widen && v.type() == Type::kInt64) {
        set.insert(Value::Double(static_cast<double>(v.int_value())));
      } else {
        set.insert(v);
      }
    }
    return Finish(std::make_unique<InSet>(std::move(x.node), std::move(set), has_null, widen,
                                          negate),
                  pos, false);
  }

  if (items_constant && !constant) {
    std::vector<Value> values;
    bool has_null = false;
    for (const Operand& item : items) {
      if (item.value().is_null()) {
        has_null = true;
      } else {
        values.push_back(item.value());
      }
    }
    return Finish(MakeForDomain<InConst>(domain_type, std::move(x.node), std::move(values),
                                         has_null, negate),
                  pos, false);
  }
  std::vector<NodePtr> nodes;
  nodes.reserve(items.size());
  for (Operand& item : items) nodes.push_back(std::move(item.node));
  return Finish(MakeForDomain<InList>(domain_type, std::move(x.node), std::move(nodes), negate),
                pos, constant);
}

Result<Operand> BuildAnd(Operand lhs, Operand rhs, const Diag& diag) {
  RETURN_IF_ERROR(ExpectBool(lhs, "the left side of 'and'", diag));
  RETURN_IF_ERROR(ExpectBool(rhs, "the right side of 'and'", diag));
  const bool constant = lhs.constant && rhs.constant;
  const size_t pos = lhs.pos;
  return Finish(std::make_unique<And>(std::move(lhs.node), std::move(rhs.node)), pos, constant);
}

Result<Operand> BuildOr(Operand lhs, Operand rhs, const Diag& diag) {
  RETURN_IF_ERROR(ExpectBool(lhs, "the left side of 'or'", diag));
  RETURN_IF_ERROR(ExpectBool(rhs, "the right side of 'or'", diag));
  const bool constant = lhs.constant && rhs.constant;
  const size_t pos = lhs.pos;
  return Finish(std::make_unique<Or>(std::move(lhs.node), std::move(rhs.node)), pos, constant);
}

Result<Operand> BuildNot(Operand operand, size_t op_pos, const Diag& diag) {
  RETURN_IF_ERROR(ExpectBool(operand, "the operand of 'not'", diag));
  return Finish(std::make_unique<Not>(std::move(operand.node)), op_pos, operand.constant);
}

Shape::Cmp ShapeCmp(CmpOp op) {
  switch (op) {
    case CmpOp::kEq: return Shape::Cmp::kEq;
    case CmpOp::kNe: return Shape::Cmp::kNe;
    case CmpOp::kLt: return Shape::Cmp::kLt;
    case CmpOp::kLe: return Shape::Cmp::kLe;
    case CmpOp::kGt: return Shape::Cmp::kGt;
    case CmpOp::kGe: return Shape::Cmp::kGe;
  }
  return Shape::Cmp::kEq;
}

/// A comparison with a constant in the int64, double or timestamp domain; the constant is of a
/// type the domain reads (int64 or double for kDouble), or the shape stays kOther.
template <typename D>
void DescribeCompareConst(const CompareConst<D>& c, Type domain, Shape* out) {
  const Type t = c.rhs().type();
  const bool fits =
      domain == Type::kDouble ? (t == Type::kInt64 || t == Type::kDouble) : t == domain;
  if (!fits) return;
  out->kind = Shape::Kind::kCompareConst;
  out->cmp = ShapeCmp(c.op());
  out->domain = domain;
  out->a = &c.lhs();
  out->value = c.rhs();
}

Shape DescribeNode(const Node& n) {
  Shape out;
  if (const auto* f = dynamic_cast<const FieldRef*>(&n)) {
    out.kind = Shape::Kind::kField;
    out.slot = f->slot();
  } else if (const auto* x = dynamic_cast<const IsNull*>(&n)) {
    out.kind = Shape::Kind::kIsNull;
    out.negate = x->negate();
    out.a = &x->arg();
  } else if (const auto* c = dynamic_cast<const CompareConst<StringDomain>*>(&n)) {
    if ((c->op() == CmpOp::kEq || c->op() == CmpOp::kNe) && c->rhs().type() == Type::kString) {
      out.kind = Shape::Kind::kStringEq;
      out.negate = c->op() == CmpOp::kNe;
      out.a = &c->lhs();
      out.strings.push_back(c->rhs().string_value());
    }
  } else if (const auto* ci = dynamic_cast<const CompareConst<IntDomain>*>(&n)) {
    DescribeCompareConst(*ci, Type::kInt64, &out);
  } else if (const auto* cd = dynamic_cast<const CompareConst<DoubleDomain>*>(&n)) {
    DescribeCompareConst(*cd, Type::kDouble, &out);
  } else if (const auto* ct = dynamic_cast<const CompareConst<TimeDomain>*>(&n)) {
    DescribeCompareConst(*ct, Type::kTimestamp, &out);
  } else if (const auto* in = dynamic_cast<const InConst<StringDomain>*>(&n)) {
    out.kind = Shape::Kind::kStringIn;
    out.negate = in->negate();
    out.has_null = in->has_null();
    out.a = &in->x();
    for (const Value& v : in->items()) {
      if (v.type() != Type::kString) return Shape();
      out.strings.push_back(v.string_value());
    }
  } else if (const auto* a = dynamic_cast<const And*>(&n)) {
    out.kind = Shape::Kind::kAnd;
    out.a = &a->lhs();
    out.b = &a->rhs();
  } else if (const auto* o = dynamic_cast<const Or*>(&n)) {
    out.kind = Shape::Kind::kOr;
    out.a = &o->lhs();
    out.b = &o->rhs();
  } else if (const auto* t = dynamic_cast<const Not*>(&n)) {
    out.kind = Shape::Kind::kNot;
    out.a = &t->arg();
  } else if (const auto* l = dynamic_cast<const Literal*>(&n)) {
    out.kind = Shape::Kind::kLiteral;
    out.value = l->value();
  } else {
    DescribeCall(n, &out);
  }
  return out;
}

}  // namespace sluice::expr::internal

namespace sluice::expr {

Shape Describe(const Expr& e) {
  const auto* n = dynamic_cast<const internal::Node*>(&e);
  return n == nullptr ? Shape() : internal::DescribeNode(*n);
}

}  // namespace sluice::expr
