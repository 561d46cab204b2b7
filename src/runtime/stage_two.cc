#include "runtime/stage_two.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

#include "core/json_writer.h"
#include "operators/delta_order.h"

namespace sluice {

std::vector<UpstreamId> StageTwoUpstreams(const std::map<int32_t, int32_t>& partitions_by_topic) {
  std::vector<UpstreamId> out;
  for (const auto& [topic, count] : partitions_by_topic) {
    for (int32_t p = 0; p < count; ++p) out.push_back(UpstreamId{topic, p});
  }
  return out;
}

namespace {

/// a + b, held within int64 (a window start read from a record can be anything).
int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) {
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return out;
}

}  // namespace

StageTwoMerge::StageTwoMerge(StageTwoOptions options)
    : options_(std::move(options)), watermarks_(options_.upstreams) {
  assert(options_.spec != nullptr);
  // Append mode always has a lateness (0 unless set); -1 ("never late") is update mode's.
  lateness_ = std::max<int64_t>(options_.spec->allowed_lateness_micros, 0);
}

Aggregator& StageTwoMerge::Open() {
  if (!open_) open_ = std::make_unique<Aggregator>(options_.spec);
  return *open_;
}

bool StageTwoMerge::FitsSpec(const DeltaRow& row) const {
  return row.keys.size() == options_.spec->keys.size() && row.metrics.size() == options_.spec->metrics.size();
}

Status StageTwoMerge::Restore(TaskState state) {
  if (added_) return Status::FailedPrecondition("a stage-two task's state is restored before its first record");
  for (const auto& row : state.open) {
    if (!FitsSpec(row)) return Status::InvalidArgument("the stored stage-two state has a group of the wrong width");
  }
  if (!state.open.empty()) Open().Merge(std::move(state.open));
  emitted_before_ = std::max(emitted_before_, state.emitted_before);
  for (const UpstreamId& u : watermarks_.Restore(state.upstreams)) {
    ++dropped_upstreams_;
    spdlog::warn("stage two {}[{}]: the stored watermark of upstream task (topic {}, partition {}) is dropped: "
                 "the pipeline no longer reads that topic",
                 options_.source, options_.partition, u.topic_index, u.partition);
  }
  return Status::OK();
}

Status StageTwoMerge::Add(RepartitionRecord record, int64_t offset) {
  added_ = true;
  switch (record.kind) {
    case RepartitionRecord::Kind::kPartial: {
      if (!FitsSpec(record.partial)) {
        return Status::InvalidArgument("a partial aggregate of the repartition topic has the wrong width");
      }
      const int64_t bound =
          SaturatingAdd(SaturatingAdd(record.partial.window_start, options_.spec->window_micros), lateness_);
      if (emitted_before_ != kNoWatermark && bound <= emitted_before_) {
        ++late_partials_;
        dead_letters_.push_back(LatePartial(record.partial, offset));
        return Status::OK();
      }
      std::vector<DeltaRow> one;
      one.push_back(std::move(record.partial));
      Open().Merge(std::move(one));
      return Status::OK();
    }
    case RepartitionRecord::Kind::kControl: {
      const UpstreamId& u = record.control.upstream;
      if (!watermarks_.Expected(u) && unexpected_.insert(u).second) {
        spdlog::warn("stage two {}[{}]: a control of upstream task (topic {}, partition {}), which is not among "
                     "the {} upstream task(s) the source topics' metadata gave, holds windows back from now on "
                     "(a topic that gained partitions since the start; else the upstream set is wrong)",
                     options_.source, options_.partition, u.topic_index, u.partition, options_.upstreams.size());
      }
      if (!watermarks_.Apply(record.control)) ++stale_controls_;
      return Status::OK();
    }
    case RepartitionRecord::Kind::kDeadLetter:
      dead_letters_.push_back(std::move(record.dead_letter));
      return Status::OK();
  }
  return Status::InvalidArgument("a record of the repartition topic has an unknown kind");
}

std::vector<DeltaRow> StageTwoMerge::Emit() {
  const int64_t minimum = watermarks_.Minimum();
  if (minimum == kNoWatermark) return {};
  std::vector<DeltaRow> closed;
  if (open_) closed = open_->TakeClosed(SaturatingAdd(minimum, -lateness_));
  emitted_before_ = std::max(emitted_before_, minimum);
  SortDeltas(&closed);
  return closed;
}

std::vector<DeadLetter> StageTwoMerge::TakeDeadLetters() { return std::exchange(dead_letters_, {}); }

TaskState StageTwoMerge::State() {
  TaskState s;
  if (open_) {
    s.open = open_->Snapshot();
    SortDeltas(&s.open);
  }
  s.emitted_before = emitted_before_;
  s.upstreams = watermarks_.latest();
  s.progress.watermark = watermarks_.Minimum();
  s.progress.max_event_time = watermarks_.MaxEventTime();
  return s;
}

size_t StageTwoMerge::open_groups() { return open_ ? open_->size() : 0; }

DeadLetter StageTwoMerge::LatePartial(const DeltaRow& row, int64_t offset) const {
  std::string payload = "{\"partial\":{\"window_start\":" + std::to_string(row.window_start) + ",\"keys\":[";
  for (size_t i = 0; i < row.keys.size(); ++i) {
    if (i > 0) payload += ',';
    AppendJsonString(row.keys[i].ToString(), &payload);
  }
  payload += "],\"counts\":[";
  for (size_t i = 0; i < row.metrics.size(); ++i) {
    if (i > 0) payload += ',';
    payload += std::to_string(row.metrics[i].count);
  }
  payload += "]}}";
  DeadLetter letter;
  letter.reason = "late";
  letter.payload = std::move(payload);
  letter.source = options_.source;
  letter.partition = options_.partition;
  letter.offset = offset;
  return letter;
}

}  // namespace sluice
