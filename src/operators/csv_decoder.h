#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "operators/decoder.h"

namespace sluice {

/// Creates the CSV decoder behind MakeDecoder(). With `options.header` the column mapping is
/// set by SetHeader() and Decode() fails until then; without it `options.columns` names the
/// columns, and a schema field missing from them makes this fail with InvalidArgument.
Result<std::unique_ptr<Decoder>> MakeCsvDecoder(const DecoderOptions& options,
                                                const Schema& schema);

/// Which CSV column each field of a schema reads, and how many columns a record has.
struct CsvColumnMap {
  std::vector<size_t> column_of_slot;
  size_t num_columns = 0;
};

/// Maps the fields of `schema` (by Field::source_path()) to the columns named `names` (of two
/// equal names the first wins). Fails with InvalidArgument naming the missing columns.
Result<CsvColumnMap> MapCsvColumns(const std::vector<std::string>& names, const Schema& schema);

/// Reads the column names of a header record: a UTF-8 BOM dropped, each name trimmed of blanks.
Result<std::vector<std::string>> CsvHeaderNames(std::string_view header_payload, char delimiter);

}  // namespace sluice
