// Two Runners of one select pipeline with a `hold` lookup writing one Parquet directory, sharing a
// fake partitioned source whose partitions the test hands out like a consumer group (issue 16):
// the pipeline keeps state, so it runs on tasks, and the Parquet sink keeps that state per task.
// A partition that moves takes its held record along; each row lands once. Expected rows are
// worked out by hand from the records played.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/parquet/parquet_sink.h"
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

}  // namespace
}  // namespace sluice
