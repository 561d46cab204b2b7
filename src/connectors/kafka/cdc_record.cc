#include "connectors/kafka/cdc_record.h"

#include <simdjson.h>

#include <string>

#include "operators/avro_decoder.h"
#include "operators/decoder.h"
#include "operators/protobuf_decoder.h"

namespace sluice {
namespace {

/// The same fields, read from inside `prefix` (a dotted path) of each message.
Schema Prefixed(const Schema& schema, const std::string& prefix) {
  Schema out;
  for (const auto& f : schema.fields()) out.Add(Field{f.name, f.type, prefix + f.source_path()});
  return out;
}

const char* JsonKind(simdjson::dom::element_type t) {
  switch (t) {
    case simdjson::dom::element_type::ARRAY: return "an array";
    case simdjson::dom::element_type::OBJECT: return "an object";
    case simdjson::dom::element_type::STRING: return "a string";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
    case simdjson::dom::element_type::BOOL: return "a boolean";
    default: return "a number";
  }
}

}  // namespace

ChangeRecordDecoder::ChangeRecordDecoder() = default;
ChangeRecordDecoder::~ChangeRecordDecoder() = default;

Result<std::unique_ptr<ChangeRecordDecoder>> ChangeRecordDecoder::Make(const Schema& schema, size_t key_index,
                                                                       bool debezium) {
  if (key_index >= schema.size()) return Status::InvalidArgument("the key is not one of the fields");
  std::unique_ptr<ChangeRecordDecoder> d(new ChangeRecordDecoder());
  d->width_ = schema.size();
  d->key_index_ = key_index;
  d->debezium_ = debezium;
  DecoderOptions json;
  json.format = DecoderOptions::Format::kNdjson;
  ASSIGN_OR_RETURN(d->payload_after_, MakeDecoder(json, Prefixed(schema, debezium ? "payload.after." : "payload.")));
  if (debezium) {
    const Field& key = schema.field(key_index);
    ASSIGN_OR_RETURN(d->after_, MakeDecoder(json, Prefixed(schema, "after.")));
    Schema before_key;
    before_key.Add(Field{"key", key.type, "before." + key.source_path()});
    before_key.Add(Field{"pkey", key.type, "payload.before." + key.source_path()});
    ASSIGN_OR_RETURN(d->before_key_, MakeDecoder(json, before_key));
    Schema op;
    op.Add(Field{"op", Type::kString, "op"});
    op.Add(Field{"pop", Type::kString, "payload.op"});
    ASSIGN_OR_RETURN(d->op_, MakeDecoder(json, op));
  } else {
    ASSIGN_OR_RETURN(d->after_, MakeDecoder(json, schema));
    d->parser_ = std::make_unique<simdjson::dom::parser>();
  }
  return d;
}

Result<std::unique_ptr<ChangeRecordDecoder>> ChangeRecordDecoder::MakeAvro(const Schema& schema, size_t key_index,
                                                                           std::shared_ptr<AvroSchemaCache> schemas) {
  if (!schemas) return Status::InvalidArgument("format avro needs a schema registry");
  return MakeRegistry(schema, key_index, std::move(schemas), false);
}

Result<std::unique_ptr<ChangeRecordDecoder>> ChangeRecordDecoder::MakeProtobuf(
    const Schema& schema, size_t key_index, std::shared_ptr<AvroSchemaCache> schemas) {
  if (!schemas) return Status::InvalidArgument("format protobuf needs a schema registry");
  return MakeRegistry(schema, key_index, std::move(schemas), true);
}

Result<std::unique_ptr<ChangeRecordDecoder>> ChangeRecordDecoder::MakeRegistry(
    const Schema& schema, size_t key_index, std::shared_ptr<AvroSchemaCache> schemas, bool protobuf) {
  if (key_index >= schema.size()) return Status::InvalidArgument("the key is not one of the fields");
  std::unique_ptr<ChangeRecordDecoder> d(new ChangeRecordDecoder());
  d->width_ = schema.size();
  d->key_index_ = key_index;
  d->registry_schemas_ = schemas;
  d->protobuf_ = protobuf;
  DecoderOptions options;
  options.format = protobuf ? DecoderOptions::Format::kProtobuf : DecoderOptions::Format::kAvro;
  options.avro_schemas = std::move(schemas);
  ASSIGN_OR_RETURN(d->after_, MakeDecoder(options, schema));
  // One decode per Debezium event: the op, the key in before, then the fields of after.
  const Field& key = schema.field(key_index);
  Schema event;
  event.Add(Field{"op", Type::kString, "op"});
  event.Add(Field{"key", key.type, "before." + key.source_path()});
  for (const Field& f : schema.fields()) event.Add(Field{f.name, f.type, "after." + f.source_path()});
  ASSIGN_OR_RETURN(d->registry_event_, MakeDecoder(options, event));
  return d;
}

Status ChangeRecordDecoder::Decode(std::string_view payload, ChangeRecord* out) {
  out->kind = ChangeRecord::Kind::kNone;
  out->key = Value();
  if (payload.empty()) return Status::OK();  // a tombstone: the delete event came before it
  if (registry_schemas_) return DecodeRegistry(payload, out);
  if (!debezium_) return DecodeJdbcJson(payload, out);
  op_values_.assign(2, Value());
  if (!op_->Decode(payload, op_values_).ok()) return Status::ParseError("not a JSON change event");
  const Value& code = op_values_[1].is_null() ? op_values_[0] : op_values_[1];
  if (code.is_null()) return Status::ParseError("a Debezium event without op");
  const std::string& c = code.string_value();
  const bool enveloped = !op_values_[1].is_null();
  if (c == "d") {
    key_values_.assign(2, Value());
    if (!before_key_->Decode(payload, key_values_).ok()) {
      return Status::ParseError("a delete whose before does not decode");
    }
    Value& k = enveloped ? key_values_[1] : key_values_[0];
    if (k.is_null()) return Status::ParseError("a delete without the key in before");
    out->kind = ChangeRecord::Kind::kDelete;
    out->key = std::move(k);
    return Status::OK();
  }
  if (c != "c" && c != "u" && c != "r") return Status::ParseError("unknown op '" + c + "'");
  return Upsert(enveloped ? payload_after_.get() : after_.get(), payload, out);
}

Status ChangeRecordDecoder::Upsert(Decoder* decoder, std::string_view payload, ChangeRecord* out) {
  out->row.assign(width_, Value());
  RETURN_IF_ERROR(decoder->Decode(payload, out->row));
  if (out->row[key_index_].is_null()) return Status::ParseError("a row without its key");
  out->kind = ChangeRecord::Kind::kUpsert;
  return Status::OK();
}

// Kafka Connect's JsonConverter writes a row bare (schemas.enable=false) or as
// {"schema": {...}, "payload": {...}} (schemas.enable=true, its default). The envelope is an
// object with exactly those two members; any other object is a bare row.
Status ChangeRecordDecoder::DecodeJdbcJson(std::string_view payload, ChangeRecord* out) {
  simdjson::dom::element root;
  if (auto err = parser_->parse(payload.data(), payload.size()).get(root)) {
    return Status::ParseError(std::string("not JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::object o;
  if (root.get(o) != simdjson::SUCCESS) {
    return Status::ParseError(std::string("neither a row nor a Kafka Connect envelope: ") + JsonKind(root.type()));
  }
  simdjson::dom::element schema, body;
  if (o.size() == 2 && o["schema"].get(schema) == simdjson::SUCCESS &&
      o["payload"].get(body) == simdjson::SUCCESS) {
    if (body.is_null()) return Status::OK();  // a null value with its schema: a tombstone
    if (!body.is_object()) {
      return Status::ParseError(std::string("a Kafka Connect envelope whose payload is ") + JsonKind(body.type()) +
                                ", not a row");
    }
    return Upsert(payload_after_.get(), payload, out);
  }
  return Upsert(after_.get(), payload, out);
}

bool ChangeRecordDecoder::IsDebeziumSchema(int32_t id, std::string_view payload) {
  auto it = registry_debezium_.find(id);
  if (it != registry_debezium_.end()) return it->second;
  std::optional<AvroSchemaCache::Entry> e = registry_schemas_->Get(id);
  if (!e) {
    if (!registry_schemas_->Ensure(id).ok()) return false;  // the row decoder says why, not remembered
    e = registry_schemas_->Get(id);
  }
  if (protobuf_) {
    // The message type the indexes name. An unknown id is a row (its decoder says why); indexes
    // naming no message, or a schema that does not parse, say nothing about the id's other
    // messages: not remembered, the row decoder says why.
    if (!e || !e->found) return registry_debezium_[id] = false;
    Result<std::vector<std::string>> names = ProtobufMessageFieldNames(payload, *registry_schemas_);
    if (!names.ok()) return false;
    int seen = 0;
    for (const std::string& name : *names) seen += name == "before" || name == "after" || name == "op";
    return registry_debezium_[id] = seen == 3;
  }
  bool debezium = false;
  if (e && e->found) {
    simdjson::dom::parser parser;
    simdjson::dom::element root, type;
    simdjson::dom::array fields;
    if (!parser.parse(e->json).get(root)) {
      // {"type": {"type": "record", ...}} is the same record.
      while (root.is_object() && root["type"].get(type) == simdjson::SUCCESS && type.is_object()) root = type;
      if (root["fields"].get(fields) == simdjson::SUCCESS) {
        int seen = 0;
        for (simdjson::dom::element f : fields) {
          std::string_view name;
          if (f["name"].get(name) == simdjson::SUCCESS && (name == "before" || name == "after" || name == "op")) ++seen;
        }
        debezium = seen == 3;
      }
    }
  }
  registry_debezium_[id] = debezium;
  return debezium;
}

Status ChangeRecordDecoder::DecodeRegistry(std::string_view payload, ChangeRecord* out) {
  std::optional<int32_t> id = ConfluentSchemaId(payload);
  if (!id || !IsDebeziumSchema(*id, payload)) return Upsert(after_.get(), payload, out);
  event_values_.assign(2 + width_, Value());
  RETURN_IF_ERROR(registry_event_->Decode(payload, event_values_));
  if (event_values_[0].is_null()) return Status::ParseError("a Debezium event without op");
  const std::string& c = event_values_[0].string_value();
  if (c == "d") {
    if (event_values_[1].is_null()) return Status::ParseError("a delete without the key in before");
    out->kind = ChangeRecord::Kind::kDelete;
    out->key = std::move(event_values_[1]);
    return Status::OK();
  }
  if (c != "c" && c != "u" && c != "r") return Status::ParseError("unknown op '" + c + "'");
  out->row.assign(std::make_move_iterator(event_values_.begin() + 2), std::make_move_iterator(event_values_.end()));
  if (out->row[key_index_].is_null()) return Status::ParseError("a row without its key");
  out->kind = ChangeRecord::Kind::kUpsert;
  return Status::OK();
}

}  // namespace sluice
