#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

/// A record that could not be processed, with why and where it came from.
struct DeadLetter {
  std::string reason;   ///< short, stable cause, e.g. "decode: field bid: 'x' is not an int64"
  std::string payload;  ///< the original bytes, unchanged
  std::string source;   ///< source name from the pipeline file
  int32_t partition = 0;
  int64_t offset = 0;   ///< position of the record in its partition
  int64_t time_micros = 0;  ///< wall-clock time it was dead-lettered (UTC microseconds)
  /// Tells apart several dead letters of one record (same source, partition and offset) within
  /// a checkpoint, in the order they were made: 0 for the first. Part of the identity under
  /// which sinks store dead letters idempotently.
  int32_t seq = 0;
  /// Which input the partition held when the record was read: 0 for the first, one more each
  /// time the source found another input at the same place and read it from its start (a file
  /// replaced at its path, a Kafka topic deleted and recreated, `--reset-source`). Offsets
  /// restart with a new input, so this is part of the dead letter's identity too.
  int64_t generation = 0;
};

/// The most payload bytes a stored dead letter keeps; longer payloads are cut, marked
/// `truncated` and identified by the hash of the whole payload.
inline constexpr size_t kDeadLetterPayloadCap = 64 * 1024;

/// A dead letter's payload in the stored form shared by every dead-letter store.
struct StoredPayload {
  /// A JSON value: the payload itself, minified, when it is a JSON object or array (and not
  /// truncated); else the payload as a JSON string.
  std::string json;
  /// The kept payload bytes in base64, set only when `json` is a string that does not hold
  /// them exactly (the payload is not valid UTF-8); empty otherwise.
  std::string base64;
  bool truncated = false;
  int64_t bytes = 0;   ///< size of the whole payload
  std::string sha256;  ///< lowercase hex SHA-256 of the whole payload
};

/// Encodes a payload for storage, keeping at most `cap` bytes (cut back to a UTF-8 character
/// boundary when the payload is text).
StoredPayload EncodeDeadLetterPayload(std::string_view payload, size_t cap = kDeadLetterPayloadCap);

/// Formats microseconds since the epoch as UTC ISO 8601 with microseconds,
/// "2026-01-02T03:04:05.000006Z".
std::string FormatIsoUtc(int64_t micros);

/// Appends the dead-letter record as one line of JSON, without the newline:
/// {"pipeline","source","partition","offset","generation","reason","time","payload",["payload_base64",]
///  "payload_bytes","truncated","payload_sha256"}. The line is valid JSON and valid UTF-8
/// whatever bytes the payload and reason hold.
void AppendDeadLetterJson(std::string_view pipeline, const DeadLetter& letter, std::string* out);
/// The same, with an already encoded payload.
void AppendDeadLetterJson(std::string_view pipeline, const DeadLetter& letter,
                          const StoredPayload& payload, std::string* out);

}  // namespace sluice
