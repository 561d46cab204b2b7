#include "operators/batch.h"

#include <algorithm>

namespace sluice {

void Column::Reset(Type t, size_t n) {
  type = t;
  valid.assign(n, 0);
  switch (t) {
    case Type::kInt64:
    case Type::kTimestamp:
    case Type::kBool:
      ints.resize(n);
      break;
    case Type::kDouble:
      doubles.resize(n);
      break;
    case Type::kString:
      strings.resize(n);
      break;
    case Type::kNull:
      break;
  }
}

void Column::Set(size_t i, const Value& v, std::deque<std::string>* arena) {
  valid[i] = 0;
  if (v.is_null()) return;
  switch (type) {
    case Type::kInt64:
      if (v.type() == Type::kInt64) SetInt(i, v.int_value());
      break;
    case Type::kTimestamp:
      if (v.type() == Type::kTimestamp) SetInt(i, v.time_value().micros);
      break;
    case Type::kBool:
      if (v.type() == Type::kBool) SetInt(i, v.bool_value() ? 1 : 0);
      break;
    case Type::kDouble:
      if (v.type() == Type::kDouble) SetDouble(i, v.double_value());
      if (v.type() == Type::kInt64) SetDouble(i, static_cast<double>(v.int_value()));
      break;
    case Type::kString:
      if (v.type() == Type::kString) {
        arena->push_back(v.string_value());
        SetString(i, arena->back());
      }
      break;
    case Type::kNull:
      break;
  }
}

void Column::Load(size_t i, Value* out) const {
  if (!valid[i]) {
    *out = Value::Null();
    return;
  }
  switch (type) {
    case Type::kInt64: *out = Value::Int(ints[i]); return;
    case Type::kTimestamp: *out = Value::TimeMicros(ints[i]); return;
    case Type::kBool: *out = Value::Bool(ints[i] != 0); return;
    case Type::kDouble: *out = Value::Double(doubles[i]); return;
    case Type::kString: out->SetString(strings[i]); return;
    case Type::kNull: *out = Value::Null(); return;
  }
}

void ColumnBatch::Reset(const Schema& schema, size_t n) {
  size_ = n;
  declared_ = schema.size();
  size_t width = declared_;
  for (const auto& [slot, type] : derived_) width = std::max(width, slot + 1);
  columns_.resize(width);
  for (size_t c = 0; c < declared_; ++c) columns_[c].Reset(schema.field(c).type, n);
  for (const auto& [slot, type] : derived_) columns_[slot].Reset(type, n);
  selection_.resize(n);
  for (size_t i = 0; i < n; ++i) selection_[i] = static_cast<uint32_t>(i);
  failed_.assign(n, 0);
  dropped_at_.assign(n, -1);
  if (errors_.size() < n) errors_.resize(n);
  arena_.clear();
}

}  // namespace sluice
