#include "operators/column_filter.h"

#include "expr/shape.h"

namespace sluice {

std::unique_ptr<ColumnCondition> ColumnCondition::Make(const expr::Expr& condition,
                                                       const Schema& input) {
  std::unique_ptr<ColumnCondition> c(new ColumnCondition());
  if (c->Add(condition, input) != 0) return nullptr;
  return c;
}

int ColumnCondition::Add(const expr::Expr& e, const Schema& input) {
  const expr::Shape shape = expr::Describe(e);
  using Kind = expr::Shape::Kind;
  const int index = static_cast<int>(nodes_.size());
  nodes_.emplace_back();
  auto field_of = [&](const expr::Expr* operand, Type want, uint32_t* slot) {
    if (operand == nullptr) return false;
    const expr::Shape s = expr::Describe(*operand);
    if (s.kind != Kind::kField || s.slot >= input.size()) return false;
    if (want != Type::kNull && input.field(s.slot).type != want) return false;
    *slot = static_cast<uint32_t>(s.slot);
    return true;
  };
  Node n;
  n.negate = shape.negate;
  n.has_null = shape.has_null;
  switch (shape.kind) {
    case Kind::kIsNull:
      n.op = Op::kIsNull;
      if (!field_of(shape.a, Type::kNull, &n.slot)) return -1;
      break;
    case Kind::kStringEq:
    case Kind::kStringIn:
      n.op = shape.kind == Kind::kStringEq ? Op::kStringEq : Op::kStringIn;
      if (!field_of(shape.a, Type::kString, &n.slot)) return -1;
      n.strings = shape.strings;
      break;
    case Kind::kAnd:
    case Kind::kOr: {
      n.op = shape.kind == Kind::kAnd ? Op::kAnd : Op::kOr;
      const int a = Add(*shape.a, input);
      if (a < 0) return -1;
      const int b = Add(*shape.b, input);
      if (b < 0) return -1;
      n.a = static_cast<uint32_t>(a);
      n.b = static_cast<uint32_t>(b);
      break;
    }
    case Kind::kNot: {
      n.op = Op::kNot;
      const int a = Add(*shape.a, input);
      if (a < 0) return -1;
      n.a = static_cast<uint32_t>(a);
      break;
    }
    default:
      return -1;
  }
  nodes_[static_cast<size_t>(index)] = std::move(n);
  return index;
}

ColumnCondition::Tri ColumnCondition::Eval(const ColumnBatch& batch, size_t i, uint32_t node) const {
  const Node& n = nodes_[node];
  switch (n.op) {
    case Op::kIsNull: {
      const bool is_null = batch.column(n.slot).valid[i] == 0;
      return is_null != n.negate ? kTrue : kFalse;
    }
    case Op::kStringEq: {
      const Column& c = batch.column(n.slot);
      if (c.valid[i] == 0) return kNull;
      const bool equal = c.strings[i] == n.strings[0];
      return equal != n.negate ? kTrue : kFalse;
    }
    case Op::kStringIn: {
      const Column& c = batch.column(n.slot);
      if (c.valid[i] == 0) return kNull;
      for (const std::string& s : n.strings) {
        if (c.strings[i] == s) return n.negate ? kFalse : kTrue;
      }
      if (n.has_null) return kNull;
      return n.negate ? kTrue : kFalse;
    }
    case Op::kAnd: {
      const Tri a = Eval(batch, i, n.a);
      if (a == kFalse) return kFalse;
      const Tri b = Eval(batch, i, n.b);
      if (b == kFalse) return kFalse;
      return (a == kNull || b == kNull) ? kNull : kTrue;
    }
    case Op::kOr: {
      const Tri a = Eval(batch, i, n.a);
      if (a == kTrue) return kTrue;
      const Tri b = Eval(batch, i, n.b);
      if (b == kTrue) return kTrue;
      return (a == kNull || b == kNull) ? kNull : kFalse;
    }
    case Op::kNot:
      switch (Eval(batch, i, n.a)) {
        case kFalse: return kTrue;
        case kTrue: return kFalse;
        case kNull: return kNull;
      }
      return kNull;
  }
  return kNull;
}

void ApplyColumnFilters(const std::vector<ColumnFilterStep>& steps, ColumnBatch* batch) {
  std::vector<uint32_t>& selection = batch->selection();
  size_t kept = 0;
  for (uint32_t i : selection) {
    if (batch->failed(i)) continue;
    bool keep = true;
    for (const ColumnFilterStep& s : steps) {
      if (s.condition->True(*batch, i) == s.drop_when_true) {
        batch->MarkDropped(i, static_cast<int32_t>(s.step));
        keep = false;
        break;
      }
    }
    if (keep) selection[kept++] = i;
  }
  selection.resize(kept);
}

}  // namespace sluice
