#include "runtime/explain.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/registry.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

// sluice explain renders the compiled plan and the sink's own statements. The expected facts
// below are read off the pipeline text; the SQLite merge statement is run on a scratch
// database and its result is checked against sums worked out by hand.
class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_explain_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "job.csv") << "id,company_id\n1,10\n2,20\n3,30\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<PipelineExplanation> Explain(const std::string& text) {
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(text, (dir_ / "p.toml").string(), vars);
    if (!cfg.ok()) return cfg.status();
    config_ = std::move(cfg).value();
    auto plan = BuildPlan(config_);
    if (!plan.ok()) return plan.status();
    plan_ = std::move(plan).value();
    auto sink = ConnectorRegistry::Instance().MakeSink(config_.sink);
    if (!sink.ok()) return sink.status();
    sink_ = std::move(sink).value();
    return ExplainPipeline(*plan_, sink_.get(), "table _sluice_dead_letters");
  }

  static std::string Pipeline(const std::string& sink) {
    return R"toml([pipeline]
name = "jobs"
[source]
name = "tracking"
uri = "events.ndjson"
[source.fields]
job_id = "int64"
bid = "int64"
kind = { type = "string", path = "meta.kind" }
ts = "timestamp"
[dimension.job]
uri = "job.csv"
key = "id"
fields = { id = "int64", company_id = "int64" }
[[step]]
ignore_if = "job_id is null"
reason = "blank job_id"
[[step]]
dead_letter_if = "ts is null"
reason = "no time"
[[step]]
let = "price"
expr = "coalesce(bid, 0) * 2"
[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "hold"
hold_for = "45s"
then = "default"
[[step]]
filter = "kind != 'test'"
[aggregate]
time = "ts"
window = "1h"
watermark_delay = "20s"
window_columns = []
keys = ["job_id", "day = date(window_start)"]
metrics = [
  "clicks = count() where kind = 'click'",
  "spend = sum(price)",
  "avg_bid = avg(bid)",
  "company = last(company_id)",
]
)toml" + sink;
  }

  fs::path dir_;
  PipelineConfig config_;
  std::unique_ptr<Plan> plan_;
  std::unique_ptr<Sink> sink_;
};

TEST_F(ExplainTest, TextFollowsThePlanInOrder) {
  auto e = Explain(Pipeline("[sink]\nuri = \"sqlite:out.db\"\ntable = \"events\"\n"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const std::string text = FormatExplanation(*e);
  // Source: uri, format from the extension, fields with their paths, event time, watermark.
  // Relative paths in the file resolve against its folder, as for `run`.
  EXPECT_NE(text.find("source tracking: " + (dir_ / "events.ndjson").string() + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kind file, format ndjson"), std::string::npos) << text;
  EXPECT_NE(text.find("kind string (meta.kind)"), std::string::npos) << text;
  EXPECT_NE(text.find("event time ts; watermark = max event time - 20s"), std::string::npos) << text;
  // Steps in the file's order, each with what it does.
  const size_t ignore = text.find("step 1 ignore_if: ignore if job_id is null");
  const size_t dead = text.find("step 2 dead_letter_if: dead-letter if ts is null");
  const size_t let = text.find("step 3 derive price int64 = coalesce(bid, 0) * 2");
  const size_t lookup = text.find("step 4 lookup in dimension job by id = job_id -> company_id");
  const size_t filter = text.find("step 5 filter: keep if kind != 'test'");
  const size_t aggregate = text.find("aggregate tumbling 3600s windows on ts, update mode");
  const size_t sink = text.find("sink sqlite:");
  for (size_t at : {ignore, dead, let, lookup, filter, aggregate, sink}) ASSERT_NE(at, std::string::npos) << text;
  EXPECT_TRUE(ignore < dead && dead < let && let < lookup && lookup < filter && filter < aggregate &&
              aggregate < sink)
      << text;
  EXPECT_NE(text.find("reason \"blank job_id\""), std::string::npos) << text;
  EXPECT_NE(text.find("3 keys now"), std::string::npos) << text;
  EXPECT_NE(text.find("key not found: hold for 45s, then default"), std::string::npos) << text;
  EXPECT_NE(text.find("group by job_id int64, day string (date(window_start))"), std::string::npos) << text;
  // State per group: the internal columns behind avg and last.
  EXPECT_NE(text.find("internal columns _avg_bid_sum, _avg_bid_count"), std::string::npos) << text;
  EXPECT_NE(text.find("internal columns _company_at"), std::string::npos) << text;
  EXPECT_NE(text.find("table events"), std::string::npos) << text;
  EXPECT_NE(text.find("events is a view of the declared columns"), std::string::npos) << text;
  EXPECT_NE(text.find("merge (sqlite):"), std::string::npos) << text;
  EXPECT_NE(text.find("keeps engine state for on_missing = \"hold\""), std::string::npos) << text;
}

TEST_F(ExplainTest, HoppingWindowsShowTheirSlide) {
  std::string text = Pipeline("[sink]\nuri = \"sqlite:out.db\"\ntable = \"events\"\n");
  const std::string window = "window = \"1h\"\n";
  text.replace(text.find(window), window.size(), window + "slide = \"20m\"\n");
  auto e = Explain(text);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const std::string out = FormatExplanation(*e);
  EXPECT_NE(out.find("aggregate hopping 3600s windows every 1200s on ts, update mode"), std::string::npos) << out;
  EXPECT_NE(out.find("each record is added to the 3 windows that hold it"), std::string::npos) << out;
  const std::string json = ExplanationJson(*e);
  for (const char* want : {"\"window\":\"hopping\"", "\"window_seconds\":3600", "\"slide_seconds\":1200"}) {
    EXPECT_NE(json.find(want), std::string::npos) << want << " in " << json;
  }
  // Tumbling windows say so, with the slide equal to the window.
  auto tumbling = Explain(Pipeline("[sink]\nuri = \"sqlite:out.db\"\ntable = \"events\"\n"));
  ASSERT_TRUE(tumbling.ok()) << tumbling.status().ToString();
  const std::string tjson = ExplanationJson(*tumbling);
  EXPECT_NE(tjson.find("\"window\":\"tumbling\",\"window_seconds\":3600,\"slide_seconds\":3600"),
            std::string::npos)
      << tjson;
}

TEST_F(ExplainTest, JsonCarriesTheSameFacts) {
  auto e = Explain(Pipeline("[sink]\nuri = \"sqlite:out.db\"\ntable = \"events\"\n"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const std::string json = ExplanationJson(*e);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  for (const char* want : {"\"pipeline\":\"jobs\"", "\"language\":\"toml\"", "\"window_seconds\":3600",
                           "\"mode\":\"update\"", "\"watermark_delay_seconds\":20",
                           "\"allowed_lateness_seconds\":null", "\"on_missing\":\"hold\"",
                           "\"hold_seconds\":45", "\"then\":\"default\"", "\"dimension\":\"job\"",
                           "\"internal_columns\":[\"_avg_bid_sum\",\"_avg_bid_count\"]",
                           "\"path\":\"meta.kind\"", "\"role\":\"merge\"", "\"dialect\":\"sqlite\"",
                           "\"key\":[\"job_id\",\"day\"]"}) {
    EXPECT_NE(json.find(want), std::string::npos) << want << " in " << json;
  }
}

int Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (err) {
    ADD_FAILURE() << err << " in " << sql;
    sqlite3_free(err);
  }
  return rc;
}

TEST_F(ExplainTest, SqliteMergeStatementMergesAsDocumented) {
  auto e = Explain(Pipeline("[sink]\nuri = \"sqlite:out.db\"\ntable = \"events\"\n"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  std::string create, view, merge;
  for (const auto& s : e->sink.details.statements) {
    EXPECT_EQ(s.dialect, "sqlite");
    if (s.role == "create table") create = s.text;
    if (s.role == "create view") view = s.text;
    if (s.role == "merge") merge = s.text;
  }
  ASSERT_FALSE(create.empty());
  ASSERT_FALSE(view.empty());
  ASSERT_FALSE(merge.empty());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  ASSERT_EQ(Exec(db, create), SQLITE_OK);
  ASSERT_EQ(Exec(db, view), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, merge.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  // Parameters in tuple order: job_id, day, clicks, spend, avg_bid's sum and count, company
  // and its event time.
  ASSERT_EQ(sqlite3_bind_parameter_count(stmt), 8);
  struct Delta {
    int64_t clicks, spend, sum, count, company, at;
  };
  for (const Delta& d : {Delta{2, 10, 7, 2, 10, 100}, Delta{1, 5, 5, 1, 20, 50}}) {
    sqlite3_bind_int64(stmt, 1, 1);
    sqlite3_bind_text(stmt, 2, "2026-01-01", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, d.clicks);
    sqlite3_bind_int64(stmt, 4, d.spend);
    sqlite3_bind_int64(stmt, 5, d.sum);
    sqlite3_bind_int64(stmt, 6, d.count);
    sqlite3_bind_int64(stmt, 7, d.company);
    sqlite3_bind_int64(stmt, 8, d.at);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  // Counts and sums add up, the average is (7 + 5) / (2 + 1), the later company wins.
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT clicks, spend, avg_bid, company FROM events", -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), 3);
  EXPECT_EQ(sqlite3_column_int64(stmt, 1), 15);
  EXPECT_DOUBLE_EQ(sqlite3_column_double(stmt, 2), 4.0);
  EXPECT_EQ(sqlite3_column_int64(stmt, 3), 10);
  EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE);
  sqlite3_finalize(stmt);
  // The view shows the declared columns only: job_id, day and the four metrics.
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT * FROM events", -1, &stmt, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_column_count(stmt), 6);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  // Nothing was created where the sink points.
  EXPECT_FALSE(fs::exists(dir_ / "out.db"));
}

TEST_F(ExplainTest, MysqlStatementsComeFromTheSinksBuilder) {
  auto e = Explain(Pipeline("[sink]\nuri = \"mysql://root@127.0.0.1:1/nowhere\"\ntable = \"events\"\n"
                            "column_types = \"day:DATE\"\n"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  std::string create, merge;
  for (const auto& s : e->sink.details.statements) {
    if (s.role == "create table") create = s.text;
    if (s.role == "merge") merge = s.text;
  }
  EXPECT_NE(create.find("CREATE TABLE IF NOT EXISTS `_sluice_table_events`"), std::string::npos) << create;
  EXPECT_NE(create.find("`day` DATE NOT NULL"), std::string::npos) << create;
  EXPECT_EQ(merge.rfind("INSERT INTO `_sluice_table_events` (`job_id`, `day`, `clicks`", 0), 0u) << merge;
  EXPECT_NE(merge.find("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE `clicks` = `clicks` + VALUES(`clicks`)"),
            std::string::npos)
      << merge;
}

TEST_F(ExplainTest, ParquetShowsPartitionsAndAppendMode) {
  std::string text = Pipeline("[sink]\nuri = \"parquet:out\"\npartition_by = [\"day\"]\n");
  text.replace(text.find("window = \"1h\""), 13, "window = \"1h\"\nmode = \"append\"\nallowed_lateness = \"5m\"");
  // Append mode has no merges: last() and avg() are final values in the files.
  auto e = Explain(text);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const std::string out = FormatExplanation(*e);
  EXPECT_EQ(out.find("update mode"), std::string::npos) << out;
  EXPECT_NE(out.find("append mode"), std::string::npos) << out;
  EXPECT_NE(out.find("partition by: day=VALUE/"), std::string::npos) << out;
  EXPECT_NE(out.find("columns in the files: job_id int64, clicks int64"), std::string::npos) << out;
  EXPECT_NE(out.find("window's end + 300s"), std::string::npos) << out;
  EXPECT_EQ(out.find("internal columns"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

}  // namespace
}  // namespace sluice
