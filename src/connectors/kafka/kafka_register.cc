#include "connectors/kafka/kafka_dimension.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_source.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

/// A Kafka dimension starts empty: its poller reads the changelog topic to its end at start,
/// before any lookup.
Result<std::shared_ptr<Dimension>> LoadKafkaDimension(const DimensionConfig& config, DimensionRefresh refresh) {
  RETURN_IF_ERROR(CheckKafkaDimensionOptions(config));
  RETURN_IF_ERROR(OptionReader(config.options, KafkaDimensionOptions(), "dimension." + config.name).Finish());
  Schema schema(config.fields);
  auto key_index = schema.IndexOf(config.key);
  if (!key_index) {
    return Status::InvalidArgument("dimension " + config.name + ": key '" + config.key +
                                   "' is not one of its fields");
  }
  auto empty = std::make_shared<DimensionTable>(config.name, schema, *key_index);
  return std::make_shared<Dimension>(config, std::move(refresh), std::move(empty));
}

}  // namespace

/// kafka://HOST:PORT/TOPIC, as a source, a sink and a change-data-capture dimension.
void RegisterKafka(ConnectorRegistry& registry) {
  registry.AddSource("kafka", KafkaSource::Make, KafkaSourceOptions());
  registry.AddSink("kafka", KafkaSink::Make, {}, KafkaSinkOptions());
  DimensionFactory dimension;
  dimension.load = LoadKafkaDimension;
  dimension.poller = MakeKafkaDimensionPoller;
  dimension.default_refresh_micros = 1'000'000;
  dimension.fills_at_start = true;
  registry.AddDimension("kafka", std::move(dimension), KafkaDimensionOptions());
}

}  // namespace sluice
