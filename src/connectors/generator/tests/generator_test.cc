#include "connectors/generator/generator_source.h"

#include <gtest/gtest.h>

#include <map>

#include "core/time.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

SourceConfig RecruitmentConfig(const std::string& count, const std::string& partitions = "1") {
  SourceConfig cfg;
  cfg.uri = "generator:";
  cfg.options.Set("profile", {"recruitment", {}});
  cfg.options.Set("rate", {"0", {}});
  cfg.options.Set("seed", {"3", {}});
  cfg.options.Set("count", {count, {}});
  cfg.options.Set("partitions", {partitions, {}});
  cfg.options.Set("jobs", {std::string(SLUICE_SOURCE_DIR) + "/examples/data/job.csv", {}});
  return cfg;
}

std::vector<std::string> Drain(Source& src, std::map<int32_t, int64_t> committed = {}) {
  SourceContext ctx;
  ctx.committed_position = [committed](int32_t p) -> std::optional<int64_t> {
    auto it = committed.find(p);
    if (it == committed.end()) return std::nullopt;
    return it->second;
  };
  EXPECT_TRUE(src.Open(ctx).ok());
  std::vector<std::string> out;
  RawBatch batch;
  while (true) {
    batch.Clear();
    auto st = src.Poll(&batch, 333, std::chrono::milliseconds(10));
    EXPECT_TRUE(st.ok());
    for (size_t i = 0; i < batch.size(); ++i) out.emplace_back(batch.payload(i));
    if (*st == PollState::kEnd) break;
  }
  return out;
}

TEST(GeneratorTest, DeterministicAndResumable) {
  auto a = GeneratorSource::Make(RecruitmentConfig("1000"), 1);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto all = Drain(*(*a)[0]);
  ASSERT_EQ(all.size(), 1000u);
  auto b = GeneratorSource::Make(RecruitmentConfig("1000"), 1);
  auto resumed = Drain(*(*b)[0], {{0, 400}});
  ASSERT_EQ(resumed.size(), 600u);
  for (size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i], all[400 + i]);
}

TEST(GeneratorTest, PartitionsSplitTheCountAcrossInstances) {
  auto sources = GeneratorSource::Make(RecruitmentConfig("1001", "4"), 3);
  ASSERT_TRUE(sources.ok());
  ASSERT_EQ(sources->size(), 3u);
  size_t total = 0;
  for (auto& s : *sources) total += Drain(*s).size();
  EXPECT_EQ(total, 1001u);
}

TEST(GeneratorTest, DistributionLooksLikeTheTrackingLog) {
  auto sources = GeneratorSource::Make(RecruitmentConfig("20000"), 1);
  ASSERT_TRUE(sources.ok());
  std::map<std::string, int> tracks;
  int v1 = 0;
  for (const auto& p : Drain(*(*sources)[0])) {
    size_t at = p.find("\"custom_track\":\"") + 16;
    tracks[p.substr(at, p.find('"', at) - at)]++;
    size_t ct = p.find("\"create_time\":\"") + 15;
    if (ParseTimeUuid(p.substr(ct, 36))) ++v1;
  }
  const int counted = tracks["click"] + tracks["conversion"] + tracks["qualified"] + tracks["unqualified"];
  EXPECT_NEAR(static_cast<double>(tracks["click"]) / counted, 0.70, 0.02);
  EXPECT_NEAR(static_cast<double>(tracks["conversion"]) / counted, 0.10, 0.02);
  EXPECT_GT(tracks["alive"] + tracks[""] + tracks["Click"] + tracks["interview_scheduled"], 1000);
  EXPECT_GT(v1, 19800);  // nearly all carry a v1 TimeUUID, a few only a ts
  EXPECT_LT(v1, 20000);
}

TEST(GeneratorTest, RejectsUnknownProfileAndUnboundedCatchUp) {
  auto cfg = RecruitmentConfig("");
  cfg.options.Set("profile", {"nope", {"p.toml", 3, 11}});
  auto bad = GeneratorSource::Make(cfg, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.toml:3:11: unknown generator profile 'nope'"), std::string::npos);
  auto unbounded = GeneratorSource::Make(RecruitmentConfig(""), 1);
  ASSERT_TRUE(unbounded.ok());
  SourceContext ctx;
  ctx.committed_position = [](int32_t) { return std::nullopt; };
  ctx.until_caught_up = true;
  EXPECT_FALSE((*unbounded)[0]->Open(ctx).ok());
}

}  // namespace
}  // namespace sluice
