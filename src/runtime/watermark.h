#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

namespace sluice {

inline constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();

/// Tracks one worker's event-time progress per source partition.
///
/// A partition's watermark is the highest event time seen on it minus the watermark delay. The
/// worker's watermark is the minimum over its active partitions; a partition that has had no
/// record for longer than the idle timeout stops holding it back (when every partition is idle,
/// the highest partition watermark counts). The result never moves backwards: a partition that
/// wakes up behind it does not pull it back, and its old records are late instead.
///
/// Owned by one worker thread. Times are microseconds: event times since the epoch, `now` on
/// any monotonic clock.
class WatermarkTracker {
 public:
  WatermarkTracker(int64_t delay_micros, int64_t idle_timeout_micros)
      : delay_(delay_micros), idle_timeout_(idle_timeout_micros) {}

  /// Starts tracking `partition` with nothing seen yet: it holds the watermark back until it has
  /// a record or has been idle for the timeout.
  void Track(int32_t partition, int64_t now);
  /// Starts tracking `partition` from an earlier run's highest event time.
  void Restore(int32_t partition, int64_t max_event_time, int64_t now);
  /// Notes a record of `partition` with event time `event_time`.
  void Observe(int32_t partition, int64_t event_time, int64_t now);
  /// Re-evaluates which partitions are idle at `now` and returns the watermark.
  int64_t Advance(int64_t now);
  /// Stops tracking a partition (revoked by a rebalance).
  void Forget(int32_t partition);

  bool Tracks(int32_t partition) const { return Find(partition) != nullptr; }
  bool empty() const { return clocks_.empty(); }
  int64_t watermark() const { return watermark_; }
  /// Returns partition -> highest event time seen, for checkpoints.
  std::map<int32_t, int64_t> MaxEventTimes() const;

 private:
  struct Clock {
    int32_t partition;
    int64_t max_event_time;
    int64_t last_seen;
    bool idle;
  };
  const Clock* Find(int32_t partition) const;
  void Recompute();

  const int64_t delay_;
  const int64_t idle_timeout_;
  std::vector<Clock> clocks_;  ///< few per worker: a flat vector beats a map
  size_t last_ = 0;            ///< index of the partition seen last (records come in runs)
  int64_t watermark_ = kNoWatermark;
};

}  // namespace sluice
