#include "connectors/kafka/kafka_dimension.h"

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <thread>

#include "connectors/kafka/cdc_record.h"
#include "core/time.h"
#include "connectors/kafka/kafka_uri.h"
#include "connectors/kafka/schema_registry.h"
#include "operators/decoder.h"
#include "runtime/dimension_refresh.h"
#include "core/uri.h"

namespace sluice {

class KafkaDimensionPoller : public DimensionPoller {
 public:
  KafkaDimensionPoller(std::shared_ptr<Dimension> dim, KafkaUri uri, bool debezium, bool protobuf,
                       std::shared_ptr<AvroSchemaCache> registry, int64_t snapshot_timeout)
      : dim_(std::move(dim)),
        uri_(std::move(uri)),
        debezium_(debezium),
        protobuf_(protobuf),
        registry_(std::move(registry)),
        snapshot_timeout_(snapshot_timeout) {}

  ~KafkaDimensionPoller() override {
    if (consumer_) consumer_->close();
  }

  Status Open() {
    auto table = dim_->snapshot();
    key_index_ = table->key_index();
    if (registry_ && protobuf_) {
      ASSIGN_OR_RETURN(cdc_, ChangeRecordDecoder::MakeProtobuf(table->fields(), key_index_, registry_));
    } else if (registry_) {
      ASSIGN_OR_RETURN(cdc_, ChangeRecordDecoder::MakeAvro(table->fields(), key_index_, registry_));
    } else {
      ASSIGN_OR_RETURN(cdc_, ChangeRecordDecoder::Make(table->fields(), key_index_, debezium_));
    }
    // From the list of all topics: naming the topic could make the broker create it.
    auto topics = KafkaTopicList(uri_.brokers, 5000);
    if (!topics.ok()) {
      return Status::Unavailable("dimension " + dim_->name() + ": topic " + uri_.topic + " on " + uri_.brokers +
                                 " is not reachable: " + topics.status().message());
    }
    auto found = topics->find(uri_.topic);
    if (found == topics->end() || found->second <= 0) {
      return Status::FailedPrecondition("dimension " + dim_->name() + ": " +
                                        MissingKafkaTopic(uri_.topic, uri_.brokers, *topics));
    }
    const int partitions = found->second;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    RETURN_IF_ERROR(SetKafkaConf(conf.get(), "bootstrap.servers", uri_.brokers));
    // Partitions are assigned, not subscribed: the group id is required but never joined.
    RETURN_IF_ERROR(SetKafkaConf(conf.get(), "group.id", "sluice-dimension-" + dim_->name()));
    RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.auto.commit", "false"));
    RETURN_IF_ERROR(SetKafkaConf(conf.get(), "enable.partition.eof", "false"));
    RETURN_IF_ERROR(SetKafkaConf(conf.get(), "log_level", "4"));
    RETURN_IF_ERROR(SetKafkaConf(conf.get(), "allow.auto.create.topics", "false"));
    std::string err;
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) return Status::InvalidArgument("dimension " + dim_->name() + ": kafka consumer: " + err);
    std::vector<RdKafka::TopicPartition*> assignment;
    for (int p = 0; p < partitions; ++p) {
      assignment.push_back(RdKafka::TopicPartition::create(uri_.topic, p, RdKafka::Topic::OFFSET_BEGINNING));
    }
    RdKafka::ErrorCode rc = consumer_->assign(assignment);
    RdKafka::TopicPartition::destroy(assignment);
    if (rc != RdKafka::ERR_NO_ERROR) {
      return Status::Unavailable("dimension " + dim_->name() + ": assigning " + uri_.topic + ": " + RdKafka::err2str(rc));
    }
    partitions_ = partitions;
    return Status::OK();
  }

  /// Reads up to the end offsets as of now: the snapshot the pipeline starts with.
  Status CatchUp() {
    std::map<int32_t, int64_t> end;
    for (int32_t p = 0; p < partitions_; ++p) {
      int64_t low = 0, high = 0;
      RdKafka::ErrorCode rc = consumer_->query_watermark_offsets(uri_.topic, p, &low, &high, 10000);
      if (rc != RdKafka::ERR_NO_ERROR) {
        return Status::Unavailable("dimension " + dim_->name() + ": end offsets of " + uri_.topic + ": " +
                                   RdKafka::err2str(rc));
      }
      if (high > low) end[p] = high;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(snapshot_timeout_);
    auto next = std::make_shared<DimensionTable>(*dim_->snapshot());
    int64_t changes = 0, messages = 0;
    int64_t backoff_ms = 100;
    std::unique_ptr<RdKafka::Message> m;
    while (!end.empty()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return Status::Unavailable("dimension " + dim_->name() + ": reading " + uri_.topic +
                                   " to its end took longer than the snapshot timeout" +
                                   (registry_error_.empty() ? "" : " (last: " + registry_error_ + ")"));
      }
      if (!m) m.reset(consumer_->consume(200));
      if (m->err() == RdKafka::ERR__TIMED_OUT) {
        m.reset();
        continue;
      }
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        spdlog::warn("dimension {}: {}", dim_->name(), m->errstr());
        m.reset();
        continue;
      }
      // The writer schema first: a registry that does not answer holds the message back.
      if (Status s = EnsureSchema(*m); !s.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
        continue;
      }
      backoff_ms = 100;
      ++messages;
      changes += Apply(*m, next.get());
      auto it = end.find(m->partition());
      if (it != end.end() && m->offset() + 1 >= it->second) end.erase(it);
      m.reset();
    }
    dim_->Publish(std::move(next), changes, WallClockMicros());
    spdlog::info("dimension {}: {} keys from {} change records of {}", dim_->name(), dim_->stats().size,
                 messages, uri_.topic);
    return Status::OK();
  }

  Status Poll() override {
    std::shared_ptr<DimensionTable> next;
    int64_t changes = 0;
    for (int i = 0; i < 100000; ++i) {
      // A message held back while the registry did not answer comes first.
      std::unique_ptr<RdKafka::Message> m =
          pending_ ? std::move(pending_) : std::unique_ptr<RdKafka::Message>(consumer_->consume(i == 0 ? 100 : 0));
      if (m->err() == RdKafka::ERR__TIMED_OUT) break;
      if (m->err() != RdKafka::ERR_NO_ERROR) return Status::Unavailable(m->errstr());
      if (Status s = EnsureSchema(*m); !s.ok()) {
        // Publish what came before it; the refresher counts the failure and calls again.
        pending_ = std::move(m);
        if (next && changes > 0) dim_->Publish(std::move(next), changes, WallClockMicros());
        return s;
      }
      if (!next) next = std::make_shared<DimensionTable>(*dim_->snapshot());
      changes += Apply(*m, next.get());
      if (m->timestamp().type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) {
        dim_->SetLag(std::max<int64_t>(0, WallClockMicros() - m->timestamp().timestamp * 1000));
      }
    }
    if (next && changes > 0) dim_->Publish(std::move(next), changes, WallClockMicros());
    return Status::OK();
  }

 private:
  /// Formats avro and protobuf: makes sure the message's writer schema was asked of the registry
  /// (known, or known to be unknown). Fails (Unavailable) only when the registry cannot answer now.
  Status EnsureSchema(const RdKafka::Message& m) {
    if (!registry_) return Status::OK();
    std::optional<int32_t> id = ConfluentSchemaId(std::string_view(static_cast<const char*>(m.payload()), m.len()));
    if (!id) return Status::OK();
    Status s = registry_->Ensure(*id);
    if (!s.ok()) {
      registry_error_ = s.message();
      if (registry_waits_++ % 20 == 0) {
        spdlog::warn("dimension {}: waiting for the schema registry (schema id {}): {}", dim_->name(), *id,
                     s.message());
      }
      return Status::Unavailable("dimension " + dim_->name() + ": schema id " + std::to_string(*id) + ": " +
                                 s.message());
    }
    return Status::OK();
  }

  /// Applies one change record; returns 1 when it changed the table.
  int64_t Apply(const RdKafka::Message& m, DimensionTable* table) {
    std::string_view payload(static_cast<const char*>(m.payload()), m.len());
    Status s = cdc_->Decode(payload, &change_);
    if (!s.ok()) return Bad(s.message());
    switch (change_.kind) {
      case ChangeRecord::Kind::kNone:
        return 0;
      case ChangeRecord::Kind::kDelete:
        if (!table->Find(change_.key)) return 0;
        table->Erase(change_.key);
        return 1;
      case ChangeRecord::Kind::kUpsert: {
        const std::vector<Value>* old = table->Find(change_.row[key_index_]);
        if (old && *old == change_.row) return 0;
        table->Put(change_.row);
        return 1;
      }
    }
    return 0;
  }

  int64_t Bad(const std::string& why) {
    dim_->RecordRefreshError();
    if (bad_++ % 1000 == 0) {
      spdlog::warn("dimension {}: skipped a change record of {} ({} so far): {}", dim_->name(), uri_.topic,
                   bad_, why);
    }
    return 0;
  }

  std::shared_ptr<Dimension> dim_;
  KafkaUri uri_;
  bool debezium_;
  bool protobuf_;
  std::shared_ptr<AvroSchemaCache> registry_;  ///< formats avro and protobuf: the writer schemas
  int64_t snapshot_timeout_;
  int partitions_ = 0;
  size_t key_index_ = 0;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<ChangeRecordDecoder> cdc_;
  ChangeRecord change_;
  int64_t bad_ = 0;
  std::unique_ptr<RdKafka::Message> pending_;  ///< held back: its schema could not be fetched
  std::string registry_error_;
  int64_t registry_waits_ = 0;
};

const OptionTable& KafkaDimensionOptions() {
  static const OptionTable kTable = [] {
    OptionTable t{
      .uri = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC",
      .summary = "A change-data-capture topic, read to its end at start and then followed; a record "
                 "with a null value deletes its key.",
      .options = {
          {.name = "format",
           .default_value = "jdbc",
           .allowed = {"jdbc", "debezium", "avro", "protobuf"},
           .help = "`jdbc`: JSON rows, flat or in Kafka Connect's envelope; `debezium`: before/after/op "
                   "envelopes; `avro`, `protobuf`: either, in Avro or Protobuf (with `schema_registry`)."},
          {.name = "snapshot_timeout",
           .type = OptionType::kDuration,
           .default_value = "60s",
           .help = "How long reading the topic to its end at start may take."},
      }};
    for (OptionSpec& spec : SchemaRegistryOptions()) t.options.push_back(std::move(spec));
    return t;
  }();
  return kTable;
}

Status CheckKafkaDimensionOptions(const DimensionConfig& config) {
  OptionReader o(config.options, KafkaDimensionOptions(), "dimension." + config.name);
  const std::string format = o.String("format");
  if (format != "jdbc" && format != "debezium" && format != "avro" && format != "protobuf") {
    return Status::InvalidArgument(o.Where("format") + ": format must be \"jdbc\", \"debezium\", \"avro\" or " +
                                   "\"protobuf\", got '" + format + "'");
  }
  ASSIGN_OR_RETURN(int64_t timeout, o.Duration("snapshot_timeout"));
  (void)timeout;
  auto uri = ParseKafkaUri(SplitUri(config.uri).second);
  if (!uri.ok()) return Status::InvalidArgument(config.options.Where("uri") + ": " + uri.status().message());
  if (format == "avro" || format == "protobuf") {
    RETURN_IF_ERROR(ReadSchemaRegistrySettings(config.options, uri->topic).status());
  }
  return Status::OK();
}

Result<std::unique_ptr<DimensionPoller>> MakeKafkaDimensionPoller(std::shared_ptr<Dimension> dim) {
  const DimensionConfig& config = dim->config();
  ASSIGN_OR_RETURN(KafkaUri uri, ParseKafkaUri(SplitUri(config.uri).second));
  OptionReader o(config.options, KafkaDimensionOptions(), "dimension." + config.name);
  const std::string format = o.String("format");
  std::shared_ptr<AvroSchemaCache> schemas;
  if (format == "avro" || format == "protobuf") {
    ASSIGN_OR_RETURN(SchemaRegistrySettings registry, ReadSchemaRegistrySettings(config.options, uri.topic));
    schemas = format == "avro" ? MakeRegistrySchemaCache(registry) : MakeRegistryProtobufSchemaCache(registry);
  }
  ASSIGN_OR_RETURN(int64_t timeout, o.Duration("snapshot_timeout"));
  auto poller = std::make_unique<KafkaDimensionPoller>(std::move(dim), std::move(uri), format == "debezium",
                                                       format == "protobuf", std::move(schemas), timeout);
  RETURN_IF_ERROR(poller->Open());
  RETURN_IF_ERROR(poller->CatchUp());
  return std::unique_ptr<DimensionPoller>(std::move(poller));
}

}  // namespace sluice
