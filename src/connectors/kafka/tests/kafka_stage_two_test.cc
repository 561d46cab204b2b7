// Stage two of a repartitioned pipeline (issue 16) reading a real repartition topic: records
// built with the codec as stage one writes them (partials of three upstream tasks, their
// controls, stage one's dead letters), produced in Kafka transactions into a 4-partition topic,
// one transaction aborted (its records must never count), read by Runners whose Kafka source
// (read_committed) belongs to one consumer group, into SQLite. Against the broker of
// `make services`; the expectation is a brute-force aggregation of the raw records
// (stage_two_test_util.h). Task moves and a cut-off process: stage_two_runner_test.cc.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/tests/kafka_test_broker.h"
#include "runtime/plan.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/tests/stage_two_test_util.h"
#include "runtime/tests/sqlite_query_test_util.h"

namespace sluice {
namespace {

using kafkatest::Handle;
using stage_two_test::StageTwoData;
using stage_two_test::Transaction;

constexpr int32_t kPartitions = 4;

using sqlite_test::Query;

template <typename Pred>
bool WaitFor(Pred pred, int seconds = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

#define EXPECT_NO_TXN_ERROR(what, call)                                                       \
  do {                                                                                        \
    rd_kafka_error_t* e_ = (call);                                                            \
    if (e_) {                                                                                 \
      ADD_FAILURE() << (what) << ": " << rd_kafka_error_name(e_) << ": " << rd_kafka_error_string(e_); \
      rd_kafka_error_destroy(e_);                                                             \
    }                                                                                         \
  } while (0)

class KafkaStageTwoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_KAFKA();
    RegisterBuiltins();
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice_s2_kafka_stage_two_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = (dir_ / "out.db").string();
    topic_ = kafkatest::Unique("s2-rp-repartition");
    group_ = kafkatest::Unique("s2-rp-stage-two");
    auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    auto created = (*admin)->CreateTopic(topic_, kPartitions);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    std::string error;
    producer_ = std::make_unique<Handle>(kafkatest::NewHandle(
        RD_KAFKA_PRODUCER, {{"transactional.id", topic_ + "-stage-one"}, {"transaction.timeout.ms", "60000"}},
        &error));
    ASSERT_TRUE(*producer_) << error;
    EXPECT_NO_TXN_ERROR("init_transactions", rd_kafka_init_transactions(producer_->get(), 15000));
    plan_ = BuildTestPlan();
    ASSERT_NE(plan_, nullptr);
  }
  void TearDown() override {
    for (auto& [name, run] : runs_) {
      if (run->thread.joinable()) {
        run->runner->RequestStop();
        run->thread.join();
      }
    }
    runs_.clear();
    producer_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string Pipeline() const {
    return "[pipeline]\nname = \"rp\"\ncheckpoint_interval = \"50ms\"\n"
           "[source]\nname = \"in\"\nuri = \"kafka://" + kafkatest::Brokers() + "/" + topic_ + "\"\n"
           "group = \"" + group_ + "\"\n"
           "gapless = true\n" +  // as SplitPlan sets it on stage two's source
           source_extra_ +
           "[source.fields]\nk = \"string\"\nt = \"string\"\nv = \"int64\"\n"
           "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
           "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nmode = \"append\"\n"
           "idle_timeout = \"1h\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
           "[sink]\nuri = \"sqlite:" + db_ + "\"\ntable = \"w\"\n";
  }
  std::unique_ptr<Plan> BuildTestPlan() {
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(Pipeline(), "rp.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    if (!cfg.ok()) return nullptr;
    auto plan = BuildPlan(*cfg);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    return plan.ok() ? std::move(plan).value() : nullptr;
  }

  /// Begins a transaction on `p` and produces `t` in it (flushed: in the log, undecided).
  void BeginAndProduce(rd_kafka_t* p, const Transaction& t) {
    EXPECT_NO_TXN_ERROR("begin_transaction", rd_kafka_begin_transaction(p));
    for (const auto& [partition, values] : t.values) {
      const auto& keys = t.keys.at(partition);
      for (size_t i = 0; i < values.size(); ++i) {
        ASSERT_EQ(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_KEY(const_cast<char*>(keys[i].data()), keys[i].size()),
                                    RD_KAFKA_V_VALUE(const_cast<char*>(values[i].data()), values[i].size()),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                  RD_KAFKA_RESP_ERR_NO_ERROR);
      }
    }
    EXPECT_EQ(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  /// Produces `t` in one transaction, committed or aborted.
  void ProduceTransaction(const Transaction& t, bool commit = true) {
    rd_kafka_t* p = producer_->get();
    BeginAndProduce(p, t);
    if (commit) {
      EXPECT_NO_TXN_ERROR("commit_transaction", rd_kafka_commit_transaction(p, 30000));
    } else {
      // Written to the log first (flushed), so the aborted records are there for a reader to skip.
      EXPECT_NO_TXN_ERROR("abort_transaction", rd_kafka_abort_transaction(p, 30000));
    }
  }

  /// A transaction that would change every result were it read: partials of large counts for
  /// windows the data writes, for keys the data has and one it has not, an upstream's control
  /// far ahead (it would let windows out early), and a dead letter.
  Transaction Poison() const {
    Transaction t;
    const AggregateSpec& spec = *plan_->aggregate;
    for (const char* key : {"a", "b", "q"}) {
      RepartitionRecord r;
      r.kind = RepartitionRecord::Kind::kPartial;
      r.partial.window_start = (StageTwoData::kBase + 180) * 1'000'000;
      r.partial.keys = {Value::String(key)};
      r.partial.metrics.resize(2);
      r.partial.metrics[0].count = 1000;
      r.partial.metrics[1].count = 1000;
      r.partial.metrics[1].isum = 1'000'000;
      const std::string k = EncodeRepartitionKey(r.partial.keys);
      const int32_t p = RepartitionPartitionOf(k, kPartitions);
      t.values[p].push_back(EncodeRepartitionValue(r, spec));
      t.keys[p].push_back(k);
    }
    RepartitionRecord control;
    control.kind = RepartitionRecord::Kind::kControl;
    control.control.upstream = UpstreamId{0, 2};
    control.control.watermark = (StageTwoData::kBase + 7200) * 1'000'000;
    control.control.max_event_time = control.control.watermark;
    RepartitionRecord letter;
    letter.kind = RepartitionRecord::Kind::kDeadLetter;
    letter.dead_letter = DeadLetter{"late", "{\"poison\":1}", "in", 2, 999999, 1'000'000};
    for (int32_t p = 0; p < kPartitions; ++p) {
      t.values[p].push_back(EncodeRepartitionValue(control, spec));
      t.keys[p].push_back("");
    }
    t.values[1].push_back(EncodeRepartitionValue(letter, spec));
    t.keys[1].push_back("");
    return t;
  }

  struct Run {
    std::unique_ptr<Runner> runner;
    std::thread thread;
    Status status;
    std::atomic<bool> done{false};
  };

  /// Starts a stage-two run (a process) of the three upstream tasks of a 3-partition topic.
  Runner* Start(const std::string& name, RunOptions options = {}) {
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(Pipeline(), "rp.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    options.stage_two.enabled = true;
    options.stage_two.upstreams = StageTwoUpstreams({{0, 3}});
    options.workers = 1;  // one group member per process
    auto runner = Runner::Make(std::move(cfg).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    if (!runner.ok()) return nullptr;
    auto run = std::make_unique<Run>();
    run->runner = std::move(runner).value();
    run->runner->SetCommitObserver([this](const std::vector<DeltaRow>&, const std::vector<std::vector<Value>>& rows) {
      std::lock_guard<std::mutex> lock(observed_mu_);
      for (const auto& r : rows) ++observed_[r[0].ToString() + "|" + r[2].ToString()];
    });
    Run* r = run.get();
    run->thread = std::thread([r] {
      r->status = r->runner->Run();
      r->done = true;
    });
    runs_[name] = std::move(run);
    return r->runner.get();
  }
  Status Stop(const std::string& name) {
    Run& run = *runs_.at(name);
    run.runner->RequestStop();
    run.thread.join();
    return run.status;
  }

  /// Runs stage two with --until-caught-up (ends taken at once) into the current db_ to its end.
  Status RunToEnd(const std::string& name) {
    RunOptions options;
    options.until_caught_up = true;
    options.stage_two.take_end_offsets_when = [] { return true; };
    if (Start(name, options) == nullptr) return Status::Internal("not started");
    Run& run = *runs_.at(name);
    if (!WaitFor([&] { return run.done.load(); }, 90)) return Status::Internal(name + " did not end");
    run.thread.join();
    return run.status;
  }
  /// Stage two's committed positions in db_, by partition of the repartition topic.
  std::map<int32_t, int64_t> Positions() {
    std::map<int32_t, int64_t> out;
    for (const std::string& row : Q("SELECT `partition`, `offset` FROM _sluice_positions WHERE source = 'in' AND "
                                    "`partition` < " + std::to_string(kPartitions))) {
      const size_t bar = row.find('|');
      out[std::stoi(row.substr(0, bar))] = std::stoll(row.substr(bar + 1));
    }
    return out;
  }

  /// The read_committed end (last stable offset) of every partition.
  std::map<int32_t, int64_t> Ends() {
    auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
    EXPECT_TRUE(admin.ok());
    std::map<int32_t, int64_t> out;
    if (!admin.ok()) return out;
    // The LSO passes the commit marker shortly after commit_transaction returns (kafka.md, fact 6).
    WaitFor([&] {
      auto ends = (*admin)->EndOffsets(topic_);
      if (!ends.ok()) return false;
      out.clear();
      bool settled = true;
      for (const auto& e : *ends) {
        out[e.partition] = e.last_stable;
        settled = settled && e.last_stable == e.high_watermark;
      }
      return settled;
    }, 10);
    return out;
  }
  bool AtEnds(const std::map<int32_t, int64_t>& ends) {
    for (const auto& [p, end] : ends) {
      auto got = Q("SELECT `offset` FROM _sluice_positions WHERE source = 'in' AND `partition` = " + std::to_string(p));
      if (got.empty() || std::stoll(got[0]) < end) return false;
    }
    return true;
  }

  std::vector<std::string> Q(const std::string& sql) { return Query(db_, sql); }
  std::vector<std::string> Rows() { return Q("SELECT window_start, k, n, s FROM w ORDER BY window_start, k"); }
  std::vector<std::string> LateLetters() {
    return Q("SELECT `partition`, `offset` FROM _sluice_dead_letters WHERE reason = 'late' ORDER BY `partition`, `offset`");
  }
  std::vector<std::string> OtherLetters() { return Q("SELECT COUNT(*) FROM _sluice_dead_letters WHERE reason <> 'late'"); }
  void ExpectEachWindowOnce(const StageTwoData& data) {
    std::lock_guard<std::mutex> lock(observed_mu_);
    EXPECT_EQ(observed_.size(), data.expected_rows.size());
    for (const auto& [key, times] : observed_) EXPECT_EQ(times, 1) << key << " written by " << times << " commits";
  }

  std::filesystem::path dir_;
  std::string db_, topic_, group_;
  std::string source_extra_;  ///< more [source] lines
  std::unique_ptr<Handle> producer_;
  std::unique_ptr<Plan> plan_;
  std::map<std::string, std::unique_ptr<Run>> runs_;
  std::mutex observed_mu_;
  std::map<std::string, int> observed_;
};

// One process reads half the transactions (an aborted one among them), a second joins the
// group and takes partitions over with their tasks' state, the rest is produced; the table
// equals the brute force, each window written once, stage one's dead letters exactly.
TEST_F(KafkaStageTwoTest, TwoProcessesInOneGroupReadCommittedRecordsOnly) {
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 120, 8, 11, 1, 2);
  ASSERT_GT(data.expected_late.size(), 5u);
  ASSERT_GT(data.expected_rows.size(), 30u);
  const size_t half = data.transactions.size() / 2;
  for (size_t i = 0; i < half; ++i) ProduceTransaction(data.transactions[i]);
  ProduceTransaction(Poison(), /*commit=*/false);
  ASSERT_NE(Start("a"), nullptr);
  std::map<int32_t, int64_t> ends = Ends();
  ASSERT_TRUE(WaitFor([&] { return AtEnds(ends); })) << "a did not read the first half";
  ASSERT_NE(Start("b"), nullptr);
  // The group moves partitions to b (eager rebalance: every task is claimed again, b's with the
  // open windows and upstream vectors a committed) before the rest is produced.
  ASSERT_TRUE(WaitFor([&] {
    return Q("SELECT COUNT(*) FROM _sluice_tasks WHERE pipeline = 'rp' AND fence >= 2") ==
           std::vector<std::string>{std::to_string(kPartitions)};
  })) << "no rebalance after b joined";
  for (size_t i = half; i < data.transactions.size(); ++i) ProduceTransaction(data.transactions[i]);
  ends = Ends();
  ASSERT_TRUE(WaitFor([&] { return AtEnds(ends) && Rows().size() >= data.expected_rows.size(); }, 90))
      << ::testing::PrintToString(Rows());
  EXPECT_TRUE(Stop("b").ok()) << runs_.at("b")->status.ToString();
  EXPECT_TRUE(Stop("a").ok()) << runs_.at("a")->status.ToString();
  EXPECT_EQ(Rows(), data.expected_rows);
  ExpectEachWindowOnce(data);
  EXPECT_EQ(LateLetters(), data.expected_late);
  EXPECT_EQ(OtherLetters(), std::vector<std::string>{"0"});
  // Both processes owned tasks at some point: each task's state holds the open hour window.
  EXPECT_EQ(Q("SELECT COUNT(*) FROM _sluice_tasks WHERE pipeline = 'rp' AND LENGTH(state) > 0"),
            std::vector<std::string>{std::to_string(kPartitions)});
}

// --until-caught-up with take_end_offsets_when: the run reads on past what was there at its
// start and ends only at the ends taken once told (after stage one ended).
TEST_F(KafkaStageTwoTest, UntilCaughtUpEndsAtTheEndsTakenWhenTold) {
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 60, 4, 5);
  const size_t half = data.transactions.size() / 2;
  for (size_t i = 0; i < half; ++i) ProduceTransaction(data.transactions[i]);
  auto told = std::make_shared<std::atomic<bool>>(false);
  RunOptions options;
  options.until_caught_up = true;
  options.stage_two.take_end_offsets_when = [told] { return told->load(); };
  ASSERT_NE(Start("a", options), nullptr);
  std::map<int32_t, int64_t> ends = Ends();
  ASSERT_TRUE(WaitFor([&] { return AtEnds(ends); }));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_FALSE(runs_.at("a")->done.load()) << "ended before it was told: " << runs_.at("a")->status.ToString();
  ProduceTransaction(Poison(), /*commit=*/false);
  for (size_t i = half; i < data.transactions.size(); ++i) ProduceTransaction(data.transactions[i]);
  ends = Ends();
  told->store(true);
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a")->done.load(); })) << "did not end once told";
  runs_.at("a")->thread.join();
  EXPECT_TRUE(runs_.at("a")->status.ok()) << runs_.at("a")->status.ToString();
  EXPECT_TRUE(AtEnds(ends));
  EXPECT_EQ(Rows(), data.expected_rows);
  ExpectEachWindowOnce(data);
  EXPECT_EQ(LateLetters(), data.expected_late);
}

// Once told, the ends are asked of handles of their own, not of the consumer: its connection
// carries its fetches, which the broker holds for fetch.wait.max.ms when there is nothing new
// (3 s here), and every request queued behind one waits as long. Asked of the consumer (its
// metadata, then each partition's offsets) the ends came 2.5 s after stage one ended at the
// default 500 ms, and here ~18 s; the run now ends within seconds of being told.
TEST_F(KafkaStageTwoTest, UntilCaughtUpTakesTheEndsWithoutWaitingBehindTheConsumersFetches) {
  source_extra_ = "\"kafka.fetch.wait.max.ms\" = \"3000\"\n";
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 60, 4, 5);
  for (const auto& t : data.transactions) ProduceTransaction(t);
  auto told = std::make_shared<std::atomic<bool>>(false);
  RunOptions options;
  options.until_caught_up = true;
  options.stage_two.take_end_offsets_when = [told] { return told->load(); };
  ASSERT_NE(Start("a", options), nullptr);
  const std::map<int32_t, int64_t> ends = Ends();
  ASSERT_TRUE(WaitFor([&] { return AtEnds(ends); }));
  std::this_thread::sleep_for(std::chrono::seconds(1));  // its fetches find nothing new now
  const auto at = std::chrono::steady_clock::now();
  told->store(true);
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a")->done.load(); })) << "did not end once told";
  const auto took = std::chrono::steady_clock::now() - at;
  runs_.at("a")->thread.join();
  EXPECT_TRUE(runs_.at("a")->status.ok()) << runs_.at("a")->status.ToString();
  EXPECT_LT(took, std::chrono::seconds(6))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms from told to the end";
  EXPECT_EQ(Rows(), data.expected_rows);
  ExpectEachWindowOnce(data);
}

// The ends are taken when told only once every record written before is decided: here another
// producer's transaction, opened before the second half was committed, holds the last stable
// offsets back below that half when the run is told (as stage one's last transaction can, whose
// markers the broker may not have written yet when commit_transaction returned). Taken at once,
// the ends would leave the second half out (review finding "take_end_offsets_when can take
// offsets before stage one's last transaction"); the run waits until that transaction is
// decided (aborted here: its records never count) and then reads everything.
TEST_F(KafkaStageTwoTest, UntilCaughtUpWaitsForTheRecordsWrittenBeforeItWasTold) {
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 60, 4, 5);
  const size_t half = data.transactions.size() / 2;
  for (size_t i = 0; i < half; ++i) ProduceTransaction(data.transactions[i]);
  std::string error;
  Handle straggler(kafkatest::NewHandle(
      RD_KAFKA_PRODUCER, {{"transactional.id", topic_ + "-straggler"}, {"transaction.timeout.ms", "60000"}},
      &error));
  ASSERT_TRUE(straggler) << error;
  EXPECT_NO_TXN_ERROR("init_transactions", rd_kafka_init_transactions(straggler.get(), 15000));
  BeginAndProduce(straggler.get(), Poison());  // in every partition, left open
  for (size_t i = half; i < data.transactions.size(); ++i) ProduceTransaction(data.transactions[i]);
  auto told = std::make_shared<std::atomic<bool>>(true);
  RunOptions options;
  options.until_caught_up = true;
  options.stage_two.take_end_offsets_when = [told] { return told->load(); };
  ASSERT_NE(Start("a", options), nullptr);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(runs_.at("a")->done.load()) << "ended while a transaction written before it was told was open: "
                                           << runs_.at("a")->status.ToString() << "; rows "
                                           << ::testing::PrintToString(Rows());
  EXPECT_NO_TXN_ERROR("abort_transaction", rd_kafka_abort_transaction(straggler.get(), 30000));
  const std::map<int32_t, int64_t> ends = Ends();
  ASSERT_TRUE(WaitFor([&] { return runs_.at("a")->done.load(); })) << "did not end";
  runs_.at("a")->thread.join();
  EXPECT_TRUE(runs_.at("a")->status.ok()) << runs_.at("a")->status.ToString();
  EXPECT_TRUE(AtEnds(ends));
  EXPECT_EQ(Rows(), data.expected_rows);
  ExpectEachWindowOnce(data);
  EXPECT_EQ(LateLetters(), data.expected_late);
}

// Stage two's positions are in the user's sink; the repartition topic (and stage one's
// positions) are in Kafka under the pipeline's name. A run into a fresh sink reads the topic
// from offset 0: intact, that is every partial, and the fresh sink gets the whole result. Once
// the records before the first sink's positions are deleted (its purger, or retention), a fresh
// sink would miss their counts with no word: the run fails at start instead (kFailedPrecondition,
// naming the partition and what to do) and writes no row, while the first sink, whose positions
// are where the deleted records end, goes on.
TEST_F(KafkaStageTwoTest, AFreshSinkReadsTheWholeTopicOrFailsWhenRecordsBeforeItWereDeleted) {
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 60, 4, 5);
  for (const Transaction& t : data.transactions) ProduceTransaction(t);
  const std::string first = db_;
  Status a = RunToEnd("a");
  ASSERT_TRUE(a.ok()) << a.ToString();
  EXPECT_EQ(Rows(), data.expected_rows);
  const std::map<int32_t, int64_t> positions = Positions();
  ASSERT_EQ(positions.size(), static_cast<size_t>(kPartitions));

  db_ = (dir_ / "fresh.db").string();
  Status b = RunToEnd("b");
  EXPECT_TRUE(b.ok()) << b.ToString();
  EXPECT_EQ(Rows(), data.expected_rows);
  EXPECT_EQ(LateLetters(), data.expected_late);

  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  Status deleted = (*admin)->DeleteRecordsBefore(topic_, positions);
  ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  db_ = (dir_ / "after_purge.db").string();
  Status c = RunToEnd("c");
  EXPECT_EQ(c.code(), StatusCode::kFailedPrecondition) << c.ToString();
  EXPECT_NE(c.message().find("the sink holds no position of it, but its first offset is"), std::string::npos)
      << c.message();
  EXPECT_NE(c.message().find("deleted before this sink read them"), std::string::npos) << c.message();
  EXPECT_NE(c.message().find("delete the topics rp-repartition and rp-repartition.sluice-positions"),
            std::string::npos)
      << c.message();
  EXPECT_TRUE(Rows().empty()) << ::testing::PrintToString(Rows());

  db_ = first;
  Status again = RunToEnd("a2");
  EXPECT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(Rows(), data.expected_rows);
  EXPECT_EQ(Positions(), positions);
}

// A sink whose positions lie beyond the ends of the repartition topic it finds (the topic was
// deleted and created again under the same name, here: the sink's pipeline pointed at a new
// topic with fewer records) holds positions and open windows of another life of the topic:
// stage two fails at start rather than reading the new one from its start.
TEST_F(KafkaStageTwoTest, PositionsBeyondTheEndOfARecreatedTopicFail) {
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 60, 4, 5);
  for (const Transaction& t : data.transactions) ProduceTransaction(t);
  Status a = RunToEnd("a");
  ASSERT_TRUE(a.ok()) << a.ToString();
  const std::vector<std::string> rows = Rows();
  EXPECT_EQ(rows, data.expected_rows);

  topic_ = kafkatest::Unique("s2-rp-repartition-again");
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  auto created = (*admin)->CreateTopic(topic_, kPartitions);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ProduceTransaction(data.transactions.front());
  Status b = RunToEnd("b");
  EXPECT_EQ(b.code(), StatusCode::kFailedPrecondition) << b.ToString();
  EXPECT_NE(b.message().find("is beyond the partition's end"), std::string::npos) << b.message();
  EXPECT_NE(b.message().find("deleted and recreated"), std::string::npos) << b.message();
  EXPECT_EQ(Rows(), rows);
}

// Records deleted under a running stage two (retention while it reads behind) stop it too: its
// consumer's fetch position is then out of range, which a gapless source does not skip. Here the
// run has read the first half; the second is produced in a transaction left open (invisible to
// read_committed, so it cannot be read first) and deleted with it.
TEST_F(KafkaStageTwoTest, RecordsDeletedUnderARunningReaderStopIt) {
  const StageTwoData data = StageTwoData::Make(*plan_->aggregate, 3, kPartitions, 60, 4, 5);
  const size_t half = data.transactions.size() / 2;
  for (size_t i = 0; i < half; ++i) ProduceTransaction(data.transactions[i]);
  ASSERT_NE(Start("a"), nullptr);
  const std::map<int32_t, int64_t> ends = Ends();
  ASSERT_TRUE(WaitFor([&] { return AtEnds(ends); })) << "a did not read the first half";
  Transaction rest;
  for (size_t i = half; i < data.transactions.size(); ++i) {
    for (const auto& [p, values] : data.transactions[i].values) {
      rest.values[p].insert(rest.values[p].end(), values.begin(), values.end());
      const auto& keys = data.transactions[i].keys.at(p);
      rest.keys[p].insert(rest.keys[p].end(), keys.begin(), keys.end());
    }
  }
  BeginAndProduce(producer_->get(), rest);
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  auto high = (*admin)->EndOffsets(topic_);
  ASSERT_TRUE(high.ok()) << high.status().ToString();
  std::map<int32_t, int64_t> before;
  for (const KafkaPartitionEnds& e : *high) {
    EXPECT_GT(e.high_watermark, ends.at(e.partition));
    before[e.partition] = e.high_watermark;
  }
  Status deleted = (*admin)->DeleteRecordsBefore(topic_, before);
  ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  const bool ended = WaitFor([&] { return runs_.at("a")->done.load(); }, 30);
  EXPECT_NO_TXN_ERROR("abort_transaction", rd_kafka_abort_transaction(producer_->get(), 30000));
  ASSERT_TRUE(ended) << "a read on past the deleted records";
  runs_.at("a")->thread.join();
  const Status& s = runs_.at("a")->status;
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("records were deleted before they were read"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("rp-repartition.sluice-positions"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sluice
