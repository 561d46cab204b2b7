#include "operators/protobuf_decoder.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/decoder.h"

namespace sluice {
namespace {

// The bodies below are written by hand from the Protobuf encoding (tag = field << 3 | wire type,
// varints, length-delimited strings and messages, little-endian doubles) and the Confluent
// framing (magic byte, big-endian id, zigzag varint message indexes), not by libprotobuf.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Zigzag(int64_t v) { return Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
std::string VarintField(int field, uint64_t v) { return Varint(static_cast<uint64_t>(field) << 3) + Varint(v); }
std::string BytesField(int field, std::string_view bytes) {
  return Varint((static_cast<uint64_t>(field) << 3) | 2) + Varint(bytes.size()) + std::string(bytes);
}
std::string DoubleField(int field, double d) {
  std::string out = Varint((static_cast<uint64_t>(field) << 3) | 1);
  uint64_t bits = 0;
  std::memcpy(&bits, &d, 8);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  return out;
}
std::string Header(int32_t id, const std::vector<int64_t>& indexes) {
  std::string h(1, '\0');
  for (int shift : {24, 16, 8, 0}) h.push_back(static_cast<char>((id >> shift) & 0xff));
  if (indexes == std::vector<int64_t>{0}) return h + std::string(1, '\0');  // the short form of [0]
  h += Zigzag(static_cast<int64_t>(indexes.size()));
  for (int64_t i : indexes) h += Zigzag(i);
  return h;
}

std::string Base64(std::string_view bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                 (uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) | static_cast<unsigned char>(bytes[i + 2]);
    for (int s : {18, 12, 6, 0}) out.push_back(a[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (i + 1 < bytes.size()) v |= uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out.push_back(a[(v >> 18) & 63]);
    out.push_back(a[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? a[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Value S(std::string_view s) { return Value::String(s); }

constexpr const char* kCommon = R"(syntax = "proto3";
package t;
message Loc { string city = 1; int32 zip = 2; }
enum Kind { KIND_UNSPECIFIED = 0; CLICK = 1; APPLY = 2; }
)";

// Event is the second top-level message: message indexes [1].
constexpr const char* kEventV1 = R"(syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "common.proto";
message Other { int64 x = 1; }
message Event {
  int64 job_id = 1;
  google.protobuf.Timestamp ts = 2;
  optional string custom_track = 3;
  Loc loc = 4;
  double bid = 5;
  Kind kind = 6;
  google.protobuf.Int64Value group_id = 7;
  int32 plain = 8;
  repeated string tags = 9;
  message Inner { string note = 1; }
  Inner inner = 10;
}
)";

// v2 adds `campaign`.
std::string EventV2() {
  std::string s = kEventV1;
  s.insert(s.rfind('}'), "  string campaign = 11;\n");
  return s;
}

struct Registry {
  std::map<int32_t, std::string> schemas;
  bool down = false;
  int calls = 0;
};

std::shared_ptr<AvroSchemaCache> CacheOf(Registry* r) {
  return std::make_shared<AvroSchemaCache>(
      [r](int32_t id) -> Result<std::string> {
        ++r->calls;
        if (r->down) return Status::Unavailable("connection refused");
        auto it = r->schemas.find(id);
        if (it == r->schemas.end()) return Status::NotFound("registry: Schema " + std::to_string(id) + " not found");
        return it->second;
      },
      nullptr);
}

Schema EventSchema() {
  return Schema({{"job_id", Type::kInt64, ""},
                 {"ts", Type::kTimestamp, ""},
                 {"custom_track", Type::kString, ""},
                 {"city", Type::kString, "loc.city"},
                 {"zip", Type::kInt64, "loc.zip"},
                 {"bid", Type::kDouble, ""},
                 {"kind", Type::kString, ""},
                 {"group_id", Type::kInt64, ""},
                 {"plain", Type::kInt64, ""},
                 {"note", Type::kString, "inner.note"},
                 {"nope", Type::kString, ""},
                 {"ts_text", Type::kString, "ts"},
                 {"campaign", Type::kString, ""}});
}

std::unique_ptr<Decoder> Make(std::shared_ptr<AvroSchemaCache> cache, const Schema& schema = EventSchema()) {
  DecoderOptions o;
  o.format = DecoderOptions::Format::kProtobuf;
  o.avro_schemas = std::move(cache);
  auto d = MakeDecoder(o, schema);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return std::move(d).value();
}

Registry WithEvents() {
  Registry reg;
  reg.schemas = {{1, ProtobufSchemaBundle(kEventV1, {{"common.proto", kCommon}})},
                 {2, ProtobufSchemaBundle(EventV2(), {{"common.proto", kCommon}})}};
  return reg;
}

// job_id 42, ts 1700000000.123 s, custom_track "click", loc {Natal, 59000}, bid 12.5, kind APPLY,
// group_id {7}, plain unset, inner {"n"}.
std::string FullEvent() {
  return VarintField(1, 42) + BytesField(2, VarintField(1, 1700000000) + VarintField(2, 123000000)) +
         BytesField(3, "click") + BytesField(4, BytesField(1, "Natal") + VarintField(2, 59000)) +
         DoubleField(5, 12.5) + VarintField(6, 2) + BytesField(7, VarintField(1, 7)) + BytesField(10, BytesField(1, "n"));
}

TEST(ProtobufDecoderTest, MapsFieldsByNameAndPathWithWellKnownTypesEnumsAndPresence) {
  Registry reg = WithEvents();
  auto d = Make(CacheOf(&reg));
  std::vector<Value> row(13);
  Status s = d->Decode(Header(1, {1}) + FullEvent(), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], Value::Int(42));
  EXPECT_EQ(row[1], Value::TimeMicros(1700000000123000));
  EXPECT_EQ(row[2], S("click"));
  EXPECT_EQ(row[3], S("Natal"));
  EXPECT_EQ(row[4], Value::Int(59000));
  EXPECT_EQ(row[5], Value::Double(12.5));
  EXPECT_EQ(row[6], S("APPLY"));
  EXPECT_EQ(row[7], Value::Int(7));
  EXPECT_EQ(row[8], Value::Int(0));  // proto3 scalar without presence, unset: its default
  EXPECT_EQ(row[9], S("n"));
  EXPECT_TRUE(row[10].is_null());  // no such field
  EXPECT_EQ(row[11], S("2023-11-14 22:13:20.123000"));
  EXPECT_TRUE(row[12].is_null());  // v1 has no campaign

  // An empty body: implicit scalars take their defaults, fields with presence are null.
  s = d->Decode(Header(1, {1}), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], Value::Int(0));
  EXPECT_TRUE(row[1].is_null());   // Timestamp unset
  EXPECT_TRUE(row[2].is_null());   // optional string unset
  EXPECT_TRUE(row[3].is_null());   // through an unset message
  EXPECT_TRUE(row[4].is_null());
  EXPECT_EQ(row[5], Value::Double(0));
  EXPECT_EQ(row[6], S("KIND_UNSPECIFIED"));
  EXPECT_TRUE(row[7].is_null());   // wrapper unset
  EXPECT_TRUE(row[9].is_null());

  // An enum number the schema does not name, and a present empty optional string.
  s = d->Decode(Header(1, {1}) + VarintField(6, 9) + BytesField(3, ""), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[6], S("9"));
  EXPECT_EQ(row[2], S(""));

  // v2, a field added: it flows into `campaign`, the rest as before.
  s = d->Decode(Header(2, {1}) + FullEvent() + BytesField(11, "c9"), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], Value::Int(42));
  EXPECT_EQ(row[12], S("c9"));
  // A v2 body read with the v1 schema: the new field is an unknown field, skipped.
  s = d->Decode(Header(1, {1}) + FullEvent() + BytesField(11, "c9"), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(row[12].is_null());
  EXPECT_EQ(reg.calls, 2);
}

TEST(ProtobufDecoderTest, FollowsMessageIndexesToNestedAndFirstMessages) {
  Registry reg = WithEvents();
  Schema schema({{"note", Type::kString, ""}, {"x", Type::kInt64, ""}});
  auto d = Make(CacheOf(&reg), schema);
  std::vector<Value> row(2);
  // [1, 0]: Event.Inner
  Status s = d->Decode(Header(1, {1, 0}) + BytesField(1, "inner"), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], S("inner"));
  EXPECT_TRUE(row[1].is_null());
  // The single 0 byte: [0], Other.
  s = d->Decode(Header(1, {0}) + VarintField(1, 5), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[1], Value::Int(5));
  // [0] written in the long form (count 1, index 0) means the same.
  s = d->Decode(std::string("\0\0\0\0\1\2\0", 7) + VarintField(1, 6), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[1], Value::Int(6));
}

TEST(ProtobufDecoderTest, ReadsABase64FileDescriptorAsTheRegistryMayServeIt) {
  // confluent-kafka's Python serializer registers schemas as base64 FileDescriptorProtos.
  google::protobuf::FileDescriptorProto proto;
  google::protobuf::DescriptorPool::generated_pool()->FindFileByName("google/protobuf/timestamp.proto")->CopyTo(&proto);
  std::string bytes;
  ASSERT_TRUE(proto.SerializeToString(&bytes));
  Registry reg;
  reg.schemas = {{3, Base64(bytes)}};
  Schema schema({{"seconds", Type::kInt64, ""}, {"nanos", Type::kInt64, ""}});
  auto d = Make(CacheOf(&reg), schema);
  std::vector<Value> row(2);
  Status s = d->Decode(Header(3, {0}) + VarintField(1, 77) + VarintField(2, 5), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], Value::Int(77));
  EXPECT_EQ(row[1], Value::Int(5));
}

TEST(ProtobufDecoderTest, FetchesEachSchemaOnce) {
  Registry reg = WithEvents();
  auto cache = CacheOf(&reg);
  auto d1 = Make(cache);
  auto d2 = Make(cache);
  std::vector<Value> row(13);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(d1->Decode(Header(1, {1}) + FullEvent(), row).ok());
    ASSERT_TRUE(d2->Decode(Header(1, {1}) + FullEvent(), row).ok());
  }
  EXPECT_EQ(reg.calls, 1);
  EXPECT_EQ(cache->fetches(), 1);
}

TEST(ProtobufDecoderTest, ReportsWhyARecordCannotBeRead) {
  Registry reg = WithEvents();
  reg.schemas[4] = "syntax = \"proto3\";\nmessage {";
  reg.schemas[5] = "syntax = \"proto3\";\nimport \"missing.proto\";\nmessage M { int64 a = 1; }";
  reg.schemas[6] = "syntax = \"proto2\";\nmessage M { required int64 job_id = 1; }";
  auto d = Make(CacheOf(&reg));
  std::vector<Value> row(13);
  Status s = d->Decode(std::string("{\"job_id\":1}"), row);
  EXPECT_EQ(s.message(), "not the Confluent wire format: magic byte 0x7b, expected 0x00");
  s = d->Decode(std::string("\0\0\0", 3), row);
  EXPECT_EQ(s.message(), "message of 3 bytes is too short for the Confluent header (5 bytes)");
  s = d->Decode(Header(99, {0}), row);
  EXPECT_EQ(s.message(), "unknown schema id 99 (registry: Schema 99 not found)");
  s = d->Decode(Header(1, {5}), row);
  EXPECT_EQ(s.message(), "schema id 1 has no message at index [5]");
  s = d->Decode(Header(1, {1, 3}), row);
  EXPECT_EQ(s.message(), "schema id 1 has no message at index [1, 3]");
  s = d->Decode(Header(1, {-1}), row);
  EXPECT_EQ(s.message(), "schema id 1 has no message at index [-1]");
  s = d->Decode(std::string("\0\0\0\0\1\x82", 6), row);
  EXPECT_EQ(s.message(), "schema id 1: truncated message indexes");
  s = d->Decode(std::string("\0\0\0\0\1", 5), row);
  EXPECT_EQ(s.message(), "schema id 1: truncated message indexes");
  s = d->Decode(std::string("\0\0\0\0\1", 5) + Zigzag(50) + "\2", row);
  EXPECT_EQ(s.message(), "schema id 1: message index count 50 is out of range");
  // A string length past the end of the body.
  s = d->Decode(Header(1, {1}) + VarintField(1, 1) + Varint((3 << 3) | 2) + Varint(50) + "ab", row);
  EXPECT_EQ(s.message(), "body does not match schema id 1 (message t.Event): not a valid Protobuf encoding of it");
  // Invalid UTF-8 in a proto3 string: libprotobuf's reason, not a line on stderr.
  s = d->Decode(Header(1, {1}) + BytesField(3, "a\xff"), row);
  EXPECT_EQ(s.message(), "body does not match schema id 1 (message t.Event): not a valid Protobuf encoding of it "
                         "(String field 't.Event.custom_track' contains invalid UTF-8 data when parsing a protocol "
                         "buffer. Use the 'bytes' type if you intend to send raw bytes.)");
  // Wire type 7 does not exist.
  s = d->Decode(Header(1, {1}) + Varint((1 << 3) | 7), row);
  EXPECT_EQ(s.message(), "body does not match schema id 1 (message t.Event): not a valid Protobuf encoding of it");
  s = d->Decode(Header(4, {0}), row);
  EXPECT_EQ(s.code(), StatusCode::kParseError);
  EXPECT_EQ(s.message().rfind("schema id 4 cannot be used: <schema>: line 2:9: ", 0), 0u) << s.message();
  s = d->Decode(Header(5, {0}), row);
  EXPECT_EQ(s.message(), "schema id 5 cannot be used: import \"missing.proto\": no reference with that name");
  s = d->Decode(Header(6, {0}), row);
  EXPECT_EQ(s.message(), "body does not match schema id 6 (message M): missing required job_id");
  // The same bad id again: remembered, not fetched again.
  const int calls = reg.calls;
  s = d->Decode(Header(99, {0}), row);
  EXPECT_EQ(s.message(), "unknown schema id 99 (registry: Schema 99 not found)");
  EXPECT_EQ(reg.calls, calls);

  Schema tags({{"tags", Type::kString, ""}});
  auto dt = Make(CacheOf(&reg), tags);
  std::vector<Value> one(1);
  s = dt->Decode(Header(1, {1}) + BytesField(9, "a"), one);
  EXPECT_EQ(s.message(), "field tags: a Protobuf repeated field is not string");
  Schema loc({{"loc", Type::kString, ""}});
  auto dl = Make(CacheOf(&reg), loc);
  s = dl->Decode(Header(1, {1}) + BytesField(4, BytesField(1, "x")), one);
  EXPECT_EQ(s.message(), "field loc: a Protobuf message t.Loc is not string");
  Schema city({{"city", Type::kInt64, "loc.city"}});
  auto dc = Make(CacheOf(&reg), city);
  s = dc->Decode(Header(1, {1}) + BytesField(4, BytesField(1, "x1")), one);
  EXPECT_EQ(s.message(), "field city: 'x1' is not an int64");
}

TEST(ProtobufDecoderTest, AnUnreachableRegistryIsNotRememberedAsUnknown) {
  Registry reg = WithEvents();
  reg.down = true;
  auto d = Make(CacheOf(&reg));
  std::vector<Value> row(13);
  Status s = d->Decode(Header(1, {1}) + FullEvent(), row);
  EXPECT_EQ(s.message(), "schema id 1: registry: connection refused");
  reg.down = false;
  s = d->Decode(Header(1, {1}) + FullEvent(), row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], Value::Int(42));
}

}  // namespace
}  // namespace sluice
