#include "operators/columnar_json_decoder.h"

#include <simdjson.h>

#include <cstring>
#include <functional>
#include <unordered_map>
#include <utility>

#include "operators/json_decoder.h"

namespace sluice {
namespace {

namespace ondemand = simdjson::ondemand;

std::string_view TrimJsonSpace(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' ||
                        s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

constexpr uint32_t kNoSlot = 0xffffffffu;

}  // namespace

struct ColumnarJsonDecoder::Impl {
  ondemand::parser parser;
  ondemand::document doc;
  /// The batch's payloads, each followed by SIMDJSON_PADDING zero bytes: simdjson sees exactly
  /// the bytes the row decoder gives it, and string views stay valid for the whole batch.
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;
  std::vector<size_t> offsets;
  /// Key -> slot (flat schemas only).
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> slots;
  /// The keys met at each position of the previous record (NDJSON writers keep their order).
  struct RememberedKey {
    std::string key;
    uint32_t slot = kNoSlot;
    bool usable = false;  ///< no quote or backslash: its raw JSON text equals the key
  };
  std::vector<RememberedKey> order;
  static constexpr size_t kMaxRememberedKeys = 64;
  Value scratch;

  uint32_t Find(std::string_view key) const {
    auto it = slots.find(key);
    return it == slots.end() ? kNoSlot : it->second;
  }
};

ColumnarJsonDecoder::ColumnarJsonDecoder(const Schema& schema)
    : schema_(schema), impl_(std::make_unique<Impl>()) {}

ColumnarJsonDecoder::~ColumnarJsonDecoder() = default;

Result<std::unique_ptr<ColumnarJsonDecoder>> ColumnarJsonDecoder::Make(const Schema& schema) {
  std::unique_ptr<ColumnarJsonDecoder> d(new ColumnarJsonDecoder(schema));
  ASSIGN_OR_RETURN(d->row_decoder_, MakeNdjsonDecoder(schema));
  for (size_t slot = 0; slot < schema.size(); ++slot) {
    const std::string& path = schema.field(slot).source_path();
    if (path.empty() || path.find('.') != std::string::npos) return std::unique_ptr<ColumnarJsonDecoder>();
    if (!d->impl_->slots.emplace(path, static_cast<uint32_t>(slot)).second) {
      return std::unique_ptr<ColumnarJsonDecoder>();  // two fields read one key
    }
  }
  d->row_.assign(schema.size(), Value());
  return d;
}

void ColumnarJsonDecoder::Fallback(size_t i, std::string_view payload, ColumnBatch* out) {
  ++fallbacks_;
  Status s = row_decoder_->Decode(payload, std::span<Value>(row_));
  if (!s.ok()) {
    out->SetError(i, s.message());
    return;
  }
  for (size_t c = 0; c < schema_.size(); ++c) out->column(c).Set(i, row_[c], out->arena());
}

void ColumnarJsonDecoder::Decode(const RawBatch& batch, ColumnBatch* out) {
  Impl& m = *impl_;
  const size_t n = batch.size();
  out->Reset(schema_, n);
  const size_t need = batch.bytes() + n * simdjson::SIMDJSON_PADDING + simdjson::SIMDJSON_PADDING;
  if (need > m.capacity) {
    m.capacity = std::max(need, m.capacity * 2);
    m.buffer = std::make_unique<char[]>(m.capacity);
  }
  m.offsets.resize(n);
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string_view p = batch.payload(i);
    m.offsets[i] = at;
    if (!p.empty()) std::memcpy(m.buffer.get() + at, p.data(), p.size());
    std::memset(m.buffer.get() + at + p.size(), 0, simdjson::SIMDJSON_PADDING);
    at += p.size() + simdjson::SIMDJSON_PADDING;
  }

  for (size_t i = 0; i < n; ++i) {
    const std::string_view payload = batch.payload(i);
    const char* text = m.buffer.get() + m.offsets[i];
    // The row decoder rejects a NUL byte before parsing; let it say so.
    if (!payload.empty() && std::memchr(payload.data(), '\0', payload.size()) != nullptr) {
      Fallback(i, payload, out);
      continue;
    }
    bool ok = true;
    // Every value of record i is written below only when the whole record decodes; a record
    // that stops half way is decoded again by the row decoder, which rewrites every column.
    if (m.parser.iterate(text, payload.size(), payload.size() + simdjson::SIMDJSON_PADDING).get(m.doc)) {
      ok = false;
    }
    ondemand::object object;
    if (ok) {
      ondemand::json_type type;
      ok = m.doc.type().get(type) == simdjson::SUCCESS && type == ondemand::json_type::object &&
           m.doc.get_object().get(object) == simdjson::SUCCESS;
    }
    size_t position = 0;
    if (ok) {
      for (auto field_result : object) {
        ondemand::field field;
        if (std::move(field_result).get(field)) {
          ok = false;
          break;
        }
        uint32_t slot;
        if (position < m.order.size() && m.order[position].usable &&
            field.key().unsafe_is_equal(m.order[position].key)) {
          slot = m.order[position].slot;
        } else {
          std::string_view key;
          if (field.unescaped_key().get(key)) {
            ok = false;
            break;
          }
          slot = m.Find(key);
          if (position < Impl::kMaxRememberedKeys) {
            if (m.order.size() <= position) m.order.resize(position + 1);
            Impl::RememberedKey& r = m.order[position];
            r.key.assign(key.data(), key.size());
            r.slot = slot;
            r.usable = key.find_first_of("\"\\") == std::string_view::npos;
          }
        }
        ++position;
        if (slot == kNoSlot) continue;
        ondemand::value value = field.value();
        const Field& f = schema_.field(slot);
        Column& col = out->column(slot);
        ondemand::json_type type;
        if (value.type().get(type)) {
          ok = false;
          break;
        }
        switch (type) {
          case ondemand::json_type::null: {
            bool is_null = false;
            if (value.is_null().get(is_null) != simdjson::SUCCESS || !is_null) {
              ok = false;
            } else {
              col.SetNull(i);
            }
            break;
          }
          case ondemand::json_type::string: {
            std::string_view token = TrimJsonSpace(value.raw_json_token());
            std::string_view s;
            if (value.get_string().get(s)) {
              ok = false;
              break;
            }
            if (f.type == Type::kString) {
              // Unescaping only ever shortens: the same length means the same bytes, so the view
              // can point into the batch's copy; otherwise the unescaped text is kept.
              if (token.size() >= 2 && s.size() == token.size() - 2) {
                col.SetString(i, token.substr(1, s.size()));
              } else {
                out->arena()->emplace_back(s);
                col.SetString(i, out->arena()->back());
              }
            } else if (ParseTextValue(s, f, &m.scratch).ok()) {
              col.Set(i, m.scratch, out->arena());
            } else {
              ok = false;
            }
            break;
          }
          case ondemand::json_type::number: {
            std::string_view token = TrimJsonSpace(value.raw_json_token());
            ondemand::number number;
            if (value.get_number().get(number)) {
              ok = false;
              break;
            }
            const ondemand::number_type kind = number.get_number_type();
            if (f.type == Type::kInt64 && kind == ondemand::number_type::signed_integer) {
              col.SetInt(i, number.get_int64());
            } else if (f.type == Type::kDouble) {
              col.SetDouble(i, number.as_double());
            } else if (f.type == Type::kString) {
              col.SetString(i, token);
            } else if (f.type == Type::kTimestamp && kind == ondemand::number_type::signed_integer &&
                       !__builtin_mul_overflow(number.get_int64(), int64_t{1000}, &col.ints[i])) {
              col.valid[i] = 1;  // epoch milliseconds, as the row decoder reads them
            } else {
              ok = false;  // integral doubles, big numbers, fractional milliseconds: the row decoder
            }
            break;
          }
          case ondemand::json_type::boolean: {
            bool b = false;
            if (f.type != Type::kBool || value.get_bool().get(b) != simdjson::SUCCESS) {
              ok = false;
            } else {
              col.SetInt(i, b ? 1 : 0);
            }
            break;
          }
          default:
            ok = false;  // objects and arrays
            break;
        }
        if (!ok) break;
      }
    }
    if (ok) {
      // Trailing content after the object (a readable location means more tokens).
      const char* location = nullptr;
      if (m.doc.current_location().get(location) == simdjson::SUCCESS) ok = false;
    }
    if (!ok) Fallback(i, payload, out);
  }
}

}  // namespace sluice
