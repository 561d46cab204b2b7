#include "connectors/mysql/mysql_table_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <thread>

#include "connectors/mysql/mysql_sql.h"
#include "connectors/table/table_util.h"
#include "core/time.h"

namespace sluice {
namespace {

constexpr auto kIdleWait = std::chrono::milliseconds(500);

bool ParseInt(std::string_view text, int64_t* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

const OptionTable& MysqlTableSourceOptions() {
  static const OptionTable kTable{
      .uri = "mysql://USER@HOST[:PORT]/DB/TABLE",
      .summary = "A MySQL or MariaDB table read in (`order_by`, `key`) order after a cursor committed "
                 "with the results, then followed. Options may also be written in the URI's query.",
      .options = {
          {.name = "password_file",
           .type = OptionType::kPath,
           .default_note = "`SLUICE_MYSQL_PASSWORD_FILE`",
           .help = "File holding the password (else `SLUICE_MYSQL_PASSWORD`); never in the URI."},
          {.name = "order_by", .default_value = "id", .help = "Integer or DATETIME/TIMESTAMP column rows are read in order of."},
          {.name = "key", .default_note = "`order_by`", .help = "Integer column unique within one `order_by` value."},
          {.name = "grace",
           .type = OptionType::kDuration,
           .default_value = "5s",
           .help = "With a timestamp `order_by`, rows newer than the server's clock minus this are "
                   "left for the next poll."},
          {.name = "page_rows", .type = OptionType::kInt, .default_value = "10000", .help = "Rows per read."},
      }};
  return kTable;
}

Result<std::vector<std::unique_ptr<Source>>> MysqlTableSource::Make(const SourceConfig& config,
                                                                    int /*max_instances*/) {
  Options options = config.options;
  // Options may ride in the URI: mysql://u@h:3306/db/tracking?order_by=inserted_at&key=id
  ASSIGN_OR_RETURN(std::string uri, TakeUriOptions(config.uri, &options));
  OptionReader o(options, MysqlTableSourceOptions(), "source");
  auto parsed = mysql::ParseUri(uri, true);
  if (!parsed.ok()) return Status::InvalidArgument(o.Where("uri") + ": " + parsed.status().message());
  Settings s;
  s.name = config.name;
  s.connection.uri = std::move(parsed).value();
  s.connection.password_file = o.String("password_file");
  s.order_by = o.String("order_by");
  s.key = o.String("key", s.order_by);
  ASSIGN_OR_RETURN(s.grace_micros, o.Duration("grace"));
  ASSIGN_OR_RETURN(s.page_rows, o.Int("page_rows"));
  if (s.page_rows <= 0) return Status::InvalidArgument(o.Where("page_rows") + ": page_rows must be positive");
  for (const auto& f : config.fields) s.columns.push_back(f.source_path());
  RETURN_IF_ERROR(o.Finish());
  std::vector<std::unique_ptr<Source>> out;
  // One reader: the cursor is one position, so the table is not split between workers.
  out.push_back(std::unique_ptr<Source>(new MysqlTableSource(std::move(s))));
  return out;
}

Status MysqlTableSource::Connect() {
  ASSIGN_OR_RETURN(conn_, mysql::Connection::Open(settings_.connection));
  const std::string& table = settings_.connection.uri.table;
  std::vector<std::pair<std::string, std::string>> columns;  // name, data type
  RETURN_IF_ERROR(conn_->Query(
      "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
      "AND TABLE_NAME = " + mysql::StringLiteral(table),
      [&](mysql::RowView r) {
        columns.emplace_back(std::string(r[0].value_or("")), std::string(r[1].value_or("")));
        return Status::OK();
      }));
  const std::string where = "source " + settings_.connection.uri.Display() + "/" + table;
  if (columns.empty()) return Status::InvalidArgument(where + ": the table does not exist");
  auto type_of = [&](const std::string& name) -> std::optional<std::string> {
    for (const auto& [n, t] : columns) {
      if (n == name) return t;
    }
    return std::nullopt;
  };
  for (const auto& c : settings_.columns) {
    if (!type_of(c)) return Status::InvalidArgument(where + ": no column " + c + " (a declared field)");
  }
  auto order = type_of(settings_.order_by);
  if (!order) return Status::InvalidArgument(where + ": no order_by column " + settings_.order_by);
  static const std::vector<std::string> kInts = {"tinyint", "smallint", "mediumint", "int", "bigint"};
  static const std::vector<std::string> kTimes = {"datetime", "timestamp"};
  timestamp_order_ = std::find(kTimes.begin(), kTimes.end(), *order) != kTimes.end();
  if (!timestamp_order_ && std::find(kInts.begin(), kInts.end(), *order) == kInts.end()) {
    return Status::InvalidArgument(where + ": order_by column " + settings_.order_by + " is " + *order +
                                   "; it must be an integer or a DATETIME/TIMESTAMP");
  }
  auto key = type_of(settings_.key);
  if (!key || std::find(kInts.begin(), kInts.end(), *key) == kInts.end()) {
    return Status::InvalidArgument(where + ": key column " + settings_.key + " must be an integer column");
  }
  return Status::OK();
}

Status MysqlTableSource::Open(const SourceContext& ctx) {
  ctx_ = ctx;
  RETURN_IF_ERROR(Connect());
  cursor_order_ = ctx.committed_position(0);
  if (cursor_order_) cursor_key_ = ctx.committed_position(1).value_or(0);
  if (cursor_order_) cursor_row_hash_ = ctx.committed_position(kCursorRowPartition);
  RETURN_IF_ERROR(CheckCursorRow());
  spdlog::info("source {}/{}: reading by ({}, {}) {}", settings_.connection.uri.Display(),
               settings_.connection.uri.table, settings_.order_by, settings_.key,
               cursor_order_ ? "after the committed cursor" : "from the start");
  return Status::OK();
}

std::string MysqlTableSource::SelectSql() const {
  std::string sql = "SELECT ";
  for (const auto& c : settings_.columns) sql += mysql::QuoteIdentifier(c) + ", ";
  return sql + mysql::QuoteIdentifier(settings_.order_by) + ", " + mysql::QuoteIdentifier(settings_.key) +
         " FROM " + mysql::QuoteIdentifier(settings_.connection.uri.table);
}

std::string MysqlTableSource::OrderLiteral(int64_t order) const {
  return timestamp_order_ ? mysql::StringLiteral(FormatTimestamp(order, "%Y-%m-%d %H:%M:%S.%f"))
                          : std::to_string(order);
}

Status MysqlTableSource::CheckCursorRow() {
  // Positions from a sluice that stored no row hash are trusted as they are.
  if (!cursor_order_ || !cursor_row_hash_) return Status::OK();
  const size_t n = settings_.columns.size();
  std::string sql = SelectSql() + " WHERE " + mysql::QuoteIdentifier(settings_.order_by) + " = " +
                    OrderLiteral(*cursor_order_);
  if (settings_.order_by != settings_.key) {
    sql += " AND " + mysql::QuoteIdentifier(settings_.key) + " = " + std::to_string(cursor_key_);
  }
  bool found = false, same = false;
  RETURN_IF_ERROR(conn_->Query(sql + " LIMIT 1", [&](mysql::RowView r) -> Status {
    found = true;
    scratch_.clear();
    values_.assign(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(n));
    AppendJsonRow(settings_.columns, values_, &scratch_);
    same = Fingerprint64(scratch_) == *cursor_row_hash_;
    return Status::OK();
  }));
  if (same) return Status::OK();
  std::string created;
  RETURN_IF_ERROR(conn_->Query(
      "SELECT CREATE_TIME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
          mysql::StringLiteral(settings_.connection.uri.table),
      [&](mysql::RowView r) {
        created = std::string(r[0].value_or(""));
        return Status::OK();
      }));
  std::string cursor = settings_.order_by + " = " + (timestamp_order_ ? FormatTimestamp(*cursor_order_, "%Y-%m-%d %H:%M:%S.%f")
                                                                       : std::to_string(*cursor_order_));
  if (settings_.order_by != settings_.key) cursor += ", " + settings_.key + " = " + std::to_string(cursor_key_);
  return CursorRowChanged(
      "source " + settings_.name + " (" + settings_.connection.uri.Display() + "/" + settings_.connection.uri.table + ")",
      settings_.name, cursor, !found, created.empty() ? "" : "The table's CREATE_TIME is " + created + ".");
}

std::string MysqlTableSource::PageSql(size_t limit) const {
  const std::string order = mysql::QuoteIdentifier(settings_.order_by);
  const std::string key = mysql::QuoteIdentifier(settings_.key);
  std::string sql = SelectSql() + " WHERE " + order + " IS NOT NULL";
  if (cursor_order_) {
    const std::string at = OrderLiteral(*cursor_order_);
    if (settings_.order_by == settings_.key) {
      sql += " AND " + order + " > " + at;
    } else {
      sql += " AND (" + order + " > " + at + " OR (" + order + " = " + at + " AND " + key + " > " +
             std::to_string(cursor_key_) + "))";
    }
  }
  if (timestamp_order_ && settings_.grace_micros > 0) {
    // Rows this recent may still be joined by a transaction that commits late: leave them.
    sql += " AND " + order + " <= NOW(6) - INTERVAL " + std::to_string(settings_.grace_micros) + " MICROSECOND";
  }
  sql += " ORDER BY " + order + ", " + key + " LIMIT " + std::to_string(limit);
  return sql;
}

Result<PollState> MysqlTableSource::Poll(RawBatch* out, size_t max_records, std::chrono::milliseconds budget) {
  if (!conn_) {
    Status s = Connect();
    if (!s.ok()) {
      conn_.reset();
      return s;
    }
  }
  const size_t limit = std::min<size_t>(max_records, static_cast<size_t>(settings_.page_rows));
  const size_t n = settings_.columns.size();
  size_t rows = 0;
  Status bad;
  Status s = conn_->Query(PageSql(limit), [&](mysql::RowView r) -> Status {
    int64_t order = 0, key = 0;
    const std::string_view order_text = r[n].value_or("");
    if (timestamp_order_) {
      auto t = ParseTimestamp(order_text);
      if (!t) return Status::Internal("order_by value '" + std::string(order_text) + "' is not a timestamp");
      order = *t;
    } else if (!ParseInt(order_text, &order)) {
      return Status::Internal("order_by value '" + std::string(order_text) + "' is not an integer");
    }
    if (!r[n + 1] || !ParseInt(*r[n + 1], &key)) {
      return Status::Internal("key value of a row is not an integer (NULL?): " + settings_.key);
    }
    scratch_.clear();
    values_.assign(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(n));
    AppendJsonRow(settings_.columns, values_, &scratch_);
    RawRecord& rec = out->Append(scratch_);
    rec.partition = 0;
    rec.offset = order;
    rec.next_offset = order;
    cursor_order_ = order;
    cursor_key_ = key;
    cursor_row_hash_ = Fingerprint64(scratch_);
    ++rows;
    return Status::OK();
  });
  if (!s.ok()) {
    if (conn_->broken()) conn_.reset();
    // Records appended before the failure are kept: the cursor moved with them.
    if (rows == 0) return s;
    return PollState::kData;
  }
  if (rows > 0) return PollState::kData;
  if (ctx_.until_caught_up) return PollState::kEnd;
  std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(budget, kIdleWait));
  return PollState::kIdle;
}

std::vector<std::pair<int32_t, int64_t>> MysqlTableSource::PositionsAfterBatch() const {
  if (!cursor_order_) return {};
  if (!cursor_row_hash_) return {{0, *cursor_order_}, {1, cursor_key_}};
  return {{0, *cursor_order_}, {1, cursor_key_}, {kCursorRowPartition, *cursor_row_hash_}};
}

}  // namespace sluice
