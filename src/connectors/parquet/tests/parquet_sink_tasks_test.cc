// Tasks in the Parquet sink (issue 16): task files under DIR/_sluice/<pipeline>/, a claim bumps
// the task's fence under the tasks lock and removes the task's orphans, a commit carrying an older
// fence writes nothing (kFenced), each task's rows go into files named after it, the legacy state
// file moves into task files. Expected files and rows are worked out by hand in each test and read
// back with Arrow's Parquet reader and a directory listing.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <parquet/arrow/reader.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "connectors/parquet/parquet_sink.h"
#include "connectors/parquet/parquet_state.h"
#include "runtime/source.h"
#include "runtime/task_state.h"
#include "runtime/window_state.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using Row = std::vector<Value>;

class ParquetSinkTasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("sluice_parquet_tasks_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(dir_);
    ctx_.pipeline = "views";
    ctx_.source = "in";
    ctx_.tasks = true;
    ctx_.output = Schema(
        {{"network_id", Type::kInt64, ""}, {"minute", Type::kString, ""}, {"n", Type::kInt64, ""}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<std::unique_ptr<Sink>> MakeSink(
      const std::vector<std::pair<std::string, std::string>>& options = {}) {
    SinkConfig c;
    c.uri = "parquet:" + dir_.string();
    c.options.section_location = {"test.toml", 1, 1};
    int line = 2;
    c.options.Set("partition_by", Option{"network_id", {"test.toml", line++, 1}});
    for (const auto& [k, v] : options) c.options.Set(k, Option{v, {"test.toml", line++, 1}});
    return ParquetSink::Make(c);
  }

  Result<std::unique_ptr<Sink>> OpenSink(
      bool tasks = true, const std::vector<std::pair<std::string, std::string>>& options = {}) {
    ASSIGN_OR_RETURN(auto sink, MakeSink(options));
    SinkContext ctx = ctx_;
    ctx.tasks = tasks;
    RETURN_IF_ERROR(sink->Open(ctx));
    return sink;
  }

  static OwnerInfo Owner(const std::string& name) {
    OwnerInfo o;
    o.host = "h";
    o.pid = 1;
    o.client_id = name;
    return o;
  }

  static Row R(int64_t network, const std::string& minute, int64_t n) {
    return {Value::Int(network), Value::String(minute), Value::Int(n)};
  }

  /// Every regular file under dir_ outside _sluice/, relative, sorted.
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    if (!fs::exists(dir_)) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      const std::string rel = fs::relative(e.path(), dir_).string();
      if (e.is_regular_file() && rel.rfind("_sluice", 0) != 0) out.push_back(rel);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Files() with each 16-digit hash replaced by HASH.
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    static const std::regex hash("-[0-9a-f]{16}([-.])");
    for (const auto& f : Files()) out.push_back(std::regex_replace(f, hash, "-HASH$1"));
    std::sort(out.begin(), out.end());
    return out;
  }

  /// The rows of every part file (what a reader of the dataset sees), as "network|minute|n",
  /// sorted; the network comes from the directory name.
  std::vector<std::string> DatasetRows() const {
    std::vector<std::string> out;
    for (const auto& f : Files()) {
      if (!f.ends_with(".parquet")) continue;
      const std::string network = f.substr(f.find('=') + 1, f.find('/') - f.find('=') - 1);
      auto in = arrow::io::ReadableFile::Open((dir_ / f).string());
      EXPECT_TRUE(in.ok());
      auto reader = parquet::arrow::OpenFile(*in, arrow::default_memory_pool());
      EXPECT_TRUE(reader.ok());
      auto table = (*reader)->ReadTable();
      EXPECT_TRUE(table.ok());
      auto minute = std::static_pointer_cast<arrow::StringArray>(
          (*table)->GetColumnByName("minute")->chunk(0));
      auto n =
          std::static_pointer_cast<arrow::Int64Array>((*table)->GetColumnByName("n")->chunk(0));
      for (int64_t i = 0; i < (*table)->num_rows(); ++i) {
        out.push_back(network + "|" + minute->GetString(i) + "|" + std::to_string(n->Value(i)));
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static std::vector<std::string> AsText(const std::vector<Row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows)
      out.push_back(r[0].ToString() + "|" + r[1].ToString() + "|" + r[2].ToString());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
  SinkContext ctx_;
};

TEST_F(ParquetSinkTasksTest, AClaimFencesTheEarlierOwnerWhoseCommitThenWritesNothing) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = OpenSink();  // a second process of the pipeline on the same directory
  ASSERT_TRUE(b.ok()) << b.status().ToString();

  auto first = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->fence, 1);
  EXPECT_TRUE(first->state.empty());
  EXPECT_TRUE(first->positions.empty());
  EXPECT_TRUE(fs::exists(dir_ / "_sluice" / "views" / "task-in-3.state"));

  TaskState st;
  st.progress.max_event_time = 100;
  st.held.push_back(HeldRecord{"held-1", 3, 9, 0});
  const std::string blob = st.Serialize(nullptr);
  const std::vector<Row> rows = {R(1, "m1", 10), R(2, "m1", 20), R(1, "m2", 11)};
  const std::vector<uint32_t> row_tasks = {0, 0, 0};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 3, 10}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 3}, first->fence, st.progress, &blob, false});
  Status s = (*a)->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  // One file per partition directory, numbered 1 for the task, named after it.
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH-in-3.parquet",
                                      "network_id=2/part-views-0000000001-HASH-in-3.parquet"}));
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|10", "1|m2|11", "2|m1|20"}));

  // B claims: fence 2, with A's state and position as committed.
  auto second = (*b)->ClaimTask(TaskId{"in", 3}, Owner("b"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->fence, 2);
  EXPECT_EQ(second->state, blob);
  EXPECT_EQ(second->positions, (std::map<int32_t, int64_t>{{3, 10}}));

  // A, cut off, commits with its old fence: kFenced, and not a file more.
  const std::vector<Row> more = {R(3, "m2", 30)};
  const std::vector<uint32_t> more_tasks = {0};
  Checkpoint stale;
  stale.id = 2;
  stale.rows = &more;
  stale.row_tasks = &more_tasks;
  stale.positions = {{"in", 3, 20}};
  stale.tasks.push_back(TaskCommit{TaskId{"in", 3}, first->fence, TaskProgress{}, &blob, false});
  s = (*a)->Commit(stale);
  EXPECT_EQ(s.code(), StatusCode::kFenced) << s.ToString();
  EXPECT_EQ(Files().size(), 2u);
  auto positions = (*a)->LoadPositions();
  ASSERT_TRUE(positions.ok());
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"in", 3, 10}}));

  // B commits the same rows with its fence, releasing the task; a null state keeps the stored one.
  TaskProgress later;
  later.max_event_time = 200;
  later.enforced = 50;
  later.idle = true;
  Checkpoint ok;
  ok.id = 7;
  ok.rows = &more;
  ok.row_tasks = &more_tasks;
  ok.positions = {{"in", 3, 20}};
  ok.tasks.push_back(TaskCommit{TaskId{"in", 3}, second->fence, later, nullptr, true});
  s = (*b)->Commit(ok);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH-in-3.parquet",
                                      "network_id=2/part-views-0000000001-HASH-in-3.parquet",
                                      "network_id=3/part-views-0000000002-HASH-in-3.parquet"}));
  auto progress = (*a)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok());
  ASSERT_EQ(progress->size(), 1u);
  EXPECT_EQ((*progress)[0].task, (TaskId{"in", 3}));
  EXPECT_EQ((*progress)[0].fence, 2);
  EXPECT_EQ((*progress)[0].owner, "");  // released
  EXPECT_EQ((*progress)[0].progress, later);
  auto third = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->fence, 3);
  EXPECT_EQ(third->state, blob);
  EXPECT_EQ(third->positions, (std::map<int32_t, int64_t>{{3, 20}}));
  progress = (*b)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ((*progress)[0].owner, "a@h pid 1");
}

TEST_F(ParquetSinkTasksTest, ACommitOfAnUnclaimedTaskIsFenced) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  const std::vector<Row> rows = {R(1, "m1", 1)};
  const std::vector<uint32_t> row_tasks = {0};
  Checkpoint cp;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 0, 1}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, 1, TaskProgress{}, nullptr, false});
  EXPECT_EQ((*a)->Commit(cp).code(), StatusCode::kFenced);
  EXPECT_TRUE(Files().empty());
  EXPECT_TRUE((*a)->LoadPositions()->empty());
}

TEST_F(ParquetSinkTasksTest, ClaimsRacingFromTwoSinksEachGetTheirOwnFence) {
  auto a = OpenSink();
  auto b = OpenSink();
  ASSERT_TRUE(a.ok() && b.ok());
  constexpr int kClaims = 40;
  std::vector<int64_t> fences_a, fences_b;
  auto claim = [](Sink* sink, const std::string& who, std::vector<int64_t>* out) {
    for (int i = 0; i < kClaims; ++i) {
      auto c = sink->ClaimTask(TaskId{"in", 0}, Owner(who));
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      out->push_back(c->fence);
    }
  };
  std::thread ta(claim, a->get(), "a", &fences_a);
  std::thread tb(claim, b->get(), "b", &fences_b);
  ta.join();
  tb.join();
  // Every claim saw the one before it: 1 .. 2 * kClaims, each once.
  std::set<int64_t> all(fences_a.begin(), fences_a.end());
  all.insert(fences_b.begin(), fences_b.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(2 * kClaims));
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), 2 * kClaims);
  EXPECT_TRUE(std::is_sorted(fences_a.begin(), fences_a.end()));
  auto progress = (*a)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ((*progress)[0].fence, 2 * kClaims);
}

TEST_F(ParquetSinkTasksTest, AClaimRacingCommitsSeesExactlyTheCommitsBeforeIt) {
  auto a = OpenSink();
  auto b = OpenSink();
  ASSERT_TRUE(a.ok() && b.ok());
  auto first = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(first.ok());
  constexpr int kCommits = 40;
  std::vector<StatusCode> codes(kCommits, StatusCode::kOk);
  std::thread committer([&] {
    for (int i = 0; i < kCommits; ++i) {
      const std::vector<Row> rows = {R(i % 3 + 1, "m", i)};
      const std::vector<uint32_t> row_tasks = {0};
      Checkpoint cp;
      cp.id = i + 1;
      cp.rows = &rows;
      cp.row_tasks = &row_tasks;
      cp.positions = {{"in", 0, i + 1}};
      cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, first->fence, TaskProgress{}, nullptr, false});
      codes[i] = (*a)->Commit(cp).code();
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto claim = (*b)->ClaimTask(TaskId{"in", 0}, Owner("b"));
  committer.join();
  ASSERT_TRUE(claim.ok());
  // The commits before the claim succeeded, every one after it was fenced: k of them, and the
  // claim saw position k and the dataset holds exactly rows 0 .. k-1.
  int k = 0;
  while (k < kCommits && codes[k] == StatusCode::kOk) ++k;
  for (int i = k; i < kCommits; ++i) EXPECT_EQ(codes[i], StatusCode::kFenced) << i;
  std::vector<std::string> expected;
  for (int i = 0; i < k; ++i)
    expected.push_back(std::to_string(i % 3 + 1) + "|m|" + std::to_string(i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(DatasetRows(), expected);
  if (k == 0) {
    EXPECT_TRUE(claim->positions.empty());
  } else {
    EXPECT_EQ(claim->positions, (std::map<int32_t, int64_t>{{0, k}}));
  }
}

TEST_F(ParquetSinkTasksTest, TwoProcessesClaimingOneTaskEachGetTheirOwnFence) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  constexpr int kClaims = 30;
  const fs::path out = dir_ / "child-fences";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The other process: its own sink on the directory, claims only (no Arrow after fork).
    auto b = OpenSink();
    if (!b.ok()) ::_exit(2);
    std::ofstream fences(out);
    for (int i = 0; i < kClaims; ++i) {
      auto c = (*b)->ClaimTask(TaskId{"in", 0}, Owner("child"));
      if (!c.ok()) ::_exit(3);
      fences << c->fence << "\n";
    }
    fences.close();
    ::_exit(0);
  }
  std::vector<int64_t> mine;
  for (int i = 0; i < kClaims; ++i) {
    auto c = (*a)->ClaimTask(TaskId{"in", 0}, Owner("parent"));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    mine.push_back(c->fence);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::set<int64_t> all(mine.begin(), mine.end());
  std::ifstream in(out);
  for (int64_t f; in >> f;) all.insert(f);
  EXPECT_EQ(all.size(), static_cast<size_t>(2 * kClaims));
  EXPECT_EQ(*all.rbegin(), 2 * kClaims);
}

TEST_F(ParquetSinkTasksTest, AClaimWaitsForTheLockHolderAndAKillReleasesIt) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A process in the middle of a commit: it holds the tasks lock.
    const int fd = ::open((dir_ / "_sluice" / "views" / "tasks.lock").c_str(), O_RDWR);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) ::_exit(2);
    char c = 'x';
    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  std::atomic<bool> done{false};
  Result<TaskClaim> claim = Status::Internal("not yet");
  std::thread t([&] {
    claim = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(done.load());  // waits for the holder
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  t.join();
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ(claim->fence, 1);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_F(ParquetSinkTasksTest, EachTaskNumbersItsOwnFilesAndDeadLetters) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto c0 = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  auto c1 = (*a)->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(c0.ok() && c1.ok());
  const std::vector<Row> rows = {R(1, "m1", 1), R(1, "m1", 2), R(2, "m1", 3)};
  const std::vector<uint32_t> row_tasks = {0, 1, 1};
  std::vector<DeadLetter> letters(2);
  letters[0].reason = "decode: bad";
  letters[0].source = "in";
  letters[0].partition = 1;
  letters[0].offset = 4;
  letters[1].reason = "late";
  letters[1].source = "elsewhere";  // no task of the checkpoint: goes with the first task
  letters[1].offset = 9;
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.dead_letters = &letters;
  cp.positions = {{"in", 0, 5},
                  {"in", 1, 6},
                  {"in", kGenerationPartitionBase + 1, 2},
                  {"in", kIdentityPartitionBase + 3, 77}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, c0->fence, TaskProgress{}, nullptr, false});
  cp.tasks.push_back(TaskCommit{TaskId{"in", 1}, c1->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE((*a)->Commit(cp).ok());
  // Task 1 alone, next: its number 2; task 0 keeps 1.
  const std::vector<Row> later = {R(1, "m2", 4)};
  const std::vector<uint32_t> later_tasks = {0};
  Checkpoint cp2;
  cp2.id = 2;
  cp2.rows = &later;
  cp2.row_tasks = &later_tasks;
  cp2.positions = {{"in", 1, 8}};
  cp2.tasks.push_back(TaskCommit{TaskId{"in", 1}, c1->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE((*a)->Commit(cp2).ok());
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH-in-0.parquet",
                                      "network_id=1/part-views-0000000001-HASH-in-1.parquet",
                                      "network_id=1/part-views-0000000002-HASH-in-1.parquet",
                                      "network_id=2/part-views-0000000001-HASH-in-1.parquet"}));
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|1", "1|m1|2", "1|m2|4", "2|m1|3"}));
  const fs::path dl = dir_ / "_sluice" / "dead_letters";
  EXPECT_TRUE(fs::exists(dl / "dead-letters-views-0000000001-in-0.ndjson"));  // "late"
  EXPECT_TRUE(fs::exists(dl / "dead-letters-views-0000000001-in-1.ndjson"));  // "decode: bad"
  EXPECT_EQ(std::distance(fs::directory_iterator(dl), fs::directory_iterator()), 2);

  // Another process reads it all back: positions (the identity partition from the newest
  // commit that had it), rows, dead letters, inventory.
  (*a)->Close();
  auto b = OpenSink();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto positions = (*b)->LoadPositions();
  ASSERT_TRUE(positions.ok());
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"in", 0, 5},
                                                     {"in", 1, 8},
                                                     {"in", kIdentityPartitionBase + 3, 77},
                                                     {"in", kGenerationPartitionBase + 1, 2}}));
  auto* reader = dynamic_cast<SinkReader*>(b->get());
  auto counts = reader->CountDeadLetters();
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(*counts, (std::map<std::string, int64_t>{{"decode: bad", 1}, {"late", 1}}));
  (*b)->Close();
  auto fresh = MakeSink();
  auto inv = dynamic_cast<SinkReader*>(fresh->get())->Inventory(InventoryOptions{});
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  ASSERT_EQ(inv->pipelines.size(), 1u);
  EXPECT_EQ(inv->pipelines[0].pipeline, "views");
  EXPECT_EQ(inv->pipelines[0].positions, *positions);
  EXPECT_EQ(inv->pipelines[0].details[0], (std::pair<std::string, std::string>{"tasks", "2"}));
  EXPECT_EQ(inv->pipelines[0].details[1].first, "part files");
  EXPECT_EQ(inv->pipelines[0].details[1].second.substr(0, 2), "4 ");
  EXPECT_EQ(inv->pipelines[0].dead_letters.total(), 2);
  // `sluice run`'s shape check (positions_only): the named pipeline's positions, nothing else;
  // another pipeline name finds none.
  InventoryOptions only;
  only.pipeline = "views";
  only.positions_only = true;
  auto shape = dynamic_cast<SinkReader*>(fresh->get())->Inventory(only);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  ASSERT_EQ(shape->pipelines.size(), 1u);
  EXPECT_EQ(shape->pipelines[0].positions, *positions);
  EXPECT_TRUE(shape->pipelines[0].details.empty());
  EXPECT_FALSE(shape->pipelines[0].dead_letters_stored);
  EXPECT_EQ(shape->pipelines[0].dead_letters.total(), 0);
  only.pipeline = "clicks";
  auto other = dynamic_cast<SinkReader*>(fresh->get())->Inventory(only);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_TRUE(other->pipelines.empty());
  // sluice verify's reading: the rows of every part file.
  auto reading = MakeSink();
  ASSERT_TRUE((*reading)->OpenForReading(ctx_).ok());
  auto out = (*reading)->ReadOutput();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(AsText(*out), DatasetRows());
  auto read_progress = (*reading)->LoadTaskProgress();
  ASSERT_TRUE(read_progress.ok());
  EXPECT_EQ(read_progress->size(), 2u);
}

// A dead-letter file's committed length ("__dead_letters:PATH", partition 0) is the process's,
// no task's: it is kept with a commit's shared positions, and a checkpoint after the tasks were
// released (the last one of an --until-caught-up run) that carries only it commits nothing and
// is no error. It was taken for task 0's position, which failed that last checkpoint with "a
// checkpoint with rows, dead letters or positions of partitions but no task" (exit 1).
TEST_F(ParquetSinkTasksTest, ADeadLetterFilesLengthIsNoTasksPosition) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto c0 = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(c0.ok());
  const std::vector<Row> rows = {R(1, "m1", 1)};
  const std::vector<uint32_t> row_tasks = {0};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 0, 5}, {"__dead_letters:/x/dl.ndjson", 0, 42}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, c0->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE((*a)->Commit(cp).ok());
  auto positions = (*a)->LoadPositions();
  ASSERT_TRUE(positions.ok()) << positions.status().ToString();
  std::map<std::string, int64_t> by_source;
  for (const auto& p : *positions) by_source[p.source + "/" + std::to_string(p.partition)] = p.offset;
  EXPECT_EQ(by_source, (std::map<std::string, int64_t>{{"__dead_letters:/x/dl.ndjson/0", 42}, {"in/0", 5}}));

  Checkpoint last;
  last.id = 2;
  last.final = true;
  last.positions = {{"__dead_letters:/x/dl.ndjson", 0, 42}};
  const Status s = (*a)->Commit(last);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ParquetSinkTasksTest, ACrashBetweenDataFilesAndTaskFileLeavesNothingAfterTheNextClaim) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto c = (*a)->ClaimTask(TaskId{"in", 2}, Owner("a"));
  auto other = (*a)->ClaimTask(TaskId{"in", 5}, Owner("a"));
  ASSERT_TRUE(c.ok() && other.ok());
  const std::vector<Row> rows = {R(1, "m1", 1)};
  const std::vector<uint32_t> row_tasks = {0};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 2, 3}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 2}, c->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE((*a)->Commit(cp).ok());

  // The next commit writes its files, then "crashes" before the task file is renamed.
  const std::vector<Row> lost = {R(1, "m2", 2), R(4, "m2", 3)};
  const std::vector<uint32_t> lost_tasks = {0, 0};
  std::vector<DeadLetter> letters(1);
  letters[0].reason = "late";
  letters[0].source = "in";
  letters[0].partition = 2;
  Checkpoint crash;
  crash.id = 2;
  crash.rows = &lost;
  crash.row_tasks = &lost_tasks;
  crash.dead_letters = &letters;
  crash.positions = {{"in", 2, 6}};
  crash.tasks.push_back(TaskCommit{TaskId{"in", 2}, c->fence, TaskProgress{}, nullptr, false});
  dynamic_cast<ParquetSink*>(a->get())->FailBeforeTaskFilesForTesting(true);
  EXPECT_FALSE((*a)->Commit(crash).ok());
  // A reader listing the dataset now sees the uncommitted files (as with the legacy state).
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH-in-2.parquet",
                                      "network_id=1/part-views-0000000002-HASH-in-2.parquet",
                                      "network_id=4/part-views-0000000002-HASH-in-2.parquet"}));
  // Another task's orphan-looking file (a seq its own task file has not committed) is not this
  // task's to remove.
  std::ofstream(dir_ / "network_id=1" / "part-views-0000000001-0123456789abcdef-in-5.parquet")
      << "x";
  a->reset();  // the process dies

  auto b = OpenSink();
  ASSERT_TRUE(b.ok());
  auto claim = (*b)->ClaimTask(TaskId{"in", 2}, Owner("b"));
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->positions, (std::map<int32_t, int64_t>{{2, 3}}));
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH-in-2.parquet",
                                      "network_id=1/part-views-0000000001-HASH-in-5.parquet"}));
  EXPECT_FALSE(
      fs::exists(dir_ / "_sluice" / "dead_letters" / "dead-letters-views-0000000001-in-2.ndjson"));
  fs::remove(dir_ / "network_id=1" / "part-views-0000000001-0123456789abcdef-in-5.parquet");
  // The replay from position 3 brings the rows again: each once.
  crash.tasks[0].fence = claim->fence;
  crash.id = 1;
  ASSERT_TRUE((*b)->Commit(crash).ok());
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|1", "1|m2|2", "4|m2|3"}));
  EXPECT_TRUE(
      fs::exists(dir_ / "_sluice" / "dead_letters" / "dead-letters-views-0000000001-in-2.ndjson"));
}

TEST_F(ParquetSinkTasksTest, AFailedCommitRetriedOrFollowedLeavesEachRowOnce) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto* sink = dynamic_cast<ParquetSink*>(a->get());
  auto c = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(c.ok());
  const std::vector<Row> rows = {R(1, "m1", 1)};
  const std::vector<uint32_t> row_tasks = {0};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 0, 1}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, c->fence, TaskProgress{}, nullptr, false});
  sink->FailBeforeTaskFilesForTesting(true);
  EXPECT_FALSE((*a)->Commit(cp).ok());
  sink->FailBeforeTaskFilesForTesting(false);
  // The retry writes the same name again.
  ASSERT_TRUE((*a)->Commit(cp).ok());
  EXPECT_EQ(Files().size(), 1u);
  // A failed commit followed by another checkpoint (more rows, other positions): the files of
  // the failed one go first.
  const std::vector<Row> second = {R(1, "m2", 2)};
  Checkpoint cp2 = cp;
  cp2.id = 2;
  cp2.rows = &second;
  cp2.positions = {{"in", 0, 2}};
  sink->FailBeforeTaskFilesForTesting(true);
  EXPECT_FALSE((*a)->Commit(cp2).ok());
  sink->FailBeforeTaskFilesForTesting(false);
  const std::vector<Row> both = {R(1, "m2", 2), R(1, "m3", 3)};
  const std::vector<uint32_t> both_tasks = {0, 0};
  Checkpoint cp3 = cp;
  cp3.id = 3;
  cp3.rows = &both;
  cp3.row_tasks = &both_tasks;
  cp3.positions = {{"in", 0, 3}};
  ASSERT_TRUE((*a)->Commit(cp3).ok());
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|1", "1|m2|2", "1|m3|3"}));
  EXPECT_EQ(Files().size(), 2u);
}

TEST_F(ParquetSinkTasksTest, ACommitOfSeveralTasksIsAllOrNothing) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto c0 = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  auto c1 = (*a)->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(c0.ok() && c1.ok());
  const std::vector<Row> rows = {R(1, "m1", 1), R(2, "m1", 2)};
  const std::vector<uint32_t> row_tasks = {0, 1};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 0, 5}, {"in", 1, 6}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, c0->fence, TaskProgress{}, nullptr, false});
  cp.tasks.push_back(TaskCommit{TaskId{"in", 1}, c1->fence, TaskProgress{}, nullptr, false});
  // The process dies after the commit point (the intent) and before any task file is renamed.
  dynamic_cast<ParquetSink*>(a->get())->FailBeforeTaskFilesForTesting(true);
  EXPECT_FALSE((*a)->Commit(cp).ok());
  const fs::path intent = dir_ / "_sluice" / "views" / "commit.intent";
  ASSERT_TRUE(fs::exists(intent));
  fs::copy_file(intent, dir_ / "old.intent");
  a->reset();

  // The next process finishes the commit before anything else: both tasks moved, their files
  // kept (not orphans).
  auto b = OpenSink();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_FALSE(fs::exists(intent));
  EXPECT_EQ(*(*b)->LoadPositions(), (std::vector<StoredPosition>{{"in", 0, 5}, {"in", 1, 6}}));
  auto again = (*b)->ClaimTask(TaskId{"in", 0}, Owner("b"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->positions, (std::map<int32_t, int64_t>{{0, 5}}));
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|1", "2|m1|2"}));
  // B commits task 0 further; the old intent, back again (its removal was not synced), changes
  // nothing: its entries are not newer than the task files.
  const std::vector<Row> more = {R(1, "m2", 3)};
  const std::vector<uint32_t> more_tasks = {0};
  Checkpoint cp2;
  cp2.id = 2;
  cp2.rows = &more;
  cp2.row_tasks = &more_tasks;
  cp2.positions = {{"in", 0, 9}};
  cp2.tasks.push_back(TaskCommit{TaskId{"in", 0}, again->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE((*b)->Commit(cp2).ok());
  fs::copy_file(dir_ / "old.intent", intent);
  fs::remove(dir_ / "old.intent");
  auto c = OpenSink();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(fs::exists(intent));
  EXPECT_EQ(*(*c)->LoadPositions(), (std::vector<StoredPosition>{{"in", 0, 9}, {"in", 1, 6}}));
  EXPECT_EQ((*c)->LoadTaskProgress()->at(0).fence, again->fence);
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|1", "1|m2|3", "2|m1|2"}));
}

TEST_F(ParquetSinkTasksTest, RowsWithoutTheirTaskGoWithTheFirstTask) {
  // A select pipeline (on tasks for its held records) whose runner does not tell a row's task.
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto c3 = (*a)->ClaimTask(TaskId{"in", 3}, Owner("a"));
  auto c1 = (*a)->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(c3.ok() && c1.ok());
  const std::vector<Row> rows = {R(1, "m1", 1), R(2, "m1", 2)};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"in", 1, 2}, {"in", 3, 4}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 3}, c3->fence, TaskProgress{}, nullptr, false});
  cp.tasks.push_back(TaskCommit{TaskId{"in", 1}, c1->fence, TaskProgress{}, nullptr, false});
  ASSERT_TRUE((*a)->Commit(cp).ok());
  EXPECT_EQ(Names(),
            (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH-in-3.parquet",
                                      "network_id=2/part-views-0000000001-HASH-in-3.parquet"}));
  EXPECT_EQ(*(*a)->LoadPositions(), (std::vector<StoredPosition>{{"in", 1, 2}, {"in", 3, 4}}));
}

TEST_F(ParquetSinkTasksTest, TheLegacyStateMovesIntoTaskFiles) {
  WindowState old;
  old.closed_before = 70;
  old.max_event_times[{"in", 0}] = 100;
  old.max_event_times[{"in", 1}] = 90;
  old.held.push_back(HeldRecord{"p1-a", 1, 4, 0});
  old.held.push_back(HeldRecord{"p0-a", 0, 7, 0});
  old.held.push_back(HeldRecord{"p1-b", 1, 5, 0});
  const std::string blob = old.Serialize(nullptr);
  {
    // A run that keeps one state for the pipeline, to a final checkpoint (nothing buffered).
    auto legacy = OpenSink(/*tasks=*/false);
    ASSERT_TRUE(legacy.ok()) << legacy.status().ToString();
    const std::vector<Row> rows = {R(1, "m1", 1), R(2, "m1", 2)};
    Checkpoint cp;
    cp.id = 1;
    cp.rows = &rows;
    cp.positions = {{"in", 0, 8},
                    {"in", 1, 6},
                    {"in", kGenerationPartitionBase + 1, 2},
                    {"in", kIdentityPartitionBase + 3, 77}};
    cp.state = &blob;
    cp.final = true;
    ASSERT_TRUE((*legacy)->Commit(cp).ok());
    // A roll of a commit that never happened: removed by the move.
    std::ofstream(dir_ / "network_id=1" / "part-views-0000000002-0123456789abcdef.parquet") << "x";
  }
  auto a = OpenSink();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Names(), (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH.parquet",
                                               "network_id=2/part-views-0000000001-HASH.parquet"}));
  auto progress = (*a)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok());
  ASSERT_EQ(progress->size(), 2u);
  EXPECT_EQ((*progress)[0].task, (TaskId{"in", 0}));
  EXPECT_EQ((*progress)[0].fence, 0);
  EXPECT_EQ((*progress)[0].progress.max_event_time, 100);
  EXPECT_EQ((*progress)[0].progress.enforced, 70);
  EXPECT_EQ((*progress)[1].progress.max_event_time, 90);
  auto positions = (*a)->LoadPositions();
  ASSERT_TRUE(positions.ok());
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"in", 0, 8},
                                                     {"in", 1, 6},
                                                     {"in", kIdentityPartitionBase + 3, 77},
                                                     {"in", kGenerationPartitionBase + 1, 2}}));
  auto claim = (*a)->ClaimTask(TaskId{"in", 1}, Owner("a"));
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->fence, 1);
  EXPECT_EQ(claim->positions,
            (std::map<int32_t, int64_t>{{1, 6}, {kGenerationPartitionBase + 1, 2}}));
  auto st = TaskState::Parse(claim->state, nullptr);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_EQ(st->held.size(), 2u);
  EXPECT_EQ(st->held[0].payload, "p1-a");
  EXPECT_EQ(st->held[1].payload, "p1-b");
  // The rows written before the move are still the pipeline's.
  auto reading = MakeSink();
  ASSERT_TRUE((*reading)->OpenForReading(ctx_).ok());
  auto out = (*reading)->ReadOutput();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(AsText(*out), (std::vector<std::string>{"1|m1|1", "2|m1|2"}));
  // A second process finds the tasks and moves nothing again.
  auto b = OpenSink();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->LoadTaskProgress()->at(1).fence, 1);
  // A process without tasks is refused while these run (the pipeline's lock), and after.
  auto legacy = OpenSink(/*tasks=*/false);
  ASSERT_FALSE(legacy.ok());
  EXPECT_NE(legacy.status().message().find("is in use by another process"), std::string::npos)
      << legacy.status().message();
  a->reset();
  b->reset();
  legacy = OpenSink(/*tasks=*/false);
  ASSERT_FALSE(legacy.ok());
  EXPECT_EQ(legacy.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(legacy.status().message().find("keeps its state per partition"), std::string::npos)
      << legacy.status().message();
}

TEST_F(ParquetSinkTasksTest, ALegacyStateWithBufferedRowsWritesThemBeforeTheMove) {
  const std::vector<std::pair<std::string, std::string>> one_file = {
      {"max_files_per_checkpoint", "1"}};
  {
    // A run killed with rows buffered (roll_rows and roll_interval not reached).
    auto legacy = OpenSink(/*tasks=*/false, one_file);
    ASSERT_TRUE(legacy.ok());
    const std::vector<Row> rows = {R(1, "m1", 1), R(2, "m1", 2), R(1, "m2", 3)};
    Checkpoint cp;
    cp.id = 1;
    cp.rows = &rows;
    cp.positions = {{"in", 0, 3}};
    ASSERT_TRUE((*legacy)->Commit(cp).ok());
    EXPECT_TRUE(Files().empty());
  }
  // The move writes them as the one state would (one file per commit here: two commits), then
  // moves the state; the marker keeps sequence number 2, so both files stay the pipeline's.
  auto a = OpenSink(/*tasks=*/true, one_file);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Names(), (std::vector<std::string>{"network_id=1/part-views-0000000001-HASH.parquet",
                                               "network_id=2/part-views-0000000002-HASH.parquet"}));
  EXPECT_EQ(DatasetRows(), (std::vector<std::string>{"1|m1|1", "1|m2|3", "2|m1|2"}));
  EXPECT_EQ(*(*a)->LoadPositions(), (std::vector<StoredPosition>{{"in", 0, 3}}));
  auto marker = DecodeParquetSinkState(
      [&] {
        std::ifstream in(dir_ / "_sluice" / "views.state", std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
      }(),
      "views");
  ASSERT_TRUE(marker.ok()) << marker.status().ToString();
  EXPECT_TRUE(marker->moved);
  EXPECT_EQ(marker->seq, 2);
  EXPECT_TRUE(marker->rows.empty());
  a->reset();
  auto fresh = MakeSink();
  auto inv = dynamic_cast<SinkReader*>(fresh->get())->Inventory(InventoryOptions{});
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  ASSERT_EQ(inv->pipelines.size(), 1u);
  EXPECT_EQ(inv->pipelines[0].details[1].second.substr(0, 2), "2 ");  // part files
}

TEST_F(ParquetSinkTasksTest, ALegacyStateFileNextToTaskFilesIsRefusedAtOpenAndCommit) {
  auto a = OpenSink();
  ASSERT_TRUE(a.ok());
  auto claim = (*a)->ClaimTask(TaskId{"in", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok());
  // An older sluice (no tasks, no shared lock: e.g. on another machine) writes its state file.
  {
    std::ofstream out(dir_ / "_sluice" / "views.state", std::ios::binary);
    out << EncodeParquetSinkState("views", 1, 0, {{"in", 0, 5}}, "", ctx_.output.fields(), 0, "",
                                  false);
  }
  const std::vector<Row> rows = {R(1, "m1", 1)};
  const std::vector<uint32_t> row_tasks = {0};
  Checkpoint cp;
  cp.rows = &rows;
  cp.row_tasks = &row_tasks;
  cp.positions = {{"in", 0, 9}};
  cp.tasks.push_back(TaskCommit{TaskId{"in", 0}, claim->fence, TaskProgress{}, nullptr, false});
  Status s = (*a)->Commit(cp);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(
      s.message().find("every process of a pipeline must run a version with per-partition state"),
      std::string::npos)
      << s.message();
  EXPECT_TRUE(Files().empty());
  auto b = OpenSink();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("stop them all, then start"), std::string::npos)
      << b.status().message();
  EXPECT_TRUE(fs::exists(dir_ / "_sluice" / "views.state"));  // left for the operator
}

TEST_F(ParquetSinkTasksTest, OpenForReadingADirectoryWithoutTasksShowsNone) {
  {
    auto legacy = OpenSink(/*tasks=*/false);
    ASSERT_TRUE(legacy.ok());
  }
  auto reading = MakeSink();
  ASSERT_TRUE((*reading)->OpenForReading(ctx_).ok());
  auto progress = (*reading)->LoadTaskProgress();
  ASSERT_TRUE(progress.ok());
  EXPECT_TRUE(progress->empty());
  EXPECT_FALSE(fs::exists(dir_ / "_sluice" / "views"));  // reading creates nothing
}

}  // namespace
}  // namespace sluice
