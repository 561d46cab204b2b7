#include "operators/dimension.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

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

Result<std::shared_ptr<DimensionTable>> LoadDimension(const DimensionConfig& config) {
  auto [scheme, path] = SplitUri(config.uri);
  size_t skipped = 0;
  std::string first_error;
  std::shared_ptr<DimensionTable> table;
  if (scheme == "mysql") {
    ASSIGN_OR_RETURN(table, LoadMysqlDimension(config, &skipped, &first_error));
  } else if (scheme == "file") {
    RETURN_IF_ERROR(config.options.RejectUnconsumed("dimension." + config.name));
    ASSIGN_OR_RETURN(table, LoadCsvDimension(config, &skipped, &first_error));
  } else {
    return Status::InvalidArgument(
        "dimension " + config.name + ": unsupported uri '" + config.uri +
        "' (expected a CSV file path or mysql://USER@HOST:PORT/DB/TABLE)");
  }
  if (skipped > 0) {
    spdlog::warn("dimension {}: skipped {} rows of {} (first: {})", config.name, skipped,
                 path, first_error);
  }
  spdlog::info("dimension {}: {} keys from {}", config.name, table->size(), path);
  return table;
}

}  // namespace sluice
