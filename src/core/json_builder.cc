#include "core/json_builder.h"

#include <cassert>
#include <cmath>

#include "core/json_writer.h"
#include "core/time.h"

namespace sluice {

void JsonBuilder::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
}

JsonBuilder& JsonBuilder::BeginObject() {
  Separate();
  out_.push_back('{');
  first_.push_back(true);
  return *this;
}

JsonBuilder& JsonBuilder::EndObject() {
  assert(!first_.empty() && !after_key_);
  first_.pop_back();
  out_.push_back('}');
  return *this;
}

JsonBuilder& JsonBuilder::BeginArray() {
  Separate();
  out_.push_back('[');
  first_.push_back(true);
  return *this;
}

JsonBuilder& JsonBuilder::EndArray() {
  assert(!first_.empty());
  first_.pop_back();
  out_.push_back(']');
  return *this;
}

JsonBuilder& JsonBuilder::Key(std::string_view key) {
  Separate();
  AppendJsonString(key, &out_);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}

JsonBuilder& JsonBuilder::String(std::string_view v) {
  Separate();
  AppendJsonString(v, &out_);
  return *this;
}

JsonBuilder& JsonBuilder::Int(int64_t v) {
  Separate();
  out_ += std::to_string(v);
  return *this;
}

JsonBuilder& JsonBuilder::Double(double v) {
  Separate();
  out_ += std::isfinite(v) ? FormatDouble(v) : "null";
  return *this;
}

JsonBuilder& JsonBuilder::Bool(bool v) {
  Separate();
  out_ += v ? "true" : "false";
  return *this;
}

JsonBuilder& JsonBuilder::Null() {
  Separate();
  out_ += "null";
  return *this;
}

JsonBuilder& JsonBuilder::ValueOf(const Value& v) {
  switch (v.type()) {
    case Type::kNull:
      return Null();
    case Type::kBool:
      return Bool(v.bool_value());
    case Type::kInt64:
      return Int(v.int_value());
    case Type::kDouble:
      return Double(v.double_value());
    case Type::kString:
      return String(v.string_value());
    case Type::kTimestamp:
      return String(FormatTimestamp(v.time_value().micros));
  }
  return Null();
}

}  // namespace sluice
