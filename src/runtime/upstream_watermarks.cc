#include "runtime/upstream_watermarks.h"

#include <algorithm>
#include <limits>

namespace sluice {

RepartitionControl& UpstreamWatermarks::Entry(const UpstreamId& id) {
  auto it = std::lower_bound(latest_.begin(), latest_.end(), id,
                             [](const RepartitionControl& c, const UpstreamId& u) { return c.upstream < u; });
  if (it == latest_.end() || it->upstream != id) {
    RepartitionControl fresh;
    fresh.upstream = id;
    it = latest_.insert(it, fresh);
  }
  return *it;
}

void UpstreamWatermarks::Expect(const std::vector<UpstreamId>& expected) {
  for (const auto& id : expected) {
    Entry(id);
    auto it = std::lower_bound(expected_.begin(), expected_.end(), id);
    if (it == expected_.end() || *it != id) expected_.insert(it, id);
  }
}

bool UpstreamWatermarks::Expected(const UpstreamId& id) const {
  return std::binary_search(expected_.begin(), expected_.end(), id);
}

bool UpstreamWatermarks::Apply(const RepartitionControl& control) {
  RepartitionControl& held = Entry(control.upstream);
  if (control.watermark < held.watermark) {
    if (!control.idle) held.idle = false;
    if (!control.end) held.end = false;
    return false;
  }
  held.watermark = control.watermark;
  held.max_event_time = std::max(held.max_event_time, control.max_event_time);
  held.idle = control.idle;
  held.end = control.end;
  return true;
}

int64_t UpstreamWatermarks::Minimum() const {
  if (latest_.empty()) return kNoWatermark;
  int64_t out = std::numeric_limits<int64_t>::max();
  for (const auto& c : latest_) out = std::min(out, c.watermark);
  return out;
}

int64_t UpstreamWatermarks::MaxEventTime() const {
  int64_t out = kNoWatermark;
  for (const auto& c : latest_) out = std::max(out, c.max_event_time);
  return out;
}

bool UpstreamWatermarks::AllEnded() const {
  return !latest_.empty() &&
         std::all_of(latest_.begin(), latest_.end(), [](const RepartitionControl& c) { return c.end; });
}

std::vector<UpstreamId> UpstreamWatermarks::Restore(const std::vector<RepartitionControl>& stored) {
  std::vector<UpstreamId> dropped;
  for (const auto& c : stored) {
    const bool topic_read =
        expected_.empty() || std::any_of(expected_.begin(), expected_.end(), [&](const UpstreamId& u) {
          return u.topic_index == c.upstream.topic_index;
        });
    if (!topic_read) {
      dropped.push_back(c.upstream);
      continue;
    }
    Apply(c);
  }
  return dropped;
}

}  // namespace sluice
