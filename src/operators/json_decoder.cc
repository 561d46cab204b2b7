#include "operators/json_decoder.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sluice {
namespace {

namespace ondemand = simdjson::ondemand;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

/// Holds one step of the schema's path trie: the slots whose path ends here and the keys below.
struct PathNode {
  std::vector<uint32_t> slots;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> children;
  /// The same children as a list, searched linearly when short (cheaper than hashing a key).
  std::vector<std::pair<std::string, uint32_t>> child_list;
  /// Returns the child reached by `key`, or 0 (the root is nobody's child).
  uint32_t Find(std::string_view key) const {
    if (child_list.size() <= kMaxLinearChildren) {
      for (const auto& [name, child] : child_list) {
        if (name.size() == key.size() && std::memcmp(name.data(), key.data(), key.size()) == 0) {
          return child;
        }
      }
      return 0;
    }
    auto it = children.find(key);
    return it == children.end() ? 0 : it->second;
  }
  static constexpr size_t kMaxLinearChildren = 16;
  /// The keys met at each position of the last object decoded here, and where they led: NDJSON
  /// writers keep their key order, so a key is usually matched by one comparison of its raw
  /// text, without unescaping it or searching for it.
  struct RememberedKey {
    std::string key;
    uint32_t child = 0;
    bool usable = false;  ///< key has no quote or backslash, so its raw JSON text equals it
  };
  std::vector<RememberedKey> order;
  static constexpr size_t kMaxRememberedKeys = 64;
  uint32_t depth = 0;  ///< number of path segments leading here
  /// True when the value must be read more than once (several slots, or slots and children).
  bool shared() const { return slots.size() > 1 || (!slots.empty() && !children.empty()); }
};

/// Keeps a padded copy of some JSON text for simdjson, growing only when needed.
class PaddedBuffer {
 public:
  /// Copies `text` in and returns the usable capacity (text size plus at least the padding).
  size_t Assign(std::string_view text) {
    const size_t need = text.size() + simdjson::SIMDJSON_PADDING;
    if (need > capacity_) {
      capacity_ = std::max(need, capacity_ * 2);
      data_ = std::make_unique<char[]>(capacity_);
    }
    if (!text.empty()) std::memcpy(data_.get(), text.data(), text.size());
    std::memset(data_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return capacity_;
  }
  const char* data() const { return data_.get(); }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
};

/// Parses a value that shared path nodes need to read more than once.
struct Reparser {
  ondemand::parser parser;
  PaddedBuffer buffer;
  ondemand::document doc;
};

std::string_view TrimJsonSpace(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' ||
                        s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string_view RawToken(ondemand::value& v) { return TrimJsonSpace(v.raw_json_token()); }
std::string_view RawToken(ondemand::document& d) {
  std::string_view s;
  if (d.raw_json_token().get(s) != simdjson::SUCCESS) return {};
  return TrimJsonSpace(s);
}

std::string_view TypeLabel(Type type) {
  switch (type) {
    case Type::kInt64: return "an int64";
    case Type::kDouble: return "a double";
    case Type::kBool: return "a bool";
    case Type::kTimestamp: return "a timestamp";
    case Type::kString: return "a string";
    case Type::kNull: return "null";
  }
  return "a value";
}

Status NotA(const Field& field, std::string_view shown, bool quote) {
  std::string m = "field ";
  m += field.name;
  m += ": ";
  m += quote ? QuoteForMessage(shown) : std::string(shown);
  m += " is not ";
  m += TypeLabel(field.type);
  return Status::ParseError(std::move(m));
}

/// 2^63 as a double: the first value past the int64 range.
constexpr double kTwoPow63 = 9223372036854775808.0;

bool DoubleToInt64(double d, int64_t* out) {
  if (!std::isfinite(d) || d < -kTwoPow63 || d >= kTwoPow63) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

class NdjsonDecoder final : public Decoder {
 public:
  explicit NdjsonDecoder(const Schema& schema) : schema_(schema) {}

  Status Build() {
    nodes_.emplace_back();  // root
    uint32_t max_shared_depth = 0;
    for (size_t slot = 0; slot < schema_.size(); ++slot) {
      const std::string& path = schema_.field(slot).source_path();
      uint32_t node = 0;
      size_t begin = 0;
      while (true) {
        size_t dot = path.find('.', begin);
        std::string_view segment = std::string_view(path).substr(
            begin, dot == std::string::npos ? std::string::npos : dot - begin);
        if (segment.empty()) {
          return Status::InvalidArgument("field " + schema_.field(slot).name +
                                         ": empty segment in JSON path '" + path + "'");
        }
        auto it = nodes_[node].children.find(segment);
        if (it == nodes_[node].children.end()) {
          const uint32_t child = static_cast<uint32_t>(nodes_.size());
          const uint32_t depth = nodes_[node].depth + 1;
          nodes_[node].children.emplace(std::string(segment), child);
          nodes_[node].child_list.emplace_back(std::string(segment), child);
          nodes_.emplace_back();
          nodes_.back().depth = depth;
          node = child;
        } else {
          node = it->second;
        }
        if (dot == std::string::npos) break;
        begin = dot + 1;
      }
      nodes_[node].slots.push_back(static_cast<uint32_t>(slot));
    }
    set_in_.assign(schema_.size(), 0);
    for (const PathNode& node : nodes_) {
      if (node.shared()) max_shared_depth = std::max(max_shared_depth, node.depth);
    }
    if (max_shared_depth > 0) {
      reparsers_.resize(max_shared_depth + 1);
      for (const PathNode& node : nodes_) {
        if (node.shared()) reparsers_[node.depth] = std::make_unique<Reparser>();
      }
    }
    return Status::OK();
  }

  Status SetHeader(std::string_view) override { return Status::OK(); }

  Status Decode(std::string_view payload, std::span<Value> out) override {
    if (out.size() < schema_.size()) return Status::Internal("JSON decoder: output row too small");
    // Slots are nulled after decoding unless set, so string slots keep their buffers.
    if (++generation_ == 0) {
      std::fill(set_in_.begin(), set_in_.end(), 0);
      generation_ = 1;
    }

    // JSON text holds no raw NUL (in a string it must be escaped as \u0000), but simdjson stops
    // at one as at its zero padding, so `{"a":1<NUL>}` would pass for `{"a":1}`.
    if (const void* nul = payload.empty() ? nullptr : std::memchr(payload.data(), '\0', payload.size())) {
      return Status::ParseError("malformed JSON at byte " +
                                std::to_string(static_cast<const char*>(nul) - payload.data()) +
                                ": a NUL byte (JSON text cannot contain one unescaped)");
    }
    const size_t capacity = buffer_.Assign(payload);
    payload_size_ = payload.size();
    doc_ready_ = false;
    auto error = parser_.iterate(buffer_.data(), payload.size(), capacity).get(doc_);
    if (error) return JsonError(error);
    doc_ready_ = true;
    ondemand::json_type type;
    if ((error = doc_.type().get(type))) return JsonError(error);
    if (type != ondemand::json_type::object) {
      return Status::ParseError("JSON record is not an object");
    }
    ondemand::object object;
    if ((error = doc_.get_object().get(object))) return JsonError(error);
    RETURN_IF_ERROR(DecodeObject(object, 0, out));
    // simdjson 3.0 has no document::at_end(): a readable current location means more tokens.
    const char* location = nullptr;
    if (doc_.current_location().get(location) == simdjson::SUCCESS) {
      return Status::ParseError("malformed JSON at byte " +
                                std::to_string(location - buffer_.data()) +
                                ": trailing content after the object");
    }
    for (size_t i = 0; i < schema_.size(); ++i) {
      if (set_in_[i] != generation_) out[i] = Value::Null();
    }
    return Status::OK();
  }

 private:
  /// Returns " at byte N" for the main document's current position, or "" when unknown.
  std::string LocationText() {
    // A document whose iterate() failed must not be asked: it points at stale indexes.
    if (!doc_ready_) return {};
    const char* location = nullptr;
    if (doc_.current_location().get(location) != simdjson::SUCCESS) return {};
    if (location < buffer_.data() || location > buffer_.data() + payload_size_) return {};
    return " at byte " + std::to_string(location - buffer_.data());
  }

  Status JsonError(simdjson::error_code error) {
    // An unbalanced document is caught before iteration starts, so a location would be byte 0.
    std::string where =
        error == simdjson::INCOMPLETE_ARRAY_OR_OBJECT ? std::string() : LocationText();
    return Status::ParseError("malformed JSON" + where + ": " + simdjson::error_message(error));
  }

  /// Reports a token that looked like true, false or null but was not.
  Status LiteralError() {
    return Status::ParseError("malformed JSON" + LocationText() +
                              ": invalid literal (expected true, false or null)");
  }

  Status DecodeObject(ondemand::object& object, uint32_t node_index, std::span<Value> out) {
    size_t position = 0;
    for (auto field_result : object) {
      ondemand::field field;
      if (auto error = std::move(field_result).get(field)) return JsonError(error);
      std::vector<PathNode::RememberedKey>& order = nodes_[node_index].order;
      uint32_t child;
      if (position < order.size() && order[position].usable &&
          field.key().unsafe_is_equal(order[position].key)) {
        child = order[position].child;
      } else {
        std::string_view key;
        if (auto error = field.unescaped_key().get(key)) return JsonError(error);
        child = nodes_[node_index].Find(key);
        if (position < PathNode::kMaxRememberedKeys) {
          if (order.size() <= position) order.resize(position + 1);
          PathNode::RememberedKey& remembered = order[position];
          remembered.key.assign(key.data(), key.size());
          remembered.child = child;
          remembered.usable = key.find_first_of("\"\\") == std::string_view::npos;
        }
      }
      ++position;
      if (child == 0) continue;  // the iterator skips the value
      RETURN_IF_ERROR(DecodeValue(field.value(), child, out));
    }
    return Status::OK();
  }

  Status DecodeValue(ondemand::value& value, uint32_t node_index, std::span<Value> out) {
    const PathNode& node = nodes_[node_index];
    if (!node.shared()) {
      if (node.children.empty()) {
        const uint32_t slot = node.slots.front();
        set_in_[slot] = generation_;
        return Convert(value, schema_.field(slot), &out[slot]);
      }
      ondemand::json_type type;
      if (auto error = value.type().get(type)) return JsonError(error);
      if (type != ondemand::json_type::object) return Status::OK();  // counts as missing
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return JsonError(error);
      return DecodeObject(object, node_index, out);
    }
    // Several readers of one value: take its text once and parse it again for each reader.
    std::string_view raw;
    RETURN_IF_ERROR(RawValueText(value, &raw));
    Reparser& reparser = *reparsers_[node.depth];
    for (uint32_t slot : node.slots) {
      set_in_[slot] = generation_;
      RETURN_IF_ERROR(Reparse(raw, &reparser));
      RETURN_IF_ERROR(Convert(reparser.doc, schema_.field(slot), &out[slot]));
    }
    if (!node.children.empty()) {
      RETURN_IF_ERROR(Reparse(raw, &reparser));
      ondemand::json_type type;
      if (auto error = reparser.doc.type().get(type)) return JsonError(error);
      if (type != ondemand::json_type::object) return Status::OK();
      ondemand::object object;
      if (auto error = reparser.doc.get_object().get(object)) return JsonError(error);
      RETURN_IF_ERROR(DecodeObject(object, node_index, out));
    }
    return Status::OK();
  }

  Status Reparse(std::string_view raw, Reparser* reparser) {
    const size_t capacity = reparser->buffer.Assign(raw);
    auto error = reparser->parser.iterate(reparser->buffer.data(), raw.size(), capacity)
                     .get(reparser->doc);
    if (error) return JsonError(error);
    return Status::OK();
  }

  /// Returns the JSON text of `value` (a whole object or array, or one scalar token).
  Status RawValueText(ondemand::value& value, std::string_view* raw) {
    ondemand::json_type type;
    if (auto error = value.type().get(type)) return JsonError(error);
    simdjson::error_code error = simdjson::SUCCESS;
    if (type == ondemand::json_type::object) {
      ondemand::object object;
      if (!(error = value.get_object().get(object))) error = object.raw_json().get(*raw);
    } else if (type == ondemand::json_type::array) {
      ondemand::array array;
      if (!(error = value.get_array().get(array))) error = array.raw_json().get(*raw);
    } else {
      *raw = RawToken(value);
    }
    if (error) return JsonError(error);
    return Status::OK();
  }

  template <typename V>
  Status Convert(V& value, const Field& field, Value* out) {
    ondemand::json_type type;
    if (auto error = value.type().get(type)) return JsonError(error);
    switch (type) {
      case ondemand::json_type::null: {
        bool is_null = false;
        if (value.is_null().get(is_null) != simdjson::SUCCESS || !is_null) return LiteralError();
        *out = Value::Null();
        return Status::OK();
      }
      case ondemand::json_type::string: {
        std::string_view text;
        if (auto error = value.get_string().get(text)) return JsonError(error);
        if (field.type == Type::kString) {
          out->SetString(text);
          return Status::OK();
        }
        return ParseTextValue(text, field, out);
      }
      case ondemand::json_type::number: {
        std::string_view token = RawToken(value);
        ondemand::number number;
        if (auto error = value.get_number().get(number)) return JsonError(error);
        return ConvertNumber(number, token, field, out);
      }
      case ondemand::json_type::boolean: {
        bool b = false;
        if (value.get_bool().get(b) != simdjson::SUCCESS) return LiteralError();
        if (field.type == Type::kBool) {
          *out = Value::Bool(b);
        } else if (field.type == Type::kString) {
          *out = Value::String(std::string_view(b ? "true" : "false"));
        } else {
          return NotA(field, b ? "true" : "false", false);
        }
        return Status::OK();
      }
      case ondemand::json_type::object:
      case ondemand::json_type::array: {
        const bool is_object = type == ondemand::json_type::object;
        if (field.type != Type::kString) {
          return NotA(field, is_object ? "an object" : "an array", false);
        }
        std::string_view raw;
        simdjson::error_code error = simdjson::SUCCESS;
        if (is_object) {
          ondemand::object object;
          if (!(error = value.get_object().get(object))) error = object.raw_json().get(raw);
        } else {
          ondemand::array array;
          if (!(error = value.get_array().get(array))) error = array.raw_json().get(raw);
        }
        if (error) return JsonError(error);
        return SetMinified(raw, out);
      }
    }
    return JsonError(simdjson::INCORRECT_TYPE);
  }

  Status ConvertNumber(ondemand::number number, std::string_view token, const Field& field,
                       Value* out) {
    const ondemand::number_type kind = number.get_number_type();
    switch (field.type) {
      case Type::kInt64: {
        int64_t v = 0;
        if (kind == ondemand::number_type::signed_integer) {
          v = number.get_int64();
        } else if (kind != ondemand::number_type::floating_point_number ||
                   number.get_double() != std::trunc(number.get_double()) ||
                   !DoubleToInt64(number.get_double(), &v)) {
          return NotA(field, token, true);
        }
        *out = Value::Int(v);
        return Status::OK();
      }
      case Type::kDouble:
        *out = Value::Double(number.as_double());
        return Status::OK();
      case Type::kString:
        *out = Value::String(token);
        return Status::OK();
      case Type::kTimestamp: {
        // A number is epoch milliseconds.
        int64_t micros = 0;
        bool ok = false;
        if (kind == ondemand::number_type::signed_integer) {
          ok = !__builtin_mul_overflow(number.get_int64(), int64_t{1000}, &micros);
        } else if (kind == ondemand::number_type::floating_point_number) {
          ok = DoubleToInt64(std::round(number.get_double() * 1000.0), &micros);
        }
        if (!ok) return NotA(field, token, true);
        *out = Value::TimeMicros(micros);
        return Status::OK();
      }
      case Type::kBool:
        return NotA(field, token, true);
      case Type::kNull:
        *out = Value::Null();
        return Status::OK();
    }
    return Status::Internal("unhandled field type");
  }

  Status SetMinified(std::string_view raw, Value* out) {
    minified_.resize(raw.size());
    size_t length = 0;
    if (auto error = simdjson::minify(raw.data(), raw.size(), minified_.data(), length)) {
      return JsonError(error);
    }
    *out = Value::String(std::string_view(minified_.data(), length));
    return Status::OK();
  }

  Schema schema_;
  std::vector<PathNode> nodes_;
  std::vector<std::unique_ptr<Reparser>> reparsers_;  // by node depth; only for shared nodes
  ondemand::parser parser_;
  ondemand::document doc_;
  PaddedBuffer buffer_;
  size_t payload_size_ = 0;
  bool doc_ready_ = false;  ///< doc_ holds the current payload's document
  std::vector<uint32_t> set_in_;  ///< per slot: the generation_ of the last Decode() that set it
  uint32_t generation_ = 0;
  std::string minified_;
};

}  // namespace

Result<std::unique_ptr<Decoder>> MakeNdjsonDecoder(const Schema& schema) {
  auto decoder = std::make_unique<NdjsonDecoder>(schema);
  RETURN_IF_ERROR(decoder->Build());
  return std::unique_ptr<Decoder>(std::move(decoder));
}

}  // namespace sluice
