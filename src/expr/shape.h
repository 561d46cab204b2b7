#pragma once

#include <cstddef>
#include <string>
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
    kParseTime,     ///< `parse_time(a)` (one argument) with a string argument
  };
  Kind kind = Kind::kOther;
  size_t slot = 0;
  bool negate = false;
  bool has_null = false;  ///< kStringIn: the list holds a null
  const Expr* a = nullptr;
  const Expr* b = nullptr;
  std::vector<std::string> strings;
  std::vector<const Expr*> args;  ///< kCoalesce: the arguments, in order
  Value value;                    ///< kLiteral
};

/// Returns the shape of `e`'s top node (kOther for any node not listed in Shape::Kind).
Shape Describe(const Expr& e);

}  // namespace sluice::expr
