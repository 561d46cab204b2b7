#pragma once

#include <string>

#include "operators/decoder.h"
#include "runtime/plan.h"

namespace sluice {

/// Says why a plan cannot take the columnar path (a ColumnBatch decoded by
/// ColumnarJsonDecoder, then the steps and the aggregate per row as on the row path), or ""
/// when it can: NDJSON input, no lookup that holds records, and a flat field list (no dotted
/// path, no two fields reading one key).
std::string ColumnarIneligibility(const Plan& plan, const DecoderOptions& options);

/// Reads SLUICE_COLUMNAR: "0" forces the row path, "1" the columnar path where eligible; unset
/// or anything else gives the default (kColumnarByDefault).
bool ColumnarWanted();

/// Whether eligible plans take the columnar path when SLUICE_COLUMNAR is not set.
inline constexpr bool kColumnarByDefault = true;

}  // namespace sluice
