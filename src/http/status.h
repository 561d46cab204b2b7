#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/sink_inventory.h"
#include "runtime/stats.h"

namespace sluice::http {

/// One point of the status history, taken from a PipelineSnapshot.
struct StatusSample {
  int64_t t_micros = 0;
  int64_t records_in = 0, bytes_in = 0, aggregated = 0, ignored = 0, dead_lettered = 0, late = 0;
  int64_t checkpoints = 0, checkpoint_failures = 0, rows_written = 0;
  int64_t lag = -1;  ///< sum of the known partition lags; -1 when none is known
  int64_t watermark_micros = INT64_MIN;
  int64_t last_checkpoint_duration_micros = 0;
};

/// A bounded ring of samples (one a second by the HTTP server), for rates, charts and the
/// readiness check. Thread-safe.
class StatusHistory {
 public:
  explicit StatusHistory(size_t capacity = 600) : capacity_(capacity) {}
  void Add(const PipelineSnapshot& s, int64_t now_micros);
  std::vector<StatusSample> Samples() const;
  /// Returns records_in as seen when the checkpoint count last changed (-1: no sample yet).
  int64_t records_at_last_checkpoint() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<StatusSample> samples_;
  int64_t last_checkpoints_ = -1;
  int64_t records_at_checkpoint_ = -1;
};

/// The outcome of /readyz.
struct Readiness {
  bool ready = false;
  std::vector<std::string> reasons;  ///< why not ready (empty when ready)
};

/// Decides readiness: the pipeline is running with workers, the sink is reachable, and when
/// records arrived since the last checkpoint, that checkpoint is recent (within max(3
/// checkpoint intervals, 10 s)). An idle pipeline does not checkpoint and stays ready.
Readiness CheckReadiness(const PipelineSnapshot& s, int64_t now_micros,
                         int64_t checkpoint_interval_micros, int64_t records_at_last_checkpoint);

/// Fixed facts about the pipeline for /api/status.
struct StatusInfo {
  std::string pipeline;
  std::string source;
  std::string sink;
  std::string version;
  int64_t checkpoint_interval_micros = 0;
};

/// Renders /api/status: the snapshot (counts, partitions, watermark, checkpoints), rates over
/// the last seconds of `history`, readiness, and the history itself (at most `max_points`).
/// `stored`: the dead letters in the store (`stored_dead_letters`, null when not known).
std::string RenderStatusJson(const PipelineSnapshot& s, const StatusInfo& info,
                             const std::vector<StatusSample>& history, const Readiness& readiness,
                             int64_t now_micros, size_t max_points = 300,
                             const StoredDeadLetterCounts& stored = {});

}  // namespace sluice::http
