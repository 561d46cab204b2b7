#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/kafka_ids.h"
#include "runtime/source.h"

namespace sluice {

/// The options of a kafka:// source (KafkaSource::Make reads them).
const OptionTable& KafkaSourceOptions();

/// Consumes Kafka topics (one, a list, or every topic matching a pattern) as a member of a
/// consumer group (librdkafka KafkaConsumer).
///
/// Partition ids are KafkaPartitionId(slot, partition) (kafka_ids.h): with one topic, the
/// partition numbers themselves. With several, each slot's topic is committed as the identity
/// position kTopicSlotBase + slot, and a slot found committed for another topic stops the run.
///
/// Positions are per-partition offsets. The positions stored in the sink are the truth: when
/// the group assigns a partition, the source seeks to the sink's committed position (or the
/// beginning); Kafka's own committed offsets are only informational. Before partitions are
/// revoked, and in Close() before the consumer leaves the group, the worker's state is
/// checkpointed (SourceContext::checkpoint_before_revoke). A lost assignment (this member's
/// session expired, or it did not poll within max.poll.interval.ms: the partitions are another
/// member's already) goes to SourceContext::drop_lost instead, which drops what was read of them
/// uncommitted; when the engine cannot drop them alone, the revoke way is taken.
/// With until_caught_up the source stops at the end offsets seen when it opened, once every
/// partition of the topic has reached them: its own by reading, the others by the sink's
/// committed positions (whoever read them: another member, another process, this one before a
/// rebalance). It waits for partitions that are not assigned yet (a member of a killed process
/// keeps them until its session times out), and gives up (kAborted) after
/// SourceContext::catch_up_timeout without progress.
///
/// A committed position beyond a partition's end (the topic was deleted and recreated) makes the
/// partition be read from its beginning, and one below its start (records deleted by retention)
/// from its start; both are logged as warnings. A recreated topic's partition is the next
/// generation of the input (Generation(), stored as kGenerationPartitionBase + partition), so its
/// dead letters keep apart from the old topic's at the same offsets. An input read without a gap
/// (option `gapless`: stage two's repartition topic) has neither: each is an error.
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
  bool GroupManaged() const override { return true; }
  bool EndIsFinal() const override { return false; }
  DecoderOptions decoder_options() const override { return decoder_; }
  std::vector<std::pair<int32_t, int64_t>> Lag() const override;
  std::vector<ReadPosition> ReadPositions() const override;
  std::vector<std::pair<int32_t, int64_t>> PositionsPastRecords() const override;
  int64_t Generation(int32_t partition) const override;
  std::vector<int32_t> Partitions() const override { return {assigned_.begin(), assigned_.end()}; }
  /// Every partition of the topics (read at Open), assigned here or not.
  std::vector<int32_t> InputPartitions() const override { return topic_partitions_; }
  /// Commits the sink's positions to Kafka too, for lag monitoring tools; never read back.
  void OnCommitted(const std::vector<std::pair<int32_t, int64_t>>& positions) override;
  void Close() override;
  /// With several topics: the topic and Kafka partition of an id.
  std::optional<PartitionName> NamePartition(int32_t id) const override;
  /// `kafka_missing_topic_checks`: the metadata checks that found a topic (or every topic of
  /// the pattern) missing, at open and after 1, 2, 4, ... s (at most 30 s apart); growing while
  /// the run waits for it.
  std::vector<SourceCounter> Counters() const override;

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

  struct Settings {
    std::string brokers, group, client_id;
    std::vector<std::string> topics;  ///< the topics to read; the first takes slot 0
    /// Instead of `topics`: a regular expression (librdkafka's "^..." subscription); topics
    /// created later that match it are read too, from the next metadata refresh on.
    std::string pattern;
    std::string legacy_topic;                 ///< with `pattern`: the topic in slot 0, if any
    std::map<std::string, int32_t> slot_pins; ///< topic_slots
    std::map<std::string, std::string> properties;  ///< extra librdkafka settings
    /// Non-empty (option `gapless`): the topic is the pipeline's own data, to be read without
    /// a gap (stage two's repartition topic, whose records are partial counts nobody else
    /// has). A partition starts exactly at its committed position, or at offset 0 without one;
    /// records deleted unread (the position before the first offset, or none and a first
    /// offset above 0: retention, or a purge by a run into another sink) or a recreated topic
    /// (the position beyond the end) fail the run with kFailedPrecondition, whose message ends
    /// with this text: what to do.
    std::string gapless_remedy;
  };
  KafkaSource(Settings settings, DecoderOptions decoder)
      : settings_(std::move(settings)), decoder_(std::move(decoder)) {}
  /// What the pipeline file asked for (brokers, topics, group), for `sluice status`.
  const Settings& settings() const { return settings_; }

 private:
  /// Reads the end offsets of every partition (for until_caught_up), trying up to `attempts`
  /// times a second apart (a broker that is still starting is no reason to give up a batch run;
  /// inside Poll() one attempt, so that a broker's hiccup cannot hold the poll loop for minutes).
  Status FetchEndOffsets(int attempts);
  /// SourceContext::take_end_offsets_when: takes the end offsets once it says so, and once every
  /// partition's last stable offset has reached its high watermark as it was when the hook said
  /// so: every record written before then (stage one's last transaction, whose commit marker the
  /// broker may not have written yet when commit_transaction returned) is then decided and
  /// below the ends. Asks at most every 200 ms, one attempt per poll; while it waits for the
  /// last stable offsets, catch_up_timeout runs.
  Status TakeDeferredEndOffsets();
  /// The low offset, high watermark (committed or not) and last stable offset of every
  /// partition of the topics read now, asked on end_admin_'s handles.
  Result<std::map<int32_t, KafkaPartitionEnds>> DeferredEnds();
  /// Takes `high` as partition `id`'s end offset for --until-caught-up and `low` as its first
  /// (FetchEndOffsets, TakeDeferredEndOffsets).
  void TakeEnd(int32_t id, int64_t low, int64_t high);
  /// True while the end offsets wait for SourceContext::take_end_offsets_when.
  bool EndOffsetsDeferred() const { return ctx_.take_end_offsets_when && !end_offsets_taken_; }
  /// Reads the topics' partitions into topic_partitions_ (best effort): at open, then while
  /// missing_ is set after 1 s and twice as long each time, at most every 30 s. A topic that does not exist (or a pattern matching none) is
  /// logged as a warning each time and kept in missing_; found, it is logged and missing_ cleared.
  void ListPartitions();
  /// True when the source reads more than one topic, or a pattern.
  bool Several() const { return settings_.topics.size() > 1 || !settings_.pattern.empty(); }
  /// The topics to read now with their partition counts (a pattern: those matching it in the
  /// broker's metadata), each given its slot; fails on a slot taken by another topic.
  Result<std::vector<std::pair<std::string, int>>> MetadataTopics(int timeout_ms);
  /// The slot of `topic`, checked against the topic committed for that slot.
  Result<int32_t> Slot(const std::string& topic);
  /// The id of `topic`'s partition (-1 when the topic has no slot: an error was recorded).
  int32_t IdOf(const std::string& topic, int32_t partition);
  /// The topic and Kafka partition of an id.
  const std::string& TopicOf(int32_t id) const { return slots_.TopicOf(SlotOfId(id)); }
  /// "topic[p]" for logs.
  std::string Label(int32_t id) const { return slots_.Label(id); }
  /// Describes what is read: "topic t", "topics a, b", "topics matching ^x".
  std::string What() const;
  /// until_caught_up: true once every partition has reached its end offset (its own by
  /// reading, the others in the sink). Reads the sink at most once a second.
  bool CaughtUp();
  /// until_caught_up: fails when nothing moved for catch_up_timeout.
  Status CheckProgress();
  /// Where to start reading an assigned partition whose committed position is `committed`:
  /// the committed position, unless it lies outside the partition's offsets. Sets `recreated`
  /// when the position lies beyond the end (another life of the topic).
  int64_t StartOffset(int32_t partition, int64_t committed, bool* recreated);
  /// Settings::gapless_remedy: fails (kFailedPrecondition, saying what to do) unless the
  /// assigned partition `id` can be read from exactly `committed`, or from offset 0 without a
  /// committed position: records deleted unread, or a position beyond the end (the topic was
  /// recreated). kAborted when its offsets cannot be read.
  Status CheckNoGap(int32_t id, std::optional<int64_t> committed);

  Settings settings_;
  DecoderOptions decoder_;
  SourceContext ctx_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  TopicSlots slots_;
  std::set<int32_t> checked_slots_;  ///< slots whose committed topic was compared
  std::set<int32_t> assigned_;
  std::vector<int32_t> topic_partitions_;  ///< every partition of the topics, as listed at Open
  std::map<int32_t, int64_t> next_;          ///< next offset to process, per assigned partition
  /// Partitions whose end (a commit marker) lies past their last record, with that offset.
  std::map<int32_t, int64_t> past_records_;
  std::map<int32_t, int64_t> end_offsets_;   ///< until_caught_up: stop here
  std::map<int32_t, int64_t> low_offsets_;   ///< until_caught_up: first offset, at start
  /// until_caught_up: the sink's committed position of each partition this instance does not
  /// read (-1: none), as last read; a change counts as progress.
  std::map<int32_t, int64_t> others_committed_;
  /// until_caught_up: committed positions found beyond the partition's end at start (the topic
  /// was recreated); such a position does not count until it is rewritten.
  std::map<int32_t, int64_t> stale_;
  /// The generation of each partition assigned (see Source::Generation): the committed one, one
  /// more when the committed position was beyond the partition's end (the topic was recreated).
  std::map<int32_t, int64_t> generations_;
  /// Partitions whose generation this instance started; committed with their positions.
  std::set<int32_t> new_generations_;
  std::chrono::steady_clock::time_point next_sink_check_;
  std::chrono::steady_clock::time_point last_progress_;
  std::chrono::steady_clock::time_point last_poll_end_;  ///< when Poll() last returned
  std::chrono::steady_clock::time_point next_wait_log_;
  bool caught_up_ = false;
  bool end_offsets_taken_ = false;  ///< take_end_offsets_when said so and they were read
  /// take_end_offsets_when said so: the high watermarks then, which the last stable offsets
  /// must reach before they are taken as the ends (TakeDeferredEndOffsets).
  std::optional<std::map<int32_t, int64_t>> end_floor_;
  std::chrono::steady_clock::time_point next_end_query_;  ///< TakeDeferredEndOffsets: not before
  std::string end_behind_;  ///< the partitions whose last stable offset is below end_floor_
  std::unique_ptr<KafkaAdmin> end_admin_;  ///< DeferredEnds' handles, made when first told
  /// True until the group's first assignment, and from a revoke to the next assignment. With
  /// task state (claim_position) a member in between is not caught up: records held for a
  /// partition's task come back only with the claim on assignment.
  bool awaiting_assignment_ = true;
  std::string waiting_;     ///< until_caught_up: the partitions others still hold, as last read
  std::string last_error_;  ///< the last error the consumer reported, for the give-up message
  std::map<int32_t, int64_t> high_watermark_;
  std::chrono::steady_clock::time_point opened_;
  Status callback_error_;
  /// format = "avro": a record whose writer schema could not be fetched yet (registry down).
  std::unique_ptr<RdKafka::Message> held_;
  std::set<int32_t> known_schema_ids_;  ///< avro: schema ids already in the decoder's cache
  RawBatch* in_flight_ = nullptr;  ///< the batch Poll() is filling, while inside consume()
  bool paused_ = false;
  /// A plain run whose topic does not exist yet: the message (did-you-mean included), repeated
  /// as a warning every 30 s until the topic appears.
  std::string missing_;
  /// When to check again (after 1 s, then twice as long each time, at most 30 s apart), and
  /// when to repeat the warning.
  std::chrono::steady_clock::time_point next_missing_check_;
  std::chrono::seconds missing_recheck_{0};
  std::chrono::steady_clock::time_point next_missing_warning_;
  /// When a missing topic was found (the consumer's unknown-topic errors are stale for a while).
  std::chrono::steady_clock::time_point found_at_;
  std::atomic<int64_t> missing_checks_{0};  ///< Counters(), read by the monitoring thread
};

}  // namespace sluice
