#pragma once

#include <cstdint>
#include <vector>

#include "runtime/repartition_record.h"

namespace sluice {

/// A stage-two task's view of the event time of its upstream (stage-one) tasks: the latest
/// control record of each, from which the task's windows are emitted
/// (docs/notes-16/repartition.md, "Watermarks").
///
/// The set of upstream tasks is given by the caller from the source topics' metadata, not from
/// what arrived: an upstream that never sent a control counts at kNoWatermark and holds the
/// minimum back, so a window is never emitted before every stage-one task has said it is past
/// it. A control of an upstream not in the set (a topic that gained partitions since) adds it
/// (Expected() tells the caller, which says so). A stored state's upstreams of a topic the set
/// has none of (a topic no longer read) are dropped when restored; those of a topic in the set
/// are kept even beyond its partition count (partitions only grow: the set may be older).
///
/// The minimum is over every upstream, idle or not. Idleness is stage one's business: an idle
/// stage-one task's control carries the closed bound its worker already enforces where that is
/// above its own watermark (the pipeline clock's idle floor, PipelineClock in watermark.h), so
/// an idle upstream holds the minimum back only as far as its worker still accepts records.
/// Leaving an idle upstream out here, as Flink's valve does, would let the minimum pass what its
/// worker has not applied yet: a record it reads in between would not be late in stage one, and
/// its partial would come after the window was emitted. `idle` is kept for status only.
/// `end` (the upstream reached the end offsets of a --until-caught-up run) is kept but does not
/// release the upstream: it sent its watermark, not +infinity, so windows past it stay open for
/// the next run.
///
/// Owned by one stage-two task; not thread-safe.
class UpstreamWatermarks {
 public:
  UpstreamWatermarks() = default;
  /// Starts with every upstream in `expected` at kNoWatermark, not idle.
  explicit UpstreamWatermarks(const std::vector<UpstreamId>& expected) { Expect(expected); }

  /// Adds the upstreams of `expected` not known yet (at kNoWatermark, not idle), and counts them
  /// as expected.
  void Expect(const std::vector<UpstreamId>& expected);
  /// True when `id` was given to Expect (or the constructor).
  bool Expected(const UpstreamId& id) const;

  /// Takes a control record. Returns false when its watermark is below the one already held
  /// for its upstream: the watermark and the max event time then stay where they are, and of
  /// its flags only a cleared one counts (idle or end cleared; never set).
  ///
  /// Why a lower control is not applied: an upstream's watermark never goes back. A new owner of
  /// a stage-one task restarts from the task's committed watermark, which was committed in the
  /// same transaction as the controls it sent, so it never sends a lower one; a lower control is
  /// therefore a duplicate or a replay (an older copy read again), and moving the watermark back
  /// would not undo a window already emitted by the higher one. Its flags are stale too, so they
  /// are only ever cleared from it.
  bool Apply(const RepartitionControl& control);

  /// Returns the watermark up to which every upstream has come: the minimum over all upstreams
  /// (idle ones included), kNoWatermark with no upstream.
  int64_t Minimum() const;
  /// Returns the highest max event time of any upstream (kNoWatermark when none has one).
  int64_t MaxEventTime() const;
  /// Returns true when there is an upstream and every upstream's latest control has `end`.
  bool AllEnded() const;

  /// Returns the latest control of every upstream, in UpstreamId order (what TaskState keeps;
  /// one never heard from has the default control with its id).
  const std::vector<RepartitionControl>& latest() const { return latest_; }
  /// Takes the controls a stored state kept (TaskState::upstreams) as if they had been applied,
  /// except those of a topic index no expected upstream has (a topic no longer read; with no
  /// expected upstream at all, none is dropped): returns the upstreams dropped.
  std::vector<UpstreamId> Restore(const std::vector<RepartitionControl>& stored);

 private:
  /// Returns the entry of `id`, adding it (at kNoWatermark) when it is new.
  RepartitionControl& Entry(const UpstreamId& id);

  std::vector<RepartitionControl> latest_;  ///< sorted by upstream, one per upstream
  std::vector<UpstreamId> expected_;        ///< sorted, unique
};

}  // namespace sluice
