#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "runtime/sink.h"

namespace sluice {

/// One dead letter as a store holds it, read back (`sluice inspect`).
struct StoredDeadLetter {
  std::string source;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string reason;
  std::string time;     ///< UTC ISO 8601, as in the record format (core/dead_letter.h)
  std::string payload;  ///< the stored payload: the JSON text of a value (StoredPayload::json)
  int64_t payload_bytes = 0;
  bool truncated = false;  ///< the store kept only the payload's first 64 KiB
};

/// Stored dead letters counted by reason, with the newest few of the most frequent reasons.
struct DeadLetterTally {
  std::map<std::string, int64_t> by_reason;
  /// Samples by reason, newest first (see InventoryOptions).
  std::map<std::string, std::vector<StoredDeadLetter>> samples;
  int64_t total() const;
  /// The reasons, most frequent first (ties in reason order).
  std::vector<std::pair<std::string, int64_t>> Ranked() const;
  /// Keeps the samples of the `max_reasons` most frequent reasons only.
  void PruneSamples(size_t max_reasons);
};

/// Counts the dead-letter records of `pipeline` ("": every pipeline) in `ndjson` (lines in the
/// format of AppendDeadLetterJson, oldest first) into `tally`, keeping the last
/// `samples_per_reason` of each reason in the order read (oldest first: reverse them when done,
/// also after several calls for several files). Blank lines are skipped; a line that is not
/// such a record fails with kParseError naming its byte offset.
Status TallyDeadLetterLines(std::string_view ndjson, std::string_view pipeline,
                            size_t samples_per_reason, DeadLetterTally* tally);

/// What a sink holds for one pipeline that committed to it.
struct PipelineInventory {
  std::string pipeline;
  /// Every stored position, as Sink::LoadPositions() returns them: partitions of the input, the
  /// identity partitions (kIdentityPartitionBase and up) and dead-letter file lengths.
  std::vector<StoredPosition> positions;
  int64_t state_bytes = -1;            ///< size of the stored engine state; -1: none stored
  int64_t last_checkpoint_micros = 0;  ///< when a commit last changed positions or state; 0: unknown
  bool dead_letters_stored = false;    ///< `dead_letters` was read from the sink's store
  DeadLetterTally dead_letters;
  /// Further facts the sink knows, in order ({"part files", "12 (3,456 bytes)"}).
  std::vector<std::pair<std::string, std::string>> details;
};

/// What SinkReader::Inventory reads.
struct InventoryOptions {
  std::string pipeline;           ///< "": every pipeline in the sink
  size_t samples_per_reason = 3;  ///< dead-letter samples per reason (the newest)
  size_t sample_reasons = 10;     ///< reasons (most frequent first) that get samples
  /// Reads the stored positions of `pipeline` (which must be named) and nothing else: no state,
  /// no dead letters, no details (`sluice run`'s check at start of what shape the sink's
  /// positions were written by). A store without the pipeline's positions gives no pipeline.
  bool positions_only = false;
};

/// Everything a sink holds about the pipelines that wrote to it.
struct SinkInventory {
  std::string location;              ///< the sink, for people ("sqlite:out.db")
  std::string dead_letter_location;  ///< where its dead letters are
  std::vector<PipelineInventory> pipelines;  ///< by name
};

/// InventoryOptions::positions_only's answer of a store (`what`, for the error) that keeps its
/// positions in a table: `inv` with the named pipeline's positions as read by `load` (the
/// store's LoadPositions for that pipeline), as one pipeline when it has any; `inv` unchanged
/// when the store has no positions table (`has_positions`). kInternal without a pipeline name.
Result<SinkInventory> PositionsOnlyInventory(SinkInventory inv, const InventoryOptions& options,
                                             const std::string& what, bool has_positions,
                                             const std::function<Result<std::vector<StoredPosition>>()>& load);

/// Reads back what a sink stores, for `sluice inspect`, /metrics and the dashboard. A sink
/// that can (SQLite, MySQL, Parquet) implements it next to Sink; find it with
/// dynamic_cast<SinkReader*>(sink).
class SinkReader {
 public:
  virtual ~SinkReader() = default;
  /// Reads what the sink holds for the pipelines that committed to it (positions through
  /// LoadPositions(), state size, last checkpoint time, dead letters by reason with samples)
  /// on a sink made by its factory and never opened: it creates, locks and changes nothing, so
  /// it may run next to a live pipeline. Fails with kNotFound when there is nothing at the URI
  /// (a missing file or folder), kInvalidArgument when it is no such store, kUnavailable when a
  /// server cannot be reached.
  virtual Result<SinkInventory> Inventory(const InventoryOptions& options) = 0;
  /// After Open(): this pipeline's dead letters in the sink's store, counted by reason. The
  /// runner counts them at start and again after checkpoints that stored dead letters (at
  /// most every max(5 s, 20 counting times)); FailedPrecondition: this store cannot be
  /// counted, do not ask again.
  virtual Result<std::map<std::string, int64_t>> CountDeadLetters() = 0;
};

/// The dead letters of a running pipeline where they are kept, across runs (see
/// Runner::StoredDeadLetters).
struct StoredDeadLetterCounts {
  bool known = false;    ///< false: the store cannot be counted (or not yet)
  std::string location;  ///< where they are
  std::vector<std::pair<std::string, int64_t>> by_reason;  ///< most frequent first
};

}  // namespace sluice
