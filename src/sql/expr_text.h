#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "core/status.h"
#include "sql/pg_node.h"
#include "sql/source_map.h"

namespace sluice::sql {

/// Sluice expression text together with where its pieces were written in the .sql file, so
/// that an error the planner finds at a byte of the text points at the SQL token that piece was
/// made from (expr::SourceLocation::anchors).
struct ExprText {
  std::string text;
  /// (offset in `text`, byte offset in the .sql file), sorted by the first. Text before the
  /// first mark belongs to the first mark; text after a mark to that mark.
  std::vector<std::pair<size_t, int64_t>> marks;

  /// Appends `s`; with `at` >= 0, the text from here on comes from the SQL token at byte `at`.
  ExprText& Add(std::string_view s, int64_t at = -1);
  /// Appends `e` with its marks.
  ExprText& Add(const ExprText& e);
};

/// `s`, written at the SQL byte `at`.
ExprText Piece(std::string_view s, int64_t at);

/// What every part of the SQL translation shares: the file (for line:column), the variables
/// substituted into string literals, and the uses recorded for `validate` and `run`.
struct Context {
  const SourceMap* map = nullptr;
  const Variables* vars = nullptr;
  std::vector<VariableUse>* uses = nullptr;

  /// "file:line:column: message" at the byte `location` (0 when unknown).
  Status Error(int64_t location, const std::string& message) const;
  /// Where `e` is written, for the planner: its anchors, and line:column of its first mark
  /// (else of `fallback`, a byte offset).
  expr::SourceLocation Where(const ExprText& e, int64_t fallback) const;
  /// `text` of a string literal written at `location`, ${NAME} substituted.
  Result<std::string> Substitute(std::string_view text, int64_t location) const;
};

/// Resolves column references for the expression emitter.
class Scope {
 public:
  virtual ~Scope() = default;
  /// `names` is [column] or [table, column]; returns the sluice expression text that reads it.
  virtual Result<std::string> Resolve(const std::vector<std::string>& names, int64_t location) = 0;
};

/// Quotes `s` as a sluice string literal ('it''s').
std::string QuoteString(std::string_view s);
/// Writes a field name as sluice reads it: bare when it is a plain name, else in backquotes.
std::string FieldName(std::string_view name);
/// True for the aggregate functions a GROUP BY query may use.
bool IsAggregateName(std::string_view lower_name);
/// The integer of an A_Const's `ival` (libpg_query 15-4.0.0 drops negative values from its
/// JSON; those are read back from the text at the constant's location).
Result<int64_t> IntConstant(const Context& ctx, const PgNode& a_const);
/// A duration written as INTERVAL 'n unit [n unit ...]' (or '10s', as in TOML files), in
/// microseconds; weeks, months and years are not fixed lengths and are refused.
Result<int64_t> IntervalMicros(const Context& ctx, const PgNode& node);
/// The same for the text of an interval ('1 minute', '90 seconds', '10s'), written at `at`.
Result<int64_t> IntervalTextMicros(const Context& ctx, const std::string& text, int64_t at);

/// Why a type written with a modifier (varchar(3), numeric(10,2), char, timestamp(3)) is refused,
/// or "" when it has none: sluice keeps no length, padding, scale or precision, and ignoring the
/// modifier silently would give other values than PostgreSQL.
std::string TypeModifierError(const PgNode& type_name);
/// The name of a generic function call (lower case; pg_catalog.btrim is trim).
std::string FunctionName(const PgNode& func_call);

/// Turns a PostgreSQL expression into sluice expression text. Every operation is
/// parenthesised, so PostgreSQL's parse fixes the precedence. Anything sluice cannot express
/// is an error at its line:column.
class ExprEmitter {
 public:
  ExprEmitter(const Context& ctx, Scope* scope) : ctx_(ctx), scope_(scope) {}
  Result<ExprText> Emit(const PgNode& node) { return Emit(node, 0); }

 private:
  Result<ExprText> Emit(const PgNode& node, int depth);
  Result<std::string> EmitConst(const PgNode& node);
  Result<ExprText> EmitAExpr(const PgNode& node, int depth);
  Result<ExprText> EmitFuncCall(const PgNode& node, int depth);
  Result<ExprText> EmitCase(const PgNode& node, int depth);
  Result<ExprText> EmitCast(const PgNode& node, int depth);
  Result<ExprText> EmitList(const std::vector<PgNode>& items, int depth);

  const Context& ctx_;
  Scope* scope_;
};

}  // namespace sluice::sql
