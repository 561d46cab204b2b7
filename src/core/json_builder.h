#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.h"

namespace sluice {

/// Builds a JSON document in one pass, inserting commas itself. Not thread-safe; misuse
/// (a value without a key inside an object) is a programming error, caught by debug asserts.
class JsonBuilder {
 public:
  JsonBuilder& BeginObject();
  JsonBuilder& EndObject();
  JsonBuilder& BeginArray();
  JsonBuilder& EndArray();
  JsonBuilder& Key(std::string_view key);
  JsonBuilder& String(std::string_view v);
  JsonBuilder& Int(int64_t v);
  /// Writes a finite double in its shortest round-trip form; NaN and infinities become null.
  JsonBuilder& Double(double v);
  JsonBuilder& Bool(bool v);
  JsonBuilder& Null();
  /// Writes a value: numbers as numbers, timestamps as "YYYY-MM-DD HH:MM:SS", null as null.
  JsonBuilder& ValueOf(const Value& v);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Separate();
  std::string out_;
  std::vector<bool> first_;  ///< per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace sluice
