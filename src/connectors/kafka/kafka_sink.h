#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/option_spec.h"
#include "connectors/kafka/avro_encoder.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"
#include "runtime/sink_inventory.h"

namespace sluice {

/// The options of a kafka:// sink (KafkaSink::Make reads them).
const OptionTable& KafkaSinkOptions();

/// Writes output rows to a Kafka topic as JSON objects, exactly once, with the transactional
/// producer (see src/connectors/kafka/README.md for the URI, options and record layout).
///
/// Each Commit() is one transaction holding the rows, the dead letters (one message each, in the
/// format of core/dead_letter.h, in the dead-letter topic), the checkpoint's positions and state (in
/// a compacted positions topic, the truth that LoadPositions()/LoadState() read back with
/// read_committed) and, with `consumer_group`, the consumed offsets for that group. A failed
/// transaction is aborted and Commit() fails (kUnavailable: the runner retries; a record too
/// large: kInvalidArgument naming the row). A commit whose outcome is unknown is resolved on the
/// next call by re-initialising the producer and reading the commit marker back. A producer
/// fenced by a newer process with the same transactional.id fails with kInternal.
///
/// Tasks (SupportsTasks()): each source partition's state, progress, fence and owner in a
/// `["task", pipeline, source, p]` record of the positions topic, all in its partition 0, whose
/// order serializes claims and commits of tasks: each waits until the transactions before its
/// first record there are resolved and reads up to it, so a commit of a task claimed meanwhile
/// fails with kFenced (README "Tasks").
///
/// Lifecycle and threading as Sink; Healthy() may be called from any thread.
class KafkaSink : public Sink, public SinkReader, public SinkExplainer {
 public:
  static Result<std::unique_ptr<Sink>> Make(const SinkConfig& config);
  ~KafkaSink() override;

  Status Check(const SinkContext& ctx) const override;
  Status Open(const SinkContext& ctx) override;
  Result<std::vector<StoredPosition>> LoadPositions() override;
  Result<std::string> LoadState() override;
  bool SupportsState() const override { return true; }
  /// Tasks: `["task", pipeline, source, p]` records in the positions topic (README "Tasks").
  bool SupportsTasks() const override { return true; }
  /// Stage one's internal sink (Settings::repartition_partitions > 0, MakeStageOneSink).
  bool TakesStageOne() const override { return settings_.repartition_partitions > 0; }
  Result<TaskClaim> ClaimTask(const TaskId& task, const OwnerInfo& owner) override;
  Result<std::vector<TaskRow>> LoadTaskProgress() override;
  /// Opens only the read_committed reader of the positions topic (no producer, no topic
  /// created): LoadPositions() and LoadTaskProgress() may follow (`sluice status`); a missing
  /// positions topic reads as empty.
  Status OpenForReading(const SinkContext& ctx) override;
  /// The output topic is not read back: `sluice verify` cannot check this sink.
  Result<std::vector<std::vector<Value>>> ReadOutput() override {
    return Status::InvalidArgument("the kafka sink's output topic cannot be read back, so sluice verify cannot check it");
  }
  Status Commit(const Checkpoint& checkpoint) override;
  bool StoresDeadLetters() const override { return true; }
  int64_t RowsRejected() const override { return rows_rejected_; }
  std::string DeadLetterLocation() const override;
  bool Healthy() const override { return healthy_.load(); }
  void Close() override;
  /// Reads, read_committed and from a consumer of its own that commits nothing, the positions
  /// topic (every pipeline's committed positions, state size, and as last checkpoint time the
  /// newest timestamp of its records there) and the dead-letter topic (counts by reason with
  /// samples), without creating either. kNotFound when the positions topic does not exist,
  /// kUnavailable when the brokers cannot be reached.
  Result<SinkInventory> Inventory(const InventoryOptions& options) override;
  /// FailedPrecondition: a running pipeline does not re-read its dead-letter topic to count it.
  Result<std::map<std::string, int64_t>> CountDeadLetters() override {
    return Status::FailedPrecondition("the kafka sink's dead letters are counted by sluice inspect only");
  }
  /// The topics, message key and format, and what one transaction holds (no broker contacted).
  Result<SinkExplanation> Explain(const SinkContext& ctx) override;

  struct Settings {
    std::string brokers;
    std::string topic;
    std::string key;  ///< output column used as the message key; empty: none
    std::string key_where;
    std::string transactional_id;  ///< empty: sluice-<pipeline>-<topic>
    std::string positions_topic;   ///< empty: <topic>.sluice-positions
    std::string dead_letter_topic;  ///< empty: <topic>.sluice-dead-letters
    std::string consumer_group;    ///< with consumer_topic: send consumed offsets to this group
    std::string consumer_topic;
    int64_t timeout_ms = 30'000;
    std::map<std::string, std::string> properties;  ///< extra librdkafka producer settings
    /// format = "avro": the registry the value schema is registered in, and the record's name.
    std::optional<SchemaRegistrySettings> avro;
    std::string avro_record_name = "sluice.Row";
    /// Above 0: stage one's internal sink of a repartitioned pipeline (MakeStageOneSink):
    /// `topic` is the repartition topic, created with this many partitions (an existing one with
    /// another count is refused), and each commit writes Checkpoint::stage_one and the dead
    /// letters there as repartition records (runtime/repartition_output.h) instead of rows.
    int32_t repartition_partitions = 0;
    /// Above 0: the producer's transaction.timeout.ms (unless `properties` sets it); 0: max(60 s,
    /// 2 x timeout_ms). Stage one's sink takes a short one (StageOneSinkOptions).
    int64_t transaction_timeout_ms = 0;
  };
  explicit KafkaSink(Settings settings);

  const Settings& settings() const { return settings_; }

  /// Called at "before_commit" (everything produced, commit_transaction not called yet) and
  /// "after_commit" (committed); a non-OK status there fails the Commit() the way a broker
  /// error at that point would (before: the transaction is aborted; after: the outcome is
  /// treated as unknown).
  using TestHook = std::function<Status(std::string_view stage)>;
  void SetTestHook(TestHook hook) { hook_ = std::move(hook); }

 private:
  class DeliveryReport;

  /// Creates the read_committed consumer that reads the positions topic back.
  Status MakeReader();
  /// Creates the producer and calls init_transactions (which fences older producers).
  Status InitProducer();
  /// Creates `topic` when the broker does not have it (compacted when `compact`).
  Status EnsureTopic(const std::string& topic, bool compact);
  /// Stage one: creates the repartition topic with repartition_partitions partitions
  /// (cleanup.policy=delete), or checks that the existing one has that many.
  Status EnsureRepartitionTopic();
  /// Stage one: produces BuildStageOneMessages of the checkpoint (its dead letters, then each
  /// task's partials and control) to the repartition topic.
  Status ProduceStageOne(const Checkpoint& cp);
  /// Reads the positions topic from where the last read stopped up to its end (read_committed).
  /// `partition0_end`: read partition 0 at least to this offset (an end reported below it is
  /// not taken as the end).
  Status ReadBack(int64_t partition0_end = -1);
  /// Aborts the open transaction; when that fails the producer is re-initialised next time.
  void Abort();
  /// After an aborted transaction: returns true when the broker refused a row of it as too
  /// large that is not yet left out, and leaves it out of the next attempt (rejected_).
  bool RetryWithoutRefusedRow();
  /// Turns a transactional API error into a Status, remembering fatal (fenced) errors.
  Status TxnError(const std::string& what, int code, std::string text, bool fatal);
  Status TxnError(const std::string& what, RdKafka::Error* e);
  std::string PositionKey(const std::string& source, int32_t partition) const;
  std::string TaskKey(const TaskId& task) const;

  /// One task as the positions topic holds it: `fence`, `max_fence` and `owner` from its latest
  /// record (a claim or a commit), progress and state from its latest record that carried them.
  struct StoredTask {
    int64_t fence = 0;
    int64_t max_fence = 0;
    std::string owner;
    TaskProgress progress;
    std::string state;
    int64_t updated_micros = 0;
  };
  /// Folds one task record's value (a JSON header line, then the state bytes) into `t`;
  /// returns false (logged) for a value it cannot read.
  static bool ParseTaskRecord(const std::string& value, StoredTask* t);
  /// Produces a task record to partition 0 of the positions topic (every task record goes
  /// there: the order of that partition decides which of two racing writers came first).
  Status ProduceTaskRecord(const TaskId& task, int64_t fence, const std::string& owner,
                           const TaskProgress* progress, const std::string* state);
  /// With this sink's transaction open and its task records produced: flushes them, waits until
  /// every transaction that wrote to partition 0 before them is resolved (the last stable offset
  /// reaches this transaction's first record there), then reads the positions topic up to that
  /// point. What ReadBack() leaves in tasks_ is then exactly what was committed before this
  /// transaction, whatever commits after it. Sets *interleaved instead (reads nothing) when a
  /// record of another transaction lies between this transaction's records in partition 0:
  /// a claim there reads part of this transaction, so the caller aborts it and tries again.
  Status ReadUpToOwnRecords(bool* interleaved);
  /// Moves a legacy `["state", pipeline]` record into task records (Open with SinkContext::tasks).
  Status MigrateLegacyState();
  /// The checks of a commit of tasks, after ReadUpToOwnRecords(): every task's latest fence is
  /// the checkpoint's (else kFenced), no legacy state next to task records.
  Status CheckFences(const Checkpoint& cp) const;

  // The steps of Commit(), in order.

  /// After a commit whose outcome was unknown (a new producer is initialised): reads the
  /// positions topic back and returns whether checkpoint `checkpoint_id` was committed.
  Result<bool> SettleCommitInDoubt(int64_t checkpoint_id);
  Status BeginTransaction();
  /// Produces one message in the open transaction, waiting while the local queue is full.
  /// `row` is 1 + the row's index in the checkpoint (0: not a result row); a result row the
  /// producer refuses as too large is recorded in rejected_ instead of failing.
  Status Produce(const std::string& topic, const std::string& key, const std::string* payload,
                 uintptr_t row, int32_t partition = RdKafka::Topic::PARTITION_UA);
  /// Produces everything a checkpoint writes, in order: result rows, dead letters, positions,
  /// state, the commit marker, the consumed offsets; then the "before_commit" hook.
  Status ProduceCheckpoint(const Checkpoint& cp, const std::string& marker);
  /// Produces the result rows (JSON or Avro) to the topic, leaving out rejected_ ones.
  Status ProduceRows(const Checkpoint& cp);
  /// Returns the letters of the rows rejected_ (logged) followed by the checkpoint's own.
  std::vector<DeadLetter> LettersToWrite(const Checkpoint& cp) const;
  Status ProduceDeadLetters(const std::vector<DeadLetter>& letters);
  Status ProducePositionsStateAndMarker(const Checkpoint& cp, const std::string& marker);
  /// Adds the consumed offsets of `consumer_group` to the transaction.
  Status SendConsumedOffsets(const Checkpoint& cp);
  /// Commits the open transaction. On failure `*retry` says the transaction was aborted for a
  /// row the broker refused as too large, now left out: the checkpoint is to be written again.
  Status CommitTransaction(bool* retry);
  /// Remembers what the committed checkpoint stored (positions, state, marker).
  void RecordCommitted(const Checkpoint& cp, const std::string& marker);

  Settings settings_;
  SinkContext ctx_;
  std::optional<size_t> key_slot_;
  std::unique_ptr<AvroRowEncoder> avro_;  ///< format = "avro"
  std::unique_ptr<DeliveryReport> delivery_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> reader_;
  std::map<int32_t, int64_t> read_next_;  ///< positions topic: next offset to read, per partition
  std::map<std::pair<std::string, int32_t>, int64_t> positions_;
  std::map<TaskId, StoredTask> tasks_;  ///< this pipeline's tasks, as read back
  std::map<TaskId, std::string> claimed_owner_;  ///< owner text of the tasks this instance claimed
  bool reading_only_ = false;  ///< OpenForReading: no producer
  bool no_positions_topic_ = false;  ///< OpenForReading found no positions topic
  std::string state_;
  std::string commit_marker_;
  /// The marker of a transaction whose commit outcome is unknown; resolved by the next Commit().
  std::string pending_marker_;
  /// A commit of tasks found another transaction's record between its own in partition 0
  /// (ReadUpToOwnRecords); Commit() aborts and writes it again, up to kInterleavedRetries times.
  bool interleaved_ = false;
  int interleaved_retries_ = 0;
  static constexpr int kInterleavedRetries = 20;
  bool needs_init_ = true;
  /// The rows of checkpoint `rejected_cp_` that the producer or the broker refused as too
  /// large (index -> message): later attempts of that checkpoint leave them out and
  /// dead-letter them instead.
  int64_t rejected_cp_ = -1;
  std::map<size_t, std::string> rejected_;
  int64_t rows_rejected_ = 0;
  std::string fatal_;
  std::string token_prefix_;
  int64_t attempts_ = 0;
  std::atomic<bool> healthy_{true};
  TestHook hook_;
};

/// What stage one's internal sink needs (docs/notes-16/repartition.md, "Exactly once").
struct StageOneSinkOptions {
  std::string brokers;
  std::string pipeline;
  int32_t partitions = 0;  ///< R: the repartition topic's partition count
  std::string topic;       ///< empty: RepartitionTopicName(pipeline)
  std::string positions_topic;  ///< empty: `<topic>.sluice-positions` (task records, positions)
  int64_t timeout_ms = 30'000;
  std::map<std::string, std::string> properties;  ///< extra librdkafka producer settings
  /// The producer's transaction.timeout.ms (kStageOneTransactionTimeoutMs unless set; see there).
  int64_t transaction_timeout_ms = 0;
  /// Empty: `sluice-<pipeline>-repartition-<host>-<pid>-<8 random hex digits>`, unique per
  /// process and per sink instance (no user-set id is needed; StageOneTransactionalId).
  std::string transactional_id;
};

/// Stage one's transaction.timeout.ms by default: 10 s. Its transactional id is unique per
/// process, so when a process dies in the middle of a commit (kill -9, a crash, a lost machine)
/// no restarted producer aborts its open transaction: the coordinator does, after this timeout
/// (and its next abort scan, every 10 s by default). Until then the last stable offset of every
/// repartition partition (each commit writes a control to each) and of partition 0 of the
/// positions topic stays before that transaction: every stage two and every stage-one claim and
/// commit of the pipeline waits. A stage-one transaction lasts one commit (begun and committed
/// by Commit(), which writes a checkpoint's small partials, controls and task records), so 10 s
/// is ample; Kafka's 60 s default made each such death a stall of 60-70 s.
inline constexpr int64_t kStageOneTransactionTimeoutMs = 10'000;

/// The settings stage one's sink creates the repartition topic with: records up to the
/// producer's limit (a dead letter carries its record's whole payload), and no retention
/// (retention.ms and retention.bytes -1): stage two must read every record, and deletes what it
/// has read itself (apps/sluice/repartition_purge.h), as Kafka Streams does with its
/// repartition topics.
std::map<std::string, std::string> RepartitionTopicSettings();

/// The fixes (`NAME=VALUE`, for kafka-configs --add-config) an existing repartition topic whose
/// settings are `config` needs so that the broker never deletes its records unread: its
/// retention.ms and retention.bytes -1. Empty: none. Pure.
std::vector<std::string> RepartitionRetentionFixes(const std::map<std::string, std::string>& config);

/// The transactional.id a stage-one sink takes when none is given: unique per call.
std::string StageOneTransactionalId(const std::string& pipeline);

/// Makes stage one's internal sink: a KafkaSink on the repartition topic with
/// Settings::repartition_partitions = options.partitions (refused below 1). Give it to the stage-one
/// runner through RunOptions::sink_override with RunOptions::stage_one.
Result<std::unique_ptr<Sink>> MakeStageOneSink(const StageOneSinkOptions& options);

}  // namespace sluice
