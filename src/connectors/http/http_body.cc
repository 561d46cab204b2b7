#include "connectors/http/http_body.h"

#include <simdjson.h>

#include <algorithm>

namespace sluice {

std::string BodyExcerpt(std::string_view body, size_t max_bytes) {
  if (body.size() <= max_bytes) return std::string(body);
  size_t cut = max_bytes;
  // Do not split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  return std::string(body.substr(0, cut)) + "...";
}

Status ExtractJsonRecords(std::string_view body, const std::string& path,
                          std::vector<std::string>* out) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(body.data(), body.size()).get(root)) {
    return Status::ParseError(std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::element node = root;
  std::string walked;
  size_t start = 0;
  while (!path.empty() && start <= path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string::npos) dot = path.size();
    const std::string key = path.substr(start, dot - start);
    walked += (walked.empty() ? "" : ".") + key;
    simdjson::dom::element next;
    bool found = false;
    simdjson::dom::object object;
    simdjson::dom::array array;
    if (!node.get_object().get(object)) {
      found = !object.at_key(key).get(next);
    } else if (!node.get_array().get(array) && !key.empty() && key.size() < 10 &&
               std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      found = !array.at(std::stoull(key)).get(next);
    }
    if (!found) return Status::ParseError("no '" + walked + "' in the body");
    node = next;
    start = dot + 1;
  }
  simdjson::dom::array records;
  if (!node.get_array().get(records)) {
    for (simdjson::dom::element e : records) out->push_back(simdjson::minify(e));
    return Status::OK();
  }
  if (path.empty() && node.is_object()) {
    out->push_back(simdjson::minify(node));
    return Status::OK();
  }
  return Status::ParseError("'" + (path.empty() ? std::string("the body") : path) +
                            "' is not an array");
}

}  // namespace sluice
