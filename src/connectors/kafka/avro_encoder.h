#pragma once

#include <memory>
#include <string>
#include <vector>

#include "connectors/kafka/schema_registry.h"
#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace sluice {

/// Writes output rows as Avro in the Confluent wire format, for the Kafka sink's format = "avro".
///
/// The value schema is derived from the sink's columns: a record `sluice.Row` (avro_record_name
/// overrides it) with one field per column, each a union of null and its type (bool: boolean,
/// int64: long, double: double, string: string, timestamp: long with logicalType
/// timestamp-micros), default null. Open() registers it under the settings' subject (or finds
/// it, when the registry already has it) and keeps the id; Encode() is Apache Avro C.
class AvroRowEncoder {
 public:
  AvroRowEncoder();
  ~AvroRowEncoder();
  AvroRowEncoder(const AvroRowEncoder&) = delete;
  AvroRowEncoder& operator=(const AvroRowEncoder&) = delete;

  /// The schema's JSON for `columns`.
  static std::string SchemaJson(const Schema& columns, const std::string& record_name);

  /// Registers the schema (POST /subjects/SUBJECT/versions). Unavailable when the registry
  /// cannot be reached (the caller retries); InvalidArgument when it refuses the schema.
  Status Open(const SchemaRegistrySettings& registry, const Schema& columns,
              const std::string& record_name);
  /// Sets `out` to the message for `row`.
  Status Encode(const std::vector<Value>& row, std::string* out);
  int32_t schema_id() const { return id_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  Schema columns_;
  int32_t id_ = -1;
};

}  // namespace sluice
