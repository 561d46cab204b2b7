// Integration tests of the MySQL sink and dimension loader against a real MariaDB/MySQL server:
// root without a password on 127.0.0.1:3306, database `sluice` (created when missing), or the
// server named by $SLUICE_TEST_MYSQL_URI. Started by `make services`, or by hand. Unreachable:
// every test FAILS when CI=true, else is skipped with a loud message.

#include "connectors/mysql/mysql_sink.h"
#include "runtime/registry.h"
#include "runtime/sink_inventory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <tuple>

#include "core/tests/ci_rule.h"
#include "connectors/mysql/mysql_connection.h"
#include "connectors/mysql/mysql_dimension.h"
#include "runtime/dimension_refresh.h"
#include "operators/tests/aggregate_test_util.h"
#include "core/time.h"
#include "operators/dimension.h"

namespace sluice {
namespace {

Result<std::shared_ptr<Dimension>> LoadDimension(const DimensionConfig& config) {
  RegisterBuiltins();
  return ConnectorRegistry::Instance().LoadDimension(config);
}

using aggregate_test::AllKindsSpec;
using aggregate_test::MakeDelta;
using aggregate_test::Rec;
using aggregate_test::RecruitmentSpec;

std::string ServerUri() {
  const char* env = std::getenv("SLUICE_TEST_MYSQL_URI");
  return env && *env ? env : "mysql://root@127.0.0.1:3306/sluice";
}

int64_t At(const char* text) { return *ParseTimestamp(text); }

const int64_t kT = At("2024-05-01 10:00:00");
constexpr int64_t kSec = kMicrosPerSecond;

class MysqlSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto uri = mysql::ParseUri(ServerUri(), false);
    ASSERT_TRUE(uri.ok()) << uri.status().ToString();
    uri_ = *uri;
    mysql::Connection::Options o;
    o.uri = uri_;
    o.timeout_seconds = 5;
    auto c = mysql::Connection::Open(o);
    if (!c.ok() && c.status().message().find("error 1049") != std::string::npos) {
      o.uri.database = "information_schema";
      auto bootstrap = mysql::Connection::Open(o);
      if (bootstrap.ok()) {
        (void)(*bootstrap)
            ->Execute("CREATE DATABASE IF NOT EXISTS " + mysql::QuoteIdentifier(uri_.database) +
                      " CHARACTER SET utf8mb4");
      }
      o.uri = uri_;
      c = mysql::Connection::Open(o);
    }
    if (!c.ok()) {
      const std::string why = "MariaDB/MySQL is not reachable at " + uri_.Display() + " (" +
                              c.status().message() + "); start it with `make services`";
      SLUICE_SKIP_OR_FAIL(why);
    }
    admin_ = std::move(c).value();
    static std::atomic<int> counter{0};
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    table_ = "t_" + name.substr(0, 30) + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++);
    pipeline_ = "test_" + table_;
  }

  void TearDown() override {
    if (!admin_) return;
    // A view over the internal table when the pipeline has internal columns, else a table.
    (void)admin_->Execute("DROP VIEW IF EXISTS " + mysql::QuoteIdentifier(table_));
    (void)admin_->Execute("DROP TABLE IF EXISTS " + mysql::QuoteIdentifier(table_));
    (void)admin_->Execute("DROP TABLE IF EXISTS " +
                          mysql::QuoteIdentifier(InternalTableName(table_)));
    (void)admin_->Execute("DELETE FROM _sluice_positions WHERE pipeline = " +
                          mysql::StringLiteral(pipeline_));
    (void)admin_->Execute("DELETE FROM _sluice_dead_letters WHERE pipeline = " +
                          mysql::StringLiteral(pipeline_));
  }

  SinkContext Context(const AggregateSpec* a) {
    SinkContext ctx;
    ctx.pipeline = pipeline_;
    ctx.aggregate = a;
    ctx.output = a->OutputSchema();
    ctx.key_columns = a->KeyColumns();
    return ctx;
  }

  SinkConfig Config(std::map<std::string, std::string> options = {}) {
    SinkConfig c;
    c.uri = "mysql://" + uri_.Display();
    c.table = table_;
    c.options.section_location = {"test.toml", 1, 1};
    for (auto& [k, v] : options) c.options.Set(k, Option{v, {"test.toml", 2, 1}});
    return c;
  }

  /// Makes and opens a sink for `spec`.
  std::unique_ptr<MysqlSink> OpenSink(const AggregateSpec& spec,
                                      std::map<std::string, std::string> options = {}) {
    auto s = MysqlSink::Make(Config(std::move(options)));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    std::unique_ptr<MysqlSink> sink(static_cast<MysqlSink*>(s->release()));
    Status open = sink->Open(Context(&spec));
    EXPECT_TRUE(open.ok()) << open.ToString();
    return open.ok() ? std::move(sink) : nullptr;
  }

  static Checkpoint Cp(int64_t id, const std::vector<DeltaRow>* deltas, int64_t offset) {
    Checkpoint cp;
    cp.id = id;
    cp.deltas = deltas;
    cp.positions = {{"tracking", 0, offset}, {"__dead_letters", 0, offset / 10}};
    return cp;
  }

  /// Runs `sql` on the admin connection and returns the rows as "a|b|NULL" lines.
  std::vector<std::string> Lines(const std::string& sql) {
    std::vector<std::string> out;
    Status s = admin_->Query(sql, [&](mysql::RowView r) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        line += (i ? "|" : "") + (r[i] ? std::string(*r[i]) : std::string("NULL"));
      }
      out.push_back(line);
      return Status::OK();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  std::string One(const std::string& sql) {
    auto lines = Lines(sql);
    return lines.size() == 1 ? lines[0] : "<" + std::to_string(lines.size()) + " rows>";
  }

  std::string T() const { return mysql::QuoteIdentifier(table_); }
  /// The table behind T() that holds the internal columns too.
  std::string Internal() const { return mysql::QuoteIdentifier(InternalTableName(table_)); }

  /// Kills connection `id` from the admin connection and waits until it is gone.
  void Kill(unsigned long id) {
    ASSERT_NE(id, 0u);
    ASSERT_TRUE(admin_->Execute("KILL " + std::to_string(id)).ok());
    for (int i = 0; i < 100; ++i) {
      if (One("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " +
              std::to_string(id)) == "0") {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "connection " << id << " still alive after KILL";
  }

  mysql::Uri uri_;
  std::unique_ptr<mysql::Connection> admin_;
  std::string table_;
  std::string pipeline_;
};

// Args per record: n (ignored), total, mean, dmean, lo, hi, latest, seen.
const Value N;
Value I(int64_t v) { return Value::Int(v); }
Value D(double v) { return Value::Double(v); }
Value S(const char* v) { return Value::String(v); }
Value Ts(int64_t micros) { return Value::TimeMicros(micros); }

TEST_F(MysqlSinkTest, MergesDeltasAcrossCheckpointsLikeMergeMetric) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  const auto& a = *spec;
  std::vector<DeltaRow> cp1 = {
      MakeDelta(
          a, kT, {S("a")},
          {Rec({N, I(5), I(1), D(0.5), D(2.5), S("b"), I(7), Ts(kT + 10 * kSec)}, kT + 10 * kSec),
           Rec({N, I(3), I(2), D(0.25), D(-1), S("a"), I(9), Ts(kT + 20 * kSec)}, kT + 5 * kSec)}),
      MakeDelta(a, kT, {S("b")},
                {Rec({N, I(1), I(1), N, N, N, N, Ts(kT + kSec)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, Ts(kT + kSec)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, Ts(kT)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, N}, kT + kSec)}),
  };
  ASSERT_TRUE(sink->Commit(Cp(1, &cp1, 10)).ok());
  const std::string select =
      "SELECT window_start, window_end, k, n, total, mean, dmean, lo, hi, "
      "latest, seen FROM " +
      T() + " ORDER BY window_start, k";
  const std::string w = "2024-05-01 10:00:00|2024-05-01 11:00:00|";
  EXPECT_EQ(Lines(select),
            (std::vector<std::string>{w + "a|2|8|1.5|0.375|-1|b|7|2024-05-01 10:00:20",
                                      w + "b|4|4|0.25|NULL|NULL|NULL|NULL|2024-05-01 10:00:01"}));

  std::vector<DeltaRow> cp2 = {
      // "A" is another key than "a" (binary collation), as in the engine.
      MakeDelta(a, kT, {S("A")}, {Rec({N, I(1), I(1), D(2), D(1.5), S("z"), I(3), Ts(kT)}, kT)}),
      // lo stays -1, hi becomes c, an older last() loses, an older max loses.
      MakeDelta(
          a, kT, {S("a")},
          {Rec({N, I(2), I(2), D(1), D(0.5), S("c"), I(100), Ts(kT + 15 * kSec)}, kT + 5 * kSec)}),
      // mean: 1/8 = 0.125 rounds half away from zero to 0.13; min becomes non-null; last() at
      // the same time as the stored null value: non-null is larger.
      MakeDelta(a, kT, {S("b")},
                {Rec({N, I(1), I(0), N, D(-3), S("x"), I(5), Ts(kT)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, N}, kT), Rec({N, I(1), I(0), N, N, N, N, N}, kT),
                 Rec({N, I(1), I(0), N, N, N, N, N}, kT)}),
  };
  ASSERT_TRUE(sink->Commit(Cp(2, &cp2, 20)).ok());
  EXPECT_EQ(Lines(select), (std::vector<std::string>{
                               w + "A|1|1|1|2|1.5|z|3|2024-05-01 10:00:00",
                               w + "a|3|10|1.67|0.5833333333333334|-1|c|7|2024-05-01 10:00:20",
                               w + "b|8|8|0.13|NULL|-3|x|5|2024-05-01 10:00:01"}));

  // Same time as the stored last(): the larger value wins, a smaller one does not.
  std::vector<DeltaRow> cp3 = {
      MakeDelta(a, kT, {S("a")}, {Rec({N, N, I(2), N, N, N, I(9), N}, kT + 10 * kSec)})};
  ASSERT_TRUE(sink->Commit(Cp(3, &cp3, 30)).ok());
  std::vector<DeltaRow> cp4 = {
      MakeDelta(a, kT, {S("a")}, {Rec({N, N, N, N, N, N, I(8), N}, kT + 10 * kSec)})};
  ASSERT_TRUE(sink->Commit(Cp(4, &cp4, 40)).ok());
  EXPECT_EQ(One(select + " LIMIT 1 OFFSET 1"),
            w + "a|5|10|1.75|0.5833333333333334|-1|c|9|2024-05-01 10:00:20");
  EXPECT_EQ(One("SELECT _mean_sum, _mean_count, _dmean_sum, _dmean_count, _latest_at FROM " + Internal() +
                " WHERE k = 'a'"),
            "7|4|1.75|3|" + std::to_string(kT + 10 * kSec));
  EXPECT_TRUE(sink->Healthy());
}

TEST_F(MysqlSinkTest, RecruitmentColumnTypesAndDecimalRounding) {
  auto spec = RecruitmentSpec();
  auto sink = OpenSink(*spec, {{"column_types",
                                "dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2),"
                                "latest_update_time:DATETIME"}});
  ASSERT_TRUE(sink);
  EXPECT_EQ(Lines("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE "
                  "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" +
                  table_ +
                  "' AND COLUMN_NAME IN "
                  "('dates', 'hours', 'bid_set', 'latest_update_time', 'sources') ORDER BY "
                  "ORDINAL_POSITION"),
            (std::vector<std::string>{"dates|date", "hours|tinyint(4)", "bid_set|decimal(10,2)",
                                      "sources|text", "latest_update_time|datetime"}));
  const auto& a = *spec;
  auto key = [](int64_t job) {
    return std::vector<Value>{I(job), S("2024-05-01"), I(10), I(1), I(2), I(3)};
  };
  // Metrics: company_id last, clicks, bid_set avg, spend_hour sum, conversion, qualified,
  // disqualified, sources last, latest_update_time max. `match` picks the clicks-only metrics.
  const std::vector<bool> click = {true, true, true, true, false, false, false, true, true};
  const std::vector<bool> conversion = {true, false, false, false, true, false, false, true, true};
  auto rec = [](int64_t company, int64_t bid, int64_t t, std::vector<bool> m) {
    return Rec({I(company), N, I(bid), I(bid), N, N, N, S("file"), Ts(t)}, t, std::move(m));
  };
  std::vector<DeltaRow> cp1 = {
      MakeDelta(a, kT, key(1),
                {rec(10, 1, kT + 1 * kSec, click), rec(10, 2, kT + 2 * kSec, click)}),
      MakeDelta(a, kT, key(2), {rec(20, 0, kT + 3 * kSec, conversion)}),
  };
  ASSERT_TRUE(sink->Commit(Cp(1, &cp1, 10)).ok());
  std::vector<DeltaRow> cp2 = {
      MakeDelta(a, kT, key(1), {rec(11, 2, kT + 4 * kSec, click)}),
      MakeDelta(a, kT, key(2),
                {rec(21, 5, kT + 5 * kSec, click), rec(21, 6, kT + 6 * kSec, click),
                 rec(21, 6, kT + 6 * kSec, click)}),
  };
  ASSERT_TRUE(sink->Commit(Cp(2, &cp2, 20)).ok());
  EXPECT_EQ(Lines("SELECT job_id, dates, hours, company_id, clicks, bid_set, spend_hour, "
                  "conversion, sources, latest_update_time FROM " +
                  T() + " ORDER BY job_id"),
            (std::vector<std::string>{
                // (1 + 2 + 2) / 3 = 1.666.. -> 1.67
                "1|2024-05-01|10|11|3|1.67|5|0|file|2024-05-01 10:00:04",
                // no click in cp1: the default 0; then (5 + 6 + 6) / 3 = 5.666.. -> 5.67
                "2|2024-05-01|10|21|3|5.67|17|1|file|2024-05-01 10:00:06"}));
}

TEST_F(MysqlSinkTest, KeysAndStringsAreStoredExactly) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  const std::vector<std::string> keys = {"a",
                                         "A",
                                         "a ",
                                         "it's \"quoted\"",
                                         "back\\slash",
                                         std::string("nul\0byte", 8),
                                         "line\nbreak",
                                         "Hà Nội ✓",
                                         "x'); DROP TABLE t; --"};
  std::vector<DeltaRow> deltas;
  for (const auto& k : keys) {
    deltas.push_back(MakeDelta(*spec, kT, {Value::String(k)},
                               {Rec({N, I(1), N, N, N, Value::String(k), N, N}, kT)}));
  }
  ASSERT_TRUE(sink->Commit(Cp(1, &deltas, 10)).ok());
  ASSERT_TRUE(sink->Commit(Cp(2, &deltas, 20)).ok());
  std::vector<std::string> got;
  ASSERT_TRUE(admin_
                  ->Query("SELECT k, hi, n FROM " + T(),
                          [&](mysql::RowView r) {
                            EXPECT_EQ(*r[0], *r[1]);
                            EXPECT_EQ(*r[2], "2") << *r[0];
                            got.emplace_back(*r[0]);
                            return Status::OK();
                          })
                  .ok());
  std::sort(got.begin(), got.end());
  auto want = keys;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST_F(MysqlSinkTest, PositionsRoundTrip) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  auto none = sink->LoadPositions();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  std::vector<DeltaRow> empty;
  Checkpoint cp = Cp(1, &empty, 0);
  cp.positions = {{"tracking", 0, 1234}, {"tracking", 3, 99}, {"__dead_letters", 0, 17}};
  ASSERT_TRUE(sink->Commit(cp).ok());
  cp.positions[0].offset = 5678;
  ASSERT_TRUE(sink->Commit(cp).ok());
  sink->Close();

  auto again = OpenSink(*spec);
  ASSERT_TRUE(again);
  auto loaded = again->LoadPositions();
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  std::sort(loaded->begin(), loaded->end(), [](const StoredPosition& x, const StoredPosition& y) {
    return std::tie(x.source, x.partition) < std::tie(y.source, y.partition);
  });
  EXPECT_EQ(*loaded, (std::vector<StoredPosition>{
                         {"__dead_letters", 0, 17}, {"tracking", 0, 5678}, {"tracking", 3, 99}}));
  EXPECT_EQ(One("SELECT COUNT(*) FROM _sluice_positions WHERE pipeline = '" + pipeline_ +
                "' AND updated_at > UTC_TIMESTAMP() - INTERVAL 1 HOUR"),
            "3");
  again->Close();

  // `sluice run`'s shape check (positions_only), from a sink never opened: the named pipeline's
  // positions and nothing else (no dead letters, state or details); another name finds none.
  auto reader = MysqlSink::Make(Config());
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  InventoryOptions only;
  only.pipeline = pipeline_;
  only.positions_only = true;
  auto shape = dynamic_cast<SinkReader&>(**reader).Inventory(only);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  ASSERT_EQ(shape->pipelines.size(), 1u);
  std::vector<StoredPosition> positions = shape->pipelines[0].positions;
  std::sort(positions.begin(), positions.end(), [](const StoredPosition& x, const StoredPosition& y) {
    return std::tie(x.source, x.partition) < std::tie(y.source, y.partition);
  });
  EXPECT_EQ(positions, *loaded);
  EXPECT_TRUE(shape->pipelines[0].details.empty());
  EXPECT_FALSE(shape->pipelines[0].dead_letters_stored);
  only.pipeline = pipeline_ + "_other";
  auto other = dynamic_cast<SinkReader&>(**reader).Inventory(only);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_TRUE(other->pipelines.empty());
}

TEST_F(MysqlSinkTest, RetryAfterAnAmbiguousCommitDoesNotApplyTwice) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  // COMMIT succeeds but its reply is lost: the connection dies right after.
  bool fired = false;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage != "after_commit" || fired) return Status::OK();
    fired = true;
    Kill(sink->ConnectionIdForTesting());
    return Status::Unavailable("simulated: lost the reply to COMMIT");
  });
  Status s = sink->Commit(Cp(2, &d, 20));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_FALSE(sink->Healthy());
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");  // it was applied
  // The runner retries the same checkpoint: it must not be applied again.
  s = sink->Commit(Cp(2, &d, 20));
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(sink->Healthy());
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");
  ASSERT_TRUE(sink->Commit(Cp(3, &d, 30)).ok());
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "3|15");
}

// A checkpoint that moves no position (windows closed by the watermark, held records resolved)
// has the positions of the one before; when its COMMIT's answer is lost, the stored state, not
// the positions, tells whether it was applied.
TEST_F(MysqlSinkTest, AnAmbiguousCommitThatMovesNoPositionIsDecidedByTheState) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  const std::string state1 = "state after checkpoint 1", state2 = "state after checkpoint 2";
  Checkpoint first = Cp(1, &d, 10);
  first.state = &state1;
  ASSERT_TRUE(sink->Commit(first).ok());
  // Checkpoint 2 has the same positions; its COMMIT is sent and lost, and not applied.
  Checkpoint second = Cp(2, &d, 10);
  second.state = &state2;
  bool fired = false;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage != "at_commit" || fired) return Status::OK();
    fired = true;
    Kill(sink->ConnectionIdForTesting());
    return Status::Unavailable("simulated: the COMMIT's answer was lost, and it was not applied");
  });
  Status s = sink->Commit(second);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "1|5");  // not applied
  // The retry must write it: equal positions alone would have said it was applied.
  s = sink->Commit(second);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");
  auto stored = sink->LoadState();
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, state2);
}

TEST_F(MysqlSinkTest, DeadLettersGoInTheSameTransactionOnce) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  EXPECT_TRUE(sink->StoresDeadLetters());
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  // Invalid UTF-8 in the payload and the reason; a JSON payload; two letters of one record.
  const std::vector<DeadLetter> letters = {
      {"decode: 'x\xff'", std::string("a\xff\x01", 3), "tracking", 0, 7, 1767225600000006, 0},
      {"late", "{ \"k\" : [1, 2] }", "tracking", 1, 9, 0, 0},
      {"late again", "{ \"k\" : [1, 2] }", "tracking", 1, 9, 0, 1}};
  Checkpoint cp = Cp(1, &d, 10);
  cp.dead_letters = &letters;
  // A commit that fails before COMMIT leaves no dead letter behind.
  sink->SetTestHook([&](std::string_view stage) {
    return stage == "before_commit" ? Status::Unavailable("simulated") : Status::OK();
  });
  EXPECT_FALSE(sink->Commit(cp).ok());
  sink->SetTestHook(nullptr);
  EXPECT_EQ(One("SELECT COUNT(*) FROM _sluice_dead_letters WHERE pipeline = '" + pipeline_ + "'"),
            "0");
  ASSERT_TRUE(sink->Commit(cp).ok());
  // Stored again (a replay that reached the sink twice): still one row per letter.
  Checkpoint again = Cp(2, &d, 10);
  again.dead_letters = &letters;
  ASSERT_TRUE(sink->Commit(again).ok());
  EXPECT_EQ(Lines("SELECT source, `partition`, `offset`, seq, reason, time, payload, payload_base64, "
                  "payload_bytes, truncated, payload_sha256 FROM _sluice_dead_letters WHERE "
                  "pipeline = '" + pipeline_ + "' ORDER BY `partition`, `offset`, seq"),
            (std::vector<std::string>{
                "tracking|0|7|0|decode: 'x\xef\xbf\xbd'|2026-01-01 00:00:00.000006|\"a\\u00ff\\u0001\"|"
                "Yf8B|3|0|da75cf3a663ea72b55cb362eabd1676bdd658794b8c97fd0810557a0b1040319",
                "tracking|1|9|0|late|1970-01-01 00:00:00.000000|{\"k\":[1,2]}|NULL|16|0|"
                "8d4e60facd4e71dab596d187e8a4c460bc0c15371bcb1cd94c90224e48cfd837",
                "tracking|1|9|1|late again|1970-01-01 00:00:00.000000|{\"k\":[1,2]}|NULL|16|0|"
                "8d4e60facd4e71dab596d187e8a4c460bc0c15371bcb1cd94c90224e48cfd837"}));
}

// Two inputs at one path (a file replaced by another) put their dead letters at the same
// offsets; the generation keeps them apart. A table of an older sluice, keyed without it, gets
// the column and the wider key on open (in a database of its own, so the shared one's table is
// not the one rebuilt), and keeps its letters as generation 0.
TEST_F(MysqlSinkTest, DeadLetterGenerationsStoredApartAndAnOlderTableMigrated) {
  const std::string db = "sluice_dlgen_" + std::to_string(::getpid());
  const std::string qdb = mysql::QuoteIdentifier(db);
  ASSERT_TRUE(admin_->Execute("DROP DATABASE IF EXISTS " + qdb).ok());
  ASSERT_TRUE(admin_->Execute("CREATE DATABASE " + qdb + " CHARACTER SET utf8mb4").ok());
  ASSERT_TRUE(admin_
                  ->Execute("CREATE TABLE " + qdb +
                            ".`_sluice_dead_letters` (`pipeline` VARCHAR(255) NOT NULL, `source` VARCHAR(255) "
                            "NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, `seq` INT NOT NULL, "
                            "`reason` TEXT NOT NULL, `time` DATETIME(6) NOT NULL, `payload` MEDIUMTEXT NOT NULL, "
                            "`payload_base64` MEDIUMTEXT NULL, `payload_bytes` BIGINT NOT NULL, `truncated` "
                            "BOOLEAN NOT NULL, `payload_sha256` CHAR(64) NOT NULL, PRIMARY KEY (`pipeline`, "
                            "`source`, `partition`, `offset`, `seq`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
                  .ok());
  ASSERT_TRUE(admin_
                  ->Execute("INSERT INTO " + qdb + ".`_sluice_dead_letters` VALUES ('" + pipeline_ +
                            "', 'tracking', 0, 100, 0, 'old', '2026-01-01 00:00:00', '\"old\"', NULL, 3, 0, 'h')")
                  .ok());
  auto spec = AllKindsSpec();
  SinkConfig config = Config();
  mysql::Uri uri = uri_;
  uri.database = db;
  config.uri = "mysql://" + uri.Display();
  for (int open = 0; open < 2; ++open) {  // the second open finds the table migrated
    auto made = MysqlSink::Make(config);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    std::unique_ptr<Sink> sink = std::move(made).value();
    Status opened = sink->Open(Context(spec.get()));
    ASSERT_TRUE(opened.ok()) << opened.ToString();
    std::vector<DeadLetter> letters(2);
    letters[0] = {"decode", "first file", "tracking", 0, 100, 0, 0};
    letters[1] = {"decode", "second file", "tracking", 0, 100, 0, 0};
    letters[1].generation = 1;
    std::vector<DeltaRow> none;
    Checkpoint cp = Cp(1 + open, &none, 200);
    cp.dead_letters = &letters;
    Status committed = sink->Commit(cp);
    ASSERT_TRUE(committed.ok()) << committed.ToString();
    sink->Close();
  }
  // The old letter (generation 0) holds the key of the first file's: kept, not doubled.
  EXPECT_EQ(Lines("SELECT `offset`, `generation`, `seq`, `reason`, `payload` FROM " + qdb +
                  ".`_sluice_dead_letters` ORDER BY `generation`"),
            (std::vector<std::string>{"100|0|0|old|\"old\"", "100|1|0|decode|\"second file\""}));
  EXPECT_EQ(Lines("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = '" + db +
                  "' AND TABLE_NAME = '_sluice_dead_letters' AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY "
                  "ORDINAL_POSITION"),
            (std::vector<std::string>{"pipeline", "source", "partition", "offset", "generation", "seq"}));
  (void)admin_->Execute("DROP DATABASE IF EXISTS " + qdb);
}

TEST_F(MysqlSinkTest, RetryAfterTheConnectionDiedBeforeCommitAppliesOnce) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  bool fired = false;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage == "before_commit" && !fired) {
      fired = true;
      Kill(sink->ConnectionIdForTesting());  // the COMMIT below then fails on a dead connection
    }
    return Status::OK();
  });
  Status s = sink->Commit(Cp(2, &d, 20));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_FALSE(sink->Healthy());
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "1|5");  // rolled back
  s = sink->Commit(Cp(2, &d, 20));
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");
  EXPECT_EQ(One("SELECT `offset` FROM _sluice_positions WHERE pipeline = '" + pipeline_ +
                "' AND source = 'tracking'"),
            "20");
}

TEST_F(MysqlSinkTest, RetryWaitsForACommitStillInFlight) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  bool fired = false;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage == "before_commit" && !fired) {
      fired = true;
      Kill(sink->ConnectionIdForTesting());
    }
    return Status::OK();
  });
  ASSERT_EQ(sink->Commit(Cp(2, &d, 20)).code(), StatusCode::kUnavailable);
  // Stand-in for the lost connection's transaction, still running on the server: it writes
  // checkpoint 2 and commits only after the retry has started.
  ASSERT_TRUE(admin_->Execute("START TRANSACTION").ok());
  ASSERT_TRUE(admin_->Execute("UPDATE " + T() + " SET n = n + 1, total = total + 5").ok());
  ASSERT_TRUE(admin_
                  ->Execute("UPDATE _sluice_positions SET `offset` = `offset` * 2 WHERE "
                            "pipeline = '" +
                            pipeline_ + "'")
                  .ok());
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_TRUE(admin_->Execute("COMMIT").ok());
  });
  const auto start = std::chrono::steady_clock::now();
  Status s = sink->Commit(Cp(2, &d, 20));
  const auto waited = std::chrono::steady_clock::now() - start;
  committer.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(waited, std::chrono::milliseconds(500));
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");  // not applied a second time
}

TEST_F(MysqlSinkTest, ReconnectsAfterTheConnectionIsKilled) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  const unsigned long first = sink->ConnectionIdForTesting();
  Kill(first);
  Status s = sink->Commit(Cp(2, &d, 20));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_FALSE(sink->Healthy());
  s = sink->Commit(Cp(2, &d, 20));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(sink->Healthy());
  EXPECT_NE(sink->ConnectionIdForTesting(), first);
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");
  auto positions = sink->LoadPositions();
  ASSERT_TRUE(positions.ok());
  EXPECT_EQ(positions->size(), 2u);
}

TEST_F(MysqlSinkTest, LockWaitTimeoutIsRetriedOnTheSameConnection) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec, {{"timeout", "3s"}});  // lock waits give up after 1 s
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  const unsigned long id = sink->ConnectionIdForTesting();
  ASSERT_TRUE(admin_->Execute("START TRANSACTION").ok());
  ASSERT_TRUE(admin_->Execute("SELECT * FROM " + T() + " FOR UPDATE").ok());
  Status s = sink->Commit(Cp(2, &d, 20));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("1205"), std::string::npos) << s.message();
  ASSERT_TRUE(admin_->Execute("ROLLBACK").ok());
  EXPECT_TRUE(sink->Healthy());
  s = sink->Commit(Cp(2, &d, 20));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(sink->ConnectionIdForTesting(), id);
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");
}

TEST_F(MysqlSinkTest, RejectsAnExistingTableWithOtherColumns) {
  ASSERT_TRUE(
      admin_->Execute("CREATE TABLE " + T() + " (k VARCHAR(10) PRIMARY KEY, n BIGINT)").ok());
  auto spec = AllKindsSpec();
  auto s = MysqlSink::Make(Config());
  ASSERT_TRUE(s.ok());
  Status open = (*s)->Open(Context(spec.get()));
  EXPECT_EQ(open.code(), StatusCode::kInvalidArgument) << open.ToString();
  EXPECT_NE(open.message().find("has columns (k, n) but this pipeline writes (window_start"),
            std::string::npos)
      << open.message();
}

TEST_F(MysqlSinkTest, SelectStarShowsExactlyTheDeclaredColumns) {
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), D(2), N, N, I(4), N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  // What `SELECT *` returns, as a client (Grafana) sees it: the result set's column names.
  auto rows = admin_->QueryAll("SELECT * FROM " + T());
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].size(), 11u);
  EXPECT_EQ(Lines("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                  "DATABASE() AND TABLE_NAME = '" + table_ + "' ORDER BY ORDINAL_POSITION"),
            (std::vector<std::string>{"window_start", "window_end", "k", "n", "total", "mean",
                                      "dmean", "lo", "hi", "latest", "seen"}));
  EXPECT_EQ(One("SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                "DATABASE() AND TABLE_NAME = '" + table_ + "'"),
            "VIEW");
  EXPECT_EQ(One("SELECT k, n, total, mean, latest FROM " + T()), "a|1|5|1|4");
  EXPECT_EQ(One("SELECT _mean_sum, _mean_count, _latest_at FROM " + Internal()),
            "1|1|" + std::to_string(kT));
}

TEST_F(MysqlSinkTest, AnOlderSluicesTableIsMovedWithEveryRow) {
  auto spec = AllKindsSpec();
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, I(7), N}, kT + kSec)}),
      MakeDelta(*spec, kT, {S("b")}, {Rec({N, I(2), I(3), N, N, N, N, N}, kT)})};
  {
    auto sink = OpenSink(*spec);
    ASSERT_TRUE(sink);
    ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  }
  // What an older sluice left: one base table named as the pipeline says, internal columns in it.
  ASSERT_TRUE(admin_->Execute("DROP VIEW " + T()).ok());
  ASSERT_TRUE(admin_->Execute("RENAME TABLE " + Internal() + " TO " + T()).ok());
  ASSERT_EQ(Lines("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                  "DATABASE() AND TABLE_NAME = '" + table_ + "'").size(),
            16u);
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  EXPECT_EQ(Lines("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                  "DATABASE() AND TABLE_NAME = '" + table_ + "'").size(),
            11u);
  // The merge goes on from the moved sums, counts and times: a's mean (1 + 3) / 2, latest 7
  // (at +1 s) beats 9 at kT.
  std::vector<DeltaRow> d2 = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(1), I(3), N, N, N, I(9), N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(2, &d2, 20)).ok());
  EXPECT_EQ(Lines("SELECT k, n, total, mean, latest FROM " + T() + " ORDER BY k"),
            (std::vector<std::string>{"a|2|6|2|7", "b|1|2|3|NULL"}));
}

TEST_F(MysqlSinkTest, AnotherJobsTableIsNotMoved) {
  ASSERT_TRUE(admin_->Execute("CREATE TABLE " + T() + " (k VARCHAR(10), impressions BIGINT)").ok());
  auto spec = AllKindsSpec();
  auto s = MysqlSink::Make(Config());
  ASSERT_TRUE(s.ok());
  Status open = (*s)->Open(Context(spec.get()));
  EXPECT_FALSE(open.ok());
  EXPECT_NE(open.message().find("sluice takeover"), std::string::npos) << open.message();
  EXPECT_EQ(One("SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                "DATABASE() AND TABLE_NAME = '" + table_ + "'"),
            "BASE TABLE");
}

TEST_F(MysqlSinkTest, CountsRowsInsertedUpdatedAndUnchanged) {
  auto spec = AllKindsSpec();
  for (const char* batch : {"1000", "1"}) {  // multi-row statements (mysql_info), one row each
    SCOPED_TRACE(batch);
    TearDown();
    auto sink = OpenSink(*spec, {{"batch_rows", batch}});
    ASSERT_TRUE(sink);
    auto count = [&] { return std::stoll(One("SELECT COUNT(*) FROM " + T())); };
    std::vector<DeltaRow> d1, d2;
    for (const char* k : {"a", "b", "c"}) {
      d1.push_back(MakeDelta(*spec, kT, {S(k)}, {Rec({N, I(1), N, N, N, N, N, N}, kT)}));
    }
    for (const char* k : {"b", "d"}) {
      d2.push_back(MakeDelta(*spec, kT, {S(k)}, {Rec({N, I(1), N, N, N, N, N, N}, kT)}));
    }
    // A delta that changes nothing: no record matched any metric but the key is there.
    DeltaRow nothing = MakeDelta(*spec, kT, {S("c")}, {});
    d2.push_back(nothing);
    ASSERT_TRUE(sink->Commit(Cp(1, &d1, 10)).ok());
    ASSERT_TRUE(sink->LastCommitRowCounts());
    EXPECT_EQ(sink->LastCommitRowCounts()->inserted, count());
    EXPECT_EQ(sink->LastCommitRowCounts()->updated, 0);
    const int64_t before = count();
    ASSERT_TRUE(sink->Commit(Cp(2, &d2, 20)).ok());
    auto c = sink->LastCommitRowCounts();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->inserted, count() - before);
    EXPECT_EQ(c->inserted, 1);   // d
    EXPECT_EQ(c->updated, 1);    // b
    EXPECT_EQ(c->unchanged, 1);  // c
  }
}

TEST_F(MysqlSinkTest, ReopensAnExistingTable) {
  auto spec = AllKindsSpec();
  std::vector<DeltaRow> d = {
      MakeDelta(*spec, kT, {S("a")}, {Rec({N, I(5), I(1), N, N, N, N, N}, kT)})};
  {
    auto sink = OpenSink(*spec);
    ASSERT_TRUE(sink);
    ASSERT_TRUE(sink->Commit(Cp(1, &d, 10)).ok());
  }
  auto sink = OpenSink(*spec);
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Commit(Cp(2, &d, 20)).ok());
  EXPECT_EQ(One("SELECT n, total FROM " + T()), "2|10");
}

TEST_F(MysqlSinkTest, ConfigurationErrorsAreClear) {
  auto spec = AllKindsSpec();
  SinkConfig c = Config();
  c.uri = "mysql://" + uri_.user + "@" + uri_.host + ":" + std::to_string(uri_.port) +
          "/sluice_no_such_database";
  auto s = MysqlSink::Make(c);
  ASSERT_TRUE(s.ok());
  Status open = (*s)->Open(Context(spec.get()));
  EXPECT_EQ(open.code(), StatusCode::kInvalidArgument) << open.ToString();
  EXPECT_NE(open.message().find("CREATE DATABASE"), std::string::npos) << open.message();

  const std::string pw = (std::filesystem::temp_directory_path() /
                          ("sluice_mysql_wrong_pw_" + std::to_string(::getpid())))
                             .string();
  std::ofstream(pw) << "certainly-wrong\n";
  s = MysqlSink::Make(Config({{"password_file", pw}}));
  ASSERT_TRUE(s.ok());
  open = (*s)->Open(Context(spec.get()));
  std::filesystem::remove(pw);
  EXPECT_EQ(open.code(), StatusCode::kInvalidArgument) << open.ToString();
  EXPECT_NE(open.message().find("1045"), std::string::npos) << open.message();
  EXPECT_EQ(open.message().find("certainly-wrong"), std::string::npos) << open.message();
}

TEST_F(MysqlSinkTest, AKeyLongerThanItsColumnIsDeadLetteredAndTheRestCommitted) {
  // issue 14: a key over VARCHAR(255) failed every attempt of the checkpoint with error 1406.
  // Now the refused groups are found by halving the batch (rows per statement 3, so a range
  // spans several statements undone by the savepoint) and dead-lettered in the same
  // transaction as the rest and the positions.
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec, {{"batch_rows", "3"}});
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d;
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) {
    const bool poison = i == 4 || i == 13 || i == 14;
    keys.push_back(poison ? std::string(300 + i, 'k') : "key" + std::to_string(100 + i));
    d.push_back(MakeDelta(*spec, kT, {Value::String(keys.back())},
                          {Rec({N, I(i + 1), N, N, N, N, N, N}, kT)}));
  }
  std::sort(d.begin(), d.end(), [](const DeltaRow& a, const DeltaRow& b) {
    return a.keys[0].string_value() < b.keys[0].string_value();
  });
  Status s = sink->Commit(Cp(1, &d, 10));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T()), "17");
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T() + " WHERE CHAR_LENGTH(k) > 255"), "0");
  EXPECT_EQ(One("SELECT `offset` FROM _sluice_positions WHERE pipeline = '" + pipeline_ +
                "' AND source = 'tracking'"),
            "10");
  // One letter per refused group, each naming the server's reason and holding the group key.
  auto letters = Lines("SELECT source, seq, reason, CHAR_LENGTH(JSON_VALUE(payload, '$.k')) FROM "
                       "_sluice_dead_letters WHERE pipeline = '" + pipeline_ + "' ORDER BY seq");
  const std::string reason =
      "sink_rejected: delta of group refused by the sink: mysql error 1406: Data too long for "
      "column 'k' at row 1";
  EXPECT_EQ(letters, (std::vector<std::string>{"_sink|0|" + reason + "|304",
                                               "_sink|1|" + reason + "|313",
                                               "_sink|2|" + reason + "|314"}));
  EXPECT_TRUE(sink->Healthy());
  // The next checkpoint (the same oversized key again) adds its own letter: no key clash.
  std::vector<DeltaRow> more = {MakeDelta(*spec, kT, {Value::String(std::string(304, 'k'))},
                                          {Rec({N, I(1), N, N, N, N, N, N}, kT)})};
  ASSERT_TRUE(sink->Commit(Cp(2, &more, 11)).ok());
  EXPECT_EQ(One("SELECT COUNT(*) FROM _sluice_dead_letters WHERE pipeline = '" + pipeline_ + "'"),
            "4");
}

TEST_F(MysqlSinkTest, ALostConnectionWhileIsolatingIsRetriedNotDeadLettered) {
  // A transient failure in the middle of the halving is not a refusal of the rows: the
  // checkpoint fails as Unavailable, nothing of it is stored, and the retry isolates the row.
  auto spec = AllKindsSpec();
  auto sink = OpenSink(*spec, {{"batch_rows", "2"}});
  ASSERT_TRUE(sink);
  std::vector<DeltaRow> d;
  for (int i = 0; i < 6; ++i) {
    d.push_back(MakeDelta(*spec, kT,
                          {Value::String(i == 3 ? std::string(400, 'p') : "k" + std::to_string(i))},
                          {Rec({N, I(1), N, N, N, N, N, N}, kT)}));
  }
  // The first refusal kills the sink's connection from another session: the next statement of
  // the halving fails on a dead connection.
  const unsigned long id = sink->ConnectionIdForTesting();
  int refusals = 0;
  sink->SetTestHook([&](std::string_view stage) -> Status {
    if (stage == "row_refused" && refusals++ == 0) Kill(id);
    return Status::OK();
  });
  Status s = sink->Commit(Cp(1, &d, 6));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T()), "0");
  EXPECT_EQ(One("SELECT COUNT(*) FROM _sluice_dead_letters WHERE pipeline = '" + pipeline_ + "'"),
            "0");
  s = sink->Commit(Cp(1, &d, 6));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T()), "5");
  EXPECT_EQ(One("SELECT COUNT(*) FROM _sluice_dead_letters WHERE pipeline = '" + pipeline_ + "'"),
            "1");
}

TEST_F(MysqlSinkTest, CommitsFiftyThousandDeltas) {
  auto spec = RecruitmentSpec();
  auto sink = OpenSink(*spec, {{"column_types", "dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2)"}});
  ASSERT_TRUE(sink);
  const std::vector<bool> click = {true, true, true, true, false, false, false, true, true};
  std::vector<DeltaRow> deltas;
  for (int i = 0; i < 50'000; ++i) {
    std::vector<Value> key = {I(i / 24), S("2024-05-01"), I(i % 24), I(i % 7), I(i % 13), I(1)};
    deltas.push_back(
        MakeDelta(*spec, kT, std::move(key),
                  {Rec({I(i), N, I(i % 100), I(i % 100), N, N, N, S("file"), Ts(kT)}, kT, click)}));
  }
  std::sort(deltas.begin(), deltas.end(),
            [](const DeltaRow& x, const DeltaRow& y) { return x.keys < y.keys; });
  for (int round = 1; round <= 2; ++round) {
    const auto start = std::chrono::steady_clock::now();
    Status s = sink->Commit(Cp(round, &deltas, 10 * round));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::cout << "mysql sink: commit of " << deltas.size() << " deltas ("
              << (round == 1 ? "all new rows" : "all updates") << ") in " << secs << " s, "
              << static_cast<int64_t>(deltas.size() / secs) << " rows/s\n";
  }
  EXPECT_EQ(One("SELECT COUNT(*), SUM(clicks), SUM(spend_hour) FROM " + T()),
            "50000|100000|" + std::to_string(2 * 49'500 * 50));
}

// The bulk path (LOAD DATA LOCAL INFILE into a temporary table, one INSERT ... SELECT ... ON
// DUPLICATE KEY UPDATE; bulk_rows = 1 so that every checkpoint takes it) against values worked
// out by hand and against a twin table written by the multi-row INSERT statements
// (bulk_rows = 0) with the same checkpoints.
class MysqlSinkBulkTest : public MysqlSinkTest {
 protected:
  void SetUp() override {
    MysqlSinkTest::SetUp();
    twin_table_ = table_ + "_s";
    twin_pipeline_ = pipeline_ + "_s";
  }
  void TearDown() override {
    MysqlSinkTest::TearDown();
    SwapTwin();
    MysqlSinkTest::TearDown();
    SwapTwin();
  }
  void SwapTwin() {
    std::swap(table_, twin_table_);
    std::swap(pipeline_, twin_pipeline_);
  }
  /// Opens the bulk sink on table_ and the statements' sink on the twin.
  void OpenBoth(const AggregateSpec& spec, std::map<std::string, std::string> options = {}) {
    auto bulk = options;
    bulk["bulk_rows"] = "1";
    bulk_ = OpenSink(spec, bulk);
    SwapTwin();
    options["bulk_rows"] = "0";
    statements_ = OpenSink(spec, options);
    SwapTwin();
    ASSERT_TRUE(bulk_ && statements_);
  }
  /// Commits `deltas` to both sinks; the statuses must agree.
  Status CommitBoth(int64_t id, const std::vector<DeltaRow>& deltas, int64_t offset) {
    Status a = bulk_->Commit(Cp(id, &deltas, offset));
    Status b = statements_->Commit(Cp(id, &deltas, offset));
    EXPECT_EQ(a.code(), b.code()) << a.ToString() << " / " << b.ToString();
    return a;
  }
  /// Every column of the rows of table_ (internal columns included), in key order, as text.
  std::vector<std::string> AllRows(size_t keys) {
    std::string order;
    for (size_t i = 1; i <= keys; ++i) order += (i > 1 ? ", " : "") + std::to_string(i);
    return Lines("SELECT * FROM " + Internal() + " ORDER BY " + order);
  }
  /// The same of the twin.
  std::vector<std::string> TwinRows(size_t keys) {
    SwapTwin();
    auto rows = AllRows(keys);
    SwapTwin();
    return rows;
  }

  std::string twin_table_, twin_pipeline_;
  std::unique_ptr<MysqlSink> bulk_, statements_;
};

TEST_F(MysqlSinkBulkTest, MergesLikeTheStatementsAndByHand) {
  auto spec = AllKindsSpec();
  OpenBoth(*spec);
  const auto& a = *spec;
  // The checkpoints of MergesDeltasAcrossCheckpointsLikeMergeMetric, same expected rows.
  std::vector<DeltaRow> cp1 = {
      MakeDelta(
          a, kT, {S("a")},
          {Rec({N, I(5), I(1), D(0.5), D(2.5), S("b"), I(7), Ts(kT + 10 * kSec)}, kT + 10 * kSec),
           Rec({N, I(3), I(2), D(0.25), D(-1), S("a"), I(9), Ts(kT + 20 * kSec)}, kT + 5 * kSec)}),
      MakeDelta(a, kT, {S("b")},
                {Rec({N, I(1), I(1), N, N, N, N, Ts(kT + kSec)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, Ts(kT + kSec)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, Ts(kT)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, N}, kT + kSec)}),
  };
  ASSERT_TRUE(CommitBoth(1, cp1, 10).ok());
  std::vector<DeltaRow> cp2 = {
      MakeDelta(a, kT, {S("A")}, {Rec({N, I(1), I(1), D(2), D(1.5), S("z"), I(3), Ts(kT)}, kT)}),
      MakeDelta(
          a, kT, {S("a")},
          {Rec({N, I(2), I(2), D(1), D(0.5), S("c"), I(100), Ts(kT + 15 * kSec)}, kT + 5 * kSec)}),
      MakeDelta(a, kT, {S("b")},
                {Rec({N, I(1), I(0), N, D(-3), S("x"), I(5), Ts(kT)}, kT + kSec),
                 Rec({N, I(1), I(0), N, N, N, N, N}, kT), Rec({N, I(1), I(0), N, N, N, N, N}, kT),
                 Rec({N, I(1), I(0), N, N, N, N, N}, kT)}),
  };
  ASSERT_TRUE(CommitBoth(2, cp2, 20).ok());
  const std::string select =
      "SELECT window_start, window_end, k, n, total, mean, dmean, lo, hi, latest, seen FROM " +
      T() + " ORDER BY window_start, k";
  const std::string w = "2024-05-01 10:00:00|2024-05-01 11:00:00|";
  EXPECT_EQ(Lines(select), (std::vector<std::string>{
                               w + "A|1|1|1|2|1.5|z|3|2024-05-01 10:00:00",
                               w + "a|3|10|1.67|0.5833333333333334|-1|c|7|2024-05-01 10:00:20",
                               w + "b|8|8|0.13|NULL|-3|x|5|2024-05-01 10:00:01"}));
  std::vector<DeltaRow> cp3 = {
      MakeDelta(a, kT, {S("a")}, {Rec({N, N, I(2), N, N, N, I(9), N}, kT + 10 * kSec)})};
  ASSERT_TRUE(CommitBoth(3, cp3, 30).ok());
  std::vector<DeltaRow> cp4 = {
      MakeDelta(a, kT, {S("a")}, {Rec({N, N, N, N, N, N, I(8), N}, kT + 10 * kSec)})};
  ASSERT_TRUE(CommitBoth(4, cp4, 40).ok());
  EXPECT_EQ(One(select + " LIMIT 1 OFFSET 1"),
            w + "a|5|10|1.75|0.5833333333333334|-1|c|9|2024-05-01 10:00:20");
  EXPECT_EQ(AllRows(3), TwinRows(3));
  EXPECT_EQ(bulk_->BulkLoadsForTesting(), 4);
  EXPECT_EQ(statements_->BulkLoadsForTesting(), 0);
  // The rows counted the same way (the last commit: one row updated).
  ASSERT_TRUE(bulk_->LastCommitRowCounts() && statements_->LastCommitRowCounts());
  EXPECT_EQ(bulk_->LastCommitRowCounts()->updated, 1);
  EXPECT_EQ(statements_->LastCommitRowCounts()->updated, 1);
}

TEST_F(MysqlSinkBulkTest, StringsNullsAndDoublesAreStoredExactly) {
  auto spec = AllKindsSpec();
  OpenBoth(*spec);
  const std::vector<std::string> keys = {"a",
                                         "A",
                                         "a ",
                                         "",
                                         "it's \"quoted\"",
                                         "back\\slash\\",
                                         "\\N",
                                         "N",
                                         "tab\there",
                                         "line\nbreak\r\n",
                                         std::string("nul\0byte", 8),
                                         "ctrl-z \x1a",
                                         "Hà Nội ✓ 🙂",
                                         "x'); DROP TABLE t; --"};
  const std::vector<double> doubles = {0.1, -0.0, 1e300, 5e-324, 1.0 / 3, -2.5, 123456789.125};
  std::vector<DeltaRow> deltas;
  for (size_t i = 0; i < keys.size(); ++i) {
    // Every other key leaves the double and string metrics NULL.
    const bool nulls = i % 2 == 1;
    const Value d = nulls ? N : D(doubles[i % doubles.size()]);
    deltas.push_back(MakeDelta(*spec, kT, {Value::String(keys[i])},
                               {Rec({N, I(static_cast<int64_t>(i)), N, d, d,
                                     nulls ? N : Value::String(keys[i]), N, N},
                                    kT)}));
  }
  std::sort(deltas.begin(), deltas.end(),
            [](const DeltaRow& x, const DeltaRow& y) { return x.keys < y.keys; });
  ASSERT_TRUE(CommitBoth(1, deltas, 10).ok());
  ASSERT_TRUE(CommitBoth(2, deltas, 20).ok());
  EXPECT_EQ(bulk_->BulkLoadsForTesting(), 2);
  EXPECT_EQ(AllRows(3), TwinRows(3));
  // By hand: each key once, with its own bytes, counted twice; the strings equal to the keys.
  std::vector<std::string> got;
  ASSERT_TRUE(admin_
                  ->Query("SELECT k, hi, n, HEX(k) FROM " + T(),
                          [&](mysql::RowView r) {
                            if (r[1]) {
                              EXPECT_EQ(*r[0], *r[1]);
                            }
                            EXPECT_EQ(*r[2], "2") << *r[3];
                            got.emplace_back(*r[0]);
                            return Status::OK();
                          })
                  .ok());
  std::sort(got.begin(), got.end());
  auto want = keys;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T() + " WHERE hi IS NULL AND lo IS NULL"),
            std::to_string(keys.size() / 2));
  // Doubles read back as the same doubles (the sums of two checkpoints: 2x, exact).
  EXPECT_EQ(One("SELECT lo FROM " + T() + " WHERE k = 'a'"), "0.1");
  EXPECT_EQ(One("SELECT lo FROM " + T() + " WHERE k = 'a '"), "1e300");
}

TEST_F(MysqlSinkBulkTest, DecimalAveragesRoundHalfAwayFromZero) {
  auto spec = RecruitmentSpec();
  OpenBoth(*spec, {{"column_types", "dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2),"
                                    "latest_update_time:DATETIME"}});
  const auto& a = *spec;
  const std::vector<bool> click = {true, true, true, true, false, false, false, true, true};
  // Bids per group whose exact average ends in 5 at the third decimal, either sign.
  const std::vector<std::vector<int64_t>> bids = {
      {1, 0, 0, 0, 0, 0, 0, 0},      // 0.125 -> 0.13
      {-1, 0, 0, 0, 0, 0, 0, 0},     // -0.125 -> -0.13
      {5, 0, 0, 0, 0, 0, 0, 0},      // 0.625 -> 0.63
      {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
       0, 0, 0, 0, 0, 0, 0, 0, 0},   // 1/40 = 0.025 -> 0.03
      {2, 1, 2},                      // 1.666.. -> 1.67
      {7}};                           // 7.00
  std::vector<DeltaRow> deltas;
  for (size_t g = 0; g < bids.size(); ++g) {
    std::vector<Rec> recs;
    for (int64_t b : bids[g]) {
      recs.push_back(Rec({I(1), N, I(b), I(b), N, N, N, S("kafka"), Ts(kT + kSec)}, kT + kSec, click));
    }
    deltas.push_back(MakeDelta(
        a, kT, {I(static_cast<int64_t>(g)), S("2024-05-01"), I(10), I(1), I(2), I(3)}, recs));
  }
  ASSERT_TRUE(CommitBoth(1, deltas, 10).ok());
  const std::string select = "SELECT job_id, bid_set FROM " + T() + " ORDER BY job_id";
  EXPECT_EQ(Lines(select), (std::vector<std::string>{"0|0.13", "1|-0.13", "2|0.63", "3|0.03",
                                                     "4|1.67", "5|7.00"}));
  // Merged with a second checkpoint (the average of both, recomputed by the server).
  ASSERT_TRUE(CommitBoth(2, deltas, 20).ok());
  EXPECT_EQ(Lines(select), (std::vector<std::string>{"0|0.13", "1|-0.13", "2|0.63", "3|0.03",
                                                     "4|1.67", "5|7.00"}));
  EXPECT_EQ(One("SELECT dates, hours, sources, latest_update_time FROM " + T() + " WHERE job_id = 0"),
            "2024-05-01|10|kafka|2024-05-01 10:00:01");
  EXPECT_EQ(AllRows(6), TwinRows(6));
  EXPECT_EQ(bulk_->BulkLoadsForTesting(), 2);
}

TEST_F(MysqlSinkBulkTest, AFailedCommitLeavesNothingAndTheRetryAppliesOnce) {
  auto spec = AllKindsSpec();
  OpenBoth(*spec);
  std::vector<DeltaRow> d;
  for (int i = 0; i < 50; ++i) {
    d.push_back(MakeDelta(*spec, kT, {Value::String("k" + std::to_string(100 + i))},
                          {Rec({N, I(i), N, N, N, N, N, N}, kT)}));
  }
  // Everything sent, the connection lost before COMMIT: the server rolls it all back.
  bulk_->SetTestHook([&](std::string_view stage) -> Status {
    if (stage != "before_commit") return Status::OK();
    Kill(bulk_->ConnectionIdForTesting());
    return Status::Unavailable("simulated: lost the connection before COMMIT");
  });
  Status s = bulk_->Commit(Cp(1, &d, 10));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(bulk_->BulkLoadsForTesting(), 1);
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T()), "0");
  EXPECT_EQ(One("SELECT COUNT(*) FROM _sluice_positions WHERE pipeline = '" + pipeline_ + "'"), "0");
  bulk_->SetTestHook(nullptr);
  ASSERT_TRUE(bulk_->Commit(Cp(1, &d, 10)).ok());
  ASSERT_TRUE(statements_->Commit(Cp(1, &d, 10)).ok());
  EXPECT_EQ(One("SELECT COUNT(*), SUM(total), SUM(n) FROM " + T()), "50|1225|50");
  EXPECT_EQ(AllRows(3), TwinRows(3));
}

TEST_F(MysqlSinkBulkTest, RefusedRowsAreIsolatedAsWithStatements) {
  // A key over VARCHAR(255) fails the merge: the range is halved (down to the statements below
  // bulk_rows) and only that group is dead-lettered. Invalid UTF-8 in a TEXT column: the load
  // only warns (LOCAL), so the range goes to the statements, whose server refuses the row.
  auto spec = AllKindsSpec();
  OpenBoth(*spec);
  std::vector<DeltaRow> d;
  for (int i = 0; i < 40; ++i) {
    const std::string key = i == 7 ? std::string(300, 'p') : "k" + std::to_string(100 + i);
    const Value hi = i == 23 ? Value::String("bad \xff\xfe utf-8") : N;
    d.push_back(MakeDelta(*spec, kT, {Value::String(key)}, {Rec({N, I(i), N, N, N, hi, N, N}, kT)}));
  }
  std::sort(d.begin(), d.end(),
            [](const DeltaRow& x, const DeltaRow& y) { return x.keys < y.keys; });
  ASSERT_TRUE(CommitBoth(1, d, 10).ok());
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T()), "38");
  EXPECT_EQ(AllRows(3), TwinRows(3));
  EXPECT_GT(bulk_->BulkLoadsForTesting(), 0);
  EXPECT_EQ(bulk_->RowsRejected(), 2);
  EXPECT_EQ(statements_->RowsRejected(), 2);
  const std::string reasons = "SELECT reason FROM _sluice_dead_letters WHERE pipeline = '";
  SwapTwin();
  auto twin_reasons = Lines(reasons + pipeline_ + "' ORDER BY seq");
  SwapTwin();
  // The messages name the table; the twin's has another name.
  for (auto& r : twin_reasons) {
    const std::string twin = InternalTableName(twin_table_);
    if (auto at = r.find(twin); at != std::string::npos) r.replace(at, twin.size(), InternalTableName(table_));
  }
  EXPECT_EQ(Lines(reasons + pipeline_ + "' ORDER BY seq"), twin_reasons);
  EXPECT_EQ(twin_reasons.size(), 2u);
}

TEST_F(MysqlSinkBulkTest, WithoutLocalInfileTheStatementsAreWritten) {
  // The server refuses LOAD DATA LOCAL (here: the client does not offer it, so the server
  // answers as a server with local_infile=OFF does): that attempt fails with nothing written
  // (an unexpected error may have rolled its transaction back), the sink stops trying, and the
  // retry (the runner's) writes statements.
  auto spec = AllKindsSpec();
  OpenBoth(*spec);
  bulk_->DisableLocalInfileForTesting();
  std::vector<DeltaRow> d;
  for (int i = 0; i < 30; ++i) {
    d.push_back(MakeDelta(*spec, kT, {Value::String("k" + std::to_string(100 + i))},
                          {Rec({N, I(i), N, D(i / 4.0), D(i / 8.0), S("v"), I(i), Ts(kT)}, kT)}));
  }
  Status refused = bulk_->Commit(Cp(1, &d, 10));
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("retried with statements"), std::string::npos) << refused.ToString();
  EXPECT_EQ(One("SELECT COUNT(*) FROM " + T()), "0");
  ASSERT_TRUE(CommitBoth(1, d, 10).ok());
  ASSERT_TRUE(CommitBoth(2, d, 20).ok());
  EXPECT_EQ(bulk_->BulkLoadsForTesting(), 0);
  EXPECT_TRUE(bulk_->Healthy());
  EXPECT_EQ(One("SELECT COUNT(*), SUM(total), SUM(n) FROM " + T()), "30|870|60");
  EXPECT_EQ(AllRows(3), TwinRows(3));
}

class MysqlDimensionTest : public MysqlSinkTest {};

TEST_F(MysqlDimensionTest, LoadsTheDeclaredFields) {
  ASSERT_TRUE(admin_
                  ->Execute("CREATE TABLE " + T() +
                            " (id BIGINT, company_id INT NULL, title VARCHAR(50), "
                            "created DATETIME, score DOUBLE, active BOOLEAN)")
                  .ok());
  ASSERT_TRUE(admin_
                  ->Execute("INSERT INTO " + T() +
                            " VALUES "
                            "(1, 10, 'Data engineer', '2024-01-02 03:04:05', 1.5, TRUE), "
                            "(2, NULL, NULL, NULL, NULL, NULL), "
                            "(NULL, 30, 'no key', NULL, 0, FALSE)")
                  .ok());
  DimensionConfig c;
  c.name = "job";
  c.uri = "mysql://" + uri_.Display() + "/" + table_;
  c.key = "id";
  c.fields = {{"id", Type::kInt64, ""},         {"company_id", Type::kInt64, ""},
              {"name", Type::kString, "title"}, {"created", Type::kTimestamp, ""},
              {"score", Type::kDouble, ""},     {"active", Type::kBool, ""}};
  auto table = LoadDimension(c);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ((*table)->snapshot()->size(), 2u);
  const auto* one = (*table)->snapshot()->Find(I(1));
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(*one, (std::vector<Value>{I(1), I(10), S("Data engineer"),
                                      Ts(At("2024-01-02 03:04:05")), D(1.5), Value::Bool(true)}));
  const auto* two = (*table)->snapshot()->Find(I(2));
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(*two, (std::vector<Value>{I(2), N, N, N, N, N}));
}

// Timestamp CDC: rows that share a timestamp are all applied, a row committed late with an older
// timestamp (within the grace period) is applied, unchanged rows publish nothing.
TEST_F(MysqlDimensionTest, PollingFollowsUpdatesByUpdatedAt) {
  ASSERT_TRUE(admin_->Execute("CREATE TABLE " + T() +
                              " (id BIGINT PRIMARY KEY, company_id BIGINT, updated_at DATETIME(6))")
                  .ok());
  ASSERT_TRUE(admin_->Execute("INSERT INTO " + T() + " VALUES (1, 10, '2024-01-01 00:00:00'), "
                              "(2, 20, '2024-01-01 00:00:00'), (3, 30, '2024-01-01 00:00:05')")
                  .ok());
  DimensionConfig c;
  c.name = "job";
  c.uri = "mysql://" + uri_.Display() + "/" + table_;
  c.key = "id";
  c.fields = {{"id", Type::kInt64, ""}, {"company_id", Type::kInt64, ""}};
  c.options.Set("refresh", {"1s", {}});
  c.options.Set("grace", {"10s", {}});
  auto dim = LoadDimension(c);
  ASSERT_TRUE(dim.ok()) << dim.status().ToString();
  auto poller = MakeMysqlDimensionPoller(*dim);
  ASSERT_TRUE(poller.ok()) << poller.status().ToString();
  ASSERT_NE(*poller, nullptr);
  auto company = [&](int64_t id) -> Value {
    const auto* row = (*dim)->snapshot()->Find(I(id));
    return row ? (*row)[1] : Value::String("missing");
  };
  ASSERT_TRUE((*poller)->Poll().ok());
  EXPECT_EQ((*dim)->stats().versions, 0);  // nothing changed since the snapshot

  // Two rows moved to another company in the same second, one new job.
  ASSERT_TRUE(admin_->Execute("UPDATE " + T() + " SET company_id = 11, updated_at = '2024-01-01 00:01:00' WHERE id = 1").ok());
  ASSERT_TRUE(admin_->Execute("UPDATE " + T() + " SET company_id = 21, updated_at = '2024-01-01 00:01:00' WHERE id = 2").ok());
  ASSERT_TRUE(admin_->Execute("INSERT INTO " + T() + " VALUES (4, 40, '2024-01-01 00:01:00')").ok());
  ASSERT_TRUE((*poller)->Poll().ok());
  EXPECT_EQ(company(1), I(11));
  EXPECT_EQ(company(2), I(21));
  EXPECT_EQ(company(3), I(30));
  EXPECT_EQ(company(4), I(40));
  EXPECT_EQ((*dim)->stats().versions, 1);
  EXPECT_EQ((*dim)->stats().changes, 3);
  EXPECT_EQ((*dim)->stats().size, 4);

  // A transaction that committed after the poll but stamped 5 s before the newest change seen.
  ASSERT_TRUE(admin_->Execute("UPDATE " + T() + " SET company_id = 31, updated_at = '2024-01-01 00:00:55' WHERE id = 3").ok());
  ASSERT_TRUE((*poller)->Poll().ok());
  EXPECT_EQ(company(3), I(31));
  EXPECT_EQ((*dim)->stats().versions, 2);
  EXPECT_EQ((*dim)->stats().changes, 4);  // rows 1, 2, 4 re-read within the grace: no change
  ASSERT_TRUE((*poller)->Poll().ok());
  EXPECT_EQ((*dim)->stats().versions, 2);
}

TEST_F(MysqlDimensionTest, PollingNeedsAnUpdatedColumn) {
  ASSERT_TRUE(admin_->Execute("CREATE TABLE " + T() + " (id BIGINT, company_id BIGINT)").ok());
  DimensionConfig c;
  c.name = "job";
  c.uri = "mysql://" + uri_.Display() + "/" + table_;
  c.key = "id";
  c.fields = {{"id", Type::kInt64, ""}, {"company_id", Type::kInt64, ""}};
  auto dim = LoadDimension(c);
  ASSERT_TRUE(dim.ok()) << dim.status().ToString();
  auto none = MakeMysqlDimensionPoller(*dim);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);  // no updated_at: a static snapshot
  c.options.Set("updated_column", {"changed", {}});
  dim = LoadDimension(c);
  ASSERT_TRUE(dim.ok());
  auto bad = MakeMysqlDimensionPoller(*dim);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no column changed"), std::string::npos) << bad.status().message();
}

TEST_F(MysqlDimensionTest, ReportsMissingTablesAndColumns) {
  DimensionConfig c;
  c.name = "job";
  c.uri = "mysql://" + uri_.Display() + "/" + table_;
  c.key = "id";
  c.fields = {{"id", Type::kInt64, ""}, {"company_id", Type::kInt64, ""}};
  auto table = LoadDimension(c);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("table " + table_ + " does not exist"), std::string::npos)
      << table.status().message();

  ASSERT_TRUE(admin_->Execute("CREATE TABLE " + T() + " (id BIGINT, company BIGINT)").ok());
  table = LoadDimension(c);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("has no column company_id (its columns: id, company)"),
            std::string::npos)
      << table.status().message();

  c.options.Set("pasword_file", Option{"x", {"p.toml", 3, 1}});
  table = LoadDimension(c);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("unknown key 'pasword_file'"), std::string::npos)
      << table.status().message();
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// sluice verify compares values as the table stores them: the server itself says how a double
// sent into a DECIMAL(p,s) column is rounded, and AsStored() must give the same; a DATE keeps the
// day, a DATETIME the second.
TEST_F(MysqlSinkTest, AsStoredRoundsLikeTheServer) {
  auto spec = RecruitmentSpec();
  auto sink = OpenSink(*spec, {{"column_types", "dates:DATE,bid_set:DECIMAL(10,1)"}});
  ASSERT_TRUE(sink);
  const size_t bid_set = *spec->OutputSchema().IndexOf("bid_set");
  for (double d : {2.25, 2.35, -2.25, 0.05, 1.45, 12345.65}) {
    const std::string literal = FormatDouble(d) + "e0";
    const std::string server = One("SELECT CAST(" + literal + " AS DECIMAL(10,1))");
    const Value mine = sink->AsStored(bid_set, Value::Double(d));
    EXPECT_EQ(FormatDouble(mine.double_value()), FormatDouble(std::stod(server))) << d << " -> " << server;
  }
  const size_t latest = *spec->OutputSchema().IndexOf("latest_update_time");
  EXPECT_EQ(sink->AsStored(latest, Value::TimeMicros(kT + 1'234'567)).time_value().micros,
            FloorTo(kT + 1'234'567, 1'000'000));
}

}  // namespace
}  // namespace sluice
