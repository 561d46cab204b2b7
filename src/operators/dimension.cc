#include "operators/dimension.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "connectors/kafka/kafka_dimension.h"
#include "connectors/mysql/mysql_dimension.h"
#include "operators/decoder.h"
#include "runtime/registry.h"

namespace sluice {

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IOError("cannot read " + path);
  return ss.str();
}

char SniffDelimiter(std::string_view header_line) {
  auto semis = std::count(header_line.begin(), header_line.end(), ';');
  auto commas = std::count(header_line.begin(), header_line.end(), ',');
  return semis > commas ? ';' : ',';
}

Result<std::shared_ptr<DimensionTable>> LoadCsvDimension(const DimensionConfig& config,
                                                         size_t* skipped,
                                                         std::string* first_error) {
  auto [scheme, path] = SplitUri(config.uri);
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  Schema schema(config.fields);
  auto key_index = schema.IndexOf(config.key);
  if (!key_index) {
    return Status::InvalidArgument("dimension " + config.name + ": key '" + config.key +
                                   "' is not one of its fields");
  }
  std::string_view rest(text);
  size_t header_len = CsvRecordLength(rest, true);
  if (header_len == 0) return Status::InvalidArgument("dimension " + config.name + ": " + path + " is empty");
  std::string_view header = rest.substr(0, header_len);
  while (!header.empty() && (header.back() == '\n' || header.back() == '\r')) header.remove_suffix(1);
  DecoderOptions options;
  options.format = DecoderOptions::Format::kCsv;
  options.delimiter = SniffDelimiter(header);
  ASSIGN_OR_RETURN(auto decoder, MakeDecoder(options, schema));
  Status hs = decoder->SetHeader(header);
  if (!hs.ok()) return hs.WithContext("dimension " + config.name + " (" + path + ")");
  rest.remove_prefix(header_len);

  auto table = std::make_shared<DimensionTable>(config.name, schema, *key_index);
  std::vector<Value> row(schema.size());
  *skipped = 0;
  while (!rest.empty()) {
    size_t len = CsvRecordLength(rest, true);
    if (len == 0) break;
    std::string_view record = rest.substr(0, len);
    rest.remove_prefix(len);
    while (!record.empty() && (record.back() == '\n' || record.back() == '\r')) record.remove_suffix(1);
    if (record.empty()) continue;
    std::fill(row.begin(), row.end(), Value());
    Status s = decoder->Decode(record, row);
    if (!s.ok() || row[*key_index].is_null()) {
      if (++*skipped == 1) *first_error = s.ok() ? "blank key" : s.message();
      continue;
    }
    table->Put(row);
  }
  return table;
}

void Dimension::Publish(std::shared_ptr<const DimensionTable> table, int64_t changes, int64_t now_micros) {
  size_.store(static_cast<int64_t>(table->size()), std::memory_order_relaxed);
  table_.store(std::move(table), std::memory_order_release);
  versions_.fetch_add(1, std::memory_order_relaxed);
  changes_.fetch_add(changes, std::memory_order_relaxed);
  last_update_.store(now_micros, std::memory_order_relaxed);
}

Dimension::Stats Dimension::stats() const {
  Stats s;
  s.size = size_.load(std::memory_order_relaxed);
  s.versions = versions_.load(std::memory_order_relaxed);
  s.changes = changes_.load(std::memory_order_relaxed);
  s.last_update_micros = last_update_.load(std::memory_order_relaxed);
  s.lag_micros = lag_.load(std::memory_order_relaxed);
  s.refresh_errors = refresh_errors_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  return s;
}

Result<DimensionRefresh> ParseDimensionRefresh(const DimensionConfig& config) {
  DimensionRefresh r;
  const Options& o = config.options;
  const bool kafka = SplitUri(config.uri).first == "kafka";
  ASSIGN_OR_RETURN(r.interval_micros, o.GetDurationMicros("refresh", kafka ? 1'000'000 : 5'000'000));
  if (r.interval_micros < 0) {
    return Status::InvalidArgument(o.Where("refresh") + ": refresh must not be negative");
  }
  if (SplitUri(config.uri).first == "mysql") {
    r.updated_column = o.GetString("updated_column");
    ASSIGN_OR_RETURN(r.grace_micros, o.GetDurationMicros("grace", 5'000'000));
  }
  return r;
}

Result<std::shared_ptr<Dimension>> LoadDimension(const DimensionConfig& config) {
  auto [scheme, path] = SplitUri(config.uri);
  size_t skipped = 0;
  std::string first_error;
  std::shared_ptr<DimensionTable> table;
  ASSIGN_OR_RETURN(DimensionRefresh refresh, ParseDimensionRefresh(config));
  if (scheme == "mysql") {
    ASSIGN_OR_RETURN(table, LoadMysqlDimension(config, &skipped, &first_error));
  } else if (scheme == "kafka") {
    // Filled from the topic when the run starts (DimensionRefresher), before any lookup.
    RETURN_IF_ERROR(CheckKafkaDimensionOptions(config));
    RETURN_IF_ERROR(config.options.RejectUnconsumed("dimension." + config.name));
    Schema schema(config.fields);
    auto key_index = schema.IndexOf(config.key);
    if (!key_index) {
      return Status::InvalidArgument("dimension " + config.name + ": key '" + config.key +
                                     "' is not one of its fields");
    }
    auto empty = std::make_shared<DimensionTable>(config.name, schema, *key_index);
    return std::make_shared<Dimension>(config, std::move(refresh), std::move(empty));
  } else if (scheme == "file") {
    RETURN_IF_ERROR(config.options.RejectUnconsumed("dimension." + config.name));
    ASSIGN_OR_RETURN(table, LoadCsvDimension(config, &skipped, &first_error));
  } else {
    return Status::InvalidArgument(
        "dimension " + config.name + ": unsupported uri '" + config.uri +
        "' (expected a CSV file path, mysql://USER@HOST:PORT/DB/TABLE or kafka://HOST:PORT/TOPIC)");
  }
  if (skipped > 0) {
    spdlog::warn("dimension {}: skipped {} rows of {} (first: {})", config.name, skipped,
                 path, first_error);
  }
  spdlog::info("dimension {}: {} keys from {}", config.name, table->size(), path);
  return std::make_shared<Dimension>(config, std::move(refresh), std::move(table));
}

}  // namespace sluice
