#include "operators/columnar_decoder.h"

#include "operators/columnar_csv_decoder.h"
#include "operators/columnar_json_decoder.h"

namespace sluice {

Result<std::unique_ptr<ColumnarDecoder>> MakeColumnarDecoder(
    const DecoderOptions& options, const Schema& schema, std::optional<std::string_view> header) {
  switch (options.format) {
    case DecoderOptions::Format::kNdjson: {
      ASSIGN_OR_RETURN(std::unique_ptr<ColumnarJsonDecoder> d, ColumnarJsonDecoder::Make(schema));
      return std::unique_ptr<ColumnarDecoder>(std::move(d));
    }
    case DecoderOptions::Format::kCsv: {
      ASSIGN_OR_RETURN(std::unique_ptr<ColumnarCsvDecoder> d,
                       ColumnarCsvDecoder::Make(options, schema, header));
      return std::unique_ptr<ColumnarDecoder>(std::move(d));
    }
    case DecoderOptions::Format::kAvro:
    case DecoderOptions::Format::kProtobuf:
      break;
  }
  return std::unique_ptr<ColumnarDecoder>();
}

}  // namespace sluice
