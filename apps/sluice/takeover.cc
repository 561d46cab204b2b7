// `sluice takeover PIPELINE --from-position ... [--apply]`: lets sluice go on with a results
// table another job (the Spark job) filled. Prints the plan first; changes nothing without
// --apply.

#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "commands.h"
#include "connectors/mysql/mysql_connection.h"
#include "connectors/mysql/mysql_sql.h"
#include "connectors/sqlite/sqlite_sink.h"
#include "core/uri.h"
#include "operators/aggregate_function.h"
#include "runtime/registry.h"

namespace sluice::cli {
namespace {

struct Column {
  std::string name;
  bool not_null = false;
  bool has_default = false;
};

/// The few things the plan needs from the database, for SQLite and MySQL.
class Db {
 public:
  virtual ~Db() = default;
  virtual std::string Q(const std::string& name) const = 0;
  virtual std::string Literal(const std::string& text) const = 0;
  /// "table", "view" or "" (none).
  virtual Result<std::string> Kind(const std::string& name) = 0;
  virtual Result<std::vector<Column>> Columns(const std::string& table) = 0;
  virtual Result<int64_t> Scalar(const std::string& sql) = 0;
  /// True when a primary or unique key covers exactly `keys`.
  virtual Result<bool> HasUniqueKey(const std::string& table, const std::vector<std::string>& keys) = 0;
  virtual std::string UniqueKeySql(const std::string& table, const std::vector<std::string>& keys) const = 0;
  virtual std::string RenameSql(const std::string& from, const std::string& to) const = 0;
  /// Runs `statements` (SQLite: in one transaction).
  virtual Status Apply(const std::vector<std::string>& statements) = 0;
};

class SqliteDb : public Db {
 public:
  static Result<std::unique_ptr<Db>> Open(const std::string& path) {
    std::unique_ptr<SqliteDb> d(new SqliteDb());
    d->path_ = path;
    if (sqlite3_open_v2(path.c_str(), &d->db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      return Status::IOError("cannot open sqlite database " + path + ": " +
                             (d->db_ ? sqlite3_errmsg(d->db_) : "out of memory"));
    }
    sqlite3_busy_timeout(d->db_, 10000);
    return std::unique_ptr<Db>(std::move(d));
  }
  ~SqliteDb() override {
    if (db_) sqlite3_close(db_);
  }
  std::string Q(const std::string& name) const override { return QuoteIdent(name); }
  std::string Literal(const std::string& v) const override {
    std::string out = "'";
    for (char c : v) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }
  Result<std::string> Kind(const std::string& name) override {
    std::string out;
    RETURN_IF_ERROR(Rows("SELECT type FROM sqlite_master WHERE type IN ('table', 'view') AND name = " +
                             Literal(name),
                         [&](sqlite3_stmt* s) { out = Text(s, 0); }));
    return out;
  }
  Result<std::vector<Column>> Columns(const std::string& table) override {
    std::vector<Column> out;
    RETURN_IF_ERROR(Rows("PRAGMA table_info(" + Q(table) + ")", [&](sqlite3_stmt* s) {
      out.push_back({Text(s, 1), sqlite3_column_int(s, 3) != 0,
                     sqlite3_column_type(s, 4) != SQLITE_NULL});
    }));
    return out;
  }
  Result<int64_t> Scalar(const std::string& sql) override {
    int64_t out = 0;
    RETURN_IF_ERROR(Rows(sql, [&](sqlite3_stmt* s) { out = sqlite3_column_int64(s, 0); }));
    return out;
  }
  Result<bool> HasUniqueKey(const std::string& table, const std::vector<std::string>& keys) override {
    std::vector<std::string> indexes;
    RETURN_IF_ERROR(Rows("PRAGMA index_list(" + Q(table) + ")", [&](sqlite3_stmt* s) {
      if (sqlite3_column_int(s, 2) != 0) indexes.push_back(Text(s, 1));
    }));
    const std::set<std::string> want(keys.begin(), keys.end());
    for (const auto& index : indexes) {
      std::set<std::string> have;
      RETURN_IF_ERROR(Rows("PRAGMA index_info(" + Q(index) + ")",
                           [&](sqlite3_stmt* s) { have.insert(Text(s, 2)); }));
      if (have == want) return true;
    }
    return false;
  }
  std::string UniqueKeySql(const std::string& table, const std::vector<std::string>& keys) const override {
    std::string cols;
    for (const auto& k : keys) cols += (cols.empty() ? "" : ", ") + Q(k);
    return "CREATE UNIQUE INDEX " + Q("_sluice_key_" + table) + " ON " + Q(table) + " (" + cols + ")";
  }
  std::string RenameSql(const std::string& from, const std::string& to) const override {
    return "ALTER TABLE " + Q(from) + " RENAME TO " + Q(to);
  }
  Status Apply(const std::vector<std::string>& statements) override {
    RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    for (const auto& sql : statements) {
      Status s = Exec(sql);
      if (!s.ok()) {
        (void)Exec("ROLLBACK");
        return s;
      }
    }
    return Exec("COMMIT");
  }

 private:
  SqliteDb() = default;
  static std::string Text(sqlite3_stmt* s, int i) {
    const unsigned char* t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  Status Rows(const std::string& sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      return Status::IOError("sqlite " + path_ + ": " + sqlite3_errmsg(db_) + " (in: " + sql + ")");
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return Status::IOError("sqlite " + path_ + ": " + sqlite3_errmsg(db_));
    return Status::OK();
  }
  Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return Status::IOError("sqlite " + path_ + ": " + msg + " (in: " + sql + ")");
    }
    return Status::OK();
  }
  std::string path_;
  sqlite3* db_ = nullptr;
};

class MysqlDb : public Db {
 public:
  static Result<std::unique_ptr<Db>> Open(const SinkConfig& config) {
    auto uri = mysql::ParseUri(config.uri, false);
    if (!uri.ok()) return uri.status();
    mysql::Connection::Options o;
    o.uri = *uri;
    o.password_file = config.options.GetString("password_file");
    std::unique_ptr<MysqlDb> d(new MysqlDb());
    ASSIGN_OR_RETURN(d->conn_, mysql::Connection::Open(o));
    return std::unique_ptr<Db>(std::move(d));
  }
  std::string Q(const std::string& name) const override { return mysql::QuoteIdentifier(name); }
  std::string Literal(const std::string& v) const override { return mysql::StringLiteral(v); }
  Result<std::string> Kind(const std::string& name) override {
    ASSIGN_OR_RETURN(mysql::Rows rows,
                     conn_->QueryAll("SELECT TABLE_TYPE FROM information_schema.TABLES WHERE "
                                     "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
                                     mysql::StringLiteral(name)));
    if (rows.empty()) return std::string();
    return std::string(rows[0][0].value_or("") == "VIEW" ? "view" : "table");
  }
  Result<std::vector<Column>> Columns(const std::string& table) override {
    ASSIGN_OR_RETURN(mysql::Rows rows,
                     conn_->QueryAll("SELECT COLUMN_NAME, IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM "
                                     "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                                     "AND TABLE_NAME = " + mysql::StringLiteral(table) +
                                     " ORDER BY ORDINAL_POSITION"));
    std::vector<Column> out;
    for (const auto& r : rows) {
      out.push_back({r[0].value_or(""), r[1].value_or("YES") == "NO",
                     r[2].has_value() ||
                         r[3].value_or("").find("auto_increment") != std::string::npos});
    }
    return out;
  }
  Result<int64_t> Scalar(const std::string& sql) override {
    ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(sql));
    if (rows.empty() || !rows[0][0]) return int64_t{0};
    return static_cast<int64_t>(std::stoll(*rows[0][0]));
  }
  Result<bool> HasUniqueKey(const std::string& table, const std::vector<std::string>& keys) override {
    ASSIGN_OR_RETURN(mysql::Rows rows,
                     conn_->QueryAll("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                                     "WHERE TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0 AND "
                                     "TABLE_NAME = " + mysql::StringLiteral(table)));
    std::map<std::string, std::set<std::string>> indexes;
    for (const auto& r : rows) indexes[r[0].value_or("")].insert(r[1].value_or(""));
    const std::set<std::string> want(keys.begin(), keys.end());
    for (const auto& [name, cols] : indexes) {
      if (cols == want) return true;
    }
    return false;
  }
  std::string UniqueKeySql(const std::string& table, const std::vector<std::string>& keys) const override {
    std::string cols;
    for (const auto& k : keys) cols += (cols.empty() ? "" : ", ") + Q(k);
    return "ALTER TABLE " + Q(table) + " ADD UNIQUE KEY `_sluice_key` (" + cols + ")";
  }
  std::string RenameSql(const std::string& from, const std::string& to) const override {
    return "RENAME TABLE " + Q(from) + " TO " + Q(to);
  }
  Status Apply(const std::vector<std::string>& statements) override {
    // DDL commits on its own in MySQL: each statement is one step, in an order where a failure
    // leaves a table the plan can be made again for.
    for (const auto& sql : statements) RETURN_IF_ERROR(conn_->Execute(sql));
    return Status::OK();
  }

 private:
  MysqlDb() = default;
  std::unique_ptr<mysql::Connection> conn_;
};

/// The SQL declaration of a column sluice adds: declared columns accept NULL (the rows already
/// there have no value sluice could know); internal ones as the sink creates them.
std::string SqliteType(Type t) {
  switch (t) {
    case Type::kInt64:
    case Type::kBool: return "INTEGER";
    case Type::kDouble: return "REAL";
    default: return "TEXT";
  }
}

struct Added {
  std::string name;
  std::string declaration;
};

Result<std::vector<StoredPosition>> ParsePositions(const std::vector<std::string>& items,
                                                   const std::string& source) {
  std::vector<StoredPosition> out;
  for (const auto& item : items) {
    std::string text = item, name = source;
    int32_t partition = 0;
    const size_t colon = text.find(':');
    if (colon != std::string::npos) {
      name = text.substr(0, colon);
      text = text.substr(colon + 1);
    }
    const size_t eq = text.find('=');
    auto number = [&](const std::string& s, auto* v) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
      return ec == std::errc() && end == s.data() + s.size() && *v >= 0;
    };
    int64_t offset = 0;
    if ((eq != std::string::npos && !number(text.substr(0, eq), &partition)) ||
        !number(eq == std::string::npos ? text : text.substr(eq + 1), &offset)) {
      return Status::InvalidArgument("--from-position expects OFFSET, PARTITION=OFFSET or "
                                     "SOURCE:PARTITION=OFFSET (numbers >= 0), got '" + item + "'");
    }
    if (name != source) {
      return Status::InvalidArgument("--from-position " + item + ": the pipeline has no source " +
                                     name + " (its source is " + source + ")");
    }
    for (const auto& p : out) {
      if (p.partition == partition) {
        return Status::InvalidArgument("--from-position: partition " + std::to_string(partition) +
                                       " is given twice");
      }
    }
    out.push_back({name, partition, offset});
  }
  return out;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

int RunTakeover(const Runner& runner, const TakeoverOptions& options) {
  const PipelineConfig& config = runner.config();
  const Plan& plan = runner.plan();
  auto fail = [](const Status& s, int code) {
    std::cerr << "sluice takeover: " << s.message() << "\n";
    return code;
  };
  if (options.from_positions.empty()) {
    return fail(Status::InvalidArgument(
                    "say where sluice starts reading " + config.source.name +
                    ": --from-position OFFSET (a file's byte offset, or partition 0's offset), "
                    "or PARTITION=OFFSET for each Kafka partition (the offsets the old job "
                    "committed). Reading from the beginning would add every record again to "
                    "the rows already in the table"),
                2);
  }
  auto positions = ParsePositions(options.from_positions, config.source.name);
  if (!positions.ok()) return fail(positions.status(), 2);
  const AggregateSpec* a = plan.aggregate.get();
  if (!a || a->append_mode) {
    return fail(Status::InvalidArgument("takeover is for update-mode aggregates (rows merged by "
                                        "key); this pipeline writes no such rows"),
                2);
  }
  const auto [scheme, path] = SplitUri(config.sink.uri);
  const bool is_sqlite = scheme == "sqlite";
  if (!is_sqlite && scheme != "mysql") {
    return fail(Status::InvalidArgument("takeover supports the sqlite: and mysql:// sinks, not " +
                                        config.sink.uri),
                2);
  }
  const std::string table = config.sink.table.empty() ? config.name : config.sink.table;
  SinkContext ctx;
  ctx.pipeline = config.name;
  ctx.aggregate = a;
  ctx.output = plan.OutputSchema();
  ctx.key_columns = a->KeyColumns();

  // What the sink would create: declared columns with their SQL declaration, then internal ones.
  std::vector<Added> declared, internal;
  if (is_sqlite) {
    for (const auto& f : ctx.output.fields()) declared.push_back({f.name, SqliteType(f.type)});
    for (const auto& m : a->metrics) {
      for (const StoredColumn& c : FunctionOf(m).stored_columns(m)) {
        if (!c.hidden) continue;
        internal.push_back(
            {c.name, SqliteType(c.type) + std::string(c.not_null_default_zero ? " NOT NULL DEFAULT 0" : "")});
      }
    }
  } else {
    auto types = mysql::ParseColumnTypes(config.sink.options.GetString("column_types"));
    if (!types.ok()) return fail(types.status(), 2);
    auto sql = mysql::TableSql::Make(ctx, table, *types);
    if (!sql.ok()) return fail(sql.status(), 2);
    const std::vector<std::string> names = InternalColumnNames(a);
    for (const auto& c : sql->columns()) {
      const bool is_internal = std::find(names.begin(), names.end(), c.name) != names.end();
      if (is_internal) {
        internal.push_back({c.name, c.type + c.attributes});
      } else {
        declared.push_back({c.name, c.type});
      }
    }
  }

  auto db = is_sqlite ? SqliteDb::Open(path) : MysqlDb::Open(config.sink);
  if (!db.ok()) return fail(db.status(), 1);
  Db& d = **db;
  const std::string physical = internal.empty() ? table : InternalTableName(table);
  auto kind = d.Kind(table);
  if (!kind.ok()) return fail(kind.status(), 1);
  auto physical_kind = d.Kind(physical);
  if (!physical_kind.ok()) return fail(physical_kind.status(), 1);
  if (kind->empty()) {
    return fail(Status::NotFound("there is no table " + table + " in " + config.sink.uri +
                                 " to take over; `sluice run` creates it"),
                1);
  }
  if (*kind == "view" || (physical != table && !physical_kind->empty())) {
    return fail(Status::InvalidArgument(table + " in " + config.sink.uri +
                                        " is already sluice's (" + physical +
                                        " exists); nothing to take over"),
                1);
  }
  auto columns = d.Columns(table);
  if (!columns.ok()) return fail(columns.status(), 1);
  auto rows = d.Scalar("SELECT COUNT(*) FROM " + d.Q(table));
  if (!rows.ok()) return fail(rows.status(), 1);
  auto has = [&](const std::string& name) {
    return std::any_of(columns->begin(), columns->end(),
                       [&](const Column& c) { return c.name == name; });
  };
  const std::vector<std::string> keys = a->KeyColumns();
  std::vector<std::string> missing_keys, kept, added_declared, no_source, blocked;
  for (const auto& k : keys) {
    if (!has(k)) missing_keys.push_back(k);
  }
  for (const auto& c : declared) (has(c.name) ? kept : added_declared).push_back(c.name);
  for (const auto& c : *columns) {
    const bool written = std::any_of(declared.begin(), declared.end(),
                                     [&](const Added& x) { return x.name == c.name; });
    if (written) continue;
    no_source.push_back(c.name);
    if (c.not_null && !c.has_default) blocked.push_back(c.name);
  }

  for (const auto& c : internal) {
    if (has(c.name)) {
      std::cerr << "sluice takeover: " << table << " already holds sluice's internal column "
                << c.name << " (an older sluice's layout): `sluice run` moves it out of sight "
                << "by itself; nothing to take over\n";
      return 1;
    }
  }
  auto positions_kind = d.Kind("_sluice_positions");
  if (!positions_kind.ok()) return fail(positions_kind.status(), 1);
  if (!positions_kind->empty()) {
    auto stored = d.Scalar("SELECT COUNT(*) FROM " + d.Q("_sluice_positions") +
                           " WHERE pipeline = " + d.Literal(config.name));
    if (!stored.ok()) return fail(stored.status(), 1);
    if (*stored > 0) {
      return fail(Status::InvalidArgument(
                      "pipeline " + config.name + " already has positions in " +
                      config.sink.uri + " (it ran, or was taken over): nothing to take over"),
                  1);
    }
  }
  std::ostringstream out;
  out << "Takeover plan for pipeline " << config.name << ": " << config.sink.uri << " table "
      << table << " (" << *rows << " rows, " << columns->size() << " columns)\n";
  std::vector<std::string> problems;
  if (!missing_keys.empty()) {
    problems.push_back("key column(s) " + Join(missing_keys) +
                       " are not in the table: which old row is which key cannot be told");
  }
  if (!blocked.empty()) {
    problems.push_back("column(s) " + Join(blocked) +
                       " have no source in this pipeline and are NOT NULL without a default: "
                       "rows sluice inserts could not leave them empty; give them a default "
                       "(or allow NULL) first");
  }
  out << "  columns the pipeline writes, already there: " << (kept.empty() ? "none" : Join(kept))
      << "\n";
  out << "  columns the pipeline writes, added: "
      << (added_declared.empty() ? "none" : Join(added_declared))
      << (added_declared.empty() ? "" : " (NULL in the rows already there: sluice has no value for them)")
      << "\n";
  out << "  columns with no source in this pipeline, left as they are: "
      << (no_source.empty() ? "none" : Join(no_source))
      << (no_source.empty() ? "" : " (sluice never writes them; rows it inserts get NULL or the column's default)")
      << "\n";
  std::vector<std::string> statements;
  for (const auto& c : declared) {
    if (!has(c.name) && std::find(missing_keys.begin(), missing_keys.end(), c.name) == missing_keys.end()) {
      statements.push_back("ALTER TABLE " + d.Q(table) + " ADD COLUMN " + d.Q(c.name) + " " +
                           c.declaration);
    }
  }
  if (!internal.empty()) {
    std::vector<std::string> names;
    for (const auto& c : internal) {
      names.push_back(c.name);
      statements.push_back("ALTER TABLE " + d.Q(table) + " ADD COLUMN " + d.Q(c.name) + " " +
                           c.declaration);
    }
    out << "  internal state for exact merges: " << Join(names)
        << " added (empty in the rows already there), the table renamed to " << physical
        << " and " << table
        << " made a view of every other column, so SELECT * on it shows no internal column\n";
    out << "    a row already there that sluice's first records also fall into keeps adding up "
           "its counts and sums; its averages and last() values are then those of sluice's "
           "records only: start at a window boundary to have none\n";
  }
  auto unique = d.HasUniqueKey(table, keys);
  if (!unique.ok()) return fail(unique.status(), 1);
  if (missing_keys.empty()) {
    if (*unique) {
      out << "  key (" << Join(keys) << "): a unique key is there\n";
    } else {
      std::string all_set, any_null;
      for (const auto& k : keys) {
        all_set += (all_set.empty() ? "" : " AND ") + d.Q(k) + " IS NOT NULL";
        any_null += (any_null.empty() ? "" : " OR ") + d.Q(k) + " IS NULL";
      }
      std::string group;
      for (const auto& k : keys) group += (group.empty() ? "" : ", ") + d.Q(k);
      auto dups = d.Scalar("SELECT COUNT(*) FROM (SELECT 1 FROM " + d.Q(table) + " WHERE " +
                           all_set + " GROUP BY " + group + " HAVING COUNT(*) > 1) AS dups");
      if (!dups.ok()) return fail(dups.status(), 1);
      if (*dups > 0) {
        problems.push_back(std::to_string(*dups) + " keys (" + Join(keys) +
                           ") appear in more than one row: sluice merges one row per key; "
                           "merge or delete the duplicates first");
      }
      out << "  key (" << Join(keys) << "): a unique key is added (sluice upserts by it)\n";
      statements.push_back(d.UniqueKeySql(table, keys));
      auto nulls = d.Scalar("SELECT COUNT(*) FROM " + d.Q(table) + " WHERE " + any_null);
      if (!nulls.ok()) return fail(nulls.status(), 1);
      if (*nulls > 0) {
        out << "    " << *nulls << " rows have NULL in a key column: sluice's keys are never "
            << "NULL, so it never merges into those rows (they stay as they are)\n";
      }
    }
  }
  if (!internal.empty()) statements.push_back(d.RenameSql(table, physical));
  for (const auto& p : *positions) {
    out << "  start: source " << p.source << " (" << config.source.uri << ") partition "
        << p.partition << " at offset " << p.offset << "\n";
  }
  out << "  positions stored for pipeline " << config.name << " in _sluice_positions; "
      << "`sluice run` then reads from there\n";
  out << "Statements:\n";
  for (const auto& s : statements) out << "  " << s << ";\n";

  auto sink = ConnectorRegistry::Instance().MakeSink(config.sink);
  if (!sink.ok()) return fail(sink.status(), 2);
  std::cout << out.str();
  if (!problems.empty()) {
    for (const auto& p : problems) std::cout << "Cannot take over: " << p << "\n";
    return 1;
  }
  if (!options.apply) {
    std::cout << "Nothing changed. Run again with --apply to apply this plan.\n";
    return 0;
  }
  if (Status s = d.Apply(statements); !s.ok()) return fail(s, 1);
  if (Status s = (*sink)->Open(ctx); !s.ok()) return fail(s, 1);
  auto stored = (*sink)->LoadPositions();
  if (!stored.ok()) return fail(stored.status(), 1);
  Checkpoint cp;
  cp.positions = *positions;
  if (Status s = (*sink)->Commit(cp); !s.ok()) return fail(s, 1);
  (*sink)->Close();
  std::cout << "Applied. `sluice run` continues from the positions above.\n";
  return 0;
}

}  // namespace sluice::cli
