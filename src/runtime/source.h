#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "core/raw_batch.h"
#include "core/status.h"
#include "operators/decoder.h"
#include "runtime/stats.h"

namespace sluice {

/// Positions at or above this partition number are not partitions of the input: they hold what
/// a source needs to recognise its input again on the next start (a file's device, inode and
/// fingerprints, a table's last row read), committed with the real positions in the same
/// transaction. The engine stores and returns them like any position and never reads records
/// from them.
inline constexpr int32_t kIdentityPartitionBase = 1 << 30;

/// The generation of partition p (see DeadLetter::generation) is stored as the identity
/// partition kGenerationPartitionBase + p, by the sources that can find another input at the
/// same place (a file replaced at its path, a recreated Kafka topic), and only once it is above
/// 0. Sources and `sluice inspect` read it back like any identity partition.
inline constexpr int32_t kGenerationPartitionBase = kIdentityPartitionBase + (1 << 29);

/// The offset `sluice run --reset-source` stores for a forgotten position until the source has
/// a new one: the engine reports such a position as absent, so the source starts from the
/// beginning, also after a restart that comes before the first new position.
inline constexpr int64_t kForgottenPosition = INT64_MIN;

/// Returns a 64-bit FNV-1a hash of `bytes`: stable across builds and machines, for the
/// fingerprints sources store with their positions (not for anything adversarial).
inline int64_t Fingerprint64(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

/// What a Poll() produced.
enum class PollState {
  kData,  ///< records were appended
  kIdle,  ///< nothing now; poll again later
  kEnd,   ///< a bounded input is exhausted; no more records will come
};

/// Lets a source ask the engine for what the sink has committed. The committed positions in the
/// sink are the truth; a source seeks to them when it is assigned a partition.
struct SourceContext {
  /// Returns the committed next position of `partition`, if the sink has one. Reads the sink,
  /// so positions committed by other processes of the same pipeline are seen. Also answers for
  /// the identity partitions (kIdentityPartitionBase and up) the source stored itself.
  std::function<std::optional<int64_t>(int32_t partition)> committed_position;
  /// Returns the committed next position of every partition the sink has one for, in one read
  /// (empty when the sink cannot be read now). May be null: then use committed_position.
  std::function<std::map<int32_t, int64_t>()> committed_positions;
  /// For a source whose partitions a group hands out (GroupManaged()): called on assignment
  /// instead of committed_position. Claims the partition's task for this process (its state —
  /// held records, event-time progress — comes with it, and a process that had it can commit
  /// nothing of it any more), then returns its committed position as committed_position does.
  /// May be null: then use committed_position.
  std::function<std::optional<int64_t>(int32_t partition)> claim_position;
  /// Called on the worker thread when partitions are about to be taken away (a consumer-group
  /// rebalance, or Close() giving up the source's partitions): hands over everything processed so far and returns once it is committed,
  /// together with the final positions of `revoked`, which later checkpoints no longer carry.
  std::function<Status(const std::vector<int32_t>& revoked)> checkpoint_before_revoke;
  /// Called on the worker thread instead of checkpoint_before_revoke when the group took
  /// partitions away without a revoke this member could answer (a lost assignment: its session
  /// expired, or it did not poll in time, so they are another member's already and a commit
  /// for them would be fenced): drops everything read of `lost` since their last commit (its
  /// results, held records and progress; their next owner reads it again from that commit) and
  /// returns true once no checkpoint of this process carries them any more. False: what was
  /// read of them cannot be told apart from other partitions' (the worker reads others too),
  /// so the caller takes the revoke way. An error: the run is failing. May be null.
  std::function<Result<bool>(const std::vector<int32_t>& lost)> drop_lost;
  /// Stops consumption at the end offsets seen at start (--until-caught-up).
  bool until_caught_up = false;
  /// With until_caught_up: when set, the end offsets are taken not at Open but at the first
  /// poll after this returns true (a Kafka source: each partition's last stable offset, once
  /// it has reached the partition's high watermark as of that moment, so that every record
  /// written before — a transaction committed just before, whose markers the broker may not
  /// have written yet — lies below the ends), and the source reads on until then, never ending
  /// before. Stage two of a repartitioned pipeline
  /// takes the repartition topic's ends after stage one ended (docs/notes-16/repartition.md,
  /// "--until-caught-up"). Called on the worker thread between polls; must be cheap.
  std::function<bool()> take_end_offsets_when;
  /// With until_caught_up: how long a source may go without progress (no record read, no
  /// committed position of the input moving, or every read failing) before it gives up.
  std::chrono::microseconds catch_up_timeout{300'000'000};
  /// Keeps reading a file after its end (--follow).
  bool follow = false;
  /// Index of this instance among the pipeline's workers, and how many there are.
  int instance = 0;
  int instances = 1;
};

/// Reads undecoded records from one or more partitions of an input.
///
/// Lifecycle: Make (connector factory) -> Open -> Poll* -> Close. A source instance is owned by
/// one worker thread; none of its methods are called concurrently, except Counters(), which the
/// monitoring thread may call at any time between construction and destruction. Different
/// instances of the same pipeline run on different threads and share nothing.
class Source {
 public:
  virtual ~Source() = default;

  /// Connects, reads the header for formats that have one, and seeks every partition this
  /// instance owns to its committed position (or the beginning).
  virtual Status Open(const SourceContext& ctx) = 0;

  /// Appends up to `max_records` records to `out`, waiting at most `budget` for data.
  /// An error is retried by the worker with backoff (100 ms doubling to 5 s), except
  /// StatusCode::kAborted: the source gave up (e.g. reads failing for longer than its limit
  /// under --until-caught-up), and the run ends with that error (exit 1).
  virtual Result<PollState> Poll(RawBatch* out, size_t max_records,
                                 std::chrono::milliseconds budget) = 0;

  /// Returns the header record's payload for formats that have one (CSV), else nullopt.
  virtual std::optional<std::string> Header() const { return std::nullopt; }

  /// Returns the source kind written to `_source` ("file", "generator", "kafka", ...).
  virtual std::string_view kind() const = 0;

  /// Returns how the payloads are encoded.
  virtual DecoderOptions decoder_options() const = 0;

  /// Reports positions processed and committed by the sink (informational for Kafka).
  virtual void OnCommitted(const std::vector<std::pair<int32_t, int64_t>>& /*positions*/) {}

  /// True when a group (a Kafka consumer group) decides which process reads which partition, so
  /// several processes may share the input: the source then calls SourceContext::claim_position
  /// on assignment. False: one process reads the whole input, and claims it all at Open.
  virtual bool GroupManaged() const { return false; }

  /// True when kEnd means the input is exhausted for good (a file, a counted generator), so
  /// every open window can be emitted; false when it only means "caught up for now" (Kafka with
  /// --until-caught-up): open windows then stay in the checkpointed state for the next run.
  virtual bool EndIsFinal() const { return true; }

  /// Returns the partitions this instance reads now. The watermark waits for each of them (until
  /// it has a record, or has been idle for the idle timeout), so a partition whose first batch
  /// comes later is not overtaken.
  virtual std::vector<int32_t> Partitions() const { return {}; }
  /// Returns every partition of the input this instance knows of, whoever reads it (a Kafka
  /// topic's partitions): the pipeline's watermark waits for each of them until it has been read
  /// or has been idle for the idle timeout, so the partitions assigned first do not drag it past
  /// those assigned later (to this process or another). Default: Partitions().
  virtual std::vector<int32_t> InputPartitions() const { return Partitions(); }

  /// Positions to commit after the batch just polled, for sources whose position is not one
  /// offset per record (a table's (column, key) cursor), and the identity partitions
  /// (kIdentityPartitionBase and up) that go with them. Empty: each record's next_offset.
  virtual std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const { return {}; }
  /// Positions this instance has moved past without a record to carry them (the commit marker
  /// that ends a Kafka partition written in transactions), committed like record positions
  /// after every poll, so a partition read to its end is at its end in the sink too. Only ever
  /// moves forward; empty for most sources.
  virtual std::vector<std::pair<int32_t, int64_t>> PositionsPastRecords() const { return {}; }

  /// Returns the generation of the input `partition` holds now (see DeadLetter::generation):
  /// 0 until the source finds another input at the same place and reads it from its start.
  /// The worker stamps it on the dead letters of the batch just polled, so it must be the
  /// generation of that batch's records. Sources that can tell store it with their positions
  /// (kGenerationPartitionBase + partition) and read it back on Open, so a replayed record gets
  /// the same value.
  virtual int64_t Generation(int32_t /*partition*/) const { return 0; }

  /// What a partition id stands for, for a source that reads several named inputs under one id
  /// space (a Kafka source with several topics: id 4099 is partition 3 of the topic in slot 1).
  struct PartitionName {
    std::string input;  ///< the topic
    int32_t partition = 0;
  };
  /// Returns the input and partition number an id stands for, or nullopt when ids are the
  /// partition numbers themselves. Dead letters (source "<source>:<input>"), /metrics and
  /// /api/status show it instead of the id. Called on the worker thread.
  virtual std::optional<PartitionName> NamePartition(int32_t /*partition*/) const { return std::nullopt; }

  /// Returns per-partition lag (records or bytes behind the end), when known.
  virtual std::vector<std::pair<int32_t, int64_t>> Lag() const { return {}; }

  /// Where this instance stands in one partition it reads now, for monitoring.
  struct ReadPosition {
    int32_t partition;
    int64_t position;  ///< the next offset to read
    int64_t end;       ///< the partition's end as last seen; -1 while not known
  };
  /// The partitions this instance reads now, from their assignment on (before their first
  /// record), with the next offset to read and the end as last seen. The worker thread calls it
  /// between polls a few times a second and publishes the result for /metrics and progress, so
  /// it must be cheap: cached values only, never a request to a server (Kafka: the high
  /// watermark librdkafka keeps from its last fetch; after --until-caught-up found the other
  /// partitions at their ends in the sink, those too, at their committed positions). Empty: the
  /// worker reports the positions it hands to checkpoints and Lag() instead.
  virtual std::vector<ReadPosition> ReadPositions() const { return {}; }

  virtual void Close() {}

  /// Returns the source's own counters (requests, retries, failures by kind, ...) for /metrics,
  /// where they read `sluice_<name>_total{pipeline,source[,kind]}`; a name starts with the
  /// source's kind ("http_requests"), so it never collides with the engine's own metrics.
  /// The runner sums them over the pipeline's instances by (name, kind). Thread-safe: called
  /// from the monitoring thread concurrently with every other method (before Open and after
  /// Close too), so it must only read values the source keeps in atomics, never take a lock
  /// the worker holds while polling. Return every counter (zeros included) from the first call
  /// on, so the series do not appear halfway through a run.
  virtual std::vector<SourceCounter> Counters() const { return {}; }
};

/// Creates the source instances of a pipeline: at most `max_instances`, each owning a disjoint
/// share of the input's partitions.
using SourceFactory = std::function<Result<std::vector<std::unique_ptr<Source>>>(
    const SourceConfig& config, int max_instances)>;

}  // namespace sluice
