#include "operators/protobuf_decoder.h"

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/json_writer.h"
#include "core/time.h"
#include "operators/writer_schema_cache.h"

namespace sluice {

namespace pb = google::protobuf;

std::string ProtobufSchemaBundle(std::string_view schema,
                                 const std::vector<std::pair<std::string, std::string>>& references) {
  std::string out = "{\"schema\":";
  AppendJsonString(schema, &out);
  out += ",\"references\":[";
  for (size_t i = 0; i < references.size(); ++i) {
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(references[i].first, &out);
    out += ",\"schema\":";
    AppendJsonString(references[i].second, &out);
    out += '}';
  }
  out += "]}";
  return out;
}

namespace {

/// While a body is parsed on this thread: where libprotobuf's complaint about it goes (such as
/// "String field 'T.f' contains invalid UTF-8 data ..."), so that it becomes part of the dead
/// letter's reason instead of a line on stderr.
thread_local std::string* tl_parse_complaint = nullptr;

void LogToSpdlog(pb::LogLevel level, const char* file, int line, const std::string& message) {
  if (tl_parse_complaint) {
    if (tl_parse_complaint->empty()) *tl_parse_complaint = message;
    return;
  }
  if (level >= pb::LOGLEVEL_ERROR) spdlog::warn("libprotobuf {}:{}: {}", file, line, message);
  else spdlog::debug("libprotobuf {}:{}: {}", file, line, message);
}

/// The root file's name in the pool (the registry gives the root schema no name).
constexpr const char* kRootName = "<schema>";

/// Collects the first error of the .proto tokenizer and parser.
class TextErrors final : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (first.empty()) first = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  std::string first;
};

/// Collects the first error of building a file into the descriptor pool.
class PoolErrors final : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element, const pb::Message*, ErrorLocation,
                const std::string& message) override {
    if (first.empty()) first = filename + (element.empty() ? "" : " (" + element + ")") + ": " + message;
  }
  std::string first;
};

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/// Decodes standard base64 (with or without padding); nullopt when `text` is not base64.
std::optional<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && (text.back() == '=' || text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.empty() || text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (!IsBase64Char(c)) return std::nullopt;
    uint32_t v = c >= 'A' && c <= 'Z'   ? static_cast<uint32_t>(c - 'A')
                 : c >= 'a' && c <= 'z' ? static_cast<uint32_t>(c - 'a' + 26)
                 : c >= '0' && c <= '9' ? static_cast<uint32_t>(c - '0' + 52)
                 : c == '+'             ? 62u
                                        : 63u;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

/// Parses one schema file: .proto text through protoc's parser, or a base64 serialized
/// FileDescriptorProto.
Status ParseFile(std::string_view text, const std::string& name, pb::FileDescriptorProto* out) {
  if (std::optional<std::string> bytes = Base64Decode(text)) {
    if (out->ParseFromString(*bytes)) {
      out->set_name(name);
      return Status::OK();
    }
    out->Clear();
  }
  pb::io::ArrayInputStream in(text.data(), static_cast<int>(text.size()));
  TextErrors errors;
  pb::io::Tokenizer tokenizer(&in, &errors);
  pb::compiler::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.Parse(&tokenizer, out) || !errors.first.empty()) {
    return Status::ParseError(name + ": " + (errors.first.empty() ? "not a .proto file" : errors.first));
  }
  out->set_name(name);
  return Status::OK();
}

/// The descriptors of one writer schema id.
struct WriterSchema {
  pb::DescriptorPool pool;
  const pb::FileDescriptor* file = nullptr;
  pb::DynamicMessageFactory factory{&pool};

  /// Builds the pool from the cache entry: .proto text, or a bundle with references.
  Status Init(const std::string& entry) {
    std::map<std::string, pb::FileDescriptorProto> files;
    std::string_view root_text = entry;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (!entry.empty() && entry.front() == '{') {
      if (parser.parse(entry).get(doc) || doc["schema"].get(root_text) != simdjson::SUCCESS) {
        return Status::ParseError("not a Protobuf schema bundle");
      }
      simdjson::dom::array refs;
      if (doc["references"].get(refs) == simdjson::SUCCESS) {
        for (simdjson::dom::element r : refs) {
          std::string_view name, text;
          if (r["name"].get(name) != simdjson::SUCCESS || r["schema"].get(text) != simdjson::SUCCESS) {
            return Status::ParseError("a reference without name or schema");
          }
          RETURN_IF_ERROR(ParseFile(text, std::string(name), &files[std::string(name)]));
        }
      }
    }
    RETURN_IF_ERROR(ParseFile(root_text, kRootName, &files[kRootName]));
    std::set<std::string> building;
    RETURN_IF_ERROR(Build(kRootName, files, &building));
    file = pool.FindFileByName(kRootName);
    if (!file) return Status::ParseError("the schema did not build");
    return Status::OK();
  }

 private:
  /// Builds `name` after the files it imports.
  Status Build(const std::string& name, std::map<std::string, pb::FileDescriptorProto>& files,
               std::set<std::string>* building) {
    if (pool.FindFileByName(name)) return Status::OK();
    if (!building->insert(name).second) return Status::ParseError(name + ": imports itself (a cycle)");
    auto it = files.find(name);
    if (it == files.end()) {
      // A well-known type (google/protobuf/timestamp.proto, ...) from libprotobuf's own pool.
      const pb::FileDescriptor* known = pb::DescriptorPool::generated_pool()->FindFileByName(name);
      if (!known) return Status::ParseError("import \"" + name + "\": no reference with that name");
      pb::FileDescriptorProto copy;
      known->CopyTo(&copy);
      it = files.emplace(name, std::move(copy)).first;
    }
    for (const std::string& dep : it->second.dependency()) RETURN_IF_ERROR(Build(dep, files, building));
    PoolErrors errors;
    if (!pool.BuildFileCollectingErrors(it->second, &errors)) {
      return Status::ParseError(errors.first.empty() ? name + ": does not build" : errors.first);
    }
    return Status::OK();
  }
};

/// Reads one zigzag varint (the Confluent message indexes); false when truncated or too long.
bool ReadZigzag(std::string_view* in, int64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) return false;
    const auto b = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
      return true;
    }
  }
  return false;
}

std::string IndexText(const std::vector<int64_t>& idx) {
  std::string s = "[";
  for (size_t i = 0; i < idx.size(); ++i) s += (i ? ", " : "") + std::to_string(idx[i]);
  return s + "]";
}

/// Reads the message indexes at the front of `rest` (after the 5-byte header; consumed) and
/// returns the message type of `file` they name. `idx` is scratch space.
Result<const pb::Descriptor*> ResolveMessage(const pb::FileDescriptor& file, int32_t id, std::string_view* rest,
                                             std::vector<int64_t>* idx) {
  int64_t count = 0;
  if (!ReadZigzag(rest, &count)) {
    return Status::ParseError("schema id " + std::to_string(id) + ": truncated message indexes");
  }
  if (count < 0 || static_cast<uint64_t>(count) > rest->size()) {
    return Status::ParseError("schema id " + std::to_string(id) + ": message index count " + std::to_string(count) +
                              " is out of range");
  }
  idx->assign(1, 0);
  if (count > 0) {
    idx->resize(static_cast<size_t>(count));
    for (auto& i : *idx) {
      if (!ReadZigzag(rest, &i)) {
        return Status::ParseError("schema id " + std::to_string(id) + ": truncated message indexes");
      }
    }
  }
  const pb::Descriptor* d = nullptr;
  for (size_t k = 0; k < idx->size(); ++k) {
    const int n = k == 0 ? file.message_type_count() : d->nested_type_count();
    if ((*idx)[k] < 0 || (*idx)[k] >= n) {
      return Status::ParseError("schema id " + std::to_string(id) + " has no message at index " + IndexText(*idx));
    }
    const int i = static_cast<int>((*idx)[k]);
    d = k == 0 ? file.message_type(i) : d->nested_type(i);
  }
  return d;
}

Status WrongType(const Field& f, std::string_view what) {
  return Status::ParseError("field " + f.name + ": a Protobuf " + std::string(what) + " is not " +
                            std::string(TypeName(f.type)));
}

Status OutOfRange(const Field& f, std::string_view what) {
  return Status::ParseError("field " + f.name + ": " + std::string(what) + " is outside the timestamp range");
}

Status FromInteger(int64_t v, const Field& f, Value* out) {
  int64_t micros = 0;
  switch (f.type) {
    case Type::kInt64: *out = Value::Int(v); return Status::OK();
    case Type::kDouble: *out = Value::Double(static_cast<double>(v)); return Status::OK();
    case Type::kBool: *out = Value::Bool(v != 0); return Status::OK();
    case Type::kTimestamp:
      // Epoch milliseconds, as a JSON number is.
      if (__builtin_mul_overflow(v, 1000, &micros)) return OutOfRange(f, std::to_string(v));
      *out = Value::TimeMicros(micros);
      return Status::OK();
    case Type::kString: out->SetString(std::to_string(v)); return Status::OK();
    case Type::kNull: *out = Value(); return Status::OK();
  }
  return Status::OK();
}

Status FromDouble(double v, const Field& f, Value* out) {
  switch (f.type) {
    case Type::kDouble: *out = Value::Double(v); return Status::OK();
    case Type::kInt64:
      if (std::trunc(v) != v || std::fabs(v) > 9.2e18) return WrongType(f, "non-integral number");
      *out = Value::Int(static_cast<int64_t>(v));
      return Status::OK();
    case Type::kString: out->SetString(FormatDouble(v)); return Status::OK();
    case Type::kTimestamp:
      if (!(std::fabs(v) < 9.2e15)) return OutOfRange(f, "a number");
      *out = Value::TimeMicros(static_cast<int64_t>(v * 1000));
      return Status::OK();
    case Type::kBool: return WrongType(f, "number");
    case Type::kNull: *out = Value(); return Status::OK();
  }
  return Status::OK();
}

Status FromText(std::string_view text, const Field& f, Value* out) {
  if (f.type == Type::kString) {
    out->SetString(text);
    return Status::OK();
  }
  return ParseTextValue(text, f, out);
}

bool IsWrapper(const std::string& full_name) {
  static const std::set<std::string> wrappers = {
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  return wrappers.count(full_name) > 0;
}

class ProtobufDecoder final : public Decoder {
 public:
  ProtobufDecoder(const Schema& schema, std::shared_ptr<AvroSchemaCache> schemas)
      : schema_(schema), schemas_(std::move(schemas)) {
    for (const Field& f : schema_.fields()) {
      std::vector<std::string> path;
      const std::string& p = f.source_path();
      size_t start = 0;
      while (true) {
        size_t dot = p.find('.', start);
        path.push_back(p.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
      }
      paths_.push_back(std::move(path));
    }
  }

  Status SetHeader(std::string_view) override { return Status::OK(); }

  Status Decode(std::string_view payload, std::span<Value> out) override {
    if (payload.empty()) return Status::ParseError("empty message: no Confluent Protobuf header");
    if (payload[0] != 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(payload[0]));
      return Status::ParseError(std::string("not the Confluent wire format: magic byte ") + buf +
                                ", expected 0x00");
    }
    std::optional<int32_t> id = ConfluentSchemaId(payload);
    if (!id) {
      return Status::ParseError("message of " + std::to_string(payload.size()) +
                                " bytes is too short for the Confluent header (5 bytes)");
    }
    ASSIGN_OR_RETURN(WriterSchema * w, writers_.Get(*id));
    std::string_view rest = payload.substr(5);
    ASSIGN_OR_RETURN(const pb::Descriptor* d, ResolveMessage(*w->file, *id, &rest, &indexes_));
    Plan& plan = PlanFor(d, w);
    pb::Message& msg = *plan.message;
    msg.Clear();
    complaint_.clear();
    tl_parse_complaint = &complaint_;
    const bool parsed = msg.ParsePartialFromArray(rest.data(), static_cast<int>(rest.size()));
    tl_parse_complaint = nullptr;
    if (!parsed) {
      std::string why = "body does not match schema id " + std::to_string(*id) + " (message " + d->full_name() +
                        "): not a valid Protobuf encoding of it";
      while (!complaint_.empty() && (complaint_.back() == ' ' || complaint_.back() == '\n')) complaint_.pop_back();
      if (!complaint_.empty()) why += " (" + complaint_ + ")";
      return Status::ParseError(std::move(why));
    }
    if (!msg.IsInitialized()) {
      return Status::ParseError("body does not match schema id " + std::to_string(*id) + " (message " +
                                d->full_name() + "): missing required " + msg.InitializationErrorString());
    }
    for (size_t i = 0; i < out.size() && i < paths_.size(); ++i) {
      RETURN_IF_ERROR(Extract(msg, plan.fields[i], schema_.field(i), &out[i]));
    }
    return Status::OK();
  }

 private:
  /// How to reach each schema field in one message type: the proto fields along the path,
  /// or an empty vector when the writer's message has no such field.
  struct Plan {
    std::unique_ptr<pb::Message> message;  ///< reused for every body of this type
    std::vector<std::vector<const pb::FieldDescriptor*>> fields;
  };

  Plan& PlanFor(const pb::Descriptor* d, WriterSchema* w) {
    auto it = plans_.find(d);
    if (it != plans_.end()) return it->second;
    Plan plan;
    plan.message.reset(w->factory.GetPrototype(d)->New());
    for (const auto& path : paths_) {
      std::vector<const pb::FieldDescriptor*> chain;
      const pb::Descriptor* cur = d;
      for (size_t k = 0; k < path.size(); ++k) {
        const pb::FieldDescriptor* fd = cur ? cur->FindFieldByName(path[k]) : nullptr;
        if (!fd) {
          chain.clear();
          break;
        }
        chain.push_back(fd);
        // A path goes on only through a singular message field; elsewhere it finds nothing.
        cur = (fd->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !fd->is_repeated()) ? fd->message_type()
                                                                                              : nullptr;
      }
      plan.fields.push_back(std::move(chain));
    }
    return plans_.emplace(d, std::move(plan)).first->second;
  }

  static Status Extract(const pb::Message& root, const std::vector<const pb::FieldDescriptor*>& chain,
                        const Field& f, Value* out) {
    if (chain.empty()) {
      *out = Value();  // the writer's message has no such field
      return Status::OK();
    }
    const pb::Message* m = &root;
    for (size_t k = 0; k + 1 < chain.size(); ++k) {
      const pb::Reflection* r = m->GetReflection();
      if (!r->HasField(*m, chain[k])) {
        *out = Value();
        return Status::OK();
      }
      m = &r->GetMessage(*m, chain[k]);
    }
    return Leaf(*m, chain.back(), f, out);
  }

  static Status Leaf(const pb::Message& m, const pb::FieldDescriptor* fd, const Field& f, Value* out) {
    if (fd->is_map()) return WrongType(f, "map");
    if (fd->is_repeated()) return WrongType(f, "repeated field");
    const pb::Reflection* r = m.GetReflection();
    if (fd->has_presence() && !fd->has_default_value() && !r->HasField(m, fd)) {
      *out = Value();
      return Status::OK();
    }
    switch (fd->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32: return FromInteger(r->GetInt32(m, fd), f, out);
      case pb::FieldDescriptor::CPPTYPE_INT64: return FromInteger(r->GetInt64(m, fd), f, out);
      case pb::FieldDescriptor::CPPTYPE_UINT32: return FromInteger(r->GetUInt32(m, fd), f, out);
      case pb::FieldDescriptor::CPPTYPE_UINT64: {
        const uint64_t v = r->GetUInt64(m, fd);
        if (v > static_cast<uint64_t>(INT64_MAX)) {
          if (f.type == Type::kString) {
            out->SetString(std::to_string(v));
            return Status::OK();
          }
          return Status::ParseError("field " + f.name + ": " + std::to_string(v) + " is outside int64");
        }
        return FromInteger(static_cast<int64_t>(v), f, out);
      }
      case pb::FieldDescriptor::CPPTYPE_DOUBLE: return FromDouble(r->GetDouble(m, fd), f, out);
      case pb::FieldDescriptor::CPPTYPE_FLOAT: return FromDouble(r->GetFloat(m, fd), f, out);
      case pb::FieldDescriptor::CPPTYPE_BOOL: {
        const bool b = r->GetBool(m, fd);
        if (f.type == Type::kBool) *out = Value::Bool(b);
        else if (f.type == Type::kString) out->SetString(b ? "true" : "false");
        else if (f.type == Type::kInt64) *out = Value::Int(b ? 1 : 0);
        else return WrongType(f, "bool");
        return Status::OK();
      }
      case pb::FieldDescriptor::CPPTYPE_ENUM: {
        const int number = r->GetEnumValue(m, fd);
        if (f.type == Type::kInt64) {
          *out = Value::Int(number);
          return Status::OK();
        }
        const pb::EnumValueDescriptor* v = fd->enum_type()->FindValueByNumber(number);
        return FromText(v ? v->name() : std::to_string(number), f, out);
      }
      case pb::FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = r->GetStringReference(m, fd, &scratch);
        if (fd->type() == pb::FieldDescriptor::TYPE_BYTES) {
          if (f.type != Type::kString) return WrongType(f, "bytes value");
          out->SetString(s);
          return Status::OK();
        }
        return FromText(s, f, out);
      }
      case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
        const pb::Descriptor* d = fd->message_type();
        const pb::Message& sub = r->GetMessage(m, fd);
        if (d->full_name() == "google.protobuf.Timestamp") return FromTimestamp(sub, f, out);
        if (IsWrapper(d->full_name())) {
          const pb::FieldDescriptor* value = d->FindFieldByName("value");
          if (!value) return WrongType(f, d->full_name());
          return Leaf(sub, value, f, out);
        }
        return WrongType(f, "message " + d->full_name());
      }
    }
    return Status::OK();
  }

  static Status FromTimestamp(const pb::Message& ts, const Field& f, Value* out) {
    const pb::Descriptor* d = ts.GetDescriptor();
    const pb::FieldDescriptor* sec = d->FindFieldByName("seconds");
    const pb::FieldDescriptor* nanos = d->FindFieldByName("nanos");
    if (!sec || !nanos) return WrongType(f, d->full_name());
    const pb::Reflection* r = ts.GetReflection();
    const int64_t s = r->GetInt64(ts, sec);
    const int32_t n = r->GetInt32(ts, nanos);
    int64_t micros = 0;
    if (n < 0 || n > 999999999 || __builtin_mul_overflow(s, 1000000, &micros) ||
        __builtin_add_overflow(micros, n / 1000, &micros)) {
      return OutOfRange(f, "Timestamp " + std::to_string(s) + "s " + std::to_string(n) + "ns");
    }
    switch (f.type) {
      case Type::kTimestamp: *out = Value::TimeMicros(micros); return Status::OK();
      case Type::kString: out->SetString(FormatTimestamp(micros)); return Status::OK();
      case Type::kInt64: *out = Value::Int(micros / 1000); return Status::OK();
      case Type::kDouble: *out = Value::Double(static_cast<double>(micros) / 1000); return Status::OK();
      case Type::kBool: return WrongType(f, "Timestamp");
      case Type::kNull: *out = Value(); return Status::OK();
    }
    return Status::OK();
  }

  Schema schema_;
  std::shared_ptr<AvroSchemaCache> schemas_;
  std::vector<std::vector<std::string>> paths_;
  WriterSchemaCache<WriterSchema> writers_{schemas_};
  std::unordered_map<const pb::Descriptor*, Plan> plans_;
  std::vector<int64_t> indexes_;
  std::string complaint_;  ///< libprotobuf's message about the body being parsed
};

}  // namespace

Result<std::vector<std::string>> ProtobufMessageFieldNames(std::string_view payload, AvroSchemaCache& schemas) {
  std::optional<int32_t> id = ConfluentSchemaId(payload);
  if (!id || payload[0] != 0) return Status::ParseError("not the Confluent wire format");
  std::optional<AvroSchemaCache::Entry> e = schemas.Get(*id);
  if (!e) {
    RETURN_IF_ERROR(schemas.Ensure(*id));
    e = schemas.Get(*id);
  }
  if (!e || !e->found) return Status::NotFound("unknown schema id " + std::to_string(*id));
  WriterSchema w;
  RETURN_IF_ERROR(w.Init(e->json));
  std::string_view rest = payload.substr(5);
  std::vector<int64_t> idx;
  ASSIGN_OR_RETURN(const pb::Descriptor* d, ResolveMessage(*w.file, *id, &rest, &idx));
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
  return names;
}

Result<std::unique_ptr<Decoder>> MakeProtobufDecoder(const Schema& schema,
                                                     std::shared_ptr<AvroSchemaCache> schemas) {
  if (!schemas) return Status::InvalidArgument("format protobuf needs a schema registry");
  static std::once_flag once;
  std::call_once(once, [] { pb::SetLogHandler(&LogToSpdlog); });
  return std::unique_ptr<Decoder>(new ProtobufDecoder(schema, std::move(schemas)));
}

}  // namespace sluice
