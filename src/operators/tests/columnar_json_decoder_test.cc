// Differential tests of the columnar NDJSON decoder: every record, messy ones included, must
// give the row decoder's values, or the row decoder's error message, exactly.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/raw_batch.h"
#include "core/schema.h"
#include "core/value.h"
#include "core/tests/ci_rule.h"
#include "operators/batch.h"
#include "operators/columnar_json_decoder.h"
#include "operators/decoder.h"
#include "sluice_test_paths.h"

#ifndef SLUICE_SEED_DIR
#define SLUICE_SEED_DIR "../shared/seed-data"
#endif

namespace sluice {
namespace {

Schema AllTypes() {
  return Schema({{"s", Type::kString, ""},
                 {"i", Type::kInt64, ""},
                 {"d", Type::kDouble, ""},
                 {"b", Type::kBool, ""},
                 {"t", Type::kTimestamp, ""},
                 {"i2", Type::kInt64, "other key"}});
}

Schema Recruitment() {
  return Schema({{"create_time", Type::kString, ""},
                 {"ts", Type::kString, ""},
                 {"custom_track", Type::kString, ""},
                 {"job_id", Type::kInt64, ""},
                 {"bid", Type::kInt64, ""},
                 {"publisher_id", Type::kInt64, ""},
                 {"campaign_id", Type::kInt64, ""},
                 {"group_id", Type::kInt64, ""}});
}

std::string Describe(const Value& v) {
  return std::string(TypeName(v.type())) + ":" + v.ToString();
}

/// Decodes `payloads` both ways, as one batch, and compares record by record. Returns the
/// number of records the row decoder accepted.
size_t ExpectSame(const Schema& schema, const std::vector<std::string>& payloads,
                  ColumnarJsonDecoder* columnar = nullptr) {
  DecoderOptions options;
  options.format = DecoderOptions::Format::kNdjson;
  auto row_decoder = MakeDecoder(options, schema);
  EXPECT_TRUE(row_decoder.ok());
  std::unique_ptr<ColumnarJsonDecoder> owned;
  if (columnar == nullptr) {
    auto made = ColumnarJsonDecoder::Make(schema);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    owned = std::move(made).value();
    EXPECT_NE(owned, nullptr);
    columnar = owned.get();
  }
  RawBatch raw;
  for (const auto& p : payloads) raw.Append(p);
  ColumnBatch batch;
  columnar->Decode(raw, &batch);
  EXPECT_EQ(batch.size(), payloads.size());
  size_t accepted = 0;
  std::vector<Value> expected(schema.size()), got(schema.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    Status s = (*row_decoder)->Decode(payloads[i], expected);
    if (!s.ok()) {
      EXPECT_TRUE(batch.failed(i)) << "record " << i << ": " << payloads[i];
      if (batch.failed(i)) {
        EXPECT_EQ(batch.error(i), s.message()) << payloads[i];
      }
      continue;
    }
    ++accepted;
    EXPECT_FALSE(batch.failed(i)) << payloads[i] << ": " << batch.error(i);
    if (batch.failed(i)) continue;
    batch.LoadRow(i, got);
    for (size_t c = 0; c < schema.size(); ++c) {
      EXPECT_EQ(got[c].type(), expected[c].type()) << payloads[i] << " field " << schema.field(c).name;
      EXPECT_TRUE(got[c] == expected[c])
          << payloads[i] << " field " << schema.field(c).name << ": " << Describe(got[c])
          << " != " << Describe(expected[c]);
    }
  }
  return accepted;
}

std::vector<std::string> MessyRecords() {
  return {
      R"({"s":"abc","i":1,"d":1.5,"b":true,"t":"2026-01-01T00:00:00Z","other key":7})",
      R"({"i":"12","d":"3.25","b":"yes","t":1767225600000,"s":12.50})",
      R"({"i":12.0,"d":3,"b":false,"t":1767225600000.4,"s":true})",
      R"({"i":12.5})",
      R"({"i":"12.5"})",
      R"({"i":9223372036854775807,"d":1e308})",
      R"({"i":9223372036854775808})",
      R"({"i":-9223372036854775809})",
      R"({"i":1e400})",
      R"({"d":1e400})",
      R"({"i":-0,"d":-0.0})",
      R"({"s":"","i":"","d":" ","b":"","t":""})",
      R"({"s":null,"i":null,"d":null,"b":null,"t":null})",
      R"({"s":nul})",
      R"({"s":"tab\there \"quoted\" \u00e9 \ud83d\ude00 back\\slash"})",
      R"({"s":"\ud800"})",
      R"({"s":"bad escape \x"})",
      R"({"s\u0020":"escaped key","\u0073":"s by escape"})",
      R"({"s":"first","s":"second","i":1,"i":null})",
      R"({"s":{"a":[1,2,{"b":null}]},"i":[1]})",
      R"({"s":[ 1 , 2 ],"i":{"x":1}})",
      R"({"b":1})",
      R"({"b":"maybe"})",
      R"({"t":"not a time"})",
      R"({"t":true})",
      R"({"t":9223372036854775})",
      R"({"t":9223372036854776})",
      R"({"t":-9223372036854776})",
      R"({"t":-1,"s":"before the epoch"})",
      R"({"i":"0x10"})",
      R"({"i":" 42 "})",
      R"({"i":+1})",
      R"({"i":01})",
      R"({"i":1.})",
      R"({"d":.5})",
      R"({"s":"x"} trailing)",
      R"({"s":"x"}{"s":"y"})",
      R"({"s":"x")",
      R"({"s":"x",})",
      R"({"s" "x"})",
      R"([1,2,3])",
      R"("just a string")",
      R"(42)",
      R"(null)",
      "",
      "   ",
      "{}",
      " { \"s\" : \"spaced\" , \"i\" : 3 } ",
      std::string("{\"s\":\"nul\0byte\"}", 17),
      std::string("{\"s\":\"x\"}\0", 10),
      "{\"s\":\"bad utf8 \xff\xfe\"}",
      "{\"s\":\"overlong \xc0\xaf\"}",
      "{\"s\":\"raw\tcontrol\"}",
      "{\"s\":\"raw\nnewline\"}",
      R"({"other key":"77","i2":1})",
      R"({"s":"a","i":1,"d":2,"b":true,"t":"2026-01-01 00:00:00","other key":null})",
      R"({"other key":1,"t":"2026-13-01T00:00:00Z","b":true,"d":2,"i":1,"s":"a"})",
  };
}

TEST(ColumnarJsonDecoderTest, MessyRecordsMatchTheRowDecoder) {
  EXPECT_GT(ExpectSame(AllTypes(), MessyRecords()), 10u);
}

TEST(ColumnarJsonDecoderTest, EveryRecordAloneMatchesToo) {
  // Alone, each record is the first of its batch (no remembered key order, no padding before).
  for (const auto& r : MessyRecords()) ExpectSame(AllTypes(), {r});
}

TEST(ColumnarJsonDecoderTest, ReusedAcrossBatchesLeaksNothing) {
  auto made = ColumnarJsonDecoder::Make(AllTypes());
  ASSERT_TRUE(made.ok());
  auto decoder = std::move(made).value();
  ExpectSame(AllTypes(), MessyRecords(), decoder.get());
  std::vector<std::string> reversed = MessyRecords();
  std::reverse(reversed.begin(), reversed.end());
  ExpectSame(AllTypes(), reversed, decoder.get());
  ExpectSame(AllTypes(), {R"({"i":1})", R"({})", R"({"s":"only"})"}, decoder.get());
}

TEST(ColumnarJsonDecoderTest, CleanRecordsTakeTheFastPath) {
  auto made = ColumnarJsonDecoder::Make(Recruitment());
  ASSERT_TRUE(made.ok());
  auto decoder = std::move(made).value();
  std::vector<std::string> records;
  for (int i = 0; i < 100; ++i) {
    records.push_back(R"({"create_time":"d1cd5fa6-e6a4-11f0-ac8e-ed6a32b78ca4","bid":)" + std::to_string(i) +
                      R"(,"campaign_id":127,"custom_track":"click","group_id":"","job_id":986,)"
                      R"("publisher_id":"33","ts":"00:01.7","ua":"Mozilla \"x\"","tz":-420})");
  }
  EXPECT_EQ(ExpectSame(Recruitment(), records, decoder.get()), records.size());
  EXPECT_EQ(decoder->fallbacks(), 0);
}

TEST(ColumnarJsonDecoderTest, EpochMillisecondsTakeTheFastPath) {
  // YSB's event_time: a timestamp field given as an integer of epoch milliseconds.
  const Schema schema({{"event_type", Type::kString, ""}, {"event_time", Type::kTimestamp, ""}});
  auto made = ColumnarJsonDecoder::Make(schema);
  ASSERT_TRUE(made.ok());
  auto decoder = std::move(made).value();
  std::vector<std::string> records;
  for (int64_t ms : {int64_t{1767225600000}, int64_t{0}, int64_t{-1}, int64_t{9223372036854776}}) {
    records.push_back(R"({"event_type":"view","event_time":)" + std::to_string(ms) + "}");
  }
  EXPECT_EQ(ExpectSame(schema, records, decoder.get()), 3u);  // the last overflows: an error
  EXPECT_EQ(decoder->fallbacks(), 1);
}

TEST(ColumnarJsonDecoderTest, NestedOrSharedPathsAreNotSupported) {
  auto nested = ColumnarJsonDecoder::Make(Schema({{"a", Type::kString, "x.y"}}));
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(*nested, nullptr);
  auto shared = ColumnarJsonDecoder::Make(
      Schema({{"a", Type::kString, "x"}, {"b", Type::kInt64, "x"}}));
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(*shared, nullptr);
}

/// Splits a CSV line naively (the seed file has no quoted commas in the columns used here;
/// any line that splits wrongly is just another messy record).
std::vector<std::string> SplitComma(const std::string& line) {
  std::vector<std::string> out(1);
  for (char c : line) {
    if (c == ',') {
      out.emplace_back();
    } else if (c != '\r') {
      out.back() += c;
    }
  }
  return out;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

/// The seed tracking log as NDJSON: every cell a string, ids as numbers where they look like
/// numbers, blanks as null every third row.
std::vector<std::string> SeedTrackingAsJson(size_t max_rows) {
  std::ifstream in(std::string(SLUICE_SEED_DIR) + "/TrannXuanTien__ETL-streaming-project/tracking.csv");
  std::vector<std::string> out;
  std::string line;
  if (!std::getline(in, line)) return out;
  const std::vector<std::string> header = SplitComma(line);
  size_t n = 0;
  while (out.size() < max_rows && std::getline(in, line)) {
    std::vector<std::string> cells = SplitComma(line);
    std::string json = "{";
    for (size_t c = 0; c < header.size() && c < cells.size(); ++c) {
      if (c > 0) json += ",";
      json += JsonString(header[c]) + ":";
      const std::string& v = cells[c];
      const bool numeric = !v.empty() && v.find_first_not_of("0123456789-.") == std::string::npos;
      if (v.empty() && n % 3 == 0) {
        json += "null";
      } else if (numeric && n % 2 == 0) {
        json += v;
      } else {
        json += JsonString(v);
      }
    }
    json += "}";
    out.push_back(std::move(json));
    ++n;
  }
  return out;
}

TEST(ColumnarJsonDecoderTest, SeedTrackingLogMatches) {
  std::vector<std::string> records = SeedTrackingAsJson(3000);
  if (records.empty()) SLUICE_SKIP_OR_FAIL(std::string("seed tracking.csv not found under ") + SLUICE_SEED_DIR);
  ExpectSame(Recruitment(), records);
}

TEST(ColumnarJsonDecoderTest, MutatedRecordsMatch) {
  // Seeded mutations of valid and messy records: flipped, deleted, inserted and duplicated
  // bytes, truncations. Every outcome (value or error message) must be the row decoder's.
  std::vector<std::string> corpus = MessyRecords();
  for (auto& r : SeedTrackingAsJson(50)) corpus.push_back(r);
  std::mt19937 rng(19);
  const std::string interesting = "{}[]\":,\\0123456789.-+eEtrufalsn \x80\xff\t\n";
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
    ExpectSame(AllTypes(), batch);
    ExpectSame(Recruitment(), batch);
  }
}

}  // namespace
}  // namespace sluice
