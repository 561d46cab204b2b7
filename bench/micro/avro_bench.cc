// Avro decoding next to JSON decoding (BM_DecodeJson/recruitment in pipeline_bench.cc): the same
// generated recruitment events, typed and written in the Confluent wire format as
// `sluice generate --format avro` writes them (apps/sluice/generate.cc: the JSON event read
// into typed fields, then Avro C's generic writer), decoded into the recruitment pipeline's
// input fields. Items are records; bytes are payload bytes (Avro's are about half of JSON's).
#include <avro.h>
#include <benchmark/benchmark.h>

#include <map>

#include "connectors/kafka/avro_encoder.h"
#include "fixtures.h"
#include "operators/avro_decoder.h"
#include "operators/decoder.h"

namespace sluice::bench {
namespace {

constexpr size_t kRecords = 20000;

/// The recruitment event's fields as `sluice generate --format avro` types them.
Schema EventFields() {
  Schema s;
  for (const auto& [name, type] :
       std::initializer_list<std::pair<const char*, Type>>{
           {"create_time", Type::kString}, {"bid", Type::kInt64}, {"bn", Type::kString},
           {"campaign_id", Type::kInt64}, {"custom_track", Type::kString}, {"group_id", Type::kInt64},
           {"job_id", Type::kInt64}, {"publisher_id", Type::kInt64}, {"ts", Type::kString},
           {"ua", Type::kString}, {"dl", Type::kString}, {"tz", Type::kInt64}}) {
    s.Add(Field{name, type, ""});
  }
  return s;
}

struct AvroInput {
  std::string schema_json;
  std::vector<std::string> payloads;
};

AvroInput Encode(const std::vector<std::string>& json) {
  const Schema fields = EventFields();
  AvroInput in;
  in.schema_json = AvroRowEncoder::SchemaJson(fields, "sluice.RecruitmentEvent");
  avro_schema_t schema = nullptr;
  if (avro_schema_from_json_length(in.schema_json.data(), in.schema_json.size(), &schema) != 0) {
    CheckOk(Status::Internal(avro_strerror()), "avro schema");
  }
  avro_value_iface_t* iface = avro_generic_class_from_schema(schema);
  avro_value_t rec;
  avro_generic_value_new(iface, &rec);
  DecoderOptions o;
  o.format = DecoderOptions::Format::kNdjson;
  auto decoder = MakeDecoder(o, fields);
  CheckOk(decoder.status(), "json decoder");
  std::vector<Value> row(fields.size());
  for (const std::string& p : json) {
    for (Value& v : row) v = Value();
    if (!(*decoder)->Decode(p, row).ok()) continue;
    for (size_t c = 0; c < fields.size(); ++c) {
      avro_value_t field, branch;
      avro_value_get_by_index(&rec, c, &field, nullptr);
      if (row[c].is_null()) {
        avro_value_set_branch(&field, 0, &branch);
        avro_value_set_null(&branch);
      } else {
        avro_value_set_branch(&field, 1, &branch);
        if (fields.field(c).type == Type::kInt64) {
          avro_value_set_long(&branch, row[c].int_value());
        } else {
          const std::string& s = row[c].string_value();
          avro_value_set_string_len(&branch, s.c_str(), s.size() + 1);
        }
      }
    }
    size_t size = 0;
    avro_value_sizeof(&rec, &size);
    std::string out(5 + size, '\0');
    out[4] = 1;  // schema id 1
    avro_writer_t w = avro_writer_memory(out.data() + 5, static_cast<int64_t>(size));
    avro_value_write(w, &rec);
    avro_writer_free(w);
    in.payloads.push_back(std::move(out));
  }
  avro_value_decref(&rec);
  avro_value_iface_decref(iface);
  avro_schema_decref(schema);
  return in;
}

void BM_DecodeAvro(benchmark::State& state) {
  auto p = LoadExample("recruitment");
  const AvroInput in = Encode(GeneratedPayloads("recruitment", kRecords));
  auto schemas = std::make_shared<AvroSchemaCache>(
      [json = in.schema_json](int32_t id) -> Result<std::string> {
        if (id != 1) return Status::NotFound("unknown id");
        return json;
      },
      []() -> Result<std::string> { return Status::NotFound("no reader schema"); });
  auto decoder = MakeAvroDecoder(p->plan->input, schemas);
  CheckOk(decoder.status(), "avro decoder");
  std::vector<Value> row(p->plan->schema.size());
  std::span<Value> input = std::span<Value>(row).first(p->plan->input.size());
  size_t i = 0;
  int64_t failed = 0, bytes = 0;
  for (const auto& s : in.payloads) bytes += static_cast<int64_t>(s.size());
  for (auto _ : state) {
    if (!(*decoder)->Decode(in.payloads[i], input).ok()) ++failed;
    if (++i == in.payloads.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bytes /
                          static_cast<int64_t>(in.payloads.size()));
  state.counters["failed"] = static_cast<double>(failed);
}
BENCHMARK(BM_DecodeAvro);

}  // namespace
}  // namespace sluice::bench
