#pragma once

#include <memory>

#include "core/schema.h"
#include "core/status.h"
#include "operators/decoder.h"

namespace sluice {

/// Creates the NDJSON decoder behind MakeDecoder(): each payload is one JSON object, and each
/// schema field is found by its dotted source path ("location.street.number").
///
/// Conversions: int64 takes an integer, an integral double (3.0) or a string holding a strict
/// integer; double takes a number or a numeric string; bool takes true/false or their strings;
/// timestamp takes a string for ParseTimestamp() or a number of epoch milliseconds; string
/// takes a string as is, and renders numbers and booleans as their JSON text and objects and
/// arrays as minified JSON. A missing key, JSON null and a blank string (for non-strings) are
/// null; a non-object where the path expects an object counts as missing.
///
/// Values of keys that no schema field asks for are skipped without full validation (this is
/// what makes On-Demand parsing fast); the object structure itself is always checked.
Result<std::unique_ptr<Decoder>> MakeNdjsonDecoder(const Schema& schema);

}  // namespace sluice
