#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sluice::cli {

/// Sets up the process's logger on stderr: `format` "text" (human-readable, coloured on a
/// terminal) or "json" (one object per line: time, level, message, logger, thread).
Status SetupLogging(const std::string& level, const std::string& format);

/// Returns true when logs are JSON lines (errors the command line reports go through spdlog).
bool JsonLogs();

/// Adds "pipeline": NAME to every JSON log line from now on (call before other threads log).
void SetLogPipeline(const std::string& name);

/// Members added to a JSON log line: `,"key":value` each, in order.
class JsonFields {
 public:
  JsonFields& Add(std::string_view key, std::string_view value);
  JsonFields& Add(std::string_view key, const char* value) { return Add(key, std::string_view(value)); }
  JsonFields& Add(std::string_view key, const std::string& value) { return Add(key, std::string_view(value)); }
  JsonFields& Add(std::string_view key, int64_t value);
  JsonFields& Add(std::string_view key, int value) { return Add(key, static_cast<int64_t>(value)); }
  JsonFields& Add(std::string_view key, double value);
  /// `json` is a JSON value written as is (an array or object).
  JsonFields& AddRaw(std::string_view key, std::string_view json);
  /// The members, each starting with a comma ("" when none).
  const std::string& str() const { return out_; }

 private:
  void Key(std::string_view key);
  std::string out_;
};

/// Logs `message`; under --log-format json the line's object also carries `fields` (text logs
/// show only the message, which should say the same facts in words).
void LogWithFields(spdlog::level::level_enum level, const std::string& message,
                   const JsonFields& fields);

/// Tells that a signal arrived: "sluice: MESSAGE" on stderr, or a JSON line with the signal
/// number and whether the run drains (a first signal) or exits at once (a second).
void LogSignalNotice(const std::string& message, int signal, bool draining);

/// Reports a fatal command-line error: "sluice: MESSAGE" on stderr, or a JSON error line.
void ReportError(const std::string& message);

}  // namespace sluice::cli
