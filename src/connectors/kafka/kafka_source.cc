#include "connectors/kafka/kafka_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <regex>
#include <thread>

#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/kafka_uri.h"
#include "connectors/kafka/schema_registry.h"
#include "core/uri.h"
#include "runtime/repartition_output.h"

namespace sluice {

namespace {
/// How often a run waiting for a missing topic repeats its warning, and the longest wait
/// between two of its checks.
constexpr std::chrono::seconds kMissingTopicRecheck{30};
/// The first check after open comes this soon, and the wait doubles up to kMissingTopicRecheck.
/// Each check is a metadata request, whose answer also makes the consumer subscribe a topic
/// that appeared: a topic created just after the source opened (stage two's repartition topic,
/// created by stage one's sink in the same process) is read a second later instead of at
/// librdkafka's next metadata refresh (10 s), or, under --until-caught-up, only once the end
/// offsets are taken (a group formed after stage one ended: seconds of every such run).
constexpr std::chrono::seconds kMissingTopicFirstRecheck{1};
}  // namespace

const OptionTable& KafkaSourceOptions() {
  static const OptionTable kTable = [] {
    OptionTable t{
        .uri = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC[,TOPIC...]",
        .summary = "Kafka topics read by a consumer-group member per worker; the positions in the sink "
                   "are the truth (src/connectors/kafka/README.md).",
        .options = {
            {.name = "topics",
             .type = OptionType::kList,
             .help = "The topics to read, instead of naming them in the URI (`kafka://HOST:PORT`). The first "
                     "keeps the positions of a source that read only it: list the topic you read before "
                     "first."},
            {.name = "topic_pattern",
             .help = "Read every topic whose name matches this regular expression (`\"^view_log\\\\..*\"`; "
                     "a leading `^` is added when missing), also those created while the pipeline runs "
                     "(found at the next metadata refresh, every 10 s: `kafka.topic.metadata.refresh.interval.ms`). "
                     "Under --until-caught-up, a pattern matching no topic fails the run (exit 1)."},
            {.name = "legacy_topic",
             .help = "With `topic_pattern`: the topic this source read alone before, whose stored positions "
                     "it keeps. Required when the sink holds positions of a one-topic source."},
            {.name = "topic_slots",
             .type = OptionType::kList,
             .help = "With several topics: `[\"TOPIC=SLOT\", ...]` pins a topic's slot (1..131071) in the "
                     "partition ids, for the rare topics whose names hash to one slot (the run stops and "
                     "names them). Never change a slot once positions are stored."},
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
            {.name = "gapless",
             .type = OptionType::kBool,
             .default_value = "false",
             .help = "Read the topic without a gap or fail: a partition starts exactly at its committed "
                     "position, or at offset 0 without one, and records deleted before they were read "
                     "(retention, a purge) or a recreated topic (a position beyond its end) stop the run "
                     "(exit 1) instead of being skipped. Set by `sluice run` on the source of a repartitioned "
                     "pipeline's second stage (the internal topic `<pipeline>-repartition`), whose error says "
                     "how to reset the pipeline; not meant for a pipeline file."},
            {.name = "kafka.*",
             .help = "Any librdkafka consumer setting, `\"kafka.NAME\" = \"VALUE\"` (quoted: TOML reads a bare "
                     "dotted key as a table)."},
        }};
    for (OptionSpec& spec : SchemaRegistryOptions()) t.options.push_back(std::move(spec));
    return t;
  }();
  return kTable;
}

namespace {

/// "a, b" / "a,b" -> {"a", "b"}.
std::vector<std::string> SplitTopicList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string t = text.substr(start, comma - start);
    const size_t b = t.find_first_not_of(' ');
    const size_t e = t.find_last_not_of(' ');
    if (b != std::string::npos) out.push_back(t.substr(b, e - b + 1));
    start = comma + 1;
  }
  return out;
}

/// The topic whose name the schema registry's subjects default to.
const std::string& FirstTopic(const KafkaSource::Settings& s) {
  return s.topics.empty() ? s.legacy_topic : s.topics.front();
}

/// Reads which topics to consume: the URI's list (kafka://HOST:PORT/T1,T2, or ^PATTERN), or
/// `topics` / `topic_pattern` with kafka://HOST:PORT; `legacy_topic` and `topic_slots`. Two
/// listed topics in one slot are refused here, before anything is read.
Status ReadTopics(const std::string& rest, const OptionReader& o, KafkaSource::Settings* s) {
  // Empty values (a variable left unset) are none.
  const bool listed = !o.String("topics").empty();
  const bool patterned = !o.String("topic_pattern").empty();
  const bool named = listed || patterned;
  {
    // kafka://HOST:PORT/T1,T2 or, with topics / topic_pattern, kafka://HOST:PORT.
    std::string r = rest.rfind("//", 0) == 0 ? rest.substr(2) : rest;
    const size_t slash = r.find('/');
    const std::string in_uri = slash == std::string::npos ? "" : r.substr(slash + 1);
    if (named && !in_uri.empty()) {
      return Status::InvalidArgument(o.Where("uri") +
                                     ": name the topics either in the URI or with topics / topic_pattern, not both");
    }
    if (named) {
      s->brokers = r.substr(0, slash);
      if (s->brokers.empty()) {
        return Status::InvalidArgument(o.Where("uri") + ": expected kafka://HOST:PORT, got kafka://" + r);
      }
    } else {
      auto uri = ParseKafkaUri(rest);
      if (!uri.ok()) return Status::InvalidArgument(o.Where("uri") + ": " + uri.status().message());
      s->brokers = uri->brokers;
      if (uri->topic.front() == '^') {
        s->pattern = uri->topic;  // librdkafka's convention: a subscription starting with ^ is a pattern
      } else {
        s->topics = SplitTopicList(uri->topic);
      }
    }
  }
  if (listed) s->topics = SplitTopicList(o.String("topics"));
  if (patterned) {
    if (listed) return Status::InvalidArgument(o.Where("topic_pattern") + ": set topics or topic_pattern, not both");
    s->pattern = o.String("topic_pattern");
  }
  if (!s->pattern.empty()) {
    if (s->pattern.front() != '^') s->pattern = "^" + s->pattern;
    try {
      std::regex check(s->pattern, std::regex::extended);
    } catch (const std::regex_error&) {
      return Status::InvalidArgument(o.Where("topic_pattern") + ": not a regular expression: " + s->pattern);
    }
  } else if (s->topics.empty()) {
    return Status::InvalidArgument(o.Where("topics") + ": no topic to read");
  }
  s->legacy_topic = o.String("legacy_topic");
  if (!s->legacy_topic.empty() && s->pattern.empty()) {
    return Status::InvalidArgument(o.Where("legacy_topic") +
                                   ": legacy_topic is for topic_pattern; with a list, the first topic keeps "
                                   "the stored positions");
  }
  {
    std::vector<std::string> entries = SplitTopicList(o.String("topic_slots"));
    auto pins = ParseTopicSlotPins(entries);
    if (!pins.ok()) return Status::InvalidArgument(o.Where("topic_slots") + ": " + pins.status().message());
    s->slot_pins = *pins;
    auto slots = TopicSlots::Make(s->topics, s->legacy_topic, s->slot_pins);
    if (!slots.ok()) return Status::InvalidArgument(o.Where("topics") + ": " + slots.status().message());
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<std::unique_ptr<Source>>> KafkaSource::Make(const SourceConfig& config,
                                                               int max_instances) {
  auto [scheme, rest] = SplitUri(config.uri);
  OptionReader o(config.options, KafkaSourceOptions(), "source");
  Settings s;
  RETURN_IF_ERROR(ReadTopics(rest, o, &s));
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
    ASSIGN_OR_RETURN(SchemaRegistrySettings registry, ReadSchemaRegistrySettings(o.options(), FirstTopic(s)));
    decoder.avro_schemas = MakeRegistrySchemaCache(registry);
  } else if (format == "protobuf") {
    decoder.format = DecoderOptions::Format::kProtobuf;
    ASSIGN_OR_RETURN(SchemaRegistrySettings registry, ReadSchemaRegistrySettings(o.options(), FirstTopic(s)));
    decoder.avro_schemas = MakeRegistryProtobufSchemaCache(registry);
  } else {
    return Status::InvalidArgument(o.Where("format") + ": format must be json, csv, avro or protobuf for Kafka");
  }
  for (const auto& key : o.KeysWithPrefix("kafka.")) {
    s.properties[key.substr(6)] = o.String(key);
  }
  ASSIGN_OR_RETURN(bool gapless, o.Bool("gapless"));
  if (gapless) s.gapless_remedy = RepartitionResetAdvice(config.pipeline);
  o.String("header");  // a file source's setting; Kafka CSV messages never have a header
  RETURN_IF_ERROR(o.Finish());

  // One group member per worker, but no more than there are partitions.
  int instances = std::max(1, max_instances);
  if (instances > 1 && s.pattern.empty()) {
    int partitions = 0;
    for (const std::string& t : s.topics) {
      const int n = KafkaPartitionCount(s.brokers, t);
      if (n <= 0) {
        partitions = 0;  // unknown now: one member per worker
        break;
      }
      partitions += n;
    }
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
  // Never create a topic to read (a typo would become a new, empty topic, where the broker
  // auto-creates topics), and notice a topic created after the start within 10 s, not 5 min.
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "allow.auto.create.topics", "false"));
  RETURN_IF_ERROR(SetKafkaConf(conf.get(), "topic.metadata.refresh.interval.ms", "10000"));
  for (const auto& [k, v] : settings_.properties) RETURN_IF_ERROR(SetKafkaConf(conf.get(), k, v));
  // An input to read without a gap: a fetch position whose records are gone is an error (Poll),
  // never a jump to the earliest record left.
  if (!settings_.gapless_remedy.empty()) RETURN_IF_ERROR(SetKafkaConf(conf.get(), "auto.offset.reset", "error"));
  std::string err;
  if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) != RdKafka::Conf::CONF_OK) {
    return Status::Internal("kafka rebalance_cb: " + err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) return Status::InvalidArgument("kafka consumer: " + err);
  ASSIGN_OR_RETURN(slots_, TopicSlots::Make(settings_.topics, settings_.legacy_topic, settings_.slot_pins));
  if (!settings_.pattern.empty() && settings_.legacy_topic.empty() && ctx_.committed_positions) {
    // Positions of a one-topic source (ids below kMaxKafkaPartitions, no topic recorded for
    // slot 0) would be nobody's: the pattern does not say which topic they belong to.
    const std::map<int32_t, int64_t> all = ctx_.committed_positions();
    auto first = all.lower_bound(0);
    if (first != all.end() && first->first < kMaxKafkaPartitions && !all.count(kTopicSlotBase)) {
      return Status::InvalidArgument(
          "the sink holds positions of a source that read one topic (partition " +
          std::to_string(first->first) + " at " + std::to_string(first->second) +
          "); name that topic with legacy_topic = \"TOPIC\" so its positions are kept");
    }
  }
  for (const auto& [slot, topic] : slots_.topics()) RETURN_IF_ERROR(Slot(topic).status());
  if (ctx_.until_caught_up && !ctx_.take_end_offsets_when) RETURN_IF_ERROR(FetchEndOffsets(30));
  ListPartitions();
  std::vector<std::string> subscription = settings_.topics;
  if (!settings_.pattern.empty()) subscription = {settings_.pattern};
  RdKafka::ErrorCode rc = consumer_->subscribe(subscription);
  if (rc != RdKafka::ERR_NO_ERROR) {
    return Status::Unavailable("kafka subscribe to " + What() + ": " + RdKafka::err2str(rc));
  }
  opened_ = std::chrono::steady_clock::now();
  last_progress_ = opened_;
  spdlog::info("kafka {}: consuming {} as group {} ({})", settings_.client_id, What(), settings_.group,
               settings_.brokers);
  return Status::OK();
}

std::string KafkaSource::What() const {
  if (!settings_.pattern.empty()) return "the topics matching " + settings_.pattern;
  std::string out = settings_.topics.size() == 1 ? "topic " : "topics ";
  for (size_t i = 0; i < settings_.topics.size(); ++i) out += (i ? ", " : "") + settings_.topics[i];
  return out;
}

Result<int32_t> KafkaSource::Slot(const std::string& topic) {
  ASSIGN_OR_RETURN(int32_t slot, slots_.SlotFor(topic));
  if (!Several() || checked_slots_.count(slot)) return slot;
  // The topic committed for this slot must be this one: else its positions are another topic's.
  if (ctx_.committed_position) {
    std::optional<int64_t> stored = ctx_.committed_position(kTopicSlotBase + slot);
    if (stored && *stored != Fingerprint64(topic)) {
      std::string other;
      for (const std::string& t : settings_.topics) {
        if (Fingerprint64(t) == *stored) other = t;
      }
      return Status::InvalidArgument(
          "slot " + std::to_string(slot) + " of the partition ids holds the positions of " +
          (other.empty() ? std::string("another topic") : "topic " + other) + ", not of " + topic +
          (slot == 0 ? std::string(" (the first topic of the list keeps slot 0: list the topic read before first)")
                     : " (pin " + topic + " to a free slot with topic_slots = [\"" + topic + "=N\"])"));
    }
  }
  checked_slots_.insert(slot);
  return slot;
}

int32_t KafkaSource::IdOf(const std::string& topic, int32_t partition) {
  auto slot = Slot(topic);
  if (!slot.ok()) {
    if (callback_error_.ok()) callback_error_ = Status::Aborted(slot.status().message());
    return -1;
  }
  if (Several() && partition >= kMaxKafkaPartitions) {
    if (callback_error_.ok()) {
      callback_error_ = Status::Aborted("topic " + topic + " has partition " + std::to_string(partition) +
                                        "; a source that reads several topics supports up to " +
                                        std::to_string(kMaxKafkaPartitions) + " partitions per topic");
    }
    return -1;
  }
  return KafkaPartitionId(*slot, partition);
}

Result<std::vector<std::pair<std::string, int>>> KafkaSource::MetadataTopics(int timeout_ms) {
  // Always the list of all topics: asking for one by name makes a broker with
  // auto.create.topics.enable create it, and a typo would become a new, empty topic.
  RdKafka::Metadata* md = nullptr;
  RdKafka::ErrorCode rc = consumer_->metadata(true, nullptr, &md, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> owned(md);
  if (rc != RdKafka::ERR_NO_ERROR || !md) {
    return Status::Unavailable("kafka metadata: " + RdKafka::err2str(rc));
  }
  std::optional<std::regex> pattern;
  if (!settings_.pattern.empty()) pattern.emplace(settings_.pattern, std::regex::extended);
  std::vector<std::pair<std::string, int>> out;
  std::map<std::string, int> existing;
  for (const auto* tm : *md->topics()) {
    if (tm->err() != RdKafka::ERR_NO_ERROR) continue;
    const std::string& name = tm->topic();
    existing[name] = static_cast<int>(tm->partitions()->size());
    if (pattern ? !std::regex_search(name, *pattern)
                : std::find(settings_.topics.begin(), settings_.topics.end(), name) == settings_.topics.end()) {
      continue;
    }
    ASSIGN_OR_RETURN(int32_t slot, Slot(name));
    (void)slot;
    const int n = static_cast<int>(tm->partitions()->size());
    if (Several() && n > kMaxKafkaPartitions) {
      return Status::InvalidArgument("topic " + name + " has " + std::to_string(n) +
                                     " partitions; a source that reads several topics supports up to " +
                                     std::to_string(kMaxKafkaPartitions) + " per topic");
    }
    out.emplace_back(name, n);
  }
  // A topic that does not exist is the brokers' state, not the file's: kFailedPrecondition.
  if (pattern) {
    if (out.empty()) {
      return Status::FailedPrecondition("no topic on " + settings_.brokers + " matches " + settings_.pattern);
    }
    return out;
  }
  for (const std::string& name : settings_.topics) {
    if (!existing.count(name)) return Status::FailedPrecondition(MissingKafkaTopic(name, settings_.brokers, existing));
  }
  return out;
}

std::vector<SourceCounter> KafkaSource::Counters() const {
  return {{"kafka_missing_topic_checks",
           "Metadata checks that found a topic the Kafka source reads missing (at start, then after 1, 2, "
           "4, ... s, at most every 30 s, while the run waits for it).",
           "", missing_checks_.load(std::memory_order_relaxed)}};
}

void KafkaSource::ListPartitions() {
  topic_partitions_.clear();
  if (!end_offsets_.empty()) {
    for (const auto& [p, end] : end_offsets_) topic_partitions_.push_back(p);
    return;
  }
  // At open, and then (Poll) while a topic is missing: after kMissingTopicFirstRecheck, the wait
  // doubling up to kMissingTopicRecheck; the warning is repeated every kMissingTopicRecheck.
  const bool waiting = !missing_.empty();
  const auto now = std::chrono::steady_clock::now();
  missing_recheck_ = waiting ? std::min<std::chrono::seconds>(2 * missing_recheck_, kMissingTopicRecheck)
                             : kMissingTopicFirstRecheck;
  next_missing_check_ = now + missing_recheck_;
  // Best effort: without the list, a partition holds the watermark back once it is assigned.
  auto topics = MetadataTopics(waiting ? 2000 : 5000);
  if (!topics.ok()) {
    if (topics.status().code() == StatusCode::kFailedPrecondition) {
      // A producer may create it later: read it from the first metadata refresh that shows it.
      missing_ = topics.status().message();
      missing_checks_.fetch_add(1, std::memory_order_relaxed);
      if (waiting) {
        if (now < next_missing_warning_) return;
        next_missing_warning_ = now + kMissingTopicRecheck;
        spdlog::warn("kafka {}: {}; still waiting for it to be created", settings_.client_id, missing_);
      } else {
        next_missing_warning_ = now + kMissingTopicRecheck;
        spdlog::warn("kafka {}: {}; waiting for it to be created (asked again after {} s, then less often, "
                     "at most every {} s)",
                     settings_.client_id, missing_, kMissingTopicFirstRecheck.count(), kMissingTopicRecheck.count());
      }
      return;
    }
    spdlog::debug("kafka {}: cannot list the partitions of {}: {}", settings_.client_id, What(),
                  topics.status().ToString());
    return;
  }
  if (waiting) {
    // This answer updates the consumer's metadata too: it subscribes the topic at once. An
    // unknown-topic error it queued before is stale meanwhile.
    spdlog::info("kafka {}: found {} now; reading it", settings_.client_id, What());
    found_at_ = now;
  }
  missing_.clear();
  for (const auto& [topic, n] : *topics) {
    const int32_t slot = *slots_.Find(topic);
    for (int32_t p = 0; p < n; ++p) topic_partitions_.push_back(KafkaPartitionId(slot, p));
  }
}

Status KafkaSource::FetchEndOffsets(int attempts) {
  std::string why;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    auto topics = MetadataTopics(5000);
    if (!topics.ok() && topics.status().code() == StatusCode::kInvalidArgument) return topics.status();
    // A topic missing from a broker that answers: ask twice more (a topic created just now may
    // not be known to every broker yet), then stop; waiting cannot make a batch run's input.
    if (!topics.ok() && topics.status().code() == StatusCode::kFailedPrecondition && attempt >= 2) {
      return topics.status();
    }
    if (topics.ok()) {
      bool ok = true;
      for (const auto& [topic, n] : *topics) {
        const int32_t slot = *slots_.Find(topic);
        for (int32_t p = 0; p < n && ok; ++p) {
          const int32_t id = KafkaPartitionId(slot, p);
          int64_t low = 0, high = 0;
          RdKafka::ErrorCode rc = consumer_->query_watermark_offsets(topic, p, &low, &high, 5000);
          if (rc != RdKafka::ERR_NO_ERROR) {
            why = RdKafka::err2str(rc);
            ok = false;
            break;
          }
          TakeEnd(id, low, high);
        }
      }
      if (ok) return Status::OK();
    } else {
      why = topics.status().message();
    }
  }
  return Status::Unavailable("kafka: cannot read the end offsets of " + What() + " from " + settings_.brokers +
                             (why.empty() ? "" : ": " + why));
}

void KafkaSource::TakeEnd(int32_t id, int64_t low, int64_t high) {
  end_offsets_[id] = high;
  low_offsets_[id] = low;
  // A position committed beyond the end was taken in another life of the topic (offsets
  // only grow): it says nothing about this one until someone rewrites it.
  if (std::optional<int64_t> c = ctx_.committed_position ? ctx_.committed_position(id) : std::nullopt;
      c && *c > high && !stale_.count(id)) {
    stale_[id] = *c;
    // Read without a gap, the partition is not read again but refused on assignment.
    if (settings_.gapless_remedy.empty()) {
      spdlog::warn("kafka {}: {}: the committed position {} is beyond the end of the "
                   "partition ({}): the topic was deleted and recreated; the partition is "
                   "read again from its beginning", settings_.client_id, Label(id), *c, high);
    }
  }
  // Replaced by the committed position on assignment; taken late
  // (take_end_offsets_when), a partition read already keeps where it is.
  next_.try_emplace(id, low);
}

void KafkaSource::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                               std::vector<RdKafka::TopicPartition*>& partitions) {
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    for (auto* tp : partitions) {
      // A topic that cannot have an id (a slot taken by another topic) is assigned but never
      // read: the error ends the run at the next Poll().
      const int32_t id = IdOf(tp->topic(), tp->partition());
      if (id < 0) continue;
      if (!settings_.gapless_remedy.empty()) {
        // Checked before the claim: a partition refused is neither read nor claimed (a claim
        // here would leave its task to a member that never reads it, and fence the member the
        // group gives it to next, whose own check then ends the run the same way).
        if (Status gap = CheckNoGap(id, ctx_.committed_position(id)); !gap.ok()) {
          // The error ends the run at the next Poll().
          if (callback_error_.ok()) callback_error_ = gap;
          continue;
        }
      }
      std::optional<int64_t> committed =
          ctx_.claim_position ? ctx_.claim_position(id) : ctx_.committed_position(id);
      bool recreated = false;
      if (committed) committed = StartOffset(id, *committed, &recreated);
      // The topic was recreated: its offsets start again, under the next generation, so the
      // dead letters of this life of the partition keep apart from the last one's.
      int64_t generation = 0;
      if (committed || recreated) {
        generation = ctx_.committed_position(kGenerationPartitionBase + id).value_or(0);
      }
      if (recreated) {
        ++generation;
        new_generations_.insert(id);
      }
      generations_[id] = generation;
      tp->set_offset(committed ? *committed : RdKafka::Topic::OFFSET_BEGINNING);
      assigned_.insert(id);
      if (committed) {
        next_[id] = *committed;
      } else if (auto start = low_offsets_.find(id); start != low_offsets_.end()) {
        // Read from its beginning, so its progress starts there too: what this member read of it
        // before a revocation was dropped uncommitted (--until-caught-up must not count the
        // partition as read to its end when it gets it back).
        next_[id] = start->second;
      } else {
        // Read from its beginning: the first offset, asked once per assignment, so progress and
        // /metrics show the partition's position and lag before its first record.
        next_.erase(id);
        int64_t low = -1, high = -1;
        if (consumer->query_watermark_offsets(tp->topic(), tp->partition(), &low, &high, 2000) ==
                RdKafka::ERR_NO_ERROR &&
            low >= 0) {
          next_[id] = low;
        }
      }
      past_records_.erase(id);
      spdlog::info("kafka {}: assigned {} from offset {}", settings_.client_id, Label(id),
                   committed ? std::to_string(*committed) : "beginning");
    }
    consumer->assign(partitions);
    awaiting_assignment_ = false;
    last_progress_ = std::chrono::steady_clock::now();
    return;
  }
  if (err == RdKafka::ERR__REVOKE_PARTITIONS) awaiting_assignment_ = true;
  std::vector<int32_t> revoked;
  for (auto* tp : partitions) {
    std::optional<int32_t> slot = slots_.Find(tp->topic());
    if (!slot) continue;  // never assigned an id
    const int32_t id = KafkaPartitionId(*slot, tp->partition());
    if (assigned_.count(id)) revoked.push_back(id);
  }
  // Records of these partitions fetched earlier in this Poll() are not processed yet; the new
  // owner will read them from the committed position, so they must not be processed here.
  if (in_flight_) {
    std::set<int32_t> gone(revoked.begin(), revoked.end());
    in_flight_->RemoveIf([&](const RawRecord& r) { return gone.count(r.partition) > 0; });
  }
  // A lost assignment (this member's session expired, or it did not poll within
  // max.poll.interval.ms): the group has given the partitions to another member already, and a
  // commit for them would be fenced. What was read of them and not committed is dropped; their
  // new owner reads it again from the last commit.
  bool dropped = false;
  if (err == RdKafka::ERR__REVOKE_PARTITIONS && !revoked.empty() && consumer->assignment_lost() &&
      ctx_.drop_lost) {
    Result<bool> d = ctx_.drop_lost(revoked);
    if (!d.ok()) {
      spdlog::error("kafka {}: dropping the lost partitions failed: {}", settings_.client_id, d.status().ToString());
      callback_error_ = d.status();
      dropped = true;  // the run is failing: no checkpoint either
    } else if (*d) {
      std::string names;
      for (int32_t p : revoked) names += (names.empty() ? "" : ", ") + Label(p);
      spdlog::warn("kafka {}: lost {} (group {} gave them to another member: this member's session expired or it "
                   "did not poll within max.poll.interval.ms); nothing more is committed for them here, and what "
                   "was read of them since their last commit is dropped, to be read again by their new owner; "
                   "going on with the other partitions",
                   settings_.client_id, names, settings_.group);
      dropped = true;
    }
  }
  if (!dropped && err == RdKafka::ERR__REVOKE_PARTITIONS && !revoked.empty() && ctx_.checkpoint_before_revoke) {
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

Status KafkaSource::CheckNoGap(int32_t id, std::optional<int64_t> committed) {
  int64_t low = 0, high = 0;
  RdKafka::ErrorCode rc = RdKafka::ERR_NO_ERROR;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    rc = consumer_->query_watermark_offsets(TopicOf(id), KafkaPartitionOfId(id), &low, &high, 5000);
    if (rc == RdKafka::ERR_NO_ERROR) break;
  }
  if (rc != RdKafka::ERR_NO_ERROR) {
    // Unchecked, a partition without a position would start at whatever its first offset is.
    return Status::Aborted("kafka " + settings_.client_id + ": cannot read the offsets of " + Label(id) +
                           " to check that it can be read without a gap (" + RdKafka::err2str(rc) + ")");
  }
  const std::string what = "kafka " + settings_.client_id + ": " + Label(id) + " (the pipeline's own data, " +
                           "which must be read without a gap): ";
  if (!committed) {
    if (low == 0) return Status::OK();
    return Status::FailedPrecondition(
        what + "the sink holds no position of it, but its first offset is " + std::to_string(low) + ", not 0: " +
        std::to_string(low) + " record(s) were deleted before this sink read them (read and purged by an earlier "
        "run of the pipeline into another sink, or deleted by retention); their counts would be missing from "
        "this sink's results. To fix it, " + settings_.gapless_remedy);
  }
  if (*committed < low) {
    return Status::FailedPrecondition(
        what + "the sink's committed position " + std::to_string(*committed) + " is before the partition's first "
        "offset " + std::to_string(low) + ": " + std::to_string(low - *committed) + " record(s) were deleted "
        "before this sink read them (purged by a run of the pipeline into another sink, or deleted by "
        "retention); their counts would be missing from the results. To fix it, " + settings_.gapless_remedy);
  }
  if (*committed > high) {
    return Status::FailedPrecondition(
        what + "the sink's committed position " + std::to_string(*committed) + " is beyond the partition's end " +
        std::to_string(high) + ": the topic was deleted and recreated after the sink committed it, so the "
        "sink's positions and open windows belong to the old topic, and what a restarted first stage writes "
        "again would be counted twice. To fix it, " + settings_.gapless_remedy);
  }
  return Status::OK();
}

int64_t KafkaSource::StartOffset(int32_t partition, int64_t committed, bool* recreated) {
  int64_t low = 0, high = 0;
  RdKafka::ErrorCode rc =
      consumer_->query_watermark_offsets(TopicOf(partition), KafkaPartitionOfId(partition), &low, &high, 5000);
  if (rc != RdKafka::ERR_NO_ERROR) {
    spdlog::warn("kafka {}: cannot read the offsets of {} ({}); reading from the committed "
                 "position {}", settings_.client_id, Label(partition),
                 RdKafka::err2str(rc), committed);
    return committed;
  }
  if (committed > high) {
    // Offsets only grow: a position past the end was taken in another life of the topic.
    spdlog::warn("kafka {}: {}: the committed position {} is beyond the end of the partition "
                 "({}): the topic was deleted and recreated; reading the partition from its "
                 "beginning (offset {})",
                 settings_.client_id, Label(partition), committed, high, low);
    *recreated = true;
    return low;
  }
  if (committed < low) {
    spdlog::warn("kafka {}: {}: the committed position {} is before the first offset of the "
                 "partition ({}): {} record(s) were deleted before they were read (retention, or "
                 "the topic was recreated); reading from offset {}",
                 settings_.client_id, Label(partition), committed, low, low - committed,
                 low);
    return low;
  }
  return committed;
}

Result<std::map<int32_t, KafkaPartitionEnds>> KafkaSource::DeferredEnds() {
  // Asked on handles of their own (KafkaAdmin's: read_uncommitted for the high watermarks,
  // read_committed for the last stable offsets), not the consumer's: its connection carries its
  // fetches, which the broker holds for up to fetch.wait.max.ms when there is nothing new, and
  // a request queued behind one waits as long (measured: 2.5 s for the metadata and four
  // partitions' offsets of a stage-two consumer, at every --until-caught-up end).
  if (!end_admin_) {
    std::map<std::string, std::string> conf = settings_.properties;
    for (const char* k : {"isolation.level", "group.id", "group.instance.id", "enable.auto.commit"}) conf.erase(k);
    ASSIGN_OR_RETURN(end_admin_, KafkaAdmin::Make(settings_.brokers, 5000, conf));
  }
  std::vector<std::string> topics = settings_.topics;
  if (!settings_.pattern.empty()) {
    topics.clear();
    ASSIGN_OR_RETURN(auto matched, MetadataTopics(5000));
    for (const auto& [topic, n] : matched) topics.push_back(topic);
  }
  std::map<int32_t, KafkaPartitionEnds> out;
  for (const std::string& topic : topics) {
    ASSIGN_OR_RETURN(int32_t slot, Slot(topic));
    ASSIGN_OR_RETURN(std::vector<KafkaPartitionEnds> ends, end_admin_->EndOffsets(topic));
    for (const KafkaPartitionEnds& e : ends) out[KafkaPartitionId(slot, e.partition)] = e;
  }
  return out;
}

Status KafkaSource::TakeDeferredEndOffsets() {
  if (!ctx_.until_caught_up || !EndOffsetsDeferred()) return Status::OK();
  const auto now = std::chrono::steady_clock::now();
  if (now < next_end_query_) return Status::OK();
  if (!end_floor_ && !ctx_.take_end_offsets_when()) return Status::OK();
  next_end_query_ = now + std::chrono::milliseconds(200);
  Result<std::map<int32_t, KafkaPartitionEnds>> ends = DeferredEnds();
  if (!ends.ok()) {
    if (ends.status().code() == StatusCode::kInvalidArgument) return ends.status();
    // Asked again at a later poll; the source reads on meanwhile, never ending before.
    last_error_ = ends.status().message();
    spdlog::warn("kafka {}: reading the end offsets of {} failed: {}; asking again", settings_.client_id, What(),
                 ends.status().ToString());
    next_end_query_ = now + std::chrono::seconds(1);
    return Status::OK();
  }
  if (!end_floor_) {
    end_floor_.emplace();
    for (const auto& [id, e] : *ends) (*end_floor_)[id] = e.high_watermark;
    // From here on the wait counts against catch_up_timeout (CheckProgress).
    last_progress_ = now;
  }
  std::string behind;
  for (const auto& [id, high] : *end_floor_) {
    auto end = ends->find(id);
    const int64_t stable = end == ends->end() ? -1 : end->second.last_stable;
    if (stable < high) {
      behind += (behind.empty() ? "" : ", ") + Label(id) + " at " + std::to_string(stable) + " of " +
                std::to_string(high);
    }
  }
  if (!behind.empty()) {
    if (behind != end_behind_) {
      spdlog::info("kafka {}: waiting for the last stable offsets of {} to reach the high watermarks of when "
                   "the end was asked for (a transaction's markers not written yet): {}",
                   settings_.client_id, What(), behind);
    }
    end_behind_ = behind;
    return Status::OK();
  }
  end_behind_.clear();
  for (const auto& [id, e] : *ends) TakeEnd(id, e.low, e.last_stable);
  end_offsets_taken_ = true;
  last_progress_ = std::chrono::steady_clock::now();
  std::string taken;
  for (const auto& [p, end] : end_offsets_) taken += (taken.empty() ? "" : ", ") + Label(p) + " at " + std::to_string(end);
  spdlog::info("kafka {}: reading {} up to the end offsets taken now: {}", settings_.client_id, What(), taken);
  return Status::OK();
}

bool KafkaSource::CaughtUp() {
  if (caught_up_) return true;
  if (EndOffsetsDeferred()) return false;  // no end yet
  // A partition's task state (records held by a `hold` lookup, parked there by a revoke or by an
  // earlier run) comes back only with the claim on assignment: until this member has taken the
  // group's assignment (at start, or since a revoke) it is not caught up, else the run would end
  // with those records neither applied nor dead-lettered.
  if (ctx_.claim_position && awaiting_assignment_) return false;
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
    waiting += Label(p) + " at " +
               (c < 0 ? std::string("no position") : std::to_string(c) + (is_stale ? " (stale)" : "")) +
               " of " + std::to_string(end);
  }
  waiting_ = waiting;
  if (waiting.empty()) {
    caught_up_ = true;
    spdlog::info("kafka {}: every partition of {} has reached the end offsets seen at start",
                 settings_.client_id, What());
    return true;
  }
  if (now >= next_wait_log_) {
    next_wait_log_ = now + std::chrono::seconds(10);
    spdlog::info("kafka {}: nothing left to read in its own partitions of {}; waiting for {} (committed "
                 "positions in the sink; read by other members of group {}, or not assigned yet)",
                 settings_.client_id, What(), waiting, settings_.group);
  }
  return false;
}

Status KafkaSource::CheckProgress() {
  if (!ctx_.until_caught_up || caught_up_) return Status::OK();
  if (EndOffsetsDeferred() && !end_floor_) {
    // Waiting for the word to take the ends is not standing still.
    last_progress_ = std::chrono::steady_clock::now();
    return Status::OK();
  }
  const auto stalled = std::chrono::steady_clock::now() - last_progress_;
  if (stalled < ctx_.catch_up_timeout) return Status::OK();
  if (EndOffsetsDeferred()) {
    return Status::Aborted("--until-caught-up gave up on " + What() + ": the last stable offsets did not reach " +
                           "the high watermarks of when the end was asked for within " +
                           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(stalled).count()) +
                           " s (catch_up_timeout): " + end_behind_ +
                           " (a transaction left open by a producer that died ends at its transaction timeout)" +
                           (last_error_.empty() ? std::string() : "; last error from Kafka: " + last_error_));
  }
  std::string own;
  for (int32_t p : assigned_) {
    auto end = end_offsets_.find(p);
    auto next = next_.find(p);
    if (end == end_offsets_.end() || next == next_.end() || next->second >= end->second) continue;
    if (!own.empty()) own += ", ";
    own += Label(p) + " at " + std::to_string(next->second) + " of " +
           std::to_string(end->second);
  }
  std::string msg = "--until-caught-up gave up on " + What() + ": nothing moved for " +
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
  RETURN_IF_ERROR(TakeDeferredEndOffsets());
  RETURN_IF_ERROR(CheckProgress());
  if (!missing_.empty() && now >= next_missing_check_) ListPartitions();
  while (out->size() < max_records) {
    if (ctx_.until_caught_up && CaughtUp()) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    // A record held back while the schema registry did not answer comes first.
    std::unique_ptr<RdKafka::Message> msg =
        held_ ? std::move(held_)
              : std::unique_ptr<RdKafka::Message>(
                    consumer_->consume(static_cast<int>(std::max<int64_t>(0, left.count()))));
    // The message's partition id (-1: none, or a topic without a slot).
    int32_t id = -1;
    if (msg->err() == RdKafka::ERR_NO_ERROR || msg->err() == RdKafka::ERR__PARTITION_EOF) {
      if (std::optional<int32_t> slot = slots_.Find(msg->topic_name())) id = KafkaPartitionId(*slot, msg->partition());
    }
    if (msg->err() == RdKafka::ERR_NO_ERROR && !assigned_.count(id)) {
      continue;  // fetched before a revoke: no longer ours
    }
    if (!callback_error_.ok()) {
      Status s = callback_error_;
      callback_error_ = Status::OK();
      return s;
    }
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR: {
        const int32_t p = id;
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
        auto next = next_.find(id);
        if (next != next_.end() && assigned_.count(id) && msg->offset() > next->second) {
          next->second = msg->offset();
          past_records_[id] = msg->offset();
          last_progress_ = std::chrono::steady_clock::now();
        }
        break;
      }
      case RdKafka::ERR__TIMED_OUT:
        return out->empty() ? (ctx_.until_caught_up && CaughtUp() ? PollState::kEnd : PollState::kIdle)
                            : PollState::kData;
      case RdKafka::ERR__AUTO_OFFSET_RESET:
        // auto.offset.reset=error, set only for an input read without a gap (Open): the records
        // at the fetch position are gone (retention deleted them while the run read behind).
        if (!settings_.gapless_remedy.empty()) {
          return Status::FailedPrecondition("kafka " + settings_.client_id + ": " +
                                            (msg->topic_name().empty()
                                                 ? std::string("a partition")
                                                 : msg->topic_name() + "[" + std::to_string(msg->partition()) + "]") +
                                            " (the pipeline's own data, which must be read without a gap): " +
                                            msg->errstr() + ": records were deleted before they were read. To fix "
                                            "it, " + settings_.gapless_remedy);
        }
        last_error_ = msg->errstr();
        transient = Status::Unavailable("kafka: " + msg->errstr());
        break;
      case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
      case RdKafka::ERR__UNKNOWN_TOPIC:
        // A subscribed topic that does not exist yet: warned about every kMissingTopicRecheck.
        // Just found, the consumer may still deliver an error it queued before.
        if (!missing_.empty() || (found_at_ != std::chrono::steady_clock::time_point() &&
                                  std::chrono::steady_clock::now() - found_at_ < kMissingTopicRecheck)) {
          break;
        }
        last_error_ = msg->errstr();
        transient = Status::Unavailable("kafka: " + msg->errstr());
        break;
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
  // With several topics, the topic of each slot read here, committed with its positions (and
  // compared on the next start).
  if (Several()) {
    std::set<int32_t> slots;
    for (int32_t p : assigned_) slots.insert(SlotOfId(p));
    for (int32_t slot : slots) out.emplace_back(kTopicSlotBase + slot, Fingerprint64(slots_.TopicOf(slot)));
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
    if (consumer_->get_watermark_offsets(TopicOf(p), KafkaPartitionOfId(p), &low, &high) !=
        RdKafka::ERR_NO_ERROR) {
      continue;
    }
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
    if (consumer_->get_watermark_offsets(TopicOf(p), KafkaPartitionOfId(p), &low, &high) !=
            RdKafka::ERR_NO_ERROR ||
        high < 0) {
      high = -1;
    }
    // No fetch answered yet (a re-run with nothing new that took its assignment, as a run that
    // claims tasks does, ends before one): the end offset read at start, which --until-caught-up
    // ends at.
    if (high < 0) {
      if (auto e = end_offsets_.find(p); e != end_offsets_.end()) high = e->second;
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
    if (assigned_.count(p)) {
      offsets.push_back(RdKafka::TopicPartition::create(TopicOf(p), KafkaPartitionOfId(p), offset));
    }
  }
  if (!offsets.empty()) consumer_->commitAsync(offsets);
  RdKafka::TopicPartition::destroy(offsets);
}

std::optional<Source::PartitionName> KafkaSource::NamePartition(int32_t id) const {
  if (!Several() || id < 0 || id >= kIdentityPartitionBase) return std::nullopt;
  const std::string& topic = TopicOf(id);
  if (topic.empty()) return std::nullopt;
  return PartitionName{topic, KafkaPartitionOfId(id)};
}

void KafkaSource::Close() {
  held_.reset();  // a message must not outlive its consumer
  if (!consumer_) return;
  // Checkpoint before close(), not only in the rebalance callback close() calls: with a
  // revocation already pending (a rebalance began after this member's last poll), librdkafka's
  // close() sends LeaveGroup first and serves the revocation after, so the next member would get
  // the partitions, and read them from the sink's older positions, while the checkpoint is still
  // being written (every record counted twice).
  if (!assigned_.empty() && ctx_.checkpoint_before_revoke) {
    const std::vector<int32_t> giving_up(assigned_.begin(), assigned_.end());
    Status s = ctx_.checkpoint_before_revoke(giving_up);
    if (!s.ok()) {
      spdlog::error("kafka {}: checkpoint before giving up partitions failed: {}", settings_.client_id,
                    s.ToString());
    }
    assigned_.clear();  // given up: the revocation close() serves has nothing left to checkpoint
  }
  consumer_->close();
  consumer_.reset();
}

}  // namespace sluice
