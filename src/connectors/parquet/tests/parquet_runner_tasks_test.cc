// Two Runners of one pipeline writing one Parquet directory, sharing a fake partitioned source
// whose partitions the test hands out like a consumer group (issue 16): the pipeline keeps state,
// so it runs on tasks, and the Parquet sink keeps that state per task. A select pipeline with a
// `hold` lookup: a partition that moves takes its held record along; each row lands once
// (expected rows worked out by hand). An append-mode pipeline over a source keyed by the group
// key: each task keeps and writes its own windows, under its own files; every window lands once,
// read back with Arrow's Parquet reader and equal to the recomputation of
// group_test::KeyedAppendData.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "connectors/parquet/parquet_naming.h"
#include "connectors/parquet/parquet_sink.h"
#include "connectors/parquet/parquet_state.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/tests/group_runner_test_util.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

using group_test::Rec;
using group_test::WaitFor;

class ParquetRunnerTasksTest : public ::testing::Test, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    group_test::RegisterGroupSource("group");
    SetUpGroup("sluice_parquet_runner_tasks");
    out_ = (dir_ / "out").string();
    scheme_ = "group";
    sink_uri_ = "parquet:" + out_;
  }
  void TearDown() override { TearDownGroup(); }

  /// The sink holds no SQL tables: the test reads it back with ReadBack() instead.
  std::vector<std::string> Q(const std::string&) override { return {}; }

  /// Starts member `member` of the select pipeline: rows k, job, company, v, records of unknown
  /// jobs held for a minute.
  Runner* StartSelect(const std::string& member) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "select = [\"k\", \"job\", \"company\", \"v\"]\n"
        "[pipeline]\nname = \"ptasks\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nname = \"in\"\nuri = \"" + scheme_ + ":" + member + "\"\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[dimension.job]\nuri = \"" + jobs_ + "\"\nkey = \"id\"\n"
        "fields = { id = \"int64\", company = \"int64\" }\nrefresh = \"20ms\"\n"
        "[[step]]\nlookup = \"job\"\nkey = \"job\"\nfields = [\"company\"]\n"
        "on_missing = \"hold\"\nhold_for = \"60s\"\nthen = \"dead_letter\"\n"
        "[sink]\nuri = \"" + sink_uri_ + "\"\npartition_by = \"k\"\n";
    auto cfg = ParsePipelineConfig(text, "ptasks.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    GroupRuns::Run& run = runs_[member];
    if (run.thread.joinable()) run.thread.join();
    run.runner = std::move(runner).value();
    run.done = false;
    EXPECT_TRUE(run.runner->uses_tasks());
    GroupRuns::Run* r = &run;
    run.thread = std::thread([r] {
      r->status = r->runner->Run();
      r->done = true;
    });
    return run.runner.get();
  }

  /// Reads the directory as `sluice verify` does: positions, rows ("k|job|company|v", sorted)
  /// and tasks ("source[p] owner").
  struct Read {
    std::vector<StoredPosition> positions;
    std::vector<std::string> rows;
    std::vector<std::string> tasks;
  };
  Read ReadBack() {
    Read out;
    SinkConfig c;
    c.uri = "parquet:" + out_;
    c.options.section_location = {"ptasks.toml", 1, 1};
    c.options.Set("partition_by", Option{"k", {"ptasks.toml", 2, 1}});
    auto sink = ParquetSink::Make(c);
    EXPECT_TRUE(sink.ok());
    SinkContext ctx;
    ctx.pipeline = "ptasks";
    ctx.source = "in";
    ctx.output = Schema({{"k", Type::kString, ""}, {"job", Type::kInt64, ""},
                         {"company", Type::kInt64, ""}, {"v", Type::kInt64, ""}});
    if (!(*sink)->OpenForReading(ctx).ok()) return out;
    auto positions = (*sink)->LoadPositions();
    if (positions.ok()) out.positions = *positions;
    auto rows = (*sink)->ReadOutput();
    for (const auto& r : rows.ok() ? *rows : std::vector<std::vector<Value>>{}) {
      out.rows.push_back(r[0].ToString() + "|" + r[1].ToString() + "|" + r[2].ToString() + "|" +
                         r[3].ToString());
    }
    std::sort(out.rows.begin(), out.rows.end());
    auto tasks = (*sink)->LoadTaskProgress();
    for (const auto& t : tasks.ok() ? *tasks : std::vector<TaskRow>{}) {
      out.tasks.push_back(t.task.source + "[" + std::to_string(t.task.partition) + "] " +
                          (t.owner.empty() ? "-" : "owned"));
    }
    return out;
  }
  int64_t Position(int32_t p) {
    for (const auto& s : ReadBack().positions) {
      if (s.source == "in" && s.partition == p) return s.offset;
    }
    return -1;
  }

  // The keyed append-mode pipeline ("keyed", GroupRuns::StartKeyed), read back without the sink:
  // its task files decoded, its part files read with Arrow's Parquet reader, its dead-letter
  // files parsed line by line.

  std::string KeyedSinkOptions() const override { return ""; }

  /// The task file of partition `p` of the keyed pipeline; nullopt when there is none.
  std::optional<ParquetTaskFile> KeyedTask(int32_t p) const {
    const fs::path path = fs::path(out_) / "_sluice" / "keyed" / ("task-in-" + std::to_string(p) + ".state");
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream data;
    data << in.rdbuf();
    auto f = DecodeParquetTaskFile(data.str(), "keyed");
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (!f.ok()) return std::nullopt;
    return std::move(f).value();
  }
  std::vector<std::string> PositionOf(int32_t p) override {
    if (auto f = KeyedTask(p)) {
      for (const auto& pos : f->positions) {
        if (pos.source == "in" && pos.partition == p) return {std::to_string(pos.offset)};
      }
    }
    return {};
  }
  std::vector<std::string> KeyedTasks() override {
    std::vector<std::string> out;
    for (int32_t p : {0, 1}) {
      if (auto f = KeyedTask(p)) {
        out.push_back(std::to_string(p) + "|" + f->owner + "|" + (f->state.empty() ? "0" : "1"));
      }
    }
    return out;
  }

  /// One part file of the keyed pipeline: the task its name gives, its sequence number and its
  /// rows ("2024-01-01 HH:MM:SS|k|n|s").
  struct PartFile {
    int32_t partition = -1;
    int64_t seq = 0;
    std::vector<std::string> rows;
  };
  std::vector<PartFile> KeyedPartFiles() const {
    std::vector<PartFile> out;
    for (const auto& e : fs::directory_iterator(out_)) {
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file() || !name.ends_with(".parquet")) continue;
      PartFile part;
      if (auto parsed = ParseTaskPartFileName("keyed", name)) {
        part.partition = parsed->partition;
        part.seq = parsed->seq;
      }
      auto in = arrow::io::ReadableFile::Open(e.path().string());
      EXPECT_TRUE(in.ok()) << name;
      if (!in.ok()) continue;
      auto reader = parquet::arrow::OpenFile(*in, arrow::default_memory_pool());
      EXPECT_TRUE(reader.ok()) << name;
      if (!reader.ok()) continue;
      auto read = (*reader)->ReadTable();
      EXPECT_TRUE(read.ok()) << name;
      if (!read.ok()) continue;
      auto table = (*read)->CombineChunks();
      EXPECT_TRUE(table.ok()) << name;
      if (!table.ok()) continue;
      auto start = std::static_pointer_cast<arrow::TimestampArray>((*table)->GetColumnByName("window_start")->chunk(0));
      auto k = std::static_pointer_cast<arrow::StringArray>((*table)->GetColumnByName("k")->chunk(0));
      auto n = std::static_pointer_cast<arrow::Int64Array>((*table)->GetColumnByName("n")->chunk(0));
      auto sum = std::static_pointer_cast<arrow::Int64Array>((*table)->GetColumnByName("s")->chunk(0));
      for (int64_t i = 0; i < (*table)->num_rows(); ++i) {
        // Microseconds since the epoch; 1704067200 s is 2024-01-01 00:00:00 UTC.
        const int64_t seconds = start->Value(i) / 1'000'000 - 1'704'067'200;
        part.rows.push_back("2024-01-01 " + group_test::KeyedAppendData::Clock(seconds) + "|" + k->GetString(i) +
                            "|" + std::to_string(n->Value(i)) + "|" + std::to_string(sum->Value(i)));
      }
      out.push_back(std::move(part));
    }
    return out;
  }
  std::vector<std::string> KeyedRows() override {
    std::vector<std::string> out;
    for (const auto& f : KeyedPartFiles()) out.insert(out.end(), f.rows.begin(), f.rows.end());
    std::sort(out.begin(), out.end());
    return out;
  }

  /// One dead letter of the keyed pipeline: the partition its file's name gives (its task),
  /// and the partition, offset and reason it says.
  struct Letter {
    int32_t file_partition = -1;
    int32_t partition = -1;
    int64_t offset = -1;
    std::string reason;
  };
  std::vector<Letter> KeyedLetters() const {
    std::vector<Letter> out;
    const fs::path dir = fs::path(out_) / "_sluice" / "dead_letters";
    if (!fs::exists(dir)) return out;
    static const std::regex file_name(R"(dead-letters-keyed-[0-9]+-in-([0-9]+)\.ndjson)");
    static const std::regex fields(R"re("partition":([0-9]+),"offset":([0-9]+),.*"reason":"([a-z_ :]+)")re");
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      std::smatch m;
      if (!std::regex_match(name, m, file_name)) continue;
      const int32_t file_partition = std::stoi(m[1]);
      std::ifstream in(e.path());
      for (std::string line; std::getline(in, line);) {
        Letter l;
        l.file_partition = file_partition;
        std::smatch f;
        if (std::regex_search(line, f, fields)) {
          l.partition = std::stoi(f[1]);
          l.offset = std::stoll(f[2]);
          l.reason = f[3];
        }
        out.push_back(std::move(l));
      }
    }
    return out;
  }
  std::vector<std::string> LateLetters() override {
    std::vector<std::pair<int32_t, int64_t>> late;
    for (const Letter& l : KeyedLetters()) {
      if (l.reason == "late") late.emplace_back(l.partition, l.offset);
    }
    std::sort(late.begin(), late.end());
    std::vector<std::string> out;
    for (const auto& [p, o] : late) out.push_back(std::to_string(p) + "|" + std::to_string(o));
    return out;
  }
  std::vector<std::string> OtherLetters() override {
    int64_t n = 0;
    for (const Letter& l : KeyedLetters()) n += l.reason != "late";
    return {std::to_string(n)};
  }

  std::string out_;
};

TEST_F(ParquetRunnerTasksTest, AMovedPartitionTakesItsHeldRecordAndEachRowLandsOnce) {
  Runner* a = StartSelect("a");
  Runner* b = StartSelect("b");
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  // Partition 0: job 1 (known) and job 5 (unknown: held); partition 1: job 1.
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:10", 5, 10)});
  Produce(1, {Rec("y", "00:05:20", 1, 100)});
  ASSERT_TRUE(WaitFor([&] { return Position(0) == 2 && Position(1) == 1; }));
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().held == 1; }));
  EXPECT_EQ(ReadBack().rows, (std::vector<std::string>{"x|1|10|1", "y|1|10|100"}));

  // Partition 0 moves to b: a commits it, with its held record, and gives it up.
  Command("a", 'r', 0);
  EXPECT_EQ(a->Snapshot().held, 0);
  Command("b", 'a', 0);
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
  // Job 5 becomes known: b writes the held record's row, once.
  WriteJobs("1,10\n5,50\n");
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 0; }));
  Produce(0, {Rec("x", "00:06:00", 1, 1000)});
  Produce(1, {Rec("y", "00:06:00", 1, 2000)});
  ASSERT_TRUE(WaitFor([&] { return Position(0) == 3 && Position(1) == 2; }));
  ASSERT_TRUE(Stop("a").ok());
  ASSERT_TRUE(Stop("b").ok());
  const Read read = ReadBack();
  EXPECT_EQ(read.rows, (std::vector<std::string>{"x|1|10|1", "x|1|10|1000", "x|5|50|10",
                                                 "y|1|10|100", "y|1|10|2000"}));
  // A clean stop releases every task.
  EXPECT_EQ(read.tasks, (std::vector<std::string>{"in[0] -", "in[1] -"}));
}

// Append mode over a source keyed by the group key ([source] keyed_by) into Parquet: each
// task keeps its open windows in its task file and writes the windows it closes under its own
// part files, so the pipeline may be split over processes. The scenario of
// RunnerTasksTest.AppendModeKeyedByEmitsEachWindowOnceAcrossMovesAndACutOffProcess (partitions
// moving, a process cut off and fenced, a new one taking over): the dataset, read with Arrow's
// reader, holds every (window, k) of the recomputation once, each row in a file of the task
// whose partition its key is produced to, each dead letter in a file of its own partition's task.
// Then a restart over the same directory claims both tasks from their files: records of windows
// written before are late, a record of a window still open is not, and nothing is written again.
TEST_F(ParquetRunnerTasksTest, AppendModeKeyedByEmitsEachWindowOnceAcrossMovesAndACutOffProcess) {
  const group_test::KeyedAppendData data = group_test::KeyedAppendData::Make(240, 16);
  KeyedAppendAcrossMovesAndACutOffProcess(data);
  if (HasFatalFailure()) return;

  // The keys each partition's records have (KeyedAppendData::Make).
  const std::map<int32_t, std::set<std::string>> keys = {{0, {"a", "b", "c", "z0"}}, {1, {"d", "e", "z1"}}};
  std::map<int32_t, int64_t> files_of;
  for (const PartFile& f : KeyedPartFiles()) {
    ASSERT_TRUE(f.partition == 0 || f.partition == 1) << "a part file named after no task";
    ++files_of[f.partition];
    for (const std::string& row : f.rows) {
      const std::string k = row.substr(20, row.find('|', 20) - 20);
      EXPECT_TRUE(keys.at(f.partition).count(k)) << row << " is in a file of partition " << f.partition;
    }
  }
  // Every part file is committed: its task's sequence numbers are 1..seq.
  for (int32_t p : {0, 1}) {
    auto task = KeyedTask(p);
    ASSERT_TRUE(task.has_value());
    EXPECT_GT(files_of[p], 0);
    EXPECT_EQ(task->seq, files_of[p]) << "partition " << p;
  }
  for (const Letter& l : KeyedLetters()) EXPECT_EQ(l.file_partition, l.partition) << l.offset;

  // A restart: one process claims both tasks from the directory.
  const int64_t end0 = data.EndOf(0, 3);
  const int64_t end1 = data.EndOf(1, 3);
  StartKeyed("c");
  Command("c", 'a', 0);
  Command("c", 'a', 1);
  // 00:02 and 00:30 were written (late now); 01:00 is still open (its z0 record), so a record
  // of it is taken.
  Produce(0, {group_test::Rec("a", "00:02:10", 1, 5), group_test::Rec("a", "01:00:05", 1, 7)});
  Produce(1, {group_test::Rec("d", "00:30:00", 1, 5)});
  ASSERT_TRUE(WaitPosition(0, end0 + 2));
  ASSERT_TRUE(WaitPosition(1, end1 + 1));
  ASSERT_TRUE(Stop("c").ok());
  EXPECT_EQ(KeyedRows(), data.expected_rows);
  std::vector<std::string> late = data.expected_late;
  late.insert(std::find_if(late.begin(), late.end(), [](const std::string& l) { return l.starts_with("1|"); }),
              "0|" + std::to_string(end0));
  late.push_back("1|" + std::to_string(end1));
  EXPECT_EQ(LateLetters(), late);
  EXPECT_EQ(OtherLetters(), std::vector<std::string>{"0"});
  EXPECT_EQ(KeyedTasks(), (std::vector<std::string>{"0||1", "1||1"}));
}

// A bounded input writes every open window at its end, and the task file remembers up to where
// its windows were written: a later run over more of the file finds a record of such a window
// late (its partition's watermark alone would take it) and writes that window no second file
// (GroupRuns::KeyedAppendRemembersTheWindowsWrittenAtTheEndOfABoundedInput).
TEST_F(ParquetRunnerTasksTest, AppendModeKeyedByRemembersTheWindowsWrittenAtTheEndOfABoundedInput) {
  KeyedAppendRemembersTheWindowsWrittenAtTheEndOfABoundedInput();
  EXPECT_EQ(KeyedTasks(), std::vector<std::string>{"0||1"});
}

}  // namespace
}  // namespace sluice
