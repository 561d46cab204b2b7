#pragma once

#include <span>
#include <string_view>

#include "core/embedded_file.h"

namespace sluice::cli {

/// One file of the demo compiled into the binary (see cmake/embed_files.cmake); `path` is
/// relative to the demo directory, e.g. "data/job.csv".
using DemoFile = EmbeddedFile;

/// Returns the files of examples/ built into the binary: the demo's pipeline (recruitment.toml)
/// and job dimension (data/job.csv), and the YSB ads (data/ysb_ads.csv) that `sluice generate`
/// uses when no file is named. Defined in the .cc file generated at build time.
std::span<const DemoFile> DemoFiles();

/// Returns the built-in file at `path` (e.g. "data/job.csv"), or null.
const DemoFile* FindDemoFile(std::string_view path);

}  // namespace sluice::cli
