#include "connectors/kafka/avro_encoder.h"

#include <avro.h>
#include <httplib.h>
#include <simdjson.h>

#include "core/json_writer.h"

namespace sluice {

struct AvroRowEncoder::State {
  avro_schema_t schema = nullptr;
  avro_value_iface_t* iface = nullptr;
  avro_value_t value{nullptr, nullptr};
  ~State() {
    if (value.iface) avro_value_decref(&value);
    if (iface) avro_value_iface_decref(iface);
    if (schema) avro_schema_decref(schema);
  }
};

AvroRowEncoder::AvroRowEncoder() = default;
AvroRowEncoder::~AvroRowEncoder() = default;

std::string AvroRowEncoder::SchemaJson(const Schema& columns, const std::string& record_name) {
  std::string name = record_name, ns;
  if (const size_t dot = name.rfind('.'); dot != std::string::npos) {
    ns = name.substr(0, dot);
    name = name.substr(dot + 1);
  }
  std::string out = "{\"type\":\"record\",\"name\":";
  AppendJsonString(name, &out);
  if (!ns.empty()) {
    out += ",\"namespace\":";
    AppendJsonString(ns, &out);
  }
  out += ",\"fields\":[";
  for (size_t i = 0; i < columns.size(); ++i) {
    const Field& f = columns.field(i);
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(f.name, &out);
    out += ",\"type\":[\"null\",";
    switch (f.type) {
      case Type::kBool: out += "\"boolean\""; break;
      case Type::kInt64: out += "\"long\""; break;
      case Type::kDouble: out += "\"double\""; break;
      case Type::kTimestamp: out += "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}"; break;
      case Type::kString:
      case Type::kNull: out += "\"string\""; break;
    }
    out += "],\"default\":null}";
  }
  out += "]}";
  return out;
}

Status AvroRowEncoder::Open(const SchemaRegistrySettings& registry, const Schema& columns,
                            const std::string& record_name) {
  columns_ = columns;
  const std::string schema = SchemaJson(columns, record_name);
  auto state = std::make_unique<State>();
  if (avro_schema_from_json_length(schema.data(), schema.size(), &state->schema) != 0) {
    state->schema = nullptr;
    return Status::InvalidArgument(std::string("kafka sink: Avro schema of the columns: ") + avro_strerror());
  }
  state->iface = avro_generic_class_from_schema(state->schema);
  if (!state->iface || avro_generic_value_new(state->iface, &state->value) != 0) {
    state->value.iface = nullptr;
    return Status::Internal(std::string("kafka sink: Avro value: ") + avro_strerror());
  }
  // Register (or find: the registry answers with the existing id for a schema it has).
  const size_t authority = registry.url.find("://") + 3;
  const size_t slash = registry.url.find('/', authority);
  const std::string base = slash == std::string::npos ? "" : registry.url.substr(slash);
  httplib::Client client(registry.url.substr(0, registry.url.size() - base.size()));
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  if (!registry.user.empty()) client.set_basic_auth(registry.user, registry.password);
  std::string body = "{\"schema\":";
  AppendJsonString(schema, &body);
  body += '}';
  auto res = client.Post(base + "/subjects/" + registry.subject + "/versions", body,
                         "application/vnd.schemaregistry.v1+json");
  if (!res) {
    return Status::Unavailable("schema registry " + registry.url + ": " + httplib::to_string(res.error()));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  int64_t id = -1;
  std::string_view message;
  const bool parsed = !parser.parse(res->body).get(e);
  if (res->status == 200 && parsed && e["id"].get(id) == simdjson::SUCCESS) {
    id_ = static_cast<int32_t>(id);
    state_ = std::move(state);
    return Status::OK();
  }
  std::string why = parsed && e["message"].get(message) == simdjson::SUCCESS ? std::string(message)
                                                                                : res->body.substr(0, 200);
  std::string what = "schema registry " + registry.url + ": registering the value schema under " +
                     registry.subject + ": HTTP " + std::to_string(res->status) + " " + why;
  if (res->status >= 500) return Status::Unavailable(what);
  return Status::InvalidArgument(what);
}

Status AvroRowEncoder::Encode(const std::vector<Value>& row, std::string* out) {
  if (!state_) return Status::Internal("kafka sink: Avro encoder not open");
  avro_value_t* rec = &state_->value;
  for (size_t c = 0; c < columns_.size(); ++c) {
    avro_value_t field, branch;
    if (avro_value_get_by_index(rec, c, &field, nullptr) != 0) {
      return Status::Internal(std::string("kafka sink: Avro field: ") + avro_strerror());
    }
    const Value null;
    const Value& v = c < row.size() ? row[c] : null;
    int rc = 0;
    if (v.is_null()) {
      rc = avro_value_set_branch(&field, 0, &branch);
      if (rc == 0) rc = avro_value_set_null(&branch);
    } else {
      rc = avro_value_set_branch(&field, 1, &branch);
      if (rc == 0) {
        switch (columns_.field(c).type) {
          case Type::kBool: rc = avro_value_set_boolean(&branch, v.type() == Type::kBool ? v.bool_value() : 0); break;
          case Type::kInt64:
            rc = avro_value_set_long(&branch, v.type() == Type::kInt64 ? v.int_value() : static_cast<int64_t>(v.AsDouble()));
            break;
          case Type::kDouble: rc = avro_value_set_double(&branch, v.AsDouble()); break;
          case Type::kTimestamp:
            rc = avro_value_set_long(&branch, v.type() == Type::kTimestamp ? v.time_value().micros : v.int_value());
            break;
          case Type::kString:
          case Type::kNull: {
            const std::string text = v.type() == Type::kString ? v.string_value() : v.ToString();
            rc = avro_value_set_string_len(&branch, text.c_str(), text.size() + 1);
            break;
          }
        }
      }
    }
    if (rc != 0) return Status::Internal(std::string("kafka sink: Avro value: ") + avro_strerror());
  }
  size_t size = 0;
  if (avro_value_sizeof(rec, &size) != 0) return Status::Internal(std::string("kafka sink: Avro size: ") + avro_strerror());
  out->assign(5 + size, '\0');
  (*out)[1] = static_cast<char>((id_ >> 24) & 0xff);
  (*out)[2] = static_cast<char>((id_ >> 16) & 0xff);
  (*out)[3] = static_cast<char>((id_ >> 8) & 0xff);
  (*out)[4] = static_cast<char>(id_ & 0xff);
  avro_writer_t writer = avro_writer_memory(out->data() + 5, static_cast<int64_t>(size));
  const int rc = avro_value_write(writer, rec);
  avro_writer_free(writer);
  if (rc != 0) return Status::Internal(std::string("kafka sink: Avro write: ") + avro_strerror());
  return Status::OK();
}

}  // namespace sluice
