// Stage one of a repartitioned pipeline (docs/notes-16/repartition.md; RunOptions::stage_one):
// runners of an append-mode pipeline over the fake group source, committing into an in-memory
// sink that takes stage one's output. Expected partials, controls and late records worked out by
// hand from the records.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/time.h"
#include "operators/aggregator.h"
#include "runtime/repartition_output.h"
#include "runtime/runner.h"
#include "runtime/stage_two.h"
#include "runtime/tests/group_runner_test_util.h"

namespace sluice {
namespace {

using group_test::Rec;
using group_test::WaitFor;

/// What the in-memory stage-one sink holds: shared by the sink instances of every runner (the
/// processes of one pipeline), like a Kafka cluster.
struct StageOneStore {
  std::mutex mu;
  struct Task {
    int64_t fence = 0;
    std::string owner;
    TaskProgress progress;
    std::string state;
  };
  std::map<int32_t, Task> tasks;
  std::map<int32_t, int64_t> positions;  ///< source "in"
  struct Commit {
    std::vector<TaskCommit> tasks;  ///< state pointers cleared
    std::vector<StageOneOutput> outputs;
    std::vector<DeadLetter> letters;
    std::map<int32_t, int64_t> positions;
  };
  std::vector<Commit> commits;  ///< every commit applied, in order
};

/// Takes Checkpoint::stage_one: commits a checkpoint only when every task's fence is current.
class MemoryStageOneSink : public Sink {
 public:
  explicit MemoryStageOneSink(StageOneStore* store) : store_(store) {}
  Status Open(const SinkContext& ctx) override {
    if (!ctx.tasks || !ctx.aggregate) return Status::InvalidArgument("stage one on tasks only");
    return Status::OK();
  }
  Result<std::vector<StoredPosition>> LoadPositions() override {
    std::lock_guard<std::mutex> lock(store_->mu);
    std::vector<StoredPosition> out;
    for (const auto& [p, o] : store_->positions) out.push_back({"in", p, o});
    return out;
  }
  bool SupportsState() const override { return true; }
  bool SupportsTasks() const override { return true; }
  bool TakesStageOne() const override { return true; }
  bool StoresDeadLetters() const override { return true; }
  Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) override {
    std::lock_guard<std::mutex> lock(store_->mu);
    StageOneStore::Task& t = store_->tasks[task.partition];
    ++t.fence;
    t.owner = owner.ToString();
    TaskClaim claim;
    claim.fence = t.fence;
    claim.state = t.state;
    if (auto it = store_->positions.find(task.partition); it != store_->positions.end()) {
      claim.positions[task.partition] = it->second;
    }
    return claim;
  }
  Result<std::vector<TaskRow>> LoadTaskProgress() override {
    std::lock_guard<std::mutex> lock(store_->mu);
    std::vector<TaskRow> out;
    for (const auto& [p, t] : store_->tasks) {
      TaskRow row;
      row.task = TaskId{"in", p};
      row.fence = t.fence;
      row.owner = t.owner;
      row.progress = t.progress;
      out.push_back(std::move(row));
    }
    return out;
  }
  Status Commit(const Checkpoint& cp) override {
    if ((cp.rows && !cp.rows->empty()) || (cp.deltas && !cp.deltas->empty())) {
      return Status::Internal("stage one wrote rows");
    }
    const size_t outputs = cp.stage_one ? cp.stage_one->size() : 0;
    if (outputs != cp.tasks.size()) return Status::Internal("one stage-one output per task expected");
    std::lock_guard<std::mutex> lock(store_->mu);
    for (const TaskCommit& t : cp.tasks) {
      auto it = store_->tasks.find(t.task.partition);
      if (it == store_->tasks.end() || it->second.fence != t.fence) return Status::Fenced("task claimed by another");
    }
    StageOneStore::Commit c;
    for (const TaskCommit& t : cp.tasks) {
      StageOneStore::Task& stored = store_->tasks[t.task.partition];
      stored.progress = t.progress;
      if (t.state) stored.state = *t.state;
      if (t.release) stored.owner.clear();
      c.tasks.push_back(t);
      c.tasks.back().state = nullptr;
    }
    if (cp.stage_one) c.outputs = *cp.stage_one;
    if (cp.dead_letters) c.letters = *cp.dead_letters;
    for (const StoredPosition& p : cp.positions) {
      if (p.source != "in") continue;
      store_->positions[p.partition] = p.offset;
      c.positions[p.partition] = p.offset;
    }
    store_->commits.push_back(std::move(c));
    return Status::OK();
  }

 private:
  StageOneStore* store_;
};

/// 2024-01-01 HH:MM:SS in microseconds.
int64_t At(const std::string& clock) {
  const std::optional<int64_t> t = ParseTimestamp("2024-01-01 " + clock);
  EXPECT_TRUE(t.has_value()) << clock;
  return t.value_or(0);
}

class StageOneTest : public ::testing::Test, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    group_test::RegisterGroupSource("group1");
    SetUpGroup("sluice_stage_one");
    scheme_ = "group1";
    sink_uri_ = "memory:";
  }
  void TearDown() override { TearDownGroup(); }
  std::vector<std::string> Q(const std::string&) override { return {}; }

  /// The append-mode pipeline "rp" (1-minute windows, delay 10 s, lateness 0, count and sum of
  /// v by k) as stage one, member `member`.
  std::unique_ptr<Runner> MakeStageOne(const std::string& member, RunOptions options = {}, bool hold = false,
                                       const std::string& idle_timeout = "1h") {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"rp\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nname = \"in\"\nuri = \"" + scheme_ + ":" + member + "\"\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n" +
        (hold ? "[dimension.job]\nuri = \"" + jobs_ + "\"\nkey = \"id\"\n"
                "fields = { id = \"int64\", company = \"int64\" }\nrefresh = \"20ms\"\n"
                "[[step]]\nlookup = \"job\"\nkey = \"job\"\nfields = [\"company\"]\n"
                "on_missing = \"hold\"\nhold_for = \"60s\"\nthen = \"dead_letter\"\n"
              : std::string()) +
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nmode = \"append\"\n"
        "allowed_lateness = \"0s\"\nidle_timeout = \"" + idle_timeout + "\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"sqlite:/nonexistent/unused.db\"\ntable = \"w\"\n";
    auto cfg = ParsePipelineConfig(text, "rp.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    if (!cfg.ok()) return nullptr;
    options.stage_one = true;
    StageOneStore* store = &store_;
    options.sink_override = [store]() -> Result<std::unique_ptr<Sink>> {
      return std::unique_ptr<Sink>(new MemoryStageOneSink(store));
    };
    auto runner = Runner::Make(std::move(cfg).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    if (!runner.ok()) return nullptr;
    EXPECT_TRUE((*runner)->stage_one());
    EXPECT_TRUE((*runner)->uses_tasks());
    EXPECT_FALSE((*runner)->append_on_tasks());
    return std::move(runner).value();
  }
  Runner* StartStageOne(const std::string& member, RunOptions options = {}, bool hold = false,
                        const std::string& idle_timeout = "1h") {
    GroupRuns::Run& run = runs_[member];
    if (run.thread.joinable()) run.thread.join();
    run.runner = MakeStageOne(member, options, hold, idle_timeout);
    if (!run.runner) return nullptr;
    run.done = false;
    GroupRuns::Run* r = &run;
    run.thread = std::thread([r] {
      r->status = r->runner->Run();
      r->done = true;
    });
    return run.runner.get();
  }

  std::vector<std::string> PositionOf(int32_t p) override {
    std::lock_guard<std::mutex> lock(store_.mu);
    auto it = store_.positions.find(p);
    if (it == store_.positions.end()) return {};
    return {std::to_string(it->second)};
  }
  size_t Commits() {
    std::lock_guard<std::mutex> lock(store_.mu);
    return store_.commits.size();
  }

  /// The partials of the commits [from, to) merged by task as "HH:MM:SS|k|n|s", by window
  /// start then key, and the "partition|offset" of their late dead letters.
  struct Drained {
    std::map<int32_t, std::vector<std::string>> partials;
    std::vector<std::string> late;
  };
  Drained Between(size_t from, size_t to) {
    std::lock_guard<std::mutex> lock(store_.mu);
    std::map<int32_t, std::map<std::pair<int64_t, std::string>, std::pair<int64_t, int64_t>>> merged;
    Drained out;
    for (size_t i = from; i < to && i < store_.commits.size(); ++i) {
      const StageOneStore::Commit& c = store_.commits[i];
      for (size_t t = 0; t < c.tasks.size(); ++t) {
        for (const DeltaRow& d : c.outputs[t].partials) {
          const std::vector<Value> row = FinalRow(*spec_, d);  // start, end, k, n, s
          auto& g = merged[c.tasks[t].task.partition][{d.window_start, row[2].ToString()}];
          g.first += row[3].int_value();
          g.second += row[4].int_value();
        }
      }
      for (const DeadLetter& l : c.letters) {
        if (l.reason == "late") out.late.push_back(std::to_string(l.partition) + "|" + std::to_string(l.offset));
      }
    }
    for (const auto& [p, groups] : merged) {
      for (const auto& [key, g] : groups) {
        out.partials[p].push_back(FormatTimestamp(key.first, "%H:%M:%S") + "|" + key.second + "|" +
                                  std::to_string(g.first) + "|" + std::to_string(g.second));
      }
    }
    std::sort(out.late.begin(), out.late.end());
    return out;
  }

  /// Every control the commits [from, to) carried for partition `p`'s task, in commit order.
  std::vector<RepartitionControl> Controls(int32_t p, size_t from = 0, size_t to = SIZE_MAX) {
    std::lock_guard<std::mutex> lock(store_.mu);
    std::vector<RepartitionControl> out;
    for (size_t i = from; i < to && i < store_.commits.size(); ++i) {
      const StageOneStore::Commit& c = store_.commits[i];
      for (size_t t = 0; t < c.tasks.size(); ++t) {
        if (c.tasks[t].task.partition == p) out.push_back(c.outputs[t].control);
      }
    }
    return out;
  }

  /// Stage two's view of the commits so far: every task's partials and controls, in commit
  /// order, through one StageTwoMerge (one repartition partition that gets every partial: the
  /// union of what the R partitions get, each control going to every partition anyway).
  /// Returns the windows it emitted after each commit as "HH:MM:SS|k|n|s", and its late partials;
  /// `stale`: its stale controls (below the watermark it held for their upstream).
  std::pair<std::vector<std::string>, int64_t> StageTwo(const std::vector<UpstreamId>& upstreams,
                                                        int64_t* stale = nullptr) {
    std::lock_guard<std::mutex> lock(store_.mu);
    StageTwoMerge merge(StageTwoOptions{spec_, upstreams, "rp-repartition", 0});
    std::vector<std::string> rows;
    int64_t offset = 0;
    for (const StageOneStore::Commit& c : store_.commits) {
      for (const StageOneOutput& out : c.outputs) {
        for (const DeltaRow& d : out.partials) {
          RepartitionRecord r;
          r.kind = RepartitionRecord::Kind::kPartial;
          r.partial = d;
          EXPECT_TRUE(merge.Add(std::move(r), offset++).ok());
        }
        RepartitionRecord r;
        r.kind = RepartitionRecord::Kind::kControl;
        r.control = out.control;
        EXPECT_TRUE(merge.Add(std::move(r), offset++).ok());
      }
      for (const DeltaRow& d : merge.Emit()) {
        const std::vector<Value> row = FinalRow(*spec_, d);
        rows.push_back(FormatTimestamp(d.window_start, "%H:%M:%S") + "|" + row[2].ToString() + "|" +
                       std::to_string(row[3].int_value()) + "|" + std::to_string(row[4].int_value()));
      }
    }
    if (stale) *stale = merge.stale_controls();
    return {rows, merge.late_partials()};
  }

  StageOneStore store_;
  const AggregateSpec* spec_ = nullptr;
};

// Two partitions read over two rounds of records (each round committed before the next). Each
// commit carries only what was read since the one before (drained, never kept), so the partials
// of round two hold round two's records alone; the controls carry each task's own progress; a
// record is late by its own partition's watermark: partition 0's watermark is far ahead, yet
// partition 1's record for the same window is no late record.
TEST_F(StageOneTest, EachCheckpointDrainsTheTasksPartialsAndLatenessIsPerPartition) {
  Runner* a = StartStageOne("a");
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  // Round one. Partition 0: watermark 00:06:10 - 10 s = 00:06:00 after its third record.
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("y", "00:05:30", 1, 2), Rec("x", "00:06:10", 1, 4)});
  // Partition 1: watermark 00:05:40 - 10 s = 00:05:30.
  Produce(1, {Rec("x", "00:05:20", 1, 10), Rec("z", "00:05:40", 1, 20)});
  ASSERT_TRUE(WaitPosition(0, 3));
  ASSERT_TRUE(WaitPosition(1, 2));
  const size_t round_one = Commits();
  Drained one = Between(0, round_one);
  EXPECT_EQ(one.partials[0], (std::vector<std::string>{"00:05:00|x|1|1", "00:05:00|y|1|2", "00:06:00|x|1|4"}));
  EXPECT_EQ(one.partials[1], (std::vector<std::string>{"00:05:00|x|1|10", "00:05:00|z|1|20"}));
  EXPECT_TRUE(one.late.empty()) << ::testing::PrintToString(one.late);

  // Round two. Partition 0: x 00:06:20 (watermark 00:06:10), then x 00:04:50 (window ends
  // 00:05:00 <= 00:06:10: late) and y 00:05:55 (ends 00:06:00 <= 00:06:10: late).
  Produce(0, {Rec("x", "00:06:20", 1, 8), Rec("x", "00:04:50", 1, 100), Rec("y", "00:05:55", 1, 16)});
  // Partition 1: z 00:05:50 is in window 00:05 too, but its own partition's watermark is
  // 00:05:30 < 00:06:00: not late, whatever partition 0's.
  Produce(1, {Rec("z", "00:05:50", 1, 40)});
  ASSERT_TRUE(WaitPosition(0, 6));
  ASSERT_TRUE(WaitPosition(1, 3));
  ASSERT_TRUE(Stop("a").ok());
  const size_t all = Commits();
  Drained two = Between(round_one, all);
  EXPECT_EQ(two.partials[0], (std::vector<std::string>{"00:06:00|x|1|8"}));
  EXPECT_EQ(two.partials[1], (std::vector<std::string>{"00:05:00|z|1|40"}));
  EXPECT_EQ(two.late, (std::vector<std::string>{"0|4", "0|5"}));
  EXPECT_EQ(a->Snapshot().late, 2);

  // Controls: each task's own progress, never going back; the last ones after round two.
  for (int32_t p : {0, 1}) {
    const std::vector<RepartitionControl> controls = Controls(p);
    ASSERT_FALSE(controls.empty());
    for (size_t i = 0; i < controls.size(); ++i) {
      EXPECT_EQ(controls[i].upstream, (UpstreamId{0, p}));
      EXPECT_FALSE(controls[i].end);
      if (i > 0) {
        EXPECT_GE(controls[i].watermark, controls[i - 1].watermark);
      }
    }
  }
  const RepartitionControl c0 = Controls(0).back(), c1 = Controls(1).back();
  EXPECT_EQ(c0.max_event_time, At("00:06:20"));
  EXPECT_EQ(c0.watermark, At("00:06:10"));
  EXPECT_EQ(c1.max_event_time, At("00:05:50"));
  EXPECT_EQ(c1.watermark, At("00:05:40"));
  // The last controls were those of round one's end before round two.
  EXPECT_EQ(Controls(0, 0, round_one).back().watermark, At("00:06:00"));
  EXPECT_EQ(Controls(1, 0, round_one).back().watermark, At("00:05:30"));
  // A clean stop releases both tasks; their state is progress only (no open windows).
  std::lock_guard<std::mutex> lock(store_.mu);
  for (int32_t p : {0, 1}) {
    EXPECT_TRUE(store_.tasks[p].owner.empty());
    auto st = TaskState::Parse(store_.tasks[p].state, spec_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    EXPECT_TRUE(st->open.empty());
    EXPECT_TRUE(st->held.empty());
  }
  EXPECT_EQ(store_.tasks[0].progress.max_event_time, At("00:06:20"));
}

// A partition moved to another process: the new owner starts from the committed position and
// progress; every record's partial is in exactly one commit, and the new owner's controls do
// not go back. Then --until-caught-up: the final controls carry `end`.
TEST_F(StageOneTest, AMovedTaskGoesOnFromItsCommittedProgressAndCaughtUpControlsSayEnd) {
  Runner* a = StartStageOne("a");
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  Runner* b = StartStageOne("b");
  ASSERT_NE(b, nullptr);
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:40", 1, 2)});
  Produce(1, {Rec("x", "00:05:10", 1, 10)});
  ASSERT_TRUE(WaitPosition(0, 2));
  ASSERT_TRUE(WaitPosition(1, 1));
  Command("a", 'r', 0);
  Command("b", 'a', 0);
  // Partition 0's watermark moved with its task (00:05:30): 00:04:59 is late at b.
  Produce(0, {Rec("x", "00:04:59", 1, 100), Rec("x", "00:05:50", 1, 4)});
  ASSERT_TRUE(WaitPosition(0, 4));
  ASSERT_TRUE(Stop("b").ok());
  ASSERT_TRUE(Stop("a").ok());
  Drained all = Between(0, Commits());
  EXPECT_EQ(all.partials[0], (std::vector<std::string>{"00:05:00|x|3|7"}));
  EXPECT_EQ(all.partials[1], (std::vector<std::string>{"00:05:00|x|1|10"}));
  EXPECT_EQ(all.late, (std::vector<std::string>{"0|2"}));
  const std::vector<RepartitionControl> c0 = Controls(0);
  for (size_t i = 1; i < c0.size(); ++i) {
    EXPECT_GE(c0[i].watermark, c0[i - 1].watermark);
  }
  EXPECT_EQ(c0.back().watermark, At("00:05:40"));

  // A later --until-caught-up run reads to the end and says so in its last controls.
  RunOptions caught_up;
  caught_up.until_caught_up = true;
  Runner* c = StartStageOne("c", caught_up);
  ASSERT_NE(c, nullptr);
  const size_t before = Commits();
  Commands("c", {{'a', 0}, {'a', 1}});
  Produce(1, {Rec("y", "00:06:30", 1, 5)});
  ASSERT_TRUE(WaitPosition(1, 2));
  {
    // The group's source ends (as the end offsets seen at start are reached).
    std::lock_guard<std::mutex> lock(group_test::g_group->mu);
    group_test::g_group->finish = true;
  }
  group_test::g_group->cv.notify_all();
  ASSERT_TRUE(WaitFor([&] { return runs_.at("c").done.load(); }));
  ASSERT_TRUE(runs_.at("c").status.ok()) << runs_.at("c").status.ToString();
  for (int32_t p : {0, 1}) {
    const std::vector<RepartitionControl> controls = Controls(p, before);
    ASSERT_FALSE(controls.empty()) << p;
    EXPECT_TRUE(controls.back().end) << p;
  }
  EXPECT_EQ(Controls(1, before).back().watermark, At("00:06:20"));
  EXPECT_EQ(Between(before, Commits()).partials[1], (std::vector<std::string>{"00:06:00|y|1|5"}));
}

// Idle tasks (idle_timeout 1 s: their first records come well before it). Partition 0 is at
// 00:06:10 (watermark 00:06:00), partition 1 at 00:05:00 (watermark 00:04:50); then both go idle.
// With every partition idle the pipeline's clock releases the highest watermark, 00:06:00, as the
// closed bound, and partition 1's worker judges its records against it: its control says so (idle,
// watermark 00:06:00, not its own 00:04:50). Stage two therefore passes 00:04:50 only as far as
// partition 1's worker already enforces: were the control's watermark its own while stage two left
// idle upstreams out, a record read before the worker saw the raised bound would reach stage two
// after the window. Partition 1's next record, of window 00:05 (ends 00:06:00), is late in stage
// one (a dead letter with its offset) and no partial; stage two, fed every commit, emits window
// 00:05 once, with no late partial.
TEST_F(StageOneTest, AnIdleTasksControlCarriesTheClosedBoundItsWorkerEnforces) {
  Runner* a = StartStageOne("a", {}, false, "1s");
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  Produce(0, {Rec("x", "00:06:10", 1, 1)});
  Produce(1, {Rec("y", "00:05:00", 1, 2)});
  ASSERT_TRUE(WaitPosition(0, 1));
  ASSERT_TRUE(WaitPosition(1, 1));
  ASSERT_TRUE(WaitFor([&] {
    const std::vector<RepartitionControl> c = Controls(1);
    return !c.empty() && c.back().idle && c.back().watermark == At("00:06:00");
  })) << "partition 1's controls: " << Controls(1).size();
  EXPECT_EQ(Controls(1).back().max_event_time, At("00:05:00"));
  Produce(1, {Rec("y", "00:05:30", 1, 4)});
  ASSERT_TRUE(WaitPosition(1, 2));
  ASSERT_TRUE(Stop("a").ok());
  Drained all = Between(0, Commits());
  EXPECT_EQ(all.partials[0], (std::vector<std::string>{"00:06:00|x|1|1"}));
  EXPECT_EQ(all.partials[1], (std::vector<std::string>{"00:05:00|y|1|2"}));
  EXPECT_EQ(all.late, (std::vector<std::string>{"1|1"}));
  // Controls never go back; partition 1's last keeps 00:06:00 (a late record is no activity).
  const std::vector<RepartitionControl> c1 = Controls(1);
  for (size_t i = 1; i < c1.size(); ++i) EXPECT_GE(c1[i].watermark, c1[i - 1].watermark);
  EXPECT_EQ(c1.back().watermark, At("00:06:00"));
  const auto [rows, late_partials] = StageTwo({UpstreamId{0, 0}, UpstreamId{0, 1}});
  EXPECT_EQ(rows, (std::vector<std::string>{"00:05:00|y|1|2"}));
  EXPECT_EQ(late_partials, 0);
}

// An idle task handed over: its last owner's controls carried the closed bound its worker
// enforced (00:06:00, above its own watermark 00:04:50, as in the test above), and the claim
// makes the new owner's worker enforce that bound from the start. So every control of the new
// owner carries it too. Before the claim's bound was the floor of the task's controls, a
// collection that saw the task owned but came after a handoff its worker made just before the
// claim (same loop turn: hand over, then Poll claims) sent the task's own restored watermark,
// 00:04:50: stale to stage two (ignored and counted, and an `end` on it could not count). That
// is a race (here 2 of about 30 runs on a loaded machine failed without the floor; the busy
// command only widens the time before the worker's next handoff). With --until-caught-up the
// new owner's controls say `end`, and its record of window 00:05 is late in stage one.
TEST_F(StageOneTest, AHandedOverIdleTasksFirstControlKeepsTheBoundItsLastOwnerSent) {
  Runner* a = StartStageOne("a", {}, false, "1s");
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  RunOptions caught_up;
  caught_up.until_caught_up = true;
  Runner* b = StartStageOne("b", caught_up, false, "1s");
  ASSERT_NE(b, nullptr);
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  Produce(0, {Rec("x", "00:06:10", 1, 1)});
  Produce(1, {Rec("y", "00:05:00", 1, 2)});
  ASSERT_TRUE(WaitPosition(0, 1));
  ASSERT_TRUE(WaitPosition(1, 1));
  ASSERT_TRUE(WaitFor([&] {
    const std::vector<RepartitionControl> c = Controls(1);
    return !c.empty() && c.back().idle && c.back().watermark == At("00:06:00");
  })) << "partition 1's controls: " << Controls(1).size();
  Command("a", 'r', 1);
  const size_t moved = Commits();
  // b's worker hands over only a second after the claim; b's checkpoints meanwhile commit the
  // claimed task with what the claim restored.
  Commands("b", {{'a', 1}, {'b', 1000}});
  Produce(1, {Rec("y", "00:05:30", 1, 4)});
  ASSERT_TRUE(WaitPosition(1, 2));
  ASSERT_TRUE(Stop("a").ok());
  {
    std::lock_guard<std::mutex> lock(group_test::g_group->mu);
    group_test::g_group->finish = true;
  }
  group_test::g_group->cv.notify_all();
  ASSERT_TRUE(WaitFor([&] { return runs_.at("b").done.load(); }));
  ASSERT_TRUE(runs_.at("b").status.ok()) << runs_.at("b").status.ToString();
  const std::vector<RepartitionControl> after = Controls(1, moved);
  ASSERT_FALSE(after.empty());
  for (const RepartitionControl& c : after) {
    EXPECT_EQ(c.watermark, At("00:06:00")) << "a control of the new owner went below its last owner's";
  }
  EXPECT_TRUE(after.back().end);
  const std::vector<RepartitionControl> all = Controls(1);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i].watermark, all[i - 1].watermark) << i;
  EXPECT_EQ(Between(0, Commits()).late, (std::vector<std::string>{"1|1"}));
  int64_t stale = -1;
  const auto [rows, late_partials] = StageTwo({UpstreamId{0, 0}, UpstreamId{0, 1}}, &stale);
  EXPECT_EQ(stale, 0);
  EXPECT_EQ(rows, (std::vector<std::string>{"00:05:00|y|1|2"}));
  EXPECT_EQ(late_partials, 0);
}

// A partition of the input that nobody has reported (partition 1 of 0..2, never assigned: no
// worker reads it, no task progress of it is committed) holds stage one's closed bound back for
// good, as stage two waits for its task's first control for good; it does not count idle after
// the idle timeout (1 s). Partitions 0 (00:06:10, watermark 00:06:00) and 2 (00:05:00,
// watermark 00:04:50) go idle: were partition 1 idle too, every partition would be, the closed
// bound would rise to the highest watermark, 00:06:00, and partition 2's next record, of window
// 00:05 (ends 00:06:00), would be late in stage one while stage two has not emitted that window
// (and will, once partition 1 reports). By its own partition's watermark it is not late.
TEST_F(StageOneTest, AnInputPartitionNobodyReportedHoldsTheClosedBoundBack) {
  group_test::g_group->input_partitions = {0, 1, 2};
  Runner* a = StartStageOne("a", {}, false, "1s");
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  Command("a", 'a', 0);
  Command("a", 'a', 2);
  Produce(0, {Rec("x", "00:06:10", 1, 1)});
  Produce(2, {Rec("y", "00:05:00", 1, 2)});
  ASSERT_TRUE(WaitPosition(0, 1));
  ASSERT_TRUE(WaitPosition(2, 1));
  ASSERT_TRUE(WaitFor([&] {
    const std::vector<RepartitionControl> c0 = Controls(0), c2 = Controls(2);
    return !c0.empty() && !c2.empty() && c0.back().idle && c2.back().idle;
  }));
  // Several idle timeouts and many checkpoints later the bound has not moved.
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  EXPECT_EQ(Controls(2).back().watermark, At("00:04:50"));
  Produce(2, {Rec("y", "00:05:30", 1, 4)});
  ASSERT_TRUE(WaitPosition(2, 2));
  ASSERT_TRUE(Stop("a").ok());
  Drained all = Between(0, Commits());
  EXPECT_EQ(all.partials[0], (std::vector<std::string>{"00:06:00|x|1|1"}));
  EXPECT_EQ(all.partials[2], (std::vector<std::string>{"00:05:00|y|2|6"}));
  EXPECT_TRUE(all.late.empty()) << ::testing::PrintToString(all.late);
  EXPECT_EQ(a->Snapshot().late, 0);
}

// Two stage-one processes; b's partition (1) never gets a record. Its task goes idle, and its
// controls carry the bound b's worker enforces, which rises only with a's progress (partition
// 0), known to b only by reading the tasks' committed progress. With nothing new to commit b
// must still read it (StartCommit's "nothing new" path): were it read only after a commit of
// b's own, b's controls would stay at 00:04:50 for good once both tasks went idle, and stage
// two's minimum, which counts idle upstreams, would hold every window back. Partition 0 moves
// to 00:07:10 (watermark 00:07:00) after b has settled: b's idle control follows it to
// 00:07:00 and stage two emits window 00:05 (ends 00:06:00), not 00:07.
TEST_F(StageOneTest, AProcessWhosePartitionsStayEmptyKeepsItsControlsRisingWithTheOthersProgress) {
  Runner* a = StartStageOne("a", {}, false, "1s");
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  Runner* b = StartStageOne("b", {}, false, "1s");
  ASSERT_NE(b, nullptr);
  Command("a", 'a', 0);
  Command("b", 'a', 1);
  Produce(0, {Rec("x", "00:05:00", 1, 1)});
  ASSERT_TRUE(WaitPosition(0, 1));
  // Both tasks idle, b's control at a's watermark then (00:04:50), and b settled: every change
  // it had to commit is committed, so from here on it has nothing new.
  ASSERT_TRUE(WaitFor([&] {
    const std::vector<RepartitionControl> c0 = Controls(0), c1 = Controls(1);
    return !c0.empty() && !c1.empty() && c0.back().idle && c1.back().idle && c1.back().watermark == At("00:04:50");
  })) << "partition 1's controls: " << Controls(1).size();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const size_t settled = Commits();
  Produce(0, {Rec("x", "00:07:10", 1, 2)});
  ASSERT_TRUE(WaitPosition(0, 2));
  EXPECT_TRUE(WaitFor([&] {
    const std::vector<RepartitionControl> c1 = Controls(1, settled);
    return !c1.empty() && c1.back().watermark == At("00:07:00");
  })) << "partition 1's control stayed at "
      << (Controls(1).empty() ? std::string("none") : FormatTimestamp(Controls(1).back().watermark, "%H:%M:%S"));
  ASSERT_TRUE(Stop("a").ok());
  ASSERT_TRUE(Stop("b").ok());
  for (const RepartitionControl& c : Controls(1)) {
    EXPECT_EQ(c.max_event_time, kNoWatermark);  // b never read a record
  }
  const std::vector<RepartitionControl> c1 = Controls(1);
  for (size_t i = 1; i < c1.size(); ++i) EXPECT_GE(c1[i].watermark, c1[i - 1].watermark);
  const auto [rows, late_partials] = StageTwo({UpstreamId{0, 0}, UpstreamId{0, 1}});
  EXPECT_EQ(rows, (std::vector<std::string>{"00:05:00|x|1|1"}));
  EXPECT_EQ(late_partials, 0);
  EXPECT_EQ(Between(0, Commits()).partials[0], (std::vector<std::string>{"00:05:00|x|1|1", "00:07:00|x|1|2"}));
}

// A record held by a lookup (its job unknown yet) belongs to its task's state: it moves with the
// partition to the next owner, which counts it once when the job appears.
TEST_F(StageOneTest, AHeldRecordMovesWithItsTaskAndIsCountedOnce) {
  Runner* a = StartStageOne("a", {}, /*hold=*/true);
  ASSERT_NE(a, nullptr);
  spec_ = a->plan().aggregate.get();
  Runner* b = StartStageOne("b", {}, /*hold=*/true);
  ASSERT_NE(b, nullptr);
  Command("a", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:10", 5, 10)});  // job 5: held
  ASSERT_TRUE(WaitPosition(0, 2));
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().held == 1; }));
  Command("a", 'r', 0);
  {
    std::lock_guard<std::mutex> lock(store_.mu);
    auto st = TaskState::Parse(store_.tasks[0].state, spec_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    ASSERT_EQ(st->held.size(), 1u);
    EXPECT_EQ(st->held[0].offset, 1);
    EXPECT_TRUE(st->open.empty());
  }
  Command("b", 'a', 0);
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
  WriteJobs("1,10\n5,50\n");
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 0; }));
  ASSERT_TRUE(Stop("b").ok());
  ASSERT_TRUE(Stop("a").ok());
  EXPECT_EQ(Between(0, Commits()).partials[0], (std::vector<std::string>{"00:05:00|x|2|11"}));
  std::lock_guard<std::mutex> lock(store_.mu);
  auto st = TaskState::Parse(store_.tasks[0].state, spec_);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->held.empty());
}

}  // namespace
}  // namespace sluice
