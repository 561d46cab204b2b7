#include "core/dead_letter.h"

#include <openssl/evp.h>

#include "core/json_writer.h"
#include "core/time.h"

namespace sluice {
namespace {

std::string Sha256Hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

/// Returns true when the first non-blank byte opens an object or an array.
bool LooksLikeContainer(std::string_view s) {
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{' || c == '[';
  }
  return false;
}

}  // namespace

StoredPayload EncodeDeadLetterPayload(std::string_view payload, size_t cap) {
  StoredPayload p;
  p.bytes = static_cast<int64_t>(payload.size());
  p.sha256 = Sha256Hex(payload);
  std::string_view kept = payload;
  if (kept.size() > cap) {
    p.truncated = true;
    kept = kept.substr(0, cap);
    // Do not split a UTF-8 character: drop up to three bytes of an incomplete last one.
    for (size_t back = 1; back <= 3 && back <= kept.size(); ++back) {
      const size_t at = kept.size() - back;
      const auto c = static_cast<unsigned char>(kept[at]);
      if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
      if (c >= 0xC0 && Utf8SequenceLength(payload, at) > back) kept = kept.substr(0, at);
      break;
    }
  } else if (LooksLikeContainer(kept) && AppendMinifiedJson(kept, &p.json)) {
    return p;
  }
  AppendJsonString(kept, &p.json);
  if (!IsValidUtf8(kept)) AppendBase64(kept, &p.base64);
  return p;
}

std::string FormatIsoUtc(int64_t micros) {
  return FormatTimestamp(micros, "%Y-%m-%dT%H:%M:%S.%fZ");
}

void AppendDeadLetterJson(std::string_view pipeline, const DeadLetter& d,
                          const StoredPayload& p, std::string* out) {
  out->append("{\"pipeline\":");
  AppendJsonString(pipeline, out);
  out->append(",\"source\":");
  AppendJsonString(d.source, out);
  out->append(",\"partition\":").append(std::to_string(d.partition));
  out->append(",\"offset\":").append(std::to_string(d.offset));
  out->append(",\"generation\":").append(std::to_string(d.generation));
  out->append(",\"reason\":");
  AppendJsonString(d.reason, out);
  out->append(",\"time\":\"").append(FormatIsoUtc(d.time_micros)).append("\"");
  out->append(",\"payload\":").append(p.json);
  if (!p.base64.empty()) out->append(",\"payload_base64\":\"").append(p.base64).append("\"");
  out->append(",\"payload_bytes\":").append(std::to_string(p.bytes));
  out->append(",\"truncated\":").append(p.truncated ? "true" : "false");
  out->append(",\"payload_sha256\":\"").append(p.sha256).append("\"}");
}

void AppendDeadLetterJson(std::string_view pipeline, const DeadLetter& d, std::string* out) {
  AppendDeadLetterJson(pipeline, d, EncodeDeadLetterPayload(d.payload), out);
}

}  // namespace sluice
