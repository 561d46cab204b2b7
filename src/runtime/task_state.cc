#include "runtime/task_state.h"

#include "core/serialize.h"
#include "runtime/delta_codec.h"

namespace sluice {
namespace {

constexpr std::string_view kMagic = "sluice-task-state";
constexpr int64_t kVersion = 1;

}  // namespace

std::string TaskState::Serialize(const AggregateSpec* spec) const {
  BinaryWriter w;
  w.PutString(kMagic);
  w.PutI64(kVersion);
  w.PutString(AggregateFingerprint(spec));
  w.PutI64(progress.max_event_time);
  w.PutI64(progress.watermark);
  w.PutI64(progress.enforced);
  w.PutU8(progress.idle ? 1 : 0);
  w.PutI64(emitted_before);
  EncodeDeltaRows(open, &w);
  w.PutI64(static_cast<int64_t>(held.size()));
  for (const auto& h : held) {
    w.PutString(h.payload);
    w.PutI64(h.partition);
    w.PutI64(h.offset);
    w.PutI64(h.deadline_micros);
  }
  return w.Take();
}

Result<TaskState> TaskState::Parse(std::string_view data, const AggregateSpec* spec) {
  TaskState s;
  if (data.empty()) return s;
  BinaryReader r(data);
  std::string magic, fingerprint;
  int64_t version = 0;
  if (!r.GetString(&magic) || magic != kMagic || !r.GetI64(&version)) {
    return Status::Internal("the stored task state is not a sluice task state");
  }
  if (version != kVersion) {
    return Status::Internal("the stored task state has version " + std::to_string(version) +
                            "; this build reads version " + std::to_string(kVersion));
  }
  if (!r.GetString(&fingerprint)) return r.status();
  if (fingerprint != AggregateFingerprint(spec)) {
    return Status::InvalidArgument(
        "the stored task state was written for a different [aggregate] (window, slide, keys or "
        "metrics changed since the last run); give the changed pipeline a new name or clear "
        "its output and stored positions");
  }
  uint8_t idle = 0;
  if (!r.GetI64(&s.progress.max_event_time) || !r.GetI64(&s.progress.watermark) ||
      !r.GetI64(&s.progress.enforced) || !r.GetU8(&idle) || !r.GetI64(&s.emitted_before)) {
    return r.status();
  }
  s.progress.idle = idle != 0;
  RETURN_IF_ERROR(DecodeDeltaRows(&r, spec, &s.open));
  int64_t n = 0;
  if (!r.GetI64(&n)) return r.status();
  for (int64_t i = 0; i < n; ++i) {
    HeldRecord h;
    int64_t partition = 0;
    if (!r.GetString(&h.payload) || !r.GetI64(&partition) || !r.GetI64(&h.offset) ||
        !r.GetI64(&h.deadline_micros)) {
      return r.status();
    }
    h.partition = static_cast<int32_t>(partition);
    s.held.push_back(std::move(h));
  }
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
