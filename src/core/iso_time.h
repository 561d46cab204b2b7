#pragma once

#include <cstdint>
#include <string>

namespace sluice {

/// Formats a time for people as UTC ISO 8601, "YYYY-MM-DDTHH:MM:SSZ", adding ".ffffff" only
/// when the microseconds are not zero (the rule of FormatTimestamp): the same instant reads the
/// same in every command (`sluice status`, `sluice inspect`), and an event time is shown whole.
std::string FormatIsoTimestamp(int64_t micros);

}  // namespace sluice
