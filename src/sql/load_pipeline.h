#pragma once

#include <string>

#include "config/pipeline_config.h"
#include "core/status.h"

namespace sluice {

/// Reads a pipeline file in either language: a name ending in .sql (any case) is SQL
/// (sql::LoadSqlPipeline), anything else TOML (LoadPipelineConfig). Both give the same
/// PipelineConfig, which BuildPlan turns into the one plan.
Result<PipelineConfig> LoadPipeline(const std::string& path, const Variables& vars);

}  // namespace sluice
