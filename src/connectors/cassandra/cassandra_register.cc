#include "connectors/cassandra/cassandra_sink.h"
#include "connectors/cassandra/cassandra_table_source.h"
#include "runtime/registry.h"

namespace sluice {

/// cassandra://, as a sink and as a raw-store table read incrementally.
void RegisterCassandra(ConnectorRegistry& registry) {
  registry.AddSource("cassandra", CassandraTableSource::Make, CassandraTableSourceOptions());
  registry.AddSink("cassandra", CassandraSink::Make, {}, CassandraSinkOptions());
}

}  // namespace sluice
