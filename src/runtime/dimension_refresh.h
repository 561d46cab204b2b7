#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"
#include "operators/dimension.h"

namespace sluice {

struct Plan;

/// Keeps a plan's dimensions current on one background thread, each at its own interval.
/// Lookups never wait for it: workers pick up a new snapshot at their next batch.
class DimensionRefresher {
 public:
  /// Creates the pollers of the dimensions that refresh. Returns nullptr when none does.
  static Result<std::unique_ptr<DimensionRefresher>> Make(const Plan& plan);
  ~DimensionRefresher();

  void Start();
  void Stop();
  /// Polls every dimension once, now, on the calling thread (tests).
  Status PollAllNow();

 private:
  struct Entry {
    std::shared_ptr<Dimension> dim;
    std::unique_ptr<DimensionPoller> poller;
    int64_t next_due = 0;  ///< steady clock, microseconds
    int failures = 0;      ///< in a row, for log rate-limiting
  };
  void Run();
  void PollOne(Entry& e);

  std::vector<Entry> entries_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sluice
