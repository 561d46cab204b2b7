#pragma once

#include "runtime/registry.h"

namespace sluice {

/// The file connector's dimensions: a CSV file (',' or ';' delimited, sniffed from the header),
/// loaded whole and reloaded when its size, modification time or inode changes. A file that is
/// missing or does not parse keeps the previous snapshot (and counts a refresh error).
DimensionFactory CsvDimensionFactory();
/// The options of a CSV dimension (besides `refresh`, which the registry reads).
const OptionTable& CsvDimensionOptions();

}  // namespace sluice
