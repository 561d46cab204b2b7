#pragma once

#include <string>

#include "core/status.h"

namespace sluice {

/// A parsed kafka://HOST:PORT[,HOST:PORT...]/TOPIC address.
struct KafkaUri {
  std::string brokers;
  std::string topic;
};

/// Parses the part after "kafka:" ("//host:port/topic" or "host:port/topic").
Result<KafkaUri> ParseKafkaUri(const std::string& rest);

}  // namespace sluice
