#include "connectors/sqlite/sqlite_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <thread>

#include "runtime/dead_letter_file.h"
#include "core/json_writer.h"
#include "core/time.h"
#include "core/uri.h"
#include "runtime/sink_rejection.h"
#include "runtime/source.h"
#include "runtime/window_state.h"

namespace sluice {
namespace {

const char* SqlType(Type t) {
  switch (t) {
    case Type::kInt64:
    case Type::kBool: return "INTEGER";
    case Type::kDouble: return "REAL";
    default: return "TEXT";
  }
}

std::string Q(const std::string& s) { return QuoteIdent(s); }

/// A literal in SQLite's SQL (the catalog needs one for avg()'s default).
Status Literal(const Value& v, std::string* out) {
  switch (v.type()) {
    case Type::kNull: *out += "NULL"; break;
    case Type::kBool: *out += v.bool_value() ? "1" : "0"; break;
    case Type::kInt64: *out += std::to_string(v.int_value()); break;
    case Type::kDouble: *out += FormatDouble(v.double_value()); break;
    case Type::kString:
    case Type::kTimestamp: {
      const std::string text = v.ToString();
      *out += '\'';
      for (char c : text) {
        if (c == '\'') *out += '\'';
        *out += c;
      }
      *out += '\'';
      break;
    }
  }
  return Status::OK();
}

/// How the aggregate catalog spells its merge statements here.
const SqlSpelling kSpelling{SqlDialect::kSqlite, Q, Literal};

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::string QuoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string SqlText(const Value& v) {
  if (v.type() == Type::kTimestamp) {
    return FormatTimestamp(v.time_value().micros, "%Y-%m-%d %H:%M:%S");
  }
  return v.ToString();
}

const OptionTable& SqliteSinkOptions() {
  static const OptionTable kTable{
      .uri = "sqlite:PATH",
      .summary = "An SQLite database; `table` names the table. Rows and positions commit in one "
                 "transaction.",
      .options = {
          {.name = "key",
           .type = OptionType::kList,
           .help = "Columns that identify a row: its primary key, each row upserted. Unset: rows are "
                   "appended (an aggregate is keyed by its own keys)."},
          {.name = "column_types",
           .help = "Ignored: the MySQL sink's column types, so one pipeline file serves both."},
      }};
  return kTable;
}

Result<std::unique_ptr<Sink>> SqliteSink::Make(const SinkConfig& config) {
  auto [scheme, path] = SplitUri(config.uri);
  OptionReader o(config.options, SqliteSinkOptions(), "sink");
  if (path.empty()) return Status::InvalidArgument(o.Where("") + ": sqlite sink needs a path: sqlite:PATH");
  // Column types for the MySQL sink, so one pipeline file serves both; SQLite's dynamic typing
  // needs none.
  (void)o.String("column_types");
  std::vector<std::string> key = SplitList(o.String("key"));
  RETURN_IF_ERROR(o.Finish());
  std::unique_ptr<SqliteSink> sink(new SqliteSink(path, config.table));
  sink->key_option_ = std::move(key);
  sink->key_where_ = o.Where("key");
  return std::unique_ptr<Sink>(std::move(sink));
}

Status SqliteSink::Check(const SinkContext& ctx) const {
  if (key_option_.empty()) return Status::OK();
  const AggregateSpec* a = ctx.aggregate;
  std::vector<std::string> aggregate_keys;
  if (a) aggregate_keys = ctx.key_columns.empty() ? a->KeyColumns() : ctx.key_columns;
  if (a && key_option_ != aggregate_keys) {
    return Status::InvalidArgument(key_where_ + ": option key (" + Join(key_option_) +
                                   ") differs from the aggregate's keys (" + Join(aggregate_keys) +
                                   "); leave it out: an aggregate's rows are keyed by its keys");
  }
  if (a) return Status::OK();
  for (size_t i = 0; i < key_option_.size(); ++i) {
    const std::string& k = key_option_[i];
    if (!ctx.output.IndexOf(k)) {
      std::vector<std::string> names;
      for (const Field& f : ctx.output.fields()) names.push_back(f.name);
      return Status::InvalidArgument(key_where_ + ": key column " + k +
                                     " is not an output column (columns: " + Join(names) + ")");
    }
    for (size_t j = 0; j < i; ++j) {
      if (key_option_[j] == k) {
        return Status::InvalidArgument(key_where_ + ": key column " + k + " is named twice");
      }
    }
  }
  return Status::OK();
}

SqliteSink::~SqliteSink() { Close(); }

void SqliteSink::Close() {
  if (upsert_) sqlite3_finalize(upsert_);
  if (position_) sqlite3_finalize(position_);
  if (state_) sqlite3_finalize(state_);
  if (dead_letter_) sqlite3_finalize(dead_letter_);
  upsert_ = position_ = state_ = dead_letter_ = nullptr;
  if (db_) sqlite3_close(db_);
  db_ = nullptr;
}

Status SqliteSink::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::IOError("sqlite " + path_ + ": " + msg + " (in: " + sql.substr(0, 120) + ")");
  }
  return Status::OK();
}

Status SqliteSink::Prepare(const std::string& sql, sqlite3_stmt** stmt) {
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, stmt, nullptr) != SQLITE_OK) {
    return Status::Internal("sqlite prepare failed: " + std::string(sqlite3_errmsg(db_)) +
                            " (in: " + sql + ")");
  }
  return Status::OK();
}

Status SqliteSink::SetContext(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  ctx_ = ctx;
  key_slots_.clear();
  if (ctx_.key_columns.empty() && !ctx_.aggregate) {
    ctx_.key_columns = key_option_;
    for (const auto& k : key_option_) key_slots_.push_back(*ctx_.output.IndexOf(k));
  }
  if (table_.empty()) table_ = ctx.pipeline;
  view_ = !InternalColumnNames(ctx_.aggregate).empty();
  physical_ = view_ ? InternalTableName(table_) : table_;
  return Status::OK();
}

Status SqliteSink::OpenForReading(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetContext(ctx));
  constexpr int kFlags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &db_, kFlags, nullptr) != SQLITE_OK) {
    Status s = Status::NotFound("cannot open sqlite database " + path_ + ": " +
                                (db_ ? sqlite3_errmsg(db_) : "out of memory"));
    Close();
    return s;
  }
  sqlite3_busy_timeout(db_, 10000);
  return Status::OK();
}

Result<std::vector<std::vector<Value>>> SqliteSink::ReadOutput() {
  std::string cols;
  for (size_t i = 0; i < ctx_.output.size(); ++i) {
    cols += (i > 0 ? ", " : "") + QuoteIdent(ctx_.output.field(i).name);
  }
  sqlite3_stmt* stmt = nullptr;
  const std::string sql = "SELECT " + cols + " FROM " + QuoteIdent(table_);
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    return Status::IOError("sqlite " + path_ + ": cannot read table " + table_ + ": " + msg);
  }
  std::vector<std::vector<Value>> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    std::vector<Value> row;
    for (size_t i = 0; i < ctx_.output.size(); ++i) {
      const int c = static_cast<int>(i);
      const Type type = ctx_.output.field(i).type;
      switch (sqlite3_column_type(stmt, c)) {
        case SQLITE_NULL: row.push_back(Value::Null()); break;
        case SQLITE_INTEGER: {
          const int64_t v = sqlite3_column_int64(stmt, c);
          row.push_back(type == Type::kBool     ? Value::Bool(v != 0)
                        : type == Type::kDouble ? Value::Double(static_cast<double>(v))
                                                : Value::Int(v));
          break;
        }
        case SQLITE_FLOAT: row.push_back(Value::Double(sqlite3_column_double(stmt, c))); break;
        default: {
          std::string_view text(reinterpret_cast<const char*>(sqlite3_column_text(stmt, c)),
                                static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
          auto v = ParseStoredValue(text, type);
          // A value of another type (edited by hand) is compared as the text it is.
          row.push_back(v.ok() ? std::move(v).value() : Value::String(text));
        }
      }
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Status::IOError("reading table " + table_ + " from " + path_ + ": " + sqlite3_errmsg(db_));
  return rows;
}

Value SqliteSink::AsStored(size_t column, const Value& v) const {
  (void)column;
  if (v.type() != Type::kTimestamp) return v;
  return Value::TimeMicros(FloorTo(v.time_value().micros, 1'000'000));
}

Status SqliteSink::Open(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetContext(ctx));
  RETURN_IF_ERROR(EnsureParentDirectory(path_));
  // One thread uses the connection (see Sink), so SQLite's per-call mutex is pure cost.
  constexpr int kFlags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &db_, kFlags, nullptr) != SQLITE_OK) {
    return Status::IOError("cannot open sqlite database " + path_ + ": " +
                           (db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3_busy_timeout(db_, 10000);
  // Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked"
  // without waiting when another connection switches it at the same moment (two processes of
  // one pipeline started together): ask again for as long as the busy timeout.
  const auto wal_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    Status wal = Exec("PRAGMA journal_mode=WAL");
    if (wal.ok()) break;
    if ((sqlite3_errcode(db_) & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > wal_deadline) {
      return wal;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(CreateTables());
  return BuildStatements();
}

SqliteSink::TableLayout SqliteSink::Layout() const {
  TableLayout layout;
  std::vector<std::pair<std::string, std::string>>& columns = layout.columns;  // name, declaration
  std::vector<std::pair<std::string, std::string>> hidden;   // after the visible columns
  std::vector<std::string>& keys = layout.keys;
  if (ctx_.aggregate && !ctx_.aggregate->append_mode) {
    const AggregateSpec& a = *ctx_.aggregate;
    if (a.emit_window_start) columns.push_back({"window_start", "TEXT NOT NULL"});
    if (a.emit_window_end) columns.push_back({"window_end", "TEXT NOT NULL"});
    for (const auto& k : a.keys) columns.push_back({k.name, std::string(SqlType(k.type)) + " NOT NULL"});
    keys = a.KeyColumns();
    for (const auto& m : a.metrics) {
      for (const StoredColumn& c : FunctionOf(m).stored_columns(m)) {
        (c.hidden ? hidden : columns)
            .push_back({c.name, std::string(SqlType(c.type)) +
                                    (c.not_null_default_zero ? " NOT NULL DEFAULT 0" : "")});
      }
    }
  } else {
    keys = ctx_.key_columns;
    for (const auto& f : ctx_.output.fields()) {
      // A key named by the option must not be null (SQLite would let NULLs repeat in a
      // primary key, and a replay would then add rows instead of upserting them).
      const bool not_null =
          !key_slots_.empty() && std::find(keys.begin(), keys.end(), f.name) != keys.end();
      columns.push_back({f.name, std::string(SqlType(f.type)) + (not_null ? " NOT NULL" : "")});
    }
  }
  for (auto& h : hidden) columns.push_back(std::move(h));
  std::string& sql = layout.create_sql;
  sql = "CREATE TABLE IF NOT EXISTS " + Q(physical_) + " (";
  for (size_t i = 0; i < columns.size(); ++i) {
    sql += (i ? ", " : "") + Q(columns[i].first) + " " + columns[i].second;
  }
  if (!keys.empty()) {
    sql += ", PRIMARY KEY (";
    for (size_t i = 0; i < keys.size(); ++i) sql += (i ? ", " : "") + Q(keys[i]);
    sql += ")";
  }
  sql += ")";
  return layout;
}

std::string SqliteSink::DeadLettersTableSql(const std::string& name) {
  return "CREATE TABLE IF NOT EXISTS " + name +
         " (pipeline TEXT NOT NULL, source TEXT NOT NULL, partition INTEGER NOT NULL, offset "
         "INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, reason "
         "TEXT NOT NULL, time TEXT NOT NULL, payload TEXT NOT NULL, payload_base64 TEXT, "
         "payload_bytes INTEGER NOT NULL, truncated INTEGER NOT NULL, payload_sha256 TEXT NOT NULL, "
         "PRIMARY KEY (pipeline, source, partition, offset, generation, seq))";
}

Status SqliteSink::MigrateDeadLetters() {
  auto has_generation = [&]() -> Result<bool> {
    bool found = false;
    RETURN_IF_ERROR(Query("SELECT name FROM pragma_table_info('_sluice_dead_letters')", {},
                          [&](sqlite3_stmt* r) {
                            const unsigned char* name = sqlite3_column_text(r, 0);
                            found = found || (name && std::string_view(reinterpret_cast<const char*>(name)) == "generation");
                          }));
    return found;
  };
  ASSIGN_OR_RETURN(bool done, has_generation());
  if (done) return Status::OK();
  // A table of an older sluice, keyed without the input's generation. SQLite cannot change a
  // primary key: the rows move to a new table (generation 0), in one transaction, which another
  // process may have run first.
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto s = has_generation();
  Status st = s.status();
  if (st.ok() && !*s) {
    st = Exec("DROP TABLE IF EXISTS _sluice_dead_letters_migrating");
    if (st.ok()) st = Exec(DeadLettersTableSql("_sluice_dead_letters_migrating"));
    if (st.ok()) {
      st = Exec(
          "INSERT INTO _sluice_dead_letters_migrating (pipeline, source, partition, offset, generation, seq, "
          "reason, time, payload, payload_base64, payload_bytes, truncated, payload_sha256) SELECT pipeline, "
          "source, partition, offset, 0, seq, reason, time, payload, payload_base64, payload_bytes, truncated, "
          "payload_sha256 FROM _sluice_dead_letters");
    }
    if (st.ok()) st = Exec("DROP TABLE _sluice_dead_letters");
    if (st.ok()) st = Exec("ALTER TABLE _sluice_dead_letters_migrating RENAME TO _sluice_dead_letters");
  }
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok()) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
    return st;
  }
  if (s.ok() && !*s) {
    spdlog::info("sqlite {}: _sluice_dead_letters (an older sluice's layout) now keys its dead letters "
                 "by the input's generation too; the stored ones are generation 0", path_);
  }
  return Status::OK();
}

Status SqliteSink::CreateTables() {
  RETURN_IF_ERROR(Exec(
      "CREATE TABLE IF NOT EXISTS _sluice_positions (pipeline TEXT NOT NULL, source TEXT NOT "
      "NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, updated_at TEXT NOT NULL, "
      "PRIMARY KEY (pipeline, source, partition))"));
  RETURN_IF_ERROR(Exec(
      "CREATE TABLE IF NOT EXISTS _sluice_state (pipeline TEXT NOT NULL PRIMARY KEY, state BLOB "
      "NOT NULL, updated_at TEXT NOT NULL)"));
  RETURN_IF_ERROR(Exec(
      "CREATE TABLE IF NOT EXISTS _sluice_tasks (pipeline TEXT NOT NULL, source TEXT NOT NULL, "
      "partition INTEGER NOT NULL, fence INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '', "
      "max_event_time INTEGER, watermark INTEGER, enforced INTEGER, idle INTEGER NOT NULL DEFAULT 0, "
      "state BLOB, updated_at TEXT NOT NULL, PRIMARY KEY (pipeline, source, partition))"));
  RETURN_IF_ERROR(Exec(DeadLettersTableSql("_sluice_dead_letters")));
  RETURN_IF_ERROR(MigrateDeadLetters());
  if (ctx_.tasks) RETURN_IF_ERROR(MigrateLegacyState());
  const TableLayout layout = Layout();
  std::vector<std::string> expected;
  for (const auto& c : layout.columns) expected.push_back(c.first);
  if (view_) RETURN_IF_ERROR(MigrateOldLayout(expected));
  RETURN_IF_ERROR(Exec(layout.create_sql));

  // An existing table must have the columns this pipeline writes; columns it does not write
  // (the old columns of a table taken over) are left as they are, so they must accept a row
  // without them.
  sqlite3_stmt* info = nullptr;
  RETURN_IF_ERROR(Prepare("PRAGMA table_info(" + Q(physical_) + ")", &info));
  std::vector<std::string> existing, stuck;
  while (sqlite3_step(info) == SQLITE_ROW) {
    existing.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info, 1)));
    const bool not_null = sqlite3_column_int(info, 3) != 0;
    const bool has_default = sqlite3_column_type(info, 4) != SQLITE_NULL;
    if (not_null && !has_default &&
        std::find(expected.begin(), expected.end(), existing.back()) == expected.end()) {
      stuck.push_back(existing.back());
    }
  }
  sqlite3_finalize(info);
  std::vector<std::string> missing;
  for (const auto& c : expected) {
    if (std::find(existing.begin(), existing.end(), c) == existing.end()) missing.push_back(c);
  }
  if (!missing.empty()) {
    return Status::InvalidArgument("sqlite table " + physical_ + " in " + path_ +
                                   " has columns (" + Join(existing) +
                                   ") but this pipeline writes (" + Join(expected) +
                                   "); drop the table, write to another one, or take it over "
                                   "with `sluice takeover` (missing: " + Join(missing) + ")");
  }
  if (!stuck.empty()) {
    return Status::InvalidArgument("sqlite table " + physical_ + " in " + path_ +
                                   " has columns this pipeline does not write that are NOT NULL "
                                   "without a default (" + Join(stuck) +
                                   "): new rows cannot be inserted; give them a default");
  }
  if (view_) RETURN_IF_ERROR(EnsureView(existing));
  return Status::OK();
}

Result<std::string> SqliteSink::ObjectType(const std::string& name) {
  sqlite3_stmt* stmt = nullptr;
  RETURN_IF_ERROR(Prepare(
      "SELECT type FROM sqlite_master WHERE name = ?1 AND type IN ('table', 'view')", &stmt));
  sqlite3_bind_text(stmt, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return out;
}

Status SqliteSink::MigrateOldLayout(const std::vector<std::string>& expected) {
  ASSIGN_OR_RETURN(std::string user, ObjectType(table_));
  if (user != "table") return Status::OK();
  ASSIGN_OR_RETURN(std::string internal, ObjectType(physical_));
  if (!internal.empty()) {
    return Status::InvalidArgument("sqlite " + path_ + " has both a table " + table_ +
                                   " and the table " + physical_ +
                                   " sluice keeps its rows in (" + table_ +
                                   " should be a view of it); drop or rename one of them");
  }
  sqlite3_stmt* info = nullptr;
  RETURN_IF_ERROR(Prepare("PRAGMA table_info(" + Q(table_) + ")", &info));
  std::vector<std::string> existing;
  while (sqlite3_step(info) == SQLITE_ROW) {
    existing.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info, 1)));
  }
  sqlite3_finalize(info);
  for (const auto& c : expected) {
    if (std::find(existing.begin(), existing.end(), c) == existing.end()) {
      // Not a table this pipeline wrote (a results table of another job): never moved
      // without being asked.
      return Status::InvalidArgument(
          "sqlite table " + table_ + " in " + path_ + " has columns (" + Join(existing) +
          ") but this pipeline writes (" + Join(expected) +
          "); drop the table, write to another one, or take it over with `sluice takeover`");
    }
  }
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status s = Exec("ALTER TABLE " + Q(table_) + " RENAME TO " + Q(physical_));
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
    return s;
  }
  spdlog::warn(
      "sqlite table {} in {} held sluice's internal columns (an older sluice's layout): moved "
      "the table, rows unchanged, to {} and made {} a view of the declared columns",
      table_, path_, physical_, table_);
  return Status::OK();
}

std::string SqliteSink::ViewSql(const std::vector<std::string>& table_columns) const {
  const std::vector<std::string> internal = InternalColumnNames(ctx_.aggregate);
  std::string select;
  for (const auto& c : table_columns) {
    if (std::find(internal.begin(), internal.end(), c) != internal.end()) continue;
    select += (select.empty() ? "" : ", ") + Q(c);
  }
  return "CREATE VIEW " + Q(table_) + " AS SELECT " + select + " FROM " + Q(physical_);
}

Result<SinkExplanation> SqliteSink::Explain(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetContext(ctx));
  SinkExplanation e;
  e.facts.push_back({"database", path_});
  if (view_) {
    e.facts.push_back({"layout", "rows in " + physical_ + " (with the internal columns); " + table_ +
                                     " is a view of the declared columns"});
  } else {
    e.facts.push_back({"layout", "rows in table " + table_});
  }
  e.facts.push_back({"per checkpoint",
                     "one transaction: the upsert once per row, the dead letters and the positions "
                     "in _sluice_positions"});
  const TableLayout layout = Layout();
  e.statements.push_back({"create table", "sqlite", layout.create_sql});
  if (view_) {
    std::vector<std::string> columns;
    for (const auto& c : layout.columns) columns.push_back(c.first);
    e.statements.push_back({"create view", "sqlite", ViewSql(columns)});
  }
  const bool merge = ctx_.aggregate && !ctx_.aggregate->append_mode;
  const Result<std::string> upsert = UpsertSql();
  e.statements.push_back(
      {merge ? "merge" : "write", "sqlite", upsert.ok() ? *upsert : upsert.status().ToString()});
  return e;
}

Status SqliteSink::EnsureView(const std::vector<std::string>& table_columns) {
  const std::string create = ViewSql(table_columns);
  // What names the view now: its type ("" when nothing does) and its SQL.
  auto read = [&](std::string* type, std::string* current) -> Status {
    sqlite3_stmt* stmt = nullptr;
    RETURN_IF_ERROR(Prepare("SELECT type, sql FROM sqlite_master WHERE name = ?1", &stmt));
    sqlite3_bind_text(stmt, 1, table_.c_str(), -1, SQLITE_TRANSIENT);
    type->clear();
    current->clear();
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      *type = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (sqlite3_column_type(stmt, 1) != SQLITE_NULL) {
        *current = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
      }
    }
    sqlite3_finalize(stmt);
    if (!type->empty() && *type != "view") {
      return Status::InvalidArgument("sqlite " + path_ + ": " + table_ + " is a " + *type +
                                     ", not the view of " + physical_ + " sluice expects");
    }
    return Status::OK();
  };
  std::string type, current;
  RETURN_IF_ERROR(read(&type, &current));
  if (current == create) return Status::OK();
  // Read again under the write lock: another process opening the same file at the same moment
  // may have created the view since (it then said "view already exists").
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status s = read(&type, &current);
  if (s.ok() && current != create) {
    if (!type.empty()) s = Exec("DROP VIEW " + Q(table_));
    if (s.ok()) s = Exec(create);
  }
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
  }
  return s;
}

Result<std::string> SqliteSink::UpsertSql() const {
  std::string cols, values, updates, conflict;
  int p = 0;
  auto add = [&](const std::string& col, const std::string& value) {
    cols += (cols.empty() ? "" : ", ") + Q(col);
    values += (values.empty() ? "" : ", ") + value;
  };
  auto set = [&](const std::string& assignment) {
    updates += (updates.empty() ? "" : ", ") + assignment;
  };
  auto param = [&]() { return "?" + std::to_string(++p); };
  if (ctx_.aggregate && !ctx_.aggregate->append_mode) {
    const AggregateSpec& a = *ctx_.aggregate;
    for (const auto& k : a.KeyColumns()) {
      add(k, param());
      conflict += (conflict.empty() ? "" : ", ") + Q(k);
    }
    for (const auto& m : a.metrics) {
      const AggregateFunction& f = FunctionOf(m);
      std::vector<SqlInput> inputs(f.inputs);
      for (SqlInput& in : inputs) in.text = param();
      const std::vector<StoredColumn> stored = f.stored_columns(m);
      ASSIGN_OR_RETURN(const std::vector<std::string> inserted, f.insert_sql(m, kSpelling, inputs));
      for (size_t i = 0; i < stored.size(); ++i) add(stored[i].name, inserted[i]);
      ASSIGN_OR_RETURN(const std::vector<std::string> merged, f.merge_sql(m, kSpelling));
      for (const std::string& assignment : merged) set(assignment);
    }
    // SQLite evaluates every SET expression against the old row.
    return "INSERT INTO " + Q(physical_) + " (" + cols + ") VALUES (" + values +
           ") ON CONFLICT (" + conflict + ") DO UPDATE SET " + updates;
  }
  const std::vector<std::string>& keys = ctx_.key_columns;
  for (const auto& f : ctx_.output.fields()) {
    add(f.name, param());
    if (std::find(keys.begin(), keys.end(), f.name) == keys.end()) {
      set(Q(f.name) + " = excluded." + Q(f.name));
    }
  }
  std::string sql = "INSERT INTO " + Q(physical_) + " (" + cols + ") VALUES (" + values + ")";
  if (!keys.empty()) {
    // Upsert by key, as the MySQL sink's ON DUPLICATE KEY UPDATE: the row's final values
    // replace the stored ones; within a checkpoint the last row of a key wins.
    for (const auto& k : keys) conflict += (conflict.empty() ? "" : ", ") + Q(k);
    sql += " ON CONFLICT (" + conflict + ") DO " +
           (updates.empty() ? "NOTHING" : "UPDATE SET " + updates);
  }
  return sql;
}

Status SqliteSink::BuildStatements() {
  RETURN_IF_ERROR(Prepare(
      "INSERT INTO _sluice_positions (pipeline, source, partition, offset, updated_at) VALUES "
      "(?1, ?2, ?3, ?4, datetime('now')) ON CONFLICT (pipeline, source, partition) DO UPDATE "
      "SET offset = excluded.offset, updated_at = excluded.updated_at",
      &position_));
  RETURN_IF_ERROR(Prepare(
      "INSERT INTO _sluice_state (pipeline, state, updated_at) VALUES (?1, ?2, datetime('now')) "
      "ON CONFLICT (pipeline) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
      &state_));
  RETURN_IF_ERROR(Prepare(
      "INSERT INTO _sluice_dead_letters (pipeline, source, partition, offset, seq, reason, time, "
      "payload, payload_base64, payload_bytes, truncated, payload_sha256, generation) VALUES (?1, ?2, "
      "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
      &dead_letter_));
  ASSIGN_OR_RETURN(const std::string sql, UpsertSql());
  if (ctx_.aggregate && !ctx_.aggregate->append_mode) return Prepare(sql, &upsert_);
  const std::vector<std::string>& keys = ctx_.key_columns;
  Status s = Prepare(sql, &upsert_);
  if (!s.ok() && !keys.empty()) {
    return Status::InvalidArgument("sqlite table " + physical_ + " in " + path_ +
                                   " has no primary key (" + Join(keys) +
                                   ") to upsert by; it was created without `key`: drop the table "
                                   "or write to another one (" + s.message() + ")");
  }
  return s;
}

Result<std::vector<StoredPosition>> SqliteSink::LoadPositions() {
  sqlite3_stmt* stmt = nullptr;
  RETURN_IF_ERROR(Prepare(
      "SELECT source, partition, offset FROM _sluice_positions WHERE pipeline = ?1", &stmt));
  sqlite3_bind_text(stmt, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<StoredPosition> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    out.push_back(StoredPosition{reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                                 sqlite3_column_int(stmt, 1), sqlite3_column_int64(stmt, 2)});
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Status::IOError("reading positions from " + path_ + ": " + sqlite3_errmsg(db_));
  return out;
}

Result<std::string> SqliteSink::LoadState() {
  sqlite3_stmt* stmt = nullptr;
  RETURN_IF_ERROR(Prepare("SELECT state FROM _sluice_state WHERE pipeline = ?1", &stmt));
  sqlite3_bind_text(stmt, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
  std::string out;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const void* data = sqlite3_column_blob(stmt, 0);
    if (data) out.assign(static_cast<const char*>(data), static_cast<size_t>(sqlite3_column_bytes(stmt, 0)));
    rc = SQLITE_DONE;
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Status::IOError("reading state from " + path_ + ": " + sqlite3_errmsg(db_));
  return out;
}

Status SqliteSink::Bind(sqlite3_stmt* stmt, int index, const Value& v, bool copy) {
  int rc = SQLITE_OK;
  switch (v.type()) {
    case Type::kNull: rc = sqlite3_bind_null(stmt, index); break;
    case Type::kBool: rc = sqlite3_bind_int(stmt, index, v.bool_value() ? 1 : 0); break;
    case Type::kInt64: rc = sqlite3_bind_int64(stmt, index, v.int_value()); break;
    case Type::kDouble: rc = sqlite3_bind_double(stmt, index, v.double_value()); break;
    case Type::kString:
      rc = sqlite3_bind_text(stmt, index, v.string_value().data(),
                             static_cast<int>(v.string_value().size()),
                             copy ? SQLITE_TRANSIENT : SQLITE_STATIC);
      break;
    case Type::kTimestamp: {
      char buf[19];
      if (const size_t n = FormatDateTimeSeconds(v.time_value().micros, buf); n > 0) {
        rc = sqlite3_bind_text(stmt, index, buf, static_cast<int>(n), SQLITE_TRANSIENT);
        break;
      }
      std::string text = SqlText(v);
      rc = sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
      break;
    }
  }
  if (rc != SQLITE_OK) {
    last_rc_ = rc;
    last_message_ = sqlite3_errstr(rc);
    return Status::Internal(std::string("sqlite bind: ") + last_message_);
  }
  return Status::OK();
}

Status SqliteSink::Step(sqlite3_stmt* stmt, const char* what) {
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (rc != SQLITE_DONE) {
    last_rc_ = rc;
    last_message_ = sqlite3_errmsg(db_);
    return Status::IOError(std::string("sqlite ") + what + " in " + path_ + ": " + last_message_);
  }
  return Status::OK();
}

Status SqliteSink::WriteDelta(const DeltaRow& row) {
  const AggregateSpec& a = *ctx_.aggregate;
  int p = 0;
  if (a.emit_window_start) RETURN_IF_ERROR(Bind(upsert_, ++p, Value::TimeMicros(row.window_start)));
  if (a.emit_window_end) {
    RETURN_IF_ERROR(Bind(upsert_, ++p, Value::TimeMicros(row.window_start + a.window_micros)));
  }
  for (const auto& k : row.keys) RETURN_IF_ERROR(Bind(upsert_, ++p, k, false));
  // The values stay alive until the step: strings are bound without a copy.
  std::vector<Value>& values = delta_values_;
  values.clear();
  for (size_t i = 0; i < a.metrics.size(); ++i) {
    const MetricSpec& m = a.metrics[i];
    FunctionOf(m).stored_values(m, row.metrics[i], &values);
  }
  for (const Value& v : values) RETURN_IF_ERROR(Bind(upsert_, ++p, v, false));
  sqlite3_set_last_insert_rowid(db_, 0);
  RETURN_IF_ERROR(Step(upsert_, "upsert"));
  CountStep();
  return Status::OK();
}

void SqliteSink::CountStep() {
  // An upsert that updates sets no rowid (only an INSERT does, and rowids are positive), and
  // ON CONFLICT DO NOTHING changes nothing.
  if (sqlite3_last_insert_rowid(db_) != 0) {
    ++counts_.inserted;
  } else if (sqlite3_changes(db_) > 0) {
    ++counts_.updated;
  } else {
    ++counts_.unchanged;
  }
}

Status SqliteSink::WriteRow(const std::vector<Value>& row) {
  for (size_t slot : key_slots_) {
    if (slot < row.size() && row[slot].is_null()) {
      last_rc_ = SQLITE_CONSTRAINT;
      last_message_ = "key column " + ctx_.output.field(slot).name + " is null";
      return Status::InvalidArgument("sqlite table " + table_ + ": key column " +
                                     ctx_.output.field(slot).name +
                                     " is null in a row; a key cannot be null (give it a "
                                     "default with coalesce)");
    }
  }
  for (size_t i = 0; i < row.size(); ++i) {
    RETURN_IF_ERROR(Bind(upsert_, static_cast<int>(i + 1), row[i], false));
  }
  sqlite3_set_last_insert_rowid(db_, 0);
  RETURN_IF_ERROR(Step(upsert_, "insert"));
  CountStep();
  return Status::OK();
}

Status SqliteSink::Query(const std::string& sql, const std::vector<std::string>& params,
                         const std::function<void(sqlite3_stmt*)>& row) {
  sqlite3_stmt* stmt = nullptr;
  RETURN_IF_ERROR(Prepare(sql, &stmt));
  for (size_t i = 0; i < params.size(); ++i) {
    sqlite3_bind_text(stmt, static_cast<int>(i + 1), params[i].data(),
                      static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
  }
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) {
    return Status::IOError("sqlite " + path_ + ": " + sqlite3_errmsg(db_) + " (in: " + sql.substr(0, 120) + ")");
  }
  return Status::OK();
}

namespace {

std::string ColumnText(sqlite3_stmt* stmt, int i) {
  const unsigned char* t = sqlite3_column_text(stmt, i);
  return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(stmt, i)))
           : std::string();
}

}  // namespace

Result<std::map<std::string, int64_t>> SqliteSink::CountDeadLetters() {
  std::map<std::string, int64_t> out;
  RETURN_IF_ERROR(Query(
      "SELECT reason, count(*) FROM _sluice_dead_letters WHERE pipeline = ?1 GROUP BY reason",
      {ctx_.pipeline},
      [&](sqlite3_stmt* r) { out[ColumnText(r, 0)] += sqlite3_column_int64(r, 1); }));
  return out;
}

Result<SinkInventory> SqliteSink::Inventory(const InventoryOptions& options) {
  if (db_) return Status::Internal("sqlite sink: Inventory() on an opened sink");
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    return Status::NotFound("sqlite database " + path_ + " does not exist");
  }
  if (!std::filesystem::is_regular_file(path_, ec)) {
    return Status::InvalidArgument("sqlite database " + path_ + " is not a regular file");
  }
  // Read-only: nothing is created or changed, and a running pipeline's writes are not held up
  // beyond the moment each query reads.
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    Status s = Status::IOError("cannot open sqlite database " + path_ + ": " +
                               (db_ ? sqlite3_errmsg(db_) : "out of memory"));
    Close();
    return s;
  }
  sqlite3_busy_timeout(db_, 10000);
  Result<SinkInventory> out = [&]() -> Result<SinkInventory> {
    SinkInventory inv;
    inv.location = "sqlite:" + path_;
    inv.dead_letter_location = DeadLetterLocation();
    std::vector<std::string> tables;
    Status s = Query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('_sluice_positions', "
        "'_sluice_state', '_sluice_tasks', '_sluice_dead_letters') ORDER BY name",
        {}, [&](sqlite3_stmt* r) { tables.push_back(ColumnText(r, 0)); });
    if (!s.ok()) {
      // "file is not a database" and the like: the URI names something that is no sluice sink.
      return Status::InvalidArgument(path_ + " is not an SQLite database sluice can read: " + s.message());
    }
    if (options.positions_only) {
      // The named pipeline's positions only: no scan of the other tables for pipeline names.
      const bool has_positions = std::find(tables.begin(), tables.end(), "_sluice_positions") != tables.end();
      return PositionsOnlyInventory(std::move(inv), options, "sqlite sink", has_positions, [&] {
        ctx_.pipeline = options.pipeline;
        return LoadPositions();
      });
    }
    std::string union_sql;
    for (const auto& t : tables) {
      union_sql += (union_sql.empty() ? "" : " UNION ") + std::string("SELECT pipeline FROM ") + t;
    }
    std::set<std::string> names;
    if (!union_sql.empty()) {
      RETURN_IF_ERROR(Query(union_sql, {}, [&](sqlite3_stmt* r) { names.insert(ColumnText(r, 0)); }));
    }
    for (const auto& name : names) {
      if (!options.pipeline.empty() && name != options.pipeline) continue;
      ctx_.pipeline = name;
      ASSIGN_OR_RETURN(PipelineInventory p, InventoryOf(tables, options));
      inv.pipelines.push_back(std::move(p));
    }
    return inv;
  }();
  ctx_.pipeline.clear();
  Close();
  return out;
}

Result<PipelineInventory> SqliteSink::InventoryOf(const std::vector<std::string>& tables,
                                                  const InventoryOptions& options) {
  auto has = [&](const char* t) { return std::find(tables.begin(), tables.end(), t) != tables.end(); };
  PipelineInventory p;
  p.pipeline = ctx_.pipeline;
  std::string last;  // "YYYY-MM-DD HH:MM:SS", UTC, as datetime('now') wrote it
  auto latest = [&](sqlite3_stmt* r) {
    const std::string t = ColumnText(r, 0);
    if (t > last) last = t;
  };
  if (has("_sluice_positions")) {
    ASSIGN_OR_RETURN(p.positions, LoadPositions());
    RETURN_IF_ERROR(Query("SELECT max(updated_at) FROM _sluice_positions WHERE pipeline = ?1",
                          {ctx_.pipeline}, latest));
  }
  if (has("_sluice_state")) {
    bool stored = false;
    RETURN_IF_ERROR(Query("SELECT 1 FROM _sluice_state WHERE pipeline = ?1", {ctx_.pipeline},
                          [&](sqlite3_stmt*) { stored = true; }));
    if (stored) {
      ASSIGN_OR_RETURN(std::string state, LoadState());
      p.state_bytes = static_cast<int64_t>(state.size());
    }
    RETURN_IF_ERROR(Query("SELECT max(updated_at) FROM _sluice_state WHERE pipeline = ?1",
                          {ctx_.pipeline}, latest));
  }
  if (has("_sluice_tasks")) {
    // State kept per partition (tasks): its size is the sum of the tasks' states.
    RETURN_IF_ERROR(Query("SELECT count(*), sum(length(state)) FROM _sluice_tasks WHERE pipeline = ?1",
                          {ctx_.pipeline}, [&](sqlite3_stmt* r) {
                            if (sqlite3_column_int64(r, 0) > 0) {
                              p.state_bytes = std::max<int64_t>(p.state_bytes, 0) + sqlite3_column_int64(r, 1);
                            }
                          }));
    RETURN_IF_ERROR(Query("SELECT max(updated_at) FROM _sluice_tasks WHERE pipeline = ?1",
                          {ctx_.pipeline}, latest));
  }
  if (!last.empty()) {
    if (auto t = ParseTimestamp(last)) p.last_checkpoint_micros = *t;
  }
  if (has("_sluice_dead_letters")) {
    p.dead_letters_stored = true;
    ASSIGN_OR_RETURN(p.dead_letters.by_reason, CountDeadLetters());
    const auto ranked = p.dead_letters.Ranked();
    for (size_t i = 0; i < ranked.size() && i < options.sample_reasons; ++i) {
      auto& samples = p.dead_letters.samples[ranked[i].first];
      RETURN_IF_ERROR(Query(
          "SELECT source, partition, offset, time, payload, payload_bytes, truncated FROM "
          "_sluice_dead_letters WHERE pipeline = ?1 AND reason = ?2 ORDER BY time DESC, source, "
          "partition, offset DESC, seq DESC LIMIT " + std::to_string(options.samples_per_reason),
          {ctx_.pipeline, ranked[i].first}, [&](sqlite3_stmt* r) {
            StoredDeadLetter d;
            d.source = ColumnText(r, 0);
            d.partition = sqlite3_column_int(r, 1);
            d.offset = sqlite3_column_int64(r, 2);
            d.reason = ranked[i].first;
            d.time = ColumnText(r, 3);
            d.payload = ColumnText(r, 4);
            d.payload_bytes = sqlite3_column_int64(r, 5);
            d.truncated = sqlite3_column_int(r, 6) != 0;
            samples.push_back(std::move(d));
          }));
    }
  }
  return p;
}

std::string SqliteSink::DeadLetterLocation() const {
  return "table _sluice_dead_letters in " + path_;
}

Status SqliteSink::WriteDeadLetter(const DeadLetter& d) {
  const StoredPayload p = EncodeDeadLetterPayload(d.payload);
  auto text = [&](int i, const std::string& v) {
    sqlite3_bind_text(dead_letter_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  };
  text(1, ToValidUtf8(ctx_.pipeline));
  text(2, ToValidUtf8(d.source));
  sqlite3_bind_int(dead_letter_, 3, d.partition);
  sqlite3_bind_int64(dead_letter_, 4, d.offset);
  sqlite3_bind_int(dead_letter_, 5, d.seq);
  text(6, ToValidUtf8(d.reason));
  text(7, FormatIsoUtc(d.time_micros));
  text(8, p.json);
  if (p.base64.empty()) {
    sqlite3_bind_null(dead_letter_, 9);
  } else {
    text(9, p.base64);
  }
  sqlite3_bind_int64(dead_letter_, 10, p.bytes);
  sqlite3_bind_int(dead_letter_, 11, p.truncated ? 1 : 0);
  text(12, p.sha256);
  sqlite3_bind_int64(dead_letter_, 13, d.generation);
  return Step(dead_letter_, "dead-letter insert");
}

bool SqliteSink::IsRowRejection() const {
  switch (last_rc_ & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
      return true;
    default:
      return false;
  }
}

Status SqliteSink::WriteResults(const Checkpoint& cp, std::vector<DeadLetter>* rejected) {
  // One statement per row: a refused row is undone alone, so no bisecting is needed.
  auto write_all = [&](size_t n, const std::function<Status(size_t)>& write,
                       std::vector<RejectedItem>* out) -> Status {
    for (size_t i = 0; i < n; ++i) {
      last_rc_ = SQLITE_OK;
      Status s = write(i);
      if (s.ok()) continue;
      if (!IsRowRejection()) return s;
      out->push_back({i, "sqlite error " + std::to_string(last_rc_) + ": " + last_message_});
    }
    return Status::OK();
  };
  std::vector<RejectedItem> deltas, rows;
  if (cp.deltas) {
    RETURN_IF_ERROR(write_all(cp.deltas->size(),
                              [&](size_t i) { return WriteDelta((*cp.deltas)[i]); }, &deltas));
  }
  if (cp.rows) {
    RETURN_IF_ERROR(
        write_all(cp.rows->size(), [&](size_t i) { return WriteRow((*cp.rows)[i]); }, &rows));
  }
  if (deltas.empty() && rows.empty()) return Status::OK();
  const int64_t now = WallClockMicros();
  *rejected = RejectedLetters(ctx_, cp, deltas, rows, now, now);
  LogRejected("sqlite", cp.id, *rejected);
  return Status::OK();
}

Status SqliteSink::Commit(const Checkpoint& cp) {
  counts_ = SinkRowCounts{};
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  size_t rejected_count = 0;
  Status s = [&]() -> Status {
    // First: a process that lost a task to another commits nothing (its results included).
    RETURN_IF_ERROR(CommitTasks(cp));
    std::vector<DeadLetter> rejected;
    RETURN_IF_ERROR(WriteResults(cp, &rejected));
    for (const auto& d : rejected) RETURN_IF_ERROR(WriteDeadLetter(d));
    rejected_count = rejected.size();
    for (const auto& pos : cp.positions) {
      sqlite3_bind_text(position_, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(position_, 2, pos.source.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(position_, 3, pos.partition);
      sqlite3_bind_int64(position_, 4, pos.offset);
      RETURN_IF_ERROR(Step(position_, "position update"));
    }
    if (cp.dead_letters) {
      for (const auto& d : *cp.dead_letters) RETURN_IF_ERROR(WriteDeadLetter(d));
    }
    if (cp.state) {
      sqlite3_bind_text(state_, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob64(state_, 2, cp.state->data(), cp.state->size(), SQLITE_TRANSIENT);
      RETURN_IF_ERROR(Step(state_, "state update"));
    }
    return Exec("COMMIT");
  }();
  if (s.ok()) rows_rejected_ += static_cast<int64_t>(rejected_count);
  if (!s.ok()) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Tasks

namespace {

int64_t OrNone(sqlite3_stmt* stmt, int i) {
  return sqlite3_column_type(stmt, i) == SQLITE_NULL ? kNoWatermark : sqlite3_column_int64(stmt, i);
}

void BindTime(sqlite3_stmt* stmt, int i, int64_t t) {
  if (t == kNoWatermark) {
    sqlite3_bind_null(stmt, i);
  } else {
    sqlite3_bind_int64(stmt, i, t);
  }
}

}  // namespace

Status SqliteSink::CheckNoLegacyState() {
  bool legacy = false;
  RETURN_IF_ERROR(Query("SELECT 1 FROM _sluice_state WHERE pipeline = ?1 AND length(state) > 0", {ctx_.pipeline},
                        [&](sqlite3_stmt*) { legacy = true; }));
  if (!legacy) return Status::OK();
  return Status::FailedPrecondition(
      "sqlite " + path_ + ": pipeline " + ctx_.pipeline +
      " has a state row in _sluice_state next to its per-partition rows in _sluice_tasks: a process of an "
      "older sluice (without per-partition state) wrote it after the state moved into tasks, and it would be "
      "ignored (its held records lost, what it applied applied again): every process of a pipeline must run "
      "a version with per-partition state: stop them all, then start; the row is left as it is (delete it "
      "to go on from the task rows)");
}

Status SqliteSink::MigrateLegacyState() {
  auto pending = [&]() -> Result<std::string> {
    bool tasks = false;
    RETURN_IF_ERROR(Query("SELECT 1 FROM _sluice_tasks WHERE pipeline = ?1 LIMIT 1", {ctx_.pipeline},
                          [&](sqlite3_stmt*) { tasks = true; }));
    if (tasks) {
      RETURN_IF_ERROR(CheckNoLegacyState());
      return std::string();
    }
    return LoadState();
  };
  ASSIGN_OR_RETURN(std::string legacy, pending());
  if (legacy.empty()) return Status::OK();
  // Another process of the pipeline may migrate at the same time: checked again inside.
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  size_t moved = 0, held = 0;
  Status st = [&]() -> Status {
    ASSIGN_OR_RETURN(std::string data, pending());
    if (data.empty()) return Status::OK();
    ASSIGN_OR_RETURN(WindowState old, WindowState::Parse(data, ctx_.aggregate));
    if (!old.open.empty()) {
      return Status::FailedPrecondition(
          "sqlite " + path_ + ": the stored state of pipeline " + ctx_.pipeline + " holds open windows (" +
          std::to_string(old.open.size()) + " groups) kept by one process (append mode without "
          "[source] keyed_by), which cannot be split by partition: run it without keyed_by until those windows "
          "are written (a bounded input read to its end writes them all), then start it with keyed_by "
          "(deleting the row would also lose its watermarks and closed bound, so windows already written "
          "could be written again)");
    }
    const int64_t delay = ctx_.aggregate ? ctx_.aggregate->watermark_delay_micros : 0;
    sqlite3_stmt* insert = nullptr;
    RETURN_IF_ERROR(Prepare(
        "INSERT INTO _sluice_tasks (pipeline, source, partition, fence, owner, max_event_time, watermark, "
        "enforced, idle, state, updated_at) VALUES (?1, ?2, ?3, 0, '', ?4, ?5, ?6, 0, ?7, datetime('now'))",
        &insert));
    Status s;
    for (const auto& [id, task] : SplitLegacyState(old, ctx_.source, delay)) {
      const std::string blob = task.Serialize(ctx_.aggregate);
      sqlite3_bind_text(insert, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(insert, 2, id.source.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(insert, 3, id.partition);
      BindTime(insert, 4, task.progress.max_event_time);
      BindTime(insert, 5, task.progress.watermark);
      BindTime(insert, 6, task.progress.enforced);
      sqlite3_bind_blob64(insert, 7, blob.data(), blob.size(), SQLITE_TRANSIENT);
      s = Step(insert, "task migration");
      if (!s.ok()) break;
      ++moved;
      held += task.held.size();
    }
    sqlite3_finalize(insert);
    RETURN_IF_ERROR(s);
    return Query("DELETE FROM _sluice_state WHERE pipeline = ?1", {ctx_.pipeline}, [](sqlite3_stmt*) {});
  }();
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok()) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
    return st.WithContext("moving the stored state into tasks");
  }
  if (moved > 0) {
    spdlog::info("sqlite {}: pipeline {}: the stored state now lives per partition in _sluice_tasks ({} "
                 "task(s), {} held record(s))", path_, ctx_.pipeline, moved, held);
  }
  return Status::OK();
}

Result<TaskClaim> SqliteSink::ClaimTask(const TaskId& task, const OwnerInfo& owner) {
  if (!db_) return Status::Internal("sqlite sink: ClaimTask() before Open()");
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  TaskClaim claim;
  Status st = [&]() -> Status {
    const std::string pipeline = ctx_.pipeline, partition = std::to_string(task.partition);
    const std::string who = owner.ToString();
    sqlite3_stmt* stmt = nullptr;
    RETURN_IF_ERROR(Prepare(
        "INSERT INTO _sluice_tasks (pipeline, source, partition, fence, owner, updated_at) VALUES "
        "(?1, ?2, ?3, 1, ?4, datetime('now')) ON CONFLICT (pipeline, source, partition) DO UPDATE SET "
        "fence = fence + 1, owner = excluded.owner, updated_at = excluded.updated_at",
        &stmt));
    sqlite3_bind_text(stmt, 1, pipeline.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, task.source.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(stmt, 3, task.partition);
    sqlite3_bind_text(stmt, 4, who.c_str(), -1, SQLITE_TRANSIENT);
    Status s = Step(stmt, "task claim");
    sqlite3_finalize(stmt);
    RETURN_IF_ERROR(s);
    bool found = false;
    RETURN_IF_ERROR(Query("SELECT fence, state FROM _sluice_tasks WHERE pipeline = ?1 AND source = ?2 AND "
                          "partition = ?3",
                          {pipeline, task.source, partition}, [&](sqlite3_stmt* r) {
                            found = true;
                            claim.fence = sqlite3_column_int64(r, 0);
                            if (const void* data = sqlite3_column_blob(r, 1)) {
                              claim.state.assign(static_cast<const char*>(data),
                                                 static_cast<size_t>(sqlite3_column_bytes(r, 1)));
                            }
                          }));
    if (!found) return Status::Internal("sqlite " + path_ + ": the claimed task is not there");
    return Query("SELECT partition, offset FROM _sluice_positions WHERE pipeline = ?1 AND source = ?2 AND "
                 "partition IN (?3, ?4)",
                 {pipeline, task.source, partition, std::to_string(kGenerationPartitionBase + task.partition)},
                 [&](sqlite3_stmt* r) {
                   claim.positions[sqlite3_column_int(r, 0)] = sqlite3_column_int64(r, 1);
                 });
  }();
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok()) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
    return st;
  }
  return claim;
}

Result<std::vector<TaskRow>> SqliteSink::LoadTaskProgress() {
  if (!db_) return Status::Internal("sqlite sink: LoadTaskProgress() before Open()");
  std::vector<TaskRow> out;
  // Opened for reading (sluice status), a database no task was ever claimed in has no table.
  bool table = false;
  RETURN_IF_ERROR(Query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sluice_tasks'", {},
                        [&](sqlite3_stmt*) { table = true; }));
  if (!table) return out;
  RETURN_IF_ERROR(Query(
      "SELECT source, partition, fence, owner, max_event_time, watermark, enforced, idle, "
      "CAST(strftime('%s', updated_at) AS INTEGER) FROM _sluice_tasks WHERE pipeline = ?1 "
      "ORDER BY source, partition",
      {ctx_.pipeline}, [&](sqlite3_stmt* r) {
        TaskRow row;
        row.task = TaskId{ColumnText(r, 0), sqlite3_column_int(r, 1)};
        row.fence = sqlite3_column_int64(r, 2);
        row.owner = ColumnText(r, 3);
        row.progress.max_event_time = OrNone(r, 4);
        row.progress.watermark = OrNone(r, 5);
        row.progress.enforced = OrNone(r, 6);
        row.progress.idle = sqlite3_column_int(r, 7) != 0;
        row.updated_micros = sqlite3_column_int64(r, 8) * 1'000'000;
        out.push_back(std::move(row));
      }));
  return out;
}

Status SqliteSink::CommitTasks(const Checkpoint& cp) {
  if (cp.tasks.empty()) return Status::OK();
  RETURN_IF_ERROR(CheckNoLegacyState());
  sqlite3_stmt* fence = nullptr;
  RETURN_IF_ERROR(Prepare("SELECT fence FROM _sluice_tasks WHERE pipeline = ?1 AND source = ?2 AND partition = ?3",
                          &fence));
  Status s;
  for (const TaskCommit& t : cp.tasks) {
    sqlite3_bind_text(fence, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(fence, 2, t.task.source.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(fence, 3, t.task.partition);
    const int rc = sqlite3_step(fence);
    const int64_t stored = rc == SQLITE_ROW ? sqlite3_column_int64(fence, 0) : -1;
    sqlite3_reset(fence);
    sqlite3_clear_bindings(fence);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      s = Status::IOError("sqlite " + path_ + ": reading the fence of " + t.task.source + "[" +
                          std::to_string(t.task.partition) + "]: " + sqlite3_errmsg(db_));
      break;
    }
    if (stored != t.fence) {
      s = Status::Fenced("sqlite " + path_ + ": " + t.task.source + "[" + std::to_string(t.task.partition) +
                         "] of pipeline " + ctx_.pipeline + " was claimed by another process (fence " +
                         std::to_string(stored) + ", this one holds " + std::to_string(t.fence) + ")");
      break;
    }
  }
  sqlite3_finalize(fence);
  RETURN_IF_ERROR(s);
  sqlite3_stmt* progress = nullptr;
  RETURN_IF_ERROR(Prepare(
      "UPDATE _sluice_tasks SET max_event_time = ?4, watermark = ?5, enforced = ?6, idle = ?7, "
      "state = CASE WHEN ?8 THEN ?9 ELSE state END, owner = CASE WHEN ?10 THEN '' ELSE owner END, "
      "updated_at = datetime('now') WHERE pipeline = ?1 AND source = ?2 AND partition = ?3",
      &progress));
  for (const TaskCommit& t : cp.tasks) {
    sqlite3_bind_text(progress, 1, ctx_.pipeline.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(progress, 2, t.task.source.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(progress, 3, t.task.partition);
    BindTime(progress, 4, t.progress.max_event_time);
    BindTime(progress, 5, t.progress.watermark);
    BindTime(progress, 6, t.progress.enforced);
    sqlite3_bind_int(progress, 7, t.progress.idle ? 1 : 0);
    sqlite3_bind_int(progress, 8, t.state ? 1 : 0);
    if (t.state) {
      sqlite3_bind_blob64(progress, 9, t.state->data(), t.state->size(), SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_null(progress, 9);
    }
    sqlite3_bind_int(progress, 10, t.release ? 1 : 0);
    s = Step(progress, "task update");
    if (!s.ok()) break;
  }
  sqlite3_finalize(progress);
  return s;
}

}  // namespace sluice
