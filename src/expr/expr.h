#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace sluice::expr {

/// Where one piece of a generated expression text was written: the text from byte `offset` on
/// (up to the next anchor) comes from the token at `line`:`column` of the pipeline file.
struct SourceAnchor {
  size_t offset = 0;
  int line = 0;
  int column = 0;
};

/// Says where an expression's text starts in its pipeline file, so errors can point at
/// file:line:column of the offending token.
///
/// Text written by hand (TOML) is located by its first character: a byte `pos` of the text is
/// at `column + pos` (following newlines). Text generated from another language (SQL) carries
/// `anchors` instead: byte `pos` is where the last anchor at or before `base + pos` says, so an
/// error points at the token the user wrote, not into the generated text. `line`/`column` are
/// then the location of the text's first token.
struct SourceLocation {
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based column of the expression's first character
  /// Sorted by offset; set for generated text. Offsets count from the start of the whole text.
  std::shared_ptr<const std::vector<SourceAnchor>> anchors = nullptr;
  size_t base = 0;  ///< with anchors: where this (sub)text starts in the anchored text
};

/// The location of byte `offset` of the text `where` locates, for compiling a part of it.
SourceLocation Advance(SourceLocation where, size_t offset);
/// "FILE:LINE:COL" of byte `offset` of the text `where` locates.
std::string Locate(const SourceLocation& where, size_t offset = 0);
/// The line and column of byte `pos` of `text`, the text `where` locates (newlines in `text`
/// are followed when there are no anchors).
void LineColumn(const SourceLocation& where, std::string_view text, size_t pos, int* line,
                int* column);

/// A compiled expression: type-checked once, evaluated per record without re-parsing.
///
/// Thread-safety: Eval() is const and touches no shared mutable state, so one compiled
/// expression may be evaluated by many worker threads at once.
class Expr {
 public:
  virtual ~Expr() = default;
  /// Returns the static result type (Type::kNull only for the literal `null`).
  virtual Type type() const = 0;
  /// Evaluates against a row laid out as the Schema the expression was compiled with.
  virtual Value Eval(std::span<const Value> row) const = 0;
  /// Evaluates like Eval() without copying: returns a reference to a row slot or a constant
  /// when the result is one, else to `scratch`, which receives the computed value.
  virtual const Value& EvalRef(std::span<const Value> row, Value& scratch) const = 0;
  /// Evaluates a condition the SQL way, as IsTrue(Eval(row)), without building a Value.
  virtual bool EvalTrue(std::span<const Value> row) const = 0;
};

/// Compiles `text` against `schema` (field references resolve to slots by name).
/// Errors are InvalidArgument/ParseError with the message "FILE:LINE:COL: what went wrong".
Result<std::unique_ptr<Expr>> Compile(std::string_view text, const Schema& schema,
                                      const SourceLocation& where = {});

/// Compiles a condition (a filter or an aggregate's `where`): like Compile(), but rejects
/// expressions that are not bool, pointing at the expression's start.
Result<std::unique_ptr<Expr>> CompilePredicate(std::string_view text, const Schema& schema,
                                               const SourceLocation& where = {});

/// Evaluates a predicate the SQL way: true only when the value is a non-null true.
inline bool IsTrue(const Value& v) { return v.type() == Type::kBool && v.bool_value(); }

}  // namespace sluice::expr
