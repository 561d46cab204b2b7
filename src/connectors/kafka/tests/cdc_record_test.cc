#include "connectors/kafka/cdc_record.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "operators/avro_decoder.h"

namespace sluice {
namespace {

Schema Fields() {
  return Schema({Field{"id", Type::kInt64, ""}, Field{"name", Type::kString, ""},
                 Field{"company", Type::kInt64, "company.id"}});
}

std::unique_ptr<ChangeRecordDecoder> Make(bool debezium) {
  auto d = ChangeRecordDecoder::Make(Fields(), 0, debezium);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d).value() : nullptr;
}

TEST(ChangeRecordDecoder, JdbcRowsAreUpserts) {
  auto d = Make(false);
  ChangeRecord c;
  ASSERT_TRUE(d->Decode(R"({"id": 7, "name": "acme", "company": {"id": 3}})", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(7), Value::String("acme"), Value::Int(3)}));
  Status s = d->Decode(R"({"name": "no key"})", &c);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("without its key"), std::string::npos) << s.message();
  EXPECT_FALSE(d->Decode("not json", &c).ok());
}

TEST(ChangeRecordDecoder, DebeziumEventsBareAndEnveloped) {
  auto d = Make(true);
  ChangeRecord c;
  ASSERT_TRUE(d->Decode(R"({"before": null, "after": {"id": 1, "name": "a"}, "op": "c"})", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(1), Value::String("a"), Value()}));
  ASSERT_TRUE(d->Decode(R"({"schema": {}, "payload": {"after": {"id": 2, "name": "b"}, "op": "u"}})", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row[0], Value::Int(2));
  ASSERT_TRUE(d->Decode(R"({"before": {"id": 3}, "after": null, "op": "d"})", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kDelete);
  EXPECT_EQ(c.key, Value::Int(3));
  ASSERT_TRUE(d->Decode(R"({"payload": {"before": {"id": 4}, "op": "d"}})", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kDelete);
  EXPECT_EQ(c.key, Value::Int(4));
  // A tombstone follows a delete: nothing to do.
  ASSERT_TRUE(d->Decode("", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kNone);
}

TEST(ChangeRecordDecoder, DebeziumEventsThatAreSkipped) {
  auto d = Make(true);
  ChangeRecord c;
  for (const auto& [payload, reason] :
       {std::pair{R"({"after": {"id": 1}})", "without op"},
        std::pair{R"({"after": {"id": 1}, "op": "t"})", "unknown op 't'"},
        std::pair{R"({"before": {"name": "x"}, "op": "d"})", "without the key"},
        std::pair{R"({"after": {"name": "x"}, "op": "r"})", "without its key"},
        std::pair{R"([1, 2])", "not a JSON change event"}}) {
    Status s = d->Decode(payload, &c);
    ASSERT_FALSE(s.ok()) << payload;
    EXPECT_NE(s.message().find(reason), std::string::npos) << payload << ": " << s.message();
  }
}

TEST(ChangeRecordDecoder, KeyMustBeAField) {
  EXPECT_FALSE(ChangeRecordDecoder::Make(Fields(), 3, false).ok());
}

// Kafka Connect's JsonConverter with schemas.enable=true (its default), as the JDBC source
// connector writes a row of table job.
constexpr const char* kConnectEnvelope =
    R"({"schema": {"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "id"},)"
    R"( {"type": "string", "optional": true, "field": "name"}, {"type": "struct", "optional": true,)"
    R"( "field": "company", "fields": [{"type": "int64", "optional": true, "field": "id"}]}],)"
    R"( "optional": false, "name": "job"}, "payload": {"id": 8, "name": "globex", "company": {"id": 4}}})";

TEST(ChangeRecordDecoder, JdbcRowsInTheConnectEnvelope) {
  auto d = Make(false);
  ChangeRecord c;
  ASSERT_TRUE(d->Decode(kConnectEnvelope, &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(8), Value::String("globex"), Value::Int(4)}));
  // The same decoder still reads flat rows (schemas.enable=false), in any order.
  ASSERT_TRUE(d->Decode(R"({"name": "acme", "id": 7})", &c).ok());
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(7), Value::String("acme"), Value()}));
  // A null value with its schema is a tombstone: nothing to apply, not an error.
  ASSERT_TRUE(d->Decode(R"({"schema": {"type": "struct", "optional": true}, "payload": null})", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kNone);
  // A flat row of a table whose columns include schema and payload is still a row.
  auto wide = ChangeRecordDecoder::Make(
      Schema({Field{"id", Type::kInt64, ""}, Field{"schema", Type::kString, ""}, Field{"payload", Type::kString, ""}}),
      0, false);
  ASSERT_TRUE(wide.ok());
  ASSERT_TRUE((*wide)->Decode(R"({"id": 1, "schema": "s", "payload": "p"})", &c).ok());
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(1), Value::String("s"), Value::String("p")}));
}

TEST(ChangeRecordDecoder, JdbcMessagesInNeitherShapeAreErrorsWithTheirReason) {
  auto d = Make(false);
  ChangeRecord c;
  for (const auto& [payload, reason] :
       {std::pair{R"([{"id": 1}])", "neither a row nor a Kafka Connect envelope: an array"},
        std::pair{R"("id")", "neither a row nor a Kafka Connect envelope: a string"},
        std::pair{R"(42)", "neither a row nor a Kafka Connect envelope: a number"},
        std::pair{R"({"schema": {"type": "int64"}, "payload": 42})",
                  "a Kafka Connect envelope whose payload is a number, not a row"},
        std::pair{R"({"schema": {}, "payload": [{"id": 1}]})",
                  "a Kafka Connect envelope whose payload is an array, not a row"},
        std::pair{R"({"schema": {}, "payload": {"name": "no key"}})", "a row without its key"},
        std::pair{R"({"id": 1, "name": "cut)", "not JSON"}}) {
    c.kind = ChangeRecord::Kind::kUpsert;
    Status s = d->Decode(payload, &c);
    ASSERT_FALSE(s.ok()) << payload;
    EXPECT_EQ(c.kind, ChangeRecord::Kind::kNone) << payload;
    EXPECT_NE(s.message().find(reason), std::string::npos) << payload << ": " << s.message();
  }
}

// Avro bodies written by hand from the specification's binary encoding (zigzag varints,
// length-prefixed strings, the union's branch index before the branch), not by Avro C.
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
  return std::string{'\0', '\0', '\0', static_cast<char>((id >> 8) & 0xff), static_cast<char>(id & 0xff)};
}

// A Debezium envelope as the AvroConverter registers it (before/after are unions with null of
// the table's Value record; op a string), and a JDBC source connector's row.
constexpr const char* kDebezium = R"({"type":"record","name":"Envelope","namespace":"db.inv.job","fields":[
  {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
     {"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},
     {"name":"company","type":["null",{"type":"record","name":"Company","fields":[
        {"name":"id","type":"long"}]}],"default":null}]}],"default":null},
  {"name":"after","type":["null","Value"],"default":null},
  {"name":"op","type":"string"},
  {"name":"ts_ms","type":["null","long"],"default":null}]})";
constexpr const char* kJdbcRow = R"({"type":"record","name":"job","fields":[
  {"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},
  {"name":"op","type":["null","string"],"default":null}]})";

std::shared_ptr<AvroSchemaCache> Schemas(std::map<int32_t, std::string> m) {
  return std::make_shared<AvroSchemaCache>(
      [m](int32_t id) -> Result<std::string> {
        auto it = m.find(id);
        if (it == m.end()) return Status::NotFound("registry: Schema " + std::to_string(id) + " not found");
        return it->second;
      },
      nullptr);
}

// The Value record: id, name (union index 1 = string), company (union index 1 = record).
std::string JobValue(int64_t id, std::string_view name, int64_t company) {
  return Long(id) + Long(1) + Str(name) + Long(1) + Long(company);
}

TEST(ChangeRecordDecoder, AvroDebeziumEventsAndJdbcRows) {
  auto made = ChangeRecordDecoder::MakeAvro(Fields(), 0, Schemas({{1, kDebezium}, {2, kJdbcRow}}));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto& d = *made;
  ChangeRecord c;
  // r: before null (index 0), after the row (index 1), op "r", ts_ms null.
  ASSERT_TRUE(d->Decode(Header(1) + Long(0) + Long(1) + JobValue(5, "acme", 3) + Str("r") + Long(0), &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(5), Value::String("acme"), Value::Int(3)}));
  // u: both sides; the row is after's.
  ASSERT_TRUE(d->Decode(Header(1) + Long(1) + JobValue(5, "acme", 3) + Long(1) + JobValue(5, "acme2", 9) + Str("u") +
                            Long(1) + Long(1700000000000),
                        &c)
                  .ok());
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(5), Value::String("acme2"), Value::Int(9)}));
  // d: after null; the key comes from before.
  ASSERT_TRUE(d->Decode(Header(1) + Long(1) + JobValue(5, "acme2", 9) + Long(0) + Str("d") + Long(0), &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kDelete);
  EXPECT_EQ(c.key, Value::Int(5));
  // A tombstone.
  ASSERT_TRUE(d->Decode("", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kNone);
  // A JDBC row whose table has a column named op is a row, not an event.
  ASSERT_TRUE(d->Decode(Header(2) + Long(6) + Long(1) + Str("initech") + Long(1) + Str("d"), &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(6), Value::String("initech"), Value()}));
}

TEST(ChangeRecordDecoder, AvroMessagesThatAreSkipped) {
  auto made = ChangeRecordDecoder::MakeAvro(Fields(), 0, Schemas({{1, kDebezium}, {2, kJdbcRow}}));
  ASSERT_TRUE(made.ok());
  auto& d = *made;
  ChangeRecord c;
  for (const auto& [payload, reason] :
       {std::pair{Header(1) + Long(0) + Long(1) + JobValue(5, "a", 3) + Str("t") + Long(0), std::string("unknown op 't'")},
        std::pair{Header(1) + Long(0) + Long(0) + Str("d") + Long(0), std::string("a delete without the key in before")},
        std::pair{Header(7) + Long(1), std::string("unknown schema id 7")},
        std::pair{Header(2) + Long(6) + Long(1) + Long(40) + "short", std::string("body does not match schema id 2")},
        std::pair{std::string(R"({"id": 1})"), std::string("not the Confluent wire format")}}) {
    Status s = d->Decode(payload, &c);
    ASSERT_FALSE(s.ok()) << reason;
    EXPECT_NE(s.message().find(reason), std::string::npos) << s.message();
  }
}


// Protobuf bodies written by hand from the encoding's specification (a key varint field<<3|wire
// type, then a varint or a length-prefixed run), not by libprotobuf.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string PInt(int field, uint64_t v) { return Varint(static_cast<uint64_t>(field) << 3) + Varint(v); }
std::string PLen(int field, std::string_view bytes) {
  return Varint((static_cast<uint64_t>(field) << 3) | 2) + Varint(bytes.size()) + std::string(bytes);
}
// The Confluent header with the message indexes: [2] (count 1, index 2, zigzag) or [0].
std::string PHeader(int32_t id, bool third) { return Header(id) + (third ? std::string("\x02\x04") : std::string(1, '\0')); }

// A Debezium envelope as the ProtobufConverter registers it (before/after messages of the row
// type), and a JDBC source connector's row with a column named op.
constexpr const char* kProtoDebezium = R"(syntax = "proto3";
package inv;
message Company { int64 id = 1; }
message Value { int64 id = 1; optional string name = 2; Company company = 3; }
message Envelope { Value before = 1; Value after = 2; string op = 3; optional int64 ts_ms = 4; }
)";
constexpr const char* kProtoJdbcRow = R"(syntax = "proto3";
message job { int64 id = 1; optional string name = 2; optional string op = 3; }
)";

std::string ProtoValue(uint64_t id, std::string_view name, uint64_t company) {
  return PInt(1, id) + PLen(2, name) + PLen(3, PInt(1, company));
}

TEST(ChangeRecordDecoder, ProtobufDebeziumEventsAndJdbcRows) {
  auto made = ChangeRecordDecoder::MakeProtobuf(Fields(), 0, Schemas({{1, kProtoDebezium}, {2, kProtoJdbcRow}}));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto& d = *made;
  ChangeRecord c;
  // r: before unset, after the row.
  ASSERT_TRUE(d->Decode(PHeader(1, true) + PLen(2, ProtoValue(5, "acme", 3)) + PLen(3, "r"), &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(5), Value::String("acme"), Value::Int(3)}));
  // u: both sides; the row is after's.
  Status s = d->Decode(PHeader(1, true) + PLen(1, ProtoValue(5, "acme", 3)) + PLen(2, ProtoValue(5, "acme2", 9)) +
                           PLen(3, "u") + PInt(4, 1700000000000),
                       &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(5), Value::String("acme2"), Value::Int(9)}));
  // c with the optional name unset: null.
  ASSERT_TRUE(d->Decode(PHeader(1, true) + PLen(2, PInt(1, 8)) + PLen(3, "c"), &c).ok());
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(8), Value(), Value()}));
  // d: after unset; the key comes from before.
  ASSERT_TRUE(d->Decode(PHeader(1, true) + PLen(1, ProtoValue(5, "acme2", 9)) + PLen(3, "d"), &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kDelete);
  EXPECT_EQ(c.key, Value::Int(5));
  // A tombstone.
  ASSERT_TRUE(d->Decode("", &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kNone);
  // A JDBC row whose table has a column named op is a row, not an event.
  ASSERT_TRUE(d->Decode(PHeader(2, false) + PInt(1, 6) + PLen(2, "initech") + PLen(3, "d"), &c).ok());
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(6), Value::String("initech"), Value()}));
}

TEST(ChangeRecordDecoder, ProtobufMessagesThatAreSkipped) {
  auto made = ChangeRecordDecoder::MakeProtobuf(Fields(), 0, Schemas({{1, kProtoDebezium}, {2, kProtoJdbcRow}}));
  ASSERT_TRUE(made.ok());
  auto& d = *made;
  ChangeRecord c;
  for (const auto& [payload, reason] :
       {std::pair{PHeader(1, true) + PLen(2, ProtoValue(5, "a", 3)) + PLen(3, "t"), std::string("unknown op 't'")},
        std::pair{PHeader(1, true) + PLen(3, "d"), std::string("a delete without the key in before")},
        std::pair{PHeader(7, false) + PInt(1, 1), std::string("unknown schema id 7")},
        std::pair{PHeader(2, false) + PInt(1, 6) + Varint((2 << 3) | 2) + Varint(40) + "short",
                  std::string("body does not match schema id 2")},
        std::pair{std::string(R"({"id": 1})"), std::string("not the Confluent wire format")}}) {
    Status s = d->Decode(payload, &c);
    ASSERT_FALSE(s.ok()) << reason;
    EXPECT_NE(s.message().find(reason), std::string::npos) << s.message();
  }
  EXPECT_FALSE(ChangeRecordDecoder::MakeProtobuf(Fields(), 0, nullptr).ok());
}

TEST(ChangeRecordDecoder, ProtobufBadMessageIndexesDoNotDecideTheSchemaId) {
  auto made = ChangeRecordDecoder::MakeProtobuf(Fields(), 0, Schemas({{1, kProtoDebezium}}));
  ASSERT_TRUE(made.ok());
  auto& d = *made;
  ChangeRecord c;
  // Index [9]: the file has three messages. Skipped with its reason...
  Status s = d->Decode(Header(1) + "\x02\x12" + PLen(3, "c"), &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("has no message at index [9]"), std::string::npos) << s.message();
  // ...and the next event of the same schema id is still read as an envelope.
  s = d->Decode(PHeader(1, true) + PLen(2, ProtoValue(7, "b", 4)) + PLen(3, "c"), &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.kind, ChangeRecord::Kind::kUpsert);
  EXPECT_EQ(c.row, (std::vector<Value>{Value::Int(7), Value::String("b"), Value::Int(4)}));
}

}  // namespace
}  // namespace sluice
