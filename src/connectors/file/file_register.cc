#include "connectors/file/file_dimension.h"
#include "connectors/file/file_source.h"
#include "runtime/registry.h"

namespace sluice {

/// file: a path (or file:PATH) read as a stream of records; a CSV file as a dimension.
void RegisterFile(ConnectorRegistry& registry) {
  registry.AddSource("file", FileSource::Make);
  registry.AddDimension("file", CsvDimensionFactory());
}

}  // namespace sluice
