#include "connectors/parquet/parquet_naming.h"

#include <cstdint>
#include <cstdio>

#include "core/serialize.h"

namespace sluice {
namespace {

constexpr int kSeqDigits = 10;
constexpr int kHashDigits = 16;

bool NeedsEscape(unsigned char c) {
  if (c < 0x20 || c == 0x7f) return true;
  switch (c) {
    case '"':
    case '#':
    case '%':
    case '\'':
    case '*':
    case '/':
    case ':':
    case '=':
    case '?':
    case '\\':
    case '{':
    case '[':
    case ']':
    case '^':
      return true;
    default:
      return false;
  }
}

uint64_t Fnv1a64(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

bool AllOf(std::string_view s, bool (*pred)(char)) {
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }

std::string Stem(std::string_view pipeline, int64_t seq, std::string_view hash) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%0*lld", kSeqDigits, static_cast<long long>(seq));
  return "part-" + HiveEscape(pipeline) + "-" + digits + "-" + std::string(hash);
}

/// Parses `<seq>-<hash>` exactly; returns the sequence number.
std::optional<int64_t> ParseSeqAndHash(std::string_view s) {
  if (s.size() != static_cast<size_t>(kSeqDigits + 1 + kHashDigits) || s[kSeqDigits] != '-') {
    return std::nullopt;
  }
  std::string_view seq = s.substr(0, kSeqDigits);
  std::string_view hash = s.substr(kSeqDigits + 1);
  if (!AllOf(seq, IsDigit) || !AllOf(hash, IsLowerHex)) return std::nullopt;
  int64_t v = 0;
  for (char c : seq) v = v * 10 + (c - '0');
  return v;
}

}  // namespace

std::string HiveEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (NeedsEscape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string HivePartitionSegment(std::string_view name, const Value& value) {
  std::string text = value.ToString();
  return HiveEscape(name) + "=" +
         (value.is_null() || text.empty() ? std::string(kHiveDefaultPartition) : HiveEscape(text));
}

std::string PartFileHash(std::string_view pipeline, std::string_view partition_dir,
                         const std::vector<StoredPosition>& positions) {
  BinaryWriter w;
  w.PutString(pipeline);
  w.PutString(partition_dir);
  w.PutI64(static_cast<int64_t>(positions.size()));
  for (const auto& p : positions) {
    w.PutString(p.source);
    w.PutI64(p.partition);
    w.PutI64(p.offset);
  }
  char hex[kHashDigits + 1];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a64(w.data())));
  return hex;
}

std::string PartFileName(std::string_view pipeline, int64_t seq, std::string_view hash) {
  return Stem(pipeline, seq, hash) + ".parquet";
}

std::string PartTempFileName(std::string_view pipeline, int64_t seq, std::string_view hash) {
  return "." + Stem(pipeline, seq, hash) + ".tmp";
}

std::optional<int64_t> ParsePartFileName(std::string_view pipeline, std::string_view file_name) {
  const std::string prefix = "part-" + HiveEscape(pipeline) + "-";
  constexpr std::string_view kSuffix = ".parquet";
  if (file_name.size() < prefix.size() + kSuffix.size() || !file_name.starts_with(prefix) ||
      !file_name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  return ParseSeqAndHash(
      file_name.substr(prefix.size(), file_name.size() - prefix.size() - kSuffix.size()));
}

std::string TaskPartFileName(std::string_view pipeline, const TaskId& task, int64_t seq,
                             std::string_view hash) {
  return Stem(pipeline, seq, hash) + "-" + HiveEscape(task.source) + "-" +
         std::to_string(task.partition) + ".parquet";
}

std::string TaskPartTempFileName(std::string_view pipeline, const TaskId& task, int64_t seq,
                                 std::string_view hash) {
  return "." + Stem(pipeline, seq, hash) + "-" + HiveEscape(task.source) + "-" +
         std::to_string(task.partition) + ".tmp";
}

std::optional<TaskPartName> ParseTaskPartFileName(std::string_view pipeline,
                                                  std::string_view file_name) {
  TaskPartName out;
  std::string_view rest = file_name;
  if (rest.starts_with(".")) {
    out.temporary = true;
    rest.remove_prefix(1);
    if (!rest.ends_with(".tmp")) return std::nullopt;
    rest.remove_suffix(4);
  } else {
    if (!rest.ends_with(".parquet")) return std::nullopt;
    rest.remove_suffix(8);
  }
  const std::string prefix = "part-" + HiveEscape(pipeline) + "-";
  if (!rest.starts_with(prefix)) return std::nullopt;
  rest.remove_prefix(prefix.size());
  // <seq>-<hash>-<source>-<partition>
  constexpr size_t kSeqHash = kSeqDigits + 1 + kHashDigits;
  if (rest.size() < kSeqHash + 4 || rest[kSeqHash] != '-') return std::nullopt;
  auto seq = ParseSeqAndHash(rest.substr(0, kSeqHash));
  if (!seq) return std::nullopt;
  rest.remove_prefix(kSeqHash + 1);
  const size_t dash = rest.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  std::string_view digits = rest.substr(dash + 1);
  if (digits.empty() || digits.size() > 10 || !AllOf(digits, IsDigit)) return std::nullopt;
  int64_t partition = 0;
  for (char c : digits) partition = partition * 10 + (c - '0');
  if (partition > INT32_MAX) return std::nullopt;
  out.escaped_source = std::string(rest.substr(0, dash));
  out.partition = static_cast<int32_t>(partition);
  out.seq = *seq;
  return out;
}

bool IsPartTempFileName(std::string_view pipeline, std::string_view file_name) {
  const std::string prefix = ".part-" + HiveEscape(pipeline) + "-";
  constexpr std::string_view kSuffix = ".tmp";
  if (file_name.size() < prefix.size() + kSuffix.size() || !file_name.starts_with(prefix) ||
      !file_name.ends_with(kSuffix)) {
    return false;
  }
  return ParseSeqAndHash(file_name.substr(
             prefix.size(), file_name.size() - prefix.size() - kSuffix.size())) != std::nullopt;
}

}  // namespace sluice
