#include "config/pipeline_config.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

Variables NoEnv(std::map<std::string, std::string> values = {}) {
  Variables v;
  v.values = std::move(values);
  v.use_environment = false;
  return v;
}

constexpr const char* kMinimal = R"(
[pipeline]
name = "p"

[source]
uri = "${IN:-in.csv}"
fields = { a = "int64", b = { type = "string", path = "x.y" } }

[sink]
uri = "sqlite:out.db"
)";

TEST(VariablesTest, SubstitutesWithDefaultsAndOverrides) {
  EXPECT_EQ(*SubstituteVariables("${A:-1}-${B}", NoEnv({{"B", "two"}})), "1-two");
  EXPECT_EQ(*SubstituteVariables("${A:-1}", NoEnv({{"A", "x"}})), "x");
  // An empty value falls back to the default, as in the shell's ${A:-d}.
  EXPECT_EQ(*SubstituteVariables("${A:-d}", NoEnv({{"A", ""}})), "d");
  EXPECT_EQ(*SubstituteVariables("${A:-}", NoEnv()), "");
  auto missing = SubstituteVariables("x ${NOPE} y", NoEnv());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("NOPE"), std::string::npos);
}

TEST(PipelineConfigTest, ParsesMinimalFile) {
  auto cfg = ParsePipelineConfig(kMinimal, "p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->name, "p");
  EXPECT_EQ(cfg->source.uri, "in.csv");
  ASSERT_EQ(cfg->source.fields.size(), 2u);
  EXPECT_EQ(cfg->source.fields[1].source_path(), "x.y");
  EXPECT_EQ(cfg->sink.uri, "sqlite:out.db");
}

TEST(PipelineConfigTest, RejectsUnknownKeysWithLine) {
  std::string text = std::string(kMinimal) + "\n[aggregate]\ntime = \"t\"\nwindow = \"1h\"\nmetrics = []\nwindw = 3\n";
  auto cfg = ParsePipelineConfig(text, "p.toml", NoEnv());
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("p.toml:16:"), std::string::npos) << cfg.status().message();
  EXPECT_NE(cfg.status().message().find("unknown key 'windw'"), std::string::npos);
}

TEST(PipelineConfigTest, ReportsTomlSyntaxErrorsWithLocation) {
  auto cfg = ParsePipelineConfig("[pipeline]\nname = \n", "bad.toml", NoEnv());
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message().rfind("bad.toml:2:", 0), 0u) << cfg.status().message();
}

TEST(PipelineConfigTest, ParsesColumnsAndSteps) {
  std::string text = std::string(kMinimal) + R"toml(
[[step]]
let = "c"
expr = "a + 1"

[[step]]
ignore_if = "a is null"

[aggregate]
time = "t"
window = "1m"
keys = ["a", "d = date(window_start)"]
metrics = ["n = count() where a > 1"]
)toml";
  auto cfg = ParsePipelineConfig(text, "p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->steps.size(), 2u);
  EXPECT_EQ(cfg->steps[0].kind, StepConfig::Kind::kLet);
  EXPECT_EQ(cfg->steps[0].target, "c");
  EXPECT_EQ(cfg->steps[1].kind, StepConfig::Kind::kIgnoreIf);
  ASSERT_TRUE(cfg->aggregate.has_value());
  EXPECT_EQ(cfg->aggregate->window_micros, 60'000'000);
  ASSERT_EQ(cfg->aggregate->keys.size(), 2u);
  EXPECT_EQ(cfg->aggregate->keys[1].name, "d");
  EXPECT_EQ(cfg->aggregate->keys[1].text, "date(window_start)");
  // The right-hand side starts at column 19 of line 22: keys = ["a", "d = date(...)"].
  EXPECT_EQ(cfg->aggregate->keys[1].where.line, 22);
  EXPECT_EQ(cfg->aggregate->keys[1].where.column, 19);
  EXPECT_EQ(cfg->aggregate->metrics[0].text, "count() where a > 1");
}

TEST(PipelineConfigTest, StepNeedsExactlyOneKind) {
  std::string text = std::string(kMinimal) + "\n[[step]]\nreason = \"x\"\n";
  auto cfg = ParsePipelineConfig(text, "p.toml", NoEnv());
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("exactly one of"), std::string::npos);
}

// Found by tests/fuzz/pipeline_config_fuzz.cc (corpus step_without_expr.toml,
// lookup_without_key.toml): a step without its expression crashed (a null toml node).
TEST(PipelineConfigTest, StepWithoutItsExpressionIsAnErrorNotACrash) {
  const std::string head = "[pipeline]\nname = \"p\"\n[source]\nuri = \"generator:\"\n[[step]]\n";
  for (const auto& [step, missing] : {std::pair{"let = \"x\"\n", "expr"}, std::pair{"lookup = \"d\"\n", "key"}}) {
    auto cfg = ParsePipelineConfig(head + step, "p.toml", NoEnv());
    ASSERT_FALSE(cfg.ok()) << step;
    EXPECT_EQ(cfg.status().message().rfind("p.toml:", 0), 0u) << cfg.status().message();
    EXPECT_NE(cfg.status().message().find(missing), std::string::npos) << cfg.status().message();
  }
}

TEST(OptionsTest, TypedGettersAndUnconsumed) {
  Options o;
  o.section_location = {"f.toml", 3, 1};
  o.Set("rate", {"12.5", {"f.toml", 4, 8}});
  o.Set("count", {"x", {"f.toml", 5, 9}});
  o.Set("typo", {"1", {"f.toml", 6, 8}});
  EXPECT_DOUBLE_EQ(*o.GetDouble("rate", 0), 12.5);
  auto c = o.GetInt("count", 0);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("f.toml:5:9"), std::string::npos);
  EXPECT_EQ(*o.GetInt("absent", 7), 7);
  Status s = o.RejectUnconsumed("source");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("f.toml:6:8: unknown key 'typo'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sluice
