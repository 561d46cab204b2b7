#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sluice {

inline constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();

/// One source partition's event-time progress, as a worker reports it.
struct PartitionProgress {
  int64_t max_event_time = kNoWatermark;  ///< highest event time up to the position handed over
  bool idle = false;  ///< no record for the idle timeout: it holds no other partition back
  friend bool operator==(const PartitionProgress&, const PartitionProgress&) = default;
};

/// Tracks one worker's event-time progress per source partition.
///
/// A partition's watermark is the highest event time seen on it minus the watermark delay; it
/// never moves backwards, and a partition assigned again starts from its committed progress
/// (Restore). A record is judged late against its own partition's watermark only, so whether it
/// is late does not depend on how fast the other partitions are read. A partition that has had
/// no record for the idle timeout is marked idle: the pipeline's clock (PipelineClock) then stops
/// waiting for it.
///
/// Owned by one worker thread. Times are microseconds: event times since the epoch, `now` on
/// any monotonic clock.
class WatermarkTracker {
 public:
  WatermarkTracker(int64_t delay_micros, int64_t idle_timeout_micros)
      : delay_(delay_micros), idle_timeout_(idle_timeout_micros) {}

  /// Starts tracking `partition` with nothing seen yet: it holds the pipeline's watermark back
  /// until it has a record or has been idle for the timeout.
  void Track(int32_t partition, int64_t now);
  /// Starts tracking `partition` from an earlier run's (or owner's) highest event time.
  void Restore(int32_t partition, int64_t max_event_time, int64_t now);
  /// Notes a record of `partition` with event time `event_time`.
  void Observe(int32_t partition, int64_t event_time, int64_t now);
  /// Re-evaluates which partitions are idle at `now`.
  void Advance(int64_t now);
  /// Stops tracking a partition (revoked by a rebalance).
  void Forget(int32_t partition);

  bool Tracks(int32_t partition) const { return Find(partition) != nullptr; }
  bool empty() const { return clocks_.empty(); }
  /// Returns the watermark of `partition` (kNoWatermark when it has no record or is not tracked).
  int64_t PartitionWatermark(int32_t partition);
  /// Returns every tracked partition's progress, for the handoff to the coordinator.
  std::map<int32_t, PartitionProgress> Progress() const;
  /// Returns partition -> highest event time seen (partitions with a record only).
  std::map<int32_t, int64_t> MaxEventTimes() const;

 private:
  struct Clock {
    int32_t partition;
    int64_t max_event_time;
    int64_t last_seen;
    bool idle;
  };
  const Clock* Find(int32_t partition) const;
  /// Returns the clock of `partition`, adding it when it is new.
  Clock& Locate(int32_t partition, int64_t now);

  const int64_t delay_;
  const int64_t idle_timeout_;
  std::vector<Clock> clocks_;  ///< few per worker: a flat vector beats a map
  size_t last_ = 0;            ///< index of the partition seen last (records come in runs)
};

/// The pipeline's event time over every partition of its source, keyed by (source, partition):
/// the partitions its workers read, those they gave up in a rebalance, and those known from the
/// committed state or the source's partition list that nobody here reads (yet).
///
/// The rule (issue 16): a record is late if and only if its window's end plus the allowed
/// lateness is at or before its own partition's watermark (the worker judges that); a window is
/// emitted when the minimum of all partitions' watermarks passes its end plus the allowed
/// lateness. Then no record that is not late can arrive for an emitted window, and the output
/// does not depend on how fast or in what order the partitions are read.
///
/// A partition that has not delivered a record holds the minimum back (at no watermark) until it
/// has been idle for the idle timeout; an idle partition holds nothing back (Flink's rule), and
/// when every partition read here is idle the highest watermark counts. That is the one way a
/// window can pass a partition's own watermark: the bound the workers enforce (Bounds::release,
/// published to them as the closed bound) then rises above it, and a record arriving later on
/// that partition for such a window is late. Windows are emitted only up to what every worker
/// has already enforced (Bounds::emit), so a window is never emitted while a record for it can
/// still be counted.
///
/// Owned by the checkpoint coordinator's thread. `now` is on a monotonic clock (microseconds).
class PipelineClock {
 public:
  using Key = std::pair<std::string, int32_t>;

  PipelineClock(int64_t delay_micros, int64_t idle_timeout_micros)
      : delay_(delay_micros), idle_timeout_(idle_timeout_micros) {}

  /// Notes a partition that exists whether or not it is read here: from the committed state
  /// (with its highest event time) or the source's partition list (kNoWatermark). Nothing
  /// changes for a partition already known, except that its event time can only grow.
  void Know(const Key& partition, int64_t max_event_time, int64_t now);
  /// Notes a partition's progress as committed in the sink by whichever process owns it
  /// (another one: a partition read here is reported by its worker instead). From then on, while
  /// no worker here reads it, it counts with its committed watermark, and is idle only when its
  /// owner committed it idle — not after a local timer — so the pipeline's watermark and closed
  /// bound are the same in every process. `enforced` is the closed bound its owner applies to it:
  /// an idle partition holds the emission back to no more than that.
  void Committed(const Key& partition, int64_t max_event_time, bool idle, int64_t enforced, int64_t now);
  /// Takes worker `worker`'s handoff: `progress` holds every partition of `source` it reads now
  /// (also those it gives up with this handoff, which `revoked` lists). A partition the worker
  /// read before and does not list any more, or gives up, has no reader here from `now` on.
  void Report(int worker, const std::string& source, const std::map<int32_t, PartitionProgress>& progress,
              const std::vector<int32_t>& revoked, int64_t now);
  /// Marks worker `worker`'s bounded input as exhausted: its partitions hold nothing back.
  void WorkerEnded(int worker);
  /// From now on a partition known here that nobody reads here and nobody committed progress
  /// of (Committed) holds the watermark back for good instead of counting idle after the idle
  /// timeout. Stage one of a repartitioned pipeline: stage two waits for such a partition's
  /// task's first control (sent with its first committed progress) for good too.
  void HoldUnreported() { hold_unreported_ = true; }

  struct Bounds {
    bool any = false;  ///< false: no partition is read here, nothing may close
    /// The pipeline's watermark: the minimum over the partitions that are not idle (the highest
    /// when all are idle), for monitoring.
    int64_t watermark = kNoWatermark;
    /// Windows whose end plus the allowed lateness is at or before this are closed: the workers
    /// judge every later record for them late, whatever its partition's own watermark.
    int64_t release = kNoWatermark;
    /// Windows whose end plus the allowed lateness is at or before this may be emitted.
    int64_t emit = kNoWatermark;
  };
  /// Computes the bounds at `now`. `enforced` is the lowest closed bound every worker that may
  /// still read a record had applied at its last handoff (only an idle partition's windows
  /// need it).
  Bounds Compute(int64_t now, int64_t enforced) const;

  /// Returns (source, partition) -> highest event time, for the checkpointed state.
  std::map<Key, int64_t> MaxEventTimes() const;
  size_t size() const { return parts_.size(); }

 private:
  struct Part {
    int64_t max_event_time = kNoWatermark;
    int owner = -1;      ///< the worker that reads it, -1 none
    bool idle = false;   ///< as its owner last reported
    int64_t since = 0;   ///< when it was last read or became known (for one without an owner)
    bool remote = false;       ///< its committed progress is known (Committed)
    bool remote_idle = false;  ///< ... and says idle
    int64_t remote_enforced = kNoWatermark;
  };
  const int64_t delay_;
  const int64_t idle_timeout_;
  std::map<Key, Part> parts_;
  std::vector<bool> ended_;  ///< per worker
  bool hold_unreported_ = false;
};

}  // namespace sluice
