#pragma once

#include <string>

#include "config/pipeline_config.h"
#include "core/status.h"

namespace sluice::sql {

/// Reads a pipeline written in SQL (the PostgreSQL dialect, parsed by libpg_query) into the
/// same PipelineConfig a TOML file gives: CREATE TABLE declares sources and dimensions, the one
/// CREATE MATERIALIZED VIEW ... AS SELECT (or INSERT INTO table SELECT) is the query and its
/// sink, SET pipeline.x sets [pipeline]. See src/sql/README.md for the dialect.
///
/// Errors are "file:line:column: message" (columns in characters). ${NAME} is substituted in
/// string literals only; relative paths written in the file resolve against its folder.
Result<PipelineConfig> ParseSqlPipeline(const std::string& text, const std::string& file,
                                        const Variables& vars);
/// Same, reading the file at `path`.
Result<PipelineConfig> LoadSqlPipeline(const std::string& path, const Variables& vars);

}  // namespace sluice::sql
