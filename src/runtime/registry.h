#pragma once

#include <map>
#include <string>

#include "runtime/sink.h"
#include "runtime/source.h"

namespace sluice {

/// Maps URI schemes ("file", "generator", "sqlite", ...) to connector factories.
///
/// Filled once by RegisterBuiltins() before any pipeline starts; read-only afterwards.
class ConnectorRegistry {
 public:
  static ConnectorRegistry& Instance();

  void AddSource(const std::string& scheme, SourceFactory factory) { sources_[scheme] = std::move(factory); }
  void AddSink(const std::string& scheme, SinkFactory factory) { sinks_[scheme] = std::move(factory); }

  /// Creates source instances for `config.uri` (a path without a scheme means "file").
  Result<std::vector<std::unique_ptr<Source>>> MakeSources(const SourceConfig& config,
                                                           int max_instances) const;
  Result<std::unique_ptr<Sink>> MakeSink(const SinkConfig& config) const;

 private:
  std::map<std::string, SourceFactory> sources_;
  std::map<std::string, SinkFactory> sinks_;
};

/// Registers every built-in connector. Idempotent.
void RegisterBuiltins();

/// Splits "scheme:rest" or "scheme://rest"; a bare path has scheme "file".
std::pair<std::string, std::string> SplitUri(const std::string& uri);

}  // namespace sluice
