#include "connectors/kafka/kafka_uri.h"

#include <memory>

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

/// Sets one librdkafka property or fails with its message.
Status SetKafkaConf(RdKafka::Conf* conf, const std::string& key, const std::string& value) {
  std::string err;
  if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("kafka setting " + key + "=" + value + ": " + err);
  }
  return Status::OK();
}

/// Returns the number of partitions of `topic`, or 0 when the broker cannot be asked now.
int KafkaPartitionCount(const std::string& brokers, const std::string& topic) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("log_level", "3", err);
  std::unique_ptr<RdKafka::Producer> probe(RdKafka::Producer::create(conf.get(), err));
  if (!probe) return 0;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(probe.get(), topic, nullptr, err));
  if (!t) return 0;
  RdKafka::Metadata* md = nullptr;
  if (probe->metadata(false, t.get(), &md, 5000) != RdKafka::ERR_NO_ERROR || !md) return 0;
  int n = 0;
  for (const auto* tm : *md->topics()) {
    if (tm->topic() == topic && tm->err() == RdKafka::ERR_NO_ERROR) {
      n = static_cast<int>(tm->partitions()->size());
    }
  }
  delete md;
  return n;
}

}  // namespace sluice
