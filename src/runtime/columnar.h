#pragma once

#include <string>
#include <vector>

#include "operators/column_filter.h"
#include "operators/decoder.h"
#include "runtime/plan.h"

namespace sluice {

/// Says why a plan cannot take the columnar path (a ColumnBatch decoded by the format's
/// ColumnarDecoder, its leading filters evaluated over the columns, then the other steps
/// and the aggregate per row as on the row path), or ""
/// when it can: NDJSON or CSV input, no lookup that holds records, and for NDJSON a flat field
/// list (no dotted path, no two fields reading one key).
std::string ColumnarIneligibility(const Plan& plan, const DecoderOptions& options);

/// Compiles the plan's leading ignore_if / filter steps whose conditions ColumnCondition can
/// evaluate over the declared fields' columns, in order, up to the first step that is not one
/// (the columnar path drops their records before making rows of them).
std::vector<ColumnFilterStep> ColumnFilterPrefix(const Plan& plan);

/// Reads SLUICE_COLUMNAR: "0" forces the row path, "1" the columnar path where eligible; unset
/// or anything else gives the default (kColumnarByDefault).
bool ColumnarWanted();

/// Whether eligible plans take the columnar path when SLUICE_COLUMNAR is not set.
inline constexpr bool kColumnarByDefault = true;

}  // namespace sluice
