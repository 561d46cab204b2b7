#include "runtime/watermark.h"

#include <algorithm>

namespace sluice {

const WatermarkTracker::Clock* WatermarkTracker::Find(int32_t partition) const {
  for (const auto& c : clocks_) {
    if (c.partition == partition) return &c;
  }
  return nullptr;
}

void WatermarkTracker::Track(int32_t partition, int64_t now) {
  if (Find(partition)) return;
  clocks_.push_back(Clock{partition, kNoWatermark, now, false});
  Recompute();
}

void WatermarkTracker::Restore(int32_t partition, int64_t max_event_time, int64_t now) {
  if (Find(partition)) return;
  clocks_.push_back(Clock{partition, max_event_time, now, false});
  Recompute();
}

void WatermarkTracker::Observe(int32_t partition, int64_t event_time, int64_t now) {
  if (last_ >= clocks_.size() || clocks_[last_].partition != partition) {
    last_ = clocks_.size();
    for (size_t i = 0; i < clocks_.size(); ++i) {
      if (clocks_[i].partition == partition) last_ = i;
    }
    if (last_ == clocks_.size()) clocks_.push_back(Clock{partition, kNoWatermark, now, false});
  }
  Clock& c = clocks_[last_];
  c.last_seen = now;
  const bool woke = c.idle;
  c.idle = false;
  if (event_time > c.max_event_time) {
    c.max_event_time = event_time;
    Recompute();
  } else if (woke) {
    Recompute();
  }
}

int64_t WatermarkTracker::Advance(int64_t now) {
  bool changed = false;
  for (auto& c : clocks_) {
    const bool idle = idle_timeout_ > 0 && now - c.last_seen >= idle_timeout_;
    if (idle != c.idle) {
      c.idle = idle;
      changed = true;
    }
  }
  if (changed) Recompute();
  return watermark_;
}

void WatermarkTracker::Forget(int32_t partition) {
  clocks_.erase(std::remove_if(clocks_.begin(), clocks_.end(),
                               [&](const Clock& c) { return c.partition == partition; }),
                clocks_.end());
  last_ = 0;
  Recompute();
}

void WatermarkTracker::Recompute() {
  if (clocks_.empty()) return;
  int64_t active_min = std::numeric_limits<int64_t>::max();
  int64_t any_max = kNoWatermark;
  bool any_active = false;
  for (const auto& c : clocks_) {
    const int64_t wm = c.max_event_time == kNoWatermark ? kNoWatermark : c.max_event_time - delay_;
    any_max = std::max(any_max, wm);
    if (!c.idle) {
      any_active = true;
      active_min = std::min(active_min, wm);
    }
  }
  watermark_ = std::max(watermark_, any_active ? active_min : any_max);
}

std::map<int32_t, int64_t> WatermarkTracker::MaxEventTimes() const {
  std::map<int32_t, int64_t> out;
  for (const auto& c : clocks_) {
    if (c.max_event_time != kNoWatermark) out[c.partition] = c.max_event_time;
  }
  return out;
}

}  // namespace sluice
