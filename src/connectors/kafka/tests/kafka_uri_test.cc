#include <gtest/gtest.h>

#include "connectors/kafka/kafka_uri.h"

namespace sluice {
namespace {

TEST(MissingKafkaTopic, NamesTheTopicTheBrokersAndTheClosestExistingTopic) {
  const std::map<std::string, int> existing = {{"tracking", 4}, {"jobs", 1}, {"__consumer_offsets", 50}};
  EXPECT_EQ(MissingKafkaTopic("trackng", "127.0.0.1:9092", existing),
            "topic \"trackng\" does not exist on 127.0.0.1:9092 (did you mean \"tracking\"?)");
  // Nothing close: no hint.
  EXPECT_EQ(MissingKafkaTopic("typo_topic_qq77", "b:9092", existing), "topic \"typo_topic_qq77\" does not exist on b:9092");
  // Kafka's internal topics are never suggested.
  EXPECT_EQ(MissingKafkaTopic("__consumer_offset", "b:9092", existing),
            "topic \"__consumer_offset\" does not exist on b:9092");
  EXPECT_EQ(MissingKafkaTopic("x", "b:9092", {}), "topic \"x\" does not exist on b:9092");
}

}  // namespace
}  // namespace sluice
