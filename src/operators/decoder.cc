#include "operators/decoder.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <system_error>

#include "core/time.h"
#include "operators/avro_decoder.h"
#include "operators/csv_decoder.h"
#include "operators/json_decoder.h"
#include "operators/protobuf_decoder.h"

namespace sluice {
namespace {

constexpr size_t kMaxQuotedBytes = 64;

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view TrimBlank(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsBlank(s[b])) ++b;
  while (e > b && IsBlank(s[e - 1])) --e;
  return s.substr(b, e - b);
}

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != b[i]) return false;
  }
  return true;
}

Status NotA(const Field& field, std::string_view text, std::string_view what) {
  std::string m = "field ";
  m += field.name;
  m += ": ";
  m += QuoteForMessage(text);
  m += " is not ";
  m += what;
  return Status::ParseError(std::move(m));
}

}  // namespace

Result<std::unique_ptr<Decoder>> MakeDecoder(const DecoderOptions& options, const Schema& schema) {
  switch (options.format) {
    case DecoderOptions::Format::kCsv: return MakeCsvDecoder(options, schema);
    case DecoderOptions::Format::kNdjson: return MakeNdjsonDecoder(schema);
    case DecoderOptions::Format::kAvro: return MakeAvroDecoder(schema, options.avro_schemas);
    case DecoderOptions::Format::kProtobuf: return MakeProtobufDecoder(schema, options.avro_schemas);
  }
  return Status::InvalidArgument("unknown decoder format");
}

std::optional<int64_t> ParseStrictInt64(std::string_view text) {
  std::string_view s = TrimBlank(text);
  if (!s.empty() && s[0] == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s[0] == '-') return std::nullopt;  // "+-1"
  }
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> ParseStrictDouble(std::string_view text) {
  std::string_view s = TrimBlank(text);
  if (!s.empty() && s[0] == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s[0] == '-') return std::nullopt;
  }
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<bool> ParseBoolText(std::string_view text) {
  std::string_view s = TrimBlank(text);
  if (s == "1" || EqualsIgnoreCase(s, "true") || EqualsIgnoreCase(s, "yes")) return true;
  if (s == "0" || EqualsIgnoreCase(s, "false") || EqualsIgnoreCase(s, "no")) return false;
  return std::nullopt;
}

std::string QuoteForMessage(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxQuotedBytes) + 5);
  out += '\'';
  if (text.size() <= kMaxQuotedBytes) {
    out += text;
  } else {
    size_t cut = kMaxQuotedBytes;
    // Back off UTF-8 continuation bytes so the message stays valid UTF-8.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    out += text.substr(0, cut);
    out += "...";
  }
  out += '\'';
  return out;
}

Status ParseTextValue(std::string_view text, const Field& field, Value* out) {
  if (field.type == Type::kString) {
    if (text.empty()) {
      *out = Value::Null();
    } else {
      out->SetString(text);
    }
    return Status::OK();
  }
  if (TrimBlank(text).empty()) {
    *out = Value::Null();
    return Status::OK();
  }
  switch (field.type) {
    case Type::kInt64: {
      std::optional<int64_t> v = ParseStrictInt64(text);
      if (!v) return NotA(field, text, "an int64");
      *out = Value::Int(*v);
      return Status::OK();
    }
    case Type::kDouble: {
      std::optional<double> v = ParseStrictDouble(text);
      if (!v) return NotA(field, text, "a double");
      *out = Value::Double(*v);
      return Status::OK();
    }
    case Type::kBool: {
      std::optional<bool> v = ParseBoolText(text);
      if (!v) return NotA(field, text, "a bool");
      *out = Value::Bool(*v);
      return Status::OK();
    }
    case Type::kTimestamp: {
      std::optional<int64_t> v = ParseTimestamp(text);
      if (!v) return NotA(field, text, "a timestamp");
      *out = Value::TimeMicros(*v);
      return Status::OK();
    }
    case Type::kNull:
      *out = Value::Null();
      return Status::OK();
    case Type::kString: break;  // handled above
  }
  return Status::Internal("unhandled field type");
}

}  // namespace sluice
