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

}  // namespace
}  // namespace sluice
