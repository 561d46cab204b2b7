#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/source.h"

namespace sluice {

/// Consumes a Kafka topic as a member of a consumer group (librdkafka KafkaConsumer).
///
/// Positions are per-partition offsets. The positions stored in the sink are the truth: when
/// the group assigns a partition, the source seeks to the sink's committed position (or the
/// beginning); Kafka's own committed offsets are only informational. Before partitions are
/// revoked, the worker's state is checkpointed (SourceContext::checkpoint_before_revoke).
/// With until_caught_up the source stops at the end offsets seen when it opened.
///
/// Each instance is one group member owned by one worker thread; librdkafka calls the rebalance
/// callback on that thread, inside Poll().
class KafkaSource : public Source, public RdKafka::RebalanceCb {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config,
                                                           int max_instances);
  ~KafkaSource() override;

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records,
                         std::chrono::milliseconds budget) override;
  std::string_view kind() const override { return "kafka"; }
  bool EndIsFinal() const override { return false; }
  DecoderOptions decoder_options() const override { return decoder_; }
  std::vector<std::pair<int32_t, int64_t>> Lag() const override;
  std::vector<int32_t> Partitions() const override { return {assigned_.begin(), assigned_.end()}; }
  /// Commits the sink's positions to Kafka too, for lag monitoring tools; never read back.
  void OnCommitted(const std::vector<std::pair<int32_t, int64_t>>& positions) override;
  void Close() override;

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

  struct Settings {
    std::string brokers, topic, group, client_id;
    std::map<std::string, std::string> properties;  ///< extra librdkafka settings
  };
  KafkaSource(Settings settings, DecoderOptions decoder)
      : settings_(std::move(settings)), decoder_(std::move(decoder)) {}

 private:
  /// Reads the end offsets of every partition (for until_caught_up).
  Status FetchEndOffsets();
  bool CaughtUp() const;

  Settings settings_;
  DecoderOptions decoder_;
  SourceContext ctx_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::set<int32_t> assigned_;
  std::map<int32_t, int64_t> next_;          ///< next offset to process, per assigned partition
  std::map<int32_t, int64_t> end_offsets_;   ///< until_caught_up: stop here
  std::map<int32_t, int64_t> high_watermark_;
  std::chrono::steady_clock::time_point opened_;
  Status callback_error_;
  RawBatch* in_flight_ = nullptr;  ///< the batch Poll() is filling, while inside consume()
  bool paused_ = false;
};

}  // namespace sluice
