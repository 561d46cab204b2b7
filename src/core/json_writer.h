#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

/// Appends `s` to `out` as a JSON string literal (quoted, escaped). Bytes that are not part of a
/// well-formed UTF-8 sequence (RFC 3629: no lead bytes c0, c1 or f5-ff, no overlong forms, no
/// surrogates, no truncated sequences) are written as \u00XX, one per byte, so the output is
/// always valid JSON and valid UTF-8 whatever the input.
void AppendJsonString(std::string_view s, std::string* out);

/// Returns the length (1-4) of the well-formed UTF-8 sequence starting at s[i], or 0 when the
/// bytes there are not one.
size_t Utf8SequenceLength(std::string_view s, size_t i);

/// Returns true when `s` is entirely well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

/// Returns `s` with every byte that is not part of a well-formed UTF-8 sequence replaced by
/// U+FFFD, for text columns that must hold valid UTF-8.
std::string ToValidUtf8(std::string_view s);

/// Validates `in` as one JSON text (RFC 8259, UTF-8, at most 256 levels of nesting) and appends
/// it to `out` without the whitespace between tokens, so it fits on one line. Strings and
/// numbers are copied unchanged. Returns false, leaving `out` as it was, when `in` is not valid
/// JSON (a lone surrogate escape such as "\ud800" counts as invalid).
bool AppendMinifiedJson(std::string_view in, std::string* out);

/// Appends the standard base64 encoding (RFC 4648, with padding) of `bytes`.
void AppendBase64(std::string_view bytes, std::string* out);

}  // namespace sluice
