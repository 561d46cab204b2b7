#pragma once

#include <memory>
#include <string>

#include "config/option_spec.h"
#include "config/pipeline_config.h"
#include "core/status.h"
#include "operators/dimension.h"

namespace sluice {

/// The options of a mysql:// dimension, besides `refresh` (RegisterMysql and LoadMysqlDimension read them).
const OptionTable& MysqlDimensionOptions();

/// Loads a dimension snapshot from the MySQL/MariaDB table named by config.uri
/// (mysql://USER@HOST[:PORT]/DATABASE/TABLE): one SELECT of the declared fields, by name (a
/// field's path, when given, names the column). Values convert to the declared types; NULL stays
/// null. Rows whose key is NULL or whose values do not convert are skipped and counted in
/// `*skipped`, with the first reason in `*first_error`. Option: `password_file` (as the sink).
Result<std::shared_ptr<DimensionTable>> LoadMysqlDimension(const DimensionConfig& config,
                                                           size_t* skipped,
                                                           std::string* first_error);

class DimensionPoller;

/// Follows a MySQL dimension table by timestamp change data capture: every refresh interval it
/// reads the rows whose `updated_column` is at or after the newest value seen minus the grace
/// period, in (updated_column, key) order and in bounded pages, and publishes a new snapshot when
/// any row differs. Rows sharing a timestamp are all read (the page cursor is the pair), and a
/// transaction that commits up to `grace` after a later one is still seen. Deleted rows are not
/// visible to timestamp CDC (use a CDC topic for deletes). Returns nullptr when the table has no
/// `updated_column` (default `updated_at`) and none was configured: the snapshot stays as loaded.
Result<std::unique_ptr<DimensionPoller>> MakeMysqlDimensionPoller(std::shared_ptr<Dimension> dim);

}  // namespace sluice
