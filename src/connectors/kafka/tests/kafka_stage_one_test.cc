// Stage one of a repartitioned pipeline (docs/notes-16/repartition.md) against the broker of
// `make services`: runners of an append-mode pipeline over the fake group source (producers did
// not key the records by the group key: every key is in both partitions), each with stage one's
// Kafka sink (MakeStageOneSink: its own derived transactional id, the repartition topic with R
// partitions). The repartition topic read back read_committed and decoded, its partials merged by
// (window, key), equals a brute-force aggregation of the raw records computed here; the late
// records are its 'D' records, each once; each upstream's controls never go back in any
// partition. Partitions move between runners and a runner is cut off (a zombie) meanwhile.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_uri.h"
#include "connectors/kafka/tests/kafka_test_broker.h"
#include "core/time.h"
#include "runtime/plan.h"
#include "runtime/registry.h"
#include "runtime/repartition_output.h"
#include "runtime/repartition_record.h"
#include "runtime/runner.h"
#include "runtime/tests/group_runner_test_util.h"

namespace sluice {
namespace {

using group_test::Rec;
using group_test::WaitFor;

constexpr int32_t kR = 3;  // the repartition topic's partitions

/// Generated records of two partitions whose keys are in both (the producers did not key them
/// by the group key), event times advancing 5 s a record, mostly a little out of order, some
/// far behind; and what stage one must make of them, by the rule: a record is late when its
/// 1-minute window's end is at or before its own partition's watermark (the highest event time
/// of that partition's earlier records that were not late, minus 10 s).
struct RawData {
  struct Record {
    std::string key;
    int64_t seconds = 0;
    int v = 0;
  };
  std::map<int32_t, std::vector<Record>> records;
  std::map<std::string, std::pair<int64_t, int64_t>> expected;  ///< "HH:MM:SS|k" -> (n, s)
  std::vector<std::string> expected_late;                       ///< "partition|offset", sorted

  static std::string Clock(int64_t seconds) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d", static_cast<int>(seconds / 3600),
                  static_cast<int>(seconds / 60 % 60), static_cast<int>(seconds % 60));
    return buf;
  }
  size_t Begin(int32_t p, int part) const { return records.at(p).size() * static_cast<size_t>(part) / 4; }
  int64_t EndOf(int32_t p, int part) const { return static_cast<int64_t>(Begin(p, part + 1)); }
  std::vector<std::string> Part(int32_t p, int part) const {
    std::vector<std::string> out;
    for (size_t i = Begin(p, part); i < Begin(p, part + 1); ++i) {
      const Record& r = records.at(p)[i];
      out.push_back(Rec(r.key, Clock(r.seconds), 1, r.v));
    }
    return out;
  }

  static RawData Make(int per_partition, uint32_t seed) {
    RawData d;
    const std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
    auto next = [&seed] {
      seed = seed * 1103515245u + 12345u;
      return (seed >> 16) & 0x7fffu;
    };
    for (int32_t p : {0, 1}) {
      for (int i = 0; i < per_partition; ++i) {
        const int64_t base = 120 + 5LL * i + 7 * p;
        const uint32_t r = next() % 100;
        int64_t back = next() % 20;
        if (r >= 85) back = 30 + next() % 25;
        if (r >= 95) back = 100 + next() % 60;
        d.records[p].push_back({keys[next() % keys.size()], std::max<int64_t>(0, base - back),
                                static_cast<int>(next() % 1000)});
      }
    }
    // The brute force: every record that is not late counts in its (window, key).
    for (const auto& [p, list] : d.records) {
      int64_t max_seen = -1;
      for (size_t o = 0; o < list.size(); ++o) {
        const int64_t start = list[o].seconds / 60 * 60;
        if (max_seen >= 0 && start + 60 <= max_seen - 10) {
          d.expected_late.push_back(std::to_string(p) + "|" + std::to_string(o));
          continue;
        }
        max_seen = std::max(max_seen, list[o].seconds);
        auto& g = d.expected[Clock(start) + "|" + list[o].key];
        ++g.first;
        g.second += list[o].v;
      }
    }
    std::sort(d.expected_late.begin(), d.expected_late.end());
    return d;
  }
};

/// One committed record of the repartition topic.
struct TopicRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key, value;
};

class KafkaStageOneTest : public ::testing::Test, protected group_test::GroupRuns {
 protected:
  void SetUp() override {
    if (!kafkatest::BrokerUp()) return;
    RegisterBuiltins();
    group_test::RegisterGroupSource("group");
    SetUpGroup("sluice_kafka_stage_one");
    topic_ = kafkatest::Unique("s1-rp") + "-repartition";
    scheme_ = "group";
    sink_uri_ = "kafka://" + kafkatest::Brokers() + "/" + topic_;
  }
  void TearDown() override { TearDownGroup(); }
  std::vector<std::string> Q(const std::string&) override { return {}; }

  /// The pipeline over `source_uri` (default: member `member` of the group source).
  PipelineConfig Config(const std::string& member, const std::string& source_uri = "",
                        const std::string& source_options = "") {
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "[pipeline]\nname = \"rp\"\ncheckpoint_interval = \"5ms\"\n"
        "[source]\nname = \"in\"\nuri = \"" + (source_uri.empty() ? scheme_ + ":" + member : source_uri) + "\"\n" +
        source_options +
        "[source.fields]\nk = \"string\"\nt = \"string\"\njob = \"int64\"\nv = \"int64\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(t)\"\n"
        "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nwatermark_delay = \"10s\"\nmode = \"append\"\n"
        "allowed_lateness = \"0s\"\nidle_timeout = \"1h\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\", \"s = sum(v)\"]\n"
        "[sink]\nuri = \"" + sink_uri_ + "\"\n";
    auto cfg = ParsePipelineConfig(text, "rp.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    return std::move(cfg).value();
  }

  /// Stage one's sink on topic_ with kR partitions (or `partitions`).
  StageOneSinkOptions SinkOptions(int32_t partitions = kR) const {
    StageOneSinkOptions o;
    o.brokers = kafkatest::Brokers();
    o.pipeline = "rp";
    o.partitions = partitions;
    o.topic = topic_;
    o.timeout_ms = 15'000;
    return o;
  }

  /// Starts member `member` as stage one on a thread (a process of its own).
  Runner* StartStageOne(const std::string& member) {
    RunOptions options;
    options.stage_one = true;
    const StageOneSinkOptions sink = SinkOptions();
    options.sink_override = [sink] { return MakeStageOneSink(sink); };
    auto runner = Runner::Make(Config(member), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    if (!runner.ok()) return nullptr;
    GroupRuns::Run& run = runs_[member];
    if (run.thread.joinable()) run.thread.join();
    run.runner = std::move(runner).value();
    run.done = false;
    EXPECT_TRUE(run.runner->stage_one());
    GroupRuns::Run* r = &run;
    run.thread = std::thread([r] {
      r->status = r->runner->Run();
      r->done = true;
    });
    return run.runner.get();
  }

  /// Creates the 2-partition topic `raw` and produces data's records to it, in order.
  static void ProduceRaw(const std::string& raw, const RawData& data) {
    {
      auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
      ASSERT_TRUE(admin.ok()) << admin.status().ToString();
      auto created = (*admin)->CreateTopic(raw, 2);
      ASSERT_TRUE(created.ok()) << created.status().ToString();
    }
    std::string error;
    kafkatest::Handle producer = kafkatest::NewHandle(RD_KAFKA_PRODUCER, {}, &error);
    ASSERT_TRUE(producer) << error;
    for (int32_t p : {0, 1}) {
      for (int part = 0; part < 4; ++part) {
        for (const std::string& v : data.Part(p, part)) {
          ASSERT_EQ(rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC(raw.c_str()), RD_KAFKA_V_PARTITION(p),
                                      RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                    RD_KAFKA_RESP_ERR_NO_ERROR);
        }
      }
    }
    ASSERT_EQ(rd_kafka_flush(producer.get(), 15000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  /// The committed positions of source "in", as `sluice status` reads them.
  std::vector<std::string> PositionOf(int32_t p) override {
    SinkConfig c;
    c.uri = sink_uri_;
    auto sink = KafkaSink::Make(c);
    if (!sink.ok()) return {};
    SinkContext ctx;
    ctx.pipeline = "rp";
    ctx.source = "in";
    if (!(*sink)->OpenForReading(ctx).ok()) return {};
    auto positions = (*sink)->LoadPositions();
    (*sink)->Close();
    if (!positions.ok()) return {};
    for (const auto& s : *positions) {
      if (s.source == "in" && s.partition == p) return {std::to_string(s.offset)};
    }
    return {};
  }

  /// Every committed record of the repartition topic, by partition then offset.
  std::vector<TopicRecord> ReadTopic() {
    std::string error;
    kafkatest::Handle c = kafkatest::NewHandle(RD_KAFKA_CONSUMER,
                                               {{"group.id", kafkatest::Unique("s1_reader")},
                                                {"isolation.level", "read_committed"},
                                                {"enable.auto.commit", "false"},
                                                {"enable.partition.eof", "true"},
                                                {"fetch.wait.max.ms", "20"}},
                                               &error);
    std::vector<TopicRecord> out;
    EXPECT_TRUE(c) << error;
    if (!c) return out;
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(kR);
    int reading = 0;
    for (int p = 0; p < kR; ++p) {
      int64_t low = 0, high = 0;
      EXPECT_EQ(rd_kafka_query_watermark_offsets(c.get(), topic_.c_str(), p, &low, &high, 10000),
                RD_KAFKA_RESP_ERR_NO_ERROR);
      if (high <= low) continue;
      rd_kafka_topic_partition_list_add(parts, topic_.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      ++reading;
    }
    rd_kafka_assign(c.get(), parts);
    rd_kafka_topic_partition_list_destroy(parts);
    int eof = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (eof < reading && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 200);
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        ++eof;
      } else if (m->err) {
        ADD_FAILURE() << "reading " << topic_ << ": " << rd_kafka_message_errstr(m);
      } else {
        TopicRecord r;
        r.partition = m->partition;
        r.offset = m->offset;
        if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
        r.value.assign(static_cast<const char*>(m->payload), m->len);
        out.push_back(std::move(r));
      }
      rd_kafka_message_destroy(m);
    }
    EXPECT_EQ(eof, reading) << "reading " << topic_ << " to its end timed out";
    rd_kafka_consumer_close(c.get());
    std::stable_sort(out.begin(), out.end(), [](const TopicRecord& a, const TopicRecord& b) {
      return std::pair(a.partition, a.offset) < std::pair(b.partition, b.offset);
    });
    return out;
  }

  /// Checks the repartition topic against `data`: partials merged per (window, key), late dead
  /// letters, controls.
  void ExpectTopicHolds(const RawData& data, const AggregateSpec& spec,
                        std::map<std::pair<int32_t, UpstreamId>, RepartitionControl>* last_controls = nullptr) {
    std::map<std::string, std::pair<int64_t, int64_t>> merged;
    std::map<std::string, int> late;
    int64_t partials = 0, controls = 0, other_letters = 0;
    std::map<std::pair<int32_t, UpstreamId>, int64_t> last_watermark;  // (r, upstream) -> watermark
    for (const TopicRecord& r : ReadTopic()) {
      auto record = DecodeRepartitionValue(r.value, spec);
      ASSERT_TRUE(record.ok()) << record.status().ToString();
      switch (record->kind) {
        case RepartitionRecord::Kind::kPartial: {
          ++partials;
          EXPECT_EQ(r.key, EncodeRepartitionKey(record->partial.keys));
          EXPECT_EQ(r.partition, RepartitionPartitionOf(r.key, kR));
          const std::vector<Value> row = FinalRow(spec, record->partial);  // start, end, k, n, s
          auto& g = merged[FormatTimestamp(record->partial.window_start, "%H:%M:%S") + "|" + row[2].ToString()];
          g.first += row[3].int_value();
          g.second += row[4].int_value();
          break;
        }
        case RepartitionRecord::Kind::kControl: {
          ++controls;
          const RepartitionControl& c = record->control;
          EXPECT_TRUE(c.upstream == (UpstreamId{0, 0}) || c.upstream == (UpstreamId{0, 1}));
          if (last_controls) (*last_controls)[{r.partition, c.upstream}] = c;
          auto [it, fresh] = last_watermark.try_emplace({r.partition, c.upstream}, c.watermark);
          if (!fresh) {
            EXPECT_GE(c.watermark, it->second) << "a control of upstream " << c.upstream.partition
                                               << " went back in partition " << r.partition << " at " << r.offset;
            it->second = c.watermark;
          }
          break;
        }
        case RepartitionRecord::Kind::kDeadLetter:
          if (record->dead_letter.reason == "late") {
            ++late[std::to_string(record->dead_letter.partition) + "|" +
                   std::to_string(record->dead_letter.offset)];
          } else {
            ++other_letters;
          }
          break;
      }
    }
    EXPECT_GT(partials, 0);
    EXPECT_GT(controls, 0);
    EXPECT_EQ(other_letters, 0);
    // Every upstream's controls reached every partition.
    EXPECT_EQ(last_watermark.size(), static_cast<size_t>(2 * kR));
    EXPECT_EQ(merged, data.expected);
    std::vector<std::string> late_list;
    for (const auto& [key, times] : late) {
      late_list.push_back(key);
      EXPECT_EQ(times, 1) << key << " dead-lettered " << times << " times";
    }
    EXPECT_EQ(late_list, data.expected_late);
  }

  std::string topic_;
};

TEST_F(KafkaStageOneTest, PartialsMergedEqualTheRawRecordsAcrossMovesAndACutOffProcess) {
  SLUICE_REQUIRE_KAFKA();
  const RawData data = RawData::Make(160, 16);
  ASSERT_GT(data.expected_late.size(), 8u);  // the data has late records to count
  auto produce = [&](int part) {
    for (int32_t p : {0, 1}) Produce(p, data.Part(p, part));
  };
  auto reached = [&](int part) { return WaitPosition(0, data.EndOf(0, part)) && WaitPosition(1, data.EndOf(1, part)); };
  ASSERT_NE(StartStageOne("a"), nullptr);
  ASSERT_NE(StartStageOne("b"), nullptr);
  Command("a", 'a', 0);
  Command("a", 'a', 1);
  produce(0);
  ASSERT_TRUE(reached(0));
  // Partition 1 moves to b.
  Command("a", 'r', 1);
  Command("b", 'a', 1);
  produce(1);
  ASSERT_TRUE(reached(1));
  // a stalls after its last commit and the group gives partition 0 to b, which claims it from
  // what a committed. a then reads part 2 of partition 0 as well: its commit is refused (its
  // transaction aborted, invisible to read_committed readers) and its run ends.
  Command("a", 'b', 3000);
  Command("b", 'a', 0);
  produce(2);
  EXPECT_TRUE(WaitFor([&] { return runs_.at("a").done.load(); })) << "the cut-off process was not fenced";
  if (!runs_.at("a").done.load()) {
    // Not fenced: it reads on as a zombie; what it wrote shows in the topic's check below.
    (void)Stop("a");
  } else {
    runs_.at("a").thread.join();
  }
  EXPECT_EQ(runs_.at("a").status.code(), StatusCode::kFenced) << runs_.at("a").status.ToString();
  runs_.at("a").runner.reset();  // gone, as after kill -9
  ASSERT_TRUE(reached(2));
  // A new process takes partition 1 over from b.
  ASSERT_NE(StartStageOne("a2"), nullptr);
  Command("b", 'r', 1);
  Command("a2", 'a', 1);
  produce(3);
  ASSERT_TRUE(reached(3));
  ASSERT_TRUE(Stop("a2").ok());
  ASSERT_TRUE(Stop("b").ok());
  ExpectTopicHolds(data, *runs_.at("b").runner->plan().aggregate);
}

// An existing repartition topic with the broker's default retention (7 days) is warned about
// with the settings that keep every record until stage two purges it; one without is not.
TEST(RepartitionTopicSettingsTest, AFiniteRetentionNeedsBothSettingsAtMinusOne) {
  EXPECT_EQ(RepartitionRetentionFixes({{"retention.ms", "604800000"}, {"retention.bytes", "-1"}}),
            (std::vector<std::string>{"retention.ms=-1"}));
  EXPECT_EQ(RepartitionRetentionFixes({{"retention.ms", "-1"}, {"retention.bytes", "1073741824"}}),
            (std::vector<std::string>{"retention.bytes=-1"}));
  EXPECT_EQ(RepartitionRetentionFixes({}), (std::vector<std::string>{"retention.ms=-1", "retention.bytes=-1"}));
  EXPECT_TRUE(RepartitionRetentionFixes({{"retention.ms", "-1"}, {"retention.bytes", "-1"}}).empty());
  // What the topic is created with passes its own check.
  EXPECT_TRUE(RepartitionRetentionFixes(RepartitionTopicSettings()).empty());
  EXPECT_EQ(RepartitionTopicSettings().at("cleanup.policy"), "delete");
}

// The topic is created with R partitions; a run that repartitions into another count is
// refused at start, saying what to do.
TEST_F(KafkaStageOneTest, AnExistingTopicWithAnotherPartitionCountIsRefused) {
  SLUICE_REQUIRE_KAFKA();
  auto sink = MakeStageOneSink(SinkOptions(kR));
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  auto plan = BuildPlan(Config("x"));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  SinkContext ctx;
  ctx.pipeline = "rp";
  ctx.source = "in";
  ctx.tasks = true;
  ctx.aggregate = (*plan)->aggregate.get();
  ASSERT_TRUE((*sink)->Open(ctx).ok());
  (*sink)->Close();
  EXPECT_EQ(KafkaPartitionCount(kafkatest::Brokers(), topic_), kR);
  // Created for records up to the producer's 16 MiB (a dead letter carries its whole record),
  // not the broker's default of 1 MB, which would refuse a large dead letter at every retry.
  {
    auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    auto config = (*admin)->TopicConfig(topic_);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EXPECT_EQ((*config)["max.message.bytes"], std::to_string(16 << 20));
    EXPECT_EQ((*config)["cleanup.policy"], "delete");
    // Kept until stage two purges it: no record is deleted unread.
    EXPECT_EQ((*config)["retention.ms"], "-1");
    EXPECT_EQ((*config)["retention.bytes"], "-1");
    EXPECT_TRUE(RepartitionRetentionFixes(*config).empty());
  }
  auto other = MakeStageOneSink(SinkOptions(kR + 2));
  ASSERT_TRUE(other.ok());
  const Status s = (*other)->Open(ctx);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("has 3 partitions"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("repartition_partitions = 3"), std::string::npos) << s.message();
  (*other)->Close();
}

// Stage one over a real 2-partition topic of raw records with the Kafka source and
// --until-caught-up: the run ends at the end offsets, the repartition topic holds the brute
// force of the records, and each upstream's last control in every partition carries `end`.
TEST_F(KafkaStageOneTest, AnUntilCaughtUpRunOfARealTopicEndsWithEndControls) {
  SLUICE_REQUIRE_KAFKA();
  const std::string raw = kafkatest::Unique("s1-raw");
  const RawData data = RawData::Make(60, 7);
  ASSERT_NO_FATAL_FAILURE(ProduceRaw(raw, data));
  RunOptions options;
  options.stage_one = true;
  options.until_caught_up = true;
  options.workers = 2;
  const StageOneSinkOptions sink = SinkOptions();
  options.sink_override = [sink] { return MakeStageOneSink(sink); };
  auto runner = Runner::Make(Config("", "kafka://" + kafkatest::Brokers() + "/" + raw,
                                    "group = \"" + kafkatest::Unique("s1-group") + "\"\n"),
                             options);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  const Status run = (*runner)->Run();
  ASSERT_TRUE(run.ok()) << run.ToString();
  std::map<std::pair<int32_t, UpstreamId>, RepartitionControl> last;
  ExpectTopicHolds(data, *(*runner)->plan().aggregate, &last);
  ASSERT_EQ(last.size(), static_cast<size_t>(2 * kR));
  for (const auto& [where, control] : last) {
    EXPECT_TRUE(control.end) << "upstream " << where.second.partition << " in partition " << where.first;
    EXPECT_FALSE(control.idle);
  }
}

// A stage-one process that stops in the middle of a commit (kill -9: nothing aborts its
// transaction, its transactional id being its own) holds the last stable offset of every
// repartition partition until the coordinator aborts the transaction at its timeout: stage two
// of every process reads nothing new meanwhile. Stage one's short transaction.timeout.ms
// (kStageOneTransactionTimeoutMs, 10 s; plus the broker's abort scan, every 10 s) bounds that
// stall; with Kafka's 60 s it lasted 60-70 s. Here the commit is held open by the test hook (the
// producer stays alive but silent, as a killed one is) and the test watches the offsets.
TEST_F(KafkaStageOneTest, ACommitLeftOpenHoldsTheRepartitionTopicForTheShortTimeoutOnly) {
  SLUICE_REQUIRE_KAFKA();
  EXPECT_EQ(kStageOneTransactionTimeoutMs, 10'000);
  const std::string raw = kafkatest::Unique("s1-open");
  ASSERT_NO_FATAL_FAILURE(ProduceRaw(raw, RawData::Make(40, 11)));
  struct Hold {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, released = false;
  };
  auto hold = std::make_shared<Hold>();
  RunOptions options;
  options.stage_one = true;
  const StageOneSinkOptions sink = SinkOptions();
  options.sink_override = [sink, hold]() -> Result<std::unique_ptr<Sink>> {
    auto made = MakeStageOneSink(sink);
    if (!made.ok()) return made;
    static_cast<KafkaSink*>(made->get())->SetTestHook([hold](std::string_view stage) {
      if (stage != "before_commit") return Status::OK();
      std::unique_lock<std::mutex> lock(hold->mu);
      if (hold->entered) return Status::OK();
      hold->entered = true;
      hold->cv.notify_all();
      hold->cv.wait_for(lock, std::chrono::seconds(90), [&] { return hold->released; });
      return Status::Unavailable("test: a commit held open, then given up");
    });
    return made;
  };
  auto runner = Runner::Make(Config("", "kafka://" + kafkatest::Brokers() + "/" + raw,
                                    "group = \"" + kafkatest::Unique("s1-open-group") + "\"\n"),
                             options);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  std::thread thread([&] { (void)(*runner)->Run(); });
  auto release = [&] {
    {
      std::lock_guard<std::mutex> lock(hold->mu);
      hold->released = true;
    }
    hold->cv.notify_all();
    (*runner)->RequestStop();
    thread.join();
  };
  {
    std::unique_lock<std::mutex> lock(hold->mu);
    hold->cv.wait_for(lock, std::chrono::seconds(60), [&] { return hold->entered; });
    if (!hold->entered) {
      lock.unlock();
      release();
      FAIL() << "no commit reached before_commit within 60 s";
    }
  }
  const auto entered = std::chrono::steady_clock::now();
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  // Held: some partition's last stable offset stays before its high watermark, then every one
  // reaches it (the transaction aborted), within the timeout, the abort scan and some slack.
  bool held = false, free = false;
  double seconds = 0;
  while (!free) {
    auto ends = (*admin)->EndOffsets(topic_);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - entered).count();
    if (ends.ok() && ends->size() == static_cast<size_t>(kR)) {
      bool all = true;
      for (const KafkaPartitionEnds& e : *ends) all = all && e.last_stable == e.high_watermark;
      held = held || !all;
      free = all && held;
    }
    if (seconds > 45) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  release();
  std::cout << "[ stall   ] the open transaction held " << topic_ << " for " << seconds << " s\n";
  EXPECT_TRUE(held) << "the open commit never held the repartition topic's last stable offsets";
  EXPECT_TRUE(free) << "the repartition topic was still held " << seconds << " s after the commit stopped";
  EXPECT_LT(seconds, 30.0);
}

}  // namespace
}  // namespace sluice
