#include "runtime/window_state.h"

#include "core/serialize.h"
#include "runtime/delta_codec.h"

namespace sluice {
namespace {

constexpr std::string_view kMagic = "sluice-window-state";
constexpr int64_t kVersion = 2;

}  // namespace

std::string WindowState::Serialize(const AggregateSpec* spec) const {
  BinaryWriter w;
  WriteStateHeader(kMagic, kVersion, spec, &w);
  w.PutI64(watermark);
  w.PutI64(closed_before);
  w.PutI64(static_cast<int64_t>(max_event_times.size()));
  for (const auto& [key, t] : max_event_times) {
    w.PutString(key.first);
    w.PutI64(key.second);
    w.PutI64(t);
  }
  EncodeDeltaRows(open, &w);
  EncodeHeldRecords(held, &w);
  return w.Take();
}

Result<WindowState> WindowState::Parse(std::string_view data, const AggregateSpec* spec) {
  BinaryReader r(data);
  RETURN_IF_ERROR(ReadStateHeader(&r, kMagic, kVersion, spec, "window state"));
  WindowState s;
  int64_t n = 0;
  if (!r.GetI64(&s.watermark) || !r.GetI64(&s.closed_before) || !r.GetI64(&n)) return r.status();
  for (int64_t i = 0; i < n; ++i) {
    std::string source;
    int64_t partition = 0, t = 0;
    if (!r.GetString(&source) || !r.GetI64(&partition) || !r.GetI64(&t)) return r.status();
    s.max_event_times[{source, static_cast<int32_t>(partition)}] = t;
  }
  RETURN_IF_ERROR(DecodeDeltaRows(&r, spec, &s.open));
  RETURN_IF_ERROR(DecodeHeldRecords(&r, &s.held));
  if (!r.done()) return Status::Internal("the stored window state has trailing bytes");
  return s;
}

}  // namespace sluice
