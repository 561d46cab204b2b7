#include "connectors/kafka/kafka_uri.h"

namespace sluice {

Result<KafkaUri> ParseKafkaUri(const std::string& rest_in) {
  std::string rest = rest_in;
  if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
  size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) {
    return Status::InvalidArgument("expected kafka://HOST:PORT/TOPIC, got kafka://" + rest);
  }
  KafkaUri uri;
  uri.brokers = rest.substr(0, slash);
  uri.topic = rest.substr(slash + 1);
  if (uri.topic.find('/') != std::string::npos) {
    return Status::InvalidArgument("a Kafka topic name cannot contain '/': " + uri.topic);
  }
  return uri;
}

}  // namespace sluice
