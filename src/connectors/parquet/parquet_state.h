#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "runtime/sink.h"

namespace sluice {

/// What the Parquet sink stores in `DIR/_sluice/<pipeline>.state`, replaced whole by each
/// commit: the last committed file sequence number, the number of dead-letter files committed,
/// the source positions, the engine's state and the rows buffered but not yet written to a
/// Parquet file.
struct ParquetSinkState {
  int64_t seq = 0;
  int64_t dead_letter_seq = 0;
  /// Set when `rows` holds rows a roll left for the next checkpoint because of
  /// max_files_per_checkpoint: the next commit rolls whatever its roll_rows and roll_interval say.
  bool carried = false;
  std::vector<StoredPosition> positions;
  std::string engine_state;
  /// The layout of `rows` (the sink's output columns when they were buffered).
  std::vector<Field> columns;
  std::vector<std::vector<Value>> rows;
};

/// Encodes a state file: magic, format version, the fields, and a trailing checksum.
/// `encoded_rows` holds `row_count` rows, each written by BinaryWriter::PutRow, so a commit
/// does not encode rows buffered by earlier commits again.
std::string EncodeParquetSinkState(std::string_view pipeline, int64_t seq,
                                   int64_t dead_letter_seq,
                                   const std::vector<StoredPosition>& positions,
                                   std::string_view engine_state, const std::vector<Field>& columns,
                                   int64_t row_count, std::string_view encoded_rows, bool carried);

/// Decodes what EncodeParquetSinkState wrote. Fails (never guesses) on a wrong magic, another
/// format version (version 1, written before dead letters were kept here, reads as
/// dead_letter_seq 0; versions 1 and 2, before max_files_per_checkpoint, as carried false), a
/// checksum mismatch, another pipeline's name, or malformed content.
Result<ParquetSinkState> DecodeParquetSinkState(std::string_view data, std::string_view pipeline);

}  // namespace sluice
