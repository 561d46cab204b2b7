#include <gtest/gtest.h>
#include <simdjson.h>

#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "connectors/generator/generator_source.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

constexpr int64_t kStart = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

std::string AdsCsv() { return std::string(SLUICE_SOURCE_DIR) + "/examples/data/ysb_ads.csv"; }

std::shared_ptr<const GeneratorProfile> Ysb(const std::string& ads) {
  Options o;
  o.Set("campaigns", {ads, {"p.toml", 7, 13}});
  auto profile = MakeGeneratorProfile("ysb", o, 1);
  EXPECT_TRUE(profile.ok()) << profile.status().ToString();
  EXPECT_TRUE(o.RejectUnconsumed("source").ok());
  return profile.ok() ? *profile : nullptr;
}

std::string MakeOne(const GeneratorProfile& p, uint64_t seq, int64_t event_time,
                    std::string* key = nullptr) {
  Rng rng(3 * 0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
  std::string out;
  p.Make(seq, event_time, rng, &out, key);
  return out;
}

/// The ads CSV read independently of the dimension loader: ad_id -> campaign_id.
std::map<std::string, std::string> ReadAds(const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, std::string> out;
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "ad_id,campaign_id");
  while (std::getline(in, line)) {
    const size_t comma = line.find(',');
    if (comma != std::string::npos) out[line.substr(0, comma)] = line.substr(comma + 1);
  }
  return out;
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

TEST(YsbProfileTest, EventsHaveTheYsbShape) {
  auto ads = ReadAds(AdsCsv());
  ASSERT_EQ(ads.size(), 1000u);
  std::set<std::string> campaigns;
  for (const auto& [ad, campaign] : ads) campaigns.insert(campaign);
  EXPECT_EQ(campaigns.size(), 100u);

  auto profile = Ysb(AdsCsv());
  ASSERT_NE(profile, nullptr);
  simdjson::dom::parser parser;
  std::map<std::string, int> event_types, ad_types;
  std::set<std::string> seen_ads;
  const int n = 30000;
  for (int seq = 0; seq < n; ++seq) {
    // 1234 us past a millisecond boundary: event_time is floored to whole milliseconds.
    const int64_t t = kStart + seq * 1'000'000LL + 1234;
    std::string key;
    const std::string line = MakeOne(*profile, static_cast<uint64_t>(seq), t, &key);
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    simdjson::dom::object obj;
    ASSERT_EQ(doc.get_object().get(obj), simdjson::SUCCESS);
    EXPECT_EQ(obj.size(), 7u) << line;
    std::string_view user, page, ad, ad_type, event_type, ip;
    int64_t event_time = 0;
    ASSERT_EQ(obj["user_id"].get_string().get(user), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["page_id"].get_string().get(page), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["ad_id"].get_string().get(ad), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["ad_type"].get_string().get(ad_type), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["event_type"].get_string().get(event_type), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["event_time"].get_int64().get(event_time), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["ip_address"].get_string().get(ip), simdjson::SUCCESS) << line;
    EXPECT_TRUE(IsUuid(user)) << user;
    EXPECT_TRUE(IsUuid(page)) << page;
    EXPECT_EQ(user[14], '4') << "version-4 UUID: " << user;
    EXPECT_TRUE(ads.count(std::string(ad))) << ad;
    EXPECT_EQ(key, ad) << "messages are keyed by ad_id";
    EXPECT_EQ(event_time, (t / 1000)) << line;
    int dots = 0;
    for (char c : ip) dots += c == '.';
    EXPECT_EQ(dots, 3) << ip;
    ++event_types[std::string(event_type)];
    ++ad_types[std::string(ad_type)];
    seen_ads.insert(std::string(ad));
  }
  ASSERT_EQ(event_types.size(), 3u);
  for (const char* t : {"view", "click", "purchase"}) {
    EXPECT_NEAR(event_types[t], n / 3, n / 30) << t;
  }
  EXPECT_EQ(ad_types.size(), 5u);
  for (const char* t : {"banner", "modal", "sponsored-search", "mail", "mobile"}) {
    EXPECT_NEAR(ad_types[t], n / 5, n / 25) << t;
  }
  EXPECT_EQ(seen_ads.size(), 1000u) << "every ad is drawn";
}

TEST(YsbProfileTest, DeterministicPerSequence) {
  auto a = Ysb(AdsCsv());
  auto b = Ysb(AdsCsv());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (uint64_t seq : {0u, 1u, 977u, 123456u}) {
    EXPECT_EQ(MakeOne(*a, seq, kStart), MakeOne(*b, seq, kStart));
  }
  EXPECT_NE(MakeOne(*a, 1, kStart), MakeOne(*a, 2, kStart));
}

TEST(YsbProfileTest, BadAdsFileIsAnErrorAtTheOption) {
  Options o;
  o.Set("campaigns", {"/nonexistent/ads.csv", {"p.toml", 7, 13}});
  auto profile = MakeGeneratorProfile("ysb", o, 1);
  ASSERT_FALSE(profile.ok());
  EXPECT_NE(profile.status().message().find("p.toml:7:13: ysb generator"), std::string::npos)
      << profile.status().message();

  const std::string empty = ::testing::TempDir() + "/ysb_empty_ads.csv";
  std::ofstream(empty) << "ad_id,campaign_id\n";
  o.Set("campaigns", {empty, {"p.toml", 8, 13}});
  profile = MakeGeneratorProfile("ysb", o, 1);
  ASSERT_FALSE(profile.ok());
  EXPECT_NE(profile.status().message().find("no ads"), std::string::npos)
      << profile.status().message();
}

}  // namespace
}  // namespace sluice
