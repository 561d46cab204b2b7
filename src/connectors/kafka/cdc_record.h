#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace simdjson::dom {
class parser;
}

namespace sluice {

class AvroSchemaCache;
class Decoder;

/// One change to a dimension table, decoded from a change-data-capture message.
struct ChangeRecord {
  enum class Kind : uint8_t {
    kNone,    ///< nothing to apply: a tombstone (empty message)
    kUpsert,  ///< insert or replace `row`
    kDelete,  ///< remove the row of `key`
  };
  Kind kind = Kind::kNone;
  std::vector<Value> row;  ///< kUpsert: laid out as the table's fields, key not null
  Value key;               ///< kDelete: not null
};

/// Decodes the messages of a Kafka dimension's topic (see kafka_dimension.h for the formats):
/// "jdbc", one row as a JSON object, flat or in Kafka Connect's schema envelope; "debezium", a
/// change event bare or in the schema envelope; "avro" and "protobuf", either of them in the
/// Confluent Avro or Protobuf wire format. Pure: no Kafka, no table, so tests/fuzz/kafka_cdc_fuzz.cc can fuzz it alone.
class ChangeRecordDecoder {
 public:
  /// JSON messages. `fields` are the table's columns, `key_index` the key's position among them.
  static Result<std::unique_ptr<ChangeRecordDecoder>> Make(const Schema& fields, size_t key_index,
                                                           bool debezium);
  /// Avro messages (Confluent wire format, writer schemas from `schemas`): a writer schema whose
  /// record has the fields `before`, `after` and `op` is a Debezium envelope, any other a row as
  /// the JDBC source connector writes it with the AvroConverter. Decided once per schema id.
  static Result<std::unique_ptr<ChangeRecordDecoder>> MakeAvro(const Schema& fields, size_t key_index,
                                                               std::shared_ptr<AvroSchemaCache> schemas);
  /// Protobuf messages (Confluent wire format, writer schemas from `schemas`, as
  /// operators/protobuf_decoder.h reads them): a message type with the fields `before`, `after`
  /// (messages of the row type) and `op` is a Debezium envelope, any other a row as the JDBC
  /// source connector writes it with the ProtobufConverter. Decided once per schema id, from
  /// the message type the first message of that id names (a message whose indexes name none
  /// decides nothing).
  static Result<std::unique_ptr<ChangeRecordDecoder>> MakeProtobuf(const Schema& fields, size_t key_index,
                                                                   std::shared_ptr<AvroSchemaCache> schemas);
  ~ChangeRecordDecoder();

  /// Decodes one message into `out`; fails with the reason when the message must be skipped
  /// (not JSON, in neither the row nor the envelope shape, no op, an unknown op, a row or delete
  /// without its key, an Avro or Protobuf body that does not decode).
  Status Decode(std::string_view payload, ChangeRecord* out);

 private:
  ChangeRecordDecoder();

  Status DecodeJdbcJson(std::string_view payload, ChangeRecord* out);
  static Result<std::unique_ptr<ChangeRecordDecoder>> MakeRegistry(const Schema& fields, size_t key_index,
                                                                   std::shared_ptr<AvroSchemaCache> schemas,
                                                                   bool protobuf);
  Status DecodeRegistry(std::string_view payload, ChangeRecord* out);
  Status Upsert(Decoder* decoder, std::string_view payload, ChangeRecord* out);
  bool IsDebeziumSchema(int32_t id, std::string_view payload);

  size_t width_ = 0;
  size_t key_index_ = 0;
  bool debezium_ = false;
  std::unique_ptr<Decoder> after_, payload_after_, before_key_, op_;
  std::vector<Value> op_values_, key_values_;
  std::unique_ptr<simdjson::dom::parser> parser_;  ///< jdbc JSON: the message's shape
  // Avro and Protobuf.
  std::shared_ptr<AvroSchemaCache> registry_schemas_;
  bool protobuf_ = false;
  std::unique_ptr<Decoder> registry_event_;  ///< op, before.KEY, after.FIELD...
  std::unordered_map<int32_t, bool> registry_debezium_;  ///< per writer schema id
  std::vector<Value> event_values_;
};

}  // namespace sluice
