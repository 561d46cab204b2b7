#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "logging.h"
#include "core/uri.h"

namespace sluice::cli {
namespace {

/// A TOML basic string for `s` (quotes and backslashes escaped).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// The [source] section's connector notes for `scheme`.
std::string SourceNotes(const std::string& scheme) {
  if (scheme == "file") {
    return "# A file of NDJSON (one JSON object a line) or CSV (by the .csv suffix); `sluice run\n"
           "# --follow` keeps reading it as it grows. Relative paths are relative to this file.\n";
  }
  if (scheme == "kafka") {
    return "# A Kafka topic: kafka://HOST:PORT/TOPIC. Each message is one JSON object; the\n"
           "# consumer group is the pipeline's name.\n";
  }
  if (scheme == "http" || scheme == "https") {
    return "# A JSON API polled page by page; `records` names the array of records in each answer.\n"
           "records = \"results\"\n";
  }
  if (scheme == "generator") {
    return "# Synthetic events (see `sluice generate --help` for the profiles).\n"
           "profile = \"recruitment\"\n";
  }
  return "# A table read in key order and then followed: see the connector's README for its options.\n";
}

/// The [sink] section for `scheme`, and whether it takes appended window rows (`append`) or
/// upserts by key.
std::string SinkSection(const std::string& uri, const std::string& scheme, bool* append) {
  // Files, topics, streams and Cassandra (no transactions: idempotent upserts of finished
  // windows only) take each window's rows once; SQL tables merge updates by key.
  *append = scheme != "sqlite" && scheme != "mysql";
  std::string out = "[sink]\nuri = " + Quoted(uri) + "\n";
  if (scheme == "parquet") {
    out += "# One Parquet file per closed window (append mode); files are partitioned by these\n"
           "# columns.\n"
           "partition_by = [\"key\"]\n";
  } else if (scheme == "kafka") {
    out += "# Each closed window's row is one JSON message (append mode), keyed by these columns.\n"
           "key = \"key\"\n";
  } else if (scheme == "cassandra") {
    out += "# Each closed window's row is upserted once (append mode: Cassandra has no transactions\n"
           "# to merge updates exactly once), keyed by the window and the aggregate's keys.\n"
           "table = \"events\"\n";
  } else if (scheme == "stdout" || scheme == "ndjson") {
    out += "# Each closed window's row is one JSON line (append mode).\n";
  } else {
    out += "# Result rows are upserted by the aggregate's keys; positions are committed in the same\n"
           "# transaction, so a restart neither loses nor double-counts.\n"
           "table = \"events\"\n";
  }
  return out;
}

}  // namespace

std::string PipelineSkeleton(const std::string& name, const std::string& source_uri,
                             const std::string& sink_uri) {
  const std::string source_scheme = SplitUri(source_uri).first;
  const std::string sink_scheme = SplitUri(sink_uri).first;
  bool append = false;
  const std::string sink = SinkSection(sink_uri, sink_scheme, &append);
  std::string out;
  out += "# Pipeline skeleton written by `sluice init`. Change the fields, steps and aggregate to\n"
         "# your data, then check it with `sluice validate` and run it with `sluice run`.\n"
         "# Values may use ${NAME} or ${NAME:-default}, set with --var NAME=VALUE or the environment.\n\n";
  out += "[pipeline]\nname = " + Quoted(name) + "\n";
  out += "# How often results and source positions are committed together.\n"
         "checkpoint_interval = \"1s\"\n\n";
  out += "[source]\nname = \"input\"\nuri = " + Quoted(source_uri) + "\n" + SourceNotes(source_scheme);
  out += "\n# The fields read from each record and their types (string, int64, double, bool);\n"
         "# { type = \"string\", path = \"a.b\" } reads a nested JSON field.\n"
         "[source.fields]\n"
         "key = \"string\"\n"
         "ts = \"string\"\n"
         "value = \"double\"\n\n";
  out += "# Steps run in order on each record: let (a new field), ignore_if (drop and count by\n"
         "# reason), dead_letter_if (keep aside with its reason), lookup (join a dimension).\n"
         "[[step]]\n"
         "ignore_if = \"key is null\"\n"
         "reason = \"no key\"\n\n"
         "[[step]]\n"
         "let = \"event_time\"\n"
         "expr = \"parse_time(ts)\"\n\n"
         "[[step]]\n"
         "dead_letter_if = \"event_time is null\"\n"
         "reason = \"ts is not a timestamp\"\n\n";
  out += "# Per key and hour of event time. `update` mode merges each checkpoint's changes into the\n"
         "# stored rows; `append` mode writes a window's rows once, when the watermark passes it.\n"
         "[aggregate]\n"
         "time = \"event_time\"\n"
         "window = \"1h\"\n";
  if (append) {
    out += "mode = \"append\"\n"
           "# How far behind the newest event time a window closes.\n"
           "watermark_delay = \"10s\"\n"
           "allowed_lateness = \"0s\"\n"
           "window_columns = [\"window_start\", \"window_end\"]\n";
  } else {
    out += "mode = \"update\"\n"
           "window_columns = [\"window_start\"]\n";
  }
  out += "keys = [\"key\"]\n"
         "metrics = [\n"
         "  \"events = count()\",\n"
         "  \"total = sum(value)\",\n"
         "  \"average = round(avg(value), 2) default 0\",\n"
         "]\n\n";
  out += sink;
  out += "\n# Records a dead_letter_if step keeps aside, with their reason, go with the results into\n"
         "# the sink's own store (a _sluice_dead_letters table, a dead-letter topic, files under\n"
         "# DIR/_sluice/dead_letters/); DLQ names an NDJSON file instead.\n"
         "[dead_letter]\n"
         "path = \"${DLQ:-}\"\n";
  return out;
}

int RunInit(const InitOptions& options) {
  std::string name = options.name;
  if (name.empty()) {
    name = options.output.empty() || options.output == "-"
               ? "pipeline"
               : std::filesystem::path(options.output).stem().string();
  }
  const std::string text = PipelineSkeleton(name, options.source, options.sink);
  if (options.output.empty() || options.output == "-") {
    std::cout << text << std::flush;
    return 0;
  }
  if (std::filesystem::exists(options.output) && !options.force) {
    ReportError("init: " + options.output + " exists (--force overwrites it)");
    return 2;
  }
  std::ofstream out(options.output, std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    ReportError("init: cannot write " + options.output);
    return 2;
  }
  std::cerr << "wrote " << options.output << "; check it with: sluice validate " << options.output
            << "\n";
  return 0;
}

}  // namespace sluice::cli
