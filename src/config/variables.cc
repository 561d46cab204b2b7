#include "config/variables.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace sluice {
namespace {

/// The [source] and [sink] options that name files.
std::set<std::string>& PathOptions() {
  static std::set<std::string> names;
  return names;
}

/// Looks `name` up as SubstituteVariables does and says where the value came from.
std::optional<std::string> LookupWithOrigin(const Variables& vars, const std::string& name,
                                            VariableUse::Origin* origin) {
  auto it = vars.values.find(name);
  if (it != vars.values.end()) {
    *origin = VariableUse::Origin::kValues;
    return it->second;
  }
  if (vars.use_environment) {
    if (const char* env = std::getenv(name.c_str())) {
      *origin = VariableUse::Origin::kEnvironment;
      return std::string(env);
    }
  }
  return std::nullopt;
}

}  // namespace

Result<Substituted> SubstituteTracked(const std::string& text, const Variables& vars,
                                      std::vector<VariableUse>* uses,
                                      const expr::SourceLocation& where) {
  Substituted out;
  auto append = [&out](const std::string& part, bool from_file) {
    out.text += part;
    out.from_file.insert(out.from_file.end(), part.size(), from_file);
  };
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      size_t close = text.find('}', i + 2);
      if (close == std::string::npos) {
        return Status::InvalidArgument("unterminated ${ in '" + text + "'");
      }
      std::string body = text.substr(i + 2, close - i - 2);
      std::string name = body;
      std::optional<std::string> fallback;
      size_t dash = body.find(":-");
      if (dash != std::string::npos) {
        name = body.substr(0, dash);
        fallback = body.substr(dash + 2);
      }
      VariableUse use;
      use.name = name;
      use.where = where;
      auto value = LookupWithOrigin(vars, name, &use.origin);
      if (value && (!value->empty() || !fallback)) {
        use.value = *value;
        append(*value, false);
      } else if (fallback) {
        use.value = *fallback;
        use.origin = VariableUse::Origin::kDefault;
        append(*fallback, true);
      } else {
        return Status::InvalidArgument("variable " + name +
                                       " is not set (pass --var " + name +
                                       "=VALUE or set it in the environment)");
      }
      switch (use.origin) {
        case VariableUse::Origin::kValues: use.origin_label = vars.values_label; break;
        case VariableUse::Origin::kEnvironment: use.origin_label = "environment"; break;
        case VariableUse::Origin::kDefault: use.origin_label = "default"; break;
      }
      if (uses && std::none_of(uses->begin(), uses->end(),
                               [&](const VariableUse& u) { return u.name == name; })) {
        uses->push_back(std::move(use));
      }
      i = close + 1;
    } else {
      append(std::string(1, text[i++]), true);
    }
  }
  return out;
}

void DeclarePathOption(const std::string& name) { PathOptions().insert(name); }

bool IsPathOption(const std::string& name) { return PathOptions().count(name) > 0; }

std::string ResolvePath(const Substituted& s, PathKind kind, const std::filesystem::path& base_dir) {
  const std::string& text = s.text;
  if (kind == PathKind::kNone || base_dir.empty()) return text;
  size_t start = 0;
  size_t end = text.size();
  if (kind == PathKind::kUri) {
    size_t colon = text.find(':');
    bool has_scheme = colon != std::string::npos && colon > 0;
    for (size_t i = 0; has_scheme && i < colon; ++i) {
      const char c = text[i];
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-') has_scheme = false;
    }
    if (has_scheme) {
      const std::string scheme = text.substr(0, colon);
      if (scheme != "file" && scheme != "sqlite" && scheme != "parquet" && scheme != "ndjson") {
        return text;
      }
      start = colon + 1;
      if (text.compare(start, 2, "//") == 0) start += 2;
      end = std::min(end, text.find('?', start));
    }
  }
  if (start >= end || text[start] == '/' || text[start] == '~' || !s.from_file[start]) {
    return text;
  }
  const std::string path = text.substr(start, end - start);
  return text.substr(0, start) + (base_dir / path).lexically_normal().string() +
         text.substr(end);
}

void CollectVariableNames(std::string_view text, std::set<std::string>* names) {
  for (size_t i = text.find("${"); i != std::string::npos; i = text.find("${", i + 2)) {
    size_t close = text.find('}', i + 2);
    if (close == std::string::npos) break;
    std::string body(text.substr(i + 2, close - i - 2));
    names->insert(body.substr(0, body.find(":-")));
  }
}

Status RejectUnusedVariables(const std::set<std::string>& referenced, const Variables& vars,
                             const std::string& file) {
  for (const auto& [name, value] : vars.values) {
    if (referenced.count(name)) continue;
    std::vector<std::string> names(referenced.begin(), referenced.end());
    std::string hint = ClosestName(name, names);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    return Status::InvalidArgument(
        vars.values_label + " " + name + ": " + file + " does not reference ${" + name + "}" +
        (hint.empty() ? "" : " (did you mean " + hint + "?)") + "; it references " +
        (list.empty() ? std::string("no variables") : list));
  }
  return Status::OK();
}

std::optional<std::string> Variables::Lookup(const std::string& name) const {
  auto it = values.find(name);
  if (it != values.end()) return it->second;
  if (use_environment) {
    if (const char* env = std::getenv(name.c_str())) return std::string(env);
  }
  return std::nullopt;
}

Result<std::string> SubstituteVariables(const std::string& text, const Variables& vars) {
  ASSIGN_OR_RETURN(Substituted s, SubstituteTracked(text, vars, nullptr, {}));
  return std::move(s.text);
}

}  // namespace sluice
