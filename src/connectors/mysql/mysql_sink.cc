#include "connectors/mysql/mysql_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "core/time.h"
#include "runtime/sink_rejection.h"
#include "runtime/task_state.h"
#include "runtime/window_state.h"

namespace sluice {
namespace {

/// Returns the information_schema DATA_TYPE a declared column type gives ("DECIMAL(10,2)" ->
/// "decimal", "BOOLEAN" -> "tinyint").
std::string BaseType(const std::string& declared) {
  std::string base;
  for (char c : declared) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') break;
    base += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (base == "boolean" || base == "bool") return "tinyint";
  if (base == "integer") return "int";
  if (base == "real") return "double";
  if (base == "numeric" || base == "dec" || base == "fixed") return "decimal";
  return base;
}

template <typename Text, typename T>
bool ParseNumber(const std::optional<Text>& text, T* out) {
  if (!text) return false;
  const std::string_view v(*text);
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return ec == std::errc() && end == v.data() + v.size();
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

const OptionTable& MysqlSinkOptions() {
  static const OptionTable kTable{
      .uri = "mysql://USER@HOST[:PORT]/DB",
      .summary = "A MySQL or MariaDB table (`table`), each checkpoint one transaction of upserts plus "
                 "the positions (src/connectors/mysql/README.md).",
      .options = {
          {.name = "password_file",
           .type = OptionType::kPath,
           .default_note = "`SLUICE_MYSQL_PASSWORD_FILE`",
           .help = "File holding the password (else `SLUICE_MYSQL_PASSWORD`); never in the URI."},
          {.name = "column_types",
           .help = "MySQL column types by output column: `\"dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2)\"`; "
                   "the rest follow the output types."},
          {.name = "timeout", .type = OptionType::kDuration, .default_value = "10s", .help = "Connect, read and write timeout; at least 1s."},
          {.name = "batch_rows", .type = OptionType::kInt, .default_value = "1000", .help = "Rows per multi-row INSERT."},
          {.name = "batch_bytes", .type = OptionType::kInt, .default_value = "1048576", .help = "Bytes per multi-row INSERT."},
          {.name = "bulk_rows",
           .type = OptionType::kInt,
           .default_value = "1000",
           .help = "A checkpoint of at least this many groups is loaded with LOAD DATA LOCAL INFILE into a "
                   "temporary table and merged by one INSERT ... SELECT (faster); 0: always multi-row INSERTs."},
      }};
  return kTable;
}

Result<std::unique_ptr<Sink>> MysqlSink::Make(const SinkConfig& config) {
  OptionReader o(config.options, MysqlSinkOptions(), "sink");
  auto uri = mysql::ParseUri(config.uri, false);
  if (!uri.ok()) return Status::InvalidArgument(o.Where("uri") + ": " + uri.status().message());
  std::unique_ptr<MysqlSink> sink(new MysqlSink());
  sink->options_.uri = std::move(uri).value();
  sink->options_.password_file = o.String("password_file");
  // Read once now so that a wrong path fails at startup; it is read again at every connect.
  auto password = mysql::ResolvePassword(sink->options_.password_file);
  if (!password.ok()) {
    return Status::InvalidArgument(o.Where("password_file") + ": " + password.status().message());
  }
  auto types = mysql::ParseColumnTypes(o.String("column_types"));
  if (!types.ok()) {
    return Status::InvalidArgument(o.Where("column_types") + ": " + types.status().message());
  }
  sink->column_types_ = std::move(types).value();
  sink->column_types_where_ = o.Where("column_types");
  ASSIGN_OR_RETURN(int64_t timeout, o.Duration("timeout"));
  if (timeout < kMicrosPerSecond) {
    return Status::InvalidArgument(o.Where("timeout") + ": timeout must be at least 1s");
  }
  sink->options_.timeout_seconds = static_cast<unsigned>(timeout / kMicrosPerSecond);
  ASSIGN_OR_RETURN(int64_t batch_rows, o.Int("batch_rows"));
  ASSIGN_OR_RETURN(int64_t batch_bytes, o.Int("batch_bytes"));
  if (batch_rows < 1 || batch_bytes < 1) {
    return Status::InvalidArgument(o.Where(batch_rows < 1 ? "batch_rows" : "batch_bytes") +
                                   ": batch_rows and batch_bytes must be positive");
  }
  ASSIGN_OR_RETURN(int64_t bulk_rows, o.Int("bulk_rows"));
  if (bulk_rows < 0) return Status::InvalidArgument(o.Where("bulk_rows") + ": bulk_rows must not be negative");
  sink->bulk_rows_ = static_cast<size_t>(bulk_rows);
  sink->batch_rows_ = static_cast<size_t>(batch_rows);
  sink->batch_bytes_ = static_cast<size_t>(batch_bytes);
  RETURN_IF_ERROR(o.Finish());
  sink->table_ = config.table;
  return std::unique_ptr<Sink>(std::move(sink));
}

MysqlSink::~MysqlSink() { Close(); }

void MysqlSink::Close() { conn_.reset(); }

Status MysqlSink::Connect() {
  conn_.reset();
  auto c = mysql::Connection::Open(options_);
  if (!c.ok()) {
    healthy_ = false;
    return c.status();
  }
  conn_ = std::move(c).value();
  spdlog::debug("mysql sink: connected to {} (connection id {})", conn_->display(), conn_->id());
  return Status::OK();
}

Status MysqlSink::Check(const SinkContext& ctx) const {
  // The table's SQL (column types included) is built without a connection.
  auto sql = mysql::TableSql::Make(ctx, table_.empty() ? ctx.pipeline : table_, column_types_);
  if (!sql.ok()) {
    return Status::InvalidArgument(column_types_where_ + ": " + sql.status().message());
  }
  return Status::OK();
}

Status MysqlSink::Open(const SinkContext& ctx) {
  ctx_ = ctx;
  if (table_.empty()) table_ = ctx.pipeline;
  auto sql = mysql::TableSql::Make(ctx_, table_, column_types_);
  if (!sql.ok()) {
    return Status::InvalidArgument(column_types_where_ + ": " + sql.status().message());
  }
  sql_ = std::move(sql).value();
  RETURN_IF_ERROR(Connect());
  Status s = CreateTables();
  if (!s.ok()) return Failed(s, conn_->broken());
  healthy_ = true;
  return Status::OK();
}

Result<SinkExplanation> MysqlSink::Explain(const SinkContext& ctx) {
  auto made = mysql::TableSql::Make(ctx, table_.empty() ? ctx.pipeline : table_, column_types_);
  if (!made.ok()) return Status::InvalidArgument(column_types_where_ + ": " + made.status().message());
  const mysql::TableSql& sql = *made;
  SinkExplanation e;
  e.facts.push_back({"server", options_.uri.Display()});
  if (sql.view()) {
    e.facts.push_back({"layout", "rows in " + sql.physical() + " (with the internal columns); " +
                                     sql.table() + " is a view of the declared columns"});
  } else {
    e.facts.push_back({"layout", "rows in table " + sql.table()});
  }
  e.facts.push_back({"per checkpoint",
                     "one InnoDB transaction: the upserts (up to " + std::to_string(batch_rows_) +
                         " rows per statement" +
                         (bulk_rows_ > 0 ? "; from " + std::to_string(bulk_rows_) +
                                               " groups LOAD DATA LOCAL INFILE into a temporary table and "
                                               "one INSERT ... SELECT"
                                         : std::string()) +
                         "), the dead letters and the positions in _sluice_positions" +
                         std::string(ctx.tasks ? "; first the fences of its tasks are checked (SELECT ... FOR "
                                                 "UPDATE), then their progress and state go to _sluice_tasks"
                                               : "")});
  const std::string collation = mysql::ChooseCollation({"utf8mb4_nopad_bin"});
  e.statements.push_back({"create table", "mysql", sql.CreateTableSql(collation)});
  if (sql.view()) e.statements.push_back({"create view", "mysql", sql.CreateViewSql(sql.column_names())});
  e.statements.push_back({ctx.aggregate && !ctx.aggregate->append_mode ? "merge" : "write", "mysql",
                          sql.UpsertTemplateSql()});
  return e;
}

Status MysqlSink::OpenForReading(const SinkContext& ctx) {
  ctx_ = ctx;
  if (table_.empty()) table_ = ctx.pipeline;
  auto sql = mysql::TableSql::Make(ctx_, table_, column_types_);
  if (!sql.ok()) {
    return Status::InvalidArgument(column_types_where_ + ": " + sql.status().message());
  }
  sql_ = std::move(sql).value();
  return Connect();
}

Result<std::vector<std::vector<Value>>> MysqlSink::ReadOutput() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  std::string cols;
  for (size_t i = 0; i < ctx_.output.size(); ++i) {
    cols += (i > 0 ? ", " : "") + mysql::QuoteIdentifier(ctx_.output.field(i).name);
  }
  auto rows = conn_->QueryAll("SELECT " + cols + " FROM " + mysql::QuoteIdentifier(table_));
  if (!rows.ok()) return rows.status().WithContext("reading table " + table_);
  std::vector<std::vector<Value>> out;
  out.reserve(rows->size());
  for (const auto& r : *rows) {
    std::vector<Value> row;
    for (size_t i = 0; i < ctx_.output.size() && i < r.size(); ++i) {
      if (!r[i]) {
        row.push_back(Value::Null());
        continue;
      }
      auto v = ParseStoredValue(*r[i], ctx_.output.field(i).type);
      // A value of another type (edited by hand) is compared as the text it is.
      row.push_back(v.ok() ? std::move(v).value() : Value::String(*r[i]));
    }
    out.push_back(std::move(row));
  }
  return out;
}

Value MysqlSink::AsStored(size_t column, const Value& v) const {
  if (v.is_null() || column >= ctx_.output.size() || !sql_) return v;
  std::string type;
  for (const auto& c : sql_->columns()) {
    if (c.name == ctx_.output.field(column).name) type = c.type;
  }
  for (auto& ch : type) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (v.type() == Type::kTimestamp) {
    const int64_t unit = type.rfind("DATE", 0) == 0 && type.rfind("DATETIME", 0) != 0 ? 86'400'000'000 : 1'000'000;
    return Value::TimeMicros(FloorTo(v.time_value().micros, unit));
  }
  if ((v.type() == Type::kDouble || v.type() == Type::kInt64) &&
      (type.rfind("DECIMAL", 0) == 0 || type.rfind("NUMERIC", 0) == 0)) {
    int scale = 0;  // DECIMAL and DECIMAL(p) have no digits after the point
    if (size_t comma = type.find(','); comma != std::string::npos) scale = std::atoi(type.c_str() + comma + 1);
    const double d = v.type() == Type::kDouble ? v.double_value() : static_cast<double>(v.int_value());
    const double rounded = RoundHalfAway(d, scale);
    return v.type() == Type::kInt64 ? Value::Int(static_cast<int64_t>(rounded)) : Value::Double(rounded);
  }
  return v;
}

Status MysqlSink::MigrateDeadLetters() {
  auto has_generation = [&]() -> Result<bool> {
    ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::DeadLettersHaveGenerationSql()));
    return !rows.empty() && !rows[0].empty() && rows[0][0] && *rows[0][0] != "0";
  };
  ASSIGN_OR_RETURN(bool done, has_generation());
  if (done) return Status::OK();
  // A table of an older sluice, keyed without the input's generation: one ALTER adds the column
  // (0 for the stored letters) and widens the key. Another process may have done it meanwhile.
  Status s = conn_->Execute(mysql::MigrateDeadLettersSql());
  if (!s.ok()) {
    auto now = has_generation();
    if (now.ok() && *now) return Status::OK();
    return s.WithContext("adding the generation column to _sluice_dead_letters");
  }
  spdlog::info("mysql {}: _sluice_dead_letters (an older sluice's layout) now keys its dead letters by the "
               "input's generation too; the stored ones are generation 0", conn_->display());
  return Status::OK();
}

Status MysqlSink::CreateTables() {
  std::vector<std::string> collations;
  RETURN_IF_ERROR(conn_->Query(
      "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN "
      "('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')",
      [&](mysql::RowView r) {
        if (r[0]) collations.emplace_back(*r[0]);
        return Status::OK();
      }));
  const std::string collation = mysql::ChooseCollation(collations);
  RETURN_IF_ERROR(conn_->Execute(mysql::CreatePositionsTableSql(collation)));
  RETURN_IF_ERROR(conn_->Execute(mysql::CreateStateTableSql(collation)));
  RETURN_IF_ERROR(conn_->Execute(mysql::CreateTasksTableSql(collation)));
  RETURN_IF_ERROR(conn_->Execute(mysql::CreateDeadLettersTableSql(collation)));
  RETURN_IF_ERROR(MigrateDeadLetters());
  if (ctx_.tasks) RETURN_IF_ERROR(MigrateLegacyState());
  if (sql_->view()) RETURN_IF_ERROR(MigrateOldLayout());
  RETURN_IF_ERROR(conn_->Execute(sql_->CreateTableSql(collation)));

  // An existing table must have the columns this pipeline writes; columns it does not write
  // (the old columns of a table taken over) are left as they are, so they must accept a row
  // without them.
  const std::string& physical = sql_->physical();
  ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(sql_->DescribeTableSql()));
  std::vector<std::string> existing, stuck, missing;
  for (const auto& r : rows) existing.push_back(r[0].value_or(""));
  const std::vector<std::string> expected = sql_->column_names();
  for (const auto& r : rows) {
    const std::string name = r[0].value_or("");
    const bool written = std::find(expected.begin(), expected.end(), name) != expected.end();
    if (!written && r[2].value_or("YES") == "NO" && !r[3] &&
        r[4].value_or("").find("auto_increment") == std::string::npos) {
      stuck.push_back(name);
    }
  }
  for (const auto& c : expected) {
    if (std::find(existing.begin(), existing.end(), c) == existing.end()) missing.push_back(c);
  }
  if (!missing.empty()) {
    return Status::InvalidArgument("mysql table " + physical + " in " + conn_->display() +
                                   " has columns (" + Join(existing) +
                                   ") but this pipeline writes (" + Join(expected) +
                                   "); drop the table, write to another one, or take it over "
                                   "with `sluice takeover` (missing: " + Join(missing) + ")");
  }
  if (!stuck.empty()) {
    return Status::InvalidArgument("mysql table " + physical + " in " + conn_->display() +
                                   " has columns this pipeline does not write that are NOT NULL "
                                   "without a default (" + Join(stuck) +
                                   "): new rows cannot be inserted; give them a default");
  }
  for (const auto& r : rows) {
    const std::string name = r[0].value_or("");
    for (const auto& c : sql_->columns()) {
      if (c.name != name) continue;
      const std::string have = r[1].value_or("");
      const std::string want = BaseType(c.type);
      if (have != want) {
        spdlog::warn("mysql table {}: column {} is {} but this pipeline would create it as {}",
                     physical, name, have, c.type);
      }
    }
  }
  if (sql_->view()) {
    ASSIGN_OR_RETURN(std::string type, TableType(table_));
    if (type == "BASE TABLE") {
      return Status::InvalidArgument("mysql " + conn_->display() + " has both a table " + table_ +
                                     " and the table " + physical +
                                     " sluice keeps its rows in (" + table_ +
                                     " should be a view of it); drop or rename one of them");
    }
    // The view's columns: replaced only when they differ (a CREATE OR REPLACE needs DROP).
    std::vector<std::string> want;
    for (const auto& c : existing) {
      const auto internal = InternalColumnNames(ctx_.aggregate);
      if (std::find(internal.begin(), internal.end(), c) == internal.end()) want.push_back(c);
    }
    std::vector<std::string> have;
    if (type == "VIEW") {
      RETURN_IF_ERROR(conn_->Query(
          "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
          "AND TABLE_NAME = " + mysql::StringLiteral(table_) + " ORDER BY ORDINAL_POSITION",
          [&](mysql::RowView r) {
            have.emplace_back(r[0].value_or(""));
            return Status::OK();
          }));
    }
    if (have != want) RETURN_IF_ERROR(conn_->Execute(sql_->CreateViewSql(existing)));
  }
  return Status::OK();
}

Result<std::string> MysqlSink::TableType(const std::string& name) {
  ASSIGN_OR_RETURN(mysql::Rows rows,
                   conn_->QueryAll("SELECT TABLE_TYPE FROM information_schema.TABLES WHERE "
                                   "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
                                   mysql::StringLiteral(name)));
  if (rows.empty()) return std::string();
  return rows[0][0].value_or("");
}

Status MysqlSink::MigrateOldLayout() {
  ASSIGN_OR_RETURN(std::string user, TableType(table_));
  if (user != "BASE TABLE") return Status::OK();
  ASSIGN_OR_RETURN(std::string internal, TableType(sql_->physical()));
  if (!internal.empty()) return Status::OK();  // reported by CreateTables
  std::vector<std::string> existing;
  RETURN_IF_ERROR(conn_->Query(
      "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND "
      "TABLE_NAME = " + mysql::StringLiteral(table_) + " ORDER BY ORDINAL_POSITION",
      [&](mysql::RowView r) {
        existing.emplace_back(r[0].value_or(""));
        return Status::OK();
      }));
  const std::vector<std::string> expected = sql_->column_names();
  for (const auto& c : expected) {
    if (std::find(existing.begin(), existing.end(), c) == existing.end()) {
      // Not a table this pipeline wrote (a results table of another job): never moved
      // without being asked.
      return Status::InvalidArgument(
          "mysql table " + table_ + " in " + conn_->display() + " has columns (" +
          Join(existing) + ") but this pipeline writes (" + Join(expected) +
          "); drop the table, write to another one, or take it over with `sluice takeover`");
    }
  }
  RETURN_IF_ERROR(conn_->Execute("RENAME TABLE " + mysql::QuoteIdentifier(table_) + " TO " +
                                 mysql::QuoteIdentifier(sql_->physical())));
  spdlog::warn(
      "mysql table {} in {} held sluice's internal columns (an older sluice's layout): moved "
      "the table, rows unchanged, to {} and made {} a view of the declared columns",
      table_, conn_->display(), sql_->physical(), table_);
  return Status::OK();
}

Result<std::vector<StoredPosition>> MysqlSink::LoadPositions() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  auto rows = conn_->QueryAll(mysql::SelectPositionsSql(ctx_.pipeline));
  if (!rows.ok()) return Failed(rows.status(), conn_->broken());
  std::vector<StoredPosition> out;
  for (const auto& r : *rows) {
    StoredPosition p;
    p.source = r[0].value_or("");
    if (!ParseNumber(r[1], &p.partition) || !ParseNumber(r[2], &p.offset)) {
      return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_positions");
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::string> MysqlSink::LoadState() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  auto rows = conn_->QueryAll(mysql::SelectStateSql(ctx_.pipeline));
  if (!rows.ok()) return Failed(rows.status(), conn_->broken());
  std::string out;
  if (rows->empty()) return out;
  if (!mysql::DecodeHex((*rows)[0][0].value_or(""), &out)) {
    return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_state");
  }
  return out;
}

Result<std::map<std::string, int64_t>> MysqlSink::CountDeadLetters() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  std::map<std::string, int64_t> out;
  Status s = conn_->Query(mysql::CountDeadLettersSql(ctx_.pipeline), [&](mysql::RowView r) {
    int64_t n = 0;
    if (!ParseNumber(r[1], &n)) {
      return Status::Internal("mysql " + conn_->display() + ": bad count in _sluice_dead_letters");
    }
    out[std::string(r[0].value_or(""))] += n;
    return Status::OK();
  });
  if (!s.ok()) return Failed(s, conn_->broken());
  return out;
}

Result<SinkInventory> MysqlSink::Inventory(const InventoryOptions& options) {
  if (sql_) return Status::Internal("mysql sink: Inventory() on an opened sink");
  RETURN_IF_ERROR(Connect());
  Result<SinkInventory> out = [&]() -> Result<SinkInventory> {
    SinkInventory inv;
    inv.location = "mysql://" + options_.uri.Display();
    inv.dead_letter_location = DeadLetterLocation();
    ASSIGN_OR_RETURN(mysql::Rows table_rows, conn_->QueryAll(mysql::SluiceTablesSql()));
    std::vector<std::string> tables;
    for (const auto& r : table_rows) tables.push_back(r[0].value_or(""));
    auto has = [&](const char* t) { return std::find(tables.begin(), tables.end(), t) != tables.end(); };
    if (options.positions_only) {
      // The named pipeline's positions only: no scan of the other tables for pipeline names.
      return PositionsOnlyInventory(std::move(inv), options, "mysql sink", has("_sluice_positions"), [&] {
        ctx_.pipeline = options.pipeline;
        return LoadPositions();
      });
    }
    std::set<std::string> names;
    if (!tables.empty()) {
      ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::PipelinesSql(tables)));
      for (const auto& r : rows) names.insert(r[0].value_or(""));
    }
    for (const auto& name : names) {
      if (!options.pipeline.empty() && name != options.pipeline) continue;
      ctx_.pipeline = name;
      PipelineInventory p;
      p.pipeline = name;
      std::string last;  // 'YYYY-MM-DD HH:MM:SS' UTC (the sessions run in UTC)
      for (const char* t : {"_sluice_positions", "_sluice_state", "_sluice_tasks"}) {
        if (!has(t)) continue;
        ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::LastUpdateSql(t, name)));
        if (!rows.empty() && rows[0][0] && *rows[0][0] > last) last = *rows[0][0];
      }
      if (!last.empty()) {
        if (auto t = ParseTimestamp(last)) p.last_checkpoint_micros = *t;
      }
      if (has("_sluice_positions")) {
        ASSIGN_OR_RETURN(p.positions, LoadPositions());
      }
      if (has("_sluice_state")) {
        ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::SelectStateSql(name)));
        if (!rows.empty()) {
          ASSIGN_OR_RETURN(std::string state, LoadState());
          p.state_bytes = static_cast<int64_t>(state.size());
        }
      }
      if (has("_sluice_tasks")) {
        // State kept per partition (tasks): its size is the sum of the tasks' states.
        ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::TaskStateSizeSql(name)));
        int64_t count = 0, bytes = 0;
        if (rows.empty() || !ParseNumber(rows[0][0], &count) || !ParseNumber(rows[0][1], &bytes)) {
          return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_tasks");
        }
        if (count > 0) p.state_bytes = std::max<int64_t>(p.state_bytes, 0) + bytes;
      }
      if (has("_sluice_dead_letters")) {
        p.dead_letters_stored = true;
        ASSIGN_OR_RETURN(p.dead_letters.by_reason, CountDeadLetters());
        const auto ranked = p.dead_letters.Ranked();
        for (size_t i = 0; i < ranked.size() && i < options.sample_reasons; ++i) {
          auto& samples = p.dead_letters.samples[ranked[i].first];
          ASSIGN_OR_RETURN(mysql::Rows rows,
                           conn_->QueryAll(mysql::SampleDeadLettersSql(name, ranked[i].first,
                                                                       options.samples_per_reason)));
          for (const auto& r : rows) {
            StoredDeadLetter d;
            d.source = r[0].value_or("");
            d.reason = ranked[i].first;
            int64_t truncated = 0;
            if (!ParseNumber(r[1], &d.partition) || !ParseNumber(r[2], &d.offset) ||
                !ParseNumber(r[5], &d.payload_bytes) || !ParseNumber(r[6], &truncated)) {
              return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_dead_letters");
            }
            d.time = r[3].value_or("");
            d.payload = r[4].value_or("");
            d.truncated = truncated != 0;
            samples.push_back(std::move(d));
          }
        }
      }
      inv.pipelines.push_back(std::move(p));
    }
    return inv;
  }();
  ctx_.pipeline.clear();
  conn_.reset();
  return out;
}

Result<bool> MysqlSink::AlreadyApplied(const Checkpoint& cp) {
  if (cp.positions.empty()) return false;
  // A locking read: if the lost connection's transaction is still running on the server (its
  // COMMIT not yet done), it holds these rows, so this waits for its outcome instead of reading
  // the old positions and applying the checkpoint a second time.
  std::vector<StoredPosition> stored;
  RETURN_IF_ERROR(
      conn_->Query(mysql::SelectPositionsSql(ctx_.pipeline) + " FOR UPDATE", [&](mysql::RowView r) {
        StoredPosition p;
        p.source = std::string(r[0].value_or(""));
        if (!ParseNumber(r[1], &p.partition) || !ParseNumber(r[2], &p.offset)) {
          return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_positions");
        }
        stored.push_back(std::move(p));
        return Status::OK();
      }));
  for (const auto& want : cp.positions) {
    auto it = std::find_if(stored.begin(), stored.end(), [&](const StoredPosition& p) {
      return p.source == want.source && p.partition == want.partition;
    });
    if (it == stored.end() || it->offset != want.offset) return false;
  }
  // Equal positions alone do not prove it: a checkpoint that moves no position (windows closed by
  // the watermark or an idle source, held records resolved or expired) has the positions of the
  // one before. Its state differs from that one's, so the stored state decides.
  if (cp.state) {
    ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::SelectStateSql(ctx_.pipeline)));
    std::string stored_state;
    if (!rows.empty() && !mysql::DecodeHex(rows[0][0].value_or(""), &stored_state)) {
      return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_state");
    }
    if (stored_state != *cp.state) return false;
  }
  // With tasks the same holds for each task's progress and state (its fence is checked
  // before: a task claimed meanwhile fails the commit with kFenced).
  if (!cp.tasks.empty()) {
    std::vector<TaskId> ids;
    for (const auto& t : cp.tasks) ids.push_back(t.task);
    ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::LockTasksSql(ctx_.pipeline, ids, true)));
    for (const TaskCommit& t : cp.tasks) {
      auto row = std::find_if(rows.begin(), rows.end(), [&](const auto& r) {
        int32_t p = 0;
        return r[0].value_or("") == t.task.source && ParseNumber(r[1], &p) && p == t.task.partition;
      });
      if (row == rows.end()) return false;
      auto time = [](const std::optional<std::string>& v) {
        int64_t x = kNoWatermark;
        return v && ParseNumber(v, &x) ? x : kNoWatermark;
      };
      TaskProgress stored;
      stored.max_event_time = time((*row)[4]);
      stored.watermark = time((*row)[5]);
      stored.enforced = time((*row)[6]);
      stored.idle = (*row)[7].value_or("0") != "0";
      if (stored != t.progress) return false;
      if (t.release && !(*row)[3].value_or("").empty()) return false;
      if (t.state) {
        std::string stored_state;
        if (!mysql::DecodeHex((*row)[8].value_or(""), &stored_state)) {
          return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_tasks");
        }
        if (stored_state != *t.state) return false;
      }
    }
  }
  return true;
}

Status MysqlSink::CheckNoLegacyState() {
  ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::SelectStateSql(ctx_.pipeline)));
  if (rows.empty() || rows[0][0].value_or("").empty()) return Status::OK();
  return Status::FailedPrecondition(
      "mysql " + conn_->display() + ": pipeline " + ctx_.pipeline +
      " has a state row in _sluice_state next to its per-partition rows in _sluice_tasks: a process of an "
      "older sluice (without per-partition state) wrote it after the state moved into tasks, and it would be "
      "ignored (its held records lost, what it applied applied again): every process of a pipeline must run "
      "a version with per-partition state: stop them all, then start; the row is left as it is (delete it "
      "to go on from the task rows)");
}

Status MysqlSink::CheckFences(const Checkpoint& cp) {
  if (cp.tasks.empty()) return Status::OK();
  RETURN_IF_ERROR(CheckNoLegacyState());
  std::vector<TaskId> ids;
  for (const auto& t : cp.tasks) ids.push_back(t.task);
  std::map<TaskId, int64_t> stored;
  RETURN_IF_ERROR(conn_->Query(mysql::LockTasksSql(ctx_.pipeline, ids), [&](mysql::RowView r) {
    TaskId id;
    id.source = std::string(r[0].value_or(""));
    int64_t fence = 0;
    if (!ParseNumber(r[1], &id.partition) || !ParseNumber(r[2], &fence)) {
      return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_tasks");
    }
    stored[id] = fence;
    return Status::OK();
  }));
  for (const TaskCommit& t : cp.tasks) {
    auto it = stored.find(t.task);
    if (it == stored.end() || it->second != t.fence) {
      return Status::Fenced("mysql " + conn_->display() + ": " + t.task.source + "[" +
                            std::to_string(t.task.partition) + "] of pipeline " + ctx_.pipeline +
                            (it == stored.end() ? std::string(" has no task row (never claimed)")
                                                : " was claimed by another process (fence " +
                                                      std::to_string(it->second) + ", this one holds " +
                                                      std::to_string(t.fence) + ")"));
    }
  }
  return Status::OK();
}

Status MysqlSink::MigrateLegacyState() {
  ASSIGN_OR_RETURN(mysql::Rows legacy, conn_->QueryAll(mysql::SelectStateSql(ctx_.pipeline)));
  if (legacy.empty()) return Status::OK();
  size_t moved = 0, held = 0;
  bool refused = false;
  Status st = [&]() -> Status {
    RETURN_IF_ERROR(conn_->Execute("START TRANSACTION"));
    // Another process of the pipeline may migrate at the same time: the legacy row's lock
    // orders the two, and the second finds it gone.
    ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::SelectStateSql(ctx_.pipeline) + " FOR UPDATE"));
    if (rows.empty()) return conn_->Execute("COMMIT");
    ASSIGN_OR_RETURN(mysql::Rows tasks, conn_->QueryAll(mysql::AnyTaskSql(ctx_.pipeline)));
    if (!tasks.empty()) {
      // Tasks already: a legacy row with a state is an older sluice still running.
      Status legacy_check = CheckNoLegacyState();
      refused = !legacy_check.ok();
      if (refused) return legacy_check;
      return conn_->Execute("COMMIT");
    }
    std::string data;
    if (!mysql::DecodeHex(rows[0][0].value_or(""), &data)) {
      return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_state");
    }
    if (data.empty()) return conn_->Execute("COMMIT");
    ASSIGN_OR_RETURN(WindowState old, WindowState::Parse(data, ctx_.aggregate));
    if (!old.open.empty()) {
      return Status::FailedPrecondition(
          "mysql " + conn_->display() + ": the stored state of pipeline " + ctx_.pipeline + " holds open windows (" +
          std::to_string(old.open.size()) + " groups) kept by one process (append mode without "
          "[source] keyed_by), which cannot be split by partition: run it without keyed_by until those windows "
          "are written (a bounded input read to its end writes them all), then start it with keyed_by "
          "(deleting the row would also lose its watermarks and closed bound, so windows already written "
          "could be written again)");
    }
    const int64_t delay = ctx_.aggregate ? ctx_.aggregate->watermark_delay_micros : 0;
    for (const auto& [id, task] : SplitLegacyState(old, ctx_.source, delay)) {
      RETURN_IF_ERROR(conn_->Execute(
          mysql::InsertMigratedTaskSql(ctx_.pipeline, id, task.progress, task.Serialize(ctx_.aggregate))));
      ++moved;
      held += task.held.size();
    }
    RETURN_IF_ERROR(conn_->Execute(mysql::DeleteStateSql(ctx_.pipeline)));
    return conn_->Execute("COMMIT");
  }();
  if (!st.ok()) {
    (void)conn_->Execute("ROLLBACK");
    return refused ? st : st.WithContext("moving the stored state into tasks");
  }
  if (moved > 0) {
    spdlog::info("mysql {}: pipeline {}: the stored state now lives per partition in _sluice_tasks ({} "
                 "task(s), {} held record(s))", conn_->display(), ctx_.pipeline, moved, held);
  }
  return Status::OK();
}

Result<TaskClaim> MysqlSink::ClaimTask(const TaskId& task, const OwnerInfo& owner) {
  if (!sql_) return Status::Internal("mysql sink: ClaimTask() before Open()");
  if (!conn_) RETURN_IF_ERROR(Connect());
  TaskClaim claim;
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(conn_->Execute("START TRANSACTION"));
    // The upsert takes the row's exclusive lock (no shared lock first, which two claims could
    // both hold and then deadlock upgrading): a commit of the task still running finishes first.
    RETURN_IF_ERROR(conn_->Execute(mysql::ClaimTaskSql(ctx_.pipeline, task, owner.ToString())));
    ASSIGN_OR_RETURN(mysql::Rows rows, conn_->QueryAll(mysql::SelectTaskSql(ctx_.pipeline, task)));
    if (rows.empty()) return Status::Internal("mysql " + conn_->display() + ": the claimed task is not there");
    if (!ParseNumber(rows[0][0], &claim.fence) ||
        (rows[0][1] && !mysql::DecodeHex(*rows[0][1], &claim.state))) {
      return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_tasks");
    }
    RETURN_IF_ERROR(conn_->Query(mysql::SelectTaskPositionsSql(ctx_.pipeline, task), [&](mysql::RowView r) {
      int32_t p = 0;
      int64_t offset = 0;
      if (!ParseNumber(r[0], &p) || !ParseNumber(r[1], &offset)) {
        return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_positions");
      }
      claim.positions[p] = offset;
      return Status::OK();
    }));
    return conn_->Execute("COMMIT");
  }();
  if (!s.ok()) return Failed(s, conn_->broken());
  return claim;
}

Result<std::vector<TaskRow>> MysqlSink::LoadTaskProgress() {
  if (!sql_) return Status::Internal("mysql sink: LoadTaskProgress() before Open()");
  if (!conn_) RETURN_IF_ERROR(Connect());
  std::vector<TaskRow> out;
  auto time = [](const std::optional<std::string_view>& v) {
    int64_t x = kNoWatermark;
    return v && ParseNumber(v, &x) ? x : kNoWatermark;
  };
  Status s = conn_->Query(mysql::SelectTaskProgressSql(ctx_.pipeline), [&](mysql::RowView r) {
    TaskRow row;
    row.task.source = std::string(r[0].value_or(""));
    int64_t updated = 0;
    if (!ParseNumber(r[1], &row.task.partition) || !ParseNumber(r[2], &row.fence) || !ParseNumber(r[8], &updated)) {
      return Status::Internal("mysql " + conn_->display() + ": bad row in _sluice_tasks");
    }
    row.owner = std::string(r[3].value_or(""));
    row.progress.max_event_time = time(r[4]);
    row.progress.watermark = time(r[5]);
    row.progress.enforced = time(r[6]);
    row.progress.idle = r[7].value_or("0") != "0";
    row.updated_micros = updated * kMicrosPerSecond;
    out.push_back(std::move(row));
    return Status::OK();
  });
  if (!s.ok()) return Failed(s, conn_->broken());
  return out;
}

Status MysqlSink::Failed(Status s, bool lost) {
  if (lost || !conn_) {
    conn_.reset();
    healthy_ = false;
    if (s.code() != StatusCode::kUnavailable) s = Status::Unavailable(s.message());
    return s;
  }
  Status rollback = conn_->Execute("ROLLBACK");
  if (!rollback.ok() && conn_->broken()) {
    conn_.reset();
    healthy_ = false;
  }
  return s;
}

Result<std::vector<RejectedItem>> MysqlSink::WriteIsolatingRows(
    size_t n, const std::function<Status(size_t begin, size_t end)>& write) {
  // The savepoint undoes the earlier statements of a range when a later one fails; the failed
  // statement itself is undone by the server (InnoDB rolls back a statement that fails).
  bool rejection = false;
  auto attempt = [&](size_t b, size_t e) -> Status {
    RETURN_IF_ERROR(conn_->Execute("SAVEPOINT sluice_rows"));
    Status s = write(b, e);
    rejection = !s.ok() && IsRowRejection(s);
    if (!rejection) return s;
    std::string message = conn_->last_error() != 0 ? "mysql error " +
                                                         std::to_string(conn_->last_error()) +
                                                         ": " + conn_->last_message()
                                                   : s.message();
    RETURN_IF_ERROR(conn_->Execute("ROLLBACK TO SAVEPOINT sluice_rows"));
    if (hook_) RETURN_IF_ERROR(hook_("row_refused"));
    return Status::InvalidArgument(std::move(message));
  };
  return WriteIsolatingRejects(n, attempt, [&](const Status&) { return rejection; });
}

Result<bool> MysqlSink::WriteDeltasBulk(std::span<const DeltaRow> deltas,
                                         const std::function<Status(const std::string&, size_t)>& run) {
  mysql::BulkLoad bulk;
  if (!sql_->BulkDeltas(deltas, &bulk)) return false;
  // A stage left by an attempt that failed after creating it (DDL is not rolled back). Some
  // servers refuse temporary-table DDL inside a transaction (GTID consistency, statement-based
  // binary logs): classified below like a refused load.
  Status s = conn_->Execute(mysql::DropStageSql());
  if (s.ok()) s = conn_->Execute(bulk.create);
  mysql::Connection::Affected loaded;
  if (s.ok()) {
    auto l = conn_->LoadLocal(bulk.load, bulk.data);
    if (l.ok()) {
      loaded = *l;
    } else {
      s = l.status();
    }
  }
  if (!s.ok()) {
    const mysql::ErrorKind kind = mysql::ClassifyError(conn_->last_error(), conn_->last_message());
    // Lost connection, deadlock (InnoDB rolled the transaction back), a full disk: the
    // checkpoint fails and is retried, with bulk loads still on.
    if (conn_->broken() || kind == mysql::ErrorKind::kTransient) return s;
    if (kind != mysql::ErrorKind::kData) {
      // LOCAL INFILE disabled (MySQL 8's default), no privilege for temporary tables, DDL
      // refused in a transaction, ...: the statements still work. This attempt fails (an
      // unexpected error may have rolled the whole transaction back, and what follows would
      // then be written outside it); the runner's retry writes statements.
      bulk_off_ = true;
      spdlog::warn("mysql sink: bulk loads are not possible on {} ({}); writing multi-row INSERT "
                   "statements from now on, starting with this checkpoint's retry",
                   conn_->display(), s.message());
      return s.WithContext("bulk load (the checkpoint is retried with statements)");
    }
    RETURN_IF_ERROR(conn_->Execute(mysql::DropStageSql()));
    return false;
  }
  if (loaded.warnings > 0 || loaded.rows != static_cast<int64_t>(bulk.rows)) {
    // A value the stage did not hold as it is (invalid UTF-8, say): LOCAL makes that a warning,
    // where the statements get an error for the row; they decide.
    spdlog::debug("mysql sink: the bulk load of {} rows gave {} warnings; writing statements instead",
                  bulk.rows, loaded.warnings);
    RETURN_IF_ERROR(conn_->Execute(mysql::DropStageSql()));
    return false;
  }
  RETURN_IF_ERROR(run(bulk.merge, bulk.rows));
  RETURN_IF_ERROR(conn_->Execute(mysql::DropStageSql()));
  ++bulk_loads_;
  return true;
}

bool MysqlSink::IsRowRejection(const Status& s) const {
  if (!conn_ || conn_->broken() || s.code() != StatusCode::kInvalidArgument) return false;
  // A value the column cannot hold (server), or one no column can (a non-finite double, refused
  // while rendering the statement, before anything was sent), or a statement over
  // max_allowed_packet, refused by the connection before it was sent (not broken): with
  // StatementBytes() only a single row's statement can be that large, so the bisection ends
  // at that row.
  return conn_->last_error() == 0 || conn_->last_error() == 1153 ||
         mysql::ClassifyError(conn_->last_error()) == mysql::ErrorKind::kData;
}

size_t MysqlSink::StatementBytes() const {
  // Room for what is appended after the size check (an ON DUPLICATE KEY UPDATE tail, the
  // dead letters' ON DUPLICATE KEY clause) and the command byte.
  constexpr size_t kTail = 16 << 10;
  if (!conn_ || conn_->max_packet() == SIZE_MAX) return batch_bytes_;
  const size_t packet = conn_->max_packet();
  return std::max<size_t>(1, std::min(batch_bytes_, packet > 2 * kTail ? packet - kTail : packet / 2));
}

std::string MysqlSink::DeadLetterLocation() const {
  return "table _sluice_dead_letters in " + options_.uri.Display();
}

Status MysqlSink::Commit(const Checkpoint& cp) {
  if (!sql_) return Status::Internal("mysql sink: Commit() before Open()");
  if (!conn_) RETURN_IF_ERROR(Connect());
  bool commit_sent = false;
  bool hook_failed = false;
  size_t rejected_count = 0;
  auto hook = [&](std::string_view stage) -> Status {
    if (!hook_) return Status::OK();
    Status h = hook_(stage);
    hook_failed = !h.ok();
    return h;
  };
  // Where a commit's time goes (--log-level debug): writing the rows, positions and state, COMMIT.
  const int64_t t_start = SteadyClockMicros();
  int64_t t_rows = 0, t_meta = 0, statements = 0;
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(conn_->Execute("START TRANSACTION"));
    // First: a process that lost a task to another commits nothing (its results included). The
    // rows' locks are held to COMMIT, so a claim waits for this commit or this commit for it.
    RETURN_IF_ERROR(CheckFences(cp));
    if (ambiguous_) {
      // The previous attempt lost the connection at COMMIT: it may have been applied.
      // Positions only move forward, so stored positions equal to this checkpoint's mean it was.
      ASSIGN_OR_RETURN(bool applied, AlreadyApplied(cp));
      spdlog::warn("mysql sink: checkpoint {} was {}committed before the connection was lost; {}",
                   cp.id, applied ? "" : "not ",
                   applied ? "not writing it again" : "writing it again");
      if (applied) return conn_->Execute("COMMIT");
    }
    auto run = [this](const std::string& sql) { return conn_->Execute(sql); };
    // Each results statement holds `n` rows: inserted ones count 1 affected row, updated ones
    // 2, unchanged ones 0, and mysql_info() says how many were updated.
    std::function<Status(const std::string&, size_t)> counted =
        [this, &statements](const std::string& sql, size_t rows) -> Status {
      const int64_t n = static_cast<int64_t>(rows);
      ++statements;
      ASSIGN_OR_RETURN(mysql::Connection::Affected a, conn_->ExecuteCounted(sql));
      int64_t inserted, updated;
      if (a.duplicates >= 0) {
        // MariaDB's Duplicates counts the rows the UPDATE changed (2 affected rows each), not
        // those it found unchanged (0): the inserted rows are the rest of the affected rows.
        updated = a.duplicates;
        inserted = a.rows - 2 * updated;
      } else if (n == 1) {
        inserted = a.rows == 1 ? 1 : 0;
        updated = a.rows == 2 ? 1 : 0;
      } else {  // no info: assume no row was unchanged
        updated = a.rows - n;
        inserted = n - updated;
      }
      counts_.inserted += inserted;
      counts_.updated += updated;
      counts_.unchanged += n - inserted - updated;
      return Status::OK();
    };
    // A range whose rows are refused is rolled back to its savepoint: its counts go with it.
    auto counting = [this](const std::function<Status()>& write) -> Status {
      const SinkRowCounts before = counts_;
      Status st = write();
      if (!st.ok()) counts_ = before;
      return st;
    };
    counts_ = SinkRowCounts{};
    std::vector<RejectedItem> rejected_deltas, rejected_rows;
    if (cp.deltas && !cp.deltas->empty()) {
      const std::span<const DeltaRow> all(*cp.deltas);
      ASSIGN_OR_RETURN(rejected_deltas, WriteIsolatingRows(all.size(), [&](size_t b, size_t e) {
                         return counting([&] {
                           const auto range = all.subspan(b, e - b);
                           if (bulk_rows_ > 0 && !bulk_off_ && range.size() >= bulk_rows_) {
                             ASSIGN_OR_RETURN(bool bulk, WriteDeltasBulk(range, counted));
                             if (bulk) return Status::OK();
                           }
                           return sql_->ForEachDeltaStatement(range, batch_rows_,
                                                              StatementBytes(), counted);
                         });
                       }));
    }
    if (cp.rows && !cp.rows->empty()) {
      const std::span<const std::vector<Value>> all(*cp.rows);
      ASSIGN_OR_RETURN(rejected_rows, WriteIsolatingRows(all.size(), [&](size_t b, size_t e) {
                         return counting([&] {
                           return sql_->ForEachRowStatement(all.subspan(b, e - b), batch_rows_,
                                                            StatementBytes(), counted);
                         });
                       }));
    }
    std::vector<DeadLetter> rejected;
    if (!rejected_deltas.empty() || !rejected_rows.empty()) {
      const int64_t now = WallClockMicros();
      rejected = RejectedLetters(ctx_, cp, rejected_deltas, rejected_rows, now, now);
      rejected_count = rejected.size();
      LogRejected("mysql", cp.id, rejected);
      RETURN_IF_ERROR(
          mysql::ForEachDeadLetterStatement(ctx_.pipeline, rejected, StatementBytes(), run));
    }
    if (cp.dead_letters && !cp.dead_letters->empty()) {
      RETURN_IF_ERROR(
          mysql::ForEachDeadLetterStatement(ctx_.pipeline, *cp.dead_letters, StatementBytes(), run));
    }
    t_rows = SteadyClockMicros();
    if (!cp.positions.empty()) {
      RETURN_IF_ERROR(conn_->Execute(mysql::UpsertPositionsSql(ctx_.pipeline, cp.positions)));
    }
    if (cp.state) RETURN_IF_ERROR(conn_->Execute(mysql::UpsertStateSql(ctx_.pipeline, *cp.state)));
    for (const TaskCommit& t : cp.tasks) RETURN_IF_ERROR(conn_->Execute(mysql::UpdateTaskSql(ctx_.pipeline, t)));
    RETURN_IF_ERROR(hook("before_commit"));
    t_meta = SteadyClockMicros();
    commit_sent = true;
    RETURN_IF_ERROR(hook("at_commit"));  // tests: COMMIT sent, its answer lost, not applied
    RETURN_IF_ERROR(conn_->Execute("COMMIT"));
    return hook("after_commit");
  }();
  if (s.ok()) {
    if (spdlog::should_log(spdlog::level::debug)) {
      const size_t rows = (cp.deltas ? cp.deltas->size() : 0) + (cp.rows ? cp.rows->size() : 0);
      spdlog::debug("mysql sink: checkpoint {}: {} rows in {} statements: rows {:.1f} ms, positions and "
                    "state {:.1f} ms, COMMIT {:.1f} ms", cp.id, rows, statements,
                    (t_rows - t_start) / 1e3, (t_meta - t_rows) / 1e3, (SteadyClockMicros() - t_meta) / 1e3);
    }
    rows_rejected_ += static_cast<int64_t>(rejected_count);
    ambiguous_ = false;
    healthy_ = true;
    return s;
  }
  const bool lost = hook_failed || conn_->broken();
  if (lost && commit_sent) ambiguous_ = true;
  // Fenced: whether an earlier attempt was applied no longer matters; the runner starts again
  // from what is committed.
  if (s.code() == StatusCode::kFenced) ambiguous_ = false;
  return Failed(s, lost);
}

}  // namespace sluice
