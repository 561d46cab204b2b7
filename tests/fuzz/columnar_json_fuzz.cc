// libFuzzer target for the columnar NDJSON decoder (src/operators/columnar_json_decoder.cc),
// differential: the input is split at '\n' into the records of one batch, decoded column by
// column and again record by record with the row decoder; any difference in a value, or in
// whether and why a record fails, aborts. Built by tests/fuzz/CMakeLists.txt; see
// tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/raw_batch.h"
#include "core/schema.h"
#include "core/value.h"
#include "operators/batch.h"
#include "operators/columnar_json_decoder.h"
#include "operators/decoder.h"

namespace {

using sluice::Field;
using sluice::Schema;
using sluice::Type;

/// Every type, flat (the columnar decoder takes no nested paths).
Schema FuzzSchema() {
  return Schema({Field{"a", Type::kInt64, ""}, Field{"b", Type::kDouble, ""},
                 Field{"c", Type::kString, ""}, Field{"d", Type::kBool, ""},
                 Field{"e", Type::kTimestamp, ""}, Field{"f", Type::kString, "g h"}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Schema schema = FuzzSchema();
  static std::unique_ptr<sluice::Decoder> row_decoder = [] {
    sluice::DecoderOptions options;
    options.format = sluice::DecoderOptions::Format::kNdjson;
    auto d = sluice::MakeDecoder(options, schema);
    if (!d.ok()) std::abort();
    return std::move(d).value();
  }();
  static std::unique_ptr<sluice::ColumnarJsonDecoder> columnar = [] {
    auto d = sluice::ColumnarJsonDecoder::Make(schema);
    if (!d.ok() || *d == nullptr) std::abort();
    return std::move(d).value();
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  sluice::RawBatch raw;
  std::vector<std::string_view> records;
  size_t begin = 0;
  while (begin <= input.size()) {
    size_t end = input.find('\n', begin);
    if (end == std::string_view::npos) end = input.size();
    records.push_back(input.substr(begin, end - begin));
    raw.Append(records.back());
    begin = end + 1;
  }
  sluice::ColumnBatch batch;
  columnar->Decode(raw, &batch);
  std::vector<sluice::Value> expected(schema.size()), got(schema.size());
  for (size_t i = 0; i < records.size(); ++i) {
    sluice::Status s = row_decoder->Decode(records[i], expected);
    if (s.ok() == batch.failed(i)) std::abort();
    if (!s.ok()) {
      if (batch.error(i) != s.message()) std::abort();
      continue;
    }
    batch.LoadRow(i, got);
    for (size_t c = 0; c < schema.size(); ++c) {
      if (got[c].type() != expected[c].type() || !(got[c] == expected[c])) std::abort();
    }
  }
  return 0;
}
