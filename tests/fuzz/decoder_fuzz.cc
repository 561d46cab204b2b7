// libFuzzer target for the record decoders (src/operators: JSON and CSV). The first input
// byte picks the decoder (NDJSON, CSV with ',' or ';'); the rest is the payload, split into
// records by CsvRecordLength for CSV. Built by tests/fuzz/CMakeLists.txt; see
// tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/value.h"
#include "operators/decoder.h"

namespace {

using sluice::DecoderOptions;
using sluice::Field;
using sluice::Schema;
using sluice::Type;

/// Covers every type, nested paths and values read by several fields.
Schema FuzzSchema() {
  return Schema({Field{"a", Type::kInt64, ""}, Field{"b", Type::kDouble, "b"},
                 Field{"c", Type::kString, ""}, Field{"d", Type::kBool, ""},
                 Field{"e", Type::kTimestamp, ""}, Field{"f", Type::kString, "n.f"},
                 Field{"g", Type::kInt64, "n.g.h"}, Field{"n", Type::kString, ""}});
}

std::unique_ptr<sluice::Decoder> Make(DecoderOptions::Format format, char delimiter) {
  DecoderOptions options;
  options.format = format;
  options.delimiter = delimiter;
  options.header = false;
  options.columns = {"a", "b", "c", "d", "e", "n.f", "n.g.h", "n"};
  auto decoder = sluice::MakeDecoder(options, FuzzSchema());
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto json = Make(DecoderOptions::Format::kNdjson, ',');
  static const auto csv = Make(DecoderOptions::Format::kCsv, ',');
  static const auto ssv = Make(DecoderOptions::Format::kCsv, ';');
  static std::vector<sluice::Value> row(FuzzSchema().size());
  if (size == 0 || !json || !csv || !ssv) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      (void)json->Decode(payload, row);
      break;
    default: {
      sluice::Decoder* decoder = data[0] % 3 == 1 ? csv.get() : ssv.get();
      std::string_view rest = payload;
      while (size_t n = sluice::CsvRecordLength(rest, /*at_eof=*/true)) {
        if (n > rest.size()) __builtin_trap();
        (void)decoder->Decode(rest.substr(0, n), row);
        rest.remove_prefix(n);
      }
    }
  }
  return 0;
}
