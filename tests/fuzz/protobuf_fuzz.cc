// libFuzzer target for the Protobuf decoder (src/operators/protobuf_decoder.h): the input is one
// Kafka message after a chosen Confluent header. The first byte picks the writer schema id (1-3
// known, 4 unknown) or, for 0, that the rest is the whole message, header included; after the
// header come the message indexes and the body. A decoded record must have every field null or of
// the field's declared type. Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/schema.h"
#include "core/value.h"
#include "operators/decoder.h"
#include "operators/protobuf_decoder.h"

namespace {

using sluice::Field;
using sluice::Schema;
using sluice::Type;
using sluice::Value;

constexpr const char* kCommon = R"(syntax = "proto3";
package f;
message Loc { string city = 1; int32 zip = 2; Loc inner = 3; }
enum Kind { K0 = 0; K1 = 1; K2 = 2; }
)";

const std::map<int32_t, std::string>& Schemas() {
  static const std::map<int32_t, std::string> schemas = {
      {1, R"(syntax = "proto3";
package f;
message Tracking {
  optional string create_time = 1;
  optional int64 job_id = 2;
  optional double bid = 3;
  optional string custom_track = 4;
  uint64 ts = 5;
})"},
      {2, sluice::ProtobufSchemaBundle(R"(syntax = "proto3";
package f;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "common.proto";
message Other { sint64 x = 1; }
message Event {
  Loc loc = 1;
  Kind kind = 2;
  google.protobuf.Timestamp ts = 3;
  google.protobuf.DoubleValue price = 4;
  google.protobuf.StringValue note = 5;
  repeated string tags = 6;
  map<string, int64> attrs = 7;
  oneof choice { bool ok = 8; bytes raw = 9; float f = 10; }
  message Inner { fixed64 a = 1; sfixed32 b = 2; Event back = 3; }
  Inner inner = 11;
})", {{"common.proto", kCommon}})},
      {3, R"(syntax = "proto2";
package g;
message Legacy {
  required int64 job_id = 1;
  optional string campaign = 2 [default = "none"];
  optional int32 zip = 3;
  optional group G = 4 { optional string city = 5; }
})"},
  };
  return schemas;
}

std::unique_ptr<sluice::Decoder> Make() {
  auto cache = std::make_shared<sluice::AvroSchemaCache>(
      [](int32_t id) -> sluice::Result<std::string> {
        auto it = Schemas().find(id);
        if (it == Schemas().end()) return sluice::Status::NotFound("registry: not found");
        return it->second;
      },
      nullptr);
  sluice::DecoderOptions options;
  options.format = sluice::DecoderOptions::Format::kProtobuf;
  options.avro_schemas = cache;
  Schema schema({Field{"create_time", Type::kTimestamp, ""}, Field{"job_id", Type::kInt64, ""},
                 Field{"bid", Type::kDouble, ""}, Field{"custom_track", Type::kString, ""},
                 Field{"ts", Type::kTimestamp, ""}, Field{"city", Type::kString, "loc.city"},
                 Field{"zip", Type::kInt64, "loc.zip"}, Field{"deep", Type::kString, "loc.inner.city"},
                 Field{"kind", Type::kString, ""}, Field{"price", Type::kDouble, ""},
                 Field{"note", Type::kString, ""}, Field{"ok", Type::kBool, ""},
                 Field{"raw", Type::kString, ""}, Field{"f", Type::kString, ""},
                 Field{"a", Type::kInt64, "inner.a"}, Field{"x", Type::kString, ""},
                 Field{"campaign", Type::kString, ""}, Field{"tags", Type::kString, ""}});
  auto decoder = sluice::MakeDecoder(options, schema);
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<sluice::Decoder> decoder = Make();
  if (decoder == nullptr) __builtin_trap();
  if (size == 0) return 0;
  std::string payload;
  const uint8_t pick = data[0] % 5;
  if (pick != 0) payload = std::string("\0\0\0\0", 4) + static_cast<char>(pick);
  payload.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  // A copy without spare bytes after it, so that a read past the message is seen by ASan.
  const std::string message(payload);
  std::vector<Value> row(18);
  if (decoder->Decode(message, row).ok()) {
    static const Type kTypes[18] = {Type::kTimestamp, Type::kInt64, Type::kDouble, Type::kString,
                                    Type::kTimestamp, Type::kString, Type::kInt64, Type::kString,
                                    Type::kString, Type::kDouble, Type::kString, Type::kBool,
                                    Type::kString, Type::kString, Type::kInt64, Type::kString,
                                    Type::kString, Type::kString};
    for (size_t i = 0; i < row.size(); ++i) {
      if (!row[i].is_null() && row[i].type() != kTypes[i]) __builtin_trap();
    }
  }
  return 0;
}
