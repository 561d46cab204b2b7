#include "sql/pg_parse.h"

#include <pg_query.h>

namespace sluice::sql {

Result<ParsedSql> ParsePostgres(const SourceMap& map) {
  const std::string_view text = map.text();
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return Status::InvalidArgument(map.Locate(nul) +
                                   ": the file contains a NUL byte (a .sql file is text)");
  }
  const std::string input(text);  // NUL-terminated for the parser
  PgQueryParseResult result = pg_query_parse(input.c_str());
  if (result.error != nullptr) {
    std::string message = result.error->message ? result.error->message : "syntax error";
    // cursorpos is 1-based and counts code points; 0 means "no position".
    const int cursor = result.error->cursorpos;
    size_t offset = cursor > 0 ? map.ByteOfCodePoint(static_cast<size_t>(cursor - 1)) : 0;
    pg_query_free_parse_result(result);
    if (text.compare(std::min(offset, text.size()), 2, "${") == 0) {
      size_t close = text.find('}', offset);
      std::string var(text.substr(offset, close == std::string_view::npos ? 2 : close - offset + 1));
      message = var + " may only be written inside a string literal: '" + var + "'";
    }
    return Status::InvalidArgument(map.Locate(offset) + ": " + message);
  }
  ParsedSql parsed;
  parsed.parser = std::make_unique<simdjson::dom::parser>();
  const std::string json = result.parse_tree ? result.parse_tree : "";
  pg_query_free_parse_result(result);
  if (parsed.parser->allocate(json.size() + simdjson::SIMDJSON_PADDING, kMaxJsonDepth) !=
      simdjson::SUCCESS) {
    return Status::Internal(map.file() + ": cannot allocate the parse tree");
  }
  auto doc = parsed.parser->parse(json);
  if (doc.error() == simdjson::DEPTH_ERROR) {
    return Status::InvalidArgument(map.Locate(0) + ": expression nested too deeply");
  }
  if (doc.error() != simdjson::SUCCESS) {
    return Status::Internal(map.file() + ": unreadable parse tree: " +
                            simdjson::error_message(doc.error()));
  }
  parsed.root = doc.value_unsafe();
  return parsed;
}

}  // namespace sluice::sql
