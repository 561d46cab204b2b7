// The MySQL table source against a real MariaDB/MySQL server: root without a password on
// 127.0.0.1:3306, database `split_table_source` (created when missing), or the server and
// database named by $SLUICE_TEST_MYSQL_TABLE_SOURCE_URI. Unreachable: every test FAILS when
// CI=true, else is skipped with a loud message. Expected records, cursors and row hashes are
// worked out by hand from the rows each test inserts (hashes: FNV-1a 64 of the NDJSON record,
// computed with Python).

#include "connectors/mysql/mysql_table_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>

#include "core/tests/ci_rule.h"
#include "connectors/mysql/mysql_sql.h"
#include "connectors/table/table_util.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

std::string ServerUri() {
  const char* env = std::getenv("SLUICE_TEST_MYSQL_TABLE_SOURCE_URI");
  return env && *env ? env : "mysql://root@127.0.0.1:3306/split_table_source";
}

/// 2024-01-01 00:00:00 UTC in microseconds (1704067200 s).
constexpr int64_t kNewYear = 1704067200LL * 1'000'000;

class MysqlTableSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    auto uri = mysql::ParseUri(ServerUri(), false);
    ASSERT_TRUE(uri.ok()) << uri.status().ToString();
    uri_ = *uri;
    mysql::Connection::Options o;
    o.uri = uri_;
    o.uri.database = "information_schema";
    o.timeout_seconds = 5;
    auto c = mysql::Connection::Open(o);
    if (!c.ok()) {
      const std::string why = "MariaDB/MySQL is not reachable at " + uri_.Display() + " (" +
                              c.status().message() + "); start it with `make services`";
      SLUICE_SKIP_OR_FAIL(why);
    }
    ASSERT_TRUE((*c)->Execute("CREATE DATABASE IF NOT EXISTS " +
                              mysql::QuoteIdentifier(uri_.database) + " CHARACTER SET utf8mb4")
                    .ok());
    o.uri = uri_;
    auto admin = mysql::Connection::Open(o);
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    admin_ = std::move(admin).value();
    static std::atomic<int> counter{0};
    table_ = "tsrc_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  }

  void TearDown() override {
    if (admin_) (void)admin_->Execute("DROP TABLE IF EXISTS " + mysql::QuoteIdentifier(table_));
  }

  void Exec(const std::string& sql) { ASSERT_TRUE(admin_->Execute(sql).ok()) << sql; }

  /// Makes the source of `table_` through the registry, as a pipeline would, with the declared
  /// string fields `fields` and the options `query` in the URI.
  std::unique_ptr<Source> Make(const std::vector<std::string>& fields, const std::string& query) {
    SourceConfig c;
    c.pipeline = "p";
    c.name = "rows";
    c.uri = "mysql://" + uri_.Display() + "/" + table_ + "?" + query;
    c.options.section_location = {"test.toml", 1, 1};
    for (const auto& f : fields) c.fields.push_back({f, Type::kString, ""});
    auto made = ConnectorRegistry::Instance().MakeSources(c, 4);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return nullptr;
    EXPECT_EQ(made->size(), 1u);  // one cursor: never split between workers
    return std::move(made->front());
  }

  /// A context whose sink holds `committed`, reading up to the table's end.
  static SourceContext Context(std::map<int32_t, int64_t> committed) {
    SourceContext ctx;
    ctx.until_caught_up = true;
    ctx.committed_position = [committed](int32_t p) -> std::optional<int64_t> {
      auto it = committed.find(p);
      if (it == committed.end()) return std::nullopt;
      return it->second;
    };
    return ctx;
  }

  struct Polled {
    PollState state;
    std::vector<std::string> payloads;
    std::vector<int64_t> offsets;
  };
  static Polled PollOnce(Source* s) {
    RawBatch batch;
    auto state = s->Poll(&batch, 100, std::chrono::milliseconds(10));
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    Polled out{state.ok() ? *state : PollState::kIdle, {}, {}};
    for (size_t i = 0; i < batch.size(); ++i) {
      out.payloads.emplace_back(batch.payload(i));
      out.offsets.push_back(batch.record(i).offset);
      EXPECT_EQ(batch.record(i).partition, 0);
    }
    return out;
  }

  mysql::Uri uri_;
  std::unique_ptr<mysql::Connection> admin_;
  std::string table_;
};

// Rows come in order_by order, page by page, each as an NDJSON record of the declared fields
// (values as strings, NULL as null); the cursor after a batch is (order, key, row hash).
TEST_F(MysqlTableSourceTest, ReadsPagesInOrderAndResumesAfterTheCursor) {
  Exec("CREATE TABLE " + mysql::QuoteIdentifier(table_) + " (id INT PRIMARY KEY, name VARCHAR(10))");
  Exec("INSERT INTO " + mysql::QuoteIdentifier(table_) + " VALUES (3, 'c'), (1, 'a'), (2, NULL)");
  auto source = Make({"id", "name"}, "order_by=id&page_rows=2");
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Open(Context({})).ok());
  EXPECT_EQ(source->kind(), "mysql");
  EXPECT_FALSE(source->EndIsFinal());

  Polled first = PollOnce(source.get());
  EXPECT_EQ(first.state, PollState::kData);
  EXPECT_EQ(first.payloads,
            (std::vector<std::string>{R"({"id":"1","name":"a"})", R"({"id":"2","name":null})"}));
  EXPECT_EQ(first.offsets, (std::vector<int64_t>{1, 2}));
  // FNV-1a 64 of {"id":"2","name":null}.
  EXPECT_EQ(source->PositionsAfterBatch(),
            (std::vector<std::pair<int32_t, int64_t>>{
                {0, 2}, {1, 2}, {kCursorRowPartition, -3954069081413421172LL}}));

  Polled second = PollOnce(source.get());
  EXPECT_EQ(second.payloads, (std::vector<std::string>{R"({"id":"3","name":"c"})"}));
  EXPECT_EQ(PollOnce(source.get()).state, PollState::kEnd);  // until_caught_up, nothing newer
  source->Close();

  // A new run from the committed cursor after id 2 reads id 3 only.
  auto again = Make({"id", "name"}, "order_by=id");
  ASSERT_TRUE(again->Open(Context({{0, 2}, {1, 2}, {kCursorRowPartition, -3954069081413421172LL}})).ok());
  Polled resumed = PollOnce(again.get());
  EXPECT_EQ(resumed.payloads, (std::vector<std::string>{R"({"id":"3","name":"c"})"}));
  EXPECT_EQ(resumed.offsets, (std::vector<int64_t>{3}));
}

// With a timestamp order_by shared by several rows, the key breaks the tie, so a page boundary
// between them neither repeats nor skips one; rows newer than NOW() - grace are left for later.
TEST_F(MysqlTableSourceTest, TimestampCursorWithKeyAndGrace) {
  Exec("CREATE TABLE " + mysql::QuoteIdentifier(table_) +
       " (id INT PRIMARY KEY, at DATETIME(6), v VARCHAR(10))");
  Exec("INSERT INTO " + mysql::QuoteIdentifier(table_) +
       " VALUES (2, '2024-01-01 00:00:00', 'b'), (1, '2024-01-01 00:00:00', 'a'),"
       " (3, NOW(6), 'recent')");
  auto source = Make({"v"}, "order_by=at&key=id&page_rows=1&grace=60s");
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Open(Context({})).ok());
  Polled first = PollOnce(source.get());
  EXPECT_EQ(first.payloads, (std::vector<std::string>{R"({"v":"a"})"}));
  EXPECT_EQ(first.offsets, (std::vector<int64_t>{kNewYear}));
  auto cursor = source->PositionsAfterBatch();
  ASSERT_EQ(cursor.size(), 3u);
  EXPECT_EQ(cursor[0], (std::pair<int32_t, int64_t>{0, kNewYear}));
  EXPECT_EQ(cursor[1], (std::pair<int32_t, int64_t>{1, 1}));
  Polled second = PollOnce(source.get());
  EXPECT_EQ(second.payloads, (std::vector<std::string>{R"({"v":"b"})"}));
  EXPECT_EQ(PollOnce(source.get()).state, PollState::kEnd);  // id 3 is within the grace
}

// The last row read is read again at the committed cursor on start: when it holds other values
// or is gone, Open() refuses with FailedPrecondition naming --reset-source.
TEST_F(MysqlTableSourceTest, RefusesWhenTheCursorRowChanged) {
  Exec("CREATE TABLE " + mysql::QuoteIdentifier(table_) + " (id INT PRIMARY KEY, name VARCHAR(10))");
  Exec("INSERT INTO " + mysql::QuoteIdentifier(table_) + " VALUES (1, 'a'), (2, 'b')");
  // FNV-1a 64 of {"id":"2","name":"b"}: the row as it is, accepted.
  const std::map<int32_t, int64_t> committed = {{0, 2}, {1, 2}, {kCursorRowPartition, -6546641186639523687LL}};
  auto same = Make({"id", "name"}, "order_by=id");
  EXPECT_TRUE(same->Open(Context(committed)).ok());

  Exec("UPDATE " + mysql::QuoteIdentifier(table_) + " SET name = 'B' WHERE id = 2");
  auto updated = Make({"id", "name"}, "order_by=id");
  Status s = updated->Open(Context(committed));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("holds other values now"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--reset-source rows"), std::string::npos) << s.message();

  Exec("DELETE FROM " + mysql::QuoteIdentifier(table_) + " WHERE id = 2");
  auto gone = Make({"id", "name"}, "order_by=id");
  s = gone->Open(Context(committed));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("is gone"), std::string::npos) << s.message();
}

// Open() checks the table against the settings before reading anything.
TEST_F(MysqlTableSourceTest, OpenChecksTheColumns) {
  Exec("CREATE TABLE " + mysql::QuoteIdentifier(table_) + " (id INT PRIMARY KEY, name VARCHAR(10))");
  struct Case {
    std::vector<std::string> fields;
    std::string query;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"id", "nope"}, "order_by=id", "no column nope (a declared field)"},
           {{"id"}, "order_by=missing", "no order_by column missing"},
           {{"id"}, "order_by=name", "order_by column name is varchar"},
           {{"id"}, "order_by=id&key=name", "key column name must be an integer column"},
       }) {
    auto source = Make(c.fields, c.query);
    ASSERT_NE(source, nullptr);
    Status s = source->Open(Context({}));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.query << ": " << s.ToString();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
  }
  Exec("DROP TABLE " + mysql::QuoteIdentifier(table_));
  auto missing = Make({"id"}, "order_by=id");
  Status s = missing->Open(Context({}));
  EXPECT_NE(s.message().find("the table does not exist"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace sluice
