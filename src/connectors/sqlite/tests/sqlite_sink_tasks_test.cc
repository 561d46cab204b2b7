// Tasks in the SQLite sink (issue 16): a claim bumps the task's fence and returns its committed
// state and positions; a commit carrying an older fence is refused whole (kFenced); the legacy
// one-per-pipeline state moves into task rows. Expected rows are read back with plain SQL.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "connectors/sqlite/sqlite_sink.h"
#include "runtime/source.h"
#include "runtime/tests/task_sink_test_util.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using task_sink_test::HeldState;
using task_sink_test::LegacyState;
using task_sink_test::Owner;
using task_sink_test::ReleasedProgress;
using task_sink_test::TaskCheckpoint;
using Row = std::vector<Value>;

class SqliteSinkTasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("sluice_sqlite_tasks_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "out.db").string();
    ctx_ = task_sink_test::TasksContext("orders");
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Opens a sink on the test's file with `ctx` (the test's context: with tasks).
  Result<std::unique_ptr<Sink>> OpenSink(const SinkContext& ctx) {
    SinkConfig c;
    c.uri = "sqlite:" + db_;
    c.table = "out";
    c.options.section_location = {"test.toml", 1, 1};
    ASSIGN_OR_RETURN(auto sink, SqliteSink::Make(c));
    RETURN_IF_ERROR(sink->Open(ctx));
    return sink;
  }
  Result<std::unique_ptr<Sink>> OpenSink() { return OpenSink(ctx_); }
  /// Opens a sink as an older sluice does: one state for the pipeline, no tasks.
  Result<std::unique_ptr<Sink>> OpenLegacySink() {
    SinkContext legacy_ctx = ctx_;
    legacy_ctx.tasks = false;
    return OpenSink(legacy_ctx);
  }

  std::vector<std::string> Query(const std::string& sql) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
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

TEST_F(SqliteSinkTasksTest, TwoSinksOnOneFileAClaimFencesTheEarlierOwner) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = OpenSink();
  ASSERT_TRUE(b.ok()) << b.status().ToString();

  auto first = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->fence, 1);
  EXPECT_TRUE(first->state.empty());
  EXPECT_TRUE(first->positions.empty());

  // A commits the task: rows, position 10, one held record in the state.
  const TaskState st = HeldState(100);
  const std::string blob = st.Serialize(nullptr);
  const std::vector<Row> rows = {{Value::String("x"), Value::Int(1)}};
  ASSERT_TRUE((*a)->Commit(TaskCheckpoint(&rows, {{"in", 3, 10}}, 3, first->fence, st.progress, &blob)).ok());

  // B claims it: fence 2, with A's state and position as committed.
  auto second = (*b)->ClaimTask(TaskId{"in", 3}, Owner("b"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->fence, 2);
  EXPECT_EQ(second->state, blob);
  EXPECT_EQ(second->positions.at(3), 10);
  EXPECT_EQ(Query("SELECT owner, fence FROM _sluice_tasks"), std::vector<std::string>{"b@h pid 1|2"});

  // A, cut off, commits again with its old fence: nothing of it lands.
  const std::vector<Row> more = {{Value::String("y"), Value::Int(2)}};
  Status s = (*a)->Commit(TaskCheckpoint(&more, {{"in", 3, 20}}, 3, first->fence, TaskProgress{}, &blob));
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_EQ(Query("SELECT id FROM out ORDER BY id"), std::vector<std::string>{"x"});
  EXPECT_EQ(Query("SELECT offset FROM _sluice_positions WHERE partition = 3"), std::vector<std::string>{"10"});
  EXPECT_EQ(Query("SELECT max_event_time FROM _sluice_tasks"), std::vector<std::string>{"100"});

  // B commits with its fence; a release clears the owner, and a state left out (null) stays.
  const TaskProgress later = ReleasedProgress();
  ASSERT_TRUE((*b)->Commit(TaskCheckpoint(&more, {{"in", 3, 20}}, 3, second->fence, later, nullptr, true)).ok());
  EXPECT_EQ(Query("SELECT id FROM out ORDER BY id"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(Query("SELECT owner, max_event_time, watermark, enforced, idle FROM _sluice_tasks"),
            std::vector<std::string>{"|200|∅|50|1"});
  auto progress = (*a)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok());
  ASSERT_EQ(progress->size(), 1u);
  EXPECT_EQ((*progress)[0].task, (TaskId{"in", 3}));
  EXPECT_EQ((*progress)[0].fence, 2);
  EXPECT_EQ((*progress)[0].progress, later);
  auto third = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->fence, 3);
  EXPECT_EQ(third->state, blob);  // unchanged by the commit without a state
  EXPECT_EQ(third->positions.at(3), 20);
}

TEST_F(SqliteSinkTasksTest, ACommitWithAnUnclaimedTaskIsFenced) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->Commit(TaskCheckpoint(nullptr, {{"in", 0, 1}}, 0, 1)).code(), StatusCode::kFenced);
  EXPECT_TRUE(Query("SELECT * FROM _sluice_positions").empty());
}

TEST_F(SqliteSinkTasksTest, TheLegacyStateMovesIntoTaskRows) {
  // A run of an older sluice: one state row for the pipeline.
  {
    auto sink = OpenLegacySink();
    ASSERT_TRUE(sink.ok());
    const std::string blob = LegacyState().Serialize(nullptr);
    ASSERT_TRUE((*sink)->Commit(task_sink_test::LegacyCheckpoint({{"in", 0, 8}, {"in", 1, 6}}, &blob)).ok());
    // A sink that is not told to use tasks leaves the legacy state alone.
    auto again = OpenLegacySink();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ((*again)->LoadState().value(), blob);
  }
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Query("SELECT * FROM _sluice_state").empty());
  EXPECT_EQ(Query("SELECT source, partition, fence, max_event_time, enforced FROM _sluice_tasks ORDER BY partition"),
            (std::vector<std::string>{"in|0|0|100|70", "in|1|0|90|70"}));
  auto claim = (*a)->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->fence, 1);
  EXPECT_EQ(claim->positions.at(1), 6);
  ASSERT_NO_FATAL_FAILURE(task_sink_test::ExpectLegacyPartitionOne(claim->state));
  // A second open (another process) finds the tasks and migrates nothing again.
  auto b = OpenSink();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Query("SELECT count(*) FROM _sluice_tasks"), std::vector<std::string>{"2"});
}

TEST_F(SqliteSinkTasksTest, ALegacyStateRowNextToTaskRowsIsRefusedAtOpenAndCommit) {
  // A new process holds a task (the state lives in _sluice_tasks)...
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto claim = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  // ...when an older sluice, still running (a rolling upgrade), commits its one state row.
  {
    auto old = OpenLegacySink();
    ASSERT_TRUE(old.ok());
    WindowState ws;
    ws.max_event_times[{"in", 0}] = 100;
    ws.held.push_back(HeldRecord{"held-by-old", 0, 4, 0});
    const std::string blob = ws.Serialize(nullptr);
    Checkpoint cp;
    cp.positions = {{"in", 0, 5}};
    cp.state = &blob;
    ASSERT_TRUE((*old)->Commit(cp).ok());
  }
  // The new process's next commit refuses, and so does a start of another one.
  TaskState st;
  const std::string blob = st.Serialize(nullptr);
  Status s = (*a)->Commit(TaskCheckpoint(nullptr, {{"in", 0, 9}}, 0, claim->fence, st.progress, &blob));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("every process of a pipeline must run a version with per-partition state"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(Query("SELECT offset FROM _sluice_positions"), std::vector<std::string>{"5"});
  auto b = OpenSink();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("stop them all, then start"), std::string::npos) << b.status().message();
  // The row is left for the operator.
  EXPECT_EQ(Query("SELECT count(*) FROM _sluice_state"), std::vector<std::string>{"1"});
}

}  // namespace
}  // namespace sluice
