#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/schema.h"
#include "core/status.h"
#include "operators/decoder.h"

namespace sluice {

/// Holds the writer schemas of a Confluent schema registry by id, fetched once per id and shared
/// by every worker of a source (thread-safe).
///
/// The fetch functions are given (the Kafka source passes HTTP calls to the registry; tests pass
/// maps). `fetch_by_id` returns the schema's JSON text, NotFound when the registry does not know
/// the id (remembered: the records are dead-lettered), or any other error when the registry
/// cannot answer now (not remembered: Ensure() fails and the caller retries later).
/// `fetch_reader` returns the reader schema (the subject's latest version), whose field
/// defaults fill fields an older writer schema does not have; NotFound means none.
class AvroSchemaCache {
 public:
  using FetchById = std::function<Result<std::string>(int32_t id)>;
  using FetchReader = std::function<Result<std::string>()>;
  AvroSchemaCache(FetchById fetch_by_id, FetchReader fetch_reader)
      : fetch_by_id_(std::move(fetch_by_id)), fetch_reader_(std::move(fetch_reader)) {}

  /// Makes sure schema `id` is known (fetched, or known to be unknown). A newly seen id also
  /// fetches the reader schema again (a producer with a new schema version usually means a new
  /// latest version). Fails only when the registry could not answer: try again later.
  Status Ensure(int32_t id);

  struct Entry {
    bool found = false;
    std::string json;   ///< the writer schema when found
    std::string error;  ///< why not, when not found
  };
  /// The entry of `id`, or nullopt when it was never fetched.
  std::optional<Entry> Get(int32_t id) const;
  /// The reader schema's JSON (empty when none) and a generation that changes with it.
  std::pair<std::shared_ptr<const std::string>, uint64_t> Reader() const;
  /// Number of schema fetches by id that reached the registry (for tests: once per id).
  int fetches() const;

 private:
  FetchById fetch_by_id_;
  FetchReader fetch_reader_;
  mutable std::mutex mu_;
  std::map<int32_t, Entry> entries_;
  std::shared_ptr<const std::string> reader_ = std::make_shared<const std::string>();
  uint64_t reader_generation_ = 0;
  bool reader_known_ = false;
  int fetches_ = 0;
};

/// Creates the decoder for format = "avro": each payload is the Confluent wire format (magic
/// byte 0, the writer schema's id as 4 big-endian bytes, then the Avro binary body). The body is
/// decoded by Apache Avro C with the writer schema from `schemas`; each schema field is found by
/// its dotted source path through records (a union with null is null or its other branch). A
/// field the writer schema lacks takes the reader schema's default, else null.
///
/// Logical types are read from the schema JSON: timestamp-millis/-micros and date give
/// timestamps (or their number for int64 fields), decimal gives its exact text for strings and a
/// double for doubles, uuid a string. Conversions otherwise follow the NDJSON decoder: an Avro
/// string is parsed as text for non-string fields; numbers and booleans are rendered as text for
/// string fields; a long read into a timestamp field is epoch milliseconds.
///
/// Errors (ParseError, dead-lettered): a wrong magic byte, a payload shorter than 5 bytes, an id
/// the registry does not know, a body that does not decode with its schema or has bytes left.
Result<std::unique_ptr<Decoder>> MakeAvroDecoder(const Schema& schema,
                                                 std::shared_ptr<AvroSchemaCache> schemas);

/// Reads the schema id of a Confluent wire-format payload; nullopt when the payload is shorter
/// than 5 bytes or its first byte is not 0.
std::optional<int32_t> ConfluentSchemaId(std::string_view payload);

}  // namespace sluice
