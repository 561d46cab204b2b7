// Helpers of the C++ tests that need the broker of `make services` (127.0.0.1:9092, or
// $SLUICE_KAFKA_BROKERS): whether it is up, unique names, plain librdkafka handles and a reader of
// what read_committed consumers see.
#pragma once

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/tests/ci_rule.h"

namespace sluice::kafkatest {

inline std::string Brokers() {
  const char* b = std::getenv("SLUICE_KAFKA_BROKERS");
  return b && *b ? b : "127.0.0.1:9092";
}

using Handle = std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)>;

/// A librdkafka handle of `type` with `conf` (plus bootstrap.servers and a quiet log), or null
/// with `error` set.
inline Handle NewHandle(rd_kafka_type_t type, const std::map<std::string, std::string>& conf,
                        std::string* error) {
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  char err[512];
  std::map<std::string, std::string> all = {{"bootstrap.servers", Brokers()}, {"log_level", "0"}};
  for (const auto& [k, v] : conf) all[k] = v;
  for (const auto& [k, v] : all) {
    if (rd_kafka_conf_set(c, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      *error = k + ": " + err;
      rd_kafka_conf_destroy(c);
      return Handle(nullptr, rd_kafka_destroy);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, c, err, sizeof(err));
  if (!rk) {
    *error = err;
    rd_kafka_conf_destroy(c);
  }
  return Handle(rk, rd_kafka_destroy);
}

inline bool BrokerUp() {
  static int up = -1;
  if (up < 0) {
    std::string error;
    Handle p = NewHandle(RD_KAFKA_PRODUCER, {}, &error);
    const rd_kafka_metadata_t* md = nullptr;
    up = p && rd_kafka_metadata(p.get(), 1, nullptr, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 1 : 0;
    if (md) rd_kafka_metadata_destroy(md);
  }
  return up == 1;
}

#define SLUICE_REQUIRE_KAFKA()                                                                         \
  do {                                                                                                 \
    if (!::sluice::kafkatest::BrokerUp()) {                                                            \
      SLUICE_SKIP_OR_FAIL("no Kafka broker at " + ::sluice::kafkatest::Brokers() + " (run `make services`)"); \
    }                                                                                                  \
  } while (0)

inline std::string Unique(const std::string& what) {
  std::random_device rd;
  return what + "-" + std::to_string(rd() % 100000000);
}

/// The values of every record of `topic` (partitions 0..partitions-1) a read_committed consumer
/// reads from the beginning to the end, in partition order.
inline std::vector<std::string> ReadCommittedValues(const std::string& topic, int partitions) {
  std::string error;
  Handle c = NewHandle(RD_KAFKA_CONSUMER,
                       {{"group.id", Unique("kfence_reader")},
                        {"isolation.level", "read_committed"},
                        {"enable.auto.commit", "false"},
                        {"enable.partition.eof", "true"},
                        {"fetch.wait.max.ms", "20"}},
                       &error);
  EXPECT_TRUE(c) << error;
  std::vector<std::string> out;
  if (!c) return out;
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  int reading = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(c.get(), topic.c_str(), p, &low, &high, 10000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    if (high <= low) continue;  // empty: no EOF would come before a first record
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ++reading;
  }
  EXPECT_EQ(rd_kafka_assign(c.get(), parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);
  std::map<int, std::vector<std::string>> by_partition;
  int eof = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (eof < reading && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 200);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eof;
    } else if (m->err) {
      ADD_FAILURE() << "reading " << topic << ": " << rd_kafka_message_errstr(m);
    } else {
      by_partition[m->partition].emplace_back(static_cast<const char*>(m->payload), m->len);
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_EQ(eof, reading) << "reading " << topic << " to its end timed out";
  rd_kafka_consumer_close(c.get());
  for (auto& [p, values] : by_partition) out.insert(out.end(), values.begin(), values.end());
  return out;
}

}  // namespace sluice::kafkatest
