// libFuzzer target for the columnar CSV decoder (src/operators/columnar_csv_decoder.cc),
// differential: the input is split into the records of one batch, decoded column by column and
// again record by record with the row CSV decoder; any difference in a value, or in whether
// and why a record fails, aborts. The first byte picks the delimiter (bit 0: ',' or ';'),
// whether the input's first record is the header (bit 1; otherwise a fixed header that names
// every column) and whether records keep their line terminator (bit 2: as a Kafka message
// may; stripped as the file source does). Built by tests/fuzz/CMakeLists.txt; see
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
#include "operators/columnar_csv_decoder.h"
#include "operators/decoder.h"

namespace {

using sluice::Field;
using sluice::Schema;
using sluice::Type;

/// Every type; `f` reads the same column as `a`.
Schema FuzzSchema() {
  return Schema({Field{"a", Type::kInt64, ""}, Field{"b", Type::kDouble, ""},
                 Field{"c", Type::kString, ""}, Field{"d", Type::kBool, ""},
                 Field{"e", Type::kTimestamp, ""}, Field{"f", Type::kString, "a"}});
}

std::string_view StripTerminator(std::string_view r) {
  if (!r.empty() && r.back() == '\n') r.remove_suffix(1);
  if (!r.empty() && r.back() == '\r') r.remove_suffix(1);
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Schema schema = FuzzSchema();
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const char delimiter = (mode & 1) ? ';' : ',';
  const bool strip = (mode & 4) != 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string header = delimiter == ',' ? "x,e,d,c,b,a" : "x;e;d;c;b;a";
  if (mode & 2) {
    const size_t n = sluice::CsvRecordLength(rest, /*at_eof=*/true);
    header = std::string(StripTerminator(rest.substr(0, n)));
    rest.remove_prefix(n);
  }
  sluice::DecoderOptions options;
  options.format = sluice::DecoderOptions::Format::kCsv;
  options.delimiter = delimiter;
  auto row_decoder = sluice::MakeDecoder(options, schema);
  if (!row_decoder.ok()) std::abort();
  const sluice::Status header_status = (*row_decoder)->SetHeader(header);
  auto columnar = sluice::ColumnarCsvDecoder::Make(options, schema, std::string_view(header));
  // A header the row decoder refuses is refused with the same message.
  if (header_status.ok() != columnar.ok()) std::abort();
  if (!columnar.ok()) {
    if (columnar.status().message() != header_status.message()) std::abort();
    return 0;
  }
  if (*columnar == nullptr) std::abort();

  sluice::RawBatch raw;
  std::vector<std::string_view> records;
  while (size_t n = sluice::CsvRecordLength(rest, /*at_eof=*/true)) {
    const std::string_view r = strip ? StripTerminator(rest.substr(0, n)) : rest.substr(0, n);
    records.push_back(r);
    raw.Append(r);
    rest.remove_prefix(n);
  }
  sluice::ColumnBatch batch;
  (*columnar)->Decode(raw, &batch);
  std::vector<sluice::Value> expected(schema.size()), got(schema.size());
  for (size_t i = 0; i < records.size(); ++i) {
    sluice::Status s = (*row_decoder)->Decode(records[i], expected);
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
