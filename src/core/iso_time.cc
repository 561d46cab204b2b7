#include "core/iso_time.h"

#include "core/time.h"

namespace sluice {

std::string FormatIsoTimestamp(int64_t micros) {
  return FormatTimestamp(micros, micros % kMicrosPerSecond == 0 ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%S.%fZ");
}

}  // namespace sluice
