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
  w.PutString(kMagic);
  w.PutI64(kVersion);
  w.PutString(AggregateFingerprint(spec));
  w.PutI64(watermark);
  w.PutI64(closed_before);
  w.PutI64(static_cast<int64_t>(max_event_times.size()));
  for (const auto& [key, t] : max_event_times) {
    w.PutString(key.first);
    w.PutI64(key.second);
    w.PutI64(t);
  }
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

Result<WindowState> WindowState::Parse(std::string_view data, const AggregateSpec* spec) {
  BinaryReader r(data);
  std::string magic, fingerprint;
  int64_t version = 0;
  if (!r.GetString(&magic) || magic != kMagic || !r.GetI64(&version)) {
    return Status::Internal("the stored window state is not a sluice window state");
  }
  if (version != kVersion) {
    return Status::Internal("the stored window state has version " + std::to_string(version) +
                            "; this build reads version " + std::to_string(kVersion));
  }
  if (!r.GetString(&fingerprint)) return r.status();
  if (fingerprint != AggregateFingerprint(spec)) {
    return Status::InvalidArgument(
        "the stored window state was written for a different [aggregate] (window, slide, keys or "
        "metrics changed since the last run); give the changed pipeline a new name or clear "
        "its output and stored positions");
  }
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
  if (!r.done()) return Status::Internal("the stored window state has trailing bytes");
  return s;
}

}  // namespace sluice
