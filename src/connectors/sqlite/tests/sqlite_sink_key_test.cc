#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "connectors/sqlite/sqlite_sink.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using Row = std::vector<Value>;

/// Tests the option `key` (upsert by key) of the SQLite sink for pipelines without an
/// aggregate. Expected tables are written out by hand and read back with plain SQL.
class SqliteSinkKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("sluice_sqlite_key_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "out.db").string();
    ctx_.pipeline = "users";
    ctx_.output = Schema(
        {{"id", Type::kString, ""}, {"name", Type::kString, ""}, {"age", Type::kInt64, ""}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  SinkConfig Config(const std::string& key) const {
    SinkConfig c;
    c.uri = "sqlite:" + db_;
    c.table = "profiles";
    c.options.section_location = {"test.toml", 1, 1};
    if (!key.empty()) c.options.Set("key", Option{key, {"test.toml", 2, 1}});
    return c;
  }

  Result<std::unique_ptr<Sink>> OpenSink(const std::string& key) {
    ASSIGN_OR_RETURN(auto sink, SqliteSink::Make(Config(key)));
    RETURN_IF_ERROR(sink->Open(ctx_));
    return sink;
  }

  static Status Commit(Sink* sink, const std::vector<Row>& rows, int64_t offset) {
    Checkpoint cp;
    cp.rows = &rows;
    cp.positions = {{"api", 0, offset}};
    return sink->Commit(cp);
  }

  /// Reads `sql` as text rows joined by '|' (NULL as "∅").
  std::vector<std::string> Query(const std::string& sql) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
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

  fs::path dir_;
  std::string db_;
  SinkContext ctx_;
};

TEST_F(SqliteSinkKeyTest, UpsertsRowsByKeyWithThePositionsInTheSameTransaction) {
  auto sink = OpenSink("id");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE(Commit(sink->get(),
                     {{Value::String("a"), Value::String("Ann"), Value::Int(30)},
                      {Value::String("b"), Value::String("Bob"), Value::Int(40)},
                      // Same key later in the checkpoint: the last row wins.
                      {Value::String("a"), Value::String("Anna"), Value::Int(31)}},
                     3)
                  .ok());
  // A replay of rows already written (and a changed one) leaves one row per id.
  ASSERT_TRUE(Commit(sink->get(),
                     {{Value::String("b"), Value::String("Bob"), Value::Int(40)},
                      {Value::String("c"), Value::Null(), Value::Null()},
                      {Value::String("a"), Value::String("Anna"), Value::Null()}},
                     6)
                  .ok());
  EXPECT_EQ(Query("SELECT id, name, age FROM profiles ORDER BY id"),
            (std::vector<std::string>{"a|Anna|∅", "b|Bob|40", "c|∅|∅"}));
  EXPECT_EQ(Query("SELECT source, partition, offset FROM _sluice_positions "
                  "WHERE pipeline = 'users'"),
            (std::vector<std::string>{"api|0|6"}));
  // The key is the table's primary key.
  EXPECT_EQ(Query("SELECT name FROM pragma_table_info('profiles') WHERE pk > 0"),
            (std::vector<std::string>{"id"}));
}

TEST_F(SqliteSinkKeyTest, ACompositeKey) {
  auto sink = OpenSink("name, age");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE(Commit(sink->get(),
                     {{Value::String("1"), Value::String("x"), Value::Int(1)},
                      {Value::String("2"), Value::String("x"), Value::Int(2)},
                      {Value::String("3"), Value::String("x"), Value::Int(1)}},
                     1)
                  .ok());
  EXPECT_EQ(Query("SELECT id, name, age FROM profiles ORDER BY age"),
            (std::vector<std::string>{"3|x|1", "2|x|2"}));
}

TEST_F(SqliteSinkKeyTest, WithoutKeyRowsAreAppended) {
  auto sink = OpenSink("");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  const std::vector<Row> rows = {{Value::String("a"), Value::String("A"), Value::Int(1)}};
  ASSERT_TRUE(Commit(sink->get(), rows, 1).ok());
  ASSERT_TRUE(Commit(sink->get(), rows, 2).ok());
  EXPECT_EQ(Query("SELECT count(*) FROM profiles"), (std::vector<std::string>{"2"}));
}

TEST_F(SqliteSinkKeyTest, ANullKeyRowIsDeadLetteredAndTheRestCommitted) {
  // issue 14: a null key used to fail every attempt of the checkpoint, for good.
  auto sink = OpenSink("id");
  ASSERT_TRUE(sink.ok());
  Status s = Commit(sink->get(),
                    {{Value::String("a"), Value::String("A"), Value::Int(1)},
                     {Value::Null(), Value::String("B"), Value::Int(2)},
                     {Value::String("c"), Value::String("C"), Value::Int(3)}},
                    3);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Query("SELECT id, name, age FROM profiles ORDER BY id"),
            (std::vector<std::string>{"a|A|1", "c|C|3"}));
  EXPECT_EQ(Query("SELECT offset FROM _sluice_positions"), (std::vector<std::string>{"3"}));
  EXPECT_EQ(Query("SELECT source, partition, seq, reason, payload FROM _sluice_dead_letters"),
            (std::vector<std::string>{
                "_sink|0|0|sink_rejected: row refused by the sink: sqlite error 19: key column "
                "id is null|{\"id\":null,\"name\":\"B\",\"age\":2}"}));
}

TEST_F(SqliteSinkKeyTest, CheckRefusesAKeyThatIsNotAnOutputColumn) {
  auto sink = SqliteSink::Make(Config("id, login"));
  ASSERT_TRUE(sink.ok());
  Status s = (*sink)->Check(ctx_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("test.toml:2:1: key column login is not an output column"),
            std::string::npos)
      << s.ToString();
  EXPECT_FALSE((*SqliteSink::Make(Config("id, id")))->Check(ctx_).ok());
  // Open() checks the same, before touching the database.
  EXPECT_FALSE((*sink)->Open(ctx_).ok());
  EXPECT_FALSE(fs::exists(db_));
}

TEST_F(SqliteSinkKeyTest, CheckRefusesAKeyOtherThanTheAggregates) {
  AggregateSpec spec;
  spec.append_mode = true;
  ctx_.aggregate = &spec;
  ctx_.key_columns = {"window_start", "company"};
  auto sink = SqliteSink::Make(Config("id"));
  ASSERT_TRUE(sink.ok());
  Status s = (*sink)->Check(ctx_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("differs from the aggregate's keys (window_start, company)"),
            std::string::npos)
      << s.ToString();
  EXPECT_TRUE((*SqliteSink::Make(Config("window_start,company")))->Check(ctx_).ok());
}

TEST_F(SqliteSinkKeyTest, AnExistingTableWithoutTheKeyIsRefused) {
  {
    auto sink = OpenSink("");
    ASSERT_TRUE(sink.ok());
  }
  auto sink = OpenSink("id");
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sink.status().message().find("no primary key (id)"), std::string::npos)
      << sink.status().ToString();
}

}  // namespace
}  // namespace sluice
