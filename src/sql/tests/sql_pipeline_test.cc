#include "sql/sql_pipeline.h"

#include <gtest/gtest.h>

#include <string>

#include "runtime/plan.h"
#include "runtime/registry.h"
#include "sql/load_pipeline.h"
#include "sluice_test_paths.h"

namespace sluice::sql {
namespace {

const std::string kRepo = SLUICE_SOURCE_DIR;

// Line 1 of most cases: the source.
const std::string kSrc = "CREATE TABLE src (a bigint, b text, t timestamp) WITH (uri = 'in.csv');\n";
// Line 2 where a dimension is needed.
const std::string kDim =
    "CREATE TABLE dim (k bigint PRIMARY KEY, name text, score bigint DEFAULT 7) WITH (uri = 'dim.csv');\n";

Result<PipelineConfig> Parse(const std::string& text, Variables vars = {}) {
  vars.use_environment = false;
  return ParseSqlPipeline(text, "p.sql", vars);
}

std::string ErrorOf(const std::string& text, Variables vars = {}) {
  auto r = Parse(text, std::move(vars));
  if (r.ok()) return "(no error)";
  return r.status().message();
}

TEST(SqlPipelineTest, RowsSelectWithWhereAndInsert) {
  auto cfg = Parse(kSrc +
                   "CREATE TABLE out (a bigint PRIMARY KEY, label text) WITH (uri = 'sqlite:o.db');\n"
                   "INSERT INTO out SELECT a, b || '!' FROM src WHERE a > -3 AND b IS NOT NULL;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->language, "sql");
  EXPECT_EQ(cfg->name, "p");  // the file stem without SET pipeline.name
  EXPECT_EQ(cfg->source.name, "src");
  EXPECT_EQ(cfg->source.uri, "in.csv");
  ASSERT_EQ(cfg->source.fields.size(), 3u);
  EXPECT_EQ(cfg->source.fields[0].type, Type::kInt64);
  EXPECT_EQ(cfg->source.fields[1].type, Type::kString);
  EXPECT_EQ(cfg->source.fields[2].type, Type::kTimestamp);
  ASSERT_EQ(cfg->steps.size(), 2u);
  EXPECT_EQ(cfg->steps[0].kind, StepConfig::Kind::kFilter);
  // -3 comes back from the text (libpg_query 15-4.0.0 drops negative integers).
  EXPECT_EQ(cfg->steps[0].expr, "(a > (-3))");
  EXPECT_EQ(cfg->steps[0].reason, "WHERE (a > (-3))");
  EXPECT_EQ(cfg->steps[1].expr, "(b is not null)");
  EXPECT_EQ(cfg->steps[1].where.line, 3);
  EXPECT_EQ(cfg->steps[1].where.column, 62);
  ASSERT_EQ(cfg->select.size(), 2u);
  EXPECT_EQ(cfg->select[0].name, "a");
  EXPECT_EQ(cfg->select[1].name, "label");  // named by the INSERT target's columns
  EXPECT_EQ(cfg->select[1].text, "(b || '!')");
  EXPECT_FALSE(cfg->aggregate.has_value());
  EXPECT_EQ(cfg->sink.uri, "sqlite:o.db");
  EXPECT_EQ(cfg->sink.table, "out");
  EXPECT_EQ(cfg->sink.options.GetString("key"), "a");
}

TEST(SqlPipelineTest, IntegerConstantsOfEveryForm) {
  auto cfg = Parse(kSrc +
                   "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS SELECT a FROM src "
                   "WHERE a <> 0 AND a <> - 7 AND a <> -2147483649 AND a <> 2147483648 AND a <> 1.5e3;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->steps.size(), 5u);
  EXPECT_EQ(cfg->steps[0].expr, "(a <> 0)");
  EXPECT_EQ(cfg->steps[1].expr, "(a <> (-7))");
  EXPECT_EQ(cfg->steps[2].expr, "(a <> (-2147483649))");
  EXPECT_EQ(cfg->steps[3].expr, "(a <> 2147483648)");
  EXPECT_EQ(cfg->steps[4].expr, "(a <> 1.5e3)");
  // A view over an ndjson sink: the view's name is no table setting.
  EXPECT_TRUE(cfg->sink.table_from_name);
}

TEST(SqlPipelineTest, ExpressionForms) {
  auto cfg = Parse(kSrc +
                   "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS SELECT\n"
                   "  CASE WHEN a > 1 THEN 'big' WHEN a IS NULL THEN 'none' ELSE 'small' END AS c1,\n"
                   "  CASE a WHEN 1 THEN 'one' END AS c2,\n"
                   "  coalesce(a, 0) AS c3, a IN (1, 2) AS c4, a NOT IN (3) AS c5,\n"
                   "  a BETWEEN 1 AND 5 AS c6, nullif(a, 0) AS c7, b::bigint AS c8, a::text AS c9,\n"
                   "  b::timestamp AS c10, round(a / 3.0, 2) AS c11, a % 2 AS c12, NOT (a = 1 OR a = 2) AS c13,\n"
                   "  (a > 1) IS TRUE AS c14, trim(b) AS c15, upper(b) AS c16, 'it''s ${X:-x}' AS c17,\n"
                   "  \"A b\" AS c18\n"
                   "FROM src;\n");
  // "A b" is a quoted identifier: not a column of src.
  EXPECT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message(), "p.sql:9:3: column \"A b\" does not exist (did you mean a?)");
  cfg = Parse(kSrc +
              "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS SELECT\n"
              "  CASE WHEN a > 1 THEN 'big' WHEN a IS NULL THEN 'none' ELSE 'small' END AS c1,\n"
              "  CASE a WHEN 1 THEN 'one' END AS c2,\n"
              "  coalesce(a, 0) AS c3, a IN (1, 2) AS c4, a NOT IN (3) AS c5,\n"
              "  a BETWEEN 1 AND 5 AS c6, nullif(a, 0) AS c7, b::bigint AS c8, a::text AS c9,\n"
              "  b::timestamp AS c10, round(a / 3.0, 2) AS c11, a % 2 AS c12, NOT (a = 1 OR a = 2) AS c13,\n"
              "  (a > 1) IS TRUE AS c14, trim(b) AS c15, upper(b) AS c16, 'it''s ${X:-x}' AS c17\n"
              "FROM src;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const std::vector<std::string> want = {
      "if((a > 1), 'big', if((a is null), 'none', 'small'))",
      "if((a = 1), 'one', null)",
      "coalesce(a, 0)",
      "(a in (1, 2))",
      "(a not in (3))",
      "((a >= 1) and (a <= 5))",
      "if((a = 0), null, a)",
      "to_int(b)",
      "to_string(a)",
      "parse_time(b)",
      "round((a / 3.0), 2)",
      "(a % 2)",
      "(not ((a = 1) or (a = 2)))",
      "coalesce((a > 1), false)",
      "trim(b)",
      "upper(b)",
      "'it''s x'",
  };
  ASSERT_EQ(cfg->select.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(cfg->select[i].name, "c" + std::to_string(i + 1));
    EXPECT_EQ(cfg->select[i].text, want[i]) << i;
  }
  ASSERT_EQ(cfg->variables.size(), 1u);
  EXPECT_EQ(cfg->variables[0].name, "X");
  EXPECT_EQ(cfg->variables[0].value, "x");
  EXPECT_EQ(cfg->variables[0].where.line, 8);
}

TEST(SqlPipelineTest, SourceColumnsDefaultsGeneratedAndChecks) {
  auto cfg = Parse(
      "SET pipeline.name = 'gen';\n"
      "SET pipeline.checkpoint_interval = '2s';\n"
      "CREATE TABLE src (\n"
      "  a bigint DEFAULT 0 NOT NULL,\n"
      "  b text OPTIONS (path 'x.y'),\n"
      "  c bigint GENERATED ALWAYS AS (a * 2) STORED,\n"
      "  CONSTRAINT \"a too big\" CHECK (a < 100),\n"
      "  CHECK (c > 0)\n"
      ") WITH (uri = '${IN}', format = 'json', seed = 7);\n"
      "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS SELECT * FROM src;\n",
      Variables{{{"IN", "f.ndjson"}}});
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->name, "gen");
  EXPECT_EQ(cfg->source.pipeline, "gen");
  EXPECT_EQ(cfg->checkpoint_interval_micros, 2'000'000);
  EXPECT_EQ(cfg->source.uri, "f.ndjson");
  EXPECT_EQ(cfg->source.options.GetString("format"), "json");
  EXPECT_EQ(cfg->source.options.GetString("seed"), "7");
  ASSERT_EQ(cfg->source.fields.size(), 2u);  // c is derived, not read
  EXPECT_EQ(cfg->source.fields[1].path, "x.y");
  ASSERT_EQ(cfg->steps.size(), 5u);
  EXPECT_EQ(cfg->steps[0].kind, StepConfig::Kind::kLet);
  EXPECT_EQ(cfg->steps[0].target, "a");
  EXPECT_EQ(cfg->steps[0].expr, "coalesce(a, 0)");
  // NOT NULL is written on a, above c: it runs before c is computed.
  EXPECT_EQ(cfg->steps[1].kind, StepConfig::Kind::kDeadLetterIf);
  EXPECT_EQ(cfg->steps[1].expr, "(a is null)");
  EXPECT_EQ(cfg->steps[1].reason, "a is null");
  EXPECT_EQ(cfg->steps[2].kind, StepConfig::Kind::kLet);
  EXPECT_EQ(cfg->steps[2].target, "c");
  EXPECT_EQ(cfg->steps[2].expr, "(a * 2)");
  EXPECT_EQ(cfg->steps[3].expr, "coalesce((not (a < 100)), false)");
  EXPECT_EQ(cfg->steps[3].reason, "a too big");
  EXPECT_EQ(cfg->steps[4].reason, "check failed: (c > 0)");
  ASSERT_EQ(cfg->select.size(), 3u);  // * is every column, the generated one included
  EXPECT_EQ(cfg->select[2].name, "c");
}

TEST(SqlPipelineTest, JoinsBecomeLookups) {
  auto cfg = Parse(kSrc + kDim +
                   "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS\n"
                   "SELECT s.a, d.name, d.score, d.k FROM src AS s LEFT JOIN dim AS d ON d.k = s.a + 1\n"
                   "WHERE d.score > 1 AND s.b <> 'x';\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->dimensions.count("dim"), 1u);
  EXPECT_EQ(cfg->dimensions["dim"].key, "k");
  EXPECT_EQ(cfg->dimensions["dim"].uri, "dim.csv");
  EXPECT_EQ(cfg->dimensions["dim"].fields.size(), 3u);
  ASSERT_EQ(cfg->steps.size(), 3u);
  // The source's WHERE term runs first, then the lookup, then the dimension's term.
  EXPECT_EQ(cfg->steps[0].expr, "(b <> 'x')");
  EXPECT_EQ(cfg->steps[1].kind, StepConfig::Kind::kLookup);
  EXPECT_EQ(cfg->steps[1].target, "dim");
  EXPECT_EQ(cfg->steps[1].expr, "(a + 1)");
  EXPECT_EQ(cfg->steps[1].on_missing, "default");
  EXPECT_EQ(cfg->steps[1].fields, (std::vector<std::string>{"score", "name", "k"}));
  EXPECT_EQ(cfg->steps[1].defaults.at("score"), "7");
  EXPECT_EQ(cfg->steps[2].expr, "(score > 1)");

  // An inner JOIN drops records without a match, and its key reads as the source's value.
  cfg = Parse(kSrc + kDim +
              "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS\n"
              "SELECT a, name, dim.k AS key FROM src JOIN dim ON src.a = dim.k;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->steps[0].on_missing, "drop");
  EXPECT_EQ(cfg->steps[0].fields, (std::vector<std::string>{"name"}));
  EXPECT_EQ(cfg->select[2].text, "(a)");
}

TEST(SqlPipelineTest, TumbleGroupByMetrics) {
  auto cfg = Parse(
      kSrc + kDim +
      "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db', mode = 'append') AS\n"
      "SELECT window_start, s.b, hour(window_start) AS h,\n"
      "       count(*) AS n, count(a) FILTER (WHERE a > 0) AS pos,\n"
      "       coalesce(round(avg(a) FILTER (WHERE b = 'x'), 2), -1) AS avg_a,\n"
      "       coalesce(sum(a), 0) AS total, min(t) AS first_t, max(a) AS top, last(d.name) AS name\n"
      "FROM tumble(src, t, INTERVAL '1 minute 30 seconds') AS s JOIN dim AS d ON d.k = s.a\n"
      "GROUP BY window_start, 2, h;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_TRUE(cfg->aggregate.has_value());
  const AggregateConfig& a = *cfg->aggregate;
  EXPECT_EQ(a.time_expr, "t");
  EXPECT_EQ(a.window_micros, 90'000'000);
  EXPECT_EQ(a.slide_micros, 0);
  EXPECT_EQ(a.mode, "append");
  EXPECT_EQ(a.allowed_lateness_micros, 0);  // append mode's default, as in TOML
  EXPECT_EQ(a.window_columns, (std::vector<std::string>{"window_start"}));
  ASSERT_EQ(a.keys.size(), 2u);
  EXPECT_EQ(a.keys[0].name, "b");
  EXPECT_EQ(a.keys[0].text, "b");
  EXPECT_EQ(a.keys[1].name, "h");
  EXPECT_EQ(a.keys[1].text, "hour(window_start)");
  std::vector<std::pair<std::string, std::string>> want = {
      {"n", "count()"},
      {"pos", "count(a) where (a > 0)"},
      {"avg_a", "round(avg(a), 2) where (b = 'x') default (-1)"},
      {"total", "sum(a)"},
      {"first_t", "min(t)"},
      {"top", "max(a)"},
      {"name", "last(name)"},
  };
  ASSERT_EQ(a.metrics.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(a.metrics[i].name, want[i].first);
    EXPECT_EQ(a.metrics[i].text, want[i].second);
  }
  EXPECT_EQ(cfg->steps.size(), 1u);
  EXPECT_EQ(cfg->steps[0].fields, (std::vector<std::string>{"name"}));
  EXPECT_EQ(cfg->sink.table, "v");
}

TEST(SqlPipelineTest, HopWindowAndSourceTimeOptions) {
  auto cfg = Parse(
      "CREATE TABLE src (a bigint, t timestamp) WITH (uri = 'in.csv', event_time = 't',\n"
      "  watermark_delay = '5s', allowed_lateness = '1 minute', idle_timeout = '1m');\n"
      "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db') AS\n"
      "SELECT window_start, window_end, sum(a) AS s\n"
      "FROM hop(src, t, INTERVAL '5 minutes', INTERVAL '15 minutes') GROUP BY window_start, window_end;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const AggregateConfig& a = *cfg->aggregate;
  EXPECT_EQ(a.window_micros, 15 * 60'000'000LL);
  EXPECT_EQ(a.slide_micros, 5 * 60'000'000LL);
  EXPECT_EQ(a.watermark_delay_micros, 5'000'000);
  EXPECT_EQ(a.allowed_lateness_micros, 60'000'000);
  EXPECT_EQ(a.idle_timeout_micros, 60'000'000);
  EXPECT_EQ(a.window_columns, (std::vector<std::string>{"window_start", "window_end"}));
  EXPECT_EQ(a.mode, "update");
}

TEST(SqlPipelineTest, KeyedByIsASourceOptionCheckedByThePlanner) {
  auto text = [](const std::string& keyed_by) {
    return "CREATE TABLE src (a bigint, b text, t timestamp) WITH (uri = 'in.csv', keyed_by = '" + keyed_by +
           "');\n"
           "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db') AS\n"
           "SELECT window_start, a, b, count(*) AS n\n"
           "FROM tumble(src, t, INTERVAL '1 minute') GROUP BY window_start, a, b;\n";
  };
  auto cfg = Parse(text("b, a"));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->source.keyed_by, (std::vector<std::string>{"b", "a"}));
  EXPECT_FALSE(cfg->source.options.Has("keyed_by"));
  auto plan = BuildPlan(*cfg);
  EXPECT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_NE(ErrorOf(text("a, a")).find("keyed_by names 'a' twice"), std::string::npos) << ErrorOf(text("a, a"));
  auto unknown = Parse(text("nosuch"));
  ASSERT_TRUE(unknown.ok()) << unknown.status().message();
  auto refused = BuildPlan(*unknown);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("p.sql:1:"), std::string::npos) << refused.status().message();
  EXPECT_NE(refused.status().message().find("[source] keyed_by: unknown column 'nosuch'"), std::string::npos)
      << refused.status().message();
}

TEST(SqlPipelineTest, DeadLetterIfInWhere) {
  auto cfg = Parse(kSrc +
                   "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o', dead_letter = 'file:dl.ndjson') AS\n"
                   "SELECT a FROM src WHERE a > 0 AND dead_letter_if(b IS NULL, 'no b: ${WHY:-why}');\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->steps.size(), 2u);
  EXPECT_EQ(cfg->steps[1].kind, StepConfig::Kind::kDeadLetterIf);
  EXPECT_EQ(cfg->steps[1].expr, "(b is null)");
  EXPECT_EQ(cfg->steps[1].reason, "no b: why");
  EXPECT_EQ(cfg->dead_letter_store, PipelineConfig::DeadLetterStore::kFile);
  EXPECT_EQ(cfg->dead_letter_path, "dl.ndjson");
}

TEST(SqlPipelineTest, KeepIfInWhereNamesTheIgnoredReason) {
  // keep_if(cond, 'reason') is a filter step, as TOML's filter = "..." with reason = "...";
  // a plain term keeps its text as the reason.
  auto cfg = Parse(kSrc +
                   "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS\n"
                   "SELECT a FROM src WHERE keep_if(b = 'view', 'not a ${WHAT:-view}') AND a > 0;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->steps.size(), 2u);
  EXPECT_EQ(cfg->steps[0].kind, StepConfig::Kind::kFilter);
  EXPECT_EQ(cfg->steps[0].expr, "(b = 'view')");
  EXPECT_EQ(cfg->steps[0].reason, "not a view");
  // The step's expression is the condition: it starts at b ("SELECT a FROM src WHERE keep_if("
  // is 32 characters).
  EXPECT_EQ(cfg->steps[0].where.line, 3);
  EXPECT_EQ(cfg->steps[0].where.column, 33);
  EXPECT_EQ(cfg->steps[1].kind, StepConfig::Kind::kFilter);
  EXPECT_EQ(cfg->steps[1].reason, "WHERE (a > 0)");
}

// Each error: the message and the line:column, counted by hand in the text.
TEST(SqlPipelineErrorsTest, UnknownColumnWithHint) {
  EXPECT_EQ(ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db') AS SELECT bb FROM src;\n"),
            "p.sql:2:65: column \"bb\" does not exist (did you mean b?)");
}

TEST(SqlPipelineErrorsTest, SyntaxErrorColumnCountsCharacters) {
  // 'é' is two bytes and one column: FROM is at column 67.
  EXPECT_EQ(ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = 'é') AS SELECT 'ééé' AS x, FROM src;\n"),
            "p.sql:2:67: syntax error at or near \"FROM\"");
}

TEST(SqlPipelineErrorsTest, VariableOutsideStringLiteral) {
  EXPECT_EQ(ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = ${OUT}) AS SELECT a FROM src;\n"),
            "p.sql:2:40: ${OUT} may only be written inside a string literal: '${OUT}'");
}

TEST(SqlPipelineErrorsTest, UnsetVariableAndUnusedVar) {
  EXPECT_EQ(ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = '${OUT}') AS SELECT a FROM src;\n"),
            "p.sql:2:34: variable OUT is not set (pass --var OUT=VALUE or set it in the environment)");
  Variables vars;
  vars.values["OUTT"] = "x";
  EXPECT_EQ(ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = '${OUT:-o}') AS SELECT a FROM src;\n", vars),
            "--var OUTT: p.sql does not reference ${OUTT} (did you mean OUT?); it references OUT");
}

TEST(SqlPipelineErrorsTest, NulByte) {
  std::string text = kSrc + "-- x";
  text += '\0';
  text += "\nCREATE MATERIALIZED VIEW v WITH (uri = 'o') AS SELECT a FROM src;\n";
  EXPECT_EQ(ErrorOf(text), "p.sql:2:5: the file contains a NUL byte (a .sql file is text)");
}

TEST(SqlPipelineErrorsTest, DeepNestingIsAnErrorNotACrash) {
  std::string chain = "a";
  for (int i = 0; i < 20000; ++i) chain += " + a";
  std::string msg = ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = 'o') AS SELECT " + chain +
                            " AS x FROM src;\n");
  EXPECT_NE(msg.find("nested too deeply"), std::string::npos) << msg;
  // 120 000 operators overflowed an 8 MiB stack in libpg_query's JSON output before the parser
  // got a thread with a large stack of its own.
  chain = "a";
  for (int i = 0; i < 120000; ++i) chain += "+a";
  msg = ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = 'o') AS SELECT " + chain + " AS x FROM src;\n");
  EXPECT_NE(msg.find("nested too deeply"), std::string::npos) << msg.substr(0, 200);
  // Past 1 MiB a file is refused before parsing.
  msg = ErrorOf(kSrc + "-- " + std::string(1 << 20, 'x') + "\n");
  EXPECT_EQ(msg, "p.sql: a .sql pipeline file is at most 1 MiB; this one has 1048652 bytes");
  std::string parens(20000, '(');
  msg = ErrorOf(kSrc + "CREATE MATERIALIZED VIEW v WITH (uri = 'o') AS SELECT " + parens + "a" +
                std::string(20000, ')') + " AS x FROM src;\n");
  EXPECT_EQ(msg.rfind("p.sql:", 0), 0u) << msg;
}

TEST(SqlPipelineErrorsTest, UnsupportedConstructsPointAtThem) {
  const std::string mv = "CREATE MATERIALIZED VIEW v WITH (uri = 'o') AS ";  // 47 characters
  struct Case {
    std::string line2;
    std::string error;
  };
  const std::vector<Case> cases = {
      {mv + "SELECT a FROM src ORDER BY a;", "2:66: ORDER BY is not supported in a streaming pipeline"},
      {mv + "SELECT a FROM src LIMIT 5;", "2:66: LIMIT is not supported in a streaming pipeline"},
      {mv + "SELECT a FROM src WHERE b LIKE 'x%';", "2:74: LIKE is not supported in a sluice pipeline"},
      {mv + "SELECT DISTINCT a FROM src;", "2:55: DISTINCT is not supported in a streaming pipeline"},
      {mv + "SELECT a FROM (SELECT a FROM src) AS q;", "2:70: a subquery in FROM is not supported"},
      {mv + "SELECT a FROM src WHERE a IN (SELECT 1);", "2:74: a subquery is not supported in a sluice pipeline"},
      {mv + "SELECT count(DISTINCT a) AS n FROM tumble(src, t, INTERVAL '1 minute') GROUP BY window_start;",
       "2:55: count(DISTINCT ...) is not supported"},
      {mv + "SELECT sum(a) OVER () AS n FROM src;", "2:55: window functions (OVER) are not supported"},
      {mv + "SELECT a FROM src WHERE a > 1 OR dead_letter_if(a IS NULL, 'x');",
       "2:81: dead_letter_if(condition, 'reason') is only allowed as a top-level AND term of WHERE"},
      {mv + "SELECT a FROM src WHERE a > 1 OR keep_if(a > 0, 'x');",
       "2:81: keep_if(condition, 'reason') is only allowed as a top-level AND term of WHERE"},
      {mv + "SELECT a FROM src WHERE keep_if(a > 0);", "2:72: keep_if takes (condition, 'reason')"},
      {mv + "SELECT a FROM src WHERE keep_if(a > 0, b);", "2:72: keep_if takes (condition, 'reason')"},
      {mv + "SELECT a FROM src WHERE keep_if(a > 0, 'x', 'y');", "2:72: keep_if takes (condition, 'reason')"},
      {mv + "SELECT a FROM src WHERE dead_letter_if(a > 0, 3);",
       "2:72: dead_letter_if takes (condition, 'reason')"},
      {mv + "SELECT sum(a) AS n FROM src;", "2:55: an aggregate needs GROUP BY over tumble() or hop()"},
      {mv + "SELECT a, count(*) AS n FROM tumble(src, t, INTERVAL '1 minute') GROUP BY window_start;",
       "2:55: column a must appear in the GROUP BY clause or be used in an aggregate function"},
      {mv + "SELECT count(*) AS n FROM tumble(src, t, INTERVAL '1 month') GROUP BY window_start;",
       "2:89: interval unit 'month' is not a fixed length; use days, hours, minutes or seconds"},
      {mv + "SELECT a FROM src WHERE extract(hour from t) = 1;",
       "2:72: extract is not supported; use hour(ts), minute(ts) or date(ts)"},
      {mv + "SELECT a FROM src WHERE lenght(b) = 1;", "2:72: unknown function lenght() (did you mean length?)"},
      {"DROP TABLE src;", "2:1: Drop is not supported; a pipeline is SET, CREATE TABLE, CREATE MATERIALIZED VIEW and INSERT INTO ... SELECT"},
      {"SET pipeline.checkpoint_intervall = '1s';", "2:1: unknown setting pipeline.checkpoint_intervall (did you mean checkpoint_interval?); known: name, checkpoint_interval, workers, max_pending, catch_up_timeout, shutdown_timeout"},
  };
  for (const Case& c : cases) {
    std::string text = kSrc + c.line2 + "\n";
    if (c.line2.rfind("CREATE", 0) != 0) text += mv + "SELECT a FROM src;\n";
    EXPECT_EQ(ErrorOf(text), "p.sql:" + c.error) << c.line2;
  }
}

TEST(SqlPipelineErrorsTest, JoinsAndTables) {
  const std::string mv = "CREATE MATERIALIZED VIEW v WITH (uri = 'o') AS ";
  EXPECT_EQ(ErrorOf(kSrc + kDim + mv + "SELECT a FROM src RIGHT JOIN dim ON dim.k = src.a;\n"),
            "p.sql:3:62: RIGHT JOIN is not supported; a dimension is joined with JOIN or LEFT JOIN");
  EXPECT_EQ(ErrorOf(kSrc + kDim + mv + "SELECT a FROM src, dim;\n"),
            "p.sql:3:67: a comma join is not supported; join a dimension with JOIN d ON d.key = expression");
  EXPECT_EQ(ErrorOf(kSrc + kDim + mv + "SELECT a FROM src JOIN dim ON dim.name = src.b;\n"),
            "p.sql:3:78: ON must be dim.k = <expression> (a dimension is joined on its PRIMARY KEY)");
  EXPECT_EQ(ErrorOf(kSrc + kDim + mv + "SELECT a FROM src;\n"), "p.sql:2:14: table dim is declared but not used");
  EXPECT_EQ(ErrorOf(kSrc + kDim + mv + "SELECT name, b FROM src JOIN dim AS d ON d.k = src.a WHERE c.name = 'x';\n"),
            "p.sql:3:107: missing FROM-clause entry for table \"c\" (did you mean d?)");
  EXPECT_EQ(ErrorOf("CREATE TABLE src (k bigint, a bigint) WITH (uri = 'in.csv');\n" + kDim + mv +
                    "SELECT k FROM src JOIN dim ON dim.k = src.a;\n"),
            "p.sql:3:55: column reference \"k\" is ambiguous (src.k or dim.k)");
  EXPECT_EQ(ErrorOf(kSrc + mv + "SELECT a FROM srcc;\n"),
            "p.sql:2:62: table srcc is not declared (CREATE TABLE srcc ... WITH (uri = '...')) (did you mean src?)");
  EXPECT_EQ(ErrorOf("CREATE TABLE src (a bigint[]) WITH (uri = 'in.csv');\n" + mv + "SELECT a FROM src;\n"),
            "p.sql:1:21: array types are not supported (use text, bigint, double precision, boolean or timestamp)");
  EXPECT_EQ(ErrorOf("CREATE TABLE src (a bigint UNIQUE) WITH (uri = 'in.csv');\n" + mv + "SELECT a FROM src;\n"),
            "p.sql:1:28: constraint UNIQUE is not supported (sluice reads PRIMARY KEY, NOT NULL, CHECK, DEFAULT and GENERATED)");
  EXPECT_EQ(ErrorOf(kSrc), "p.sql:2:1: the pipeline has no query: write CREATE MATERIALIZED VIEW name WITH (uri = '...') AS SELECT ..., or INSERT INTO table SELECT ...");
}

// The SQL twin of examples/recruitment.toml compiles to the same plan: the same steps' effect,
// the same keys and metrics, the same output columns.
TEST(SqlPipelineTest, RecruitmentTwinHasTheTomlPlan) {
  RegisterBuiltins();  // the planner looks the dimension's connector up (this test may run alone)
  Variables vars;
  vars.use_environment = false;
  vars.values["TRACKING"] = "tracking.csv";
  vars.values["SINK"] = "sqlite:out.db";
  auto sql = LoadPipeline(kRepo + "/examples/recruitment.sql", vars);
  ASSERT_TRUE(sql.ok()) << sql.status().message();
  auto toml = LoadPipeline(kRepo + "/examples/recruitment.toml", vars);
  ASSERT_TRUE(toml.ok()) << toml.status().message();
  EXPECT_EQ(sql->language, "sql");
  EXPECT_EQ(toml->language, "toml");
  EXPECT_EQ(sql->name, toml->name);
  EXPECT_EQ(sql->source.name, toml->source.name);
  EXPECT_EQ(sql->dimensions.at("job").uri, toml->dimensions.at("job").uri);
  EXPECT_EQ(sql->source.options.GetString("jobs"), toml->source.options.GetString("jobs"));
  EXPECT_EQ(sql->sink.table, toml->sink.table);
  ASSERT_TRUE(sql->aggregate && toml->aggregate);
  EXPECT_EQ(sql->aggregate->window_micros, toml->aggregate->window_micros);
  EXPECT_EQ(sql->aggregate->window_columns, toml->aggregate->window_columns);
  ASSERT_EQ(sql->aggregate->keys.size(), toml->aggregate->keys.size());
  for (size_t i = 0; i < sql->aggregate->keys.size(); ++i) {
    EXPECT_EQ(sql->aggregate->keys[i].name, toml->aggregate->keys[i].name);
  }
  auto sql_plan = BuildPlan(*sql);
  ASSERT_TRUE(sql_plan.ok()) << sql_plan.status().message();
  auto toml_plan = BuildPlan(*toml);
  ASSERT_TRUE(toml_plan.ok()) << toml_plan.status().message();
  Schema a = (*sql_plan)->OutputSchema();
  Schema b = (*toml_plan)->OutputSchema();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.field(i).name, b.field(i).name);
    EXPECT_EQ(a.field(i).type, b.field(i).type) << a.field(i).name;
  }
  EXPECT_EQ(sql->variables.size(), toml->variables.size());
}

TEST(SqlPipelineTest, TableStepsRunInTheOrderWritten) {
  // Generated columns and constraints in written order; a CHECK that reads a generated column
  // written below it waits for that column, and the checks after it wait behind it.
  auto cfg = Parse(
      "CREATE TABLE src (\n"
      "  raw text NOT NULL,\n"
      "  CONSTRAINT \"blank\" CHECK (trim(raw) <> ''),\n"
      "  n bigint GENERATED ALWAYS AS (to_int(raw)) STORED,\n"
      "  CONSTRAINT \"not a number\" CHECK (n IS NOT NULL),\n"
      "  CONSTRAINT \"too big\" CHECK (twice < 100),\n"
      "  other text CHECK (other <> 'x'),\n"
      "  twice bigint GENERATED ALWAYS AS (n * 2) STORED NOT NULL\n"
      ") WITH (uri = 'in.ndjson');\n"
      "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS SELECT raw, twice FROM src "
      "WHERE raw <> 'skip';\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  std::vector<std::string> steps;
  for (const StepConfig& s : cfg->steps) steps.push_back(s.kind == StepConfig::Kind::kLet ? "let " + s.target : s.reason);
  EXPECT_EQ(steps, (std::vector<std::string>{"raw is null", "blank", "let n", "not a number",
                                             "let twice", "too big",
                                             "check failed: (other <> 'x')", "twice is null",
                                             "WHERE (raw <> 'skip')"}));
}

TEST(SqlPipelineTest, RoundOfAnAverageWithoutDigitsAndAFilterOnAColumnCalledDefault) {
  auto cfg = Parse(
      "CREATE TABLE src (t timestamp, a bigint, \"default\" boolean) WITH (uri = 'in.csv');\n"
      "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db') AS\n"
      "SELECT round(avg(a)) AS r, count(*) FILTER (WHERE \"default\") AS n\n"
      "FROM tumble(src, t, INTERVAL '1 hour') GROUP BY window_start;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->aggregate->metrics.size(), 2u);
  // round(avg(x)) is round(numeric): to a whole number.
  EXPECT_EQ(cfg->aggregate->metrics[0].text, "round(avg(a), 0)");
  // The metric grammar reads " default " outside parentheses as the default of an avg.
  EXPECT_EQ(cfg->aggregate->metrics[1].text, "count() where (default)");
}

/// The planner's error for a SQL pipeline (the connectors registered: BuildPlan looks them up).
std::string PlanErrorOf(const std::string& text) {
  RegisterBuiltins();
  auto cfg = Parse(text);
  if (!cfg.ok()) return "translation: " + cfg.status().message();
  auto plan = BuildPlan(*cfg);
  return plan.ok() ? "(no error)" : plan.status().message();
}

TEST(SqlPipelineTest, PlannerErrorsPointAtTheSqlToken) {
  // Columns counted by hand in the SELECT line (line 3), 1-based, in characters.
  const std::string view = "CREATE MATERIALIZED VIEW v WITH (uri = 'ndjson:o') AS\n";
  const std::string tumble = " FROM tumble(src, t, INTERVAL '1 hour') GROUP BY window_start;\n";
  // "SELECT sum(  " is 13 characters: b at 14 (the generated text is sum(b)).
  EXPECT_EQ(PlanErrorOf(kSrc + view + "SELECT sum(  b ) AS s" + tumble),
            "p.sql:3:14: sum() needs a numeric argument, got string");
  // "SELECT count(*) FILTER (WHERE " is 30 characters.
  EXPECT_EQ(PlanErrorOf(kSrc + view + "SELECT count(*) FILTER (WHERE b) AS n" + tumble),
            "p.sql:3:31: the where condition of metric 'n' must be a boolean expression");
  // "SELECT a FROM src WHERE a > 0 AND  b " is 37 characters: '-' at 38.
  EXPECT_EQ(PlanErrorOf(kSrc + view + "SELECT a FROM src WHERE a > 0 AND  b - 1 > 0;\n"),
            "p.sql:3:38: operator '-' needs numbers, got string and int64; convert the string "
            "with to_int() or to_double()");
  // An IN list item: "SELECT a FROM src WHERE a IN (1, " is 33 characters.
  EXPECT_EQ(PlanErrorOf(kSrc + view + "SELECT a FROM src WHERE a IN (1, 'x');\n"),
            "p.sql:3:34: cannot compare int64 with string in the 'in' list; convert the string "
            "with to_int() or to_double()");
  // CASE WHEN ... WHEN ...: the second branch is the if() written at the second WHEN, at 33.
  EXPECT_EQ(PlanErrorOf(kSrc + view +
                        "SELECT CASE WHEN a > 1 THEN 'x' WHEN a > 2 THEN 1 END AS c FROM src;\n"),
            "p.sql:3:33: the two branches of if() must have one type, got string and int64");
  // Three two-byte characters before '+' in the same expression: '+' at 22, not 25.
  EXPECT_EQ(PlanErrorOf(kSrc + view + "SELECT length('\u00e4\u00f6\u00fc') + b AS s FROM src;\n"),
            "p.sql:3:22: operator '+' needs numbers, got int64 and string; use || or concat() "
            "to join strings");
  // A generated column written over two lines: '+' starts line 3, at column 5.
  EXPECT_EQ(PlanErrorOf("CREATE TABLE src (a bigint, b text,\n"
                        "  g bigint GENERATED ALWAYS AS (a\n"
                        "    + upper(b)) STORED) WITH (uri = 'in.csv');\n" +
                        view + "SELECT g FROM src;\n"),
            "p.sql:3:5: operator '+' needs numbers, got int64 and string; use || or concat() to "
            "join strings");
}

TEST(SqlPipelineTest, PlannerErrorsPointIntoTheSqlFile) {
  // sum() of a string is found by the planner, at the line of the SELECT item.
  auto cfg = Parse(kSrc +
                   "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db') AS\n"
                   "SELECT sum(b) AS s FROM tumble(src, t, INTERVAL '1 hour') GROUP BY window_start;\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto plan = BuildPlan(*cfg);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message().rfind("p.sql:3:", 0), 0u) << plan.status().message();
}

}  // namespace
}  // namespace sluice::sql
