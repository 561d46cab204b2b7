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
#include "operators/step.h"

namespace sluice {

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
  /// The [[step]]s in order, each an operator object (operators/step.h).
  std::vector<std::unique_ptr<Step>> steps;
  std::unique_ptr<AggregateSpec> aggregate;
  std::vector<SelectColumn> select;
  DimensionMap dimensions;
  bool holds = false;  ///< a lookup holds records whose key is not known yet

  /// Returns the layout of what the sink receives as rows (append mode or select).
  Schema OutputSchema() const;
};

/// Compiles `config`: loads dimensions, type-checks every expression. Errors point at file:line.
Result<std::unique_ptr<Plan>> BuildPlan(const PipelineConfig& config);

/// Describes the plan for `sluice validate`.
std::string DescribePlan(const Plan& plan);

}  // namespace sluice
