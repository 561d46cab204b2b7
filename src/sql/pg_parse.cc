#include "sql/pg_parse.h"

#include <pthread.h>

#include <pg_query.h>

namespace sluice::sql {
namespace {

/// The largest .sql file read: a pipeline is a page or two of SQL.
constexpr size_t kMaxFileBytes = 1 << 20;
/// libpg_query writes its JSON with one level of recursion per node of the tree, and a long
/// chain such as `a + a + ... + a` is one level per operator: its thread gets a stack that
/// holds the deepest tree a file of kMaxFileBytes can give (the pages are only used as needed).
constexpr size_t kParserStackBytes = size_t{256} << 20;

struct ParseCall {
  const char* input = nullptr;
  PgQueryParseResult result{};
};

void* RunParse(void* arg) {
  auto* call = static_cast<ParseCall*>(arg);
  call->result = pg_query_parse(call->input);
  return nullptr;
}

/// pg_query_parse on a thread with a large stack; false when the thread cannot start.
bool ParseOnLargeStack(ParseCall* call) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_t thread;
  bool ok = pthread_attr_setstacksize(&attr, kParserStackBytes) == 0 &&
            pthread_create(&thread, &attr, RunParse, call) == 0;
  pthread_attr_destroy(&attr);
  if (ok) ok = pthread_join(thread, nullptr) == 0;
  return ok;
}

}  // namespace

Result<ParsedSql> ParsePostgres(const SourceMap& map) {
  const std::string_view text = map.text();
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return Status::InvalidArgument(map.Locate(nul) +
                                   ": the file contains a NUL byte (a .sql file is text)");
  }
  if (text.size() > kMaxFileBytes) {
    return Status::InvalidArgument(map.file() + ": a .sql pipeline file is at most " +
                                   std::to_string(kMaxFileBytes >> 20) + " MiB; this one has " +
                                   std::to_string(text.size()) + " bytes");
  }
  const std::string input(text);  // NUL-terminated for the parser
  ParseCall call;
  call.input = input.c_str();
  if (!ParseOnLargeStack(&call)) {
    return Status::Internal(map.file() + ": cannot start the SQL parser's thread");
  }
  PgQueryParseResult result = call.result;
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
