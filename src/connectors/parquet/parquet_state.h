#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "runtime/sink.h"
#include "runtime/task_state.h"

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
  /// Set when the state moved into task files (README "Tasks"): the file stays as a marker
  /// (format version 4, which sluice versions without tasks refuse to read), keeping the
  /// sequence number and dead-letter count of the part and dead-letter files written before.
  bool moved = false;
};

/// Encodes a state file: magic, format version, the fields, and a trailing checksum.
/// `encoded_rows` holds `row_count` rows, each written by BinaryWriter::PutRow, so a commit
/// does not encode rows buffered by earlier commits again.
std::string EncodeParquetSinkState(std::string_view pipeline, int64_t seq, int64_t dead_letter_seq,
                                   const std::vector<StoredPosition>& positions,
                                   std::string_view engine_state, const std::vector<Field>& columns,
                                   int64_t row_count, std::string_view encoded_rows, bool carried,
                                   bool moved = false);

/// Decodes what EncodeParquetSinkState wrote. Fails (never guesses) on a wrong magic, another
/// format version (version 1, written before dead letters were kept here, reads as
/// dead_letter_seq 0; versions 1 and 2, before max_files_per_checkpoint, as carried false), a
/// checksum mismatch, another pipeline's name, or malformed content. Version 4 is a state
/// that moved into task files (`moved`).
Result<ParquetSinkState> DecodeParquetSinkState(std::string_view data, std::string_view pipeline);

/// What the Parquet sink stores for one task in `DIR/_sluice/<pipeline>/task-<source>-<p>.state`
/// (README "Tasks"), replaced whole by each claim and each commit of the task.
struct ParquetTaskFile {
  TaskId task;
  int64_t fence = 0;
  std::string owner;  ///< OwnerInfo::ToString() of the last claim, "" when released
  /// Orders the commits of the pipeline's tasks (one more than the highest this process knew
  /// of): LoadPositions takes the positions that belong to no task from the newest file.
  int64_t commit_number = 0;
  int64_t seq = 0;              ///< the task's part files committed (part-...-<seq>-...)
  int64_t dead_letter_seq = 0;  ///< the task's dead-letter files committed
  /// The task's partition and generation partition, and the positions of no task (identity
  /// partitions) as of the commit.
  std::vector<StoredPosition> positions;
  TaskProgress progress;
  int64_t updated_micros = 0;  ///< wall clock of the last claim or commit
  std::string state;           ///< TaskState::Serialize, "" when none
};

/// Encodes a task file: magic, format version, the fields, and a trailing checksum.
std::string EncodeParquetTaskFile(std::string_view pipeline, const ParquetTaskFile& file);

/// Encodes the commit intent of a commit of several tasks (`DIR/_sluice/<pipeline>/commit.intent`):
/// every new task file, whole; its rename is the commit point of all of them.
std::string EncodeParquetCommitIntent(std::string_view pipeline,
                                      const std::vector<ParquetTaskFile>& files);

/// Decodes what EncodeParquetCommitIntent wrote (a checksum mismatch or malformed content fails).
Result<std::vector<ParquetTaskFile>> DecodeParquetCommitIntent(std::string_view data,
                                                               std::string_view pipeline);

/// Decodes what EncodeParquetTaskFile wrote; fails on a wrong magic or version, a checksum
/// mismatch, another pipeline's name or malformed content.
Result<ParquetTaskFile> DecodeParquetTaskFile(std::string_view data, std::string_view pipeline);

}  // namespace sluice
