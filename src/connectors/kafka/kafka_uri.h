#pragma once

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

/// Returns the number of partitions of `topic`, or 0 when the broker cannot be asked now.
int KafkaPartitionCount(const std::string& brokers, const std::string& topic);

}  // namespace sluice
