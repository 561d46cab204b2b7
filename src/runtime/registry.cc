#include "runtime/registry.h"

#include "connectors/cassandra/cassandra_sink.h"
#include "connectors/cassandra/cassandra_table_source.h"
#include "connectors/file/file_source.h"
#include "connectors/generator/generator_source.h"
#include "connectors/http/http_source.h"
#include "connectors/mysql/mysql_sink.h"
#include "connectors/mysql/mysql_table_source.h"
#include "connectors/ndjson/ndjson_sink.h"
#include "connectors/parquet/parquet_sink.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_source.h"
#include "connectors/sqlite/sqlite_sink.h"
#include "connectors/sqlite/sqlite_table_source.h"

namespace sluice {

ConnectorRegistry& ConnectorRegistry::Instance() {
  static ConnectorRegistry registry;
  return registry;
}

std::pair<std::string, std::string> SplitUri(const std::string& uri) {
  size_t colon = uri.find(':');
  if (colon == std::string::npos || colon == 0) return {"file", uri};
  std::string scheme = uri.substr(0, colon);
  for (char c : scheme) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-') return {"file", uri};
  }
  std::string rest = uri.substr(colon + 1);
  if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
  return {scheme, rest};
}

Result<std::vector<std::unique_ptr<Source>>> ConnectorRegistry::MakeSources(
    const SourceConfig& config, int max_instances) const {
  auto [scheme, rest] = SplitUri(config.uri);
  auto it = sources_.find(scheme);
  if (it == sources_.end()) {
    std::string known;
    for (const auto& [k, v] : sources_) known += (known.empty() ? "" : ", ") + k;
    return Status::InvalidArgument(config.options.Where("uri") + ": unknown source '" + scheme +
                                   ":' in " + config.uri + " (available: " + known + ")");
  }
  return it->second(config, max_instances);
}

Result<std::unique_ptr<Sink>> ConnectorRegistry::MakeSink(const SinkConfig& config) const {
  auto [scheme, rest] = SplitUri(config.uri);
  auto it = sinks_.find(scheme);
  if (it == sinks_.end()) {
    std::string known;
    for (const auto& [k, v] : sinks_) known += (known.empty() ? "" : ", ") + k;
    return Status::InvalidArgument(config.options.Where("uri") + ": unknown sink '" + scheme +
                                   ":' in " + config.uri + " (available: " + known + ")");
  }
  return it->second(config);
}

void RegisterBuiltins() {
  ConnectorRegistry& r = ConnectorRegistry::Instance();
  r.AddSource("file", FileSource::Make);
  r.AddSource("generator", GeneratorSource::Make);
  r.AddSource("http", HttpSource::Make);
  r.AddSource("https", HttpSource::Make);
  r.AddSource("kafka", KafkaSource::Make);
  r.AddSource("mysql", MysqlTableSource::Make);
  r.AddSource("sqlite", SqliteTableSource::Make);
  r.AddSink("sqlite", SqliteSink::Make);
  r.AddSink("mysql", MysqlSink::Make);
  r.AddSink("parquet", ParquetSink::Make);
  r.AddSource("cassandra", CassandraTableSource::Make);
  r.AddSink("cassandra", CassandraSink::Make);
  r.AddSink("kafka", KafkaSink::Make);
  r.AddSink("ndjson", NdjsonSink::MakeFile);
  r.AddSink("stdout", NdjsonSink::MakeStdout);
}

}  // namespace sluice
