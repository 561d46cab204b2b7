// libFuzzer target for the Kafka dimension's change-record parsing
// (src/connectors/kafka/cdc_record.h): the input is one Kafka message. The first byte picks the
// format (JDBC rows or Debezium events) and the key's type (int64 or string); the rest is the
// message. A decoded upsert must have a non-null key and the table's width, a delete a
// non-null key. Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "connectors/kafka/cdc_record.h"

namespace {

using sluice::ChangeRecord;
using sluice::ChangeRecordDecoder;
using sluice::Field;
using sluice::Schema;
using sluice::Type;

std::unique_ptr<ChangeRecordDecoder> Make(bool debezium, Type key_type) {
  Schema schema({Field{"name", Type::kString, ""}, Field{"id", key_type, ""},
                 Field{"budget", Type::kDouble, ""}, Field{"active", Type::kBool, ""},
                 Field{"created", Type::kTimestamp, ""}, Field{"company", Type::kInt64, "company.id"}});
  auto decoder = ChangeRecordDecoder::Make(schema, 1, debezium);
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<ChangeRecordDecoder> decoders[4] = {
      Make(false, Type::kInt64), Make(true, Type::kInt64), Make(false, Type::kString),
      Make(true, Type::kString)};
  if (size == 0) return 0;
  ChangeRecordDecoder* decoder = decoders[data[0] % 4].get();
  if (decoder == nullptr) __builtin_trap();
  // A copy without spare bytes after it, so that a read past the message is seen by ASan.
  const std::string payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  ChangeRecord change;
  if (decoder->Decode(payload, &change).ok()) {
    switch (change.kind) {
      case ChangeRecord::Kind::kNone:
        if (!payload.empty()) __builtin_trap();
        break;
      case ChangeRecord::Kind::kUpsert:
        if (change.row.size() != 6 || change.row[1].is_null()) __builtin_trap();
        break;
      case ChangeRecord::Kind::kDelete:
        if (change.key.is_null()) __builtin_trap();
        break;
    }
  }
  return 0;
}
