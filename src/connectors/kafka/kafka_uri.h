#pragma once

#include <map>
#include <string>

#include <librdkafka/rdkafkacpp.h>

#include "core/status.h"

namespace sluice {

/// A parsed kafka://HOST:PORT[,HOST:PORT...]/TOPIC address.
struct KafkaUri {
  std::string brokers;
  std::string topic;
};

/// Parses the part after "kafka:" ("//host:port/topic" or "host:port/topic").
Result<KafkaUri> ParseKafkaUri(const std::string& rest);

/// Sets one librdkafka property or fails with its message.
Status SetKafkaConf(RdKafka::Conf* conf, const std::string& key, const std::string& value);

/// The partition count of every topic on `brokers`, read from the list of all topics: asking
/// for one topic by name would make a broker with auto.create.topics.enable create it, so
/// nothing here ever names a topic. kUnavailable when the brokers do not answer in time.
Result<std::map<std::string, int>> KafkaTopicList(const std::string& brokers, int timeout_ms = 5000);

/// `topic "NAME" does not exist on BROKERS (did you mean "OTHER"?)`, the hint from `existing`
/// (Kafka's internal topics, "__...", left out).
std::string MissingKafkaTopic(const std::string& topic, const std::string& brokers,
                              const std::map<std::string, int>& existing);

/// Returns the number of partitions of `topic`, or 0 when the broker cannot be asked now or
/// the topic does not exist (never creates it).
int KafkaPartitionCount(const std::string& brokers, const std::string& topic);

}  // namespace sluice
