#include "core/dead_letter.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <random>
#include <string>

#include "core/json_writer.h"

namespace sluice {
namespace {

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

TEST(JsonStringTest, WellFormedUtf8IsCopied) {
  EXPECT_EQ(Json("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  EXPECT_EQ(Json("\xc3\xa9"), "\"\xc3\xa9\"");                   // é
  EXPECT_EQ(Json("\xe2\x82\xac"), "\"\xe2\x82\xac\"");           // €
  EXPECT_EQ(Json("\xef\xbf\xbd"), "\"\xef\xbf\xbd\"");           // U+FFFD
  EXPECT_EQ(Json("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");   // U+1F600
  EXPECT_EQ(Json("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\"");   // U+10FFFF, the last one
}

TEST(JsonStringTest, IllFormedBytesAreEscapedOneByOne) {
  // Lead bytes that can never start a character.
  EXPECT_EQ(Json("\xf5\x80\x80\x80"), "\"\\u00f5\\u0080\\u0080\\u0080\"");
  EXPECT_EQ(Json("\xff"), "\"\\u00ff\"");
  EXPECT_EQ(Json("\xfe\xbf"), "\"\\u00fe\\u00bf\"");
  EXPECT_EQ(Json("\xc0\x80"), "\"\\u00c0\\u0080\"");  // overlong NUL
  EXPECT_EQ(Json("\xc1\xbf"), "\"\\u00c1\\u00bf\"");
  // Overlong three- and four-byte forms.
  EXPECT_EQ(Json("\xe0\x8b\x80"), "\"\\u00e0\\u008b\\u0080\"");
  EXPECT_EQ(Json("\xf0\x8f\xbf\xbf"), "\"\\u00f0\\u008f\\u00bf\\u00bf\"");
  // Surrogates encoded in UTF-8 (CESU-8).
  EXPECT_EQ(Json("\xed\xa0\x80"), "\"\\u00ed\\u00a0\\u0080\"");
  // Beyond U+10FFFF.
  EXPECT_EQ(Json("\xf4\x90\x80\x80"), "\"\\u00f4\\u0090\\u0080\\u0080\"");
  // Truncated sequences, at the end and before an ASCII byte.
  EXPECT_EQ(Json("\xe2\x82"), "\"\\u00e2\\u0082\"");
  EXPECT_EQ(Json("\xe2\x82x"), "\"\\u00e2\\u0082x\"");
  EXPECT_EQ(Json("\xf0\x9f\x98"), "\"\\u00f0\\u009f\\u0098\"");
  // A lone continuation byte between valid characters.
  EXPECT_EQ(Json("\xc3\xa9\xa9\xc3\xa9"), "\"\xc3\xa9\\u00a9\xc3\xa9\"");
}

TEST(JsonStringTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
}

std::string Minify(std::string_view s) {
  std::string out = "untouched";
  if (!AppendMinifiedJson(s, &out)) return "INVALID(" + out + ")";
  return out.substr(9);
}

TEST(MinifiedJsonTest, KeepsTokensDropsWhitespace) {
  EXPECT_EQ(Minify(" { \"a\" : [1, -2.5e+3, 0.0, true, false, null],\n\t\"b\\n\" : {} , \"c\":[ ] }\r\n"),
            "{\"a\":[1,-2.5e+3,0.0,true,false,null],\"b\\n\":{},\"c\":[]}");
  EXPECT_EQ(Minify("[\"\\u00e9\\ud83d\\ude00 \xc3\xa9 \\/\"]"), "[\"\\u00e9\\ud83d\\ude00 \xc3\xa9 \\/\"]");
  EXPECT_EQ(Minify("\"text\""), "\"text\"");
  EXPECT_EQ(Minify("42"), "42");
}

TEST(MinifiedJsonTest, RejectsWhatIsNotJson) {
  for (std::string_view bad :
       {"", " ", "{", "{\"a\":1,}", "[1,]", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]",
        "{\"a\" 1}", "{a:1}", "[1] [2]", "[tru]", "[nul]", "['x']", "[\"a\nb\"]", "[\"\\x\"]",
        "[\"\\u12G4\"]", "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"abc]",
        "[\"\xff\"]", "[\"\xe0\x8b\x80\"]", "[\"\xed\xa0\x80\"]", "{\"a\":1}}"}) {
    EXPECT_EQ(Minify(bad), "INVALID(untouched)") << bad;
  }
  // A NUL byte is not whitespace (issue 14 item 8).
  EXPECT_EQ(Minify(std::string("{\"a\":1\0}", 8)), "INVALID(untouched)");
}

TEST(MinifiedJsonTest, NestingIsBounded) {
  const std::string ok = std::string(256, '[') + std::string(256, ']');
  EXPECT_EQ(Minify(ok), ok);
  const std::string deep = std::string(257, '[') + std::string(257, ']');
  EXPECT_EQ(Minify(deep), "INVALID(untouched)");
  // Far deeper than any stack would take recursively.
  EXPECT_EQ(Minify(std::string(1000000, '[')), "INVALID(untouched)");
}

TEST(Base64Test, Rfc4648Vectors) {
  auto b64 = [](std::string_view s) {
    std::string out;
    AppendBase64(s, &out);
    return out;
  };
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(b64("\xff\xfe\xfd"), "//79");
}

TEST(DeadLetterRecordTest, TimeIsIsoUtc) {
  EXPECT_EQ(FormatIsoUtc(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatIsoUtc(1767225600000006), "2026-01-01T00:00:00.000006Z");
}

TEST(DeadLetterRecordTest, TextPayloadIsAString) {
  DeadLetter d{"decode: bad \"bid\"", "1,x\n", "tracking", 2, 42, 1767225600000000};
  std::string line;
  AppendDeadLetterJson("recruitment", d, &line);
  EXPECT_EQ(line,
            "{\"pipeline\":\"recruitment\",\"source\":\"tracking\",\"partition\":2,\"offset\":42,\"generation\":0,"
            "\"reason\":\"decode: bad \\\"bid\\\"\",\"time\":\"2026-01-01T00:00:00.000000Z\","
            "\"payload\":\"1,x\\n\",\"payload_bytes\":4,\"truncated\":false,\"payload_sha256\":"
            "\"73fc91d1fbe17d683656a8391d7806092fec9d7b0a9e1a91b1613d10bcd2b9c5\"}");
}

TEST(DeadLetterRecordTest, JsonPayloadIsAJsonValue) {
  DeadLetter d{"late", "{ \"bid\" : \"abc\",\n \"n\": [1, 2.5e3, null] }", "t", 0, 7, 0};
  std::string line;
  AppendDeadLetterJson("p", d, &line);
  EXPECT_EQ(line,
            "{\"pipeline\":\"p\",\"source\":\"t\",\"partition\":0,\"offset\":7,\"generation\":0,\"reason\":\"late\","
            "\"time\":\"1970-01-01T00:00:00.000000Z\",\"payload\":{\"bid\":\"abc\",\"n\":[1,2.5e3,null]},"
            "\"payload_bytes\":41,\"truncated\":false,\"payload_sha256\":"
            "\"4e8877fc804aab88eeb2643a999b31a73061a95a07a54eee6880b8a6e7be5dc5\"}");
}

TEST(DeadLetterRecordTest, ScalarsAndBrokenJsonStayStrings) {
  EXPECT_EQ(EncodeDeadLetterPayload("42").json, "\"42\"");
  EXPECT_EQ(EncodeDeadLetterPayload("{\"a\":1,}").json, "\"{\\\"a\\\":1,}\"");
  EXPECT_EQ(EncodeDeadLetterPayload("{\"a\":1,}").base64, "");
}

TEST(DeadLetterRecordTest, BinaryPayloadCarriesBase64) {
  StoredPayload p = EncodeDeadLetterPayload(std::string("a\xff\x01", 3));
  EXPECT_EQ(p.json, "\"a\\u00ff\\u0001\"");
  EXPECT_EQ(p.base64, "Yf8B");
  EXPECT_EQ(p.bytes, 3);
  EXPECT_FALSE(p.truncated);
  EXPECT_EQ(p.sha256, "da75cf3a663ea72b55cb362eabd1676bdd658794b8c97fd0810557a0b1040319");
  // A JSON-looking payload with an invalid byte inside a string is not JSON.
  StoredPayload q = EncodeDeadLetterPayload("{\"a\":\"\xff\"}");
  EXPECT_EQ(q.json, "\"{\\\"a\\\":\\\"\\u00ff\\\"}\"");
  EXPECT_EQ(q.base64, "eyJhIjoi/yJ9");
}

TEST(DeadLetterRecordTest, LongPayloadIsCutAndHashedWhole) {
  StoredPayload p = EncodeDeadLetterPayload(std::string(70000, 'a'));
  EXPECT_TRUE(p.truncated);
  EXPECT_EQ(p.bytes, 70000);
  EXPECT_EQ(p.json, "\"" + std::string(65536, 'a') + "\"");
  EXPECT_EQ(p.base64, "");
  EXPECT_EQ(p.sha256, "66915c0872933db504e7578828dd85b7e74a4e0a061f9756793b89c4151bd4b5");
  // A character that straddles the cap is dropped whole; the kept text stays exact UTF-8.
  StoredPayload e = EncodeDeadLetterPayload(std::string(65535, 'a') + "\xe2\x82\xac" + "tail");
  EXPECT_EQ(e.json, "\"" + std::string(65535, 'a') + "\"");
  EXPECT_EQ(e.base64, "");
  StoredPayload f = EncodeDeadLetterPayload(std::string(65533, 'a') + "\xe2\x82\xac" + "tail");
  EXPECT_EQ(f.json, "\"" + std::string(65533, 'a') + "\xe2\x82\xac\"");
  // A JSON document over the cap is stored as a (truncated) string.
  std::string big = "[\"" + std::string(70000, 'x') + "\"]";
  StoredPayload j = EncodeDeadLetterPayload(big);
  EXPECT_TRUE(j.truncated);
  EXPECT_EQ(j.json.substr(0, 6), "\"[\\\"xx");
}

// Every line made from random bytes parses as JSON (simdjson validates UTF-8 too) and gives
// back the payload: exactly through payload_base64 when present, else as the string's bytes.
TEST(DeadLetterRecordTest, RandomBytesAlwaysGiveValidJson) {
  std::mt19937_64 rng(20261206);
  simdjson::dom::parser parser;
  for (int i = 0; i < 20000; ++i) {
    std::string payload(rng() % 64, '\0');
    for (char& c : payload) {
      // Bias towards bytes that make UTF-8 and JSON interesting.
      static constexpr char kHot[] = "{}[]\":,\\\x80\xbf\xc2\xe0\xed\xf0\xf4\xf5\xff";
      c = rng() % 3 == 0 ? kHot[rng() % (sizeof kHot - 1)] : static_cast<char>(rng());
    }
    DeadLetter d{std::string(payload.substr(0, rng() % 8)), payload, "s\xff", 0,
                 static_cast<int64_t>(i), static_cast<int64_t>(rng() >> 12)};
    std::string line;
    AppendDeadLetterJson("p", d, &line);
    ASSERT_EQ(line.find('\n'), std::string::npos);
    simdjson::dom::element doc;
    auto error = parser.parse(line).get(doc);
    ASSERT_FALSE(error) << simdjson::error_message(error) << " in " << line;
    std::string_view b64;
    if (doc["payload_base64"].get(b64) == simdjson::SUCCESS) {
      std::string expect;
      AppendBase64(payload, &expect);
      EXPECT_EQ(b64, expect);
    } else if (doc["payload"].is_string()) {
      EXPECT_EQ(std::string_view(doc["payload"]), payload);
    } else {
      // Stored as a JSON value: the payload itself was a JSON document.
      simdjson::dom::parser other;
      EXPECT_FALSE(other.parse(payload).error()) << line;
    }
  }
}

}  // namespace
}  // namespace sluice
