#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace sluice {

/// One live member of a consumer group, as the group coordinator describes it.
struct KafkaGroupMember {
  std::string member_id, client_id, host;
  std::vector<std::pair<std::string, int32_t>> assignment;  ///< (topic, partition)
};

/// The group's live members and their assignments (librdkafka's DescribeConsumerGroups).
Result<std::vector<KafkaGroupMember>> DescribeKafkaGroup(const std::string& brokers, const std::string& group,
                                                         int timeout_ms);

/// The topics of the cluster whose names `pattern` (POSIX extended, as a source's topic_pattern)
/// matches, or `topics` that exist, each with its end offset per partition: the last stable offset,
/// where a read_committed consumer stops (the first offset of the oldest open transaction, else
/// the high watermark).
Result<std::map<std::string, std::vector<int64_t>>> KafkaEndOffsets(const std::string& brokers,
                                                                    const std::vector<std::string>& topics,
                                                                    const std::string& pattern, int timeout_ms);

}  // namespace sluice
