#include "http/status.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <climits>

#include "core/json_builder.h"

namespace sluice::http {
namespace {

constexpr int64_t kSecond = 1'000'000;

PipelineSnapshot Running(int64_t now) {
  PipelineSnapshot s;
  s.pipeline = "p";
  s.state = "running";
  s.workers = 1;
  s.started_micros = now - 60 * kSecond;
  s.last_checkpoint_micros = now - kSecond;
  s.records_in = 100;
  return s;
}

TEST(ReadinessTest, RunningWithARecentCheckpointIsReady) {
  const int64_t now = 1000 * kSecond;
  Readiness r = CheckReadiness(Running(now), now, kSecond, 100);
  EXPECT_TRUE(r.ready);
  EXPECT_TRUE(r.reasons.empty());
}

TEST(ReadinessTest, NotReadyUnlessRunning) {
  const int64_t now = 1000 * kSecond;
  for (const char* state : {"", "starting", "draining", "finished", "failed"}) {
    PipelineSnapshot s = Running(now);
    s.state = state;
    EXPECT_FALSE(CheckReadiness(s, now, kSecond, 100).ready) << state;
  }
  PipelineSnapshot s = Running(now);
  s.workers = 0;
  EXPECT_FALSE(CheckReadiness(s, now, kSecond, 100).ready);
}

TEST(ReadinessTest, SinkDownIsNotReady) {
  const int64_t now = 1000 * kSecond;
  PipelineSnapshot s = Running(now);
  s.sink_healthy = false;
  Readiness r = CheckReadiness(s, now, kSecond, 100);
  EXPECT_FALSE(r.ready);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_NE(r.reasons[0].find("sink"), std::string::npos);
}

TEST(ReadinessTest, StaleCheckpointOnlyMattersWhileRecordsArrive) {
  const int64_t now = 1000 * kSecond;
  PipelineSnapshot s = Running(now);
  s.last_checkpoint_micros = now - 30 * kSecond;  // older than max(3 intervals, 10 s)
  // Idle since that checkpoint: nothing to commit, still ready.
  EXPECT_TRUE(CheckReadiness(s, now, kSecond, 100).ready);
  // Records arrived after it and none was committed: not ready.
  s.records_in = 150;
  Readiness r = CheckReadiness(s, now, kSecond, 100);
  EXPECT_FALSE(r.ready);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_NE(r.reasons[0].find("no checkpoint for 30 s"), std::string::npos) << r.reasons[0];
  // A long checkpoint interval widens the window.
  EXPECT_TRUE(CheckReadiness(s, now, 20 * kSecond, 100).ready);
}

TEST(StatusHistoryTest, RemembersRecordsAtTheLastCheckpointAndIsBounded) {
  StatusHistory h(3);
  EXPECT_EQ(h.records_at_last_checkpoint(), -1);
  PipelineSnapshot s;
  s.records_in = 10;
  h.Add(s, 1);
  EXPECT_EQ(h.records_at_last_checkpoint(), 10);
  s.records_in = 20;
  h.Add(s, 2);
  EXPECT_EQ(h.records_at_last_checkpoint(), 10);
  s.records_in = 30;
  s.checkpoints = 1;
  h.Add(s, 3);
  EXPECT_EQ(h.records_at_last_checkpoint(), 30);
  h.Add(s, 4);
  auto samples = h.Samples();
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples.front().t_micros, 2);
}

TEST(StatusJsonTest, RendersSnapshotRatesAndHistory) {
  const int64_t now = 1000 * kSecond;
  PipelineSnapshot s = Running(now);
  s.partitions = {{0, 10, 5}, {1, 20, -1}};
  s.ignored_by_reason = {{"noise \"x\"", 3}};
  s.watermark_micros = now - 2 * kSecond;
  s.checkpoints = 2;
  s.checkpoint_duration_total_micros = 500'000;
  StatusHistory h;
  PipelineSnapshot a = s;
  a.records_in = 0;
  h.Add(a, now - 2 * kSecond);
  a.records_in = 100;
  h.Add(a, now);
  StatusInfo info{"p", "src", "events", "0.1.0", kSecond};
  const std::string text = RenderStatusJson(s, info, h.Samples(), Readiness{true, {}}, now);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(text);
  EXPECT_EQ(std::string_view(doc["state"]), "running");
  EXPECT_TRUE(bool(doc["ready"]));
  EXPECT_EQ(int64_t(doc["counts"]["records_in"]), 100);
  EXPECT_EQ(double(doc["rates"]["records_in_per_second"]), 50.0);
  EXPECT_EQ(int64_t(doc["total_lag"]), 5);
  simdjson::dom::array parts = doc["partitions"];
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(parts.at(1)["lag"].is_null());
  // Nothing committed by this process yet, no watermark: null.
  EXPECT_TRUE(parts.at(1)["committed"].is_null());
  EXPECT_TRUE(parts.at(1)["watermark_micros"].is_null());
  EXPECT_EQ(double(doc["watermark"]["delay_seconds"]), 2.0);
  EXPECT_EQ(double(doc["checkpoints"]["mean_duration_seconds"]), 0.25);
  EXPECT_EQ(std::string_view(doc["ignored_by_reason"].at(0)["reason"]), "noise \"x\"");
  simdjson::dom::array t = doc["history"]["t"];
  EXPECT_EQ(t.size(), 2u);
  simdjson::dom::array delay = doc["history"]["watermark_delay_seconds"];
  EXPECT_EQ(double(delay.at(1)), 2.0);
}

/// Each partition shows what this process committed for it last and its own watermark then.
TEST(StatusJsonTest, PartitionsShowTheirCommittedPositionAndWatermark) {
  const int64_t now = 1000 * kSecond;
  PipelineSnapshot s = Running(now);
  s.partitions = {{0, 10, 5}, {3, 40, 0}};
  s.partitions[0].committed = 8;
  s.partitions[0].watermark_micros = now - 30 * kSecond;
  StatusHistory h;
  StatusInfo info{"p", "src", "events", "0.1.0", kSecond};
  const std::string text = RenderStatusJson(s, info, h.Samples(), Readiness{true, {}}, now);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(text);
  simdjson::dom::array parts = doc["partitions"];
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(int64_t(parts.at(0)["position"]), 10);
  EXPECT_EQ(int64_t(parts.at(0)["committed"]), 8);
  EXPECT_EQ(int64_t(parts.at(0)["watermark_micros"]), now - 30 * kSecond);
  EXPECT_EQ(int64_t(parts.at(1)["partition"]), 3);
  EXPECT_TRUE(parts.at(1)["committed"].is_null());
  EXPECT_TRUE(parts.at(1)["watermark_micros"].is_null());
}

/// A source reading several topics: each partition shows its topic and the topic's partition.
TEST(StatusJsonTest, PartitionsOfSeveralTopicsCarryTheTopic) {
  const int64_t now = 1000 * kSecond;
  PipelineSnapshot s = Running(now);
  s.partitions = {{(7 << 12) | 2, 10, 5}};
  s.partitions[0].input = "view_log_eu";
  s.partitions[0].input_partition = 2;
  StatusHistory h;
  StatusInfo info{"p", "src", "events", "0.1.0", kSecond};
  const std::string text = RenderStatusJson(s, info, h.Samples(), Readiness{true, {}}, now);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(text);
  simdjson::dom::array parts = doc["partitions"];
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(std::string_view(parts.at(0)["topic"]), "view_log_eu");
  EXPECT_EQ(int64_t(parts.at(0)["partition"]), 2);
}

TEST(JsonBuilderTest, NestsAndSeparates) {
  JsonBuilder j;
  j.BeginObject().Key("a").BeginArray().Int(1).Double(0.5).Null().EndArray();
  j.Key("b").BeginObject().Key("c").Bool(false).EndObject();
  j.Key("d").Double(1.0 / 0.0).Key("e").ValueOf(Value::String("q\"")).EndObject();
  EXPECT_EQ(j.str(), R"({"a":[1,0.5,null],"b":{"c":false},"d":null,"e":"q\""})");
}

}  // namespace
}  // namespace sluice::http
