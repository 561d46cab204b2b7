#include "sql/pg_node.h"

#include <algorithm>

namespace sluice::sql {
namespace {

int64_t FirstLocationOf(simdjson::dom::element e) {
  int64_t best = -1;
  auto consider = [&best](int64_t v) {
    if (v >= 0 && (best < 0 || v < best)) best = v;
  };
  simdjson::dom::object obj;
  simdjson::dom::array arr;
  if (e.get(obj) == simdjson::SUCCESS) {
    for (auto field : obj) {
      int64_t v = 0;
      if (field.key == "location" && field.value.get(v) == simdjson::SUCCESS) {
        consider(v);
      } else {
        consider(FirstLocationOf(field.value));
      }
    }
  } else if (e.get(arr) == simdjson::SUCCESS) {
    for (auto item : arr) consider(FirstLocationOf(item));
  }
  return best;
}

}  // namespace

PgNode PgNode::Of(simdjson::dom::element e) {
  PgNode n;
  simdjson::dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS) return n;
  for (auto field : obj) {
    simdjson::dom::object inner;
    if (field.value.get(inner) != simdjson::SUCCESS) return n;
    n.kind_ = field.key;
    n.fields_ = inner;
    n.valid_ = true;
    break;
  }
  return n;
}

PgNode PgNode::Fields(simdjson::dom::element e, std::string_view kind) {
  PgNode n;
  if (e.get(n.fields_) != simdjson::SUCCESS) return n;
  n.kind_ = kind;
  n.valid_ = true;
  return n;
}

bool PgNode::Has(std::string_view key) const {
  return valid_ && fields_.at_key(key).error() == simdjson::SUCCESS;
}

PgNode PgNode::Child(std::string_view key) const {
  if (!valid_) return {};
  auto v = fields_.at_key(key);
  if (v.error() != simdjson::SUCCESS) return {};
  return Of(v.value_unsafe());
}

PgNode PgNode::Object(std::string_view key) const {
  if (!valid_) return {};
  auto v = fields_.at_key(key);
  if (v.error() != simdjson::SUCCESS) return {};
  return Fields(v.value_unsafe());
}

std::vector<PgNode> PgNode::List(std::string_view key) const {
  std::vector<PgNode> out;
  if (!valid_) return out;
  simdjson::dom::array arr;
  if (fields_.at_key(key).get(arr) != simdjson::SUCCESS) return out;
  for (auto item : arr) out.push_back(Of(item));
  return out;
}

std::string_view PgNode::String(std::string_view key) const {
  std::string_view s;
  if (!valid_ || fields_.at_key(key).get(s) != simdjson::SUCCESS) return {};
  return s;
}

int64_t PgNode::Int(std::string_view key, int64_t fallback) const {
  int64_t v = 0;
  if (!valid_ || fields_.at_key(key).get(v) != simdjson::SUCCESS) return fallback;
  return v;
}

bool PgNode::Bool(std::string_view key) const {
  bool v = false;
  if (!valid_ || fields_.at_key(key).get(v) != simdjson::SUCCESS) return false;
  return v;
}

int64_t PgNode::FirstLocation() const {
  if (!valid_) return -1;
  int64_t best = -1;
  for (auto field : fields_) {
    int64_t v = -1;
    if (field.key == "location") {
      if (field.value.get(v) != simdjson::SUCCESS) v = -1;
    } else {
      v = FirstLocationOf(field.value);
    }
    if (v >= 0 && (best < 0 || v < best)) best = v;
  }
  return best;
}

std::vector<std::string> PgNode::Strings(const std::vector<PgNode>& names) {
  std::vector<std::string> out;
  for (const PgNode& n : names) out.emplace_back(n.Is("String") ? n.String("sval") : "");
  return out;
}

}  // namespace sluice::sql
