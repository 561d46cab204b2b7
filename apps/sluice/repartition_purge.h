#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "connectors/kafka/kafka_admin.h"
#include "core/status.h"

namespace sluice::cli {

/// Deletes the records of a repartition topic that stage two has committed past, as Kafka
/// Streams purges its repartition topics: a stage-two task starts from its committed position
/// and keeps what it merged in its task state, so nothing before that position is read again.
///
/// Best effort and never ahead of what is committed: every `interval` (not every checkpoint)
/// and once more at the end of the run, it asks the brokers to delete each partition's records
/// before the position this process's stage two last committed for it (a partition another
/// process took over since is further by now, never behind). A failed request is logged as a
/// warning (at most every 5 minutes) and tried again next time; it never stops the run.
///
/// Lifecycle: Make, Start, then Stop (joins the thread, then purges once more). Stop is called
/// from one thread; `committed` is called from the purger's thread and from Stop's caller.
class RepartitionPurger {
 public:
  struct Options {
    std::string brokers;
    std::string topic;  ///< the repartition topic
    std::map<std::string, std::string> properties;  ///< librdkafka settings (security)
    int64_t interval_micros = 30'000'000;
    int timeout_ms = 10'000;  ///< of each request to the brokers
  };
  /// Stage two's committed positions by partition id of the repartition topic (one topic, so
  /// the id is the partition): PipelineSnapshot::committed_positions of whichever runner runs
  /// stage two now.
  using Committed = std::function<std::vector<std::pair<int32_t, int64_t>>()>;

  static Result<std::unique_ptr<RepartitionPurger>> Make(Options options, Committed committed);
  ~RepartitionPurger();

  /// Starts the thread that purges every interval.
  void Start();
  /// Stops that thread and purges once more up to what is committed now.
  void Stop();
  /// How many delete requests succeeded.
  int64_t purges() const { return purges_; }

 private:
  RepartitionPurger(Options options, Committed committed, std::unique_ptr<KafkaAdmin> admin)
      : options_(std::move(options)), committed_(std::move(committed)), admin_(std::move(admin)) {}
  /// Deletes the records before each partition's committed position that advanced since the
  /// last purge (one request for all of them).
  void PurgeOnce();

  Options options_;
  Committed committed_;
  std::unique_ptr<KafkaAdmin> admin_;  ///< used by one thread at a time (the purger's, then Stop's)
  std::map<int32_t, int64_t> purged_;  ///< partition -> records before this offset are deleted
  int64_t purges_ = 0;
  int64_t last_warning_micros_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
};

}  // namespace sluice::cli
