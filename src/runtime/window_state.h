#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "operators/aggregate_spec.h"
#include "runtime/watermark.h"

namespace sluice {

/// A record a lookup is holding until its dimension key appears (on_missing = "hold").
struct HeldRecord {
  std::string payload;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t deadline_micros = 0;  ///< wall clock: then the step's `then` policy applies
};

/// The event-time state a checkpoint stores next to the source positions, so that a restart
/// judges lateness and closes windows exactly as the interrupted run would have.
struct WindowState {
  /// The pipeline's watermark (minimum over its workers), for monitoring.
  int64_t watermark = kNoWatermark;
  /// Windows whose end plus the allowed lateness is at or before this are closed: emitted (append
  /// mode), and any later record for them is late.
  int64_t closed_before = kNoWatermark;
  /// (source, partition) -> highest event time seen up to the committed position.
  std::map<std::pair<std::string, int32_t>, int64_t> max_event_times;
  /// Append mode: the groups of windows not closed yet.
  std::vector<DeltaRow> open;
  /// Records held by lookups, not yet processed (their positions are already committed).
  std::vector<HeldRecord> held;

  /// `spec` is null for a pipeline without [aggregate] (its state is only held records).
  std::string Serialize(const AggregateSpec* spec) const;
  /// Parses what Serialize wrote; fails when it was written for a different [aggregate].
  static Result<WindowState> Parse(std::string_view data, const AggregateSpec* spec);
};

}  // namespace sluice
