// The Kafka source's group membership against the broker of `make services` (127.0.0.1:9092, or
// $SLUICE_KAFKA_BROKERS): closing at awkward moments must return. Without a broker these tests
// skip loudly; with CI=true they fail.

#include "connectors/kafka/kafka_source.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "core/tests/ci_rule.h"

namespace sluice {
namespace {

std::string Brokers() {
  const char* b = std::getenv("SLUICE_KAFKA_BROKERS");
  return b && *b ? b : "127.0.0.1:9092";
}

/// Publishes `n` records to `topic` (created by the broker on first use); false without a broker.
bool Publish(const std::string& topic, int n) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("log_level", "0", err);
  conf->set("message.timeout.ms", "10000", err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  if (!p) return false;
  for (int i = 0; i < n; ++i) {
    std::string v = "{\"i\":" + std::to_string(i) + "}";
    p->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, v.data(), v.size(),
               nullptr, 0, 0, nullptr);
  }
  return p->flush(15000) == RdKafka::ERR_NO_ERROR;
}

#define REQUIRE_TOPIC(topic, n)                                                                \
  do {                                                                                         \
    if (!Publish(topic, n)) {                                                                  \
      SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");       \
    }                                                                                          \
  } while (0)

std::string UniqueName(const std::string& what) {
  std::random_device rd;
  return "ksource-gtest-" + what + "-" + std::to_string(rd() % 100000000);
}

struct Member {
  std::unique_ptr<KafkaSource> source;
  int revokes = 0;
};

/// Runs `close` on its own thread; true when it returned within `limit`. A close that blocks is
/// left behind (its member leaked), so the test fails instead of hanging.
bool ReturnsWithin(std::function<void()> close, std::chrono::seconds limit) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  std::thread([close = std::move(close), done] {
    close();
    done->set_value();
  }).detach();
  return f.wait_for(limit) == std::future_status::ready;
}

std::unique_ptr<Member> Join(const std::string& topic, const std::string& group) {
  auto m = std::make_unique<Member>();
  KafkaSource::Settings s;
  s.brokers = Brokers();
  s.topic = topic;
  s.group = group;
  s.client_id = group + "-member";
  m->source = std::make_unique<KafkaSource>(s, DecoderOptions{});
  SourceContext ctx;
  ctx.committed_position = [](int32_t) { return std::optional<int64_t>(); };
  Member* raw = m.get();
  ctx.checkpoint_before_revoke = [raw](const std::vector<int32_t>&) {
    ++raw->revokes;
    return Status::OK();
  };
  EXPECT_TRUE(m->source->Open(ctx).ok());
  return m;
}

/// Close() must return even when the group has handed out an assignment the member has not
/// served yet (a stop that arrives while a rebalance completes, or while the worker is busy
/// and not polling).
TEST(KafkaSource, CloseWithAnAssignmentNotServedYetReturns) {
  const std::string topic = UniqueName("close");
  REQUIRE_TOPIC(topic, 10);
  auto m = Join(topic, UniqueName("group"));
  // No Poll(): the group's assignment arrives and waits in the consumer's queue.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  Member* raw = m.release();
  ASSERT_TRUE(ReturnsWithin([raw] { raw->source->Close(); delete raw; }, std::chrono::seconds(30)))
      << "KafkaSource::Close() blocked for 30 s";
}

/// The same while the member holds partitions it has read, and another member joins (a
/// rebalance is under way when the stop comes).
TEST(KafkaSource, CloseDuringARebalanceReturns) {
  const std::string topic = UniqueName("rebalance");
  REQUIRE_TOPIC(topic, 10);
  const std::string group = UniqueName("group");
  auto a = Join(topic, group);
  RawBatch batch;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (a->source->Partitions().empty() && std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(a->source->Poll(&batch, 100, std::chrono::milliseconds(100)).ok());
  }
  ASSERT_FALSE(a->source->Partitions().empty()) << "no assignment within 15 s";
  auto b = Join(topic, group);
  for (int i = 0; i < 5; ++i) (void)b->source->Poll(&batch, 100, std::chrono::milliseconds(100));
  Member* ra = a.release();
  Member* rb = b.release();
  ASSERT_TRUE(ReturnsWithin(
      [ra, rb] {
        ra->source->Close();
        rb->source->Close();
        delete ra;
        delete rb;
      },
      std::chrono::seconds(60)))
      << "KafkaSource::Close() blocked for 60 s";
}


/// A member reads every record of the topic from the beginning (no committed position): each
/// payload once, each record's next offset one past its own, and a position to commit per
/// partition one past its last record.
TEST(KafkaSource, ReadsEveryRecordFromTheBeginning) {
  const std::string topic = UniqueName("read");
  REQUIRE_TOPIC(topic, 3);
  auto m = Join(topic, UniqueName("read-group"));
  EXPECT_EQ(m->source->kind(), "kafka");
  std::multiset<std::string> payloads;
  std::map<int32_t, int64_t> next;  // partition -> next offset after its last record
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (payloads.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    RawBatch batch;
    auto state = m->source->Poll(&batch, 100, std::chrono::milliseconds(200));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    for (size_t i = 0; i < batch.size(); ++i) {
      const RawRecord& r = batch.record(i);
      payloads.emplace(batch.payload(i));
      EXPECT_EQ(r.next_offset, r.offset + 1);
      EXPECT_GE(r.timestamp_micros, 0);  // the broker's time of the record
      next[r.partition] = r.next_offset;
    }
  }
  EXPECT_EQ(payloads, (std::multiset<std::string>{R"({"i":0})", R"({"i":1})", R"({"i":2})"}));
  int64_t total = 0;
  for (const auto& [partition, offset] : next) total += offset;  // offsets start at 0
  EXPECT_EQ(total, 3);
  m->source->Close();
}

}  // namespace
}  // namespace sluice
