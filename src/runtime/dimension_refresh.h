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

/// Follows one dimension's source and publishes a new snapshot when it changed.
class DimensionPoller {
 public:
  virtual ~DimensionPoller() = default;
  /// Looks for changes once; publishes a new version of the dimension when there are any.
  virtual Status Poll() = 0;
};

/// Polls a CSV dimension file and reloads it when its size or modification time changed. A file
/// that is missing or does not parse keeps the previous snapshot (and counts a refresh error).
std::unique_ptr<DimensionPoller> MakeCsvDimensionPoller(std::shared_ptr<Dimension> dim);

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
