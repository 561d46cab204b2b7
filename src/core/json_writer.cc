#include "core/json_writer.h"

#include <cstdint>
#include <cstdio>
#include <vector>

namespace sluice {

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  // The range of the second byte depends on the lead byte (RFC 3629 section 4): this rules out
  // overlong forms (e0 80-9f, f0 80-8f), surrogates (ed a0-bf) and code points above 10ffff.
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;  // a continuation byte, c0/c1 (always overlong) or f5-ff (beyond 10ffff)
  }
  if (i + n > s.size()) return 0;
  const auto second = static_cast<unsigned char>(s[i + 1]);
  if (second < lo || second > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  return n;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out.append("\xef\xbf\xbd");
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  char buf[8];
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out->append("\\\""); continue;
      case '\\': out->append("\\\\"); continue;
      case '\n': out->append("\\n"); continue;
      case '\r': out->append("\\r"); continue;
      case '\t': out->append("\\t"); continue;
      default: break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf);
    } else if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if (size_t n = Utf8SequenceLength(s, i)) {
      out->append(s.substr(i, n));
      i += n - 1;
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf);
    }
  }
  out->push_back('"');
}

namespace {

/// A single-pass validating minifier: a pushdown automaton over an explicit stack, so hostile
/// nesting cannot overflow the call stack.
class Minifier {
 public:
  Minifier(std::string_view in, std::string* out) : in_(in), out_(out) {}

  bool Run() {
    SkipSpace();
    if (!Value()) return false;
    SkipSpace();
    return i_ == in_.size();
  }

 private:
  static constexpr size_t kMaxDepth = 256;

  bool Value() {
    // Containers are handled iteratively: `stack` holds '{' or '[' for each open container.
    std::vector<char> stack;
    while (true) {
      SkipSpace();
      if (i_ >= in_.size()) return false;
      const char c = in_[i_];
      if (c == '{' || c == '[') {
        if (stack.size() >= kMaxDepth) return false;
        out_->push_back(c);
        ++i_;
        SkipSpace();
        const char close = c == '{' ? '}' : ']';
        if (i_ < in_.size() && in_[i_] == close) {
          out_->push_back(close);
          ++i_;
        } else {
          stack.push_back(c);
          if (c == '{' && !Member()) return false;
          continue;  // parse the first value
        }
      } else if (c == '"') {
        if (!String()) return false;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (!Number()) return false;
      } else if (!Literal("true") && !Literal("false") && !Literal("null")) {
        return false;
      }
      // A value is complete: close containers, or move to the next element.
      while (true) {
        if (stack.empty()) return true;
        SkipSpace();
        if (i_ >= in_.size()) return false;
        const char open = stack.back();
        const char d = in_[i_];
        if (d == ',') {
          out_->push_back(',');
          ++i_;
          if (open == '{' && !Member()) return false;
          break;  // parse the next value
        }
        if ((open == '{' && d == '}') || (open == '[' && d == ']')) {
          out_->push_back(d);
          ++i_;
          stack.pop_back();
          continue;
        }
        return false;
      }
    }
  }

  /// Reads `"key":` inside an object.
  bool Member() {
    SkipSpace();
    if (i_ >= in_.size() || in_[i_] != '"' || !String()) return false;
    SkipSpace();
    if (i_ >= in_.size() || in_[i_] != ':') return false;
    out_->push_back(':');
    ++i_;
    return true;
  }

  bool String() {
    const size_t start = i_++;
    while (i_ < in_.size()) {
      const auto c = static_cast<unsigned char>(in_[i_]);
      if (c == '"') {
        ++i_;
        out_->append(in_.substr(start, i_ - start));
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!Escape()) return false;
        continue;
      }
      const size_t n = Utf8SequenceLength(in_, i_);
      if (n == 0) return false;
      i_ += n;
    }
    return false;
  }

  bool Escape() {
    ++i_;  // the backslash
    if (i_ >= in_.size()) return false;
    const char e = in_[i_++];
    switch (e) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return true;
      case 'u': break;
      default: return false;
    }
    int unit = Hex4();
    if (unit < 0) return false;
    if (unit >= 0xDC00 && unit <= 0xDFFF) return false;  // a lone low surrogate
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      // A high surrogate must be followed by an escaped low surrogate.
      if (i_ + 1 >= in_.size() || in_[i_] != '\\' || in_[i_ + 1] != 'u') return false;
      i_ += 2;
      const int low = Hex4();
      if (low < 0xDC00 || low > 0xDFFF) return false;
    }
    return true;
  }

  int Hex4() {
    if (i_ + 4 > in_.size()) return -1;
    int v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = in_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else return -1;
    }
    return v;
  }

  bool Number() {
    const size_t start = i_;
    if (in_[i_] == '-') ++i_;
    if (i_ >= in_.size()) return false;
    if (in_[i_] == '0') {
      ++i_;
    } else if (in_[i_] >= '1' && in_[i_] <= '9') {
      Digits();
    } else {
      return false;
    }
    if (i_ < in_.size() && in_[i_] == '.') {
      ++i_;
      if (!Digits()) return false;
    }
    if (i_ < in_.size() && (in_[i_] == 'e' || in_[i_] == 'E')) {
      ++i_;
      if (i_ < in_.size() && (in_[i_] == '+' || in_[i_] == '-')) ++i_;
      if (!Digits()) return false;
    }
    out_->append(in_.substr(start, i_ - start));
    return true;
  }

  /// Consumes one or more digits; returns false when there is none.
  bool Digits() {
    const size_t start = i_;
    while (i_ < in_.size() && in_[i_] >= '0' && in_[i_] <= '9') ++i_;
    return i_ > start;
  }

  bool Literal(std::string_view word) {
    if (in_.substr(i_, word.size()) != word) return false;
    out_->append(word);
    i_ += word.size();
    return true;
  }

  void SkipSpace() {
    while (i_ < in_.size() &&
           (in_[i_] == ' ' || in_[i_] == '\t' || in_[i_] == '\n' || in_[i_] == '\r')) {
      ++i_;
    }
  }

  std::string_view in_;
  std::string* out_;
  size_t i_ = 0;
};

}  // namespace

bool AppendMinifiedJson(std::string_view in, std::string* out) {
  const size_t before = out->size();
  if (Minifier(in, out).Run()) return true;
  out->resize(before);
  return false;
}

void AppendBase64(std::string_view bytes, std::string* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out->reserve(out->size() + (bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                       static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    out->push_back(kAlphabet[v >> 18]);
    out->push_back(kAlphabet[(v >> 12) & 63]);
    out->push_back(kAlphabet[(v >> 6) & 63]);
    out->push_back(kAlphabet[v & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest == 0) return;
  uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
  if (rest == 2) v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
  out->push_back(kAlphabet[v >> 18]);
  out->push_back(kAlphabet[(v >> 12) & 63]);
  out->push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
  out->push_back('=');
}

}  // namespace sluice
