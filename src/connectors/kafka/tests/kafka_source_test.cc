// The Kafka source's group membership against the broker of `make services` (127.0.0.1:9092, or
// $SLUICE_KAFKA_BROKERS): closing at awkward moments must return. Without a broker these tests
// skip loudly; with CI=true they fail.

#include "connectors/kafka/kafka_source.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
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

/// Publishes `n` records to `topic` (created by the broker on first use), to `partition` or
/// wherever the producer puts them; false without a broker.
bool Publish(const std::string& topic, int n, int32_t partition = RdKafka::Topic::PARTITION_UA) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("log_level", "0", err);
  conf->set("message.timeout.ms", "10000", err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  if (!p) return false;
  for (int i = 0; i < n; ++i) {
    std::string v = "{\"i\":" + std::to_string(i) + "}";
    p->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY, v.data(), v.size(),
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
  s.topics = {topic};
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

/// Polls until `want` records arrived or 40 s passed; each record's next offset goes into
/// `committed` (a sink's positions, for the next assignment) when given. Returns the records as
/// (id, offset, payload).
struct Read {
  int32_t id;
  int64_t offset;
  std::string payload;
};
std::vector<Read> ReadUntil(KafkaSource* source, size_t want, std::map<int32_t, int64_t>* committed = nullptr) {
  std::vector<Read> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    RawBatch batch;
    auto state = source->Poll(&batch, 100, std::chrono::milliseconds(200));
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    if (!state.ok()) break;
    for (size_t i = 0; i < batch.size(); ++i) {
      out.push_back({batch.record(i).partition, batch.record(i).offset, std::string(batch.payload(i))});
      if (committed) (*committed)[batch.record(i).partition] = batch.record(i).next_offset;
    }
  }
  return out;
}

KafkaSource::Settings SettingsFor(std::vector<std::string> topics, const std::string& group) {
  KafkaSource::Settings s;
  s.brokers = Brokers();
  s.topics = std::move(topics);
  s.group = group;
  s.client_id = group + "-member";
  return s;
}

/// Two topics: the first keeps slot 0, so a position stored when the source read it alone still
/// applies (it is read from there); the second's ids carry its slot; the slots' topics are
/// committed with the positions; dead letters and monitoring get the topic's name.
TEST(KafkaSource, SeveralTopicsKeepTheFirstTopicsPositions) {
  const std::string a = UniqueName("first"), b = UniqueName("second");
  if (!Publish(a, 5, 0) || !Publish(b, 3, 0)) {
    SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  }
  auto source = std::make_unique<KafkaSource>(SettingsFor({a, b}, UniqueName("group")), DecoderOptions{});
  SourceContext ctx;
  // What the one-topic source left in the sink: partition 0 of `a` read up to offset 2.
  ctx.committed_position = [](int32_t p) { return p == 0 ? std::optional<int64_t>(2) : std::nullopt; };
  ctx.checkpoint_before_revoke = [](const std::vector<int32_t>&) { return Status::OK(); };
  ASSERT_TRUE(source->Open(ctx).ok());
  std::vector<Read> got = ReadUntil(source.get(), 6);
  const int32_t b0 = KafkaPartitionId(DefaultTopicSlot(b), 0);
  std::multiset<std::pair<int32_t, int64_t>> ids;
  for (const Read& r : got) ids.emplace(r.id, r.offset);
  EXPECT_EQ(ids, (std::multiset<std::pair<int32_t, int64_t>>{{0, 2}, {0, 3}, {0, 4}, {b0, 0}, {b0, 1}, {b0, 2}}));
  auto name = source->NamePartition(b0);
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->input, b);
  EXPECT_EQ(name->partition, 0);
  EXPECT_EQ(source->NamePartition(0)->input, a);
  std::map<int32_t, int64_t> past;
  for (const auto& [p, v] : source->PositionsPastRecords()) past[p] = v;
  EXPECT_EQ(past[kTopicSlotBase], Fingerprint64(a));
  EXPECT_EQ(past[kTopicSlotBase + DefaultTopicSlot(b)], Fingerprint64(b));
  source->Close();
}

/// A member that stops polling past max.poll.interval.ms is put out of the group (librdkafka
/// leaves on its own; the group hands its partitions out again): at its next poll the revoke comes
/// as a lost assignment, which goes to drop_lost instead of checkpoint_before_revoke (a commit for
/// partitions another member owns would be fenced). The member then rejoins, is assigned the
/// partition again (claimed again) and goes on reading from its committed position.
TEST(KafkaSource, ALostAssignmentIsDroppedNotCheckpointed) {
  const std::string topic = UniqueName("lost");
  if (!Publish(topic, 4, 0)) SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  KafkaSource::Settings settings = SettingsFor({topic}, UniqueName("lost-group"));
  settings.properties["session.timeout.ms"] = "6000";
  settings.properties["max.poll.interval.ms"] = "6000";
  auto source = std::make_unique<KafkaSource>(settings, DecoderOptions{});
  int claims = 0, revokes = 0;
  std::vector<int32_t> lost;
  SourceContext ctx;
  ctx.committed_position = [](int32_t) { return std::optional<int64_t>(); };
  // The sink's committed position: 2 (the records before were committed, those after not).
  ctx.claim_position = [&](int32_t p) {
    if (p != 0) return std::optional<int64_t>();  // the broker's default partition count: no records there
    ++claims;
    return std::optional<int64_t>(2);
  };
  ctx.checkpoint_before_revoke = [&](const std::vector<int32_t>&) {
    ++revokes;
    return Status::OK();
  };
  ctx.drop_lost = [&](const std::vector<int32_t>& partitions) -> Result<bool> {
    lost.insert(lost.end(), partitions.begin(), partitions.end());
    return true;
  };
  ASSERT_TRUE(source->Open(ctx).ok());
  std::vector<Read> first = ReadUntil(source.get(), 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].offset, 2);
  EXPECT_EQ(claims, 1);
  const std::vector<int32_t> assigned = source->Partitions();
  std::this_thread::sleep_for(std::chrono::seconds(9));  // no poll: the member is put out after 6 s
  std::vector<Read> again;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while ((claims < 2 || again.size() < 2) && std::chrono::steady_clock::now() < deadline) {
    RawBatch batch;
    auto state = source->Poll(&batch, 100, std::chrono::milliseconds(200));
    // The consumer may report the exceeded poll interval once (the worker retries such errors).
    ASSERT_TRUE(state.ok() || state.status().code() == StatusCode::kUnavailable) << state.status().ToString();
    for (size_t i = 0; i < batch.size(); ++i) {
      again.push_back({batch.record(i).partition, batch.record(i).offset, std::string(batch.payload(i))});
    }
  }
  std::sort(lost.begin(), lost.end());
  EXPECT_EQ(lost, assigned);  // the whole assignment is lost at once
  EXPECT_EQ(revokes, 0) << "a lost assignment went through checkpoint_before_revoke";
  EXPECT_EQ(claims, 2) << "the member was not assigned the partition again";
  // Read again from the committed position, after the claim.
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].offset, 2);
  EXPECT_EQ(again[1].offset, 3);
  source->Close();
}

/// A slot committed for another topic (the list reordered) stops the source at Open instead of
/// reading one topic from another's positions.
TEST(KafkaSource, SlotCommittedForAnotherTopicIsRefused) {
  const std::string a = UniqueName("x"), b = UniqueName("y");
  REQUIRE_TOPIC(a, 1);
  REQUIRE_TOPIC(b, 1);
  auto source = std::make_unique<KafkaSource>(SettingsFor({b, a}, UniqueName("group")), DecoderOptions{});
  SourceContext ctx;
  ctx.committed_position = [a](int32_t p) {
    return p == kTopicSlotBase ? std::optional<int64_t>(Fingerprint64(a)) : std::nullopt;
  };
  Status s = source->Open(ctx);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(a), std::string::npos) << s.ToString();
  source->Close();
}

/// A pattern over a sink holding a one-topic source's positions needs legacy_topic.
TEST(KafkaSource, PatternOverLegacyPositionsNeedsTheLegacyTopic) {
  const std::string a = UniqueName("legacy");
  REQUIRE_TOPIC(a, 1);
  KafkaSource::Settings s = SettingsFor({}, UniqueName("group"));
  s.pattern = "^" + a;
  SourceContext ctx;
  ctx.committed_position = [](int32_t) { return std::optional<int64_t>(); };
  ctx.committed_positions = [] { return std::map<int32_t, int64_t>{{0, 1}}; };
  auto without = std::make_unique<KafkaSource>(s, DecoderOptions{});
  Status refused = without->Open(ctx);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument) << refused.ToString();
  EXPECT_NE(refused.message().find("legacy_topic"), std::string::npos) << refused.ToString();
  without->Close();
  s.legacy_topic = a;
  auto with = std::make_unique<KafkaSource>(s, DecoderOptions{});
  EXPECT_TRUE(with->Open(ctx).ok());
  with->Close();
}

/// A pattern subscription reads a topic created while it runs, under that topic's slot.
TEST(KafkaSource, PatternReadsATopicCreatedMidRun) {
  const std::string prefix = UniqueName("pat");
  const std::string a = prefix + ".a", b = prefix + ".b";
  if (!Publish(a, 2, 0)) SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  KafkaSource::Settings s = SettingsFor({}, UniqueName("group"));
  s.pattern = "^" + prefix + "\\..*";
  s.properties["topic.metadata.refresh.interval.ms"] = "1000";
  auto source = std::make_unique<KafkaSource>(s, DecoderOptions{});
  // The sink: what was read is committed, so the rebalance that brings the new topic does not
  // make the first one be read again.
  std::map<int32_t, int64_t> committed;
  SourceContext ctx;
  ctx.committed_position = [&committed](int32_t p) {
    auto it = committed.find(p);
    return it == committed.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  ctx.checkpoint_before_revoke = [](const std::vector<int32_t>&) { return Status::OK(); };
  ASSERT_TRUE(source->Open(ctx).ok());
  std::vector<Read> first = ReadUntil(source.get(), 2, &committed);
  ASSERT_EQ(first.size(), 2u);
  for (const Read& r : first) EXPECT_EQ(r.id, KafkaPartitionId(DefaultTopicSlot(a), 0));
  ASSERT_TRUE(Publish(b, 3, 0));
  std::vector<Read> second = ReadUntil(source.get(), 3, &committed);
  ASSERT_EQ(second.size(), 3u) << "the new topic was not read within 40 s";
  for (const Read& r : second) EXPECT_EQ(r.id, KafkaPartitionId(DefaultTopicSlot(b), 0));
  EXPECT_EQ(source->NamePartition(second.front().id)->input, b);
  source->Close();
}

// A listed topic created just after the source opened (stage two's repartition topic, created
// by stage one's sink in the same process) is read within seconds: the source asks for it again
// after 1 s, then less often, and the answer makes the consumer subscribe it. Here librdkafka's
// own refresh is a minute away, so only those checks can find it; with one check every 30 s (as
// before) the records came after more than 30 s.
TEST(KafkaSource, AListedTopicCreatedJustAfterOpenIsReadWithinSeconds) {
  const std::string topic = UniqueName("late");
  KafkaSource::Settings s = SettingsFor({topic}, UniqueName("group"));
  s.properties["topic.metadata.refresh.interval.ms"] = "60000";
  auto source = std::make_unique<KafkaSource>(s, DecoderOptions{});
  SourceContext ctx;
  ctx.committed_position = [](int32_t) { return std::optional<int64_t>(); };
  ctx.checkpoint_before_revoke = [](const std::vector<int32_t>&) { return Status::OK(); };
  ASSERT_TRUE(source->Open(ctx).ok());
  if (!Publish(topic, 3, 0)) SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");
  const auto created = std::chrono::steady_clock::now();
  std::vector<Read> got = ReadUntil(source.get(), 3);
  const auto waited = std::chrono::steady_clock::now() - created;
  ASSERT_EQ(got.size(), 3u) << "the topic was not read within 40 s";
  EXPECT_LT(waited, std::chrono::seconds(20))
      << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms";
  source->Close();
}

}  // namespace
}  // namespace sluice
