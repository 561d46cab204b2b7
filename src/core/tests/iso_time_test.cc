#include "core/iso_time.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

// 2026-12-06T14:57:03Z is 1796569023 s since the epoch: days(1970-01-01..2026-12-06) = 20793
// (56 years of 365 days, 14 leap days from 1972 to 2024, and 339 days of 2026 before December
// 6th), 20793 * 86400 + 14 * 3600 + 57 * 60 + 3.
constexpr int64_t kInstant = (20793LL * 86400 + 14 * 3600 + 57 * 60 + 3) * 1'000'000;

TEST(IsoTimeTest, WholeSecondsWithoutAFraction) {
  EXPECT_EQ(FormatIsoTimestamp(kInstant), "2026-12-06T14:57:03Z");
  EXPECT_EQ(FormatIsoTimestamp(0), "1970-01-01T00:00:00Z");
}

TEST(IsoTimeTest, AFractionWithAllItsMicroseconds) {
  EXPECT_EQ(FormatIsoTimestamp(kInstant + 687221), "2026-12-06T14:57:03.687221Z");
  EXPECT_EQ(FormatIsoTimestamp(kInstant + 500000), "2026-12-06T14:57:03.500000Z");
  EXPECT_EQ(FormatIsoTimestamp(kInstant + 1), "2026-12-06T14:57:03.000001Z");
  EXPECT_EQ(FormatIsoTimestamp(-1), "1969-12-31T23:59:59.999999Z");
}

}  // namespace
}  // namespace sluice
