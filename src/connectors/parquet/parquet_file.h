#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace sluice {

/// Names the compression codecs the Parquet sink offers.
enum class ParquetCompression { kZstd, kSnappy, kGzip, kNone };

/// Parses "zstd", "snappy", "gzip" or "none"; false for anything else.
bool ParseParquetCompression(std::string_view name, ParquetCompression* out);

/// Writes `rows` to a new Parquet file at `path` (truncating any file there) as one row group
/// and fsyncs it, unless `sync_file` is false (the caller makes many files durable at once).
/// Only the slots `columns` of `schema` are written, in that order. Types map
/// int64 -> INT64, double -> DOUBLE, string -> UTF8, bool -> BOOLEAN, timestamp ->
/// TIMESTAMP(MICROS, UTC); every column is nullable. An int64 value in a double column is
/// converted; any other value of the wrong type is an Internal error.
Status WriteParquetFile(const std::string& path, const Schema& schema,
                        const std::vector<size_t>& columns,
                        const std::vector<const std::vector<Value>*>& rows,
                        ParquetCompression compression, bool sync_file = true);

/// Reads the rows of a Parquet file written by WriteParquetFile (sluice verify): each row gets
/// `schema.size()` values, the slots `columns` filled from the file's columns of the same names
/// (read back as the schema's types), the others null. A missing column or another type is an
/// error naming the file.
Result<std::vector<std::vector<Value>>> ReadParquetFile(const std::string& path, const Schema& schema,
                                                        const std::vector<size_t>& columns);

}  // namespace sluice
