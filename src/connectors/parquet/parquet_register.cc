#include "connectors/parquet/parquet_sink.h"
#include "runtime/registry.h"

namespace sluice {

/// parquet:DIR, a dataset of Parquet files.
void RegisterParquet(ConnectorRegistry& registry) { registry.AddSink("parquet", ParquetSink::Make, {}, ParquetSinkOptions()); }

}  // namespace sluice
