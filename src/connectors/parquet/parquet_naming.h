#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.h"
#include "runtime/sink.h"
#include "runtime/task_state.h"

namespace sluice {

/// Names the directory Hive and most readers use for a null (or empty) partition value.
inline constexpr std::string_view kHiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__";

/// Escapes a path component the way Hive does: control characters and `"#%'*/:=?\{[]^` and
/// DEL become `%XX` (upper-case hex); everything else, including UTF-8 bytes, stays.
std::string HiveEscape(std::string_view text);

/// Returns the `name=value` directory for one partition column: the value's text
/// (Value::ToString()), escaped; null and empty values give `name=__HIVE_DEFAULT_PARTITION__`.
std::string HivePartitionSegment(std::string_view name, const Value& value);

/// Returns the 16 lower-case hex digits that make a file name unique to one checkpoint: a
/// stable 64-bit FNV-1a hash of the pipeline, the partition directory (relative to the sink
/// directory) and the checkpoint's positions.
std::string PartFileHash(std::string_view pipeline, std::string_view partition_dir,
                         const std::vector<StoredPosition>& positions);

/// Returns `part-<pipeline>-<seq, 10 digits>-<hash>.parquet`; the pipeline name is escaped
/// with HiveEscape so it cannot contain `/`.
std::string PartFileName(std::string_view pipeline, int64_t seq, std::string_view hash);

/// Returns the temporary name a part file is written under before its rename:
/// `.part-<pipeline>-<seq>-<hash>.tmp`.
std::string PartTempFileName(std::string_view pipeline, int64_t seq, std::string_view hash);

/// Returns the sequence number of a part file of `pipeline`, or nullopt when `file_name` is not
/// one (another pipeline's file, a temporary file, anything else).
std::optional<int64_t> ParsePartFileName(std::string_view pipeline, std::string_view file_name);

/// Tells whether `file_name` is a temporary part file of `pipeline`.
bool IsPartTempFileName(std::string_view pipeline, std::string_view file_name);

/// Returns the part file name of a task's roll (README "Tasks"):
/// `part-<pipeline>-<seq, 10 digits>-<hash>-<source>-<partition>.parquet`, pipeline and source
/// escaped with HiveEscape. Its last `-` is followed by at most 10 digits, a legacy name's by 16
/// hex digits, so neither is ever taken for the other.
std::string TaskPartFileName(std::string_view pipeline, const TaskId& task, int64_t seq,
                             std::string_view hash);

/// Returns the temporary name of a task's part file: `.` + the stem + `.tmp`.
std::string TaskPartTempFileName(std::string_view pipeline, const TaskId& task, int64_t seq,
                                 std::string_view hash);

/// What a task's part (or temporary part) file name says.
struct TaskPartName {
  std::string escaped_source;  ///< HiveEscape of the task's source
  int32_t partition = 0;
  int64_t seq = 0;
  bool temporary = false;
};

/// Parses a part file name of any task of `pipeline` (a temporary one too); nullopt for
/// anything else, legacy part files included.
std::optional<TaskPartName> ParseTaskPartFileName(std::string_view pipeline,
                                                  std::string_view file_name);

}  // namespace sluice
