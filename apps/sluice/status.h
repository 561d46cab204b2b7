#pragma once

#include <string>

#include "config/pipeline_config.h"

namespace sluice::cli {

/// Settings of `sluice status`.
struct StatusCliOptions {
  std::string sink;             ///< "": the pipeline file's sink
  bool json = false;            ///< one JSON object on stdout instead of text
};

/// Shows, for each partition of a Kafka source, the group member that owns it now (Kafka's
/// description of the group), the position committed in the sink, the partition's end and the
/// lag between them. Returns the exit code: 0; 1 when the sink or the broker cannot be read; 2
/// for a source that is not Kafka or a sink that cannot be inspected.
int RunStatus(const PipelineConfig& config, const StatusCliOptions& options);

}  // namespace sluice::cli
