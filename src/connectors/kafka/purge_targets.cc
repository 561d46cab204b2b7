#include "connectors/kafka/purge_targets.h"

#include "connectors/kafka/kafka_ids.h"

namespace sluice {

std::map<int32_t, int64_t> RepartitionPurgeTargets(const std::vector<std::pair<int32_t, int64_t>>& committed,
                                                   const std::map<int32_t, int64_t>& purged) {
  std::map<int32_t, int64_t> before;
  for (const auto& [id, offset] : committed) {
    // Not a partition of the repartition topic (an identity entry, another slot's id): masking
    // it to a partition would take its value for that partition's position.
    if (id < 0 || id >= kMaxKafkaPartitions) continue;
    if (offset <= 0) continue;
    auto it = purged.find(id);
    if (it != purged.end() && it->second >= offset) continue;
    before[id] = offset;
  }
  return before;
}

}  // namespace sluice
