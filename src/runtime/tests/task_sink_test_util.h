// What the task tests of the sinks (SQLite, MySQL, Cassandra; issue 16) build the same way: the
// sink context, an owner, a task's state with a held record, a checkpoint committing tasks, and
// the legacy one-per-pipeline state with what its move into task rows gives partition 1. Each
// sink's test reads the results back in its own query language. Test code only.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/value.h"
#include "runtime/sink.h"
#include "runtime/task_state.h"
#include "runtime/window_state.h"

namespace sluice {
namespace task_sink_test {

/// A sink context for pipeline `pipeline`, source "in", with state per task; output (id, n).
inline SinkContext TasksContext(const std::string& pipeline) {
  SinkContext ctx;
  ctx.pipeline = pipeline;
  ctx.source = "in";
  ctx.tasks = true;
  ctx.output = Schema({{"id", Type::kString, ""}, {"n", Type::kInt64, ""}});
  return ctx;
}

/// Process 1 on host "h" as client `name`: the sinks store it as "NAME@h pid 1".
inline OwnerInfo Owner(const std::string& name) {
  OwnerInfo o;
  o.host = "h";
  o.pid = 1;
  o.client_id = name;
  return o;
}

/// A task's state at max event time `max_event_time` holding one record ("held-1", partition 3,
/// offset 9).
inline TaskState HeldState(int64_t max_event_time) {
  TaskState st;
  st.progress.max_event_time = max_event_time;
  st.held.push_back(HeldRecord{"held-1", 3, 9, 0});
  return st;
}

/// The progress a later owner releases a task with: max event time 200, closed bound 50, idle.
inline TaskProgress ReleasedProgress() {
  TaskProgress later;
  later.max_event_time = 200;
  later.enforced = 50;
  later.idle = true;
  return later;
}

/// A checkpoint of `rows` (null: none) and `positions` that commits the task of partition
/// `partition` of source "in" with `fence`, `progress` and `state` (null: the stored one stays),
/// and releases it when `release`.
inline Checkpoint TaskCheckpoint(const std::vector<std::vector<Value>>* rows, std::vector<StoredPosition> positions,
                                 int32_t partition, int64_t fence, const TaskProgress& progress = {},
                                 const std::string* state = nullptr, bool release = false) {
  Checkpoint cp;
  cp.rows = rows;
  cp.positions = std::move(positions);
  cp.tasks.push_back(TaskCommit{TaskId{"in", partition}, fence, progress, state, release});
  return cp;
}

/// A checkpoint of an older sluice: `positions` with the pipeline's one `state`.
inline Checkpoint LegacyCheckpoint(std::vector<StoredPosition> positions, const std::string* state) {
  Checkpoint cp;
  cp.positions = std::move(positions);
  cp.state = state;
  return cp;
}

/// The one state of a pipeline as an older sluice stored it: closed before 70, partition 0 at
/// max event time 100 and partition 1 at 90, held records p1-a (partition 1), p0-a (0), p1-b (1).
inline WindowState LegacyState() {
  WindowState old;
  old.closed_before = 70;
  old.max_event_times[{"in", 0}] = 100;
  old.max_event_times[{"in", 1}] = 90;
  old.held.push_back(HeldRecord{"p1-a", 1, 4, 0});
  old.held.push_back(HeldRecord{"p0-a", 0, 7, 0});
  old.held.push_back(HeldRecord{"p1-b", 1, 5, 0});
  return old;
}

/// Checks that `state` (a claim of partition 1 after LegacyState moved into task rows) holds
/// partition 1's held records in their order and its max event time.
inline void ExpectLegacyPartitionOne(const std::string& state) {
  auto st = TaskState::Parse(state, nullptr);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_EQ(st->held.size(), 2u);
  EXPECT_EQ(st->held[0].payload, "p1-a");
  EXPECT_EQ(st->held[1].payload, "p1-b");
  EXPECT_EQ(st->progress.max_event_time, 90);
}

}  // namespace task_sink_test
}  // namespace sluice
