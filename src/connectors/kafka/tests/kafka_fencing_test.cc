// What fencing the Kafka sink can build on (issue 16, plan §2.3 and §11), proved against the broker
// of `make services` with the librdkafka linked here: committed-offset fetches of a read_committed
// consumer wait for a transaction holding offsets for the group; TxnOffsetCommit with a consumer's
// group metadata from an older generation fails and the transaction's records stay invisible,
// while metadata made from the group name alone is never fenced; a read_committed handle's high
// watermark is the last stable offset; a transaction its producer abandons is aborted by the
// coordinator after transaction.timeout.ms, or at once by init_transactions of the same
// transactional.id; a checkpoint committed in the revoke callback of an eager rebalance passes. docs/notes-16/kafka.md says what follows for the design.
// Without a broker these tests skip loudly; with CI=true they fail.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/tests/kafka_test_broker.h"

namespace sluice {
namespace {

using kafkatest::Handle;
using kafkatest::NewHandle;
using kafkatest::Unique;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Fails the test with librdkafka's error `e` (destroyed here) for `what`.
#define EXPECT_NO_KAFKA_ERROR(what, call)                                                       \
  do {                                                                                          \
    if (rd_kafka_error_t* kerr_ = (call)) {                                                     \
      ADD_FAILURE() << (what) << ": " << rd_kafka_error_name(kerr_) << ": " << rd_kafka_error_string(kerr_); \
      rd_kafka_error_destroy(kerr_);                                                            \
    }                                                                                           \
  } while (0)

void MakeTopic(const std::string& topic, int partitions) {
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  auto created = (*admin)->CreateTopic(topic, partitions);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
}

Handle TxnProducer(const std::string& txn_id, int timeout_ms = 60000) {
  std::string error;
  Handle p = NewHandle(RD_KAFKA_PRODUCER,
                       {{"transactional.id", txn_id}, {"transaction.timeout.ms", std::to_string(timeout_ms)}},
                       &error);
  EXPECT_TRUE(p) << error;
  if (p) EXPECT_NO_KAFKA_ERROR("init_transactions", rd_kafka_init_transactions(p.get(), 15000));
  return p;
}

Handle GroupConsumer(const std::string& group, const std::string& isolation,
                     std::map<std::string, std::string> extra = {}) {
  extra["group.id"] = group;
  extra["isolation.level"] = isolation;
  extra["enable.auto.commit"] = "false";
  std::string error;
  Handle c = NewHandle(RD_KAFKA_CONSUMER, extra, &error);
  EXPECT_TRUE(c) << error;
  return c;
}

void Produce(rd_kafka_t* p, const std::string& topic, int32_t partition, const std::string& value) {
  EXPECT_EQ(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
}

/// Sends `offset` for (topic, partition) into p's open transaction with group metadata `gm`;
/// returns librdkafka's error (the caller destroys it) or null.
rd_kafka_error_t* SendOffset(rd_kafka_t* p, const std::string& topic, int32_t partition, int64_t offset,
                             const rd_kafka_consumer_group_metadata_t* gm) {
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(offsets, topic.c_str(), partition)->offset = offset;
  rd_kafka_error_t* e = rd_kafka_send_offsets_to_transaction(p, offsets, gm, 15000);
  rd_kafka_topic_partition_list_destroy(offsets);
  return e;
}

/// A committed offset fetch as the sink's claim would do it: the error and the offset.
struct Fetched {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  int64_t offset = RD_KAFKA_OFFSET_INVALID;
  double seconds = 0;
};

Fetched Committed(rd_kafka_t* consumer, const std::string& topic, int32_t partition, int timeout_ms) {
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic.c_str(), partition);
  const auto t0 = Clock::now();
  Fetched f;
  f.err = rd_kafka_committed(consumer, parts, timeout_ms);
  f.seconds = SecondsSince(t0);
  if (!f.err) f.err = parts->elems[0].err;
  f.offset = parts->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(parts);
  return f;
}

std::string Describe(const Fetched& f) {
  return std::string(rd_kafka_err2name(f.err)) + " offset " + std::to_string(f.offset) + " after " +
         std::to_string(f.seconds) + " s";
}

/// Polls every consumer until each has a non-empty assignment, or fails after `seconds`.
void PollUntilAssigned(const std::vector<rd_kafka_t*>& consumers, int seconds) {
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    bool all = true;
    for (rd_kafka_t* c : consumers) {
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100)) rd_kafka_message_destroy(m);
      rd_kafka_topic_partition_list_t* a = nullptr;
      rd_kafka_assignment(c, &a);
      all = all && a && a->cnt > 0;
      if (a) rd_kafka_topic_partition_list_destroy(a);
    }
    if (all) return;
  }
  FAIL() << "the group did not assign every consumer a partition within " << seconds << " s";
}

using GroupMetadata =
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, void (*)(rd_kafka_consumer_group_metadata_t*)>;
GroupMetadata MemberMetadata(rd_kafka_t* consumer) {
  return GroupMetadata(rd_kafka_consumer_group_metadata(consumer), rd_kafka_consumer_group_metadata_destroy);
}
GroupMetadata NameOnlyMetadata(const std::string& group) {
  return GroupMetadata(rd_kafka_consumer_group_metadata_new(group.c_str()), rd_kafka_consumer_group_metadata_destroy);
}

// A claim reads the group's committed offset with committed() on a read_committed consumer. While
// another producer's transaction holds an offset for that group, the fetch must not return the
// older offset (which that transaction is about to replace); it returns the new one once the
// transaction commits, and the old one again once it aborts.
TEST(KafkaFencing, CommittedOffsetFetchWaitsForAnOpenTransactionsOffsets) {
  SLUICE_REQUIRE_KAFKA();
  const std::string in = Unique("kfence_in"), out = Unique("kfence_out"), group = Unique("kfence_g");
  MakeTopic(in, 1);
  MakeTopic(out, 1);
  Handle p = TxnProducer(Unique("kfence_txn"));
  ASSERT_TRUE(p);
  GroupMetadata gm = NameOnlyMetadata(group);

  // Offset 5 committed.
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "a");
  EXPECT_NO_KAFKA_ERROR("send offsets", SendOffset(p.get(), in, 0, 5, gm.get()));
  EXPECT_NO_KAFKA_ERROR("commit", rd_kafka_commit_transaction(p.get(), 15000));

  Handle stable = GroupConsumer(group, "read_committed");
  Handle unstable = GroupConsumer(group, "read_uncommitted");
  ASSERT_TRUE(stable && unstable);
  Fetched f = Committed(stable.get(), in, 0, 10000);
  ASSERT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
  ASSERT_EQ(f.offset, 5);

  // Offset 7 pending in an open transaction.
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "b");
  EXPECT_NO_KAFKA_ERROR("send offsets", SendOffset(p.get(), in, 0, 7, gm.get()));

  // Without require_stable (read_uncommitted) the fetch answers at once with the old offset:
  // that is the stale read a claim must not make.
  f = Committed(unstable.get(), in, 0, 10000);
  std::cerr << "committed(): " << Describe(f) << "\n";
  EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
  EXPECT_EQ(f.offset, 5) << Describe(f);
  EXPECT_LT(f.seconds, 2.0) << Describe(f);

  // With require_stable it waits, and gives up only at its timeout.
  f = Committed(stable.get(), in, 0, 3000);
  std::cerr << "committed(): " << Describe(f) << "\n";
  EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR__TIMED_OUT) << Describe(f);
  EXPECT_GE(f.seconds, 2.9) << Describe(f);

  // The transaction commits 2 s into a fetch: the fetch returns 7, after the commit.
  auto committer = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    return rd_kafka_commit_transaction(p.get(), 15000);
  });
  f = Committed(stable.get(), in, 0, 15000);
  std::cerr << "committed(): " << Describe(f) << "\n";
  EXPECT_NO_KAFKA_ERROR("commit", committer.get());
  EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
  EXPECT_EQ(f.offset, 7) << Describe(f);
  EXPECT_GE(f.seconds, 1.5) << Describe(f);

  // Offset 9 pending, then aborted 2 s into a fetch: the fetch returns 7.
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "c");
  EXPECT_NO_KAFKA_ERROR("send offsets", SendOffset(p.get(), in, 0, 9, gm.get()));
  auto aborter = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    return rd_kafka_abort_transaction(p.get(), 15000);
  });
  f = Committed(stable.get(), in, 0, 15000);
  std::cerr << "committed(): " << Describe(f) << "\n";
  EXPECT_NO_KAFKA_ERROR("abort", aborter.get());
  EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
  EXPECT_EQ(f.offset, 7) << Describe(f);
  EXPECT_GE(f.seconds, 1.5) << Describe(f);

  EXPECT_EQ(kafkatest::ReadCommittedValues(out, 1), (std::vector<std::string>{"a", "b"}));
  rd_kafka_consumer_close(stable.get());
  rd_kafka_consumer_close(unstable.get());
}

// A member's metadata (group, generation, member id) taken before another member joined is stale
// once the group has rebalanced: a transaction that sends offsets with it fails, must abort, and
// nothing it produced becomes visible. The current generation's metadata of the same member
// commits, also for a partition another member owns. Metadata made from the group's name alone (what the sink sends today) passes while the
// group has live members: it fences nobody.
TEST(KafkaFencing, OffsetsWithAnOlderGenerationsMetadataAreFenced) {
  SLUICE_REQUIRE_KAFKA();
  const std::string in = Unique("kfence_in"), out = Unique("kfence_out"), group = Unique("kfence_g");
  MakeTopic(in, 2);
  MakeTopic(out, 1);
  Handle a = GroupConsumer(group, "read_committed");
  ASSERT_TRUE(a);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, in.c_str(), RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(a.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  PollUntilAssigned({a.get()}, 20);
  GroupMetadata old_gm = MemberMetadata(a.get());

  Handle b = GroupConsumer(group, "read_committed");
  ASSERT_TRUE(b);
  ASSERT_EQ(rd_kafka_subscribe(b.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);
  PollUntilAssigned({a.get(), b.get()}, 20);  // a rejoined: a new generation
  GroupMetadata new_gm = MemberMetadata(a.get());
  // Which partition each member owns now (one each).
  auto owned = [](rd_kafka_t* c) {
    rd_kafka_topic_partition_list_t* l = nullptr;
    rd_kafka_assignment(c, &l);
    const int32_t p = l && l->cnt == 1 ? l->elems[0].partition : -1;
    if (l) rd_kafka_topic_partition_list_destroy(l);
    return p;
  };
  const int32_t pa = owned(a.get()), pb = owned(b.get());
  ASSERT_TRUE((pa == 0 && pb == 1) || (pa == 1 && pb == 0)) << pa << " " << pb;

  Handle p = TxnProducer(Unique("kfence_txn"));
  ASSERT_TRUE(p);

  // The zombie: a's metadata of the first generation.
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "zombie");
  rd_kafka_error_t* e = SendOffset(p.get(), in, 0, 3, old_gm.get());
  ASSERT_NE(e, nullptr) << "offsets with an older generation's metadata were accepted";
  EXPECT_EQ(rd_kafka_error_code(e), RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION) << rd_kafka_error_name(e);
  EXPECT_TRUE(rd_kafka_error_txn_requires_abort(e)) << rd_kafka_error_string(e);
  EXPECT_FALSE(rd_kafka_error_is_fatal(e)) << rd_kafka_error_string(e);
  rd_kafka_error_destroy(e);
  EXPECT_NO_KAFKA_ERROR("abort", rd_kafka_abort_transaction(p.get(), 15000));

  // The same member's current metadata commits, even for the partition b owns: the broker checks
  // generation and member id, not the assignment.
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "member");
  EXPECT_NO_KAFKA_ERROR("send offsets", SendOffset(p.get(), in, pb, 4, new_gm.get()));
  EXPECT_NO_KAFKA_ERROR("commit", rd_kafka_commit_transaction(p.get(), 15000));

  // The group's name alone: accepted although the group has two live members.
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "name-only");
  EXPECT_NO_KAFKA_ERROR("send offsets", SendOffset(p.get(), in, pa, 6, NameOnlyMetadata(group).get()));
  EXPECT_NO_KAFKA_ERROR("commit", rd_kafka_commit_transaction(p.get(), 15000));

  EXPECT_EQ(kafkatest::ReadCommittedValues(out, 1), (std::vector<std::string>{"member", "name-only"}));
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  auto offsets = (*admin)->GroupOffsets(group, {in});
  ASSERT_TRUE(offsets.ok()) << offsets.status().ToString();
  EXPECT_EQ(*offsets, (std::map<std::pair<std::string, int32_t>, int64_t>{{{in, pb}, 4}, {{in, pa}, 6}}));
  rd_kafka_consumer_close(b.get());
  rd_kafka_consumer_close(a.get());
}

// A member that stopped polling past max.poll.interval.ms has left the group (librdkafka leaves
// on its own, as a process stalled in a long checkpoint would): its metadata is refused.
TEST(KafkaFencing, OffsetsOfAMemberThatLeftTheGroupAreFenced) {
  SLUICE_REQUIRE_KAFKA();
  const std::string in = Unique("kfence_in"), out = Unique("kfence_out"), group = Unique("kfence_g");
  MakeTopic(in, 1);
  MakeTopic(out, 1);
  Handle a = GroupConsumer(group, "read_committed",
                           {{"session.timeout.ms", "6000"}, {"max.poll.interval.ms", "6000"}});
  ASSERT_TRUE(a);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, in.c_str(), RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(a.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);
  PollUntilAssigned({a.get()}, 20);
  GroupMetadata gm = MemberMetadata(a.get());
  Handle p = TxnProducer(Unique("kfence_txn"));
  ASSERT_TRUE(p);

  std::this_thread::sleep_for(std::chrono::seconds(9));  // no poll: a leaves after 6 s
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "stalled");
  rd_kafka_error_t* e = SendOffset(p.get(), in, 0, 3, gm.get());
  ASSERT_NE(e, nullptr) << "offsets of a member that left the group were accepted";
  EXPECT_EQ(rd_kafka_error_code(e), RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID) << rd_kafka_error_name(e);
  EXPECT_TRUE(rd_kafka_error_txn_requires_abort(e)) << rd_kafka_error_string(e);
  rd_kafka_error_destroy(e);
  EXPECT_NO_KAFKA_ERROR("abort", rd_kafka_abort_transaction(p.get(), 15000));
  EXPECT_TRUE(kafkatest::ReadCommittedValues(out, 1).empty());
  Handle reader = GroupConsumer(group, "read_committed");
  Fetched f = Committed(reader.get(), in, 0, 10000);
  EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
  EXPECT_EQ(f.offset, RD_KAFKA_OFFSET_INVALID) << Describe(f);
  rd_kafka_consumer_close(reader.get());
  rd_kafka_consumer_close(a.get());
}

// checkpoint_before_revoke: in an eager rebalance the revoke callback runs before the member
// rejoins, so its metadata still has the old generation; the group is PreparingRebalance and the
// broker still accepts that generation: a checkpoint committed from the callback is not fenced.
struct RevokeCheckpoint {
  rd_kafka_t* producer = nullptr;
  std::string in, out;
  int revokes = 0;
  std::string outcome;  // "" not tried, "committed", or the error
};

void RebalanceCommittingOnRevoke(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                                 void* opaque) {
  auto* ctx = static_cast<RevokeCheckpoint*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    rd_kafka_assign(rk, parts);
    return;
  }
  if (ctx->revokes++ == 0 && parts->cnt > 0) {
    GroupMetadata gm = MemberMetadata(rk);
    rd_kafka_error_t* e = rd_kafka_begin_transaction(ctx->producer);
    if (!e) {
      Produce(ctx->producer, ctx->out, 0, "revoke");
      e = SendOffset(ctx->producer, ctx->in, parts->elems[0].partition, 21, gm.get());
    }
    if (!e) e = rd_kafka_commit_transaction(ctx->producer, 15000);
    if (e) {
      ctx->outcome = std::string(rd_kafka_error_name(e)) + ": " + rd_kafka_error_string(e);
      rd_kafka_error_destroy(e);
      if (rd_kafka_error_t* ae = rd_kafka_abort_transaction(ctx->producer, 15000)) rd_kafka_error_destroy(ae);
    } else {
      ctx->outcome = "committed";
    }
  }
  rd_kafka_assign(rk, nullptr);
}

TEST(KafkaFencing, ACheckpointInTheRevokeCallbackIsNotFenced) {
  SLUICE_REQUIRE_KAFKA();
  const std::string in = Unique("kfence_in"), out = Unique("kfence_out"), group = Unique("kfence_g");
  MakeTopic(in, 2);
  MakeTopic(out, 1);
  Handle p = TxnProducer(Unique("kfence_txn"));
  ASSERT_TRUE(p);
  RevokeCheckpoint ctx;
  ctx.producer = p.get();
  ctx.in = in;
  ctx.out = out;

  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[256];
  for (const auto& [k, v] : std::map<std::string, std::string>{{"bootstrap.servers", kafkatest::Brokers()},
                                                               {"log_level", "0"},
                                                               {"group.id", group},
                                                               {"enable.auto.commit", "false"}}) {
    ASSERT_EQ(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)), RD_KAFKA_CONF_OK) << err;
  }
  rd_kafka_conf_set_rebalance_cb(conf, RebalanceCommittingOnRevoke);
  rd_kafka_conf_set_opaque(conf, &ctx);
  Handle a(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)), rd_kafka_destroy);
  ASSERT_TRUE(a) << err;
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, in.c_str(), RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(a.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  PollUntilAssigned({a.get()}, 20);
  Handle b = GroupConsumer(group, "read_committed");
  ASSERT_TRUE(b);
  ASSERT_EQ(rd_kafka_subscribe(b.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);
  PollUntilAssigned({a.get(), b.get()}, 20);

  EXPECT_EQ(ctx.outcome, "committed");
  EXPECT_EQ(kafkatest::ReadCommittedValues(out, 1), (std::vector<std::string>{"revoke"}));
  Handle reader = GroupConsumer(group, "read_committed");
  int64_t committed = RD_KAFKA_OFFSET_INVALID;
  for (int32_t part : {0, 1}) {
    Fetched f = Committed(reader.get(), in, part, 10000);
    EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
    if (f.offset != RD_KAFKA_OFFSET_INVALID) committed = f.offset;
  }
  EXPECT_EQ(committed, 21);
  rd_kafka_consumer_close(reader.get());
  rd_kafka_consumer_close(b.get());
  rd_kafka_consumer_close(a.get());
}

// A process restarted with the same transactional.id does not wait for its predecessor's open
// transaction to time out: init_transactions aborts it (and fences the old producer).
TEST(KafkaFencing, TheSameTransactionalIdAbortsThePredecessorsTransactionAtInit) {
  SLUICE_REQUIRE_KAFKA();
  const std::string out = Unique("kfence_out"), txn_id = Unique("kfence_txn");
  MakeTopic(out, 1);
  Handle old_p = TxnProducer(txn_id, 60000);
  ASSERT_TRUE(old_p);
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(old_p.get()));
  Produce(old_p.get(), out, 0, "predecessor");
  ASSERT_EQ(rd_kafka_flush(old_p.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

  const auto t0 = Clock::now();
  Handle new_p = TxnProducer(txn_id, 60000);
  ASSERT_TRUE(new_p);
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  Result<std::vector<KafkaPartitionEnds>> ends = Status::Internal("not read");
  for (;;) {
    ends = (*admin)->EndOffsets(out);
    ASSERT_TRUE(ends.ok()) << ends.status().ToString();
    if ((*ends)[0].last_stable != 0 || SecondsSince(t0) >= 10) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double seconds = SecondsSince(t0);
  std::cerr << "predecessor's transaction aborted " << seconds << " s after the new init_transactions began\n";
  EXPECT_EQ((*ends)[0].last_stable, 2);
  EXPECT_LT(seconds, 5) << "not the 60 s transaction timeout";
  EXPECT_TRUE(kafkatest::ReadCommittedValues(out, 1).empty());
  rd_kafka_error_t* e = rd_kafka_commit_transaction(old_p.get(), 10000);
  ASSERT_NE(e, nullptr) << "the old producer committed after being fenced";
  EXPECT_TRUE(rd_kafka_error_is_fatal(e)) << rd_kafka_error_name(e);
  std::cerr << "old producer's commit: " << rd_kafka_error_name(e) << "\n";
  rd_kafka_error_destroy(e);
}

// §5.7: query_watermark_offsets on a read_committed handle returns the last stable offset as its
// high offset; on a read_uncommitted one the high watermark. Offsets: records 0..2, the commit
// marker 3, open records 4 and 5: high watermark 6, last stable offset 4.
TEST(KafkaFencing, ReadCommittedHighOffsetIsTheLastStableOffset) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = Unique("kfence_lso");
  MakeTopic(topic, 1);
  Handle p = TxnProducer(Unique("kfence_txn"));
  ASSERT_TRUE(p);
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  for (const char* v : {"0", "1", "2"}) Produce(p.get(), topic, 0, v);
  EXPECT_NO_KAFKA_ERROR("commit", rd_kafka_commit_transaction(p.get(), 15000));
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  for (const char* v : {"4", "5"}) Produce(p.get(), topic, 0, v);
  ASSERT_EQ(rd_kafka_flush(p.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

  auto high = [&](rd_kafka_t* rk) {
    int64_t low = -1, hi = -1;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), 0, &low, &hi, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    return hi;
  };
  Handle committed = GroupConsumer(Unique("kfence_g"), "read_committed");
  Handle uncommitted = GroupConsumer(Unique("kfence_g"), "read_uncommitted");
  std::string error;
  Handle producer = NewHandle(RD_KAFKA_PRODUCER, {}, &error);  // as KafkaEndOffsets (sluice status) asks
  EXPECT_EQ(high(committed.get()), 4);
  EXPECT_EQ(high(uncommitted.get()), 6);
  EXPECT_EQ(high(producer.get()), 4) << "a producer handle's isolation.level is its default, read_committed";

  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  auto ends = (*admin)->EndOffsets(topic);
  ASSERT_TRUE(ends.ok()) << ends.status().ToString();
  ASSERT_EQ(ends->size(), 1u);
  EXPECT_EQ((*ends)[0].high_watermark, 6);
  EXPECT_EQ((*ends)[0].last_stable, 4);

  // commit_transaction returns once the coordinator has decided; it writes the markers after
  // that, so the last stable offset reaches 7 (after the marker at 6) a moment later.
  EXPECT_NO_KAFKA_ERROR("commit", rd_kafka_commit_transaction(p.get(), 15000));
  const auto t0 = Clock::now();
  while (high(committed.get()) < 7 && SecondsSince(t0) < 5) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::cerr << "last stable offset moved " << SecondsSince(t0) << " s after commit_transaction returned\n";
  EXPECT_EQ(high(committed.get()), 7);
  EXPECT_EQ(high(uncommitted.get()), 7);
  rd_kafka_consumer_close(committed.get());
  rd_kafka_consumer_close(uncommitted.get());
}

// A producer that stops in the middle of a transaction (a crashed or hung process) holds back
// read_committed readers only until the coordinator aborts the transaction after its
// transaction.timeout.ms (checked every transaction.abort.timed.out.transaction.cleanup.interval.ms,
// 10 s by default); the records are then invisible and its offsets never reach the group.
TEST(KafkaFencing, AnAbandonedTransactionIsAbortedAfterItsTimeout) {
  SLUICE_REQUIRE_KAFKA();
  const std::string in = Unique("kfence_in"), out = Unique("kfence_out"), group = Unique("kfence_g");
  MakeTopic(in, 1);
  MakeTopic(out, 1);
  Handle p = TxnProducer(Unique("kfence_txn"), 3000);
  ASSERT_TRUE(p);
  // The broker times the transaction from its first partition (added while the record is
  // produced, before the flush returns): taken before that, t0 is a sound lower bound.
  const auto t0 = Clock::now();
  EXPECT_NO_KAFKA_ERROR("begin", rd_kafka_begin_transaction(p.get()));
  Produce(p.get(), out, 0, "abandoned");
  EXPECT_NO_KAFKA_ERROR("send offsets", SendOffset(p.get(), in, 0, 11, NameOnlyMetadata(group).get()));
  ASSERT_EQ(rd_kafka_flush(p.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  // From here on nobody touches p.

  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), 10000);
  ASSERT_TRUE(admin.ok());
  auto ends = (*admin)->EndOffsets(out);
  ASSERT_TRUE(ends.ok()) << ends.status().ToString();
  EXPECT_EQ((*ends)[0].last_stable, 0);
  EXPECT_EQ((*ends)[0].high_watermark, 1);
  while (SecondsSince(t0) < 25) {
    ends = (*admin)->EndOffsets(out);
    ASSERT_TRUE(ends.ok()) << ends.status().ToString();
    if ((*ends)[0].last_stable > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  const double seconds = SecondsSince(t0);
  EXPECT_EQ((*ends)[0].last_stable, 2) << "the abort marker at 1 ends the transaction";
  EXPECT_EQ((*ends)[0].high_watermark, 2);
  EXPECT_GE(seconds, 2.9) << "not before transaction.timeout.ms (3 s; the broker's clock is not ours)";
  EXPECT_LE(seconds, 3 + 10 + 2);
  std::cerr << "abandoned transaction aborted after " << seconds << " s\n";
  EXPECT_TRUE(kafkatest::ReadCommittedValues(out, 1).empty());
  Handle reader = GroupConsumer(group, "read_committed");
  Fetched f = Committed(reader.get(), in, 0, 10000);
  EXPECT_EQ(f.err, RD_KAFKA_RESP_ERR_NO_ERROR) << Describe(f);
  EXPECT_EQ(f.offset, RD_KAFKA_OFFSET_INVALID) << Describe(f);
  rd_kafka_consumer_close(reader.get());
}

}  // namespace
}  // namespace sluice
