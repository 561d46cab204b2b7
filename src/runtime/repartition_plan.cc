#include "runtime/repartition_plan.h"

#include <algorithm>
#include <climits>
#include <set>

#include "core/uri.h"
#include "runtime/delta_codec.h"
#include "runtime/repartition_output.h"
#include "runtime/source.h"

namespace sluice {
namespace {

/// Kafka's rule for topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
bool LegalTopicName(const std::string& name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

const char* RepartitionReasonName(RepartitionReason reason) {
  switch (reason) {
    case RepartitionReason::kAppendUnkeyed: return "append_unkeyed";
    case RepartitionReason::kNoAggregate: return "no_aggregate";
    case RepartitionReason::kUpdateMode: return "update_mode";
    case RepartitionReason::kFileSource: return "file_source";
    case RepartitionReason::kOtherSource: return "other_source";
    case RepartitionReason::kKeyedBy: return "keyed_by";
    case RepartitionReason::kOptedOut: return "opted_out";
  }
  return "unknown";
}

RepartitionDecision DecideRepartition(const PipelineConfig& config) {
  RepartitionDecision d;
  d.partitions = config.source.repartition_partitions;
  const std::string scheme = SplitUri(config.source.uri).first;
  if (!config.aggregate) {
    d.reason = RepartitionReason::kNoAggregate;
    d.why = "a pipeline without [aggregate] keeps no windows";
  } else if (config.aggregate->mode != "append") {
    d.reason = RepartitionReason::kUpdateMode;
    d.why = "update mode merges each partition's changes into the stored rows, exact without it";
  } else if (scheme.empty() || scheme == "file") {
    d.reason = RepartitionReason::kFileSource;
    d.why = "the source is a file, a bounded input one process reads whole";
  } else if (scheme != "kafka") {
    d.reason = RepartitionReason::kOtherSource;
    d.why = "the source (" + scheme + ") is read whole by one process, not shared out by a Kafka consumer group";
  } else if (!config.source.keyed_by.empty()) {
    d.reason = RepartitionReason::kKeyedBy;
    d.why = "[source] keyed_by = [" + Join(config.source.keyed_by) +
            "] says the records of a group are in one partition already";
  } else if (!config.source.repartition) {
    d.reason = RepartitionReason::kOptedOut;
    d.why = "[source] repartition = false: one stage, whose windows are exact over one process only";
  } else {
    d.would = true;
    d.reason = RepartitionReason::kAppendUnkeyed;
    d.why = "append-mode windows over a Kafka source not declared keyed by the group key ([source] keyed_by)";
    d.topic = RepartitionTopicName(config.name);
  }
  return d;
}

bool RepartitionsWith(const RepartitionDecision& decision, int64_t source_partitions) {
  return decision.would && source_partitions > 1;
}

Status CheckRepartitionPartitions(const PipelineConfig& config) {
  const RepartitionDecision d = DecideRepartition(config);
  if (config.source.repartition_set && !d.would && d.reason != RepartitionReason::kOptedOut) {
    return Status::InvalidArgument(expr::Locate(config.source.repartition_where) +
                                   ": [source] repartition chooses whether a pipeline that would repartition "
                                   "does so, and this pipeline does not repartition anyway (" + d.why +
                                   "); leave repartition out");
  }
  if (config.source.repartition_partitions == 0) return Status::OK();
  if (d.would) return Status::OK();
  return Status::InvalidArgument(expr::Locate(config.source.repartition_partitions_where) +
                                 ": [source] repartition_partitions sets the partitions of the internal topic "
                                 "<pipeline>-repartition, and this pipeline does not repartition (" + d.why +
                                 "); leave repartition_partitions out");
}

std::string StageTwoSourceName(const std::string& source) { return source + "_repartition"; }

bool StageShapeMatters(const PipelineConfig& config) {
  return config.aggregate && config.aggregate->mode == "append" && SplitUri(config.source.uri).first == "kafka";
}

Status CheckStoredShape(const PipelineConfig& config, bool two_stages, const std::string& why,
                        const std::vector<std::pair<std::string, int32_t>>& stored, const std::string& sink) {
  if (!StageShapeMatters(config)) return Status::OK();
  const std::string one_name = config.source.name;
  const std::string two_name = StageTwoSourceName(one_name);
  // Only the source's partitions count: identity entries (a recreated topic's generation) come
  // with them, never alone.
  bool one = false, two = false;
  for (const auto& [source, partition] : stored) {
    if (partition < 0 || partition >= kIdentityPartitionBase) continue;
    one = one || source == one_name;
    two = two || source == two_name;
  }
  const std::string head = "pipeline " + config.name + ": the sink " + sink + " holds ";
  const std::string fresh =
      "or give the pipeline a new name ([pipeline] name) and a new table or directory in [sink]: it then reads "
      "the source's topics from their beginning";
  if (two_stages && one && !two) {
    return Status::InvalidArgument(
        head + "positions of source " + one_name + " and none of " + two_name +
        ": it ran in one stage, and would run in two now (" + why +
        "). Stage one has no positions of its own: it would read the source's topics again from their "
        "beginning, writing windows the sink holds a second time, and the open windows of the one-stage "
        "state would be lost. Run it in one stage as before (restore [source] keyed_by if it had one, or set "
        "[source] repartition = false), " + fresh);
  }
  if (!two_stages && two && !one) {
    return Status::InvalidArgument(
        head + "positions of source " + two_name + " (stage two of a repartitioned run) and none of " + one_name +
        ": it ran in two stages, and would run in one now (" + why +
        "). The source's topics would be read from their beginning and every window written again. Run it in two stages as "
        "before (remove [source] keyed_by or repartition = false, keep the sink and the source's partitions), " +
        fresh);
  }
  if (one && two) {
    // Never written by one shape alone: a sluice without this check switched the pipeline's
    // shape. Which positions are current cannot be told, and either shape reads again what the
    // other wrote.
    return Status::InvalidArgument(
        head + "positions of both source " + one_name + " (one stage) and " + two_name +
        " (stage two of a repartitioned run): it ran in both shapes, and either would read again what the "
        "other wrote, writing windows the sink holds a second time. To go on, " + RepartitionResetAdvice(config.name));
  }
  return Status::OK();
}

std::string DescribeRepartition(const RepartitionDecision& d) {
  if (!d.would) return "  repartition no: " + d.why + "\n";
  std::string out = "  repartition when the source's topics have more than one partition in all: " + d.why + "\n";
  out += "    topic " + d.topic + ", " +
         (d.partitions > 0 ? std::to_string(d.partitions) + " partitions (repartition_partitions)"
                           : std::string("as many partitions as the source's topics in all")) +
         "\n";
  if (!kRepartitionBuilt) {
    out += "    not built yet: sluice run reads this pipeline in one stage, as before (one process)\n";
  }
  return out;
}

Result<RepartitionSplit> SplitPlan(const Plan& plan, const SourceTopics& topics) {
  if (plan.config == nullptr) return Status::InvalidArgument("split: the plan has no pipeline configuration");
  const PipelineConfig& config = *plan.config;
  const RepartitionDecision d = DecideRepartition(config);
  const std::string pipeline = "pipeline " + config.name;
  if (!d.would) {
    return Status::InvalidArgument(pipeline + " does not repartition (" + d.why + "): nothing to split");
  }
  if (!plan.aggregate) return Status::InvalidArgument(pipeline + ": the plan has no compiled [aggregate] to split");
  if (!LegalTopicName(d.topic)) {
    return Status::InvalidArgument(pipeline + ": its repartition topic would be named \"" + d.topic +
                                   "\", which Kafka refuses (1 to 249 of a-z A-Z 0-9 . _ -): rename the pipeline");
  }
  if (topics.brokers.empty()) return Status::InvalidArgument(pipeline + ": no brokers for the repartition topic");
  if (topics.topics.empty()) return Status::InvalidArgument(pipeline + ": the source has no topic to split");
  std::set<std::string> names;
  std::set<int32_t> slots;
  int64_t total = 0;
  std::vector<UpstreamId> upstreams;
  for (const SourceTopic& t : topics.topics) {
    if (!names.insert(t.name).second) {
      return Status::InvalidArgument(pipeline + ": the source's topic \"" + t.name + "\" is listed twice");
    }
    if (t.slot < 0 || !slots.insert(t.slot).second) {
      return Status::InvalidArgument(pipeline + ": the source's topic \"" + t.name + "\" has slot " +
                                     std::to_string(t.slot) + ", " +
                                     (t.slot < 0 ? "a negative one" : "another topic's too"));
    }
    if (t.name == d.topic) {
      return Status::InvalidArgument(pipeline + ": the source reads \"" + t.name +
                                     "\", its own repartition topic; read another topic or rename the pipeline");
    }
    if (t.partitions < 1) {
      return Status::InvalidArgument(pipeline + ": the source's topic \"" + t.name + "\" has no partitions (" +
                                     std::to_string(t.partitions) + ") in its metadata");
    }
    total += t.partitions;
    for (int32_t p = 0; p < t.partitions; ++p) upstreams.push_back({t.slot, p});
  }
  if (!RepartitionsWith(d, total)) {
    return Status::InvalidArgument(pipeline + ": the source has one partition in all, which one task reads whole: "
                                   "nothing to repartition");
  }
  std::sort(upstreams.begin(), upstreams.end());
  const int64_t r = d.partitions > 0 ? d.partitions : total;
  if (r > INT32_MAX) {
    return Status::InvalidArgument(pipeline + ": the source has " + std::to_string(total) +
                                   " partitions in all, more than a topic can have; set [source] "
                                   "repartition_partitions");
  }
  const int64_t fingerprint = Fingerprint64(AggregateFingerprint(plan.aggregate.get()));

  RepartitionSplit split;
  StageOnePlan& one = split.one;
  one.plan = &plan;
  one.aggregate = plan.aggregate.get();
  one.pipeline = config.name;
  one.brokers = topics.brokers;
  one.topic = d.topic;
  one.partitions = static_cast<int32_t>(r);
  for (const std::string& key : config.source.options.KeysWithPrefix("kafka.")) {
    const std::string name = key.substr(6);
    for (const char* prefix : {"security.", "sasl.", "ssl.", "socket.", "broker."}) {
      if (name.rfind(prefix, 0) == 0) one.properties[name] = config.source.options.GetString(key);
    }
  }
  one.tasks = upstreams;
  one.fingerprint = fingerprint;

  StageTwoPlan& two = split.two;
  two.topic = d.topic;
  two.partitions = one.partitions;
  two.upstreams = std::move(upstreams);
  two.fingerprint = fingerprint;
  PipelineConfig& c = two.config;
  c.file = config.file;
  c.language = config.language;
  c.name = config.name;
  c.checkpoint_interval_micros = config.checkpoint_interval_micros;
  c.workers = config.workers;
  c.max_pending = config.max_pending;
  c.catch_up_timeout_micros = config.catch_up_timeout_micros;
  c.shutdown_timeout_micros = config.shutdown_timeout_micros;
  c.source.pipeline = config.name;
  c.source.name = StageTwoSourceName(config.source.name);
  c.source.uri = "kafka://" + topics.brokers + "/" + d.topic;
  const expr::SourceLocation& at = config.source.options.section_location;
  c.source.options.section_location = at;
  const std::string group =
      config.source.options.Has("group") ? config.source.options.GetString("group") : std::string();
  c.source.options.Set("group", Option{(group.empty() ? config.name : group) + "-repartition", at});
  for (const auto& [name, value] : one.properties) c.source.options.Set("kafka." + name, Option{value, at});
  // The topic holds partial counts nobody else has: records deleted unread (a purge by a run
  // into another sink, retention) or a recreated topic must stop the run, never be skipped.
  c.source.options.Set("gapless", Option{"true", at});
  // The columns the [aggregate] reads: every field of stage one's working row but the ones the
  // engine adds (_source, _partition, _offset) and the window's, which the aggregate adds.
  const AggregateSpec& spec = *plan.aggregate;
  for (size_t i = 0; i < plan.schema.size(); ++i) {
    if (i == plan.source_slot || i == plan.partition_slot || i == plan.offset_slot ||
        i == spec.window_start_slot || i == spec.window_end_slot) {
      continue;
    }
    c.source.fields.push_back({plan.schema.field(i).name, plan.schema.field(i).type, ""});
  }
  c.aggregate = config.aggregate;
  c.sink = config.sink;
  c.dead_letter_store = config.dead_letter_store;
  c.dead_letter_path = config.dead_letter_path;
  c.dead_letter_where = config.dead_letter_where;
  c.variables = config.variables;
  return split;
}

Result<CatchUpOrder> CatchUpOrder::Start(const std::map<UpstreamId, int64_t>& source_ends) {
  if (source_ends.empty()) {
    return Status::InvalidArgument("--until-caught-up: stage one has no task to read up to its end");
  }
  CatchUpOrder order;
  for (const auto& [task, end] : source_ends) {
    if (end < 0) {
      return Status::InvalidArgument("--until-caught-up: a negative end offset (" + std::to_string(end) +
                                     ") for partition " + std::to_string(task.partition) + " of topic #" +
                                     std::to_string(task.topic_index));
    }
    order.tasks_[task].end = end;
  }
  return order;
}

Status CatchUpOrder::StageOneAt(const UpstreamId& task, int64_t next) {
  if (next < 0) return Status::InvalidArgument("--until-caught-up: a negative position of stage one");
  auto it = tasks_.find(task);
  if (it == tasks_.end() || !it->second.waited) return Status::OK();
  it->second.next = std::max(it->second.next, next);
  return Status::OK();
}

void CatchUpOrder::StageOneLost(const UpstreamId& task) {
  auto it = tasks_.find(task);
  if (it != tasks_.end()) it->second.waited = false;
}

bool CatchUpOrder::StageOneStops(const UpstreamId& task) const {
  auto it = tasks_.find(task);
  return it == tasks_.end() || !it->second.waited || it->second.AtEnd();
}

std::vector<UpstreamId> CatchUpOrder::EndControlsDue() const {
  std::vector<UpstreamId> out;
  for (const auto& [id, t] : tasks_) {
    if (t.waited && t.AtEnd() && !t.end_committed) out.push_back(id);
  }
  return out;
}

Status CatchUpOrder::EndControlsCommitted(const std::vector<UpstreamId>& tasks) {
  for (const UpstreamId& id : tasks) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !it->second.AtEnd()) {
      return Status::FailedPrecondition("--until-caught-up: an end control of partition " +
                                        std::to_string(id.partition) + " of topic #" +
                                        std::to_string(id.topic_index) + ", which has not reached its end");
    }
  }
  for (const UpstreamId& id : tasks) tasks_[id].end_committed = true;
  return Status::OK();
}

bool CatchUpOrder::StageOneEnded() const {
  return std::all_of(tasks_.begin(), tasks_.end(), [](const auto& entry) {
    const Task& t = entry.second;
    return !t.waited || (t.AtEnd() && t.end_committed);
  });
}

Status CatchUpOrder::StageTwoEnds(const std::map<int32_t, int64_t>& last_stable) {
  if (stage_two_started_) {
    return Status::FailedPrecondition("--until-caught-up: stage two took the repartition topic's ends already");
  }
  if (!StageOneEnded()) {
    return Status::FailedPrecondition(
        "--until-caught-up: stage two takes the repartition topic's last stable offsets only after every "
        "end control of stage one is committed");
  }
  for (const auto& [p, end] : last_stable) {
    if (p < 0 || end < 0) {
      return Status::InvalidArgument("--until-caught-up: a negative partition or offset in the repartition "
                                     "topic's last stable offsets");
    }
  }
  if (last_stable.empty()) {
    return Status::InvalidArgument("--until-caught-up: no last stable offset of the repartition topic");
  }
  stage_two_started_ = true;
  stage_two_ends_ = last_stable;
  return Status::OK();
}

Status CatchUpOrder::StageTwoAt(int32_t partition, int64_t next) {
  // Stage two reads all along, also before its ends are taken: it may be at them already then.
  if (next < 0) return Status::InvalidArgument("--until-caught-up: a negative position of stage two");
  int64_t& at = stage_two_next_[partition];
  at = std::max(at, next);
  return Status::OK();
}

bool CatchUpOrder::StageTwoStops(int32_t partition) const {
  if (!stage_two_started_) return false;
  auto end = stage_two_ends_.find(partition);
  if (end == stage_two_ends_.end()) return true;  // not in the topic's ends: not stage two's to read
  auto at = stage_two_next_.find(partition);
  return end->second <= (at == stage_two_next_.end() ? 0 : at->second);
}

CatchUpOrder::Phase CatchUpOrder::phase() const {
  if (stage_two_started_) {
    for (const auto& [p, end] : stage_two_ends_) {
      if (!StageTwoStops(p)) return Phase::kStageTwo;
    }
    return Phase::kDone;
  }
  const bool all_at_end = std::all_of(tasks_.begin(), tasks_.end(), [](const auto& entry) {
    return !entry.second.waited || entry.second.AtEnd();
  });
  if (!all_at_end) return Phase::kStageOne;
  return StageOneEnded() ? Phase::kStageTwoEnds : Phase::kEndControls;
}

}  // namespace sluice
