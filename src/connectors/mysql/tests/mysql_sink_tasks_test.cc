// Tasks in the MySQL sink (issue 16), against a real MariaDB/MySQL server (root without a
// password on 127.0.0.1:3306, or the server of $SLUICE_TEST_MYSQL_URI; each test makes its own
// database, `sluice_tasks_<pid>_<n>` — prefix from $SLUICE_TEST_MYSQL_TASKS_DB_PREFIX — and drops
// it). Unreachable server: FAIL when CI=true, else skipped loudly.
//
// A claim bumps the task's fence and returns its committed state and positions; a commit
// carrying an older fence is refused whole (kFenced); a commit in doubt is resolved by reading
// back positions and fences; a claim waits for a commit of the task in flight; the legacy
// one-per-pipeline state moves into task rows (and one written next to task rows is refused); and two Runners on one database (a fake group
// source, as RunnerTasksTest) hand a partition over with its held records. Expected rows are
// worked out by hand and read back with plain SQL.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/mysql/mysql_connection.h"
#include "connectors/mysql/mysql_sink.h"
#include "core/tests/ci_rule.h"
#include "operators/tests/aggregate_test_util.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/source.h"
#include "runtime/tests/group_runner_test_util.h"
#include "runtime/tests/task_sink_test_util.h"

namespace sluice {
namespace {

using task_sink_test::HeldState;
using task_sink_test::LegacyState;
using task_sink_test::Owner;
using task_sink_test::ReleasedProgress;
using task_sink_test::TaskCheckpoint;
using Row = std::vector<Value>;

std::string ServerUri() {
  const char* env = std::getenv("SLUICE_TEST_MYSQL_URI");
  return env && *env ? env : "mysql://root@127.0.0.1:3306/sluice";
}

std::string DatabasePrefix() {
  const char* env = std::getenv("SLUICE_TEST_MYSQL_TASKS_DB_PREFIX");
  return env && *env ? env : "sluice_tasks_";
}

/// Makes a database of its own for each test (dropped after it) and an admin connection to it.
class MysqlTasksBase : public ::testing::Test {
 protected:
  void SetUp() override {
    auto uri = mysql::ParseUri(ServerUri(), false);
    ASSERT_TRUE(uri.ok()) << uri.status().ToString();
    server_ = *uri;
    static std::atomic<int> counter{0};
    server_.database = DatabasePrefix() + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    mysql::Connection::Options o;
    o.uri = server_;
    o.uri.database = "information_schema";
    o.timeout_seconds = 5;
    auto bootstrap = mysql::Connection::Open(o);
    if (!bootstrap.ok()) {
      const std::string why = "MariaDB/MySQL is not reachable at " + o.uri.Display() + " (" +
                              bootstrap.status().message() + "); start it with `make services`";
      SLUICE_SKIP_OR_FAIL(why);
    }
    ASSERT_TRUE((*bootstrap)->Execute("CREATE DATABASE " + mysql::QuoteIdentifier(server_.database) +
                                      " CHARACTER SET utf8mb4").ok());
    o.uri = server_;
    auto c = mysql::Connection::Open(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    admin_ = std::move(c).value();
  }

  void TearDown() override {
    if (admin_) (void)admin_->Execute("DROP DATABASE IF EXISTS " + mysql::QuoteIdentifier(server_.database));
  }

  std::string SinkUri() const { return "mysql://" + server_.Display(); }

  /// Runs `sql` on the admin connection and returns the rows as "a|b|NULL" lines.
  std::vector<std::string> Lines(const std::string& sql) {
    std::vector<std::string> out;
    Status s = admin_->Query(sql, [&](mysql::RowView r) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) line += (i ? "|" : "") + (r[i] ? std::string(*r[i]) : std::string("NULL"));
      out.push_back(line);
      return Status::OK();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  mysql::Uri server_;
  std::unique_ptr<mysql::Connection> admin_;
};

class MysqlSinkTasksTest : public MysqlTasksBase {
 protected:
  void SetUp() override {
    MysqlTasksBase::SetUp();
    ctx_ = task_sink_test::TasksContext("orders");
  }

  Result<std::unique_ptr<MysqlSink>> OpenSink(const SinkContext& ctx) {
    SinkConfig c;
    c.uri = SinkUri();
    c.table = "out";
    c.options.section_location = {"test.toml", 1, 1};
    ASSIGN_OR_RETURN(auto sink, MysqlSink::Make(c));
    std::unique_ptr<MysqlSink> out(static_cast<MysqlSink*>(sink.release()));
    RETURN_IF_ERROR(out->Open(ctx));
    return out;
  }
  Result<std::unique_ptr<MysqlSink>> OpenSink() { return OpenSink(ctx_); }

  SinkContext ctx_;
};

TEST_F(MysqlSinkTasksTest, AClaimBumpsTheFenceAndAZombieCommitIsRefusedWhole) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = OpenSink();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE((*a)->SupportsTasks());

  auto first = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->fence, 1);
  EXPECT_TRUE(first->state.empty());
  EXPECT_TRUE(first->positions.empty());

  // A commits the task: a row, position 10 (and its generation partition's), a held record.
  TaskState st = HeldState(100);
  st.progress.watermark = 90;
  const std::string blob = st.Serialize(nullptr);
  const std::vector<Row> rows = {{Value::String("x"), Value::Int(1)}};
  Status s = (*a)->Commit(TaskCheckpoint(
      &rows, {{"in", 3, 10}, {"in", kGenerationPartitionBase + 3, 2}, {"in", 4, 77}}, 3, first->fence, st.progress,
      &blob));
  ASSERT_TRUE(s.ok()) << s.ToString();

  // B claims it: fence 2, with A's state and the positions of partition 3 (not of 4).
  auto second = (*b)->ClaimTask(TaskId{"in", 3}, Owner("b"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->fence, 2);
  EXPECT_EQ(second->state, blob);
  EXPECT_EQ(second->positions, (std::map<int32_t, int64_t>{{3, 10}, {kGenerationPartitionBase + 3, 2}}));
  EXPECT_EQ(Lines("SELECT owner, fence FROM _sluice_tasks"), std::vector<std::string>{"b@h pid 1|2"});

  // A, cut off, commits again with its old fence: nothing of it lands.
  const std::vector<Row> more = {{Value::String("y"), Value::Int(2)}};
  s = (*a)->Commit(TaskCheckpoint(&more, {{"in", 3, 20}}, 3, first->fence, TaskProgress{}, &blob));
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_EQ(Lines("SELECT id FROM `out` ORDER BY id"), std::vector<std::string>{"x"});
  EXPECT_EQ(Lines("SELECT `offset` FROM _sluice_positions WHERE `partition` = 3"), std::vector<std::string>{"10"});
  EXPECT_EQ(Lines("SELECT max_event_time, watermark FROM _sluice_tasks"), std::vector<std::string>{"100|90"});
  // The same sink goes on working for tasks it does own (the refusal left no transaction open).
  auto other = (*a)->ClaimTask(TaskId{"in", 4}, Owner("a"));
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->positions, (std::map<int32_t, int64_t>{{4, 77}}));

  // B commits with its fence; a release clears the owner, and a state left out (null) stays.
  const TaskProgress later = ReleasedProgress();
  s = (*b)->Commit(TaskCheckpoint(&more, {{"in", 3, 20}}, 3, second->fence, later, nullptr, true));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT id FROM `out` ORDER BY id"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(Lines("SELECT owner, max_event_time, watermark, enforced, idle, LENGTH(state) FROM _sluice_tasks "
                  "WHERE `partition` = 3"),
            std::vector<std::string>{"|200|NULL|50|1|" + std::to_string(blob.size())});
  auto progress = (*a)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok()) << progress.status().ToString();
  ASSERT_EQ(progress->size(), 2u);
  EXPECT_EQ((*progress)[0].task, (TaskId{"in", 3}));
  EXPECT_EQ((*progress)[0].fence, 2);
  EXPECT_EQ((*progress)[0].owner, "");
  EXPECT_EQ((*progress)[0].progress, later);
  EXPECT_GT((*progress)[0].updated_micros, 0);
  EXPECT_EQ((*progress)[1].task, (TaskId{"in", 4}));
  EXPECT_EQ((*progress)[1].owner, "a@h pid 1");
  EXPECT_EQ((*progress)[1].progress, TaskProgress{});
  auto third = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->fence, 3);
  EXPECT_EQ(third->state, blob);  // unchanged by the commit without a state
  EXPECT_EQ(third->positions.at(3), 20);
}

TEST_F(MysqlSinkTasksTest, ACommitWithAnUnclaimedTaskIsFenced) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const std::vector<Row> rows = {{Value::String("x"), Value::Int(1)}};
  EXPECT_EQ((*a)->Commit(TaskCheckpoint(&rows, {{"in", 0, 1}}, 0, 1)).code(), StatusCode::kFenced);
  EXPECT_TRUE(Lines("SELECT * FROM _sluice_positions").empty());
  EXPECT_TRUE(Lines("SELECT * FROM `out`").empty());
}

// The connection is lost at COMMIT (not applied) and, before the retry, another process claims
// the task: the retry must not write the checkpoint (the new owner reads from the committed
// position), though the stored positions would not tell it apart.
TEST_F(MysqlSinkTasksTest, ACommitInDoubtIsFencedWhenTheTaskWasClaimedMeanwhile) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = OpenSink();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto claim = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  const std::vector<Row> rows = {{Value::String("x"), Value::Int(1)}};
  const Checkpoint cp = TaskCheckpoint(&rows, {{"in", 0, 5}}, 0, claim->fence);
  bool fired = false;
  (*a)->SetTestHook([&](std::string_view stage) {
    if (stage != "at_commit" || fired) return Status::OK();
    fired = true;
    return Status::Unavailable("simulated: the COMMIT's answer was lost, and it was not applied");
  });
  Status s = (*a)->Commit(cp);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  auto taken = (*b)->ClaimTask(TaskId{"in", 0}, Owner("b"));
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_TRUE(taken->positions.empty());
  s = (*a)->Commit(cp);
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_TRUE(Lines("SELECT * FROM `out`").empty());
  EXPECT_TRUE(Lines("SELECT * FROM _sluice_positions").empty());
}

// Lost at COMMIT but applied (the answer lost after the COMMIT): the retry finds the positions,
// the fence and the task's progress as the checkpoint has them and writes nothing again. A
// checkpoint with the same positions but another progress is written.
TEST_F(MysqlSinkTasksTest, ACommitInDoubtThatWasAppliedIsNotWrittenTwice) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto claim = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  const std::vector<Row> rows = {{Value::String("x"), Value::Int(1)}};
  TaskProgress p1;
  p1.max_event_time = 1000;
  const Checkpoint cp = TaskCheckpoint(&rows, {{"in", 0, 5}}, 0, claim->fence, p1);
  bool fired = false;
  (*a)->SetTestHook([&](std::string_view stage) {
    if (stage != "after_commit" || fired) return Status::OK();
    fired = true;
    return Status::Unavailable("simulated: the COMMIT's answer was lost after it was applied");
  });
  Status s = (*a)->Commit(cp);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  s = (*a)->Commit(cp);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT id FROM `out`"), std::vector<std::string>{"x"});  // once
  // Next: same position, the task's progress moved (an idle partition): lost at COMMIT, not
  // applied; the retry writes it.
  const std::vector<Row> more = {{Value::String("y"), Value::Int(2)}};
  TaskProgress p2 = p1;
  p2.idle = true;
  const Checkpoint next = TaskCheckpoint(&more, {{"in", 0, 5}}, 0, claim->fence, p2);
  fired = false;
  (*a)->SetTestHook([&](std::string_view stage) {
    if (stage != "at_commit" || fired) return Status::OK();
    fired = true;
    return Status::Unavailable("simulated: the COMMIT's answer was lost, and it was not applied");
  });
  s = (*a)->Commit(next);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  s = (*a)->Commit(next);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT id FROM `out` ORDER BY id"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(Lines("SELECT idle FROM _sluice_tasks"), std::vector<std::string>{"1"});
}

// A claim that comes while the owner's commit of the task is between its statements and its
// COMMIT waits for it (the commit holds the task row's lock from its first statement), and then
// returns that commit's position: the claim never reads a position the old owner overwrites.
TEST_F(MysqlSinkTasksTest, AClaimWaitsForACommitOfTheTaskInFlight) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = OpenSink();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto claim = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  const std::vector<Row> rows = {{Value::String("x"), Value::Int(1)}};
  const Checkpoint cp = TaskCheckpoint(&rows, {{"in", 0, 5}}, 0, claim->fence);
  std::future<Result<TaskClaim>> taken;
  bool waited = false;
  (*a)->SetTestHook([&](std::string_view stage) {
    if (stage != "before_commit") return Status::OK();
    taken = std::async(std::launch::async, [&] { return (*b)->ClaimTask(TaskId{"in", 0}, Owner("b")); });
    waited = taken.wait_for(std::chrono::milliseconds(500)) == std::future_status::timeout;
    return Status::OK();
  });
  Status s = (*a)->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(waited) << "the claim did not wait for the commit in flight";
  auto got = taken.get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->fence, 2);
  EXPECT_EQ(got->positions, (std::map<int32_t, int64_t>{{0, 5}}));
  // And the old owner is fenced from now on.
  EXPECT_EQ((*a)->Commit(cp).code(), StatusCode::kFenced);
}

// Claims of one task racing each other (a new task, then an existing one) each get a fence of
// their own, none deadlocks: the claim's upsert takes the row's exclusive lock at once (an
// INSERT IGNORE followed by SELECT ... FOR UPDATE would have two claims share a lock and
// deadlock upgrading it).
TEST_F(MysqlSinkTasksTest, ClaimsRacingForOneTaskEachGetTheirOwnFence) {
  constexpr int kThreads = 6, kClaims = 15;
  std::vector<std::unique_ptr<MysqlSink>> sinks;
  for (int i = 0; i < kThreads; ++i) {
    auto s = OpenSink();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sinks.push_back(std::move(s).value());
  }
  std::mutex mu;
  std::vector<int64_t> fences;
  std::vector<std::string> errors;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      for (int k = 0; k < kClaims; ++k) {
        auto c = sinks[static_cast<size_t>(i)]->ClaimTask(TaskId{"in", 5}, Owner("t" + std::to_string(i)));
        std::lock_guard<std::mutex> lock(mu);
        if (c.ok()) {
          fences.push_back(c->fence);
        } else {
          errors.push_back(c.status().ToString());
        }
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed claims, first: " << errors.front();
  std::sort(fences.begin(), fences.end());
  std::vector<int64_t> want(kThreads * kClaims);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int64_t>(i) + 1;
  EXPECT_EQ(fences, want);
  EXPECT_EQ(Lines("SELECT fence FROM _sluice_tasks"), std::vector<std::string>{std::to_string(kThreads * kClaims)});
}

TEST_F(MysqlSinkTasksTest, TheLegacyStateMovesIntoTaskRows) {
  // A run of an older sluice: one state row for the pipeline.
  const std::string blob = LegacyState().Serialize(nullptr);
  {
    SinkContext legacy_ctx = ctx_;
    legacy_ctx.tasks = false;
    auto sink = OpenSink(legacy_ctx);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ASSERT_TRUE((*sink)->Commit(task_sink_test::LegacyCheckpoint({{"in", 0, 8}, {"in", 1, 6}}, &blob)).ok());
    // A sink that is not told to use tasks leaves the legacy state alone.
    auto again = OpenSink(legacy_ctx);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ((*again)->LoadState().value(), blob);
  }
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Lines("SELECT * FROM _sluice_state").empty());
  EXPECT_EQ(Lines("SELECT source, `partition`, fence, owner, max_event_time, enforced FROM _sluice_tasks "
                  "ORDER BY `partition`"),
            (std::vector<std::string>{"in|0|0||100|70", "in|1|0||90|70"}));
  auto claim = (*a)->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ(claim->fence, 1);
  EXPECT_EQ(claim->positions.at(1), 6);
  ASSERT_NO_FATAL_FAILURE(task_sink_test::ExpectLegacyPartitionOne(claim->state));
  EXPECT_EQ(TaskState::Parse(claim->state, nullptr)->progress.enforced, 70);
  // A second open (another process) finds the tasks and migrates nothing again.
  {
    auto b = OpenSink();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
  }
  // A legacy row written meanwhile (an older sluice still running, a rolling upgrade) would be
  // ignored for good: the next commit of a task and the next start refuse, naming what to do,
  // and leave the row, tasks and positions as they are.
  ASSERT_TRUE(admin_->Execute("INSERT INTO _sluice_state VALUES ('orders', X'00', UTC_TIMESTAMP())").ok());
  TaskState later;
  later.progress.max_event_time = 95;
  const std::string later_blob = later.Serialize(nullptr);
  Status s = (*a)->Commit(TaskCheckpoint(nullptr, {{"in", 1, 9}}, 1, claim->fence, later.progress, &later_blob));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("every process of a pipeline must run a version with per-partition state"),
            std::string::npos)
      << s.message();
  auto b = OpenSink();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("stop them all, then start"), std::string::npos) << b.status().message();
  EXPECT_EQ(Lines("SELECT COUNT(*), SUM(fence), MAX(max_event_time) FROM _sluice_tasks"),
            std::vector<std::string>{"2|1|100"});
  EXPECT_EQ(Lines("SELECT `partition`, `offset` FROM _sluice_positions WHERE `partition` = 1"),
            std::vector<std::string>{"1|6"});
  EXPECT_EQ(Lines("SELECT HEX(state) FROM _sluice_state"), std::vector<std::string>{"00"});
}

TEST_F(MysqlSinkTasksTest, ALegacyStateWithOpenWindowsIsRefused) {
  auto made = aggregate_test::RecruitmentSpec();
  AggregateSpec& spec = *made;
  spec.append_mode = true;
  WindowState old;
  old.max_event_times[{"in", 0}] = 100;
  DeltaRow open;
  open.window_start = 0;
  open.keys = {Value::Int(1), Value::String("2024-01-01"), Value::Int(0), Value::Int(2), Value::Int(3),
               Value::Int(4)};
  open.metrics.resize(spec.metrics.size());
  old.open.push_back(open);
  const std::string blob = old.Serialize(&spec);
  SinkContext ctx = ctx_;
  ctx.aggregate = &spec;
  ctx.output = spec.OutputSchema();
  ctx.key_columns = spec.KeyColumns();
  {
    SinkContext legacy_ctx = ctx;
    legacy_ctx.tasks = false;
    auto sink = OpenSink(legacy_ctx);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    Checkpoint cp;
    cp.positions = {{"in", 0, 8}};
    cp.state = &blob;
    ASSERT_TRUE((*sink)->Commit(cp).ok());
  }
  auto a = OpenSink(ctx);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("open windows"), std::string::npos) << a.status().ToString();
  EXPECT_EQ(Lines("SELECT COUNT(*) FROM _sluice_state"), std::vector<std::string>{"1"});  // kept
  EXPECT_EQ(Lines("SELECT COUNT(*) FROM _sluice_tasks"), std::vector<std::string>{"0"});
}

// ---------------------------------------------------------------------------------------------
// Two Runners on one MariaDB database sharing a fake group source (as RunnerTasksTest).

using group_test::Rec;
using group_test::WaitFor;

class MysqlRunnerTasksTest : public MysqlTasksBase, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    MysqlTasksBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    RegisterBuiltins();
    group_test::RegisterGroupSource("mysqltasksgroup");
    SetUpGroup("sluice_mysql_runner_tasks");
    scheme_ = "mysqltasksgroup";
    sink_uri_ = SinkUri();
  }
  void TearDown() override {
    TearDownGroup();
    MysqlTasksBase::TearDown();
  }

  /// Reads with the admin connection, which the test thread alone uses (one query at a time).
  std::vector<std::string> Q(const std::string& sql) override {
    std::lock_guard<std::mutex> lock(admin_mu_);
    return Lines(sql);
  }

  std::mutex admin_mu_;
};

TEST_F(MysqlRunnerTasksTest, AMovedPartitionTakesItsHeldRecordsAndProgressAlong) {
  Runner* a = Start("a");
  Start("b");
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  // Partition 0: job 1 (known) at 00:05:00 and job 5 (unknown: held) at 00:05:10;
  // partition 1: job 1 at 00:05:20.
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:10", 5, 10)});
  Produce(1, {Rec("y", "00:05:20", 1, 100)});
  ASSERT_TRUE(WaitPosition(0, 2));
  ASSERT_TRUE(WaitPosition(1, 1));
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().held == 1; }));
  ASSERT_TRUE(WaitFor([&] { return HeldIn(0) == std::vector<std::string>{"1"}; }));
  EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|1|1", "2024-01-01 00:05:00|y|1|100"}));
  EXPECT_EQ(Q("SELECT `partition`, fence, owner <> '' FROM _sluice_tasks ORDER BY `partition`"),
            (std::vector<std::string>{"0|1|1", "1|1|1"}));

  // Partition 0 moves to b: a commits it with its held record and gives it up (owner cleared).
  Command("a", 'r', 0);
  EXPECT_EQ(a->Snapshot().held, 0);
  EXPECT_EQ(Q("SELECT owner FROM _sluice_tasks WHERE `partition` = 0"), std::vector<std::string>{""});
  Command("b", 'a', 0);
  Runner* b = runs_.at("b").runner.get();
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
  EXPECT_EQ(Q("SELECT fence FROM _sluice_tasks WHERE `partition` = 0"), std::vector<std::string>{"2"});
  // Partition 0's watermark came along (00:05:10 - 10 s = 00:05:00): a record of partition 0
  // for the window 00:03 (ends 00:04:00) is late at b, though b never read partition 0 before.
  Produce(0, {Rec("x", "00:03:30", 1, 1000)});
  ASSERT_TRUE(WaitPosition(0, 3));
  ASSERT_TRUE(WaitFor([&] { return DeadLetters("b", "\"reason\":\"late\"") == 1; }));
  // Job 5 becomes known: b applies the held record, once.
  WriteJobs("1,10\n5,50\n");
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 0; }));
  ASSERT_TRUE(WaitFor([&] {
    return Rows() == std::vector<std::string>{"2024-01-01 00:05:00|x|2|11", "2024-01-01 00:05:00|y|1|100"};
  })) << ::testing::PrintToString(Rows());
  ASSERT_TRUE(Stop("a").ok());
  ASSERT_TRUE(Stop("b").ok());
  // Nothing was applied twice, and nothing is held any more in any task.
  EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|2|11", "2024-01-01 00:05:00|y|1|100"}));
  EXPECT_EQ(a->Snapshot().held + b->Snapshot().held, 0);
  EXPECT_EQ(DeadLetters("a", "\"reason\""), 0);
  EXPECT_EQ(DeadLetters("b", "\"reason\""), 1);
  // 00:05:10 and 00:05:20 on 2024-01-01 in microseconds since the epoch.
  EXPECT_EQ(Q("SELECT `partition`, max_event_time FROM _sluice_tasks ORDER BY `partition`"),
            (std::vector<std::string>{"0|1704067510000000", "1|1704067520000000"}));
}

TEST_F(MysqlRunnerTasksTest, AProcessCutOffIsFencedAndStartsAgainFromTheCommittedState) {
  ProcessCutOffIsFencedAndStartsAgain();
}

// RunnerTasksTest.AppendModeKeyedByEmitsEachWindowOnceAcrossMovesAndACutOffProcess on MariaDB:
// append mode over a source keyed by the group key keeps its open windows per task; partitions
// move, a process is cut off after a commit (it stalls, then reads on and is fenced) and a new
// one takes over. Every (k, window) is written by one commit, with the counts of the
// recomputation (group_test::KeyedAppendData), and exactly the late records are dead-lettered.
TEST_F(MysqlRunnerTasksTest, AppendModeKeyedByEmitsEachWindowOnceAcrossMovesAndACutOffProcess) {
  KeyedAppendAcrossMovesAndACutOffProcess(group_test::KeyedAppendData::Make(240, 16));
}

}  // namespace
}  // namespace sluice
