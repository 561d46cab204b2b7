#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace sluice {

/// Names the logical types a field or expression can have. Every type is nullable.
enum class Type : uint8_t { kNull, kBool, kInt64, kDouble, kString, kTimestamp };

/// Returns the lower-case name used in pipeline files ("int64", "timestamp", ...).
std::string_view TypeName(Type type);
/// Parses a type name from a pipeline file; accepts the aliases "int", "float", "text", "bool".
bool ParseTypeName(std::string_view name, Type* out);

/// Stores a UTC instant as microseconds since the Unix epoch.
struct Timestamp {
  int64_t micros = 0;
  friend bool operator==(Timestamp a, Timestamp b) { return a.micros == b.micros; }
  friend auto operator<=>(Timestamp a, Timestamp b) { return a.micros <=> b.micros; }
};

/// Holds one nullable, typed value. Small and copyable; strings own their bytes.
class Value {
 public:
  Value() = default;
  static Value Null() { return {}; }
  static Value Bool(bool v) { return Value(Storage(std::in_place_index<1>, v)); }
  static Value Int(int64_t v) { return Value(Storage(std::in_place_index<2>, v)); }
  static Value Double(double v) { return Value(Storage(std::in_place_index<3>, v)); }
  static Value String(std::string v) { return Value(Storage(std::in_place_index<4>, std::move(v))); }
  static Value String(std::string_view v) { return String(std::string(v)); }
  static Value String(const char* v) { return String(std::string(v)); }
  static Value Time(Timestamp v) { return Value(Storage(std::in_place_index<5>, v)); }
  static Value TimeMicros(int64_t micros) { return Time(Timestamp{micros}); }

  /// Makes this the string `v`, reusing the buffer when it already holds a string (decoders
  /// refill the same row slots record after record without allocating).
  void SetString(std::string_view v) {
    if (auto* s = std::get_if<4>(&data_)) {
      s->assign(v.data(), v.size());
    } else {
      data_.emplace<4>(v);
    }
  }

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return data_.index() == 0; }

  bool bool_value() const { return std::get<1>(data_); }
  int64_t int_value() const { return std::get<2>(data_); }
  double double_value() const { return std::get<3>(data_); }
  const std::string& string_value() const { return std::get<4>(data_); }
  Timestamp time_value() const { return std::get<5>(data_); }

  /// Returns the value as a double for int64, double and timestamp (micros); 0 otherwise.
  double AsDouble() const;

  /// Renders the value for logs, keys and text sinks: null is "", timestamps are
  /// "YYYY-MM-DD HH:MM:SS[.ffffff]".
  std::string ToString() const;

  friend bool operator==(const Value& a, const Value& b) { return a.data_ == b.data_; }
  /// Orders values of the same type naturally; null sorts first; mixed types by type tag.
  friend bool operator<(const Value& a, const Value& b) { return a.data_ < b.data_; }

  size_t Hash() const;

 private:
  using Storage = std::variant<std::monostate, bool, int64_t, double, std::string, Timestamp>;
  explicit Value(Storage s) : data_(std::move(s)) {}
  Storage data_;
};

}  // namespace sluice
