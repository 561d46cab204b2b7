#include "sql/load_pipeline.h"

#include <algorithm>
#include <cctype>

#include "sql/sql_pipeline.h"

namespace sluice {

Result<PipelineConfig> LoadPipeline(const std::string& path, const Variables& vars) {
  std::string ext = path.size() >= 4 ? path.substr(path.size() - 4) : "";
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".sql") return sql::LoadSqlPipeline(path, vars);
  return LoadPipelineConfig(path, vars);
}

}  // namespace sluice
