#include "runtime/watermark.h"

#include <algorithm>

namespace sluice {

const WatermarkTracker::Clock* WatermarkTracker::Find(int32_t partition) const {
  for (const auto& c : clocks_) {
    if (c.partition == partition) return &c;
  }
  return nullptr;
}

WatermarkTracker::Clock& WatermarkTracker::Locate(int32_t partition, int64_t now) {
  if (last_ >= clocks_.size() || clocks_[last_].partition != partition) {
    last_ = clocks_.size();
    for (size_t i = 0; i < clocks_.size(); ++i) {
      if (clocks_[i].partition == partition) last_ = i;
    }
    if (last_ == clocks_.size()) clocks_.push_back(Clock{partition, kNoWatermark, now, false});
  }
  return clocks_[last_];
}

void WatermarkTracker::Track(int32_t partition, int64_t now) {
  if (Find(partition)) return;
  clocks_.push_back(Clock{partition, kNoWatermark, now, false});
}

void WatermarkTracker::Restore(int32_t partition, int64_t max_event_time, int64_t now) {
  if (Find(partition)) return;
  clocks_.push_back(Clock{partition, max_event_time, now, false});
}

void WatermarkTracker::Observe(int32_t partition, int64_t event_time, int64_t now) {
  Clock& c = Locate(partition, now);
  c.last_seen = now;
  c.idle = false;
  c.max_event_time = std::max(c.max_event_time, event_time);
}

void WatermarkTracker::Advance(int64_t now) {
  for (auto& c : clocks_) c.idle = idle_timeout_ > 0 && now - c.last_seen >= idle_timeout_;
}

void WatermarkTracker::Forget(int32_t partition) {
  clocks_.erase(std::remove_if(clocks_.begin(), clocks_.end(),
                               [&](const Clock& c) { return c.partition == partition; }),
                clocks_.end());
  last_ = 0;
}

int64_t WatermarkTracker::PartitionWatermark(int32_t partition) {
  if (last_ >= clocks_.size() || clocks_[last_].partition != partition) {
    const Clock* c = Find(partition);
    if (!c) return kNoWatermark;
    last_ = static_cast<size_t>(c - clocks_.data());
  }
  const int64_t t = clocks_[last_].max_event_time;
  return t == kNoWatermark ? kNoWatermark : t - delay_;
}

std::map<int32_t, PartitionProgress> WatermarkTracker::Progress() const {
  std::map<int32_t, PartitionProgress> out;
  for (const auto& c : clocks_) out[c.partition] = PartitionProgress{c.max_event_time, c.idle};
  return out;
}

std::map<int32_t, int64_t> WatermarkTracker::MaxEventTimes() const {
  std::map<int32_t, int64_t> out;
  for (const auto& c : clocks_) {
    if (c.max_event_time != kNoWatermark) out[c.partition] = c.max_event_time;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

void PipelineClock::Know(const Key& partition, int64_t max_event_time, int64_t now) {
  auto [it, inserted] = parts_.try_emplace(partition);
  if (inserted) it->second.since = now;
  it->second.max_event_time = std::max(it->second.max_event_time, max_event_time);
}

void PipelineClock::Committed(const Key& partition, int64_t max_event_time, bool idle, int64_t enforced,
                              int64_t now) {
  auto [it, inserted] = parts_.try_emplace(partition);
  Part& part = it->second;
  if (inserted) part.since = now;
  part.max_event_time = std::max(part.max_event_time, max_event_time);
  part.remote = true;
  part.remote_idle = idle;
  part.remote_enforced = std::max(part.remote_enforced, enforced);
}

void PipelineClock::Report(int worker, const std::string& source,
                           const std::map<int32_t, PartitionProgress>& progress,
                           const std::vector<int32_t>& revoked, int64_t now) {
  if (static_cast<size_t>(worker) >= ended_.size()) ended_.resize(static_cast<size_t>(worker) + 1, false);
  for (auto& [key, part] : parts_) {
    if (part.owner == worker && (key.first != source || !progress.count(key.second))) {
      part.owner = -1;
      part.since = now;
    }
  }
  for (const auto& [p, pr] : progress) {
    Part& part = parts_[{source, p}];
    part.max_event_time = std::max(part.max_event_time, pr.max_event_time);
    part.owner = worker;
    part.idle = pr.idle;
    part.since = now;
  }
  for (int32_t p : revoked) {
    auto it = parts_.find({source, p});
    if (it != parts_.end() && it->second.owner == worker) {
      it->second.owner = -1;
      it->second.since = now;
    }
  }
}

void PipelineClock::WorkerEnded(int worker) {
  if (static_cast<size_t>(worker) >= ended_.size()) ended_.resize(static_cast<size_t>(worker) + 1, false);
  ended_[static_cast<size_t>(worker)] = true;
}

PipelineClock::Bounds PipelineClock::Compute(int64_t now, int64_t enforced) const {
  constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
  int64_t active_min = kInf, idle_max = kNoWatermark, idle_floor = kInf;
  bool any_active = false, any_read = false, any = false;
  for (const auto& [key, part] : parts_) {
    const bool owned = part.owner >= 0;
    if (owned && static_cast<size_t>(part.owner) < ended_.size() && ended_[static_cast<size_t>(part.owner)]) {
      continue;  // its input is exhausted: no record will come
    }
    any = true;
    any_read = any_read || owned;
    const int64_t wm = part.max_event_time == kNoWatermark ? kNoWatermark : part.max_event_time - delay_;
    const bool idle = owned         ? part.idle
                      : part.remote ? part.remote_idle
                                    : !hold_unreported_ && idle_timeout_ > 0 && now - part.since >= idle_timeout_;
    if (idle) {
      idle_max = std::max(idle_max, wm);
      // What a record of this partition is judged against from now on, at the least (by its
      // owner elsewhere: the bound it committed).
      const int64_t applied = !owned && part.remote ? part.remote_enforced : enforced;
      idle_floor = std::min(idle_floor, std::max(wm, applied));
      continue;
    }
    any_active = true;
    active_min = std::min(active_min, wm);
  }
  Bounds b;
  if (!any || (!any_active && !any_read)) return b;  // nobody here reads anything: nothing closes
  b.any = true;
  b.watermark = any_active ? active_min : idle_max;
  b.release = b.watermark;
  b.emit = std::min(b.release, idle_floor);
  return b;
}

std::map<PipelineClock::Key, int64_t> PipelineClock::MaxEventTimes() const {
  std::map<Key, int64_t> out;
  for (const auto& [key, part] : parts_) {
    if (part.max_event_time != kNoWatermark) out[key] = part.max_event_time;
  }
  return out;
}

}  // namespace sluice
