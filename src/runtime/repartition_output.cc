#include "runtime/repartition_output.h"

#include <algorithm>

#include "operators/delta_order.h"

namespace sluice {

Status AssignStageOnePartials(const std::vector<int32_t>& tasks,
                              const std::map<int32_t, std::vector<DeltaRow>>& partials,
                              std::vector<StageOneOutput>* outputs) {
  if (outputs->size() != tasks.size()) {
    return Status::Internal("stage one: " + std::to_string(outputs->size()) + " outputs for " +
                            std::to_string(tasks.size()) + " tasks");
  }
  std::string strays;
  for (const auto& [p, list] : partials) {
    if (list.empty() || std::find(tasks.begin(), tasks.end(), p) != tasks.end()) continue;
    strays += (strays.empty() ? "" : ", ") + std::to_string(p);
  }
  if (!strays.empty()) {
    return Status::Internal("stage one: partials of partition(s) " + strays +
                            " whose task this checkpoint does not commit; the checkpoint is refused so that "
                            "their records are read again from the committed positions");
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto it = partials.find(tasks[i]);
    if (it == partials.end()) continue;
    (*outputs)[i].partials = it->second;
    SortDeltas(&(*outputs)[i].partials);
  }
  return Status::OK();
}

Result<std::vector<RepartitionMessage>> BuildStageOneCheckpoint(const std::vector<DeltaRow>& drained,
                                                                const RepartitionControl& control,
                                                                int32_t partitions,
                                                                const AggregateSpec& spec) {
  if (partitions < 1) {
    return Status::InvalidArgument("the repartition topic needs at least one partition, not " +
                                   std::to_string(partitions));
  }
  std::vector<RepartitionMessage> out;
  out.reserve(drained.size() + static_cast<size_t>(partitions));
  RepartitionRecord record;
  record.kind = RepartitionRecord::Kind::kPartial;
  for (const DeltaRow& row : drained) {
    RepartitionMessage m;
    m.key = EncodeRepartitionKey(row.keys);
    m.partition = RepartitionPartitionOf(m.key, partitions);
    record.partial = row;
    m.value = EncodeRepartitionValue(record, spec);
    out.push_back(std::move(m));
  }
  record.kind = RepartitionRecord::Kind::kControl;
  record.partial = DeltaRow{};
  record.control = control;
  const std::string value = EncodeRepartitionValue(record, spec);
  for (int32_t r = 0; r < partitions; ++r) out.push_back(RepartitionMessage{r, "", value});
  return out;
}

Result<std::vector<RepartitionMessage>> BuildStageOneMessages(const std::vector<StageOneOutput>& tasks,
                                                              const std::vector<DeadLetter>& letters,
                                                              int32_t partitions, const AggregateSpec& spec) {
  if (partitions < 1) {
    return Status::InvalidArgument("the repartition topic needs at least one partition, not " +
                                   std::to_string(partitions));
  }
  std::vector<RepartitionMessage> out;
  RepartitionRecord record;
  record.kind = RepartitionRecord::Kind::kDeadLetter;
  for (const DeadLetter& d : letters) {
    record.dead_letter = d;
    const int32_t p = d.partition < 0 ? 0 : d.partition % partitions;
    out.push_back(RepartitionMessage{p, "", EncodeRepartitionValue(record, spec)});
  }
  for (const StageOneOutput& t : tasks) {
    ASSIGN_OR_RETURN(std::vector<RepartitionMessage> one,
                     BuildStageOneCheckpoint(t.partials, t.control, partitions, spec));
    for (auto& m : one) out.push_back(std::move(m));
  }
  return out;
}

}  // namespace sluice
