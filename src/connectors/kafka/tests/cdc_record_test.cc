#include "connectors/kafka/cdc_record.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sluice
