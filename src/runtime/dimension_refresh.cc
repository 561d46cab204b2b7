#include "runtime/dimension_refresh.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "core/time.h"
#include "runtime/plan.h"
#include "runtime/registry.h"

namespace sluice {
Result<std::unique_ptr<DimensionRefresher>> DimensionRefresher::Make(const Plan& plan) {
  std::unique_ptr<DimensionRefresher> r(new DimensionRefresher());
  for (const auto& [name, dim] : plan.dimensions) {
    // A poller that fills its table (a changelog topic) reads to the end now, so the first
    // lookups see the whole table, even when it is not polled afterwards.
    ASSIGN_OR_RETURN(std::unique_ptr<DimensionPoller> poller,
                     ConnectorRegistry::Instance().MakeDimensionPoller(dim));
    if (!poller || dim->refresh().interval_micros <= 0) continue;
    r->entries_.push_back(Entry{dim, std::move(poller), SteadyClockMicros() + dim->refresh().interval_micros, 0});
  }
  if (r->entries_.empty()) return std::unique_ptr<DimensionRefresher>();
  return r;
}

DimensionRefresher::~DimensionRefresher() { Stop(); }

void DimensionRefresher::Start() { thread_ = std::thread([this] { Run(); }); }

void DimensionRefresher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status DimensionRefresher::PollAllNow() {
  for (auto& e : entries_) RETURN_IF_ERROR(e.poller->Poll());
  return Status::OK();
}

void DimensionRefresher::PollOne(Entry& e) {
  Status s = e.poller->Poll();
  if (s.ok()) {
    if (e.failures > 0) spdlog::info("dimension {}: refreshing works again", e.dim->name());
    e.failures = 0;
    return;
  }
  e.dim->RecordRefreshError();
  // The first failure and then every tenth: a source that stays down does not flood the log.
  if (e.failures++ % 10 == 0) {
    spdlog::warn("dimension {}: refresh failed ({} in a row), keeping the current snapshot: {}",
                 e.dim->name(), e.failures, s.ToString());
  }
}

void DimensionRefresher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    int64_t now = SteadyClockMicros();
    int64_t next = now + 1'000'000;
    for (auto& e : entries_) {
      if (e.next_due <= now) {
        lock.unlock();
        PollOne(e);
        lock.lock();
        if (stop_) return;
        now = SteadyClockMicros();
        e.next_due = now + e.dim->refresh().interval_micros;
      }
      next = std::min(next, e.next_due);
    }
    cv_.wait_for(lock, std::chrono::microseconds(std::max<int64_t>(next - SteadyClockMicros(), 1000)),
                 [&] { return stop_; });
  }
}

}  // namespace sluice
