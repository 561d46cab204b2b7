// The built-in functions: type checking, and one node per function (or per argument type).

#include "expr/functions.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>

#include "core/time.h"
#include "expr/shape.h"

namespace sluice::expr::internal {
namespace {

std::string TypeStr(Type t) { return std::string(TypeName(t)); }

std::string ArgName(int index, std::string_view fn) {
  return "argument " + std::to_string(index + 1) + " of " + std::string(fn) + "()";
}

/// Returns true when a constant null argument makes the whole call null.
bool HasNullLiteral(const std::vector<Operand>& args) {
  for (const Operand& a : args) {
    if (a.constant && a.value().is_null()) return true;
  }
  return false;
}

bool AllConstant(const std::vector<Operand>& args) {
  for (const Operand& a : args) {
    if (!a.constant) return false;
  }
  return true;
}

// ---- generic one-argument node: null in, null out ----

using UnaryFn = void (*)(const Value& in, Value& out);

template <UnaryFn F>
class Unary final : public Node {
 public:
  Unary(Type type, NodePtr arg) : Node(type), arg_(std::move(arg)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value t;
    const Value& a = arg_->Ref(row, t);
    if (a.is_null()) return scratch = Value();
    F(a, scratch);
    return scratch;
  }
  const Node& arg() const { return *arg_; }

 private:
  NodePtr arg_;
};

template <UnaryFn F>
Operand MakeUnary(Type type, Operand arg, size_t pos) {
  const bool constant = arg.constant;
  return Finish(std::make_unique<Unary<F>>(type, std::move(arg.node)), pos, constant);
}

/// Returns the argument unchanged as the call's result.
Operand Passthrough(Operand arg, size_t pos) {
  arg.pos = pos;
  return arg;
}

// ---- time helpers ----

int64_t FloorMod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

/// Converts microseconds to seconds without losing the fraction for large values.
double MicrosToSeconds(int64_t micros) {
  int64_t q = micros / kMicrosPerSecond;
  int64_t r = micros % kMicrosPerSecond;
  if (r < 0) {
    q -= 1;
    r += kMicrosPerSecond;
  }
  return static_cast<double>(q) + static_cast<double>(r) / 1e6;
}

void TimeUuidTimeFn(const Value& in, Value& out) {
  std::optional<int64_t> t = ParseTimeUuid(in.string_value());
  out = t ? Value::TimeMicros(*t) : Value();
}
void ParseTimeFn(const Value& in, Value& out) {
  std::optional<int64_t> t = ParseTimestamp(in.string_value());
  out = t ? Value::TimeMicros(*t) : Value();
}
void ParseIsoTimeFn(const Value& in, Value& out) {
  std::optional<int64_t> t = ParseIsoTimestamp(in.string_value());
  out = t ? Value::TimeMicros(*t) : Value();
}
void ParseUsTimeFn(const Value& in, Value& out) {
  std::optional<int64_t> t = ParseUsTimestamp(in.string_value());
  out = t ? Value::TimeMicros(*t) : Value();
}
void DateFn(const Value& in, Value& out) {
  const CivilTime c = ToCivil(in.time_value().micros);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d", c.year, c.month, c.day);
  out = Value::String(std::string(buf));
}
void HourFn(const Value& in, Value& out) {
  out = Value::Int(FloorMod(in.time_value().micros, kMicrosPerDay) / kMicrosPerHour);
}
void MinuteFn(const Value& in, Value& out) {
  out = Value::Int(FloorMod(in.time_value().micros, kMicrosPerHour) / kMicrosPerMinute);
}
void EpochSecondsFn(const Value& in, Value& out) {
  out = Value::Double(MicrosToSeconds(in.time_value().micros));
}

class FloorTime final : public Node {
 public:
  FloorTime(NodePtr arg, int64_t size)
      : Node(Type::kTimestamp), arg_(std::move(arg)), size_(size) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value t;
    const Value& a = arg_->Ref(row, t);
    if (a.is_null()) return scratch = Value();
    const int64_t micros = a.time_value().micros;
    if (micros < std::numeric_limits<int64_t>::min() + size_) return scratch = Value();
    return scratch = Value::TimeMicros(FloorTo(micros, size_));
  }

 private:
  NodePtr arg_;
  int64_t size_;
};

class FormatTime final : public Node {
 public:
  FormatTime(NodePtr time, NodePtr pattern)
      : Node(Type::kString), time_(std::move(time)), pattern_(std::move(pattern)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value ta, tb;
    const Value& a = time_->Ref(row, ta);
    if (a.is_null()) return scratch = Value();
    const Value& p = pattern_->Ref(row, tb);
    if (p.is_null()) return scratch = Value();
    return scratch = Value::String(FormatTimestamp(a.time_value().micros, p.string_value()));
  }

 private:
  NodePtr time_, pattern_;
};

class SecondsBetween final : public Node {
 public:
  SecondsBetween(NodePtr from, NodePtr to)
      : Node(Type::kDouble), from_(std::move(from)), to_(std::move(to)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value ta, tb;
    const Value& a = from_->Ref(row, ta);
    if (a.is_null()) return scratch = Value();
    const Value& b = to_->Ref(row, tb);
    if (b.is_null()) return scratch = Value();
    return scratch =
               Value::Double(SecondsBetweenMicros(a.time_value().micros, b.time_value().micros));
  }
  const Node& from() const { return *from_; }
  const Node& to() const { return *to_; }

 private:
  NodePtr from_, to_;
};

// ---- numbers ----

/// Rounds half away from zero at `digits` decimals (negative: to tens, hundreds, ...). Works
/// on the shortest decimal form of `x`, so round(2.675, 2) is 2.68 as printed, not 2.67 as
/// the binary value 2.67499999... would give.
double RoundHalfAway(double x, int64_t digits) {
  if (!std::isfinite(x) || x == 0) return x == 0 ? 0.0 : x;
  // Fast path: scale, round, unscale. Safe unless |x| * 10^digits lies so close to a tie
  // (.5) that the error of the multiplication or of x's binary form could matter; those few
  // values take the exact decimal path below.
  static constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                      1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  if (digits >= 0 && digits <= 15) {
    const double scale = kPow10[digits];
    const double y = std::fabs(x) * scale;
    if (y < 4503599627370496.0) {  // 2^52: y still has bits below the unit
      const double whole = std::floor(y);
      const double frac = y - whole;  // exact
      if (std::fabs(frac - 0.5) > y * 4e-16) {
        const double result = (frac > 0.5 ? whole + 1 : whole) / scale;
        if (result == 0) return 0.0;
        return x < 0 ? -result : result;
      }
    }
  }
  if (digits > 400) return x;
  if (digits < -400) return 0.0;
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  if (ec != std::errc()) return x;
  // buf holds "[-]d[.ddd]e(+|-)xx".
  const bool negative = buf[0] == '-';
  const char* p = buf + (negative ? 1 : 0);
  char mantissa[32];
  int n = 0;
  while (p < end && *p != 'e') {
    if (*p != '.' && n < 30) mantissa[n++] = *p;
    ++p;
  }
  if (p == end) return x;
  ++p;
  if (p < end && *p == '+') ++p;
  int exponent = 0;
  std::from_chars(p, end, exponent);
  // mantissa[i] weighs 10^(exponent - i); keep the digits down to 10^(-digits).
  const int64_t keep = exponent + 1 + digits;
  if (keep >= n) return x;
  if (keep < 0) return 0.0;
  const bool up = mantissa[keep] >= '5';
  char out[48];
  int len = 0;
  if (negative) out[len++] = '-';
  const int first = len;
  for (int i = 0; i < keep; ++i) out[len++] = mantissa[i];
  if (keep == 0) out[len++] = '0';
  if (up) {
    int i = len - 1;
    while (i >= first && out[i] == '9') out[i--] = '0';
    if (i >= first) {
      ++out[i];
    } else {
      // All nines: 999 -> 1000.
      for (int j = len; j > first; --j) out[j] = out[j - 1];
      out[first] = '1';
      ++len;
    }
  }
  len += std::snprintf(out + len, sizeof(out) - len, "e%lld", static_cast<long long>(-digits));
  double result = 0;
  std::from_chars(out, out + len, result);
  return result == 0 ? 0.0 : result;
}

class Round final : public Node {
 public:
  Round(NodePtr x, NodePtr digits, int64_t constant_digits)
      : Node(Type::kDouble), x_(std::move(x)), digits_(std::move(digits)),
        constant_digits_(constant_digits) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value ta, tb;
    const Value& a = x_->Ref(row, ta);
    if (a.is_null()) return scratch = Value();
    int64_t digits = constant_digits_;
    if (digits_) {
      const Value& d = digits_->Ref(row, tb);
      if (d.is_null()) return scratch = Value();
      digits = d.int_value();
    }
    return scratch = Value::Double(RoundHalfAway(NumberOf(a), digits));
  }

 private:
  NodePtr x_;
  NodePtr digits_;  ///< null when the digits are a constant
  int64_t constant_digits_;
};

void FloorFn(const Value& in, Value& out) { out = Value::Double(std::floor(in.double_value())); }
void CeilFn(const Value& in, Value& out) { out = Value::Double(std::ceil(in.double_value())); }
void AbsDoubleFn(const Value& in, Value& out) { out = Value::Double(std::fabs(in.double_value())); }
void AbsIntFn(const Value& in, Value& out) {
  const int64_t v = in.int_value();
  out = v == std::numeric_limits<int64_t>::min() ? Value() : Value::Int(v < 0 ? -v : v);
}

// ---- strings ----

void LowerFn(const Value& in, Value& out) {
  std::string s = in.string_value();
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  out = Value::String(std::move(s));
}
void UpperFn(const Value& in, Value& out) {
  std::string s = in.string_value();
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  out = Value::String(std::move(s));
}
bool IsTrimmed(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
void TrimFn(const Value& in, Value& out) { out = Value::String(TrimSpaces(in.string_value())); }
void LengthFn(const Value& in, Value& out) {
  // Count UTF-8 characters: every byte that is not a continuation byte (10xxxxxx).
  int64_t n = 0;
  for (char c : in.string_value()) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  out = Value::Int(n);
}

/// Joins its arguments as text; unlike ||, a null argument counts as ''.
class ConcatFn final : public Node {
 public:
  explicit ConcatFn(std::vector<NodePtr> args) : Node(Type::kString), args_(std::move(args)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    std::string out;
    for (const NodePtr& arg : args_) {
      Value t;
      const Value& v = arg->Ref(row, t);
      if (v.type() == Type::kString) {
        out.append(v.string_value());
      } else if (!v.is_null()) {
        out.append(v.ToString());
      }
    }
    return scratch = Value::String(std::move(out));
  }

 private:
  std::vector<NodePtr> args_;
};

// ---- name-based UUIDs ----

/// Returns the SHA-1 digest of `data` (FIPS 180-4). Used for version-5 UUIDs only, where the
/// hash is a deterministic name-to-id mapping, not a security measure.
std::array<uint8_t, 20> Sha1(std::string_view data) {
  uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  auto rotl = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  auto block = [&](const uint8_t* p) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) |
             (uint32_t{p[4 * i + 2]} << 8) | uint32_t{p[4 * i + 3]};
    }
    for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999u;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1u;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCu;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6u;
      }
      const uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rotl(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  };
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) block(bytes + i);
  // The tail, 0x80, zeros and the length in bits (big-endian) fill one or two more blocks.
  uint8_t tail[128] = {};
  const size_t rest = n - i;
  for (size_t j = 0; j < rest; ++j) tail[j] = bytes[i + j];
  tail[rest] = 0x80;
  const size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(n) * 8;
  for (int j = 0; j < 8; ++j) tail[tail_len - 1 - j] = static_cast<uint8_t>(bits >> (8 * j));
  for (size_t j = 0; j < tail_len; j += 64) block(tail + j);
  std::array<uint8_t, 20> out{};
  for (int j = 0; j < 20; ++j) out[j] = static_cast<uint8_t>(h[j / 4] >> (24 - 8 * (j % 4)));
  return out;
}

/// Parses a UUID in its canonical text form (hex digits, hyphens optional, any case).
std::optional<std::array<uint8_t, 16>> ParseUuidBytes(std::string_view text) {
  std::array<uint8_t, 16> out{};
  size_t n = 0;
  int half = -1;
  for (char c : text) {
    if (c == '-') continue;
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (n >= 16) return std::nullopt;
    if (half < 0) {
      half = v;
    } else {
      out[n++] = static_cast<uint8_t>(half << 4 | v);
      half = -1;
    }
  }
  if (n != 16 || half >= 0) return std::nullopt;
  return out;
}

/// uuid5(namespace, name): the version-5 UUID of RFC 4122 (SHA-1 of the namespace's 16 bytes
/// followed by the name's UTF-8 bytes), as lower-case text; Python's uuid.uuid5 gives the same.
class Uuid5Fn final : public Node {
 public:
  Uuid5Fn(std::array<uint8_t, 16> ns, NodePtr name)
      : Node(Type::kString), ns_(ns), name_(std::move(name)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    Value t;
    const Value& name = name_->Ref(row, t);
    if (name.is_null()) return scratch = Value();
    std::string input(reinterpret_cast<const char*>(ns_.data()), ns_.size());
    input.append(name.string_value());
    std::array<uint8_t, 20> digest = Sha1(input);
    digest[6] = static_cast<uint8_t>((digest[6] & 0x0F) | 0x50);  // version 5
    digest[8] = static_cast<uint8_t>((digest[8] & 0x3F) | 0x80);  // RFC 4122 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
      out += kHex[digest[i] >> 4];
      out += kHex[digest[i] & 0x0F];
    }
    return scratch = Value::String(std::move(out));
  }

 private:
  std::array<uint8_t, 16> ns_;
  NodePtr name_;
};

// ---- conversions ----

void ToIntFromStringFn(const Value& in, Value& out) {
  int64_t v;
  out = ParseStrictInt(in.string_value(), &v) ? Value::Int(v) : Value();
}
void ToIntFromDoubleFn(const Value& in, Value& out) {
  const double d = in.double_value();
  // The range check also rejects NaN.
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
    out = Value::Int(static_cast<int64_t>(d));
  } else {
    out = Value();
  }
}
void ToIntFromBoolFn(const Value& in, Value& out) { out = Value::Int(in.bool_value() ? 1 : 0); }
void ToDoubleFromStringFn(const Value& in, Value& out) {
  std::string_view s = in.string_value();
  if (!s.empty() && s[0] == '+') {
    s.remove_prefix(1);
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) return void(out = Value());
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  // from_chars also reads "inf" and "nan"; those are not numbers a record should carry.
  const bool ok = !s.empty() && ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(d);
  out = ok ? Value::Double(d) : Value();
}
void ToDoubleFromBoolFn(const Value& in, Value& out) {
  out = Value::Double(in.bool_value() ? 1.0 : 0.0);
}
void ToStringFn(const Value& in, Value& out) { out = Value::String(in.ToString()); }
void IsIntFn(const Value& in, Value& out) {
  int64_t v;
  out = Value::Bool(ParseStrictInt(in.string_value(), &v));
}

// ---- conditionals ----

class Coalesce final : public Node {
 public:
  Coalesce(Type type, std::vector<NodePtr> args) : Node(type), args_(std::move(args)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    for (const NodePtr& arg : args_) {
      const Value& v = arg->Ref(row, scratch);
      if (!v.is_null()) return v;
    }
    return scratch = Value();
  }
  const std::vector<NodePtr>& args() const { return args_; }

 private:
  std::vector<NodePtr> args_;
};

class If final : public Node {
 public:
  If(Type type, NodePtr cond, NodePtr then, NodePtr otherwise)
      : Node(type), cond_(std::move(cond)), then_(std::move(then)),
        otherwise_(std::move(otherwise)) {}
  const Value& Ref(std::span<const Value> row, Value& scratch) const override {
    return cond_->Test(row) == Tri::kTrue ? then_->Ref(row, scratch)
                                          : otherwise_->Ref(row, scratch);
  }

 private:
  NodePtr cond_, then_, otherwise_;
};

// ---- builders ----

using Args = std::vector<Operand>;

/// Converts args[i] to `type` in place, naming it in the error.
Status Want(Args& args, int i, Type type, std::string_view fn, const Diag& diag) {
  ASSIGN_OR_RETURN(args[i], CoerceTo(std::move(args[i]), type, diag, ArgName(i, fn)));
  return Status::OK();
}

Status WantNumber(const Args& args, int i, std::string_view fn, const Diag& diag) {
  const Type t = args[i].type();
  if (IsNumeric(t) || t == Type::kNull) return Status::OK();
  std::string hint = t == Type::kString ? "; convert it with to_int() or to_double()" : "";
  return diag.Error(args[i].pos, ArgName(i, fn) + " must be a number, got " + TypeStr(t) + hint);
}

/// Reads a constant string argument (a duration, a mode).
Status WantConstantString(const Args& args, int i, std::string_view fn, std::string_view example,
                          const Diag& diag, std::string* out) {
  const Operand& a = args[i];
  if (!a.constant || a.type() != Type::kString || a.value().is_null()) {
    return diag.Error(a.pos, ArgName(i, fn) + " must be a constant string such as " +
                                 std::string(example));
  }
  *out = a.value().string_value();
  return Status::OK();
}

template <UnaryFn F>
Result<Operand> TimeToX(Args& args, size_t pos, const Diag& diag, std::string_view fn, Type out) {
  RETURN_IF_ERROR(Want(args, 0, Type::kTimestamp, fn, diag));
  return MakeUnary<F>(out, std::move(args[0]), pos);
}

template <UnaryFn F>
Result<Operand> StringToX(Args& args, size_t pos, const Diag& diag, std::string_view fn, Type out) {
  RETURN_IF_ERROR(Want(args, 0, Type::kString, fn, diag));
  return MakeUnary<F>(out, std::move(args[0]), pos);
}

Result<Operand> BuildTimeUuidTime(Args& args, size_t pos, const Diag& diag) {
  return StringToX<TimeUuidTimeFn>(args, pos, diag, "timeuuid_time", Type::kTimestamp);
}

Result<Operand> BuildParseTime(Args& args, size_t pos, const Diag& diag) {
  if (args.size() == 1) {
    return StringToX<ParseTimeFn>(args, pos, diag, "parse_time", Type::kTimestamp);
  }
  std::string mode;
  RETURN_IF_ERROR(WantConstantString(args, 1, "parse_time", "'iso' or 'us'", diag, &mode));
  if (mode == "iso") {
    return StringToX<ParseIsoTimeFn>(args, pos, diag, "parse_time", Type::kTimestamp);
  }
  if (mode == "us") {
    return StringToX<ParseUsTimeFn>(args, pos, diag, "parse_time", Type::kTimestamp);
  }
  if (mode == "auto") {
    return StringToX<ParseTimeFn>(args, pos, diag, "parse_time", Type::kTimestamp);
  }
  return diag.Error(args[1].pos, "unknown parse_time() format '" + mode +
                                     "'; use 'iso' (2024-01-31 13:45:00), 'us' (1/31/2024 "
                                     "13:45) or 'auto' (either)");
}

Result<Operand> BuildDate(Args& args, size_t pos, const Diag& diag) {
  return TimeToX<DateFn>(args, pos, diag, "date", Type::kString);
}
Result<Operand> BuildHour(Args& args, size_t pos, const Diag& diag) {
  return TimeToX<HourFn>(args, pos, diag, "hour", Type::kInt64);
}
Result<Operand> BuildMinute(Args& args, size_t pos, const Diag& diag) {
  return TimeToX<MinuteFn>(args, pos, diag, "minute", Type::kInt64);
}
Result<Operand> BuildEpochSeconds(Args& args, size_t pos, const Diag& diag) {
  return TimeToX<EpochSecondsFn>(args, pos, diag, "epoch_seconds", Type::kDouble);
}

Result<Operand> BuildFormatTime(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(Want(args, 0, Type::kTimestamp, "format_time", diag));
  RETURN_IF_ERROR(Want(args, 1, Type::kString, "format_time", diag));
  if (HasNullLiteral(args)) return MakeLiteral(Type::kString, Value(), pos);
  const bool constant = AllConstant(args);
  return Finish(std::make_unique<FormatTime>(std::move(args[0].node), std::move(args[1].node)),
                pos, constant);
}

Result<Operand> BuildFloorTime(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(Want(args, 0, Type::kTimestamp, "floor_time", diag));
  std::string text;
  RETURN_IF_ERROR(WantConstantString(args, 1, "floor_time", "'1h' or '15m'", diag, &text));
  // Only hand over text that starts like a number: "nan" and "inf" are not durations.
  const size_t first = text.find_first_not_of(" \t");
  const bool numeric = first != std::string::npos &&
                       ((text[first] >= '0' && text[first] <= '9') || text[first] == '.');
  std::optional<int64_t> size = numeric ? ParseDurationMicros(text) : std::nullopt;
  if (!size || *size <= 0) {
    return diag.Error(args[1].pos, "'" + text +
                                       "' is not a positive duration (examples: '500ms', '10s', "
                                       "'15m', '1h', '1d')");
  }
  const bool constant = args[0].constant;
  return Finish(std::make_unique<FloorTime>(std::move(args[0].node), *size), pos, constant);
}

Result<Operand> BuildSecondsBetween(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(Want(args, 0, Type::kTimestamp, "seconds_between", diag));
  RETURN_IF_ERROR(Want(args, 1, Type::kTimestamp, "seconds_between", diag));
  if (HasNullLiteral(args)) return MakeLiteral(Type::kDouble, Value(), pos);
  const bool constant = AllConstant(args);
  return Finish(std::make_unique<SecondsBetween>(std::move(args[0].node), std::move(args[1].node)),
                pos, constant);
}

Result<Operand> BuildRound(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(WantNumber(args, 0, "round", diag));
  if (args.size() == 2) RETURN_IF_ERROR(Want(args, 1, Type::kInt64, "round", diag));
  if (HasNullLiteral(args)) return MakeLiteral(Type::kDouble, Value(), pos);
  const bool constant = AllConstant(args);
  NodePtr digits;
  int64_t constant_digits = 0;
  if (args.size() == 2) {
    if (args[1].constant) {
      constant_digits = args[1].value().int_value();
    } else {
      digits = std::move(args[1].node);
    }
  }
  return Finish(std::make_unique<Round>(std::move(args[0].node), std::move(digits),
                                        constant_digits),
                pos, constant);
}

Result<Operand> BuildFloorOrCeil(Args& args, size_t pos, const Diag& diag, std::string_view fn,
                                 bool floor) {
  RETURN_IF_ERROR(WantNumber(args, 0, fn, diag));
  switch (args[0].type()) {
    case Type::kInt64: return Passthrough(std::move(args[0]), pos);
    case Type::kDouble:
      return floor ? MakeUnary<FloorFn>(Type::kDouble, std::move(args[0]), pos)
                   : MakeUnary<CeilFn>(Type::kDouble, std::move(args[0]), pos);
    default: return MakeLiteral(Type::kNull, Value(), pos);
  }
}
Result<Operand> BuildFloor(Args& args, size_t pos, const Diag& diag) {
  return BuildFloorOrCeil(args, pos, diag, "floor", true);
}
Result<Operand> BuildCeil(Args& args, size_t pos, const Diag& diag) {
  return BuildFloorOrCeil(args, pos, diag, "ceil", false);
}

Result<Operand> BuildAbs(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(WantNumber(args, 0, "abs", diag));
  switch (args[0].type()) {
    case Type::kInt64: return MakeUnary<AbsIntFn>(Type::kInt64, std::move(args[0]), pos);
    case Type::kDouble: return MakeUnary<AbsDoubleFn>(Type::kDouble, std::move(args[0]), pos);
    default: return MakeLiteral(Type::kNull, Value(), pos);
  }
}

Result<Operand> BuildLower(Args& args, size_t pos, const Diag& diag) {
  return StringToX<LowerFn>(args, pos, diag, "lower", Type::kString);
}
Result<Operand> BuildUpper(Args& args, size_t pos, const Diag& diag) {
  return StringToX<UpperFn>(args, pos, diag, "upper", Type::kString);
}
Result<Operand> BuildTrim(Args& args, size_t pos, const Diag& diag) {
  return StringToX<TrimFn>(args, pos, diag, "trim", Type::kString);
}
Result<Operand> BuildLength(Args& args, size_t pos, const Diag& diag) {
  return StringToX<LengthFn>(args, pos, diag, "length", Type::kInt64);
}

Result<Operand> BuildUuid5(Args& args, size_t pos, const Diag& diag) {
  std::string ns_text;
  RETURN_IF_ERROR(WantConstantString(args, 0, "uuid5",
                                     "'6ba7b811-9dad-11d1-80b4-00c04fd430c8' (a namespace UUID)",
                                     diag, &ns_text));
  const auto ns = ParseUuidBytes(ns_text);
  if (!ns) {
    return diag.Error(args[0].pos, ArgName(0, "uuid5") + " must be a UUID such as "
                                                         "'6ba7b811-9dad-11d1-80b4-00c04fd430c8'");
  }
  RETURN_IF_ERROR(Want(args, 1, Type::kString, "uuid5", diag));
  const bool constant = args[1].constant;
  return Finish(std::make_unique<Uuid5Fn>(*ns, std::move(args[1].node)), pos, constant);
}

Result<Operand> BuildConcat(Args& args, size_t pos, const Diag&) {
  const bool constant = AllConstant(args);
  std::vector<NodePtr> nodes;
  for (Operand& a : args) nodes.push_back(std::move(a.node));
  return Finish(std::make_unique<ConcatFn>(std::move(nodes)), pos, constant);
}

Status NoTimestamp(const Args& args, std::string_view fn, const Diag& diag) {
  if (args[0].type() != Type::kTimestamp) return Status::OK();
  return diag.Error(args[0].pos, ArgName(0, fn) +
                                     " cannot be a timestamp; use epoch_seconds() for seconds "
                                     "since 1970-01-01");
}

Result<Operand> BuildToInt(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(NoTimestamp(args, "to_int", diag));
  switch (args[0].type()) {
    case Type::kInt64: return Passthrough(std::move(args[0]), pos);
    case Type::kDouble: return MakeUnary<ToIntFromDoubleFn>(Type::kInt64, std::move(args[0]), pos);
    case Type::kString: return MakeUnary<ToIntFromStringFn>(Type::kInt64, std::move(args[0]), pos);
    case Type::kBool: return MakeUnary<ToIntFromBoolFn>(Type::kInt64, std::move(args[0]), pos);
    default: return MakeLiteral(Type::kInt64, Value(), pos);
  }
}

Result<Operand> BuildToDouble(Args& args, size_t pos, const Diag& diag) {
  RETURN_IF_ERROR(NoTimestamp(args, "to_double", diag));
  switch (args[0].type()) {
    case Type::kInt64: {
      ASSIGN_OR_RETURN(Operand widened, CoerceTo(std::move(args[0]), Type::kDouble, diag, ""));
      return Passthrough(std::move(widened), pos);
    }
    case Type::kDouble: return Passthrough(std::move(args[0]), pos);
    case Type::kString:
      return MakeUnary<ToDoubleFromStringFn>(Type::kDouble, std::move(args[0]), pos);
    case Type::kBool: return MakeUnary<ToDoubleFromBoolFn>(Type::kDouble, std::move(args[0]), pos);
    default: return MakeLiteral(Type::kDouble, Value(), pos);
  }
}

Result<Operand> BuildToString(Args& args, size_t pos, const Diag&) {
  switch (args[0].type()) {
    case Type::kString: return Passthrough(std::move(args[0]), pos);
    case Type::kNull: return MakeLiteral(Type::kString, Value(), pos);
    default: return MakeUnary<ToStringFn>(Type::kString, std::move(args[0]), pos);
  }
}

Result<Operand> BuildIsInt(Args& args, size_t pos, const Diag& diag) {
  return StringToX<IsIntFn>(args, pos, diag, "is_int", Type::kBool);
}

Result<Operand> BuildCoalesce(Args& args, size_t pos, const Diag& diag) {
  Type type = Type::kNull;
  for (size_t i = 0; i < args.size(); ++i) {
    Type common;
    if (!CommonType(type, args[i].type(), &common)) {
      return diag.Error(args[i].pos, "the arguments of coalesce() must have one type: " +
                                         ArgName(static_cast<int>(i), "coalesce") + " is " +
                                         TypeStr(args[i].type()) + ", the ones before are " +
                                         TypeStr(type));
    }
    type = common;
  }
  std::vector<NodePtr> nodes;
  for (Operand& a : args) {
    if (a.constant && a.value().is_null()) continue;  // never chosen
    const bool stop = a.constant;                     // later ones are never reached
    ASSIGN_OR_RETURN(Operand converted, CoerceTo(std::move(a), type, diag, "argument"));
    nodes.push_back(std::move(converted.node));
    if (stop) break;
  }
  if (nodes.empty()) return MakeLiteral(type, Value(), pos);
  if (nodes.size() == 1) {
    Operand only;
    only.pos = pos;
    only.constant = dynamic_cast<Literal*>(nodes[0].get()) != nullptr;
    only.node = std::move(nodes[0]);
    return only;
  }
  return Finish(std::make_unique<Coalesce>(type, std::move(nodes)), pos, false);
}

Result<Operand> BuildIf(Args& args, size_t pos, const Diag& diag) {
  if (args[0].type() != Type::kBool && args[0].type() != Type::kNull) {
    return diag.Error(args[0].pos, ArgName(0, "if") + " must be a condition (bool), got " +
                                       TypeStr(args[0].type()));
  }
  Type type;
  if (!CommonType(args[1].type(), args[2].type(), &type)) {
    return diag.Error(args[2].pos, "the two branches of if() must have one type, got " +
                                       TypeStr(args[1].type()) + " and " +
                                       TypeStr(args[2].type()));
  }
  ASSIGN_OR_RETURN(Operand then, CoerceTo(std::move(args[1]), type, diag, "argument"));
  ASSIGN_OR_RETURN(Operand otherwise, CoerceTo(std::move(args[2]), type, diag, "argument"));
  if (args[0].constant) {
    // A constant condition picks its branch now; null counts as false, as in a filter.
    const Value& c = args[0].value();
    return Passthrough(c.type() == Type::kBool && c.bool_value() ? std::move(then)
                                                                 : std::move(otherwise),
                       pos);
  }
  return Finish(std::make_unique<If>(type, std::move(args[0].node), std::move(then.node),
                                     std::move(otherwise.node)),
                pos, false);
}

constexpr int kVariadic = -1;

const std::array kFunctions = {
    FunctionSpec{"abs", 1, 1, BuildAbs},
    FunctionSpec{"ceil", 1, 1, BuildCeil},
    FunctionSpec{"coalesce", 1, kVariadic, BuildCoalesce},
    FunctionSpec{"concat", 1, kVariadic, BuildConcat},
    FunctionSpec{"date", 1, 1, BuildDate},
    FunctionSpec{"epoch_seconds", 1, 1, BuildEpochSeconds},
    FunctionSpec{"floor", 1, 1, BuildFloor},
    FunctionSpec{"floor_time", 2, 2, BuildFloorTime},
    FunctionSpec{"format_time", 2, 2, BuildFormatTime},
    FunctionSpec{"hour", 1, 1, BuildHour},
    FunctionSpec{"if", 3, 3, BuildIf},
    FunctionSpec{"is_int", 1, 1, BuildIsInt},
    FunctionSpec{"length", 1, 1, BuildLength},
    FunctionSpec{"lower", 1, 1, BuildLower},
    FunctionSpec{"minute", 1, 1, BuildMinute},
    FunctionSpec{"parse_time", 1, 2, BuildParseTime},
    FunctionSpec{"round", 1, 2, BuildRound},
    FunctionSpec{"seconds_between", 2, 2, BuildSecondsBetween},
    FunctionSpec{"timeuuid_time", 1, 1, BuildTimeUuidTime},
    FunctionSpec{"to_double", 1, 1, BuildToDouble},
    FunctionSpec{"to_int", 1, 1, BuildToInt},
    FunctionSpec{"to_string", 1, 1, BuildToString},
    FunctionSpec{"trim", 1, 1, BuildTrim},
    FunctionSpec{"upper", 1, 1, BuildUpper},
    FunctionSpec{"uuid5", 2, 2, BuildUuid5},
};

}  // namespace

const FunctionSpec* FindFunction(std::string_view lower_name) {
  for (const FunctionSpec& f : kFunctions) {
    if (f.name == lower_name) return &f;
  }
  return nullptr;
}

std::span<const FunctionSpec> AllFunctions() { return kFunctions; }

bool DescribeCall(const Node& n, Shape* out) {
  if (const auto* c = dynamic_cast<const Coalesce*>(&n)) {
    out->kind = Shape::Kind::kCoalesce;
    for (const NodePtr& a : c->args()) out->args.push_back(a.get());
    return true;
  }
  const Node* arg = nullptr;
  if (const auto* u = dynamic_cast<const Unary<TimeUuidTimeFn>*>(&n)) {
    out->kind = Shape::Kind::kTimeUuidTime;
    arg = &u->arg();
  } else if (const auto* p = dynamic_cast<const Unary<ParseTimeFn>*>(&n)) {
    out->kind = Shape::Kind::kParseTime;
    arg = &p->arg();
  } else if (const auto* iso = dynamic_cast<const Unary<ParseIsoTimeFn>*>(&n)) {
    out->kind = Shape::Kind::kParseTime;
    out->time_format = Shape::TimeFormat::kIso;
    arg = &iso->arg();
  } else if (const auto* us = dynamic_cast<const Unary<ParseUsTimeFn>*>(&n)) {
    out->kind = Shape::Kind::kParseTime;
    out->time_format = Shape::TimeFormat::kUs;
    arg = &us->arg();
  } else if (const auto* t = dynamic_cast<const Unary<TrimFn>*>(&n)) {
    out->kind = Shape::Kind::kTrim;
    arg = &t->arg();
  } else if (const auto* sb = dynamic_cast<const SecondsBetween*>(&n)) {
    if (sb->from().type() != Type::kTimestamp || sb->to().type() != Type::kTimestamp) return false;
    out->kind = Shape::Kind::kSecondsBetween;
    out->a = &sb->from();
    out->b = &sb->to();
    return true;
  } else {
    return false;
  }
  if (arg->type() != Type::kString) {
    *out = Shape();
    return false;
  }
  out->a = arg;
  return true;
}

}  // namespace sluice::expr::internal

namespace sluice::expr {

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && internal::IsTrimmed(s.front())) s.remove_prefix(1);
  while (!s.empty() && internal::IsTrimmed(s.back())) s.remove_suffix(1);
  return s;
}

double SecondsBetweenMicros(int64_t from, int64_t to) {
  int64_t diff;
  if (__builtin_sub_overflow(to, from, &diff)) {
    return internal::MicrosToSeconds(to) - internal::MicrosToSeconds(from);
  }
  return internal::MicrosToSeconds(diff);
}

}  // namespace sluice::expr
