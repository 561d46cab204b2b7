#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

inline constexpr int64_t kMicrosPerSecond = 1'000'000;
inline constexpr int64_t kMicrosPerMinute = 60 * kMicrosPerSecond;
inline constexpr int64_t kMicrosPerHour = 60 * kMicrosPerMinute;
inline constexpr int64_t kMicrosPerDay = 24 * kMicrosPerHour;

/// Broken-down UTC civil time.
struct CivilTime {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0, micros = 0;
};

/// Converts microseconds since the epoch to UTC civil time (proleptic Gregorian, any sign).
CivilTime ToCivil(int64_t micros);
/// Converts UTC civil time to microseconds since the epoch. Fields are not range-checked.
int64_t FromCivil(const CivilTime& t);

/// Returns the time of a version-1 (time-based) UUID in microseconds since the Unix epoch,
/// or nullopt when `text` is not a canonical 36-character UUID of version 1.
std::optional<int64_t> ParseTimeUuid(std::string_view text);

/// Parses an ISO 8601 date-time: `YYYY-MM-DD`, then `T` or a space and `HH:MM[:SS[.f{1,9}]]`,
/// then an optional zone (`Z`, `+HH:MM`, `+HHMM`, `+HH`). No zone means UTC. Fractions beyond
/// microseconds are truncated. Returns nullopt for anything else, including out-of-range fields.
std::optional<int64_t> ParseIsoTimestamp(std::string_view text);

/// Parses US-style `M/D/YYYY H:MM[:SS]` (as spreadsheets export), as UTC.
std::optional<int64_t> ParseUsTimestamp(std::string_view text);

/// Tries ParseIsoTimestamp, then ParseUsTimestamp.
std::optional<int64_t> ParseTimestamp(std::string_view text);

/// Parses a duration such as "10s", "1m", "1h", "500ms", "2d", or a bare number of seconds.
std::optional<int64_t> ParseDurationMicros(std::string_view text);

/// Formats as "YYYY-MM-DD HH:MM:SS", adding ".ffffff" only when the microseconds are not zero.
/// Returns the wall-clock time (system clock) in microseconds since the Unix epoch.
int64_t WallClockMicros();
/// Returns a monotonic time in microseconds (steady clock; only differences mean anything).
int64_t SteadyClockMicros();

std::string FormatTimestamp(int64_t micros);
/// Formats with a strftime-like pattern supporting %Y %m %d %H %M %S %f (6 digits) and %%.
std::string FormatTimestamp(int64_t micros, std::string_view pattern);
/// Writes "YYYY-MM-DD HH:MM:SS", what FormatTimestamp(micros, "%Y-%m-%d %H:%M:%S") returns,
/// into `out` without allocating (a sink binding a timestamp per row). Returns 19, or 0 for a
/// year outside 0-9999 (format with FormatTimestamp then).
size_t FormatDateTimeSeconds(int64_t micros, char out[19]);

/// Formats a double with the shortest representation that round-trips ("0.1", "2", "1e+20").
std::string FormatDouble(double v);

/// Returns the largest multiple of `size` at or below `micros` (floor, also for negatives).
inline int64_t FloorTo(int64_t micros, int64_t size) {
  int64_t r = micros % size;
  return r < 0 ? micros - r - size : micros - r;
}

}  // namespace sluice

namespace sluice {

/// Formats a version-1 UUID whose time field encodes `micros` (plus `ticks_100ns` extra
/// 100-nanosecond ticks, 0..9), with the given 14-bit clock sequence and 48-bit node.
std::string FormatTimeUuid(int64_t micros, int ticks_100ns, uint16_t clock_seq, uint64_t node);

}  // namespace sluice
