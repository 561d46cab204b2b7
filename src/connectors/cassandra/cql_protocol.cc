#include "connectors/cassandra/cql_protocol.h"

#include <bit>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/time.h"

namespace sluice::cassandra {
namespace {

// 100-ns ticks between the UUID epoch (1582-10-15) and the Unix epoch.
constexpr uint64_t kUuidEpochOffsetTicks = 0x01B21DD213814000ULL;

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
void PutU16(std::string* out, uint16_t v) {
  PutU8(out, static_cast<uint8_t>(v >> 8));
  PutU8(out, static_cast<uint8_t>(v));
}
void PutI32(std::string* out, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  for (int shift = 24; shift >= 0; shift -= 8) PutU8(out, static_cast<uint8_t>(u >> shift));
}
void PutI64(std::string* out, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  for (int shift = 56; shift >= 0; shift -= 8) PutU8(out, static_cast<uint8_t>(u >> shift));
}
void PutString(std::string* out, std::string_view s) {
  PutU16(out, static_cast<uint16_t>(s.size()));
  out->append(s);
}
void PutLongString(std::string* out, std::string_view s) {
  PutI32(out, static_cast<int32_t>(s.size()));
  out->append(s);
}
void PutBytes(std::string* out, std::string_view s) { PutLongString(out, s); }

std::string Frame(Opcode opcode, int16_t stream, std::string_view body) {
  std::string out;
  out.reserve(kHeaderSize + body.size());
  PutU8(&out, kRequestVersion);
  PutU8(&out, 0);
  PutU16(&out, static_cast<uint16_t>(stream));
  PutU8(&out, static_cast<uint8_t>(opcode));
  PutI32(&out, static_cast<int32_t>(body.size()));
  out.append(body);
  return out;
}

/// Bounds-checked reader over a body; any over-read sets failed and yields zeros/empties.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool failed() const { return failed_; }
  size_t remaining() const { return data_.size() - pos_; }
  std::string_view Take(size_t n) {
    if (failed_ || n > remaining()) {
      failed_ = true;
      return {};
    }
    std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint8_t U8() {
    std::string_view b = Take(1);
    return b.empty() ? 0 : static_cast<uint8_t>(b[0]);
  }
  uint16_t U16() {
    std::string_view b = Take(2);
    if (b.size() != 2) return 0;
    return static_cast<uint16_t>((static_cast<uint8_t>(b[0]) << 8) | static_cast<uint8_t>(b[1]));
  }
  int32_t I32() {
    std::string_view b = Take(4);
    if (b.size() != 4) return 0;
    uint32_t u = 0;
    for (char c : b) u = (u << 8) | static_cast<uint8_t>(c);
    return static_cast<int32_t>(u);
  }
  std::string String() { return std::string(Take(U16())); }
  std::string LongString() {
    int32_t n = I32();
    if (n < 0) {
      failed_ = true;
      return {};
    }
    return std::string(Take(static_cast<size_t>(n)));
  }
  /// [bytes]: nullopt for a negative length.
  std::optional<std::string_view> Bytes() {
    int32_t n = I32();
    if (failed_ || n < 0) return std::nullopt;
    return Take(static_cast<size_t>(n));
  }
  std::string ShortBytes() { return std::string(Take(U16())); }
  std::vector<std::string> StringList() {
    uint16_t n = U16();
    std::vector<std::string> out;
    for (uint16_t i = 0; i < n && !failed_; ++i) out.push_back(String());
    return out;
  }
  void Fail() { failed_ = true; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

uint64_t BigEndian(std::string_view b) {
  uint64_t u = 0;
  for (char c : b) u = (u << 8) | static_cast<uint8_t>(c);
  return u;
}

/// Reads an [option] type; nested types of collections, UDTs and tuples are skipped.
CqlType ReadType(Reader* r, int depth = 0) {
  if (depth > 16) {
    r->Fail();
    return CqlType::kCustom;
  }
  auto type = static_cast<CqlType>(r->U16());
  switch (type) {
    case CqlType::kCustom:
      r->String();
      break;
    case CqlType::kList:
    case CqlType::kSet:
      ReadType(r, depth + 1);
      break;
    case CqlType::kMap:
      ReadType(r, depth + 1);
      ReadType(r, depth + 1);
      break;
    case CqlType::kUdt: {
      r->String();
      r->String();
      uint16_t n = r->U16();
      for (uint16_t i = 0; i < n && !r->failed(); ++i) {
        r->String();
        ReadType(r, depth + 1);
      }
      break;
    }
    case CqlType::kTuple: {
      uint16_t n = r->U16();
      for (uint16_t i = 0; i < n && !r->failed(); ++i) ReadType(r, depth + 1);
      break;
    }
    default:
      break;
  }
  return type;
}

constexpr int32_t kMetaGlobalTableSpec = 0x0001;
constexpr int32_t kMetaHasMorePages = 0x0002;
constexpr int32_t kMetaNoMetadata = 0x0004;

std::vector<ColumnSpec> ReadColumnSpecs(Reader* r, int32_t flags, int32_t count) {
  std::vector<ColumnSpec> out;
  std::string ks, table;
  if (flags & kMetaGlobalTableSpec) {
    ks = r->String();
    table = r->String();
  }
  for (int32_t i = 0; i < count && !r->failed(); ++i) {
    ColumnSpec c;
    if (flags & kMetaGlobalTableSpec) {
      c.keyspace = ks;
      c.table = table;
    } else {
      c.keyspace = r->String();
      c.table = r->String();
    }
    c.name = r->String();
    c.type = ReadType(r);
    out.push_back(std::move(c));
  }
  return out;
}

/// Reads rows metadata: fills columns (unless no_metadata) and the paging state.
Status ReadRowsMetadata(Reader* r, QueryResult* result, int32_t* column_count, bool* no_metadata) {
  int32_t flags = r->I32();
  int32_t count = r->I32();
  if (r->failed() || count < 0 || static_cast<size_t>(count) > r->remaining()) {
    return Status::ParseError("cassandra: malformed rows metadata");
  }
  if (flags & kMetaHasMorePages) {
    auto state = r->Bytes();
    if (state) result->paging_state = std::string(*state);
  }
  *no_metadata = (flags & kMetaNoMetadata) != 0;
  if (!*no_metadata) result->columns = ReadColumnSpecs(r, flags, count);
  *column_count = count;
  if (r->failed()) return Status::ParseError("cassandra: truncated rows metadata");
  return Status::OK();
}

Status ReadResult(Reader* r, const std::vector<ColumnSpec>* prepared_columns, QueryResult* out) {
  int32_t kind = r->I32();
  if (r->failed()) return Status::ParseError("cassandra: truncated RESULT");
  out->kind = static_cast<ResultKind>(kind);
  switch (out->kind) {
    case ResultKind::kVoid:
      return Status::OK();
    case ResultKind::kRows: {
      int32_t columns = 0;
      bool no_metadata = false;
      RETURN_IF_ERROR(ReadRowsMetadata(r, out, &columns, &no_metadata));
      if (no_metadata) {
        if (prepared_columns == nullptr ||
            prepared_columns->size() != static_cast<size_t>(columns)) {
          return Status::ParseError(
              "cassandra: rows without metadata and no matching prepared result columns");
        }
        out->columns = *prepared_columns;
      }
      int32_t rows = r->I32();
      // Every cell takes at least 4 bytes: a count beyond that is a corrupt frame. Rows without
      // columns take no bytes at all, so any count of them is one too (found by
      // tests/fuzz/cql_fuzz.cc: 2^31 empty rows were reserved).
      if (r->failed() || rows < 0 || (columns == 0 && rows > 0) ||
          (columns > 0 &&
           static_cast<uint64_t>(rows) * static_cast<uint64_t>(columns) * 4 > r->remaining())) {
        return Status::ParseError("cassandra: malformed row count in RESULT rows");
      }
      out->rows.reserve(static_cast<size_t>(rows));
      for (int32_t i = 0; i < rows; ++i) {
        std::vector<CqlValue> row;
        row.reserve(static_cast<size_t>(columns));
        for (int32_t c = 0; c < columns; ++c) {
          auto cell = r->Bytes();
          if (r->failed()) return Status::ParseError("cassandra: truncated row in RESULT rows");
          if (!cell) {
            row.push_back(CqlValue::Null());
            continue;
          }
          auto value = DecodeValue(out->columns[static_cast<size_t>(c)].type, *cell);
          if (!value.ok()) {
            return value.status().WithContext("column " +
                                              out->columns[static_cast<size_t>(c)].name);
          }
          row.push_back(std::move(value).value());
        }
        out->rows.push_back(std::move(row));
      }
      return Status::OK();
    }
    case ResultKind::kSetKeyspace:
      out->keyspace = r->String();
      break;
    case ResultKind::kPrepared: {
      out->prepared.id = r->ShortBytes();
      int32_t flags = r->I32();
      int32_t count = r->I32();
      int32_t pk_count = r->I32();
      if (r->failed() || count < 0 || pk_count < 0 ||
          static_cast<size_t>(count) + static_cast<size_t>(pk_count) > r->remaining()) {
        return Status::ParseError("cassandra: malformed PREPARED metadata");
      }
      for (int32_t i = 0; i < pk_count; ++i) out->prepared.pk_indexes.push_back(r->U16());
      out->prepared.bind_columns = ReadColumnSpecs(r, flags, count);
      QueryResult result_meta;
      int32_t result_count = 0;
      bool no_metadata = false;
      RETURN_IF_ERROR(ReadRowsMetadata(r, &result_meta, &result_count, &no_metadata));
      out->prepared.result_columns = std::move(result_meta.columns);
      break;
    }
    case ResultKind::kSchemaChange: {
      out->change_type = r->String();
      out->change_target = r->String();
      out->change_keyspace = r->String();
      if (out->change_target != "KEYSPACE") out->change_name = r->String();
      break;
    }
    default:
      return Status::ParseError("cassandra: unknown RESULT kind " + std::to_string(kind));
  }
  if (r->failed()) return Status::ParseError("cassandra: truncated RESULT");
  return Status::OK();
}

Status ReadError(Reader* r, CqlError* e) {
  e->code = r->I32();
  e->message = r->String();
  switch (static_cast<ErrorCode>(e->code)) {
    case ErrorCode::kUnavailable:
      e->consistency = static_cast<Consistency>(r->U16());
      e->required = r->I32();
      e->alive = r->I32();
      break;
    case ErrorCode::kWriteTimeout:
      e->consistency = static_cast<Consistency>(r->U16());
      e->alive = r->I32();
      e->required = r->I32();
      e->write_type = r->String();
      break;
    case ErrorCode::kReadTimeout:
      e->consistency = static_cast<Consistency>(r->U16());
      e->alive = r->I32();
      e->required = r->I32();
      e->data_present = r->U8() != 0;
      break;
    case ErrorCode::kReadFailure:
      e->consistency = static_cast<Consistency>(r->U16());
      e->alive = r->I32();
      e->required = r->I32();
      e->failures = r->I32();
      e->data_present = r->U8() != 0;
      break;
    case ErrorCode::kWriteFailure:
      e->consistency = static_cast<Consistency>(r->U16());
      e->alive = r->I32();
      e->required = r->I32();
      e->failures = r->I32();
      e->write_type = r->String();
      break;
    case ErrorCode::kFunctionFailure:
      e->keyspace = r->String();
      e->table = r->String();
      r->StringList();
      break;
    case ErrorCode::kAlreadyExists:
      e->keyspace = r->String();
      e->table = r->String();
      break;
    case ErrorCode::kUnprepared:
      e->unprepared_id = r->ShortBytes();
      break;
    default:
      break;
  }
  if (r->failed()) return Status::ParseError("cassandra: truncated ERROR message");
  return Status::OK();
}

}  // namespace

std::string_view ConsistencyName(Consistency c) {
  switch (c) {
    case Consistency::kAny:
      return "ANY";
    case Consistency::kOne:
      return "ONE";
    case Consistency::kTwo:
      return "TWO";
    case Consistency::kThree:
      return "THREE";
    case Consistency::kQuorum:
      return "QUORUM";
    case Consistency::kAll:
      return "ALL";
    case Consistency::kLocalQuorum:
      return "LOCAL_QUORUM";
    case Consistency::kEachQuorum:
      return "EACH_QUORUM";
    case Consistency::kSerial:
      return "SERIAL";
    case Consistency::kLocalSerial:
      return "LOCAL_SERIAL";
    case Consistency::kLocalOne:
      return "LOCAL_ONE";
  }
  return "UNKNOWN";
}

bool ParseConsistency(std::string_view name, Consistency* out) {
  std::string upper;
  for (char c : name)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  for (uint16_t v = 0; v <= 0x000A; ++v) {
    if (ConsistencyName(static_cast<Consistency>(v)) == upper) {
      *out = static_cast<Consistency>(v);
      return true;
    }
  }
  return false;
}

std::string_view CqlTypeName(CqlType type) {
  switch (type) {
    case CqlType::kCustom:
      return "custom";
    case CqlType::kAscii:
      return "ascii";
    case CqlType::kBigint:
      return "bigint";
    case CqlType::kBlob:
      return "blob";
    case CqlType::kBoolean:
      return "boolean";
    case CqlType::kCounter:
      return "counter";
    case CqlType::kDecimal:
      return "decimal";
    case CqlType::kDouble:
      return "double";
    case CqlType::kFloat:
      return "float";
    case CqlType::kInt:
      return "int";
    case CqlType::kTimestamp:
      return "timestamp";
    case CqlType::kUuid:
      return "uuid";
    case CqlType::kVarchar:
      return "text";
    case CqlType::kVarint:
      return "varint";
    case CqlType::kTimeuuid:
      return "timeuuid";
    case CqlType::kInet:
      return "inet";
    case CqlType::kDate:
      return "date";
    case CqlType::kTime:
      return "time";
    case CqlType::kSmallint:
      return "smallint";
    case CqlType::kTinyint:
      return "tinyint";
    case CqlType::kDuration:
      return "duration";
    case CqlType::kList:
      return "list";
    case CqlType::kMap:
      return "map";
    case CqlType::kSet:
      return "set";
    case CqlType::kUdt:
      return "udt";
    case CqlType::kTuple:
      return "tuple";
  }
  return "unknown";
}

std::optional<Uuid> Uuid::Parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  Uuid out;
  size_t byte = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = 0, lo = 0;
    auto nibble = [](char c, int* v) {
      if (c >= '0' && c <= '9')
        *v = c - '0';
      else if (c >= 'a' && c <= 'f')
        *v = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        *v = c - 'A' + 10;
      else
        return false;
      return true;
    };
    if (!nibble(text[i], &hi) || !nibble(text[i + 1], &lo)) return std::nullopt;
    out.bytes[byte++] = static_cast<uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string Uuid::ToString() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xF]);
  }
  return out;
}

uint64_t Uuid::TimeTicks() const {
  uint64_t low = (uint64_t{bytes[0]} << 24) | (uint64_t{bytes[1]} << 16) |
                 (uint64_t{bytes[2]} << 8) | bytes[3];
  uint64_t mid = (uint64_t{bytes[4]} << 8) | bytes[5];
  uint64_t hi = ((uint64_t{bytes[6]} & 0x0F) << 8) | bytes[7];
  return (hi << 48) | (mid << 32) | low;
}

uint64_t Uuid::LowBits() const {
  uint64_t out = 0;
  for (size_t i = 8; i < 16; ++i) out = (out << 8) | bytes[i];
  return out;
}

int64_t Uuid::UnixMicros() const {
  int64_t ticks = static_cast<int64_t>(TimeTicks()) - static_cast<int64_t>(kUuidEpochOffsetTicks);
  return ticks >= 0 ? ticks / 10 : -((-ticks + 9) / 10);
}

CqlValue CqlValue::Boolean(bool v) {
  CqlValue out;
  out.kind_ = Kind::kBoolean;
  out.i_ = v ? 1 : 0;
  return out;
}
CqlValue CqlValue::Int(int32_t v) {
  CqlValue out;
  out.kind_ = Kind::kInt;
  out.i_ = v;
  return out;
}
CqlValue CqlValue::Bigint(int64_t v) {
  CqlValue out;
  out.kind_ = Kind::kBigint;
  out.i_ = v;
  return out;
}
CqlValue CqlValue::Double(double v) {
  CqlValue out;
  out.kind_ = Kind::kDouble;
  out.d_ = v;
  return out;
}
CqlValue CqlValue::Text(std::string v) {
  CqlValue out;
  out.kind_ = Kind::kText;
  out.s_ = std::move(v);
  return out;
}
CqlValue CqlValue::Timestamp(int64_t millis) {
  CqlValue out;
  out.kind_ = Kind::kTimestamp;
  out.i_ = millis;
  return out;
}
CqlValue CqlValue::FromUuid(const Uuid& v) {
  CqlValue out;
  out.kind_ = Kind::kUuid;
  out.uuid_ = v;
  return out;
}
CqlValue CqlValue::Raw(CqlType type, std::string bytes) {
  CqlValue out;
  out.kind_ = Kind::kRaw;
  out.raw_type_ = type;
  out.s_ = std::move(bytes);
  return out;
}

std::string CqlValue::ToString() const {
  switch (kind_) {
    case Kind::kNull:
      return "";
    case Kind::kBoolean:
      return i_ ? "true" : "false";
    case Kind::kInt:
    case Kind::kBigint:
      return std::to_string(i_);
    case Kind::kDouble:
      return FormatDouble(d_);
    case Kind::kText:
      return s_;
    case Kind::kTimestamp: {
      // Milliseconds fit in micros for every year a timestamp column can sensibly hold.
      int64_t millis = i_;
      if (millis > std::numeric_limits<int64_t>::max() / 1000 ||
          millis < std::numeric_limits<int64_t>::min() / 1000) {
        return std::to_string(millis);
      }
      CivilTime t = ToCivil(millis * 1000);
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.year, t.month, t.day,
                    t.hour, t.minute, t.second, t.micros / 1000);
      return buf;
    }
    case Kind::kUuid:
      return uuid_.ToString();
    case Kind::kRaw:
      return "0x" + ToHex(s_);
  }
  return "";
}

std::string_view ErrorCodeName(int32_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kServerError:
      return "server_error";
    case ErrorCode::kProtocolError:
      return "protocol_error";
    case ErrorCode::kBadCredentials:
      return "bad_credentials";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kOverloaded:
      return "overloaded";
    case ErrorCode::kIsBootstrapping:
      return "is_bootstrapping";
    case ErrorCode::kTruncateError:
      return "truncate_error";
    case ErrorCode::kWriteTimeout:
      return "write_timeout";
    case ErrorCode::kReadTimeout:
      return "read_timeout";
    case ErrorCode::kReadFailure:
      return "read_failure";
    case ErrorCode::kFunctionFailure:
      return "function_failure";
    case ErrorCode::kWriteFailure:
      return "write_failure";
    case ErrorCode::kSyntaxError:
      return "syntax_error";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kConfigError:
      return "config_error";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kUnprepared:
      return "unprepared";
  }
  return "unknown_error";
}

Status CqlError::ToStatus() const {
  char code_text[16];
  std::snprintf(code_text, sizeof(code_text), "0x%04X", static_cast<unsigned>(code));
  std::string text =
      "cassandra " + std::string(ErrorCodeName(code)) + " (" + code_text + "): " + message;
  StatusCode status = StatusCode::kInternal;
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kUnavailable:
      text += " (consistency " + std::string(ConsistencyName(consistency)) + ", required " +
              std::to_string(required) + ", alive " + std::to_string(alive) + ")";
      status = StatusCode::kUnavailable;
      break;
    case ErrorCode::kWriteTimeout:
    case ErrorCode::kWriteFailure:
      text += " (consistency " + std::string(ConsistencyName(consistency)) + ", received " +
              std::to_string(alive) + " of " + std::to_string(required) + ", write type " +
              write_type + ")";
      status = StatusCode::kUnavailable;
      break;
    case ErrorCode::kReadTimeout:
    case ErrorCode::kReadFailure:
      text += " (consistency " + std::string(ConsistencyName(consistency)) + ", received " +
              std::to_string(alive) + " of " + std::to_string(required) + ")";
      status = StatusCode::kUnavailable;
      break;
    case ErrorCode::kOverloaded:
    case ErrorCode::kIsBootstrapping:
    case ErrorCode::kTruncateError:
      status = StatusCode::kUnavailable;
      break;
    case ErrorCode::kBadCredentials:
      text +=
          " (the user comes from the URI or SLUICE_CASSANDRA_USER, the password from "
          "SLUICE_CASSANDRA_PASSWORD, or a file named by SLUICE_CASSANDRA_PASSWORD_FILE or "
          "the option password_file)";
      status = StatusCode::kInvalidArgument;
      break;
    case ErrorCode::kSyntaxError:
    case ErrorCode::kUnauthorized:
    case ErrorCode::kInvalid:
    case ErrorCode::kConfigError:
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFunctionFailure:
      status = StatusCode::kInvalidArgument;
      break;
    default:
      break;
  }
  return Status(status, std::move(text));
}

std::optional<int32_t> ErrorCodeOf(const Status& status) {
  const std::string& m = status.message();
  if (m.rfind("cassandra ", 0) != 0) return std::nullopt;
  size_t open = m.find(" (0x");
  if (open == std::string::npos || open + 9 > m.size() || m[open + 8] != ')') {
    return std::nullopt;
  }
  unsigned code = 0;
  for (size_t i = open + 4; i < open + 8; ++i) {
    char c = m[i];
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (v < 0) return std::nullopt;
    code = code * 16 + static_cast<unsigned>(v);
  }
  return static_cast<int32_t>(code);
}

Result<FrameHeader> DecodeHeader(std::string_view bytes) {
  if (bytes.size() < kHeaderSize) return Status::ParseError("cassandra: short frame header");
  FrameHeader h;
  h.version = static_cast<uint8_t>(bytes[0]);
  h.flags = static_cast<uint8_t>(bytes[1]);
  h.stream = static_cast<int16_t>(static_cast<uint16_t>(BigEndian(bytes.substr(2, 2))));
  h.opcode = static_cast<Opcode>(static_cast<uint8_t>(bytes[4]));
  h.length = static_cast<uint32_t>(BigEndian(bytes.substr(5, 4)));
  if (h.version != kResponseVersion) {
    char buf[96];
    std::snprintf(buf, sizeof(buf),
                  "cassandra: unexpected protocol version byte 0x%02X (expected 0x84, v4)",
                  h.version);
    return Status::ParseError(buf);
  }
  if (h.flags & kFlagCompression) {
    return Status::ParseError("cassandra: compressed frame, but no compression was negotiated");
  }
  if (h.length > kMaxBodySize) {
    return Status::ParseError("cassandra: frame body of " + std::to_string(h.length) +
                              " bytes exceeds the 256 MB limit");
  }
  return h;
}

Result<Response> DecodeResponse(const FrameHeader& header, std::string_view body,
                                const std::vector<ColumnSpec>* prepared_result_columns) {
  if (body.size() < header.length) return Status::ParseError("cassandra: truncated frame body");
  Reader r(body.substr(0, header.length));
  Response out;
  out.header = header;
  if (header.flags & kFlagTracing) r.Take(16);
  if (header.flags & kFlagWarning) out.warnings = r.StringList();
  if (header.flags & kFlagCustomPayload) {
    uint16_t n = r.U16();
    for (uint16_t i = 0; i < n && !r.failed(); ++i) {
      r.String();
      r.Bytes();
    }
  }
  if (r.failed()) return Status::ParseError("cassandra: truncated frame prelude");
  switch (header.opcode) {
    case Opcode::kError:
      RETURN_IF_ERROR(ReadError(&r, &out.error));
      break;
    case Opcode::kReady:
      break;
    case Opcode::kAuthenticate:
      out.authenticator = r.String();
      break;
    case Opcode::kSupported: {
      uint16_t n = r.U16();
      for (uint16_t i = 0; i < n && !r.failed(); ++i) {
        std::string key = r.String();
        out.supported[key] = r.StringList();
      }
      break;
    }
    case Opcode::kResult:
      RETURN_IF_ERROR(ReadResult(&r, prepared_result_columns, &out.result));
      break;
    case Opcode::kEvent:
      out.event_type = r.String();
      break;
    case Opcode::kAuthChallenge:
    case Opcode::kAuthSuccess: {
      auto token = r.Bytes();
      if (token) out.token = std::string(*token);
      break;
    }
    default:
      return Status::ParseError("cassandra: unexpected response opcode " +
                                std::to_string(static_cast<int>(header.opcode)));
  }
  if (r.failed()) return Status::ParseError("cassandra: truncated response body");
  return out;
}

Result<CqlValue> DecodeValue(CqlType type, std::string_view bytes) {
  auto need = [&](size_t n) -> Status {
    if (bytes.size() == n) return Status::OK();
    return Status::ParseError("cassandra: a " + std::string(CqlTypeName(type)) + " value takes " +
                              std::to_string(n) + " bytes, got " + std::to_string(bytes.size()));
  };
  switch (type) {
    case CqlType::kAscii:
    case CqlType::kVarchar:
      return CqlValue::Text(std::string(bytes));
    default:
      break;
  }
  // An empty value of a fixed-size type is CQL's "empty" (as from a Thrift-era write): null.
  if (bytes.empty()) return CqlValue::Null();
  switch (type) {
    case CqlType::kBoolean:
      RETURN_IF_ERROR(need(1));
      return CqlValue::Boolean(bytes[0] != 0);
    case CqlType::kInt:
      RETURN_IF_ERROR(need(4));
      return CqlValue::Int(static_cast<int32_t>(static_cast<uint32_t>(BigEndian(bytes))));
    case CqlType::kBigint:
    case CqlType::kCounter:
      RETURN_IF_ERROR(need(8));
      return CqlValue::Bigint(static_cast<int64_t>(BigEndian(bytes)));
    case CqlType::kTimestamp:
      RETURN_IF_ERROR(need(8));
      return CqlValue::Timestamp(static_cast<int64_t>(BigEndian(bytes)));
    case CqlType::kDouble:
      RETURN_IF_ERROR(need(8));
      return CqlValue::Double(std::bit_cast<double>(BigEndian(bytes)));
    case CqlType::kUuid:
    case CqlType::kTimeuuid: {
      RETURN_IF_ERROR(need(16));
      Uuid u;
      std::memcpy(u.bytes.data(), bytes.data(), 16);
      return CqlValue::FromUuid(u);
    }
    default:
      return CqlValue::Raw(type, std::string(bytes));
  }
}

namespace {

Status Mismatch(CqlType type, const CqlValue& value, std::string_view why = {}) {
  std::string kind;
  switch (value.kind()) {
    case CqlValue::Kind::kBoolean:
      kind = "boolean";
      break;
    case CqlValue::Kind::kInt:
      kind = "int";
      break;
    case CqlValue::Kind::kBigint:
      kind = "bigint";
      break;
    case CqlValue::Kind::kDouble:
      kind = "double";
      break;
    case CqlValue::Kind::kText:
      kind = "text";
      break;
    case CqlValue::Kind::kTimestamp:
      kind = "timestamp";
      break;
    case CqlValue::Kind::kUuid:
      kind = "uuid";
      break;
    case CqlValue::Kind::kRaw:
      kind = std::string(CqlTypeName(value.raw_type()));
      break;
    case CqlValue::Kind::kNull:
      kind = "null";
      break;
  }
  std::string text = "cannot bind a " + kind + " value ('" + value.ToString().substr(0, 40) +
                     "') to a " + std::string(CqlTypeName(type)) + " column";
  if (!why.empty()) text += ": " + std::string(why);
  return Status::InvalidArgument(std::move(text));
}

}  // namespace

Status AppendValue(CqlType type, const CqlValue& value, std::string* out) {
  using K = CqlValue::Kind;
  if (value.is_null()) {
    PutI32(out, -1);
    return Status::OK();
  }
  switch (type) {
    case CqlType::kAscii:
      if (value.kind() != K::kText) return Mismatch(type, value);
      for (char c : value.text()) {
        if (static_cast<unsigned char>(c) >= 0x80) return Mismatch(type, value, "not ASCII");
      }
      PutBytes(out, value.text());
      return Status::OK();
    case CqlType::kVarchar:
      if (value.kind() != K::kText) return Mismatch(type, value);
      PutBytes(out, value.text());
      return Status::OK();
    case CqlType::kBoolean:
      if (value.kind() != K::kBoolean) return Mismatch(type, value);
      PutI32(out, 1);
      PutU8(out, value.boolean() ? 1 : 0);
      return Status::OK();
    case CqlType::kInt:
      if (value.kind() != K::kInt && value.kind() != K::kBigint) return Mismatch(type, value);
      if (value.int64() < std::numeric_limits<int32_t>::min() ||
          value.int64() > std::numeric_limits<int32_t>::max()) {
        return Mismatch(type, value, "out of the int range");
      }
      PutI32(out, 4);
      PutI32(out, static_cast<int32_t>(value.int64()));
      return Status::OK();
    case CqlType::kBigint:
    case CqlType::kCounter:
      if (value.kind() != K::kInt && value.kind() != K::kBigint) return Mismatch(type, value);
      PutI32(out, 8);
      PutI64(out, value.int64());
      return Status::OK();
    case CqlType::kTimestamp:
      if (value.kind() != K::kTimestamp && value.kind() != K::kBigint) {
        return Mismatch(type, value);
      }
      PutI32(out, 8);
      PutI64(out, value.int64());
      return Status::OK();
    case CqlType::kDouble: {
      double d = 0;
      if (value.kind() == K::kDouble) {
        d = value.dbl();
      } else if (value.kind() == K::kInt || value.kind() == K::kBigint) {
        d = static_cast<double>(value.int64());
      } else {
        return Mismatch(type, value);
      }
      PutI32(out, 8);
      PutI64(out, static_cast<int64_t>(std::bit_cast<uint64_t>(d)));
      return Status::OK();
    }
    case CqlType::kUuid:
    case CqlType::kTimeuuid: {
      Uuid u;
      if (value.kind() == K::kUuid) {
        u = value.uuid();
      } else if (value.kind() == K::kText) {
        auto parsed = Uuid::Parse(value.text());
        if (!parsed) return Mismatch(type, value, "not a UUID");
        u = *parsed;
      } else {
        return Mismatch(type, value);
      }
      if (type == CqlType::kTimeuuid && u.version() != 1) {
        return Mismatch(type, value, "not a version-1 (time-based) UUID");
      }
      PutI32(out, 16);
      out->append(reinterpret_cast<const char*>(u.bytes.data()), 16);
      return Status::OK();
    }
    default:
      if (value.kind() == K::kRaw && value.raw_type() == type) {
        PutBytes(out, value.text());
        return Status::OK();
      }
      return Mismatch(type, value, "type not supported by sluice's client");
  }
}

namespace {

CqlType OwnType(const CqlValue& v) {
  switch (v.kind()) {
    case CqlValue::Kind::kBoolean:
      return CqlType::kBoolean;
    case CqlValue::Kind::kInt:
      return CqlType::kInt;
    case CqlValue::Kind::kBigint:
      return CqlType::kBigint;
    case CqlValue::Kind::kDouble:
      return CqlType::kDouble;
    case CqlValue::Kind::kText:
      return CqlType::kVarchar;
    case CqlValue::Kind::kTimestamp:
      return CqlType::kTimestamp;
    case CqlValue::Kind::kUuid:
      return CqlType::kUuid;
    case CqlValue::Kind::kRaw:
      return v.raw_type();
    case CqlValue::Kind::kNull:
      return CqlType::kVarchar;
  }
  return CqlType::kVarchar;
}

constexpr uint8_t kQueryValues = 0x01;
constexpr uint8_t kQuerySkipMetadata = 0x02;
constexpr uint8_t kQueryPageSize = 0x04;
constexpr uint8_t kQueryPagingState = 0x08;

Status AppendQueryParameters(std::span<const CqlValue> values, const std::vector<ColumnSpec>* types,
                             const QueryOptions& options, bool allow_skip, std::string* body) {
  if (values.size() > 0xFFFF) return Status::InvalidArgument("cassandra: too many values");
  PutU16(body, static_cast<uint16_t>(options.consistency));
  uint8_t flags = 0;
  if (!values.empty()) flags |= kQueryValues;
  if (allow_skip && options.skip_metadata) flags |= kQuerySkipMetadata;
  if (options.page_size > 0) flags |= kQueryPageSize;
  if (!options.paging_state.empty()) flags |= kQueryPagingState;
  PutU8(body, flags);
  if (!values.empty()) {
    PutU16(body, static_cast<uint16_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      CqlType type = types ? (*types)[i].type : OwnType(values[i]);
      Status s = AppendValue(type, values[i], body);
      if (!s.ok()) {
        return types ? s.WithContext("bind marker " + std::to_string(i) + " (" + (*types)[i].name +
                                     ")")
                     : s;
      }
    }
  }
  if (flags & kQueryPageSize) PutI32(body, options.page_size);
  if (flags & kQueryPagingState) PutBytes(body, options.paging_state);
  return Status::OK();
}

Status CheckArity(const Prepared& prepared, size_t n) {
  if (prepared.bind_columns.size() == n) return Status::OK();
  return Status::InvalidArgument("cassandra: statement '" + prepared.query.substr(0, 80) +
                                 "' binds " + std::to_string(prepared.bind_columns.size()) +
                                 " values, got " + std::to_string(n));
}

}  // namespace

std::string EncodeStartup(int16_t stream, const std::map<std::string, std::string>& options) {
  std::string body;
  PutU16(&body, static_cast<uint16_t>(options.size()));
  for (const auto& [k, v] : options) {
    PutString(&body, k);
    PutString(&body, v);
  }
  return Frame(Opcode::kStartup, stream, body);
}

std::string EncodeOptions(int16_t stream) { return Frame(Opcode::kOptions, stream, {}); }

std::string EncodeAuthResponse(int16_t stream, std::string_view token) {
  std::string body;
  PutBytes(&body, token);
  return Frame(Opcode::kAuthResponse, stream, body);
}

std::string PlainSaslToken(std::string_view user, std::string_view password) {
  std::string token;
  token.push_back('\0');
  token.append(user);
  token.push_back('\0');
  token.append(password);
  return token;
}

Result<std::string> EncodeQuery(int16_t stream, std::string_view cql,
                                std::span<const CqlValue> values, const QueryOptions& options) {
  std::string body;
  PutLongString(&body, cql);
  RETURN_IF_ERROR(AppendQueryParameters(values, nullptr, options, false, &body));
  return Frame(Opcode::kQuery, stream, body);
}

std::string EncodePrepare(int16_t stream, std::string_view cql) {
  std::string body;
  PutLongString(&body, cql);
  return Frame(Opcode::kPrepare, stream, body);
}

Result<std::string> EncodeExecute(int16_t stream, const Prepared& prepared,
                                  std::span<const CqlValue> values, const QueryOptions& options) {
  RETURN_IF_ERROR(CheckArity(prepared, values.size()));
  std::string body;
  PutString(&body, prepared.id);
  RETURN_IF_ERROR(AppendQueryParameters(values, &prepared.bind_columns, options, true, &body));
  return Frame(Opcode::kExecute, stream, body);
}

Result<std::string> EncodeBatch(int16_t stream, BatchType type, std::span<const BatchEntry> entries,
                                Consistency consistency) {
  if (entries.empty()) return Status::InvalidArgument("cassandra: empty batch");
  if (entries.size() > 0xFFFF) return Status::InvalidArgument("cassandra: batch too large");
  std::string body;
  PutU8(&body, static_cast<uint8_t>(type));
  PutU16(&body, static_cast<uint16_t>(entries.size()));
  for (const BatchEntry& e : entries) {
    if (e.values.size() > 0xFFFF) return Status::InvalidArgument("cassandra: too many values");
    if (e.prepared) {
      RETURN_IF_ERROR(CheckArity(*e.prepared, e.values.size()));
      PutU8(&body, 1);
      PutString(&body, e.prepared->id);
    } else {
      PutU8(&body, 0);
      PutLongString(&body, e.query);
    }
    PutU16(&body, static_cast<uint16_t>(e.values.size()));
    for (size_t i = 0; i < e.values.size(); ++i) {
      CqlType t = e.prepared ? e.prepared->bind_columns[i].type : OwnType(e.values[i]);
      Status s = AppendValue(t, e.values[i], &body);
      if (!s.ok() && e.prepared) {
        return s.WithContext("bind marker " + std::to_string(i) + " (" +
                             e.prepared->bind_columns[i].name + ")");
      }
      RETURN_IF_ERROR(s);
    }
  }
  PutU16(&body, static_cast<uint16_t>(consistency));
  PutU8(&body, 0);
  return Frame(Opcode::kBatch, stream, body);
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    out.push_back(kHex[static_cast<uint8_t>(c) >> 4]);
    out.push_back(kHex[static_cast<uint8_t>(c) & 0xF]);
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view hex) {
  std::string out;
  int pending = -1;
  for (char c : hex) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    int v = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (v < 0) return std::nullopt;
    if (pending < 0) {
      pending = v;
    } else {
      out.push_back(static_cast<char>(pending * 16 + v));
      pending = -1;
    }
  }
  if (pending >= 0) return std::nullopt;
  return out;
}

}  // namespace sluice::cassandra
