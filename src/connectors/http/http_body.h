#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

/// The http source's parsing of response bodies: pure functions over bytes, without the
/// HTTP client, so that tests/fuzz/http_body_fuzz.cc can fuzz them alone.
namespace sluice {

/// Splits a JSON body into records: the array at the dotted `path` ("" = the body itself,
/// which may be an array of records or one record). Each record is appended to `out` as compact
/// JSON. A path segment that is a number indexes an array. Fails on invalid JSON, a missing
/// path or a value at the path that is not an array (or, for "", not an array or object).
Status ExtractJsonRecords(std::string_view body, const std::string& path,
                          std::vector<std::string>* out);

/// Returns at most `max_bytes` of `body`, cut at a UTF-8 character boundary, with "..." appended
/// when something was cut.
std::string BodyExcerpt(std::string_view body, size_t max_bytes);

}  // namespace sluice
