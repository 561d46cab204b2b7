// libFuzzer target for the Avro decoder (src/operators/avro_decoder.h): the input is one Kafka
// message body after a chosen Confluent header. The first byte picks the writer schema id
// (1-4 known, 5 unknown) or, for 0, that the rest is the whole message, header included. A
// decoded record must have every field null or of the field's declared type. Built by
// tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/schema.h"
#include "operators/decoder.h"
#include "registry_fuzz.h"

namespace {

using sluice::Field;
using sluice::Type;

const std::map<int32_t, std::string>& Schemas() {
  static const std::map<int32_t, std::string> schemas = {
      {1, R"({"type":"record","name":"Tracking","fields":[
            {"name":"create_time","type":["null","string"],"default":null},
            {"name":"job_id","type":["null","long"],"default":null},
            {"name":"bid","type":["null","double"],"default":null},
            {"name":"custom_track","type":["null","string"],"default":null},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}}]})"},
      {2, R"({"type":"record","name":"Nested","namespace":"n","fields":[
            {"name":"loc","type":["null",{"type":"record","name":"Loc","fields":[
              {"name":"city","type":"string"},{"name":"zip","type":"int"},
              {"name":"inner","type":["null","Loc"],"default":null}]}]},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
            {"name":"price","type":{"type":"fixed","name":"Money","size":6,"logicalType":"decimal","precision":12,"scale":3}},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"attrs","type":{"type":"map","values":"long"}},
            {"name":"day","type":{"type":"int","logicalType":"date"}}]})"},
      {3, R"({"type":"record","name":"Wide","fields":[
            {"name":"job_id","type":"string"},{"name":"bid","type":"float"},
            {"name":"ok","type":"boolean"},{"name":"raw","type":"bytes"},
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":30,"scale":5}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"u","type":["null","int","string","double"]}]})"},
      {4, R"("long")"},
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
      Field{"price_text", Type::kString, "price"}, Field{"day", Type::kTimestamp, ""},
      Field{"ok", Type::kBool, ""}, Field{"raw", Type::kString, ""},
      Field{"amount", Type::kString, ""}, Field{"id", Type::kString, ""},
      Field{"u", Type::kString, ""}, Field{"tags", Type::kString, ""}};
  return fields;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<sluice::Decoder> decoder = sluice::fuzz::MakeRegistryDecoder(
      sluice::DecoderOptions::Format::kAvro, &Schemas(),
      []() -> sluice::Result<std::string> { return Schemas().at(2); }, Fields());
  if (decoder == nullptr) __builtin_trap();
  return sluice::fuzz::DecodeFramed(*decoder, Fields(), data, size, 6);
}
