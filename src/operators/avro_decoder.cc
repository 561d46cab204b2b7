#include "operators/avro_decoder.h"

#include <avro.h>
#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/time.h"
#include "operators/writer_schema_cache.h"

namespace sluice {

Status AvroSchemaCache::Ensure(int32_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (entries_.count(id) && reader_known_) return Status::OK();
  }
  // Outside the lock: a slow registry must not block workers whose schemas are known. Two
  // workers meeting a new id at once may both fetch it; the first answer is kept.
  bool need_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    need_id = !entries_.count(id);
  }
  Entry entry;
  if (need_id) {
    Result<std::string> r = fetch_by_id_(id);
    std::lock_guard<std::mutex> lock(mu_);
    ++fetches_;
    if (r.ok()) {
      entry.found = true;
      entry.json = std::move(*r);
    } else if (r.status().code() == StatusCode::kNotFound) {
      entry.error = r.status().message();
    } else {
      return r.status();
    }
  }
  if (fetch_reader_) {
    Result<std::string> reader = fetch_reader_();
    if (!reader.ok() && reader.status().code() != StatusCode::kNotFound) return reader.status();
    std::lock_guard<std::mutex> lock(mu_);
    std::string text = reader.ok() ? std::move(*reader) : std::string();
    if (!reader_known_ || *reader_ != text) {
      reader_ = std::make_shared<const std::string>(std::move(text));
      ++reader_generation_;
    }
    reader_known_ = true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (need_id) entries_.try_emplace(id, std::move(entry));
  return Status::OK();
}

std::optional<AvroSchemaCache::Entry> AvroSchemaCache::Get(int32_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

std::pair<std::shared_ptr<const std::string>, uint64_t> AvroSchemaCache::Reader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {reader_, reader_generation_};
}

int AvroSchemaCache::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

std::optional<int32_t> ConfluentSchemaId(std::string_view payload) {
  if (payload.size() < 5 || payload[0] != 0) return std::nullopt;
  const auto* b = reinterpret_cast<const unsigned char*>(payload.data());
  return static_cast<int32_t>((uint32_t{b[1]} << 24) | (uint32_t{b[2]} << 16) |
                              (uint32_t{b[3]} << 8) | uint32_t{b[4]});
}

namespace {

/// The largest single allocation Avro C may make while it decodes a body on this thread (0: no
/// limit). A length prefix is read before the bytes it counts, so a few bytes claiming a
/// terabyte string would otherwise reach malloc; no value of a body needs more than a multiple of
/// the body's size.
thread_local size_t tl_avro_alloc_limit = 0;
/// While a body is decoded: the blocks Avro C allocated on this thread and has not freed yet.
/// Avro C 1.11 does not free what it allocated for a value whose read fails part way (a string
/// buffer, an array's storage); after a failure the value is destroyed and what is left here
/// is freed.
thread_local std::vector<void*>* tl_avro_new_blocks = nullptr;

void Forget(void* ptr) {
  auto& v = *tl_avro_new_blocks;
  for (size_t i = v.size(); i-- > 0;) {
    if (v[i] == ptr) {
      v[i] = v.back();
      v.pop_back();
      return;
    }
  }
}

void* LimitedAlloc(void*, void* ptr, size_t, size_t nsize) {
  if (nsize == 0) {
    if (ptr != nullptr && tl_avro_new_blocks) Forget(ptr);
    std::free(ptr);
    return nullptr;
  }
  if (tl_avro_alloc_limit != 0 && nsize > tl_avro_alloc_limit) return nullptr;
  void* out = std::realloc(ptr, nsize);
  if (out != nullptr && tl_avro_new_blocks) {
    if (ptr != nullptr && out != ptr) {
      // Moved: a block from before the read keeps being untracked; a new one is tracked anew.
      auto& v = *tl_avro_new_blocks;
      for (auto& p : v) {
        if (p == ptr) {
          p = out;
          return out;
        }
      }
    } else if (ptr == nullptr) {
      tl_avro_new_blocks->push_back(out);
    }
  }
  return out;
}

/// Avro C's default allocator is realloc/free too, so blocks allocated before this one was set
/// are freed correctly by it.
void InstallAllocator() {
  static std::once_flag once;
  std::call_once(once, [] { avro_set_allocator(&LimitedAlloc, nullptr); });
}

/// One node of a schema as sluice reads it from the JSON (Avro C 1.11 has no logical types).
struct Node {
  enum class Kind { kNull, kBool, kInt, kLong, kFloat, kDouble, kBytes, kString, kRecord, kEnum,
                    kArray, kMap, kUnion, kFixed };
  Kind kind = Kind::kNull;
  std::string logical;  ///< "timestamp-millis", "decimal", ... or empty
  int scale = 0;        ///< decimal
  struct Child {
    std::string name;
    const Node* node = nullptr;
    std::optional<std::string> default_json;  ///< the field's default, as JSON text
  };
  std::vector<Child> fields;          ///< record
  std::vector<const Node*> branches;  ///< union
  std::vector<std::string> symbols;   ///< enum
};

/// Parses an Avro schema's JSON into Nodes (named types may be referenced by name later).
class SchemaTree {
 public:
  Status Parse(std::string_view json) {
    simdjson::dom::element root;
    auto err = parser_.parse(json.data(), json.size()).get(root);
    if (err) return Status::ParseError(std::string("schema is not JSON: ") + simdjson::error_message(err));
    Result<const Node*> r = Build(root, "");
    if (!r.ok()) return r.status();
    root_ = *r;
    return Status::OK();
  }
  const Node* root() const { return root_; }

 private:
  static std::string FullName(std::string_view name, std::string_view ns) {
    if (name.find('.') != std::string_view::npos || ns.empty()) return std::string(name);
    return std::string(ns) + "." + std::string(name);
  }

  Result<const Node*> Named(std::string_view name, std::string_view ns) {
    auto it = named_.find(FullName(name, ns));
    if (it == named_.end()) it = named_.find(std::string(name));
    if (it == named_.end()) return Status::ParseError("schema: unknown type " + std::string(name));
    return it->second;
  }

  void Register(Node* n, std::string_view name, std::string_view ns) {
    named_[FullName(name, ns)] = n;
    const size_t dot = name.rfind('.');
    named_[std::string(dot == std::string_view::npos ? name : name.substr(dot + 1))] = n;
  }

  Result<const Node*> Primitive(std::string_view t, std::string_view ns) {
    Node n;
    if (t == "null") n.kind = Node::Kind::kNull;
    else if (t == "boolean") n.kind = Node::Kind::kBool;
    else if (t == "int") n.kind = Node::Kind::kInt;
    else if (t == "long") n.kind = Node::Kind::kLong;
    else if (t == "float") n.kind = Node::Kind::kFloat;
    else if (t == "double") n.kind = Node::Kind::kDouble;
    else if (t == "bytes") n.kind = Node::Kind::kBytes;
    else if (t == "string") n.kind = Node::Kind::kString;
    else return Named(t, ns);
    nodes_.push_back(std::move(n));
    return &nodes_.back();
  }

  Result<const Node*> Build(simdjson::dom::element e, std::string ns) {
    std::string_view text;
    if (e.get(text) == simdjson::SUCCESS) return Primitive(text, ns);
    simdjson::dom::array branches;
    if (e.get(branches) == simdjson::SUCCESS) {
      nodes_.emplace_back();
      Node* u = &nodes_.back();
      u->kind = Node::Kind::kUnion;
      for (simdjson::dom::element b : branches) {
        ASSIGN_OR_RETURN(const Node* bn, Build(b, ns));
        u->branches.push_back(bn);
      }
      return u;
    }
    simdjson::dom::object o;
    if (e.get(o) != simdjson::SUCCESS) return Status::ParseError("schema: a type must be a string, array or object");
    std::string_view type;
    simdjson::dom::element te;
    if (o["type"].get(te) != simdjson::SUCCESS) return Status::ParseError("schema: a type without \"type\"");
    if (te.get(type) != simdjson::SUCCESS) {
      // {"type": {...}} or {"type": [...]}: the inner type, annotations ignored.
      return Build(te, ns);
    }
    std::string_view logical, name, nspace;
    if (o["logicalType"].get(logical) != simdjson::SUCCESS) logical = {};
    if (o["name"].get(name) != simdjson::SUCCESS) name = {};
    if (o["namespace"].get(nspace) == simdjson::SUCCESS) ns = std::string(nspace);
    if (!name.empty() && name.find('.') != std::string_view::npos) ns = std::string(name.substr(0, name.rfind('.')));
    Node* n = nullptr;
    if (type == "record" || type == "error") {
      nodes_.emplace_back();
      n = &nodes_.back();
      n->kind = Node::Kind::kRecord;
      Register(n, name, ns);
      simdjson::dom::array fields;
      if (o["fields"].get(fields) != simdjson::SUCCESS) return Status::ParseError("schema: record without fields");
      for (simdjson::dom::element f : fields) {
        Node::Child c;
        std::string_view fname;
        simdjson::dom::element ftype, def;
        if (f["name"].get(fname) != simdjson::SUCCESS || f["type"].get(ftype) != simdjson::SUCCESS) {
          return Status::ParseError("schema: a record field without name or type");
        }
        c.name = std::string(fname);
        ASSIGN_OR_RETURN(c.node, Build(ftype, ns));
        if (f["default"].get(def) == simdjson::SUCCESS) c.default_json = simdjson::minify(def);
        n->fields.push_back(std::move(c));
      }
      return n;
    }
    if (type == "enum") {
      nodes_.emplace_back();
      n = &nodes_.back();
      n->kind = Node::Kind::kEnum;
      Register(n, name, ns);
      simdjson::dom::array symbols;
      if (o["symbols"].get(symbols) == simdjson::SUCCESS) {
        for (simdjson::dom::element s : symbols) {
          std::string_view sv;
          if (s.get(sv) == simdjson::SUCCESS) n->symbols.emplace_back(sv);
        }
      }
      return n;
    }
    if (type == "fixed") {
      nodes_.emplace_back();
      n = &nodes_.back();
      n->kind = Node::Kind::kFixed;
      Register(n, name, ns);
    } else if (type == "array" || type == "map") {
      nodes_.emplace_back();
      n = &nodes_.back();
      n->kind = type == "array" ? Node::Kind::kArray : Node::Kind::kMap;
      return n;  // read into no field (a path never goes through them)
    } else {
      ASSIGN_OR_RETURN(const Node* p, Primitive(type, ns));
      nodes_.push_back(*p);
      n = &nodes_.back();
    }
    n->logical = std::string(logical);
    int64_t scale = 0;
    if (o["scale"].get(scale) == simdjson::SUCCESS) n->scale = static_cast<int>(scale);
    return n;
  }

  simdjson::dom::parser parser_;
  std::deque<Node> nodes_;
  std::unordered_map<std::string, const Node*> named_;
  const Node* root_ = nullptr;
};

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    out.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

/// The decimal text of a two's-complement big-endian unscaled integer with `scale` digits after
/// the point (exact for any length).
std::string DecimalText(const unsigned char* b, size_t n, int scale) {
  const bool negative = n > 0 && (b[0] & 0x80);
  std::vector<unsigned char> mag(b, b + n);
  if (negative) {  // two's complement: invert and add one
    for (auto& c : mag) c = static_cast<unsigned char>(~c);
    for (size_t i = mag.size(); i-- > 0;) {
      if (++mag[i] != 0) break;
    }
  }
  std::string digits;  // repeated division by 10, least significant digit first
  while (true) {
    bool zero = true;
    unsigned rem = 0;
    for (auto& c : mag) {
      unsigned cur = (rem << 8) | c;
      c = static_cast<unsigned char>(cur / 10);
      rem = cur % 10;
      if (c) zero = false;
    }
    digits.push_back(static_cast<char>('0' + rem));
    if (zero) break;
  }
  while (digits.size() < static_cast<size_t>(scale) + 1) digits.push_back('0');
  std::string out;
  if (negative) out.push_back('-');
  for (size_t i = digits.size(); i-- > 0;) {
    out.push_back(digits[i]);
    if (scale > 0 && i == static_cast<size_t>(scale)) out.push_back('.');
  }
  return out;
}

Status WrongType(const Field& f, std::string_view what) {
  return Status::ParseError("field " + f.name + ": an Avro " + std::string(what) + " is not " +
                            std::string(TypeName(f.type)));
}

Status OutOfRange(const Field& f, std::string_view what) {
  return Status::ParseError("field " + f.name + ": " + std::string(what) +
                            " is outside the timestamp range");
}

/// Converts a number the writer gave (with its logical type) to the field's type.
Status FromInteger(int64_t v, const Node& n, const Field& f, Value* out) {
  int64_t factor = 0;  // to microseconds; 0: not a time
  if (n.logical == "timestamp-millis" || n.logical == "local-timestamp-millis") {
    factor = 1000;
  } else if (n.logical == "timestamp-micros" || n.logical == "local-timestamp-micros") {
    factor = 1;
  } else if (n.logical == "date") {
    factor = int64_t{86400} * 1000000;
  }
  const bool is_time = factor != 0;
  int64_t micros = 0;
  switch (f.type) {
    case Type::kInt64: *out = Value::Int(v); return Status::OK();
    case Type::kDouble: *out = Value::Double(static_cast<double>(v)); return Status::OK();
    case Type::kBool: *out = Value::Bool(v != 0); return Status::OK();
    case Type::kTimestamp:
      // A plain long is epoch milliseconds, as a JSON number is.
      if (__builtin_mul_overflow(v, is_time ? factor : 1000, &micros)) {
        return OutOfRange(f, std::to_string(v));
      }
      *out = Value::TimeMicros(micros);
      return Status::OK();
    case Type::kString:
      if (is_time) {
        if (__builtin_mul_overflow(v, factor, &micros)) return OutOfRange(f, std::to_string(v));
        *out = Value::TimeMicros(micros);
        out->SetString(out->ToString());
      } else {
        out->SetString(std::to_string(v));
      }
      return Status::OK();
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
    case Type::kString: {
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
      (void)ec;
      out->SetString(std::string_view(buf, static_cast<size_t>(end - buf)));
      return Status::OK();
    }
    case Type::kTimestamp:
      // Epoch milliseconds, as a JSON number is.
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

/// Converts a field default (JSON text from the reader schema) for field `f` of Avro type `n`.
Status FromDefault(const std::string& json, const Node& n, const Field& f, Value* out) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(json).get(e)) return Status::ParseError("field " + f.name + ": bad default " + json);
  const Node* leaf = &n;
  // A union's default is of its first branch.
  if (leaf->kind == Node::Kind::kUnion && !leaf->branches.empty()) leaf = leaf->branches[0];
  if (e.is_null()) {
    *out = Value();
    return Status::OK();
  }
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string_view text;
  if (e.get(b) == simdjson::SUCCESS) {
    if (f.type == Type::kString) {
      out->SetString(b ? "true" : "false");
      return Status::OK();
    }
    if (f.type == Type::kBool) {
      *out = Value::Bool(b);
      return Status::OK();
    }
    return WrongType(f, "boolean");
  }
  if (e.get(i) == simdjson::SUCCESS) return FromInteger(i, *leaf, f, out);
  if (e.get(d) == simdjson::SUCCESS) return FromDouble(d, f, out);
  if (e.get(text) == simdjson::SUCCESS) return FromText(text, f, out);
  *out = Value();
  return Status::OK();
}

/// The decoded state for one writer schema id.
class WriterSchema {
 public:
  WriterSchema() = default;
  WriterSchema(const WriterSchema&) = delete;
  WriterSchema& operator=(const WriterSchema&) = delete;
  ~WriterSchema() {
    if (value_.iface) avro_value_decref(&value_);
    if (iface_) avro_value_iface_decref(iface_);
    if (schema_) avro_schema_decref(schema_);
  }

  Status Init(const std::string& json) {
    RETURN_IF_ERROR(tree_.Parse(json));
    if (avro_schema_from_json_length(json.data(), json.size(), &schema_) != 0) {
      schema_ = nullptr;
      return Status::ParseError(std::string("schema: ") + avro_strerror());
    }
    iface_ = avro_generic_class_from_schema(schema_);
    if (!iface_) return Status::ParseError(std::string("schema: ") + avro_strerror());
    if (avro_generic_value_new(iface_, &value_) != 0) {
      value_.iface = nullptr;
      return Status::ParseError(std::string("schema: ") + avro_strerror());
    }
    return Status::OK();
  }

  const Node* root() const { return tree_.root(); }
  avro_value_t* value() { return &value_; }

  /// Destroys the value (after a failed read left it half built); Create() makes a new one.
  void Destroy() {
    if (value_.iface) avro_value_decref(&value_);
    value_ = {nullptr, nullptr};
  }
  Status Create() {
    if (avro_generic_value_new(iface_, &value_) != 0) {
      value_.iface = nullptr;
      return Status::Internal(std::string("avro value: ") + avro_strerror());
    }
    return Status::OK();
  }

 private:
  SchemaTree tree_;
  avro_schema_t schema_ = nullptr;
  avro_value_iface_t* iface_ = nullptr;
  avro_value_t value_{nullptr, nullptr};
};

class AvroDecoder final : public Decoder {
 public:
  AvroDecoder(const Schema& schema, std::shared_ptr<AvroSchemaCache> schemas)
      : schema_(schema), schemas_(std::move(schemas)) {
    for (const Field& f : schema_.fields()) paths_.push_back(SplitPath(f.source_path()));
  }

  Status SetHeader(std::string_view) override { return Status::OK(); }

  Status Decode(std::string_view payload, std::span<Value> out) override {
    if (payload.empty()) return Status::ParseError("empty message: no Confluent Avro header");
    if (payload[0] != 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(payload[0]));
      return Status::ParseError(std::string("not the Confluent wire format: magic byte ") + buf +
                                ", expected 0x00");
    }
    std::optional<int32_t> id = ConfluentSchemaId(payload);
    if (!id) return Status::ParseError("message of " + std::to_string(payload.size()) +
                                       " bytes is too short for the Confluent header (5 bytes)");
    ASSIGN_OR_RETURN(WriterSchema * w, writers_.Get(*id));
    RefreshReader();
    avro_value_t* v = w->value();
    avro_value_reset(v);
    avro_reader_t reader = avro_reader_memory(payload.data() + 5, static_cast<int64_t>(payload.size() - 5));
    if (!reader) return Status::Internal("avro_reader_memory failed");
    tl_avro_alloc_limit = (size_t{64} << 20) + 64 * payload.size();
    new_blocks_.clear();
    tl_avro_new_blocks = &new_blocks_;
    int rc = avro_value_read(reader, v);
    tl_avro_alloc_limit = 0;
    std::string why = rc != 0 ? avro_strerror() : std::string();
    if (rc != 0) {
      // Destroy the half-read value (freeing what it owns, still tracked so those blocks leave
      // the list), then free what nobody owns, then make a new value (untracked).
      w->Destroy();
      tl_avro_new_blocks = nullptr;
      for (void* p : new_blocks_) std::free(p);
      new_blocks_.clear();
      Status renewed = w->Create();
      if (!renewed.ok()) {
        avro_reader_free(reader);
        return renewed;
      }
    }
    tl_avro_new_blocks = nullptr;
    char extra = 0;
    bool trailing = rc == 0 && avro_read(reader, &extra, 1) == 0;
    avro_reader_free(reader);
    if (rc != 0) {
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      return Status::ParseError("body does not match schema id " + std::to_string(*id) + ": " + why);
    }
    if (trailing) {
      return Status::ParseError("body does not match schema id " + std::to_string(*id) +
                                ": bytes left after the record");
    }
    for (size_t i = 0; i < out.size() && i < paths_.size(); ++i) {
      RETURN_IF_ERROR(Extract(*v, w->root(), i, &out[i]));
    }
    return Status::OK();
  }

 private:
  /// Re-reads the reader schema's defaults when the cache holds a new reader schema.
  void RefreshReader() {
    auto [json, generation] = schemas_->Reader();
    if (generation == reader_generation_) return;
    reader_generation_ = generation;
    reader_tree_.reset();
    defaults_.assign(paths_.size(), {});
    if (json->empty()) return;
    auto tree = std::make_unique<SchemaTree>();
    if (!tree->Parse(*json).ok()) return;
    for (size_t i = 0; i < paths_.size(); ++i) {
      const Node* n = tree->root();
      for (size_t k = 0; n && k < paths_[i].size(); ++k) {
        while (n && n->kind == Node::Kind::kUnion) n = NonNullBranch(n);
        if (!n || n->kind != Node::Kind::kRecord) break;
        const Node::Child* found = nullptr;
        for (const auto& c : n->fields) {
          if (c.name == paths_[i][k]) found = &c;
        }
        if (!found) break;
        if (k + 1 == paths_[i].size()) {
          if (found->default_json) defaults_[i] = {*found->default_json, found->node};
          break;
        }
        n = found->node;
      }
    }
    reader_tree_ = std::move(tree);
  }

  static const Node* NonNullBranch(const Node* u) {
    const Node* pick = nullptr;
    for (const Node* b : u->branches) {
      if (b->kind != Node::Kind::kNull) {
        if (pick) return nullptr;  // more than one: no single path through it
        pick = b;
      }
    }
    return pick;
  }

  Status Default(size_t i, Value* out) {
    const auto& [json, node] = defaults_[i];
    if (!node) {
      *out = Value();
      return Status::OK();
    }
    return FromDefault(json, *node, schema_.field(i), out);
  }

  Status Extract(avro_value_t root, const Node* n, size_t i, Value* out) {
    avro_value_t cur = root;
    const std::vector<std::string>& path = paths_[i];
    for (size_t k = 0; k < path.size(); ++k) {
      RETURN_IF_ERROR(Unwrap(&cur, &n));
      if (n->kind == Node::Kind::kNull) {
        *out = Value();
        return Status::OK();
      }
      if (n->kind != Node::Kind::kRecord) {
        *out = Value();  // a non-record where the path expects one counts as missing, as in JSON
        return Status::OK();
      }
      size_t idx = n->fields.size();
      for (size_t j = 0; j < n->fields.size(); ++j) {
        if (n->fields[j].name == path[k]) {
          idx = j;
          break;
        }
      }
      if (idx == n->fields.size()) return Default(i, out);  // the writer has no such field
      avro_value_t child;
      if (avro_value_get_by_index(&cur, idx, &child, nullptr) != 0) {
        return Status::ParseError("field " + schema_.field(i).name + ": " + avro_strerror());
      }
      cur = child;
      n = n->fields[idx].node;
    }
    RETURN_IF_ERROR(Unwrap(&cur, &n));
    return Leaf(cur, *n, schema_.field(i), out);
  }

  static Status Unwrap(avro_value_t* v, const Node** n) {
    while ((*n)->kind == Node::Kind::kUnion) {
      int disc = 0;
      avro_value_t branch;
      if (avro_value_get_discriminant(v, &disc) != 0 || avro_value_get_current_branch(v, &branch) != 0 ||
          disc < 0 || static_cast<size_t>(disc) >= (*n)->branches.size()) {
        return Status::ParseError(std::string("union: ") + avro_strerror());
      }
      *v = branch;
      *n = (*n)->branches[static_cast<size_t>(disc)];
    }
    return Status::OK();
  }

  static Status Leaf(avro_value_t v, const Node& n, const Field& f, Value* out) {
    switch (n.kind) {
      case Node::Kind::kNull: *out = Value(); return Status::OK();
      case Node::Kind::kBool: {
        int b = 0;
        avro_value_get_boolean(&v, &b);
        if (f.type == Type::kBool) *out = Value::Bool(b != 0);
        else if (f.type == Type::kString) out->SetString(b ? "true" : "false");
        else if (f.type == Type::kInt64) *out = Value::Int(b ? 1 : 0);
        else return WrongType(f, "boolean");
        return Status::OK();
      }
      case Node::Kind::kInt: {
        int32_t x = 0;
        avro_value_get_int(&v, &x);
        return FromInteger(x, n, f, out);
      }
      case Node::Kind::kLong: {
        int64_t x = 0;
        avro_value_get_long(&v, &x);
        return FromInteger(x, n, f, out);
      }
      case Node::Kind::kFloat: {
        float x = 0;
        avro_value_get_float(&v, &x);
        return FromDouble(x, f, out);
      }
      case Node::Kind::kDouble: {
        double x = 0;
        avro_value_get_double(&v, &x);
        return FromDouble(x, f, out);
      }
      case Node::Kind::kString: {
        const char* s = nullptr;
        size_t size = 0;
        avro_value_get_string(&v, &s, &size);
        // Avro C counts the terminating NUL in the size.
        return FromText(std::string_view(s ? s : "", size > 0 ? size - 1 : 0), f, out);
      }
      case Node::Kind::kBytes:
      case Node::Kind::kFixed: {
        const void* p = nullptr;
        size_t size = 0;
        if (n.kind == Node::Kind::kBytes) avro_value_get_bytes(&v, &p, &size);
        else avro_value_get_fixed(&v, &p, &size);
        std::string_view bytes(static_cast<const char*>(p ? p : ""), size);
        if (n.logical == "decimal") {
          std::string text = DecimalText(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), n.scale);
          return FromText(text, f, out);
        }
        if (f.type == Type::kString) {
          out->SetString(bytes);
          return Status::OK();
        }
        return WrongType(f, "bytes value");
      }
      case Node::Kind::kEnum: {
        int sym = 0;
        avro_value_get_enum(&v, &sym);
        if (sym < 0 || static_cast<size_t>(sym) >= n.symbols.size()) return WrongType(f, "enum symbol");
        return FromText(n.symbols[static_cast<size_t>(sym)], f, out);
      }
      case Node::Kind::kRecord: return WrongType(f, "record");
      case Node::Kind::kArray: return WrongType(f, "array");
      case Node::Kind::kMap: return WrongType(f, "map");
      case Node::Kind::kUnion: return WrongType(f, "union");
    }
    return Status::OK();
  }

  Schema schema_;
  std::shared_ptr<AvroSchemaCache> schemas_;
  std::vector<std::vector<std::string>> paths_;
  WriterSchemaCache<WriterSchema> writers_{schemas_};
  std::vector<void*> new_blocks_;  ///< see tl_avro_new_blocks
  std::unique_ptr<SchemaTree> reader_tree_;
  uint64_t reader_generation_ = ~uint64_t{0};
  std::vector<std::pair<std::string, const Node*>> defaults_;  ///< per field: default, reader node
};

}  // namespace

Result<std::unique_ptr<Decoder>> MakeAvroDecoder(const Schema& schema,
                                                 std::shared_ptr<AvroSchemaCache> schemas) {
  if (!schemas) return Status::InvalidArgument("format avro needs a schema registry");
  InstallAllocator();
  return std::unique_ptr<Decoder>(new AvroDecoder(schema, std::move(schemas)));
}

}  // namespace sluice
