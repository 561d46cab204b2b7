#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "core/status.h"

namespace sluice {

/// Moves the query string of a table source URI into its options:
/// "mysql://u@h/db/t?order_by=inserted_at&key=id" sets order_by and key, and returns the URI
/// without the query. Options set under [source] stay; the query overrides them.
Result<std::string> TakeUriOptions(const std::string& uri, Options* options);

/// Appends one row as an NDJSON object of `columns`: values as JSON strings, nulls as null.
void AppendJsonRow(const std::vector<std::string>& columns,
                   const std::vector<std::optional<std::string_view>>& values, std::string* out);

}  // namespace sluice
