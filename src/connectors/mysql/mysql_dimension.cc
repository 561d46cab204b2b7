#include "connectors/mysql/mysql_dimension.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>

#include <spdlog/spdlog.h>

#include "connectors/mysql/mysql_connection.h"
#include "runtime/dimension_refresh.h"
#include "core/time.h"

namespace sluice {
namespace {

bool EqualNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// Converts a column's text (text protocol) to the declared type.
Result<Value> Convert(std::string_view text, const Field& field) {
  auto bad = [&]() {
    return Status::ParseError("column " + field.source_path() + ": '" + std::string(text) +
                              "' is not a valid " + std::string(TypeName(field.type)));
  };
  switch (field.type) {
    case Type::kNull:
      return Value::Null();
    case Type::kString:
      return Value::String(text);
    case Type::kInt64: {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size()) return bad();
      return Value::Int(v);
    }
    case Type::kDouble: {
      double v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size()) return bad();
      return Value::Double(v);
    }
    case Type::kBool:
      if (text == "1" || EqualNoCase(text, "true")) return Value::Bool(true);
      if (text == "0" || EqualNoCase(text, "false")) return Value::Bool(false);
      return bad();
    case Type::kTimestamp: {
      if (text.starts_with("0000-00-00")) return Value::Null();  // MySQL's zero date
      auto t = ParseTimestamp(text);
      if (!t) return bad();
      return Value::TimeMicros(*t);
    }
  }
  return bad();
}

/// Converts the first schema.size() columns of a result row; fails on a bad value or a NULL key.
Status ConvertRow(mysql::RowView r, const Schema& schema, size_t key_index, std::vector<Value>* row) {
  for (size_t i = 0; i < schema.size(); ++i) {
    if (!r[i]) {
      (*row)[i] = Value::Null();
      continue;
    }
    ASSIGN_OR_RETURN((*row)[i], Convert(*r[i], schema.field(i)));
  }
  if ((*row)[key_index].is_null()) return Status::ParseError("null key");
  return Status::OK();
}

}  // namespace

const OptionTable& MysqlDimensionOptions() {
  static const OptionTable kTable{
      .uri = "mysql://USER@HOST[:PORT]/DB/TABLE",
      .summary = "A MySQL or MariaDB table, read whole at start and then polled every `refresh` for "
                 "rows changed since the last poll.",
      .options = {
          {.name = "password_file",
           .type = OptionType::kPath,
           .default_note = "`SLUICE_MYSQL_PASSWORD_FILE`",
           .help = "File holding the password (else `SLUICE_MYSQL_PASSWORD`); never in the URI."},
          {.name = "updated_column",
           .default_note = "`updated_at` when the table has it",
           .help = "The column that marks changed rows; without one the snapshot stays as loaded."},
          {.name = "grace",
           .type = OptionType::kDuration,
           .default_value = "5s",
           .help = "Re-read this far behind the newest change (transactions that commit late)."},
      }};
  return kTable;
}

Result<std::shared_ptr<DimensionTable>> LoadMysqlDimension(const DimensionConfig& config,
                                                           size_t* skipped,
                                                           std::string* first_error) {
  const std::string what = "dimension " + config.name;
  auto uri = mysql::ParseUri(config.uri, true);
  if (!uri.ok()) return uri.status().WithContext(what);
  mysql::Connection::Options options;
  options.uri = std::move(uri).value();
  OptionReader o(config.options, MysqlDimensionOptions(), "dimension." + config.name);
  options.password_file = o.String("password_file");
  RETURN_IF_ERROR(o.Finish());
  Schema schema(config.fields);
  auto key_index = schema.IndexOf(config.key);
  if (!key_index) {
    return Status::InvalidArgument(what + ": key '" + config.key + "' is not one of its fields");
  }
  auto conn = mysql::Connection::Open(options);
  if (!conn.ok()) return conn.status().WithContext(what);
  mysql::Connection& c = **conn;
  const std::string& table = options.uri.table;

  std::vector<std::string> columns;
  Status s = c.Query(
      "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND "
      "TABLE_NAME = " +
          mysql::StringLiteral(table) + " ORDER BY ORDINAL_POSITION",
      [&](mysql::RowView r) {
        columns.emplace_back(r[0].value_or(""));
        return Status::OK();
      });
  if (!s.ok()) return s.WithContext(what);
  if (columns.empty()) {
    return Status::InvalidArgument(what + ": table " + table + " does not exist in " +
                                   c.display().substr(0, c.display().rfind('/')));
  }
  std::string select, missing;
  for (const auto& f : schema.fields()) {
    const std::string& name = f.source_path();
    if (std::none_of(columns.begin(), columns.end(),
                     [&](const std::string& col) { return EqualNoCase(col, name); })) {
      missing += (missing.empty() ? "" : ", ") + name;
    }
    select += (select.empty() ? "" : ", ") + mysql::QuoteIdentifier(name);
  }
  if (!missing.empty()) {
    std::string have;
    for (const auto& col : columns) have += (have.empty() ? "" : ", ") + col;
    return Status::InvalidArgument(what + ": table " + table + " has no column " + missing +
                                   " (its columns: " + have + ")");
  }

  auto out = std::make_shared<DimensionTable>(config.name, schema, *key_index);
  std::vector<Value> row(schema.size());
  *skipped = 0;
  s = c.Query("SELECT " + select + " FROM " + mysql::QuoteIdentifier(table), [&](mysql::RowView r) {
    Status bad = ConvertRow(r, schema, *key_index, &row);
    if (!bad.ok()) {
      if (++*skipped == 1) *first_error = bad.message();
      return Status::OK();
    }
    out->Put(row);
    return Status::OK();
  });
  if (!s.ok()) return s.WithContext(what);
  return out;
}

namespace {

class MysqlPoller : public DimensionPoller {
 public:
  MysqlPoller(std::shared_ptr<Dimension> dim, mysql::Connection::Options options, std::string column,
              std::string cursor)
      : dim_(std::move(dim)), options_(std::move(options)), column_(std::move(column)),
        cursor_(std::move(cursor)) {
    const Schema& schema = dim_->snapshot()->fields();
    for (const auto& f : schema.fields()) {
      select_ += (select_.empty() ? "" : ", ") + mysql::QuoteIdentifier(f.source_path());
    }
    key_column_ = mysql::QuoteIdentifier(schema.field(dim_->snapshot()->key_index()).source_path());
  }

  Status Poll() override {
    if (!conn_) {
      auto c = mysql::Connection::Open(options_);
      if (!c.ok()) return c.status();
      conn_ = std::move(c).value();
    }
    Status s = PollChanges();
    if (!s.ok() && conn_->broken()) conn_.reset();
    return s;
  }

 private:
  static constexpr int kPageRows = 10000;

  Status PollChanges() {
    auto current = dim_->snapshot();
    const Schema& schema = current->fields();
    const size_t key_index = current->key_index();
    const std::string quoted = mysql::QuoteIdentifier(column_);
    // Start a grace period behind the newest change seen: a transaction that committed after a
    // later one carries an older timestamp. Re-reading a row already applied changes nothing.
    std::string from;
    if (!cursor_.empty()) {
      auto t = ParseTimestamp(cursor_);
      from = t ? FormatTimestamp(*t - dim_->refresh().grace_micros, "%Y-%m-%d %H:%M:%S.%f") : cursor_;
    }
    std::shared_ptr<DimensionTable> next;
    int64_t changes = 0;
    std::string newest = cursor_;
    std::string page_ts, page_key;  // the (timestamp, key) the last page ended at
    bool first_page = true;
    while (true) {
      std::string where;
      if (first_page) {
        if (!from.empty()) where = " WHERE " + quoted + " >= " + mysql::StringLiteral(from);
      } else {
        where = " WHERE (" + quoted + " > " + mysql::StringLiteral(page_ts) + " OR (" + quoted + " = " +
                mysql::StringLiteral(page_ts) + " AND " + key_column_ + " > " + page_key + "))";
      }
      const std::string sql = "SELECT " + select_ + ", " + quoted + " FROM " +
                              mysql::QuoteIdentifier(options_.uri.table) + where + " ORDER BY " + quoted +
                              ", " + key_column_ + " LIMIT " + std::to_string(kPageRows);
      int rows = 0;
      std::vector<Value> row(schema.size());
      Status s = conn_->Query(sql, [&](mysql::RowView r) -> Status {
        ++rows;
        const std::string ts(r[schema.size()].value_or(""));
        if (!ts.empty() && (newest.empty() || ts > newest)) newest = ts;
        page_ts = ts;
        if (!ConvertRow(r, schema, key_index, &row).ok()) {
          dim_->RecordRefreshError();
          return Status::OK();
        }
        page_key.clear();
        RETURN_IF_ERROR(mysql::AppendLiteral(row[key_index], &page_key));
        const std::vector<Value>* old = (next ? next.get() : current.get())->Find(row[key_index]);
        if (old && *old == row) return Status::OK();
        if (!next) next = std::make_shared<DimensionTable>(*current);
        next->Put(row);
        ++changes;
        return Status::OK();
      });
      RETURN_IF_ERROR(s);
      if (rows < kPageRows || page_ts.empty()) break;
      first_page = false;
    }
    cursor_ = newest;
    if (auto t = ParseTimestamp(newest)) dim_->SetLag(std::max<int64_t>(0, WallClockMicros() - *t));
    if (next) {
      dim_->Publish(std::move(next), changes, WallClockMicros());
      spdlog::info("dimension {}: {} row(s) changed in {} (newest {} = {})", dim_->name(), changes,
                   options_.uri.table, column_, newest);
    }
    return Status::OK();
  }

  std::shared_ptr<Dimension> dim_;
  mysql::Connection::Options options_;
  std::string column_;
  std::string cursor_;  ///< the newest updated_column value seen, as the server prints it
  std::string select_;
  std::string key_column_;
  std::unique_ptr<mysql::Connection> conn_;
};

}  // namespace

Result<std::unique_ptr<DimensionPoller>> MakeMysqlDimensionPoller(std::shared_ptr<Dimension> dim) {
  const DimensionConfig& config = dim->config();
  const std::string what = "dimension " + config.name;
  auto uri = mysql::ParseUri(config.uri, true);
  if (!uri.ok()) return uri.status().WithContext(what);
  mysql::Connection::Options options;
  options.uri = std::move(uri).value();
  OptionReader o(config.options, MysqlDimensionOptions(), "dimension." + config.name);
  options.password_file = o.String("password_file");
  auto conn = mysql::Connection::Open(options);
  if (!conn.ok()) return conn.status().WithContext(what);
  std::string column = dim->refresh().updated_column;
  const bool configured = !column.empty();
  if (!configured) column = "updated_at";
  std::vector<std::string> found;
  Status s = (*conn)->Query(
      "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND "
      "TABLE_NAME = " + mysql::StringLiteral(options.uri.table) + " AND COLUMN_NAME = " +
          mysql::StringLiteral(column),
      [&](mysql::RowView r) {
        found.emplace_back(r[0].value_or(""));
        return Status::OK();
      });
  if (!s.ok()) return s.WithContext(what);
  if (found.empty()) {
    if (configured) {
      return Status::InvalidArgument(o.Where("updated_column") + ": table " +
                                     options.uri.table + " has no column " + column);
    }
    spdlog::info("{}: table {} has no updated_at column; the snapshot stays as loaded (set "
                 "updated_column to follow changes)", what, options.uri.table);
    return std::unique_ptr<DimensionPoller>();
  }
  column = found[0];
  std::string cursor;
  s = (*conn)->Query("SELECT MAX(" + mysql::QuoteIdentifier(column) + ") FROM " +
                         mysql::QuoteIdentifier(options.uri.table),
                     [&](mysql::RowView r) {
                       cursor = std::string(r[0].value_or(""));
                       return Status::OK();
                     });
  if (!s.ok()) return s.WithContext(what);
  spdlog::info("{}: following changes of {} by {} every {}s", what, options.uri.table, column,
               dim->refresh().interval_micros / 1e6);
  return std::unique_ptr<DimensionPoller>(new MysqlPoller(std::move(dim), std::move(options), column, cursor));
}

}  // namespace sluice
