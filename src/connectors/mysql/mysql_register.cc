#include <spdlog/spdlog.h>

#include "connectors/mysql/mysql_dimension.h"
#include "connectors/mysql/mysql_sink.h"
#include "connectors/mysql/mysql_table_source.h"
#include "core/uri.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

/// Reads the table once; `updated_column` (default "updated_at" when the table has it) and
/// `grace` (default 5 s) set how the poller follows it.
Result<std::shared_ptr<Dimension>> LoadMysqlTable(const DimensionConfig& config, DimensionRefresh refresh) {
  OptionReader o(config.options, MysqlDimensionOptions(), "dimension." + config.name);
  refresh.updated_column = o.String("updated_column");
  ASSIGN_OR_RETURN(refresh.grace_micros, o.Duration("grace"));
  size_t skipped = 0;
  std::string first_error;
  ASSIGN_OR_RETURN(std::shared_ptr<DimensionTable> table, LoadMysqlDimension(config, &skipped, &first_error));
  const std::string where = SplitUri(config.uri).second;
  if (skipped > 0) {
    spdlog::warn("dimension {}: skipped {} rows of {} (first: {})", config.name, skipped, where,
                 first_error);
  }
  spdlog::info("dimension {}: {} keys from {}", config.name, table->size(), where);
  return std::make_shared<Dimension>(config, std::move(refresh), std::move(table));
}

}  // namespace

/// mysql://USER@HOST[:PORT]/DB, as a sink, a table read incrementally and a dimension.
void RegisterMysql(ConnectorRegistry& registry) {
  registry.AddSource("mysql", MysqlTableSource::Make, MysqlTableSourceOptions());
  registry.AddSink("mysql", MysqlSink::Make, {}, MysqlSinkOptions());
  DimensionFactory dimension;
  dimension.load = LoadMysqlTable;
  dimension.poller = MakeMysqlDimensionPoller;
  registry.AddDimension("mysql", std::move(dimension), MysqlDimensionOptions());
}

}  // namespace sluice
