#include "operators/column_filter.h"

#include <compare>
#include <optional>
#include <string_view>

#include "core/time.h"

namespace sluice {

namespace {

std::vector<Type> DeclaredColumns(const Schema& input) {
  std::vector<Type> out;
  for (size_t i = 0; i < input.size(); ++i) out.push_back(input.field(i).type);
  return out;
}

bool IntsColumn(Type t) { return t == Type::kInt64 || t == Type::kTimestamp; }

/// The row path's comparison result for `c` (expr's Holds()): unordered (NaN) holds for <> only.
bool Holds(expr::Shape::Cmp op, std::partial_ordering c) {
  using Cmp = expr::Shape::Cmp;
  switch (op) {
    case Cmp::kEq: return c == 0;
    case Cmp::kNe: return c != 0;
    case Cmp::kLt: return c < 0;
    case Cmp::kLe: return c <= 0;
    case Cmp::kGt: return c > 0;
    case Cmp::kGe: return c >= 0;
  }
  return false;
}

}  // namespace

std::unique_ptr<ColumnCondition> ColumnCondition::Make(const expr::Expr& condition,
                                                       std::span<const Type> columns) {
  std::unique_ptr<ColumnCondition> c(new ColumnCondition());
  if (c->Add(condition, columns) != 0) return nullptr;
  return c;
}

std::unique_ptr<ColumnCondition> ColumnCondition::Make(const expr::Expr& condition,
                                                       const Schema& input) {
  const std::vector<Type> columns = DeclaredColumns(input);
  return Make(condition, columns);
}

int ColumnCondition::Add(const expr::Expr& e, std::span<const Type> columns) {
  const expr::Shape shape = expr::Describe(e);
  using Kind = expr::Shape::Kind;
  const int index = static_cast<int>(nodes_.size());
  nodes_.emplace_back();
  auto field_of = [&](const expr::Expr* operand, Type want, uint32_t* slot) {
    if (operand == nullptr) return false;
    const expr::Shape s = expr::Describe(*operand);
    if (s.kind != Kind::kField || s.slot >= columns.size() || columns[s.slot] == Type::kNull) {
      return false;
    }
    if (want != Type::kNull && columns[s.slot] != want) return false;
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
    case Kind::kStringIn: {
      n.op = shape.kind == Kind::kStringEq ? Op::kStringEq : Op::kStringIn;
      const expr::Expr* operand = shape.a;
      if (operand != nullptr) {
        const expr::Shape inner = expr::Describe(*operand);
        if (inner.kind == Kind::kTrim) {  // trim(field) = 'x': the field's string, trimmed
          n.trim = true;
          operand = inner.a;
        }
      }
      if (!field_of(operand, Type::kString, &n.slot)) return -1;
      n.strings = shape.strings;
      break;
    }
    case Kind::kCompareConst: {
      n.op = Op::kCompare;
      n.cmp = shape.cmp;
      n.domain = shape.domain;
      if (!field_of(shape.a, Type::kNull, &n.slot)) return -1;
      const Type column = columns[n.slot];
      if (column != shape.a->type()) return -1;
      if (shape.domain == Type::kDouble) {
        if (column != Type::kInt64 && column != Type::kDouble) return -1;
        n.number = shape.value.type() == Type::kInt64 ? static_cast<double>(shape.value.int_value())
                                                      : shape.value.double_value();
      } else if (shape.domain == Type::kInt64 && column == Type::kInt64) {
        n.ints = shape.value.int_value();
      } else if (shape.domain == Type::kTimestamp && column == Type::kTimestamp) {
        n.ints = shape.value.time_value().micros;
      } else {
        return -1;
      }
      break;
    }
    case Kind::kAnd:
    case Kind::kOr: {
      n.op = shape.kind == Kind::kAnd ? Op::kAnd : Op::kOr;
      const int a = Add(*shape.a, columns);
      if (a < 0) return -1;
      const int b = Add(*shape.b, columns);
      if (b < 0) return -1;
      n.a = static_cast<uint32_t>(a);
      n.b = static_cast<uint32_t>(b);
      break;
    }
    case Kind::kNot: {
      n.op = Op::kNot;
      const int a = Add(*shape.a, columns);
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
      const std::string_view v = n.trim ? expr::TrimSpaces(c.strings[i]) : c.strings[i];
      const bool equal = v == n.strings[0];
      return equal != n.negate ? kTrue : kFalse;
    }
    case Op::kStringIn: {
      const Column& c = batch.column(n.slot);
      if (c.valid[i] == 0) return kNull;
      const std::string_view v = n.trim ? expr::TrimSpaces(c.strings[i]) : c.strings[i];
      for (const std::string& s : n.strings) {
        if (v == s) return n.negate ? kFalse : kTrue;
      }
      if (n.has_null) return kNull;
      return n.negate ? kTrue : kFalse;
    }
    case Op::kCompare: {
      const Column& c = batch.column(n.slot);
      if (c.valid[i] == 0) return kNull;
      std::partial_ordering order = std::partial_ordering::equivalent;
      if (n.domain == Type::kDouble) {
        const double v = c.type == Type::kInt64 ? static_cast<double>(c.ints[i]) : c.doubles[i];
        order = v <=> n.number;
      } else {
        order = c.ints[i] <=> n.ints;
      }
      return Holds(n.cmp, order) ? kTrue : kFalse;
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

std::unique_ptr<ColumnValue> ColumnValue::Make(const expr::Expr& value,
                                               std::span<const Type> columns) {
  if (!IntsColumn(value.type()) && value.type() != Type::kDouble) return nullptr;
  std::unique_ptr<ColumnValue> v(new ColumnValue());
  v->type_ = value.type();
  if (v->Add(value, value.type(), columns) != 0) return nullptr;
  return v;
}

int ColumnValue::Add(const expr::Expr& e, Type want, std::span<const Type> columns) {
  if (e.type() != want) return -1;  // a conversion would be needed
  const expr::Shape shape = expr::Describe(e);
  using Kind = expr::Shape::Kind;
  // The one double value computed over columns is seconds_between() (EvalDouble).
  if (want == Type::kDouble && shape.kind != Kind::kSecondsBetween) return -1;
  const int index = static_cast<int>(nodes_.size());
  nodes_.emplace_back();
  auto column_of = [&](const expr::Expr* operand, Type type, uint32_t* slot) {
    if (operand == nullptr) return false;
    const expr::Shape s = expr::Describe(*operand);
    if (s.kind != Kind::kField || s.slot >= columns.size() || columns[s.slot] != type) return false;
    if (operand->type() != type) return false;
    *slot = static_cast<uint32_t>(s.slot);
    return true;
  };
  Node n;
  switch (shape.kind) {
    case Kind::kField:
      n.op = Op::kField;
      if (!column_of(&e, want, &n.slot)) return -1;
      break;
    case Kind::kLiteral:
      // A typed null never reaches here: coalesce() drops null constants, and a null `let`
      // value is of type kNull.
      n.op = Op::kConstant;
      if (shape.value.type() == Type::kInt64 && want == Type::kInt64) {
        n.constant = shape.value.int_value();
      } else if (shape.value.type() == Type::kTimestamp && want == Type::kTimestamp) {
        n.constant = shape.value.time_value().micros;
      } else {
        return -1;
      }
      break;
    case Kind::kCoalesce:
      n.op = Op::kCoalesce;
      for (const expr::Expr* arg : shape.args) {
        const int a = Add(*arg, want, columns);
        if (a < 0) return -1;
        n.args.push_back(static_cast<uint32_t>(a));
      }
      break;
    case Kind::kTimeUuidTime:
    case Kind::kParseTime:
      if (want != Type::kTimestamp) return -1;
      if (shape.kind == Kind::kTimeUuidTime) {
        n.op = Op::kTimeUuidTime;
      } else if (shape.time_format == expr::Shape::TimeFormat::kIso) {
        n.op = Op::kParseIsoTime;
      } else if (shape.time_format == expr::Shape::TimeFormat::kUs) {
        n.op = Op::kParseUsTime;
      } else {
        n.op = Op::kParseTime;
      }
      if (!column_of(shape.a, Type::kString, &n.slot)) return -1;
      break;
    case Kind::kSecondsBetween: {
      // Only as the top node: the one double value computed over columns.
      if (want != Type::kDouble || index != 0) return -1;
      n.op = Op::kSecondsBetween;
      for (const expr::Expr* arg : {shape.a, shape.b}) {
        const int a = Add(*arg, Type::kTimestamp, columns);
        if (a < 0) return -1;
        n.args.push_back(static_cast<uint32_t>(a));
      }
      break;
    }
    default:
      return -1;
  }
  nodes_[static_cast<size_t>(index)] = std::move(n);
  return index;
}

bool ColumnValue::FieldOrConstant(uint32_t* slot, int64_t* constant) const {
  const Node& top = nodes_[0];
  if (top.op != Op::kCoalesce || top.args.size() != 2) return false;
  const Node& field = nodes_[top.args[0]];
  const Node& fallback = nodes_[top.args[1]];
  if (field.op != Op::kField || fallback.op != Op::kConstant) return false;
  *slot = field.slot;
  *constant = fallback.constant;
  return true;
}

bool ColumnValue::Eval(const ColumnBatch& batch, size_t i, uint32_t node, int64_t* out) const {
  const Node& n = nodes_[node];
  switch (n.op) {
    case Op::kField: {
      const Column& c = batch.column(n.slot);
      if (c.valid[i] == 0) return false;
      *out = c.ints[i];
      return true;
    }
    case Op::kConstant:
      *out = n.constant;
      return true;
    case Op::kCoalesce:
      for (uint32_t a : n.args) {
        if (Eval(batch, i, a, out)) return true;
      }
      return false;
    case Op::kTimeUuidTime:
    case Op::kParseTime:
    case Op::kParseIsoTime:
    case Op::kParseUsTime: {
      const Column& c = batch.column(n.slot);
      if (c.valid[i] == 0) return false;
      std::optional<int64_t> t;
      switch (n.op) {
        case Op::kTimeUuidTime: t = ParseTimeUuid(c.strings[i]); break;
        case Op::kParseIsoTime: t = ParseIsoTimestamp(c.strings[i]); break;
        case Op::kParseUsTime: t = ParseUsTimestamp(c.strings[i]); break;
        default: t = ParseTimestamp(c.strings[i]); break;
      }
      if (!t) return false;
      *out = *t;
      return true;
    }
    case Op::kSecondsBetween:
      return false;  // a double: EvalDouble
  }
  return false;
}

bool ColumnValue::EvalDouble(const ColumnBatch& batch, size_t i, double* out) const {
  const Node& top = nodes_[0];
  if (top.op != Op::kSecondsBetween) return false;
  // As the row node: the start first (null: null), then the end.
  int64_t from, to;
  if (!Eval(batch, i, top.args[0], &from)) return false;
  if (!Eval(batch, i, top.args[1], &to)) return false;
  *out = expr::SecondsBetweenMicros(from, to);
  return true;
}

namespace {

/// Copies found rows' fields into their columns; moves a record whose key is null or missing out
/// of the selection, marked with the step (the worker runs the lookup on its row).
void LookupOverColumns(const ColumnStep& s, const DimensionTable& table, ColumnBatch* batch) {
  std::vector<uint32_t>& selection = batch->selection();
  const Column& key = batch->column(s.slot);
  Value scratch;
  size_t kept = 0;
  for (uint32_t i : selection) {
    const std::vector<Value>* found = nullptr;
    if (key.valid[i]) {
      if (key.type == Type::kString) {
        scratch.SetString(key.strings[i]);
      } else {
        key.Load(i, &scratch);
      }
      found = table.Find(scratch);
    }
    if (found == nullptr) {
      batch->MarkDropped(i, static_cast<int32_t>(s.step));
      continue;
    }
    for (const ColumnStep::LookupField& f : s.fields) {
      Column& column = batch->column(f.slot);
      const Value& v = (*found)[f.column];
      if (v.type() == Type::kString && column.type == Type::kString) {
        column.SetString(i, v.string_value());  // a view into the snapshot
      } else {
        column.Set(i, v, batch->arena());
      }
    }
    selection[kept++] = i;
  }
  selection.resize(kept);
}

}  // namespace

void ApplyColumnSteps(const std::vector<ColumnStep>& steps, ColumnBatch* batch,
                      std::span<const std::shared_ptr<const DimensionTable>> snapshots) {
  std::vector<uint32_t>& selection = batch->selection();
  size_t kept = 0;
  for (uint32_t i : selection) {
    if (!batch->failed(i)) selection[kept++] = i;
  }
  selection.resize(kept);
  // Step by step over the records still selected: a record's steps run in order, and no step
  // reads another record, so this is the row path's order for each record.
  for (const ColumnStep& s : steps) {
    if (s.kind == ColumnStep::Kind::kLookup) {
      LookupOverColumns(s, *snapshots[s.step], batch);
      continue;
    }
    if (s.kind == ColumnStep::Kind::kLet) {
      Column& column = batch->column(s.slot);
      uint32_t from;
      int64_t constant;
      if (s.value->FieldOrConstant(&from, &constant)) {
        const Column& source = batch->column(from);  // may be `column` itself
        for (uint32_t i : selection) {
          const int64_t v = source.valid[i] ? source.ints[i] : constant;
          column.SetInt(i, v);
        }
        continue;
      }
      if (s.value->type() == Type::kDouble) {
        for (uint32_t i : selection) {
          double v;
          if (s.value->EvalDouble(*batch, i, &v)) {
            column.SetDouble(i, v);
          } else {
            column.SetNull(i);
          }
        }
        continue;
      }
      for (uint32_t i : selection) {
        int64_t v;
        if (s.value->Eval(*batch, i, &v)) {
          column.SetInt(i, v);
        } else {
          column.SetNull(i);
        }
      }
      continue;
    }
    const bool drop_when_true = s.kind != ColumnStep::Kind::kFilter;
    kept = 0;
    for (uint32_t i : selection) {
      if (s.condition->True(*batch, i) == drop_when_true) {
        batch->MarkDropped(i, static_cast<int32_t>(s.step));
      } else {
        selection[kept++] = i;
      }
    }
    selection.resize(kept);
  }
}

}  // namespace sluice
