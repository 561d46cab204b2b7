#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/time.h"
#include "core/value.h"
#include "expr/expr.h"

namespace sluice::expr::testing {

/// Renders a value with its type, so expectations read "int64 3" or "string 'a'".
inline std::string Show(const Value& v) {
  if (v.is_null()) return "null";
  std::string text = v.ToString();
  if (v.type() == Type::kString) text = "'" + text + "'";
  return std::string(TypeName(v.type())) + " " + text;
}

/// 2024-03-15 13:45:30.250 UTC: 19797 days after 1970-01-01 (2024-01-01 is day 19723, then
/// 31 + 29 + 14 days), plus 13 h 45 min 30.25 s.
inline constexpr int64_t kTsMicros =
    (19797LL * 86400 + 13 * 3600 + 45 * 60 + 30) * 1000000 + 250000;

/// A version-1 UUID for 2024-01-01 00:00:00 UTC (1704067200 s after the epoch).
inline constexpr std::string_view kUuid2024 = "b4cc8000-a838-11ee-9234-0123456789ab";

/// Returns a field without a source path.
inline Field F(std::string name, Type type) { return Field{std::move(name), type, ""}; }

/// Returns a string value (Value::String is ambiguous for a string literal).
inline Value Str(std::string_view s) { return Value::String(std::string(s)); }

class ExprTest : public ::testing::Test {
 protected:
  ExprTest()
      : schema_({
            F("clicks", Type::kInt64),     // 0
            F("bid", Type::kDouble),       // 1
            F("name", Type::kString),      // 2
            F("ts", Type::kTimestamp),     // 3
            F("flag", Type::kBool),        // 4
            F("n_null", Type::kInt64),     // 5
            F("s_null", Type::kString),    // 6
            F("b_null", Type::kBool),      // 7
            F("uuid", Type::kString),      // 8
            F("my field", Type::kString),  // 9
            F("t_null", Type::kTimestamp),  // 10
            F("digits", Type::kInt64),     // 11
            F("min_int", Type::kInt64),    // 12
            F("d_null", Type::kDouble),    // 13
        }),
        row_({Value::Int(42), Value::Double(2.5), Str("alice"),
              Value::TimeMicros(kTsMicros), Value::Bool(true), Value(), Value(), Value(),
              Str(kUuid2024), Str("spaced"), Value(), Value::Int(1),
              Value::Int(std::numeric_limits<int64_t>::min()), Value()}) {}

  /// Compiles and evaluates `text` against row_; returns Show() of the result, or
  /// "error: <message>" when it does not compile.
  std::string Eval(std::string_view text) {
    auto compiled = Compile(text, schema_);
    if (!compiled.ok()) return "error: " + compiled.status().message();
    return Show((*compiled)->Eval(row_));
  }

  /// Returns the static type of `text`, or "error: ...".
  std::string TypeOf(std::string_view text) {
    auto compiled = Compile(text, schema_);
    if (!compiled.ok()) return "error: " + compiled.status().message();
    return std::string(TypeName((*compiled)->type()));
  }

  /// Returns the compile error message for `text`, or "compiled" when it compiles.
  std::string Error(std::string_view text, const SourceLocation& where = {}) {
    auto compiled = Compile(text, schema_, where);
    if (compiled.ok()) return "compiled";
    return compiled.status().message();
  }

  Schema schema_;
  std::vector<Value> row_;
};

}  // namespace sluice::expr::testing
