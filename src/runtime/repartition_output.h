#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "operators/aggregate_spec.h"
#include "runtime/repartition_record.h"

namespace sluice {

/// One message stage one produces to the repartition topic: its partition, key and value.
struct RepartitionMessage {
  int32_t partition = 0;
  std::string key;    ///< EncodeRepartitionKey of a partial's group; empty for a control
  std::string value;  ///< EncodeRepartitionValue
  friend bool operator==(const RepartitionMessage&, const RepartitionMessage&) = default;
};

/// Builds what one stage-one task produces at one checkpoint, in the order it must be produced
/// (docs/notes-16/repartition.md, "Watermarks"): one partial per drained group, in the order
/// given, keyed by its group key and sent to RepartitionPartitionOf(key, partitions); then the
/// task's `control` once to every partition 0..partitions-1. A control follows every partial of
/// its checkpoint in each partition, so stage two never sees a partial of this checkpoint after
/// the watermark it carries. Pure: produces nothing. Refuses `partitions` below 1.
Result<std::vector<RepartitionMessage>> BuildStageOneCheckpoint(const std::vector<DeltaRow>& drained,
                                                                const RepartitionControl& control,
                                                                int32_t partitions,
                                                                const AggregateSpec& spec);

}  // namespace sluice
