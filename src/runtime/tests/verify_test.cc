// `sluice verify` (runtime/verify.h): the pieces (names an expression uses, dimension-derived
// columns, stored values read back, the source limited to committed positions) and a small
// pipeline into SQLite end to end, with values worked out by hand.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/pipeline_config.h"
#include "runtime/plan.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/verify.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

TEST(VerifyTest, ReferencedNamesSkipStringLiteralsAndReadQuotedNames) {
  auto names = ReferencedNames("coalesce(company_id, 0) + `odd name` where x = 'not_a_name'''");
  EXPECT_TRUE(names.count("company_id"));
  EXPECT_TRUE(names.count("coalesce"));
  EXPECT_TRUE(names.count("odd name"));
  EXPECT_TRUE(names.count("x"));
  EXPECT_FALSE(names.count("not_a_name"));
  EXPECT_FALSE(names.count("0"));
}

TEST(VerifyTest, DimensionDerivedColumnsFollowLetsIntoKeysAndMetrics) {
  RegisterBuiltins();
  const fs::path dir = fs::temp_directory_path() / ("sluice_verify_derived_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "job.csv") << "id,company_id,title\n1,10,cook\n";
  Variables vars;
  vars.use_environment = false;
  auto cfg = ParsePipelineConfig(
      "[pipeline]\nname = \"p\"\n[source]\nuri = \"generator:\"\ncount = 1\n"
      "fields = { job_id = \"int64\", bid = \"int64\" }\n"
      "[dimension.job]\nuri = \"job.csv\"\nkey = \"id\"\n"
      "fields = { id = \"int64\", company_id = \"int64\", title = \"string\" }\n"
      "[[step]]\nlookup = \"job\"\nkey = \"job_id\"\nfields = [\"company_id\", \"title\"]\n"
      "[[step]]\nlet = \"company\"\nexpr = \"coalesce(company_id, 0)\"\n"
      "[[step]]\nlet = \"title\"\nexpr = \"'fixed'\"\n"  // overwritten: no longer derived
      "[aggregate]\ntime = \"parse_time('2026-01-01')\"\nwindow = \"1h\"\nwindow_columns = []\n"
      "keys = [\"job_id\", \"company\"]\n"
      "metrics = [\"n = count()\", \"c = last(company_id)\", \"t = last(title)\", "
      "\"s = sum(bid) where company > 3\"]\n"
      "[sink]\nuri = \"sqlite:x.db\"\n",
      (dir / "p.toml").string(), vars);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto plan = BuildPlan(*cfg);
  fs::remove_all(dir);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  Schema out;
  for (const char* name : {"job_id", "company", "n", "c", "t", "s"}) out.Add({name, Type::kInt64, ""});
  EXPECT_EQ(DimensionDerivedColumns(**plan, out), (std::set<size_t>{1, 3, 5}));
}

TEST(VerifyTest, ParseStoredValueReadsWhatSqlSinksStore) {
  EXPECT_EQ(ParseStoredValue("42", Type::kInt64)->int_value(), 42);
  EXPECT_EQ(ParseStoredValue("12.00", Type::kInt64)->int_value(), 12);  // a DECIMAL column
  EXPECT_DOUBLE_EQ(ParseStoredValue("12.35", Type::kDouble)->double_value(), 12.35);
  EXPECT_EQ(ParseStoredValue("2026-01-02 03:04:05", Type::kTimestamp)->time_value().micros,
            ParseStoredValue("2026-01-02T03:04:05Z", Type::kTimestamp)->time_value().micros);
  EXPECT_TRUE(ParseStoredValue("1", Type::kBool)->bool_value());
  EXPECT_FALSE(ParseStoredValue("abc", Type::kInt64).ok());
  EXPECT_FALSE(ParseStoredValue("12.5", Type::kInt64).ok());
}

/// A source of fixed records on partition 0: offsets first, first + 10, ... each 10 long.
class FixedSource : public Source {
 public:
  explicit FixedSource(std::string kind = "file", int64_t first = 0) : kind_(std::move(kind)), first_(first) {}
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (done_) return PollState::kEnd;
    for (int i = 0; i < 5; ++i) {
      RawRecord& r = out->Append("{}");
      r.partition = 0;
      r.offset = first_ + i * 10;
      r.next_offset = first_ + i * 10 + 10;
    }
    done_ = true;
    return PollState::kData;
  }
  std::string_view kind() const override { return kind_; }
  DecoderOptions decoder_options() const override { return {}; }

 private:
  std::string kind_;
  int64_t first_;
  bool done_ = false;
};

TEST(VerifyTest, KafkaPartitionThatLostItsStartCannotBeRecomputed) {
  RawBatch batch;
  auto whole = LimitSource(std::make_unique<FixedSource>("kafka", 0), {{0, 30}});
  EXPECT_TRUE(whole->Poll(&batch, 100, std::chrono::milliseconds(0)).ok());
  batch.Clear();
  auto trimmed = LimitSource(std::make_unique<FixedSource>("kafka", 20), {{0, 30}});  // retention
  auto polled = trimmed->Poll(&batch, 100, std::chrono::milliseconds(0));
  ASSERT_FALSE(polled.ok());
  EXPECT_EQ(polled.status().code(), StatusCode::kAborted);
  EXPECT_NE(polled.status().message().find("first record is at offset 20"), std::string::npos)
      << polled.status().message();
}

TEST(VerifyTest, LimitedSourceHandsOnOnlyRecordsBeforeTheCommittedPosition) {
  auto limited = LimitSource(std::make_unique<FixedSource>(), {{0, 30}});
  RawBatch batch;
  ASSERT_EQ(*limited->Poll(&batch, 100, std::chrono::milliseconds(0)), PollState::kData);
  ASSERT_EQ(batch.size(), 3u);  // next offsets 10, 20, 30
  EXPECT_EQ(batch.record(2).next_offset, 30);
  EXPECT_FALSE(limited->EndIsFinal());  // records past the position exist: windows stay open

  auto none = LimitSource(std::make_unique<FixedSource>(), {});  // nothing committed
  batch.Clear();
  ASSERT_TRUE(none->Poll(&batch, 100, std::chrono::milliseconds(0)).ok());
  EXPECT_EQ(batch.size(), 0u);
}

class VerifySqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_verify_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "in.csv") << "t,user,n\n"
                                      "2026-01-01T00:00:10Z,ann,3\n"
                                      "2026-01-01T00:00:20Z,bob,4\n"
                                      "2026-01-01T00:00:30Z,ann,5\n"
                                      "2026-01-01T00:01:10Z,ann,1\n"
                                      "2026-01-01T00:01:20Z,,9\n";  // null key: dead-lettered
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<PipelineConfig> Config() {
    Variables vars;
    vars.use_environment = false;
    return ParsePipelineConfig(
        "[pipeline]\nname = \"v\"\n[source]\nname = \"in\"\nuri = \"" + (dir_ / "in.csv").string() +
            "\"\n[source.fields]\nt = \"string\"\nuser = \"string\"\nn = \"int64\"\n"
            "[aggregate]\ntime = \"parse_time(t)\"\nwindow = \"1m\"\nwindow_columns = [\"window_start\"]\n"
            "keys = [\"user\"]\nmetrics = [\"events = count()\", \"total = sum(n)\", \"mean = round(avg(n), 1)\"]\n"
            "[sink]\nuri = \"sqlite:" + (dir_ / "out.db").string() + "\"\ntable = \"t\"\n",
        "v.toml", vars);
  }

  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "out.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  fs::path dir_;
};

TEST_F(VerifySqliteTest, CleanRunIsEqualAndEachCorruptionIsFound) {
  {
    auto cfg = Config();
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    ASSERT_TRUE((*runner)->Run().ok());
  }
  // By hand: minute 0: ann 2 events (3+5 = 8, mean 4.0), bob 1 (4); minute 1: ann 1 (1).
  auto report = VerifyPipeline(*Config(), VerifyOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->equal()) << FormatVerifyReport(*report);
  EXPECT_EQ(report->matching, 3);
  EXPECT_EQ(report->records, 5);
  EXPECT_EQ(report->sink_rows, 3);

  // t is a view (avg() keeps internal columns); the rows live in _sluice_table_t.
  Sql("UPDATE _sluice_table_t SET total = 80 WHERE user = 'ann' AND total = 8");
  report = VerifyPipeline(*Config(), VerifyOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->equal());
  ASSERT_EQ(report->differing, 1) << FormatVerifyReport(*report);
  ASSERT_EQ(report->differences.size(), 1u);
  const auto& d = report->differences[0];
  ASSERT_EQ(d.columns.size(), 1u);
  EXPECT_EQ(report->columns[d.columns[0]], "total");
  EXPECT_EQ(d.sink[d.columns[0]].int_value(), 80);
  EXPECT_EQ(d.recomputed[d.columns[0]].int_value(), 8);
  EXPECT_NE(FormatVerifyReport(*report).find("total sink 80, recomputed 8"), std::string::npos)
      << FormatVerifyReport(*report);
  EXPECT_NE(VerifyReportJson(*report).find("\"total\":{\"sink\":80,\"recomputed\":8}"), std::string::npos)
      << VerifyReportJson(*report);
  Sql("UPDATE _sluice_table_t SET total = 8 WHERE user = 'ann' AND total = 80");

  Sql("DELETE FROM _sluice_table_t WHERE user = 'bob'");
  report = VerifyPipeline(*Config(), VerifyOptions{});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->missing_from_sink, 1) << FormatVerifyReport(*report);
  EXPECT_EQ(report->differing + report->only_in_sink, 0);
  ASSERT_EQ(report->missing_rows.size(), 1u);
  EXPECT_EQ(report->missing_rows[0][1].string_value(), "bob");

  Sql("INSERT INTO _sluice_table_t (window_start, user, events, total, mean) VALUES ('2026-01-01 00:00:00', 'bob', 1, 4, 4.0),"
      " ('2026-01-01 00:05:00', 'cy', 1, 1, 1.0)");
  report = VerifyPipeline(*Config(), VerifyOptions{});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->only_in_sink, 1) << FormatVerifyReport(*report);
  EXPECT_EQ(report->matching, 3);
}

TEST_F(VerifySqliteTest, InputRewrittenBeforeThePositionIsRefused) {
  {
    auto runner = Runner::Make(*Config(), RunOptions{});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    ASSERT_TRUE((*runner)->Run().ok());
  }
  std::ofstream(dir_ / "in.csv") << "t,user,n\n2026-01-01T00:00:10Z,ann,4\n2026-01-01T00:00:20Z,bob,4\n"
                                    "2026-01-01T00:00:30Z,ann,5\n2026-01-01T00:01:10Z,ann,1\n"
                                    "2026-01-01T00:01:20Z,,9\n";
  auto report = VerifyPipeline(*Config(), VerifyOptions{});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(report.status().message().find("input changed"), std::string::npos) << report.status().message();
}

// A table source read incrementally: verify reads it only up to the committed cursor (rows
// added since are not in the sink yet), rows upserted by the sink's `key` compare by it, and a
// changed last row read means the input changed.
TEST_F(VerifySqliteTest, TableSourceStopsAtTheCommittedCursorAndChecksItsLastRow) {
  const std::string in = (dir_ / "in.db").string();
  auto exec = [&](const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(in.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  std::string sql = "CREATE TABLE tracking (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, kind TEXT);";
  for (int id = 1; id <= 50; ++id) {
    sql += "INSERT INTO tracking VALUES (" + std::to_string(id) + ", " + std::to_string(id / 10) + ", 'k" +
           std::to_string(id % 3) + "');";
  }
  exec(sql);
  auto config = [&] {
    Variables vars;
    vars.use_environment = false;
    return ParsePipelineConfig(
        "select = [\"id\", \"kind\"]\n[pipeline]\nname = \"tbl\"\n[source]\nname = \"tracking\"\n"
        "uri = \"sqlite:" + in + "?table=tracking&order_by=batch&key=id&page_rows=7\"\n"
        "[source.fields]\nid = \"int64\"\nkind = \"string\"\n"
        "[sink]\nuri = \"sqlite:" + (dir_ / "out.db").string() + "\"\ntable = \"copy\"\nkey = \"id\"\n",
        "tbl.toml", vars);
  };
  {
    auto runner = Runner::Make(*config(), RunOptions{.until_caught_up = true});
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    ASSERT_TRUE((*runner)->Run().ok());
  }
  exec("INSERT INTO tracking VALUES (51, 9, 'new'), (52, 9, 'new')");  // not read by any run yet
  auto report = VerifyPipeline(*config(), VerifyOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->equal()) << FormatVerifyReport(*report);
  EXPECT_EQ(report->matching, 50);
  EXPECT_EQ(report->records, 50);
  ASSERT_EQ(report->key_columns.size(), 1u);

  exec("UPDATE tracking SET kind = 'edited' WHERE id = 50");  // the last row read (batch 5)
  report = VerifyPipeline(*config(), VerifyOptions{});
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("input changed"), std::string::npos) << report.status().message();
}

}  // namespace
}  // namespace sluice
