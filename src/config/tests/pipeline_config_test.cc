#include "config/pipeline_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "runtime/plan.h"

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

TEST(PipelineConfigTest, SlideMakesHoppingWindows) {
  auto with_slide = [](const std::string& slide) {
    return std::string(kMinimal) + "\n[aggregate]\ntime = \"t\"\nwindow = \"10m\"\nslide = " + slide +
           "\nmetrics = [\"n = count()\"]\n";
  };
  auto cfg = ParsePipelineConfig(with_slide("\"5m\""), "p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->aggregate->window_micros, 600'000'000);
  EXPECT_EQ(cfg->aggregate->slide_micros, 300'000'000);
  // A slide equal to the window is tumbling, as is no slide at all.
  cfg = ParsePipelineConfig(with_slide("\"10m\""), "p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->aggregate->slide_micros, 0);
  // Errors point at the slide's value: line 15 of the file, column 10 (its first character
  // inside the quotes, as for the other settings).
  for (const auto& [slide, what] : std::vector<std::pair<std::string, std::string>>{
           {"\"3m\"", "slide must divide the window"},
           {"\"20m\"", "slide must divide the window"},
           {"\"0s\"", "slide must be a duration"},
           {"\"-5m\"", "slide must be a duration"},
           {"\"soon\"", "slide must be a duration"},
           {"\"500ms\"", "1200 overlapping windows, at most 1000"}}) {
    cfg = ParsePipelineConfig(with_slide(slide), "p.toml", NoEnv());
    ASSERT_FALSE(cfg.ok()) << slide;
    EXPECT_EQ(cfg.status().message().rfind("p.toml:15:10: ", 0), 0u) << cfg.status().message();
    EXPECT_NE(cfg.status().message().find(what), std::string::npos) << cfg.status().message();
  }
  // 600ms divides 10m 1000 times: the most allowed.
  cfg = ParsePipelineConfig(with_slide("\"600ms\""), "p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->aggregate->slide_micros, 600'000);
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

// Issue 14, item 1: a step without its expression crashed validate and run (exit 139).
TEST(PipelineConfigTest, StepWithoutItsExpressionIsAnErrorWithLocation) {
  struct Case {
    const char* step;
    const char* want;
  } cases[] = {
      {"let = \"x\"\n", "let needs expr"},
      {"ignore_if = \"a > 1\"\nreason = \"r\"\n", nullptr},  // fine: the control case
      {"lookup = \"d\"\nfields = [\"a\"]\n", "lookup needs key"},
  };
  for (const Case& c : cases) {
    std::string text = std::string(kMinimal) + "\n[[step]]\n" + c.step;
    auto cfg = ParsePipelineConfig(text, "p.toml", NoEnv());
    if (!c.want) {
      EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
      continue;
    }
    ASSERT_FALSE(cfg.ok()) << c.step;
    // [[step]] is on line 12 of the text (kMinimal ends on line 10, a blank line follows).
    EXPECT_EQ(cfg.status().message().rfind("p.toml:12:1: ", 0), 0u) << cfg.status().message();
    EXPECT_NE(cfg.status().message().find(c.want), std::string::npos) << cfg.status().message();
  }
  // ignore_if, dead_letter_if and filter share the helper: a non-string value is an error too.
  for (const char* key : {"ignore_if", "dead_letter_if", "filter", "expr"}) {
    std::string step = std::string(key == std::string("expr") ? "let = \"x\"\n" : "") + key + " = 3\n";
    auto cfg = ParsePipelineConfig(std::string(kMinimal) + "\n[[step]]\n" + step, "p.toml", NoEnv());
    ASSERT_FALSE(cfg.ok()) << key;
    EXPECT_NE(cfg.status().message().find("must be a string"), std::string::npos)
        << cfg.status().message();
  }
}

// Issue 13: a misspelt --var must not leave the file's default (the generator) in charge.
TEST(PipelineConfigTest, UnreferencedVariableIsAnErrorWithSuggestion) {
  auto cfg = ParsePipelineConfig(kMinimal, "p.toml", NoEnv({{"INN", "x.csv"}}));
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(cfg.status().message().find("--var INN"), std::string::npos) << cfg.status().message();
  EXPECT_NE(cfg.status().message().find("did you mean IN?"), std::string::npos)
      << cfg.status().message();
  // Nothing close: no suggestion, but the list of what the file references.
  cfg = ParsePipelineConfig(kMinimal, "p.toml", NoEnv({{"SOMETHING_ELSE", "1"}}));
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message().find("did you mean"), std::string::npos);
  EXPECT_NE(cfg.status().message().find("it references IN"), std::string::npos)
      << cfg.status().message();
  // A caller that supplies more variables than the file uses may allow it (the demo does).
  Variables lenient = NoEnv({{"SOMETHING_ELSE", "1"}});
  lenient.reject_unused = false;
  EXPECT_TRUE(ParsePipelineConfig(kMinimal, "p.toml", lenient).ok());
}

TEST(PipelineConfigTest, ClosestNameByEditDistance) {
  EXPECT_EQ(ClosestName("TRACKNG", {"COUNT", "JOBS", "SINK", "TRACKING"}), "TRACKING");
  EXPECT_EQ(ClosestName("tracking", {"JOBS", "TRACKING"}), "TRACKING");
  EXPECT_EQ(ClosestName("SNIK", {"SINK", "JOBS"}), "SINK");  // a transposition: distance 2
  EXPECT_EQ(ClosestName("DATABASE", {"SINK", "JOBS"}), "");
}

TEST(PipelineConfigTest, ReportsWhereEachVariableCameFrom) {
  const char* text = R"(
[pipeline]
name = "p"
[source]
uri = "${IN:-in.csv}"
fields = { a = "int64" }
rate = "${RATE:-5}"
[sink]
uri = "${SINK_FROM_ENV_FOR_TEST}"
)";
  ::setenv("SINK_FROM_ENV_FOR_TEST", "sqlite:env.db", 1);
  Variables vars;
  vars.values = {{"IN", "x.csv"}};
  auto cfg = ParsePipelineConfig(text, "p.toml", vars);
  ::unsetenv("SINK_FROM_ENV_FOR_TEST");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->variables.size(), 3u);
  EXPECT_EQ(DescribeVariable(cfg->variables[0]), "IN = \"x.csv\" (--var)");
  EXPECT_EQ(DescribeVariable(cfg->variables[1]), "RATE = \"5\" (default)");
  EXPECT_EQ(DescribeVariable(cfg->variables[2]), "SINK_FROM_ENV_FOR_TEST = \"sqlite:env.db\" (environment)");
  EXPECT_EQ(cfg->variables[1].where.line, 7);
}

// Issue 13: paths written in the file resolve against its folder; values of variables against
// the working directory.
TEST(PipelineConfigTest, PathsInTheFileResolveAgainstItsFolder) {
  // Path options are those the connectors declare (the registry does it for their tables).
  DeclarePathOption("jobs");
  DeclarePathOption("campaigns");
  const char* text = R"(
[pipeline]
name = "p"
[source]
uri = "${IN:-data/in.csv}"
fields = { a = "int64" }
jobs = "${JOBS:-data/job.csv}"
campaigns = "/abs/c.csv"
profile = "data/not-a-path"
[dimension.d]
uri = "d.csv"
key = "a"
fields = { a = "int64" }
[sink]
uri = "sqlite:${DB:-out/r.db}?x=1"
[dead_letter]
path = "dl.ndjson"
)";
  auto cfg = ParsePipelineConfig(text, "conf/pipes/p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.uri, "conf/pipes/data/in.csv");
  EXPECT_EQ(cfg->source.options.GetString("jobs"), "conf/pipes/data/job.csv");
  EXPECT_EQ(cfg->source.options.GetString("campaigns"), "/abs/c.csv");
  EXPECT_EQ(cfg->source.options.GetString("profile"), "data/not-a-path");
  EXPECT_EQ(cfg->dimensions.at("d").uri, "conf/pipes/d.csv");
  EXPECT_EQ(cfg->sink.uri, "sqlite:conf/pipes/out/r.db?x=1");
  EXPECT_EQ(cfg->dead_letter_path, "conf/pipes/dl.ndjson");

  // The same settings from variables stay relative to the working directory.
  cfg = ParsePipelineConfig(text, "conf/pipes/p.toml",
                            NoEnv({{"IN", "mine.csv"}, {"JOBS", "j.csv"}, {"DB", "here.db"}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.uri, "mine.csv");
  EXPECT_EQ(cfg->source.options.GetString("jobs"), "j.csv");
  EXPECT_EQ(cfg->sink.uri, "sqlite:here.db?x=1");

  // Other schemes are not paths.
  cfg = ParsePipelineConfig(std::string(text).replace(std::string(text).find("${IN:-data/in.csv}"),
                                                      18, "kafka://h:1/t"),
                            "conf/pipes/p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.uri, "kafka://h:1/t");
}

// Issue 18: an ndjson: sink's path is a path like sqlite:'s; stdout: is not one.
TEST(PipelineConfigTest, NdjsonSinkPathsResolveAgainstTheFilesFolder) {
  const std::string text = R"(
[pipeline]
name = "p"
[source]
uri = "in.csv"
fields = { a = "int64" }
[sink]
uri = "SINK_URI"
)";
  auto with = [&](const std::string& uri) {
    std::string t = text;
    t.replace(t.find("SINK_URI"), 8, uri);
    return ParsePipelineConfig(t, "conf/pipes/p.toml", NoEnv());
  };
  auto cfg = with("ndjson:out/rows.ndjson");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->sink.uri, "ndjson:conf/pipes/out/rows.ndjson");
  cfg = with("ndjson:/abs/rows.ndjson");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->sink.uri, "ndjson:/abs/rows.ndjson");
  cfg = with("stdout:");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->sink.uri, "stdout:");
}

// Issue 14, item 7: a dimension that cannot be loaded is reported at the setting naming it.
TEST(PipelineConfigTest, DimensionThatCannotBeLoadedHasALocation) {
  std::string text = std::string(kMinimal) + R"(
[dimension.job]
uri = "/nonexistent/sluice/job.csv"
key = "a"
fields = { a = "int64" }
)";
  auto cfg = ParsePipelineConfig(text, "p.toml", NoEnv());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto plan = BuildPlan(*cfg);
  ASSERT_FALSE(plan.ok());
  // uri is on line 13; the location points inside its quotes (column 8).
  EXPECT_EQ(plan.status().message().rfind("p.toml:13:8: dimension job: ", 0), 0u)
      << plan.status().message();
  EXPECT_NE(plan.status().message().find("/nonexistent/sluice/job.csv"), std::string::npos);
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(PipelineConfigTest, DeadLetterStore) {
  using Store = PipelineConfig::DeadLetterStore;
  auto parse = [](const std::string& section) {
    Variables vars = NoEnv({{"DLQ", "d.ndjson"}});
    vars.reject_unused = false;  // the same variables for every section, referenced or not
    return ParsePipelineConfig(std::string(kMinimal) + section, "p.toml", vars);
  };
  auto none = parse("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->dead_letter_store, Store::kDefault);
  auto sink = parse("[dead_letter]\nto = \"sink\"\n");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  EXPECT_EQ(sink->dead_letter_store, Store::kSink);
  EXPECT_EQ(sink->dead_letter_where, "p.toml:12:7");
  auto file = parse("[dead_letter]\nto = \"file:x/dl.ndjson\"\n");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->dead_letter_store, Store::kFile);
  EXPECT_EQ(file->dead_letter_path, "x/dl.ndjson");
  // The older spelling: a path is a file; an empty one (an unset variable) the default.
  auto path = parse("[dead_letter]\npath = \"${DLQ}\"\n");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->dead_letter_store, Store::kFile);
  EXPECT_EQ(path->dead_letter_path, "d.ndjson");
  auto prefixed = parse("[dead_letter]\npath = \"file:${DLQ}\"\n");
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ(prefixed->dead_letter_path, "d.ndjson");
  auto empty = parse("[dead_letter]\npath = \"${NONE:-}\"\n");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->dead_letter_store, Store::kDefault);
  auto bad = parse("[dead_letter]\nto = \"d.ndjson\"\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.toml:12:"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("file:PATH"), std::string::npos);
  EXPECT_FALSE(parse("[dead_letter]\nto = \"sink\"\npath = \"x\"\n").ok());
  EXPECT_FALSE(parse("[dead_letter]\nto = \"file:\"\n").ok());
}

}  // namespace
}  // namespace sluice
