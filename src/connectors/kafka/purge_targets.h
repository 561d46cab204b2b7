#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace sluice {

/// Decides what one purge of a repartition topic may delete (docs/notes-16/repartition.md,
/// "Shape"): partition -> delete the records before this offset, for each position in
/// `committed` that is ahead of what `purged` (partition -> offset deleted before so far) says.
///
/// `committed` is stage two's committed positions by partition id (its runner's
/// PipelineSnapshot::committed_positions: only stage two's own source, the repartition topic).
/// Only the ids of a one-topic source's partitions (slot 0, below kMaxKafkaPartitions) are
/// positions of that topic; skipped are the identity entries (kIdentityPartitionBase and up:
/// a recreated topic's generation kGenerationPartitionBase + p, a slot's topic fingerprint),
/// whose values are no offsets and which, masked to a partition, would delete records stage
/// two has not read, any id of another topic slot, and offsets <= 0 (nothing to delete).
/// Pure.
std::map<int32_t, int64_t> RepartitionPurgeTargets(const std::vector<std::pair<int32_t, int64_t>>& committed,
                                                   const std::map<int32_t, int64_t>& purged);

}  // namespace sluice
