#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.h"

namespace sluice {

/// Describes one named, typed, nullable field. `path` is where a decoder finds it: a CSV column
/// name, or a dotted JSON path such as "location.street.number"; empty means the same as `name`.
struct Field {
  std::string name;
  Type type = Type::kString;
  std::string path;

  const std::string& source_path() const { return path.empty() ? name : path; }
};

/// Lists fields in slot order. A record's values live in a row whose slot i holds field i.
class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<Field> fields) : fields_(std::move(fields)) {}

  size_t size() const { return fields_.size(); }
  const Field& field(size_t i) const { return fields_[i]; }
  const std::vector<Field>& fields() const { return fields_; }

  /// Returns the slot of the field called `name`, if any.
  std::optional<size_t> IndexOf(std::string_view name) const {
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (fields_[i].name == name) return i;
    }
    return std::nullopt;
  }

  /// Appends a field and returns its slot.
  size_t Add(Field f) {
    fields_.push_back(std::move(f));
    return fields_.size() - 1;
  }

 private:
  std::vector<Field> fields_;
};

}  // namespace sluice
