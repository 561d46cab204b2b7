#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
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

using Fields = std::vector<std::string>;

Fields Split(std::string_view record, char delimiter = ',') {
  Fields fields;
  Status st = SplitCsvRecord(record, delimiter, &fields);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return fields;
}

/// Frames like CsvRecordLength, one character at a time, as the reference for the fast version.
size_t ReferenceRecordLength(std::string_view buffer, bool at_eof) {
  bool quoted = false;
  for (size_t i = 0; i < buffer.size(); ++i) {
    if (buffer[i] == '"') quoted = !quoted;
    if (buffer[i] == '\n' && !quoted) return i + 1;
  }
  return at_eof ? buffer.size() : 0;
}

std::unique_ptr<Decoder> MakeCsv(const Schema& schema, char delimiter = ',') {
  DecoderOptions options;
  options.format = DecoderOptions::Format::kCsv;
  options.delimiter = delimiter;
  auto decoder = MakeDecoder(options, schema);
  EXPECT_TRUE(decoder.ok()) << decoder.status().ToString();
  return std::move(decoder).value();
}

TEST(CsvRecordLengthTest, FindsPlainRecords) {
  EXPECT_EQ(CsvRecordLength("a,b\nc,d\n", false), 4u);
  EXPECT_EQ(CsvRecordLength("\nc", false), 1u);  // an empty line is a record
  EXPECT_EQ(CsvRecordLength("a,b\r\nc", false), 5u);
  EXPECT_EQ(CsvRecordLength("a,b", false), 0u);
  EXPECT_EQ(CsvRecordLength("a,b", true), 3u);
  EXPECT_EQ(CsvRecordLength("", false), 0u);
  EXPECT_EQ(CsvRecordLength("", true), 0u);
}

TEST(CsvRecordLengthTest, KeepsQuotedNewlinesInsideTheRecord) {
  // "x\ny",z\n -> the first \n is quoted.
  EXPECT_EQ(CsvRecordLength("\"x\ny\",z\nnext\n", false), 8u);
  // CRLF inside quotes, CRLF terminator.
  EXPECT_EQ(CsvRecordLength("\"x\r\ny\",z\r\nnext", false), 10u);
  // Doubled quotes do not end the quoted field: "a""\nb" is one field.
  EXPECT_EQ(CsvRecordLength("\"a\"\"\nb\",c\nd", false), 10u);
  // A field that is just "" (empty quoted) followed by a newline.
  EXPECT_EQ(CsvRecordLength("\"\"\nx", false), 3u);
  // Delimiters do not matter for framing.
  EXPECT_EQ(CsvRecordLength("a;\"b;\n\";c\n", false), 10u);
}

TEST(CsvRecordLengthTest, WaitsForTheClosingQuote) {
  EXPECT_EQ(CsvRecordLength("a,\"b\nc", false), 0u);
  EXPECT_EQ(CsvRecordLength("a,\"b\nc", true), 6u);  // the rest is one record at EOF
  EXPECT_EQ(CsvRecordLength("a,\"b\"", false), 0u);
  EXPECT_EQ(CsvRecordLength("a,\"b\"", true), 5u);
}

TEST(CsvRecordLengthTest, MatchesTheReferenceOnRandomText) {
  std::mt19937 rng(7);
  const std::string alphabet = "ab,;\"\"\n\r ";
  for (int iteration = 0; iteration < 20000; ++iteration) {
    // Up to six of the sixteen-byte blocks the fast version reads at once, and a tail.
    std::string buffer(rng() % (iteration % 2 == 0 ? 40 : 100), ' ');
    for (char& c : buffer) c = alphabet[rng() % alphabet.size()];
    for (bool at_eof : {false, true}) {
      ASSERT_EQ(CsvRecordLength(buffer, at_eof), ReferenceRecordLength(buffer, at_eof))
          << "buffer: " << buffer << " at_eof=" << at_eof;
    }
  }
}

TEST(SplitCsvRecordTest, SplitsPlainAndQuotedFields) {
  EXPECT_EQ(Split("a,b,c"), (Fields{"a", "b", "c"}));
  EXPECT_EQ(Split(",,"), (Fields{"", "", ""}));
  EXPECT_EQ(Split(""), (Fields{""}));
  EXPECT_EQ(Split("a,\"b,c\",d"), (Fields{"a", "b,c", "d"}));
  EXPECT_EQ(Split("\"say \"\"hi\"\"\",x"), (Fields{"say \"hi\"", "x"}));
  EXPECT_EQ(Split("\"\"\"\""), (Fields{"\""}));
  EXPECT_EQ(Split("\"\",\"\""), (Fields{"", ""}));
  EXPECT_EQ(Split("\"line1\nline2\r\nline3\",z"), (Fields{"line1\nline2\r\nline3", "z"}));
  EXPECT_EQ(Split("a, b ,c"), (Fields{"a", " b ", "c"}));  // spaces are data
}

TEST(SplitCsvRecordTest, ToleratesTrailingLineTerminators) {
  EXPECT_EQ(Split("a,b\r"), (Fields{"a", "b"}));
  EXPECT_EQ(Split("a,b\r\n"), (Fields{"a", "b"}));
  EXPECT_EQ(Split("a,\"b\"\n"), (Fields{"a", "b"}));
  EXPECT_EQ(Split("a,\r"), (Fields{"a", ""}));
}

TEST(SplitCsvRecordTest, UsesTheGivenDelimiter) {
  EXPECT_EQ(Split("1;\"a;b\";x,y", ';'), (Fields{"1", "a;b", "x,y"}));
}

TEST(SplitCsvRecordTest, RejectsStrayQuotes) {
  Fields fields;
  Status st = SplitCsvRecord("a,b\"c,d", ',', &fields);
  EXPECT_EQ(st.code(), StatusCode::kParseError);
  EXPECT_NE(st.message().find("column 2"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("stray quote"), std::string::npos) << st.message();

  st = SplitCsvRecord("\"ab\"x,c", ',', &fields);
  EXPECT_EQ(st.code(), StatusCode::kParseError);
  EXPECT_EQ(st.message(), "column 1: unexpected 'x' after closing quote");

  st = SplitCsvRecord("a,b,\"c", ',', &fields);
  EXPECT_EQ(st.code(), StatusCode::kParseError);
  EXPECT_EQ(st.message(), "column 3: unterminated quoted field");

  st = SplitCsvRecord("a, \"b\"", ',', &fields);  // a quote after a space is not an opening one
  EXPECT_EQ(st.code(), StatusCode::kParseError);
}

TEST(SplitCsvRecordTest, ViewsSurviveUnescaping) {
  std::vector<std::string_view> views;
  std::string scratch;
  ASSERT_TRUE(SplitCsvRecordViews("\"a\"\"b\",\"c\"\"\"\"d\",e", ',', &views, &scratch).ok());
  ASSERT_EQ(views.size(), 3u);
  EXPECT_EQ(views[0], "a\"b");
  EXPECT_EQ(views[1], "c\"\"d");
  EXPECT_EQ(views[2], "e");
}

Schema TrackingSchema() {
  return Schema({{"bid", Type::kInt64, ""},
                 {"track", Type::kString, "custom_track"},
                 {"price", Type::kDouble, ""},
                 {"md", Type::kBool, ""},
                 {"at", Type::kTimestamp, ""}});
}

TEST(CsvDecoderTest, MapsHeaderColumnsAndConvertsTypes) {
  auto decoder = MakeCsv(TrackingSchema());
  // BOM, whitespace around names, a quoted name, an extra column, a different order.
  Status st = decoder->SetHeader("\xEF\xBB\xBF at ,extra,\"custom_track\", md ,price,bid\r\n");
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::vector<Value> row(5);
  ASSERT_TRUE(decoder->Decode("2023-10-08 12:00:00,zzz,\"cl,ick\",TRUE,2.5,42\n", row).ok());
  EXPECT_EQ(row[0], Value::Int(42));
  EXPECT_EQ(row[1], Str("cl,ick"));
  EXPECT_EQ(row[2], Value::Double(2.5));
  EXPECT_EQ(row[3], Value::Bool(true));
  EXPECT_EQ(row[4], Value::TimeMicros(1696766400LL * 1000000));

  // Empty means null for every type, strings included.
  ASSERT_TRUE(decoder->Decode(",,,,,", row).ok());
  for (const Value& v : row) EXPECT_TRUE(v.is_null());
  // Blank means null for non-strings; a blank string stays as it is.
  ASSERT_TRUE(decoder->Decode(" , ,\" \",  ,\t, ", row).ok());
  EXPECT_TRUE(row[0].is_null());
  EXPECT_EQ(row[1], Str(" "));
  EXPECT_TRUE(row[2].is_null());
}

TEST(CsvDecoderTest, ParsesIntegersStrictly) {
  Schema schema({{"bid", Type::kInt64, ""}});
  auto decoder = MakeCsv(schema);
  ASSERT_TRUE(decoder->SetHeader("bid").ok());
  std::vector<Value> row(1);
  const std::pair<const char*, int64_t> good[] = {
      {"7", 7}, {" 42 ", 42}, {"-3", -3}, {"+5", 5}, {"9223372036854775807", INT64_MAX},
      {"-9223372036854775808", INT64_MIN}};
  for (const auto& [text, expected] : good) {
    ASSERT_TRUE(decoder->Decode(text, row).ok()) << text;
    EXPECT_EQ(row[0], Value::Int(expected)) << text;
  }
  for (const char* text : {"abc", "12.0", "1e3", "0x10", "1 2", "9223372036854775808", "+-1",
                           "-", "+", "12a"}) {
    Status st = decoder->Decode(text, row);
    EXPECT_EQ(st.code(), StatusCode::kParseError) << text;
  }
  Status st = decoder->Decode("abc", row);
  EXPECT_EQ(st.message(), "field bid: 'abc' is not an int64");
}

TEST(CsvDecoderTest, ParsesDoublesBoolsAndTimestamps) {
  Schema schema({{"d", Type::kDouble, ""}, {"b", Type::kBool, ""}, {"t", Type::kTimestamp, ""}});
  auto decoder = MakeCsv(schema);
  ASSERT_TRUE(decoder->SetHeader("d,b,t").ok());
  std::vector<Value> row(3);
  ASSERT_TRUE(decoder->Decode("-1.5e3,no,7/27/2022 10:05", row).ok());
  EXPECT_EQ(row[0], Value::Double(-1500.0));
  EXPECT_EQ(row[1], Value::Bool(false));
  EXPECT_EQ(row[2], Value::TimeMicros(1658916300LL * 1000000));
  for (const char* b : {"true", "TRUE", "1", "yes", "Yes"}) {
    ASSERT_TRUE(decoder->Decode(std::string("1,") + b + ",", row).ok()) << b;
    EXPECT_EQ(row[1], Value::Bool(true)) << b;
  }
  for (const char* b : {"false", "FALSE", "0", "no"}) {
    ASSERT_TRUE(decoder->Decode(std::string("1,") + b + ",", row).ok()) << b;
    EXPECT_EQ(row[1], Value::Bool(false)) << b;
  }
  EXPECT_EQ(decoder->Decode("1.2.3,,", row).message(), "field d: '1.2.3' is not a double");
  EXPECT_EQ(decoder->Decode(",maybe,", row).message(), "field b: 'maybe' is not a bool");
  EXPECT_EQ(decoder->Decode(",,58:22.5", row).message(), "field t: '58:22.5' is not a timestamp");
}

TEST(CsvDecoderTest, RejectsWrongFieldCount) {
  auto decoder = MakeCsv(Schema({{"a", Type::kString, ""}}));
  ASSERT_TRUE(decoder->SetHeader("a,b,c").ok());
  std::vector<Value> row(1);
  Status st = decoder->Decode("1,2", row);
  EXPECT_EQ(st.code(), StatusCode::kParseError);
  EXPECT_EQ(st.message(), "expected 3 fields, got 2");
  EXPECT_EQ(decoder->Decode("1,2,3,4", row).message(), "expected 3 fields, got 4");
  EXPECT_TRUE(decoder->Decode("1,\"2,x\",3", row).ok());
}

TEST(CsvDecoderTest, ReportsMissingHeaderColumns) {
  Schema schema({{"bid", Type::kInt64, ""},
                 {"job", Type::kInt64, "job_id"},
                 {"track", Type::kString, "custom_track"}});
  auto decoder = MakeCsv(schema);
  Status st = decoder->SetHeader("create_time,bid,custom_track");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "CSV column missing: job_id (available: create_time, bid, custom_track)");
  std::vector<Value> row(3);
  EXPECT_FALSE(decoder->Decode("1,2,3", row).ok());  // still no mapping
}

TEST(CsvDecoderTest, UsesSemicolonsAndCrlf) {
  Schema schema({{"id", Type::kInt64, ""}, {"name", Type::kString, "campaign_name"}});
  auto decoder = MakeCsv(schema, ';');
  ASSERT_TRUE(decoder->SetHeader("id;campaign_name;budget\r\n").ok());
  std::vector<Value> row(2);
  ASSERT_TRUE(decoder->Decode("12;\"Spring; \"\"big\"\" sale\";3,5\r\n", row).ok());
  EXPECT_EQ(row[0], Value::Int(12));
  EXPECT_EQ(row[1], Str("Spring; \"big\" sale"));
}

TEST(CsvDecoderTest, ReadsEmbeddedNewlinesFramedFromABuffer) {
  Schema schema({{"id", Type::kInt64, ""}, {"note", Type::kString, ""}});
  auto decoder = MakeCsv(schema);
  std::string text = "id,note\n1,\"two\nlines\"\n2,\"crlf\r\ninside\"\r\n3,plain";
  std::string_view rest = text;
  std::vector<std::string> notes;
  bool header = true;
  std::vector<Value> row(2);
  while (size_t n = CsvRecordLength(rest, true)) {
    std::string_view record = rest.substr(0, n);
    rest.remove_prefix(n);
    if (header) {
      ASSERT_TRUE(decoder->SetHeader(record).ok());
      header = false;
      continue;
    }
    Status st = decoder->Decode(record, row);
    ASSERT_TRUE(st.ok()) << st.ToString();
    notes.push_back(row[1].string_value());
  }
  EXPECT_EQ(notes, (std::vector<std::string>{"two\nlines", "crlf\r\ninside", "plain"}));
}

TEST(CsvDecoderTest, WorksWithoutHeader) {
  Schema schema({{"name", Type::kString, ""}, {"id", Type::kInt64, "campaign_id"}});
  DecoderOptions options;
  options.format = DecoderOptions::Format::kCsv;
  options.header = false;
  options.columns = {"network_id", "campaign_id", "name"};
  auto decoder = MakeDecoder(options, schema);
  ASSERT_TRUE(decoder.ok()) << decoder.status().ToString();
  std::vector<Value> row(2);
  ASSERT_TRUE((*decoder)->Decode("1,10,Campaign A", row).ok());
  EXPECT_EQ(row[0], Str("Campaign A"));
  EXPECT_EQ(row[1], Value::Int(10));

  options.columns = {"network_id", "name"};
  auto missing = MakeDecoder(options, schema);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("campaign_id"), std::string::npos);

  options.columns.clear();
  EXPECT_EQ(MakeDecoder(options, schema).status().code(), StatusCode::kInvalidArgument);
}

TEST(CsvDecoderTest, FailsBeforeTheHeader) {
  auto decoder = MakeCsv(Schema({{"a", Type::kString, ""}}));
  std::vector<Value> row(1);
  EXPECT_FALSE(decoder->Decode("x", row).ok());
}

TEST(CsvDecoderTest, DecodesTheWholeTrackingSeedFile) {
  const std::string path =
      std::string(SLUICE_SEED_DIR) + "/TrannXuanTien__ETL-streaming-project/tracking.csv";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "cannot open " << path;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(text.size(), 2542217u);

  Schema schema({{"create_time", Type::kString, ""},
                 {"bid", Type::kInt64, ""},
                 {"custom_track", Type::kString, ""},
                 {"job_id", Type::kInt64, ""},
                 {"campaign_id", Type::kInt64, ""},
                 {"ed", Type::kString, ""},
                 {"md", Type::kBool, ""},
                 {"tz", Type::kInt64, ""},
                 {"ts", Type::kString, ""}});
  auto decoder = MakeCsv(schema);
  std::vector<Value> row(schema.size());
  std::string_view rest = text;
  size_t header_length = CsvRecordLength(rest, true);
  ASSERT_GT(header_length, 0u);
  ASSERT_TRUE(decoder->SetHeader(rest.substr(0, header_length)).ok());
  rest.remove_prefix(header_length);

  size_t records = 0, clicks = 0, blank_job = 0, quoted_ed = 0;
  while (size_t n = CsvRecordLength(rest, true)) {
    Status st = decoder->Decode(rest.substr(0, n), row);
    ASSERT_TRUE(st.ok()) << "record " << records + 1 << ": " << st.ToString();
    rest.remove_prefix(n);
    ++records;
    if (!row[2].is_null() && row[2].string_value() == "click") ++clicks;
    if (row[3].is_null()) ++blank_job;
    if (!row[5].is_null() && row[5].string_value().find(',') != std::string::npos) ++quoted_ed;
    EXPECT_FALSE(row[0].is_null());
  }
  EXPECT_EQ(records, 6766u);
  EXPECT_EQ(clicks, 2167u);
  EXPECT_EQ(blank_job, 4787u);
  EXPECT_GT(quoted_ed, 0u);  // the ed column holds quoted JSON with commas
}

}  // namespace
}  // namespace sluice
