// The incremental SQLite table source: every row exactly once, across pages that end inside a
// run of equal order_by values, re-runs, appended rows and stops.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "runtime/registry.h"
#include "runtime/runner.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

void Exec(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(h);
}

std::vector<std::string> Query(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::vector<std::string> out;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    std::string line;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const unsigned char* t = sqlite3_column_text(st, c);
      line += (c ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
    }
    out.push_back(line);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

class SqliteTableSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_sqlite_table_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    in_ = (dir_ / "in.db").string();
    out_ = (dir_ / "out.db").string();
    Exec(in_, "CREATE TABLE tracking (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, job_id INTEGER, "
              "kind TEXT)");
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Inserts `n` rows in runs of `run` rows sharing one batch number; `salt` changes job_id.
  void Insert(int n, int run, int salt = 0) {
    std::string sql = "BEGIN;";
    for (int i = 0; i < n; ++i) {
      const int id = next_id_++;
      sql += "INSERT INTO tracking VALUES (" + std::to_string(id) + ", " + std::to_string(id / run) + ", " +
             (id % 7 == 0 ? std::string("NULL") : std::to_string(id % 13 + salt)) + ", " +
             (id % 3 == 0 ? "'click'" : "'view'") + ");";
    }
    Exec(in_, sql + "COMMIT;");
  }

  /// Drops and recreates the table, empty, with ids from 1 again.
  void Recreate() {
    Exec(in_, "DROP TABLE tracking; CREATE TABLE tracking (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, "
              "job_id INTEGER, kind TEXT)");
    next_id_ = 1;
  }

  std::unique_ptr<Runner> Make(RunOptions options = {}) {
    auto runner = TryMake(options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    return std::move(runner).value();
  }

  Result<std::unique_ptr<Runner>> TryMake(RunOptions options) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "select = [\"id\", \"job_id\", \"kind\"]\n[pipeline]\nname = \"tbl\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nname = \"tracking\"\nuri = \"sqlite:" + in_ +
        "?table=tracking&order_by=batch&key=id&page_rows=7\"\n"
        "[source.fields]\nid = \"int64\"\njob_id = \"int64\"\nkind = \"string\"\n"
        "[sink]\nuri = \"sqlite:" + out_ + "\"\ntable = \"copy\"\n";
    auto cfg = ParsePipelineConfig(text, "tbl.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    return Runner::Make(std::move(cfg).value(), options);
  }

  std::vector<std::string> Want() { return Query(in_, "SELECT id, job_id, kind FROM tracking ORDER BY id"); }
  std::vector<std::string> Got() { return Query(out_, "SELECT id, job_id, kind FROM copy ORDER BY id"); }

  fs::path dir_;
  std::string in_, out_;
  int next_id_ = 1;
};

TEST_F(SqliteTableSourceTest, EveryRowOnceAcrossPagesReRunsAndAppends) {
  Insert(500, 10);  // pages of 7 end inside runs of 10 equal batch values
  Status first = Make(RunOptions{.until_caught_up = true})->Run();
  ASSERT_TRUE(first.ok()) << first.ToString();
  EXPECT_EQ(Got(), Want());
  {
    auto again = Make(RunOptions{.until_caught_up = true});  // closed before the next run
    ASSERT_TRUE(again->Run().ok());
    EXPECT_EQ(again->Snapshot().records_in, 0);
  }
  Insert(123, 10);
  auto more = Make(RunOptions{.until_caught_up = true});
  Status third = more->Run();
  ASSERT_TRUE(third.ok()) << third.ToString();
  EXPECT_EQ(more->Snapshot().records_in, 123);
  EXPECT_EQ(Got(), Want());
  EXPECT_EQ(Query(out_, "SELECT COUNT(*), COUNT(DISTINCT id) FROM copy"), std::vector<std::string>{"623|623"});
}

TEST_F(SqliteTableSourceTest, StoppedRunsResumeExactly) {
  Insert(3000, 25);
  std::mt19937 rng(5);
  for (int run = 0; run < 12; ++run) {
    auto r = Make(RunOptions{.until_caught_up = true});
    Runner* p = r.get();
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(3 + rng() % 20));
      p->RequestStop();
    });
    ASSERT_TRUE(r->Run().ok());
    stopper.join();
  }
  ASSERT_TRUE(Make(RunOptions{.until_caught_up = true})->Run().ok());
  EXPECT_EQ(Got(), Want());
  EXPECT_EQ(Query(out_, "SELECT COUNT(*), COUNT(DISTINCT id) FROM copy"), std::vector<std::string>{"3000|3000"});
}

// A table dropped and recreated used to be read after the old cursor: rows below it were lost
// without a word. Now the last row read is checked at the cursor on start, and a table that no
// longer holds it is refused, naming --reset-source.
TEST_F(SqliteTableSourceTest, RecreatedTableIsRefusedUntilResetSource) {
  Insert(50, 10);
  ASSERT_TRUE(Make(RunOptions{.until_caught_up = true})->Run().ok());
  // Recreated with more rows: the cursor's row (batch 5, id 50) exists but holds other values.
  Recreate();
  Insert(80, 10, /*salt=*/100);
  {
    auto r = Make(RunOptions{.until_caught_up = true});
    Status s = r->Run();
    ASSERT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
    EXPECT_NE(s.message().find("holds other values"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("--reset-source tracking"), std::string::npos) << s.message();
    EXPECT_EQ(r->Snapshot().records_in, 0);
  }
  // Recreated with fewer rows: the cursor's row is gone.
  Recreate();
  Insert(20, 10, /*salt=*/200);
  {
    Status s = Make(RunOptions{.until_caught_up = true})->Run();
    ASSERT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
    EXPECT_NE(s.message().find("is gone"), std::string::npos) << s.message();
  }
  // An unknown source name is an argument error, found before the run (as `validate` would).
  {
    auto r = TryMake(RunOptions{.until_caught_up = true, .reset_source = "trackin"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  }
  // --reset-source reads the new table from its beginning, and later runs continue after it.
  {
    auto r = Make(RunOptions{.until_caught_up = true, .reset_source = "tracking"});
    ASSERT_TRUE(r->Run().ok());
    EXPECT_EQ(r->Snapshot().records_in, 20);
  }
  Insert(5, 10, /*salt=*/200);
  {
    auto r = Make(RunOptions{.until_caught_up = true});
    ASSERT_TRUE(r->Run().ok());
    EXPECT_EQ(r->Snapshot().records_in, 5);
  }
}

// A reset stores "forgotten" positions until the source has new ones: a reset run that reads
// nothing does not leave the old cursor behind for the next run.
TEST_F(SqliteTableSourceTest, ResetSourceIsRememberedUntilNewPositions) {
  Insert(50, 10);
  ASSERT_TRUE(Make(RunOptions{.until_caught_up = true})->Run().ok());
  Recreate();  // empty
  {
    auto r = Make(RunOptions{.until_caught_up = true, .reset_source = "tracking"});
    ASSERT_TRUE(r->Run().ok());
    EXPECT_EQ(r->Snapshot().records_in, 0);
  }
  Insert(30, 10, /*salt=*/300);  // ids 1..30, all below the forgotten cursor (batch 5, id 50)
  auto r = Make(RunOptions{.until_caught_up = true});
  Status s = r->Run();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r->Snapshot().records_in, 30);
}

TEST_F(SqliteTableSourceTest, ClearErrors) {
  Variables vars;
  vars.use_environment = false;
  auto cfg = ParsePipelineConfig(
      "[pipeline]\nname = \"x\"\n[source]\nuri = \"sqlite:" + in_ + "\"\n[source.fields]\nid = \"int64\"\n"
      "[sink]\nuri = \"sqlite:" + out_ + "\"\ntable = \"t\"\n",
      "x.toml", vars);
  ASSERT_TRUE(cfg.ok());
  // Refused while the pipeline is checked, before anything is read (sluice validate too).
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_FALSE(runner.ok());
  Status s = runner.status();
  EXPECT_NE(s.message().find("needs table=NAME"), std::string::npos) << s.message();

  cfg = ParsePipelineConfig(
      "[pipeline]\nname = \"x\"\n[source]\nuri = \"sqlite:" + in_ + "?table=tracking&order_by=kind\"\n"
      "[source.fields]\nid = \"int64\"\n[sink]\nuri = \"sqlite:" + out_ + "\"\ntable = \"t\"\n",
      "x.toml", vars);
  Insert(3, 1);
  runner = Runner::Make(std::move(cfg).value(), RunOptions{.until_caught_up = true});
  ASSERT_TRUE(runner.ok());
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    (*runner)->RequestStop();
  });
  s = (*runner)->Run();
  stopper.join();
  EXPECT_EQ((*runner)->Snapshot().records_in, 0);  // text order_by: refused, retried, nothing read
  EXPECT_GT((*runner)->Snapshot().source_errors, 0);
}

}  // namespace
}  // namespace sluice
