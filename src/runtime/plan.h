#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "core/schema.h"
#include "core/status.h"
#include "expr/expr.h"
#include "operators/aggregate_spec.h"
#include "operators/dimension.h"

namespace sluice {

/// One compiled [[step]].
struct CompiledStep {
  StepConfig::Kind kind = StepConfig::Kind::kLet;
  std::unique_ptr<expr::Expr> expr;  ///< let value, predicate, or lookup key
  size_t slot = 0;                    ///< kLet: the slot it writes
  std::string reason;
  // kLookup
  std::string dimension;
  Dimension* dim = nullptr;  ///< owned by Plan::dimensions
  std::vector<std::pair<size_t, size_t>> lookup_slots;  ///< (row slot, dimension column)
  std::vector<Value> defaults;                          ///< per lookup_slots entry
  std::string on_missing;
  int64_t hold_micros = 0;  ///< on_missing = "hold"
  std::string then;         ///< on_missing = "hold": the policy once the hold expires
};

/// One compiled select column (pipelines without an aggregate).
struct SelectColumn {
  std::string name;
  std::unique_ptr<expr::Expr> expr;
};

/// A pipeline compiled against its schema: what every worker runs. Immutable once built and
/// shared read-only by the workers (dimension snapshots are swapped atomically: Dimension).
struct Plan {
  const PipelineConfig* config = nullptr;
  Schema input;   ///< the decoded fields, slots [0, input.size())
  Schema schema;  ///< the working row: input, _source, _partition, _offset, derived fields
  size_t source_slot = 0, partition_slot = 0, offset_slot = 0;
  std::vector<CompiledStep> steps;
  std::unique_ptr<AggregateSpec> aggregate;
  std::vector<SelectColumn> select;
  std::map<std::string, std::shared_ptr<Dimension>> dimensions;
  bool holds = false;  ///< a lookup holds records whose key is not known yet

  /// Returns the layout of what the sink receives as rows (append mode or select).
  Schema OutputSchema() const;
};

/// Compiles `config`: loads dimensions, type-checks every expression. Errors point at file:line.
Result<std::unique_ptr<Plan>> BuildPlan(const PipelineConfig& config);

/// Describes the plan for `sluice validate`.
std::string DescribePlan(const Plan& plan);

}  // namespace sluice
