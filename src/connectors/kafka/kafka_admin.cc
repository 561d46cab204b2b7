#include "connectors/kafka/kafka_admin.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <memory>
#include <thread>

namespace sluice {
namespace {

/// The Status for librdkafka's `err` while doing `what` against `brokers`.
Status KafkaStatus(rd_kafka_resp_err_t err, const std::string& brokers, const std::string& what,
                   const char* detail = nullptr) {
  std::string text = "kafka " + brokers + ": " + what + ": " + rd_kafka_err2name(err) + " (" +
                     (detail && *detail ? detail : rd_kafka_err2str(err)) + ")";
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
      return Status::NotFound(std::move(text));
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return Status::FailedPrecondition(std::move(text));
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      return Status::Unavailable(text + "; is the broker up?");
    // Passing states of a cluster that is working: asking again later can succeed, so callers
    // that retry kUnavailable (a sink's Open) may.
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__RESOLVE:
      return Status::Unavailable(std::move(text));
    // Anything else is a definite answer (an unsupported request, an offset out of range, a
    // bad replica assignment...): asking again gives the same, so it is not kUnavailable, which
    // would make a caller retry it without end.
    default:
      return Status::FailedPrecondition(std::move(text));
  }
}

rd_kafka_t* NewHandle(rd_kafka_type_t type, const std::string& brokers, const std::map<std::string, std::string>& extra,
                      const char* isolation, Status* status) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) {
    if (!status->ok()) return;
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      *status = Status::InvalidArgument("kafka setting " + k + ": " + err);
    }
  };
  set("bootstrap.servers", brokers);
  set("log_level", "0");  // failures come back as a Status
  for (const auto& [k, v] : extra) set(k, v);
  if (isolation) {
    set("isolation.level", isolation);
    set("enable.auto.commit", "false");
  }
  if (!status->ok()) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));  // owns conf when it succeeds
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    *status = Status::InvalidArgument(std::string("kafka client: ") + err);
  }
  return rk;
}

/// One admin request's life: options, a queue, the answer event; freed on every path.
class AdminCall {
 public:
  AdminCall(rd_kafka_t* rk, rd_kafka_admin_op_t op)
      : queue_(rd_kafka_queue_new(rk)), options_(rd_kafka_AdminOptions_new(rk, op)) {}
  ~AdminCall() {
    if (event_) rd_kafka_event_destroy(event_);
    rd_kafka_AdminOptions_destroy(options_);
    rd_kafka_queue_destroy(queue_);
  }
  AdminCall(const AdminCall&) = delete;
  AdminCall& operator=(const AdminCall&) = delete;

  rd_kafka_AdminOptions_t* options() { return options_; }
  rd_kafka_queue_t* queue() { return queue_; }

  /// Waits for the answer; OK when the request as a whole succeeded.
  Status Wait(int timeout_ms, const std::string& brokers, const std::string& what) {
    event_ = rd_kafka_queue_poll(queue_, timeout_ms + 2000);
    if (!event_) return KafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, brokers, what);
    if (rd_kafka_resp_err_t e = rd_kafka_event_error(event_)) {
      return KafkaStatus(e, brokers, what, rd_kafka_event_error_string(event_));
    }
    return Status::OK();
  }
  rd_kafka_event_t* event() { return event_; }

  /// Sets the request and operation timeouts.
  Status SetTimeout(int timeout_ms, bool operation) {
    char err[256];
    if (rd_kafka_AdminOptions_set_request_timeout(options_, timeout_ms, err, sizeof(err)) ||
        (operation && rd_kafka_AdminOptions_set_operation_timeout(options_, timeout_ms, err, sizeof(err)))) {
      return Status::InvalidArgument(std::string("kafka admin timeout: ") + err);
    }
    return Status::OK();
  }

 private:
  rd_kafka_queue_t* queue_;
  rd_kafka_AdminOptions_t* options_;
  rd_kafka_event_t* event_ = nullptr;
};

using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)>;
PartitionList NewPartitionList(int size) {
  return PartitionList(rd_kafka_topic_partition_list_new(size), rd_kafka_topic_partition_list_destroy);
}

}  // namespace

Result<bool> CreateKafkaTopic(rd_kafka_t* rk, const std::string& brokers, int timeout_ms, const std::string& topic,
                              int partitions, const std::map<std::string, std::string>& config) {
  char err[512];
  std::unique_ptr<rd_kafka_NewTopic_t, void (*)(rd_kafka_NewTopic_t*)> nt(
      rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err, sizeof(err)), rd_kafka_NewTopic_destroy);
  if (!nt) return Status::InvalidArgument("kafka: topic " + topic + ": " + err);
  for (const auto& [k, v] : config) {
    if (rd_kafka_NewTopic_set_config(nt.get(), k.c_str(), v.c_str())) {
      return Status::InvalidArgument("kafka: topic " + topic + ": bad config " + k);
    }
  }
  const std::string what = "creating topic " + topic;
  AdminCall call(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  RETURN_IF_ERROR(call.SetTimeout(timeout_ms, true));
  rd_kafka_NewTopic_t* list[] = {nt.get()};
  rd_kafka_CreateTopics(rk, list, 1, call.options(), call.queue());
  RETURN_IF_ERROR(call.Wait(timeout_ms, brokers, what));
  size_t n = 0;
  const rd_kafka_topic_result_t** res =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(call.event()), &n);
  for (size_t i = 0; i < n; ++i) {
    const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
    if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return false;
    if (e) return KafkaStatus(e, brokers, what, rd_kafka_topic_result_error_string(res[i]));
  }
  return true;
}

Result<std::map<std::string, std::string>> KafkaTopicConfig(rd_kafka_t* rk, const std::string& brokers,
                                                            int timeout_ms, const std::string& topic) {
  const std::string what = "describing the settings of topic " + topic;
  std::unique_ptr<rd_kafka_ConfigResource_t, void (*)(rd_kafka_ConfigResource_t*)> resource(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()), rd_kafka_ConfigResource_destroy);
  AdminCall call(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  RETURN_IF_ERROR(call.SetTimeout(timeout_ms, false));
  rd_kafka_ConfigResource_t* list[] = {resource.get()};
  rd_kafka_DescribeConfigs(rk, list, 1, call.options(), call.queue());
  RETURN_IF_ERROR(call.Wait(timeout_ms, brokers, what));
  size_t n = 0;
  const rd_kafka_ConfigResource_t** res =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(call.event()), &n);
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < n; ++i) {
    if (const rd_kafka_resp_err_t e = rd_kafka_ConfigResource_error(res[i])) {
      return KafkaStatus(e, brokers, what, rd_kafka_ConfigResource_error_string(res[i]));
    }
    size_t entries = 0;
    const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(res[i], &entries);
    for (size_t j = 0; j < entries; ++j) {
      const char* value = rd_kafka_ConfigEntry_value(configs[j]);
      out[rd_kafka_ConfigEntry_name(configs[j])] = value ? value : "";
    }
  }
  return out;
}

Result<std::map<std::string, int>> KafkaPartitionCounts(rd_kafka_t* rk, const std::string& brokers, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
  if (e || !md) {
    if (md) rd_kafka_metadata_destroy(md);
    return KafkaStatus(e ? e : RD_KAFKA_RESP_ERR__TIMED_OUT, brokers, "reading the topics");
  }
  std::map<std::string, int> out;
  Status s;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out[t.topic] = t.partition_cnt;
    } else if (t.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED && s.ok()) {
      s = KafkaStatus(t.err, brokers, std::string("reading topic ") + t.topic);
    }
  }
  rd_kafka_metadata_destroy(md);
  if (out.empty() && !s.ok()) return s;  // nothing visible because nothing is allowed
  return out;
}

Result<std::unique_ptr<KafkaAdmin>> KafkaAdmin::Make(const std::string& brokers, int timeout_ms,
                                                     const std::map<std::string, std::string>& conf) {
  if (brokers.empty()) return Status::InvalidArgument("kafka admin: no brokers");
  if (timeout_ms <= 0) return Status::InvalidArgument("kafka admin: the timeout must be positive");
  std::unique_ptr<KafkaAdmin> admin(new KafkaAdmin(brokers, timeout_ms));
  admin->conf_ = conf;
  Status s;
  admin->admin_ = NewHandle(RD_KAFKA_PRODUCER, brokers, conf, nullptr, &s);
  if (!s.ok()) return s;
  return admin;
}

KafkaAdmin::~KafkaAdmin() {
  for (rd_kafka_t* rk : {uncommitted_, committed_, admin_}) {
    if (rk) rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
}

Result<bool> KafkaAdmin::CreateTopic(const std::string& topic, int partitions,
                                     const std::map<std::string, std::string>& config) {
  return CreateKafkaTopic(admin_, brokers_, timeout_ms_, topic, partitions, config);
}

Result<std::map<std::string, std::string>> KafkaAdmin::TopicConfig(const std::string& topic) {
  return KafkaTopicConfig(admin_, brokers_, timeout_ms_, topic);
}

Result<std::map<std::string, int>> KafkaAdmin::PartitionCounts() {
  return KafkaPartitionCounts(admin_, brokers_, timeout_ms_);
}

Result<int> KafkaAdmin::PartitionCount(const std::string& topic) {
  ASSIGN_OR_RETURN(auto counts, PartitionCounts());
  auto it = counts.find(topic);
  if (it == counts.end()) return KafkaStatus(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, brokers_, "topic " + topic);
  return it->second;
}

Result<std::vector<KafkaGroupMember>> KafkaAdmin::DescribeGroup(const std::string& group) {
  const std::string what = "describing group " + group;
  AdminCall call(admin_, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  RETURN_IF_ERROR(call.SetTimeout(timeout_ms_, false));
  const char* groups[] = {group.c_str()};
  rd_kafka_DescribeConsumerGroups(admin_, groups, 1, call.options(), call.queue());
  RETURN_IF_ERROR(call.Wait(timeout_ms_, brokers_, what));
  size_t n = 0;
  const rd_kafka_ConsumerGroupDescription_t** descs = rd_kafka_DescribeConsumerGroups_result_groups(
      rd_kafka_event_DescribeConsumerGroups_result(call.event()), &n);
  std::vector<KafkaGroupMember> members;
  for (size_t i = 0; i < n; ++i) {
    if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(descs[i])) {
      return KafkaStatus(rd_kafka_error_code(e), brokers_, what, rd_kafka_error_string(e));
    }
    const size_t count = rd_kafka_ConsumerGroupDescription_member_count(descs[i]);
    for (size_t m = 0; m < count; ++m) {
      const rd_kafka_MemberDescription_t* md = rd_kafka_ConsumerGroupDescription_member(descs[i], m);
      KafkaGroupMember member;
      member.member_id = rd_kafka_MemberDescription_consumer_id(md);
      member.client_id = rd_kafka_MemberDescription_client_id(md);
      member.host = rd_kafka_MemberDescription_host(md);
      const rd_kafka_MemberAssignment_t* a = rd_kafka_MemberDescription_assignment(md);
      if (const rd_kafka_topic_partition_list_t* parts = a ? rd_kafka_MemberAssignment_partitions(a) : nullptr) {
        for (int k = 0; k < parts->cnt; ++k) member.assignment.emplace_back(parts->elems[k].topic, parts->elems[k].partition);
      }
      members.push_back(std::move(member));
    }
  }
  return members;
}

Result<std::map<std::pair<std::string, int32_t>, int64_t>> KafkaAdmin::GroupOffsets(
    const std::string& group, const std::vector<std::string>& topics) {
  const std::string what = "reading the offsets of group " + group;
  PartitionList wanted = NewPartitionList(8);
  if (!topics.empty()) {
    ASSIGN_OR_RETURN(auto counts, PartitionCounts());
    for (const std::string& topic : topics) {
      auto it = counts.find(topic);
      if (it == counts.end()) return KafkaStatus(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, brokers_, what + ": topic " + topic);
      for (int32_t p = 0; p < it->second; ++p) rd_kafka_topic_partition_list_add(wanted.get(), topic.c_str(), p);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  while (true) {
    AdminCall call(admin_, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    RETURN_IF_ERROR(call.SetTimeout(timeout_ms_, false));
    if (rd_kafka_error_t* e = rd_kafka_AdminOptions_set_require_stable_offsets(call.options(), 1)) {
      Status s = KafkaStatus(rd_kafka_error_code(e), brokers_, what, rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      return s;
    }
    rd_kafka_ListConsumerGroupOffsets_t* request =
        rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), topics.empty() ? nullptr : wanted.get());
    rd_kafka_ListConsumerGroupOffsets(admin_, &request, 1, call.options(), call.queue());
    rd_kafka_ListConsumerGroupOffsets_destroy(request);
    RETURN_IF_ERROR(call.Wait(timeout_ms_, brokers_, what));
    size_t n = 0;
    const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(call.event()), &n);
    std::map<std::pair<std::string, int32_t>, int64_t> out;
    std::string unstable;
    for (size_t i = 0; i < n; ++i) {
      if (const rd_kafka_error_t* e = rd_kafka_group_result_error(groups[i])) {
        return KafkaStatus(rd_kafka_error_code(e), brokers_, what, rd_kafka_error_string(e));
      }
      const rd_kafka_topic_partition_list_t* parts = rd_kafka_group_result_partitions(groups[i]);
      for (int k = 0; parts && k < parts->cnt; ++k) {
        const rd_kafka_topic_partition_t& p = parts->elems[k];
        if (p.err == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT) {
          unstable = std::string(p.topic) + "[" + std::to_string(p.partition) + "]";
        } else if (p.err) {
          return KafkaStatus(p.err, brokers_, what + " (" + p.topic + ")");
        } else if (p.offset >= 0) {
          out[{p.topic, p.partition}] = p.offset;
        }
      }
    }
    if (unstable.empty()) return out;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable("kafka " + brokers_ + ": " + what + ": " + unstable +
                                 " still has offsets of an open transaction (UNSTABLE_OFFSET_COMMIT) after " +
                                 std::to_string(timeout_ms_) + " ms; retry");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Status KafkaAdmin::DeleteRecordsBefore(const std::string& topic, const std::map<int32_t, int64_t>& before) {
  if (before.empty()) return Status::OK();
  const std::string what = "deleting records of " + topic;
  PartitionList offsets = NewPartitionList(static_cast<int>(before.size()));
  for (const auto& [p, o] : before) rd_kafka_topic_partition_list_add(offsets.get(), topic.c_str(), p)->offset = o;
  std::unique_ptr<rd_kafka_DeleteRecords_t, void (*)(rd_kafka_DeleteRecords_t*)> request(
      rd_kafka_DeleteRecords_new(offsets.get()), rd_kafka_DeleteRecords_destroy);
  AdminCall call(admin_, RD_KAFKA_ADMIN_OP_DELETERECORDS);
  RETURN_IF_ERROR(call.SetTimeout(timeout_ms_, true));
  rd_kafka_DeleteRecords_t* list[] = {request.get()};
  rd_kafka_DeleteRecords(admin_, list, 1, call.options(), call.queue());
  RETURN_IF_ERROR(call.Wait(timeout_ms_, brokers_, what));
  const rd_kafka_topic_partition_list_t* parts =
      rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(call.event()));
  for (int k = 0; parts && k < parts->cnt; ++k) {
    if (parts->elems[k].err) {
      return KafkaStatus(parts->elems[k].err, brokers_, what + "[" + std::to_string(parts->elems[k].partition) + "]");
    }
  }
  return Status::OK();
}

Result<std::vector<KafkaPartitionEnds>> KafkaAdmin::EndOffsets(const std::string& topic) {
  ASSIGN_OR_RETURN(int partitions, PartitionCount(topic));
  // The consumer handles only this needs, made at its first call: each handle has its threads.
  Status s;
  if (!committed_) committed_ = NewHandle(RD_KAFKA_CONSUMER, brokers_, conf_, "read_committed", &s);
  if (s.ok() && !uncommitted_) uncommitted_ = NewHandle(RD_KAFKA_CONSUMER, brokers_, conf_, "read_uncommitted", &s);
  if (!s.ok()) return s;
  std::vector<KafkaPartitionEnds> out;
  for (int32_t p = 0; p < partitions; ++p) {
    KafkaPartitionEnds ends;
    ends.partition = p;
    int64_t low = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(uncommitted_, topic.c_str(), p, &ends.low,
                                                             &ends.high_watermark, timeout_ms_);
    if (!e) e = rd_kafka_query_watermark_offsets(committed_, topic.c_str(), p, &low, &ends.last_stable, timeout_ms_);
    if (e) return KafkaStatus(e, brokers_, "reading the end offsets of " + topic + "[" + std::to_string(p) + "]");
    out.push_back(ends);
  }
  return out;
}

}  // namespace sluice
