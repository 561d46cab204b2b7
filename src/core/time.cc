#include "core/time.h"

#include <array>
#include <chrono>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace sluice {
namespace {

// Days from 1970-01-01 to year/month/day in the proleptic Gregorian calendar (Howard Hinnant's
// days_from_civil algorithm).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(int64_t z, int* year, int* month, int* day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *year = static_cast<int>(y + (*month <= 2));
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

/// Maps a byte to its hex digit value, or -1 (a table: TimeUUIDs are parsed once per record).
constexpr std::array<int8_t, 256> kHexValue = [] {
  std::array<int8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (c >= '0' && c <= '9') {
      t[c] = static_cast<int8_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      t[c] = static_cast<int8_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      t[c] = static_cast<int8_t>(c - 'A' + 10);
    } else {
      t[c] = -1;
    }
  }
  return t;
}();

int HexDigit(char c) { return kHexValue[static_cast<unsigned char>(c)]; }

// Reads exactly `n` decimal digits at `*pos`, advancing it.
bool ReadDigits(std::string_view s, size_t* pos, int n, int* out) {
  if (*pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

// Reads 1 to `max` decimal digits at `*pos`.
bool ReadUpTo(std::string_view s, size_t* pos, int max, int* out) {
  int v = 0, n = 0;
  while (*pos < s.size() && n < max && s[*pos] >= '0' && s[*pos] <= '9') {
    v = v * 10 + (s[*pos] - '0');
    ++*pos;
    ++n;
  }
  *out = v;
  return n > 0;
}

bool ValidCivil(const CivilTime& t) {
  return t.year >= 1 && t.year <= 9999 && t.month >= 1 && t.month <= 12 && t.day >= 1 &&
         t.day <= DaysInMonth(t.year, t.month) && t.hour >= 0 && t.hour <= 23 && t.minute >= 0 &&
         t.minute <= 59 && t.second >= 0 && t.second <= 60;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

CivilTime ToCivil(int64_t micros) {
  int64_t days = micros / kMicrosPerDay;
  int64_t rem = micros % kMicrosPerDay;
  if (rem < 0) {
    rem += kMicrosPerDay;
    --days;
  }
  CivilTime t;
  CivilFromDays(days, &t.year, &t.month, &t.day);
  t.hour = static_cast<int>(rem / kMicrosPerHour);
  rem %= kMicrosPerHour;
  t.minute = static_cast<int>(rem / kMicrosPerMinute);
  rem %= kMicrosPerMinute;
  t.second = static_cast<int>(rem / kMicrosPerSecond);
  t.micros = static_cast<int>(rem % kMicrosPerSecond);
  return t;
}

int64_t FromCivil(const CivilTime& t) {
  return DaysFromCivil(t.year, t.month, t.day) * kMicrosPerDay + t.hour * kMicrosPerHour +
         t.minute * kMicrosPerMinute + static_cast<int64_t>(t.second) * kMicrosPerSecond +
         t.micros;
}

std::optional<int64_t> ParseTimeUuid(std::string_view s) {
  // xxxxxxxx-xxxx-Vxxx-xxxx-xxxxxxxxxxxx: time_low, time_mid, version + time_hi, ...
  if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
    return std::nullopt;
  }
  uint64_t groups[5] = {0, 0, 0, 0, 0};
  static constexpr int kStart[] = {0, 9, 14, 19, 24};
  static constexpr int kLen[] = {8, 4, 4, 4, 12};
  for (int g = 0; g < 5; ++g) {
    for (int i = 0; i < kLen[g]; ++i) {
      int d = HexDigit(s[kStart[g] + i]);
      if (d < 0) return std::nullopt;
      groups[g] = groups[g] << 4 | static_cast<uint64_t>(d);
    }
  }
  if ((groups[2] >> 12) != 1) return std::nullopt;  // not version 1
  if ((groups[3] >> 14) != 2) return std::nullopt;  // not the RFC 4122 variant (10xx)
  const uint64_t ticks = ((groups[2] & 0x0fff) << 48) | (groups[1] << 32) | groups[0];
  // 100 ns intervals since 1582-10-15 00:00:00 UTC; the Unix epoch is this many ticks later.
  constexpr uint64_t kGregorianToUnixTicks = 0x01B21DD213814000ULL;
  const int64_t unix_ticks = static_cast<int64_t>(ticks) - static_cast<int64_t>(kGregorianToUnixTicks);
  // Floor division keeps pre-1970 values consistent.
  int64_t micros = unix_ticks / 10;
  if (unix_ticks % 10 < 0) --micros;
  return micros;
}

std::optional<int64_t> ParseIsoTimestamp(std::string_view text) {
  std::string_view s = Trim(text);
  size_t p = 0;
  CivilTime t;
  if (!ReadDigits(s, &p, 4, &t.year) || p >= s.size() || s[p++] != '-' ||
      !ReadDigits(s, &p, 2, &t.month) || p >= s.size() || s[p++] != '-' ||
      !ReadDigits(s, &p, 2, &t.day)) {
    return std::nullopt;
  }
  int64_t offset_micros = 0;
  if (p < s.size()) {
    if (s[p] != 'T' && s[p] != 't' && s[p] != ' ') return std::nullopt;
    ++p;
    if (!ReadDigits(s, &p, 2, &t.hour) || p >= s.size() || s[p++] != ':' ||
        !ReadDigits(s, &p, 2, &t.minute)) {
      return std::nullopt;
    }
    if (p < s.size() && s[p] == ':') {
      ++p;
      if (!ReadDigits(s, &p, 2, &t.second)) return std::nullopt;
      if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        ++p;
        int digits = 0;
        int64_t frac = 0;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
          if (digits < 6) frac = frac * 10 + (s[p] - '0');
          ++digits;
          ++p;
        }
        if (digits == 0) return std::nullopt;
        for (int i = digits; i < 6; ++i) frac *= 10;
        t.micros = static_cast<int>(frac);
      }
    }
    if (p < s.size() && s[p] == ' ') ++p;  // "2023-10-08 12:00:00 +02:00"
    if (p < s.size()) {
      char z = s[p];
      if (z == 'Z' || z == 'z') {
        ++p;
      } else if (z == '+' || z == '-') {
        ++p;
        int oh = 0, om = 0;
        if (!ReadDigits(s, &p, 2, &oh)) return std::nullopt;
        if (p < s.size() && s[p] == ':') ++p;
        if (p < s.size() && !ReadDigits(s, &p, 2, &om)) return std::nullopt;
        if (oh > 23 || om > 59) return std::nullopt;
        offset_micros = (oh * kMicrosPerHour + om * kMicrosPerMinute) * (z == '+' ? 1 : -1);
      } else {
        return std::nullopt;
      }
    }
    if (p != s.size()) return std::nullopt;
  }
  if (!ValidCivil(t)) return std::nullopt;
  return FromCivil(t) - offset_micros;
}

std::optional<int64_t> ParseUsTimestamp(std::string_view text) {
  std::string_view s = Trim(text);
  size_t p = 0;
  CivilTime t;
  if (!ReadUpTo(s, &p, 2, &t.month) || p >= s.size() || s[p++] != '/' ||
      !ReadUpTo(s, &p, 2, &t.day) || p >= s.size() || s[p++] != '/' ||
      !ReadDigits(s, &p, 4, &t.year)) {
    return std::nullopt;
  }
  if (p < s.size()) {
    if (s[p++] != ' ') return std::nullopt;
    if (!ReadUpTo(s, &p, 2, &t.hour) || p >= s.size() || s[p++] != ':' ||
        !ReadDigits(s, &p, 2, &t.minute)) {
      return std::nullopt;
    }
    if (p < s.size() && s[p] == ':') {
      ++p;
      if (!ReadDigits(s, &p, 2, &t.second)) return std::nullopt;
    }
    if (p != s.size()) return std::nullopt;
  }
  if (!ValidCivil(t)) return std::nullopt;
  return FromCivil(t);
}

std::optional<int64_t> ParseTimestamp(std::string_view text) {
  if (auto v = ParseIsoTimestamp(text)) return v;
  return ParseUsTimestamp(text);
}

std::optional<int64_t> ParseDurationMicros(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.empty()) return std::nullopt;
  double number = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), number);
  if (ec != std::errc() || !(number >= 0) || !std::isfinite(number)) return std::nullopt;
  std::string_view unit = Trim(std::string_view(end, s.data() + s.size() - end));
  double scale;
  if (unit.empty() || unit == "s" || unit == "sec" || unit == "second" || unit == "seconds") {
    scale = kMicrosPerSecond;
  } else if (unit == "ms") {
    scale = 1000;
  } else if (unit == "us") {
    scale = 1;
  } else if (unit == "m" || unit == "min" || unit == "minute" || unit == "minutes") {
    scale = kMicrosPerMinute;
  } else if (unit == "h" || unit == "hour" || unit == "hours") {
    scale = kMicrosPerHour;
  } else if (unit == "d" || unit == "day" || unit == "days") {
    scale = kMicrosPerDay;
  } else {
    return std::nullopt;
  }
  double micros = number * scale;
  if (micros > static_cast<double>(std::numeric_limits<int64_t>::max() / 2)) return std::nullopt;
  return static_cast<int64_t>(micros);
}

namespace {

/// Appends `value` as printf's "%0<width>d" does, without printf's cost for the usual values.
void AppendZeroPadded(int value, int width, std::string* out) {
  if (value < 0) {
    char buf[24];
    const int n = std::snprintf(buf, sizeof buf, "%0*d", width, value);
    out->append(buf, static_cast<size_t>(n));
    return;
  }
  char buf[16];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n < width) buf[n++] = '0';
  while (n > 0) out->push_back(buf[--n]);
}

}  // namespace

std::string FormatTimestamp(int64_t micros) {
  CivilTime t = ToCivil(micros);
  std::string out;
  out.reserve(26);
  AppendZeroPadded(t.year, 4, &out);
  out.push_back('-');
  AppendZeroPadded(t.month, 2, &out);
  out.push_back('-');
  AppendZeroPadded(t.day, 2, &out);
  out.push_back(' ');
  AppendZeroPadded(t.hour, 2, &out);
  out.push_back(':');
  AppendZeroPadded(t.minute, 2, &out);
  out.push_back(':');
  AppendZeroPadded(t.second, 2, &out);
  if (t.micros != 0) {
    out.push_back('.');
    AppendZeroPadded(t.micros, 6, &out);
  }
  return out;
}

std::string FormatTimestamp(int64_t micros, std::string_view pattern) {
  CivilTime t = ToCivil(micros);
  std::string out;
  out.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      out.push_back(pattern[i]);
      continue;
    }
    char c = pattern[++i];
    switch (c) {
      case 'Y': AppendZeroPadded(t.year, 4, &out); break;
      case 'm': AppendZeroPadded(t.month, 2, &out); break;
      case 'd': AppendZeroPadded(t.day, 2, &out); break;
      case 'H': AppendZeroPadded(t.hour, 2, &out); break;
      case 'M': AppendZeroPadded(t.minute, 2, &out); break;
      case 'S': AppendZeroPadded(t.second, 2, &out); break;
      case 'f': AppendZeroPadded(t.micros, 6, &out); break;
      case '%': out.push_back('%'); break;
      default:
        out.push_back('%');
        out.push_back(c);
        break;
    }
  }
  return out;
}

size_t FormatDateTimeSeconds(int64_t micros, char out[19]) {
  const CivilTime t = ToCivil(micros);
  if (t.year < 0 || t.year > 9999) return 0;
  auto two = [](int v, char* at) {
    at[0] = static_cast<char>('0' + v / 10);
    at[1] = static_cast<char>('0' + v % 10);
  };
  two(t.year / 100, out);
  two(t.year % 100, out + 2);
  out[4] = '-';
  two(t.month, out + 5);
  out[7] = '-';
  two(t.day, out + 8);
  out[10] = ' ';
  two(t.hour, out + 11);
  out[13] = ':';
  two(t.minute, out + 14);
  out[16] = ':';
  two(t.second, out + 17);
  return 19;
}

std::string FormatDouble(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "nan";
  return std::string(buf, end);
}

}  // namespace sluice

namespace sluice {

std::string FormatTimeUuid(int64_t micros, int ticks_100ns, uint16_t clock_seq, uint64_t node) {
  constexpr uint64_t kGregorianToUnixTicks = 0x01B21DD213814000ULL;
  const uint64_t ticks = static_cast<uint64_t>(micros * 10 + ticks_100ns) + kGregorianToUnixTicks;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(ticks & 0xffffffffULL),
                static_cast<unsigned>((ticks >> 32) & 0xffff),
                static_cast<unsigned>(((ticks >> 48) & 0x0fff) | 0x1000),
                static_cast<unsigned>((clock_seq & 0x3fff) | 0x8000),
                static_cast<unsigned long long>(node & 0xffffffffffffULL));
  return std::string(buf, 36);
}

int64_t WallClockMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyClockMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace sluice
