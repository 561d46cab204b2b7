// One merge rule, three implementations: the same partial aggregates (deltas), committed in
// checkpoints split in several ways, must give the same rows through the engine's merge
// (MergeDeltas within a checkpoint, MergeMetric across), the SQLite sink and the MySQL sink, and
// those rows must be the ones worked out by hand below. The cases are where the three used to
// differ: last() on equal event times with a stored NULL (SQLite kept the NULL), a delta whose
// last() saw no record (no time), averages with and without a default, min/max with NULLs.
//
// MariaDB/MySQL: root without a password on 127.0.0.1:3306, database `sluice` (created when
// missing), or the server named by $SLUICE_TEST_MYSQL_URI. Unreachable: the MySQL part FAILS
// when CI says so (src/core/tests/ci_rule.h), else is skipped loudly; the engine and SQLite
// parts run either way.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "connectors/mysql/mysql_connection.h"
#include "connectors/mysql/mysql_sink.h"
#include "connectors/mysql/mysql_sql.h"
#include "connectors/sqlite/sqlite_sink.h"
#include "core/tests/ci_rule.h"
#include "core/time.h"
#include "operators/aggregator.h"
#include "operators/tests/aggregate_test_util.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using aggregate_test::AddKey;
using aggregate_test::AddMetric;
using aggregate_test::MakeDelta;
using aggregate_test::Rec;

const Value N;
Value I(int64_t v) { return Value::Int(v); }
Value D(double v) { return Value::Double(v); }
Value S(const char* v) { return Value::String(v); }

const int64_t kT = *ParseTimestamp("2024-05-01 10:00:00");
constexpr int64_t kSec = kMicrosPerSecond;

/// Key k; metrics n = count(), total = sum(int), mean = round(avg(int), 2) default 0,
/// dmean = avg(double), lo = min(double), hi = max(string), latest = last(int),
/// lstr = last(string).
std::unique_ptr<AggregateSpec> Spec() {
  auto a = std::make_unique<AggregateSpec>();
  a->window_micros = kMicrosPerHour;
  a->emit_window_start = false;
  a->emit_window_end = false;
  AddKey(*a, "k", Type::kString);
  AddMetric(*a, "n", AggFn::kCount, Type::kNull, Type::kInt64);
  AddMetric(*a, "total", AggFn::kSum, Type::kInt64, Type::kInt64);
  AddMetric(*a, "mean", AggFn::kAvg, Type::kInt64, Type::kDouble, 2, Value::Double(0));
  AddMetric(*a, "dmean", AggFn::kAvg, Type::kDouble, Type::kDouble);
  AddMetric(*a, "lo", AggFn::kMin, Type::kDouble, Type::kDouble);
  AddMetric(*a, "hi", AggFn::kMax, Type::kString, Type::kString);
  AddMetric(*a, "latest", AggFn::kLast, Type::kInt64, Type::kInt64);
  AddMetric(*a, "lstr", AggFn::kLast, Type::kString, Type::kString);
  return a;
}

/// One group: its deltas, in the order they are produced, and the row expected by hand.
struct Group {
  std::string key;
  std::vector<std::vector<Rec>> deltas;  ///< the records of each delta
  std::vector<Value> expected;           ///< k, n, total, mean, dmean, lo, hi, latest, lstr
};

// Record arguments, in metric order: n (unused), total, mean, dmean, lo, hi, latest, lstr.
std::vector<Group> Groups() {
  // last() skipped: the record does not match latest and lstr (their delta has no time).
  const std::vector<bool> no_last = {true, true, true, true, true, true, false, false};
  return {
      // Equal times, the stored last() is NULL, then a value arrives: the value wins.
      {"tie_null_first",
       {{Rec({N, I(1), I(1), D(1), D(1), S("a"), N, N}, kT)},
        {Rec({N, I(2), I(2), D(2), D(2), S("b"), I(5), S("x")}, kT)}},
       {S("tie_null_first"), I(2), I(3), D(1.5), D(1.5), D(1), S("b"), I(5), S("x")}},
      // The same, the value first: a later NULL at the same time does not replace it.
      {"tie_value_first",
       {{Rec({N, I(2), I(2), D(2), D(2), S("b"), I(5), S("x")}, kT)},
        {Rec({N, I(1), I(1), D(1), D(1), S("a"), N, N}, kT)}},
       {S("tie_value_first"), I(2), I(3), D(1.5), D(1.5), D(1), S("b"), I(5), S("x")}},
      // Three values at one time: the largest, whatever the order; nothing else matched
      // (sum 0, avg default 0 or NULL, min/max NULL).
      {"tie_values",
       {{Rec({N, N, N, N, N, N, I(3), S("b")}, kT)},
        {Rec({N, N, N, N, N, N, I(7), S("a")}, kT)},
        {Rec({N, N, N, N, N, N, N, N}, kT)}},
       {S("tie_values"), I(3), I(0), D(0), N, N, N, I(7), S("b")}},
      // Newer beats older in either order.
      {"older_after_newer",
       {{Rec({N, I(5), I(1), D(0.5), D(2.5), S("q"), I(9), S("new")}, kT + 10 * kSec)},
        {Rec({N, I(3), I(2), D(0.25), D(-1), S("r"), I(2), S("old")}, kT)}},
       {S("older_after_newer"), I(2), I(8), D(1.5), D(0.375), D(-1), S("r"), I(9), S("new")}},
      // A newer NULL replaces an older value.
      {"newer_null",
       {{Rec({N, I(1), I(1), D(1), D(1), S("a"), I(5), S("s")}, kT)},
        {Rec({N, N, N, N, N, N, N, N}, kT + kSec)}},
       {S("newer_null"), I(2), I(1), D(1), D(1), D(1), S("a"), N, N}},
      // A delta whose last() saw no record sends no time: it changes nothing, first or last.
      {"no_time",
       {{Rec({N, I(1), I(1), D(0.5), D(3), S("c"), I(1), S("ignored")}, kT, no_last)},
        {Rec({N, I(1), I(1), D(0.25), D(2), S("d"), I(4), S("z")}, kT + kSec)},
        {Rec({N, I(1), I(2), D(1), D(4), S("a"), I(1), S("ignored")}, kT + 9 * kSec, no_last)}},
       {S("no_time"), I(3), I(3), D(1.33), D(1.75 / 3), D(2), S("d"), I(4), S("z")}},
  };
}

/// How a run cuts each group's deltas into checkpoints: checkpoint c holds, of every group,
/// the deltas whose index `cut` maps to c.
struct Split {
  std::string name;
  std::function<int(size_t index, size_t count)> checkpoint;
};

std::vector<Split> Splits() {
  return {
      {"one_checkpoint", [](size_t, size_t) { return 0; }},
      {"one_per_delta", [](size_t i, size_t) { return static_cast<int>(i); }},
      {"one_per_delta_reversed", [](size_t i, size_t n) { return static_cast<int>(n - 1 - i); }},
      {"first_alone", [](size_t i, size_t) { return i == 0 ? 0 : 1; }},
      {"last_alone", [](size_t i, size_t n) { return i + 1 == n ? 1 : 0; }},
  };
}

/// The checkpoints of `split`: each the engine's merge (MergeDeltas) of its deltas.
std::vector<std::vector<DeltaRow>> Checkpoints(const AggregateSpec& a, const Split& split) {
  std::map<int, std::vector<std::vector<DeltaRow>>> parts;
  for (const Group& g : Groups()) {
    for (size_t i = 0; i < g.deltas.size(); ++i) {
      parts[split.checkpoint(i, g.deltas.size())].push_back(
          {MakeDelta(a, 0, {Value::String(g.key)}, g.deltas[i])});
    }
  }
  std::vector<std::vector<DeltaRow>> out;
  for (auto& [c, p] : parts) out.push_back(MergeDeltas(a, std::move(p)));
  return out;
}

/// The engine's rows: the checkpoints merged with MergeMetric, in order.
std::vector<std::vector<Value>> EngineRows(const AggregateSpec& a,
                                           const std::vector<std::vector<DeltaRow>>& cps) {
  std::map<std::string, DeltaRow> groups;
  for (const auto& cp : cps) {
    for (const DeltaRow& d : cp) {
      auto [it, added] = groups.emplace(d.keys[0].string_value(), d);
      if (added) continue;
      for (size_t i = 0; i < a.metrics.size(); ++i) {
        MergeMetric(a.metrics[i], it->second.metrics[i], d.metrics[i]);
      }
    }
  }
  std::vector<std::vector<Value>> out;
  for (const auto& [k, d] : groups) out.push_back(FinalRow(a, d));
  return out;
}

std::string Show(const Value& v) { return v.is_null() ? "NULL" : v.ToString(); }

/// Checks `rows` (any order) against the expected rows; doubles to 1e-12 relative.
void ExpectRows(std::vector<std::vector<Value>> rows, const std::string& who) {
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return Show(x[0]) < Show(y[0]); });
  std::vector<Group> groups = Groups();
  std::sort(groups.begin(), groups.end(), [](const Group& x, const Group& y) { return x.key < y.key; });
  ASSERT_EQ(rows.size(), groups.size()) << who;
  const char* names[] = {"k", "n", "total", "mean", "dmean", "lo", "hi", "latest", "lstr"};
  for (size_t r = 0; r < rows.size(); ++r) {
    ASSERT_EQ(rows[r].size(), groups[r].expected.size()) << who;
    for (size_t c = 0; c < rows[r].size(); ++c) {
      const Value& got = rows[r][c];
      const Value& want = groups[r].expected[c];
      const std::string where = who + ": " + groups[r].key + "." + names[c];
      if (want.type() == Type::kDouble && got.type() == Type::kDouble) {
        EXPECT_NEAR(got.double_value(), want.double_value(),
                    1e-12 * std::max(1.0, std::abs(want.double_value())))
            << where;
      } else {
        EXPECT_EQ(Show(got), Show(want)) << where;
      }
    }
  }
}

Checkpoint Cp(int64_t id, const std::vector<DeltaRow>* deltas) {
  Checkpoint cp;
  cp.id = id;
  cp.deltas = deltas;
  cp.positions = {{"parity", 0, id * 10}};
  return cp;
}

SinkContext Context(const AggregateSpec* a, const std::string& pipeline) {
  SinkContext ctx;
  ctx.pipeline = pipeline;
  ctx.aggregate = a;
  ctx.output = a->OutputSchema();
  ctx.key_columns = a->KeyColumns();
  return ctx;
}

TEST(AggregateParityTest, Engine) {
  auto a = Spec();
  for (const Split& split : Splits()) {
    ExpectRows(EngineRows(*a, Checkpoints(*a, split)), "engine " + split.name);
  }
}

TEST(AggregateParityTest, Sqlite) {
  auto a = Spec();
  const fs::path dir = fs::temp_directory_path() / ("sluice_parity_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const Split& split : Splits()) {
    SinkConfig config;
    config.uri = "sqlite:" + (dir / (split.name + ".db")).string();
    config.table = "parity";
    auto sink = SqliteSink::Make(config);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ASSERT_TRUE((*sink)->Open(Context(a.get(), "parity")).ok());
    const auto cps = Checkpoints(*a, split);
    for (size_t i = 0; i < cps.size(); ++i) {
      const Status s = (*sink)->Commit(Cp(static_cast<int64_t>(i + 1), &cps[i]));
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    auto rows = (*sink)->ReadOutput();
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ExpectRows(*rows, "sqlite " + split.name);
    (*sink)->Close();
  }
  fs::remove_all(dir);
}

std::string ServerUri() {
  const char* env = std::getenv("SLUICE_TEST_MYSQL_URI");
  return env && *env ? env : "mysql://root@127.0.0.1:3306/sluice";
}

TEST(AggregateParityTest, Mysql) {
  auto uri = mysql::ParseUri(ServerUri(), false);
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  mysql::Connection::Options o;
  o.uri = *uri;
  o.timeout_seconds = 5;
  o.uri.database = "information_schema";
  auto admin = mysql::Connection::Open(o);
  if (!admin.ok()) {
    SLUICE_SKIP_OR_FAIL("MariaDB/MySQL is not reachable at " + uri->Display() + " (" +
                        admin.status().message() + "); start it with `make services`");
  }
  ASSERT_TRUE((*admin)
                  ->Execute("CREATE DATABASE IF NOT EXISTS " +
                            mysql::QuoteIdentifier(uri->database) + " CHARACTER SET utf8mb4")
                  .ok());
  auto a = Spec();
  static std::atomic<int> counter{0};
  for (const Split& split : Splits()) {
    const std::string table = "parity_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    const std::string db = mysql::QuoteIdentifier(uri->database) + ".";
    auto drop = [&] {
      (void)(*admin)->Execute("DROP VIEW IF EXISTS " + db + mysql::QuoteIdentifier(table));
      (void)(*admin)->Execute("DROP TABLE IF EXISTS " + db +
                              mysql::QuoteIdentifier(InternalTableName(table)));
      (void)(*admin)->Execute("DELETE FROM " + db + "_sluice_positions WHERE pipeline = " +
                              mysql::StringLiteral(table));
    };
    SinkConfig config;
    config.uri = "mysql://" + uri->Display();
    config.table = table;
    config.options.section_location = {"test.toml", 1, 1};
    auto made = MysqlSink::Make(config);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    std::unique_ptr<Sink> sink = std::move(made).value();
    const Status open = sink->Open(Context(a.get(), table));
    ASSERT_TRUE(open.ok()) << open.ToString();
    const auto cps = Checkpoints(*a, split);
    for (size_t i = 0; i < cps.size(); ++i) {
      const Status s = sink->Commit(Cp(static_cast<int64_t>(i + 1), &cps[i]));
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    auto rows = sink->ReadOutput();
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ExpectRows(*rows, "mysql " + split.name);
    sink->Close();
    drop();
  }
}

}  // namespace
}  // namespace sluice
