#include "connectors/kafka/kafka_sink.h"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <unistd.h>

#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/kafka_ids.h"
#include "connectors/kafka/kafka_uri.h"
#include "core/json_writer.h"
#include "core/time.h"
#include "core/uri.h"
#include "runtime/repartition_output.h"
#include "runtime/repartition_upstream.h"
#include "runtime/sink_rejection.h"
#include "runtime/window_state.h"

namespace sluice {
namespace {

constexpr char kNeedsRows[] =
    "the kafka sink writes rows: use [aggregate] mode = \"append\" or a pipeline without "
    "[aggregate] (a topic cannot merge the partial aggregates of update mode)";
/// Room for large engine state in the positions topic (the producer's and the topic's limit).
constexpr int kMaxMessageBytes = 16 << 20;
const std::string kNoState;

void AppendJsonValue(const Value& v, std::string* out) {
  switch (v.type()) {
    case Type::kNull:
      *out += "null";
      return;
    case Type::kBool:
      *out += v.bool_value() ? "true" : "false";
      return;
    case Type::kInt64:
      *out += std::to_string(v.int_value());
      return;
    case Type::kDouble: {
      double d = v.double_value();
      if (!std::isfinite(d)) {
        *out += "null";
        return;
      }
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof(buf), d);
      out->append(buf, r.ptr);
      return;
    }
    case Type::kString:
      AppendJsonString(v.string_value(), out);
      return;
    case Type::kTimestamp:
      AppendJsonString(v.ToString(), out);
      return;
  }
}

std::string ErrorText(rd_kafka_error_t* e) {
  return std::string(rd_kafka_error_name(e)) + ": " + rd_kafka_error_string(e);
}

bool IsFencing(rd_kafka_resp_err_t code) {
  return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
         code == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
}

}  // namespace

/// Keeps the first failed delivery of a transaction (served on the thread calling poll/flush).
class KafkaSink::DeliveryReport : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      if (m.partition() == 0 && m.topic_name() == watch_topic) {
        if (first_watched < 0 || m.offset() < first_watched) first_watched = m.offset();
        if (m.offset() > last_watched) last_watched = m.offset();
        ++count_watched;
      }
      return;
    }
    const auto r = reinterpret_cast<uintptr_t>(m.msg_opaque());
    if (m.err() == RdKafka::ERR_MSG_SIZE_TOO_LARGE && r != 0 && m.len() >= too_large_bytes) {
      // The broker refuses a whole batch: only its largest row is surely too large.
      too_large_bytes = m.len();
      too_large_row = r;
      too_large_text = "kafka error MSG_SIZE_TOO_LARGE: " + std::to_string(m.len()) +
                       " bytes, over the broker's limit for the topic (" + m.errstr() + ")";
    }
    if (failed) return;
    failed = true;
    code = m.err();
    text = m.errstr();
    row = reinterpret_cast<uintptr_t>(m.msg_opaque());
    size = m.len();
    if (m.key()) key = *m.key();
  }
  void Reset() {
    std::string topic = std::move(watch_topic);
    *this = DeliveryReport();
    watch_topic = std::move(topic);
  }

  /// The positions topic: the smallest and largest offsets delivered to its partition 0 since
  /// Reset(), and how many records went there.
  std::string watch_topic;
  int64_t first_watched = -1;
  int64_t last_watched = -1;
  int64_t count_watched = 0;

  bool failed = false;
  RdKafka::ErrorCode code = RdKafka::ERR_NO_ERROR;
  std::string text, key;
  uintptr_t row = 0;  ///< 1 + the row's index; 0 for position/state records
  size_t size = 0;
  /// The largest row the broker refused as too large (1 + its index; 0: none), its size and
  /// the message for its dead letter.
  uintptr_t too_large_row = 0;
  size_t too_large_bytes = 0;
  std::string too_large_text;
};

const OptionTable& KafkaSinkOptions() {
  static const OptionTable kTable = [] {
    OptionTable t{
        .uri = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC",
        .summary = "Each output row one message, through the idempotent, transactional producer: a "
                   "checkpoint is one Kafka transaction with the rows, positions and engine state "
                   "(src/connectors/kafka/README.md).",
        .options = {
            {.name = "key", .help = "Output column whose text is the message key; null or empty text: no key."},
            {.name = "transactional_id",
             .default_note = "`sluice-<pipeline>-<topic>`",
             .help = "The producer's transactional.id; a restart with the same id fences the old process."},
            {.name = "positions_topic",
             .default_note = "`<topic>.sluice-positions`",
             .help = "Compacted topic holding positions and engine state (created when missing)."},
            {.name = "dead_letter_topic",
             .default_note = "`<topic>.sluice-dead-letters`",
             .help = "The pipeline's dead letters, produced in the same transaction as the rows."},
            {.name = "consumer_group",
             .help = "With a Kafka source: its group; the consumed offsets are committed to it in the "
                     "same transaction (with `consumer_topic`)."},
            {.name = "consumer_topic",
             .help = "With a Kafka source: its topic (with `consumer_group`); with several topics, the first "
                     "(only its offsets are committed to the group)."},
            {.name = "timeout",
             .type = OptionType::kDuration,
             .default_value = "30s",
             .help = "Bound for reaching the broker at open, for one transaction, and for reading "
                     "positions back; at least 1s."},
            {.name = "format", .default_value = "json", .allowed = {"json", "avro"}, .help = "Message format."},
            {.name = "avro_record_name", .default_value = "sluice.Row", .help = "`format = \"avro\"`: the record's name."},
            {.name = "kafka.*",
             .help = "librdkafka producer properties (cannot turn off idempotence or transactions)."},
        }};
    for (OptionSpec& spec : SchemaRegistryOptions()) t.options.push_back(std::move(spec));
    return t;
  }();
  return kTable;
}

Result<std::unique_ptr<Sink>> KafkaSink::Make(const SinkConfig& config) {
  auto [scheme, rest] = SplitUri(config.uri);
  auto uri = ParseKafkaUri(rest);
  OptionReader o(config.options, KafkaSinkOptions(), "sink");
  if (!uri.ok()) return Status::InvalidArgument(o.Where("uri") + ": " + uri.status().message());
  Settings s;
  s.brokers = uri->brokers;
  s.topic = uri->topic;
  s.key = o.String("key");
  s.key_where = o.Where("key");
  s.transactional_id = o.String("transactional_id");
  s.positions_topic = o.String("positions_topic");
  s.dead_letter_topic = o.String("dead_letter_topic");
  s.consumer_group = o.String("consumer_group");
  s.consumer_topic = o.String("consumer_topic");
  if (s.consumer_group.empty() != s.consumer_topic.empty()) {
    return Status::InvalidArgument(
        o.Where(s.consumer_group.empty() ? "consumer_topic" : "consumer_group") +
        ": consumer_group and consumer_topic go together (the Kafka "
        "source's group and topic, to commit the consumed offsets to)");
  }
  ASSIGN_OR_RETURN(int64_t timeout, o.Duration("timeout"));
  if (timeout < 1'000'000) {
    return Status::InvalidArgument(o.Where("timeout") + ": timeout must be at least 1s");
  }
  s.timeout_ms = timeout / 1000;
  const std::string format = o.String("format");
  if (format == "avro") {
    ASSIGN_OR_RETURN(SchemaRegistrySettings registry, ReadSchemaRegistrySettings(o.options(), s.topic));
    s.avro = registry;
    s.avro_record_name = o.String("avro_record_name");
  } else if (format != "json") {
    return Status::InvalidArgument(o.Where("format") + ": format must be json or avro for the Kafka sink");
  } else if (!o.String("schema_registry").empty()) {
    // An empty schema_registry (a variable left unset, as in examples/users-ingest.toml) is none.
    return Status::InvalidArgument(o.Where("schema_registry") + ": schema_registry is for format = \"avro\"");
  }
  for (const auto& key : o.KeysWithPrefix("kafka.")) {
    std::string prop = key.substr(6);
    if (prop == "enable.idempotence" || prop == "acks" || prop == "transactional.id" ||
        prop == "bootstrap.servers") {
      return Status::InvalidArgument(o.Where(key) + ": " + prop +
                                     " is set by the kafka sink (exactly-once needs it)");
    }
    s.properties[prop] = o.String(key);
  }
  RETURN_IF_ERROR(o.Finish());
  // Check the librdkafka properties now, so a typo fails at start, not at the first checkpoint.
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [k, v] : s.properties) {
    Status st = SetKafkaConf(conf.get(), k, v);
    if (!st.ok()) return Status::InvalidArgument(o.Where("kafka." + k) + ": " + st.message());
  }
  return std::unique_ptr<Sink>(new KafkaSink(std::move(s)));
}

// Stage one names its upstream tasks by the partition ids of the Kafka source (runtime code,
// which cannot include kafka_ids.h, splits them so).
static_assert(kUpstreamPartitionBits == kKafkaPartitionBits);

std::string StageOneTransactionalId(const std::string& pipeline) {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  char random[16];
  std::snprintf(random, sizeof(random), "%08x", static_cast<unsigned>(rd()));
  return "sluice-" + pipeline + "-repartition-" + (host[0] ? std::string(host) : std::string("host")) + "-" +
         std::to_string(::getpid()) + "-" + random;
}

Result<std::unique_ptr<Sink>> MakeStageOneSink(const StageOneSinkOptions& options) {
  if (options.partitions < 1) {
    return Status::InvalidArgument("the repartition topic needs at least one partition, not " +
                                   std::to_string(options.partitions));
  }
  if (options.brokers.empty() || options.pipeline.empty()) {
    return Status::InvalidArgument("stage one's sink needs the brokers and the pipeline's name");
  }
  KafkaSink::Settings s;
  s.brokers = options.brokers;
  s.topic = options.topic.empty() ? RepartitionTopicName(options.pipeline) : options.topic;
  s.positions_topic = options.positions_topic;
  s.timeout_ms = std::max<int64_t>(1000, options.timeout_ms);
  s.properties = options.properties;
  s.transactional_id =
      options.transactional_id.empty() ? StageOneTransactionalId(options.pipeline) : options.transactional_id;
  s.repartition_partitions = options.partitions;
  s.transaction_timeout_ms =
      options.transaction_timeout_ms > 0 ? options.transaction_timeout_ms : kStageOneTransactionTimeoutMs;
  // Never used: stage one's dead letters go to the repartition topic ('D' records).
  s.dead_letter_topic = s.topic + ".sluice-dead-letters";
  return std::unique_ptr<Sink>(new KafkaSink(std::move(s)));
}

KafkaSink::KafkaSink(Settings settings) : settings_(std::move(settings)) {
  // Here rather than in Open(): DeadLetterLocation() may be called from any thread, also while
  // Open() runs, so what it reads is fixed before.
  if (settings_.dead_letter_topic.empty()) {
    settings_.dead_letter_topic = settings_.topic + ".sluice-dead-letters";
  }
}

KafkaSink::~KafkaSink() { Close(); }

void KafkaSink::Close() {
  if (reader_) {
    reader_->close();
    reader_.reset();
  }
  if (producer_) {
    // An open transaction is left to the coordinator (aborted at its timeout or by the next
    // init_transactions); nothing of it is visible.
    producer_->flush(1000);
    producer_.reset();
  }
  needs_init_ = true;
}

std::string KafkaSink::DeadLetterLocation() const {
  if (TakesStageOne()) return "the repartition topic " + settings_.topic + " ('D' records, stored by stage two)";
  // Before Open() the default name is not filled in yet (sluice explain, validate).
  return "topic " + (settings_.dead_letter_topic.empty() ? settings_.topic + ".sluice-dead-letters"
                                                         : settings_.dead_letter_topic);
}

Result<SinkExplanation> KafkaSink::Explain(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  Settings s = settings_;  // the defaults Open() fills in
  if (s.transactional_id.empty()) s.transactional_id = "sluice-" + ctx.pipeline + "-" + s.topic;
  if (s.positions_topic.empty()) s.positions_topic = s.topic + ".sluice-positions";
  if (s.dead_letter_topic.empty()) s.dead_letter_topic = s.topic + ".sluice-dead-letters";
  SinkExplanation e;
  e.facts.push_back({"brokers", s.brokers});
  e.facts.push_back({"topic", s.topic});
  e.facts.push_back({"message", std::string(s.avro ? "Avro (schema registered at " + s.avro->url + ")" : "a JSON object") +
                                    " per row; key " + (s.key.empty() ? std::string("none") : "the value of " + s.key)});
  e.facts.push_back({"transactional id", s.transactional_id});
  e.facts.push_back({"positions topic", s.positions_topic +
                                            " (compacted: [\"position\", pipeline, source, partition] -> "
                                            "offset, [\"state\", pipeline], commit markers)"});
  e.facts.push_back({"dead-letter topic", s.dead_letter_topic});
  if (!s.consumer_group.empty()) e.facts.push_back({"consumed offsets to group", s.consumer_group});
  e.facts.push_back({"per checkpoint",
                     "one transaction: the rows, the dead letters, the positions and state, a "
                     "commit marker" + std::string(s.consumer_group.empty() ? "" : ", the consumed offsets")});
  return e;
}

namespace {

/// The partition counts of the topics the brokers have, from one metadata request for all
/// topics: asking for one topic by name could make a broker with auto.create.topics.enable
/// create it, and inspecting must change nothing.
Result<std::map<std::string, int>> ExistingTopics(const std::string& brokers, int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::unique_ptr<KafkaAdmin> admin, KafkaAdmin::Make(brokers, static_cast<int>(timeout_ms)));
  return admin->PartitionCounts();
}

/// One committed record of a topic read back.
struct ReadRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  bool has_key = false;
  std::string key;
  bool tombstone = false;
  std::string value;
};

/// A consumer that reads committed records only, joins no group's offsets and commits nothing.
Result<std::unique_ptr<RdKafka::KafkaConsumer>> MakeInspectReader(const std::string& brokers) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", brokers));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "group.id", "sluice-inspect-" + std::to_string(::getpid())));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "isolation.level", "read_committed"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.auto.commit", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.auto.offset.store", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.partition.eof", "true"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "allow.auto.create.topics", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "fetch.wait.max.ms", "20"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "0"));  // failures come back as a Status
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) return Status::InvalidArgument("kafka: " + err);
  return consumer;
}

/// Reads every committed record of the `partitions` partitions of `topic` from their beginning
/// to their end; `watermarks` (optional) gets each partition's (low, high) offsets.
Result<std::vector<ReadRecord>> ReadTopic(const std::string& brokers, const std::string& topic,
                                          int partitions, int64_t timeout_ms, bool records,
                                          std::map<int32_t, std::pair<int64_t, int64_t>>* watermarks) {
  ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::KafkaConsumer> consumer, MakeInspectReader(brokers));
  std::vector<RdKafka::TopicPartition*> parts;
  std::set<int32_t> pending;
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    RdKafka::ErrorCode rc = consumer->query_watermark_offsets(topic, p, &low, &high, static_cast<int>(timeout_ms));
    if (rc != RdKafka::ERR_NO_ERROR) {
      consumer->close();
      return Status::Unavailable("kafka: end offsets of " + topic + ": " + RdKafka::err2str(rc));
    }
    if (watermarks) (*watermarks)[p] = {low, high};
    if (!records || high <= low) continue;  // empty: no EOF would come before a first record
    parts.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
    pending.insert(p);
  }
  std::vector<ReadRecord> out;
  if (pending.empty()) {
    consumer->close();
    return out;
  }
  RdKafka::ErrorCode rc = consumer->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  if (rc != RdKafka::ERR_NO_ERROR) {
    consumer->close();
    return Status::Unavailable("kafka: assign " + topic + ": " + RdKafka::err2str(rc));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Status result;
  while (!pending.empty()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      result = Status::Unavailable("kafka: reading " + topic + " to its end timed out after " +
                                   std::to_string(timeout_ms / 1000) + "s");
      break;
    }
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() == RdKafka::ERR__TIMED_OUT) continue;
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      pending.erase(m->partition());
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      result = Status::Unavailable("kafka: reading " + topic + ": " + m->errstr());
      break;
    }
    ReadRecord r;
    r.partition = m->partition();
    r.offset = m->offset();
    r.timestamp_ms = m->timestamp().timestamp;
    if (m->key()) {
      r.has_key = true;
      r.key = *m->key();
    }
    r.tombstone = m->payload() == nullptr;
    if (!r.tombstone) r.value.assign(static_cast<const char*>(m->payload()), m->len());
    out.push_back(std::move(r));
  }
  consumer->unassign();
  consumer->close();
  if (!result.ok()) return result;
  return out;
}

}  // namespace

Result<SinkInventory> KafkaSink::Inventory(const InventoryOptions& options) {
  const std::string positions_topic =
      settings_.positions_topic.empty() ? settings_.topic + ".sluice-positions" : settings_.positions_topic;
  const std::string dead_letter_topic =
      settings_.dead_letter_topic.empty() ? settings_.topic + ".sluice-dead-letters" : settings_.dead_letter_topic;
  SinkInventory inv;
  inv.location = "kafka://" + settings_.brokers + "/" + settings_.topic;
  inv.dead_letter_location = "topic " + dead_letter_topic;
  // Brokers that answer do so in well under a second; one that is down is reported after 10 s
  // at most, not the sink's whole timeout.
  ASSIGN_OR_RETURN(auto topics, ExistingTopics(settings_.brokers, std::min<int64_t>(settings_.timeout_ms, 10'000)));
  if (!topics.count(positions_topic)) {
    return Status::NotFound("kafka " + settings_.brokers + " has no topic " + positions_topic +
                            ": no pipeline has committed to topic " + settings_.topic);
  }
  struct Seen {
    std::map<std::pair<std::string, int32_t>, int64_t> positions;
    int64_t state_bytes = -1;
    int64_t last_ms = 0;
  };
  std::map<std::string, Seen> seen;
  ASSIGN_OR_RETURN(auto records, ReadTopic(settings_.brokers, positions_topic, topics[positions_topic],
                                           settings_.timeout_ms, true, nullptr));
  simdjson::dom::parser parser;
  for (const ReadRecord& r : records) {
    if (!r.has_key) continue;
    simdjson::dom::array key;
    if (parser.parse(r.key).get_array().get(key) != simdjson::SUCCESS) continue;
    std::vector<simdjson::dom::element> items(key.begin(), key.end());
    std::string_view kind, pipeline;
    if (items.size() < 2 || items[0].get_string().get(kind) || items[1].get_string().get(pipeline)) continue;
    if (!options.pipeline.empty() && pipeline != options.pipeline) continue;
    Seen& p = seen[std::string(pipeline)];
    p.last_ms = std::max(p.last_ms, r.timestamp_ms);
    if (kind == "position" && items.size() == 4) {
      std::string_view source;
      int64_t partition = 0;
      if (items[2].get_string().get(source) || items[3].get_int64().get(partition)) continue;
      auto k = std::make_pair(std::string(source), static_cast<int32_t>(partition));
      int64_t offset = 0;
      auto [ptr, ec] = std::from_chars(r.value.data(), r.value.data() + r.value.size(), offset);
      if (r.tombstone || ec != std::errc() || ptr != r.value.data() + r.value.size()) {
        p.positions.erase(k);
      } else {
        p.positions[k] = offset;
      }
    } else if (kind == "state") {
      p.state_bytes = r.tombstone ? -1 : static_cast<int64_t>(r.value.size());
    }
  }
  // The dead letters, oldest first by their time in the topic (then partition and offset).
  std::string letters;
  if (topics.count(dead_letter_topic)) {
    ASSIGN_OR_RETURN(auto dead, ReadTopic(settings_.brokers, dead_letter_topic, topics[dead_letter_topic],
                                          settings_.timeout_ms, true, nullptr));
    // The letters are keyed, so they spread over the topic's partitions: order them by when
    // they were dead-lettered (the record's `time`, to the microsecond), then by their place
    // in the source, oldest first.
    struct Letter {
      std::string time, source;
      int64_t partition = 0, offset = 0, seq = 0;
      const ReadRecord* record = nullptr;
    };
    std::vector<Letter> ordered;
    for (const ReadRecord& r : dead) {
      if (r.tombstone) continue;
      simdjson::dom::object record;
      if (parser.parse(r.value).get_object().get(record) != simdjson::SUCCESS) continue;
      Letter l;
      l.record = &r;
      std::string_view name, time, source;
      if (record["time"].get_string().get(time) == simdjson::SUCCESS) l.time = std::string(time);
      if (record["source"].get_string().get(source) == simdjson::SUCCESS) l.source = std::string(source);
      if (record["partition"].get_int64().get(l.partition) != simdjson::SUCCESS) l.partition = 0;
      if (record["offset"].get_int64().get(l.offset) != simdjson::SUCCESS) l.offset = 0;
      if (record["seq"].get_int64().get(l.seq) != simdjson::SUCCESS) l.seq = 0;
      // A pipeline that only dead-lettered so far is listed too.
      if (record["pipeline"].get_string().get(name) == simdjson::SUCCESS &&
          (options.pipeline.empty() || name == options.pipeline)) {
        seen[std::string(name)];
      }
      ordered.push_back(std::move(l));
    }
    std::stable_sort(ordered.begin(), ordered.end(), [](const Letter& a, const Letter& b) {
      return std::tie(a.time, a.source, a.partition, a.offset, a.seq) <
             std::tie(b.time, b.source, b.partition, b.offset, b.seq);
    });
    for (const Letter& l : ordered) {
      letters += l.record->value;
      letters += '\n';
    }
  }
  // The output topic's offsets, for a sense of its size (transaction markers take offsets too).
  std::string output = "missing";
  if (topics.count(settings_.topic)) {
    std::map<int32_t, std::pair<int64_t, int64_t>> marks;
    const int n = topics[settings_.topic];
    RETURN_IF_ERROR(ReadTopic(settings_.brokers, settings_.topic, n, settings_.timeout_ms, false, &marks).status());
    int64_t total = 0;
    for (const auto& [partition, range] : marks) total += range.second - range.first;
    output = std::to_string(n) + " partition" + (n == 1 ? "" : "s") + ", " + std::to_string(total) +
             " offsets (rows and transaction markers)";
  }
  for (auto& [name, p] : seen) {
    PipelineInventory pi;
    pi.pipeline = name;
    for (const auto& [k, offset] : p.positions) pi.positions.push_back({k.first, k.second, offset});
    pi.state_bytes = p.state_bytes;
    pi.last_checkpoint_micros = p.last_ms * 1000;
    pi.dead_letters_stored = true;
    RETURN_IF_ERROR(TallyDeadLetterLines(letters, name, options.samples_per_reason, &pi.dead_letters));
    for (auto& [reason, samples] : pi.dead_letters.samples) std::reverse(samples.begin(), samples.end());
    pi.dead_letters.PruneSamples(options.sample_reasons);
    pi.details.push_back({"topic", settings_.topic + ": " + output});
    pi.details.push_back({"positions topic", positions_topic});
    inv.pipelines.push_back(std::move(pi));
  }
  return inv;
}

std::string KafkaSink::PositionKey(const std::string& source, int32_t partition) const {
  std::string k = "[\"position\",";
  AppendJsonString(ctx_.pipeline, &k);
  k += ',';
  AppendJsonString(source, &k);
  k += ',' + std::to_string(partition) + ']';
  return k;
}

Status KafkaSink::Check(const SinkContext& ctx) const {
  if (TakesStageOne()) {
    if (!ctx.aggregate || !ctx.aggregate->append_mode) {
      return Status::InvalidArgument("kafka sink: the repartition topic " + settings_.topic +
                                     " takes the partials of an [aggregate] in mode = \"append\"");
    }
    if (!ctx.tasks) {
      return Status::InvalidArgument("kafka sink: the repartition topic " + settings_.topic +
                                     " is written by stage one on tasks only");
    }
    return Status::OK();
  }
  if (ctx.aggregate && !ctx.aggregate->append_mode) return Status::InvalidArgument(kNeedsRows);
  if (!settings_.key.empty() && !ctx.output.IndexOf(settings_.key)) {
    std::string names;
    for (const auto& f : ctx.output.fields()) names += (names.empty() ? "" : ", ") + f.name;
    return Status::InvalidArgument(settings_.key_where + ": key '" + settings_.key +
                                   "' is not an output column (" + names + ")");
  }
  return Status::OK();
}

Status KafkaSink::Open(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  Close();
  ctx_ = ctx;
  key_slot_.reset();
  if (!settings_.key.empty()) {
    key_slot_ = ctx_.output.IndexOf(settings_.key);
    if (!key_slot_) {
      std::string names;
      for (const auto& f : ctx_.output.fields()) names += (names.empty() ? "" : ", ") + f.name;
      return Status::InvalidArgument(settings_.key_where + ": key '" + settings_.key +
                                     "' is not an output column (" + names + ")");
    }
  }
  avro_.reset();
  if (settings_.avro) {
    auto encoder = std::make_unique<AvroRowEncoder>();
    RETURN_IF_ERROR(encoder->Open(*settings_.avro, ctx_.output, settings_.avro_record_name));
    avro_ = std::move(encoder);
  }
  if (settings_.transactional_id.empty()) {
    settings_.transactional_id = "sluice-" + ctx_.pipeline + "-" + settings_.topic;
  }
  if (settings_.positions_topic.empty())
    settings_.positions_topic = settings_.topic + ".sluice-positions";
  std::random_device rd;
  token_prefix_ = std::to_string((static_cast<uint64_t>(rd()) << 32) | rd());
  positions_.clear();
  read_next_.clear();
  state_.clear();
  tasks_.clear();
  claimed_owner_.clear();
  reading_only_ = false;
  no_positions_topic_ = false;
  commit_marker_.clear();
  pending_marker_.clear();
  fatal_.clear();
  RETURN_IF_ERROR(InitProducer());
  RETURN_IF_ERROR(EnsureTopic(settings_.positions_topic, true));
  if (TakesStageOne()) {
    RETURN_IF_ERROR(EnsureRepartitionTopic());
  } else {
    RETURN_IF_ERROR(EnsureTopic(settings_.topic, false));
    RETURN_IF_ERROR(EnsureTopic(settings_.dead_letter_topic, false));
  }

  RETURN_IF_ERROR(MakeReader());
  if (ctx_.tasks) RETURN_IF_ERROR(MigrateLegacyState());
  spdlog::info("kafka sink: topic {} (positions in {}), transactional.id {} ({})", settings_.topic,
               settings_.positions_topic, settings_.transactional_id, settings_.brokers);
  return Status::OK();
}

Status KafkaSink::MakeReader() {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", settings_.brokers));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "group.id", settings_.transactional_id + ".reader"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "isolation.level", "read_committed"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.auto.commit", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.partition.eof", "true"));
  RETURN_IF_ERROR(
      SetKafkaConf(conf.get(), "fetch.max.bytes", std::to_string(2 * kMaxMessageBytes)));
  // Reading back waits for the end of a small topic: do not let the broker hold fetches.
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "fetch.wait.max.ms", "20"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "4"));
  std::string err;
  reader_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!reader_) return Status::InvalidArgument("kafka sink reader: " + err);
  return Status::OK();
}

Status KafkaSink::OpenForReading(const SinkContext& ctx) {
  Close();
  ctx_ = ctx;
  if (settings_.transactional_id.empty()) {
    settings_.transactional_id = "sluice-" + ctx_.pipeline + "-" + settings_.topic;
  }
  if (settings_.positions_topic.empty())
    settings_.positions_topic = settings_.topic + ".sluice-positions";
  positions_.clear();
  read_next_.clear();
  state_.clear();
  tasks_.clear();
  claimed_owner_.clear();
  fatal_.clear();
  reading_only_ = true;
  no_positions_topic_ = false;
  RETURN_IF_ERROR(MakeReader());
  auto existing = KafkaPartitionCounts(reader_->c_ptr(), settings_.brokers, static_cast<int>(settings_.timeout_ms));
  if (!existing.ok()) return Status(existing.status().code(), "kafka sink: " + existing.status().message());
  auto it = existing->find(settings_.positions_topic);
  no_positions_topic_ = it == existing->end() || it->second <= 0;
  return Status::OK();
}

Status KafkaSink::InitProducer() {
  producer_.reset();
  needs_init_ = true;
  delivery_ = std::make_unique<DeliveryReport>();
  delivery_->watch_topic = settings_.positions_topic;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", settings_.brokers));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "client.id", "sluice-" + ctx_.pipeline + "-sink"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "message.max.bytes", std::to_string(kMaxMessageBytes)));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "linger.ms", "5"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "4"));
  int64_t transaction_timeout_ms = std::max<int64_t>(60'000, 2 * settings_.timeout_ms);
  if (settings_.transaction_timeout_ms > 0) {
    transaction_timeout_ms = settings_.transaction_timeout_ms;
    // librdkafka refuses a socket.timeout.ms above transaction.timeout.ms + 100.
    if (auto it = settings_.properties.find("socket.timeout.ms"); it != settings_.properties.end()) {
      int64_t socket_ms = 0;
      std::from_chars(it->second.data(), it->second.data() + it->second.size(), socket_ms);
      transaction_timeout_ms = std::max(transaction_timeout_ms, socket_ms - 100);
    }
  }
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "transaction.timeout.ms", std::to_string(transaction_timeout_ms)));
  for (const auto& [k, v] : settings_.properties) RETURN_IF_ERROR(SetKafkaConf(conf.get(), k, v));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.idempotence", "true"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "acks", "all"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "transactional.id", settings_.transactional_id));
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(delivery_.get()), err) !=
      RdKafka::Conf::CONF_OK) {
    return Status::Internal("kafka dr_cb: " + err);
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) return Status::InvalidArgument("kafka sink producer: " + err);
  // A clear message when no broker answers, before the transactional handshake times out.
  RdKafka::Metadata* md = nullptr;
  RdKafka::ErrorCode rc =
      producer_->metadata(true, nullptr, &md, static_cast<int>(settings_.timeout_ms));
  delete md;
  if (rc != RdKafka::ERR_NO_ERROR) {
    healthy_.store(false);
    producer_.reset();
    return Status::Unavailable("kafka sink: no broker of " + settings_.brokers +
                               " answered within " + std::to_string(settings_.timeout_ms / 1000) +
                               "s (" + RdKafka::err2str(rc) + ")");
  }
  RdKafka::Error* e = producer_->init_transactions(static_cast<int>(settings_.timeout_ms));
  if (e) {
    std::string text = e->name() + ": " + e->str();
    bool fatal = e->is_fatal();
    delete e;
    producer_.reset();
    healthy_.store(false);
    std::string msg = "kafka sink: init_transactions for transactional.id " +
                      settings_.transactional_id + " on " + settings_.brokers + ": " + text;
    return fatal ? Status::Internal(msg) : Status::Unavailable(msg);
  }
  needs_init_ = false;
  healthy_.store(true);
  return Status::OK();
}

/// The settings of an existing topic as the broker applies them; nullopt (logged at debug) when
/// they cannot be read, which is no error: they only decide a warning.
static std::optional<std::map<std::string, std::string>> ReadTopicSettings(rd_kafka_t* rk, const std::string& brokers,
                                                                         const std::string& topic, int timeout_ms) {
  auto config = KafkaTopicConfig(rk, brokers, timeout_ms, topic);
  if (!config.ok()) {
    spdlog::debug("kafka sink: cannot read the settings of {}: {}", topic, config.status().message());
    return std::nullopt;
  }
  return std::move(config).value();
}

/// The command that gives `topic` the settings `fixes` (NAME=VALUE each).
static std::string FixCommand(const std::string& brokers, const std::string& topic,
                              const std::vector<std::string>& fixes) {
  std::string joined;
  for (const auto& f : fixes) joined += (joined.empty() ? "" : ",") + f;
  return "kafka-configs.sh --bootstrap-server " + brokers + " --alter --entity-type topics --entity-name " + topic +
         " --add-config " + joined;
}

/// An existing positions topic is used as it is, but one that is not compacted grows without end
/// (and is read from its start at every Open), and one whose max.message.bytes is below what the
/// sink writes refuses large state records: say so, with the command that fixes it. (Older
/// versions could leave such a topic behind on a broker that creates topics when asked about
/// them.)
static void WarnIfNotCompacted(rd_kafka_t* rk, const std::string& brokers, const std::string& topic, int timeout_ms) {
  auto config = ReadTopicSettings(rk, brokers, topic, timeout_ms);
  if (!config) return;
  std::vector<std::string> fixes;
  const std::string policy = (*config)["cleanup.policy"];
  if (policy.find("compact") == std::string::npos) fixes.push_back("cleanup.policy=compact");
  const std::string& bytes = (*config)["max.message.bytes"];
  char* end = nullptr;
  const long long max_bytes = std::strtoll(bytes.c_str(), &end, 10);
  if (!bytes.empty() && *end == '\0' && max_bytes < kMaxMessageBytes) {
    fixes.push_back("max.message.bytes=" + std::to_string(kMaxMessageBytes));
  }
  if (fixes.empty()) return;
  spdlog::warn(
      "kafka sink: topic {} has cleanup.policy={} and max.message.bytes={}: it keeps every position "
      "record (and is read from its start at every start) and refuses state records over {} bytes; "
      "fix it with: {}",
      topic, policy.empty() ? "?" : policy, bytes.empty() ? "?" : bytes, bytes.empty() ? "?" : bytes,
      FixCommand(brokers, topic, fixes));
}

std::map<std::string, std::string> RepartitionTopicSettings() {
  return {{"cleanup.policy", "delete"},
          {"max.message.bytes", std::to_string(kMaxMessageBytes)},
          {"retention.ms", "-1"},
          {"retention.bytes", "-1"}};
}

std::vector<std::string> RepartitionRetentionFixes(const std::map<std::string, std::string>& config) {
  std::vector<std::string> fixes;
  for (const char* name : {"retention.ms", "retention.bytes"}) {
    auto it = config.find(name);
    if (it == config.end() || it->second != "-1") fixes.push_back(std::string(name) + "=-1");
  }
  return fixes;
}

/// An existing repartition topic (created by an older version, or by hand) with a finite
/// retention: the broker may delete records stage two has not read yet, and stage two then
/// refuses to go on (KafkaSource's option `gapless`). Say so, with the fix.
static void WarnIfRetained(rd_kafka_t* rk, const std::string& brokers, const std::string& topic, int timeout_ms) {
  auto config = ReadTopicSettings(rk, brokers, topic, timeout_ms);
  if (!config) return;
  const std::vector<std::string> fixes = RepartitionRetentionFixes(*config);
  if (fixes.empty()) return;
  spdlog::warn(
      "kafka sink: the repartition topic {} has retention.ms={} and retention.bytes={}: the broker may delete "
      "records stage two has not read yet (a pipeline stopped or reading behind for longer), and stage two then "
      "stops with an error instead of leaving their counts out; stage two deletes what it has read itself, so "
      "the topic needs no retention: fix it with: {}",
      topic, (*config)["retention.ms"].empty() ? "?" : (*config)["retention.ms"],
      (*config)["retention.bytes"].empty() ? "?" : (*config)["retention.bytes"], FixCommand(brokers, topic, fixes));
}

Status KafkaSink::EnsureTopic(const std::string& topic, bool compact) {
  // Whether it exists from the list of all topics: naming it in a metadata request could make a
  // broker with auto.create.topics.enable create it, uncompacted.
  rd_kafka_t* rk = producer_->c_ptr();
  const int timeout_ms = static_cast<int>(settings_.timeout_ms);
  auto existing = KafkaPartitionCounts(rk, settings_.brokers, timeout_ms);
  if (!existing.ok()) return Status(existing.status().code(), "kafka sink: " + existing.status().message());
  if (auto it = existing->find(topic); it != existing->end() && it->second > 0) {
    if (compact) WarnIfNotCompacted(rk, settings_.brokers, topic, timeout_ms);
    return Status::OK();
  }
  std::map<std::string, std::string> config;
  if (compact) {
    config["cleanup.policy"] = "compact";
    config["max.message.bytes"] = std::to_string(kMaxMessageBytes);
  }
  auto created = CreateKafkaTopic(rk, settings_.brokers, timeout_ms, topic, compact ? 1 : -1, config);
  if (!created.ok()) return Status(created.status().code(), "kafka sink: " + created.status().message());
  if (*created) spdlog::info("kafka sink: created topic {}{}", topic, compact ? " (compacted)" : "");
  return Status::OK();
}

Status KafkaSink::EnsureRepartitionTopic() {
  rd_kafka_t* rk = producer_->c_ptr();
  const int timeout_ms = static_cast<int>(settings_.timeout_ms);
  const int32_t want = settings_.repartition_partitions;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto existing = KafkaPartitionCounts(rk, settings_.brokers, timeout_ms);
    if (!existing.ok()) return Status(existing.status().code(), "kafka sink: " + existing.status().message());
    if (auto it = existing->find(settings_.topic); it != existing->end() && it->second > 0) {
      if (it->second == want) {
        WarnIfRetained(rk, settings_.brokers, settings_.topic, timeout_ms);
        return Status::OK();
      }
      return Status::FailedPrecondition(
          "kafka sink: the repartition topic " + settings_.topic + " has " + std::to_string(it->second) +
          " partitions, but pipeline " + ctx_.pipeline + " repartitions into " + std::to_string(want) +
          " ([source] repartition_partitions, else the source's partition count); its records are spread by "
          "their key over the partitions, so the count cannot change under a pipeline: set "
          "repartition_partitions = " + std::to_string(it->second) +
          " to keep the topic, or " + RepartitionResetAdvice(ctx_.pipeline));
    }
    if (attempt > 0) break;
    // Records up to the producer's limit: a dead letter carries its record's whole payload (up
    // to the source topic's own limit), which the broker's default of 1 MB per record would
    // refuse, failing every retry of the commit. No retention: stage two purges it.
    auto created = CreateKafkaTopic(rk, settings_.brokers, timeout_ms, settings_.topic, want,
                                    RepartitionTopicSettings());
    if (!created.ok()) return Status(created.status().code(), "kafka sink: " + created.status().message());
    if (*created) {
      spdlog::info("kafka sink: created the repartition topic {} ({} partitions)", settings_.topic, want);
      return Status::OK();
    }
    // Another process created it first: check its count.
  }
  return Status::Unavailable("kafka sink: the repartition topic " + settings_.topic +
                             " exists but its partitions cannot be read yet");
}

Status KafkaSink::ProduceStageOne(const Checkpoint& cp) {
  const std::vector<DeadLetter> letters = LettersToWrite(cp);
  static const std::vector<StageOneOutput> kNone;
  const std::vector<StageOneOutput>& outputs = cp.stage_one ? *cp.stage_one : kNone;
  if (outputs.size() != cp.tasks.size()) {
    return Status::Internal("kafka sink: stage one's checkpoint " + std::to_string(cp.id) + " has " +
                            std::to_string(outputs.size()) + " task outputs for " + std::to_string(cp.tasks.size()) +
                            " tasks");
  }
  // Only a commit of tasks is fenced (its task records in partition 0 of the positions topic):
  // nothing reaches the repartition topic without one.
  if (cp.tasks.empty()) {
    if (!letters.empty()) {
      return Status::Internal("kafka sink: stage one's checkpoint " + std::to_string(cp.id) +
                              " has dead letters but no task to fence them");
    }
    return Status::OK();
  }
  ASSIGN_OR_RETURN(std::vector<RepartitionMessage> messages,
                   BuildStageOneMessages(outputs, letters, settings_.repartition_partitions, *ctx_.aggregate));
  for (const RepartitionMessage& m : messages) {
    RETURN_IF_ERROR(Produce(settings_.topic, m.key, &m.value, 0, m.partition));
  }
  return Status::OK();
}

Status KafkaSink::ReadBack(int64_t partition0_end) {
  if (!reader_) return Status::Internal("kafka sink: not open");
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.timeout_ms);
  if (read_next_.empty()) {
    int n = KafkaPartitionCount(settings_.brokers, settings_.positions_topic);
    if (n <= 0) {
      return Status::Unavailable("kafka sink: cannot read the partitions of " +
                                 settings_.positions_topic);
    }
    for (int p = 0; p < n; ++p) read_next_[p] = RdKafka::Topic::OFFSET_BEGINNING;
  }
  // A fresh assignment reports the end (read_committed: the last stable offset) once reached.
  std::vector<RdKafka::TopicPartition*> parts;
  for (const auto& [p, offset] : read_next_) {
    parts.push_back(RdKafka::TopicPartition::create(settings_.positions_topic, p, offset));
  }
  RdKafka::ErrorCode rc = reader_->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  if (rc != RdKafka::ERR_NO_ERROR) {
    return Status::Unavailable("kafka sink: assign " + settings_.positions_topic + ": " +
                               RdKafka::err2str(rc));
  }
  std::set<int32_t> pending;
  for (const auto& [p, offset] : read_next_) pending.insert(p);
  simdjson::dom::parser parser;
  Status result;
  while (!pending.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result = Status::Unavailable("kafka sink: reading " + settings_.positions_topic +
                                   " to its end timed out after " +
                                   std::to_string(settings_.timeout_ms / 1000) + "s");
      break;
    }
    std::unique_ptr<RdKafka::Message> m(
        reader_->consume(static_cast<int>(std::min<int64_t>(left.count(), 500))));
    if (m->err() == RdKafka::ERR__TIMED_OUT) continue;
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      // An end below the one the caller knows (a fetch from a lagging leader) is not the end.
      if (m->partition() == 0 && m->offset() < partition0_end) continue;
      pending.erase(m->partition());
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      result = Status::Unavailable("kafka sink: reading " + settings_.positions_topic + ": " +
                                   m->errstr());
      break;
    }
    read_next_[m->partition()] = m->offset() + 1;
    if (!m->key()) continue;
    simdjson::dom::array key;
    if (parser.parse(*m->key()).get_array().get(key) != simdjson::SUCCESS) continue;
    std::vector<simdjson::dom::element> items(key.begin(), key.end());
    std::string_view kind, pipeline;
    if (items.size() < 2 || items[0].get_string().get(kind) || items[1].get_string().get(pipeline))
      continue;
    if (pipeline != ctx_.pipeline) continue;
    const bool tombstone = m->payload() == nullptr;
    std::string value =
        tombstone ? std::string() : std::string(static_cast<const char*>(m->payload()), m->len());
    if (kind == "position" && items.size() == 4) {
      std::string_view source;
      int64_t partition = 0;
      if (items[2].get_string().get(source) || items[3].get_int64().get(partition)) continue;
      auto k = std::make_pair(std::string(source), static_cast<int32_t>(partition));
      int64_t offset = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), offset);
      if (tombstone || ec != std::errc() || ptr != value.data() + value.size()) {
        positions_.erase(k);
      } else {
        positions_[k] = offset;
      }
    } else if (kind == "state") {
      state_ = std::move(value);
    } else if (kind == "task" && items.size() == 4) {
      std::string_view source;
      int64_t partition = 0;
      if (items[2].get_string().get(source) || items[3].get_int64().get(partition)) continue;
      const TaskId id{std::string(source), static_cast<int32_t>(partition)};
      if (tombstone) {
        tasks_.erase(id);
        continue;
      }
      auto known = tasks_.find(id);
      StoredTask parsed = known == tasks_.end() ? StoredTask() : known->second;
      if (ParseTaskRecord(value, &parsed)) tasks_[id] = std::move(parsed);
    } else if (kind == "commit" && items.size() == 3) {
      std::string_view id;
      if (!items[2].get_string().get(id) && id == settings_.transactional_id)
        commit_marker_ = std::move(value);
    }
  }
  reader_->unassign();
  return result;
}

Result<std::vector<StoredPosition>> KafkaSink::LoadPositions() {
  if (!fatal_.empty()) return Status::Internal(fatal_);
  if (no_positions_topic_) return std::vector<StoredPosition>();
  RETURN_IF_ERROR(ReadBack());
  std::vector<StoredPosition> out;
  for (const auto& [k, offset] : positions_) out.push_back({k.first, k.second, offset});
  return out;
}

Result<std::string> KafkaSink::LoadState() {
  if (!fatal_.empty()) return Status::Internal(fatal_);
  RETURN_IF_ERROR(ReadBack());
  return state_;
}

Status KafkaSink::TxnError(const std::string& what, int code, std::string text, bool fatal) {
  if (fatal) {
    char buf[512];
    rd_kafka_resp_err_t fatal_code = rd_kafka_fatal_error(producer_->c_ptr(), buf, sizeof(buf));
    if (fatal_code != RD_KAFKA_RESP_ERR_NO_ERROR)
      text = std::string(rd_kafka_err2name(fatal_code)) + ": " + buf;
    if (IsFencing(fatal_code) || IsFencing(static_cast<rd_kafka_resp_err_t>(code))) {
      fatal_ = "kafka sink: the producer with transactional.id " + settings_.transactional_id +
               " was fenced: another process with the same transactional_id started (" + text +
               "); this one stops, its open transaction is aborted";
    } else {
      fatal_ = "kafka sink: fatal producer error in " + what + ": " + text;
    }
    healthy_.store(false);
    return Status::Internal(fatal_);
  }
  return Status::Unavailable("kafka sink: " + what + ": " + text);
}

Status KafkaSink::TxnError(const std::string& what, RdKafka::Error* e) {
  return TxnError(what, static_cast<int>(e->code()), e->name() + ": " + e->str(), e->is_fatal());
}

void KafkaSink::Abort() {
  if (!producer_ || needs_init_) return;
  RdKafka::Error* e = producer_->abort_transaction(static_cast<int>(settings_.timeout_ms));
  if (!e) return;
  Status s = TxnError("abort_transaction", e);
  delete e;
  spdlog::warn("{}", s.message());
  needs_init_ = true;  // the next init_transactions aborts what is left open
}

bool KafkaSink::RetryWithoutRefusedRow() {
  // The broker refused a row as too large for the topic: the transaction is aborted, so nothing
  // of it is visible; it is written again without that row, dead-lettered instead. Each round
  // leaves out one more row, so this ends.
  if (producer_) producer_->poll(0);  // serve the delivery reports still queued
  return delivery_->too_large_row != 0 &&
         rejected_.emplace(delivery_->too_large_row - 1, delivery_->too_large_text).second;
}

Result<bool> KafkaSink::SettleCommitInDoubt(int64_t checkpoint_id) {
  // The new producer's init_transactions made the coordinator finish or abort the transaction
  // in doubt; its marker says which.
  RETURN_IF_ERROR(ReadBack());
  const bool applied = commit_marker_ == pending_marker_;
  spdlog::info("kafka sink: checkpoint {} in doubt was {}", checkpoint_id,
               applied ? "committed" : "not committed");
  pending_marker_.clear();
  return applied;
}

Status KafkaSink::BeginTransaction() {
  if (RdKafka::Error* e = producer_->begin_transaction()) {
    Status s = TxnError("begin_transaction", e);
    delete e;
    needs_init_ = true;
    return s;
  }
  return Status::OK();
}

Status KafkaSink::Produce(const std::string& topic, const std::string& key,
                          const std::string* payload, uintptr_t row, int32_t partition) {
  while (true) {
    RdKafka::ErrorCode rc = producer_->produce(
        topic, partition, RdKafka::Producer::RK_MSG_COPY,
        payload ? const_cast<char*>(payload->data()) : nullptr, payload ? payload->size() : 0,
        key.empty() && row != 0 ? nullptr : key.data(), key.size(), 0,
        reinterpret_cast<void*>(row));
    if (rc == RdKafka::ERR_NO_ERROR) break;
    if (rc == RdKafka::ERR__QUEUE_FULL) {
      producer_->poll(50);
      continue;
    }
    if (rc == RdKafka::ERR_MSG_SIZE_TOO_LARGE && row != 0) {
      // Refused before it left: dead-lettered instead, in this same transaction.
      rejected_[row - 1] = "kafka error MSG_SIZE_TOO_LARGE: " +
                           std::to_string(payload ? payload->size() : 0) +
                           (avro_ ? " bytes as Avro" : " bytes as JSON") +
                           ", over the producer's message.max.bytes";
      return Status::OK();
    }
    return Status::Unavailable("kafka sink: produce to " + topic + ": " + RdKafka::err2str(rc));
  }
  producer_->poll(0);
  return Status::OK();
}

Status KafkaSink::ProduceRows(const Checkpoint& cp) {
  Status s;
  if (!cp.rows) return s;
  std::string json, key;
  const auto& fields = ctx_.output.fields();
  for (size_t i = 0; i < cp.rows->size() && s.ok(); ++i) {
    if (rejected_.count(i)) continue;
    const auto& row = (*cp.rows)[i];
    key = key_slot_ && *key_slot_ < row.size() ? row[*key_slot_].ToString() : std::string();
    if (avro_) {
      s = avro_->Encode(row, &json);
      if (s.ok()) s = Produce(settings_.topic, key, &json, i + 1);
      continue;
    }
    json.clear();
    json += '{';
    for (size_t c = 0; c < fields.size() && c < row.size(); ++c) {
      if (c) json += ',';
      AppendJsonString(fields[c].name, &json);
      json += ':';
      AppendJsonValue(row[c], &json);
    }
    json += '}';
    s = Produce(settings_.topic, key, &json, i + 1);
  }
  return s;
}

std::vector<DeadLetter> KafkaSink::LettersToWrite(const Checkpoint& cp) const {
  std::vector<DeadLetter> letters;
  if (!rejected_.empty()) {
    std::vector<RejectedItem> items;
    for (const auto& [index, message] : rejected_) items.push_back({index, message});
    const int64_t now = WallClockMicros();
    letters = RejectedLetters(ctx_, cp, {}, items, now, now);
    LogRejected("kafka", cp.id, letters);
  }
  if (cp.dead_letters) {
    letters.insert(letters.end(), cp.dead_letters->begin(), cp.dead_letters->end());
  }
  return letters;
}

Status KafkaSink::ProduceDeadLetters(const std::vector<DeadLetter>& letters) {
  Status s;
  if (letters.empty()) return s;
  // Keyed by the letter's identity. The payload is capped at 64 KiB (escaped, at most about
  // 480 KB: under the broker's default 1 MB); a letter still over the producer's
  // message.max.bytes keeps a shorter prefix, with `truncated` and the whole payload's hash.
  size_t max_bytes = kMaxMessageBytes;
  if (auto it = settings_.properties.find("message.max.bytes"); it != settings_.properties.end()) {
    std::from_chars(it->second.data(), it->second.data() + it->second.size(), max_bytes);
  }
  const size_t limit = max_bytes > 8192 ? max_bytes - 4096 : max_bytes / 2;
  std::string json, key;
  for (const DeadLetter& d : letters) {
    if (!s.ok()) break;
    json.clear();
    AppendDeadLetterJson(ctx_.pipeline, d, &json);
    if (json.size() > limit) {
      // Escaping and base64 make at most about 7.4 bytes of a payload byte.
      json.clear();
      AppendDeadLetterJson(ctx_.pipeline, d, EncodeDeadLetterPayload(d.payload, limit / 16), &json);
    }
    key = "[";
    AppendJsonString(ctx_.pipeline, &key);
    key += ',';
    AppendJsonString(d.source, &key);
    key += ',' + std::to_string(d.partition) + ',' + std::to_string(d.offset) + ',' +
           std::to_string(d.generation) + ',' + std::to_string(d.seq) + ']';
    s = Produce(settings_.dead_letter_topic, key, &json, 0);
  }
  return s;
}

Status KafkaSink::ProducePositionsStateAndMarker(const Checkpoint& cp, const std::string& marker) {
  Status s;
  for (const auto& p : cp.positions) {
    if (!s.ok()) break;
    std::string value = std::to_string(p.offset);
    s = Produce(settings_.positions_topic, PositionKey(p.source, p.partition), &value, 0);
  }
  std::string pipeline_json;
  AppendJsonString(ctx_.pipeline, &pipeline_json);
  if (s.ok() && cp.state)
    s = Produce(settings_.positions_topic, "[\"state\"," + pipeline_json + "]", cp.state, 0);
  if (s.ok()) {
    std::string commit_key = "[\"commit\"," + pipeline_json + ",";
    AppendJsonString(settings_.transactional_id, &commit_key);
    s = Produce(settings_.positions_topic, commit_key + "]", &marker, 0);
  }
  return s;
}

Status KafkaSink::SendConsumedOffsets(const Checkpoint& cp) {
  Status s;
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(4);
  for (const auto& p : cp.positions) {
    if (p.source.rfind("__dead_letters", 0) == 0) continue;  // a dead-letter file's length
    // Identity positions (a generation, a topic slot's record) are no partition of the topic;
    // with a source reading several topics, consumer_topic is the first one (slot 0).
    if (p.partition < 0 || p.partition >= kMaxKafkaPartitions) continue;
    rd_kafka_topic_partition_list_add(offsets, settings_.consumer_topic.c_str(), p.partition)
        ->offset = p.offset;
  }
  if (offsets->cnt > 0) {
    rd_kafka_consumer_group_metadata_t* group =
        rd_kafka_consumer_group_metadata_new(settings_.consumer_group.c_str());
    rd_kafka_error_t* e = rd_kafka_send_offsets_to_transaction(
        producer_->c_ptr(), offsets, group, static_cast<int>(settings_.timeout_ms));
    rd_kafka_consumer_group_metadata_destroy(group);
    if (e) {
      s = TxnError("send_offsets_to_transaction", rd_kafka_error_code(e), ErrorText(e),
                   rd_kafka_error_is_fatal(e));
      rd_kafka_error_destroy(e);
    }
  }
  rd_kafka_topic_partition_list_destroy(offsets);
  return s;
}

Status KafkaSink::ProduceCheckpoint(const Checkpoint& cp, const std::string& marker) {
  Status s;
  // Task records first: with them this transaction takes its place in partition 0 of the
  // positions topic, the order that decides which of two racing writers of a task came first.
  for (const TaskCommit& t : cp.tasks) {
    if (!s.ok()) break;
    auto owner = claimed_owner_.find(t.task);
    // Every record holds the task's whole state: compaction keeps only the latest one.
    const std::string* state = t.state;
    if (!state) {
      auto known = tasks_.find(t.task);
      state = known == tasks_.end() ? &kNoState : &known->second.state;
    }
    s = ProduceTaskRecord(t.task, t.fence,
                          t.release || owner == claimed_owner_.end() ? std::string() : owner->second,
                          &t.progress, state);
  }
  // The positions, state and marker right after them, before the rows: the records of this
  // transaction in partition 0 then usually go in one batch, with no other transaction's
  // record between them (ReadUpToOwnRecords checks that none is).
  if (s.ok() && hook_) s = hook_("after_task_records");
  if (s.ok()) s = ProducePositionsStateAndMarker(cp, marker);
  if (TakesStageOne()) {
    if (s.ok()) s = ProduceStageOne(cp);
  } else {
    if (s.ok()) s = ProduceRows(cp);
    const std::vector<DeadLetter> letters = LettersToWrite(cp);
    if (s.ok()) s = ProduceDeadLetters(letters);
  }
  if (s.ok() && !settings_.consumer_group.empty()) s = SendConsumedOffsets(cp);
  if (s.ok() && !cp.tasks.empty()) {
    bool interleaved = false;
    s = ReadUpToOwnRecords(&interleaved);
    if (s.ok() && interleaved) {
      interleaved_ = true;
      return Status::Aborted("kafka sink: another transaction's record came between this commit's records in " +
                             settings_.positions_topic + "[0]");
    }
    if (s.ok()) s = CheckFences(cp);
  }
  if (s.ok() && hook_) s = hook_("before_commit");
  return s;
}

Status KafkaSink::CommitTransaction(bool* retry) {
  RdKafka::Error* e = producer_->commit_transaction(static_cast<int>(settings_.timeout_ms));
  if (!e) return Status::OK();
  Status cs = TxnError("commit_transaction", e);
  const bool requires_abort = e->txn_requires_abort();
  delete e;
  if (!fatal_.empty()) return cs;
  if (requires_abort) {
    pending_marker_.clear();  // not committed
    Abort();
    if (RetryWithoutRefusedRow()) {
      *retry = true;
      return cs;
    }
    if (delivery_->failed) cs = cs.WithContext("delivery failed: " + delivery_->text);
    healthy_.store(false);
    return cs;
  }
  // Retriable or unknown: the commit may or may not have happened. Re-initialising the
  // producer settles it at the coordinator; the marker read back then tells.
  needs_init_ = true;
  healthy_.store(false);
  return cs.WithContext("commit outcome unknown, checked before the retry");
}

void KafkaSink::RecordCommitted(const Checkpoint& cp, const std::string& marker) {
  pending_marker_.clear();
  rows_rejected_ += static_cast<int64_t>(rejected_.size());
  for (const auto& p : cp.positions) positions_[{p.source, p.partition}] = p.offset;
  if (cp.state) state_ = *cp.state;
  commit_marker_ = marker;
  const int64_t now = WallClockMicros();
  for (const TaskCommit& t : cp.tasks) {
    StoredTask& st = tasks_[t.task];
    st.fence = t.fence;
    st.max_fence = std::max(st.max_fence, t.fence);
    auto owner = claimed_owner_.find(t.task);
    st.owner = t.release || owner == claimed_owner_.end() ? std::string() : owner->second;
    st.progress = t.progress;
    if (t.state) st.state = *t.state;
    st.updated_micros = now;
    if (t.release) claimed_owner_.erase(t.task);
  }
}

Status KafkaSink::Commit(const Checkpoint& cp) {
  if (!fatal_.empty()) return Status::Internal(fatal_);
  if (reading_only_) return Status::FailedPrecondition("kafka sink: opened for reading only");
  if (cp.deltas && !cp.deltas->empty()) return Status::InvalidArgument(kNeedsRows);
  if (needs_init_) RETURN_IF_ERROR(InitProducer());
  if (!pending_marker_.empty()) {
    ASSIGN_OR_RETURN(const bool applied, SettleCommitInDoubt(cp.id));
    if (applied) return Status::OK();
  }
  healthy_.store(true);
  const std::string marker =
      token_prefix_ + "-" + std::to_string(cp.id) + "-" + std::to_string(++attempts_);
  delivery_->Reset();
  RETURN_IF_ERROR(BeginTransaction());
  if (rejected_cp_ != cp.id) {
    rejected_cp_ = cp.id;
    rejected_.clear();
  }
  if (Status s = ProduceCheckpoint(cp, marker); !s.ok()) {
    if (!fatal_.empty()) return s;
    Abort();
    if (interleaved_) {
      // What this commit read stopped at its first record; a claim between its records sees
      // only part of it. Aborted, and written again after that claim (which may fence it).
      interleaved_ = false;
      if (++interleaved_retries_ <= kInterleavedRetries) return Commit(cp);
      interleaved_retries_ = 0;
      return s.WithContext(std::to_string(kInterleavedRetries) + " times");
    }
    // A row the broker refused as too large already broke this transaction (later produce
    // calls fail with "erroneous state"): written again without that row.
    if (RetryWithoutRefusedRow()) return Commit(cp);
    return s;
  }
  pending_marker_ = marker;
  bool retry = false;
  if (Status s = CommitTransaction(&retry); !s.ok()) return retry ? Commit(cp) : s;
  if (hook_) {
    Status h = hook_("after_commit");
    if (!h.ok()) {
      needs_init_ = true;
      return h;
    }
  }
  interleaved_retries_ = 0;
  RecordCommitted(cp, marker);
  return Status::OK();
}

// Tasks. A task record's key is ["task", pipeline, source, partition]; its value a JSON header
// line ({"v":1,"fence":F,"owner":"...","updated":MICROS[,"progress":[max_event_time, watermark,
// enforced, idle]][,"state":true]}), then '\n', then the state bytes when "state" is true. This
// sink writes every record with the task's whole progress and state (compaction keeps only the
// latest record of a key): a claim's with those of the task's last commit.

std::string KafkaSink::TaskKey(const TaskId& task) const {
  std::string k = "[\"task\",";
  AppendJsonString(ctx_.pipeline, &k);
  k += ',';
  AppendJsonString(task.source, &k);
  k += ',' + std::to_string(task.partition) + ']';
  return k;
}

bool KafkaSink::ParseTaskRecord(const std::string& value, StoredTask* t) {
  const size_t nl = value.find('\n');
  simdjson::dom::parser parser;
  simdjson::dom::object header;
  if (nl == std::string::npos ||
      parser.parse(value.data(), nl).get_object().get(header) != simdjson::SUCCESS) {
    spdlog::warn("kafka sink: skipping a task record it cannot read ({} bytes)", value.size());
    return false;
  }
  int64_t fence = 0, updated = 0;
  std::string_view owner;
  if (header["fence"].get_int64().get(fence) || header["owner"].get_string().get(owner)) {
    spdlog::warn("kafka sink: skipping a task record without fence or owner");
    return false;
  }
  if (header["updated"].get_int64().get(updated)) updated = 0;
  t->fence = fence;
  t->max_fence = std::max(t->max_fence, fence);
  t->owner = std::string(owner);
  t->updated_micros = updated;
  simdjson::dom::array progress;
  if (!header["progress"].get_array().get(progress)) {
    std::vector<simdjson::dom::element> p(progress.begin(), progress.end());
    TaskProgress tp;
    if (p.size() == 4 && !p[0].get_int64().get(tp.max_event_time) && !p[1].get_int64().get(tp.watermark) &&
        !p[2].get_int64().get(tp.enforced) && !p[3].get_bool().get(tp.idle)) {
      t->progress = tp;
    }
  }
  bool has_state = false;
  if (!header["state"].get_bool().get(has_state) && has_state) t->state = value.substr(nl + 1);
  return true;
}

Status KafkaSink::ProduceTaskRecord(const TaskId& task, int64_t fence, const std::string& owner,
                                    const TaskProgress* progress, const std::string* state) {
  std::string value = "{\"v\":1,\"fence\":" + std::to_string(fence) + ",\"owner\":";
  AppendJsonString(owner, &value);
  value += ",\"updated\":" + std::to_string(WallClockMicros());
  if (progress) {
    value += ",\"progress\":[" + std::to_string(progress->max_event_time) + ',' +
             std::to_string(progress->watermark) + ',' + std::to_string(progress->enforced) + ',' +
             (progress->idle ? "true" : "false") + ']';
  }
  if (state) value += ",\"state\":true";
  value += "}\n";
  if (state) value += *state;
  return Produce(settings_.positions_topic, TaskKey(task), &value, 0, 0);
}

Status KafkaSink::ReadUpToOwnRecords(bool* interleaved) {
  *interleaved = false;
  const int timeout_ms = static_cast<int>(settings_.timeout_ms);
  if (RdKafka::ErrorCode rc = producer_->flush(timeout_ms); rc != RdKafka::ERR_NO_ERROR) {
    return Status::Unavailable("kafka sink: flushing a transaction to " + settings_.positions_topic + ": " +
                               RdKafka::err2str(rc));
  }
  producer_->poll(0);
  if (delivery_->failed) {
    return Status::Unavailable("kafka sink: delivery failed: " + delivery_->text);
  }
  const int64_t first = delivery_->first_watched;
  if (first < 0) {
    return Status::Internal("kafka sink: no record of this transaction reached partition 0 of " +
                            settings_.positions_topic);
  }
  // Another transaction's record (or marker) between this one's first and last: a claim there
  // would read this transaction's records before it but not those after it. The caller aborts.
  if (delivery_->last_watched - first + 1 != delivery_->count_watched) {
    *interleaved = true;
    return Status::OK();
  }
  // The last stable offset stops at the first record of the oldest open transaction: once it is
  // this transaction's first record, every transaction that wrote there before it is resolved.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool logged = false;
  while (true) {
    int64_t low = 0, high = 0;
    RdKafka::ErrorCode rc =
        reader_->query_watermark_offsets(settings_.positions_topic, 0, &low, &high, std::min(timeout_ms, 5000));
    if (rc == RdKafka::ERR_NO_ERROR && high >= first) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable(
          "kafka sink: another transaction on " + settings_.positions_topic + "[0] stayed open for " +
          std::to_string(timeout_ms / 1000) + "s (" +
          (rc == RdKafka::ERR_NO_ERROR ? "last stable offset " + std::to_string(high) + ", this transaction's first record " + std::to_string(first)
                                       : RdKafka::err2str(rc)) +
          "); a process that stopped in the middle of a commit holds it until its transaction.timeout.ms");
    }
    if (!logged && rc == RdKafka::ERR_NO_ERROR) {
      spdlog::info("kafka sink: waiting for another transaction on {}[0] (last stable offset {}, ours {})",
                   settings_.positions_topic, high, first);
      logged = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ReadBack(first);
}

Status KafkaSink::CheckFences(const Checkpoint& cp) const {
  if (!state_.empty()) {
    return Status::FailedPrecondition(
        "kafka sink: " + settings_.positions_topic + " holds a state record of pipeline " + ctx_.pipeline +
        " (written by a version without per-partition state) next to its task records: every process of a "
        "pipeline must run a version with per-partition state: stop them all, then start");
  }
  for (const TaskCommit& t : cp.tasks) {
    auto it = tasks_.find(t.task);
    if (it == tasks_.end() || it->second.fence != t.fence) {
      return Status::Fenced("kafka sink: task " + t.task.source + "[" + std::to_string(t.task.partition) +
                            "] was claimed by another process (fence " +
                            (it == tasks_.end() ? std::string("none") : std::to_string(it->second.fence)) +
                            ", this one holds " + std::to_string(t.fence) + (it == tasks_.end() || it->second.owner.empty() ? std::string() : ", owner " + it->second.owner) + ")");
    }
  }
  return Status::OK();
}

Result<TaskClaim> KafkaSink::ClaimTask(const TaskId& task, const OwnerInfo& owner) {
  if (!fatal_.empty()) return Status::Internal(fatal_);
  if (reading_only_) return Status::FailedPrecondition("kafka sink: opened for reading only");
  if (needs_init_) RETURN_IF_ERROR(InitProducer());
  RETURN_IF_ERROR(ReadBack());
  const std::string owner_text = owner.ToString();
  // A commit in doubt is settled by the next Commit(), by its marker: keep it.
  const std::string in_doubt = pending_marker_;
  for (int attempt = 1;; ++attempt) {
    // The claim's record carries the task's progress and state as last committed (compaction
    // keeps only the latest record of a key), read before the record took its place: checked
    // again below against what came before it.
    const StoredTask before = tasks_.count(task) ? tasks_[task] : StoredTask();
    const int64_t fence = before.max_fence + 1;
    delivery_->Reset();
    RETURN_IF_ERROR(BeginTransaction());
    Status s = ProduceTaskRecord(task, fence, owner_text, &before.progress, &before.state);
    bool interleaved = false;
    if (s.ok()) s = ReadUpToOwnRecords(&interleaved);
    // Another claim of the task came first in partition 0 (take the next fence), or a commit
    // of it (carry what it stored).
    bool raced = interleaved;
    if (s.ok() && !raced) {
      const StoredTask now = tasks_.count(task) ? tasks_[task] : StoredTask();
      raced = now.max_fence >= fence || now.progress != before.progress || now.state != before.state;
    }
    if (s.ok() && !raced && hook_) s = hook_("claim_before_commit");
    if (!s.ok() || raced) {
      if (!fatal_.empty()) return s;
      Abort();
      if (!s.ok()) return s.WithContext("claiming task " + task.source + "[" + std::to_string(task.partition) + "]");
      if (attempt >= 20) {
        return Status::Unavailable("kafka sink: claiming task " + task.source + "[" +
                                   std::to_string(task.partition) + "]: other claims or commits of it came first 20 times");
      }
      continue;
    }
    bool retry = false;
    s = CommitTransaction(&retry);
    pending_marker_ = in_doubt;
    if (!s.ok()) return s.WithContext("claiming task " + task.source + "[" + std::to_string(task.partition) + "]");
    StoredTask& st = tasks_[task];
    st.fence = fence;
    st.max_fence = fence;
    st.owner = owner_text;
    st.updated_micros = WallClockMicros();
    claimed_owner_[task] = owner_text;
    TaskClaim claim;
    claim.fence = fence;
    claim.state = st.state;
    for (int32_t p : {task.partition, kGenerationPartitionBase + task.partition}) {
      if (auto it = positions_.find({task.source, p}); it != positions_.end()) claim.positions[p] = it->second;
    }
    return claim;
  }
}

Result<std::vector<TaskRow>> KafkaSink::LoadTaskProgress() {
  if (!fatal_.empty()) return Status::Internal(fatal_);
  std::vector<TaskRow> out;
  if (no_positions_topic_) return out;
  RETURN_IF_ERROR(ReadBack());
  for (const auto& [id, t] : tasks_) {
    TaskRow row;
    row.task = id;
    row.fence = t.fence;
    row.owner = t.owner;
    row.progress = t.progress;
    row.updated_micros = t.updated_micros;
    out.push_back(std::move(row));
  }
  return out;
}

Status KafkaSink::MigrateLegacyState() {
  // Every record a claim or a commit of tasks reads must be ordered by partition 0.
  const int n = KafkaPartitionCount(settings_.brokers, settings_.positions_topic);
  if (n <= 0) {
    return Status::Unavailable("kafka sink: cannot read the partitions of " + settings_.positions_topic);
  }
  if (n != 1) {
    return Status::FailedPrecondition(
        "kafka sink: positions topic " + settings_.positions_topic + " has " + std::to_string(n) +
        " partitions; a pipeline with per-partition state (tasks) needs one (the sink creates it so): "
        "name another positions_topic");
  }
  RETURN_IF_ERROR(ReadBack());
  if (state_.empty()) return Status::OK();
  if (!tasks_.empty()) {
    return Status::FailedPrecondition(
        "kafka sink: " + settings_.positions_topic + " holds a state record of pipeline " + ctx_.pipeline +
        " (written by a version without per-partition state) next to its task records: every process of a "
        "pipeline must run a version with per-partition state: stop them all, then start");
  }
  const std::string legacy = state_;
  ASSIGN_OR_RETURN(WindowState old, WindowState::Parse(legacy, ctx_.aggregate));
  if (!old.open.empty()) {
    return Status::FailedPrecondition(
        "kafka sink: the stored state of pipeline " + ctx_.pipeline + " in " + settings_.positions_topic +
        " holds open windows (" + std::to_string(old.open.size()) +
        " groups) kept by one process, which cannot be split by partition: run it as before until those "
        "windows are written");
  }
  const int64_t delay = ctx_.aggregate ? ctx_.aggregate->watermark_delay_micros : 0;
  const auto split = SplitLegacyState(old, ctx_.source, delay);
  delivery_->Reset();
  RETURN_IF_ERROR(BeginTransaction());
  size_t held = 0;
  Status s;
  for (const auto& [id, task] : split) {
    if (!s.ok()) break;
    const std::string blob = task.Serialize(ctx_.aggregate);
    s = ProduceTaskRecord(id, 0, std::string(), &task.progress, &blob);
    held += task.held.size();
  }
  std::string pipeline_json;
  AppendJsonString(ctx_.pipeline, &pipeline_json);
  if (s.ok()) s = Produce(settings_.positions_topic, "[\"state\"," + pipeline_json + "]", nullptr, 0);
  bool interleaved = false;
  if (s.ok()) s = ReadUpToOwnRecords(&interleaved);
  // Another process moved it first (or changed it): start over from what it left.
  const bool changed = s.ok() && (interleaved || !tasks_.empty() || state_ != legacy);
  if (!s.ok() || changed) {
    if (!fatal_.empty()) return s;
    Abort();
    if (!s.ok()) return s.WithContext("moving the stored state into task records");
    return MigrateLegacyState();
  }
  bool retry = false;
  RETURN_IF_ERROR(CommitTransaction(&retry).WithContext("moving the stored state into task records"));
  RETURN_IF_ERROR(ReadBack());
  spdlog::info("kafka sink: pipeline {}: the stored state now lives per partition in task records of {} ({} "
               "task(s), {} held record(s))",
               ctx_.pipeline, settings_.positions_topic, split.size(), held);
  return Status::OK();
}

}  // namespace sluice
