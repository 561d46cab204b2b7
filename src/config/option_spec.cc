#include "config/option_spec.h"

#include <cassert>
#include <cstdlib>
#include <sstream>

#include "core/time.h"

namespace sluice {
namespace {

bool IsPrefix(const OptionSpec& spec) {
  return spec.name.size() >= 2 && spec.name.compare(spec.name.size() - 2, 2, ".*") == 0;
}

/// "a, b or c"
std::string OneOf(const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + ("'" + values[i] + "'");
  }
  return out;
}

/// Escapes `|` so a cell of a Markdown table stays one cell.
std::string Cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string_view OptionTypeName(OptionType type) {
  switch (type) {
    case OptionType::kString: return "string";
    case OptionType::kInt: return "integer";
    case OptionType::kNumber: return "number";
    case OptionType::kBool: return "bool";
    case OptionType::kDuration: return "duration";
    case OptionType::kPath: return "path";
    case OptionType::kList: return "list";
  }
  return "string";
}

const OptionSpec* OptionTable::Find(std::string_view key) const {
  for (const OptionSpec& spec : options) {
    const std::string_view name = spec.name;
    if (IsPrefix(spec) ? key.substr(0, name.size() - 1) == name.substr(0, name.size() - 1) : key == name) {
      return &spec;
    }
  }
  return nullptr;
}

std::vector<std::string> OptionTable::Names() const {
  std::vector<std::string> names;
  for (const OptionSpec& spec : options) {
    if (!IsPrefix(spec)) names.push_back(spec.name);
  }
  return names;
}

const OptionSpec& OptionReader::Spec(const std::string& key) const {
  const OptionSpec* spec = table_.Find(key);
  assert(spec != nullptr && "an option read must be declared in the connector's OptionTable");
  if (spec == nullptr) {
    static const OptionSpec kUndeclared;
    return kUndeclared;
  }
  return *spec;
}

Status OptionReader::BadDefault(const OptionSpec& spec) const {
  return Status::Internal("option " + spec.name + " of [" + section_ + "] declares the default '" +
                          spec.default_value + "', which is not a " +
                          std::string(OptionTypeName(spec.type)));
}

bool OptionReader::Has(const std::string& key) const {
  (void)Spec(key);
  return options_.Has(key);
}

std::string OptionReader::String(const std::string& key) const {
  return options_.GetString(key, Spec(key).default_value);
}

std::string OptionReader::String(const std::string& key, const std::string& fallback) const {
  (void)Spec(key);
  return options_.GetString(key, fallback);
}

Result<std::string> OptionReader::Choice(const std::string& key) const {
  const OptionSpec& spec = Spec(key);
  std::string value = options_.GetString(key, spec.default_value);
  if (value.empty() && spec.default_value.empty()) return value;  // unset, no default: the caller decides
  for (const std::string& allowed : spec.allowed) {
    if (value == allowed) return value;
  }
  return Status::InvalidArgument(Where(key) + ": " + key + " must be " + OneOf(spec.allowed) +
                                 ", got '" + value + "'");
}

Result<int64_t> OptionReader::Int(const std::string& key) const {
  const OptionSpec& spec = Spec(key);
  int64_t fallback = 0;
  if (!spec.default_value.empty()) {
    char* end = nullptr;
    fallback = std::strtoll(spec.default_value.c_str(), &end, 10);
    if (*end != '\0') return BadDefault(spec);
  }
  return options_.GetInt(key, fallback);
}

Result<int64_t> OptionReader::Int(const std::string& key, int64_t fallback) const {
  (void)Spec(key);
  return options_.GetInt(key, fallback);
}

Result<double> OptionReader::Number(const std::string& key) const {
  const OptionSpec& spec = Spec(key);
  double fallback = 0;
  if (!spec.default_value.empty()) {
    char* end = nullptr;
    fallback = std::strtod(spec.default_value.c_str(), &end);
    if (*end != '\0') return BadDefault(spec);
  }
  return options_.GetDouble(key, fallback);
}

Result<double> OptionReader::Number(const std::string& key, double fallback) const {
  (void)Spec(key);
  return options_.GetDouble(key, fallback);
}

Result<bool> OptionReader::Bool(const std::string& key) const {
  const OptionSpec& spec = Spec(key);
  if (spec.default_value != "true" && spec.default_value != "false") return BadDefault(spec);
  return options_.GetBool(key, spec.default_value == "true");
}

Result<int64_t> OptionReader::Duration(const std::string& key) const {
  const OptionSpec& spec = Spec(key);
  int64_t fallback = 0;
  if (!spec.default_value.empty()) {
    auto d = ParseDurationMicros(spec.default_value);
    if (!d) return BadDefault(spec);
    fallback = *d;
  }
  return options_.GetDurationMicros(key, fallback);
}

Result<int64_t> OptionReader::Duration(const std::string& key, int64_t fallback) const {
  (void)Spec(key);
  return options_.GetDurationMicros(key, fallback);
}

std::vector<std::string> OptionReader::KeysWithPrefix(const std::string& prefix) const {
  (void)Spec(prefix + "*");
  return options_.KeysWithPrefix(prefix);
}

Status OptionReader::Finish() const { return options_.RejectUnconsumed(section_, table_.Names()); }

std::string RenderConnectorReference(const std::vector<ConnectorDoc>& connectors) {
  std::ostringstream out;
  out << "# Connector reference\n\n"
      << "<!-- Generated by `sluice connectors` from each connector's option table; do not edit.\n"
      << "     Refresh with: make docs (build/sluice connectors -o docs/connectors.md) -->\n\n"
      << "Every connector is named by the scheme of its `uri`. The keys below go in the\n"
      << "pipeline file's `[source]`, `[sink]` or `[dimension.NAME]` table beside `uri`;\n"
      << "a key the connector does not read is an error naming its file, line and column. Durations\n"
      << "are written like \"250ms\", \"10s\" or \"1h\"; relative paths resolve against the\n"
      << "pipeline file's directory. README.md explains how each connector behaves.\n";
  for (const char* kind : {"source", "sink", "dimension"}) {
    out << "\n## " << (std::string(kind) == "source"  ? "Sources"
                       : std::string(kind) == "sink" ? "Sinks"
                                                     : "Dimensions")
        << "\n";
    for (const ConnectorDoc& c : connectors) {
      if (c.kind != kind || c.table == nullptr) continue;
      const OptionTable& t = *c.table;
      out << "\n### " << c.scheme << " " << kind << "\n\n";
      if (!t.uri.empty()) out << "`uri = \"" << t.uri << "\"`\n\n";
      if (!t.summary.empty()) out << t.summary << "\n\n";
      if (t.options.empty()) {
        out << "No options.\n";
        continue;
      }
      out << "| option | type | default | description |\n"
          << "|---|---|---|---|\n";
      for (const OptionSpec& spec : t.options) {
        std::string def = !spec.default_note.empty() ? spec.default_note
                          : spec.default_value.empty() ? std::string()
                                                       : "`" + spec.default_value + "`";
        std::string help = spec.help;
        if (!spec.allowed.empty()) {
          std::string values;
          for (size_t i = 0; i < spec.allowed.size(); ++i) {
            values += (i ? ", " : "") + ("`" + spec.allowed[i] + "`");
          }
          help += (help.empty() ? "" : " ") + ("One of " + values + ".");
        }
        out << "| `" << spec.name << "` | " << OptionTypeName(spec.type) << " | " << Cell(def) << " | "
            << Cell(help) << " |\n";
      }
    }
  }
  return out.str();
}

}  // namespace sluice
