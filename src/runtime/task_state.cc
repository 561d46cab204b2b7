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
  WriteStateHeader(kMagic, kVersion, spec, &w);
  w.PutI64(progress.max_event_time);
  w.PutI64(progress.watermark);
  w.PutI64(progress.enforced);
  w.PutU8(progress.idle ? 1 : 0);
  w.PutI64(emitted_before);
  EncodeDeltaRows(open, &w);
  EncodeHeldRecords(held, &w);
  return w.Take();
}

Result<TaskState> TaskState::Parse(std::string_view data, const AggregateSpec* spec) {
  TaskState s;
  if (data.empty()) return s;
  BinaryReader r(data);
  RETURN_IF_ERROR(ReadStateHeader(&r, kMagic, kVersion, spec, "task state"));
  uint8_t idle = 0;
  if (!r.GetI64(&s.progress.max_event_time) || !r.GetI64(&s.progress.watermark) ||
      !r.GetI64(&s.progress.enforced) || !r.GetU8(&idle) || !r.GetI64(&s.emitted_before)) {
    return r.status();
  }
  s.progress.idle = idle != 0;
  RETURN_IF_ERROR(DecodeDeltaRows(&r, spec, &s.open));
  RETURN_IF_ERROR(DecodeHeldRecords(&r, &s.held));
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
