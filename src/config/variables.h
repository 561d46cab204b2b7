#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"

/// ${NAME} substitution and path resolution, shared by the pipeline-file readers (TOML here,
/// SQL in src/sql/): a value is substituted the same way, and a relative path written in the
/// file resolves against the file's folder, whichever language the file is written in.
namespace sluice {

/// Text after variable substitution, with where each character came from.
struct Substituted {
  std::string text;
  std::vector<bool> from_file;  ///< per character: written in the file (literal or a default)
};

/// Replaces ${NAME} and ${NAME:-default}; records each variable's first use in `uses` (when
/// set), at `where`.
Result<Substituted> SubstituteTracked(const std::string& text, const Variables& vars,
                                      std::vector<VariableUse>* uses,
                                      const expr::SourceLocation& where);

/// How a setting's value is a path that resolves against the pipeline file's directory.
enum class PathKind {
  kNone,
  kUri,   ///< a URI whose file, sqlite:, parquet: or ndjson: path part is a path
  kPath,  ///< a plain path
};

/// Puts `base_dir` in front of a relative path of `kind` whose first character was written in
/// the file (not taken from a variable's value).
std::string ResolvePath(const Substituted& s, PathKind kind, const std::filesystem::path& base_dir);

/// True when `name` was declared a path option (DeclarePathOption).
bool IsPathOption(const std::string& name);

/// Adds the NAME of every ${NAME} and ${NAME:-default} in `text` to `names`.
void CollectVariableNames(std::string_view text, std::set<std::string>* names);

/// Fails when `vars.values` holds a name that `file` does not reference (`referenced`), with a
/// did-you-mean hint and the list of the names it does reference.
Status RejectUnusedVariables(const std::set<std::string>& referenced, const Variables& vars,
                             const std::string& file);

}  // namespace sluice
