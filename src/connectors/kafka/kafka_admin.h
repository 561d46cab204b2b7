#pragma once

// Administrative requests to a Kafka cluster, for the code that manages topics and consumer groups
// (the sink's own topics, repartition topics, `sluice status`): create and describe topics, the
// members and committed offsets of a group, end offsets, deleting records. Each request to the
// cluster is bounded by the timeout given to Make; a call that makes several (GroupOffsets lists
// the topics first and retries while a transaction holds the offsets; EndOffsets asks per
// partition) can take a few times that. Errors come back as a Status: kUnavailable when the
// brokers do not answer or the cluster is in a passing state (a coordinator moving, a
// transaction holding the group's offsets) — asking again may succeed; kNotFound for a topic or
// group that does not exist; kFailedPrecondition for any definite refusal (credentials, a bad
// request, an offset out of range), which asking again would only repeat.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "connectors/kafka/kafka_group.h"
#include "core/status.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace sluice {

/// A partition's offsets: the first one still stored, the high watermark (one past the last
/// record written, committed or not) and the last stable offset (nothing at or after it is
/// decided yet: a read_committed reader stops there).
struct KafkaPartitionEnds {
  int32_t partition = 0;
  int64_t low = 0;
  int64_t high_watermark = 0;
  int64_t last_stable = 0;
};

/// CreateTopic and PartitionCounts below on a handle the caller owns (the Kafka sink's producer,
/// which carries the user's librdkafka settings); `brokers` is for the messages.
Result<bool> CreateKafkaTopic(rd_kafka_t* rk, const std::string& brokers, int timeout_ms, const std::string& topic,
                              int partitions, const std::map<std::string, std::string>& config);
Result<std::map<std::string, int>> KafkaPartitionCounts(rd_kafka_t* rk, const std::string& brokers, int timeout_ms);
/// The topic-level settings of `topic` as the broker applies them (its own defaults included):
/// cleanup.policy, max.message.bytes, ...
Result<std::map<std::string, std::string>> KafkaTopicConfig(rd_kafka_t* rk, const std::string& brokers,
                                                            int timeout_ms, const std::string& topic);

class KafkaAdmin {
 public:
  /// Sets up the client handles for `brokers`; connects at the first request. `conf` adds
  /// librdkafka properties (security settings). Fails only on settings librdkafka refuses.
  static Result<std::unique_ptr<KafkaAdmin>> Make(const std::string& brokers, int timeout_ms,
                                                  const std::map<std::string, std::string>& conf = {});
  ~KafkaAdmin();
  KafkaAdmin(const KafkaAdmin&) = delete;
  KafkaAdmin& operator=(const KafkaAdmin&) = delete;

  const std::string& brokers() const { return brokers_; }

  /// Creates `topic` with `partitions` partitions (-1: the broker's num.partitions) and the
  /// topic `config` (e.g. cleanup.policy). Returns true when it created the topic, false when
  /// the topic existed already (whatever its partition count and config).
  Result<bool> CreateTopic(const std::string& topic, int partitions,
                           const std::map<std::string, std::string>& config = {});

  /// The topic-level settings of `topic` as the broker applies them (KafkaTopicConfig).
  Result<std::map<std::string, std::string>> TopicConfig(const std::string& topic);

  /// The partition count of every topic of the cluster. Asks for all topics at once: naming one
  /// could make a broker with auto.create.topics.enable create it.
  Result<std::map<std::string, int>> PartitionCounts();

  /// The partition count of `topic`; kNotFound when it does not exist.
  Result<int> PartitionCount(const std::string& topic);

  /// The group's live members and their assignments (DescribeConsumerGroups); an unknown or
  /// empty group has none.
  Result<std::vector<KafkaGroupMember>> DescribeGroup(const std::string& group);

  /// The offsets committed to `group` for every partition of `topics`, per (topic, partition),
  /// read with require_stable: while a transaction that commits offsets for one of them to the
  /// group is open (or its markers are not written yet) the broker refuses the read; this asks
  /// again until the timeout, then returns kUnavailable rather than an offset that is about to
  /// change. Partitions without a committed offset are left out; a missing topic is kNotFound.
  /// With no `topics`, every offset the group has, but NOT stable: the broker applies
  /// require_stable only to partitions named in the request (Kafka 3.9, proved by
  /// KafkaAdmin.GroupOffsetsAreStable), so a pending transaction's offsets are simply not there.
  Result<std::map<std::pair<std::string, int32_t>, int64_t>> GroupOffsets(const std::string& group,
                                                                          const std::vector<std::string>& topics);

  /// Deletes the records of `topic` before the given offset of each partition (DeleteRecords).
  Status DeleteRecordsBefore(const std::string& topic, const std::map<int32_t, int64_t>& before);

  /// Every partition's low offset, high watermark and last stable offset; kNotFound for a topic
  /// that does not exist. Not thread-safe (the first call makes two consumer handles); one
  /// KafkaAdmin per thread.
  Result<std::vector<KafkaPartitionEnds>> EndOffsets(const std::string& topic);

 private:
  KafkaAdmin(std::string brokers, int timeout_ms) : brokers_(std::move(brokers)), timeout_ms_(timeout_ms) {}

  std::string brokers_;
  int timeout_ms_;
  std::map<std::string, std::string> conf_;
  rd_kafka_t* admin_ = nullptr;      ///< a producer handle: admin requests and metadata
  rd_kafka_t* committed_ = nullptr;    ///< EndOffsets: a consumer, isolation.level=read_committed
  rd_kafka_t* uncommitted_ = nullptr;  ///< EndOffsets: a consumer, isolation.level=read_uncommitted
};

}  // namespace sluice
