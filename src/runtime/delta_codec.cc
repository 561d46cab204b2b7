#include "runtime/delta_codec.h"

namespace sluice {

std::string AggregateFingerprint(const AggregateSpec* spec) {
  if (!spec) return "no aggregate";
  std::string f = std::to_string(spec->window_micros);
  // Tumbling windows name no slide, so states stored before hopping windows existed still fit.
  if (spec->hopping()) f += "|slide:" + std::to_string(spec->slide());
  for (const auto& k : spec->keys) f += "|k:" + k.name;
  for (const auto& m : spec->metrics) f += "|m:" + m.name + ":" + std::string(AggFnName(m.fn));
  return f;
}

void EncodeDeltaRows(const std::vector<DeltaRow>& rows, BinaryWriter* w) {
  w->PutI64(static_cast<int64_t>(rows.size()));
  for (const auto& row : rows) {
    w->PutI64(row.window_start);
    w->PutRow(row.keys);
    w->PutI64(static_cast<int64_t>(row.metrics.size()));
    for (const auto& m : row.metrics) {
      w->PutI64(m.count);
      w->PutI64(m.isum);
      w->PutF64(m.dsum);
      w->PutValue(m.value);
      w->PutI64(m.at);
    }
  }
}

Status DecodeDeltaRows(BinaryReader* r, const AggregateSpec* spec, std::vector<DeltaRow>* out) {
  int64_t n = 0;
  if (!r->GetI64(&n)) return r->status();
  for (int64_t i = 0; i < n; ++i) {
    DeltaRow row;
    int64_t metrics = 0;
    if (!r->GetI64(&row.window_start) || !r->GetRow(&row.keys) || !r->GetI64(&metrics)) return r->status();
    if (!spec || row.keys.size() != spec->keys.size() ||
        metrics != static_cast<int64_t>(spec->metrics.size())) {
      return Status::Internal("the stored state has a group of the wrong width");
    }
    row.metrics.resize(static_cast<size_t>(metrics));
    for (auto& m : row.metrics) {
      if (!r->GetI64(&m.count) || !r->GetI64(&m.isum) || !r->GetF64(&m.dsum) || !r->GetValue(&m.value) ||
          !r->GetI64(&m.at)) {
        return r->status();
      }
    }
    out->push_back(std::move(row));
  }
  return Status::OK();
}

void WriteStateHeader(std::string_view magic, int64_t version, const AggregateSpec* spec, BinaryWriter* w) {
  w->PutString(magic);
  w->PutI64(version);
  w->PutString(AggregateFingerprint(spec));
}

Status ReadStateHeader(BinaryReader* r, std::string_view magic, int64_t version, const AggregateSpec* spec,
                       const std::string& what) {
  int64_t read_version = 0;
  return ReadStateHeader(r, magic, version, version, spec, what, &read_version);
}

Status ReadStateHeader(BinaryReader* r, std::string_view magic, int64_t min_version, int64_t max_version,
                       const AggregateSpec* spec, const std::string& what, int64_t* version) {
  std::string read_magic, fingerprint;
  int64_t read_version = 0;
  if (!r->GetString(&read_magic) || read_magic != magic || !r->GetI64(&read_version)) {
    return Status::Internal("the stored " + what + " is not a sluice " + what);
  }
  if (read_version < min_version || read_version > max_version) {
    return Status::Internal("the stored " + what + " has version " + std::to_string(read_version) +
                            "; this build reads version" +
                            (min_version == max_version ? " " + std::to_string(max_version)
                                                        : "s " + std::to_string(min_version) + " to " +
                                                              std::to_string(max_version)));
  }
  *version = read_version;
  if (!r->GetString(&fingerprint)) return r->status();
  if (fingerprint != AggregateFingerprint(spec)) {
    return Status::InvalidArgument(
        "the stored " + what + " was written for a different [aggregate] (window, slide, keys or "
        "metrics changed since the last run); give the changed pipeline a new name or clear "
        "its output and stored positions");
  }
  return Status::OK();
}

void EncodeHeldRecords(const std::vector<HeldRecord>& held, BinaryWriter* w) {
  w->PutI64(static_cast<int64_t>(held.size()));
  for (const auto& h : held) {
    w->PutString(h.payload);
    w->PutI64(h.partition);
    w->PutI64(h.offset);
    w->PutI64(h.deadline_micros);
  }
}

Status DecodeHeldRecords(BinaryReader* r, std::vector<HeldRecord>* out) {
  int64_t n = 0;
  if (!r->GetI64(&n)) return r->status();
  for (int64_t i = 0; i < n; ++i) {
    HeldRecord h;
    int64_t partition = 0;
    if (!r->GetString(&h.payload) || !r->GetI64(&partition) || !r->GetI64(&h.offset) ||
        !r->GetI64(&h.deadline_micros)) {
      return r->status();
    }
    h.partition = static_cast<int32_t>(partition);
    out->push_back(std::move(h));
  }
  return Status::OK();
}

}  // namespace sluice
