// `sluice run` of a repartitioned pipeline: the source's partition counts from the brokers, the
// planner's split, and the two runners' configurations (docs/notes-16/repartition.md, "Shape").

#include <algorithm>
#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "commands.h"
#include "connectors/kafka/kafka_group.h"
#include "connectors/kafka/kafka_ids.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_source.h"
#include "runtime/registry.h"
#include "runtime/repartition_plan.h"
#include "runtime/sink_inventory.h"

namespace sluice::cli {

Result<std::optional<RepartitionSplit>> RepartitionSplitFor(const PipelineConfig& config, const SinkConfig& user_sink_config,
                                                            const Plan& plan, bool warn, std::string* why) {
  std::string unused;
  if (why == nullptr) why = &unused;
  const RepartitionDecision decision = DecideRepartition(config);
  *why = decision.why;
  if (!decision.would) return std::optional<RepartitionSplit>();
  // The source's topics and their partitions, from the brokers (the Kafka source's own reading
  // of the [source] section: topics, pattern, slots).
  auto sources = ConnectorRegistry::Instance().MakeSources(config.source, 1);
  if (!sources.ok()) return sources.status();
  const auto* kafka = sources->empty() ? nullptr : dynamic_cast<const KafkaSource*>(sources->front().get());
  if (!kafka) return Status::Internal("repartition: the source " + config.source.name + " is no Kafka source");
  const KafkaSource::Settings& ks = kafka->settings();
  auto ends = KafkaEndOffsets(ks.brokers, ks.topics, ks.pattern, 10000);
  if (!ends.ok()) {
    return Status::IOError("repartition: cannot read the partitions of the source's topics from " + ks.brokers +
                           ": " + ends.status().message());
  }
  auto slots = TopicSlots::Make(ks.topics, ks.legacy_topic, ks.slot_pins);
  if (!slots.ok()) return slots.status();
  SourceTopics topics;
  topics.brokers = ks.brokers;
  int64_t in_all = 0;
  for (const auto& [topic, offsets] : *ends) {
    if (offsets.empty()) continue;
    auto slot = slots->SlotFor(topic);
    if (!slot.ok()) return slot.status();
    topics.topics.push_back({topic, *slot, static_cast<int32_t>(offsets.size())});
    in_all += static_cast<int64_t>(offsets.size());
  }
  // Stage two keeps its windows per task in the user's sink: one that cannot (stdout:, kafka:,
  // ...) runs the pipeline in one stage as before, exact over one process only.
  auto user_sink = ConnectorRegistry::Instance().MakeSink(user_sink_config);
  if (!user_sink.ok()) return user_sink.status();
  const bool keeps_task_windows = (*user_sink)->SupportsTasks() && (*user_sink)->StoresTaskWindows();
  if (!RepartitionsWith(decision, in_all)) {
    *why = in_all == 0 ? "the source's topics have no partitions yet on " + ks.brokers
                       : "the source's topics have one partition in all, which one task reads whole";
    if (warn && in_all == 0 && keeps_task_windows) {
      // Run in one stage now, the pipeline's sink would hold one-stage positions once the topics
      // appear, and the next start (two stages) would be refused (CheckStoredShape): its shape
      // is chosen once its topics exist.
      return Status::Unavailable("pipeline " + config.name + ": the source's topics have no partitions yet on " +
                                 ks.brokers + ", and a pipeline that repartitions (" + decision.why +
                                 ") chooses between one stage and two by their partitions: create the topics "
                                 "first, then start it again");
    }
    if (warn && in_all == 0) {
      spdlog::warn("repartition: the source's topics have no partitions yet on {}: running in one stage "
                   "(windows are exact over one process only)",
                   ks.brokers);
    }
    return std::optional<RepartitionSplit>();
  }
  if (!keeps_task_windows) {
    *why = "the sink " + user_sink_config.uri + " cannot keep stage two's windows per task";
    if (warn) {
      spdlog::warn("repartition: the sink {} cannot keep stage two's windows per task (SQLite, MySQL, Parquet and "
                   "Cassandra can): running pipeline {} in one stage, whose windows are exact over one process only",
                   user_sink_config.uri, config.name);
    }
    return std::optional<RepartitionSplit>();
  }
  auto split = SplitPlan(plan, topics);
  if (!split.ok()) return split.status();
  *why = decision.why + ", of " + std::to_string(in_all) + " partitions in all";
  return std::optional<RepartitionSplit>(std::move(split).value());
}

Result<std::optional<TwoStages>> PlanTwoStages(const Runner& runner, const RunOptions& options, std::string* why) {
  if (options.stage_one || options.stage_two.enabled) return std::optional<TwoStages>();
  auto planned = RepartitionSplitFor(runner.config(), runner.config().sink, runner.plan(), true, why);
  if (!planned.ok()) return planned.status();
  if (!*planned) return std::optional<TwoStages>();
  RepartitionSplit& split = **planned;

  TwoStages stages;
  stages.brokers = split.one.brokers;
  stages.topic = split.one.topic;
  stages.partitions = split.one.partitions;
  stages.properties = split.one.properties;
  stages.one_config = runner.config();
  stages.one_options = options;
  stages.one_options.stage_one = true;
  StageOneSinkOptions sink;
  sink.brokers = split.one.brokers;
  sink.pipeline = split.one.pipeline;
  sink.partitions = split.one.partitions;
  sink.topic = split.one.topic;
  sink.properties = split.one.properties;
  stages.one_options.sink_override = [sink] { return MakeStageOneSink(sink); };
  stages.two_config = std::move(split.two.config);
  stages.two_options = options;
  stages.two_options.stage_two.enabled = true;
  stages.two_options.stage_two.upstreams = split.two.upstreams;
  // --reset-source names the user's source: stage one's. Stage two keeps its positions (partials
  // of windows it already wrote come back and are dead-lettered `late` by its backstop).
  stages.two_options.reset_source.clear();
  return std::optional<TwoStages>(std::move(stages));
}

Status CheckSinkStageShape(const PipelineConfig& config, bool two_stages, const std::string& why) {
  if (!StageShapeMatters(config)) return Status::OK();
  InventoryOptions options;
  options.pipeline = config.name;
  options.samples_per_reason = 0;
  options.positions_only = true;
  // A server that is still starting is retried, as the runner retries opening the sink (a stop
  // signal meanwhile ends the process: sluice run's start-up watch).
  Result<SinkInventory> inventory = Status::Unavailable("not read yet");
  for (int64_t backoff_ms = 200;; backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000)) {
    // Only a sink stage two writes to can hold stage two's positions, or be written by it.
    ASSIGN_OR_RETURN(std::unique_ptr<Sink> sink, ConnectorRegistry::Instance().MakeSink(config.sink));
    if (!sink->SupportsTasks() || !sink->StoresTaskWindows()) return Status::OK();
    auto* reader = dynamic_cast<SinkReader*>(sink.get());
    if (reader == nullptr) return Status::OK();
    inventory = reader->Inventory(options);
    if (inventory.ok() || inventory.status().code() != StatusCode::kUnavailable) break;
    spdlog::warn("sink not available to read its stored positions ({}); retrying in {} ms",
                 inventory.status().message(), backoff_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
  }
  // Nothing at the sink's URI yet: a first run, whatever its shape.
  if (!inventory.ok() && inventory.status().code() == StatusCode::kNotFound) return Status::OK();
  if (!inventory.ok()) {
    return inventory.status().WithContext("pipeline " + config.name +
                                          ": reading the positions the sink holds (to check they were written by a "
                                          "run of the same shape, one stage or two)");
  }
  std::vector<std::pair<std::string, int32_t>> stored;
  for (const PipelineInventory& p : inventory->pipelines) {
    if (p.pipeline != config.name) continue;
    for (const StoredPosition& pos : p.positions) stored.emplace_back(pos.source, pos.partition);
  }
  return CheckStoredShape(config, two_stages, why, stored, inventory->location);
}

}  // namespace sluice::cli
