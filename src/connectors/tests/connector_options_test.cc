#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "core/time.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

const ConnectorRegistry& Registry() {
  RegisterBuiltins();
  return ConnectorRegistry::Instance();
}

Options Make(std::initializer_list<std::pair<std::string, std::string>> values) {
  Options o;
  o.section_location = {"p.toml", 5, 1};
  int line = 7;
  for (const auto& [k, v] : values) o.Set(k, Option{v, {"p.toml", line++, 1}});
  return o;
}

// Every table is readable: unique names, help or a note for each option, and a default that
// parses as its type and is one of its allowed values. A wrong default would otherwise only
// show when a pipeline leaves the option unset.
TEST(ConnectorOptionsTest, EveryDeclaredDefaultParsesAsItsType) {
  std::vector<ConnectorDoc> docs = Registry().Reference();
  ASSERT_GE(docs.size(), 15u);
  for (const ConnectorDoc& doc : docs) {
    const std::string what = doc.kind + " " + doc.scheme;
    ASSERT_NE(doc.table, nullptr) << what;
    EXPECT_FALSE(doc.table->uri.empty()) << what;
    EXPECT_FALSE(doc.table->summary.empty()) << what;
    std::set<std::string> names;
    for (const OptionSpec& spec : doc.table->options) {
      EXPECT_TRUE(names.insert(spec.name).second) << what << ": " << spec.name << " declared twice";
      const std::string& d = spec.default_value;
      if (d.empty()) continue;
      char* end = nullptr;
      switch (spec.type) {
        case OptionType::kInt:
          std::strtoll(d.c_str(), &end, 10);
          EXPECT_EQ(*end, '\0') << what << ": " << spec.name << " = " << d;
          break;
        case OptionType::kNumber:
          std::strtod(d.c_str(), &end);
          EXPECT_EQ(*end, '\0') << what << ": " << spec.name << " = " << d;
          break;
        case OptionType::kBool:
          EXPECT_TRUE(d == "true" || d == "false") << what << ": " << spec.name;
          break;
        case OptionType::kDuration:
          EXPECT_TRUE(ParseDurationMicros(d).has_value()) << what << ": " << spec.name << " = " << d;
          break;
        default:
          break;
      }
      if (!spec.allowed.empty()) {
        EXPECT_NE(std::find(spec.allowed.begin(), spec.allowed.end(), d), spec.allowed.end())
            << what << ": default " << d << " of " << spec.name << " is not allowed";
      }
    }
  }
}

TEST(ConnectorOptionsTest, TheReferenceNamesEveryConnectorKind) {
  const std::string doc = RenderConnectorReference(Registry().Reference());
  for (const char* heading : {"### file source", "### generator source", "### http source", "### kafka source",
                              "### mysql source", "### sqlite source", "### cassandra source",
                              "### cassandra sink", "### kafka sink", "### mysql sink", "### ndjson sink",
                              "### parquet sink", "### sqlite sink", "### stdout sink",
                              "### file dimension", "### kafka dimension", "### mysql dimension"}) {
    EXPECT_NE(doc.find(heading), std::string::npos) << heading;
  }
  // The registry adds `refresh` to every dimension, with the kind's own default.
  EXPECT_NE(doc.find("| `refresh` | duration | `1s` |"), std::string::npos);  // kafka
  EXPECT_NE(doc.find("| `refresh` | duration | `5s` |"), std::string::npos);  // file, mysql
}

// The path options the tables declare (type path) are the ones a pipeline file resolves against
// its folder: the pipeline-file reader learns them from the registry, not from a list of its own.
TEST(ConnectorOptionsTest, DeclaredPathOptionsResolveAgainstThePipelineFilesFolder) {
  Registry();
  const char* text = R"(
[pipeline]
name = "p"
[source]
uri = "https://example.invalid/api"
fields = { a = "int64" }
ca_file = "certs/ca.pem"
jobs = "data/job.csv"
[sink]
uri = "mysql://u@h:3306/db"
password_file = "secret/pw"
table = "events"
)";
  Variables vars;
  vars.use_environment = false;
  auto cfg = ParsePipelineConfig(text, "conf/p.toml", vars);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.options.GetString("ca_file"), "conf/certs/ca.pem");
  EXPECT_EQ(cfg->source.options.GetString("jobs"), "conf/data/job.csv");
  EXPECT_EQ(cfg->sink.options.GetString("password_file"), "conf/secret/pw");
}

TEST(ConnectorOptionsTest, AMisspeltSourceOptionNamesTheClosestDeclaredOne) {
  SourceConfig config;
  config.name = "t";
  config.uri = "events.csv";
  config.options = Make({{"delimter", ";"}});
  auto sources = Registry().MakeSources(config, 1);
  ASSERT_FALSE(sources.ok());
  EXPECT_EQ(sources.status().message(), "p.toml:7:1: unknown key 'delimter' in [source] (did you mean delimiter?)");
}

TEST(ConnectorOptionsTest, AMisspeltSinkOptionNamesTheClosestDeclaredOne) {
  SinkConfig config;
  config.uri = "parquet:out";
  config.options = Make({{"roll_row", "5"}});
  auto sink = Registry().MakeSink(config);
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().message(), "p.toml:7:1: unknown key 'roll_row' in [sink] (did you mean roll_rows?)");
}

TEST(ConnectorOptionsTest, AValueOutsideTheAllowedOnesNamesThemAndWhereItIsWritten) {
  SourceConfig config;
  config.name = "t";
  config.uri = "events.csv";
  config.options = Make({{"format", "xml"}});
  auto sources = Registry().MakeSources(config, 1);
  ASSERT_FALSE(sources.ok());
  EXPECT_EQ(sources.status().message(),
            "p.toml:7:1: format must be 'auto', 'csv', 'ndjson' or 'json', got 'xml'");
}

// The generator's keys may stay in a [source] a variable switches to a file; `format` is not one
// of them (the generator only ignores it), so a table source that does not read it still refuses it.
TEST(ConnectorOptionsTest, GeneratorKeysButNotFormatAreSwitchable) {
  SourceConfig config;
  config.name = "t";
  config.uri = "sqlite:none.db?table=t";
  config.options = Make({{"rate", "5"}, {"profile", "recruitment"}});
  // Passes the option checks; fails later, opening nothing yet (the factory does not touch the file).
  auto with_generator_keys = Registry().MakeSources(config, 1);
  EXPECT_TRUE(with_generator_keys.ok()) << with_generator_keys.status().message();
  config.options = Make({{"format", "csv"}});
  auto with_format = Registry().MakeSources(config, 1);
  ASSERT_FALSE(with_format.ok());
  EXPECT_NE(with_format.status().message().find("unknown key 'format' in [source]"), std::string::npos)
      << with_format.status().message();
}

TEST(ConnectorOptionsTest, ValidateListsTheSettingsInEffectWithDefaultsMarked) {
  PipelineConfig config;
  config.source.uri = "sqlite:in.db?table=tracking&order_by=id";
  config.source.options = Make({{"page_rows", "50"}});
  config.sink.uri = "kafka://127.0.0.1:9092/out";
  config.sink.options = Make({{"key", "id"}, {"kafka.sasl.password", "secret"}, {"positions_topic", ""}});
  const std::string text = Registry().DescribeOptions(config);
  EXPECT_NE(text.find("  source options  table = tracking, order_by = id, key: order_by (default), "
                      "page_rows = 50\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  sink options  key = id, "), std::string::npos) << text;
  EXPECT_NE(text.find("timeout = 30s (default)"), std::string::npos) << text;
  EXPECT_NE(text.find("positions_topic = \"\","), std::string::npos) << text;  // set, to empty
  EXPECT_NE(text.find("kafka.sasl.password (set)"), std::string::npos) << text;
  EXPECT_EQ(text.find("secret"), std::string::npos) << text;
}

}  // namespace
}  // namespace sluice
