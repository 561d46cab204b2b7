#include "operators/dimension.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "core/uri.h"
#include "operators/decoder.h"
#include "core/uri.h"

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

}  // namespace sluice
