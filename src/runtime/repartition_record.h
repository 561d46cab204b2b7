#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/dead_letter.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/aggregate_spec.h"
#include "runtime/watermark.h"

namespace sluice {

/// The records of a repartitioned pipeline's internal topic `<pipeline>-repartition`: stage one
/// (one task per source partition) writes them, stage two (one task per repartition partition)
/// reads them read_committed. Design: docs/notes-16/repartition.md ("Records", "Watermarks").
/// Not wired into the runner yet.

/// A stage-one task: one partition of one of the source's topics (the topic by its index in the
/// source's topic list, so a record does not repeat the name).
struct UpstreamId {
  int32_t topic_index = 0;
  int32_t partition = 0;
  friend auto operator<=>(const UpstreamId&, const UpstreamId&) = default;
  friend bool operator==(const UpstreamId&, const UpstreamId&) = default;
};

/// How far a stage-one task's event time has come, sent to every repartition partition at each
/// checkpoint after that task's partials of the checkpoint, in the same transaction.
struct RepartitionControl {
  UpstreamId upstream;
  /// The task's watermark (max_event_time - delay), or the closed bound its worker already
  /// enforces where that is higher: the task sends no partial of a window at or before it.
  int64_t watermark = kNoWatermark;
  int64_t max_event_time = kNoWatermark;  ///< highest event time the task has read
  bool idle = false;  ///< no record for idle_timeout (for status; `watermark` says the rest)
  bool end = false;   ///< --until-caught-up: the task reached the end offsets seen at start
  friend bool operator==(const RepartitionControl&, const RepartitionControl&) = default;
};

/// One record of the repartition topic (its value; see EncodeRepartitionKey for the key).
struct RepartitionRecord {
  enum class Kind : uint8_t {
    kPartial = 'P',     ///< mergeable metric states of one (window, group) from one task
    kControl = 'C',     ///< a RepartitionControl
    kDeadLetter = 'D',  ///< a dead letter of stage one, stored by stage two's sink
  };
  Kind kind = Kind::kPartial;
  DeltaRow partial;            ///< kPartial
  RepartitionControl control;  ///< kControl
  DeadLetter dead_letter;      ///< kDeadLetter
};

/// The Kafka key of a partial: the group key values in a stable binary form (equal keys give
/// equal bytes in every process and version). Controls and dead letters have an empty key.
/// Each value is a tag byte and its bytes, so the form is self-delimiting and the int 1, the
/// string "1" and the timestamp 1 differ: 'n' null; 'b' bool, one byte 0/1; 'i' int64, 8 bytes
/// little-endian; 'd' double, its IEEE 754 bits little-endian (-0.0 as 0.0, every NaN as
/// 0x7ff8000000000000); 's' string, LEB128 byte length then the bytes; 't' timestamp,
/// microseconds as 'i'. Part of the stored form: never change it within a version.
std::string EncodeRepartitionKey(const std::vector<Value>& keys);

/// The hash RepartitionPartitionOf uses: FNV-1a 64 over the bytes (offset basis
/// 0xcbf29ce484222325, prime 0x100000001b3), then MurmurHash3's 64-bit finalizer (fmix64), so
/// that every input bit reaches the low bits a modulo keeps.
uint64_t RepartitionKeyHash(std::string_view encoded_key);

/// The repartition partition of an encoded key, in [0, partitions): RepartitionKeyHash modulo
/// `partitions`, stable across processes, machines and versions (not std::hash). 0 when
/// `partitions` is 1 or less (no topic has fewer than one partition; the caller checks R).
int32_t RepartitionPartitionOf(std::string_view encoded_key, int32_t partitions);

/// The value: an 11-byte header — the magic "SR", the version (1 byte, 1), and
/// Fingerprint64(AggregateFingerprint(&spec)) as 8 bytes little-endian, so that every record
/// names the [aggregate] it was written for without repeating its text — then the kind byte and
/// the body (core/serialize.h's little-endian forms).
std::string EncodeRepartitionValue(const RepartitionRecord& record, const AggregateSpec& spec);

/// The header EncodeRepartitionValue starts every value for `spec` with.
std::string RepartitionValueHeader(const AggregateSpec& spec);

/// Parses what EncodeRepartitionValue wrote. Refuses, with what to do, a record written for a
/// different [aggregate] (a changed pipeline over an old topic: reset the pipeline); refuses
/// truncated, oversized or trailing bytes, an unknown kind or version. Never crashes on any input
/// (fuzzed).
Result<RepartitionRecord> DecodeRepartitionValue(std::string_view value, const AggregateSpec& spec);

}  // namespace sluice
