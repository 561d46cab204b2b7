#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "core/status.h"
#include "runtime/source.h"

namespace sluice {

/// Moves the query string of a table source URI into its options:
/// "mysql://u@h/db/t?order_by=inserted_at&key=id" sets order_by and key, and returns the URI
/// without the query. Options set under [source] stay; the query overrides them.
Result<std::string> TakeUriOptions(const std::string& uri, Options* options);

/// Appends one row as an NDJSON object of `columns`: values as JSON strings, nulls as null.
void AppendJsonRow(const std::vector<std::string>& columns,
                   const std::vector<std::optional<std::string_view>>& values, std::string* out);

/// The identity partition where a table source stores the hash (Fingerprint64) of the last row
/// it read, the NDJSON record of the declared fields, next to its (order_by, key) cursor.
inline constexpr int32_t kCursorRowPartition = kIdentityPartitionBase;

/// The refusal of a table source whose last row read, found again at the committed cursor on
/// start, is `gone` or holds other values: the table was dropped and recreated, truncated, or
/// that row was rewritten, and which rows are new cannot be told. `cursor` describes the
/// cursor, `extra` adds what else is known ("" or a sentence). Exits 1, naming --reset-source.
Status CursorRowChanged(const std::string& what, const std::string& source_name, const std::string& cursor,
                        bool gone, const std::string& extra);

/// Describes for people the cursor a table source stores (partition 0: the order_by value,
/// 1: the key, kCursorRowPartition: the hash of the last row read), given one source's
/// positions (partition -> offset); nullopt when they are not a table source's.
std::optional<std::string> DescribeTableCursor(const std::map<int32_t, int64_t>& positions);

}  // namespace sluice
