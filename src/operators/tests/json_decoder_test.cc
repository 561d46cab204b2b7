#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/decoder.h"
#include "sluice_test_paths.h"

#ifndef SLUICE_SEED_DIR
#define SLUICE_SEED_DIR "../shared/seed-data"
#endif

namespace sluice {
namespace {

// Value::String("literal") is ambiguous between its std::string and string_view overloads.
Value Str(std::string_view s) { return Value::String(s); }

std::unique_ptr<Decoder> MakeJson(const Schema& schema) {
  DecoderOptions options;
  options.format = DecoderOptions::Format::kNdjson;
  auto decoder = MakeDecoder(options, schema);
  EXPECT_TRUE(decoder.ok()) << decoder.status().ToString();
  return std::move(decoder).value();
}

Schema UserSchema() {
  return Schema({{"first", Type::kString, "name.first"},
                 {"last", Type::kString, "name.last"},
                 {"number", Type::kInt64, "location.street.number"},
                 {"street", Type::kString, "location.street.name"},
                 {"postcode", Type::kString, "location.postcode"},
                 {"age", Type::kInt64, "dob.age"},
                 {"gender", Type::kString, ""}});
}

TEST(NdjsonDecoderTest, FollowsNestedPaths) {
  auto decoder = MakeJson(UserSchema());
  std::vector<Value> row(7);
  const std::string record =
      R"({"gender":"female","name":{"title":"Ms","first":"Ana","last":"Lima"},)"
      R"("location":{"street":{"number":4512,"name":"Rua Sete"},"city":"Natal",)"
      R"("postcode":59000,"coordinates":{"latitude":"-5.8"}},"dob":{"date":"1970-01-01","age":53},)"
      R"("extra":[1,{"a":[2,3]}]})";
  Status st = decoder->Decode(record, row);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(row[0], Str("Ana"));
  EXPECT_EQ(row[1], Str("Lima"));
  EXPECT_EQ(row[2], Value::Int(4512));
  EXPECT_EQ(row[3], Str("Rua Sete"));
  EXPECT_EQ(row[4], Str("59000"));  // a number into a string field keeps its text
  EXPECT_EQ(row[5], Value::Int(53));
  EXPECT_EQ(row[6], Str("female"));

  // The same decoder on a sparser record: nothing leaks from the previous one.
  st = decoder->Decode(R"({"name":{"first":"Bo"},"location":null,"dob":"unknown"})", row);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(row[0], Str("Bo"));
  for (size_t i = 1; i < row.size(); ++i) EXPECT_TRUE(row[i].is_null()) << i;
}

TEST(NdjsonDecoderTest, TreatsNullAndMissingAlike) {
  Schema schema({{"a", Type::kInt64, ""}, {"b", Type::kString, ""}, {"c", Type::kBool, ""}});
  auto decoder = MakeJson(schema);
  std::vector<Value> row(3);
  ASSERT_TRUE(decoder->Decode(R"({"a":null,"c":null})", row).ok());
  for (const Value& v : row) EXPECT_TRUE(v.is_null());
  ASSERT_TRUE(decoder->Decode("{}", row).ok());
  for (const Value& v : row) EXPECT_TRUE(v.is_null());
  // An empty JSON string is a real (empty) string, but null for other types.
  ASSERT_TRUE(decoder->Decode(R"({"a":"","b":"","c":" "})", row).ok());
  EXPECT_TRUE(row[0].is_null());
  EXPECT_EQ(row[1], Str(""));
  EXPECT_TRUE(row[2].is_null());
}

TEST(NdjsonDecoderTest, ConvertsNumbersAndStrings) {
  Schema schema({{"i", Type::kInt64, ""},
                 {"d", Type::kDouble, ""},
                 {"s", Type::kString, ""},
                 {"b", Type::kBool, ""},
                 {"t", Type::kTimestamp, ""}});
  auto decoder = MakeJson(schema);
  std::vector<Value> row(5);
  ASSERT_TRUE(decoder->Decode(R"({"i":"187","d":"2.5","s":1.50,"b":"true","t":1696766400000})",
                              row)
                  .ok());
  EXPECT_EQ(row[0], Value::Int(187));
  EXPECT_EQ(row[1], Value::Double(2.5));
  EXPECT_EQ(row[2], Str("1.50"));
  EXPECT_EQ(row[3], Value::Bool(true));
  EXPECT_EQ(row[4], Value::TimeMicros(1696766400LL * 1000000));

  ASSERT_TRUE(decoder->Decode(R"({"i":3.0,"d":7,"s":true,"b":false,"t":"2023-10-08 12:00:00"})",
                              row)
                  .ok());
  EXPECT_EQ(row[0], Value::Int(3));
  EXPECT_EQ(row[1], Value::Double(7.0));
  EXPECT_EQ(row[2], Str("true"));
  EXPECT_EQ(row[3], Value::Bool(false));
  EXPECT_EQ(row[4], Value::TimeMicros(1696766400LL * 1000000));

  ASSERT_TRUE(decoder->Decode(R"({"i":-9223372036854775808,"s":"a\"b\u00e9","t":1.5})", row).ok());
  EXPECT_EQ(row[0], Value::Int(INT64_MIN));
  EXPECT_EQ(row[2], Str("a\"b\xC3\xA9"));
  EXPECT_EQ(row[4], Value::TimeMicros(1500));
}

TEST(NdjsonDecoderTest, RendersObjectsAndArraysIntoStringFields) {
  Schema schema({{"ed", Type::kString, ""}, {"tags", Type::kString, ""}});
  auto decoder = MakeJson(schema);
  std::vector<Value> row(2);
  Status st = decoder->Decode(
      R"({"ed": { "customEvent" : "click", "jobId": 81 }, "tags":[ 1, "a b" ]})", row);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(row[0], Str(R"({"customEvent":"click","jobId":81})"));
  EXPECT_EQ(row[1], Str(R"([1,"a b"])"));
}

TEST(NdjsonDecoderTest, RejectsValuesOfTheWrongType) {
  Schema schema({{"bid", Type::kInt64, ""},
                 {"d", Type::kDouble, ""},
                 {"b", Type::kBool, ""},
                 {"t", Type::kTimestamp, ""}});
  auto decoder = MakeJson(schema);
  std::vector<Value> row(4);
  auto message = [&](const std::string& record) {
    Status st = decoder->Decode(record, row);
    EXPECT_EQ(st.code(), StatusCode::kParseError) << record;
    return st.message();
  };
  EXPECT_EQ(message(R"({"bid":"abc"})"), "field bid: 'abc' is not an int64");
  EXPECT_EQ(message(R"({"bid":"12.0"})"), "field bid: '12.0' is not an int64");
  EXPECT_EQ(message(R"({"bid":3.5})"), "field bid: '3.5' is not an int64");
  EXPECT_EQ(message(R"({"bid":1e30})"), "field bid: '1e30' is not an int64");
  EXPECT_EQ(message(R"({"bid":18446744073709551615})"),
            "field bid: '18446744073709551615' is not an int64");
  EXPECT_EQ(message(R"({"bid":true})"), "field bid: true is not an int64");
  EXPECT_EQ(message(R"({"bid":{"x":1}})"), "field bid: an object is not an int64");
  EXPECT_EQ(message(R"({"d":"x"})"), "field d: 'x' is not a double");
  EXPECT_EQ(message(R"({"d":[1]})"), "field d: an array is not a double");
  EXPECT_EQ(message(R"({"b":1})"), "field b: '1' is not a bool");
  EXPECT_EQ(message(R"({"t":"58:22.5"})"), "field t: '58:22.5' is not a timestamp");
  EXPECT_EQ(message(R"({"t":1e300})"), "field t: '1e300' is not a timestamp");
  EXPECT_EQ(message(R"({"t":9223372036854775807})"),
            "field t: '9223372036854775807' is not a timestamp");
}

TEST(NdjsonDecoderTest, RejectsMalformedRecords) {
  auto decoder = MakeJson(Schema({{"a", Type::kInt64, ""}}));
  std::vector<Value> row(1);
  for (const char* record :
       {"", "   ", "{", R"({"a":1)", R"({"a":1,})", R"({"a" 1})", R"({"a":})", R"({"a":tru})",
        R"({"a":nul})", "[1,2]", "17", R"("a")", "null", R"({"a":1} x)", R"({"a":1}{"a":2})",
        R"({"a":1}])", "{\"a\":\"\xff\"}", R"({a:1})", R"({"a":01})", R"({"a":-})"}) {
    Status st = decoder->Decode(record, row);
    EXPECT_EQ(st.code(), StatusCode::kParseError) << "accepted: " << record;
  }
  Status st = decoder->Decode("[1,2]", row);
  EXPECT_EQ(st.message(), "JSON record is not an object");
  st = decoder->Decode(R"({"a":1} {"a":2})", row);
  EXPECT_EQ(st.message(), "malformed JSON at byte 8: trailing content after the object");
  st = decoder->Decode(R"({"a":1} x)", row);
  EXPECT_TRUE(st.message().starts_with("malformed JSON")) << st.message();
  st = decoder->Decode(R"({"a":1,)", row);
  EXPECT_TRUE(st.message().starts_with("malformed JSON")) << st.message();
  st = decoder->Decode(R"({"a":1,})", row);
  EXPECT_EQ(st.message(),
            "malformed JSON at byte 7: The JSON document has an improper structure: missing or "
            "superfluous commas, braces, missing keys, etc.");
  st = decoder->Decode(R"({"a":tru})", row);
  EXPECT_EQ(st.message(),
            "malformed JSON at byte 5: invalid literal (expected true, false or null)");

  // Whitespace around the object and a trailing newline are fine.
  ASSERT_TRUE(decoder->Decode(" {\"a\": 5 }\r\n", row).ok());
  EXPECT_EQ(row[0], Value::Int(5));
}

// simdjson stops at a NUL as at the zero padding after the text, so `{"a":1<NUL>}` passed for
// `{"a":1}` (issue 14, item 8). No raw NUL is valid anywhere in JSON text.
TEST(NdjsonDecoderTest, RejectsNulBytes) {
  auto decoder = MakeJson(Schema({{"a", Type::kInt64, ""}, {"s", Type::kString, ""}}));
  std::vector<Value> row(2);
  using namespace std::string_literals;
  for (const std::string& record : {"{\"a\":1\0}"s, "{\"a\":1}\0"s, "{\"a\":1,\"s\":\"x\0y\"}"s, "\0{\"a\":1}"s,
                                    "{\"a\":1 \0 }"s, "{\"a\":1,\0\"s\":\"x\"}"s}) {
    Status st = decoder->Decode(record, row);
    EXPECT_EQ(st.code(), StatusCode::kParseError) << "accepted a NUL at byte " << record.find('\0');
    EXPECT_NE(st.message().find("NUL byte"), std::string::npos) << st.message();
  }
  Status st = decoder->Decode("{\"a\":1\0}"s, row);
  EXPECT_EQ(st.message(), "malformed JSON at byte 6: a NUL byte (JSON text cannot contain one unescaped)");
  // An escaped NUL in a string is valid JSON.
  ASSERT_TRUE(decoder->Decode(R"({"a":2,"s":"x\u0000y"})", row).ok());
  EXPECT_EQ(row[0], Value::Int(2));
  EXPECT_EQ(row[1], Value::String("x\0y"s));
}

TEST(NdjsonDecoderTest, MatchesEscapedKeysAndKeepsTheLastDuplicate) {
  auto decoder = MakeJson(Schema({{"name", Type::kString, ""}}));
  std::vector<Value> row(1);
  ASSERT_TRUE(decoder->Decode(R"({"n\u0061me":"x"})", row).ok());
  EXPECT_EQ(row[0], Str("x"));
  ASSERT_TRUE(decoder->Decode(R"({"name":"x","name":"y"})", row).ok());
  EXPECT_EQ(row[0], Str("y"));
}

TEST(NdjsonDecoderTest, ReadsOneValueForSeveralFields) {
  // "name" is both a field (rendered as JSON) and the parent of "name.first"; "ts" feeds two
  // fields of different types.
  Schema schema({{"name", Type::kString, ""},
                 {"first", Type::kString, "name.first"},
                 {"ts_text", Type::kString, "ts"},
                 {"ts", Type::kTimestamp, ""},
                 {"n", Type::kInt64, "a.b.c"},
                 {"b", Type::kString, "a.b"}});
  auto decoder = MakeJson(schema);
  std::vector<Value> row(6);
  Status st = decoder->Decode(
      R"({"name": {"first": "Ana", "last": "Lima"}, "ts": "2023-10-08T12:00:00Z",)"
      R"( "a": {"b": {"c": 7}}})",
      row);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(row[0], Str(R"({"first":"Ana","last":"Lima"})"));
  EXPECT_EQ(row[1], Str("Ana"));
  EXPECT_EQ(row[2], Str("2023-10-08T12:00:00Z"));
  EXPECT_EQ(row[3], Value::TimeMicros(1696766400LL * 1000000));
  EXPECT_EQ(row[4], Value::Int(7));
  EXPECT_EQ(row[5], Str(R"({"c":7})"));

  ASSERT_TRUE(decoder->Decode(R"({"name": "plain", "ts": null})", row).ok());
  EXPECT_EQ(row[0], Str("plain"));
  EXPECT_TRUE(row[1].is_null());
  EXPECT_TRUE(row[2].is_null());
  EXPECT_TRUE(row[3].is_null());
}

TEST(NdjsonDecoderTest, RejectsEmptyPathSegments) {
  DecoderOptions options;
  auto decoder = MakeDecoder(options, Schema({{"x", Type::kString, "a..b"}}));
  EXPECT_EQ(decoder.status().code(), StatusCode::kInvalidArgument);
}

TEST(NdjsonDecoderTest, DecodesTheViewLogSeedFile) {
  std::ifstream in(std::string(SLUICE_SEED_DIR) +
                   "/HassanAli-star__big_data_pipeline/sample_view_logs.json");
  ASSERT_TRUE(in);
  Schema schema({{"view_id", Type::kString, ""},
                 {"start_timestamp", Type::kTimestamp, ""},
                 {"end_timestamp", Type::kTimestamp, ""},
                 {"banner_id", Type::kInt64, ""},
                 {"campaign_id", Type::kInt64, ""},
                 {"network_id", Type::kInt64, ""}});
  auto decoder = MakeJson(schema);
  std::vector<Value> row(schema.size());
  std::string line;
  int64_t seconds_viewed = 0;
  int lines = 0;
  while (std::getline(in, line)) {
    Status st = decoder->Decode(line, row);
    ASSERT_TRUE(st.ok()) << st.ToString();
    seconds_viewed += (row[2].time_value().micros - row[1].time_value().micros) / 1000000;
    ++lines;
  }
  EXPECT_EQ(lines, 4);
  EXPECT_EQ(seconds_viewed, 60 + 40 + 30 + 30);
}

/// Feeds random bytes, mutations and truncations of valid records: only ParseError may come back.
void CheckRandomBytesAndTruncations(const Schema& schema) {
  auto decoder = MakeJson(schema);
  std::vector<Value> row(schema.size());
  const std::vector<std::string> valid = {
      R"({"gender":"male","name":{"first":"Jo","last":"Ng"},"location":{"street":)"
      R"({"number":"12","name":"Main"},"postcode":"AB1"},"dob":{"age":3.0},"x":[[],{}]})",
      R"({"name":{"first":"\u00e9\n"},"location":{"postcode":123,"street":{"number":null}}})",
      R"({"dob":{"age":"  7 "},"gender":null,"deep":{"a":{"b":{"c":[1,2,{"d":"e"}]}}}})",
  };
  for (const std::string& record : valid) {
    Status st = decoder->Decode(record, row);
    ASSERT_TRUE(st.ok()) << record << ": " << st.ToString();
    // Every proper prefix of an object is incomplete.
    for (size_t n = 0; n < record.size(); ++n) {
      EXPECT_FALSE(decoder->Decode(std::string_view(record).substr(0, n), row).ok())
          << "prefix accepted: " << record.substr(0, n);
    }
  }
  std::mt19937 rng(42);
  const std::string json_bytes = "{}[]\":,.-+0123456789eEtrufalsn \\\n\t";
  size_t accepted = 0;
  for (int iteration = 0; iteration < 30000; ++iteration) {
    std::string bytes;
    switch (iteration % 3) {
      case 0:  // random bytes
        bytes.resize(rng() % 64);
        for (char& c : bytes) c = static_cast<char>(rng());
        break;
      case 1:  // JSON-ish alphabet
        bytes.resize(rng() % 64);
        for (char& c : bytes) c = json_bytes[rng() % json_bytes.size()];
        break;
      default: {  // a valid record with a few bytes changed
        bytes = valid[rng() % valid.size()];
        for (int k = 0, flips = 1 + rng() % 4; k < flips; ++k) {
          bytes[rng() % bytes.size()] = json_bytes[rng() % json_bytes.size()];
        }
      }
    }
    Status st = decoder->Decode(bytes, row);
    if (st.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(st.code(), StatusCode::kParseError) << st.ToString();
    }
  }
  EXPECT_LT(accepted, 30000u);
}

TEST(NdjsonDecoderTest, SurvivesRandomBytesAndTruncations) {
  // The second schema reads shared values twice ("name" and "name.first", two fields on "dob").
  Schema shared = UserSchema();
  shared.Add({"name", Type::kString, ""});
  shared.Add({"age_text", Type::kString, "dob.age"});
  shared.Add({"dob", Type::kString, ""});
  for (const Schema& schema : {UserSchema(), shared}) {
    SCOPED_TRACE(schema.size());
    CheckRandomBytesAndTruncations(schema);
  }
}

}  // namespace
}  // namespace sluice
