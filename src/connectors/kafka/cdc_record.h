#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace sluice {

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
/// "jdbc", one row as a flat JSON object, or "debezium", a change event bare or in the schema
/// envelope. Pure: no Kafka, no table, so tests/fuzz/kafka_cdc_fuzz.cc can fuzz it alone.
class ChangeRecordDecoder {
 public:
  /// `fields` are the table's columns, `key_index` the key's position among them.
  static Result<std::unique_ptr<ChangeRecordDecoder>> Make(const Schema& fields, size_t key_index,
                                                           bool debezium);
  ~ChangeRecordDecoder();

  /// Decodes one message into `out`; fails with the reason when the message must be skipped
  /// (not JSON, no op, an unknown op, a row or delete without its key).
  Status Decode(std::string_view payload, ChangeRecord* out);

 private:
  ChangeRecordDecoder() = default;

  size_t width_ = 0;
  size_t key_index_ = 0;
  bool debezium_ = false;
  std::unique_ptr<Decoder> after_, payload_after_, before_key_, op_;
  std::vector<Value> op_values_, key_values_;
};

}  // namespace sluice
