#include "config/pipeline_config.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "config/variables.h"
#include "core/time.h"

namespace sluice {
namespace {
/// The most partitions `[source] repartition_partitions` may ask for (a guard against a typo,
/// far above what a cluster serves for one topic).
constexpr int64_t kMaxRepartitionPartitions = 100000;

std::string Loc(const expr::SourceLocation& w) {
  return w.file + ":" + std::to_string(w.line) + ":" + std::to_string(w.column);
}

expr::SourceLocation LocationOf(const toml::node& node, const std::string& file) {
  const auto& src = node.source();
  expr::SourceLocation w;
  w.file = file;
  w.line = static_cast<int>(src.begin.line);
  // Point inside the quotes of a string so expression offsets line up.
  w.column = static_cast<int>(src.begin.column) + (node.is_string() ? 1 : 0);
  return w;
}

Status ErrorAt(const toml::node& node, const std::string& file, const std::string& message) {
  return Status::InvalidArgument(Loc(LocationOf(node, file)) + ": " + message);
}

/// Collects the names of every ${NAME} in the string values of `node`, recursively.
void CollectReferences(const toml::node& node, std::set<std::string>* names) {
  if (const toml::table* t = node.as_table()) {
    for (auto&& [k, v] : *t) CollectReferences(v, names);
  } else if (const toml::array* a = node.as_array()) {
    for (const toml::node& v : *a) CollectReferences(v, names);
  } else if (const auto* str = node.as_string()) {
    CollectVariableNames(str->get(), names);
  }
}

class Reader {
 public:
  Reader(std::string file, const Variables& vars)
      : file_(std::move(file)),
        vars_(vars),
        base_dir_(std::filesystem::path(file_).parent_path()) {}

  Status Fail(const toml::node& node, const std::string& message) const {
    return ErrorAt(node, file_, message);
  }

  /// Fails when `table` holds a key outside `allowed`.
  Status CheckKeys(const toml::table& table, const std::set<std::string>& allowed,
                   const std::string& section) const {
    for (auto&& [key, node] : table) {
      if (!allowed.count(std::string(key.str()))) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return Fail(node, "unknown key '" + std::string(key.str()) + "' in [" + section +
                              "] (expected one of: " + list + ")");
      }
    }
    return Status::OK();
  }

  /// Renders a scalar node as text, substituting variables in strings. A relative path of
  /// `kind` whose first character was written in the file resolves against the file's folder.
  Result<std::string> Scalar(const toml::node& node, const std::string& what,
                             PathKind kind = PathKind::kNone) const {
    if (auto s = node.as_string()) {
      auto r = SubstituteTracked(s->get(), vars_, &uses_, LocationOf(node, file_));
      if (!r.ok()) return Fail(node, r.status().message());
      return Resolve(*r, kind);
    }
    if (auto i = node.as_integer()) return std::to_string(i->get());
    if (auto f = node.as_floating_point()) return FormatDouble(f->get());
    if (auto b = node.as_boolean()) return std::string(b->get() ? "true" : "false");
    return Fail(node, what + " must be a string, number or boolean");
  }

  Result<std::string> String(const toml::table& table, const std::string& key, bool required,
                             const toml::node& parent, const std::string& section,
                             PathKind kind = PathKind::kNone) const {
    const toml::node* node = table.get(key);
    if (!node) {
      if (required) return Fail(parent, "[" + section + "] needs '" + key + "'");
      return std::string();
    }
    if (!node->is_string()) return Fail(*node, "'" + key + "' must be a string");
    return Scalar(*node, key, kind);
  }

  /// Puts the file's folder in front of a relative path written in the file.
  std::string Resolve(const Substituted& s, PathKind kind) const {
    return ResolvePath(s, kind, base_dir_);
  }

  Result<std::vector<Field>> Fields(const toml::node& node) const {
    const toml::table* t = node.as_table();
    if (!t) return Fail(node, "fields must be a table of name = \"type\"");
    std::vector<Field> out;
    for (auto&& [key, value] : *t) {
      Field f;
      f.name = std::string(key.str());
      std::string type_name;
      if (value.is_string()) {
        type_name = value.as_string()->get();
      } else if (const toml::table* ft = value.as_table()) {
        RETURN_IF_ERROR(CheckKeys(*ft, {"type", "path"}, "field " + f.name));
        ASSIGN_OR_RETURN(type_name, String(*ft, "type", true, value, "field " + f.name));
        ASSIGN_OR_RETURN(f.path, String(*ft, "path", false, value, "field " + f.name));
      } else {
        return Fail(value, "field '" + f.name + "' must be a type name or { type, path }");
      }
      if (!ParseTypeName(type_name, &f.type)) {
        return Fail(value, "unknown type '" + type_name +
                               "' (expected int64, double, string, timestamp or bool)");
      }
      out.push_back(std::move(f));
    }
    return out;
  }

  /// Reads every key of `table` except `skip` into connector options.
  Result<Options> CollectOptions(const toml::table& table, const std::set<std::string>& skip,
                                 const toml::node& section_node) const {
    Options options;
    options.section_location = LocationOf(section_node, file_);
    for (auto&& [key, node] : table) {
      std::string k(key.str());
      if (skip.count(k)) continue;
      if (node.is_table()) {
        return Fail(node, "unknown key '" + k + "' (a table is not expected here)");
      }
      std::string text;
      if (const toml::array* arr = node.as_array()) {
        // A list of names (partition_by = ["a", "b"]) reaches the connector as "a, b".
        for (const auto& item : *arr) {
          if (item.is_table() || item.is_array()) {
            return Fail(item, k + " must be a list of strings or numbers");
          }
          ASSIGN_OR_RETURN(std::string one, Scalar(item, k));
          text += (text.empty() ? "" : ", ") + one;
        }
      } else {
        ASSIGN_OR_RETURN(text, Scalar(node, k, IsPathOption(k) ? PathKind::kPath
                                                                          : PathKind::kNone));
      }
      options.Set(k, Option{std::move(text), LocationOf(node, file_)});
    }
    return options;
  }

  /// Reads an array of "name = rhs" strings (plain "name" means "name = name").
  Result<std::vector<ColumnConfig>> Columns(const toml::node& node, const std::string& what) const {
    const toml::array* arr = node.as_array();
    if (!arr) return Fail(node, what + " must be an array of strings");
    std::vector<ColumnConfig> out;
    std::set<std::string> seen;
    for (const toml::node& item : *arr) {
      if (!item.is_string()) return Fail(item, what + " entries must be strings");
      ASSIGN_OR_RETURN(std::string text, Scalar(item, what));
      ColumnConfig c;
      c.where = LocationOf(item, file_);
      size_t i = 0;
      while (i < text.size() && text[i] == ' ') ++i;
      size_t start = i;
      while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
        ++i;
      }
      c.name = text.substr(start, i - start);
      if (c.name.empty()) return Fail(item, what + " entry must start with a column name");
      while (i < text.size() && text[i] == ' ') ++i;
      if (i == text.size()) {
        c.text = c.name;
        c.where.column += static_cast<int>(start);
      } else if (text[i] == '=' && (i + 1 == text.size() || text[i + 1] != '=')) {
        ++i;
        while (i < text.size() && text[i] == ' ') ++i;
        c.text = text.substr(i);
        c.where.column += static_cast<int>(i);
        if (c.text.empty()) return Fail(item, "'" + c.name + " =' needs an expression");
      } else {
        return Fail(item, what + " entry must look like \"name\" or \"name = expression\"");
      }
      if (!seen.insert(c.name).second) return Fail(item, "duplicate column '" + c.name + "'");
      out.push_back(std::move(c));
    }
    return out;
  }

  const std::string& file() const { return file_; }
  const Variables& vars() const { return vars_; }
  std::vector<VariableUse> TakeUses() const { return std::move(uses_); }

 private:
  std::string file_;
  const Variables& vars_;
  std::filesystem::path base_dir_;
  mutable std::vector<VariableUse> uses_;
};

Result<StepConfig> ReadStep(const Reader& r, const toml::node& node, size_t index) {
  const toml::table* t = node.as_table();
  std::string section = "step " + std::to_string(index + 1);
  if (!t) return r.Fail(node, "[[step]] must be a table");
  StepConfig step;
  int kinds = 0;
  auto expr_of = [&](const char* key, const char* kind) -> Result<std::string> {
    const toml::node* n = t->get(key);
    if (!n) {
      return r.Fail(node, std::string("[[step]] ") + std::to_string(index + 1) + ": " + kind +
                              " needs " + key + " = \"...\"");
    }
    if (!n->is_string()) return r.Fail(*n, "'" + std::string(key) + "' must be a string");
    step.where = LocationOf(*n, r.file());
    return r.String(*t, key, true, node, section);
  };
  if (t->contains("let")) {
    ++kinds;
    step.kind = StepConfig::Kind::kLet;
    RETURN_IF_ERROR(r.CheckKeys(*t, {"let", "expr"}, section));
    ASSIGN_OR_RETURN(step.target, r.String(*t, "let", true, node, section));
    ASSIGN_OR_RETURN(step.expr, expr_of("expr", "let"));
  }
  for (auto [key, kind] : {std::pair{"ignore_if", StepConfig::Kind::kIgnoreIf},
                           std::pair{"dead_letter_if", StepConfig::Kind::kDeadLetterIf},
                           std::pair{"filter", StepConfig::Kind::kFilter}}) {
    if (!t->contains(key)) continue;
    ++kinds;
    step.kind = kind;
    RETURN_IF_ERROR(r.CheckKeys(*t, {key, "reason"}, section));
    ASSIGN_OR_RETURN(step.expr, expr_of(key, key));
    ASSIGN_OR_RETURN(step.reason, r.String(*t, "reason", false, node, section));
    if (step.reason.empty()) step.reason = std::string(key) + " " + step.expr;
  }
  if (t->contains("lookup")) {
    ++kinds;
    step.kind = StepConfig::Kind::kLookup;
    RETURN_IF_ERROR(
        r.CheckKeys(*t, {"lookup", "key", "fields", "on_missing", "defaults", "hold_for", "then"}, section));
    ASSIGN_OR_RETURN(step.target, r.String(*t, "lookup", true, node, section));
    ASSIGN_OR_RETURN(step.expr, expr_of("key", "lookup"));
    ASSIGN_OR_RETURN(std::string on_missing, r.String(*t, "on_missing", false, node, section));
    if (!on_missing.empty()) step.on_missing = on_missing;
    if (step.on_missing != "default" && step.on_missing != "drop" &&
        step.on_missing != "dead_letter" && step.on_missing != "hold") {
      return r.Fail(*t->get("on_missing"),
                    "on_missing must be 'default', 'drop', 'dead_letter' or 'hold'");
    }
    if (const toml::node* h = t->get("hold_for")) {
      if (step.on_missing != "hold") return r.Fail(*h, "hold_for needs on_missing = \"hold\"");
      ASSIGN_OR_RETURN(std::string text, r.Scalar(*h, "hold_for"));
      auto d = ParseDurationMicros(text);
      if (!d || *d <= 0) return r.Fail(*h, "hold_for must be a positive duration like \"30s\"");
      step.hold_micros = *d;
    }
    if (const toml::node* th = t->get("then")) {
      if (step.on_missing != "hold") return r.Fail(*th, "then needs on_missing = \"hold\"");
      ASSIGN_OR_RETURN(step.then, r.Scalar(*th, "then"));
      if (step.then != "default" && step.then != "drop" && step.then != "dead_letter") {
        return r.Fail(*th, "then must be 'default', 'drop' or 'dead_letter'");
      }
    }
    const toml::node* fields = t->get("fields");
    if (!fields || !fields->is_array()) return r.Fail(node, "lookup needs fields = [\"...\"]");
    for (const toml::node& f : *fields->as_array()) {
      if (!f.is_string()) return r.Fail(f, "lookup fields must be strings");
      step.fields.push_back(f.as_string()->get());
    }
    if (const toml::node* d = t->get("defaults")) {
      if (!d->is_table()) return r.Fail(*d, "defaults must be a table");
      for (auto&& [k, v] : *d->as_table()) {
        std::string text;
        if (v.is_string()) {
          // A string default is a string literal.
          std::string s = v.as_string()->get();
          std::string quoted = "'";
          for (char c : s) quoted += (c == '\'' ? std::string("''") : std::string(1, c));
          text = quoted + "'";
        } else {
          ASSIGN_OR_RETURN(text, r.Scalar(v, "default"));
        }
        step.defaults[std::string(k.str())] = text;
      }
    }
  }
  if (kinds != 1) {
    return r.Fail(node,
                  "a [[step]] needs exactly one of: let, ignore_if, dead_letter_if, filter, lookup");
  }
  return step;
}

Result<AggregateConfig> ReadAggregate(const Reader& r, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (!t) return r.Fail(node, "[aggregate] must be a table");
  RETURN_IF_ERROR(r.CheckKeys(*t,
                              {"time", "window", "slide", "mode", "window_columns", "keys", "metrics",
                               "watermark_delay", "allowed_lateness", "idle_timeout"},
                              "aggregate"));
  AggregateConfig a;
  a.where = LocationOf(node, r.file());
  ASSIGN_OR_RETURN(a.time_expr, r.String(*t, "time", true, node, "aggregate"));
  a.time_where = LocationOf(*t->get("time"), r.file());
  ASSIGN_OR_RETURN(std::string window, r.String(*t, "window", true, node, "aggregate"));
  auto w = ParseDurationMicros(window);
  if (!w || *w <= 0) return r.Fail(*t->get("window"), "window must be a duration like \"1h\"");
  a.window_micros = *w;
  if (const toml::node* sn = t->get("slide")) {
    ASSIGN_OR_RETURN(std::string slide, r.Scalar(*sn, "slide"));
    auto s = ParseDurationMicros(slide);
    if (!s || *s <= 0) return r.Fail(*sn, "slide must be a duration like \"5m\"");
    if (*s > a.window_micros || a.window_micros % *s != 0) {
      return r.Fail(*sn, "slide must divide the window (" + window + ")");
    }
    if (a.window_micros / *s > kMaxWindowsPerRecord) {
      return r.Fail(*sn, "slide is too small: a window of " + window + " would hold " +
                             std::to_string(a.window_micros / *s) +
                             " overlapping windows, at most " + std::to_string(kMaxWindowsPerRecord));
    }
    if (*s != a.window_micros) a.slide_micros = *s;
  }
  ASSIGN_OR_RETURN(std::string mode, r.String(*t, "mode", false, node, "aggregate"));
  if (!mode.empty()) a.mode = mode;
  if (a.mode != "update" && a.mode != "append") {
    return r.Fail(*t->get("mode"), "mode must be 'update' or 'append'");
  }
  auto duration = [&](const char* key, int64_t* out) -> Status {
    const toml::node* n = t->get(key);
    if (!n) return Status::OK();
    ASSIGN_OR_RETURN(std::string text, r.Scalar(*n, key));
    auto d = ParseDurationMicros(text);
    if (!d) return r.Fail(*n, std::string(key) + " must be a duration like \"10s\"");
    *out = *d;
    return Status::OK();
  };
  RETURN_IF_ERROR(duration("watermark_delay", &a.watermark_delay_micros));
  if (a.mode == "append") a.allowed_lateness_micros = 0;
  RETURN_IF_ERROR(duration("allowed_lateness", &a.allowed_lateness_micros));
  RETURN_IF_ERROR(duration("idle_timeout", &a.idle_timeout_micros));
  if (const toml::node* wc = t->get("window_columns")) {
    if (!wc->is_array()) return r.Fail(*wc, "window_columns must be an array");
    a.window_columns.clear();
    for (const toml::node& c : *wc->as_array()) {
      std::string s = c.is_string() ? std::string(c.as_string()->get()) : "";
      if (s != "window_start" && s != "window_end") {
        return r.Fail(c, "window_columns may hold \"window_start\" and \"window_end\"");
      }
      a.window_columns.push_back(s);
    }
  }
  if (const toml::node* keys = t->get("keys")) {
    ASSIGN_OR_RETURN(a.keys, r.Columns(*keys, "keys"));
  }
  const toml::node* metrics = t->get("metrics");
  if (!metrics) return r.Fail(node, "[aggregate] needs metrics = [\"name = fn(expr)\", ...]");
  ASSIGN_OR_RETURN(a.metrics, r.Columns(*metrics, "metrics"));
  return a;
}

}  // namespace

std::string Options::GetString(const std::string& key, const std::string& fallback) const {
  consumed_[key] = true;
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second.text;
}

std::string Options::Where(const std::string& key) const {
  auto it = values_.find(key);
  return Loc(it == values_.end() ? section_location : it->second.where);
}

Result<int64_t> Options::GetInt(const std::string& key, int64_t fallback) const {
  std::string text = GetString(key);
  if (text.empty()) return fallback;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (*end != '\0') return Status::InvalidArgument(Where(key) + ": " + key + " must be an integer, got '" + text + "'");
  return static_cast<int64_t>(v);
}

Result<double> Options::GetDouble(const std::string& key, double fallback) const {
  std::string text = GetString(key);
  if (text.empty()) return fallback;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (*end != '\0') return Status::InvalidArgument(Where(key) + ": " + key + " must be a number, got '" + text + "'");
  return v;
}

Result<bool> Options::GetBool(const std::string& key, bool fallback) const {
  std::string text = GetString(key);
  if (text.empty()) return fallback;
  if (text == "true") return true;
  if (text == "false") return false;
  return Status::InvalidArgument(Where(key) + ": " + key + " must be true or false");
}

Result<int64_t> Options::GetDurationMicros(const std::string& key, int64_t fallback) const {
  std::string text = GetString(key);
  if (text.empty()) return fallback;
  auto d = ParseDurationMicros(text);
  if (!d) return Status::InvalidArgument(Where(key) + ": " + key + " must be a duration like \"5s\", got '" + text + "'");
  return *d;
}

Status Options::RejectUnconsumed(const std::string& section, const std::vector<std::string>& known) const {
  for (const auto& [key, value] : values_) {
    if (!consumed_.count(key)) {
      // A declared key the connector did not read (it does not apply here) gets no hint.
      std::string hint = ClosestName(key, known);
      if (hint == key) hint.clear();
      return Status::InvalidArgument(Loc(value.where) + ": unknown key '" + key + "' in [" +
                                     section + "]" + (hint.empty() ? "" : " (did you mean " + hint + "?)"));
    }
  }
  return Status::OK();
}

std::string DescribeVariable(const VariableUse& v) {
  return v.name + " = \"" + v.value + "\" (" + v.origin_label + ")";
}

std::string ClosestName(const std::string& name, const std::vector<std::string>& candidates) {
  auto upper = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string a = upper(name);
  std::string best;
  size_t best_distance = std::max<size_t>(2, a.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    const std::string b = upper(candidate);
    // Levenshtein distance, one row at a time.
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    if (row[b.size()] < best_distance) {
      best_distance = row[b.size()];
      best = candidate;
    }
  }
  return best;
}

Result<PipelineConfig> ParsePipelineConfig(const std::string& text, const std::string& file,
                                           const Variables& vars) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return Status::InvalidArgument(file + ":" + std::to_string(b.line) + ":" +
                                   std::to_string(b.column) + ": " + std::string(e.description()));
  }
  if (vars.reject_unused) {
    std::set<std::string> referenced;
    CollectReferences(root, &referenced);
    RETURN_IF_ERROR(RejectUnusedVariables(referenced, vars, file));
  }
  Reader r(file, vars);
  PipelineConfig cfg;
  cfg.file = file;
  RETURN_IF_ERROR(r.CheckKeys(
      root, {"pipeline", "source", "dimension", "step", "aggregate", "select", "sink",
             "dead_letter"},
      "top level"));

  // [pipeline]
  const toml::table* p = root["pipeline"].as_table();
  if (!p) return Status::InvalidArgument(file + ":1:1: missing [pipeline] table with name = \"...\"");
  RETURN_IF_ERROR(
      r.CheckKeys(*p, {"name", "checkpoint_interval", "workers", "max_pending", "catch_up_timeout",
                       "shutdown_timeout"},
                  "pipeline"));
  ASSIGN_OR_RETURN(cfg.name, r.String(*p, "name", true, *p, "pipeline"));
  if (const toml::node* ci = p->get("checkpoint_interval")) {
    ASSIGN_OR_RETURN(std::string t, r.Scalar(*ci, "checkpoint_interval"));
    auto d = ParseDurationMicros(t);
    if (!d || *d <= 0) return r.Fail(*ci, "checkpoint_interval must be a duration like \"1s\"");
    cfg.checkpoint_interval_micros = *d;
  }
  for (auto [key, target] : {std::pair{"catch_up_timeout", &cfg.catch_up_timeout_micros},
                             std::pair{"shutdown_timeout", &cfg.shutdown_timeout_micros}}) {
    const toml::node* n = p->get(key);
    if (!n) continue;
    ASSIGN_OR_RETURN(std::string t, r.Scalar(*n, key));
    auto d = ParseDurationMicros(t);
    if (!d || *d <= 0) return r.Fail(*n, std::string(key) + " must be a duration like \"30s\"");
    *target = *d;
  }
  if (const toml::node* w = p->get("workers")) {
    ASSIGN_OR_RETURN(std::string t, r.Scalar(*w, "workers"));
    char* end = nullptr;
    long v = std::strtol(t.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > 256) return r.Fail(*w, "workers must be 0..256");
    cfg.workers = static_cast<int>(v);
  }

  if (const toml::node* mp = p->get("max_pending")) {
    ASSIGN_OR_RETURN(std::string t, r.Scalar(*mp, "max_pending"));
    char* end = nullptr;
    long long v = std::strtoll(t.c_str(), &end, 10);
    if (*end != '\0' || v < 1) return r.Fail(*mp, "max_pending must be a positive integer");
    cfg.max_pending = v;
  }

  // [source]
  const toml::node* sn = root.get("source");
  if (!sn || !sn->is_table()) {
    return Status::InvalidArgument(file + ":1:1: missing [source] table with uri = \"...\"");
  }
  const toml::table& s = *sn->as_table();
  ASSIGN_OR_RETURN(cfg.source.name, r.String(s, "name", false, *sn, "source"));
  if (cfg.source.name.empty()) cfg.source.name = "source";
  ASSIGN_OR_RETURN(cfg.source.uri, r.String(s, "uri", true, *sn, "source", PathKind::kUri));
  cfg.source.pipeline = cfg.name;
  if (const toml::node* f = s.get("fields")) {
    ASSIGN_OR_RETURN(cfg.source.fields, r.Fields(*f));
  }
  if (const toml::node* kb = s.get("keyed_by")) {
    // Read here, not by the connector: it is a promise about the input's partitioning that the
    // runner relies on (append mode keeps its open windows per partition then).
    const toml::array* arr = kb->as_array();
    if (!arr) return r.Fail(*kb, "[source] keyed_by must be a list of group-key column names, like [\"k\"]");
    if (arr->empty()) {
      return r.Fail(*kb, "[source] keyed_by is empty: name the group-key column(s) of [aggregate] whose "
                         "values decide a record's partition, or leave keyed_by out");
    }
    cfg.source.keyed_by_list_where = LocationOf(*kb, file);
    for (const toml::node& item : *arr) {
      if (!item.is_string()) return r.Fail(item, "[source] keyed_by entries must be strings (column names)");
      ASSIGN_OR_RETURN(std::string name, r.Scalar(item, "keyed_by"));
      if (std::find(cfg.source.keyed_by.begin(), cfg.source.keyed_by.end(), name) != cfg.source.keyed_by.end()) {
        return r.Fail(item, "[source] keyed_by names '" + name + "' twice");
      }
      cfg.source.keyed_by.push_back(std::move(name));
      cfg.source.keyed_by_where.push_back(LocationOf(item, file));
    }
  }
  if (const toml::node* rp = s.get("repartition_partitions")) {
    // Read here, not by the connector: the planner decides whether the pipeline repartitions.
    ASSIGN_OR_RETURN(std::string t, r.Scalar(*rp, "repartition_partitions"));
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0' || errno != 0 || v < 1 || v > kMaxRepartitionPartitions) {
      return r.Fail(*rp, "[source] repartition_partitions must be a positive integer (the partitions of the "
                         "internal topic <pipeline>-repartition, at most " +
                             std::to_string(kMaxRepartitionPartitions) + "), not \"" + t + "\"");
    }
    cfg.source.repartition_partitions = static_cast<int32_t>(v);
    cfg.source.repartition_partitions_where = LocationOf(*rp, file);
  }
  if (const toml::node* rn = s.get("repartition")) {
    // Read here, not by the connector: the planner decides whether the pipeline repartitions.
    ASSIGN_OR_RETURN(std::string t, r.Scalar(*rn, "repartition"));
    if (t != "true" && t != "false") {
      return r.Fail(*rn, "[source] repartition must be true or false (false: run in one stage, whose windows are "
                         "exact over one process only), not \"" + t + "\"");
    }
    cfg.source.repartition = t == "true";
    cfg.source.repartition_set = true;
    cfg.source.repartition_where = LocationOf(*rn, file);
  }
  ASSIGN_OR_RETURN(cfg.source.options,
                   r.CollectOptions(s, {"name", "uri", "fields", "keyed_by", "repartition_partitions", "repartition"},
                                    *sn));

  // [dimension.NAME]
  if (const toml::node* dn = root.get("dimension")) {
    if (!dn->is_table()) return r.Fail(*dn, "[dimension.NAME] tables expected");
    for (auto&& [key, node] : *dn->as_table()) {
      const toml::table* d = node.as_table();
      if (!d) return r.Fail(node, "[dimension." + std::string(key.str()) + "] must be a table");
      DimensionConfig dim;
      dim.name = std::string(key.str());
      std::string section = "dimension." + dim.name;
      ASSIGN_OR_RETURN(dim.uri, r.String(*d, "uri", true, node, section, PathKind::kUri));
      dim.uri_where = LocationOf(*d->get("uri"), file);
      ASSIGN_OR_RETURN(dim.key, r.String(*d, "key", true, node, section));
      const toml::node* f = d->get("fields");
      if (!f) return r.Fail(node, "[" + section + "] needs fields = { name = \"type\" }");
      ASSIGN_OR_RETURN(dim.fields, r.Fields(*f));
      ASSIGN_OR_RETURN(dim.options, r.CollectOptions(*d, {"uri", "key", "fields"}, node));
      cfg.dimensions[dim.name] = std::move(dim);
    }
  }

  // [[step]]
  if (const toml::node* st = root.get("step")) {
    const toml::array* arr = st->as_array();
    if (!arr) return r.Fail(*st, "steps are written as [[step]] tables");
    for (size_t i = 0; i < arr->size(); ++i) {
      ASSIGN_OR_RETURN(StepConfig step, ReadStep(r, *arr->get(i), i));
      cfg.steps.push_back(std::move(step));
    }
  }

  if (const toml::node* a = root.get("aggregate")) {
    ASSIGN_OR_RETURN(cfg.aggregate, ReadAggregate(r, *a));
  }
  if (const toml::node* sel = root.get("select")) {
    if (cfg.aggregate) return r.Fail(*sel, "select and [aggregate] cannot be combined");
    ASSIGN_OR_RETURN(cfg.select, r.Columns(*sel, "select"));
  }

  // [sink]
  const toml::node* kn = root.get("sink");
  if (!kn || !kn->is_table()) {
    return Status::InvalidArgument(file + ":1:1: missing [sink] table with uri = \"...\"");
  }
  const toml::table& k = *kn->as_table();
  ASSIGN_OR_RETURN(cfg.sink.uri, r.String(k, "uri", true, *kn, "sink", PathKind::kUri));
  ASSIGN_OR_RETURN(cfg.sink.table, r.String(k, "table", false, *kn, "sink"));
  ASSIGN_OR_RETURN(cfg.sink.options, r.CollectOptions(k, {"uri", "table"}, *kn));

  if (const toml::node* dl = root.get("dead_letter")) {
    const toml::table* d = dl->as_table();
    if (!d) return r.Fail(*dl, "[dead_letter] must be a table");
    RETURN_IF_ERROR(r.CheckKeys(*d, {"to", "path"}, "dead_letter"));
    ASSIGN_OR_RETURN(std::string to, r.String(*d, "to", false, *dl, "dead_letter"));
    if (to.rfind("file:", 0) == 0) {
      // A file named in the pipeline file resolves against the file's folder.
      ASSIGN_OR_RETURN(to, r.String(*d, "to", false, *dl, "dead_letter", PathKind::kUri));
    }
    ASSIGN_OR_RETURN(std::string path,
                     r.String(*d, "path", false, *dl, "dead_letter", PathKind::kUri));
    const toml::node* at = d->get("to") ? d->get("to") : d->get("path");
    if (at) cfg.dead_letter_where = Loc(LocationOf(*at, file));
    if (d->get("to") && d->get("path")) {
      return r.Fail(*d->get("path"), "[dead_letter] takes 'to' or the older 'path', not both");
    }
    if (!path.empty()) {
      // `path = "X"` (or "file:X") is the older spelling of `to = "file:X"`; an empty one
      // means the default.
      if (path.rfind("file:", 0) == 0) path = path.substr(5);
      if (path.empty()) return r.Fail(*d->get("path"), "[dead_letter] path \"file:\" names no file");
      cfg.dead_letter_store = PipelineConfig::DeadLetterStore::kFile;
      cfg.dead_letter_path = path;
    } else if (to == "sink") {
      cfg.dead_letter_store = PipelineConfig::DeadLetterStore::kSink;
    } else if (to.rfind("file:", 0) == 0 && to.size() > 5) {
      cfg.dead_letter_store = PipelineConfig::DeadLetterStore::kFile;
      cfg.dead_letter_path = to.substr(5);
    } else if (d->get("to")) {
      return r.Fail(*d->get("to"), "[dead_letter] to must be \"sink\" (the sink's own store) or "
                                   "\"file:PATH\" (an NDJSON file), not \"" + to + "\"");
    }
  }
  cfg.variables = r.TakeUses();
  return cfg;
}

Result<PipelineConfig> LoadPipelineConfig(const std::string& path, const Variables& vars) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open pipeline file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePipelineConfig(ss.str(), path, vars);
}

}  // namespace sluice
