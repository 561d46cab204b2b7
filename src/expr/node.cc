#include "expr/node.h"

#include <algorithm>
#include <optional>

#include "core/time.h"

namespace sluice::expr::internal {

Value Node::Eval(std::span<const Value> row) const {
  Value scratch;
  const Value& v = Ref(row, scratch);
  if (&v == &scratch) return scratch;
  return v;
}

Tri Node::Test(std::span<const Value> row) const {
  Value scratch;
  const Value& v = Ref(row, scratch);
  if (v.type() != Type::kBool) return Tri::kNull;
  return ToTri(v.bool_value());
}

const Value& BoolNode::Ref(std::span<const Value> row, Value& scratch) const {
  switch (Test(row)) {
    case Tri::kFalse: scratch = Value::Bool(false); break;
    case Tri::kTrue: scratch = Value::Bool(true); break;
    case Tri::kNull: scratch = Value(); break;
  }
  return scratch;
}

const Value& FieldRef::Ref(std::span<const Value> row, Value& scratch) const {
  if (slot_ < row.size()) {
    const Value& v = row[slot_];
    if (v.type() == type() || v.is_null()) return v;
    if (type() == Type::kDouble && v.type() == Type::kInt64) {
      scratch = Value::Double(static_cast<double>(v.int_value()));
      return scratch;
    }
  }
  scratch = Value();
  return scratch;
}

void Diag::LineColumn(size_t pos, int* line, int* column) const {
  expr::LineColumn(where_, text_, pos, line, column);
}

int Diag::Column(size_t pos) const {
  int line, column;
  LineColumn(pos, &line, &column);
  return column;
}

std::string Diag::Locate(size_t pos) const {
  int line, column;
  LineColumn(pos, &line, &column);
  const std::string& file = where_.file.empty() ? std::string("<expr>") : where_.file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
}

Status Diag::Error(size_t pos, std::string_view message) const {
  return Status::InvalidArgument(Locate(pos) + std::string(message));
}

Status Diag::SyntaxError(size_t pos, std::string_view message) const {
  return Status::ParseError(Locate(pos) + std::string(message));
}

Operand MakeLiteral(Type type, Value value, size_t pos) {
  Operand op;
  op.node = std::make_unique<Literal>(type, std::move(value));
  op.pos = pos;
  op.constant = true;
  return op;
}

Operand Finish(NodePtr node, size_t pos, bool all_inputs_constant) {
  if (all_inputs_constant) {
    Type type = node->type();
    return MakeLiteral(type, node->Eval({}), pos);
  }
  Operand op;
  op.node = std::move(node);
  op.pos = pos;
  return op;
}

namespace {

/// Widens an int64 operand to double.
class IntToDouble final : public Node {
 public:
  explicit IntToDouble(NodePtr arg) : Node(Type::kDouble), arg_(std::move(arg)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value tmp;
    const Value& v = arg_->Ref(row, tmp);
    if (v.is_null()) {
      scratch = Value();
    } else {
      scratch = Value::Double(static_cast<double>(v.int_value()));
    }
    return scratch;
  }

 private:
  NodePtr arg_;
};

}  // namespace

bool CommonType(Type a, Type b, Type* out) {
  if (a == Type::kNull || a == b) {
    *out = b;
  } else if (b == Type::kNull) {
    *out = a;
  } else if (IsNumeric(a) && IsNumeric(b)) {
    *out = Type::kDouble;
  } else {
    return false;
  }
  return true;
}

Result<Operand> CoerceTo(Operand op, Type target, const Diag& diag, std::string_view what) {
  const Type from = op.type();
  if (from == target) return op;
  if (from == Type::kNull || (op.constant && op.value().is_null())) {
    return MakeLiteral(target, Value(), op.pos);
  }
  if (from == Type::kInt64 && target == Type::kDouble) {
    if (op.constant) {
      return MakeLiteral(Type::kDouble, Value::Double(static_cast<double>(op.value().int_value())),
                         op.pos);
    }
    return Finish(std::make_unique<IntToDouble>(std::move(op.node)), op.pos, false);
  }
  if (from == Type::kString && target == Type::kTimestamp && op.constant) {
    const std::string& s = op.value().string_value();
    std::optional<int64_t> micros = ParseTimestamp(s);
    if (!micros) {
      return diag.Error(op.pos, "'" + s + "' is not a timestamp (expected 'YYYY-MM-DD HH:MM:SS')");
    }
    return MakeLiteral(Type::kTimestamp, Value::TimeMicros(*micros), op.pos);
  }
  return diag.Error(op.pos, std::string(what) + " must be " + std::string(TypeName(target)) +
                                ", got " + std::string(TypeName(from)));
}

bool ParseStrictInt(std::string_view s, int64_t* out) {
  size_t i = 0;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    i = 1;
  }
  if (i == s.size()) return false;
  // Accumulate as a negative number: its range includes INT64_MIN.
  int64_t acc = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    if (__builtin_mul_overflow(acc, 10, &acc) || __builtin_sub_overflow(acc, c - '0', &acc)) {
      return false;
    }
  }
  if (!negative) {
    if (acc == INT64_MIN) return false;
    acc = -acc;
  }
  *out = acc;
  return true;
}

}  // namespace sluice::expr::internal

namespace sluice::expr {

SourceLocation Advance(SourceLocation where, size_t offset) {
  if (where.anchors) {
    where.base += offset;
  } else {
    where.column += static_cast<int>(offset);
  }
  return where;
}

std::string Locate(const SourceLocation& where, size_t offset) {
  int line = where.line;
  int column = where.column + static_cast<int>(offset);
  if (where.anchors) LineColumn(where, {}, offset, &line, &column);
  return where.file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

void LineColumn(const SourceLocation& where, std::string_view text, size_t pos, int* line,
                int* column) {
  if (where.anchors && !where.anchors->empty()) {
    // The last anchor at or before the byte: the token that piece of the text was made from.
    const std::vector<SourceAnchor>& a = *where.anchors;
    const size_t at = where.base + pos;
    auto it = std::upper_bound(a.begin(), a.end(), at,
                               [](size_t off, const SourceAnchor& x) { return off < x.offset; });
    const SourceAnchor& hit = it == a.begin() ? a.front() : *(it - 1);
    *line = hit.line;
    *column = hit.column;
    return;
  }
  if (pos > text.size()) pos = text.size();
  *line = where.line > 0 ? where.line : 1;
  *column = where.column > 0 ? where.column : 1;
  // An expression written over several lines (a TOML multi-line string) restarts at column 1
  // after each newline.
  size_t last_newline = std::string_view::npos;
  for (size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++*line;
      last_newline = i;
    }
  }
  if (last_newline == std::string_view::npos) {
    *column += static_cast<int>(pos);
  } else {
    *column = static_cast<int>(pos - last_newline);
  }
}

}  // namespace sluice::expr
