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
#include "operators/decoder.h"
#include "operators/protobuf_decoder.h"
#include "registry_fuzz.h"

namespace {

using sluice::Field;
using sluice::Type;

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

const std::vector<Field>& Fields() {
  static const std::vector<Field> fields = {
      Field{"create_time", Type::kTimestamp, ""}, Field{"job_id", Type::kInt64, ""},
      Field{"bid", Type::kDouble, ""}, Field{"custom_track", Type::kString, ""},
      Field{"ts", Type::kTimestamp, ""}, Field{"city", Type::kString, "loc.city"},
      Field{"zip", Type::kInt64, "loc.zip"}, Field{"deep", Type::kString, "loc.inner.city"},
      Field{"kind", Type::kString, ""}, Field{"price", Type::kDouble, ""},
      Field{"note", Type::kString, ""}, Field{"ok", Type::kBool, ""},
      Field{"raw", Type::kString, ""}, Field{"f", Type::kString, ""},
      Field{"a", Type::kInt64, "inner.a"}, Field{"x", Type::kString, ""},
      Field{"campaign", Type::kString, ""}, Field{"tags", Type::kString, ""}};
  return fields;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<sluice::Decoder> decoder = sluice::fuzz::MakeRegistryDecoder(
      sluice::DecoderOptions::Format::kProtobuf, &Schemas(), nullptr, Fields());
  if (decoder == nullptr) __builtin_trap();
  return sluice::fuzz::DecodeFramed(*decoder, Fields(), data, size, 5);
}
