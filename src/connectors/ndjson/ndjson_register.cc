#include "connectors/ndjson/ndjson_sink.h"
#include "runtime/registry.h"

namespace sluice {

/// ndjson:PATH and stdout:, rows as JSON lines.
void RegisterNdjson(ConnectorRegistry& registry) {
  registry.AddSink("ndjson", NdjsonSink::MakeFile, {}, NdjsonFileSinkOptions());
  registry.AddSink("stdout", NdjsonSink::MakeStdout, {}, StdoutSinkOptions());
}

}  // namespace sluice
