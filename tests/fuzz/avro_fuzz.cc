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
#include "core/value.h"
#include "operators/avro_decoder.h"
#include "operators/decoder.h"

namespace {

using sluice::Field;
using sluice::Schema;
using sluice::Type;
using sluice::Value;

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

std::unique_ptr<sluice::Decoder> Make() {
  auto cache = std::make_shared<sluice::AvroSchemaCache>(
      [](int32_t id) -> sluice::Result<std::string> {
        auto it = Schemas().find(id);
        if (it == Schemas().end()) return sluice::Status::NotFound("registry: not found");
        return it->second;
      },
      []() -> sluice::Result<std::string> { return Schemas().at(2); });
  sluice::DecoderOptions options;
  options.format = sluice::DecoderOptions::Format::kAvro;
  options.avro_schemas = cache;
  Schema schema({Field{"create_time", Type::kTimestamp, ""}, Field{"job_id", Type::kInt64, ""},
                 Field{"bid", Type::kDouble, ""}, Field{"custom_track", Type::kString, ""},
                 Field{"ts", Type::kTimestamp, ""}, Field{"city", Type::kString, "loc.city"},
                 Field{"zip", Type::kInt64, "loc.zip"}, Field{"deep", Type::kString, "loc.inner.city"},
                 Field{"kind", Type::kString, ""}, Field{"price", Type::kDouble, ""},
                 Field{"price_text", Type::kString, "price"}, Field{"day", Type::kTimestamp, ""},
                 Field{"ok", Type::kBool, ""}, Field{"raw", Type::kString, ""},
                 Field{"amount", Type::kString, ""}, Field{"id", Type::kString, ""},
                 Field{"u", Type::kString, ""}, Field{"tags", Type::kString, ""}});
  auto decoder = sluice::MakeDecoder(options, schema);
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<sluice::Decoder> decoder = Make();
  if (decoder == nullptr) __builtin_trap();
  if (size == 0) return 0;
  std::string payload;
  const uint8_t pick = data[0] % 6;
  if (pick != 0) payload = std::string("\0\0\0\0", 4) + static_cast<char>(pick);
  payload.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  // A copy without spare bytes after it, so that a read past the message is seen by ASan.
  const std::string message(payload);
  std::vector<Value> row(18);
  if (decoder->Decode(message, row).ok()) {
    static const Type kTypes[18] = {Type::kTimestamp, Type::kInt64, Type::kDouble, Type::kString,
                                    Type::kTimestamp, Type::kString, Type::kInt64, Type::kString,
                                    Type::kString, Type::kDouble, Type::kString, Type::kTimestamp,
                                    Type::kBool, Type::kString, Type::kString, Type::kString,
                                    Type::kString, Type::kString};
    for (size_t i = 0; i < row.size(); ++i) {
      if (!row[i].is_null() && row[i].type() != kTypes[i]) __builtin_trap();
    }
  }
  return 0;
}
