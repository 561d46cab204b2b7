#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "expr/node.h"

namespace sluice::expr::internal {

/// Classifies a token of the expression language.
enum class TokenKind {
  kEnd,          ///< the end of the text
  kInt,          ///< 123
  kDouble,       ///< 1.5, .5, 1e3
  kString,       ///< 'text' ('' stands for one quote)
  kIdent,        ///< a name or keyword; keywords are recognised by the parser
  kQuotedIdent,  ///< `a name` (`` stands for one backquote); never a keyword
  kSymbol,       ///< ( ) , + - * / % || = == != <> < <= > >=
};

/// Holds one token and where it starts in the expression text.
struct Token {
  TokenKind kind = TokenKind::kEnd;
  size_t pos = 0;         ///< byte offset in the text
  std::string_view text;  ///< as written, quotes included
  std::string value;      ///< unescaped content of kString and kQuotedIdent
};

/// Splits `text` into tokens, ending with one kEnd token at text.size().
/// Fails with a ParseError for unterminated quotes, malformed numbers and stray characters.
Result<std::vector<Token>> Tokenize(std::string_view text, const Diag& diag);

}  // namespace sluice::expr::internal
