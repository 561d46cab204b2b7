#include "sql/expr_text.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <cstdlib>

#include "config/variables.h"
#include "core/time.h"
#include "expr/functions.h"

namespace sluice::sql {
namespace {

/// The deepest expression translated (as src/expr allows).
constexpr int kMaxDepth = 200;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Friendly names for parse-tree nodes sluice has no meaning for.
std::string UnsupportedNodeName(std::string_view kind) {
  if (kind == "SubLink") return "a subquery";
  if (kind == "A_ArrayExpr") return "ARRAY[...]";
  if (kind == "A_Indirection") return "subscripts and field selection";
  if (kind == "RowExpr") return "ROW(...)";
  if (kind == "CollateClause") return "COLLATE";
  if (kind == "ParamRef") return "a $n parameter";
  if (kind == "NamedArgExpr") return "a named argument";
  if (kind == "MinMaxExpr") return "GREATEST/LEAST";
  if (kind == "SQLValueFunction") return "CURRENT_TIMESTAMP, CURRENT_DATE and the like";
  if (kind == "GroupingFunc") return "GROUPING()";
  return "a " + std::string(kind) + " expression";
}

std::string AExprKindName(std::string_view kind) {
  if (kind == "AEXPR_LIKE") return "LIKE";
  if (kind == "AEXPR_ILIKE") return "ILIKE";
  if (kind == "AEXPR_SIMILAR") return "SIMILAR TO";
  if (kind == "AEXPR_DISTINCT") return "IS DISTINCT FROM";
  if (kind == "AEXPR_NOT_DISTINCT") return "IS NOT DISTINCT FROM";
  if (kind == "AEXPR_OP_ANY") return "ANY (...)";
  if (kind == "AEXPR_OP_ALL") return "ALL (...)";
  if (kind == "AEXPR_BETWEEN_SYM" || kind == "AEXPR_NOT_BETWEEN_SYM") return "BETWEEN SYMMETRIC";
  return std::string(kind);
}

bool IsPlainName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  const std::string lower = Lower(name);
  for (const char* kw : {"and", "or", "not", "in", "is", "null", "true", "false"}) {
    if (lower == kw) return false;
  }
  return true;
}

std::string SluiceFunctionList() {
  std::string list;
  for (const auto& f : expr::internal::AllFunctions()) {
    list += (list.empty() ? "" : ", ") + std::string(f.name);
  }
  return list;
}

}  // namespace

Status Context::Error(int64_t location, const std::string& message) const {
  return Status::InvalidArgument(map->Locate(location < 0 ? 0 : static_cast<size_t>(location)) +
                                 ": " + message);
}

Result<std::string> Context::Substitute(std::string_view text, int64_t location) const {
  auto s = SubstituteTracked(std::string(text), *vars, uses,
                             map->Location(location < 0 ? 0 : static_cast<size_t>(location)));
  if (!s.ok()) return Error(location, s.status().message());
  return std::move(s->text);
}

ExprText& ExprText::Add(std::string_view s, int64_t at) {
  if (at >= 0) {
    if (!marks.empty() && marks.back().first == text.size()) {
      marks.back().second = at;  // nothing written from the previous mark
    } else {
      marks.emplace_back(text.size(), at);
    }
  }
  text += s;
  return *this;
}

ExprText& ExprText::Add(const ExprText& e) {
  const size_t base = text.size();
  for (const auto& [offset, at] : e.marks) {
    if (!marks.empty() && marks.back().first == base + offset) {
      marks.back().second = at;  // the inner token is the more precise one
    } else {
      marks.emplace_back(base + offset, at);
    }
  }
  text += e.text;
  return *this;
}

ExprText Piece(std::string_view s, int64_t at) {
  ExprText e;
  e.Add(s, at);
  return e;
}

expr::SourceLocation Context::Where(const ExprText& e, int64_t fallback) const {
  const int64_t first = e.marks.empty() ? fallback : e.marks.front().second;
  expr::SourceLocation w = map->Location(first < 0 ? 0 : static_cast<size_t>(first));
  auto anchors = std::make_shared<std::vector<expr::SourceAnchor>>();
  for (const auto& [offset, at] : e.marks) {
    expr::SourceAnchor a;
    a.offset = offset;
    map->LineColumn(static_cast<size_t>(std::max<int64_t>(at, 0)), &a.line, &a.column);
    anchors->push_back(a);
  }
  if (anchors->empty()) return w;  // no token to point at: the expression's start, as TOML
  w.anchors = std::move(anchors);
  return w;
}

std::string QuoteString(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'' ? std::string("''") : std::string(1, c));
  return out + "'";
}

std::string FieldName(std::string_view name) {
  if (IsPlainName(name)) return std::string(name);
  std::string out = "`";
  for (char c : name) out += (c == '`' ? std::string("``") : std::string(1, c));
  return out + "`";
}

bool IsAggregateName(std::string_view n) {
  return n == "count" || n == "sum" || n == "avg" || n == "min" || n == "max" || n == "last";
}

Result<int64_t> IntConstant(const Context& ctx, const PgNode& a_const) {
  PgNode ival = a_const.Object("ival");
  if (ival.Has("ival")) return ival.Int("ival");
  // libpg_query 15-4.0.0 writes both 0 and every negative integer as {"ival": {}}: read the
  // number back from where it is written.
  const int64_t at = a_const.Location();
  std::string_view text = ctx.map->text();
  if (at < 0 || static_cast<size_t>(at) >= text.size()) {
    return ctx.Error(at, "cannot read this integer constant");
  }
  size_t i = static_cast<size_t>(at);
  bool negative = false;
  if (text[i] == '-') {
    negative = true;
    ++i;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  }
  size_t start = i;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (start == i) return ctx.Error(at, "cannot read this integer constant");
  std::string digits(text.substr(start, i - start));
  char* end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, 10);
  return static_cast<int64_t>(negative ? -v : v);
}

Result<int64_t> IntervalMicros(const Context& ctx, const PgNode& node) {
  PgNode value = node;
  int64_t at = node.FirstLocation();
  if (node.Is("TypeCast")) {
    PgNode type = node.Object("typeName");
    auto names = PgNode::Strings(type.List("names"));
    if (names.empty() || names.back() != "interval") {
      return ctx.Error(at, "expected an interval such as INTERVAL '1 minute'");
    }
    if (type.Has("typmods")) {
      return ctx.Error(at, "write the unit inside the string: INTERVAL '1 minute', not INTERVAL '1' MINUTE");
    }
    value = node.Child("arg");
  }
  if (!value.Is("A_Const") || !value.Object("sval").valid()) {
    return ctx.Error(at, "expected an interval such as INTERVAL '1 minute'");
  }
  ASSIGN_OR_RETURN(std::string text, ctx.Substitute(value.Object("sval").String("sval"), value.Location()));
  return IntervalTextMicros(ctx, text, at);
}

std::string TypeModifierError(const PgNode& type_name) {
  if (!type_name.Has("typmods")) return "";
  auto names = PgNode::Strings(type_name.List("names"));
  const std::string t = names.empty() ? "" : Lower(names.back());
  if (t == "bpchar") {
    return "char(n) pads text to a fixed length, which sluice does not do; write text (or varchar "
           "without a length)";
  }
  if (t == "varchar") {
    return "varchar(n): sluice does not limit text to a length; write text (or varchar without a "
           "length), and check the length with length() where it matters";
  }
  if (t == "numeric") {
    return "numeric(p, s): sluice computes numbers as double precision and keeps no scale; write "
           "numeric (or double precision), and round(x, s) where the result needs s digits";
  }
  return "a type modifier (a length or precision in parentheses) is not supported; write " +
         (t.empty() ? std::string("the type") : t) + " without it";
}

Result<int64_t> IntervalTextMicros(const Context& ctx, const std::string& text, int64_t at) {
  if (auto d = ParseDurationMicros(text); d && *d > 0) return *d;
  // 'n unit [n unit ...]'
  int64_t total = 0;
  size_t i = 0;
  bool any = false;
  auto skip = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  skip();
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (start == i) return ctx.Error(at, "cannot read interval '" + text + "' (write it as '1 minute' or '90 seconds')");
    int64_t n = std::strtoll(text.substr(start, i - start).c_str(), nullptr, 10);
    skip();
    start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    const std::string unit = Lower(text.substr(start, i - start));
    int64_t scale = 0;
    if (unit == "us" || unit == "microsecond" || unit == "microseconds") scale = 1;
    else if (unit == "ms" || unit == "millisecond" || unit == "milliseconds") scale = 1000;
    else if (unit == "s" || unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds") scale = 1'000'000;
    else if (unit == "m" || unit == "min" || unit == "mins" || unit == "minute" || unit == "minutes") scale = 60'000'000;
    else if (unit == "h" || unit == "hour" || unit == "hours") scale = 3'600'000'000;
    else if (unit == "d" || unit == "day" || unit == "days") scale = 86'400'000'000;
    else if (unit.rfind("week", 0) == 0 || unit.rfind("mon", 0) == 0 || unit.rfind("year", 0) == 0) {
      return ctx.Error(at, "interval unit '" + unit + "' is not a fixed length; use days, hours, minutes or seconds");
    } else {
      return ctx.Error(at, "unknown interval unit '" + unit + "' (use microseconds, milliseconds, seconds, minutes, hours or days)");
    }
    total += n * scale;
    any = true;
    skip();
  }
  if (!any || total <= 0) return ctx.Error(at, "an interval must be positive");
  return total;
}

std::string FunctionName(const PgNode& func_call) {
  auto names = PgNode::Strings(func_call.List("funcname"));
  if (names.empty()) return "";
  std::string name = Lower(names.back());
  if (names.size() == 2 && names[0] == "pg_catalog" && name == "btrim") return "trim";
  return name;
}

Result<ExprText> ExprEmitter::Emit(const PgNode& node, int depth) {
  if (!node.valid()) return ctx_.Error(0, "missing expression");
  if (depth > kMaxDepth) return ctx_.Error(node.FirstLocation(), "expression nested too deeply");
  const std::string_view kind = node.kind();
  const int64_t at = node.Location();
  if (kind == "ColumnRef") {
    std::vector<std::string> names;
    for (const PgNode& f : node.List("fields")) {
      if (f.Is("A_Star")) return ctx_.Error(at, "* is only allowed as a SELECT item");
      names.emplace_back(f.String("sval"));
    }
    if (names.empty() || names.size() > 2) {
      return ctx_.Error(at, "write a column as name or table.name");
    }
    ASSIGN_OR_RETURN(std::string name, scope_->Resolve(names, at));
    return Piece(name, at);
  }
  if (kind == "A_Const") {
    ASSIGN_OR_RETURN(std::string c, EmitConst(node));
    return Piece(c, at);
  }
  if (kind == "A_Expr") return EmitAExpr(node, depth);
  if (kind == "BoolExpr") {
    const std::string_view op = node.String("boolop");
    auto args = node.List("args");
    if (op == "NOT_EXPR") {
      if (args.size() != 1) return ctx_.Error(at, "NOT takes one operand");
      ASSIGN_OR_RETURN(ExprText a, Emit(args[0], depth + 1));
      return Piece("(not ", at).Add(a).Add(")");
    }
    // libpg_query gives the location of the first AND (OR) of the chain.
    const std::string word = op == "AND_EXPR" ? " and " : " or ";
    ExprText out;
    out.Add("(");
    for (size_t i = 0; i < args.size(); ++i) {
      ASSIGN_OR_RETURN(ExprText a, Emit(args[i], depth + 1));
      if (i) out.Add(word, at);
      out.Add(a);
    }
    return out.Add(")");
  }
  if (kind == "NullTest") {
    ASSIGN_OR_RETURN(ExprText a, Emit(node.Child("arg"), depth + 1));
    const bool negated = node.String("nulltesttype") == "IS_NOT_NULL";
    return ExprText().Add("(").Add(a).Add(negated ? " is not null)" : " is null)", at);
  }
  if (kind == "BooleanTest") {
    ASSIGN_OR_RETURN(ExprText a, Emit(node.Child("arg"), depth + 1));
    const std::string_view t = node.String("booltesttype");
    if (t == "IS_TRUE") return Piece("coalesce(", at).Add(a).Add(", false)");
    if (t == "IS_NOT_TRUE") return Piece("(not coalesce(", at).Add(a).Add(", false))");
    if (t == "IS_FALSE") return Piece("coalesce((not ", at).Add(a).Add("), false)");
    if (t == "IS_NOT_FALSE") return Piece("coalesce(", at).Add(a).Add(", true)");
    if (t == "IS_UNKNOWN") return ExprText().Add("(").Add(a).Add(" is null)", at);
    return ExprText().Add("(").Add(a).Add(" is not null)", at);  // IS_NOT_UNKNOWN
  }
  if (kind == "CoalesceExpr") {
    ASSIGN_OR_RETURN(ExprText args, EmitList(node.List("args"), depth));
    return Piece("coalesce(", at).Add(args).Add(")");
  }
  if (kind == "CaseExpr") return EmitCase(node, depth);
  if (kind == "TypeCast") return EmitCast(node, depth);
  if (kind == "FuncCall") return EmitFuncCall(node, depth);
  return ctx_.Error(at >= 0 ? at : node.FirstLocation(),
                    UnsupportedNodeName(kind) + " is not supported in a sluice pipeline");
}

Result<std::string> ExprEmitter::EmitConst(const PgNode& node) {
  if (node.Bool("isnull")) return std::string("null");
  if (node.Has("sval")) {
    ASSIGN_OR_RETURN(std::string s, ctx_.Substitute(node.Object("sval").String("sval"), node.Location()));
    return QuoteString(s);
  }
  if (node.Has("boolval")) return std::string(node.Object("boolval").Bool("boolval") ? "true" : "false");
  if (node.Has("fval")) {
    std::string f(node.Object("fval").String("fval"));
    return f.rfind('-', 0) == 0 ? "(" + f + ")" : f;
  }
  if (node.Has("ival")) {
    ASSIGN_OR_RETURN(int64_t v, IntConstant(ctx_, node));
    return v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v);
  }
  if (node.Has("bsval")) return ctx_.Error(node.Location(), "bit strings are not supported");
  return ctx_.Error(node.Location(), "cannot read this constant");
}

Result<ExprText> ExprEmitter::EmitList(const std::vector<PgNode>& items, int depth) {
  ExprText out;
  for (size_t i = 0; i < items.size(); ++i) {
    ASSIGN_OR_RETURN(ExprText a, Emit(items[i], depth + 1));
    if (i) out.Add(", ");
    out.Add(a);
  }
  return out;
}

Result<ExprText> ExprEmitter::EmitAExpr(const PgNode& node, int depth) {
  const std::string_view kind = node.String("kind");
  auto names = PgNode::Strings(node.List("name"));
  const std::string op = names.empty() ? "" : names.back();
  const int64_t at = node.Location();  // the operator (IN, BETWEEN, NULLIF)
  if (kind == "AEXPR_OP") {
    static const char* kOps[] = {"=", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||"};
    bool known = false;
    for (const char* o : kOps) known = known || op == o;
    if (!known || names.size() != 1) {
      return ctx_.Error(at, "operator " + op + " is not supported (sluice has = <> < <= > >= + - * / % ||)");
    }
    if (!node.Has("lexpr")) {
      if (op != "-" && op != "+") return ctx_.Error(at, "prefix operator " + op + " is not supported");
      ASSIGN_OR_RETURN(ExprText r, Emit(node.Child("rexpr"), depth + 1));
      return Piece("(" + op, at).Add(r).Add(")");
    }
    ASSIGN_OR_RETURN(ExprText l, Emit(node.Child("lexpr"), depth + 1));
    ASSIGN_OR_RETURN(ExprText r, Emit(node.Child("rexpr"), depth + 1));
    return ExprText().Add("(").Add(l).Add(" " + op + " ", at).Add(r).Add(")");
  }
  if (kind == "AEXPR_IN") {
    ASSIGN_OR_RETURN(ExprText l, Emit(node.Child("lexpr"), depth + 1));
    PgNode list = node.Child("rexpr");
    if (!list.Is("List")) return ctx_.Error(at, "IN needs a list of values: x IN (1, 2)");
    ASSIGN_OR_RETURN(ExprText items, EmitList(list.List("items"), depth));
    return ExprText().Add("(").Add(l).Add(op == "<>" ? " not in (" : " in (", at).Add(items).Add("))");
  }
  if (kind == "AEXPR_BETWEEN" || kind == "AEXPR_NOT_BETWEEN") {
    ASSIGN_OR_RETURN(ExprText x, Emit(node.Child("lexpr"), depth + 1));
    auto bounds = node.Child("rexpr").List("items");
    if (bounds.size() != 2) return ctx_.Error(at, "BETWEEN needs two bounds");
    ASSIGN_OR_RETURN(ExprText lo, Emit(bounds[0], depth + 1));
    ASSIGN_OR_RETURN(ExprText hi, Emit(bounds[1], depth + 1));
    ExprText both;
    both.Add("((").Add(x).Add(" >= ", at).Add(lo).Add(") and (", at).Add(x).Add(" <= ", at).Add(hi).Add("))");
    if (kind == "AEXPR_BETWEEN") return both;
    return Piece("(not ", at).Add(both).Add(")");
  }
  if (kind == "AEXPR_NULLIF") {
    ASSIGN_OR_RETURN(ExprText a, Emit(node.Child("lexpr"), depth + 1));
    ASSIGN_OR_RETURN(ExprText b, Emit(node.Child("rexpr"), depth + 1));
    return Piece("if((", at).Add(a).Add(" = ", at).Add(b).Add("), null, ", at).Add(a).Add(")");
  }
  return ctx_.Error(at, AExprKindName(kind) + " is not supported in a sluice pipeline");
}

Result<ExprText> ExprEmitter::EmitCase(const PgNode& node, int depth) {
  ExprText subject;
  const bool simple = node.Has("arg");
  if (simple) {
    ASSIGN_OR_RETURN(subject, Emit(node.Child("arg"), depth + 1));
  }
  // No ELSE: null, at CASE.
  ExprText tail = Piece("null", node.Location());
  if (node.Has("defresult")) {
    ASSIGN_OR_RETURN(tail, Emit(node.Child("defresult"), depth + 1));
  }
  // CASE WHEN c1 THEN r1 WHEN c2 THEN r2 ELSE e END is if(c1, r1, if(c2, r2, e)); each if( is
  // written where its WHEN is.
  auto whens = node.List("args");
  for (size_t i = whens.size(); i-- > 0;) {
    const int64_t when_at = whens[i].Location();
    ASSIGN_OR_RETURN(ExprText cond, Emit(whens[i].Child("expr"), depth + 1));
    ASSIGN_OR_RETURN(ExprText result, Emit(whens[i].Child("result"), depth + 1));
    ExprText next = Piece("if(", when_at);
    if (simple) {
      next.Add("(").Add(subject).Add(" = ", when_at).Add(cond).Add(")");
    } else {
      next.Add(cond);
    }
    next.Add(", ").Add(result).Add(", ").Add(tail).Add(")");
    tail = std::move(next);
  }
  return tail;
}

Result<ExprText> ExprEmitter::EmitCast(const PgNode& node, int depth) {
  PgNode type = node.Object("typeName");
  auto names = PgNode::Strings(type.List("names"));
  const std::string t = names.empty() ? "" : Lower(names.back());
  const int64_t at = node.Location() >= 0 ? node.Location() : node.FirstLocation();
  if (type.Has("arrayBounds")) return ctx_.Error(at, "array types are not supported");
  if (t != "interval") {
    if (std::string why = TypeModifierError(type); !why.empty()) return ctx_.Error(at, why);
  }
  if (t == "interval") {
    return ctx_.Error(at, "an INTERVAL is only allowed as an argument of tumble() or hop()");
  }
  PgNode arg = node.Child("arg");
  if (t == "bool") {
    if (arg.Is("A_Const") && arg.Has("sval")) {
      std::string v = Lower(arg.Object("sval").String("sval"));
      if (v == "true" || v == "t") return Piece("true", arg.Location());
      if (v == "false" || v == "f") return Piece("false", arg.Location());
    }
    return ctx_.Error(at, "a cast to boolean is only supported of 'true' or 'false'");
  }
  ASSIGN_OR_RETURN(ExprText x, Emit(arg, depth + 1));
  const char* fn = nullptr;
  if (t == "int8" || t == "int4" || t == "int2") fn = "to_int(";
  else if (t == "float8" || t == "float4" || t == "numeric") fn = "to_double(";
  else if (t == "text" || t == "varchar" || t == "bpchar") fn = "to_string(";
  else if (t == "timestamp" || t == "timestamptz") fn = "parse_time(";
  if (fn) return Piece(fn, at).Add(x).Add(")");
  return ctx_.Error(at, "a cast to " + (names.empty() ? std::string("?") : names.back()) +
                            " is not supported (sluice casts to bigint, double precision, text "
                            "and timestamp)");
}

Result<ExprText> ExprEmitter::EmitFuncCall(const PgNode& node, int depth) {
  const std::string name = FunctionName(node);
  const int64_t at = node.Location();
  if (node.Has("over")) return ctx_.Error(at, "window functions (OVER) are not supported");
  if (IsAggregateName(name)) {
    return ctx_.Error(at, "aggregate " + name +
                              "() is only allowed in the SELECT list of a GROUP BY query");
  }
  if (name == "dead_letter_if" || name == "keep_if") {
    return ctx_.Error(at, name + "(condition, 'reason') is only allowed as a top-level "
                                 "AND term of WHERE");
  }
  if (name == "tumble" || name == "hop") {
    return ctx_.Error(at, name + "() is only allowed in FROM");
  }
  if (node.Bool("agg_star")) return ctx_.Error(at, name + "(*) is not supported; only count(*)");
  if (node.Has("agg_filter")) return ctx_.Error(at, "FILTER applies to aggregates only");
  if (node.Bool("agg_distinct") || node.Has("agg_order") || node.Bool("func_variadic")) {
    return ctx_.Error(at, "DISTINCT, ORDER BY and VARIADIC in a call are not supported");
  }
  auto funcname = PgNode::Strings(node.List("funcname"));
  if (name == "extract" || name == "date_part") {
    return ctx_.Error(at, "extract is not supported; use hour(ts), minute(ts) or date(ts)");
  }
  if (funcname.size() > 1 && name != "trim") {
    return ctx_.Error(at, "SQL syntax for " + name + "() is not supported");
  }
  if (expr::internal::FindFunction(name) == nullptr) {
    std::vector<std::string> known;
    for (const auto& f : expr::internal::AllFunctions()) known.emplace_back(f.name);
    std::string hint = ClosestName(name, known);
    return ctx_.Error(at, "unknown function " + name + "()" +
                              (hint.empty() ? " (sluice functions: " + SluiceFunctionList() + ")"
                                            : " (did you mean " + hint + "?)"));
  }
  ASSIGN_OR_RETURN(ExprText args, EmitList(node.List("args"), depth));
  return Piece(name + "(", at).Add(args).Add(")");
}

}  // namespace sluice::sql
