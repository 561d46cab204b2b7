#include "runtime/sink_inventory.h"

#include <gtest/gtest.h>

#include "core/dead_letter.h"

namespace sluice {
namespace {

DeadLetter Letter(const std::string& reason, int64_t offset, const std::string& payload) {
  DeadLetter d;
  d.reason = reason;
  d.payload = payload;
  d.source = "tracking";
  d.partition = 0;
  d.offset = offset;
  d.time_micros = 1'767'225'600'000'000 + offset;
  return d;
}

TEST(SinkInventoryTest, TalliesTheRecordFormatByReasonKeepingTheNewestSamples) {
  std::string ndjson;
  for (int i = 0; i < 5; ++i) {
    AppendDeadLetterJson("p", Letter("bad bid", i, "line " + std::to_string(i)), &ndjson);
    ndjson += "\n";
  }
  AppendDeadLetterJson("p", Letter("late", 9, "{\"a\": [1, 2]}"), &ndjson);
  ndjson += "\n\n";
  AppendDeadLetterJson("other", Letter("bad bid", 10, "x"), &ndjson);
  ndjson += "\n";

  DeadLetterTally tally;
  ASSERT_TRUE(TallyDeadLetterLines(ndjson, "p", 2, &tally).ok());
  EXPECT_EQ(tally.by_reason, (std::map<std::string, int64_t>{{"bad bid", 5}, {"late", 1}}));
  EXPECT_EQ(tally.total(), 6);
  // The last two read of "bad bid", in the order read.
  ASSERT_EQ(tally.samples["bad bid"].size(), 2u);
  EXPECT_EQ(tally.samples["bad bid"][0].offset, 3);
  EXPECT_EQ(tally.samples["bad bid"][1].offset, 4);
  EXPECT_EQ(tally.samples["bad bid"][1].payload, "\"line 4\"");
  EXPECT_EQ(tally.samples["bad bid"][1].payload_bytes, 6);
  // A JSON payload is stored as the value, minified.
  EXPECT_EQ(tally.samples["late"][0].payload, "{\"a\":[1,2]}");

  DeadLetterTally all;
  ASSERT_TRUE(TallyDeadLetterLines(ndjson, "", 0, &all).ok());
  EXPECT_EQ(all.by_reason["bad bid"], 6);
  EXPECT_TRUE(all.samples.empty());
}

TEST(SinkInventoryTest, ALineThatIsNoRecordIsAnErrorNamingItsOffset) {
  DeadLetterTally tally;
  Status s = TallyDeadLetterLines("{\"pipeline\": \"p\"}\n", "", 1, &tally);
  EXPECT_EQ(s.code(), StatusCode::kParseError);
  EXPECT_NE(s.message().find("byte 0"), std::string::npos) << s.message();
  s = TallyDeadLetterLines("\nnot json\n", "", 1, &tally);
  EXPECT_NE(s.message().find("byte 1"), std::string::npos) << s.message();
}

TEST(SinkInventoryTest, RankedAndPruned) {
  DeadLetterTally t;
  t.by_reason = {{"a", 1}, {"b", 5}, {"c", 5}, {"d", 2}};
  for (const auto& [r, n] : t.by_reason) t.samples[r].push_back(StoredDeadLetter{});
  const auto ranked = t.Ranked();
  ASSERT_EQ(ranked.size(), 4u);
  EXPECT_EQ(ranked[0].first, "b");
  EXPECT_EQ(ranked[1].first, "c");
  EXPECT_EQ(ranked[2].first, "d");
  t.PruneSamples(2);
  EXPECT_EQ(t.samples.size(), 2u);
  EXPECT_TRUE(t.samples.count("b") && t.samples.count("c"));
}

}  // namespace
}  // namespace sluice
