// libFuzzer target for the expression language (src/expr): the input is an expression's text.
// It is compiled as a value and as a predicate against a schema with a field of every type;
// what compiles is evaluated (Eval, EvalRef, EvalTrue) on a usual row, an all-null row and a
// row of edge values (INT64_MIN, NaN, -0.0, the empty string, invalid UTF-8, far instants),
// checking that a value is null or of the static type, EvalRef agrees with Eval and EvalTrue
// with IsTrue(Eval).
// Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/value.h"
#include "expr/expr.h"

namespace {

using sluice::Field;
using sluice::Schema;
using sluice::Type;
using sluice::Value;

const Schema& FuzzSchema() {
  static const Schema schema({Field{"i", Type::kInt64, ""}, Field{"d", Type::kDouble, ""},
                              Field{"s", Type::kString, ""}, Field{"t", Type::kTimestamp, ""},
                              Field{"b", Type::kBool, ""}, Field{"u", Type::kString, ""},
                              Field{"my field", Type::kString, ""}});
  return schema;
}

const std::vector<std::vector<Value>>& Rows() {
  static const std::vector<std::vector<Value>> rows = {
      {Value::Int(42), Value::Double(2.5), Value::String("alice"), Value::TimeMicros(1710510330250000),
       Value::Bool(true), Value::String("b4cc8000-a838-11ee-9234-0123456789ab"), Value::String("7")},
      std::vector<Value>(7),
      {Value::Int(std::numeric_limits<int64_t>::min()), Value::Double(std::numeric_limits<double>::quiet_NaN()),
       Value::String(""), Value::TimeMicros(std::numeric_limits<int64_t>::min() / 2), Value::Bool(false),
       Value::String("h\xC3\xA9llo \xFF"), Value::String("-9223372036854775808")},
      {Value::Int(std::numeric_limits<int64_t>::max()), Value::Double(-0.0), Value::String("%Y-%m-%d %H"),
       Value::TimeMicros(std::numeric_limits<int64_t>::max() / 2), Value::Bool(true),
       Value::String("ffffffff-ffff-1fff-ffff-ffffffffffff"), Value::String("1e308")},
  };
  return rows;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto compiled = sluice::expr::Compile(text, FuzzSchema());
  if (compiled.ok()) {
    const auto& expr = *compiled.value();
    for (const auto& row : Rows()) {
      Value scratch;
      const Value v = expr.Eval(row);
      const Value& ref = expr.EvalRef(row, scratch);
      // The documented contract: a value is null or of the static type, and EvalRef computes
      // what Eval does.
      if (!v.is_null() && v.type() != expr.type()) __builtin_trap();
      if (ref.is_null() != v.is_null() || ref.ToString() != v.ToString()) __builtin_trap();
    }
  }
  auto predicate = sluice::expr::CompilePredicate(text, FuzzSchema());
  if (predicate.ok()) {
    for (const auto& row : Rows()) {
      const auto& p = *predicate.value();
      if (p.EvalTrue(row) != sluice::expr::IsTrue(p.Eval(row))) __builtin_trap();
    }
  }
  return 0;
}
