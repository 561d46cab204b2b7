#pragma once

#include <memory>
#include <string>

#include <simdjson.h>

#include "core/status.h"
#include "sql/source_map.h"

namespace sluice::sql {

/// The deepest JSON parse tree accepted (a very long chain such as `a + a + ... + a` nests
/// four JSON levels per operator); deeper input is "nested too deeply", never a stack overflow.
inline constexpr size_t kMaxJsonDepth = 4096;

/// A .sql file parsed by the PostgreSQL parser (libpg_query), as its JSON parse tree.
struct ParsedSql {
  std::unique_ptr<simdjson::dom::parser> parser;  ///< owns the tree `root` points into
  simdjson::dom::element root;                    ///< {"version": N, "stmts": [...]}
};

/// Parses `map.text()`. Errors are "file:line:column: message", the column in code points:
/// PostgreSQL's syntax errors, a NUL byte (the parser would stop there silently), ${NAME}
/// outside a string literal, and a tree nested too deeply.
Result<ParsedSql> ParsePostgres(const SourceMap& map);

}  // namespace sluice::sql
