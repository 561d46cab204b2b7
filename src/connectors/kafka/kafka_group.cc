#include "connectors/kafka/kafka_group.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <regex>

#include "connectors/kafka/kafka_admin.h"

namespace sluice {

Result<std::vector<KafkaGroupMember>> DescribeKafkaGroup(const std::string& brokers, const std::string& group,
                                                         int timeout_ms) {
  ASSIGN_OR_RETURN(std::unique_ptr<KafkaAdmin> admin, KafkaAdmin::Make(brokers, timeout_ms));
  return admin->DescribeGroup(group);
}

Result<std::map<std::string, std::vector<int64_t>>> KafkaEndOffsets(const std::string& brokers,
                                                                    const std::vector<std::string>& topics,
                                                                    const std::string& pattern, int timeout_ms) {
  ASSIGN_OR_RETURN(std::unique_ptr<KafkaAdmin> admin, KafkaAdmin::Make(brokers, timeout_ms));
  ASSIGN_OR_RETURN(auto counts, admin->PartitionCounts());
  std::optional<std::regex> re;
  if (!pattern.empty()) re.emplace(pattern, std::regex::extended);
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, partitions] : counts) {
    if (re ? !std::regex_search(name, *re) : std::find(topics.begin(), topics.end(), name) == topics.end()) continue;
    ASSIGN_OR_RETURN(std::vector<KafkaPartitionEnds> ends, admin->EndOffsets(name));
    std::vector<int64_t>& last = out[name];
    last.assign(ends.size(), -1);
    for (const KafkaPartitionEnds& e : ends) last[e.partition] = e.last_stable;
  }
  return out;
}

}  // namespace sluice
