// Tasks in the Cassandra sink (issue 16), against the real server of `scripts/services.sh up
// cassandra` (FAIL when CI=true and it is missing, else a loud skip): a claim bumps the task's
// fence and returns its committed state and positions; a commit carrying an older fence is
// refused (kFenced) with nothing of its tasks applied, and its upserts lose to the new owner's;
// a release clears the owner; the legacy one-per-pipeline state moves into task rows. Expected
// values are read back with plain CQL queries.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "connectors/cassandra/cassandra_sink.h"
#include "connectors/cassandra/tests/cassandra_test_util.h"
#include "core/time.h"
#include "runtime/source.h"
#include "runtime/tests/task_sink_test_util.h"

namespace sluice {
namespace {

using cassandra::CqlValue;
using cassandra_test::kKeyspace;
using task_sink_test::HeldState;
using task_sink_test::LegacyState;
using task_sink_test::Owner;
using task_sink_test::ReleasedProgress;
using task_sink_test::TaskCheckpoint;
using Row = std::vector<Value>;

class CassandraSinkTasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CASSANDRA_CONNECT_OR_SKIP(conn_);
    // A pipeline name of its own per run: task rows of earlier runs are never in the way.
    static int counter = 0;
    pipeline_ = "tasks_" + std::to_string(::getpid()) + "_" + std::to_string(WallClockMicros() / 1000000) + "_" +
                std::to_string(++counter);
    ctx_ = task_sink_test::TasksContext(pipeline_);
  }

  std::unique_ptr<CassandraSink> OpenSink(bool tasks = true, const std::map<std::string, std::string>& options = {}) {
    SinkConfig c;
    c.uri = "cassandra://" + cassandra_test::ServerHostPort() + "/" + kKeyspace;
    c.table = "tasks_rows";
    c.options.Set("key", Option{"id", {"test.toml", 7, 1}});
    for (const auto& [k, v] : options) c.options.Set(k, Option{v, {"test.toml", 8, 1}});
    auto s = CassandraSink::Make(c);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    std::unique_ptr<CassandraSink> sink(static_cast<CassandraSink*>(s->release()));
    SinkContext ctx = ctx_;
    ctx.tasks = tasks;
    Status open = sink->Open(ctx);
    EXPECT_TRUE(open.ok()) << open.ToString();
    return open.ok() ? std::move(sink) : nullptr;
  }

  /// The rows of `cql` (`?` bound to the pipeline name) as "a|b" lines (null as empty), sorted.
  std::vector<std::string> Lines(const std::string& cql) {
    std::vector<CqlValue> args;
    if (cql.find('?') != std::string::npos) args.push_back(CqlValue::Text(pipeline_));
    cassandra::QueryOptions q;
    q.consistency = cassandra::Consistency::kOne;
    auto r = conn_->QueryAllPages(cql, args, q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> out;
    if (!r.ok()) return out;
    for (const auto& row : r->rows) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) line += (i ? "|" : "") + row[i].ToString();
      out.push_back(line);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string Table(const std::string& name) const { return std::string(kKeyspace) + "." + name; }
  std::string Id(const std::string& id) const { return pipeline_ + "-" + id; }
  Row R(const std::string& id, int64_t n) const { return {Value::String(Id(id)), Value::Int(n)}; }
  std::vector<std::string> Rows() {
    return Lines("SELECT id, n FROM " + Table("tasks_rows") + " WHERE id IN ('" + Id("k") + "', '" + Id("x") +
                 "', '" + Id("y") + "', '" + Id("z") + "')");
  }

  std::unique_ptr<cassandra::Connection> conn_;
  std::string pipeline_;
  SinkContext ctx_;
};

TEST_F(CassandraSinkTasksTest, AClaimFencesTheEarlierOwnerWhoseLateWritesLose) {
  auto a = OpenSink();
  ASSERT_TRUE(a);
  auto b = OpenSink();
  ASSERT_TRUE(b);
  const TaskId task{"in", 3};
  const int32_t gen = kGenerationPartitionBase + 3;

  auto first = a->ClaimTask(task, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->fence, 1);
  EXPECT_TRUE(first->state.empty());
  EXPECT_TRUE(first->positions.empty());

  // A commits the task: a row, positions 10 (and its generation 2), one held record.
  const TaskState st = HeldState(100);
  const std::string blob = st.Serialize(nullptr);
  const std::vector<Row> rows = {R("k", 1), R("x", 1)};
  Status s = a->Commit(TaskCheckpoint(&rows, {{"in", 3, 10}, {"in", gen, 2}}, 3, first->fence, st.progress, &blob));
  ASSERT_TRUE(s.ok()) << s.ToString();

  // B claims it: fence 2, with A's state and positions as committed.
  auto second = b->ClaimTask(task, Owner("b"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->fence, 2);
  EXPECT_EQ(second->state, blob);
  EXPECT_EQ(second->positions, (std::map<int32_t, int64_t>{{3, 10}, {gen, 2}}));
  EXPECT_EQ(Lines("SELECT owner, fence FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?"),
            std::vector<std::string>{"b@h pid 1|2"});

  // B re-reads from 10 and commits k = 2 at position 20 (state unchanged: null).
  const std::vector<Row> newer = {R("k", 2)};
  s = b->Commit(TaskCheckpoint(&newer, {{"in", 3, 20}}, 3, second->fence));
  ASSERT_TRUE(s.ok()) << s.ToString();

  // A, cut off, still believes it owns the task and commits an older k after B's write: refused
  // whole, and its upsert of k, which reaches the table before the refusal, loses to B's.
  TaskState other;
  other.progress.max_event_time = 999;
  const std::string stale_blob = other.Serialize(nullptr);
  const std::vector<Row> stale_rows = {R("k", 1), R("y", 1)};
  s = a->Commit(
      TaskCheckpoint(&stale_rows, {{"in", 3, 15}, {"in", gen, 3}}, 3, first->fence, other.progress, &stale_blob, true));
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  // y is a row A read and wrote; B writes it too when it reads that far (README "Tasks").
  EXPECT_EQ(Rows(), (std::vector<std::string>{Id("k") + "|2", Id("x") + "|1", Id("y") + "|1"}));
  EXPECT_EQ(Lines("SELECT \"partition\", \"offset\" FROM " + Table("\"_sluice_positions\"") + " WHERE pipeline = ?"),
            (std::vector<std::string>{"1610612739|2", "3|20"}));
  EXPECT_EQ(Lines("SELECT owner, fence, \"position\", generation_position, max_event_time FROM " +
                  Table("\"_sluice_tasks\"") + " WHERE pipeline = ?"),
            std::vector<std::string>{"b@h pid 1|2|20|2|"});

  // B releases it with its progress: the owner is cleared, a state left out (null) stays.
  const TaskProgress later = ReleasedProgress();
  s = b->Commit(TaskCheckpoint(nullptr, {{"in", 3, 21}}, 3, second->fence, later, nullptr, true));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT owner, max_event_time, watermark, enforced, idle FROM " + Table("\"_sluice_tasks\"") +
                  " WHERE pipeline = ?"),
            std::vector<std::string>{"|200||50|true"});
  auto progress = a->LoadTaskProgress();
  ASSERT_TRUE(progress.ok()) << progress.status().ToString();
  ASSERT_EQ(progress->size(), 1u);
  EXPECT_EQ((*progress)[0].task, task);
  EXPECT_EQ((*progress)[0].fence, 2);
  EXPECT_EQ((*progress)[0].owner, "");
  EXPECT_EQ((*progress)[0].progress, later);
  EXPECT_GT((*progress)[0].updated_micros, 0);

  // A claims it back (a fresh run): fence 3, B's last positions, the state committed by A.
  auto third = a->ClaimTask(task, Owner("a"));
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->fence, 3);
  EXPECT_EQ(third->state, blob);
  EXPECT_EQ(third->positions, (std::map<int32_t, int64_t>{{3, 21}, {gen, 2}}));
  // Its next write of k wins over B's: the claim started above B's range.
  const std::vector<Row> newest = {R("k", 3)};
  s = a->Commit(TaskCheckpoint(&newest, {{"in", 3, 22}}, 3, third->fence));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Rows(), (std::vector<std::string>{Id("k") + "|3", Id("x") + "|1", Id("y") + "|1"}));
}

TEST_F(CassandraSinkTasksTest, ALaterClaimMovesTheOtherTasksLimitsBeforeTheRowsAreWritten) {
  auto a = OpenSink();
  ASSERT_TRUE(a);
  auto b = OpenSink();
  ASSERT_TRUE(b);
  const TaskId t0{"in", 0}, t1{"in", 1}, t2{"in", 2};
  auto limits = [&] {
    return Lines("SELECT \"partition\", ts_limit FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?");
  };
  auto c0 = a->ClaimTask(t0, Owner("a"));
  ASSERT_TRUE(c0.ok()) << c0.status().ToString();
  // A claim more than the reserved range (1 s) later starts above t0's limit: a checkpoint of
  // both first moves t0's limit up (IF fence), then writes at one timestamp inside both ranges.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto c1 = a->ClaimTask(t1, Owner("a"));
  ASSERT_TRUE(c1.ok()) << c1.status().ToString();
  const std::vector<Row> rows = {R("x", 1)};
  Checkpoint cp = TaskCheckpoint(&rows, {{"in", 0, 5}, {"in", 1, 6}}, 0, c0->fence);
  cp.tasks.push_back(TaskCommit{t1, c1->fence, TaskProgress{}, nullptr, false});
  Status s = a->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto written = Lines("SELECT WRITETIME(n) FROM " + Table("tasks_rows") + " WHERE id = '" + Id("x") + "'");
  ASSERT_EQ(written.size(), 1u);
  const int64_t t = std::stoll(written[0]);
  const std::string limit = std::to_string(t + kTaskTimestampRange + 1);
  EXPECT_EQ(limits(), (std::vector<std::string>{"0|" + limit, "1|" + limit}));

  // B takes t1 over; A claims t2 a while later and commits t1 and t2: moving t1's limit fails
  // on its fence, so the commit is refused before any row is written.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto b1 = b->ClaimTask(t1, Owner("b"));
  ASSERT_TRUE(b1.ok()) << b1.status().ToString();
  auto c2 = a->ClaimTask(t2, Owner("a"));
  ASSERT_TRUE(c2.ok()) << c2.status().ToString();
  const std::vector<Row> late = {R("z", 1)};
  Checkpoint stale = TaskCheckpoint(&late, {{"in", 1, 9}, {"in", 2, 1}}, 1, c1->fence);
  stale.tasks.push_back(TaskCommit{t2, c2->fence, TaskProgress{}, nullptr, false});
  s = a->Commit(stale);
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_EQ(Rows(), std::vector<std::string>{Id("x") + "|1"});
  EXPECT_EQ(Lines("SELECT \"partition\", \"position\", fence FROM " + Table("\"_sluice_tasks\"") +
                  " WHERE pipeline = ?"),
            (std::vector<std::string>{"0|5|1", "1|6|2", "2||1"}));
}

TEST_F(CassandraSinkTasksTest, ACommitWithAnUnclaimedTaskIsFencedBeforeWritingAnything) {
  auto a = OpenSink();
  ASSERT_TRUE(a);
  const std::vector<Row> rows = {R("z", 1)};
  Status s = a->Commit(TaskCheckpoint(&rows, {{"in", 0, 1}}, 0, 1));
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_TRUE(Rows().empty());
  EXPECT_TRUE(Lines("SELECT \"offset\" FROM " + Table("\"_sluice_positions\"") + " WHERE pipeline = ?").empty());
}

TEST_F(CassandraSinkTasksTest, TheTaskRowsHoldThePositionsWhenTheMirrorWasNotWritten) {
  auto a = OpenSink();
  ASSERT_TRUE(a);
  auto claim = a->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  const Checkpoint cp = TaskCheckpoint(nullptr, {{"in", 0, 30}}, 0, claim->fence);
  a->SetTestHook([](std::string_view stage) {
    return stage == "tasks_committed" ? Status::Aborted("crash after the tasks") : Status::OK();
  });
  EXPECT_FALSE(a->Commit(cp).ok());
  EXPECT_TRUE(Lines("SELECT \"offset\" FROM " + Table("\"_sluice_positions\"") + " WHERE pipeline = ?").empty());
  auto restarted = OpenSink();
  ASSERT_TRUE(restarted);
  auto positions = restarted->LoadPositions();
  ASSERT_TRUE(positions.ok()) << positions.status().ToString();
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"in", 0, 30}}));
}

TEST_F(CassandraSinkTasksTest, TheLegacyStateMovesIntoTaskRows) {
  // A run of an older sluice: one state row for the pipeline.
  const std::string blob = LegacyState().Serialize(nullptr);
  {
    auto legacy = OpenSink(false);
    ASSERT_TRUE(legacy);
    Status s = legacy->Commit(task_sink_test::LegacyCheckpoint({{"in", 0, 8}, {"in", 1, 6}}, &blob));
    ASSERT_TRUE(s.ok()) << s.ToString();
    // A sink that is not told to use tasks leaves the legacy state alone.
    auto again = OpenSink(false);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->LoadState().value(), blob);
  }
  auto a = OpenSink();
  ASSERT_TRUE(a);
  EXPECT_TRUE(Lines("SELECT state FROM " + Table("\"_sluice_state\"") + " WHERE pipeline = ?").empty());
  EXPECT_EQ(Lines("SELECT source, \"partition\", fence, owner, max_event_time, enforced FROM " +
                  Table("\"_sluice_tasks\"") + " WHERE pipeline = ?"),
            (std::vector<std::string>{"in|0|0||100|70", "in|1|0||90|70"}));
  auto claim = a->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ(claim->fence, 1);
  EXPECT_EQ(claim->positions, (std::map<int32_t, int64_t>{{1, 6}}));  // from _sluice_positions
  ASSERT_NO_FATAL_FAILURE(task_sink_test::ExpectLegacyPartitionOne(claim->state));
  // A second open (another process) finds the tasks and migrates nothing again.
  auto b = OpenSink();
  ASSERT_TRUE(b);
  EXPECT_EQ(Lines("SELECT \"partition\", fence FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?"),
            (std::vector<std::string>{"0|0", "1|1"}));
}

// An older sluice (one state row per pipeline) still running after the state moved into task
// rows — a rolling upgrade: its row would be ignored (its held records lost, what it applied
// applied again). Refused at Open and in every commit of tasks, as the SQL sinks do; the row is
// left for the operator. The migration's own row, left by a crash before its delete (written at
// the mark), is deleted at the next Open instead.
TEST_F(CassandraSinkTasksTest, ALegacyStateRowWrittenAfterTheMigrationIsRefusedAtOpenAndCommit) {
  WindowState old;
  old.max_event_times[{"in", 0}] = 100;
  old.held.push_back(HeldRecord{"p0-a", 0, 7, 0});
  const std::string blob = old.Serialize(nullptr);
  auto legacy = OpenSink(false);
  ASSERT_TRUE(legacy);
  {
    Checkpoint cp;
    cp.positions = {{"in", 0, 8}};
    cp.state = &blob;
    ASSERT_TRUE(legacy->Commit(cp).ok());
  }
  const std::string state_written =
      "SELECT WRITETIME(state) FROM " + Table("\"_sluice_state\"") + " WHERE pipeline = ?";
  const std::vector<std::string> written = Lines(state_written);
  ASSERT_EQ(written.size(), 1u);
  auto make = [&] {
    SinkConfig c;
    c.uri = "cassandra://" + cassandra_test::ServerHostPort() + "/" + kKeyspace;
    c.table = "tasks_rows";
    c.options.Set("key", Option{"id", {"test.toml", 7, 1}});
    auto made = CassandraSink::Make(c);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return std::unique_ptr<CassandraSink>(made.ok() ? static_cast<CassandraSink*>(made->release()) : nullptr);
  };
  {
    // The migration crashes after its batch, before deleting the legacy row.
    auto crashing = make();
    ASSERT_TRUE(crashing);
    crashing->SetTestHook([](std::string_view stage) {
      return stage == "state_moved" ? Status::Aborted("crash after moving the state") : Status::OK();
    });
    EXPECT_FALSE(crashing->Open(ctx_).ok());
  }
  // The mark is the moved row's WRITETIME; the row is still there.
  EXPECT_EQ(Lines("SELECT legacy_state_ts FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ? LIMIT 1"),
            written);
  EXPECT_EQ(Lines(state_written), written);
  // The next Open finds the row at the mark: the one already moved, deleted now, not refused.
  auto a = OpenSink();
  ASSERT_TRUE(a);
  EXPECT_TRUE(Lines(state_written).empty());
  auto claim = a->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ(claim->positions, (std::map<int32_t, int64_t>{{0, 8}}));
  ASSERT_EQ(TaskState::Parse(claim->state, nullptr).value().held.size(), 1u);
  Checkpoint ok;
  ok.positions = {{"in", 0, 9}};
  ok.tasks.push_back(TaskCommit{TaskId{"in", 0}, claim->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE(a->Commit(ok).ok());

  // The older sluice commits again: its row is newer than the mark.
  {
    Checkpoint cp;
    cp.positions = {{"in", 0, 12}};
    cp.state = &blob;
    ASSERT_TRUE(legacy->Commit(cp).ok());
  }
  Checkpoint next;
  next.positions = {{"in", 0, 10}};
  next.tasks.push_back(TaskCommit{TaskId{"in", 0}, claim->fence, TaskProgress{}, nullptr, false});
  Status s = a->Commit(next);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("every process of a pipeline must run a version with per-partition state: stop them "
                             "all, then start"),
            std::string::npos)
      << s.ToString();
  // Nothing of the refused commit: the task row keeps the position of the last commit.
  EXPECT_EQ(Lines("SELECT \"position\" FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?"),
            std::vector<std::string>{"9"});
  {
    auto b = make();
    ASSERT_TRUE(b);
    Status open = b->Open(ctx_);
    EXPECT_EQ(open.code(), StatusCode::kFailedPrecondition) << open.ToString();
    EXPECT_NE(open.message().find("_sluice_state next to its per-partition rows"), std::string::npos)
        << open.ToString();
  }
  // The row is left as it is.
  EXPECT_EQ(Lines(state_written).size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Large task states (append mode's open windows): chunks in _sluice_task_state, named by the
// task row under the fence.

constexpr int64_t kMinute = 60'000'000;

/// count() by a string key over one-minute windows: the aggregate the open windows below are of.
AggregateSpec CountByUser() {
  AggregateSpec spec;
  spec.window_micros = kMinute;
  spec.append_mode = true;
  KeySpec k;
  k.name = "user";
  k.type = Type::kString;
  spec.keys.push_back(std::move(k));
  MetricSpec m;
  m.name = "n";
  m.fn = AggFn::kCount;
  spec.metrics.push_back(std::move(m));
  return spec;
}

/// A task state with `windows` open windows: window i starts at minute i % 60, key
/// "user-<i>-" padded to 48 bytes, count i * 10 + salt (so states of other salts differ in
/// every window).
TaskState OpenWindows(int windows, int salt) {
  TaskState st;
  st.progress.max_event_time = 3600 * 1'000'000LL + salt;
  st.emitted_before = kMinute;
  for (int i = 0; i < windows; ++i) {
    DeltaRow row;
    row.window_start = (i % 60) * kMinute;
    std::string key = "user-" + std::to_string(i) + "-";
    key.resize(48, 'x');
    row.keys = {Value::String(key)};
    row.metrics.resize(1);
    row.metrics[0].count = i * 10 + salt;
    st.open.push_back(std::move(row));
  }
  return st;
}

/// The versions of partition 3's state chunks in _sluice_task_state, each with its chunk count.
std::map<std::string, int> ChunkVersions(const std::vector<std::string>& lines) {
  std::map<std::string, int> out;
  for (const auto& l : lines) ++out[l.substr(0, l.find('|'))];
  return out;
}

// A task whose state holds 30,000 open windows (about 2 MB: far over Cassandra's batch warn
// and fail thresholds, 5 KiB and 50 KiB by default, which the services' cassandra.yaml leaves
// as they are) is committed, claimed, fenced and claimed again: each claim reads exactly the
// state of the last commit that applied; a zombie's commit (old fence) and a commit that died
// after writing its chunks leave chunks nobody names, deleted by the next commit with a state.
TEST_F(CassandraSinkTasksTest, ATaskStateWithManyOpenWindowsIsWrittenInChunksNamedUnderTheFence) {
  const AggregateSpec spec = CountByUser();
  auto a = OpenSink();
  ASSERT_TRUE(a);
  auto b = OpenSink();
  ASSERT_TRUE(b);
  const TaskId task{"in", 3};
  const std::string tasks = "SELECT state, state_version, state_chunks, state_bytes, \"position\" FROM " +
                            Table("\"_sluice_tasks\"") + " WHERE pipeline = ?";
  const std::string chunks = "SELECT version, chunk FROM " + Table("\"_sluice_task_state\"") +
                             " WHERE pipeline = ? AND source = 'in' AND \"partition\" = 3";

  auto first = a->ClaimTask(task, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const TaskState s1 = OpenWindows(30'000, 1);
  const std::string blob1 = s1.Serialize(&spec);
  ASSERT_GT(blob1.size(), 4 * kTaskStateChunkBytes);  // several chunks
  const size_t chunks1 = (blob1.size() + kTaskStateChunkBytes - 1) / kTaskStateChunkBytes;
  const std::vector<Row> rows = {R("k", 1)};
  Status s = a->Commit(TaskCheckpoint(&rows, {{"in", 3, 10}}, 3, first->fence, s1.progress, &blob1));
  ASSERT_TRUE(s.ok()) << s.ToString();
  // The row names one version of chunks (no inline state), which are all there is.
  auto row = Lines(tasks);
  ASSERT_EQ(row.size(), 1u);
  const std::string v1 = row[0].substr(1, row[0].find('|', 1) - 1);
  EXPECT_EQ(row[0], "|" + v1 + "|" + std::to_string(chunks1) + "|" + std::to_string(blob1.size()) + "|10");
  EXPECT_EQ(ChunkVersions(Lines(chunks)), (std::map<std::string, int>{{v1, static_cast<int>(chunks1)}}));

  // B claims it: exactly that state, byte for byte, and its windows parse.
  auto second = b->ClaimTask(task, Owner("b"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->fence, 2);
  ASSERT_EQ(second->state.size(), blob1.size());
  EXPECT_TRUE(second->state == blob1);
  auto parsed = TaskState::Parse(second->state, &spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->open.size(), 30'000u);
  EXPECT_EQ(parsed->open[29'999].metrics[0].count, 299'991);
  EXPECT_EQ(parsed->emitted_before, kMinute);

  // A, cut off, commits a larger state under its old fence: refused, and nothing of it is
  // visible: the row still names v1 at position 10 (its chunks are there, named by nothing).
  const TaskState zombie = OpenWindows(35'000, 2);
  const std::string zombie_blob = zombie.Serialize(&spec);
  s = a->Commit(TaskCheckpoint(&rows, {{"in", 3, 15}}, 3, first->fence, zombie.progress, &zombie_blob));
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_EQ(Lines(tasks), row);
  EXPECT_EQ(ChunkVersions(Lines(chunks)).size(), 2u);  // v1 and the zombie's

  // B commits a new state, but dies after writing its chunks (before the batch naming them).
  const TaskState s3 = OpenWindows(20'000, 3);
  const std::string blob3 = s3.Serialize(&spec);
  b->SetTestHook([](std::string_view stage) {
    return stage == "state_chunks_written" ? Status::IOError("crash") : Status::OK();
  });
  s = b->Commit(TaskCheckpoint(&rows, {{"in", 3, 20}}, 3, second->fence, s3.progress, &blob3));
  EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
  b->SetTestHook(nullptr);
  EXPECT_EQ(Lines(tasks), row);
  EXPECT_EQ(ChunkVersions(Lines(chunks)).size(), 3u);
  // Its retry applies: the row names the new version, and every other version's chunks are gone
  // (v1's, the zombie's, the dead attempt's).
  s = b->Commit(TaskCheckpoint(&rows, {{"in", 3, 20}}, 3, second->fence, s3.progress, &blob3));
  ASSERT_TRUE(s.ok()) << s.ToString();
  row = Lines(tasks);
  ASSERT_EQ(row.size(), 1u);
  const std::string v3 = row[0].substr(1, row[0].find('|', 1) - 1);
  EXPECT_NE(v3, v1);
  EXPECT_GT(std::stoll(v3), std::stoll(v1));
  const size_t chunks3 = (blob3.size() + kTaskStateChunkBytes - 1) / kTaskStateChunkBytes;
  EXPECT_EQ(row[0], "|" + v3 + "|" + std::to_string(chunks3) + "|" + std::to_string(blob3.size()) + "|20");
  EXPECT_EQ(ChunkVersions(Lines(chunks)), (std::map<std::string, int>{{v3, static_cast<int>(chunks3)}}));

  // A claim after that commit reads exactly its state.
  auto c = OpenSink();
  ASSERT_TRUE(c);
  auto third = c->ClaimTask(task, Owner("c"));
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->fence, 3);
  EXPECT_TRUE(third->state == blob3);
  EXPECT_EQ(third->positions, (std::map<int32_t, int64_t>{{3, 20}}));

  // A small state goes inline again, and the chunks go.
  const TaskState small = OpenWindows(3, 4);
  const std::string small_blob = small.Serialize(&spec);
  ASSERT_LT(small_blob.size(), kTaskStateInlineBytes);
  s = c->Commit(TaskCheckpoint(nullptr, {{"in", 3, 21}}, 3, third->fence, small.progress, &small_blob, true));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT state_version, state_chunks, state_bytes, \"position\" FROM " + Table("\"_sluice_tasks\"") +
                  " WHERE pipeline = ?"),
            std::vector<std::string>{"||" + std::to_string(small_blob.size()) + "|21"});
  EXPECT_EQ(Lines(chunks), std::vector<std::string>{});
  auto fourth = a->ClaimTask(task, Owner("a"));
  ASSERT_TRUE(fourth.ok()) << fourth.status().ToString();
  EXPECT_EQ(fourth->state, small_blob);
}

// What an older sluice (before chunked states) leaves when it commits inline over a chunked
// state: `state` set and the `state_version` it never clears. This sluice never writes both (an
// inline commit clears the version, a chunked one the inline state); a claim refuses such a row
// rather than take the stale chunks with the newer positions.
TEST_F(CassandraSinkTasksTest, ARowWithBothAnInlineAndAChunkedStateIsRefusedAtClaim) {
  const AggregateSpec spec = CountByUser();
  auto a = OpenSink();
  ASSERT_TRUE(a);
  const TaskId task{"in", 3};
  const std::string tasks =
      "SELECT state, state_version, state_chunks, \"position\" FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?";
  auto first = a->ClaimTask(task, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string small = OpenWindows(3, 1).Serialize(&spec);
  const std::string large = OpenWindows(30'000, 2).Serialize(&spec);
  const std::string small_hex = CqlValue::Raw(cassandra::CqlType::kBlob, small).ToString();
  // Inline, then chunked: the inline state is cleared.
  ASSERT_TRUE(a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 10}}, 3, first->fence, {}, &small)).ok());
  auto row = Lines(tasks);
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row[0], small_hex + "|||10");
  Status s = a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 11}}, 3, first->fence, {}, &large));
  ASSERT_TRUE(s.ok()) << s.ToString();
  row = Lines(tasks);
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row[0].substr(0, 1), "|") << row[0];
  EXPECT_EQ(row[0].substr(row[0].size() - 3), "|11") << row[0];
  // Chunked, then inline: the version and the chunk count are cleared.
  ASSERT_TRUE(a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 12}}, 3, first->fence, {}, &small)).ok());
  EXPECT_EQ(Lines(tasks), std::vector<std::string>{small_hex + "|||12"});
  s = a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 13}}, 3, first->fence, {}, &large));
  ASSERT_TRUE(s.ok()) << s.ToString();
  // An older sluice's inline commit: state and position, the version left as it is.
  Lines("UPDATE " + Table("\"_sluice_tasks\"") + " SET state = " + small_hex +
        ", \"position\" = 14 WHERE pipeline = ? AND source = 'in' AND \"partition\" = 3");
  auto b = OpenSink();
  ASSERT_TRUE(b);
  auto claim = b->ClaimTask(task, Owner("b"));
  ASSERT_FALSE(claim.ok()) << "took " << claim->state.size() << " bytes at position " << claim->positions[3];
  EXPECT_EQ(claim.status().code(), StatusCode::kFailedPrecondition) << claim.status().ToString();
  EXPECT_NE(claim.status().message().find("older sluice"), std::string::npos) << claim.status().ToString();
  EXPECT_NE(claim.status().message().find("in[3]"), std::string::npos) << claim.status().ToString();
  // The row is left as it is: still fenced by A's claim.
  EXPECT_EQ(Lines("SELECT fence FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?"),
            std::vector<std::string>{"1"});
}

// Chunks are written and read at QUORUM at least, whatever the sink's levels: the row naming
// them is written through Paxos (SERIAL, a majority of the replicas), and a chunk written at ONE
// could be on a replica that is then lost. A sink at consistency = one still commits and claims
// a chunked state on the test server (one node: QUORUM is that node).
TEST_F(CassandraSinkTasksTest, StateChunksAreWrittenAndReadAtQuorumAtLeast) {
  using C = cassandra::Consistency;
  using Levels = std::pair<C, C>;
  const std::vector<std::pair<std::map<std::string, std::string>, Levels>> cases = {
      {{{"consistency", "one"}}, {C::kQuorum, C::kQuorum}},
      {{{"consistency", "any"}}, {C::kQuorum, C::kQuorum}},
      {{{"consistency", "local_quorum"}}, {C::kQuorum, C::kQuorum}},
      {{{"consistency", "local_one"}, {"read_consistency", "one"}}, {C::kQuorum, C::kQuorum}},
      {{{"consistency", "all"}}, {C::kAll, C::kAll}},
      {{{"consistency", "each_quorum"}}, {C::kEachQuorum, C::kQuorum}},
      {{{"consistency", "quorum"}, {"read_consistency", "all"}}, {C::kQuorum, C::kAll}},
  };
  for (const auto& [options, levels] : cases) {
    auto sink = OpenSink(true, options);
    ASSERT_TRUE(sink);
    EXPECT_EQ(sink->StateChunkConsistency(), levels) << options.begin()->second;
  }
  const AggregateSpec spec = CountByUser();
  auto a = OpenSink(true, {{"consistency", "one"}});
  ASSERT_TRUE(a);
  auto first = a->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string large = OpenWindows(30'000, 2).Serialize(&spec);
  Status s = a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 10}}, 3, first->fence, {}, &large));
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto b = OpenSink(true, {{"consistency", "one"}});
  ASSERT_TRUE(b);
  auto second = b->ClaimTask(TaskId{"in", 3}, Owner("b"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->state == large);
}

// A row whose chunks do not make the state it names: a claim reads the row again, and the same
// row with the same chunks is corrupt (kFailedPrecondition naming the task and what to do), not
// "unavailable" forever; numbers no state has (a size of 10^15 bytes) are refused before
// anything is allocated. A claim whose read raced a commit that replaced the chunks reads the
// row again and takes the new state.
TEST_F(CassandraSinkTasksTest, CorruptChunkedStatesAreRefusedAndARacedCommitIsReadAgain) {
  const AggregateSpec spec = CountByUser();
  auto a = OpenSink();
  ASSERT_TRUE(a);
  const TaskId task{"in", 3};
  auto first = a->ClaimTask(task, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string blob1 = OpenWindows(30'000, 1).Serialize(&spec);
  const std::string blob2 = OpenWindows(25'000, 2).Serialize(&spec);
  ASSERT_GT(blob1.size(), 4 * kTaskStateChunkBytes);
  Status s = a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 10}}, 3, first->fence, {}, &blob1));
  ASSERT_TRUE(s.ok()) << s.ToString();

  // Raced: the claim reads the row naming blob1, then A commits blob2 (deleting blob1's chunks)
  // before the claim reads the chunks.
  auto c = OpenSink();
  ASSERT_TRUE(c);
  int reads = 0;
  c->SetTestHook([&](std::string_view stage) {
    if (stage != "task_row_read" || ++reads > 1) return Status::OK();
    return a->Commit(TaskCheckpoint(nullptr, {{"in", 3, 11}}, 3, first->fence, {}, &blob2));
  });
  auto raced = c->ClaimTask(task, Owner("c"));
  ASSERT_TRUE(raced.ok()) << raced.status().ToString();
  EXPECT_EQ(reads, 2);
  EXPECT_TRUE(raced->state == blob2);
  EXPECT_EQ(raced->positions.at(3), 11);
  c->SetTestHook(nullptr);

  const std::string row_where = " WHERE pipeline = ? AND source = 'in' AND \"partition\" = 3";
  const std::string version =
      Lines("SELECT state_version FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?").at(0);
  auto refused = [&](const std::string& what) {
    auto sink = OpenSink();
    ASSERT_TRUE(sink);
    auto claim = sink->ClaimTask(task, Owner("d"));
    ASSERT_FALSE(claim.ok()) << what;
    EXPECT_EQ(claim.status().code(), StatusCode::kFailedPrecondition) << what << ": " << claim.status().ToString();
    EXPECT_NE(claim.status().message().find("in[3]"), std::string::npos) << claim.status().ToString();
    EXPECT_NE(claim.status().message().find("corrupt"), std::string::npos) << claim.status().ToString();
  };
  const std::string chunks = Table("\"_sluice_task_state\"");
  const int64_t count = static_cast<int64_t>((blob2.size() + kTaskStateChunkBytes - 1) / kTaskStateChunkBytes);
  // A chunk missing.
  Lines("DELETE FROM " + chunks + row_where + " AND version = " + version + " AND chunk = 1");
  refused("a missing chunk");
  // An extra chunk (the missing one back, from blob2).
  const std::string hex1 =
      CqlValue::Raw(cassandra::CqlType::kBlob, blob2.substr(kTaskStateChunkBytes, kTaskStateChunkBytes)).ToString();
  Lines("INSERT INTO " + chunks + " (pipeline, source, \"partition\", version, chunk, data) VALUES (?, 'in', 3, " +
        version + ", 1, " + hex1 + ")");
  Lines("INSERT INTO " + chunks + " (pipeline, source, \"partition\", version, chunk, data) VALUES (?, 'in', 3, " +
        version + ", " + std::to_string(count) + ", 0x00)");
  refused("an extra chunk");
  Lines("DELETE FROM " + chunks + row_where + " AND version = " + version + " AND chunk = " + std::to_string(count));
  {
    auto sink = OpenSink();
    ASSERT_TRUE(sink);
    auto claim = sink->ClaimTask(task, Owner("e"));  // whole again
    ASSERT_TRUE(claim.ok()) << claim.status().ToString();
    EXPECT_TRUE(claim->state == blob2);
  }
  // Numbers no state has.
  const std::string tasks = Table("\"_sluice_tasks\"");
  Lines("UPDATE " + tasks + " SET state_bytes = 1000000000000000" + row_where);
  refused("10^15 bytes");
  Lines("UPDATE " + tasks + " SET state_bytes = " + std::to_string(blob2.size() + 1) + row_where);
  refused("a size one byte off");
  Lines("UPDATE " + tasks + " SET state_bytes = " + std::to_string(blob2.size()) + ", state_chunks = null" + row_where);
  refused("no chunk count");
  Lines("UPDATE " + tasks + " SET state_chunks = 1000000" + row_where);
  refused("a million chunks");
}

// Several tasks with states each under the inline limit but together over the checkpoint's
// inline budget: the ones past the budget go in chunks, and each claim reads its own.
TEST_F(CassandraSinkTasksTest, StatesPastTheInlineBudgetOfACheckpointGoInChunks) {
  const AggregateSpec spec = CountByUser();
  auto a = OpenSink();
  ASSERT_TRUE(a);
  // Windows per state for about 7/8 of kTaskStateInlineBytes, and 10 tasks more than the
  // budget takes of such states.
  const size_t per_window = OpenWindows(100, 0).Serialize(&spec).size() / 100;
  const int windows = static_cast<int>(kTaskStateInlineBytes * 7 / 8 / per_window);
  const int tasks = static_cast<int>(kTaskStateInlineBudget / OpenWindows(windows, 0).Serialize(&spec).size()) + 10;
  std::vector<std::string> blobs;
  Checkpoint cp;
  for (int p = 0; p < tasks; ++p) {
    auto claim = a->ClaimTask(TaskId{"in", p}, Owner("a"));
    ASSERT_TRUE(claim.ok()) << claim.status().ToString();
    TaskState st = OpenWindows(windows, p);
    blobs.push_back(st.Serialize(&spec));
    ASSERT_LE(blobs.back().size(), kTaskStateInlineBytes);
    ASSERT_GT(blobs.back().size(), kTaskStateInlineBytes * 3 / 4);
    cp.positions.push_back({"in", p, 100 + p});
  }
  for (int p = 0; p < tasks; ++p) {
    cp.tasks.push_back(TaskCommit{TaskId{"in", p}, 1, TaskProgress{}, &blobs[static_cast<size_t>(p)], false});
  }
  Status s = a->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto lines = Lines("SELECT state_version FROM " + Table("\"_sluice_tasks\"") + " WHERE pipeline = ?");
  const auto chunked = std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return !l.empty(); });
  EXPECT_GE(chunked, 8);
  EXPECT_LT(chunked, tasks);
  auto b = OpenSink();
  ASSERT_TRUE(b);
  for (int p = 0; p < tasks; ++p) {
    auto claim = b->ClaimTask(TaskId{"in", p}, Owner("b"));
    ASSERT_TRUE(claim.ok()) << claim.status().ToString();
    EXPECT_TRUE(claim->state == blobs[static_cast<size_t>(p)]) << "task " << p;
    EXPECT_EQ(claim->positions.at(p), 100 + p);
  }
}

// `sluice status` reads the task rows through a sink opened for reading: it lists them, and
// creates nothing where nothing is (no keyspace, no table).
TEST_F(CassandraSinkTasksTest, OpenForReadingListsTheTasksAndCreatesNothing) {
  auto reader = [&](const std::string& keyspace) -> std::unique_ptr<Sink> {
    SinkConfig c;
    c.uri = "cassandra://" + cassandra_test::ServerHostPort() + "/" + keyspace;
    c.table = "tasks_rows";
    c.options.Set("key", Option{"id", {"test.toml", 7, 1}});
    auto s = CassandraSink::Make(c);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    SinkContext ctx = ctx_;
    ctx.tasks = false;  // as status builds it: the plan's context
    Status open = (*s)->OpenForReading(ctx);
    EXPECT_TRUE(open.ok()) << open.ToString();
    return open.ok() ? std::move(s).value() : nullptr;
  };
  // A keyspace that does not exist: no tasks, and still no keyspace.
  const std::string none = "casstasks_none_" + std::to_string(::getpid());
  {
    auto r = reader(none);
    ASSERT_TRUE(r);
    auto rows = r->LoadTaskProgress();
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    EXPECT_TRUE(rows->empty());
    EXPECT_FALSE(r->Commit(Checkpoint{}).ok());
  }
  EXPECT_EQ(Lines("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = '" + none + "'"),
            std::vector<std::string>{});

  auto a = OpenSink();
  ASSERT_TRUE(a);
  auto claim = a->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(claim.ok());
  auto other = a->ClaimTask(TaskId{"in", 4}, Owner("a"));
  ASSERT_TRUE(other.ok());
  TaskProgress progress;
  progress.max_event_time = 200;
  progress.watermark = 190;
  Checkpoint cp = TaskCheckpoint(nullptr, {{"in", 3, 10}, {"in", 4, 7}}, 3, claim->fence, progress);
  cp.tasks.push_back(TaskCommit{TaskId{"in", 4}, other->fence, TaskProgress{}, nullptr, true});
  ASSERT_TRUE(a->Commit(cp).ok());

  auto r = reader(kKeyspace);
  ASSERT_TRUE(r);
  auto rows = r->LoadTaskProgress();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  std::vector<std::string> got;
  for (const TaskRow& t : *rows) {
    got.push_back(t.task.source + "[" + std::to_string(t.task.partition) + "] " + (t.owner.empty() ? "-" : t.owner) + " fence " + std::to_string(t.fence) +
                  " max " + std::to_string(t.progress.max_event_time) + " wm " + std::to_string(t.progress.watermark) +
                  (t.updated_micros > 0 ? " updated" : ""));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"in[3] a@h pid 1 fence 1 max 200 wm 190 updated",
                                           "in[4] - fence 1 max " + std::to_string(kNoWatermark) + " wm " +
                                               std::to_string(kNoWatermark) + " updated"}));
  auto positions = r->LoadPositions();
  ASSERT_TRUE(positions.ok()) << positions.status().ToString();
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"in", 3, 10}, {"in", 4, 7}}));
}

}  // namespace
}  // namespace sluice
