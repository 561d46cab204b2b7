// `sluice status PIPELINE`: who reads which partition of a Kafka source, and how far behind;
// with a sink that keeps state per task, which process holds each partition's task and the
// event-time progress committed with its position. A repartitioned pipeline shows both stages:
// the source (positions in stage one's Kafka sink) and the repartition topic (positions in the
// user's sink).

#include "status.h"

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "commands.h"
#include "logging.h"
#include "connectors/kafka/kafka_group.h"
#include "connectors/kafka/kafka_ids.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_source.h"
#include "connectors/kafka/kafka_uri.h"
#include "core/iso_time.h"
#include "core/json_builder.h"
#include "core/status.h"
#include "core/time.h"
#include "core/uri.h"
#include "runtime/explain.h"
#include "runtime/plan.h"
#include "runtime/registry.h"
#include "runtime/repartition_plan.h"
#include "runtime/sink_inventory.h"
#include "runtime/task_state.h"
#include "runtime/watermark.h"

namespace sluice::cli {
namespace {

struct Row {
  std::string topic;
  int32_t partition = 0;
  int32_t id = 0;           ///< the id positions are stored under
  std::optional<KafkaGroupMember> owner;
  int64_t committed = -1;   ///< -1: none stored
  int64_t end = -1;
  std::optional<TaskRow> task;  ///< the partition's task in the sink; none: none stored
};

/// What one stage reads and where its positions are: a pipeline of one stage has one; a
/// repartitioned one two (stage one: the source, positions in the stage-one Kafka sink; stage
/// two: the repartition topic, positions in the user's sink).
struct StageView {
  std::string stage;   ///< "": one stage; "one", "two"
  std::string source;  ///< the [source] name positions are stored under
  std::string group;
  std::string sink;    ///< where the positions are (the sink's location)
  size_t members = 0;
  std::vector<Row> rows;
};

/// Makes the sink a stage's positions and tasks are read from (a new one per call).
using SinkFactory = std::function<Result<std::unique_ptr<Sink>>()>;

void TimeJson(JsonBuilder& j, const std::string& key, int64_t micros) {
  const bool known = micros != kNoWatermark;
  j.Key(key);
  known ? j.String(FormatIsoTimestamp(micros)) : j.Null();
  j.Key(key + "_micros");
  known ? j.Int(micros) : j.Null();
}

void TaskJson(JsonBuilder& j, const TaskRow& t) {
  j.BeginObject().Key("owner");
  t.owner.empty() ? j.Null() : j.String(t.owner);
  j.Key("fence").Int(t.fence);
  TimeJson(j, "watermark", t.progress.watermark);
  TimeJson(j, "max_event_time", t.progress.max_event_time);
  TimeJson(j, "enforced", t.progress.enforced);
  j.Key("idle").Bool(t.progress.idle);
  TimeJson(j, "updated", t.updated_micros > 0 ? t.updated_micros : kNoWatermark);
  j.EndObject();
}

std::string TaskText(const TaskRow& t) {
  auto time = [](int64_t micros) { return micros == kNoWatermark ? std::string("-") : FormatIsoTimestamp(micros); };
  return "task owner " + (t.owner.empty() ? std::string("-") : t.owner) + "  fence " + std::to_string(t.fence) +
         "  watermark " + time(t.progress.watermark) + "  max event time " + time(t.progress.max_event_time) +
         "  idle " + (t.progress.idle ? "yes" : "no") + "  updated " +
         time(t.updated_micros > 0 ? t.updated_micros : kNoWatermark);
}

/// The tasks of `config`'s source as the sink stores them (Sink::LoadTaskProgress on a sink
/// opened for reading), by partition id; empty when the sink keeps no state per task or the
/// pipeline has none (a pipeline without state, or one that never committed). The positions
/// were read already: a sink whose task rows cannot be read is shown without them, with a
/// warning, rather than not at all.
std::map<int32_t, TaskRow> LoadTasks(const PipelineConfig& config, const SinkFactory& make_sink) {
  std::map<int32_t, TaskRow> out;
  auto sink = make_sink();
  if (!sink.ok() || !(*sink)->SupportsTasks()) return out;
  Result<std::vector<TaskRow>> rows = [&]() -> Result<std::vector<TaskRow>> {
    auto plan = BuildPlan(config);
    if (!plan.ok()) return plan.status().WithContext("the pipeline's plan");
    SinkContext ctx = SinkContextFor(config, **plan);
    ctx.source = config.source.name;
    RETURN_IF_ERROR((*sink)->OpenForReading(ctx));
    return (*sink)->LoadTaskProgress();
  }();
  (*sink)->Close();
  if (!rows.ok()) {
    std::cerr << "sluice: status: warning: the partitions' tasks (owner, watermark) are not shown: "
              << rows.status().message() << "\n";
    return out;
  }
  for (TaskRow& r : *rows) {
    if (r.task.source == config.source.name) out[r.task.partition] = std::move(r);
  }
  return out;
}

int Fail(const std::string& message, int code) {
  ReportError("status: " + message);
  return code;
}

/// An error of the pipeline file or of what it names: exit 2 (every other one: exit 1).
Status ConfigError(const std::string& message) { return Status::InvalidArgument(message); }
Status ReadError(const std::string& message) { return Status::IOError(message); }

/// The Kafka source of `config` (its own reading of the [source] section).
Result<KafkaSource::Settings> KafkaSettings(const SourceConfig& source) {
  if (SplitUri(source.uri).first != "kafka") {
    return ConfigError("sluice status reads Kafka sources; " + source.name + " is " + source.uri);
  }
  auto sources = ConnectorRegistry::Instance().MakeSources(source, 1);
  if (!sources.ok()) return ConfigError(sources.status().message());
  const auto* kafka = sources->empty() ? nullptr : dynamic_cast<const KafkaSource*>(sources->front().get());
  if (!kafka) return ConfigError("the source " + source.name + " is no Kafka source");
  return kafka->settings();
}

/// Reads one stage: the partitions of `config`'s source with their ends, who reads each (the
/// group's members), the positions committed in the sink `make_sink` makes (`sink_uri` names
/// it in messages) and the tasks stored there. `missing_positions_ok`: a sink whose positions
/// are not there yet (stage one's positions topic before its first commit) shows none.
Result<StageView> ReadStage(const PipelineConfig& config, const SinkFactory& make_sink, const std::string& sink_uri,
                            bool missing_positions_ok) {
  ASSIGN_OR_RETURN(const KafkaSource::Settings ks, KafkaSettings(config.source));
  StageView view;
  view.source = config.source.name;
  view.group = ks.group;
  view.sink = sink_uri;

  // The sink's committed positions of this pipeline's source.
  auto sink = make_sink();
  if (!sink.ok()) return ConfigError(sink.status().message());
  auto* reader = dynamic_cast<SinkReader*>(sink->get());
  if (!reader) return ConfigError("the sink " + sink_uri + " cannot be read back (see sluice inspect)");
  InventoryOptions inventory_options;
  inventory_options.pipeline = config.name;
  inventory_options.samples_per_reason = 0;
  auto inv = reader->Inventory(inventory_options);
  std::map<int32_t, int64_t> committed;
  if (inv.ok()) {
    view.sink = inv->location;
    for (const auto& p : inv->pipelines) {
      if (p.pipeline != config.name) continue;
      for (const auto& pos : p.positions) {
        if (pos.source == config.source.name && pos.offset != kForgottenPosition) committed[pos.partition] = pos.offset;
      }
    }
  } else if (!(missing_positions_ok && inv.status().code() == StatusCode::kNotFound)) {
    return ReadError(sink_uri + ": " + inv.status().message());
  }

  // The topics with their ends, and the group's members.
  auto ends = KafkaEndOffsets(ks.brokers, ks.topics, ks.pattern, 10000);
  if (!ends.ok()) return ReadError(ends.status().message());
  // A listed topic that does not exist has no rows: say why (a run waits for it to be created).
  for (const std::string& topic : ks.topics) {
    if (ends->count(topic)) continue;
    auto all = KafkaTopicList(ks.brokers, 10000);
    std::cerr << "sluice: status: warning: "
              << (all.ok() ? MissingKafkaTopic(topic, ks.brokers, *all) : "topic \"" + topic + "\" does not exist on " + ks.brokers)
              << "\n";
  }
  // Which process holds each partition's task, and its committed event-time progress.
  const std::map<int32_t, TaskRow> tasks = LoadTasks(config, make_sink);
  auto members = DescribeKafkaGroup(ks.brokers, ks.group, 10000);
  if (!members.ok()) return ReadError(members.status().message());
  view.members = members->size();
  auto slots = TopicSlots::Make(ks.topics, ks.legacy_topic, ks.slot_pins);
  if (!slots.ok()) return ConfigError(slots.status().message());
  std::vector<std::string> order = ks.topics;  // a list in its order; a pattern's topics by name
  for (const auto& [topic, e] : *ends) {
    if (std::find(order.begin(), order.end(), topic) == order.end()) order.push_back(topic);
  }
  for (const std::string& topic : order) {
    auto e = ends->find(topic);
    if (e == ends->end()) continue;
    auto slot = slots->SlotFor(topic);
    if (!slot.ok()) return ConfigError(slot.status().message());
    for (size_t p = 0; p < e->second.size(); ++p) {
      Row r;
      r.topic = topic;
      r.partition = static_cast<int32_t>(p);
      r.id = KafkaPartitionId(*slot, r.partition);
      r.end = e->second[p];
      if (auto c = committed.find(r.id); c != committed.end()) r.committed = c->second;
      if (auto t = tasks.find(r.id); t != tasks.end()) r.task = t->second;
      for (const auto& m : *members) {
        for (const auto& [t, mp] : m.assignment) {
          if (t == topic && mp == r.partition) r.owner = m;
        }
      }
      view.rows.push_back(std::move(r));
    }
  }
  return view;
}

void PartitionsJson(JsonBuilder& j, const std::vector<Row>& rows) {
  j.Key("partitions").BeginArray();
  for (const Row& r : rows) {
    j.BeginObject().Key("topic").String(r.topic).Key("partition").Int(r.partition);
    j.Key("owner");
    if (r.owner) {
      j.BeginObject()
          .Key("member_id").String(r.owner->member_id)
          .Key("client_id").String(r.owner->client_id)
          .Key("host").String(r.owner->host)
          .EndObject();
    } else {
      j.Null();
    }
    j.Key("committed");
    r.committed >= 0 ? j.Int(r.committed) : j.Null();
    j.Key("end").Int(r.end).Key("lag");
    r.committed >= 0 ? j.Int(std::max<int64_t>(0, r.end - r.committed)) : j.Null();
    j.Key("task");
    if (r.task) {
      TaskJson(j, *r.task);
    } else {
      j.Null();
    }
    j.EndObject();
  }
  j.EndArray();
}

/// The repartition topic of a pipeline run in two stages.
struct Repartition {
  std::string topic;
  int32_t partitions = 0;
};

void RenderJson(const PipelineConfig& config, const std::optional<Repartition>& repartition,
                const std::vector<StageView>& stages, std::ostream& out) {
  JsonBuilder j;
  j.BeginObject();
  j.Key("pipeline").String(config.name).Key("source").String(config.source.name);
  if (!repartition) {
    const StageView& v = stages.front();
    j.Key("group").String(v.group).Key("sink").String(v.sink);
    PartitionsJson(j, v.rows);
  } else {
    j.Key("repartition").BeginObject();
    j.Key("topic").String(repartition->topic).Key("partitions").Int(repartition->partitions);
    j.EndObject();
    j.Key("stages").BeginArray();
    for (const StageView& v : stages) {
      j.BeginObject().Key("stage").String(v.stage).Key("source").String(v.source);
      j.Key("group").String(v.group).Key("sink").String(v.sink);
      PartitionsJson(j, v.rows);
      j.EndObject();
    }
    j.EndArray();
  }
  j.EndObject();
  out << j.str() << "\n";
}

void RowsText(const std::vector<Row>& rows, std::ostream& out) {
  for (const Row& r : rows) {
    out << "  " << r.topic << "[" << r.partition << "]  owner "
        << (r.owner ? r.owner->client_id + "@" + r.owner->host + " (member " + r.owner->member_id + ")"
                    : std::string("none"))
        << "  committed " << (r.committed >= 0 ? std::to_string(r.committed) : std::string("never"))
        << "  end " << r.end << "  lag "
        << (r.committed >= 0 ? std::to_string(std::max<int64_t>(0, r.end - r.committed)) : std::string("-"))
        << "\n";
    if (r.task) out << "      " << TaskText(*r.task) << "\n";
  }
}

std::string MembersText(size_t members) {
  return std::to_string(members) + " member" + (members == 1 ? "" : "s");
}

void RenderText(const PipelineConfig& config, const std::optional<Repartition>& repartition,
                const std::vector<StageView>& stages, std::ostream& out) {
  if (!repartition) {
    const StageView& v = stages.front();
    out << "pipeline " << config.name << ", source " << config.source.name << ", group " << v.group << " ("
        << MembersText(v.members) << "), sink " << v.sink << "\n";
    RowsText(v.rows, out);
    return;
  }
  out << "pipeline " << config.name << " repartitions through topic " << repartition->topic << " ("
      << repartition->partitions << " partitions)\n";
  for (const StageView& v : stages) {
    out << "stage " << v.stage << ": source " << v.source << ", group " << v.group << " ("
        << MembersText(v.members) << "), positions in " << v.sink << "\n";
    RowsText(v.rows, out);
  }
}

/// The repartition topic and the stage-two configuration when `config` runs in two stages as
/// `sluice run` decides it (RepartitionSplitFor, shared with PlanTwoStages). The user's sink is
/// `user_sink`.
Result<std::optional<RepartitionSplit>> SplitIfRepartitioned(const PipelineConfig& config,
                                                              const SinkConfig& user_sink, const Plan& plan) {
  auto split = RepartitionSplitFor(config, user_sink, plan, false);
  if (!split.ok() && split.status().code() != StatusCode::kIOError) return ConfigError(split.status().message());
  return split;
}

Status StatusOf(const PipelineConfig& config, const StatusCliOptions& o, std::ostream& out) {
  SinkConfig sink_config = config.sink;
  if (!o.sink.empty()) sink_config.uri = o.sink;
  const SinkFactory user_sink = [sink_config] { return ConnectorRegistry::Instance().MakeSink(sink_config); };
  RETURN_IF_ERROR(KafkaSettings(config.source).status());
  std::optional<Repartition> repartition;
  std::vector<StageView> stages;
  std::unique_ptr<Plan> plan;
  std::optional<RepartitionSplit> split;
  if (DecideRepartition(config).would) {
    ASSIGN_OR_RETURN(plan, BuildPlan(config));
    ASSIGN_OR_RETURN(split, SplitIfRepartitioned(config, sink_config, *plan));
  }
  if (!split) {
    ASSIGN_OR_RETURN(StageView one, ReadStage(config, user_sink, sink_config.uri, false));
    stages.push_back(std::move(one));
  } else {
    // Stage one's positions and tasks are in its internal Kafka sink (the repartition topic's
    // positions topic); stage two's, of the repartition topic, in the user's sink.
    repartition = Repartition{split->one.topic, split->one.partitions};
    StageOneSinkOptions so;
    so.brokers = split->one.brokers;
    so.pipeline = split->one.pipeline;
    so.partitions = split->one.partitions;
    so.topic = split->one.topic;
    so.properties = split->one.properties;
    const SinkFactory stage_one_sink = [so] { return MakeStageOneSink(so); };
    ASSIGN_OR_RETURN(StageView one,
                     ReadStage(config, stage_one_sink, "kafka://" + so.brokers + "/" + so.topic, true));
    one.stage = "one";
    PipelineConfig two_config = split->two.config;
    two_config.sink = sink_config;
    ASSIGN_OR_RETURN(StageView two, ReadStage(two_config, user_sink, sink_config.uri, false));
    two.stage = "two";
    stages.push_back(std::move(one));
    stages.push_back(std::move(two));
  }
  if (o.json) {
    RenderJson(config, repartition, stages, out);
  } else {
    RenderText(config, repartition, stages, out);
  }
  return Status::OK();
}

}  // namespace

int RunStatus(const PipelineConfig& config, const StatusCliOptions& o) {
  std::ostringstream out;
  Status s = StatusOf(config, o, out);
  // The file or what it names is wrong: 2; a server or the sink could not be read: 1.
  const bool config_error = s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound ||
                            s.code() == StatusCode::kParseError;
  if (!s.ok()) return Fail(s.message(), config_error ? 2 : 1);
  std::cout << out.str() << std::flush;
  return 0;
}

}  // namespace sluice::cli
