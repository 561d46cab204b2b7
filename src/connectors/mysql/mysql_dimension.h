#pragma once

#include <memory>
#include <string>

#include "config/pipeline_config.h"
#include "core/status.h"
#include "operators/dimension.h"

namespace sluice {

/// Loads a dimension snapshot from the MySQL/MariaDB table named by config.uri
/// (mysql://USER@HOST[:PORT]/DATABASE/TABLE): one SELECT of the declared fields, by name (a
/// field's path, when given, names the column). Values convert to the declared types; NULL stays
/// null. Rows whose key is NULL or whose values do not convert are skipped and counted in
/// `*skipped`, with the first reason in `*first_error`. Option: `password_file` (as the sink).
Result<std::shared_ptr<DimensionTable>> LoadMysqlDimension(const DimensionConfig& config,
                                                           size_t* skipped,
                                                           std::string* first_error);

}  // namespace sluice
