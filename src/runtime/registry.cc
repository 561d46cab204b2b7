#include "runtime/registry.h"

#include "core/time.h"
#include "core/uri.h"

namespace sluice {
namespace {

template <typename Map>
std::string Known(const Map& map) {
  std::string known;
  for (const auto& [k, v] : map) known += (known.empty() ? "" : ", ") + k;
  return known;
}

/// "  source options  a = 1, b = 2 (default)\n", or "" when no option has a value.
std::string DescribeSection(const std::string& label, const std::string& uri, const Options& options,
                            const OptionTable& table) {
  std::map<std::string, std::string> query;  // options written in the URI (table sources)
  if (size_t q = uri.find('?'); q != std::string::npos) {
    std::string rest = uri.substr(q + 1);
    size_t start = 0;
    while (start < rest.size()) {
      size_t end = rest.find('&', start);
      if (end == std::string::npos) end = rest.size();
      const std::string pair = rest.substr(start, end - start);
      const size_t eq = pair.find('=');
      if (eq != std::string::npos) query[pair.substr(0, eq)] = pair.substr(eq + 1);
      start = end + 1;
    }
  }
  std::string items;
  auto add = [&](const std::string& item) { items += (items.empty() ? "" : ", ") + item; };
  for (const OptionSpec& spec : table.options) {
    if (spec.name.size() > 2 && spec.name.compare(spec.name.size() - 2, 2, ".*") == 0) {
      for (const std::string& key : options.KeysWithPrefix(spec.name.substr(0, spec.name.size() - 1))) {
        add(key + " (set)");
      }
      continue;
    }
    auto shown = [](const std::string& value) { return value.empty() ? std::string("\"\"") : value; };
    if (auto it = query.find(spec.name); it != query.end()) {
      add(spec.name + " = " + shown(it->second));
    } else if (options.Has(spec.name)) {
      add(spec.name + " = " + shown(options.GetString(spec.name)));
    } else if (!spec.default_value.empty()) {
      add(spec.name + " = " + spec.default_value + " (default)");
    } else if (!spec.default_note.empty()) {
      std::string note = spec.default_note;  // Markdown in the reference, plain text here
      std::erase(note, '`');
      add(spec.name + ": " + note + " (default)");
    }
  }
  return items.empty() ? "" : "  " + label + " options  " + items + "\n";
}

}  // namespace

std::string ConnectorRegistry::DescribeOptions(const PipelineConfig& config) const {
  std::string out;
  auto find = [](const std::map<std::string, OptionTable>& tables, const std::string& uri) -> const OptionTable* {
    auto it = tables.find(SplitUri(uri).first);
    return it == tables.end() ? nullptr : &it->second;
  };
  if (const OptionTable* t = find(source_options_, config.source.uri)) {
    out += DescribeSection("source", config.source.uri, config.source.options, *t);
  }
  for (const auto& [name, dim] : config.dimensions) {
    if (const OptionTable* t = find(dimension_options_, dim.uri)) {
      out += DescribeSection("dimension " + name, dim.uri, dim.options, *t);
    }
  }
  if (const OptionTable* t = find(sink_options_, config.sink.uri)) {
    out += DescribeSection("sink", config.sink.uri, config.sink.options, *t);
  }
  return out;
}

void ConnectorRegistry::DeclarePathOptions(const OptionTable& table) {
  for (const OptionSpec& o : table.options) {
    if (o.type == OptionType::kPath) DeclarePathOption(o.name);
  }
}

void ConnectorRegistry::AddDimension(const std::string& scheme, DimensionFactory factory, OptionTable options) {
  DeclarePathOptions(options);
  OptionSpec refresh;
  refresh.name = "refresh";
  refresh.type = OptionType::kDuration;
  refresh.default_value = FormatDouble(factory.default_refresh_micros / 1e6) + "s";
  refresh.help = "How often the dimension is brought up to date; 0 never after the first load.";
  options.options.insert(options.options.begin(), std::move(refresh));
  dimension_options_[scheme] = std::move(options);
  dimensions_[scheme] = std::move(factory);
}

std::vector<ConnectorDoc> ConnectorRegistry::Reference() const {
  std::vector<ConnectorDoc> out;
  for (const auto& [scheme, table] : source_options_) out.push_back({"source", scheme, &table});
  for (const auto& [scheme, table] : sink_options_) out.push_back({"sink", scheme, &table});
  for (const auto& [scheme, table] : dimension_options_) out.push_back({"dimension", scheme, &table});
  return out;
}

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
  OptionReader options(config.options, dimension_options_.at(scheme), "dimension." + config.name);
  ASSIGN_OR_RETURN(refresh.interval_micros, options.Duration("refresh", it->second.default_refresh_micros));
  if (refresh.interval_micros < 0) {
    return Status::InvalidArgument(options.Where("refresh") + ": refresh must not be negative");
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
