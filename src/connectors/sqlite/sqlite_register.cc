#include "connectors/sqlite/sqlite_sink.h"
#include "connectors/sqlite/sqlite_table_source.h"
#include "runtime/registry.h"

namespace sluice {

/// sqlite:FILE, as a sink and as a table read incrementally.
void RegisterSqlite(ConnectorRegistry& registry) {
  registry.AddSource("sqlite", SqliteTableSource::Make, SqliteTableSourceOptions());
  SinkTraits traits;
  traits.local_file = true;
  registry.AddSink("sqlite", SqliteSink::Make, traits, SqliteSinkOptions());
}

}  // namespace sluice
