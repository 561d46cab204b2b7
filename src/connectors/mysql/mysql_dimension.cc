#include "connectors/mysql/mysql_dimension.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "connectors/mysql/mysql_connection.h"
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

}  // namespace

Result<std::shared_ptr<DimensionTable>> LoadMysqlDimension(const DimensionConfig& config,
                                                           size_t* skipped,
                                                           std::string* first_error) {
  const std::string what = "dimension " + config.name;
  auto uri = mysql::ParseUri(config.uri, true);
  if (!uri.ok()) return uri.status().WithContext(what);
  mysql::Connection::Options options;
  options.uri = std::move(uri).value();
  options.password_file = config.options.GetString("password_file");
  RETURN_IF_ERROR(config.options.RejectUnconsumed("dimension." + config.name));
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
    Status bad;
    for (size_t i = 0; i < schema.size() && bad.ok(); ++i) {
      if (!r[i]) {
        row[i] = Value::Null();
        continue;
      }
      auto v = Convert(*r[i], schema.field(i));
      if (v.ok()) {
        row[i] = std::move(v).value();
      } else {
        bad = v.status();
      }
    }
    if (bad.ok() && row[*key_index].is_null()) bad = Status::ParseError("null key");
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

}  // namespace sluice
