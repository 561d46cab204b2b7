#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "core/value.h"
#include "operators/decoder.h"
#include "runtime/plan.h"

namespace sluice::bench {

/// Returns the repository's root (compiled in), so the benchmarks run from any directory.
std::string SourceDir();

/// Loads one of the example pipelines (examples/NAME.toml) with its data files resolved
/// against the repository and builds its plan (dimensions loaded). Aborts on failure: a
/// benchmark without its fixture is meaningless.
struct LoadedPipeline {
  PipelineConfig config;
  std::unique_ptr<Plan> plan;
};
std::unique_ptr<LoadedPipeline> LoadExample(const std::string& name);

/// `n` payloads of a built-in generator profile (NDJSON objects), as `sluice generate` makes.
std::vector<std::string> GeneratedPayloads(const std::string& profile, size_t n);

/// The records of the seed tracking log (header first), or generated CSV when it is absent.
std::vector<std::string> SeedTrackingCsv();

/// What a worker does to one decoded row: runs the plan's steps (operators/step.h) as
/// Worker::RunSteps does. Returns false when a step drops or dead-letters the record.
/// `snapshots` holds the dimension snapshot per step index (null for other steps).
bool RunSteps(const Plan& plan, std::span<Value> row,
              const std::vector<std::shared_ptr<const DimensionTable>>& snapshots);

/// The dimension snapshots per step, as a worker takes them at the start of a batch.
std::vector<std::shared_ptr<const DimensionTable>> Snapshots(const Plan& plan);

/// Aborts with the status' message when it is not OK.
void CheckOk(const Status& s, const char* what);

}  // namespace sluice::bench
