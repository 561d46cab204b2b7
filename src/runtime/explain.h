#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "runtime/plan.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"

namespace sluice {

/// A pipeline's operator graph, for `sluice explain`: built from the compiled Plan (what every
/// worker runs) and the sink's own statement builders (SinkExplainer), never from the file's
/// text alone. The same structure serves every pipeline language: `language` says which one
/// the file was written in ("toml" today; SQL files compile to the same Plan).
struct PipelineExplanation {
  struct Column {
    std::string name;
    std::string type;
    std::string expr;  ///< what computes it ("" for a field read as it is)
  };
  struct Source {
    std::string name;
    std::string uri;
    std::string kind;    ///< the connector: file, kafka, http, generator, mysql, ...
    std::string format;  ///< csv, ndjson, json, avro, rows of a table, generated
    std::vector<Column> fields;  ///< the fields read (expr: the path in the record, if not the name)
  };
  struct Dimension {
    std::string name;
    std::string uri;
    std::string key;
    std::vector<Column> fields;
    int64_t rows = 0;                 ///< keys in the snapshot loaded now
    double refresh_seconds = 0;       ///< 0: loaded once
  };
  struct Step {
    int number = 0;
    /// derive (let), filter (keep if), ignore_if, dead_letter_if, lookup
    std::string kind;
    std::string target;  ///< derive: the field set; lookup: the dimension
    std::string type;    ///< derive: the type of the field
    std::string expr;    ///< the expression (lookup: the key)
    std::string reason;
    // lookup only
    std::vector<std::string> fields;
    std::string dimension_key;
    std::string on_missing;
    double hold_seconds = 0;  ///< on_missing = hold
    std::string then;         ///< on_missing = hold: after the hold
    std::vector<std::pair<std::string, std::string>> defaults;
  };
  struct Metric {
    std::string name;
    std::string function;  ///< count, sum, avg, min, max, last
    std::string argument;  ///< "" for count()
    std::string where;     ///< "" : every record
    std::string type;
    std::string text;      ///< as written
    /// What each group keeps for it between checkpoints and in the sink ("count", "sum of bid",
    /// "value and its event time (_company_id_at)").
    std::string state;
    std::vector<std::string> internal_columns;  ///< columns the sink keeps for exact merges
  };
  struct Aggregate {
    std::string time;  ///< the event-time expression
    std::string window = "tumbling";  ///< tumbling | hopping
    double window_seconds = 0;
    double slide_seconds = 0;  ///< distance between window starts (window_seconds when tumbling)
    int64_t windows_per_record = 1;  ///< window / slide: how many windows each record is in
    std::string mode;  ///< update | append
    double watermark_delay_seconds = 0;
    double idle_timeout_seconds = 0;
    double allowed_lateness_seconds = -1;  ///< -1: no record is late
    std::vector<std::string> window_columns;
    std::vector<Column> keys;
    std::vector<Metric> metrics;
    /// Where the engine's own state (open windows, watermarks, held records) goes: "" when it
    /// keeps none across checkpoints.
    std::string state_stored;
  };
  struct Sink {
    std::string uri;
    std::string kind;
    std::string table;
    std::vector<std::string> key;  ///< the output columns that identify a row
    SinkExplanation details;
    bool explained = false;  ///< the sink kind says what it runs (SinkExplainer)
  };

  /// Whether the pipeline repartitions through `<pipeline>-repartition` (DecideRepartition,
  /// runtime/repartition_plan.h) and why, as far as the file says.
  struct Repartition {
    bool would = false;  ///< when the source's topics have more than one partition in all
    std::string reason;  ///< RepartitionReasonName: append_unkeyed, keyed_by, update_mode, ...
    std::string why;     ///< the reason in words
    std::string topic;   ///< would: the internal topic
    int32_t partitions = 0;  ///< would: R as set ([source] repartition_partitions); 0: the source's count
    bool built = false;      ///< `sluice run` runs the two stages (false: one stage, as before)
  };

  std::string name;
  std::string file;
  std::string language = "toml";
  double checkpoint_interval_seconds = 0;
  Source source;
  std::vector<Dimension> dimensions;
  std::vector<Step> steps;
  std::optional<Aggregate> aggregate;
  std::vector<Column> select;  ///< without an aggregate: the output columns computed
  std::vector<Column> output;  ///< what the sink receives per row
  Sink sink;
  std::string dead_letters;  ///< where dead-lettered records go
  Repartition repartition;
  /// Why the engine keeps state across checkpoints ("mode = \"append\""), "" when it keeps none.
  std::string state_needed;
};

/// The context the runner gives the sink (Runner::Make checks the sink with the same).
SinkContext SinkContextFor(const PipelineConfig& config, const Plan& plan);

/// Builds the explanation of `plan`; `sink` is the pipeline's sink made by its factory and
/// never opened (null: facts of the configuration only). `dead_letters` says where dead
/// letters go (Runner::dead_letter_location()).
Result<PipelineExplanation> ExplainPipeline(const Plan& plan, ::sluice::Sink* sink,
                                            const std::string& dead_letters);

/// Renders the explanation for people: one block per operator, in the order records flow.
std::string FormatExplanation(const PipelineExplanation& e);
/// Renders the explanation as one JSON object (the same content).
std::string ExplanationJson(const PipelineExplanation& e);

}  // namespace sluice
