#pragma once

#include <span>
#include <string_view>

namespace sluice::cli {

/// One file of the demo compiled into the binary (see apps/sluice/embed_demo.cmake).
struct DemoFile {
  std::string_view path;  ///< relative to the demo directory, e.g. "data/job.csv"
  std::string_view body;
};

/// Returns the demo's pipeline (recruitment.toml) and its job dimension (data/job.csv), as
/// shipped under examples/. Defined in the .cc file generated at build time.
std::span<const DemoFile> DemoFiles();

}  // namespace sluice::cli
