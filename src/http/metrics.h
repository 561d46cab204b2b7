#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/process_stats.h"
#include "runtime/sink_inventory.h"
#include "runtime/stats.h"

namespace sluice::http {

/// The names that label a pipeline's series (they do not change while it runs).
struct MetricsInfo {
  std::string pipeline;
  std::string source;  ///< the [source] name
  std::string sink;    ///< the sink table, or the URI scheme when it has none
  std::string version;
};

/// Writes the Prometheus text exposition format 0.0.4: each family once with its HELP and TYPE
/// lines, then its samples.
class PrometheusWriter {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

  /// Starts a family; `type` is counter, gauge, summary or untyped. A family started before (the
  /// same name: the series of another stage of the pipeline) takes the samples that follow
  /// after its own, so each family is still declared once, its samples together.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  /// Writes one sample of the current family; `suffix` is appended to its name (_sum, _count).
  void Sample(std::string_view name, const Labels& labels, double value);
  void Sample(std::string_view name, const Labels& labels, int64_t value);

  /// The text: the families in the order they were first started.
  std::string str() const;

  /// Escapes a label value: backslash, double quote and line feed.
  static std::string EscapeLabel(std::string_view v);
  /// Escapes HELP text: backslash and line feed.
  static std::string EscapeHelp(std::string_view v);
  /// Formats a sample value: integers exactly, NaN and infinities as Prometheus spells them.
  static std::string FormatValue(double v);

 private:
  void Begin(std::string_view name, const Labels& labels);
  /// Each family's text (HELP, TYPE, samples), in the order first started; samples before any
  /// family go to an unnamed first one.
  std::vector<std::pair<std::string, std::string>> families_;
  std::string* out_ = nullptr;  ///< the current family's text
};

/// Renders every sluice metric for one pipeline plus the process_* metrics. Series whose value
/// is unknown (watermark before it is set, lag a source does not report) are left out.
/// `stored`: the dead letters in the store (sluice_dead_letters_stored), when known.
std::string RenderMetrics(const PipelineSnapshot& s, const MetricsInfo& info,
                          const ProcessStats& process, int64_t now_micros,
                          const StoredDeadLetterCounts& stored = {});

/// One stage of a pipeline that runs as several in one process (a repartitioned pipeline:
/// stage one reads the source, stage two writes the sink).
struct MetricsStage {
  const PipelineSnapshot* snapshot = nullptr;
  MetricsInfo info;
  std::string stage;  ///< the `stage` label's value ("one", "two"); "": no such label
  StoredDeadLetterCounts stored;
};

/// Renders the metrics of several stages: every series of each stage as RenderMetrics writes it
/// for one, with the label `stage` added (none for a stage named ""), each family once with the
/// samples of every stage; sluice_build_info and the process_* metrics once.
std::string RenderMetrics(const std::vector<MetricsStage>& stages, const ProcessStats& process,
                          int64_t now_micros);

}  // namespace sluice::http
