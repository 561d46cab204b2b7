#include "connectors/kafka/cdc_record.h"

#include <string>

#include "operators/decoder.h"

namespace sluice {
namespace {

/// The same fields, read from inside `prefix` (a dotted path) of each message.
Schema Prefixed(const Schema& schema, const std::string& prefix) {
  Schema out;
  for (const auto& f : schema.fields()) out.Add(Field{f.name, f.type, prefix + f.source_path()});
  return out;
}

}  // namespace

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
  if (debezium) {
    const Field& key = schema.field(key_index);
    ASSIGN_OR_RETURN(d->after_, MakeDecoder(json, Prefixed(schema, "after.")));
    ASSIGN_OR_RETURN(d->payload_after_, MakeDecoder(json, Prefixed(schema, "payload.after.")));
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
  }
  return d;
}

Status ChangeRecordDecoder::Decode(std::string_view payload, ChangeRecord* out) {
  out->kind = ChangeRecord::Kind::kNone;
  out->key = Value();
  if (payload.empty()) return Status::OK();  // a tombstone: the delete event came before it
  Decoder* row_decoder = after_.get();
  if (debezium_) {
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
    if (enveloped) row_decoder = payload_after_.get();
  }
  out->row.assign(width_, Value());
  RETURN_IF_ERROR(row_decoder->Decode(payload, out->row));
  if (out->row[key_index_].is_null()) return Status::ParseError("a row without its key");
  out->kind = ChangeRecord::Kind::kUpsert;
  return Status::OK();
}

}  // namespace sluice
