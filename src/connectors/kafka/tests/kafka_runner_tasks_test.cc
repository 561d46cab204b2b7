// Two Runners of one select pipeline with a `hold` lookup writing one Kafka topic, sharing a
// fake partitioned source whose partitions the test hands out like a consumer group (issue 16):
// the pipeline keeps state (held records), so it runs on tasks, and the Kafka sink keeps that
// state per task in its positions topic. Each runner has its own transactional_id (two
// processes). Against the broker of `make services`; expected rows worked out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_uri.h"
#include "connectors/kafka/tests/kafka_test_broker.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/tests/group_runner_test_util.h"

namespace sluice {
namespace {

using group_test::Rec;
using group_test::WaitFor;

class KafkaRunnerTasksTest : public ::testing::Test, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    if (!kafkatest::BrokerUp()) return;
    RegisterBuiltins();
    group_test::RegisterGroupSource("group");
    SetUpGroup("sluice_kafka_runner_tasks");
    topic_ = kafkatest::Unique("ksink_runner");
    scheme_ = "group";
    sink_uri_ = "kafka://" + kafkatest::Brokers() + "/" + topic_;
  }
  void TearDown() override { TearDownGroup(); }

  std::vector<std::string> Q(const std::string&) override { return {}; }

  /// Starts member `member` (a process with transactional_id <topic>-<member>) of the select
  /// pipeline: rows k, job, company, v; records of unknown jobs held for a minute.
  Runner* StartSelect(const std::string& member) {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "select = [\"k\", \"job\", \"company\", \"v\"]\n"
        "[pipeline]\nname = \"ktasks\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nname = \"in\"\nuri = \"" + scheme_ + ":" + member + "\"\n"
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[dimension.job]\nuri = \"" + jobs_ + "\"\nkey = \"id\"\n"
        "fields = { id = \"int64\", company = \"int64\" }\nrefresh = \"20ms\"\n"
        "[[step]]\nlookup = \"job\"\nkey = \"job\"\nfields = [\"company\"]\n"
        "on_missing = \"hold\"\nhold_for = \"60s\"\nthen = \"dead_letter\"\n"
        "[sink]\nuri = \"" + sink_uri_ + "\"\ntimeout = \"15s\"\ntransactional_id = \"" + topic_ + "-" +
        member + "\"\n";
    auto cfg = ParsePipelineConfig(text, "ktasks.toml", vars);
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

  /// What a sink opened for reading (as `sluice status` opens it) finds: positions and tasks
  /// ("in[p] owned" or "in[p] -").
  struct Read {
    std::vector<StoredPosition> positions;
    std::vector<std::string> tasks;
  };
  Read ReadBack() {
    Read out;
    SinkConfig c;
    c.uri = sink_uri_;
    auto sink = KafkaSink::Make(c);
    EXPECT_TRUE(sink.ok());
    SinkContext ctx;
    ctx.pipeline = "ktasks";
    ctx.source = "in";
    if (!(*sink)->OpenForReading(ctx).ok()) return out;
    auto positions = (*sink)->LoadPositions();
    if (positions.ok()) out.positions = *positions;
    auto tasks = (*sink)->LoadTaskProgress();
    for (const auto& t : tasks.ok() ? *tasks : std::vector<TaskRow>{}) {
      out.tasks.push_back(t.task.source + "[" + std::to_string(t.task.partition) + "] " +
                          (t.owner.empty() ? "-" : "owned"));
    }
    (*sink)->Close();
    return out;
  }
  int64_t Position(int32_t p) {
    for (const auto& s : ReadBack().positions) {
      if (s.source == "in" && s.partition == p) return s.offset;
    }
    return -1;
  }

  /// The output topic's rows as "k|job|company|v", sorted, as read_committed consumers see them.
  std::vector<std::string> Rows() {
    std::string error;
    kafkatest::Handle c = kafkatest::NewHandle(RD_KAFKA_CONSUMER,
                                               {{"group.id", kafkatest::Unique("ksink_runner_reader")},
                                                {"isolation.level", "read_committed"},
                                                {"enable.partition.eof", "true"},
                                                {"enable.auto.commit", "false"}},
                                               &error);
    std::vector<std::string> rows;
    const int n = KafkaPartitionCount(kafkatest::Brokers(), topic_);
    if (!c || n <= 0) return rows;
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; ++p) {
      rd_kafka_topic_partition_list_add(parts, topic_.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c.get(), parts);
    rd_kafka_topic_partition_list_destroy(parts);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int eofs = 0;
    while (eofs < n && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 500);
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        ++eofs;
      } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        // {"k":"x","job":1,"company":10,"v":1}
        std::string json(static_cast<const char*>(m->payload), m->len), row;
        for (const char* field : {"\"k\":", "\"job\":", "\"company\":", "\"v\":"}) {
          size_t at = json.find(field) + std::string(field).size();
          size_t end = json.find_first_of(",}", at);
          std::string v = json.substr(at, end - at);
          v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
          row += (row.empty() ? "" : "|") + v;
        }
        rows.push_back(row);
      }
      rd_kafka_message_destroy(m);
    }
    EXPECT_EQ(eofs, n) << "did not reach the end of " << topic_;
    rd_kafka_consumer_close(c.get());
    std::sort(rows.begin(), rows.end());
    return rows;
  }

  std::string topic_;
};

TEST_F(KafkaRunnerTasksTest, AMovedPartitionTakesItsHeldRecordAndEachRowLandsOnce) {
  SLUICE_REQUIRE_KAFKA();
  Runner* a = StartSelect("a");
  Runner* b = StartSelect("b");
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  // Partition 0: job 1 (known) and job 5 (unknown: held); partition 1: job 1.
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:10", 5, 10)});
  Produce(1, {Rec("y", "00:05:20", 1, 100)});
  ASSERT_TRUE(WaitFor([&] { return Position(0) == 2 && Position(1) == 1; }));
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().held == 1; }));
  EXPECT_EQ(Rows(), (std::vector<std::string>{"x|1|10|1", "y|1|10|100"}));

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
  EXPECT_EQ(Rows(), (std::vector<std::string>{"x|1|10|1", "x|1|10|1000", "x|5|50|10", "y|1|10|100",
                                             "y|1|10|2000"}));
  // A clean stop releases every task.
  EXPECT_EQ(ReadBack().tasks, (std::vector<std::string>{"in[0] -", "in[1] -"}));
}

// A process cut off from the group (its partition given to another without a revoke) reads on;
// its next commit carries the task with its old fence and is refused, and its run ends
// (`sluice run` starts it again); the held record moved with the task is written once, by the
// new owner, and nothing the cut-off process read after the claim reaches the topic twice.
TEST_F(KafkaRunnerTasksTest, AProcessCutOffIsFencedAndTheHeldRecordIsWrittenOnce) {
  SLUICE_REQUIRE_KAFKA();
  Runner* a = StartSelect("a");
  StartSelect("b");
  Command("a", 'a', 0);
  Produce(0, {Rec("x", "00:05:00", 1, 1), Rec("x", "00:05:01", 7, 2)});  // job 7: held
  ASSERT_TRUE(WaitFor([&] { return Position(0) == 2; }));
  ASSERT_TRUE(WaitFor([&] { return a->Snapshot().held == 1; }));
  Command("b", 'a', 0);
  Runner* b = runs_.at("b").runner.get();
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 1; }));
  Produce(0, {Rec("x", "00:05:02", 1, 4)});
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); }));
  EXPECT_EQ(runs_.at("a").status.code(), StatusCode::kFenced) << runs_.at("a").status.ToString();
  ASSERT_TRUE(WaitFor([&] { return Position(0) == 3; }));
  WriteJobs("1,10\n7,70\n");
  ASSERT_TRUE(WaitFor([&] { return b->Snapshot().held == 0; }));
  ASSERT_TRUE(Stop("b").ok());
  EXPECT_EQ(Rows(), (std::vector<std::string>{"x|1|10|1", "x|1|10|4", "x|7|70|2"}));
}

}  // namespace
}  // namespace sluice
