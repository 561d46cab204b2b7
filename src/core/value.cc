#include "core/value.h"

#include <functional>

#include "core/time.h"

namespace sluice {

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kNull: return "null";
    case Type::kBool: return "bool";
    case Type::kInt64: return "int64";
    case Type::kDouble: return "double";
    case Type::kString: return "string";
    case Type::kTimestamp: return "timestamp";
  }
  return "unknown";
}

bool ParseTypeName(std::string_view name, Type* out) {
  if (name == "bool" || name == "boolean") {
    *out = Type::kBool;
  } else if (name == "int64" || name == "int" || name == "integer" || name == "bigint") {
    *out = Type::kInt64;
  } else if (name == "double" || name == "float" || name == "float64") {
    *out = Type::kDouble;
  } else if (name == "string" || name == "text") {
    *out = Type::kString;
  } else if (name == "timestamp" || name == "time") {
    *out = Type::kTimestamp;
  } else {
    return false;
  }
  return true;
}

double Value::AsDouble() const {
  switch (type()) {
    case Type::kInt64: return static_cast<double>(int_value());
    case Type::kDouble: return double_value();
    case Type::kTimestamp: return static_cast<double>(time_value().micros);
    case Type::kBool: return bool_value() ? 1.0 : 0.0;
    default: return 0.0;
  }
}

std::string Value::ToString() const {
  switch (type()) {
    case Type::kNull: return "";
    case Type::kBool: return bool_value() ? "true" : "false";
    case Type::kInt64: return std::to_string(int_value());
    case Type::kDouble: return FormatDouble(double_value());
    case Type::kString: return string_value();
    case Type::kTimestamp: return FormatTimestamp(time_value().micros);
  }
  return "";
}

size_t Value::Hash() const {
  switch (type()) {
    case Type::kNull: return 0x9e3779b97f4a7c15ULL;
    case Type::kBool: return bool_value() ? 1 : 2;
    case Type::kInt64: return std::hash<int64_t>{}(int_value()) * 0x9e3779b97f4a7c15ULL;
    case Type::kDouble: return std::hash<double>{}(double_value());
    case Type::kString: return std::hash<std::string>{}(string_value());
    case Type::kTimestamp: return std::hash<int64_t>{}(time_value().micros) ^ 0x5555;
  }
  return 0;
}

}  // namespace sluice
