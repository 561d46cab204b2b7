#include "runtime/registry.h"

namespace sluice {

// The connectors built into sluice, one line each. A connector is a folder under src/connectors/
// that defines `void Register<Name>(ConnectorRegistry&)`, registering its sources, sinks and
// dimensions; adding one means creating the folder and adding its name here.
#define SLUICE_BUILTIN_CONNECTORS(X) \
  X(Cassandra)                       \
  X(File)                            \
  X(Generator)                       \
  X(Http)                            \
  X(Kafka)                           \
  X(Mysql)                           \
  X(Ndjson)                          \
  X(Parquet)                         \
  X(Sqlite)

#define SLUICE_DECLARE_REGISTER(name) void Register##name(ConnectorRegistry& registry);
SLUICE_BUILTIN_CONNECTORS(SLUICE_DECLARE_REGISTER)
#undef SLUICE_DECLARE_REGISTER

void RegisterBuiltins() {
  static const bool registered = [] {
    ConnectorRegistry& registry = ConnectorRegistry::Instance();
#define SLUICE_CALL_REGISTER(name) Register##name(registry);
    SLUICE_BUILTIN_CONNECTORS(SLUICE_CALL_REGISTER)
#undef SLUICE_CALL_REGISTER
    return true;
  }();
  (void)registered;
}

}  // namespace sluice
