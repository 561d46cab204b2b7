#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "runtime/source.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sluice {

/// The options of an sqlite: table source, in [source] or the URI's query (SqliteTableSource::Make reads them).
const OptionTable& SqliteTableSourceOptions();

/// Reads new rows of an SQLite table incrementally:
/// `[source] uri = "sqlite:PATH?table=tracking&order_by=id"`.
///
/// Rows are read in (order_by, key) order, in pages of `page_rows`, after a cursor committed with
/// the results (partition 0: the last order_by value, partition 1: the last key), as the MySQL
/// table source does. `order_by` and `key` must be integer columns (default `rowid`). SQLite
/// runs one write transaction at a time, so an AUTOINCREMENT id or rowid never commits out of
/// order and needs no grace period; timestamps written by the application can, so they are not
/// accepted as `order_by` here.
///
/// With the cursor goes a hash of the last row read (kCursorRowPartition). On start that row is
/// read again at the cursor; when it is gone or holds other values the table was dropped and
/// recreated (or rewritten), and Open() refuses with FailedPrecondition naming --reset-source.
///
/// Lifecycle and threads: as every table source (connectors/table/table_util.h).
class SqliteTableSource : public Source {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config, int max_instances);
  ~SqliteTableSource() override;

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records, std::chrono::milliseconds budget) override;
  std::string_view kind() const override { return "sqlite"; }
  DecoderOptions decoder_options() const override { return {}; }
  bool EndIsFinal() const override { return false; }
  std::vector<int32_t> Partitions() const override { return {0}; }
  std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const override;
  void Close() override;

  struct Settings {
    std::string name;  ///< the source's name in the pipeline
    std::string path;
    std::string table;
    std::vector<std::string> columns;
    std::string order_by = "rowid";
    std::string key = "rowid";
    int64_t page_rows = 10000;
  };

 private:
  explicit SqliteTableSource(Settings s) : settings_(std::move(s)) {}
  /// Returns the SELECT list and FROM clause of every query ("SELECT cols, order, key FROM t").
  std::string SelectSql() const;
  /// Builds the NDJSON record of the current row of `st` into scratch_; returns false (with
  /// `bad` set) when its order_by or key is not an integer.
  bool ReadRow(sqlite3_stmt* st, Status* bad);
  /// Refuses to start when the last row read is no longer at the committed cursor.
  Status CheckCursorRow();

  Settings settings_;
  SourceContext ctx_;
  sqlite3* db_ = nullptr;
  std::optional<int64_t> cursor_order_;
  int64_t cursor_key_ = 0;
  std::optional<int64_t> cursor_row_hash_;  ///< Fingerprint64 of the last row read
  std::string scratch_;
  std::vector<std::string> texts_;
  std::vector<std::optional<std::string_view>> values_;
};

}  // namespace sluice
