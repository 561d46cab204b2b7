#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "expr/expr.h"

namespace sluice {

/// One `key = value` setting of a connector, kept as text with where it was written, so the
/// connector that consumes it can report type errors at file:line.
struct Option {
  std::string text;
  expr::SourceLocation where;
};

/// Connector settings, consumed by the connector's factory. Options nobody consumed are
/// rejected as unknown keys (see RejectUnconsumed).
class Options {
 public:
  void Set(std::string key, Option value) { values_[std::move(key)] = std::move(value); }
  bool Has(const std::string& key) const { return values_.count(key) > 0; }
  /// Returns the keys that start with `prefix`, in order.
  std::vector<std::string> KeysWithPrefix(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_) {
      if (k.rfind(prefix, 0) == 0) out.push_back(k);
    }
    return out;
  }

  /// Returns the text of `key` (empty when unset or set to an empty string) and marks it used.
  std::string GetString(const std::string& key, const std::string& fallback = "") const;
  /// Parses `key` as an integer; unset or empty gives `fallback`.
  Result<int64_t> GetInt(const std::string& key, int64_t fallback) const;
  Result<double> GetDouble(const std::string& key, double fallback) const;
  Result<bool> GetBool(const std::string& key, bool fallback) const;
  /// Parses `key` as a duration ("10s", "1h", "250ms").
  Result<int64_t> GetDurationMicros(const std::string& key, int64_t fallback) const;
  /// Returns "file:line:col" of `key`, or the section location when unset.
  std::string Where(const std::string& key) const;

  /// Fails with "file:line: unknown key 'x' in [section]" for the first option never read;
  /// names the closest of `known` as a did-you-mean hint.
  Status RejectUnconsumed(const std::string& section, const std::vector<std::string>& known = {}) const;

  expr::SourceLocation section_location;

 private:
  std::map<std::string, Option> values_;
  mutable std::map<std::string, bool> consumed_;
};

struct SourceConfig {
  std::string pipeline;  ///< the pipeline's name (the default consumer group)
  std::string name;
  std::string uri;
  std::vector<Field> fields;
  /// `keyed_by`: group-key columns of the [aggregate] whose values decide a record's partition
  /// (every record with equal values of them is in one partition). Empty: not declared. The
  /// planner checks that each names a key of the aggregate that does not read the window.
  std::vector<std::string> keyed_by;
  std::vector<expr::SourceLocation> keyed_by_where;  ///< where each entry is written
  expr::SourceLocation keyed_by_list_where;          ///< where the list is written
  /// `repartition_partitions`: the partition count of the internal topic
  /// `<pipeline>-repartition` (0: not set, the source's partition count). The planner refuses
  /// it for a pipeline that does not repartition (runtime/repartition_plan.h).
  int32_t repartition_partitions = 0;
  expr::SourceLocation repartition_partitions_where;  ///< where it is written
  /// `repartition`: false keeps a pipeline that would repartition in one stage (exact over one
  /// process only), so a pipeline that ran in one stage into a sink can go on doing so. The
  /// planner refuses the key where nothing repartitions anyway (runtime/repartition_plan.h).
  bool repartition = true;
  bool repartition_set = false;                // written in the file
  expr::SourceLocation repartition_where;      ///< where it is written
  Options options;  ///< everything else under [source], for the connector
};

struct DimensionConfig {
  std::string name;
  std::string uri;
  expr::SourceLocation uri_where;  ///< where `uri` is written, for errors loading it
  std::string key;
  std::vector<Field> fields;
  Options options;
};

struct StepConfig {
  enum class Kind { kLet, kIgnoreIf, kDeadLetterIf, kFilter, kLookup };
  Kind kind = Kind::kLet;
  std::string target;  ///< kLet: the field it sets; kLookup: the dimension name
  std::string expr;    ///< the expression text (kLookup: the key expression)
  expr::SourceLocation where;
  std::string reason;
  // kLookup only.
  std::vector<std::string> fields;
  std::string on_missing = "default";  ///< default | drop | dead_letter | hold
  /// on_missing = "hold": keep retrying the record this long (a late-arriving dimension row),
  /// then apply `then`.
  int64_t hold_micros = 30'000'000;
  std::string then = "dead_letter";  ///< default | drop | dead_letter
  std::map<std::string, std::string> defaults;  ///< field -> literal expression text
};

/// One output column of an aggregation, written as "name = expr" (keys) or
/// "name = [round(]fn(arg)[, n)] [where cond] [default literal]" (metrics).
struct ColumnConfig {
  std::string name;
  std::string text;  ///< the right-hand side
  expr::SourceLocation where;  ///< location of the right-hand side's first character
};

/// The most windows a record of a hopping aggregate may fall into (window / slide).
inline constexpr int64_t kMaxWindowsPerRecord = 1000;

struct AggregateConfig {
  std::string time_expr;
  expr::SourceLocation time_where;
  int64_t window_micros = 0;
  int64_t slide_micros = 0;  ///< 0: tumbling (slide = window)
  std::string mode = "update";  ///< update | append
  std::vector<std::string> window_columns = {"window_start", "window_end"};
  std::vector<ColumnConfig> keys;
  std::vector<ColumnConfig> metrics;
  int64_t watermark_delay_micros = 10 * 1'000'000;
  int64_t allowed_lateness_micros = -1;  ///< -1: never late (update mode default)
  int64_t idle_timeout_micros = 30 * 1'000'000;
  expr::SourceLocation where;
};

struct SinkConfig {
  std::string uri;
  std::string table;
  /// `table` is the name of the SQL view or table that declares the sink, not a setting: a
  /// sink without tables (ndjson) ignores it.
  bool table_from_name = false;
  Options options;
};

/// One variable a pipeline file references and where its value came from.
struct VariableUse {
  enum class Origin { kValues, kEnvironment, kDefault };
  std::string name;
  std::string value;
  Origin origin = Origin::kDefault;
  std::string origin_label;    ///< "--var", "environment" or "default"
  expr::SourceLocation where;  ///< its first reference in the file
};

/// A parsed, variable-substituted pipeline file. Expressions are still text here; the planner
/// compiles them against the schema.
struct PipelineConfig {
  std::string file;
  std::string language = "toml";  ///< the language the file is written in: toml | sql
  std::string name;
  int64_t checkpoint_interval_micros = 1'000'000;
  int workers = 0;  ///< 0: one per source partition, at most the number of cores
  /// A worker stops consuming while it holds more than this many pending groups, rows or dead
  /// letters that the sink has not taken yet (a slow or unreachable sink pauses the source).
  int64_t max_pending = 2'000'000;
  /// --until-caught-up gives up (exit 1) after this long without progress: no record read, no
  /// committed position of the topic moving, or every read failing.
  int64_t catch_up_timeout_micros = 300'000'000;
  /// After a stop (SIGTERM, SIGINT), draining and the final checkpoint may take this long; then
  /// the run ends with an error without committing (the next run replays from the last commit).
  int64_t shutdown_timeout_micros = 30'000'000;
  SourceConfig source;
  std::map<std::string, DimensionConfig> dimensions;
  std::vector<StepConfig> steps;
  std::optional<AggregateConfig> aggregate;
  std::vector<ColumnConfig> select;  ///< without [aggregate]: the output columns
  SinkConfig sink;
  /// Where dead letters go ([dead_letter] to): kDefault is the sink's own store when the sink
  /// has one, else an NDJSON file at a default path; kFile is the file `dead_letter_path`.
  enum class DeadLetterStore { kDefault, kSink, kFile };
  DeadLetterStore dead_letter_store = DeadLetterStore::kDefault;
  std::string dead_letter_path;   ///< kFile: the NDJSON file
  std::string dead_letter_where;  ///< file:line:column of the setting, for errors
  /// Every ${NAME} the file references, in order of first use, with the value it got.
  std::vector<VariableUse> variables;
};

/// Supplies ${NAME} values: --var first, then the environment.
struct Variables {
  std::map<std::string, std::string> values;
  bool use_environment = true;
  /// How `values` are named when a variable's origin is reported ("--var"; the demo sets its own).
  std::string values_label = "--var";
  /// Loading fails when a name in `values` is not referenced by the file (a misspelt --var must
  /// not leave the file's default in charge).
  bool reject_unused = true;
  std::optional<std::string> Lookup(const std::string& name) const;
};

/// Renders a variable for `validate` and `run`: NAME = "value" (origin).
std::string DescribeVariable(const VariableUse& v);

/// Returns the name in `candidates` closest to `name` by edit distance, or "" when none is close
/// (for "did you mean" hints).
std::string ClosestName(const std::string& name, const std::vector<std::string>& candidates);

/// Replaces ${NAME} and ${NAME:-default} in `text`. Fails naming the variable when it is unset
/// and has no default.
Result<std::string> SubstituteVariables(const std::string& text, const Variables& vars);

/// Declares `name` a path option: a relative value of an option of that name written in a
/// pipeline file resolves against the file's folder. The connector registry declares the path
/// options (OptionType::kPath) of every table it registers, before any pipeline file is read;
/// afterwards the names are only read, from any thread.
void DeclarePathOption(const std::string& name);

/// Reads and validates a pipeline file. Errors carry "file:line:col: ...".
///
/// Relative paths written in the file (a file, sqlite: or parquet: URI, a dead-letter path, the
/// connectors' path options, declared with DeclarePathOption: jobs, campaigns, password_file,
/// ca_file), including the defaults of ${NAME:-default}, resolve against the directory of the
/// file; a path that comes from a variable's value (--var or the environment) stays relative to
/// the working directory.
Result<PipelineConfig> LoadPipelineConfig(const std::string& path, const Variables& vars);
/// Same, from text (for tests); `file` names it in errors.
Result<PipelineConfig> ParsePipelineConfig(const std::string& text, const std::string& file,
                                           const Variables& vars);

}  // namespace sluice
