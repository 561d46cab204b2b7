// Tests of the columnar CSV decoder: hand-worked values and messages for messy records, then
// differential checks against the row decoder (every record, messy, mutated and the seed
// tracking log, must give the row decoder's values or its error message exactly).

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/raw_batch.h"
#include "core/schema.h"
#include "core/tests/ci_rule.h"
#include "core/value.h"
#include "operators/batch.h"
#include "operators/columnar_csv_decoder.h"
#include "operators/columnar_decoder.h"
#include "operators/decoder.h"
#include "sluice_test_paths.h"

#ifndef SLUICE_SEED_DIR
#define SLUICE_SEED_DIR "../shared/seed-data"
#endif

namespace sluice {
namespace {

// Value::String("literal") is ambiguous between its std::string and string_view overloads.
Value Str(std::string_view s) { return Value::String(s); }

/// Every type; `code` reads the same column as `id`.
Schema AllTypes() {
  return Schema({{"id", Type::kInt64, ""},
                 {"name", Type::kString, ""},
                 {"price", Type::kDouble, ""},
                 {"flag", Type::kBool, ""},
                 {"when", Type::kTimestamp, ""},
                 {"code", Type::kString, "id"}});
}

/// The header of the hand-worked records: a BOM, a quoted name, blanks around a name, a column
/// nobody reads and a repeated name (the first one is read).
constexpr std::string_view kHeader = "\xEF\xBB\xBFid,\"name\", price ,flag,skip,when,name";

DecoderOptions Csv(char delimiter = ',') {
  DecoderOptions options;
  options.format = DecoderOptions::Format::kCsv;
  options.delimiter = delimiter;
  return options;
}

std::unique_ptr<ColumnarCsvDecoder> MakeColumnar(const DecoderOptions& options, const Schema& schema,
                                                 std::optional<std::string_view> header) {
  auto made = ColumnarCsvDecoder::Make(options, schema, header);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  if (!made.ok()) return nullptr;
  EXPECT_NE(*made, nullptr);
  return std::move(made).value();
}

/// Decodes `payloads` as one batch column by column and returns each record's values, or its
/// error message as a string Value prefixed with "error: ".
std::vector<std::vector<Value>> DecodeColumnar(ColumnarCsvDecoder* decoder, const Schema& schema,
                                               const std::vector<std::string>& payloads) {
  RawBatch raw;
  for (const auto& p : payloads) raw.Append(p);
  ColumnBatch batch;
  decoder->Decode(raw, &batch);
  EXPECT_EQ(batch.size(), payloads.size());
  std::vector<std::vector<Value>> out;
  for (size_t i = 0; i < payloads.size(); ++i) {
    if (batch.failed(i)) {
      out.push_back({Str("error: " + batch.error(i))});
      continue;
    }
    std::vector<Value> row(schema.size());
    batch.LoadRow(i, row);
    out.push_back(std::move(row));
  }
  return out;
}

std::string Describe(const std::vector<Value>& row) {
  std::string out;
  for (const Value& v : row) out += std::string(TypeName(v.type())) + ":" + v.ToString() + " ";
  return out;
}

/// Decodes `payloads` both ways (the columnar decoder as one batch) and compares record by
/// record. Returns the number of records the row decoder accepted.
size_t ExpectSame(const DecoderOptions& options, const Schema& schema,
                  std::optional<std::string_view> header, const std::vector<std::string>& payloads,
                  ColumnarCsvDecoder* columnar = nullptr) {
  auto row_decoder = MakeDecoder(options, schema);
  EXPECT_TRUE(row_decoder.ok());
  if (!row_decoder.ok()) return 0;
  if (header) {
    EXPECT_TRUE((*row_decoder)->SetHeader(*header).ok());
  }
  std::unique_ptr<ColumnarCsvDecoder> owned;
  if (columnar == nullptr) {
    owned = MakeColumnar(options, schema, header);
    columnar = owned.get();
  }
  if (columnar == nullptr) return 0;
  const auto got = DecodeColumnar(columnar, schema, payloads);
  size_t accepted = 0;
  std::vector<Value> expected(schema.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    Status s = (*row_decoder)->Decode(payloads[i], expected);
    if (!s.ok()) {
      EXPECT_EQ(got[i], std::vector<Value>{Str("error: " + s.message())}) << "record " << i << ": " << payloads[i];
      continue;
    }
    ++accepted;
    EXPECT_EQ(got[i].size(), schema.size()) << payloads[i] << ": " << Describe(got[i]);
    if (got[i].size() != schema.size()) continue;
    for (size_t c = 0; c < schema.size(); ++c) {
      EXPECT_EQ(got[i][c].type(), expected[c].type()) << payloads[i] << " field " << schema.field(c).name;
      EXPECT_TRUE(got[i][c] == expected[c]) << payloads[i] << " field " << schema.field(c).name << ": "
                                            << Describe(got[i]) << " != " << Describe(expected);
    }
  }
  return accepted;
}

std::vector<Value> Row(Value id, Value name, Value price, Value flag, Value when, Value code) {
  return {std::move(id), std::move(name), std::move(price), std::move(flag), std::move(when), std::move(code)};
}

std::vector<Value> Failure(std::string_view message) { return {Str("error: " + std::string(message))}; }

constexpr int64_t k2026 = 1767225600000000;  // 2026-01-01T00:00:00Z in microseconds
const Value N = Value::Null();

TEST(ColumnarCsvDecoderTest, HandWorkedMessyRecords) {
  const Schema schema = AllTypes();
  auto decoder = MakeColumnar(Csv(), schema, kHeader);
  ASSERT_NE(decoder, nullptr);
  // Columns: id, name, price, flag, skip, when, name (the second name is not read).
  const std::vector<std::pair<std::string, std::vector<Value>>> cases = {
      {"1,alice,2.5,true,x,2026-01-01T00:00:00Z,zed",
       Row(Value::Int(1), Str("alice"), Value::Double(2.5), Value::Bool(true), Value::TimeMicros(k2026), Str("1"))},
      // CRLF and LF terminators, as a Kafka message may keep them.
      {"2,bob,3,no,,,\r\n", Row(Value::Int(2), Str("bob"), Value::Double(3), Value::Bool(false), N, Str("2"))},
      {"3,carol,,,,,\n", Row(Value::Int(3), Str("carol"), N, N, N, Str("3"))},
      // Empty fields: null for every type; a blank is null except for strings.
      {",,,,,,", Row(N, N, N, N, N, N)},
      {" , , , ,, ,", Row(N, Str(" "), N, N, N, Str(" "))},
      // Quoted: an embedded delimiter, doubled quotes, an embedded line break, an empty quoted
      // field, a quoted number and a quoted unread column.
      {"\"7\",\"bob, jr.\",\"1e3\",\"YES\",\"a,\"\"b\"\"\",,", Row(Value::Int(7), Str("bob, jr."), Value::Double(1000),
                                                                  Value::Bool(true), N, Str("7"))},
      {"8,\"say \"\"hi\"\"\",,,,,", Row(Value::Int(8), Str("say \"hi\""), N, N, N, Str("8"))},
      {"9,\"two\nlines\",,,,,", Row(Value::Int(9), Str("two\nlines"), N, N, N, Str("9"))},
      {"10,\"\",,,,,\"\"", Row(Value::Int(10), N, N, N, N, Str("10"))},
      {"11,\"\"\"\",,,,,", Row(Value::Int(11), Str("\""), N, N, N, Str("11"))},
      // Integers the row decoder's parser takes: blanks around, a '+', -0, leading zeros, the
      // largest int64.
      {" 42 ,a,,,,,", Row(Value::Int(42), Str("a"), N, N, N, Str(" 42 "))},
      {"+5,a,,,,,", Row(Value::Int(5), Str("a"), N, N, N, Str("+5"))},
      {"-0,a,,,,,", Row(Value::Int(0), Str("a"), N, N, N, Str("-0"))},
      {"007,a,,,,,", Row(Value::Int(7), Str("a"), N, N, N, Str("007"))},
      {"9223372036854775807,a,,,,,",
       Row(Value::Int(9223372036854775807), Str("a"), N, N, N, Str("9223372036854775807"))},
      {"-123456789012345678,a,,,,,",
       Row(Value::Int(-123456789012345678), Str("a"), N, N, N, Str("-123456789012345678"))},
      // Wrong field counts.
      {"1,a,,,,", Failure("expected 7 fields, got 6")},
      {"1,a,,,,,,", Failure("expected 7 fields, got 8")},
      {"", Failure("expected 7 fields, got 1")},
      {"\r\n", Failure("expected 7 fields, got 1")},
      // Quoting the splitter refuses.
      {"1,ab\"c,,,,,", Failure("column 2: stray quote in unquoted field")},
      {"1,\"ab\"c,,,,,", Failure("column 2: unexpected 'c' after closing quote")},
      {"1,\"abc,,,,,", Failure("column 2: unterminated quoted field")},
      {"1,a,,,,,x\"", Failure("column 7: stray quote in unquoted field")},
      {"1,a,,,\"x\"\",,", Failure("column 5: unterminated quoted field")},
      // Values that do not convert (the first field in schema order that fails is named).
      {"x1,a,,,,,", Failure("field id: 'x1' is not an int64")},
      {"9223372036854775808,a,,,,,", Failure("field id: '9223372036854775808' is not an int64")},
      {"1.5,a,,,,,", Failure("field id: '1.5' is not an int64")},
      {"-,a,,,,,", Failure("field id: '-' is not an int64")},
      {"1,a,cheap,maybe,,,", Failure("field price: 'cheap' is not a double")},
      {"1,a,1,maybe,,,", Failure("field flag: 'maybe' is not a bool")},
      {"1,a,1,1,,yesterday,", Failure("field when: 'yesterday' is not a timestamp")},
      {"\"1\"\"\",a,,,,,", Failure("field id: '1\"' is not an int64")},
  };
  std::vector<std::string> payloads;
  for (const auto& c : cases) payloads.push_back(c.first);
  const auto got = DecodeColumnar(decoder.get(), schema, payloads);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got[i], cases[i].second) << "record " << i << ": " << cases[i].first << "\n got " << Describe(got[i])
                                       << "\nwant " << Describe(cases[i].second);
  }
  // And the row decoder agrees with every hand-worked outcome.
  ExpectSame(Csv(), schema, kHeader, payloads);
}

TEST(ColumnarCsvDecoderTest, PlainAndQuotedRecordsTakeTheFastPath) {
  auto decoder = MakeColumnar(Csv(), AllTypes(), kHeader);
  ASSERT_NE(decoder, nullptr);
  const std::vector<std::string> clean = {
      "1,alice,2.5,true,x,2026-01-01T00:00:00Z,zed", "\"7\",\"bob, jr.\",\"1e3\",\"YES\",\"a,\"\"b\"\"\",,",
      "8,\"say \"\"hi\"\"\",,,,,\r\n", ",,,,,,", "9,\"two\nlines\",,,,,"};
  EXPECT_EQ(ExpectSame(Csv(), AllTypes(), kHeader, clean, decoder.get()), clean.size());
  EXPECT_EQ(decoder->fallbacks(), 0);
  // Blanks around an integer and a '+' convert through the row decoder's own parser, still on
  // the fast path; a wrong field count or a stray quote goes to the row decoder.
  EXPECT_EQ(ExpectSame(Csv(), AllTypes(), kHeader, {" 42 ,a,,,,,", "+5,a,,,,,"}, decoder.get()), 2u);
  EXPECT_EQ(decoder->fallbacks(), 0);
  EXPECT_EQ(ExpectSame(Csv(), AllTypes(), kHeader, {"1,a,,,,", "1,ab\"c,,,,,", "x,a,,,,,"}, decoder.get()), 0u);
  EXPECT_EQ(decoder->fallbacks(), 3);
}

TEST(ColumnarCsvDecoderTest, FieldsAcrossSixteenByteBlocks) {
  // The fields are found from an index built sixteen bytes at a time: quotes, doubled quotes
  // and delimiters at every offset around the block boundaries, then the byte-by-byte tail.
  DecoderOptions options = Csv();
  options.header = false;
  options.columns = {"id", "name", "skip", "price", "flag", "when"};
  const Schema schema = AllTypes();
  auto decoder = MakeColumnar(options, schema, std::nullopt);
  ASSERT_NE(decoder, nullptr);
  std::vector<std::string> records;
  for (size_t pad = 0; pad < 40; ++pad) {
    const std::string x(pad, 'x');
    records.push_back("1," + x + ",s,2.5,,");
    records.push_back("2,\"" + x + "\"\"q\"\"\",\",\",,,");
    records.push_back("3,\"" + x + ",\",,1,yes,");
  }
  EXPECT_EQ(ExpectSame(options, schema, std::nullopt, records, decoder.get()), records.size());
  EXPECT_EQ(decoder->fallbacks(), 0);
  const auto got = DecodeColumnar(decoder.get(), schema, {"2,\"xxxxxxxxxxxxxxx\"\"q\"\"\",\",\",,,"});
  EXPECT_EQ(got[0], Row(Value::Int(2), Str("xxxxxxxxxxxxxxx\"q\""), N, N, N, Str("2")));
}

TEST(ColumnarCsvDecoderTest, SemicolonsAndColumnsWithoutHeader) {
  DecoderOptions options = Csv(';');
  options.header = false;
  options.columns = {"when", "id", "name", "price", "flag"};
  const Schema schema = AllTypes();
  auto decoder = MakeColumnar(options, schema, std::nullopt);
  ASSERT_NE(decoder, nullptr);
  const std::vector<std::string> payloads = {"2026-01-01T00:00:00Z;5;a,b;1,5;1", "x;5;\"a;b\";;0", ";1;b;;"};
  const auto got = DecodeColumnar(decoder.get(), schema, payloads);
  EXPECT_EQ(got[0], Failure("field price: '1,5' is not a double"));
  EXPECT_EQ(got[1], Failure("field when: 'x' is not a timestamp"));
  EXPECT_EQ(got[2], Row(Value::Int(1), Str("b"), N, N, N, Str("1")));
  ExpectSame(options, schema, std::nullopt, payloads);
  ExpectSame(options, schema, std::nullopt, {";2;\"a;b\";3.5;yes"});
}

TEST(ColumnarCsvDecoderTest, HeaderHandlingIsTheRowDecoders) {
  const Schema schema = AllTypes();
  // A header without a declared column: the row decoder's message.
  auto missing = ColumnarCsvDecoder::Make(Csv(), schema, std::string_view("id,name,price,flag"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "CSV column missing: when (available: id, name, price, flag)");
  // A header that does not split.
  auto broken = ColumnarCsvDecoder::Make(Csv(), schema, std::string_view("id,na\"me"));
  ASSERT_FALSE(broken.ok());
  auto row = MakeDecoder(Csv(), schema);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(broken.status().message(), (*row)->SetHeader("id,na\"me").message());
  // A header expected but not given: no columnar decoder (the row path decides).
  auto none = ColumnarCsvDecoder::Make(Csv(), schema, std::nullopt);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
  // The factory: CSV and NDJSON have a columnar decoder, Avro none.
  auto csv = MakeColumnarDecoder(Csv(), schema, kHeader);
  ASSERT_TRUE(csv.ok());
  EXPECT_NE(*csv, nullptr);
  DecoderOptions avro;
  avro.format = DecoderOptions::Format::kAvro;
  auto other = MakeColumnarDecoder(avro, schema, std::nullopt);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, nullptr);
}

/// The seed tracking log's header and records, framed as the file source frames them
/// (CsvRecordLength, the terminator stripped, blank lines skipped).
bool ReadSeedTracking(std::string* header, std::vector<std::string>* records) {
  std::ifstream in(std::string(SLUICE_SEED_DIR) + "/TrannXuanTien__ETL-streaming-project/tracking.csv",
                   std::ios::binary);
  if (!in) return false;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto strip = [](std::string_view r) {
    if (!r.empty() && r.back() == '\n') r.remove_suffix(1);
    if (!r.empty() && r.back() == '\r') r.remove_suffix(1);
    return r;
  };
  std::string_view rest = text;
  const size_t h = CsvRecordLength(rest, true);
  *header = std::string(strip(rest.substr(0, h)));
  rest.remove_prefix(h);
  while (size_t n = CsvRecordLength(rest, true)) {
    const std::string_view r = strip(rest.substr(0, n));
    if (!r.empty()) records->emplace_back(r);
    rest.remove_prefix(n);
  }
  return true;
}

Schema SeedSchema() {
  return Schema({{"create_time", Type::kString, ""},
                 {"ts", Type::kString, ""},
                 {"custom_track", Type::kString, ""},
                 {"job_id", Type::kInt64, ""},
                 {"bid", Type::kInt64, ""},
                 {"publisher_id", Type::kInt64, ""},
                 {"campaign_id", Type::kInt64, ""},
                 {"group_id", Type::kInt64, ""},
                 {"ed", Type::kString, ""},
                 {"ua", Type::kString, ""},
                 {"md", Type::kBool, ""},
                 {"tz", Type::kInt64, ""},
                 {"dt", Type::kTimestamp, ""},
                 {"sr", Type::kString, ""}});
}

TEST(ColumnarCsvDecoderTest, SeedTrackingLogMatchesTheRowDecoder) {
  std::string header;
  std::vector<std::string> records;
  if (!ReadSeedTracking(&header, &records)) {
    SLUICE_SKIP_OR_FAIL(std::string("seed tracking.csv not found under ") + SLUICE_SEED_DIR);
  }
  ASSERT_EQ(records.size(), 6766u);
  const Schema schema = SeedSchema();
  auto decoder = MakeColumnar(Csv(), schema, header);
  ASSERT_NE(decoder, nullptr);
  // In batches of 1000, as a worker polls them.
  size_t accepted = 0;
  for (size_t at = 0; at < records.size(); at += 1000) {
    std::vector<std::string> batch(records.begin() + static_cast<std::ptrdiff_t>(at),
                                   records.begin() + static_cast<std::ptrdiff_t>(std::min(at + 1000, records.size())));
    accepted += ExpectSame(Csv(), schema, header, batch, decoder.get());
  }
  // dt ("CandidatePortal") is not a timestamp: every record with it fails on both paths.
  EXPECT_LT(accepted, records.size());
  // Without dt, the whole log decodes on the fast path: the quoted user agents and the ed
  // column's quoted JSON with doubled quotes included.
  std::vector<Field> fields;
  for (size_t c = 0; c < schema.size(); ++c) {
    if (schema.field(c).name != "dt") fields.push_back(schema.field(c));
  }
  const Schema clean(fields);
  auto fast = MakeColumnar(Csv(), clean, header);
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(ExpectSame(Csv(), clean, header, records, fast.get()), records.size());
  EXPECT_EQ(fast->fallbacks(), 0);
}

TEST(ColumnarCsvDecoderTest, MutatedRecordsMatch) {
  // Seeded mutations of seed and hand-made records: flipped, deleted, inserted and duplicated
  // bytes, truncations. Every outcome (value or error message) must be the row decoder's.
  std::string header;
  std::vector<std::string> seed;
  ReadSeedTracking(&header, &seed);
  std::vector<std::string> corpus = {"1,alice,2.5,true,x,2026-01-01T00:00:00Z,zed",
                                     "\"7\",\"bob, jr.\",\"1e3\",\"YES\",\"a,\"\"b\"\"\",,",
                                     "8,\"say \"\"hi\"\"\",,,,,\r\n", ",,,,,,", " 42 ,a,,,,,"};
  for (size_t i = 0; i < seed.size() && i < 60; ++i) corpus.push_back(seed[i * 97 % seed.size()]);
  std::mt19937 rng(19);
  const std::string interesting = ",;\"\r\n 0123456789.-+eE\x80\xff\ttrue";
  const Schema seed_schema = SeedSchema();
  for (int round = 0; round < 8; ++round) {
    std::vector<std::string> batch;
    for (int k = 0; k < 500; ++k) {
      std::string r = corpus[rng() % corpus.size()];
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !r.empty(); ++e) {
        const size_t at = rng() % r.size();
        switch (rng() % 5) {
          case 0: r[at] = interesting[rng() % interesting.size()]; break;
          case 1: r.erase(at, 1 + rng() % 3); break;
          case 2: r.insert(at, 1, interesting[rng() % interesting.size()]); break;
          case 3: r.resize(at); break;
          case 4: r.insert(at, r.substr(at, rng() % 12)); break;
        }
      }
      batch.push_back(std::move(r));
    }
    ExpectSame(Csv(), AllTypes(), kHeader, batch);
    if (!header.empty()) ExpectSame(Csv(), seed_schema, header, batch);
  }
}

}  // namespace
}  // namespace sluice
