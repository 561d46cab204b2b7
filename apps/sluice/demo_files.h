#pragma once

#include <span>
#include <string_view>

namespace sluice::cli {

/// One file of the demo compiled into the binary (see apps/sluice/embed_demo.cmake).
struct DemoFile {
  std::string_view path;  ///< relative to the demo directory, e.g. "data/job.csv"
  std::string_view body;
};

/// Returns the files of examples/ built into the binary: the demo's pipeline (recruitment.toml)
/// and job dimension (data/job.csv), and the YSB ads (data/ysb_ads.csv) that `sluice generate`
/// uses when no file is named. Defined in the .cc file generated at build time.
std::span<const DemoFile> DemoFiles();

/// Returns the built-in file at `path` (e.g. "data/job.csv"), or null.
const DemoFile* FindDemoFile(std::string_view path);

}  // namespace sluice::cli
