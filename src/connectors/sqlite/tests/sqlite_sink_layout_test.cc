// The SQLite sink's table layout: the user's table shows only the declared columns (the internal
// columns exact merges need live in the table behind it), an older sluice's layout is moved
// without losing a row, and each commit counts rows inserted and updated. Expected values are
// written out by hand or counted with plain SQL, never read from the sink.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "connectors/sqlite/sqlite_sink.h"
#include "core/time.h"
#include "operators/aggregate_spec.h"
#include "operators/tests/aggregate_test_util.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using aggregate_test::AllKindsSpec;
using aggregate_test::MakeDelta;
using aggregate_test::Rec;

const Value N;
Value I(int64_t v) { return Value::Int(v); }
Value D(double v) { return Value::Double(v); }
Value S(const char* v) { return Value::String(v); }
Value Ts(int64_t micros) { return Value::TimeMicros(micros); }

const int64_t kT = *ParseTimestamp("2024-05-01 10:00:00");
constexpr int64_t kSec = kMicrosPerSecond;

class SqliteSinkLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("sluice_sqlite_layout_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "out.db").string();
    spec_ = AllKindsSpec();
    ctx_.pipeline = "p";
    ctx_.aggregate = spec_.get();
    ctx_.output = spec_->OutputSchema();
    ctx_.key_columns = spec_->KeyColumns();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Sink> Open() {
    SinkConfig c;
    c.uri = "sqlite:" + db_;
    c.table = "events";
    c.options.section_location = {"test.toml", 1, 1};
    auto sink = SqliteSink::Make(c);
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    if (!sink.ok()) return nullptr;
    Status s = (*sink)->Open(ctx_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? std::move(sink).value() : nullptr;
  }

  Status Commit(Sink* sink, const std::vector<DeltaRow>& deltas, int64_t offset) {
    Checkpoint cp;
    cp.deltas = &deltas;
    cp.positions = {{"tracking", 0, offset}};
    return sink->Commit(cp);
  }

  /// Runs `sql` on a connection of its own; rows as "a|b|∅" lines.
  std::vector<std::string> Query(const std::string& sql) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              nullptr),
              SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db) << " in " << sql;
    std::vector<std::string> out;
    while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const unsigned char* t = sqlite3_column_text(stmt, i);
        row += (i ? "|" : "") + (t ? std::string(reinterpret_cast<const char*>(t)) : "∅");
      }
      out.push_back(row);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  /// The column names `SELECT *` returns.
  std::vector<std::string> StarColumns(const std::string& table) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    const std::string sql = "SELECT * FROM \"" + table + "\"";
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    std::vector<std::string> out;
    for (int i = 0; stmt && i < sqlite3_column_count(stmt); ++i) {
      out.emplace_back(sqlite3_column_name(stmt, i));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  std::vector<DeltaRow> First() const {
    const auto& a = *spec_;
    return {MakeDelta(a, kT, {S("a")},
                      {Rec({N, I(5), I(1), D(0.5), D(2.5), S("b"), I(7), Ts(kT + 10 * kSec)},
                           kT + 10 * kSec),
                       Rec({N, I(3), I(2), D(0.25), D(-1), S("a"), I(9), Ts(kT + 20 * kSec)},
                           kT + 5 * kSec)}),
            MakeDelta(a, kT, {S("b")}, {Rec({N, I(1), I(4), N, N, N, I(2), Ts(kT)}, kT)})};
  }
  std::vector<DeltaRow> Second() const {
    const auto& a = *spec_;
    return {MakeDelta(a, kT, {S("a")},
                      {Rec({N, I(2), I(6), D(1), D(0.5), S("c"), I(100), Ts(kT)}, kT + 30 * kSec)}),
            MakeDelta(a, kT, {S("c")}, {Rec({N, I(1), I(1), N, N, N, N, N}, kT)})};
  }
  /// The declared columns after First() then Second(), worked out by hand: a has n 3, total
  /// 5+3+2, mean (1+2+6)/3 = 3, dmean (0.5+0.25+1)/3, lo -1, hi c, latest 100 (the newest
  /// record, at +30 s), seen +20 s.
  const std::vector<std::string> kAfterBoth = {
      "2024-05-01 10:00:00|2024-05-01 11:00:00|a|3|10|3.0|0.583333333333333|-1.0|c|100|"
      "2024-05-01 10:00:20",
      "2024-05-01 10:00:00|2024-05-01 11:00:00|b|1|1|4.0|∅|∅|∅|2|2024-05-01 10:00:00",
      "2024-05-01 10:00:00|2024-05-01 11:00:00|c|1|1|1.0|∅|∅|∅|∅|∅"};
  const std::string kSelect =
      "SELECT window_start, window_end, k, n, total, mean, ROUND(dmean, 15), lo, hi, latest, "
      "seen FROM events ORDER BY k";

  fs::path dir_;
  std::string db_;
  std::unique_ptr<AggregateSpec> spec_;
  SinkContext ctx_;
};

TEST_F(SqliteSinkLayoutTest, SelectStarShowsExactlyTheDeclaredColumns) {
  auto sink = Open();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(Commit(sink.get(), First(), 10).ok());
  ASSERT_TRUE(Commit(sink.get(), Second(), 20).ok());
  EXPECT_EQ(StarColumns("events"),
            (std::vector<std::string>{"window_start", "window_end", "k", "n", "total", "mean",
                                      "dmean", "lo", "hi", "latest", "seen"}));
  EXPECT_EQ(Query(kSelect), kAfterBoth);
  // The internal columns are in the table behind the view, with the merged sums and counts.
  EXPECT_EQ(Query("SELECT type FROM sqlite_master WHERE name = 'events'"),
            (std::vector<std::string>{"view"}));
  EXPECT_EQ(Query("SELECT _mean_sum, _mean_count, _latest_at FROM _sluice_table_events WHERE "
                  "k = 'a'"),
            (std::vector<std::string>{"9|3|" + std::to_string(kT + 30 * kSec)}));
}

TEST_F(SqliteSinkLayoutTest, AnOlderSluicesTableIsMovedWithEveryRow) {
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(Commit(sink.get(), First(), 10).ok());
  }
  // Turn it into what an older sluice left: one table named `events` with the internal columns.
  Query("DROP VIEW events");
  Query("ALTER TABLE _sluice_table_events RENAME TO events");
  ASSERT_EQ(StarColumns("events").size(), 16u);  // 11 declared, 5 internal
  auto sink = Open();
  ASSERT_TRUE(sink);
  EXPECT_EQ(StarColumns("events").size(), 11u);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM _sluice_table_events"), (std::vector<std::string>{"2"}));
  ASSERT_TRUE(Commit(sink.get(), Second(), 20).ok());
  EXPECT_EQ(Query(kSelect), kAfterBoth);
}

TEST_F(SqliteSinkLayoutTest, AnotherJobsTableIsNotMoved) {
  Query("CREATE TABLE events (k TEXT, impressions INTEGER)");
  SinkConfig c;
  c.uri = "sqlite:" + db_;
  c.table = "events";
  auto sink = SqliteSink::Make(c);
  ASSERT_TRUE(sink.ok());
  Status s = (*sink)->Open(ctx_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sluice takeover"), std::string::npos) << s.message();
  EXPECT_EQ(Query("SELECT type FROM sqlite_master WHERE name = 'events'"),
            (std::vector<std::string>{"table"}));
}

TEST_F(SqliteSinkLayoutTest, CountsRowsInsertedAndUpdatedAsTheTableDoes) {
  auto sink = Open();
  ASSERT_TRUE(sink);
  auto count = [&] { return std::stoll(Query("SELECT COUNT(*) FROM events").at(0)); };
  ASSERT_TRUE(Commit(sink.get(), First(), 10).ok());
  auto c1 = sink->LastCommitRowCounts();
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->inserted, count());  // 2 keys, none there before
  EXPECT_EQ(c1->updated, 0);
  const int64_t before = count();
  ASSERT_TRUE(Commit(sink.get(), Second(), 20).ok());
  auto c2 = sink->LastCommitRowCounts();
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->inserted, count() - before);  // c is new
  EXPECT_EQ(c2->inserted, 1);
  EXPECT_EQ(c2->updated, 1);                  // a was there
  EXPECT_EQ(c2->unchanged, 0);
}

}  // namespace
}  // namespace sluice
