#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "expr/expr.h"

namespace sluice::expr {

/// Describes the top node of a compiled condition or value for evaluators that read typed columns
/// instead of rows (operators/column_filter.h). Only the kinds such evaluators handle are
/// described; every other node is kOther, which they leave to row-by-row evaluation.
struct Shape {
  enum class Kind {
    kOther,
    kField,     ///< a field reference: `slot`
    kIsNull,    ///< `a is null` (`negate`: is not null)
    kStringEq,  ///< `a = 'text'` with a string field (`negate`: `<>`); `strings[0]` the constant
    kStringIn,  ///< `a in ('x', ...)` of constant strings (`negate`: not in; `has_null`)
    kAnd,       ///< `a and b`
    kOr,        ///< `a or b`
    kNot,       ///< `not a`
    kLiteral,       ///< a constant: `value`
    kCoalesce,      ///< `coalesce(args...)` with no conversion of its arguments
    kTimeUuidTime,  ///< `timeuuid_time(a)` with a string argument
    kParseTime,     ///< `parse_time(a[, format])` with a string argument: `time_format`
    kTrim,          ///< `trim(a)` with a string argument (TrimSpaces)
    kSecondsBetween,  ///< `seconds_between(a, b)` of two timestamps (SecondsBetweenMicros)
    /// `a <op> value` with a non-null constant on the right (written on either side) in the
    /// int64, double or timestamp domain: `cmp`, `domain`, `value`
    kCompareConst,
  };
  /// kParseTime: the format, as parse_time()'s second argument names it (none: kAuto).
  enum class TimeFormat { kAuto, kIso, kUs };
  enum class Cmp { kEq, kNe, kLt, kLe, kGt, kGe };
  Kind kind = Kind::kOther;
  size_t slot = 0;
  bool negate = false;
  bool has_null = false;  ///< kStringIn: the list holds a null
  const Expr* a = nullptr;
  const Expr* b = nullptr;
  std::vector<std::string> strings;
  std::vector<const Expr*> args;  ///< kCoalesce: the arguments, in order
  Value value;                    ///< kLiteral; kCompareConst: the constant
  TimeFormat time_format = TimeFormat::kAuto;  ///< kParseTime
  Cmp cmp = Cmp::kEq;                          ///< kCompareConst
  /// kCompareConst: how the operands compare: kInt64 (both int64), kDouble (numbers as
  /// doubles, an int64 converted), kTimestamp (microseconds).
  Type domain = Type::kNull;
};

/// Returns the shape of `e`'s top node (kOther for any node not listed in Shape::Kind).
Shape Describe(const Expr& e);

/// What trim() returns for `s` (the row path's own function): `s` without the spaces, tabs,
/// line breaks (\n, \r), form feeds and vertical tabs at both ends; no other byte (no Unicode
/// space such as U+00A0) is stripped.
std::string_view TrimSpaces(std::string_view s);

/// What seconds_between(a, b) returns for timestamps `from` and `to` in microseconds (the row
/// path's own function): `to - from` in seconds, negative when `to` is earlier.
double SecondsBetweenMicros(int64_t from, int64_t to);

}  // namespace sluice::expr
