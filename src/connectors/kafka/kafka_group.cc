#include "connectors/kafka/kafka_group.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <regex>

#include "connectors/kafka/kafka_uri.h"

namespace sluice {
namespace {

/// A short-lived producer handle: metadata, offsets and admin requests need no group.
Result<std::unique_ptr<RdKafka::Producer>> Client(const std::string& brokers) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", brokers));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "3"));
  std::string err;
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  if (!p) return Status::InvalidArgument("kafka client: " + err);
  return p;
}

}  // namespace

Result<std::vector<KafkaGroupMember>> DescribeKafkaGroup(const std::string& brokers, const std::string& group,
                                                         int timeout_ms) {
  ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Producer> client, Client(brokers));
  rd_kafka_t* rk = client->c_ptr();
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  char err[256];
  rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, err, sizeof(err));
  const char* groups[] = {group.c_str()};
  rd_kafka_DescribeConsumerGroups(rk, groups, 1, options, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, timeout_ms + 2000);
  Status status;
  std::vector<KafkaGroupMember> members;
  if (!ev) {
    status = Status::Unavailable("kafka: no answer to DescribeConsumerGroups(" + group + ") from " + brokers);
  } else if (rd_kafka_event_error(ev)) {
    status = Status::Unavailable("kafka: DescribeConsumerGroups(" + group + "): " + rd_kafka_event_error_string(ev));
  } else {
    const rd_kafka_DescribeConsumerGroups_result_t* result = rd_kafka_event_DescribeConsumerGroups_result(ev);
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t** descs = rd_kafka_DescribeConsumerGroups_result_groups(result, &n);
    for (size_t i = 0; i < n && status.ok(); ++i) {
      if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(descs[i])) {
        status = Status::Unavailable("kafka: group " + group + ": " + rd_kafka_error_string(e));
        break;
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
          for (int k = 0; k < parts->cnt; ++k) {
            member.assignment.emplace_back(parts->elems[k].topic, parts->elems[k].partition);
          }
        }
        members.push_back(std::move(member));
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  if (!status.ok()) return status;
  return members;
}

Result<std::map<std::string, std::vector<int64_t>>> KafkaEndOffsets(const std::string& brokers,
                                                                    const std::vector<std::string>& topics,
                                                                    const std::string& pattern, int timeout_ms) {
  ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Producer> client, Client(brokers));
  RdKafka::Metadata* md = nullptr;
  RdKafka::ErrorCode rc = client->metadata(true, nullptr, &md, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> owned(md);
  if (rc != RdKafka::ERR_NO_ERROR || !md) {
    return Status::Unavailable("kafka: cannot read the metadata of " + brokers + ": " + RdKafka::err2str(rc));
  }
  std::optional<std::regex> re;
  if (!pattern.empty()) re.emplace(pattern, std::regex::extended);
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto* tm : *md->topics()) {
    if (tm->err() != RdKafka::ERR_NO_ERROR) continue;
    const std::string& name = tm->topic();
    if (re ? !std::regex_search(name, *re) : std::find(topics.begin(), topics.end(), name) == topics.end()) continue;
    std::vector<int64_t>& ends = out[name];
    ends.assign(tm->partitions()->size(), -1);
    for (const auto* pm : *tm->partitions()) {
      int64_t low = 0, high = 0;
      rc = client->query_watermark_offsets(name, pm->id(), &low, &high, timeout_ms);
      if (rc != RdKafka::ERR_NO_ERROR) {
        return Status::Unavailable("kafka: cannot read the offsets of " + name + "[" + std::to_string(pm->id()) +
                                   "]: " + RdKafka::err2str(rc));
      }
      if (pm->id() >= 0 && static_cast<size_t>(pm->id()) < ends.size()) ends[pm->id()] = high;
    }
  }
  return out;
}

}  // namespace sluice
