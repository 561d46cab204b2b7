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

}  // namespace sluice
