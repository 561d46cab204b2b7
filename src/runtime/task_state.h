#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/status.h"
#include "operators/aggregate_spec.h"
#include "runtime/repartition_record.h"
#include "runtime/watermark.h"
#include "runtime/window_state.h"

namespace sluice {

/// A task: the unit of state and ownership of a pipeline, one per (source, input partition).
/// What a checkpoint stores besides results and positions — a partition's event-time progress,
/// the records held for it by lookups — belongs to its task and is committed with that
/// partition's position; a process writes state only for the tasks it owns (claimed, see
/// Sink::ClaimTask), so processes of one pipeline never overwrite each other's state.
struct TaskId {
  std::string source;
  int32_t partition = 0;
  friend auto operator<=>(const TaskId&, const TaskId&) = default;
  friend bool operator==(const TaskId&, const TaskId&) = default;
};

/// One task's event-time progress as committed: small, read by every process at every
/// checkpoint (Sink::LoadTaskProgress) to compute the pipeline's watermark and closed bound.
struct TaskProgress {
  int64_t max_event_time = kNoWatermark;  ///< highest event time up to the committed position
  int64_t watermark = kNoWatermark;       ///< max_event_time - watermark_delay (for status)
  int64_t enforced = kNoWatermark;        ///< the closed bound its owner applied to it
  bool idle = false;                      ///< no record for idle_timeout at the commit
  friend bool operator==(const TaskProgress&, const TaskProgress&) = default;
};

/// The state of one task, stored as a blob with its progress ("sluice-task-state" v2; v1, which
/// had no `upstreams`, is still read).
struct TaskState {
  TaskProgress progress;
  /// Records held by lookups whose partition is the task's (their positions are committed).
  std::vector<HeldRecord> held;
  /// Windows kept by this task (append mode; unused in update mode).
  std::vector<DeltaRow> open;
  /// Windows emitted up to here (tasks that keep their own windows).
  int64_t emitted_before = kNoWatermark;
  /// A stage-two task of a repartitioned pipeline: the latest control record of every upstream
  /// (stage-one) task, one per upstream in UpstreamId order (UpstreamWatermarks keeps them).
  /// Empty for every other task, and in a v1 state.
  std::vector<RepartitionControl> upstreams;

  /// `spec` is null for a pipeline without [aggregate].
  std::string Serialize(const AggregateSpec* spec) const;
  /// Parses what Serialize wrote ("" gives an empty state); fails when it was written for a
  /// different [aggregate].
  static Result<TaskState> Parse(std::string_view data, const AggregateSpec* spec);
};

/// Splits the legacy single state of a pipeline (WindowState, one per pipeline before tasks)
/// into task states: each (source, partition) it knows of gets its highest event time,
/// `closed_before` as its enforced bound, and the held records of its partition (held records
/// belong to `source`: a pipeline has one). Open windows are not split (append mode keeps the
/// legacy state).
std::map<TaskId, TaskState> SplitLegacyState(const WindowState& legacy, const std::string& source,
                                             int64_t watermark_delay_micros);

/// What a process records about itself when it claims a task (for `sluice status`): never a
/// credential.
struct OwnerInfo {
  std::string host;
  int64_t pid = 0;
  std::string client_id;  ///< the worker's consumer client.id, when group-managed
  /// One line: "client_id@host pid N".
  std::string ToString() const;
};

/// What Sink::ClaimTask returns: the task's new fence (the claim bumped it; every later commit
/// of the task must carry it), and the task's committed state and positions as they stood
/// right after the bump.
struct TaskClaim {
  int64_t fence = 0;
  std::string state;  ///< TaskState::Serialize, "" when none was stored
  /// The committed positions of the task's source partition (and its generation partition).
  std::map<int32_t, int64_t> positions;
};

/// One task's row as Sink::LoadTaskProgress returns it.
struct TaskRow {
  TaskId task;
  int64_t fence = 0;
  std::string owner;  ///< OwnerInfo::ToString() of the last claim, "" when released
  TaskProgress progress;
  int64_t updated_micros = 0;
};

}  // namespace sluice
