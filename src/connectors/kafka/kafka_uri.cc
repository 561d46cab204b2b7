#include "connectors/kafka/kafka_uri.h"

#include <memory>
#include <vector>

#include "config/pipeline_config.h"
#include "connectors/kafka/kafka_admin.h"

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

Result<std::map<std::string, int>> KafkaTopicList(const std::string& brokers, int timeout_ms) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", brokers));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "3"));
  std::string err;
  std::unique_ptr<RdKafka::Producer> probe(RdKafka::Producer::create(conf.get(), err));
  if (!probe) return Status::InvalidArgument("kafka client for " + brokers + ": " + err);
  return KafkaPartitionCounts(probe->c_ptr(), brokers, timeout_ms);
}

std::string MissingKafkaTopic(const std::string& topic, const std::string& brokers,
                              const std::map<std::string, int>& existing) {
  std::vector<std::string> names;
  for (const auto& [name, n] : existing) {
    if (name.rfind("__", 0) != 0) names.push_back(name);
  }
  const std::string hint = ClosestName(topic, names);
  return "topic \"" + topic + "\" does not exist on " + brokers +
         (hint.empty() || hint == topic ? "" : " (did you mean \"" + hint + "\"?)");
}

int KafkaPartitionCount(const std::string& brokers, const std::string& topic) {
  auto topics = KafkaTopicList(brokers);
  if (!topics.ok()) return 0;
  auto it = topics->find(topic);
  return it == topics->end() ? 0 : it->second;
}

}  // namespace sluice
