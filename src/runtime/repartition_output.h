#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dead_letter.h"
#include "core/status.h"
#include "operators/aggregate_spec.h"
#include "runtime/repartition_record.h"

namespace sluice {

/// The internal topic of a repartitioned pipeline: `<pipeline>-repartition`.
inline std::string RepartitionTopicName(const std::string& pipeline) { return pipeline + "-repartition"; }

/// What to do when a repartitioned pipeline's two stages no longer fit together (stage two's
/// positions in the user's sink, stage one's and the repartition topic in Kafka under the
/// pipeline's name): start it again from nothing, or under another name.
inline std::string RepartitionResetAdvice(const std::string& pipeline) {
  const std::string topic = RepartitionTopicName(pipeline);
  return "reset pipeline " + pipeline + " whole: stop all its processes, delete the topics " + topic + " and " +
         topic + ".sluice-positions, and clear the sink's output and stored positions (there is no sluice reset "
         "command); or run the pipeline under a new name";
}

/// What one stage-one task (one source partition) produces at one checkpoint: its aggregator's
/// deltas drained since the last checkpoint, merged per (window, group) in DeltaLess order, and
/// its progress as a control record. The runner in stage-one mode fills one per task it commits
/// (Checkpoint::stage_one).
struct StageOneOutput {
  RepartitionControl control;
  std::vector<DeltaRow> partials;
};

/// Gives each task of one stage-one checkpoint its partials: `outputs[i]` (its control filled in
/// by the caller) belongs to the task of source partition `tasks[i]`, and gets a copy of
/// `partials[tasks[i]]` in DeltaLess order. Refuses (kInternal, naming the partitions) partials
/// of a partition that is not among `tasks`: they would be left out of a commit that may carry
/// that partition's position past their records, and so be lost; the checkpoint must fail
/// instead (the next run reads them again from the committed position). Pure.
Status AssignStageOnePartials(const std::vector<int32_t>& tasks,
                              const std::map<int32_t, std::vector<DeltaRow>>& partials,
                              std::vector<StageOneOutput>* outputs);

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

/// Builds every message of one stage-one transaction, in the order they must be produced: each
/// dead letter as a 'D' record (empty key; partition = its source partition mod `partitions`, so
/// a task's letters come before its control there), then each task's BuildStageOneCheckpoint
/// (its partials, then its control to every partition), tasks in the order given. Pure.
Result<std::vector<RepartitionMessage>> BuildStageOneMessages(const std::vector<StageOneOutput>& tasks,
                                                              const std::vector<DeadLetter>& letters,
                                                              int32_t partitions, const AggregateSpec& spec);

}  // namespace sluice
