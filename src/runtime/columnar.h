#pragma once

#include <string>
#include <vector>

#include "operators/aggregator.h"
#include "operators/column_filter.h"
#include "operators/decoder.h"
#include "runtime/plan.h"

namespace sluice {

/// Says why a plan cannot take the columnar path (a ColumnBatch decoded by the format's
/// ColumnarDecoder, its leading steps evaluated over the columns, then the other steps and the
/// aggregate per row as on the row path, or the aggregate from the columns when no step is
/// left; AggregateColumnsOf), or ""
/// when it can: NDJSON or CSV input, no lookup that holds records, and for NDJSON a flat field
/// list (no dotted path, no two fields reading one key).
std::string ColumnarIneligibility(const Plan& plan, const DecoderOptions& options);

/// The plan's leading steps that run over the columns (ApplyColumnSteps), and the columns the
/// batch needs for them besides the declared fields.
struct ColumnPrefix {
  std::vector<ColumnStep> steps;  ///< the plan's steps 0 .. steps.size()-1, in order
  /// The working-row slots past the declared fields that `let` steps set, with their types
  /// (ColumnBatch::SetDerived).
  std::vector<std::pair<size_t, Type>> derived;
  /// The type of the column each working-row slot has after the prefix (kNull: none).
  std::vector<Type> columns;
};

/// Compiles the plan's leading steps that can run over the columns, in order, up to the first
/// step that cannot: ignore_if / filter / dead_letter_if whose conditions ColumnCondition can
/// evaluate, `let`s of int64, timestamp or double values ColumnValue can compute into a column
/// (the declared field's own, or a derived one), and lookups whose key is a field with a column
/// (their fields become columns), each reading only columns (declared fields, or fields the
/// steps before it derived). The columnar path runs them before making rows and starts the row
/// steps after them.
ColumnPrefix ColumnStepPrefix(const Plan& plan);

/// Says where the plan's aggregate reads its inputs in a batch that ran `prefix`, when it can
/// read them all from the columns (Aggregator::AddColumns): the time a timestamp column, each
/// key a column or a key of the window alone, each metric's `where` a ColumnCondition and its
/// argument a column or `_source` (`source_kind`, the same for every record of a worker).
/// Returns null when it cannot, or when steps after the prefix run per row.
std::unique_ptr<AggregateColumns> AggregateColumnsOf(const Plan& plan, const ColumnPrefix& prefix,
                                                     const Value& source_kind);

/// Reads SLUICE_COLUMNAR: "0" forces the row path, "1" the columnar path where eligible; unset
/// or anything else gives the default (kColumnarByDefault).
bool ColumnarWanted();

/// Whether eligible plans take the columnar path when SLUICE_COLUMNAR is not set.
inline constexpr bool kColumnarByDefault = true;

}  // namespace sluice
