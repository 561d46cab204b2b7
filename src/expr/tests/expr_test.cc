#include "expr/expr.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "expr/tests/expr_test_util.h"

namespace sluice::expr::testing {
namespace {

// ---- literals and field references ----

TEST_F(ExprTest, Literals) {
  EXPECT_EQ(Eval("1"), "int64 1");
  EXPECT_EQ(Eval("1.5"), "double 1.5");
  EXPECT_EQ(Eval(".5"), "double 0.5");
  EXPECT_EQ(Eval("1e3"), "double 1000");
  EXPECT_EQ(Eval("2.5E-1"), "double 0.25");
  EXPECT_EQ(Eval("'click'"), "string 'click'");
  EXPECT_EQ(Eval("'it''s'"), "string 'it's'");
  EXPECT_EQ(Eval("''"), "string ''");
  EXPECT_EQ(Eval("true"), "bool true");
  EXPECT_EQ(Eval("FALSE"), "bool false");
  EXPECT_EQ(Eval("Null"), "null");
  EXPECT_EQ(TypeOf("null"), "null");
  EXPECT_EQ(Eval("9223372036854775807"), "int64 9223372036854775807");
  EXPECT_EQ(Eval("-9223372036854775808"), "int64 -9223372036854775808");
  EXPECT_EQ(Error("9223372036854775808"),
            "<expr>:1:1: integer 9223372036854775808 is out of range for int64; write it as a "
            "decimal (9223372036854775808.0) for a double");
}

TEST_F(ExprTest, FieldReferences) {
  EXPECT_EQ(Eval("clicks"), "int64 42");
  EXPECT_EQ(Eval("bid"), "double 2.5");
  EXPECT_EQ(Eval("name"), "string 'alice'");
  EXPECT_EQ(Eval("ts"), "timestamp 2024-03-15 13:45:30.250000");
  EXPECT_EQ(Eval("n_null"), "null");
  EXPECT_EQ(Eval("`my field`"), "string 'spaced'");
  EXPECT_EQ(Eval("`clicks`"), "int64 42");
  EXPECT_EQ(TypeOf("s_null"), "string");
}

TEST_F(ExprTest, UnknownFieldSuggestsCloseName) {
  EXPECT_EQ(Error("clikcs > 1"), "<expr>:1:1: unknown field 'clikcs' (did you mean 'clicks'?)");
  EXPECT_EQ(Error("Name = 'a'"), "<expr>:1:1: unknown field 'Name' (did you mean 'name'?)");
  EXPECT_EQ(Error("1 + zzzzzz"), "<expr>:1:5: unknown field 'zzzzzz'");
  EXPECT_EQ(Error("`no such`"), "<expr>:1:1: unknown field 'no such'");
  EXPECT_EQ(Error("hour"),
            "<expr>:1:1: unknown field 'hour'; hour is a function: call it as hour(...)");
}

// ---- arithmetic and precedence ----

TEST_F(ExprTest, IntegerArithmetic) {
  EXPECT_EQ(Eval("1 + 2"), "int64 3");
  EXPECT_EQ(Eval("clicks - 50"), "int64 -8");
  EXPECT_EQ(Eval("clicks * 2"), "int64 84");
  EXPECT_EQ(Eval("7 / 2"), "int64 3");
  EXPECT_EQ(Eval("-7 / 2"), "int64 -3");  // truncates toward zero
  EXPECT_EQ(Eval("7 % 3"), "int64 1");
  EXPECT_EQ(Eval("-7 % 3"), "int64 -1");  // takes the sign of the dividend
  EXPECT_EQ(TypeOf("clicks / 2"), "int64");
}

TEST_F(ExprTest, MixedArithmeticIsDouble) {
  EXPECT_EQ(Eval("7 / 2.0"), "double 3.5");
  EXPECT_EQ(Eval("clicks + bid"), "double 44.5");
  EXPECT_EQ(Eval("bid * 4"), "double 10");
  EXPECT_EQ(Eval("7.5 % 2"), "double 1.5");
  EXPECT_EQ(TypeOf("clicks + bid"), "double");
}

TEST_F(ExprTest, DivisionByZeroAndOverflowAreNull) {
  EXPECT_EQ(Eval("1 / 0"), "null");
  EXPECT_EQ(Eval("clicks / (clicks - 42)"), "null");
  EXPECT_EQ(Eval("1.0 / 0"), "null");
  EXPECT_EQ(Eval("5 % 0"), "null");
  EXPECT_EQ(Eval("bid % 0.0"), "null");
  EXPECT_EQ(Eval("9223372036854775807 + 1"), "null");
  EXPECT_EQ(Eval("min_int - 1"), "null");
  EXPECT_EQ(Eval("min_int * -1"), "null");
  EXPECT_EQ(Eval("min_int / -1"), "null");
  EXPECT_EQ(Eval("min_int % -1"), "int64 0");
  EXPECT_EQ(Eval("-min_int"), "null");
}

TEST_F(ExprTest, NullPropagatesThroughArithmetic) {
  EXPECT_EQ(Eval("n_null + 1"), "null");
  EXPECT_EQ(Eval("1 - n_null"), "null");
  EXPECT_EQ(Eval("-n_null"), "null");
  EXPECT_EQ(Eval("null * 3"), "null");
  EXPECT_EQ(TypeOf("null * 3"), "int64");
  EXPECT_EQ(Eval("d_null / 2"), "null");
}

TEST_F(ExprTest, Precedence) {
  EXPECT_EQ(Eval("1 + 2 * 3"), "int64 7");
  EXPECT_EQ(Eval("(1 + 2) * 3"), "int64 9");
  EXPECT_EQ(Eval("2 * 3 - 4 / 2"), "int64 4");
  EXPECT_EQ(Eval("10 - 4 - 3"), "int64 3");     // left-associative
  EXPECT_EQ(Eval("64 / 4 / 2"), "int64 8");     // left-associative
  EXPECT_EQ(Eval("-2 * 3"), "int64 -6");
  EXPECT_EQ(Eval("- (2 + 3) * 2"), "int64 -10");
  EXPECT_EQ(Eval("--3"), "int64 3");
  EXPECT_EQ(Eval("+3 - -2"), "int64 5");
  EXPECT_EQ(Eval("1 + 2 = 3"), "bool true");     // arithmetic binds tighter than =
  EXPECT_EQ(Eval("'a' || 'b' = 'ab'"), "bool true");  // || binds tighter than =
  EXPECT_EQ(Eval("'n' || 1 + 2"), "string 'n3'");     // + binds tighter than ||
  // not < and < or: true or (false and false); not (1 = 2).
  EXPECT_EQ(Eval("true or false and false"), "bool true");
  EXPECT_EQ(Eval("(true or false) and false"), "bool false");
  EXPECT_EQ(Eval("not 1 = 2"), "bool true");
  EXPECT_EQ(Eval("not true and false"), "bool false");  // (not true) and false
  EXPECT_EQ(Eval("not false or true"), "bool true");
}

TEST_F(ExprTest, ArithmeticTypeErrors) {
  EXPECT_EQ(Error("name + 1"),
            "<expr>:1:6: operator '+' needs numbers, got string and int64; use || or concat() "
            "to join strings");
  EXPECT_EQ(Error("ts - ts"),
            "<expr>:1:4: operator '-' needs numbers, got timestamp and timestamp; use "
            "seconds_between(a, b) for the seconds from a to b");
  EXPECT_EQ(Error("flag * 2"), "<expr>:1:6: operator '*' needs numbers, got bool and int64");
  EXPECT_EQ(Error("-name"), "<expr>:1:1: unary '-' needs a number, got string");
}

// ---- string concatenation ----

TEST_F(ExprTest, ConcatOperator) {
  EXPECT_EQ(Eval("'a' || 'b'"), "string 'ab'");
  EXPECT_EQ(Eval("name || '-' || clicks"), "string 'alice-42'");
  EXPECT_EQ(Eval("bid || '/' || flag"), "string '2.5/true'");
  EXPECT_EQ(Eval("name || s_null"), "null");
  EXPECT_EQ(Eval("null || 'x'"), "null");
  EXPECT_EQ(Eval("'at ' || ts"), "string 'at 2024-03-15 13:45:30.250000'");
}

// ---- comparisons ----

TEST_F(ExprTest, Comparisons) {
  EXPECT_EQ(Eval("1 < 2"), "bool true");
  EXPECT_EQ(Eval("2 <= 2"), "bool true");
  EXPECT_EQ(Eval("3 > 4"), "bool false");
  EXPECT_EQ(Eval("4 >= 5"), "bool false");
  EXPECT_EQ(Eval("clicks = 42"), "bool true");
  EXPECT_EQ(Eval("clicks == 42"), "bool true");
  EXPECT_EQ(Eval("clicks != 42"), "bool false");
  EXPECT_EQ(Eval("clicks <> 41"), "bool true");
  EXPECT_EQ(Eval("2 = 2.0"), "bool true");
  EXPECT_EQ(Eval("bid > 2"), "bool true");
  EXPECT_EQ(Eval("clicks < bid"), "bool false");
  EXPECT_EQ(Eval("name = 'alice'"), "bool true");
  EXPECT_EQ(Eval("name < 'bob'"), "bool true");
  EXPECT_EQ(Eval("'abc' < 'abd'"), "bool true");
  EXPECT_EQ(Eval("'B' < 'a'"), "bool true");  // byte order
  EXPECT_EQ(Eval("flag = true"), "bool true");
  EXPECT_EQ(Eval("false < true"), "bool true");
  EXPECT_EQ(Eval("ts > '2024-03-15'"), "bool true");
  EXPECT_EQ(Eval("ts < '2024-03-15 13:45:30.5'"), "bool true");
  EXPECT_EQ(Eval("ts = '2024-03-15T13:45:30.25Z'"), "bool true");
  EXPECT_EQ(Eval("'2024-03-16' > ts"), "bool true");
}

TEST_F(ExprTest, ConstantOnEitherSide) {
  // With the constant on the left the operator is mirrored internally: 50 > 42 is 42 < 50.
  EXPECT_EQ(Eval("50 > clicks"), "bool true");
  EXPECT_EQ(Eval("42 <= clicks"), "bool true");
  EXPECT_EQ(Eval("43 <= clicks"), "bool false");
  EXPECT_EQ(Eval("2 < bid"), "bool true");
  EXPECT_EQ(Eval("'bob' > name"), "bool true");
  EXPECT_EQ(Eval("'2024-03-15' <= ts"), "bool true");
  EXPECT_EQ(Eval("clicks > 1 / 0"), "null");
  EXPECT_EQ(Eval("1 / 0 < clicks"), "null");
}

TEST_F(ExprTest, ComparisonsWithNullAreNull) {
  EXPECT_EQ(Eval("n_null = 1"), "null");
  EXPECT_EQ(Eval("n_null <> 1"), "null");
  EXPECT_EQ(Eval("s_null < 'a'"), "null");
  EXPECT_EQ(Eval("1 > n_null"), "null");
  EXPECT_EQ(Eval("t_null >= ts"), "null");
}

TEST_F(ExprTest, ComparisonTypeErrors) {
  EXPECT_EQ(Error("name = 1"),
            "<expr>:1:6: cannot compare string with int64; convert the string with to_int() or "
            "to_double()");
  EXPECT_EQ(Error("flag = 1"), "<expr>:1:6: cannot compare bool with int64");
  EXPECT_EQ(Error("ts > name"),
            "<expr>:1:4: cannot compare timestamp with string; convert the string with "
            "parse_time()");
  EXPECT_EQ(Error("ts > 'yesterday'"),
            "<expr>:1:6: 'yesterday' is not a timestamp (expected 'YYYY-MM-DD HH:MM:SS')");
  EXPECT_EQ(Error("clicks = null"),
            "<expr>:1:8: comparing with null with '=' always gives null; use 'is null' or "
            "'is not null'");
  EXPECT_EQ(Error("1 < 2 < 3"),
            "<expr>:1:7: comparisons cannot be chained; combine them with 'and' (a < b and b < c)");
}

TEST_F(ExprTest, IsNull) {
  EXPECT_EQ(Eval("n_null is null"), "bool true");
  EXPECT_EQ(Eval("n_null is not null"), "bool false");
  EXPECT_EQ(Eval("clicks IS NULL"), "bool false");
  EXPECT_EQ(Eval("clicks Is Not Null"), "bool true");
  EXPECT_EQ(Eval("null is null"), "bool true");
  EXPECT_EQ(Eval("clicks / 0 is null"), "bool true");
  EXPECT_EQ(Eval("s_null || 'x' is null"), "bool true");
  EXPECT_EQ(Error("clicks is 3"), "<expr>:1:11: expected 'null' after 'is', found '3'");
  EXPECT_EQ(Error("clicks not null"),
            "<expr>:1:8: unexpected 'not' here; did you mean 'is not null' or 'not in (...)'?");
}

// ---- three-valued logic ----

TEST_F(ExprTest, AndTruthTable) {
  EXPECT_EQ(Eval("true and true"), "bool true");
  EXPECT_EQ(Eval("true and false"), "bool false");
  EXPECT_EQ(Eval("false and true"), "bool false");
  EXPECT_EQ(Eval("false and false"), "bool false");
  // With a null field, so that the evaluator (not constant folding) decides.
  EXPECT_EQ(Eval("flag and b_null"), "null");
  EXPECT_EQ(Eval("b_null and flag"), "null");
  EXPECT_EQ(Eval("not flag and b_null"), "bool false");
  EXPECT_EQ(Eval("b_null and not flag"), "bool false");
  EXPECT_EQ(Eval("b_null and b_null"), "null");
  // And with literals.
  EXPECT_EQ(Eval("false and null"), "bool false");
  EXPECT_EQ(Eval("null and false"), "bool false");
  EXPECT_EQ(Eval("true and null"), "null");
}

TEST_F(ExprTest, OrTruthTable) {
  EXPECT_EQ(Eval("true or false"), "bool true");
  EXPECT_EQ(Eval("false or true"), "bool true");
  EXPECT_EQ(Eval("false or false"), "bool false");
  EXPECT_EQ(Eval("flag or b_null"), "bool true");
  EXPECT_EQ(Eval("b_null or flag"), "bool true");
  EXPECT_EQ(Eval("not flag or b_null"), "null");
  EXPECT_EQ(Eval("b_null or not flag"), "null");
  EXPECT_EQ(Eval("true or null"), "bool true");
  EXPECT_EQ(Eval("null or true"), "bool true");
  EXPECT_EQ(Eval("false or null"), "null");
}

TEST_F(ExprTest, NotTruthTable) {
  EXPECT_EQ(Eval("not true"), "bool false");
  EXPECT_EQ(Eval("NOT flag"), "bool false");
  EXPECT_EQ(Eval("not b_null"), "null");
  EXPECT_EQ(Eval("not null"), "null");
  EXPECT_EQ(Eval("not not flag"), "bool true");
}

TEST_F(ExprTest, LogicOnComparisonsWithNulls) {
  // n_null = 1 is null; null and false is false; null or true is true.
  EXPECT_EQ(Eval("n_null = 1 and clicks = 0"), "bool false");
  EXPECT_EQ(Eval("n_null = 1 or clicks = 42"), "bool true");
  EXPECT_EQ(Eval("n_null = 1 or clicks = 0"), "null");
  EXPECT_EQ(Eval("clicks > 10 AND name = 'alice' Or false"), "bool true");
}

TEST_F(ExprTest, LogicTypeErrors) {
  EXPECT_EQ(Error("not clicks"),
            "<expr>:1:5: the operand of 'not' must be a condition (bool), got int64");
  EXPECT_EQ(Error("flag and name"),
            "<expr>:1:10: the right side of 'and' must be a condition (bool), got string");
  EXPECT_EQ(Error("1 or flag"),
            "<expr>:1:1: the left side of 'or' must be a condition (bool), got int64");
}

TEST_F(ExprTest, IsTrueHelper) {
  EXPECT_TRUE(IsTrue(Value::Bool(true)));
  EXPECT_FALSE(IsTrue(Value::Bool(false)));
  EXPECT_FALSE(IsTrue(Value()));
  EXPECT_FALSE(IsTrue(Value::Int(1)));
}

// ---- in ----

TEST_F(ExprTest, InList) {
  EXPECT_EQ(Eval("name in ('bob', 'alice')"), "bool true");
  EXPECT_EQ(Eval("name in ('bob', 'carol')"), "bool false");
  EXPECT_EQ(Eval("name not in ('bob', 'carol')"), "bool true");
  EXPECT_EQ(Eval("name NOT IN ('alice')"), "bool false");
  EXPECT_EQ(Eval("clicks in (1, 42, 7)"), "bool true");
  EXPECT_EQ(Eval("clicks in (41.5, 42.0)"), "bool true");  // numeric across int/double
  EXPECT_EQ(Eval("bid in (1, 2.5)"), "bool true");
  EXPECT_EQ(Eval("flag in (false)"), "bool false");
  EXPECT_EQ(Eval("ts in ('2024-01-01', '2024-03-15 13:45:30.25')"), "bool true");
  EXPECT_EQ(Eval("clicks in (clicks - 1, clicks + 1)"), "bool false");
  EXPECT_EQ(Eval("clicks in (digits * 42)"), "bool true");
}

TEST_F(ExprTest, InListNullRules) {
  EXPECT_EQ(Eval("n_null in (1, 2)"), "null");
  EXPECT_EQ(Eval("n_null not in (1, 2)"), "null");
  EXPECT_EQ(Eval("42 in (1, null)"), "null");       // maybe the null is 42
  EXPECT_EQ(Eval("42 in (42, null)"), "bool true");
  EXPECT_EQ(Eval("42 not in (1, null)"), "null");
  EXPECT_EQ(Eval("42 not in (42, null)"), "bool false");
  EXPECT_EQ(Eval("clicks in (1, n_null)"), "null");
  EXPECT_EQ(Eval("clicks in (1, null)"), "null");
  EXPECT_EQ(Eval("clicks in (42, null)"), "bool true");
  EXPECT_EQ(Eval("clicks not in (42, null)"), "bool false");
  EXPECT_EQ(Eval("clicks not in (1, null)"), "null");
  EXPECT_EQ(Eval("clicks not in (1, 2)"), "bool true");
}

TEST_F(ExprTest, LongInListsUseTheSameRules) {
  // Eight or more constants take the hash-set path.
  EXPECT_EQ(Eval("clicks in (1, 2, 3, 4, 5, 6, 7, 8, 42)"), "bool true");
  EXPECT_EQ(Eval("clicks in (1, 2, 3, 4, 5, 6, 7, 8, 9)"), "bool false");
  EXPECT_EQ(Eval("clicks not in (1, 2, 3, 4, 5, 6, 7, 8, 9)"), "bool true");
  EXPECT_EQ(Eval("clicks in (1, 2, 3, 4, 5, 6, 7, 8, null)"), "null");
  EXPECT_EQ(Eval("clicks not in (1, 2, 3, 4, 5, 6, 7, 8, null)"), "null");
  EXPECT_EQ(Eval("clicks in (1, 2, 3, 4, 5, 6, 7, 8, 42, null)"), "bool true");
  EXPECT_EQ(Eval("clicks in (1.5, 2, 3, 4, 5, 6, 7, 8, 42.0)"), "bool true");
  EXPECT_EQ(Eval("bid in (1, 2, 3, 4, 5, 6, 7, 8, 2.5)"), "bool true");
  EXPECT_EQ(Eval("bid in (1, 2, 3, 4, 5, 6, 7, 8, 9)"), "bool false");
  EXPECT_EQ(Eval("name in ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'alice')"), "bool true");
  EXPECT_EQ(Eval("name in ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'alicE')"), "bool false");
  EXPECT_EQ(Eval("n_null in (1, 2, 3, 4, 5, 6, 7, 8, 9)"), "null");
}

TEST_F(ExprTest, InListErrors) {
  EXPECT_EQ(Error("name in (1, 'a')"),
            "<expr>:1:10: cannot compare string with int64 in the 'in' list; convert the string "
            "with to_int() or to_double()");
  EXPECT_EQ(Error("name in ()"), "<expr>:1:10: the 'in' list is empty");
  EXPECT_EQ(Error("name in 'a'"), "<expr>:1:9: expected '(' after 'in', found ''a''");
  EXPECT_EQ(Error("name in ('a' 'b')"),
            "<expr>:1:14: expected ',' or ')' in the 'in' list, found ''b''");
}

// ---- syntax errors and their locations ----

TEST_F(ExprTest, ErrorLocationExampleFromTheBrief) {
  auto compiled = Compile("clicks >", schema_);
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), StatusCode::kParseError);
  EXPECT_EQ(compiled.status().message(), "<expr>:1:9: expected an expression after '>'");
}

TEST_F(ExprTest, ErrorLocationUsesSourceLocation) {
  SourceLocation where{"pipelines/recruitment.toml", 12, 10};
  // '+' is at offset 7, so column 10 + 7.
  EXPECT_EQ(Error("clicks + name", where),
            "pipelines/recruitment.toml:12:17: operator '+' needs numbers, got int64 and string; "
            "use || or concat() to join strings");
  EXPECT_EQ(Error("clicks >", where),
            "pipelines/recruitment.toml:12:18: expected an expression after '>'");
  auto type_error = Compile("name = 1", schema_, where);
  ASSERT_FALSE(type_error.ok());
  EXPECT_EQ(type_error.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ExprTest, AnchorsMapGeneratedTextToWhereItWasWritten) {
  // Text generated from SQL: "(clicks + name)" where clicks was written at 7:3 and '+' at
  // 9:14; the anchors say so, whatever the columns of the generated text are.
  SourceLocation where{"p.sql", 7, 3};
  where.anchors = std::make_shared<const std::vector<SourceAnchor>>(
      std::vector<SourceAnchor>{{1, 7, 3}, {7, 9, 14}, {10, 9, 20}});
  EXPECT_EQ(Error("(clicks + name)", where),
            "p.sql:9:14: operator '+' needs numbers, got int64 and string; use || or concat() "
            "to join strings");
  EXPECT_EQ(Error("(clicks + bogus)", where), "p.sql:9:20: unknown field 'bogus'");
  // Before the first anchor: the first anchor's token.
  EXPECT_EQ(Locate(where, 0), "p.sql:7:3");
  EXPECT_EQ(Locate(where, 8), "p.sql:9:14");
  // A part of the text, compiled on its own, keeps its place in the anchored text.
  SourceLocation rest = Advance(where, 10);
  EXPECT_EQ(rest.line, 7);  // line/column stay the text's start; the anchors decide
  EXPECT_EQ(Locate(rest, 0), "p.sql:9:20");
  EXPECT_EQ(Error("bogus", rest), "p.sql:9:20: unknown field 'bogus'");
  // Without anchors (TOML), Advance and Locate add to the column, as before.
  SourceLocation toml{"p.toml", 3, 5};
  EXPECT_EQ(Locate(Advance(toml, 4), 2), "p.toml:3:11");
}

TEST_F(ExprTest, ErrorLocationOnLaterLines) {
  // A TOML multi-line string: after a newline the column restarts at 1.
  SourceLocation where{"p.toml", 3, 5};
  EXPECT_EQ(Error("clicks > 1 and\n  bogus = 2", where), "p.toml:4:3: unknown field 'bogus'");
}

TEST_F(ExprTest, SyntaxErrors) {
  EXPECT_EQ(Error(""), "<expr>:1:1: empty expression");
  EXPECT_EQ(Error("   "), "<expr>:1:4: empty expression");
  EXPECT_EQ(Error("clicks > 1 and"), "<expr>:1:15: expected an expression after 'and'");
  EXPECT_EQ(Error("clicks > )"), "<expr>:1:10: expected an expression after '>', found ')'");
  EXPECT_EQ(Error("(1 + 2"),
            "<expr>:1:7: expected ')' to close the '(' at column 1, found the end of the "
            "expression");
  EXPECT_EQ(Error("1 + 2)"), "<expr>:1:6: unmatched ')'");
  EXPECT_EQ(Error("clicks bid"),
            "<expr>:1:8: unexpected 'bid'; expected an operator or the end of the expression");
  EXPECT_EQ(Error("name = 'abc"), "<expr>:1:8: unterminated string: missing closing quote (')");
  EXPECT_EQ(Error("`abc"), "<expr>:1:1: unterminated field name: missing closing backquote (`)");
  EXPECT_EQ(Error("name = \"abc\""),
            "<expr>:1:8: unexpected '\"': write strings in single quotes ('text') and unusual "
            "field names in backquotes (`name`)");
  EXPECT_EQ(Error("flag && true"), "<expr>:1:6: unexpected '&': use 'and' to combine conditions");
  EXPECT_EQ(Error("!flag"),
            "<expr>:1:1: unexpected '!': use 'not' for negation or '!=' for inequality");
  EXPECT_EQ(Error("name | 'x'"),
            "<expr>:1:6: unexpected '|': use '||' to join strings, 'or' for either condition");
  EXPECT_EQ(Error("clicks # 1"), "<expr>:1:8: unexpected character '#'");
  EXPECT_EQ(Error("12abc"),
            "<expr>:1:1: malformed number '12abc' (names cannot start with a digit; write "
            "`12abc` for such a field)");
  EXPECT_EQ(Error("1.2.3"),
            "<expr>:1:1: malformed number '1.2.3' (names cannot start with a digit; write "
            "`1.2.3` for such a field)");
  EXPECT_EQ(Error("and"), "<expr>:1:1: expected an expression, found 'and'");
}

TEST_F(ExprTest, ErrorsAreParseOrInvalidArgument) {
  auto syntax = Compile("(", schema_);
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().code(), StatusCode::kParseError);
  auto unknown = Compile("nope", schema_);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ExprTest, KeywordsAreCaseInsensitiveNamesAreNot) {
  EXPECT_EQ(Eval("clicks > 1 AND name IS NOT NULL"), "bool true");
  EXPECT_EQ(Eval("name NoT In ('x')"), "bool true");
  EXPECT_EQ(Eval("TRUE Or FALSE"), "bool true");
  EXPECT_EQ(Error("CLICKS > 1"), "<expr>:1:1: unknown field 'CLICKS' (did you mean 'clicks'?)");
}

TEST_F(ExprTest, ReservedWordAsFieldNeedsBackquotes) {
  Schema schema({F("in", Type::kInt64), F("x", Type::kInt64)});
  auto plain = Compile("x + in", schema);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().message(),
            "<expr>:1:5: expected an expression after '+', found 'in'; write `in` to refer to "
            "the field of that name");
  auto quoted = Compile("x + `in`", schema);
  ASSERT_TRUE(quoted.ok()) << quoted.status().message();
  std::vector<Value> row = {Value::Int(2), Value::Int(5)};
  EXPECT_EQ(Show((*quoted)->Eval(row)), "int64 7");
}

TEST_F(ExprTest, WhitespaceIsFree) {
  EXPECT_EQ(Eval("\tclicks\n>\r\n1   and(flag)"), "bool true");
  EXPECT_EQ(Eval("clicks>1"), "bool true");
  EXPECT_EQ(Eval("clicks-1"), "int64 41");
}

// ---- static types ----

TEST_F(ExprTest, StaticTypes) {
  EXPECT_EQ(TypeOf("clicks"), "int64");
  EXPECT_EQ(TypeOf("clicks * 2"), "int64");
  EXPECT_EQ(TypeOf("clicks * 2.0"), "double");
  EXPECT_EQ(TypeOf("clicks > 1"), "bool");
  EXPECT_EQ(TypeOf("name || 1"), "string");
  EXPECT_EQ(TypeOf("n_null is null"), "bool");
  EXPECT_EQ(TypeOf("ts"), "timestamp");
  EXPECT_EQ(TypeOf("n_null + 1"), "int64");
}

TEST_F(ExprTest, CompilePredicateWantsBool) {
  auto ok = CompilePredicate("clicks > 1", schema_);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE(IsTrue((*ok)->Eval(row_)));
  auto bad = CompilePredicate("  clicks + 1", schema_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "<expr>:1:3: expected a condition (a bool expression such as x = 'a'), got int64");
  EXPECT_TRUE(CompilePredicate("b_null", schema_).ok());
}

// ---- robustness: rows that do not match the schema ----

TEST_F(ExprTest, ShortRowYieldsNull) {
  auto compiled = Compile("bid * 2", schema_);
  ASSERT_TRUE(compiled.ok());
  std::vector<Value> short_row = {Value::Int(1)};
  EXPECT_EQ(Show((*compiled)->Eval(short_row)), "null");
  EXPECT_EQ(Show((*compiled)->Eval({})), "null");
}

TEST_F(ExprTest, MistypedSlotYieldsNull) {
  auto compiled = Compile("name || '!'", schema_);
  ASSERT_TRUE(compiled.ok());
  std::vector<Value> row = row_;
  row[2] = Value::Int(5);  // name holds an int64
  EXPECT_EQ(Show((*compiled)->Eval(row)), "null");
  auto length = Compile("length(name) > 1", schema_);
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(Show((*length)->Eval(row)), "null");
  auto bid = Compile("bid * 2", schema_);
  ASSERT_TRUE(bid.ok());
  row[1] = Value::Int(3);  // an int64 in a double field is widened
  EXPECT_EQ(Show((*bid)->Eval(row)), "double 6");
  row[1] = Str("3");
  EXPECT_EQ(Show((*bid)->Eval(row)), "null");
  auto field = Compile("bid", schema_);
  ASSERT_TRUE(field.ok());
  EXPECT_EQ(Show((*field)->Eval(row)), "null");
}

TEST_F(ExprTest, PathologicalNestingIsRejected) {
  std::string deep(500, '(');
  deep += "1";
  deep += std::string(500, ')');
  EXPECT_EQ(Error(deep).rfind("<expr>:1:201: expression is nested too deeply", 0), 0u)
      << Error(deep);
  std::string long_chain = "clicks";
  for (int i = 0; i < 1500; ++i) long_chain += " + clicks";
  EXPECT_NE(Error(long_chain).find("expression is too large"), std::string::npos);
  std::string ok_chain = "clicks";
  for (int i = 0; i < 99; ++i) ok_chain += " + clicks";
  EXPECT_EQ(Eval(ok_chain), "int64 4200");
}

TEST_F(ExprTest, EvaluatesRepeatedlyWithDifferentRows) {
  auto compiled = Compile("if(clicks > 10, name || '!', lower(name))", schema_);
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  std::vector<Value> row = row_;
  EXPECT_EQ(Show((*compiled)->Eval(row)), "string 'alice!'");
  row[0] = Value::Int(3);
  row[2] = Str("BOB");
  EXPECT_EQ(Show((*compiled)->Eval(row)), "string 'bob'");
  row[0] = Value();
  EXPECT_EQ(Show((*compiled)->Eval(row)), "string 'bob'");  // null condition takes the else
}

}  // namespace
}  // namespace sluice::expr::testing
