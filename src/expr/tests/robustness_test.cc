#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expr/expr.h"
#include "expr/tests/expr_test_util.h"

namespace sluice::expr::testing {
namespace {

/// Returns a value of a random type, biased towards edge cases, for any slot.
Value RandomValue(std::mt19937_64& rng) {
  static const std::vector<Value> kEdge = {
      Value(),
      Value::Int(0),
      Value::Int(-1),
      Value::Int(std::numeric_limits<int64_t>::min()),
      Value::Int(std::numeric_limits<int64_t>::max()),
      Value::Double(0.0),
      Value::Double(-0.0),
      Value::Double(std::numeric_limits<double>::quiet_NaN()),
      Value::Double(std::numeric_limits<double>::infinity()),
      Value::Double(-1e308),
      Value::Double(5e-324),
      Str(""),
      Str("42"),
      Str("-9223372036854775808"),
      Str("2024-03-15 13:45:30"),
      Str("3/15/2024 13:45"),
      Str(kUuid2024),
      Str("h\xC3\xA9llo \xFF"),
      Value::Bool(true),
      Value::Bool(false),
      Value::TimeMicros(0),
      Value::TimeMicros(-1),
      Value::TimeMicros(kTsMicros),
      // About +-290,000 years: the widest instants a timestamp can hold.
      Value::TimeMicros(std::numeric_limits<int64_t>::min() / 2),
      Value::TimeMicros(std::numeric_limits<int64_t>::max() / 2),
  };
  std::uniform_int_distribution<size_t> pick(0, kEdge.size() - 1);
  return kEdge[pick(rng)];
}

const std::vector<std::string> kAtoms = {
    "clicks", "bid", "name", "ts", "flag", "n_null", "s_null", "b_null", "uuid", "`my field`",
    "t_null", "digits", "min_int", "d_null", "0", "1", "-1", "2.5", "1e308",
    "9223372036854775807", "'a'", "'2024-01-01'", "'1h'", "'%Y'", "''", "'42'", "true",
    "false", "null"};
const std::vector<std::string> kBinary = {"+", "-", "*", "/", "%", "||", "=", "<>", "<",
                                          ">=", "and", "or"};
const std::vector<std::string> kFunctions = {
    "coalesce", "if", "timeuuid_time", "parse_time", "date", "hour", "minute", "format_time",
    "floor_time", "epoch_seconds", "seconds_between", "round", "floor", "ceil", "abs", "lower",
    "upper", "trim", "length", "concat", "to_int", "to_double", "to_string", "is_int"};

template <typename T>
const T& PickFrom(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

/// Returns a syntactically valid expression; many are ill-typed on purpose.
std::string RandomExpression(std::mt19937_64& rng, int depth) {
  const int kind = depth <= 0 ? 0 : std::uniform_int_distribution<int>(0, 7)(rng);
  switch (kind) {
    case 0: return PickFrom(kAtoms, rng);
    case 1: return "-" + RandomExpression(rng, depth - 1);
    case 2: return "not " + RandomExpression(rng, depth - 1);
    case 3:
      return "(" + RandomExpression(rng, depth - 1) + " " + PickFrom(kBinary, rng) + " " +
             RandomExpression(rng, depth - 1) + ")";
    case 4: return RandomExpression(rng, depth - 1) + " is not null";
    case 5: {
      std::string text = RandomExpression(rng, depth - 1) + " in (";
      const int n = std::uniform_int_distribution<int>(1, 10)(rng);
      for (int i = 0; i < n; ++i) text += (i ? ", " : "") + PickFrom(kAtoms, rng);
      return text + ")";
    }
    default: {
      std::string text = PickFrom(kFunctions, rng) + "(";
      const int n = std::uniform_int_distribution<int>(1, 3)(rng);
      for (int i = 0; i < n; ++i) text += (i ? ", " : "") + RandomExpression(rng, depth - 1);
      return text + ")";
    }
  }
}

/// Checks that whatever compiles evaluates, against random and mistyped rows, without crashing
/// (this test matters most under ASan/UBSan) and to a value that is null or of type().
void CheckEvaluates(const Schema& schema, const std::vector<Value>& good_row,
                    const std::string& text, std::mt19937_64& rng, int* compiled) {
  auto expr = Compile(text, schema);
  if (!expr.ok()) {
    ASSERT_EQ(expr.status().message().rfind("<expr>:1:", 0), 0u) << text;
    return;
  }
  ++*compiled;
  for (int k = 0; k < 4; ++k) {
    std::vector<Value> row(schema.size());
    for (Value& v : row) v = RandomValue(rng);
    if (k == 0) row = good_row;
    const Value result = (*expr)->Eval(row);
    ASSERT_TRUE(result.is_null() || result.type() == (*expr)->type())
        << text << " gave " << Show(result);
  }
}

TEST_F(ExprTest, RandomExpressionsNeverBreakTheNodeInvariant) {
  std::mt19937_64 rng(20240315);
  int compiled = 0;
  for (int i = 0; i < 20000; ++i) {
    CheckEvaluates(schema_, row_, RandomExpression(rng, 3), rng, &compiled);
    if (HasFatalFailure()) return;
  }
  // The expressions must exercise the evaluator, not only the type errors.
  EXPECT_GT(compiled, 2000);
}

TEST_F(ExprTest, RandomTokenSoupsFailCleanly) {
  std::vector<std::string> vocabulary = kAtoms;
  for (const std::string& op : kBinary) vocabulary.push_back(op);
  for (const std::string& fn : kFunctions) vocabulary.push_back(fn + "(");
  for (const char* extra : {"(", ")", ",", "is", "in", "not", "'", "`", "!", "|", "\"", "."}) {
    vocabulary.push_back(extra);
  }
  std::mt19937_64 rng(7);
  int compiled = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    const int n = std::uniform_int_distribution<int>(0, 12)(rng);
    for (int j = 0; j < n; ++j) text += PickFrom(vocabulary, rng) + " ";
    CheckEvaluates(schema_, row_, text, rng, &compiled);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace sluice::expr::testing
