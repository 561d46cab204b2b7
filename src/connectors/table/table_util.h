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

// What the table sources (a table read incrementally: MysqlTableSource, SqliteTableSource,
// CassandraTableSource) share, besides this file's helpers.
//
// Lifecycle, as Source: Make (the connector's factory) returns one instance whatever the worker
// count, since the cursor is one position -> Open connects, checks the table and the declared
// columns (InvalidArgument) and reads the committed cursor through
// SourceContext::committed_position; MySQL and SQLite also read the last row read again and
// refuse with CursorRowChanged when it changed -> Poll* returns the next page after the cursor
// in cursor order (kEnd under --until-caught-up once nothing newer is there, kIdle otherwise;
// EndIsFinal() is false: the table keeps growing), moving the cursor with each record, which
// PositionsAfterBatch() then reports -> Close.
//
// Threads, as Source: the instance belongs to one worker thread, which makes every call, one at
// a time; only Counters() (Cassandra's read counts) comes from the monitoring thread, at any
// time, and reads atomics only.

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
