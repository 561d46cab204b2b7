#pragma once

#include <string>
#include <string_view>

namespace sluice {

/// Appends `s` to `out` as a JSON string literal (quoted, escaped; invalid UTF-8 bytes are
/// written as \u00XX so the output is always valid JSON).
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace sluice
