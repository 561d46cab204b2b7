#include "logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "core/json_writer.h"
#include "core/time.h"

namespace sluice::cli {
namespace {

bool g_json = false;

/// Extra members for the JSON object of the line being logged on this thread (",\"k\":v...");
/// set by LogWithFields around one spdlog call (formatting runs on the calling thread).
thread_local const std::string* t_fields = nullptr;
/// `,"pipeline":NAME` on every JSON line once the pipeline is known.
std::string g_pipeline_field;

/// Formats each log record as one JSON object on one line.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const int64_t micros =
        std::chrono::duration_cast<std::chrono::microseconds>(msg.time.time_since_epoch()).count();
    std::string line = "{\"time\":\"";
    line += FormatTimestamp(micros / 1000 * 1000, "%Y-%m-%dT%H:%M:%S.%f");
    line.resize(line.size() - 3);  // milliseconds
    line += "Z\",\"level\":";
    const auto level = spdlog::level::to_string_view(msg.level);
    AppendJsonString(std::string_view(level.data(), level.size()), &line);
    line += ",\"message\":";
    AppendJsonString(std::string_view(msg.payload.data(), msg.payload.size()), &line);
    line += ",\"logger\":";
    AppendJsonString(std::string_view(msg.logger_name.data(), msg.logger_name.size()), &line);
    line += ",\"thread\":" + std::to_string(msg.thread_id);
    if (t_fields == nullptr || t_fields->find("\"pipeline\":") == std::string::npos) {
      line += g_pipeline_field;
    }
    if (t_fields != nullptr) line += *t_fields;
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

Status SetupLogging(const std::string& level, const std::string& format) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Status::InvalidArgument(
        "--log-level must be trace, debug, info, warn, error or off, got '" + level + "'");
  }
  // Logs go to stderr; stdout carries results (plans, summaries) only.
  if (format == "json") {
    g_json = true;
    spdlog::set_default_logger(spdlog::stderr_logger_mt("sluice"));
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else if (format == "text") {
    g_json = false;
    spdlog::set_default_logger(spdlog::stderr_color_mt("sluice"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  } else {
    return Status::InvalidArgument("--log-format must be text or json, got '" + format + "'");
  }
  spdlog::set_level(lvl);
  spdlog::flush_on(spdlog::level::warn);
  return Status::OK();
}

bool JsonLogs() { return g_json; }

void SetLogPipeline(const std::string& name) {
  std::string f = ",\"pipeline\":";
  AppendJsonString(name, &f);
  g_pipeline_field = f;
}

void LogWithFields(spdlog::level::level_enum level, const std::string& message,
                   const JsonFields& fields) {
  const std::string extra = fields.str();
  t_fields = &extra;
  spdlog::log(level, "{}", message);
  t_fields = nullptr;
  if (level >= spdlog::level::warn) spdlog::default_logger()->flush();
}

JsonFields& JsonFields::Add(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(value, &out_);
  return *this;
}

JsonFields& JsonFields::Add(std::string_view key, int64_t value) {
  Key(key);
  out_ += std::to_string(value);
  return *this;
}

JsonFields& JsonFields::Add(std::string_view key, double value) {
  Key(key);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  out_ += buf;
  return *this;
}

JsonFields& JsonFields::AddRaw(std::string_view key, std::string_view json) {
  Key(key);
  out_ += json;
  return *this;
}

void JsonFields::Key(std::string_view key) {
  out_ += ',';
  AppendJsonString(key, &out_);
  out_ += ':';
}

void LogSignalNotice(const std::string& message, int signal, bool draining) {
  if (g_json) {
    JsonFields f;
    f.Add("event", "signal")
        .Add("signal", signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : std::to_string(signal))
        .AddRaw("draining", draining ? "true" : "false");
    LogWithFields(spdlog::level::warn, message, f);
  } else {
    std::fprintf(stderr, "%ssluice: %s\n", draining ? "\n" : "", message.c_str());
  }
}

void ReportError(const std::string& message) {
  if (g_json) {
    spdlog::error("{}", message);
    spdlog::default_logger()->flush();
  } else {
    std::cerr << "sluice: " << message << "\n";
  }
}

}  // namespace sluice::cli
