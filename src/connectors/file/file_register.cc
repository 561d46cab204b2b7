#include "connectors/file/file_dimension.h"
#include "connectors/file/file_source.h"
#include "runtime/registry.h"

namespace sluice {

/// file: a path (or file:PATH) read as a stream of records; a CSV file as a dimension.
void RegisterFile(ConnectorRegistry& registry) {
  registry.AddSource("file", FileSource::Make, FileSourceOptions());
  registry.AddDimension("file", CsvDimensionFactory(), CsvDimensionOptions());
  registry.AddInputCheck("file", [](const std::string& path, const std::map<int32_t, int64_t>& positions,
                                    const std::map<int32_t, int64_t>& identity) -> Status {
    auto it = positions.find(0);
    if (it == positions.end()) return Status::OK();  // nothing read yet
    return CheckFileIdentity(path, it->second, identity);
  });
}

}  // namespace sluice
