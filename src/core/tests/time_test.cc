#include "core/time.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace sluice {
namespace {

// 2022-07-27 07:52:22.658 UTC in microseconds, worked out by hand from the civil date:
// days(1970-01-01..2022-07-27) = 19200.
constexpr int64_t kDay19200 = 19200LL * kMicrosPerDay;

TEST(TimeTest, CivilRoundTrip) {
  CivilTime t{2022, 7, 27, 7, 52, 22, 658000};
  EXPECT_EQ(FromCivil(t), kDay19200 + 7 * kMicrosPerHour + 52 * kMicrosPerMinute +
                              22 * kMicrosPerSecond + 658000);
  CivilTime back = ToCivil(FromCivil(t));
  EXPECT_EQ(back.year, 2022);
  EXPECT_EQ(back.month, 7);
  EXPECT_EQ(back.day, 27);
  EXPECT_EQ(back.micros, 658000);
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31 23:59:59.999999");
}

TEST(TimeTest, TimeUuidVersion1) {
  // The first data row of the seed tracking log. Its 60-bit timestamp is 0x1ed0d605af328a0
  // 100-ns ticks since 1582-10-15; python's uuid module gives the instant independently:
  // datetime(1582,10,15) + timedelta(microseconds=uuid.UUID(s).time//10).
  auto t = ParseTimeUuid("5af328a0-0d60-11ed-90e9-7cd44fe229db");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatTimestamp(*t), "2022-07-27 03:58:21.226000");
}

TEST(TimeTest, TimeUuidRejectsOtherVersionsAndJunk) {
  EXPECT_FALSE(ParseTimeUuid("5af328a0-0d60-41ed-90e9-7cd44fe229db"));  // version 4
  // Version digit 1 but not the RFC 4122 variant: python's uuid reports version None.
  EXPECT_FALSE(ParseTimeUuid("deaef000-fcf0-11ec-7008-7cd44fe229db"));
  EXPECT_TRUE(ParseTimeUuid("deaef000-fcf0-11ec-b008-7cd44fe229db"));
  EXPECT_FALSE(ParseTimeUuid("5af328a0-0d60-11ed-90e9-7cd44fe229d"));   // too short
  EXPECT_FALSE(ParseTimeUuid("5af328a0x0d60-11ed-90e9-7cd44fe229db"));
  EXPECT_FALSE(ParseTimeUuid("5af328g0-0d60-11ed-90e9-7cd44fe229db"));
  EXPECT_FALSE(ParseTimeUuid(""));
}

TEST(TimeTest, IsoVariants) {
  const int64_t base = FromCivil({2023, 10, 8, 12, 0, 0, 0});
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08 12:00:00"), base);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08T12:00:00Z"), base);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08T14:00:00+02:00"), base);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08T11:30:00-0030"), base);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08T12:00:00.25"), base + 250000);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08T12:00:00.1234567Z"), base + 123456);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08 12:00"), base);
  EXPECT_EQ(ParseIsoTimestamp("2023-10-08"), FromCivil({2023, 10, 8, 0, 0, 0, 0}));
  EXPECT_FALSE(ParseIsoTimestamp("2023-02-29 00:00:00"));
  EXPECT_FALSE(ParseIsoTimestamp("2023-10-08 24:00:00"));
  EXPECT_FALSE(ParseIsoTimestamp("58:22.5"));
  EXPECT_FALSE(ParseIsoTimestamp("2023-10-08 12:00:00 junk"));
}

TEST(TimeTest, UsFormatFromSeedData) {
  EXPECT_EQ(ParseUsTimestamp("1/14/2023 9:05"), FromCivil({2023, 1, 14, 9, 5, 0, 0}));
  EXPECT_EQ(ParseTimestamp("12/31/2022 23:59"), FromCivil({2022, 12, 31, 23, 59, 0, 0}));
  EXPECT_FALSE(ParseUsTimestamp("13/1/2023 9:05"));
  EXPECT_FALSE(ParseTimestamp("17:54.5"));
}

TEST(TimeTest, Durations) {
  EXPECT_EQ(ParseDurationMicros("10s"), 10 * kMicrosPerSecond);
  EXPECT_EQ(ParseDurationMicros("1h"), kMicrosPerHour);
  EXPECT_EQ(ParseDurationMicros("1m"), kMicrosPerMinute);
  EXPECT_EQ(ParseDurationMicros("250ms"), 250000);
  EXPECT_EQ(ParseDurationMicros("2"), 2 * kMicrosPerSecond);
  EXPECT_FALSE(ParseDurationMicros("1 fortnight"));
  EXPECT_FALSE(ParseDurationMicros("-1s"));
  EXPECT_FALSE(ParseDurationMicros("nan"));
  EXPECT_FALSE(ParseDurationMicros("inf"));
}

TEST(TimeTest, FloorAndFormat) {
  EXPECT_EQ(FloorTo(-1, kMicrosPerHour), -kMicrosPerHour);
  EXPECT_EQ(FloorTo(kMicrosPerHour + 5, kMicrosPerHour), kMicrosPerHour);
  EXPECT_EQ(FormatTimestamp(FromCivil({2023, 1, 2, 3, 4, 5, 0}), "%Y-%m-%d-%H-%M"),
            "2023-01-02-03-04");
  EXPECT_EQ(FormatDouble(0.1), "0.1");
  EXPECT_EQ(FormatDouble(2.0), "2");
}

TEST(TimeTest, FormatDateTimeSecondsWithoutAllocating) {
  char buf[19];
  auto text = [&](int64_t micros) {
    const size_t n = FormatDateTimeSeconds(micros, buf);
    return std::string(buf, n);
  };
  // Worked out by hand: day 19200 is 2022-07-27; the micros are dropped, not rounded.
  EXPECT_EQ(text(kDay19200 + ((7 * 60 + 52) * 60 + 22) * 1000000LL + 658000), "2022-07-27 07:52:22");
  EXPECT_EQ(text(0), "1970-01-01 00:00:00");
  EXPECT_EQ(text(-1), "1969-12-31 23:59:59");
  // Years 0 and 9999 are written; others are left to FormatTimestamp.
  CivilTime first{0, 1, 1, 0, 0, 0, 0};
  EXPECT_EQ(text(FromCivil(first)), "0000-01-01 00:00:00");
  CivilTime last{9999, 12, 31, 23, 59, 59, 999999};
  EXPECT_EQ(text(FromCivil(last)), "9999-12-31 23:59:59");
  EXPECT_EQ(FormatDateTimeSeconds(FromCivil(last) + 1, buf), 0u);
  EXPECT_EQ(FormatDateTimeSeconds(FromCivil(first) - 1, buf), 0u);
  // Everywhere in between, what the pattern formatter writes.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const int64_t micros = static_cast<int64_t>(rng() % (2 * 253402300800000000ULL)) - 62167219200000000LL;
    if (FormatDateTimeSeconds(micros, buf) == 0) continue;
    ASSERT_EQ(text(micros), FormatTimestamp(micros, "%Y-%m-%d %H:%M:%S")) << micros;
  }
}

}  // namespace
}  // namespace sluice
