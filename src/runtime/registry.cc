#include "runtime/registry.h"

#include "core/uri.h"

namespace sluice {
namespace {

template <typename Map>
std::string Known(const Map& map) {
  std::string known;
  for (const auto& [k, v] : map) known += (known.empty() ? "" : ", ") + k;
  return known;
}

}  // namespace

ConnectorRegistry& ConnectorRegistry::Instance() {
  static ConnectorRegistry registry;
  return registry;
}

Result<std::vector<std::unique_ptr<Source>>> ConnectorRegistry::MakeSources(
    const SourceConfig& config, int max_instances) const {
  auto [scheme, rest] = SplitUri(config.uri);
  auto it = sources_.find(scheme);
  if (it == sources_.end()) {
    return Status::InvalidArgument(config.options.Where("uri") + ": unknown source '" + scheme +
                                   ":' in " + config.uri + " (available: " + Known(sources_) + ")");
  }
  for (const std::string& key : switchable_) config.options.GetString(key);
  return it->second(config, max_instances);
}

Result<std::unique_ptr<Sink>> ConnectorRegistry::MakeSink(const SinkConfig& config) const {
  auto [scheme, rest] = SplitUri(config.uri);
  auto it = sinks_.find(scheme);
  if (it == sinks_.end()) {
    return Status::InvalidArgument(config.options.Where("uri") + ": unknown sink '" + scheme +
                                   ":' in " + config.uri + " (available: " + Known(sinks_) + ")");
  }
  return it->second.factory(config);
}

SinkTraits ConnectorRegistry::SinkTraitsFor(const std::string& uri) const {
  auto it = sinks_.find(SplitUri(uri).first);
  return it == sinks_.end() ? SinkTraits{} : it->second.traits;
}

Status ConnectorRegistry::CheckInput(const std::string& uri, const std::map<int32_t, int64_t>& positions,
                                     const std::map<int32_t, int64_t>& identity) const {
  auto [scheme, rest] = SplitUri(uri);
  auto it = input_checks_.find(scheme);
  if (it == input_checks_.end()) return Status::OK();
  return it->second(rest, positions, identity);
}

Result<std::shared_ptr<Dimension>> ConnectorRegistry::LoadDimension(const DimensionConfig& config) const {
  const std::string scheme = SplitUri(config.uri).first;
  auto it = dimensions_.find(scheme);
  if (it == dimensions_.end()) {
    return Status::InvalidArgument("dimension " + config.name + ": unsupported uri '" + config.uri +
                                   "' (dimensions read: " + Known(dimensions_) +
                                   "; a path without a scheme is a CSV file)");
  }
  DimensionRefresh refresh;
  ASSIGN_OR_RETURN(refresh.interval_micros,
                   config.options.GetDurationMicros("refresh", it->second.default_refresh_micros));
  if (refresh.interval_micros < 0) {
    return Status::InvalidArgument(config.options.Where("refresh") + ": refresh must not be negative");
  }
  return it->second.load(config, std::move(refresh));
}

Result<std::unique_ptr<DimensionPoller>> ConnectorRegistry::MakeDimensionPoller(
    std::shared_ptr<Dimension> dim) const {
  auto it = dimensions_.find(SplitUri(dim->config().uri).first);
  if (it == dimensions_.end() || !it->second.poller) return std::unique_ptr<DimensionPoller>();
  if (dim->refresh().interval_micros <= 0 && !it->second.fills_at_start) {
    return std::unique_ptr<DimensionPoller>();
  }
  return it->second.poller(std::move(dim));
}

}  // namespace sluice
