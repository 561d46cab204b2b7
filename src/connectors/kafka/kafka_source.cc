#include "connectors/kafka/kafka_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "connectors/kafka/kafka_uri.h"
#include "connectors/kafka/schema_registry.h"
#include "core/uri.h"

namespace sluice {

const OptionTable& KafkaSourceOptions() {
  static const OptionTable kTable = [] {
    OptionTable t{
        .uri = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC",
        .summary = "A Kafka topic read by a consumer-group member per worker; the positions in the sink "
                   "are the truth (src/connectors/kafka/README.md).",
        .options = {
            {.name = "group", .default_note = "the pipeline name", .help = "The consumer group."},
            {.name = "format",
             .default_value = "auto",
             .allowed = {"auto", "json", "ndjson", "csv", "avro", "protobuf"},
             .help = "Payload format; `auto` is JSON."},
            {.name = "columns",
             .type = OptionType::kList,
             .help = "`format = \"csv\"`: the columns in order (`\"a,b,c\"`; CSV messages have no header)."},
            {.name = "delimiter", .default_value = ",", .allowed = {",", ";"}, .help = "`format = \"csv\"`: field separator."},
            {.name = "header", .help = "Ignored (a file source's setting; Kafka CSV messages never have a header)."},
            {.name = "kafka.*",
             .help = "Any librdkafka consumer setting, `\"kafka.NAME\" = \"VALUE\"` (quoted: TOML reads a bare "
                     "dotted key as a table)."},
        }};
    for (OptionSpec& spec : SchemaRegistryOptions()) t.options.push_back(std::move(spec));
    return t;
  }();
  return kTable;
}

Result<std::vector<std::unique_ptr<Source>>> KafkaSource::Make(const SourceConfig& config,
                                                               int max_instances) {
  auto [scheme, rest] = SplitUri(config.uri);
  auto uri = ParseKafkaUri(rest);
  if (!uri.ok()) return Status::InvalidArgument(config.options.Where("uri") + ": " + uri.status().message());
  OptionReader o(config.options, KafkaSourceOptions(), "source");
  Settings s;
  s.brokers = uri->brokers;
  s.topic = uri->topic;
  s.group = o.String("group", config.pipeline);
  DecoderOptions decoder;
  std::string format = o.String("format");
  if (format == "auto" || format == "json" || format == "ndjson") {
    decoder.format = DecoderOptions::Format::kNdjson;
    // An empty schema_registry (a variable left unset, as in examples/users.toml) is none.
    if (!o.String("schema_registry").empty()) {
      return Status::InvalidArgument(o.Where("schema_registry") + ": schema_registry is for format = \"avro\"");
    }
  } else if (format == "csv") {
    decoder.format = DecoderOptions::Format::kCsv;
    decoder.header = false;
    std::string delimiter = o.String("delimiter");
    if (delimiter != "," && delimiter != ";") {
      return Status::InvalidArgument(o.Where("delimiter") + ": delimiter must be \",\" or \";\"");
    }
    decoder.delimiter = delimiter[0];
    std::string columns = o.String("columns");
    if (columns.empty()) {
      return Status::InvalidArgument(o.Where("format") +
                                     ": CSV messages have no header: list the columns in order, "
                                     "columns = \"create_time,bid,...\"");
    }
    size_t start = 0;
    while (start <= columns.size()) {
      size_t comma = columns.find(',', start);
      if (comma == std::string::npos) comma = columns.size();
      decoder.columns.push_back(columns.substr(start, comma - start));
      start = comma + 1;
    }
  } else if (format == "avro") {
    decoder.format = DecoderOptions::Format::kAvro;
    ASSIGN_OR_RETURN(SchemaRegistrySettings registry, ReadSchemaRegistrySettings(o.options(), s.topic));
    decoder.avro_schemas = MakeRegistrySchemaCache(registry);
  } else if (format == "protobuf") {
    decoder.format = DecoderOptions::Format::kProtobuf;
    ASSIGN_OR_RETURN(SchemaRegistrySettings registry, ReadSchemaRegistrySettings(o.options(), s.topic));
    decoder.avro_schemas = MakeRegistryProtobufSchemaCache(registry);
  } else {
    return Status::InvalidArgument(o.Where("format") + ": format must be json, csv, avro or protobuf for Kafka");
  }
  for (const auto& key : o.KeysWithPrefix("kafka.")) {
    s.properties[key.substr(6)] = o.String(key);
  }
  o.String("header");  // a file source's setting; Kafka CSV messages never have a header
  RETURN_IF_ERROR(o.Finish());

  // One group member per worker, but no more than there are partitions.
  int instances = std::max(1, max_instances);
  if (instances > 1) {
    int partitions = KafkaPartitionCount(s.brokers, s.topic);
    if (partitions > 0) instances = std::min(instances, partitions);
  }
  std::vector<std::unique_ptr<Source>> out;
  for (int i = 0; i < instances; ++i) {
    Settings si = s;
    si.client_id = "sluice-" + config.pipeline + "-" + std::to_string(i);
    out.push_back(std::make_unique<KafkaSource>(std::move(si), decoder));
  }
  return out;
}

KafkaSource::~KafkaSource() { Close(); }

Status KafkaSource::Open(const SourceContext& ctx) {
  ctx_ = ctx;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", settings_.brokers));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "group.id", settings_.group));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "client.id", settings_.client_id));
  // Positions live in the sink; Kafka's committed offsets are written for monitoring only.
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.auto.commit", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.auto.offset.store", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "auto.offset.reset", "earliest"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.partition.eof", "true"));
  // A killed member is noticed in seconds, not the default 45 s.
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "session.timeout.ms", "10000"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "heartbeat.interval.ms", "1000"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "max.poll.interval.ms", "900000"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "4"));
  for (const auto& [k, v] : settings_.properties) RETURN_IF_ERROR(SetKafkaConf(conf.get(), k, v));
  std::string err;
  if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) != RdKafka::Conf::CONF_OK) {
    return Status::Internal("kafka rebalance_cb: " + err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) return Status::InvalidArgument("kafka consumer: " + err);
  if (ctx_.until_caught_up) RETURN_IF_ERROR(FetchEndOffsets());
  ListPartitions();
  RdKafka::ErrorCode rc = consumer_->subscribe({settings_.topic});
  if (rc != RdKafka::ERR_NO_ERROR) {
    return Status::Unavailable("kafka subscribe to " + settings_.topic + ": " + RdKafka::err2str(rc));
  }
  opened_ = std::chrono::steady_clock::now();
  last_progress_ = opened_;
  spdlog::info("kafka {}: consuming topic {} as group {} ({})", settings_.client_id, settings_.topic,
               settings_.group, settings_.brokers);
  return Status::OK();
}

void KafkaSource::ListPartitions() {
  topic_partitions_.clear();
  if (!end_offsets_.empty()) {
    for (const auto& [p, end] : end_offsets_) topic_partitions_.push_back(p);
    return;
  }
  // Best effort: without the list, a partition holds the watermark back once it is assigned.
  RdKafka::Metadata* md = nullptr;
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(consumer_.get(), settings_.topic, nullptr, err));
  if (!t || consumer_->metadata(false, t.get(), &md, 5000) != RdKafka::ERR_NO_ERROR || !md) {
    spdlog::debug("kafka {}: cannot list the partitions of {}: {}", settings_.client_id, settings_.topic, err);
    delete md;
    return;
  }
  for (const auto* tm : *md->topics()) {
    if (tm->topic() != settings_.topic || tm->err() != RdKafka::ERR_NO_ERROR) continue;
    for (const auto* pm : *tm->partitions()) topic_partitions_.push_back(pm->id());
  }
  delete md;
}

Status KafkaSource::FetchEndOffsets() {
  // Retry for a while: a broker that is still starting is not a reason to give up a batch run.
  for (int attempt = 0; attempt < 30; ++attempt) {
    RdKafka::Metadata* md = nullptr;
    std::unique_ptr<RdKafka::Topic> t;
    std::string err;
    t.reset(RdKafka::Topic::create(consumer_.get(), settings_.topic, nullptr, err));
    RdKafka::ErrorCode rc = consumer_->metadata(false, t.get(), &md, 5000);
    if (rc == RdKafka::ERR_NO_ERROR && md) {
      bool ok = false;
      for (const auto* tm : *md->topics()) {
        if (tm->topic() != settings_.topic || tm->err() != RdKafka::ERR_NO_ERROR) continue;
        ok = true;
        for (const auto* pm : *tm->partitions()) {
          int64_t low = 0, high = 0;
          rc = consumer_->query_watermark_offsets(settings_.topic, pm->id(), &low, &high, 5000);
          if (rc != RdKafka::ERR_NO_ERROR) {
            ok = false;
            break;
          }
          end_offsets_[pm->id()] = high;
          low_offsets_[pm->id()] = low;
          // A position committed beyond the end was taken in another life of the topic (offsets
          // only grow): it says nothing about this one until someone rewrites it.
          if (std::optional<int64_t> c = ctx_.committed_position ? ctx_.committed_position(pm->id())
                                                                 : std::nullopt;
              c && *c > high) {
            stale_[pm->id()] = *c;
            spdlog::warn("kafka {}: {}[{}]: the committed position {} is beyond the end of the "
                         "partition ({}): the topic was deleted and recreated; the partition is "
                         "read again from its beginning", settings_.client_id, settings_.topic,
                         pm->id(), *c, high);
          }
          next_[pm->id()] = low;  // replaced by the committed position on assignment
        }
      }
      delete md;
      if (ok) return Status::OK();
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return Status::Unavailable("kafka: cannot read the end offsets of topic " + settings_.topic +
                             " from " + settings_.brokers);
}

void KafkaSource::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                               std::vector<RdKafka::TopicPartition*>& partitions) {
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    for (auto* tp : partitions) {
      std::optional<int64_t> committed = ctx_.committed_position(tp->partition());
      bool recreated = false;
      if (committed) committed = StartOffset(tp->partition(), *committed, &recreated);
      // The topic was recreated: its offsets start again, under the next generation, so the
      // dead letters of this life of the partition keep apart from the last one's.
      int64_t generation = 0;
      if (committed || recreated) {
        generation = ctx_.committed_position(kGenerationPartitionBase + tp->partition()).value_or(0);
      }
      if (recreated) {
        ++generation;
        new_generations_.insert(tp->partition());
      }
      generations_[tp->partition()] = generation;
      tp->set_offset(committed ? *committed : RdKafka::Topic::OFFSET_BEGINNING);
      assigned_.insert(tp->partition());
      if (committed) {
        next_[tp->partition()] = *committed;
      } else if (!next_.count(tp->partition())) {
        // Read from its beginning: the first offset, asked once per assignment, so progress and
        // /metrics show the partition's position and lag before its first record.
        int64_t low = -1, high = -1;
        if (consumer->query_watermark_offsets(settings_.topic, tp->partition(), &low, &high,
                                              2000) == RdKafka::ERR_NO_ERROR && low >= 0) {
          next_[tp->partition()] = low;
        }
      }
      past_records_.erase(tp->partition());
      spdlog::info("kafka {}: assigned {}[{}] from offset {}", settings_.client_id, settings_.topic,
                   tp->partition(), committed ? std::to_string(*committed) : "beginning");
    }
    consumer->assign(partitions);
    last_progress_ = std::chrono::steady_clock::now();
    return;
  }
  std::vector<int32_t> revoked;
  for (auto* tp : partitions) revoked.push_back(tp->partition());
  // Records of these partitions fetched earlier in this Poll() are not processed yet; the new
  // owner will read them from the committed position, so they must not be processed here.
  if (in_flight_) {
    std::set<int32_t> gone(revoked.begin(), revoked.end());
    in_flight_->RemoveIf([&](const RawRecord& r) { return gone.count(r.partition) > 0; });
  }
  if (err == RdKafka::ERR__REVOKE_PARTITIONS && !revoked.empty() && ctx_.checkpoint_before_revoke) {
    Status s = ctx_.checkpoint_before_revoke(revoked);
    if (!s.ok()) {
      spdlog::error("kafka {}: checkpoint before giving up partitions failed: {}",
                    settings_.client_id, s.ToString());
      callback_error_ = s;
    }
  } else if (err != RdKafka::ERR__REVOKE_PARTITIONS) {
    spdlog::warn("kafka {}: rebalance error {}", settings_.client_id, RdKafka::err2str(err));
  }
  for (int32_t p : revoked) {
    assigned_.erase(p);
    if (!ctx_.until_caught_up) next_.erase(p);
  }
  consumer->unassign();
}

int64_t KafkaSource::StartOffset(int32_t partition, int64_t committed, bool* recreated) {
  int64_t low = 0, high = 0;
  RdKafka::ErrorCode rc =
      consumer_->query_watermark_offsets(settings_.topic, partition, &low, &high, 5000);
  if (rc != RdKafka::ERR_NO_ERROR) {
    spdlog::warn("kafka {}: cannot read the offsets of {}[{}] ({}); reading from the committed "
                 "position {}", settings_.client_id, settings_.topic, partition,
                 RdKafka::err2str(rc), committed);
    return committed;
  }
  if (committed > high) {
    // Offsets only grow: a position past the end was taken in another life of the topic.
    spdlog::warn("kafka {}: {}[{}]: the committed position {} is beyond the end of the partition "
                 "({}): the topic was deleted and recreated; reading the partition from its "
                 "beginning (offset {})",
                 settings_.client_id, settings_.topic, partition, committed, high, low);
    *recreated = true;
    return low;
  }
  if (committed < low) {
    spdlog::warn("kafka {}: {}[{}]: the committed position {} is before the first offset of the "
                 "partition ({}): {} record(s) were deleted before they were read (retention, or "
                 "the topic was recreated); reading from offset {}",
                 settings_.client_id, settings_.topic, partition, committed, low, low - committed,
                 low);
    return low;
  }
  return committed;
}

bool KafkaSource::CaughtUp() {
  if (caught_up_) return true;
  // Its own partitions first: no need to ask the sink while this instance still reads.
  for (int32_t p : assigned_) {
    auto end = end_offsets_.find(p);
    if (end == end_offsets_.end()) continue;  // created after start: not part of this batch
    if (end->second <= low_offsets_[p]) continue;  // nothing to read
    auto next = next_.find(p);
    if (next == next_.end() || next->second < end->second) return false;
  }
  // Every other partition must have reached its end in the sink, whoever read it.
  const auto now = std::chrono::steady_clock::now();
  if (now < next_sink_check_) return false;
  next_sink_check_ = now + std::chrono::seconds(1);
  std::string waiting;
  std::map<int32_t, int64_t> all;  // one read of the sink for every partition
  if (ctx_.committed_positions) all = ctx_.committed_positions();
  for (const auto& [p, end] : end_offsets_) {
    if (assigned_.count(p) || end <= low_offsets_[p]) continue;
    std::optional<int64_t> committed;
    if (ctx_.committed_positions) {
      if (auto it = all.find(p); it != all.end()) committed = it->second;
    } else {
      committed = ctx_.committed_position(p);
    }
    const int64_t c = committed ? *committed : -1;
    auto [it, inserted] = others_committed_.try_emplace(p, c);
    if (!inserted && it->second != c) {
      it->second = c;
      last_progress_ = now;
    }
    auto stale = stale_.find(p);
    const bool is_stale = stale != stale_.end() && stale->second == c;
    if (c >= end && !is_stale) continue;
    if (!waiting.empty()) waiting += ", ";
    waiting += "[" + std::to_string(p) + "] at " +
               (c < 0 ? std::string("no position") : std::to_string(c) + (is_stale ? " (stale)" : "")) +
               " of " + std::to_string(end);
  }
  waiting_ = waiting;
  if (waiting.empty()) {
    caught_up_ = true;
    spdlog::info("kafka {}: every partition of {} has reached the end offsets seen at start",
                 settings_.client_id, settings_.topic);
    return true;
  }
  if (now >= next_wait_log_) {
    next_wait_log_ = now + std::chrono::seconds(10);
    spdlog::info("kafka {}: nothing left to read in its own partitions of {}; waiting for {} (committed "
                 "positions in the sink; read by other members of group {}, or not assigned yet)",
                 settings_.client_id, settings_.topic, waiting, settings_.group);
  }
  return false;
}

Status KafkaSource::CheckProgress() {
  if (!ctx_.until_caught_up || caught_up_) return Status::OK();
  const auto stalled = std::chrono::steady_clock::now() - last_progress_;
  if (stalled < ctx_.catch_up_timeout) return Status::OK();
  std::string own;
  for (int32_t p : assigned_) {
    auto end = end_offsets_.find(p);
    auto next = next_.find(p);
    if (end == end_offsets_.end() || next == next_.end() || next->second >= end->second) continue;
    if (!own.empty()) own += ", ";
    own += "[" + std::to_string(p) + "] at " + std::to_string(next->second) + " of " +
           std::to_string(end->second);
  }
  std::string msg = "--until-caught-up gave up on topic " + settings_.topic + ": nothing moved for " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(stalled).count()) +
                    " s (catch_up_timeout)";
  if (!own.empty()) msg += "; partitions this member reads: " + own;
  if (!waiting_.empty()) {
    msg += "; partitions others hold or nobody was assigned (committed positions in the sink): " +
           waiting_ + " (is another member of group " + settings_.group + " stuck?)";
  }
  if (!last_error_.empty()) msg += "; last error from Kafka: " + last_error_;
  return Status::Aborted(msg);
}

Result<PollState> KafkaSource::Poll(RawBatch* out, size_t max_records,
                                    std::chrono::milliseconds budget) {
  const auto now = std::chrono::steady_clock::now();
  const auto deadline = now + budget;
  // Time spent outside Poll() (the worker paused by a slow sink) is not the topic standing still.
  if (last_poll_end_ != std::chrono::steady_clock::time_point() &&
      now - last_poll_end_ > std::chrono::seconds(1)) {
    last_progress_ += now - last_poll_end_;
  }
  Status transient;
  in_flight_ = out;
  struct Clear {
    KafkaSource* self;
    ~Clear() {
      self->in_flight_ = nullptr;
      self->last_poll_end_ = std::chrono::steady_clock::now();
    }
  } clear{this};
  RETURN_IF_ERROR(CheckProgress());
  while (out->size() < max_records) {
    if (ctx_.until_caught_up && CaughtUp()) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    // A record held back while the schema registry did not answer comes first.
    std::unique_ptr<RdKafka::Message> msg =
        held_ ? std::move(held_)
              : std::unique_ptr<RdKafka::Message>(
                    consumer_->consume(static_cast<int>(std::max<int64_t>(0, left.count()))));
    if (msg->err() == RdKafka::ERR_NO_ERROR && !assigned_.count(msg->partition())) {
      continue;  // fetched before a revoke: no longer ours
    }
    if (!callback_error_.ok()) {
      Status s = callback_error_;
      callback_error_ = Status::OK();
      return s;
    }
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR: {
        const int32_t p = msg->partition();
        const int64_t offset = msg->offset();
        if (ctx_.until_caught_up) {
          auto end = end_offsets_.find(p);
          if (end != end_offsets_.end() && offset >= end->second) break;  // beyond this batch
        }
        std::string_view payload(static_cast<const char*>(msg->payload()), msg->len());
        if (decoder_.avro_schemas) {
          // The writer schema is fetched here, not in the decoder, so that a registry that does
          // not answer is retried with the source's backoff instead of dead-lettering records.
          // The record waits in held_ and is handed over first on the next Poll().
          std::optional<int32_t> id = ConfluentSchemaId(payload);
          if (id && !known_schema_ids_.count(*id)) {
            Status fetched = decoder_.avro_schemas->Ensure(*id);
            if (!fetched.ok()) {
              last_error_ = fetched.message();
              transient = fetched;
              held_ = std::move(msg);
              break;
            }
            known_schema_ids_.insert(*id);
          }
        }
        RawRecord& r = out->Append(payload);
        r.partition = p;
        r.offset = offset;
        r.next_offset = offset + 1;
        RdKafka::MessageTimestamp ts = msg->timestamp();
        if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) {
          r.timestamp_micros = ts.timestamp * 1000;
        }
        next_[p] = offset + 1;
        past_records_.erase(p);
        last_progress_ = std::chrono::steady_clock::now();
        break;
      }
      case RdKafka::ERR__PARTITION_EOF: {
        // The end of a partition written in transactions lies past its last record: the
        // commit marker takes an offset no record has. Reaching EOF means everything before
        // the EOF offset is read.
        auto next = next_.find(msg->partition());
        if (next != next_.end() && assigned_.count(msg->partition()) && msg->offset() > next->second) {
          next->second = msg->offset();
          past_records_[msg->partition()] = msg->offset();
          last_progress_ = std::chrono::steady_clock::now();
        }
        break;
      }
      case RdKafka::ERR__TIMED_OUT:
        return out->empty() ? (ctx_.until_caught_up && CaughtUp() ? PollState::kEnd : PollState::kIdle)
                            : PollState::kData;
      default:
        if (msg->err() == RdKafka::ERR__FATAL) {
          return Status::Internal("kafka consumer fatal error: " + msg->errstr());
        }
        last_error_ = msg->errstr();
        transient = Status::Unavailable("kafka: " + msg->errstr());
        break;
    }
    if (!transient.ok()) {
      if (out->empty()) return transient;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  if (out->empty()) return ctx_.until_caught_up && CaughtUp() ? PollState::kEnd : PollState::kIdle;
  return PollState::kData;
}

std::vector<std::pair<int32_t, int64_t>> KafkaSource::PositionsPastRecords() const {
  std::vector<std::pair<int32_t, int64_t>> out;
  for (const auto& [p, offset] : past_records_) {
    if (assigned_.count(p)) out.emplace_back(p, offset);
  }
  // A generation this instance started (the topic was recreated), committed with the positions
  // of the new life of the partition.
  for (int32_t p : new_generations_) {
    if (!assigned_.count(p)) continue;
    if (auto g = generations_.find(p); g != generations_.end()) out.emplace_back(kGenerationPartitionBase + p, g->second);
  }
  return out;
}

int64_t KafkaSource::Generation(int32_t partition) const {
  auto g = generations_.find(partition);
  return g == generations_.end() ? 0 : g->second;
}

std::vector<std::pair<int32_t, int64_t>> KafkaSource::Lag() const {
  std::vector<std::pair<int32_t, int64_t>> out;
  if (!consumer_) return out;
  for (int32_t p : assigned_) {
    int64_t low = 0, high = 0;
    if (consumer_->get_watermark_offsets(settings_.topic, p, &low, &high) != RdKafka::ERR_NO_ERROR) continue;
    auto next = next_.find(p);
    int64_t pos = next == next_.end() ? low : next->second;
    if (high >= 0) out.emplace_back(p, std::max<int64_t>(0, high - pos));
  }
  return out;
}

std::vector<Source::ReadPosition> KafkaSource::ReadPositions() const {
  std::vector<ReadPosition> out;
  if (!consumer_) return out;
  for (int32_t p : assigned_) {
    int64_t position = -1;
    if (auto n = next_.find(p); n != next_.end()) position = n->second;
    // A partition written in transactions ends with a commit marker past its last record.
    if (auto m = past_records_.find(p); m != past_records_.end()) {
      position = std::max(position, m->second);
    }
    if (position < 0) continue;
    // The high watermark librdkafka took from its last fetch response: no request here.
    int64_t low = -1, high = -1;
    if (consumer_->get_watermark_offsets(settings_.topic, p, &low, &high) !=
            RdKafka::ERR_NO_ERROR ||
        high < 0) {
      high = -1;
    }
    out.push_back({p, position, high});
  }
  // --until-caught-up found every other partition at its end in the sink (a re-run with nothing
  // new ends so, often before any assignment): those partitions are where the sink has them,
  // against the end offsets read at start.
  if (caught_up_) {
    for (const auto& [p, end] : end_offsets_) {
      if (assigned_.count(p)) continue;
      auto c = others_committed_.find(p);
      out.push_back({p, c != others_committed_.end() && c->second >= 0 ? c->second : end, end});
    }
  }
  return out;
}

void KafkaSource::OnCommitted(const std::vector<std::pair<int32_t, int64_t>>& positions) {
  if (!consumer_) return;
  std::vector<RdKafka::TopicPartition*> offsets;
  for (const auto& [p, offset] : positions) {
    if (assigned_.count(p)) offsets.push_back(RdKafka::TopicPartition::create(settings_.topic, p, offset));
  }
  if (!offsets.empty()) consumer_->commitAsync(offsets);
  RdKafka::TopicPartition::destroy(offsets);
}

void KafkaSource::Close() {
  held_.reset();  // a message must not outlive its consumer
  if (!consumer_) return;
  // close() revokes the assignment, which checkpoints through the rebalance callback.
  consumer_->close();
  consumer_.reset();
}

}  // namespace sluice
