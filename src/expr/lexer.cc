#include "expr/lexer.h"

#include <cstdio>

namespace sluice::expr::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

std::string DescribeChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02X", u);
  return buf;
}

/// Scans a quoted run starting at `text[i]` (the opening quote); a doubled quote stands for
/// one. Returns the index just past the closing quote, or npos when it is missing.
size_t ScanQuoted(std::string_view text, size_t i, char quote, std::string* value) {
  for (size_t j = i + 1; j < text.size(); ++j) {
    if (text[j] != quote) {
      value->push_back(text[j]);
    } else if (j + 1 < text.size() && text[j + 1] == quote) {
      value->push_back(quote);
      ++j;
    } else {
      return j + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

Result<std::vector<Token>> Tokenize(std::string_view text, const Diag& diag) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (true) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    Token tok;
    tok.pos = i;
    if (i == text.size()) {
      tok.kind = TokenKind::kEnd;
      tokens.push_back(std::move(tok));
      return tokens;
    }
    const char c = text[i];
    size_t end = i + 1;
    if (IsIdentStart(c)) {
      while (end < text.size() && IsIdentChar(text[end])) ++end;
      tok.kind = TokenKind::kIdent;
    } else if (IsDigit(c) || (c == '.' && end < text.size() && IsDigit(text[end]))) {
      end = i;
      bool is_double = false;
      while (end < text.size() && IsDigit(text[end])) ++end;
      if (end < text.size() && text[end] == '.') {
        is_double = true;
        ++end;
        while (end < text.size() && IsDigit(text[end])) ++end;
      }
      if (end < text.size() && (text[end] == 'e' || text[end] == 'E')) {
        size_t e = end + 1;
        if (e < text.size() && (text[e] == '+' || text[e] == '-')) ++e;
        if (e < text.size() && IsDigit(text[e])) {
          is_double = true;
          end = e;
          while (end < text.size() && IsDigit(text[end])) ++end;
        }
      }
      if (end < text.size() && (IsIdentChar(text[end]) || text[end] == '.')) {
        size_t bad_end = end;
        while (bad_end < text.size() && (IsIdentChar(text[bad_end]) || text[bad_end] == '.')) {
          ++bad_end;
        }
        return diag.SyntaxError(
            i, "malformed number '" + std::string(text.substr(i, bad_end - i)) +
                   "' (names cannot start with a digit; write `" +
                   std::string(text.substr(i, bad_end - i)) + "` for such a field)");
      }
      tok.kind = is_double ? TokenKind::kDouble : TokenKind::kInt;
    } else if (c == '\'') {
      end = ScanQuoted(text, i, '\'', &tok.value);
      if (end == std::string_view::npos) {
        return diag.SyntaxError(i, "unterminated string: missing closing quote (')");
      }
      tok.kind = TokenKind::kString;
    } else if (c == '`') {
      end = ScanQuoted(text, i, '`', &tok.value);
      if (end == std::string_view::npos) {
        return diag.SyntaxError(i, "unterminated field name: missing closing backquote (`)");
      }
      if (tok.value.empty()) return diag.SyntaxError(i, "empty field name ``");
      tok.kind = TokenKind::kQuotedIdent;
    } else if (c == '"') {
      return diag.SyntaxError(i,
                              "unexpected '\"': write strings in single quotes ('text') and "
                              "unusual field names in backquotes (`name`)");
    } else {
      const char next = end < text.size() ? text[end] : '\0';
      tok.kind = TokenKind::kSymbol;
      switch (c) {
        case '(': case ')': case ',': case '+': case '-': case '*': case '/': case '%':
          break;
        case '=':
          if (next == '=') ++end;
          break;
        case '<':
          if (next == '=' || next == '>') ++end;
          break;
        case '>':
          if (next == '=') ++end;
          break;
        case '!':
          if (next != '=') {
            return diag.SyntaxError(i, "unexpected '!': use 'not' for negation or '!=' for "
                                       "inequality");
          }
          ++end;
          break;
        case '|':
          if (next != '|') {
            return diag.SyntaxError(i, "unexpected '|': use '||' to join strings, 'or' for "
                                       "either condition");
          }
          ++end;
          break;
        case '&':
          return diag.SyntaxError(i, "unexpected '&': use 'and' to combine conditions");
        default:
          return diag.SyntaxError(i, "unexpected character " + DescribeChar(c));
      }
    }
    tok.text = text.substr(i, end - i);
    tokens.push_back(std::move(tok));
    i = end;
  }
}

}  // namespace sluice::expr::internal
