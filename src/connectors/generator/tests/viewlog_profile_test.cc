#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <set>
#include <string>

#include "connectors/generator/generator_source.h"
#include "core/time.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

constexpr int64_t kStart = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kSpacing = 100'000;              // 100 ms

std::shared_ptr<const GeneratorProfile> Viewlog(const std::map<std::string, std::string>& opts) {
  Options o;
  for (const auto& [k, v] : opts) o.Set(k, {v, {"p.toml", 4, 2}});
  auto profile = MakeGeneratorProfile("viewlog", o, 1);
  EXPECT_TRUE(profile.ok()) << profile.status().ToString();
  EXPECT_TRUE(o.RejectUnconsumed("source").ok());
  return profile.ok() ? *profile : nullptr;
}

std::string MakeOne(const GeneratorProfile& p, uint64_t seq, std::string* key = nullptr) {
  Rng rng(5 * 0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
  std::string out;
  p.Make(seq, kStart + static_cast<int64_t>(seq) * kSpacing, rng, &out, key);
  return out;
}

/// What a record is, judged the way the viewlog pipeline judges it.
enum class Kind { kNormal, kOutOfOrder, kLate, kInvalid };

struct Judged {
  Judged(Kind k, std::string w) : kind(k), why(std::move(w)) {}
  Kind kind;
  std::string why;  ///< for invalid records
  int64_t start = 0, end = 0;
  std::string start_text;
};

Judged Judge(const std::string& line, int64_t event_time) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(line).get(doc) != simdjson::SUCCESS) return {Kind::kInvalid, "json"};
  auto text = [&](const char* name, std::string* out) {
    std::string_view v;
    if (doc[name].get_string().get(v) != simdjson::SUCCESS) return false;
    *out = std::string(v);
    return true;
  };
  std::string view_id, start_text, end_text;
  if (!text("view_id", &view_id) || view_id.find_first_not_of(' ') == std::string::npos) {
    return {Kind::kInvalid, "view_id"};
  }
  if (!text("start_timestamp", &start_text) || start_text.empty() || start_text == "  ") {
    return {Kind::kInvalid, "start missing"};
  }
  if (!text("end_timestamp", &end_text) || end_text.empty() || end_text == "  ") {
    return {Kind::kInvalid, "end missing"};
  }
  int64_t campaign = 0;
  if (doc["campaign_id"].get_int64().get(campaign) != simdjson::SUCCESS) {
    return {Kind::kInvalid, "campaign type"};
  }
  auto start = ParseIsoTimestamp(start_text);
  auto end = ParseIsoTimestamp(end_text);
  if (!start) return {Kind::kInvalid, "start garbage"};
  if (!end) return {Kind::kInvalid, "end garbage"};
  if (*end < *start) return {Kind::kInvalid, "end before start"};
  if (campaign < 10 || campaign > 140 || campaign % 10 != 0) return {Kind::kInvalid, "campaign"};
  Judged j(Kind::kNormal, "");
  j.start = *start;
  j.end = *end;
  j.start_text = start_text;
  const int64_t back = event_time - *start;  // formats without a fraction truncate up to 1 s
  if (back < 0) {
    j.why = "start after the generator's clock";
    j.kind = Kind::kInvalid;
  } else if (back < kMicrosPerSecond) {
    j.kind = Kind::kNormal;
  } else if (back < 9 * kMicrosPerSecond) {
    j.kind = Kind::kOutOfOrder;
  } else if (back >= 120 * kMicrosPerSecond && back < 361 * kMicrosPerSecond) {
    j.kind = Kind::kLate;
  } else {
    j.why = "start " + std::to_string(back) + " us before the clock";
    j.kind = Kind::kInvalid;
  }
  return j;
}

TEST(ViewlogProfileTest, SharesTimestampsAndDurations) {
  auto profile = Viewlog({{"out_of_order", "0.1"}, {"late", "0.05"}, {"invalid", "0.08"}});
  ASSERT_NE(profile, nullptr);
  constexpr int kN = 20000;
  std::map<Kind, int> kinds;
  std::map<std::string, int> invalid_why;
  std::set<std::string> zones;
  int with_fraction = 0, with_space = 0;
  for (int seq = 0; seq < kN; ++seq) {
    std::string key;
    const std::string line = MakeOne(*profile, seq, &key);
    ASSERT_EQ(line.find('\n'), std::string::npos);
    Judged j = Judge(line, kStart + seq * kSpacing);
    kinds[j.kind]++;
    if (j.kind == Kind::kInvalid) {
      invalid_why[j.why]++;
      continue;
    }
    EXPECT_FALSE(key.empty());
    EXPECT_NE(line.find("\"campaign_id\":" + key), std::string::npos) << line;
    const int64_t duration = j.end - j.start;
    EXPECT_GE(duration, 0) << line;
    EXPECT_LT(duration, 601 * kMicrosPerSecond) << line;
    const std::string& s = j.start_text;
    if (s.size() > 19) {
      std::string tail = s.substr(19);
      if (tail[0] == '.') {
        ++with_fraction;
        tail.erase(0, tail.find_first_not_of("0123456789", 1));
      }
      zones.insert(tail);
    } else {
      zones.insert("");
    }
    if (s[10] == ' ') ++with_space;
  }
  // Only the shapes the generator means to make: every record is one of the four kinds.
  for (const auto& [why, n] : invalid_why) {
    EXPECT_TRUE(why == "json" || why == "view_id" || why == "start missing" ||
                why == "end missing" || why == "campaign type" || why == "start garbage" ||
                why == "end garbage" || why == "end before start" || why == "campaign")
        << why << " x" << n;
  }
  EXPECT_NEAR(kinds[Kind::kInvalid] / double(kN), 0.08, 0.01);
  EXPECT_NEAR(kinds[Kind::kLate] / double(kN), 0.05, 0.01);
  // An out-of-order shift under 1 s reads as normal.
  EXPECT_NEAR(kinds[Kind::kOutOfOrder] / double(kN), 0.1 * 7.5 / 8, 0.015);
  for (const char* why : {"json", "view_id", "start missing", "end missing", "campaign type",
                          "start garbage", "end garbage", "end before start", "campaign"}) {
    EXPECT_GT(invalid_why[why], 20) << why;
  }
  EXPECT_EQ(zones, (std::set<std::string>{"", "Z", "+02:00", "-05:30"}));
  EXPECT_GT(with_fraction, kN / 5);
  EXPECT_GT(with_space, kN / 5);
  EXPECT_LT(with_space, kN * 4 / 5);
}

TEST(ViewlogProfileTest, OffsetsKeepTheInstant) {
  auto profile = Viewlog({{"out_of_order", "0"}, {"late", "0"}, {"invalid", "0"}});
  ASSERT_NE(profile, nullptr);
  int offsets = 0;
  for (int seq = 0; seq < 2000; ++seq) {
    const int64_t clock = kStart + seq * kSpacing;
    const std::string line = MakeOne(*profile, seq);
    Judged j = Judge(line, clock);
    ASSERT_EQ(j.kind, Kind::kNormal) << line << " " << j.why;
    if (j.start_text.find("+02:00") != std::string::npos) {
      ++offsets;
      // The local time written is two hours ahead of UTC.
      EXPECT_EQ(j.start_text.substr(11, 2), FormatTimestamp(clock + 2 * kMicrosPerHour, "%H"))
          << line;
    }
  }
  EXPECT_GT(offsets, 100);
}

TEST(ViewlogProfileTest, DeterministicResumableAndKeyed) {
  SourceConfig cfg;
  cfg.uri = "generator:";
  for (auto [k, v] : std::map<std::string, std::string>{{"profile", "viewlog"},
                                                        {"rate", "0"},
                                                        {"seed", "9"},
                                                        {"count", "3000"},
                                                        {"spacing", "50ms"},
                                                        {"invalid", "0.1"}}) {
    cfg.options.Set(k, {v, {}});
  }
  auto drain = [&](int64_t committed) {
    auto sources = GeneratorSource::Make(cfg, 1);
    EXPECT_TRUE(sources.ok()) << sources.status().ToString();
    SourceContext ctx;
    ctx.committed_position = [committed](int32_t) -> std::optional<int64_t> {
      if (committed == 0) return std::nullopt;
      return committed;
    };
    EXPECT_TRUE((*sources)[0]->Open(ctx).ok());
    std::vector<std::string> out;
    RawBatch batch;
    while (true) {
      batch.Clear();
      auto st = (*sources)[0]->Poll(&batch, 250, std::chrono::milliseconds(10));
      EXPECT_TRUE(st.ok());
      for (size_t i = 0; i < batch.size(); ++i) out.emplace_back(batch.payload(i));
      if (!st.ok() || *st == PollState::kEnd) break;
    }
    return out;
  };
  auto all = drain(0);
  ASSERT_EQ(all.size(), 3000u);
  auto again = drain(0);
  EXPECT_EQ(all, again);
  auto resumed = drain(1234);
  ASSERT_EQ(resumed.size(), 3000u - 1234u);
  for (size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i], all[1234 + i]);
  // A valid record starts at the clock (seq x spacing) or a little before it.
  for (size_t seq : {size_t{0}, size_t{1000}, size_t{2999}}) {
    const int64_t clock = kStart + static_cast<int64_t>(seq) * 50'000;
    Judged j = Judge(all[seq], clock);
    if (j.kind == Kind::kInvalid) continue;
    EXPECT_LE(j.start, clock) << all[seq];
    EXPECT_GT(j.start, clock - 361 * kMicrosPerSecond) << all[seq];
  }
}

TEST(ViewlogProfileTest, CampaignsFromCsvAndBadShares) {
  auto profile =
      Viewlog({{"campaigns", std::string(SLUICE_SOURCE_DIR) + "/examples/data/campaigns1.csv"},
               {"invalid", "0"}});
  ASSERT_NE(profile, nullptr);
  std::set<std::string> keys;
  for (int seq = 0; seq < 1000; ++seq) {
    std::string key;
    MakeOne(*profile, seq, &key);
    keys.insert(key);
  }
  EXPECT_EQ(keys.size(), 14u);

  for (auto [k, v] : std::map<std::string, std::string>{
           {"late", "1.5"}, {"invalid", "-0.1"}, {"out_of_order", "abc"}}) {
    Options o;
    o.Set(k, {v, {"p.toml", 7, 9}});
    auto bad = MakeGeneratorProfile("viewlog", o, 1);
    ASSERT_FALSE(bad.ok()) << k;
    EXPECT_NE(bad.status().message().find("p.toml:7:9:"), std::string::npos)
        << bad.status().message();
  }
  Options o;
  o.Set("invalid", {"0.6", {}});
  o.Set("late", {"0.6", {}});
  EXPECT_FALSE(MakeGeneratorProfile("viewlog", o, 1).ok());
  Options missing;
  missing.Set("campaigns", {"/nonexistent/campaigns.csv", {"p.toml", 3, 1}});
  auto nofile = MakeGeneratorProfile("viewlog", missing, 1);
  ASSERT_FALSE(nofile.ok());
  EXPECT_NE(nofile.status().message().find("p.toml:3:1: viewlog generator"), std::string::npos);
}

}  // namespace
}  // namespace sluice
