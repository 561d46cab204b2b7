#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/dead_letter.h"
#include "core/status.h"
#include "operators/aggregate_spec.h"
#include "operators/aggregator.h"
#include "runtime/repartition_record.h"
#include "runtime/task_state.h"
#include "runtime/upstream_watermarks.h"

namespace sluice {

/// What a stage-two task is: the [aggregate] it merges, its upstream tasks and where its
/// records come from.
struct StageTwoOptions {
  /// The pipeline's append-mode [aggregate] (window, slide, allowed lateness, keys, metrics);
  /// must outlive the unit.
  const AggregateSpec* spec = nullptr;
  /// Every stage-one task, from the source topics' metadata (UpstreamWatermarks).
  std::vector<UpstreamId> upstreams;
  /// The source name and repartition partition a dead letter of stage two's own carries.
  std::string source;
  int32_t partition = 0;
};

/// Returns every stage-one task of a source from its topics' metadata: topic index (the
/// UpstreamId's, the Kafka source's topic slot) -> that topic's partition count.
std::vector<UpstreamId> StageTwoUpstreams(const std::map<int32_t, int32_t>& partitions_by_topic);

/// The merge of one stage-two task (one partition of `<pipeline>-repartition`), without Kafka:
/// fed that partition's records in topic order, it merges the partials of each (window, group)
/// with the aggregator's merge (Aggregator::Merge, MergeMetric: what append mode on tasks does
/// with its workers' deltas), keeps every upstream's latest control (UpstreamWatermarks),
/// collects stage one's dead letters for the sink, and emits each window once, when the minimum
/// of the upstreams' watermarks has passed its end plus the allowed lateness
/// (docs/notes-16/repartition.md, "Watermarks").
///
/// A partial for a window already emitted is impossible by the design: an upstream sends
/// partials of a window only while the window is open at its control's watermark (its own, or
/// the closed bound its worker enforces: an idle upstream's records of windows the others
/// passed are late in stage one), and its control that passes the window comes after them. As
/// a backstop, should one come anyway, such a partial is not merged — emitting the window a second time would write a
/// second row for it in an append-mode sink — but dead-lettered with reason "late" (its window
/// and keys as the payload; the original records are stage one's) and counted in
/// late_partials(). Windows are judged emitted by `emitted_before` (the minimum at the last
/// Emit), as TaskState keeps it, so the rule holds across restarts.
///
/// The state a checkpoint commits — open windows, `emitted_before`, the upstream vector — is
/// State(); a new owner of the task calls Restore with it before its first Add and then
/// behaves as the old owner would have.
///
/// Owned by one thread; not thread-safe.
class StageTwoMerge {
 public:
  explicit StageTwoMerge(StageTwoOptions options);

  /// Takes the committed state of the task. Only before the first Add (else
  /// FailedPrecondition); refuses open windows of another width than the spec's.
  Status Restore(TaskState state);

  /// Takes the next record of the task's partition; `offset` is its position there (it names a
  /// late partial's dead letter). A partial of another width than the spec's is refused
  /// (InvalidArgument; the codec refuses records of another [aggregate] before that).
  Status Add(RepartitionRecord record, int64_t offset);

  /// Returns, in DeltaLess order, the windows whose end plus the allowed lateness is at or
  /// before the upstreams' minimum watermark, and forgets them: each is returned once.
  std::vector<DeltaRow> Emit();

  /// Moves out the dead letters collected since the last call: stage one's, as they came, and
  /// late partials. Their wall-clock time is left to the caller.
  std::vector<DeadLetter> TakeDeadLetters();

  /// Returns the task's state to commit: open windows (DeltaLess order, so an unchanged state
  /// serializes to the same bytes), `emitted_before`, the upstreams' latest controls, and as
  /// progress (for status only) the minimum watermark and the highest max event time.
  TaskState State();

  const UpstreamWatermarks& watermarks() const { return watermarks_; }
  int64_t emitted_before() const { return emitted_before_; }
  /// Partials dead-lettered because their window was emitted already.
  int64_t late_partials() const { return late_partials_; }
  /// Controls whose watermark was below their upstream's (ignored).
  int64_t stale_controls() const { return stale_controls_; }
  /// Upstreams not in StageTwoOptions::upstreams that sent a control (each counted once, and
  /// logged as a warning: a topic that gained partitions since the set was taken, or a wrong set).
  int64_t unexpected_upstreams() const { return static_cast<int64_t>(unexpected_.size()); }
  /// Upstreams of a restored state dropped since their topic is no longer read (logged).
  int64_t dropped_upstreams() const { return dropped_upstreams_; }
  /// Returns the number of open (window, group) rows.
  size_t open_groups();

 private:
  Aggregator& Open();
  /// True when `row` has the spec's key and metric counts.
  bool FitsSpec(const DeltaRow& row) const;
  DeadLetter LatePartial(const DeltaRow& row, int64_t offset) const;

  StageTwoOptions options_;
  int64_t lateness_ = 0;
  UpstreamWatermarks watermarks_;
  std::unique_ptr<Aggregator> open_;  ///< made at first use
  int64_t emitted_before_ = kNoWatermark;
  std::vector<DeadLetter> dead_letters_;
  bool added_ = false;
  int64_t late_partials_ = 0;
  int64_t stale_controls_ = 0;
  std::set<UpstreamId> unexpected_;
  int64_t dropped_upstreams_ = 0;
};

}  // namespace sluice
