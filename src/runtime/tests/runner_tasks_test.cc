// Two Runners of one pipeline on one SQLite file, sharing a fake partitioned source whose
// partitions the test hands out like a consumer group (issue 16): state belongs to a partition's
// task, not to a process. A partition that moves takes its held records and its event-time
// progress along; a process that lost a partition while cut off can commit nothing of it
// (kFenced) and starts again from the committed state; held records are neither lost nor
// applied twice. Expected results are counted by hand from the records played.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/tests/group_runner_test_util.h"
#include "runtime/tests/sqlite_query_test_util.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

using group_test::Rec;
using group_test::WaitFor;

using sqlite_test::Query;

class RunnerTasksTest : public ::testing::Test, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    group_test::RegisterGroupSource("group");
    // Two members (workers) in one process: MEMBER/0 and MEMBER/1.
    group_test::RegisterGroupSource("group2", 2);
    SetUpGroup("sluice_runner_tasks");
    db_ = (dir_ / "out.db").string();
    scheme_ = "group";
    sink_uri_ = "sqlite:" + db_;
  }
  void TearDown() override { TearDownGroup(); }

  /// Makes a run of append-mode pipeline `name` over the file `in` into the test's database,
  /// with `[source] keyed_by = ["k"]` when `keyed`, that stops when caught up (its open windows
  /// stay in the state).
  std::unique_ptr<Runner> MakeAppendUntilCaughtUp(const std::string& name, const std::string& in, bool keyed) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"" + name + "\"\ncheckpoint_interval = \"5ms\"\n[source]\nname = \"in\"\nuri = \"" +
        in + "\"\n" + (keyed ? "keyed_by = [\"k\"]\n" : "") +
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nmode = \"append\"\n"
        "keys = [\"k\"]\nmetrics = [\"n = count()\"]\n"
        "[sink]\nuri = \"sqlite:" + db_ + "\"\ntable = \"w\"\n";
    auto cfg = ParsePipelineConfig(text, name + ".toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    RunOptions options;
    options.until_caught_up = true;
    auto runner = Runner::Make(std::move(cfg).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    EXPECT_EQ((*runner)->uses_tasks(), keyed);
    return std::move(runner).value();
  }

  std::vector<std::string> Q(const std::string& sql) override { return Query(db_, sql); }


  std::string db_;
};

TEST_F(RunnerTasksTest, AMovedPartitionTakesItsHeldRecordsAndProgressAlong) {
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

  // Partition 0 moves to b: a commits it with its held record and gives it up.
  Command("a", 'r', 0);
  EXPECT_EQ(a->Snapshot().held, 0);
  Command("b", 'a', 0);
  Runner* b = runs_.at("b").runner.get();
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
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
  ASSERT_TRUE(WaitFor([&] { return HeldIn(0) == std::vector<std::string>{"1"}; }));
  ASSERT_TRUE(Stop("a").ok());
  ASSERT_TRUE(Stop("b").ok());
  // Nothing was applied twice, and nothing is held any more in any task.
  EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|2|11", "2024-01-01 00:05:00|y|1|100"}));
  EXPECT_EQ(a->Snapshot().held + b->Snapshot().held, 0);
  EXPECT_EQ(DeadLetters("a", "\"reason\""), 0);
  EXPECT_EQ(DeadLetters("b", "\"reason\""), 1);
  auto progress = Query(db_, "SELECT partition, max_event_time FROM _sluice_tasks ORDER BY partition");
  // 00:05:10 and 00:05:20 on 2024-01-01 in microseconds since the epoch.
  EXPECT_EQ(progress, (std::vector<std::string>{"0|1704067510000000", "1|1704067520000000"}));
}

TEST_F(RunnerTasksTest, AClaimedTaskKeepsItsProgressAndAStoppedRunReleasesItsTasks) {
  Start("a");
  Start("b");
  Command("a", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 1));
  Command("b", 'a', 1);
  // b commits partition 1, then reads the others' progress: partition 0 at 00:05:00.
  Produce(1, {Rec("y", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(1, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // a goes on to 00:06:00 on partition 0; b, with nothing new, commits (and reads) nothing.
  Produce(0, {Rec("x", "00:06:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 2));
  Command("a", 'r', 0);
  Command("b", 'a', 0);
  ASSERT_TRUE(Stop("b").ok());
  ASSERT_TRUE(Stop("a").ok());
  // Partition 0's committed progress is what a committed (00:06:00, watermark - 10 s), never
  // b's older view of it from before the claim: a task's progress never goes back. The final
  // checkpoint of each run released its tasks (this source revokes nothing when it stops).
  EXPECT_EQ(Query(db_, "SELECT partition, max_event_time, watermark, owner FROM _sluice_tasks ORDER BY partition"),
            (std::vector<std::string>{"0|1704067560000000|1704067550000000|", "1|1704067500000000|1704067490000000|"}));
}

// An older sluice (one state row per pipeline) still running next to this one during an upgrade
// writes `_sluice_state`: the next commit of a task refuses it, and the run ends with that reason
// at once (a retry cannot help; the runner once retried it for good).
TEST_F(RunnerTasksTest, ALegacyStateRowAppearingEndsTheRunWithoutRetrying) {
  Start("a");
  Command("a", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 1));
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, "INSERT INTO _sluice_state VALUES ('tasks', X'00', datetime('now'))", nullptr,
                           nullptr, &err),
              SQLITE_OK)
        << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  Produce(0, {Rec("x", "00:05:01", 1, 2)});
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); })) << "the run did not end";
  const Status& s = runs_.at("a").status;
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("stop them all, then start"), std::string::npos) << s.message();
  EXPECT_EQ(Query(db_, "SELECT offset FROM _sluice_positions WHERE source = 'in' AND partition = 0"),
            std::vector<std::string>{"1"});
}

TEST_F(RunnerTasksTest, ARevokeWithNothingNewReleasesTheTask) {
  Start("a");
  Command("a", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // every later checkpoint is empty
  EXPECT_EQ(Query(db_, "SELECT owner != '' FROM _sluice_tasks WHERE partition = 0"), std::vector<std::string>{"1"});
  Command("a", 'r', 0);
  EXPECT_EQ(Query(db_, "SELECT owner FROM _sluice_tasks WHERE partition = 0"), std::vector<std::string>{""});
  ASSERT_TRUE(Stop("a").ok());
}

TEST_F(RunnerTasksTest, AProcessCutOffIsFencedAndStartsAgainFromTheCommittedState) {
  ProcessCutOffIsFencedAndStartsAgain();
}

// A member whose session expired loses its partition (the group gave it to another process,
// which claimed it): the worker drops what it read of it since the last commit — the result of
// one record and a held record — and the run goes on with its other partition, without being
// fenced. The next owner reads the partition from its last commit, so each record counts once.
TEST_F(RunnerTasksTest, ALostPartitionIsDroppedUncommittedAndTheRunGoesOn) {
  // Checkpoints only when asked for (a revoke, a loss, the end): what a reads stays uncommitted.
  Runner* a = Start("a", "group2", "1h", false, "1h");
  Command("a/0", 'a', 0);
  Command("a/1", 'a', 1);
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:01", 7, 2)});  // job 7: held
  Produce(1, {Rec("y", "00:05:02", 1, 8)});
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().records_in == 3 && a->Snapshot().held == 1; }));
  // The group gives partition 0 to b (a's member was cut off); b claims it and reads it from
  // its last commit (none: the beginning).
  Runner* b = Start("b");
  Command("b", 'a', 0);
  ASSERT_TRUE(WaitPosition(0, 2));
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
  // a's member finds its assignment lost.
  Command("a/0", 'l', 0);
  EXPECT_EQ(a->Snapshot().partitions_lost, 1);
  EXPECT_EQ(a->Snapshot().held, 0);
  // a goes on with partition 1, and commits it.
  Produce(1, {Rec("y", "00:05:03", 1, 4)});
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().records_in == 4; }));
  Command("a/1", 'r', 1);
  ASSERT_TRUE(WaitPosition(1, 2));
  EXPECT_FALSE(runs_.at("a").done.load()) << RunEnded("a");
  WriteJobs("1,10\n7,70\n");
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 0; }));
  // x: 1 + 2 (b, the held record applied once); y: 8 + 4 (a).
  const std::vector<std::string> want = {"2024-01-01 00:05:00|x|2|3", "2024-01-01 00:05:00|y|2|12"};
  ASSERT_TRUE(WaitFor([&] { return Rows() == want; })) << ::testing::PrintToString(Rows());
  Status sa = Stop("a");
  EXPECT_TRUE(sa.ok()) << sa.ToString();
  ASSERT_TRUE(Stop("b").ok());
  EXPECT_EQ(Rows(), want);
  EXPECT_EQ(Query(db_, "SELECT partition, fence FROM _sluice_tasks ORDER BY partition"),
            (std::vector<std::string>{"0|2", "1|1"}));
  EXPECT_EQ(DeadLetters("a", "\"reason\"") + DeadLetters("b", "\"reason\""), 0);
}

// A task claimed by one worker of a process while the checkpoint coordinator still waits for
// another worker's handoff: the claimed held record is not in the claiming worker's handoff yet,
// and that checkpoint must still commit the task's state with it. Here the process is cut off
// right after that commit (another process claims the partition before it commits again, as
// after a kill -9 and the session timeout): the held record must reach the next owner and be
// applied once its job is known.
TEST_F(RunnerTasksTest, AHeldRecordClaimedJustBeforeACheckpointSurvivesTheNextMove) {
  Start("b");
  Command("b", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:10", 5, 10)});  // job 5: held
  ASSERT_TRUE(WaitPosition(0, 2));
  Runner* b = runs_.at("b").runner.get();
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
  ASSERT_TRUE(WaitFor([&] { return HeldIn(0) == std::vector<std::string>{"1"}; }));
  Command("b", 'r', 0);
  Start("a", "group2");
  Command("a/1", 'a', 1);
  Produce(1, {Rec("y", "00:05:20", 1, 100)});
  ASSERT_TRUE(WaitPosition(1, 1));
  Command("a/1", 'b', 600);  // the coordinator waits for worker 1's handoff
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Worker 0 claims partition 0 and then stalls (no handoff for 3 s): a's checkpoint after the
  // claim is the last one it commits for partition 0.
  Commands("a/0", {{'a', 0}, {'b', 3000}});
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  // The group gives partition 0 back to b (a was cut off).
  Command("b", 'a', 0);
  WriteJobs("1,10\n5,50\n");
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); }));
  EXPECT_EQ(runs_.at("a").status.code(), StatusCode::kFenced) << runs_.at("a").status.ToString();
  // x: 1 + 10 (the held record, applied by b once job 5 is known).
  EXPECT_TRUE(WaitFor([&] {
    return Rows() == std::vector<std::string>{"2024-01-01 00:05:00|x|2|11", "2024-01-01 00:05:00|y|1|100"};
  })) << ::testing::PrintToString(Rows());
  ASSERT_TRUE(Stop("b").ok());
}

// A task whose stored state was written for another [aggregate] (the pipeline file changed
// between runs): the run fails with that reason, as it does with the state of one pipeline,
// not with what refusing the final checkpoint says.
TEST_F(RunnerTasksTest, AStateOfAnotherAggregateFailsTheRunWithThatReason) {
  const std::string in = (dir_ / "in.ndjson").string();
  std::ofstream(in) << Rec("x", "00:05:00", 1, 1) << "\n";
  auto run = [&](const std::string& window) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"fp\"\n[source]\nname = \"in\"\nuri = \"" + in + "\"\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"" + window + "\"\nwatermark_delay = \"10s\"\n"
        "allowed_lateness = \"0s\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\"]\n"
        "[sink]\nuri = \"sqlite:" + db_ + "\"\ntable = \"w\"\n";
    auto cfg = ParsePipelineConfig(text, "fp.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    EXPECT_TRUE((*runner)->uses_tasks());
    return (*runner)->Run();
  };
  ASSERT_TRUE(run("1m").ok());
  std::ofstream(in, std::ios::app) << Rec("x", "00:07:00", 1, 1) << "\n";
  Status s = run("2m");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("different [aggregate]"), std::string::npos) << s.ToString();
}

// A run that reads nothing before it commits (a file followed with nothing new, stopped) keeps
// the task's committed event-time progress: the next run still judges a record late by its
// partition's watermark. Expected by the rule: after 00:05:00 and 00:10:00 the partition's
// watermark is 00:09:50, so a record of the window 00:07 (ends 00:08:00, lateness 0) is late.
TEST_F(RunnerTasksTest, ARunThatReadsNothingKeepsTheTasksProgress) {
  const std::string in = (dir_ / "in.ndjson").string();
  std::ofstream(in) << Rec("x", "00:05:00", 1, 1) << "\n" << Rec("x", "00:10:00", 1, 2) << "\n";
  auto make = [&](bool follow) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"idle\"\ncheckpoint_interval = \"5ms\"\n[source]\nname = \"in\"\nuri = \"" + in + "\"\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\n"
        "allowed_lateness = \"0s\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"sqlite:" + db_ + "\"\ntable = \"w\"\n";
    auto cfg = ParsePipelineConfig(text, "idle.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    RunOptions options;
    options.follow = follow;
    auto runner = Runner::Make(std::move(cfg).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    return std::move(runner).value();
  };
  ASSERT_TRUE(make(false)->Run().ok());
  {
    auto idle = make(true);
    Status s;
    std::thread t([&] { s = idle->Run(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several checkpoints, nothing read
    idle->RequestStop();
    t.join();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::ofstream(in, std::ios::app) << Rec("x", "00:07:00", 1, 100) << "\n";
  ASSERT_TRUE(make(false)->Run().ok());
  EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|1|1", "2024-01-01 00:10:00|x|1|2"}));
  EXPECT_EQ(Query(db_, "SELECT reason, count(*) FROM _sluice_dead_letters GROUP BY reason"),
            std::vector<std::string>{"late|1"});
}

// A partition its worker never gets a record of (a silent partition, one worker per partition)
// goes idle after the idle timeout in a restarted run as in the first one: the restart must not
// make it hold the closed bound back for good (it was known at start only from its committed
// progress, which said "not idle"). Expected by the rule with its idle exception: partition 1
// is idle, so the closed bound follows partition 0's watermark (00:20:30 - 10 s), and a record
// of partition 1 for the window 00:15 (ends 00:16:00) is late, with or without the restart.
TEST_F(RunnerTasksTest, ASilentPartitionGoesIdleAfterARestartToo) {
  Start("a", "group2", "200ms");
  Command("a/0", 'a', 0);
  Command("a/1", 'a', 1);
  std::vector<std::string> first, second;
  for (int m = 0; m <= 10; ++m) first.push_back(Rec("x", "00:" + std::string(m < 10 ? "0" : "") + std::to_string(m) + ":30", 1, 1));
  for (int m = 11; m <= 20; ++m) second.push_back(Rec("x", "00:" + std::to_string(m) + ":30", 1, 1));
  Produce(0, first);
  ASSERT_TRUE(WaitPosition(0, 11));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // partition 1 idle
  ASSERT_TRUE(Stop("a").ok());
  Start("a2", "group2", "200ms");
  Command("a2/0", 'a', 0);
  Command("a2/1", 'a', 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // partition 1 idle again
  Produce(0, second);
  ASSERT_TRUE(WaitPosition(0, 21));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the closed bound follows
  Produce(1, {Rec("y", "00:15:30", 1, 7)});
  ASSERT_TRUE(WaitPosition(1, 1));
  EXPECT_TRUE(WaitFor([&] { return DeadLetters("a2", "\"reason\":\"late\"") == 1; })) << DeadLetters("a2", "\"reason\"");
  ASSERT_TRUE(Stop("a2").ok());
  EXPECT_EQ(Query(db_, "SELECT count(*) FROM w WHERE k = 'y'"), std::vector<std::string>{"0"});
}

// A partition given up with nothing new since the last commit is still released in the sink:
// its task row no longer names this process as its owner.
TEST_F(RunnerTasksTest, AQuietPartitionGivenUpIsReleased) {
  Runner* a = Start("a");
  Command("a", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 1));
  const std::string owner = "SELECT owner FROM _sluice_tasks WHERE partition = 0";
  ASSERT_TRUE(WaitFor([&] { return Query(db_, owner) != std::vector<std::string>{""}; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // every commit done: nothing new
  Command("a", 'r', 0);
  EXPECT_EQ(Query(db_, owner), std::vector<std::string>{""});
  ASSERT_TRUE(Stop("a").ok());
  (void)a;
}

// A file is read by one process: a second one started on the same pipeline and sink claims the
// file's task, and the first one's next commit is refused; it ends (no restart: no group would
// give it anything else), and every line is counted once.
TEST_F(RunnerTasksTest, ASecondProcessOnAFileFencesTheFirst) {
  const std::string in = (dir_ / "in.ndjson").string();
  std::ofstream(in) << "{\"seq\":1,\"job\":1}\n";
  auto make = [&](const std::string& dlq) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "select = [\"seq\", \"company\"]\n[pipeline]\nname = \"files\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nuri = \"" + in + "\"\n[source.fields]\nseq = \"int64\"\njob = \"int64\"\n"
        "[dimension.job]\nuri = \"" + jobs_ + "\"\nkey = \"id\"\n"
        "fields = { id = \"int64\", company = \"int64\" }\nrefresh = \"20ms\"\n"
        "[[step]]\nlookup = \"job\"\nkey = \"job\"\nfields = [\"company\"]\non_missing = \"hold\"\n"
        "hold_for = \"60s\"\nthen = \"dead_letter\"\n"
        "[sink]\nuri = \"sqlite:" + db_ + "\"\ntable = \"f\"\nkey = \"seq\"\n[dead_letter]\npath = \"" + dlq + "\"\n";
    auto cfg = ParsePipelineConfig(text, "files.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    RunOptions options;
    options.follow = true;
    auto runner = Runner::Make(std::move(cfg).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    return std::move(runner).value();
  };
  auto first = make(db_ + ".1.dlq");
  ASSERT_TRUE(first->uses_tasks());
  Status first_status;
  std::thread one([&] { first_status = first->Run(); });
  ASSERT_TRUE(WaitFor([&] { return Query(db_, "SELECT seq FROM f") == std::vector<std::string>{"1"}; }));
  auto second = make(db_ + ".2.dlq");
  Status second_status;
  std::thread two([&] { second_status = second->Run(); });
  ASSERT_TRUE(WaitFor([&] { return Query(db_, "SELECT fence FROM _sluice_tasks") == std::vector<std::string>{"2"}; }));
  std::ofstream(in, std::ios::app) << "{\"seq\":2,\"job\":1}\n";
  one.join();
  EXPECT_EQ(first_status.code(), StatusCode::kFenced) << first_status.ToString();
  EXPECT_NE(first_status.message().find("is read by one process"), std::string::npos) << first_status.ToString();
  EXPECT_FALSE(first->RestartsWhenFenced());
  ASSERT_TRUE(WaitFor([&] { return Query(db_, "SELECT seq, company FROM f ORDER BY seq") ==
                                   std::vector<std::string>{"1|10", "2|10"}; }));
  second->RequestStop();
  two.join();
  EXPECT_TRUE(second_status.ok()) << second_status.ToString();
}

// Append mode keeps its open windows in one state for all processes (not per task): a process
// that reads only part of its input, because another member of its group reads the rest, says
// so (results can be inexact), and one that reads all of it does not.
TEST_F(RunnerTasksTest, AppendModeSplitOverProcessesWarns) {
  Runner* a = Start("a", "group", "1h", /*append=*/true);
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  Produce(1, {Rec("y", "00:05:20", 1, 100)});
  // Past the 10 s a rebalance gets to settle: reading every partition warns of nothing.
  std::this_thread::sleep_for(std::chrono::seconds(12));
  EXPECT_EQ(a->split_with_one_state_warnings(), 0);
  Command("a", 'r', 1);  // partition 1 goes to another member
  Produce(0, {Rec("x", "00:06:00", 1, 1)});
  EXPECT_TRUE(WaitFor([&] { return a->split_with_one_state_warnings() == 1; }));
  ASSERT_TRUE(Stop("a").ok());
}

// Append mode over a source keyed by the group key ([source] keyed_by), split over processes
// whose partitions move, one of them cut off and fenced: each window is written once, exactly
// as the recomputation in group_test::KeyedAppendData says, the late records dead-lettered
// (GroupRuns::KeyedAppendAcrossMovesAndACutOffProcess, shared with MariaDB and Parquet).
TEST_F(RunnerTasksTest, AppendModeKeyedByEmitsEachWindowOnceAcrossMovesAndACutOffProcess) {
  KeyedAppendAcrossMovesAndACutOffProcess(group_test::KeyedAppendData::Make(240, 16));
}

// A bounded input writes every open window at its end, and a task remembers up to where its
// windows were written: a later run finds a record of such a window late
// (GroupRuns::KeyedAppendRemembersTheWindowsWrittenAtTheEndOfABoundedInput, shared with Parquet).
TEST_F(RunnerTasksTest, AppendModeKeyedByRemembersTheWindowsWrittenAtTheEndOfABoundedInput) {
  KeyedAppendRemembersTheWindowsWrittenAtTheEndOfABoundedInput();
  EXPECT_EQ(Query(db_, "SELECT reason, payload LIKE '%00:09:55%' FROM _sluice_dead_letters"),
            std::vector<std::string>{"late|1"});
}

// An append-mode pipeline that ran without keyed_by kept its open windows in the one state of
// the pipeline; they cannot be split by partition, so starting it with keyed_by is refused with
// what to do, and nothing is changed.
TEST_F(RunnerTasksTest, AppendModeKeyedByRefusesALegacyStateWithOpenWindows) {
  const std::string in = (dir_ / "in.ndjson").string();
  std::ofstream(in) << Rec("x", "00:05:00", 1, 1) << "\n";
  auto make = [&](bool keyed) { return MakeAppendUntilCaughtUp("legacy", in, keyed); };
  ASSERT_TRUE(make(false)->Run().ok());
  ASSERT_EQ(Query(db_, "SELECT count(*) FROM _sluice_state WHERE pipeline = 'legacy'"), std::vector<std::string>{"1"});
  Status s = make(true)->Run();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("cannot be split by partition: run it without keyed_by until those windows are written"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(Query(db_, "SELECT count(*) FROM _sluice_state WHERE pipeline = 'legacy'"), std::vector<std::string>{"1"});
  EXPECT_EQ(Query(db_, "SELECT count(*) FROM w"), std::vector<std::string>{"0"});
}


// Each worker of a process is its own member of the group. One whose member was put out (it did
// not poll in time) has not reported the loss yet when the group gives its partition to another
// worker of the same process: the claim is refused and the run ends fenced (sluice run starts
// it again from the committed state), rather than two workers holding one task.
TEST_F(RunnerTasksTest, APartitionAssignedToAnotherWorkerWhileOneStillHoldsItEndsTheRunFenced) {
  Runner* a = Start("a", "group2");
  Command("a/0", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 1));
  Enqueue("a/1", 'a', 0);
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); })) << "the second claim was taken";
  EXPECT_EQ(runs_.at("a").status.code(), StatusCode::kFenced) << runs_.at("a").status.ToString();
  EXPECT_NE(runs_.at("a").status.message().find("still held it"), std::string::npos) << runs_.at("a").status.message();
  EXPECT_TRUE(a->RestartsWhenFenced());
  EXPECT_EQ(Query(db_, "SELECT partition, fence FROM _sluice_tasks"), std::vector<std::string>{"0|1"});
}
// The other way round: a pipeline that ran with keyed_by keeps its open windows per partition;
// started without keyed_by (one state for the pipeline) it would not read them and would go on
// from the task's position, so it is refused with what to do, and nothing is changed.
TEST_F(RunnerTasksTest, AppendModeWithoutKeyedByRefusesTheTasksOfAKeyedRun) {
  const std::string in = (dir_ / "in.ndjson").string();
  std::ofstream(in) << Rec("x", "00:05:00", 1, 1) << "\n";
  auto make = [&](bool keyed) { return MakeAppendUntilCaughtUp("keyed", in, keyed); };
  ASSERT_TRUE(make(true)->Run().ok());
  ASSERT_EQ(Query(db_, "SELECT count(*) FROM _sluice_tasks WHERE pipeline = 'keyed'"), std::vector<std::string>{"1"});
  Status s = make(false)->Run();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("keeps this pipeline's state per partition"), std::string::npos) << s.message();
  EXPECT_EQ(Query(db_, "SELECT count(*), sum(length(state) > 0) FROM _sluice_tasks WHERE pipeline = 'keyed'"),
            std::vector<std::string>{"1|1"});
  EXPECT_EQ(Query(db_, "SELECT count(*) FROM w"), std::vector<std::string>{"0"});
}

// Whether a process reads only part of its input is judged on the reports of all its workers
// from one checkpoint collection, not after each worker's: a partition that moves from one
// worker of the process to another within one collection was read by the process all along.
// Here partition 1 is read by another member from the start, and partition 0 moves between the
// process's two workers 4 s later: the warning comes 10 s after the split began. (Judged after
// each worker's report, worker 0's report without partition 0 next to worker 1's last one
// looked like a process reading nothing, which started the 10 s again: about 15 s.)
TEST_F(RunnerTasksTest, AppendModeSplitIsJudgedOnWholeCollections) {
  Runner* a = Start("a", "group2", "1h", /*append=*/true);
  Command("a/0", 'a', 0);
  const auto split = std::chrono::steady_clock::now();
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(a->split_with_one_state_warnings(), 0);
  // Worker 1 is busy for a second, so the collection under way waits for its handoff; worker 0
  // has handed over. Then worker 0 gives partition 0 up (its handoff goes to the next
  // collection) and worker 1 takes it in the Poll() after its busy one, before that handoff.
  Command("a/1", 'b', 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int taken = Enqueue("a/1", 'a', 0);
  Command("a/0", 'r', 0);
  ASSERT_TRUE(CarriedOut("a/1", taken));
  ASSERT_TRUE(WaitFor([&] { return a->split_with_one_state_warnings() == 1; }));
  const auto after = std::chrono::steady_clock::now() - split;
  EXPECT_GE(after, std::chrono::seconds(10));
  EXPECT_LT(after, std::chrono::milliseconds(13'500)) << "the move started the 10 s again";
  ASSERT_TRUE(Stop("a").ok());
}

}  // namespace
}  // namespace sluice
