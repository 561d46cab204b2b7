#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/pipeline_config.h"
#include "core/status.h"
#include "operators/aggregate_spec.h"
#include "runtime/plan.h"
#include "runtime/repartition_record.h"

namespace sluice {

/// The planner's part of the repartition stage (docs/notes-16/repartition.md, "When it runs",
/// "Shape", "--until-caught-up"): whether a pipeline repartitions, and the split of its plan
/// into stage one's and stage two's. `sluice run` (apps/sluice: PlanTwoStages, RunTwoStages)
/// runs such a pipeline as its two stages in one process.

/// Whether `sluice run` runs a repartitioning pipeline as two stages (true since both stages
/// are wired into `sluice run`); validate and explain say "not built yet" while it is false.
inline constexpr bool kRepartitionBuilt = true;

/// Why a pipeline does or does not repartition, as far as its file says.
enum class RepartitionReason {
  kAppendUnkeyed,  ///< append-mode windows over a Kafka source not declared keyed_by: repartitions
                   ///< when the source's topics have more than one partition in all
  kNoAggregate,    ///< a select pipeline keeps no windows
  kUpdateMode,     ///< update mode is exact on tasks already
  kFileSource,     ///< a file is a bounded input read by one process
  kOtherSource,    ///< a source no consumer group shares out (http, generator, a table): one
                   ///< process reads all of it
  kKeyedBy,        ///< `[source] keyed_by` says the messages are keyed by the group key
  kOptedOut,       ///< `[source] repartition = false`: one stage, exact over one process only
};

/// Returns the reason's name in explain's JSON: append_unkeyed, no_aggregate, update_mode,
/// file_source, other_source, keyed_by, opted_out.
const char* RepartitionReasonName(RepartitionReason reason);

/// What the pipeline file says about repartitioning. The rest is known only at run time: a
/// pipeline that `would` repartition does so unless its source's topics have one partition in
/// all (RepartitionsWith).
struct RepartitionDecision {
  bool would = false;
  RepartitionReason reason = RepartitionReason::kNoAggregate;
  std::string why;    ///< the reason in words, for validate and explain
  std::string topic;  ///< would: `<pipeline>-repartition` (stage one's RepartitionTopicName)
  /// `[source] repartition_partitions`; 0: not set (R = the source's partition count).
  int32_t partitions = 0;
};

/// Decides from the file alone: a pipeline would repartition iff it has an [aggregate] in
/// append mode, reads a Kafka source (whose partitions a consumer group hands out), does not
/// declare `[source] keyed_by` and does not set `[source] repartition = false`. When several
/// reasons keep it from repartitioning, names the first of: no [aggregate], update mode, the
/// source's kind, keyed_by, repartition = false.
RepartitionDecision DecideRepartition(const PipelineConfig& config);

/// The run-time half: true when `decision.would` and the source's topics have more than one
/// partition in all (`source_partitions`, from their metadata).
bool RepartitionsWith(const RepartitionDecision& decision, int64_t source_partitions);

/// Refuses `[source] repartition_partitions` on a pipeline that does not repartition, and
/// `[source] repartition` (either value) on one that would not repartition without it (no
/// [aggregate], update mode, a source no consumer group shares out, keyed_by), naming the key,
/// where it is written and why it has no meaning there (BuildPlan calls it).
Status CheckRepartitionPartitions(const PipelineConfig& config);

/// The source name stage two stores its positions under in the user's sink:
/// `<source>_repartition` (StageTwoPlan::config's [source] name).
std::string StageTwoSourceName(const std::string& source);

/// Whether this run's shape matters for what the sink holds: an append-mode [aggregate] over a
/// Kafka source, the pipelines that run in one stage or two depending on keyed_by,
/// `repartition`, the topics' partitions and the sink (sluice run's RepartitionSplitFor).
bool StageShapeMatters(const PipelineConfig& config);

/// Refuses a run whose shape differs from the one the sink's stored positions were written by
/// (docs/notes-16/repartition.md, "A pipeline that ran in one stage before"): `two_stages` but
/// the sink holds positions of `[source]`'s name and none of `<source>_repartition` (it ran in
/// one stage: stage one, with no positions of its own, would count again what the sink holds or
/// drop its open windows), or one stage but the sink holds positions of `<source>_repartition`
/// and none of the source's (it ran in two stages: the source would be read from its start
/// again). `stored` are the pipeline's positions as the sink holds them (LoadPositions; none:
/// a new sink); `sink` names it and `why` says why the run is of its shape now (the decision's
/// why, or why the run-time half keeps it in one stage). kInvalidArgument (the file no longer
/// fits what the sink holds: exit 2, found before any data is read) naming the pipeline, the
/// sink, both shapes and what to do; OK for a pipeline whose shape does not matter
/// (StageShapeMatters).
Status CheckStoredShape(const PipelineConfig& config, bool two_stages, const std::string& why,
                        const std::vector<std::pair<std::string, int32_t>>& stored, const std::string& sink);

/// Renders the decision for `sluice validate`: one "  repartition ..." line, plus, when the
/// pipeline would repartition, its topic and partitions and whether `run` does it yet.
std::string DescribeRepartition(const RepartitionDecision& decision);

/// One topic of the source as the run-time check found it in the topics' metadata: its name,
/// its slot (the Kafka source's TopicSlots, connectors/kafka/kafka_ids.h: what
/// UpstreamId::topic_index and stage one's controls name it by) and its partition count.
struct SourceTopic {
  std::string name;
  int32_t slot = 0;
  int32_t partitions = 0;
};

/// The source's topics found at run time, and where they are.
struct SourceTopics {
  std::string brokers;
  std::vector<SourceTopic> topics;
};

/// Stage one of a repartitioned pipeline: one task per source partition. It runs the plan as
/// it is — source, steps, lookups — and its [aggregate] in partial mode (RunOptions::stage_one:
/// the per-task aggregator drained at every checkpoint, not kept), into the internal Kafka sink
/// that writes partials, controls and dead letters to `topic` (what StageOneSinkOptions takes).
struct StageOnePlan {
  const Plan* plan = nullptr;                ///< source, steps, lookups: run unchanged
  const AggregateSpec* aggregate = nullptr;  ///< run in partial mode
  std::string pipeline;
  std::string brokers;
  std::string topic;       ///< `<pipeline>-repartition`, created with `partitions`
  int32_t partitions = 0;  ///< R
  /// The connection settings of the source's `kafka.*` options (security.*, sasl.*, ssl.*,
  /// socket.*, broker.*), without the `kafka.` prefix: the internal sink's producer reaches the
  /// same cluster as the source's consumer.
  std::map<std::string, std::string> properties;
  std::vector<UpstreamId> tasks;  ///< every partition of every source topic, sorted
  /// Fingerprint64(AggregateFingerprint(aggregate)): the header of every record it writes.
  int64_t fingerprint = 0;
};

/// Stage two: one task per repartition partition, run over `config` (RunOptions::stage_two with
/// `upstreams`): the user's [pipeline], [aggregate], [sink] and [dead_letter]; as [source] a
/// Kafka source on `topic` (read_committed, the source's default) in its own consumer group
/// `<group>-repartition`, named `<source>_repartition` (its tasks and positions in the sink
/// are not stage one's), declaring as fields the columns the [aggregate] reads (every field of
/// stage one's working row: its records are partials, which bypass the fields anyway); no
/// [dimension] and no [[step]] (they ran in stage one). BuildPlan(config) compiles the same
/// [aggregate], with the same fingerprint.
///
/// Not for DecideRepartition: `config` reads Kafka in append mode without keyed_by, so it
/// "would repartition"; it is a stage, not a pipeline of its own.
struct StageTwoPlan {
  PipelineConfig config;
  std::string topic;
  int32_t partitions = 0;  ///< R: its tasks are the partitions 0..R-1 of `topic`
  /// The expected upstream set: every stage-one task, from the source topics' metadata
  /// (StageTwoRunOptions::upstreams), sorted.
  std::vector<UpstreamId> upstreams;
  int64_t fingerprint = 0;  ///< stage one's: records of another plan are refused
};

struct RepartitionSplit {
  StageOnePlan one;
  StageTwoPlan two;
};

/// Splits `plan` into its two stages, given the source's topics found at run time. Pure: reads
/// `plan` and `topics` only; stage one's part points into `plan`, which must outlive it.
/// Refuses, saying why: a pipeline that does not repartition (its reason), a source with one
/// partition in all (nothing to repartition), a topic without partitions, a topic or slot
/// named twice or a negative slot, a source topic that is the repartition topic itself, and a
/// repartition topic name Kafka would refuse.
Result<RepartitionSplit> SplitPlan(const Plan& plan, const SourceTopics& topics);

/// The order a `--until-caught-up` run of a repartitioned pipeline ends in
/// (docs/notes-16/repartition.md, "--until-caught-up"): stage one ends at the source's end
/// offsets seen at its start, and each of its tasks then sends a control with `end`; once
/// every one of those controls is committed, stage two takes the repartition topic's last
/// stable offsets — after that, so they lie past them — and ends there. Pure bookkeeping: the
/// runners report positions and commits, and ask what to do next.
///
/// Covers the stage-one tasks of this process (the partitions it reads): over several
/// processes each stage two takes its ends after its own stage one ended. A task this process
/// loses to a rebalance is no longer waited for (StageOneLost): its new owner ends it.
///
/// Owned by one thread; not thread-safe.
class CatchUpOrder {
 public:
  enum class Phase {
    kStageOne,        ///< stage one reads up to its end offsets
    kEndControls,     ///< every task reached its end: their `end` controls are to be committed
    kStageTwoEnds,    ///< the controls are committed: take the repartition topic's ends now
    kStageTwo,        ///< stage two reads up to those ends
    kDone,            ///< both stages reached their ends
  };

  /// Starts with the end offsets of stage one's tasks seen at its start (next offset to read:
  /// a task is at its end when its next position is at or past it). Refuses an empty set and
  /// negative offsets.
  static Result<CatchUpOrder> Start(const std::map<UpstreamId, int64_t>& source_ends);

  /// Stage one's task `task` has processed up to (excluding) `next` (report it at the task's
  /// claim too: its committed position may be at its end already). Ignored for a task not
  /// waited for: lost, or gained after the start (its end was not seen then). Refuses a
  /// negative position.
  Status StageOneAt(const UpstreamId& task, int64_t next);
  /// `task` was taken away by a rebalance: its new owner ends it.
  void StageOneLost(const UpstreamId& task);
  /// Returns true when stage one must stop reading `task` (at its end, or not waited for).
  bool StageOneStops(const UpstreamId& task) const;

  /// Returns the tasks whose `end` control has not been committed yet and that reached their
  /// end, in UpstreamId order: the controls stage one's next checkpoint sends.
  std::vector<UpstreamId> EndControlsDue() const;
  /// The checkpoint that sent `tasks`' `end` controls is committed. Refused for a task that
  /// has not reached its end (its control would claim an end it did not reach).
  Status EndControlsCommitted(const std::vector<UpstreamId>& tasks);

  /// Takes the repartition topic's last stable offsets (partition -> offset). Refused before
  /// every waited-for task's `end` control is committed (taken earlier, they could lie before
  /// those controls) and a second time.
  Status StageTwoEnds(const std::map<int32_t, int64_t>& last_stable);
  /// Stage two's task of repartition partition `partition` has processed up to `next`. Stage
  /// two reads all along, so report it before StageTwoEnds too. Refuses a negative position.
  Status StageTwoAt(int32_t partition, int64_t next);
  /// Returns true when stage two must stop reading `partition` (at its end).
  bool StageTwoStops(int32_t partition) const;

  Phase phase() const;
  bool Done() const { return phase() == Phase::kDone; }

 private:
  struct Task {
    int64_t end = 0;
    int64_t next = 0;  ///< as reported; an empty partition (end 0) is at its end from the start
    bool waited = true;
    bool end_committed = false;
    bool AtEnd() const { return next >= end; }
  };
  bool StageOneEnded() const;  ///< every waited-for task reached its end and committed `end`

  std::map<UpstreamId, Task> tasks_;
  bool stage_two_started_ = false;
  std::map<int32_t, int64_t> stage_two_ends_;
  std::map<int32_t, int64_t> stage_two_next_;
};

}  // namespace sluice
