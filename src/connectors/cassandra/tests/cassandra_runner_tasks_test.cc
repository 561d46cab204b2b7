// Append mode with [source] keyed_by into Cassandra (issue 16), against the real server of
// `scripts/services.sh up cassandra` (FAIL when CI=true and it is missing, else a loud skip):
// two Runners of one pipeline share a fake consumer group (group_runner_test_util.h), each
// partition's open windows live in its task state in _sluice_tasks / _sluice_task_state, and
// partitions move between the runners. The table, the commits that wrote each window and the
// dead letters are read back with plain CQL and compared with the recomputation of the test data
// (group_test::KeyedAppendData), as on SQLite, MariaDB and Parquet.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "connectors/cassandra/tests/cassandra_test_util.h"
#include "core/time.h"
#include "runtime/tests/group_runner_test_util.h"

namespace sluice {
namespace {

using cassandra::CqlValue;

class CassandraRunnerTasksTest : public ::testing::Test, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    CASSANDRA_CONNECT_OR_SKIP(conn_);
    RegisterBuiltins();
    group_test::RegisterGroupSource("cassgroup");
    SetUpGroup("sluice_cassandra_runner_tasks");
    // A keyspace of its own per test (the pipeline is always "keyed"), dropped at the end.
    keyspace_ = cassandra_test::kKeyspace + "_rt_" + std::to_string(::getpid()) + "_" +
                std::to_string(WallClockMicros() / 1000000 % 100000) + "_" +
                std::to_string(::testing::UnitTest::GetInstance()->current_test_info()->line());
    scheme_ = "cassgroup";
    sink_uri_ = "cassandra://" + cassandra_test::ServerHostPort() + "/" + keyspace_;
  }
  void TearDown() override {
    TearDownGroup();
    if (conn_) {
      cassandra::QueryOptions q;
      q.page_size = 0;
      auto dropped = conn_->Query("DROP KEYSPACE IF EXISTS " + keyspace_, {}, q);
      EXPECT_TRUE(dropped.ok()) << dropped.status().ToString();
    }
  }

  /// The rows of `cql` (on the test's keyspace, "KS." replaced by it).
  std::vector<std::vector<CqlValue>> Select(std::string cql) {
    for (size_t at = cql.find("KS."); at != std::string::npos; at = cql.find("KS.", at)) {
      cql.replace(at, 2, keyspace_);
    }
    std::lock_guard<std::mutex> lock(mu_);
    cassandra::QueryOptions q;
    q.consistency = cassandra::Consistency::kOne;
    auto r = conn_->QueryAllPages(cql, {}, q);
    // Before the first Open the tables do not exist: no rows yet.
    if (!r.ok()) return {};
    return r->rows;
  }

  // The sink holds no SQL tables: the hooks of GroupRuns read it with CQL.
  std::vector<std::string> Q(const std::string&) override { return {}; }
  std::string KeyedSinkOptions() const override { return "table = \"w\"\n"; }
  std::vector<std::string> PositionOf(int32_t p) override {
    for (const auto& row : Select("SELECT \"position\" FROM KS.\"_sluice_tasks\" WHERE pipeline = 'keyed' AND "
                                  "source = 'in' AND \"partition\" = " + std::to_string(p))) {
      if (!row[0].is_null()) return {std::to_string(row[0].int64())};
    }
    return {};
  }
  std::vector<std::string> KeyedRows() override {
    std::vector<std::string> out;
    for (const auto& row : Select("SELECT window_start, k, n, s FROM KS.w")) {
      // Milliseconds since the epoch; 1704067200 s is 2024-01-01 00:00:00 UTC.
      const int64_t seconds = row[0].int64() / 1000 - 1'704'067'200;
      out.push_back("2024-01-01 " + group_test::KeyedAppendData::Clock(seconds) + "|" + row[1].text() + "|" +
                    std::to_string(row[2].int64()) + "|" + std::to_string(row[3].int64()));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::pair<int32_t, int64_t>> Letters(bool late) {
    std::vector<std::pair<int32_t, int64_t>> out;
    for (const auto& row : Select("SELECT \"partition\", \"offset\", reason FROM KS.\"_sluice_dead_letters\" WHERE "
                                  "pipeline = 'keyed' AND source = 'in' AND \"partition\" IN (0, 1)")) {
      if ((row[2].text() == "late") == late) out.emplace_back(row[0].int32(), row[1].int64());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> LateLetters() override {
    std::vector<std::string> out;
    for (const auto& [p, offset] : Letters(true)) out.push_back(std::to_string(p) + "|" + std::to_string(offset));
    return out;
  }
  std::vector<std::string> OtherLetters() override { return {std::to_string(Letters(false).size())}; }
  std::vector<std::string> KeyedTasks() override {
    std::vector<std::string> out;
    for (const auto& row : Select("SELECT \"partition\", owner, state, state_version FROM KS.\"_sluice_tasks\" "
                                  "WHERE pipeline = 'keyed'")) {
      const bool state = (!row[2].is_null() && !row[2].text().empty()) || !row[3].is_null();
      out.push_back(std::to_string(row[0].int32()) + "|" + (row[1].is_null() ? "" : row[1].text()) + "|" +
                    (state ? "1" : "0"));
    }
    return out;
  }

  /// The append-mode pipeline "keyed" over file `in` (with or without keyed_by), run until
  /// caught up.
  std::unique_ptr<Runner> MakeAppend(const std::string& in, bool keyed) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"keyed\"\ncheckpoint_interval = \"5ms\"\n[source]\nname = \"in\"\nuri = \"" + in +
        "\"\n" + (keyed ? "keyed_by = [\"k\"]\n" : "") +
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nmode = \"append\"\n"
        "keys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"" + sink_uri_ + "\"\ntable = \"w\"\n";
    auto cfg = ParsePipelineConfig(text, "keyed.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    if (!cfg.ok()) return nullptr;
    RunOptions options;
    options.until_caught_up = true;
    auto runner = Runner::Make(std::move(cfg).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    if (!runner.ok()) return nullptr;
    EXPECT_EQ((*runner)->append_on_tasks(), keyed);
    return std::move(runner).value();
  }

  std::unique_ptr<cassandra::Connection> conn_;
  std::mutex mu_;
  std::string keyspace_;
};

// Two processes share the partitions, which move between them; one is cut off after a commit
// and reads on (its commit is refused), a new one takes over. Every (k, window) row is written
// by exactly one commit with the counts of the recomputation, exactly the late records are
// dead-lettered (in _sluice_dead_letters), and both tasks end released with their open windows.
TEST_F(CassandraRunnerTasksTest, AppendModeKeyedByEmitsEachWindowOnceAcrossMovesAndACutOffProcess) {
  KeyedAppendAcrossMovesAndACutOffProcess(group_test::KeyedAppendData::Make(240, 16));
}

// A bounded input writes every open window at its end; a later run finds a record of such a
// window late (TaskState::emitted_before, stored in the task row).
TEST_F(CassandraRunnerTasksTest, AppendModeKeyedByRemembersTheWindowsWrittenAtTheEndOfABoundedInput) {
  KeyedAppendRemembersTheWindowsWrittenAtTheEndOfABoundedInput();
  EXPECT_EQ(KeyedTasks(), std::vector<std::string>{"0||1"});
}

// A run without keyed_by after a keyed one would keep one state and never read the tasks' open
// windows: it is refused at start (the sink, opened without tasks, still lists the task rows),
// and writes nothing.
TEST_F(CassandraRunnerTasksTest, AppendModeWithoutKeyedByRefusesTheTasksOfAKeyedRun) {
  const std::string in = (dir_ / "in.ndjson").string();
  std::ofstream(in) << group_test::Rec("x", "00:05:00", 1, 1) << "\n";
  auto keyed = MakeAppend(in, true);
  ASSERT_NE(keyed, nullptr);
  ASSERT_TRUE(keyed->Run().ok());
  ASSERT_EQ(KeyedTasks(), std::vector<std::string>{"0||1"});
  const std::vector<std::string> rows = KeyedRows();
  std::ofstream(in, std::ios::app) << group_test::Rec("x", "00:07:00", 1, 2) << "\n";
  auto plain = MakeAppend(in, false);
  ASSERT_NE(plain, nullptr);
  Status s = plain->Run();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("keeps this pipeline's state per partition"), std::string::npos) << s.message();
  EXPECT_EQ(KeyedRows(), rows);
}

}  // namespace
}  // namespace sluice
