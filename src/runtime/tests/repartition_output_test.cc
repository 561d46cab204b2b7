// What one stage-one task produces at a checkpoint (issue 16, docs/notes-16/repartition.md
// "Watermarks"): its partials, then its control to every repartition partition. The partitions
// of the keys are the pinned ones of repartition_record_test (an independent Python computation:
// "a" -> 0, "q" -> 3, "1" -> 3 of 6).
#include <gtest/gtest.h>

#include <map>

#include "runtime/repartition_output.h"

namespace sluice {
namespace {

constexpr int64_t kSec = 1'000'000;

AggregateSpec CountSpec() {
  AggregateSpec spec;
  spec.window_micros = 60 * kSec;
  spec.append_mode = true;
  KeySpec k;
  k.name = "user";
  k.type = Type::kString;
  spec.keys.push_back(std::move(k));
  MetricSpec m;
  m.name = "n";
  m.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(m));
  return spec;
}

DeltaRow Row(int64_t window_start, const std::string& user, int64_t count) {
  DeltaRow row;
  row.window_start = window_start;
  row.keys = {Value::String(user)};
  row.metrics.resize(1);
  row.metrics[0].count = count;
  return row;
}

const RepartitionControl kControl{UpstreamId{0, 4}, 170 * kSec, 180 * kSec, false, false};

TEST(RepartitionOutputTest, PartialsInTheirKeysPartitionsThenAControlToEveryPartition) {
  const AggregateSpec spec = CountSpec();
  const std::vector<DeltaRow> drained = {Row(60 * kSec, "a", 2), Row(60 * kSec, "q", 1),
                                         Row(120 * kSec, "1", 5), Row(120 * kSec, "a", 3)};
  auto out = BuildStageOneCheckpoint(drained, kControl, 6, spec);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 4u + 6u);

  const std::vector<int32_t> partitions = {0, 3, 3, 0, 0, 1, 2, 3, 4, 5};
  for (size_t i = 0; i < out->size(); ++i) {
    const RepartitionMessage& m = (*out)[i];
    EXPECT_EQ(m.partition, partitions[i]) << "message " << i;
    auto decoded = DecodeRepartitionValue(m.value, spec);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    if (i < drained.size()) {
      ASSERT_EQ(decoded->kind, RepartitionRecord::Kind::kPartial) << "message " << i;
      EXPECT_EQ(m.key, EncodeRepartitionKey(drained[i].keys));
      EXPECT_EQ(decoded->partial.window_start, drained[i].window_start);
      EXPECT_EQ(decoded->partial.keys, drained[i].keys);
      EXPECT_EQ(decoded->partial.metrics[0].count, drained[i].metrics[0].count);
    } else {
      ASSERT_EQ(decoded->kind, RepartitionRecord::Kind::kControl) << "message " << i;
      EXPECT_EQ(m.key, "");
      EXPECT_EQ(decoded->control, kControl);
    }
  }
  // Read as stage two's task r reads its partition: the partials of r, then one control.
  std::map<int32_t, std::string> kinds;
  for (const auto& m : *out) {
    kinds[m.partition] += static_cast<char>(DecodeRepartitionValue(m.value, spec)->kind);
  }
  EXPECT_EQ(kinds, (std::map<int32_t, std::string>{
                       {0, "PPC"}, {1, "C"}, {2, "C"}, {3, "PPC"}, {4, "C"}, {5, "C"}}));
}

TEST(RepartitionOutputTest, NothingDrainedStillSendsTheControlEverywhere) {
  const AggregateSpec spec = CountSpec();
  const RepartitionControl idle{UpstreamId{2, 0}, kNoWatermark, kNoWatermark, true, false};
  auto out = BuildStageOneCheckpoint({}, idle, 3, spec);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 3u);
  for (int32_t r = 0; r < 3; ++r) {
    EXPECT_EQ((*out)[static_cast<size_t>(r)].partition, r);
    EXPECT_EQ(DecodeRepartitionValue((*out)[static_cast<size_t>(r)].value, spec)->control, idle);
  }
}

TEST(RepartitionOutputTest, OnePartitionTakesEverythingAndFewerAreRefused) {
  const AggregateSpec spec = CountSpec();
  auto one = BuildStageOneCheckpoint({Row(0, "q", 1), Row(0, "1", 1)}, kControl, 1, spec);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->size(), 3u);
  for (const auto& m : *one) EXPECT_EQ(m.partition, 0);
  for (int32_t bad : {0, -1}) {
    auto refused = BuildStageOneCheckpoint({Row(0, "q", 1)}, kControl, bad, spec);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  }
}

// A whole stage-one transaction: the dead letters first ('D', empty key, in their source
// partition mod R: 7 mod 3 = 1, 3 mod 3 = 0), then each task's BuildStageOneCheckpoint (partials,
// control to every partition) in the order given.
TEST(RepartitionOutputTest, AStageOneTransactionHasTheDeadLettersThenEachTasksPartialsAndControl) {
  const AggregateSpec spec = CountSpec();
  DeadLetter late{"late", "{\"user\":\"a\"}", "in", 7, 12, 1000, 0, 0};
  DeadLetter bad{"decode: x", "x", "in", 3, 5, 2000, 1, 2};
  StageOneOutput t4{kControl, {Row(60 * kSec, "a", 2)}};
  RepartitionControl c5 = kControl;
  c5.upstream = UpstreamId{0, 5};
  c5.idle = true;
  StageOneOutput t5{c5, {}};
  auto out = BuildStageOneMessages({t4, t5}, {late, bad}, 3, spec);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 2u + (1u + 3u) + 3u);
  for (size_t i = 0; i < 2; ++i) {
    const DeadLetter& want = i == 0 ? late : bad;
    EXPECT_EQ((*out)[i].partition, i == 0 ? 1 : 0);
    EXPECT_TRUE((*out)[i].key.empty());
    auto d = DecodeRepartitionValue((*out)[i].value, spec);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_EQ(d->kind, RepartitionRecord::Kind::kDeadLetter);
    EXPECT_EQ(d->dead_letter.reason, want.reason);
    EXPECT_EQ(d->dead_letter.payload, want.payload);
    EXPECT_EQ(d->dead_letter.partition, want.partition);
    EXPECT_EQ(d->dead_letter.offset, want.offset);
    EXPECT_EQ(d->dead_letter.seq, want.seq);
    EXPECT_EQ(d->dead_letter.generation, want.generation);
  }
  auto one = BuildStageOneCheckpoint(t4.partials, t4.control, 3, spec);
  auto two = BuildStageOneCheckpoint({}, c5, 3, spec);
  ASSERT_TRUE(one.ok() && two.ok());
  std::vector<RepartitionMessage> rest(out->begin() + 2, out->end());
  std::vector<RepartitionMessage> want = *one;
  want.insert(want.end(), two->begin(), two->end());
  EXPECT_EQ(rest, want);
  auto last = DecodeRepartitionValue(out->back().value, spec);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->control, c5);
  EXPECT_FALSE(BuildStageOneMessages({t4}, {}, 0, spec).ok());
}

// Each committed task gets its own partials, sorted; partials of a partition whose task is not
// in the checkpoint are refused rather than left out (review finding "partials of a task not
// committed": the commit would carry that partition's position past their records).
TEST(RepartitionOutputTest, PartialsOfATaskTheCheckpointDoesNotCommitAreRefused) {
  std::map<int32_t, std::vector<DeltaRow>> partials;
  partials[4] = {Row(120 * kSec, "a", 3), Row(60 * kSec, "q", 1)};
  partials[7] = {};  // nothing drained: no task needed
  std::vector<StageOneOutput> outputs(2);
  outputs[0].control = kControl;
  ASSERT_TRUE(AssignStageOnePartials({4, 5}, partials, &outputs).ok());
  ASSERT_EQ(outputs[0].partials.size(), 2u);
  EXPECT_EQ(outputs[0].partials[0].window_start, 60 * kSec);
  EXPECT_EQ(outputs[0].partials[1].window_start, 120 * kSec);
  EXPECT_EQ(outputs[0].control, kControl);
  EXPECT_TRUE(outputs[1].partials.empty());
  EXPECT_EQ(partials[4].size(), 2u);  // copied: a retried commit assigns them again

  partials[9] = {Row(60 * kSec, "a", 1)};
  std::vector<StageOneOutput> again(2);
  const Status s = AssignStageOnePartials({4, 5}, partials, &again);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("partition(s) 9 "), std::string::npos) << s.ToString();
  std::vector<StageOneOutput> one(1);
  EXPECT_EQ(AssignStageOnePartials({4, 5}, {}, &one).code(), StatusCode::kInternal);  // one per task
}

}  // namespace
}  // namespace sluice
