// Partition ids of a Kafka source that reads several topics (kafka_ids.h): the packing, the slots
// derived from topic names, collisions and pins. Expected slots are computed independently (FNV-1a
// 64 of the name, by hand in Python: 1 + h mod 131071).

#include "connectors/kafka/kafka_ids.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(KafkaIds, PackingKeepsSlotAndPartitionApart) {
  EXPECT_EQ(KafkaPartitionId(0, 7), 7);  // a one-topic source: ids are the partition numbers
  EXPECT_EQ(KafkaPartitionId(1, 3), 4099);
  const int32_t top = KafkaPartitionId(kTopicSlots - 1, kMaxKafkaPartitions - 1);
  EXPECT_EQ(top, (1 << 29) - 1);
  EXPECT_LT(top, kIdentityPartitionBase);
  // The generation of the highest id still fits an int32.
  EXPECT_GT(kGenerationPartitionBase + top, 0);
  EXPECT_EQ(SlotOfId(top), kTopicSlots - 1);
  EXPECT_EQ(KafkaPartitionOfId(top), kMaxKafkaPartitions - 1);
  EXPECT_EQ(SlotOfId(4099), 1);
  EXPECT_EQ(KafkaPartitionOfId(4099), 3);
  // The slots' topic records sit among the identity partitions, below the generations.
  EXPECT_GE(kTopicSlotBase, kIdentityPartitionBase);
  EXPECT_LT(kTopicSlotBase + kTopicSlots, kGenerationPartitionBase);
}

TEST(KafkaIds, DefaultSlotIsTheNameHash) {
  EXPECT_EQ(DefaultTopicSlot("view_log"), 15894);
  EXPECT_EQ(DefaultTopicSlot("topics_b"), 120629);
}

TEST(KafkaIds, FirstTopicOfAListKeepsSlotZero) {
  auto slots = TopicSlots::Make({"view_log", "topics_b"}, "", {});
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  EXPECT_EQ(slots->Find("view_log"), 0);
  EXPECT_EQ(slots->Find("topics_b"), 120629);
  EXPECT_EQ(slots->Label(KafkaPartitionId(0, 2)), "view_log[2]");
  EXPECT_EQ(slots->Label(KafkaPartitionId(120629, 5)), "topics_b[5]");
  // One topic alone: slot 0 too, so positions stored by a one-topic source stay valid.
  auto one = TopicSlots::Make({"topics_b"}, "", {});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->Find("topics_b"), 0);
}

TEST(KafkaIds, PatternUsesSlotZeroOnlyForTheLegacyTopic) {
  auto slots = TopicSlots::Make({}, "", {});
  ASSERT_TRUE(slots.ok());
  auto a = slots->SlotFor("view_log");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 15894);
  EXPECT_TRUE(slots->TopicOf(0).empty());
  auto legacy = TopicSlots::Make({}, "view_log", {});
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(*legacy->SlotFor("view_log"), 0);
  EXPECT_EQ(*legacy->SlotFor("topics_b"), 120629);
}

TEST(KafkaIds, CollisionsAreReportedAndPinsResolveThem) {
  // "c109" and "c500" hash to slot 13206.
  ASSERT_EQ(DefaultTopicSlot("c109"), 13206);
  ASSERT_EQ(DefaultTopicSlot("c500"), 13206);
  auto clash = TopicSlots::Make({"first", "c109", "c500"}, "", {});
  ASSERT_FALSE(clash.ok());
  const std::string msg = clash.status().message();
  EXPECT_NE(msg.find("c109"), std::string::npos) << msg;
  EXPECT_NE(msg.find("c500"), std::string::npos) << msg;
  EXPECT_NE(msg.find("topic_slots"), std::string::npos) << msg;
  // A pattern that finds the second one later: refused too, never given the first one's slot.
  auto pattern = TopicSlots::Make({}, "", {});
  ASSERT_TRUE(pattern->SlotFor("c109").ok());
  EXPECT_FALSE(pattern->SlotFor("c500").ok());
  EXPECT_EQ(pattern->TopicOf(13206), "c109");
  // Pinned, both have a slot.
  auto pinned = TopicSlots::Make({"first", "c109", "c500"}, "", {{"c500", 17}});
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_EQ(pinned->Find("c500"), 17);
  EXPECT_EQ(pinned->Find("c109"), 13206);
  // A pin onto another topic's slot is a collision as well.
  EXPECT_FALSE(TopicSlots::Make({"first", "c109", "c500"}, "", {{"c500", 13206}}).ok());
  // The first topic of a list cannot be pinned away from slot 0.
  EXPECT_FALSE(TopicSlots::Make({"c109", "c500"}, "", {{"c109", 5}}).ok());
  EXPECT_FALSE(TopicSlots::Make({"a", "a"}, "", {}).ok());
}

TEST(KafkaIds, ParsesPins) {
  auto pins = ParseTopicSlotPins({"view_log=17", "b.c-d_e=131071"});
  ASSERT_TRUE(pins.ok()) << pins.status().ToString();
  EXPECT_EQ(pins->at("view_log"), 17);
  EXPECT_EQ(pins->at("b.c-d_e"), 131071);
  EXPECT_FALSE(ParseTopicSlotPins({"view_log"}).ok());
  EXPECT_FALSE(ParseTopicSlotPins({"view_log=0"}).ok());
  EXPECT_FALSE(ParseTopicSlotPins({"view_log=131072"}).ok());
  EXPECT_FALSE(ParseTopicSlotPins({"view_log=1x"}).ok());
  EXPECT_FALSE(ParseTopicSlotPins({"=3"}).ok());
}

TEST(KafkaIds, DescribesIdsWithoutTheTopics) {
  EXPECT_EQ(DescribeKafkaPartition(3, {}), "[3]");
  EXPECT_EQ(DescribeKafkaPartition(KafkaPartitionId(9, 1), {}), "slot 9[1]");
  EXPECT_EQ(DescribeKafkaPartition(KafkaPartitionId(9, 1), {{9, "t"}}), "t[1]");
  EXPECT_EQ(DescribeKafkaPartition(kGenerationPartitionBase + 1, {}), std::to_string(kGenerationPartitionBase + 1));
}

}  // namespace
}  // namespace sluice
