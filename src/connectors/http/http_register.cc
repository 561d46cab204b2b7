#include "connectors/http/http_source.h"
#include "runtime/registry.h"

namespace sluice {

/// http:, https: a paged JSON API read as a source.
void RegisterHttp(ConnectorRegistry& registry) {
  registry.AddSource("http", HttpSource::Make, HttpSourceOptions());
  registry.AddSource("https", HttpSource::Make, HttpSourceOptions());
}

}  // namespace sluice
