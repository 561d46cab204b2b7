// SQL building, escaping, URI and option parsing of the MySQL sink: no server needed.

#include "connectors/mysql/mysql_sql.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "connectors/mysql/mysql_connection.h"
#include "connectors/mysql/mysql_sink.h"
#include "operators/tests/aggregate_test_util.h"
#include "core/time.h"
#include "runtime/source.h"

namespace sluice {
namespace {

using aggregate_test::AllKindsSpec;
using aggregate_test::MakeDelta;
using aggregate_test::Rec;
using aggregate_test::RecruitmentSpec;

std::string Lit(const Value& v) {
  std::string out;
  Status s = mysql::AppendLiteral(v, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

int64_t At(const char* text) { return *ParseTimestamp(text); }

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

TEST(MysqlSqlTest, QuotesIdentifiers) {
  EXPECT_EQ(mysql::QuoteIdentifier("events"), "`events`");
  EXPECT_EQ(mysql::QuoteIdentifier("a`b"), "`a``b`");
  EXPECT_EQ(mysql::QuoteIdentifier("partition"), "`partition`");
}

TEST(MysqlSqlTest, EscapesEveryDangerousByte) {
  EXPECT_EQ(mysql::StringLiteral("plain"), "'plain'");
  EXPECT_EQ(mysql::StringLiteral("it's"), "'it\\'s'");
  EXPECT_EQ(mysql::StringLiteral("a\"b"), "'a\\\"b'");
  EXPECT_EQ(mysql::StringLiteral("back\\slash"), "'back\\\\slash'");
  EXPECT_EQ(mysql::StringLiteral(std::string("nul\0x", 5)), "'nul\\0x'");
  EXPECT_EQ(mysql::StringLiteral("line\nfeed\rreturn"), "'line\\nfeed\\rreturn'");
  EXPECT_EQ(mysql::StringLiteral("ctrl\x1az"), "'ctrl\\Zz'");
  // The classic injection stays inside the literal.
  EXPECT_EQ(mysql::StringLiteral("x'); DROP TABLE t; -- "), "'x\\'); DROP TABLE t; -- '");
  // UTF-8 passes through untouched (no UTF-8 byte of a multi-byte character is '\\' or '\'').
  EXPECT_EQ(mysql::StringLiteral("Hà Nội ✓"), "'Hà Nội ✓'");
}

TEST(MysqlSqlTest, RendersLiterals) {
  EXPECT_EQ(Lit(Value::Null()), "NULL");
  EXPECT_EQ(Lit(Value::Bool(true)), "1");
  EXPECT_EQ(Lit(Value::Bool(false)), "0");
  EXPECT_EQ(Lit(Value::Int(42)), "42");
  EXPECT_EQ(Lit(Value::Int(std::numeric_limits<int64_t>::min())), "-9223372036854775808");
  EXPECT_EQ(Lit(Value::Double(0.1)), "0.1e0");
  EXPECT_EQ(Lit(Value::Double(-2.5)), "-2.5e0");
  EXPECT_EQ(Lit(Value::Double(3)), "3e0");
  EXPECT_EQ(Lit(Value::Double(1e20)), "1e+20");
  EXPECT_EQ(Lit(Value::Double(0.30000000000000004)), "0.30000000000000004e0");
  EXPECT_EQ(Lit(Value::String("o'k")), "'o\\'k'");
  // Timestamps are written to the second, as the SQLite sink does.
  EXPECT_EQ(Lit(Value::TimeMicros(At("2024-05-01T10:20:30.999999Z"))), "'2024-05-01 10:20:30'");
  std::string out;
  Status s = mysql::AppendLiteral(Value::Double(std::nan("")), &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = mysql::AppendLiteral(Value::Double(std::numeric_limits<double>::infinity()), &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(MysqlSqlTest, ParsesUris) {
  auto u = mysql::ParseUri("mysql://root@127.0.0.1:3306/sluice", false);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->user, "root");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 3306);
  EXPECT_EQ(u->database, "sluice");
  EXPECT_EQ(u->Display(), "root@127.0.0.1:3306/sluice");

  u = mysql::ParseUri("mysql://etl@db.internal/analytics", false);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "db.internal");
  EXPECT_EQ(u->port, 3306);

  u = mysql::ParseUri("mysql://etl@[::1]:3307/analytics", false);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 3307);
  EXPECT_EQ(u->Display(), "etl@[::1]:3307/analytics");

  u = mysql::ParseUri("mysql://root@localhost:3306/sluice/job", true);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->database, "sluice");
  EXPECT_EQ(u->table, "job");
}

TEST(MysqlSqlTest, RejectsBadUris) {
  for (const char* bad :
       {"mysql://127.0.0.1:3306/sluice", "mysql://@h/db", "mysql://u@:3306/db", "mysql://u@h:0/db",
        "mysql://u@h:99999/db", "mysql://u@h:x/db", "mysql://u@h:3306", "mysql://u@h:3306/",
        "mysql://u@h/db/table", "mysql://u@h/db?ssl=1", "sqlite:x.db"}) {
    auto u = mysql::ParseUri(bad, false);
    EXPECT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(mysql::ParseUri("mysql://u@h/db", true).ok());
  EXPECT_FALSE(mysql::ParseUri("mysql://u@h/db/", true).ok());
}

TEST(MysqlSqlTest, RejectsAPasswordInTheUriWithoutRepeatingIt) {
  auto u = mysql::ParseUri("mysql://root:s3cr3t-pw@127.0.0.1:3306/sluice", false);
  ASSERT_FALSE(u.ok());
  const std::string& m = u.status().message();
  EXPECT_EQ(m.find("s3cr3t-pw"), std::string::npos) << m;
  EXPECT_NE(m.find("SLUICE_MYSQL_PASSWORD"), std::string::npos) << m;
  EXPECT_NE(m.find("SLUICE_MYSQL_PASSWORD_FILE"), std::string::npos) << m;
  EXPECT_NE(m.find("password_file"), std::string::npos) << m;
}

class MysqlPasswordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("SLUICE_MYSQL_PASSWORD");
    unsetenv("SLUICE_MYSQL_PASSWORD_FILE");
    dir_ =
        std::filesystem::temp_directory_path() / ("sluice_mysql_pw_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    unsetenv("SLUICE_MYSQL_PASSWORD");
    unsetenv("SLUICE_MYSQL_PASSWORD_FILE");
    std::filesystem::remove_all(dir_);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(MysqlPasswordTest, ComesFromOptionFileThenEnvFileThenEnv) {
  auto p = mysql::ResolvePassword("");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "");
  setenv("SLUICE_MYSQL_PASSWORD", "from-env", 1);
  EXPECT_EQ(*mysql::ResolvePassword(""), "from-env");
  setenv("SLUICE_MYSQL_PASSWORD_FILE", Write("env", "from-env-file\n").c_str(), 1);
  EXPECT_EQ(*mysql::ResolvePassword(""), "from-env-file");
  EXPECT_EQ(*mysql::ResolvePassword(Write("opt", "from option\r\n")), "from option");
  // Only one trailing newline is dropped; everything else is the password.
  EXPECT_EQ(*mysql::ResolvePassword(Write("raw", " pw \n\n")), " pw \n");
  auto missing = mysql::ResolvePassword((dir_ / "nope").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
}

TEST(MysqlSqlTest, ParsesColumnTypes) {
  auto t = mysql::ParseColumnTypes(
      "dates:DATE, hours:TINYINT,bid_set:DECIMAL(10,2),latest_update_time:DATETIME");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->size(), 4u);
  EXPECT_EQ(t->at("dates"), "DATE");
  EXPECT_EQ(t->at("hours"), "TINYINT");
  EXPECT_EQ(t->at("bid_set"), "DECIMAL(10,2)");
  EXPECT_EQ(t->at("latest_update_time"), "DATETIME");
  EXPECT_TRUE(mysql::ParseColumnTypes("")->empty());
  EXPECT_EQ(mysql::ParseColumnTypes("k:VARCHAR(64) CHARACTER SET ascii")->at("k"),
            "VARCHAR(64) CHARACTER SET ascii");
  for (const char* bad : {"dates", "dates:", ":DATE", "a:DATE,a:INT", "a:DECIMAL(10,2",
                          "a:INT); DROP TABLE t; --", "a:`x`", "a:TEXT'"}) {
    EXPECT_FALSE(mysql::ParseColumnTypes(bad).ok()) << bad;
  }
}

TEST(MysqlSqlTest, ClassifiesErrors) {
  using K = mysql::ErrorKind;
  for (unsigned n : {2002u, 2003u, 2006u, 2013u, 1053u, 1927u}) {
    EXPECT_EQ(mysql::ClassifyError(n), K::kConnection) << n;
  }
  EXPECT_EQ(mysql::ClassifyError(1213), K::kTransient);
  EXPECT_EQ(mysql::ClassifyError(1205), K::kTransient);
  EXPECT_EQ(mysql::ClassifyError(1045), K::kConfig);
  EXPECT_EQ(mysql::ClassifyError(1049), K::kConfig);
  EXPECT_EQ(mysql::ClassifyError(1406), K::kData);
  EXPECT_EQ(mysql::ClassifyError(1064), K::kBug);
  EXPECT_EQ(mysql::ClassifyError(1114), K::kOther);
  // A full disk, by number or by the OS error in the server's text, is retried like a deadlock
  // (at start too, where only kUnavailable is retried): these are MariaDB's own messages.
  EXPECT_EQ(mysql::ClassifyError(1114, "The table 'events' is full"), K::kTransient);
  EXPECT_EQ(mysql::ClassifyError(1021, "Disk full (./soak_sink/events.ibd); waiting for someone to free some space..."),
            K::kTransient);
  EXPECT_EQ(mysql::ClassifyError(1005, "Can't create table `soak_sink`.`events` (errno: 28 \"No space left on device\")"),
            K::kTransient);
  EXPECT_EQ(mysql::ClassifyError(1030, "Got error 28 \"No space left on device\" from storage engine InnoDB"),
            K::kTransient);
  EXPECT_EQ(mysql::ClassifyError(3, "Error writing file './soak_sink/x' (Errcode: 28 \"No space left on device\")"),
            K::kTransient);
  EXPECT_EQ(mysql::StatusCodeFor(mysql::ClassifyError(1005, "(errno: 28 \"No space left on device\")")),
            StatusCode::kUnavailable);
  // Others keep their kind whatever the text.
  EXPECT_EQ(mysql::ClassifyError(1045, "Access denied for user 'root'@'localhost'"), K::kConfig);
  EXPECT_EQ(mysql::ClassifyError(1005, "Can't create table `d`.`t` (errno: 150 \"Foreign key constraint is incorrectly formed\")"),
            K::kOther);
  EXPECT_FALSE(mysql::IsDiskFull(1030, "Got error 280 from storage engine"));
  EXPECT_EQ(mysql::StatusCodeFor(K::kConnection), StatusCode::kUnavailable);
  EXPECT_EQ(mysql::StatusCodeFor(K::kTransient), StatusCode::kUnavailable);
  EXPECT_EQ(mysql::StatusCodeFor(K::kConfig), StatusCode::kInvalidArgument);
  EXPECT_EQ(mysql::StatusCodeFor(K::kData), StatusCode::kInvalidArgument);
  EXPECT_EQ(mysql::StatusCodeFor(K::kBug), StatusCode::kInternal);
  EXPECT_EQ(mysql::StatusCodeFor(K::kOther), StatusCode::kIOError);
  Status s = mysql::ErrorStatus(1049, "Unknown database 'nope'", "root@h:3306/nope", "");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("CREATE DATABASE"), std::string::npos) << s.message();
  // Statements are cut short in messages: values are not logged in full.
  s = mysql::ErrorStatus(2013, "Lost connection", "d", "INSERT " + std::string(500, 'x'));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_LT(s.message().size(), 200u);
}

TEST(MysqlSqlTest, ChoosesABinaryNoPadCollation) {
  EXPECT_EQ(mysql::ChooseCollation({"utf8mb4_bin", "utf8mb4_nopad_bin"}), "utf8mb4_nopad_bin");
  EXPECT_EQ(mysql::ChooseCollation({"utf8mb4_0900_bin"}), "utf8mb4_0900_bin");
  EXPECT_EQ(mysql::ChooseCollation({}), "utf8mb4_bin");
}

TEST(MysqlSqlTest, PositionsStatements) {
  EXPECT_EQ(mysql::CreatePositionsTableSql("utf8mb4_nopad_bin"),
            "CREATE TABLE IF NOT EXISTS `_sluice_positions` (`pipeline` VARCHAR(255) NOT NULL, "
            "`source` VARCHAR(255) NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, "
            "`updated_at` DATETIME NOT NULL, PRIMARY KEY (`pipeline`, `source`, `partition`)) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin");
  EXPECT_EQ(mysql::UpsertPositionsSql("p'1", {{"tracking", 0, 10}, {"__dead_letters", 0, 7}}),
            "INSERT INTO `_sluice_positions` (`pipeline`, `source`, `partition`, `offset`, "
            "`updated_at`) VALUES ('p\\'1', 'tracking', 0, 10, UTC_TIMESTAMP()), ('p\\'1', "
            "'__dead_letters', 0, 7, UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE `offset` = "
            "VALUES(`offset`), `updated_at` = VALUES(`updated_at`)");
  EXPECT_EQ(mysql::SelectPositionsSql("recruitment"),
            "SELECT `source`, `partition`, `offset` FROM `_sluice_positions` WHERE `pipeline` = "
            "'recruitment'");
}

TEST(MysqlSqlTest, TaskStatements) {
  // The fence check locks exactly the checkpoint's tasks, grouped by source, in key order.
  EXPECT_EQ(mysql::LockTasksSql("p", {{"in", 7}, {"b", 1}, {"in", 2}}),
            "SELECT `source`, `partition`, `fence` FROM `_sluice_tasks` WHERE `pipeline` = 'p' AND "
            "((`source` = 'b' AND `partition` IN (1)) OR (`source` = 'in' AND `partition` IN (2, 7))) "
            "ORDER BY `source`, `partition` FOR UPDATE");
  // A claim bumps the fence of an existing row in the same statement that creates a new one.
  EXPECT_EQ(mysql::ClaimTaskSql("p", {"in", 3}, "c@h pid 1"),
            "INSERT INTO `_sluice_tasks` (`pipeline`, `source`, `partition`, `fence`, `owner`, `updated_at`) "
            "VALUES ('p', 'in', 3, 1, 'c@h pid 1', UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE `fence` = "
            "`fence` + 1, `owner` = VALUES(`owner`), `updated_at` = VALUES(`updated_at`)");
  EXPECT_EQ(mysql::SelectTaskPositionsSql("p", {"in", 3}),
            "SELECT `partition`, `offset` FROM `_sluice_positions` WHERE `pipeline` = 'p' AND `source` = "
            "'in' AND `partition` IN (3, " + std::to_string(kGenerationPartitionBase + 3) +
                ") ORDER BY `partition` FOR UPDATE");
  // Progress always, the state only when given, the owner cleared only on release.
  const std::string state("\x01\xff", 2);
  TaskCommit t{TaskId{"in", 3}, 4, TaskProgress{100, 90, kNoWatermark, true}, &state, true};
  EXPECT_EQ(mysql::UpdateTaskSql("p", t),
            "UPDATE `_sluice_tasks` SET `max_event_time` = 100, `watermark` = 90, `enforced` = NULL, "
            "`idle` = 1, `state` = X'01FF', `owner` = '', `updated_at` = UTC_TIMESTAMP() WHERE `pipeline` = "
            "'p' AND `source` = 'in' AND `partition` = 3");
  t.state = nullptr;
  t.release = false;
  EXPECT_EQ(mysql::UpdateTaskSql("p", t),
            "UPDATE `_sluice_tasks` SET `max_event_time` = 100, `watermark` = 90, `enforced` = NULL, "
            "`idle` = 1, `updated_at` = UTC_TIMESTAMP() WHERE `pipeline` = 'p' AND `source` = 'in' AND "
            "`partition` = 3");
}

SinkContext Context(const AggregateSpec* a) {
  SinkContext ctx;
  ctx.pipeline = "test";
  ctx.aggregate = a;
  ctx.output = a->OutputSchema();
  ctx.key_columns = a->KeyColumns();
  return ctx;
}

TEST(MysqlSqlTest, RecruitmentTableLayoutMatchesTheSqliteSink) {
  auto spec = RecruitmentSpec();
  auto types = mysql::ParseColumnTypes(
      "dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2),latest_update_time:DATETIME");
  auto t = mysql::TableSql::Make(Context(spec.get()), "events", *types);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->CreateTableSql("utf8mb4_nopad_bin"),
            "CREATE TABLE IF NOT EXISTS `_sluice_table_events` (`job_id` BIGINT NOT NULL, `dates` DATE NOT NULL, "
            "`hours` TINYINT NOT NULL, `publisher_id` BIGINT NOT NULL, `campaign_id` BIGINT NOT "
            "NULL, `group_id` BIGINT NOT NULL, `company_id` BIGINT, `clicks` BIGINT NOT NULL "
            "DEFAULT 0, `bid_set` DECIMAL(10,2), `spend_hour` BIGINT NOT NULL DEFAULT 0, "
            "`conversion` BIGINT NOT NULL DEFAULT 0, `qualified_application` BIGINT NOT NULL "
            "DEFAULT 0, `disqualified_application` BIGINT NOT NULL DEFAULT 0, `sources` TEXT, "
            "`latest_update_time` DATETIME, `_company_id_at` BIGINT, `_bid_set_sum` BIGINT NOT "
            "NULL DEFAULT 0, `_bid_set_count` BIGINT NOT NULL DEFAULT 0, `_sources_at` BIGINT, "
            "PRIMARY KEY (`job_id`, `dates`, `hours`, `publisher_id`, `campaign_id`, "
            "`group_id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin");
  // `events` itself is a view without the internal columns; a taken-over table's other
  // columns (impressions) stay in it.
  EXPECT_TRUE(t->view());
  EXPECT_EQ(t->CreateViewSql({"job_id", "dates", "_company_id_at", "impressions", "_bid_set_sum",
                              "_bid_set_count", "_sources_at"}),
            "CREATE OR REPLACE ALGORITHM=MERGE VIEW `events` AS SELECT `job_id`, `dates`, "
            "`impressions` FROM `_sluice_table_events`");
}

TEST(MysqlSqlTest, StringKeysAreVarcharOtherStringsText) {
  auto spec = AllKindsSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "t", {});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string ddl = t->CreateTableSql("utf8mb4_bin");
  EXPECT_NE(ddl.find("`window_start` DATETIME NOT NULL, `window_end` DATETIME NOT NULL, "
                     "`k` VARCHAR(255) NOT NULL"),
            std::string::npos)
      << ddl;
  EXPECT_NE(ddl.find("`hi` TEXT"), std::string::npos) << ddl;
  EXPECT_NE(ddl.find("`mean` DOUBLE, "), std::string::npos) << ddl;
  EXPECT_NE(ddl.find("`_dmean_sum` DOUBLE NOT NULL DEFAULT 0"), std::string::npos) << ddl;
  EXPECT_NE(ddl.find("PRIMARY KEY (`window_start`, `window_end`, `k`)"), std::string::npos) << ddl;
  EXPECT_EQ(t->column_names(),
            (std::vector<std::string>{"window_start", "window_end", "k", "n", "total", "mean",
                                      "dmean", "lo", "hi", "latest", "seen", "_mean_sum",
                                      "_mean_count", "_dmean_sum", "_dmean_count", "_latest_at"}));
}

TEST(MysqlSqlTest, ColumnTypesMustNameAColumn) {
  auto spec = RecruitmentSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "events", {{"date", "DATE"}});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("dates"), std::string::npos) << t.status().message();
}

std::vector<std::string> Statements(const mysql::TableSql& t, const std::vector<DeltaRow>& d,
                                    size_t rows = 1000, size_t bytes = 1 << 20) {
  std::vector<std::string> out;
  Status s = t.ForEachDeltaStatement(d, rows, bytes, [&](const std::string& sql) {
    out.push_back(sql);
    return Status::OK();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

TEST(MysqlSqlTest, BulkLoadsDeltasThroughAStageWithTheUpsertsAssignments) {
  auto spec = AllKindsSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "t", {});
  ASSERT_TRUE(t.ok());
  const int64_t w = At("2024-05-01 10:00:00");
  const Value N;
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, w, {Value::String("it's")},
                {{{N, Value::Int(5), Value::Int(1), Value::Double(0.5), Value::Double(2.5),
                   Value::String("b"), Value::Int(7), Value::TimeMicros(w + 10)},
                  w + 10},
                 {{N, Value::Int(3), Value::Int(2), Value::Double(0.25), Value::Double(-1),
                   Value::String("a"), Value::Int(9), Value::TimeMicros(w + 20)},
                  w + 5}}),
      MakeDelta(*spec, w, {Value::String(std::string("a\tb\\c\nd\0", 8))},
                {{{N, Value::Int(1), N, N, N, N, N, N}, w}})};
  mysql::BulkLoad b;
  ASSERT_TRUE(t->BulkDeltas(d, &b));
  EXPECT_EQ(b.rows, 2u);
  // Per tuple value: window start and end, k, n, total, mean's sum and count, dmean's sum and
  // count, lo, hi, latest and its time, seen.
  EXPECT_EQ(b.create,
            "CREATE TEMPORARY TABLE `_sluice_stage` (`_v0` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE "
            "utf8mb4_bin, `_v1` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, `_v2` LONGTEXT "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, `_v3` BIGINT, `_v4` BIGINT, `_v5` BIGINT, `_v6` "
            "BIGINT, `_v7` DOUBLE, `_v8` BIGINT, `_v9` DOUBLE, `_v10` LONGTEXT CHARACTER SET utf8mb4 "
            "COLLATE utf8mb4_bin, `_v11` BIGINT, `_v12` BIGINT, `_v13` VARCHAR(64) CHARACTER SET utf8mb4 "
            "COLLATE utf8mb4_bin) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin");
  const std::string window = "2024-05-01 10:00:00\t2024-05-01 11:00:00\t";
  const std::string first = window + "it's\t2\t8\t3\t2\t0.75e0\t2\t-1e0\tb\t7\t" +
                            std::to_string(w + 10) + "\t2024-05-01 10:00:00\n";
  ASSERT_EQ(b.data.substr(0, first.size()), first);
  // Tab, backslash, newline and NUL escaped; lo, hi, latest and seen without a value: \N.
  const std::string second = b.data.substr(first.size());
  EXPECT_EQ(second.substr(0, window.size() + 15), window + "a\\tb\\\\c\\nd\\0\t1\t");
  EXPECT_EQ(Count(second, "\\N"), 4u) << second;
  EXPECT_EQ(Count(b.data, "\n"), 2u);
  EXPECT_EQ(b.load,
            "LOAD DATA LOCAL INFILE 'sluice-stage.tsv' INTO TABLE `_sluice_stage` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
            "STARTING BY '' (`_v0`, `_v1`, `_v2`, `_v3`, `_v4`, `_v5`, `_v6`, `_v7`, `_v8`, `_v9`, "
            "`_v10`, `_v11`, `_v12`, `_v13`)");
  // The upsert's column list and ON DUPLICATE KEY UPDATE tail; a SELECT where its VALUES were,
  // the averages computed from the stage's sums and counts.
  const std::string upsert = Statements(*t, {d[0]})[0];
  const size_t values = upsert.find("VALUES (");
  const size_t tail = upsert.find(" ON DUPLICATE KEY UPDATE ");
  ASSERT_NE(values, std::string::npos);
  ASSERT_NE(tail, std::string::npos);
  EXPECT_EQ(b.merge, upsert.substr(0, values) +
                         "SELECT `_v0`, `_v1`, `_v2`, `_v3`, `_v4`, CASE WHEN `_v6` > 0 THEN "
                         "ROUND(CAST(`_v5` AS DECIMAL(65,20)) / `_v6`, 2) ELSE 0e0 END, `_v5`, `_v6`, "
                         "CASE WHEN `_v8` > 0 THEN CAST(`_v7` AS DOUBLE) / `_v8` ELSE NULL END, `_v7`, "
                         "`_v8`, `_v9`, `_v10`, `_v11`, `_v12`, `_v13` FROM `_sluice_stage`" +
                         upsert.substr(tail));
  EXPECT_EQ(mysql::DropStageSql(), "DROP TEMPORARY TABLE IF EXISTS `_sluice_stage`");

  // Not for the stage: a column whose values differ in type, a number no column holds.
  std::vector<DeltaRow> mixed = {d[0], d[0]};
  mixed[1].keys[0] = Value::Int(1);
  EXPECT_FALSE(t->BulkDeltas(mixed, &b));
  std::vector<DeltaRow> nan = {MakeDelta(
      *spec, w, {Value::String("x")},
      {{{N, N, N, N, Value::Double(std::numeric_limits<double>::quiet_NaN()), N, N, N}, w}})};
  EXPECT_FALSE(t->BulkDeltas(nan, &b));
}

TEST(MysqlSqlTest, UpsertsOneDelta) {
  auto spec = AllKindsSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "t", {});
  ASSERT_TRUE(t.ok());
  const int64_t w = At("2024-05-01 10:00:00");
  // Two records: (n, total, mean, dmean, lo, hi, latest, seen) args.
  DeltaRow d =
      MakeDelta(*spec, w, {Value::String("it's")},
                {{{Value(), Value::Int(5), Value::Int(1), Value::Double(0.5), Value::Double(2.5),
                   Value::String("b"), Value::Int(7), Value::TimeMicros(w + 10)},
                  w + 10},
                 {{Value(), Value::Int(3), Value::Int(2), Value::Double(0.25), Value::Double(-1),
                   Value::String("a"), Value::Int(9), Value::TimeMicros(w + 20)},
                  w + 5}});
  auto sql = Statements(*t, {d});
  ASSERT_EQ(sql.size(), 1u);
  EXPECT_EQ(
      sql[0],
      "INSERT INTO `_sluice_table_t` (`window_start`, `window_end`, `k`, `n`, `total`, `mean`, `_mean_sum`, "
      "`_mean_count`, `dmean`, `_dmean_sum`, `_dmean_count`, `lo`, `hi`, `latest`, `_latest_at`, "
      "`seen`) VALUES ('2024-05-01 10:00:00', '2024-05-01 11:00:00', 'it\\'s', 2, 8, "
      "ROUND(CAST(3 AS DECIMAL(65,20)) / 2, 2), 3, 2, CAST(0.75e0 AS DOUBLE) / 2, 0.75e0, 2, "
      "-1e0, 'b', 7, " +
          std::to_string(w + 10) +
          ", '2024-05-01 10:00:00') "
          "ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`), `total` = `total` + VALUES(`total`), "
          "`_mean_sum` = `_mean_sum` + VALUES(`_mean_sum`), "
          "`_mean_count` = `_mean_count` + VALUES(`_mean_count`), "
          "`mean` = CASE WHEN `_mean_count` > 0 THEN ROUND(CAST(`_mean_sum` AS DECIMAL(65,20)) / "
          "`_mean_count`, 2) ELSE 0e0 END, "
          "`_dmean_sum` = `_dmean_sum` + VALUES(`_dmean_sum`), "
          "`_dmean_count` = `_dmean_count` + VALUES(`_dmean_count`), "
          "`dmean` = CASE WHEN `_dmean_count` > 0 THEN CAST(`_dmean_sum` AS DOUBLE) / "
          "`_dmean_count` ELSE NULL END, "
          "`lo` = CASE WHEN VALUES(`lo`) IS NOT NULL AND (`lo` IS NULL OR VALUES(`lo`) < `lo`) "
          "THEN "
          "VALUES(`lo`) ELSE `lo` END, "
          "`hi` = CASE WHEN VALUES(`hi`) IS NOT NULL AND (`hi` IS NULL OR VALUES(`hi`) > `hi`) "
          "THEN "
          "VALUES(`hi`) ELSE `hi` END, "
          "`latest` = CASE WHEN VALUES(`_latest_at`) IS NOT NULL AND (`_latest_at` IS NULL OR "
          "VALUES(`_latest_at`) > `_latest_at` OR (VALUES(`_latest_at`) = `_latest_at` AND "
          "VALUES(`latest`) IS NOT NULL AND (`latest` IS NULL OR VALUES(`latest`) > `latest`))) "
          "THEN VALUES(`latest`) ELSE `latest` END, "
          "`_latest_at` = CASE WHEN VALUES(`_latest_at`) IS NOT NULL AND (`_latest_at` IS NULL OR "
          "VALUES(`_latest_at`) > `_latest_at`) THEN VALUES(`_latest_at`) ELSE `_latest_at` END, "
          "`seen` = CASE WHEN VALUES(`seen`) IS NOT NULL AND (`seen` IS NULL OR VALUES(`seen`) > "
          "`seen`) THEN VALUES(`seen`) ELSE `seen` END");
}

TEST(MysqlSqlTest, AverageWithoutMatchesInsertsTheDefaultAndLastWithoutRecordsNoTime) {
  auto spec = AllKindsSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "t", {});
  ASSERT_TRUE(t.ok());
  // One record that only counts: every other metric is empty.
  DeltaRow d = MakeDelta(*spec, 0, {Value::String("k")},
                         {{{}, 0, {true, false, false, false, false, false, false, false}}});
  auto sql = Statements(*t, {d});
  ASSERT_EQ(sql.size(), 1u);
  EXPECT_NE(sql[0].find("VALUES ('1970-01-01 00:00:00', '1970-01-01 01:00:00', 'k', 1, 0, "
                        "0e0, 0, 0, NULL, 0e0, 0, NULL, NULL, NULL, NULL, NULL)"),
            std::string::npos)
      << sql[0];
}

TEST(MysqlSqlTest, ChunksByRowsAndBytes) {
  auto spec = RecruitmentSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "events", {});
  ASSERT_TRUE(t.ok());
  std::vector<DeltaRow> deltas;
  for (int i = 0; i < 2500; ++i) {
    deltas.push_back(MakeDelta(*spec, 0,
                               {Value::Int(i), Value::String("2024-05-01"), Value::Int(10),
                                Value::Int(1), Value::Int(2), Value::Int(3)},
                               {{{Value::Int(1), Value(), Value::Int(100), Value::Int(100), Value(),
                                  Value(), Value(), Value::String("file"), Value::TimeMicros(0)},
                                 0}}));
  }
  auto sql = Statements(*t, deltas);
  ASSERT_EQ(sql.size(), 3u);
  EXPECT_EQ(Count(sql[0], "'2024-05-01'"), 1000u);
  EXPECT_EQ(Count(sql[1], "'2024-05-01'"), 1000u);
  EXPECT_EQ(Count(sql[2], "'2024-05-01'"), 500u);
  for (const auto& s : sql) EXPECT_EQ(Count(s, "ON DUPLICATE KEY UPDATE"), 1u);

  const size_t limit = 16 * 1024;
  sql = Statements(*t, deltas, 1000, limit);
  size_t rows = 0;
  for (const auto& s : sql) {
    EXPECT_LE(s.size(), limit);
    rows += Count(s, "'2024-05-01'");
  }
  EXPECT_EQ(rows, 2500u);
  EXPECT_GT(sql.size(), 10u);
  // A single row larger than the byte limit still goes, alone.
  sql = Statements(*t, {deltas[0], deltas[1]}, 1000, 10);
  EXPECT_EQ(sql.size(), 2u);
}

TEST(MysqlSqlTest, StopsAtTheFirstFailingStatement) {
  auto spec = RecruitmentSpec();
  auto t = mysql::TableSql::Make(Context(spec.get()), "events", {});
  ASSERT_TRUE(t.ok());
  std::vector<DeltaRow> deltas(5, MakeDelta(*spec, 0,
                                            {Value::Int(1), Value::String("d"), Value::Int(1),
                                             Value::Int(1), Value::Int(1), Value::Int(1)},
                                            {}));
  int calls = 0;
  Status s = t->ForEachDeltaStatement(deltas, 1, 1 << 20, [&](const std::string&) {
    return ++calls == 2 ? Status::Unavailable("gone") : Status::OK();
  });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 2);
}

TEST(MysqlSqlTest, RowsModeReplacesNonKeyColumns) {
  SinkContext ctx;
  ctx.pipeline = "p";
  ctx.output = Schema({{"id", Type::kString, ""}, {"v", Type::kDouble, ""}});
  ctx.key_columns = {"id"};
  auto t = mysql::TableSql::Make(ctx, "r", {});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->CreateTableSql("c"),
            "CREATE TABLE IF NOT EXISTS `r` (`id` VARCHAR(255) NOT NULL, `v` DOUBLE, PRIMARY KEY "
            "(`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=c");
  std::vector<std::vector<Value>> rows = {{Value::String("a"), Value::Double(1.5)},
                                          {Value::String("b"), Value()}};
  std::vector<std::string> sql;
  ASSERT_TRUE(t->ForEachRowStatement(rows, 1000, 1 << 20, [&](const std::string& s) {
                 sql.push_back(s);
                 return Status::OK();
               }).ok());
  ASSERT_EQ(sql.size(), 1u);
  EXPECT_EQ(sql[0],
            "INSERT INTO `r` (`id`, `v`) VALUES ('a', 1.5e0), ('b', NULL) ON DUPLICATE KEY "
            "UPDATE `v` = VALUES(`v`)");
}

SinkConfig SinkCfg(const std::string& uri, std::map<std::string, std::string> options = {}) {
  SinkConfig c;
  c.uri = uri;
  c.table = "events";
  c.options.section_location = {"p.toml", 20, 1};
  int line = 21;
  for (auto& [k, v] : options) c.options.Set(k, Option{v, {"p.toml", line++, 1}});
  return c;
}

TEST(MysqlSinkMakeTest, ChecksItsConfiguration) {
  EXPECT_TRUE(MysqlSink::Make(SinkCfg("mysql://root@127.0.0.1:3306/sluice")).ok());
  auto s = MysqlSink::Make(SinkCfg("mysql://root:hunter2@127.0.0.1:3306/sluice"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message().find("hunter2"), std::string::npos);
  EXPECT_NE(s.status().message().find("SLUICE_MYSQL_PASSWORD"), std::string::npos);

  s = MysqlSink::Make(SinkCfg("mysql://root@h/db", {{"colum_types", "a:INT"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("unknown key 'colum_types'"), std::string::npos)
      << s.status().message();
  s = MysqlSink::Make(SinkCfg("mysql://root@h/db", {{"column_types", "a:INT;"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("p.toml:21"), std::string::npos) << s.status().message();
  s = MysqlSink::Make(SinkCfg("mysql://root@h/db", {{"password_file", "/nonexistent/pw"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent/pw"), std::string::npos);
  s = MysqlSink::Make(SinkCfg("mysql://root@h/db", {{"batch_rows", "0"}}));
  EXPECT_FALSE(s.ok());
}

TEST(MysqlSinkMakeTest, OpenRejectsColumnTypesForUnknownColumnsBeforeConnecting) {
  // Port 1 is never a MySQL server: the error must come from the configuration check.
  auto s =
      MysqlSink::Make(SinkCfg("mysql://root@127.0.0.1:1/sluice", {{"column_types", "date:DATE"}}));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto spec = RecruitmentSpec();
  Status open = (*s)->Open(Context(spec.get()));
  EXPECT_EQ(open.code(), StatusCode::kInvalidArgument) << open.ToString();
  EXPECT_NE(open.message().find("p.toml:21"), std::string::npos) << open.message();
}

TEST(MysqlSinkMakeTest, OpenReportsAnUnreachableServerAsUnavailable) {
  auto s = MysqlSink::Make(SinkCfg("mysql://root@127.0.0.1:1/sluice"));
  ASSERT_TRUE(s.ok());
  auto spec = RecruitmentSpec();
  Status open = (*s)->Open(Context(spec.get()));
  EXPECT_EQ(open.code(), StatusCode::kUnavailable) << open.ToString();
  EXPECT_FALSE((*s)->Healthy());
}

}  // namespace
}  // namespace sluice
