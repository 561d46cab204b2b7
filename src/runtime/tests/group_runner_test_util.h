// Runners of one pipeline started as members of a fake consumer group (GroupSource), each on a
// thread of its own, for tests of the tasks (issue 16) on any sink: RunnerTasksTest on SQLite,
// MysqlRunnerTasksTest on MariaDB. A fixture derives from ::testing::Test (or its own base) and
// from GroupRuns, calls SetUpGroup/TearDownGroup and says how to query its sink. Test code only.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/tests/group_source_test_util.h"

namespace sluice {
namespace group_test {

/// Waits (20 s at most) until `pred` holds.
template <typename Pred>
bool WaitFor(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

/// Registers `scheme:MEMBER` as a source of `members` GroupSources: one named MEMBER, or
/// several named MEMBER/0, MEMBER/1, ... (several workers of one process).
inline void RegisterGroupSource(const std::string& scheme, int members = 1) {
  ConnectorRegistry::Instance().AddSource(
      scheme,
      [members](const SourceConfig& config, int) -> Result<std::vector<std::unique_ptr<Source>>> {
        std::vector<std::unique_ptr<Source>> out;
        const std::string member = config.uri.substr(config.uri.find(':') + 1);
        if (members == 1) {
          out.push_back(std::make_unique<GroupSource>(member));
        } else {
          for (int i = 0; i < members; ++i) {
            out.push_back(std::make_unique<GroupSource>(member + "/" + std::to_string(i)));
          }
        }
        return out;
      },
      OptionTable{scheme + ":MEMBER", "A scripted consumer-group member (test only)."});
}

/// The members' runs, the group they share and the files they read (the job dimension) and
/// write (each member's dead letters), with the commands a test gives them. The fixture sets
/// `scheme_` (its group source) and `sink_uri_`.
class GroupRuns {
 protected:
  virtual ~GroupRuns() = default;

  /// The sink's answer to `sql` as "a|b" lines (the SQL is written to run on SQLite and MySQL).
  virtual std::vector<std::string> Q(const std::string& sql) = 0;

  /// Makes the test's folder (`name` with the pid and the test's name), the group and the job
  /// dimension (job 1 of company 10).
  void SetUpGroup(const std::string& name) {
    dir_ = std::filesystem::temp_directory_path() /
           (name + "_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    jobs_ = (dir_ / "jobs.csv").string();
    group_ = std::make_unique<Group>();
    g_group = group_.get();
    WriteJobs("1,10\n");
  }

  /// Ends every run (the group's sources end) and removes the folder.
  void TearDownGroup() {
    if (group_) {
      {
        std::lock_guard<std::mutex> lock(group_->mu);
        group_->finish = true;
      }
      group_->cv.notify_all();
      for (auto& [name, run] : runs_) {
        if (run.thread.joinable()) run.thread.join();
      }
      runs_.clear();
      g_group = nullptr;
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  /// Replaces the job dimension's rows ("id,company" lines) at once.
  void WriteJobs(const std::string& rows) {
    const std::string tmp = jobs_ + ".tmp";
    std::ofstream(tmp) << "id,company\n" << rows;
    std::filesystem::rename(tmp, jobs_);
  }

  struct Run {
    std::unique_ptr<Runner> runner;
    std::thread thread;
    Status status;
    std::atomic<bool> done{false};
  };

  /// Starts member `member` of source `scheme` ("": `scheme_`) into `sink_uri_` (update mode
  /// unless `append`, 1-minute windows, delay 10 s, lateness 0, records of unknown jobs held for
  /// a minute, dead letters to DeadLetters' file) on a thread; expects it to keep state per task
  /// unless `append`; checkpoints every `checkpoint_interval`.
  Runner* Start(const std::string& member, const std::string& scheme = "", const std::string& idle_timeout = "1h",
                bool append = false, const std::string& checkpoint_interval = "5ms") {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"tasks\"\ncheckpoint_interval = \"" + checkpoint_interval + "\"\n"
        "[source]\nname = \"in\"\nuri = \"" + (scheme.empty() ? scheme_ : scheme) + ":" + member + "\"\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[dimension.job]\nuri = \"" + jobs_ + "\"\nkey = \"id\"\n"
        "fields = { id = \"int64\", company = \"int64\" }\nrefresh = \"20ms\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[[step]]\nlookup = \"job\"\nkey = \"job\"\nfields = [\"company\"]\n"
        "on_missing = \"hold\"\nhold_for = \"60s\"\nthen = \"dead_letter\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nallowed_lateness = \"0s\"\n"
        "idle_timeout = \"" + idle_timeout + "\"\n" + (append ? "mode = \"append\"\n" : "") +
        "keys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"" + sink_uri_ + "\"\ntable = \"w\"\n[dead_letter]\npath = \"" +
        DeadLetterPath(member) + "\"\n";
    auto cfg = ParsePipelineConfig(text, "tasks.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    Run& run = runs_[member];
    if (run.thread.joinable()) run.thread.join();
    run.runner = std::move(runner).value();
    run.done = false;
    EXPECT_EQ(run.runner->uses_tasks(), !append);
    Run* r = &run;
    run.thread = std::thread([r] {
      r->status = r->runner->Run();
      r->done = true;
    });
    return run.runner.get();
  }

  /// Makes a run of the keyed append-mode pipeline "keyed" (1-minute windows, delay 10 s,
  /// lateness 0, [source] keyed_by = ["k"], dead letters in the sink) reading `source_uri`.
  std::unique_ptr<Runner> MakeKeyed(const std::string& source_uri) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"keyed\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nname = \"in\"\nuri = \"" + source_uri + "\"\nkeyed_by = [\"k\"]\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nmode = \"append\"\n"
        "idle_timeout = \"1h\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"" + sink_uri_ + "\"\n" + KeyedSinkOptions();
    auto cfg = ParsePipelineConfig(text, "keyed.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    if (!cfg.ok()) return nullptr;
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    if (!runner.ok()) return nullptr;
    EXPECT_TRUE((*runner)->uses_tasks());
    EXPECT_TRUE((*runner)->append_on_tasks());
    return std::move(runner).value();
  }

  /// Starts member `member` of the keyed append-mode pipeline (MakeKeyed) on a thread; every
  /// row a commit of it writes is counted in observed_.
  Runner* StartKeyed(const std::string& member) {
    Run& run = runs_[member];
    if (run.thread.joinable()) run.thread.join();
    run.runner = MakeKeyed(scheme_ + ":" + member);
    if (!run.runner) return nullptr;
    run.done = false;
    run.runner->SetCommitObserver([this](const std::vector<DeltaRow>&, const std::vector<std::vector<Value>>& rows) {
      std::lock_guard<std::mutex> lock(observed_mu_);
      // [window_start, window_end, k, n, s]
      for (const auto& r : rows) ++observed_[r[0].ToString() + "|" + r[2].ToString()];
    });
    Run* r = &run;
    run.thread = std::thread([r] {
      r->status = r->runner->Run();
      r->done = true;
    });
    return run.runner.get();
  }

  /// Tells `member` to assign ('a'), revoke ('r') or lose ('l') partition `p`, or to be busy
  /// ('b') for `p` ms; waits until done.
  void Command(const std::string& member, char what, int32_t p) {
    std::unique_lock<std::mutex> lock(group_->mu);
    auto& m = group_->members[member];
    m.commands.emplace_back(what, p);
    const int want = static_cast<int>(m.commands.size());
    group_->cv.notify_all();
    ASSERT_TRUE(group_->cv.wait_for(lock, std::chrono::seconds(20), [&] { return m.done >= want; }))
        << member << " did not carry out " << what << " " << p << RunEnded(member);
  }

  /// Gives `member` several commands at once (carried out in one Poll()); waits until done.
  void Commands(const std::string& member, std::vector<std::pair<char, int32_t>> list) {
    std::unique_lock<std::mutex> lock(group_->mu);
    auto& m = group_->members[member];
    for (const auto& c : list) m.commands.push_back(c);
    const int want = static_cast<int>(m.commands.size());
    group_->cv.notify_all();
    ASSERT_TRUE(group_->cv.wait_for(lock, std::chrono::seconds(20), [&] { return m.done >= want; }));
  }

  /// Gives `member` a command without waiting for it (carried out in its next Poll()); returns
  /// how many commands `member` has to have carried out for it to be done (see CarriedOut).
  int Enqueue(const std::string& member, char what, int32_t p) {
    std::lock_guard<std::mutex> lock(group_->mu);
    auto& m = group_->members[member];
    m.commands.emplace_back(what, p);
    group_->cv.notify_all();
    return static_cast<int>(m.commands.size());
  }
  /// Waits (20 s at most) until `member` has carried out `count` commands.
  bool CarriedOut(const std::string& member, int count) {
    std::unique_lock<std::mutex> lock(group_->mu);
    auto& m = group_->members[member];
    return group_->cv.wait_for(lock, std::chrono::seconds(20), [&] { return m.done >= count; });
  }

  /// Why `member`'s run ended, when it did ("" while it runs): a command it never carried out
  /// then says so.
  std::string RunEnded(const std::string& member) {
    auto it = runs_.find(member);
    if (it == runs_.end() || !it->second.done) return "";
    return " (its run ended: " + it->second.status.ToString() + ")";
  }

  /// Appends `records` to partition `p` of the group's topic.
  void Produce(int32_t p, std::vector<std::string> records) {
    std::lock_guard<std::mutex> lock(group_->mu);
    for (auto& r : records) group_->topic[p].push_back(std::move(r));
    group_->cv.notify_all();
  }

  /// Stops `member`'s run and returns how it ended.
  Status Stop(const std::string& member) {
    Run& run = runs_.at(member);
    run.runner->RequestStop();
    run.thread.join();
    return run.status;
  }

  std::string DeadLetterPath(const std::string& member) const { return (dir_ / (member + ".dlq")).string(); }

  /// The lines of `member`'s dead-letter file that contain `needle`.
  int64_t DeadLetters(const std::string& member, const std::string& needle) const {
    std::ifstream in(DeadLetterPath(member));
    int64_t n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
    return n;
  }

  /// Waits until the sink holds position `offset` for partition `p` of source "in".
  bool WaitPosition(int32_t p, int64_t offset) {
    return WaitFor([&] {
      auto got = PositionOf(p);
      return !got.empty() && got[0] == std::to_string(offset);
    });
  }

  // How a test reads its sink back; the defaults query an SQL sink (SQLite and MySQL alike).

  /// The committed position of partition `p` of source "in" ({} when none).
  virtual std::vector<std::string> PositionOf(int32_t p) {
    return Q("SELECT `offset` FROM _sluice_positions WHERE source = 'in' AND `partition` = " + std::to_string(p));
  }
  /// What follows `uri` in the keyed pipeline's [sink] section.
  virtual std::string KeyedSinkOptions() const { return "table = \"w\"\n"; }
  /// The keyed pipeline's output: "window_start|k|n|s" lines by window start, then key.
  virtual std::vector<std::string> KeyedRows() { return Rows(); }
  /// "partition|offset" of every `late` dead letter, by partition, then offset.
  virtual std::vector<std::string> LateLetters() {
    return Q("SELECT `partition`, `offset` FROM _sluice_dead_letters WHERE reason = 'late' "
             "ORDER BY `partition`, `offset`");
  }
  /// How many dead letters have another reason than `late` ({"N"}).
  virtual std::vector<std::string> OtherLetters() {
    return Q("SELECT COUNT(*) FROM _sluice_dead_letters WHERE reason <> 'late'");
  }
  /// "partition|owner|1 when it holds a state" of each task of the keyed pipeline, by partition.
  virtual std::vector<std::string> KeyedTasks() {
    return Q("SELECT `partition`, owner, LENGTH(state) > 0 FROM _sluice_tasks WHERE pipeline = 'keyed' "
             "ORDER BY `partition`");
  }
  /// The output table: "window_start|k|n|s" lines in order.
  std::vector<std::string> Rows() { return Q("SELECT window_start, k, n, s FROM w ORDER BY window_start, k"); }
  /// {"1"} when partition `p`'s task holds a state (its held records), {"0"} when not.
  std::vector<std::string> HeldIn(int32_t p) {
    return Q("SELECT LENGTH(state) > 0 FROM _sluice_tasks WHERE source = 'in' AND `partition` = " +
             std::to_string(p));
  }

  /// A process cut off from the group (its partition given to another) is fenced at its next
  /// commit and its run ends; started again as a new member it goes on from the committed state,
  /// and the held record moved with the partition is applied once, by the new owner.
  void ProcessCutOffIsFencedAndStartsAgain() {
    Runner* a = Start("a");
    Start("b");
    Command("a", 'a', 0);
    Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:01", 7, 2)});  // job 7: held
    ASSERT_TRUE(WaitPosition(0, 2));
    ASSERT_TRUE(WaitFor([&] { return a->Snapshot().held == 1; }));
    ASSERT_TRUE(WaitFor([&] { return HeldIn(0) == std::vector<std::string>{"1"}; }));
    // a is cut off; the group gives partition 0 to b, which claims it. a still reads it.
    Command("b", 'a', 0);
    Runner* b = runs_.at("b").runner.get();
    ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
    Produce(0, {Rec("x", "00:05:02", 1, 4)});
    // a's next commit carries partition 0 with its old fence: refused, and its run ends.
    ASSERT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); }));
    EXPECT_EQ(runs_.at("a").status.code(), StatusCode::kFenced) << runs_.at("a").status.ToString();
    EXPECT_TRUE(a->RestartsWhenFenced());
    ASSERT_TRUE(WaitPosition(0, 3));
    // a starts again (as `sluice run` does: a new runner, a new member of the group) and gets
    // partition 1; job 7 becomes known.
    Start("a2");
    Command("a2", 'a', 1);
    Produce(1, {Rec("y", "00:05:03", 1, 8)});
    ASSERT_TRUE(WaitPosition(1, 1));
    WriteJobs("1,10\n7,70\n");
    ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 0; }));
    // x: 1 (a, committed before the claim) + 4 (b) + 2 (the held record, applied by b, once).
    ASSERT_TRUE(WaitFor([&] {
      return Rows() == std::vector<std::string>{"2024-01-01 00:05:00|x|3|7", "2024-01-01 00:05:00|y|1|8"};
    })) << ::testing::PrintToString(Rows());
    ASSERT_TRUE(Stop("a2").ok());
    ASSERT_TRUE(Stop("b").ok());
    EXPECT_EQ(Rows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|3|7", "2024-01-01 00:05:00|y|1|8"}));
    EXPECT_EQ(DeadLetters("a", "\"reason\"") + DeadLetters("a2", "\"reason\"") + DeadLetters("b", "\"reason\""),
              0);
  }

  /// Append mode over a source keyed by the group key ([source] keyed_by): each partition's
  /// task keeps its own open windows, committed with its position, so the pipeline may be split
  /// over processes. Two processes share the partitions, which move between them; one is cut
  /// off and goes on reading (as a process killed with -9 right after a commit would have, had
  /// it lived): its later commits are refused. A new process takes over. Every (k, window) row
  /// is written by exactly one commit, with the counts of its records that were not late, and
  /// exactly the late records are dead-lettered. The expectation `data` is computed from the
  /// generated records by the rule (KeyedAppendData): a record is late when its window's end is
  /// at or before its own partition's watermark (the highest event time of that partition's
  /// earlier records, minus 10 s). Leaves both tasks released, with their open windows.
  void KeyedAppendAcrossMovesAndACutOffProcess(const KeyedAppendData& data) {
    ASSERT_GT(data.expected_late.size(), 10u);  // the data has late records to count
    ASSERT_GT(data.expected_rows.size(), 40u);
    // Four parts of each partition, played between moves.
    auto produce = [&](int part) {
      for (int32_t p : {0, 1}) Produce(p, data.Part(p, part));
    };
    auto reached = [&](int part) {
      return WaitPosition(0, data.EndOf(0, part)) && WaitPosition(1, data.EndOf(1, part));
    };
    StartKeyed("a");
    StartKeyed("b");
    Command("a", 'a', 0);
    Command("a", 'a', 1);
    produce(0);
    ASSERT_TRUE(reached(0));
    // Partition 1 moves to b with its open windows.
    Command("a", 'r', 1);
    Command("b", 'a', 1);
    produce(1);
    ASSERT_TRUE(reached(1));
    // a stalls after its last commit (no handoff, no commit for 3 s) and the group gives
    // partition 0 to b, which claims it from what a committed. a then reads on and emits in
    // memory what b emits too: its commit is refused and its run ends.
    Command("a", 'b', 3000);
    Command("b", 'a', 0);
    produce(2);
    ASSERT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); })) << "the cut-off process was not fenced";
    EXPECT_EQ(runs_.at("a").status.code(), StatusCode::kFenced) << runs_.at("a").status.ToString();
    runs_.at("a").thread.join();
    runs_.at("a").runner.reset();  // gone, as after kill -9
    ASSERT_TRUE(reached(2));
    // A new process takes partition 1 over from b.
    StartKeyed("a2");
    Command("b", 'r', 1);
    Command("a2", 'a', 1);
    produce(3);
    ASSERT_TRUE(reached(3));
    EXPECT_TRUE(WaitFor([&] { return KeyedRows().size() == data.expected_rows.size(); }))
        << ::testing::PrintToString(KeyedRows());
    ASSERT_TRUE(Stop("a2").ok());
    ASSERT_TRUE(Stop("b").ok());

    EXPECT_EQ(KeyedRows(), data.expected_rows);
    {
      std::lock_guard<std::mutex> lock(observed_mu_);
      EXPECT_EQ(observed_.size(), data.expected_rows.size());
      for (const auto& [key, times] : observed_) EXPECT_EQ(times, 1) << key << " written by " << times << " commits";
    }
    EXPECT_EQ(LateLetters(), data.expected_late);
    EXPECT_EQ(OtherLetters(), std::vector<std::string>{"0"});
    // Each task holds its open windows (the last hour's) and no owner after the clean stops.
    EXPECT_EQ(KeyedTasks(), (std::vector<std::string>{"0||1", "1||1"}));
  }

  /// A bounded input writes every open window at its end, and a task remembers up to where its
  /// windows were written (TaskState::emitted_before): a later run over more of the file finds
  /// a record of such a window late instead of writing the window again, though the partition's
  /// own watermark alone would still take it. Expected by hand: the first run writes 00:05 and
  /// 00:09 (everything, at the end); 00:09:55 is then late, 00:12:00 opens a new window.
  void KeyedAppendRemembersTheWindowsWrittenAtTheEndOfABoundedInput() {
    const std::string in = (dir_ / "in.ndjson").string();
    std::ofstream(in) << Rec("x", "00:05:00", 1, 1) << "\n" << Rec("x", "00:09:30", 1, 2) << "\n";
    std::unique_ptr<Runner> first = MakeKeyed(in);
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(first->Run().ok());
    EXPECT_EQ(KeyedRows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|1|1", "2024-01-01 00:09:00|x|1|2"}));
    EXPECT_EQ(LateLetters().size(), 0u);
    std::ofstream(in, std::ios::app) << Rec("x", "00:09:55", 1, 100) << "\n" << Rec("x", "00:12:00", 1, 4) << "\n";
    std::unique_ptr<Runner> second = MakeKeyed(in);
    ASSERT_NE(second, nullptr);
    ASSERT_TRUE(second->Run().ok());
    EXPECT_EQ(KeyedRows(), (std::vector<std::string>{"2024-01-01 00:05:00|x|1|1", "2024-01-01 00:09:00|x|1|2",
                                                     "2024-01-01 00:12:00|x|1|4"}));
    EXPECT_EQ(LateLetters().size(), 1u);
    EXPECT_EQ(OtherLetters(), std::vector<std::string>{"0"});
  }

  std::string scheme_;
  std::string sink_uri_;
  std::filesystem::path dir_;
  std::string jobs_;
  std::unique_ptr<Group> group_;
  std::map<std::string, Run> runs_;
  std::mutex observed_mu_;
  std::map<std::string, int> observed_;  ///< (window_start, k) -> how many commits wrote it
};

}  // namespace group_test
}  // namespace sluice
