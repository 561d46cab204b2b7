// What a purge of the repartition topic may delete (purge_targets.h): stage two's committed
// positions of its partitions, never an identity entry's value taken for a position. Expected
// targets worked out by hand from the entries.

#include "connectors/kafka/purge_targets.h"

#include <gtest/gtest.h>

#include "connectors/kafka/kafka_ids.h"
#include "runtime/source.h"

namespace sluice {
namespace {

using Targets = std::map<int32_t, int64_t>;

TEST(RepartitionPurgeTargetsTest, EachPartitionsCommittedPositionAheadOfThePurgeIsATarget) {
  const std::vector<std::pair<int32_t, int64_t>> committed = {{0, 120}, {1, 40}, {2, 75}, {3, 9}};
  // Nothing purged yet: every position.
  EXPECT_EQ(RepartitionPurgeTargets(committed, {}), (Targets{{0, 120}, {1, 40}, {2, 75}, {3, 9}}));
  // Partition 0 purged up to its position, 1 beyond it (another process's stage two committed
  // further and this one purged there before the partition moved), 2 behind it, 3 not yet.
  EXPECT_EQ(RepartitionPurgeTargets(committed, {{0, 120}, {1, 50}, {2, 60}}), (Targets{{2, 75}, {3, 9}}));
}

TEST(RepartitionPurgeTargetsTest, NoPositionOrAPositionAtTheStartDeletesNothing) {
  EXPECT_TRUE(RepartitionPurgeTargets({}, {}).empty());
  EXPECT_EQ(RepartitionPurgeTargets({{0, 0}, {1, -1}, {2, 3}}, {}), (Targets{{2, 3}}));
}

// The topic was deleted and created again: stage two's source stored the new topic's
// generation for partitions 1 and 3 (kGenerationPartitionBase + p, value 1) and has read
// nothing of partition 3 yet (no position). Masked to its partition, the generation would ask
// to delete partition 3's first record, which nobody has read, and would lower partition 1's
// target below its position. A slot's topic fingerprint (kTopicSlotBase + slot, a large value)
// would delete all of partition 0.
TEST(RepartitionPurgeTargetsTest, IdentityEntriesAreNoPositions) {
  const std::vector<std::pair<int32_t, int64_t>> committed = {
      {0, 7},
      {1, 30},
      {kTopicSlotBase + 0, 0x1234'5678'9abcLL},
      {kGenerationPartitionBase + 1, 1},
      {kGenerationPartitionBase + 3, 1},
      {kIdentityPartitionBase + 2, 99},
  };
  EXPECT_EQ(RepartitionPurgeTargets(committed, {}), (Targets{{0, 7}, {1, 30}}));
  // Only identity entries: nothing to delete.
  EXPECT_TRUE(RepartitionPurgeTargets({{kGenerationPartitionBase + 3, 1}}, {}).empty());
}

// The repartition topic is stage two's only topic, in slot 0: an id of another slot is no
// position of it (masked, slot 1's partition 2 would be taken for partition 2).
TEST(RepartitionPurgeTargetsTest, IdsOfAnotherTopicSlotAreIgnored) {
  EXPECT_EQ(RepartitionPurgeTargets({{2, 5}, {KafkaPartitionId(1, 2), 500}}, {}), (Targets{{2, 5}}));
}

}  // namespace
}  // namespace sluice
