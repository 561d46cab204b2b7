#pragma once

#include <cstdint>

#include "runtime/repartition_record.h"

namespace sluice {

/// A stage-one task's upstream id from its source partition id. A Kafka source numbers the
/// partition p of the topic in slot s as `s << 12 | p` (connectors/kafka/kafka_ids.h, which
/// checks that its bit count is this one): the upstream is {topic_index = s, partition = p}, so
/// {0, p} for a one-topic source.
inline constexpr int kUpstreamPartitionBits = 12;
inline UpstreamId UpstreamOfPartitionId(int32_t id) {
  return UpstreamId{id >> kUpstreamPartitionBits, id & ((1 << kUpstreamPartitionBits) - 1)};
}

}  // namespace sluice
