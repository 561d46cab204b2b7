#include "config/option_spec.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sluice {
namespace {

const OptionTable& TestTable() {
  static const OptionTable kTable{
      .uri = "test:PATH",
      .summary = "A connector for tests.",
      .options = {
          {.name = "format", .default_value = "json", .allowed = {"json", "csv"}, .help = "Payload."},
          {.name = "delimiter", .allowed = {",", ";"}},
          {.name = "page_rows", .type = OptionType::kInt, .default_value = "10000"},
          {.name = "rate", .type = OptionType::kNumber, .default_value = "2.5"},
          {.name = "header", .type = OptionType::kBool, .default_value = "true"},
          {.name = "grace", .type = OptionType::kDuration, .default_value = "5s"},
          {.name = "timeout", .type = OptionType::kDuration},
          {.name = "group", .default_note = "the pipeline name"},
          {.name = "kafka.*", .help = "Passed through."},
          {.name = "broken", .type = OptionType::kInt, .default_value = "ten"},
      }};
  return kTable;
}

Options Make(std::initializer_list<std::pair<std::string, std::string>> values) {
  Options o;
  o.section_location = {"t.toml", 3, 1};
  int line = 4;
  for (const auto& [k, v] : values) o.Set(k, Option{v, {"t.toml", line++, 9}});
  return o;
}

TEST(OptionSpecTest, UnsetOptionsTakeTheDeclaredDefaults) {
  Options o = Make({});
  OptionReader r(o, TestTable(), "source");
  EXPECT_EQ(*r.Choice("format"), "json");
  EXPECT_EQ(*r.Int("page_rows"), 10000);
  EXPECT_DOUBLE_EQ(*r.Number("rate"), 2.5);
  EXPECT_TRUE(*r.Bool("header"));
  EXPECT_EQ(*r.Duration("grace"), 5'000'000);
  EXPECT_EQ(*r.Duration("timeout"), 0);
  EXPECT_EQ(r.String("group", "pipe"), "pipe");  // a computed default
  EXPECT_EQ(*r.Choice("delimiter"), "");         // no default and unset: the caller decides
  EXPECT_TRUE(r.Finish().ok());
}

TEST(OptionSpecTest, SetOptionsAreParsedByType) {
  Options o = Make({{"format", "csv"}, {"page_rows", "7"}, {"rate", "0.5"}, {"header", "false"},
                    {"grace", "250ms"}, {"group", "g"}, {"delimiter", ";"}});
  OptionReader r(o, TestTable(), "source");
  EXPECT_EQ(*r.Choice("format"), "csv");
  EXPECT_EQ(*r.Choice("delimiter"), ";");
  EXPECT_EQ(*r.Int("page_rows"), 7);
  EXPECT_DOUBLE_EQ(*r.Number("rate"), 0.5);
  EXPECT_FALSE(*r.Bool("header"));
  EXPECT_EQ(*r.Duration("grace"), 250'000);
  EXPECT_EQ(r.String("group", "pipe"), "g");
  EXPECT_TRUE(r.Finish().ok());
}

TEST(OptionSpecTest, TypeErrorsNameFileLineAndColumn) {
  Options o = Make({{"page_rows", "many"}, {"header", "yes"}, {"grace", "soon"}, {"rate", "fast"}});
  OptionReader r(o, TestTable(), "source");
  EXPECT_EQ(r.Int("page_rows").status().message(), "t.toml:4:9: page_rows must be an integer, got 'many'");
  EXPECT_EQ(r.Bool("header").status().message(), "t.toml:5:9: header must be true or false");
  EXPECT_EQ(r.Duration("grace").status().message(),
            "t.toml:6:9: grace must be a duration like \"5s\", got 'soon'");
  EXPECT_EQ(r.Number("rate").status().message(), "t.toml:7:9: rate must be a number, got 'fast'");
}

TEST(OptionSpecTest, AValueOutsideTheAllowedOnesIsRefused) {
  Options o = Make({{"format", "xml"}, {"delimiter", "|"}});
  OptionReader r(o, TestTable(), "sink");
  EXPECT_EQ(r.Choice("format").status().message(), "t.toml:4:9: format must be 'json' or 'csv', got 'xml'");
  EXPECT_EQ(r.Choice("delimiter").status().message(), "t.toml:5:9: delimiter must be ',' or ';', got '|'");
}

TEST(OptionSpecTest, UnknownKeyGetsADidYouMeanHint) {
  Options o = Make({{"page_rows", "1"}, {"pagerows", "2"}});
  OptionReader r(o, TestTable(), "source");
  ASSERT_TRUE(r.Int("page_rows").ok());
  Status s = r.Finish();
  EXPECT_EQ(s.message(), "t.toml:5:9: unknown key 'pagerows' in [source] (did you mean page_rows?)");
}

TEST(OptionSpecTest, UnknownKeyFarFromEveryNameGetsNoHint) {
  Options o = Make({{"zzzzzzzz", "1"}});
  Status s = OptionReader(o, TestTable(), "dimension.jobs").Finish();
  EXPECT_EQ(s.message(), "t.toml:4:9: unknown key 'zzzzzzzz' in [dimension.jobs]");
}

TEST(OptionSpecTest, ADeclaredKeyNotReadIsUnknownWithoutAHintAtItself) {
  Options o = Make({{"header", "true"}});
  Status s = OptionReader(o, TestTable(), "source").Finish();
  EXPECT_EQ(s.message(), "t.toml:4:9: unknown key 'header' in [source]");
}

TEST(OptionSpecTest, PrefixSpecsCoverTheirKeys) {
  Options o = Make({{"kafka.acks", "all"}, {"kafka.linger.ms", "5"}});
  OptionReader r(o, TestTable(), "sink");
  std::vector<std::string> keys = r.KeysWithPrefix("kafka.");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], "kafka.acks");
  EXPECT_FALSE(r.Finish().ok());  // listed, not read yet
  for (const auto& k : keys) r.String(k);
  EXPECT_TRUE(r.Finish().ok());
  EXPECT_NE(TestTable().Find("kafka.anything"), nullptr);
  EXPECT_EQ(TestTable().Find("kafka"), nullptr);
  std::vector<std::string> names = TestTable().Names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "kafka.*"), 0);
}

TEST(OptionSpecTest, ADefaultThatDoesNotParseIsAnInternalError) {
  Options o = Make({});
  auto v = OptionReader(o, TestTable(), "source").Int("broken");
  EXPECT_EQ(v.status().code(), StatusCode::kInternal);
}

TEST(OptionSpecTest, TheReferenceListsEachOptionWithTypeDefaultAndAllowedValues) {
  std::string doc = RenderConnectorReference({{"source", "test", &TestTable()}});
  EXPECT_NE(doc.find("### test source"), std::string::npos) << doc;
  EXPECT_NE(doc.find("`uri = \"test:PATH\"`"), std::string::npos) << doc;
  EXPECT_NE(doc.find("| `format` | string | `json` | Payload. One of `json`, `csv`. |"), std::string::npos) << doc;
  EXPECT_NE(doc.find("| `grace` | duration | `5s` |"), std::string::npos) << doc;
  EXPECT_NE(doc.find("| `group` | string | the pipeline name |"), std::string::npos) << doc;
}

}  // namespace
}  // namespace sluice
