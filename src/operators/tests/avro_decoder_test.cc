#include "operators/avro_decoder.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/decoder.h"

namespace sluice {
namespace {

// The Avro bodies below are written by hand from the specification's binary encoding (zigzag
// varints, length-prefixed strings, union index before the branch), not by Avro C.
std::string Long(int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  std::string out;
  while (z >= 0x80) {
    out.push_back(static_cast<char>((z & 0x7f) | 0x80));
    z >>= 7;
  }
  out.push_back(static_cast<char>(z));
  return out;
}
std::string Str(std::string_view s) { return Long(static_cast<int64_t>(s.size())) + std::string(s); }
std::string Header(int32_t id) {
  std::string h(1, '\0');
  h.push_back(static_cast<char>((id >> 24) & 0xff));
  h.push_back(static_cast<char>((id >> 16) & 0xff));
  h.push_back(static_cast<char>((id >> 8) & 0xff));
  h.push_back(static_cast<char>(id & 0xff));
  return h;
}

Value S(std::string_view s) { return Value::String(s); }

constexpr const char* kV1 = R"({"type":"record","name":"Event","namespace":"t","fields":[
  {"name":"job_id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"custom_track","type":["null","string"],"default":null},
  {"name":"loc","type":["null",{"type":"record","name":"Loc","fields":[
     {"name":"city","type":"string"},{"name":"zip","type":"int"}]}],"default":null},
  {"name":"bid","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}]})";
// v2 adds `campaign`, `day` and `id` with defaults and drops `custom_track`.
constexpr const char* kV2Full = R"({"type":"record","name":"Event","namespace":"t","fields":[
  {"name":"job_id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"loc","type":["null",{"type":"record","name":"Loc","fields":[
     {"name":"city","type":"string"},{"name":"zip","type":"int"}]}],"default":null},
  {"name":"bid","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
  {"name":"campaign","type":"string","default":"none"},
  {"name":"day","type":{"type":"int","logicalType":"date"},"default":0},
  {"name":"id","type":{"type":"string","logicalType":"uuid"},"default":"00000000-0000-0000-0000-000000000000"}]})";

struct Registry {
  std::map<int32_t, std::string> schemas;
  std::string latest;
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
      [r]() -> Result<std::string> {
        if (r->down) return Status::Unavailable("connection refused");
        if (r->latest.empty()) return Status::NotFound("no subject");
        return r->latest;
      });
}

Schema EventSchema() {
  return Schema({{"job_id", Type::kInt64, ""},
                 {"ts", Type::kTimestamp, ""},
                 {"custom_track", Type::kString, ""},
                 {"city", Type::kString, "loc.city"},
                 {"zip", Type::kInt64, "loc.zip"},
                 {"bid", Type::kDouble, ""},
                 {"bid_text", Type::kString, "bid"},
                 {"campaign", Type::kString, ""},
                 {"day", Type::kTimestamp, ""},
                 {"id", Type::kString, ""}});
}

std::unique_ptr<Decoder> Make(std::shared_ptr<AvroSchemaCache> cache) {
  DecoderOptions o;
  o.format = DecoderOptions::Format::kAvro;
  o.avro_schemas = std::move(cache);
  auto d = MakeDecoder(o, EventSchema());
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return std::move(d).value();
}

// bid 12.34 as decimal(9,2): unscaled 1234 = 0x04d2, two bytes.
std::string Bid1234() { return Long(2) + std::string("\x04\xd2", 2); }
// -0.05: unscaled -5 = 0xfb.
std::string BidMinus5() { return Long(1) + std::string("\xfb", 1); }

TEST(AvroDecoderTest, DecodesNestedUnionsLogicalTypesAndDefaultsFromTheReader) {
  Registry reg;
  reg.schemas = {{1, kV1}, {2, kV2Full}};
  reg.latest = kV2Full;
  auto d = Make(CacheOf(&reg));
  std::vector<Value> row(10);
  // v1: job_id 42, ts 1700000000123 ms, custom_track "x", loc {Natal, 59000}, bid 12.34
  std::string msg = Header(1) + Long(42) + Long(1700000000123) + Long(1) + Str("x") + Long(1) +
                    Str("Natal") + Long(59000) + Bid1234();
  Status s = d->Decode(msg, row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[0], Value::Int(42));
  EXPECT_EQ(row[1], Value::TimeMicros(1700000000123000));
  EXPECT_EQ(row[2], S("x"));
  EXPECT_EQ(row[3], S("Natal"));
  EXPECT_EQ(row[4], Value::Int(59000));
  EXPECT_EQ(row[5], Value::Double(12.34));
  EXPECT_EQ(row[6], S("12.34"));
  EXPECT_EQ(row[7], S("none"));  // v1 has no campaign: the reader's (latest) default
  EXPECT_EQ(row[8], Value::TimeMicros(0));
  EXPECT_EQ(row[9], S("00000000-0000-0000-0000-000000000000"));

  // v1 with nulls in both unions
  msg = Header(1) + Long(7) + Long(0) + Long(0) + Long(0) + BidMinus5();
  s = d->Decode(msg, row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(row[2].is_null());
  EXPECT_TRUE(row[3].is_null());
  EXPECT_TRUE(row[4].is_null());
  EXPECT_EQ(row[6], S("-0.05"));

  // v2: ts in micros, no custom_track, campaign "c9", day 19000 (2022-01-08), uuid
  msg = Header(2) + Long(5) + Long(1700000000123456) + Long(0) + Bid1234() + Str("c9") +
        Long(19000) + Str("123e4567-e89b-12d3-a456-426614174000");
  s = d->Decode(msg, row);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(row[1], Value::TimeMicros(1700000000123456));
  EXPECT_TRUE(row[2].is_null());  // removed, and no default in the reader
  EXPECT_EQ(row[7], S("c9"));
  EXPECT_EQ(row[8], Value::TimeMicros(int64_t{19000} * 86400 * 1000000));
  EXPECT_EQ(row[9], S("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_EQ(reg.calls, 2);  // once per id
}

TEST(AvroDecoderTest, FetchesEachSchemaOnce) {
  Registry reg;
  reg.schemas = {{1, kV1}};
  auto cache = CacheOf(&reg);
  auto d1 = Make(cache);
  auto d2 = Make(cache);
  std::vector<Value> row(10);
  std::string msg = Header(1) + Long(1) + Long(0) + Long(0) + Long(0) + Bid1234();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(d1->Decode(msg, row).ok());
    ASSERT_TRUE(d2->Decode(msg, row).ok());
  }
  EXPECT_EQ(reg.calls, 1);
  EXPECT_EQ(cache->fetches(), 1);
}

TEST(AvroDecoderTest, ReportsWhyARecordCannotBeRead) {
  Registry reg;
  reg.schemas = {{1, kV1}};
  auto d = Make(CacheOf(&reg));
  std::vector<Value> row(10);
  Status s = d->Decode(std::string("{\"job_id\":1}"), row);
  EXPECT_EQ(s.message(), "not the Confluent wire format: magic byte 0x7b, expected 0x00");
  s = d->Decode(std::string("\0\0\0", 3), row);
  EXPECT_EQ(s.message(), "message of 3 bytes is too short for the Confluent header (5 bytes)");
  s = d->Decode(Header(99) + Long(1), row);
  EXPECT_EQ(s.message(), "unknown schema id 99 (registry: Schema 99 not found)");
  // A string length past the end of the body.
  s = d->Decode(Header(1) + Long(1) + Long(0) + Long(1) + Long(50) + "ab", row);
  EXPECT_EQ(s.code(), StatusCode::kParseError);
  EXPECT_EQ(s.message().rfind("body does not match schema id 1: ", 0), 0u) << s.message();
  // A string claiming 1 GiB: refused before the allocation (else malloc succeeds, lazily).
  s = d->Decode(Header(1) + Long(1) + Long(0) + Long(1) + Long(int64_t{1} << 30) + "ab", row);
  EXPECT_EQ(s.message(), "body does not match schema id 1: Cannot read string value: Cannot "
                         "allocate buffer for string value");
  // A timestamp-millis whose microseconds overflow int64.
  s = d->Decode(Header(1) + Long(1) + Long(int64_t{1} << 60) + Long(0) + Long(0) + Bid1234(), row);
  EXPECT_EQ(s.message(), "field ts: 1152921504606846976 is outside the timestamp range");
  // A valid record followed by more bytes.
  s = d->Decode(Header(1) + Long(1) + Long(0) + Long(0) + Long(0) + Bid1234() + "z", row);
  EXPECT_EQ(s.message(), "body does not match schema id 1: bytes left after the record");
  // A union index outside the union.
  s = d->Decode(Header(1) + Long(1) + Long(0) + Long(5), row);
  EXPECT_EQ(s.message().rfind("body does not match schema id 1: ", 0), 0u) << s.message();
}

TEST(AvroDecoderTest, AnUnreachableRegistryIsNotRememberedAsUnknown) {
  Registry reg;
  reg.schemas = {{1, kV1}};
  reg.down = true;
  auto cache = CacheOf(&reg);
  EXPECT_EQ(cache->Ensure(1).code(), StatusCode::kUnavailable);
  EXPECT_FALSE(cache->Get(1).has_value());
  reg.down = false;
  EXPECT_TRUE(cache->Ensure(1).ok());
  ASSERT_TRUE(cache->Get(1).has_value());
  EXPECT_TRUE(cache->Get(1)->found);
}

TEST(AvroDecoderTest, ConfluentSchemaIdReadsBigEndian) {
  EXPECT_EQ(ConfluentSchemaId(Header(0x01020304)), 0x01020304);
  EXPECT_EQ(ConfluentSchemaId(std::string("\x01\0\0\0\x01", 5)), std::nullopt);
  EXPECT_EQ(ConfluentSchemaId(std::string("\0\0", 2)), std::nullopt);
}

}  // namespace
}  // namespace sluice
