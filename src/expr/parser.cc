// Recursive-descent parser that type-checks and builds nodes in one pass (no separate AST).

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "expr/expr.h"
#include "expr/functions.h"
#include "expr/lexer.h"
#include "expr/node.h"

namespace sluice::expr {
namespace internal {
namespace {

/// Bounds parser recursion (parentheses, calls, unary operators) and the depth of the
/// compiled tree, so pathological text cannot exhaust the stack at compile or eval time.
constexpr int kMaxNesting = 200;
constexpr int kMaxTreeDepth = 1000;

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

/// Returns the case-insensitive edit distance between `a` and `b`.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (ToLowerAscii(a[i - 1]) == ToLowerAscii(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/// Returns " (did you mean 'x'?)" for the closest candidate, or "" when none is close.
std::string Suggest(std::string_view name, const std::vector<std::string_view>& candidates) {
  const size_t limit = std::min<size_t>(3, std::max<size_t>(1, name.size() / 3));
  size_t best = limit + 1;
  std::string_view best_name;
  for (std::string_view c : candidates) {
    const size_t d = EditDistance(name, c);
    if (d < best) {
      best = d;
      best_name = c;
    }
  }
  if (best > limit) return "";
  return " (did you mean '" + std::string(best_name) + "'?)";
}

bool IsReservedWord(std::string_view s) {
  for (std::string_view kw : {"and", "or", "not", "in", "is", "null", "true", "false"}) {
    if (EqualsIgnoreCase(s, kw)) return true;
  }
  return false;
}

std::string Describe(const Token& t) {
  if (t.kind == TokenKind::kEnd) return "the end of the expression";
  return "'" + std::string(t.text) + "'";
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const Schema& schema, const Diag& diag)
      : tokens_(tokens), schema_(schema), diag_(diag) {}

  Result<Operand> ParseAll() {
    if (Peek().kind == TokenKind::kEnd) return diag_.SyntaxError(Peek().pos, "empty expression");
    ASSIGN_OR_RETURN(Operand result, ParseOr());
    const Token& t = Peek();
    if (t.kind != TokenKind::kEnd) {
      if (IsSymbol(t, ")")) return diag_.SyntaxError(t.pos, "unmatched ')'");
      if (IsKeyword(t, "not")) {
        return diag_.SyntaxError(
            t.pos, "unexpected 'not' here; did you mean 'is not null' or 'not in (...)'?");
      }
      return diag_.SyntaxError(t.pos, "unexpected " + Describe(t) +
                                          "; expected an operator or the end of the expression");
    }
    return result;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(i_ + ahead, tokens_.size() - 1)];
  }
  const Token& Next() {
    const Token& t = Peek();
    if (i_ < tokens_.size() - 1) ++i_;
    return t;
  }
  static bool IsSymbol(const Token& t, std::string_view s) {
    return t.kind == TokenKind::kSymbol && t.text == s;
  }
  static bool IsKeyword(const Token& t, std::string_view kw) {
    return t.kind == TokenKind::kIdent && EqualsIgnoreCase(t.text, kw);
  }

  /// Reports that an operand was expected at the current token.
  Status ExpectedExpression() const {
    const Token& t = Peek();
    std::string message = "expected an expression";
    if (i_ > 0) message += " after '" + std::string(tokens_[i_ - 1].text) + "'";
    if (t.kind != TokenKind::kEnd) message += ", found " + Describe(t);
    if (t.kind == TokenKind::kIdent && IsReservedWord(t.text) && schema_.IndexOf(t.text)) {
      message += "; write `" + std::string(t.text) + "` to refer to the field of that name";
    }
    return diag_.SyntaxError(t.pos, message);
  }

  /// Checks and records the depth of a node built over operands of depth `a` and `b`.
  Status Deepen(Operand* op, int a, int b) const {
    op->depth = std::max(a, b) + 1;
    if (op->depth > kMaxTreeDepth) {
      return diag_.Error(op->pos, "expression is too large (more than " +
                                      std::to_string(kMaxTreeDepth) + " levels of operators)");
    }
    return Status::OK();
  }

  /// Guards one level of recursion; callers pair it with Leave().
  Status Enter(size_t pos) {
    if (++nesting_ > kMaxNesting) {
      return diag_.SyntaxError(pos, "expression is nested too deeply (more than " +
                                        std::to_string(kMaxNesting) + " levels)");
    }
    return Status::OK();
  }
  void Leave() { --nesting_; }

  Result<Operand> ParseOr() {
    ASSIGN_OR_RETURN(Operand lhs, ParseAnd());
    while (IsKeyword(Peek(), "or")) {
      Next();
      ASSIGN_OR_RETURN(Operand rhs, ParseAnd());
      const int a = lhs.depth, b = rhs.depth;
      ASSIGN_OR_RETURN(lhs, BuildOr(std::move(lhs), std::move(rhs), diag_));
      RETURN_IF_ERROR(Deepen(&lhs, a, b));
    }
    return lhs;
  }

  Result<Operand> ParseAnd() {
    ASSIGN_OR_RETURN(Operand lhs, ParseNot());
    while (IsKeyword(Peek(), "and")) {
      Next();
      ASSIGN_OR_RETURN(Operand rhs, ParseNot());
      const int a = lhs.depth, b = rhs.depth;
      ASSIGN_OR_RETURN(lhs, BuildAnd(std::move(lhs), std::move(rhs), diag_));
      RETURN_IF_ERROR(Deepen(&lhs, a, b));
    }
    return lhs;
  }

  Result<Operand> ParseNot() {
    if (!IsKeyword(Peek(), "not")) return ParseComparison();
    const size_t op_pos = Next().pos;
    RETURN_IF_ERROR(Enter(op_pos));
    Result<Operand> operand = ParseNot();
    Leave();
    if (!operand.ok()) return operand.status();
    const int a = operand->depth;
    ASSIGN_OR_RETURN(Operand result, BuildNot(std::move(operand).value(), op_pos, diag_));
    RETURN_IF_ERROR(Deepen(&result, a, 0));
    return result;
  }

  static bool ComparisonOp(const Token& t, CmpOp* op) {
    if (t.kind != TokenKind::kSymbol) return false;
    const std::string_view s = t.text;
    if (s == "=" || s == "==") {
      *op = CmpOp::kEq;
    } else if (s == "!=" || s == "<>") {
      *op = CmpOp::kNe;
    } else if (s == "<") {
      *op = CmpOp::kLt;
    } else if (s == "<=") {
      *op = CmpOp::kLe;
    } else if (s == ">") {
      *op = CmpOp::kGt;
    } else if (s == ">=") {
      *op = CmpOp::kGe;
    } else {
      return false;
    }
    return true;
  }

  Result<Operand> ParseComparison() {
    ASSIGN_OR_RETURN(Operand lhs, ParseConcat());
    const Token& t = Peek();
    CmpOp op;
    if (ComparisonOp(t, &op)) {
      Next();
      ASSIGN_OR_RETURN(Operand rhs, ParseConcat());
      const int a = lhs.depth, b = rhs.depth;
      ASSIGN_OR_RETURN(Operand result,
                       BuildCompare(op, t.text, std::move(lhs), std::move(rhs), t.pos, diag_));
      RETURN_IF_ERROR(Deepen(&result, a, b));
      CmpOp again;
      if (ComparisonOp(Peek(), &again)) {
        return diag_.SyntaxError(Peek().pos,
                                 "comparisons cannot be chained; combine them with 'and' "
                                 "(a < b and b < c)");
      }
      return result;
    }
    if (IsKeyword(t, "is")) {
      Next();
      bool negate = false;
      if (IsKeyword(Peek(), "not")) {
        Next();
        negate = true;
      }
      if (!IsKeyword(Peek(), "null")) {
        return diag_.SyntaxError(Peek().pos, "expected 'null' after '" +
                                                 std::string(negate ? "is not" : "is") +
                                                 "', found " + Describe(Peek()));
      }
      Next();
      const int a = lhs.depth;
      ASSIGN_OR_RETURN(Operand result, BuildIsNull(std::move(lhs), negate));
      RETURN_IF_ERROR(Deepen(&result, a, 0));
      return result;
    }
    if (IsKeyword(t, "in") || (IsKeyword(t, "not") && IsKeyword(Peek(1), "in"))) {
      const bool negate = IsKeyword(t, "not");
      const size_t op_pos = t.pos;
      Next();
      if (negate) Next();
      return ParseInList(std::move(lhs), negate, op_pos);
    }
    return lhs;
  }

  Result<Operand> ParseInList(Operand x, bool negate, size_t op_pos) {
    if (!IsSymbol(Peek(), "(")) {
      return diag_.SyntaxError(Peek().pos, "expected '(' after 'in', found " + Describe(Peek()));
    }
    Next();
    if (IsSymbol(Peek(), ")")) return diag_.SyntaxError(Peek().pos, "the 'in' list is empty");
    std::vector<Operand> items;
    int depth = x.depth;
    RETURN_IF_ERROR(Enter(op_pos));
    while (true) {
      Result<Operand> item = ParseOr();
      if (!item.ok()) return item.status();
      depth = std::max(depth, item->depth);
      items.push_back(std::move(item).value());
      if (IsSymbol(Peek(), ",")) {
        Next();
        continue;
      }
      if (IsSymbol(Peek(), ")")) {
        Next();
        break;
      }
      return diag_.SyntaxError(Peek().pos,
                               "expected ',' or ')' in the 'in' list, found " + Describe(Peek()));
    }
    Leave();
    ASSIGN_OR_RETURN(Operand result, BuildIn(std::move(x), std::move(items), negate, diag_));
    RETURN_IF_ERROR(Deepen(&result, depth, 0));
    return result;
  }

  Result<Operand> ParseConcat() {
    ASSIGN_OR_RETURN(Operand lhs, ParseAdditive());
    while (IsSymbol(Peek(), "||")) {
      Next();
      ASSIGN_OR_RETURN(Operand rhs, ParseAdditive());
      // A chain a || b || c is one node, so it adds one level only.
      const int a = lhs.depth, b = rhs.depth;
      ASSIGN_OR_RETURN(lhs, BuildConcatOp(std::move(lhs), std::move(rhs)));
      RETURN_IF_ERROR(Deepen(&lhs, a, b));
    }
    return lhs;
  }

  Result<Operand> ParseAdditive() {
    ASSIGN_OR_RETURN(Operand lhs, ParseMultiplicative());
    while (IsSymbol(Peek(), "+") || IsSymbol(Peek(), "-")) {
      const Token& t = Next();
      const ArithOp op = t.text == "+" ? ArithOp::kAdd : ArithOp::kSub;
      ASSIGN_OR_RETURN(Operand rhs, ParseMultiplicative());
      const int a = lhs.depth, b = rhs.depth;
      ASSIGN_OR_RETURN(lhs, BuildArith(op, t.text, std::move(lhs), std::move(rhs), t.pos, diag_));
      RETURN_IF_ERROR(Deepen(&lhs, a, b));
    }
    return lhs;
  }

  Result<Operand> ParseMultiplicative() {
    ASSIGN_OR_RETURN(Operand lhs, ParseUnary());
    while (IsSymbol(Peek(), "*") || IsSymbol(Peek(), "/") || IsSymbol(Peek(), "%")) {
      const Token& t = Next();
      const ArithOp op =
          t.text == "*" ? ArithOp::kMul : (t.text == "/" ? ArithOp::kDiv : ArithOp::kMod);
      ASSIGN_OR_RETURN(Operand rhs, ParseUnary());
      const int a = lhs.depth, b = rhs.depth;
      ASSIGN_OR_RETURN(lhs, BuildArith(op, t.text, std::move(lhs), std::move(rhs), t.pos, diag_));
      RETURN_IF_ERROR(Deepen(&lhs, a, b));
    }
    return lhs;
  }

  Result<Operand> ParseUnary() {
    const Token& t = Peek();
    if (!IsSymbol(t, "-") && !IsSymbol(t, "+")) return ParsePrimary();
    Next();
    if (IsSymbol(t, "-") && Peek().kind == TokenKind::kInt) {
      // Read "-9223372036854775808" as one literal: its magnitude alone does not fit.
      return IntLiteral(Next(), /*negative=*/true, t.pos);
    }
    RETURN_IF_ERROR(Enter(t.pos));
    Result<Operand> operand = ParseUnary();
    Leave();
    if (!operand.ok()) return operand.status();
    if (IsSymbol(t, "+")) {
      if (!IsNumeric(operand->type()) && operand->type() != Type::kNull) {
        return diag_.Error(t.pos, "unary '+' needs a number, got " +
                                      std::string(TypeName(operand->type())));
      }
      return operand;
    }
    const int a = operand->depth;
    ASSIGN_OR_RETURN(Operand result, BuildNegate(std::move(operand).value(), t.pos, diag_));
    RETURN_IF_ERROR(Deepen(&result, a, 0));
    return result;
  }

  Result<Operand> IntLiteral(const Token& t, bool negative, size_t pos) {
    uint64_t magnitude = 0;
    auto [ptr, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), magnitude);
    const uint64_t limit =
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0);
    if (ec != std::errc() || ptr != t.text.data() + t.text.size() || magnitude > limit) {
      return diag_.SyntaxError(t.pos, "integer " + std::string(t.text) +
                                          " is out of range for int64; write it as a decimal "
                                          "(" + std::string(t.text) + ".0) for a double");
    }
    const int64_t v =
        negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
    return MakeLiteral(Type::kInt64, Value::Int(v), pos);
  }

  Result<Operand> ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kInt:
        Next();
        return IntLiteral(t, /*negative=*/false, t.pos);
      case TokenKind::kDouble: {
        Next();
        double d = 0;
        auto [ptr, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), d);
        if (ec != std::errc() || ptr != t.text.data() + t.text.size()) {
          return diag_.SyntaxError(t.pos, "number " + std::string(t.text) + " is out of range");
        }
        return MakeLiteral(Type::kDouble, Value::Double(d), t.pos);
      }
      case TokenKind::kString:
        Next();
        return MakeLiteral(Type::kString, Value::String(t.value), t.pos);
      case TokenKind::kQuotedIdent:
        Next();
        return FieldReference(t.value, t.pos);
      case TokenKind::kIdent:
        if (IsKeyword(t, "true") || IsKeyword(t, "false")) {
          Next();
          return MakeLiteral(Type::kBool, Value::Bool(IsKeyword(t, "true")), t.pos);
        }
        if (IsKeyword(t, "null")) {
          Next();
          return MakeLiteral(Type::kNull, Value(), t.pos);
        }
        if (IsReservedWord(t.text)) return ExpectedExpression();
        if (IsSymbol(Peek(1), "(")) return ParseCall();
        Next();
        return FieldReference(t.text, t.pos);
      case TokenKind::kSymbol:
        if (IsSymbol(t, "(")) {
          Next();
          RETURN_IF_ERROR(Enter(t.pos));
          Result<Operand> inner = ParseOr();
          Leave();
          if (!inner.ok()) return inner.status();
          if (!IsSymbol(Peek(), ")")) {
            return diag_.SyntaxError(Peek().pos, "expected ')' to close the '(' at column " +
                                                     std::to_string(diag_.Column(t.pos)) +
                                                     ", found " +
                                                     Describe(Peek()));
          }
          Next();
          inner->pos = t.pos;
          return inner;
        }
        return ExpectedExpression();
      case TokenKind::kEnd:
        return ExpectedExpression();
    }
    return ExpectedExpression();
  }

  Result<Operand> FieldReference(std::string_view name, size_t pos) {
    std::optional<size_t> slot = schema_.IndexOf(name);
    if (!slot) {
      std::vector<std::string_view> names;
      for (const Field& f : schema_.fields()) names.push_back(f.name);
      std::string message = "unknown field '" + std::string(name) + "'" + Suggest(name, names);
      if (FindFunction(ToLower(name))) {
        message += "; " + ToLower(name) + " is a function: call it as " + ToLower(name) + "(...)";
      }
      return diag_.Error(pos, message);
    }
    Operand op;
    op.node = std::make_unique<FieldRef>(schema_.field(*slot).type, *slot);
    op.pos = pos;
    return op;
  }

  Result<Operand> ParseCall() {
    const Token& name_token = Next();
    const size_t pos = name_token.pos;
    const std::string name = ToLower(name_token.text);
    const FunctionSpec* spec = FindFunction(name);
    if (spec == nullptr) {
      std::vector<std::string_view> names;
      for (const FunctionSpec& f : AllFunctions()) names.push_back(f.name);
      return diag_.Error(pos, "unknown function '" + std::string(name_token.text) + "'" +
                                  Suggest(name, names));
    }
    Next();  // '('
    RETURN_IF_ERROR(Enter(pos));
    std::vector<Operand> args;
    int depth = 0;
    if (IsSymbol(Peek(), ")")) {
      Next();
    } else {
      while (true) {
        Result<Operand> arg = ParseOr();
        if (!arg.ok()) return arg.status();
        depth = std::max(depth, arg->depth);
        args.push_back(std::move(arg).value());
        if (IsSymbol(Peek(), ",")) {
          Next();
          continue;
        }
        if (IsSymbol(Peek(), ")")) {
          Next();
          break;
        }
        return diag_.SyntaxError(Peek().pos, "expected ',' or ')' after argument " +
                                                 std::to_string(args.size()) + " of " + name +
                                                 "(), found " + Describe(Peek()));
      }
    }
    Leave();
    const int n = static_cast<int>(args.size());
    if (n < spec->min_args || (spec->max_args >= 0 && n > spec->max_args)) {
      std::string expected;
      if (spec->max_args < 0) {
        expected = "at least " + std::to_string(spec->min_args);
      } else if (spec->min_args == spec->max_args) {
        expected = std::to_string(spec->min_args);
      } else {
        expected = std::to_string(spec->min_args) + " or " + std::to_string(spec->max_args);
      }
      const bool plural = !(spec->max_args == 1 || (spec->max_args < 0 && spec->min_args == 1));
      return diag_.Error(pos, name + "() takes " + expected +
                                  (plural ? " arguments" : " argument") + ", got " +
                                  std::to_string(n));
    }
    ASSIGN_OR_RETURN(Operand result, spec->build(args, pos, diag_));
    result.pos = pos;
    RETURN_IF_ERROR(Deepen(&result, depth, 0));
    return result;
  }

  const std::vector<Token>& tokens_;
  const Schema& schema_;
  const Diag& diag_;
  size_t i_ = 0;
  int nesting_ = 0;
};

Result<Operand> CompileOperand(std::string_view text, const Schema& schema, const Diag& diag) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text, diag));
  Parser parser(tokens, schema, diag);
  return parser.ParseAll();
}

}  // namespace
}  // namespace internal

Result<std::unique_ptr<Expr>> Compile(std::string_view text, const Schema& schema,
                                      const SourceLocation& where) {
  internal::Diag diag(text, where);
  ASSIGN_OR_RETURN(internal::Operand op, internal::CompileOperand(text, schema, diag));
  return std::unique_ptr<Expr>(std::move(op.node));
}

Result<std::unique_ptr<Expr>> CompilePredicate(std::string_view text, const Schema& schema,
                                               const SourceLocation& where) {
  internal::Diag diag(text, where);
  ASSIGN_OR_RETURN(internal::Operand op, internal::CompileOperand(text, schema, diag));
  if (op.type() != Type::kBool && op.type() != Type::kNull) {
    return diag.Error(op.pos, "expected a condition (a bool expression such as x = 'a'), got " +
                                  std::string(TypeName(op.type())));
  }
  return std::unique_ptr<Expr>(std::move(op.node));
}

}  // namespace sluice::expr
