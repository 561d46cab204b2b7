#include "connectors/sqlite/sqlite_table_source.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <thread>

#include "connectors/table/table_util.h"
#include "core/uri.h"

namespace sluice {
namespace {

constexpr auto kIdleWait = std::chrono::milliseconds(500);

std::string Quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += (c == '"' ? std::string("\"\"") : std::string(1, c));
  return out + "\"";
}

}  // namespace

const OptionTable& SqliteTableSourceOptions() {
  static const OptionTable kTable{
      .uri = "sqlite:PATH?table=NAME",
      .summary = "An SQLite table read in (`order_by`, `key`) order after a cursor committed with the "
                 "results, then followed. Options may also be written in the URI's query.",
      .options = {
          {.name = "table", .help = "The table to read (required)."},
          {.name = "order_by", .default_value = "rowid", .help = "Integer column rows are read in order of."},
          {.name = "key", .default_note = "`order_by`", .help = "Integer column unique within one `order_by` value."},
          {.name = "page_rows", .type = OptionType::kInt, .default_value = "10000", .help = "Rows per read."},
      }};
  return kTable;
}

Result<std::vector<std::unique_ptr<Source>>> SqliteTableSource::Make(const SourceConfig& config,
                                                                     int /*max_instances*/) {
  Options options = config.options;
  ASSIGN_OR_RETURN(std::string uri, TakeUriOptions(config.uri, &options));
  OptionReader o(options, SqliteTableSourceOptions(), "source");
  Settings s;
  s.name = config.name;
  s.path = SplitUri(uri).second;
  s.table = o.String("table");
  if (s.table.empty()) {
    return Status::InvalidArgument(o.Where("uri") + ": an sqlite source needs table=NAME (sqlite:PATH?table=NAME)");
  }
  s.order_by = o.String("order_by");
  s.key = o.String("key", s.order_by);
  ASSIGN_OR_RETURN(s.page_rows, o.Int("page_rows"));
  if (s.page_rows <= 0) return Status::InvalidArgument(o.Where("page_rows") + ": page_rows must be positive");
  for (const auto& f : config.fields) s.columns.push_back(f.source_path());
  RETURN_IF_ERROR(o.Finish());
  std::vector<std::unique_ptr<Source>> out;
  out.push_back(std::unique_ptr<Source>(new SqliteTableSource(std::move(s))));
  return out;
}

SqliteTableSource::~SqliteTableSource() { Close(); }

void SqliteTableSource::Close() {
  if (db_) sqlite3_close(db_);
  db_ = nullptr;
}

Status SqliteTableSource::Open(const SourceContext& ctx) {
  ctx_ = ctx;
  const std::string where = "source sqlite:" + settings_.path + " table " + settings_.table;
  if (sqlite3_open_v2(settings_.path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    Close();
    return Status::IOError(where + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 10000);
  // Checks the columns exist by preparing the page query once.
  sqlite3_stmt* st = nullptr;
  const std::string sql = SelectSql() + " LIMIT 0";
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return Status::InvalidArgument(where + ": " + msg);
  }
  sqlite3_finalize(st);
  cursor_order_ = ctx.committed_position(0);
  if (cursor_order_) cursor_key_ = ctx.committed_position(1).value_or(0);
  if (cursor_order_) cursor_row_hash_ = ctx.committed_position(kCursorRowPartition);
  return CheckCursorRow();
}

std::string SqliteTableSource::SelectSql() const {
  std::string sql = "SELECT ";
  for (const auto& c : settings_.columns) sql += Quote(c) + ", ";
  return sql + Quote(settings_.order_by) + ", " + Quote(settings_.key) + " FROM " + Quote(settings_.table);
}

bool SqliteTableSource::ReadRow(sqlite3_stmt* st, Status* bad) {
  const int n = static_cast<int>(settings_.columns.size());
  if (sqlite3_column_type(st, n) != SQLITE_INTEGER || sqlite3_column_type(st, n + 1) != SQLITE_INTEGER) {
    *bad = Status::InvalidArgument("sqlite:" + settings_.path + " table " + settings_.table + ": " +
                                   settings_.order_by + " and " + settings_.key + " must hold integers");
    return false;
  }
  texts_.assign(static_cast<size_t>(n), std::string());
  values_.assign(static_cast<size_t>(n), std::nullopt);
  for (int i = 0; i < n; ++i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) continue;
    const unsigned char* t = sqlite3_column_text(st, i);
    texts_[static_cast<size_t>(i)].assign(reinterpret_cast<const char*>(t),
                                          static_cast<size_t>(sqlite3_column_bytes(st, i)));
    values_[static_cast<size_t>(i)] = texts_[static_cast<size_t>(i)];
  }
  scratch_.clear();
  AppendJsonRow(settings_.columns, values_, &scratch_);
  return true;
}

Status SqliteTableSource::CheckCursorRow() {
  // Positions from a sluice that stored no row hash are trusted as they are.
  if (!cursor_order_ || !cursor_row_hash_) return Status::OK();
  std::string sql = SelectSql() + " WHERE " + Quote(settings_.order_by) + " = " + std::to_string(*cursor_order_);
  if (settings_.order_by != settings_.key) sql += " AND " + Quote(settings_.key) + " = " + std::to_string(cursor_key_);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return Status::Unavailable("sqlite:" + settings_.path + ": " + msg);
  }
  const int rc = sqlite3_step(st);
  Status bad;
  const bool found = rc == SQLITE_ROW && ReadRow(st, &bad);
  const std::string err = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? "" : sqlite3_errmsg(db_);
  sqlite3_finalize(st);
  if (!err.empty()) return Status::Unavailable("sqlite:" + settings_.path + ": " + err);
  if (found && Fingerprint64(scratch_) == *cursor_row_hash_) return Status::OK();
  std::string cursor = settings_.order_by + " = " + std::to_string(*cursor_order_);
  if (settings_.order_by != settings_.key) cursor += ", " + settings_.key + " = " + std::to_string(cursor_key_);
  return CursorRowChanged("source " + settings_.name + " (sqlite:" + settings_.path + " table " + settings_.table + ")",
                          settings_.name, cursor, !found, "");
}

Result<PollState> SqliteTableSource::Poll(RawBatch* out, size_t max_records, std::chrono::milliseconds budget) {
  const std::string order = Quote(settings_.order_by), key = Quote(settings_.key);
  std::string sql = SelectSql() + " WHERE " + order + " IS NOT NULL";
  if (cursor_order_) {
    const std::string at = std::to_string(*cursor_order_);
    if (settings_.order_by == settings_.key) {
      sql += " AND " + order + " > " + at;
    } else {
      sql += " AND (" + order + " > " + at + " OR (" + order + " = " + at + " AND " + key + " > " +
             std::to_string(cursor_key_) + "))";
    }
  }
  const size_t limit = std::min<size_t>(max_records, static_cast<size_t>(settings_.page_rows));
  sql += " ORDER BY " + order + ", " + key + " LIMIT " + std::to_string(limit);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return Status::Unavailable("sqlite:" + settings_.path + ": " + msg);
  }
  const int n = static_cast<int>(settings_.columns.size());
  size_t rows = 0;
  Status bad;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!ReadRow(st, &bad)) break;
    const int64_t o = sqlite3_column_int64(st, n);
    RawRecord& rec = out->Append(scratch_);
    rec.partition = 0;
    rec.offset = o;
    rec.next_offset = o;
    cursor_order_ = o;
    cursor_key_ = sqlite3_column_int64(st, n + 1);
    cursor_row_hash_ = Fingerprint64(scratch_);
    ++rows;
  }
  const std::string err = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? "" : sqlite3_errmsg(db_);
  sqlite3_finalize(st);
  if (!bad.ok() && rows == 0) return bad;
  if (!err.empty() && rows == 0) return Status::Unavailable("sqlite:" + settings_.path + ": " + err);
  if (rows > 0) return PollState::kData;
  if (ctx_.until_caught_up) return PollState::kEnd;
  std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(budget, kIdleWait));
  return PollState::kIdle;
}

std::vector<std::pair<int32_t, int64_t>> SqliteTableSource::PositionsAfterBatch() const {
  if (!cursor_order_) return {};
  if (!cursor_row_hash_) return {{0, *cursor_order_}, {1, cursor_key_}};
  return {{0, *cursor_order_}, {1, cursor_key_}, {kCursorRowPartition, *cursor_row_hash_}};
}

}  // namespace sluice
