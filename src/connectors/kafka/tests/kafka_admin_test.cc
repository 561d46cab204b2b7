// KafkaAdmin against the broker of `make services` (skipped without it; with CI=true a failure),
// and against a closed port (no broker needed).

#include "connectors/kafka/kafka_admin.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "connectors/kafka/tests/kafka_test_broker.h"

namespace sluice {
namespace {

using kafkatest::Handle;
using kafkatest::NewHandle;
using kafkatest::Unique;

std::unique_ptr<KafkaAdmin> Admin(int timeout_ms = 10000) {
  auto admin = KafkaAdmin::Make(kafkatest::Brokers(), timeout_ms);
  EXPECT_TRUE(admin.ok()) << admin.status().ToString();
  return admin.ok() ? std::move(*admin) : nullptr;
}

/// A local port nothing listens on: bound, then closed.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

void ProducePlain(const std::string& topic, int32_t partition, int count) {
  std::string error;
  Handle p = NewHandle(RD_KAFKA_PRODUCER, {}, &error);
  ASSERT_TRUE(p) << error;
  for (int i = 0; i < count; ++i) {
    std::string v = std::to_string(i);
    ASSERT_EQ(rd_kafka_producev(p.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_VALUE(v.data(), v.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(p.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST(KafkaAdmin, RefusesBadSettings) {
  EXPECT_EQ(KafkaAdmin::Make("", 1000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KafkaAdmin::Make("127.0.0.1:9092", 0).status().code(), StatusCode::kInvalidArgument);
  auto bad = KafkaAdmin::Make("127.0.0.1:9092", 1000, {{"no.such.property", "1"}});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("no.such.property"), std::string::npos) << bad.status().ToString();
}

TEST(KafkaAdmin, EveryCallFailsUnavailableWithinItsTimeoutWhenNoBrokerAnswers) {
  const int port = ClosedPort();
  ASSERT_GT(port, 0);
  auto made = KafkaAdmin::Make("127.0.0.1:" + std::to_string(port), 1500);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  KafkaAdmin& admin = **made;
  auto expect_unavailable = [](const Status& s, const char* what) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << what << ": " << s.ToString();
    EXPECT_NE(s.message().find("127.0.0.1:"), std::string::npos) << what << ": " << s.ToString();
  };
  const auto t0 = std::chrono::steady_clock::now();
  expect_unavailable(admin.CreateTopic("kfence_down", 1).status(), "CreateTopic");
  expect_unavailable(admin.PartitionCounts().status(), "PartitionCounts");
  expect_unavailable(admin.PartitionCount("kfence_down").status(), "PartitionCount");
  expect_unavailable(admin.DescribeGroup("kfence_down").status(), "DescribeGroup");
  expect_unavailable(admin.GroupOffsets("kfence_down", {}).status(), "GroupOffsets");
  expect_unavailable(admin.DeleteRecordsBefore("kfence_down", {{0, 1}}), "DeleteRecordsBefore");
  expect_unavailable(admin.EndOffsets("kfence_down").status(), "EndOffsets");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 7 * (1.5 + 2.0 + 0.5)) << "each call is bounded by its timeout (+2 s for the answer)";
}

TEST(KafkaAdmin, CreatesTopicsOnceAndCountsTheirPartitions) {
  SLUICE_REQUIRE_KAFKA();
  auto admin = Admin();
  ASSERT_TRUE(admin);
  const std::string topic = Unique("kfence_admin_t");
  auto created = admin->CreateTopic(topic, 3, {{"cleanup.policy", "compact"}});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  created = admin->CreateTopic(topic, 5);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_FALSE(*created) << "the topic existed";
  // CreateTopics answers before every broker's metadata has the topic: a new topic can be
  // unknown for a moment (longer on a broker that has just started). Ask again a while.
  auto n = admin->PartitionCount(topic);
  for (int i = 0; i < 100 && n.status().code() == StatusCode::kNotFound; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    n = admin->PartitionCount(topic);
  }
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3);
  auto all = admin->PartitionCounts();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->at(topic), 3);

  // The settings as the broker applies them: the one given, and the broker's default for others.
  // A topic just created may not be known to the broker that answers yet: ask again a while.
  auto settings_of = [&](const std::string& name) {
    auto config = admin->TopicConfig(name);
    for (int i = 0; i < 100 && config.status().code() == StatusCode::kNotFound; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      config = admin->TopicConfig(name);
    }
    return config;
  };
  auto config = settings_of(topic);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->at("cleanup.policy"), "compact");
  EXPECT_FALSE(config->at("max.message.bytes").empty());
  const std::string plain = Unique("kfence_admin_plain");
  ASSERT_TRUE(admin->CreateTopic(plain, 1).ok());
  config = settings_of(plain);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->at("cleanup.policy"), "delete");

  auto bad = admin->CreateTopic(Unique("kfence_admin_bad"), 1, {{"cleanup.policy", "sometimes"}});
  EXPECT_EQ(bad.status().code(), StatusCode::kFailedPrecondition) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("INVALID_CONFIG"), std::string::npos) << bad.status().ToString();
  auto zero = admin->CreateTopic(Unique("kfence_admin_bad"), 0);
  EXPECT_EQ(zero.status().code(), StatusCode::kFailedPrecondition) << zero.status().ToString();
  EXPECT_NE(zero.status().message().find("INVALID_PARTITIONS"), std::string::npos) << zero.status().ToString();
}

TEST(KafkaAdmin, UnknownTopicIsNotFoundAndNotCreated) {
  SLUICE_REQUIRE_KAFKA();
  auto admin = Admin();
  ASSERT_TRUE(admin);
  const std::string topic = Unique("kfence_admin_missing");
  auto n = admin->PartitionCount(topic);
  EXPECT_EQ(n.status().code(), StatusCode::kNotFound) << n.status().ToString();
  EXPECT_NE(n.status().message().find(topic), std::string::npos) << n.status().ToString();
  EXPECT_EQ(admin->EndOffsets(topic).status().code(), StatusCode::kNotFound);
  auto all = admin->PartitionCounts();  // the broker auto-creates topics asked for by name
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->count(topic), 0u);
}

TEST(KafkaAdmin, EndOffsetsAndDeleteRecordsBefore) {
  SLUICE_REQUIRE_KAFKA();
  auto admin = Admin();
  ASSERT_TRUE(admin);
  const std::string topic = Unique("kfence_admin_del");
  ASSERT_TRUE(admin->CreateTopic(topic, 2).ok());
  ProducePlain(topic, 0, 5);
  ProducePlain(topic, 1, 2);
  ASSERT_TRUE(admin->DeleteRecordsBefore(topic, {{0, 3}}).ok());
  auto ends = admin->EndOffsets(topic);
  ASSERT_TRUE(ends.ok()) << ends.status().ToString();
  ASSERT_EQ(ends->size(), 2u);
  EXPECT_EQ((*ends)[0].low, 3);
  EXPECT_EQ((*ends)[0].high_watermark, 5);
  EXPECT_EQ((*ends)[0].last_stable, 5);
  EXPECT_EQ((*ends)[1].low, 0);
  EXPECT_EQ((*ends)[1].high_watermark, 2);
  EXPECT_EQ((*ends)[1].last_stable, 2);
  EXPECT_EQ(kafkatest::ReadCommittedValues(topic, 1), (std::vector<std::string>{"3", "4"}));

  Status past_end = admin->DeleteRecordsBefore(topic, {{1, 10}});
  EXPECT_EQ(past_end.code(), StatusCode::kFailedPrecondition) << past_end.ToString();
  EXPECT_NE(past_end.message().find("OFFSET_OUT_OF_RANGE"), std::string::npos) << past_end.ToString();
}

TEST(KafkaAdmin, DescribesTheGroupsMembersAndAssignments) {
  SLUICE_REQUIRE_KAFKA();
  auto admin = Admin();
  ASSERT_TRUE(admin);
  const std::string topic = Unique("kfence_admin_g"), group = Unique("kfence_admin_g");
  ASSERT_TRUE(admin->CreateTopic(topic, 2).ok());
  auto none = admin->DescribeGroup(group);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  std::string error;
  Handle c = NewHandle(RD_KAFKA_CONSUMER, {{"group.id", group}, {"client.id", "kfence-admin-member"}}, &error);
  ASSERT_TRUE(c) << error;
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(c.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int assigned = 0;
  while (assigned == 0 && std::chrono::steady_clock::now() < deadline) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 100)) rd_kafka_message_destroy(m);
    rd_kafka_topic_partition_list_t* a = nullptr;
    rd_kafka_assignment(c.get(), &a);
    assigned = a ? a->cnt : 0;
    if (a) rd_kafka_topic_partition_list_destroy(a);
  }
  ASSERT_EQ(assigned, 2);
  char* member_id = rd_kafka_memberid(c.get());
  const std::string member = member_id ? member_id : "";
  rd_kafka_mem_free(c.get(), member_id);

  auto members = admin->DescribeGroup(group);
  ASSERT_TRUE(members.ok()) << members.status().ToString();
  ASSERT_EQ(members->size(), 1u);
  EXPECT_EQ((*members)[0].member_id, member);
  EXPECT_EQ((*members)[0].client_id, "kfence-admin-member");
  auto assignment = (*members)[0].assignment;
  std::sort(assignment.begin(), assignment.end());
  EXPECT_EQ(assignment, (std::vector<std::pair<std::string, int32_t>>{{topic, 0}, {topic, 1}}));
  rd_kafka_consumer_close(c.get());
}

// The group's offsets: what a transaction committed. While a transaction holding offsets for the
// group is open, a read naming the partitions is refused by the broker (require_stable) until the
// transaction ends: GroupOffsets waits for it, up to its timeout. A read of all the group's
// offsets (no topics) is not stable: it answers at once, without the pending offsets.
TEST(KafkaAdmin, GroupOffsetsAreStable) {
  SLUICE_REQUIRE_KAFKA();
  auto admin = Admin(2000);
  ASSERT_TRUE(admin);
  const std::string in = Unique("kfence_admin_in"), out = Unique("kfence_admin_out"), group = Unique("kfence_admin_g");
  ASSERT_TRUE(admin->CreateTopic(in, 2).ok());
  ASSERT_TRUE(admin->CreateTopic(out, 1).ok());
  auto empty = admin->GroupOffsets(group, {in});
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(admin->GroupOffsets(group, {Unique("kfence_admin_missing")}).status().code(), StatusCode::kNotFound);

  std::string error;
  Handle p = NewHandle(RD_KAFKA_PRODUCER, {{"transactional.id", Unique("kfence_admin_txn")}}, &error);
  ASSERT_TRUE(p) << error;
  ASSERT_EQ(rd_kafka_init_transactions(p.get(), 15000), nullptr);
  rd_kafka_consumer_group_metadata_t* gm = rd_kafka_consumer_group_metadata_new(group.c_str());
  auto send = [&](int32_t partition, int64_t offset) {
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offsets, in.c_str(), partition)->offset = offset;
    EXPECT_EQ(rd_kafka_send_offsets_to_transaction(p.get(), offsets, gm, 15000), nullptr);
    rd_kafka_topic_partition_list_destroy(offsets);
  };
  using Offsets = std::map<std::pair<std::string, int32_t>, int64_t>;
  ASSERT_EQ(rd_kafka_begin_transaction(p.get()), nullptr);
  send(0, 12);
  send(1, 4);
  ASSERT_EQ(rd_kafka_commit_transaction(p.get(), 15000), nullptr);
  auto offsets = admin->GroupOffsets(group, {in});  // waits for the markers if need be
  ASSERT_TRUE(offsets.ok()) << offsets.status().ToString();
  EXPECT_EQ(*offsets, (Offsets{{{in, 0}, 12}, {{in, 1}, 4}}));

  ASSERT_EQ(rd_kafka_begin_transaction(p.get()), nullptr);
  send(1, 8);
  const auto t0 = std::chrono::steady_clock::now();
  offsets = admin->GroupOffsets(group, {in});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(offsets.status().code(), StatusCode::kUnavailable) << offsets.status().ToString();
  EXPECT_NE(offsets.status().message().find("open transaction"), std::string::npos) << offsets.status().ToString();
  EXPECT_GE(waited, 1.9);
  auto all = admin->GroupOffsets(group, {});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, (Offsets{{{in, 0}, 12}, {{in, 1}, 4}})) << "the pending 8 is not listed, and nothing waits for it";

  ASSERT_EQ(rd_kafka_commit_transaction(p.get(), 15000), nullptr);
  offsets = admin->GroupOffsets(group, {in});
  ASSERT_TRUE(offsets.ok()) << offsets.status().ToString();
  EXPECT_EQ(*offsets, (Offsets{{{in, 0}, 12}, {{in, 1}, 8}}));
  rd_kafka_consumer_group_metadata_destroy(gm);
}

}  // namespace
}  // namespace sluice
