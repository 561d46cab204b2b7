#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "operators/dimension.h"
#include "runtime/sink.h"
#include "runtime/source.h"

namespace sluice {

/// What a dimension connector provides: the first snapshot, and a poller that follows changes.
///
/// Lifecycle: `load` -> `poller` -> DimensionPoller::Poll()* -> the poller's destruction. `load`
/// runs while the plan is built (BuildPlan, on the thread that makes the runner; `sluice
/// validate` stops there), `poller` when the run starts (Runner::Start, on the coordinator's
/// thread, before any worker starts); the poller then runs on the refresher's thread (see
/// DimensionPoller) and is destroyed when the run ends. Each is called once per dimension and
/// run, never concurrently with the other; both may block while they read the source, and
/// report a source they cannot read as an error (BuildPlan adds where the dimension is
/// declared).
struct DimensionFactory {
  /// Loads the first snapshot (or an empty table that `poller` fills at start). `refresh` holds
  /// the interval already read from `refresh`; the connector reads its own refresh options.
  std::function<Result<std::shared_ptr<Dimension>>(const DimensionConfig&, DimensionRefresh)> load;
  /// Creates the poller that keeps the dimension current; returns null when the dimension has
  /// nothing to follow. Unset: the dimension never changes.
  std::function<Result<std::unique_ptr<DimensionPoller>>(std::shared_ptr<Dimension>)> poller;
  /// The refresh interval when the pipeline sets none (0: never).
  int64_t default_refresh_micros = 5'000'000;
  /// The poller fills the table: it is made (and catches up) at start even when refresh is 0.
  bool fills_at_start = false;
};

/// What the engine knows of a sink kind besides its factory.
struct SinkTraits {
  /// The URI's rest is a local file (an SQLite database): the sink is named by its absolute
  /// path, and a dead-letter file given no path goes beside it.
  bool local_file = false;
};

/// Checks, before `sluice verify` re-reads a source, that its input is still what the sink's
/// committed positions describe (a file's identity). Given the URI's rest, the committed
/// positions by partition and the identity rows (partitions kIdentityPartitionBase and up).
using InputCheck = std::function<Status(const std::string& rest, const std::map<int32_t, int64_t>& positions,
                                        const std::map<int32_t, int64_t>& identity)>;

/// Maps URI schemes ("file", "kafka", "sqlite", ...) to connector factories: sources (streams
/// and tables read incrementally), sinks and dimensions.
///
/// The runtime never names a connector: each connector folder registers its factories through
/// one function (RegisterKafka, ...), and the list of those functions lives above the runtime
/// (src/connectors/builtin.cc). Filled once by RegisterBuiltins() before any pipeline starts;
/// read-only afterwards, from any thread.
class ConnectorRegistry {
 public:
  static ConnectorRegistry& Instance();

  /// Registers a source, sink or dimension with the table of the options its factory reads
  /// (docs/connectors.md and `sluice connectors` list them).
  /// The table's path options are declared to the pipeline-file reader (DeclarePathOption).
  void AddSource(const std::string& scheme, SourceFactory factory, OptionTable options = {}) {
    DeclarePathOptions(options);
    sources_[scheme] = std::move(factory);
    source_options_[scheme] = std::move(options);
  }
  void AddSink(const std::string& scheme, SinkFactory factory, SinkTraits traits = {}, OptionTable options = {}) {
    DeclarePathOptions(options);
    sinks_[scheme] = Sink_{std::move(factory), traits};
    sink_options_[scheme] = std::move(options);
  }
  /// `options` need not declare `refresh`, which the registry reads for every dimension.
  void AddDimension(const std::string& scheme, DimensionFactory factory, OptionTable options = {});
  /// Declares the options of type kPath of `table` to the pipeline-file reader.
  static void DeclarePathOptions(const OptionTable& table);
  void AddInputCheck(const std::string& scheme, InputCheck check) { input_checks_[scheme] = std::move(check); }
  /// Runs the input check of the scheme `uri` names (OK when it registered none).
  Status CheckInput(const std::string& uri, const std::map<int32_t, int64_t>& positions,
                    const std::map<int32_t, int64_t>& identity) const;
  /// Names [source] options that belong to another source kind and may stay in a pipeline file
  /// whose source a variable switches (the generator's `profile`, `rate`, ...). Every source
  /// treats them as read; a misspelled option is still reported.
  void AddSwitchableSourceOptions(const std::vector<std::string>& keys) {
    switchable_.insert(switchable_.end(), keys.begin(), keys.end());
  }

  /// Creates source instances for `config.uri` (a path without a scheme means "file").
  Result<std::vector<std::unique_ptr<Source>>> MakeSources(const SourceConfig& config,
                                                           int max_instances) const;
  Result<std::unique_ptr<Sink>> MakeSink(const SinkConfig& config) const;
  /// The traits of the sink kind `uri` names (defaults for an unknown scheme).
  SinkTraits SinkTraitsFor(const std::string& uri) const;

  /// Loads a dimension from the location `config.uri` names, with its refresh settings.
  Result<std::shared_ptr<Dimension>> LoadDimension(const DimensionConfig& config) const;
  /// Creates the poller that keeps `dim` current, or null when it needs none (refresh off and
  /// nothing to fill at start, or nothing to follow).
  Result<std::unique_ptr<DimensionPoller>> MakeDimensionPoller(std::shared_ptr<Dimension> dim) const;

  /// Every registered connector kind with its option table, sources first, by scheme.
  std::vector<ConnectorDoc> Reference() const;
  /// Describes, for `sluice validate`, the options of the source, dimensions and sink `config`
  /// uses, one line each: every declared option that is set (in the section or the URI's
  /// query) or has a default, the default marked. Values of pass-through keys (kafka.*) are
  /// not shown, since they may hold credentials.
  std::string DescribeOptions(const PipelineConfig& config) const;

 private:
  struct Sink_ {
    SinkFactory factory;
    SinkTraits traits;
  };
  std::map<std::string, SourceFactory> sources_;
  std::map<std::string, Sink_> sinks_;
  std::map<std::string, DimensionFactory> dimensions_;
  std::map<std::string, OptionTable> source_options_;
  std::map<std::string, OptionTable> sink_options_;
  std::map<std::string, OptionTable> dimension_options_;
  std::map<std::string, InputCheck> input_checks_;
  std::vector<std::string> switchable_;
};

/// Registers every built-in connector (src/connectors/builtin.cc). Idempotent.
void RegisterBuiltins();

}  // namespace sluice
