#pragma once

#include <string>

#include "core/status.h"

namespace sluice::cli {

/// Sets up the process's logger on stderr: `format` "text" (human-readable, coloured on a
/// terminal) or "json" (one object per line: time, level, message, logger, thread).
Status SetupLogging(const std::string& level, const std::string& format);

/// Returns true when logs are JSON lines (errors the command line reports go through spdlog).
bool JsonLogs();

/// Reports a fatal command-line error: "sluice: MESSAGE" on stderr, or a JSON error line.
void ReportError(const std::string& message);

}  // namespace sluice::cli
