// `sluice status PIPELINE`: who reads which partition of a Kafka source, and how far behind;
// with a sink that keeps state per task, which process holds each partition's task and the
// event-time progress committed with its position.

#include "status.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

#include "logging.h"
#include "connectors/kafka/kafka_group.h"
#include "connectors/kafka/kafka_ids.h"
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
#include "runtime/sink_inventory.h"
#include "runtime/task_state.h"
#include "runtime/watermark.h"

namespace sluice::cli {
namespace {

struct Row {
  std::string topic;
  int32_t partition = 0;
  int32_t id = 0;           ///< the id positions are stored under
  const KafkaGroupMember* owner = nullptr;
  int64_t committed = -1;   ///< -1: none stored
  int64_t end = -1;
  const TaskRow* task = nullptr;  ///< the partition's task in the sink; null: none stored
};

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
std::map<int32_t, TaskRow> LoadTasks(const PipelineConfig& config, const SinkConfig& sink_config) {
  std::map<int32_t, TaskRow> out;
  auto sink = ConnectorRegistry::Instance().MakeSink(sink_config);
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

void RenderJson(const PipelineConfig& config, const std::string& group, const std::string& sink,
                const std::vector<Row>& rows, std::ostream& out) {
  JsonBuilder j;
  j.BeginObject();
  j.Key("pipeline").String(config.name).Key("source").String(config.source.name);
  j.Key("group").String(group).Key("sink").String(sink);
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
  j.EndArray().EndObject();
  out << j.str() << "\n";
}

void RenderText(const PipelineConfig& config, const std::string& group, const std::string& sink,
                size_t members, const std::vector<Row>& rows, std::ostream& out) {
  out << "pipeline " << config.name << ", source " << config.source.name << ", group " << group << " ("
      << members << " member" << (members == 1 ? "" : "s") << "), sink " << sink << "\n";
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

}  // namespace

int RunStatus(const PipelineConfig& config, const StatusCliOptions& o) {
  if (SplitUri(config.source.uri).first != "kafka") {
    return Fail("sluice status reads Kafka sources; " + config.source.name + " is " + config.source.uri, 2);
  }
  auto sources = ConnectorRegistry::Instance().MakeSources(config.source, 1);
  if (!sources.ok()) return Fail(sources.status().message(), 2);
  const auto* kafka = sources->empty() ? nullptr : dynamic_cast<const KafkaSource*>(sources->front().get());
  if (!kafka) return Fail("the source " + config.source.name + " is no Kafka source", 2);
  const KafkaSource::Settings& ks = kafka->settings();

  // The sink's committed positions of this pipeline's source.
  SinkConfig sink_config = config.sink;
  if (!o.sink.empty()) sink_config.uri = o.sink;
  auto sink = ConnectorRegistry::Instance().MakeSink(sink_config);
  if (!sink.ok()) return Fail(sink.status().message(), 2);
  auto* reader = dynamic_cast<SinkReader*>(sink->get());
  if (!reader) return Fail("the sink " + sink_config.uri + " cannot be read back (see sluice inspect)", 2);
  InventoryOptions inventory_options;
  inventory_options.pipeline = config.name;
  inventory_options.samples_per_reason = 0;
  auto inv = reader->Inventory(inventory_options);
  if (!inv.ok()) return Fail(sink_config.uri + ": " + inv.status().message(), 1);
  std::map<int32_t, int64_t> committed;
  for (const auto& p : inv->pipelines) {
    if (p.pipeline != config.name) continue;
    for (const auto& pos : p.positions) {
      if (pos.source == config.source.name && pos.offset != kForgottenPosition) committed[pos.partition] = pos.offset;
    }
  }

  // The topics with their ends, and the group's members.
  auto ends = KafkaEndOffsets(ks.brokers, ks.topics, ks.pattern, 10000);
  if (!ends.ok()) return Fail(ends.status().message(), 1);
  // A listed topic that does not exist has no rows: say why (a run waits for it to be created).
  for (const std::string& topic : ks.topics) {
    if (ends->count(topic)) continue;
    auto all = KafkaTopicList(ks.brokers, 10000);
    std::cerr << "sluice: status: warning: "
              << (all.ok() ? MissingKafkaTopic(topic, ks.brokers, *all) : "topic \"" + topic + "\" does not exist on " + ks.brokers)
              << "\n";
  }
  // Which process holds each partition's task, and its committed event-time progress.
  const std::map<int32_t, TaskRow> tasks = LoadTasks(config, sink_config);
  auto members = DescribeKafkaGroup(ks.brokers, ks.group, 10000);
  if (!members.ok()) return Fail(members.status().message(), 1);
  auto slots = TopicSlots::Make(ks.topics, ks.legacy_topic, ks.slot_pins);
  if (!slots.ok()) return Fail(slots.status().message(), 2);
  std::vector<Row> rows;
  std::vector<std::string> order = ks.topics;  // a list in its order; a pattern's topics by name
  for (const auto& [topic, e] : *ends) {
    if (std::find(order.begin(), order.end(), topic) == order.end()) order.push_back(topic);
  }
  for (const std::string& topic : order) {
    auto e = ends->find(topic);
    if (e == ends->end()) continue;
    auto slot = slots->SlotFor(topic);
    if (!slot.ok()) return Fail(slot.status().message(), 2);
    for (size_t p = 0; p < e->second.size(); ++p) {
      Row r;
      r.topic = topic;
      r.partition = static_cast<int32_t>(p);
      r.id = KafkaPartitionId(*slot, r.partition);
      r.end = e->second[p];
      if (auto c = committed.find(r.id); c != committed.end()) r.committed = c->second;
      if (auto t = tasks.find(r.id); t != tasks.end()) r.task = &t->second;
      for (const auto& m : *members) {
        for (const auto& [t, mp] : m.assignment) {
          if (t == topic && mp == r.partition) r.owner = &m;
        }
      }
      rows.push_back(std::move(r));
    }
  }

  std::ostringstream out;
  if (o.json) {
    RenderJson(config, ks.group, inv->location, rows, out);
  } else {
    RenderText(config, ks.group, inv->location, members->size(), rows, out);
  }
  std::cout << out.str() << std::flush;
  return 0;
}

}  // namespace sluice::cli
