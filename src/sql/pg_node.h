#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace sluice::sql {

/// A read-only view of one node of libpg_query's JSON tree. A generic node is written
/// {"Kind": {fields}}; a typed field (a RangeVar, a TypeName) is its fields alone. Missing
/// fields hold their default (libpg_query omits 0, false and empty lists).
class PgNode {
 public:
  PgNode() = default;
  /// Wraps a generic node {"Kind": {...}}.
  static PgNode Of(simdjson::dom::element e);
  /// Wraps a typed field's object (no kind).
  static PgNode Fields(simdjson::dom::element e, std::string_view kind = "");

  bool valid() const { return valid_; }
  std::string_view kind() const { return kind_; }
  bool Is(std::string_view k) const { return valid_ && kind_ == k; }

  bool Has(std::string_view key) const;
  /// A generic node held in `key` ({"Kind": ...}); invalid when absent.
  PgNode Child(std::string_view key) const;
  /// A typed object held in `key`; invalid when absent.
  PgNode Object(std::string_view key) const;
  /// The generic nodes in list `key` (empty when absent).
  std::vector<PgNode> List(std::string_view key) const;
  std::string_view String(std::string_view key) const;
  int64_t Int(std::string_view key, int64_t fallback = 0) const;
  bool Bool(std::string_view key) const;
  /// The node's own location (a 0-based byte offset), or -1.
  int64_t Location() const { return Int("location", -1); }
  /// The smallest location in this subtree, or -1.
  int64_t FirstLocation() const;
  /// The raw object.
  simdjson::dom::object object() const { return fields_; }

  /// For a list of String nodes (names): their svals.
  static std::vector<std::string> Strings(const std::vector<PgNode>& names);

 private:
  bool valid_ = false;
  std::string_view kind_;
  simdjson::dom::object fields_;
};

}  // namespace sluice::sql
