// libFuzzer target for the http source's response-body parsing
// (src/connectors/http/http_body.h): the input is a records path (its first line, e.g.
// "data.items" or "results.0.rows") and a response body (the rest). ExtractJsonRecords must
// split the body into records or fail with a parse error; every record it returns must be
// valid JSON again; BodyExcerpt must cut at a character boundary within its bound.
// Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/http/http_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string path(newline == std::string_view::npos ? std::string_view() : input.substr(0, newline));
  // A copy without spare bytes after it, so that a read past the body is seen by ASan.
  const std::string body(newline == std::string_view::npos ? input : input.substr(newline + 1));
  std::vector<std::string> records;
  if (sluice::ExtractJsonRecords(body, path, &records).ok()) {
    static simdjson::dom::parser parser;
    for (const std::string& record : records) {
      simdjson::dom::element element;
      if (parser.parse(record).get(element) != simdjson::SUCCESS) __builtin_trap();
    }
  }
  for (size_t max : {size_t{0}, size_t{1}, size_t{7}, body.size() / 2}) {
    const std::string excerpt = sluice::BodyExcerpt(body, max);
    if (excerpt.size() > max + 3) __builtin_trap();
  }
  return 0;
}
