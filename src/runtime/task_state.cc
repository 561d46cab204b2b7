#include "runtime/task_state.h"

#include <cstdint>

#include "core/serialize.h"
#include "runtime/delta_codec.h"

namespace sluice {
namespace {

constexpr std::string_view kMagic = "sluice-task-state";
/// 2 added `upstreams` (after the held records); 1 is read as a state without upstreams.
constexpr int64_t kVersion = 2;
constexpr int64_t kOldestVersion = 1;
constexpr uint8_t kIdleFlag = 1;
constexpr uint8_t kEndFlag = 2;

void EncodeUpstreams(const std::vector<RepartitionControl>& upstreams, BinaryWriter* w) {
  w->PutI64(static_cast<int64_t>(upstreams.size()));
  for (const auto& c : upstreams) {
    w->PutI64(c.upstream.topic_index);
    w->PutI64(c.upstream.partition);
    w->PutI64(c.watermark);
    w->PutI64(c.max_event_time);
    w->PutU8(static_cast<uint8_t>((c.idle ? kIdleFlag : 0) | (c.end ? kEndFlag : 0)));
  }
}

Status DecodeUpstreams(BinaryReader* r, std::vector<RepartitionControl>* out) {
  int64_t n = 0;
  if (!r->GetI64(&n)) return r->status();
  if (n < 0) return Status::Internal("the stored task state has a negative upstream count");
  for (int64_t i = 0; i < n; ++i) {
    RepartitionControl c;
    int64_t topic = 0, partition = 0;
    uint8_t flags = 0;
    if (!r->GetI64(&topic) || !r->GetI64(&partition) || !r->GetI64(&c.watermark) ||
        !r->GetI64(&c.max_event_time) || !r->GetU8(&flags)) {
      return r->status();
    }
    if (topic < 0 || topic > INT32_MAX || partition < 0 || partition > INT32_MAX ||
        (flags & ~(kIdleFlag | kEndFlag)) != 0) {
      return Status::Internal("the stored task state has a malformed upstream watermark");
    }
    c.upstream = UpstreamId{static_cast<int32_t>(topic), static_cast<int32_t>(partition)};
    c.idle = (flags & kIdleFlag) != 0;
    c.end = (flags & kEndFlag) != 0;
    out->push_back(c);
  }
  return Status::OK();
}

}  // namespace

std::string TaskState::Serialize(const AggregateSpec* spec) const {
  BinaryWriter w;
  WriteStateHeader(kMagic, kVersion, spec, &w);
  w.PutI64(progress.max_event_time);
  w.PutI64(progress.watermark);
  w.PutI64(progress.enforced);
  w.PutU8(progress.idle ? 1 : 0);
  w.PutI64(emitted_before);
  EncodeDeltaRows(open, &w);
  EncodeHeldRecords(held, &w);
  EncodeUpstreams(upstreams, &w);
  return w.Take();
}

Result<TaskState> TaskState::Parse(std::string_view data, const AggregateSpec* spec) {
  TaskState s;
  if (data.empty()) return s;
  BinaryReader r(data);
  int64_t version = 0;
  RETURN_IF_ERROR(ReadStateHeader(&r, kMagic, kOldestVersion, kVersion, spec, "task state", &version));
  uint8_t idle = 0;
  if (!r.GetI64(&s.progress.max_event_time) || !r.GetI64(&s.progress.watermark) ||
      !r.GetI64(&s.progress.enforced) || !r.GetU8(&idle) || !r.GetI64(&s.emitted_before)) {
    return r.status();
  }
  s.progress.idle = idle != 0;
  RETURN_IF_ERROR(DecodeDeltaRows(&r, spec, &s.open));
  RETURN_IF_ERROR(DecodeHeldRecords(&r, &s.held));
  if (version >= 2) RETURN_IF_ERROR(DecodeUpstreams(&r, &s.upstreams));
  if (!r.done()) return Status::Internal("the stored task state has trailing bytes");
  return s;
}

std::map<TaskId, TaskState> SplitLegacyState(const WindowState& legacy, const std::string& source,
                                             int64_t watermark_delay_micros) {
  std::map<TaskId, TaskState> out;
  auto task = [&](const std::string& s, int32_t p) -> TaskState& {
    TaskState& t = out[TaskId{s, p}];
    t.progress.enforced = legacy.closed_before;
    return t;
  };
  for (const auto& [key, t] : legacy.max_event_times) {
    TaskState& s = task(key.first, key.second);
    s.progress.max_event_time = t;
    s.progress.watermark = t == kNoWatermark ? kNoWatermark : t - watermark_delay_micros;
  }
  for (const auto& h : legacy.held) task(source, h.partition).held.push_back(h);
  return out;
}

std::string OwnerInfo::ToString() const {
  return (client_id.empty() ? std::string("sluice") : client_id) + "@" + host + " pid " + std::to_string(pid);
}

}  // namespace sluice
