// Deleting what stage two of a repartitioned pipeline has committed past from the repartition
// topic (docs/notes-16/repartition.md, "Shape").

#include "repartition_purge.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "connectors/kafka/purge_targets.h"
#include "core/time.h"

namespace sluice::cli {

Result<std::unique_ptr<RepartitionPurger>> RepartitionPurger::Make(Options options, Committed committed) {
  ASSIGN_OR_RETURN(std::unique_ptr<KafkaAdmin> admin,
                   KafkaAdmin::Make(options.brokers, options.timeout_ms, options.properties));
  return std::unique_ptr<RepartitionPurger>(
      new RepartitionPurger(std::move(options), std::move(committed), std::move(admin)));
}

RepartitionPurger::~RepartitionPurger() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RepartitionPurger::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (cv_.wait_for(lock, std::chrono::microseconds(options_.interval_micros), [this] { return stopping_; })) break;
      lock.unlock();
      PurgeOnce();
      lock.lock();
    }
  });
}

void RepartitionPurger::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  PurgeOnce();
}

void RepartitionPurger::PurgeOnce() {
  const std::map<int32_t, int64_t> before = RepartitionPurgeTargets(committed_(), purged_);
  if (before.empty()) return;
  Status s = admin_->DeleteRecordsBefore(options_.topic, before);
  if (!s.ok()) {
    const int64_t now = SteadyClockMicros();
    if (last_warning_micros_ == 0 || now - last_warning_micros_ >= 300'000'000) {
      spdlog::warn("repartition: could not delete the records of {} stage two has committed past (tried again "
                   "later): {}",
                   options_.topic, s.message());
      last_warning_micros_ = now;
    }
    return;
  }
  for (const auto& [p, offset] : before) purged_[p] = offset;
  ++purges_;
  std::string parts;
  for (const auto& [p, offset] : before) parts += (parts.empty() ? "" : ", ") + std::to_string(p) + "<" + std::to_string(offset);
  spdlog::debug("repartition: deleted the records of {} before stage two's committed positions ({})", options_.topic,
                parts);
}

}  // namespace sluice::cli
