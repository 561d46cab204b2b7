// Handing partitions over between two members of one group, against the broker of `make services`
// (127.0.0.1:9092, or $SLUICE_KAFKA_BROKERS): a member that gives a partition up checkpoints
// first, whichever way it gives it up. Without a broker these tests skip loudly; with CI=true
// they fail.

#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/kafka_source.h"
#include "core/tests/ci_rule.h"

namespace sluice {
namespace {

std::string Brokers() {
  const char* b = std::getenv("SLUICE_KAFKA_BROKERS");
  return b && *b ? b : "127.0.0.1:9092";
}

std::string UniqueName(const std::string& what) {
  std::random_device rd;
  return "dupdl-gtest-" + what + "-" + std::to_string(rd() % 100000000);
}

/// Creates `topic` with four partitions, so the tests depend neither on the broker creating topics
/// when asked nor on its num.partitions.
bool MakeTopic(const std::string& topic) {
  auto admin = KafkaAdmin::Make(Brokers(), 10000);
  if (!admin.ok()) return false;
  auto created = (*admin)->CreateTopic(topic, 4);
  return created.ok();
}

bool Publish(const std::string& topic, int n, int32_t partition) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("log_level", "0", err);
  conf->set("message.timeout.ms", "10000", err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  if (!p) return false;
  for (int i = 0; i < n; ++i) {
    std::string v = "{\"i\":" + std::to_string(i) + "}";
    p->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY, v.data(), v.size(), nullptr, 0, 0, nullptr);
  }
  return p->flush(15000) == RdKafka::ERR_NO_ERROR;
}

/// One member with a sink of its own (shared by the test's members: one process).
struct Member {
  std::unique_ptr<KafkaSource> source;
  std::mutex mu;
  std::vector<std::vector<int32_t>> revokes;  // each checkpoint before a revoke: what it gave up
};

std::unique_ptr<Member> Join(const std::string& topic, const std::string& group, const std::string& name,
                             bool until_caught_up) {
  auto m = std::make_unique<Member>();
  KafkaSource::Settings s;
  s.brokers = Brokers();
  s.topics = {topic};
  s.group = group;
  s.client_id = name;
  m->source = std::make_unique<KafkaSource>(s, DecoderOptions{});
  SourceContext ctx;
  ctx.until_caught_up = until_caught_up;
  ctx.committed_position = [](int32_t) { return std::optional<int64_t>(); };
  ctx.committed_positions = [] { return std::map<int32_t, int64_t>(); };
  Member* raw = m.get();
  ctx.checkpoint_before_revoke = [raw](const std::vector<int32_t>& revoked) {
    std::lock_guard<std::mutex> lock(raw->mu);
    raw->revokes.push_back(revoked);
    return Status::OK();
  };
  EXPECT_TRUE(m->source->Open(ctx).ok());
  return m;
}

/// The worker's end of a run: the member stops polling (the batch is done), a rebalance comes
/// meanwhile (another member joins), and then it closes. Close() must still checkpoint before
/// the partitions go: else the next owner reads them from the sink's older position.
TEST(KafkaHandover, CloseWithARevokePendingCheckpointsFirst) {
  const std::string topic = UniqueName("close-pending");
  if (!MakeTopic(topic) || !Publish(topic, 5, 0)) SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  const std::string group = UniqueName("group");
  auto a = Join(topic, group, "a-" + group, false);
  RawBatch batch;
  size_t read = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (read < 5 && std::chrono::steady_clock::now() < until) {
    batch.Clear();
    auto state = a->source->Poll(&batch, 100, std::chrono::milliseconds(100));
    if (!state.ok()) continue;  // the new topic's metadata, still on its way
    read += batch.size();
  }
  ASSERT_EQ(read, 5u) << "partition 0 not read within 20 s";
  auto b = Join(topic, group, "b-" + group, false);
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    RawBatch bb;
    while (!stop.load()) {
      bb.Clear();
      (void)b->source->Poll(&bb, 100, std::chrono::milliseconds(100));
    }
  });
  // a does not poll: the rebalance's revocation waits in its queue.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  a->source->Close();
  stop.store(true);
  poller.join();
  b->source->Close();
  std::lock_guard<std::mutex> lock(a->mu);
  size_t gave_up = 0;
  for (const auto& r : a->revokes) gave_up += r.size();
  EXPECT_GT(gave_up, 0u) << "a gave its partitions up without a checkpoint (" << a->revokes.size()
                         << " revocation callbacks)";
}

/// The same end of a run, with the time the checkpoint takes: the partitions must not reach the
/// next member before the checkpoint is done. librdkafka's close() with a revocation already
/// pending leaves the group first and serves the revocation afterwards; the next member then
/// gets the partitions (and reads them from the sink's older positions) while this member's
/// checkpoint is still being written: every record counted twice.
TEST(KafkaHandover, CloseWithARevokePendingHandsOverOnlyAfterTheCheckpoint) {
  const std::string topic = UniqueName("close-slow");
  if (!MakeTopic(topic) || !Publish(topic, 5, 0)) SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  const std::string group = UniqueName("group");
  using Clock = std::chrono::steady_clock;
  std::mutex mu;
  std::optional<Clock::time_point> checkpoint_done, b_assigned;
  auto a = std::make_unique<Member>();
  {
    KafkaSource::Settings s;
    s.brokers = Brokers();
    s.topics = {topic};
    s.group = group;
    s.client_id = "a-" + group;
    a->source = std::make_unique<KafkaSource>(s, DecoderOptions{});
    SourceContext ctx;
    ctx.committed_position = [](int32_t) { return std::optional<int64_t>(); };
    ctx.committed_positions = [] { return std::map<int32_t, int64_t>(); };
    ctx.checkpoint_before_revoke = [&](const std::vector<int32_t>&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the sink's commit
      std::lock_guard<std::mutex> lock(mu);
      checkpoint_done = Clock::now();
      return Status::OK();
    };
    ASSERT_TRUE(a->source->Open(ctx).ok());
  }
  RawBatch batch;
  size_t read = 0;
  const auto until = Clock::now() + std::chrono::seconds(20);
  while (read < 5 && Clock::now() < until) {
    batch.Clear();
    auto state = a->source->Poll(&batch, 100, std::chrono::milliseconds(100));
    if (!state.ok()) continue;  // the new topic's metadata, still on its way
    read += batch.size();
  }
  ASSERT_EQ(read, 5u) << "partition 0 not read within 20 s";
  KafkaSource::Settings s;
  s.brokers = Brokers();
  s.topics = {topic};
  s.group = group;
  s.client_id = "b-" + group;
  KafkaSource b(s, DecoderOptions{});
  SourceContext ctx;
  ctx.committed_position = [&](int32_t) {  // asked on assignment
    std::lock_guard<std::mutex> lock(mu);
    if (!b_assigned) b_assigned = Clock::now();
    return std::optional<int64_t>();
  };
  ctx.committed_positions = [] { return std::map<int32_t, int64_t>(); };
  ctx.checkpoint_before_revoke = [](const std::vector<int32_t>&) { return Status::OK(); };
  ASSERT_TRUE(b.Open(ctx).ok());
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    RawBatch bb;
    while (!stop.load()) {
      bb.Clear();
      (void)b.Poll(&bb, 100, std::chrono::milliseconds(100));
    }
  });
  // a does not poll: the rebalance's revocation waits in its queue.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  a->source->Close();
  const auto closed = Clock::now();
  // b gets the partitions once a has left.
  while (Clock::now() < closed + std::chrono::seconds(15)) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (b_assigned) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop.store(true);
  poller.join();
  b.Close();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_TRUE(checkpoint_done.has_value()) << "a gave its partitions up without a checkpoint";
  ASSERT_TRUE(b_assigned.has_value()) << "b got no partition within 15 s of a's close";
  EXPECT_GE(*b_assigned, *checkpoint_done)
      << "b was assigned a's partitions "
      << std::chrono::duration_cast<std::chrono::milliseconds>(*checkpoint_done - *b_assigned).count()
      << " ms before a's checkpoint was done";
}


/// --until-caught-up: a member that read a partition but committed nothing of it (its records
/// were dropped by a revocation in the middle of a Poll) and gets it back reads it again from its
/// beginning, so it must not count it as read to its end. Else it reports itself caught up
/// without reading the partition, and the last of such members ends the run with it unread.
TEST(KafkaHandover, PartitionAssignedAgainWithoutPositionIsNotCaughtUp) {
  const std::string topic = UniqueName("again");
  // Partition 0 for the member under test, partition 2 for the other one (range assignor, the
  // members' ids in this order); 1 and 3 stay empty.
  if (!MakeTopic(topic) || !Publish(topic, 3, 0) || !Publish(topic, 3, 2)) {
    SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  }
  const std::string group = UniqueName("group");
  // The sink both members of this process share: nothing committed yet.
  std::mutex sink_mu;
  std::map<int32_t, int64_t> sink;
  auto in_sink = [&](int32_t p) {
    std::lock_guard<std::mutex> lock(sink_mu);
    auto it = sink.find(p);
    return it == sink.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  auto b = Join(topic, group, "b-" + group, false);  // polls whatever it reads
  {
    // b first, alone: a joins a group that has a member, so it never holds partition 2.
    RawBatch bb;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (b->source->Partitions().empty() && std::chrono::steady_clock::now() < until) {
      bb.Clear();
      (void)b->source->Poll(&bb, 100, std::chrono::milliseconds(100));
    }
    ASSERT_FALSE(b->source->Partitions().empty()) << "no assignment within 20 s";
  }
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    RawBatch bb;
    while (!stop.load()) {
      bb.Clear();
      (void)b->source->Poll(&bb, 100, std::chrono::milliseconds(100));
    }
  });
  KafkaSource::Settings settings;
  settings.brokers = Brokers();
  settings.topics = {topic};
  settings.group = group;
  settings.client_id = "a-" + group;
  auto a = std::make_unique<KafkaSource>(settings, DecoderOptions{});
  SourceContext ctx;
  ctx.until_caught_up = true;
  ctx.committed_position = in_sink;
  ctx.committed_positions = [&] {
    std::lock_guard<std::mutex> lock(sink_mu);
    return sink;
  };
  ctx.checkpoint_before_revoke = [](const std::vector<int32_t>&) { return Status::OK(); };
  ASSERT_TRUE(a->Open(ctx).ok());
  size_t read = 0;
  RawBatch batch;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (read < 3 && std::chrono::steady_clock::now() < until) {
    batch.Clear();
    auto state = a->Poll(&batch, 100, std::chrono::milliseconds(100));
    if (!state.ok()) continue;  // the new topic's metadata, still on its way
    ASSERT_NE(*state, PollState::kEnd) << "caught up while partition 2 is not in the sink";
    for (size_t i = 0; i < batch.size(); ++i) {
      ASSERT_EQ(batch.record(i).partition, 0) << "a read another member's partition";
      ++read;
    }
  }
  ASSERT_EQ(read, 3u) << "partition 0 not read within 30 s";
  // Its end of partition events too, so none is left for the Poll below.
  for (int i = 0; i < 10; ++i) {
    batch.Clear();
    auto state = a->Poll(&batch, 100, std::chrono::milliseconds(100));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    ASSERT_NE(*state, PollState::kEnd) << "caught up while partition 2 is not in the sink";
    ASSERT_EQ(batch.size(), 0u);
  }
  // Partition 0 revoked and assigned again, nothing of it committed (the callbacks as the group
  // calls them; a consumer of no group stands in for the member's own).
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("group.id", UniqueName("standin"), err);
  conf->set("log_level", "0", err);
  std::unique_ptr<RdKafka::KafkaConsumer> standin(RdKafka::KafkaConsumer::create(conf.get(), err));
  ASSERT_TRUE(standin) << err;
  std::vector<RdKafka::TopicPartition*> parts{RdKafka::TopicPartition::create(topic, 0)};
  a->rebalance_cb(standin.get(), RdKafka::ERR__REVOKE_PARTITIONS, parts);
  a->rebalance_cb(standin.get(), RdKafka::ERR__ASSIGN_PARTITIONS, parts);
  RdKafka::TopicPartition::destroy(parts);
  // The other member's partition reaches its end in the sink: only partition 0 is left.
  {
    std::lock_guard<std::mutex> lock(sink_mu);
    sink[2] = 3;
  }
  for (const auto& r : a->ReadPositions()) {
    if (r.partition == 0) {
      EXPECT_EQ(r.position, 0) << "partition 0 is read again from its beginning";
    }
  }
  batch.Clear();
  auto state = a->Poll(&batch, 100, std::chrono::milliseconds(2500));
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_NE(*state, PollState::kEnd) << "caught up without reading partition 0 again";
  standin->close();
  a->Close();
  stop.store(true);
  poller.join();
  b->source->Close();
}

}  // namespace
}  // namespace sluice
