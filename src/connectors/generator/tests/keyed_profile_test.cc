#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <set>
#include <string>

#include "connectors/generator/generator_source.h"

namespace sluice {
namespace {

constexpr int64_t kStart = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

Result<std::shared_ptr<const GeneratorProfile>> Keyed(const std::string& groups) {
  Options o;
  if (!groups.empty()) o.Set("groups", {groups, {"p.toml", 4, 10}});
  return MakeGeneratorProfile("keyed", o, 1);
}

struct Event {
  std::string key;
  int64_t value;
  int64_t event_time;
};

Event MakeOne(const GeneratorProfile& p, uint64_t seq, int64_t event_time, std::string* line,
              std::string* message_key = nullptr) {
  Rng rng(0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
  line->clear();
  p.Make(seq, event_time, rng, line, message_key);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  Event e{};
  EXPECT_EQ(parser.parse(*line).get(obj), simdjson::SUCCESS) << *line;
  std::string_view key;
  EXPECT_EQ(obj["key"].get(key), simdjson::SUCCESS) << *line;
  e.key = std::string(key);
  EXPECT_EQ(obj["value"].get(e.value), simdjson::SUCCESS) << *line;
  EXPECT_EQ(obj["event_time"].get(e.event_time), simdjson::SUCCESS) << *line;
  EXPECT_EQ(obj.size(), 3u) << *line;
  return e;
}

/// n events of `groups` keys: exactly min(n, groups) distinct keys, each key floor or ceil of
/// n / groups events, keys "k" + a number below groups, values 0..999, times in milliseconds.
void ExpectSpread(const std::string& groups_text, uint64_t groups, uint64_t n) {
  auto profile = Keyed(groups_text);
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  std::map<std::string, uint64_t> per_key;
  std::string line, message_key;
  for (uint64_t seq = 0; seq < n; ++seq) {
    const int64_t t = kStart + static_cast<int64_t>(seq) * 1500;  // 1.5 ms apart
    Event e = MakeOne(**profile, seq, t, &line, &message_key);
    ASSERT_EQ(e.key, message_key);
    ASSERT_EQ(e.key[0], 'k') << line;
    ASSERT_LT(std::stoull(e.key.substr(1)), groups) << line;
    ASSERT_EQ(std::to_string(std::stoull(e.key.substr(1))), e.key.substr(1)) << line;
    ASSERT_GE(e.value, 0);
    ASSERT_LE(e.value, 999);
    ASSERT_EQ(e.event_time, t / 1000) << line;
    ++per_key[e.key];
  }
  EXPECT_EQ(per_key.size(), std::min(n, groups));
  for (const auto& [key, count] : per_key) {
    EXPECT_GE(count, n / groups) << key;
    EXPECT_LE(count, (n + groups - 1) / groups) << key;
  }
}

TEST(KeyedProfileTest, DefaultIsAThousandKeysEachAsOftenAsTheOthers) {
  ExpectSpread("", 1000, 2500);
}

TEST(KeyedProfileTest, GroupsSetsTheDistinctKeys) {
  ExpectSpread("1", 1, 50);
  ExpectSpread("7", 7, 100);
  ExpectSpread("1024", 1024, 5000);   // a power of two: the stride must still be odd
  ExpectSpread("30030", 30030, 40000);  // 2*3*5*7*11*13: many factors to avoid
  ExpectSpread("10000000", 10'000'000, 20000);  // fewer events than keys: all distinct
}

TEST(KeyedProfileTest, ConsecutiveEventsHaveScatteredKeys) {
  auto profile = Keyed("1000000");
  ASSERT_TRUE(profile.ok());
  std::string line;
  int adjacent = 0;
  uint64_t previous = 0;
  for (uint64_t seq = 0; seq < 1000; ++seq) {
    const uint64_t id = std::stoull(MakeOne(**profile, seq, kStart, &line).key.substr(1));
    if (seq > 0 && (id == previous + 1 || id + 1 == previous)) ++adjacent;
    previous = id;
  }
  EXPECT_EQ(adjacent, 0);
}

TEST(KeyedProfileTest, SameSeqSameEvent) {
  auto a = Keyed("5000");
  auto b = Keyed("5000");
  ASSERT_TRUE(a.ok() && b.ok());
  std::string la, lb;
  for (uint64_t seq : {0u, 1u, 4999u, 5000u, 123456u}) {
    MakeOne(**a, seq, kStart, &la);
    MakeOne(**b, seq, kStart, &lb);
    EXPECT_EQ(la, lb);
  }
}

TEST(KeyedProfileTest, GroupsOutOfRangeIsAnErrorAtTheOption) {
  for (const char* bad : {"0", "-3", "1000000001"}) {
    auto profile = Keyed(bad);
    ASSERT_FALSE(profile.ok()) << bad;
    EXPECT_NE(profile.status().message().find("p.toml:4:10: groups must be 1..1000000000"),
              std::string::npos)
        << profile.status().message();
  }
}

}  // namespace
}  // namespace sluice
