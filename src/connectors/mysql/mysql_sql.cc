#include "connectors/mysql/mysql_sql.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "core/dead_letter.h"
#include "core/json_writer.h"
#include "core/time.h"
#include "core/uri.h"
#include "runtime/source.h"

namespace sluice::mysql {
namespace {

std::string SqlType(Type t, bool key) {
  switch (t) {
    case Type::kInt64:
      return "BIGINT";
    case Type::kBool:
      return "BOOLEAN";
    case Type::kDouble:
      return "DOUBLE";
    case Type::kTimestamp:
      return "DATETIME";
    case Type::kString:
    case Type::kNull:
      break;
  }
  // TEXT cannot be part of a primary key without a prefix length.
  return key ? "VARCHAR(255)" : "TEXT";
}

/// Accepts what a column type can look like (DATE, DECIMAL(10,2), VARCHAR(64) CHARACTER SET
/// latin1, BIGINT UNSIGNED), so that a typo fails here with the option's name, not as an SQL
/// syntax error, and nothing but a type can reach the DDL.
bool PlausibleType(std::string_view t) {
  if (t.empty() || !std::isalpha(static_cast<unsigned char>(t[0]))) return false;
  int depth = 0;
  for (char c : t) {
    if (c == '(') {
      if (++depth > 1) return false;
    } else if (c == ')') {
      if (--depth < 0) return false;
    } else if (c == ',') {
      if (depth == 0) return false;
    } else if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ' ') {
      return false;
    }
  }
  return depth == 0;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

Result<std::string> ReadPasswordFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read the MySQL password file " + path + " (" + what +
                                   ")");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

std::string Quote(const std::string& name) { return QuoteIdentifier(name); }

/// How the aggregate catalog spells its merge statements here.
const SqlSpelling kSpelling{SqlDialect::kMysql, Quote, AppendLiteral};

}  // namespace

ErrorKind ClassifyError(unsigned n) {
  // The server cannot be reached or the connection broke (client 2xxx/5xxx), or the server is
  // shutting down, killed the connection, had network trouble, is full or read-only (failover).
  static constexpr unsigned kConnection[] = {
      2002, 2003, 2004, 2005, 2006, 2013, 2026, 2055, 5013, 5014, 1040, 1053, 1077, 1079, 1080,
      1152, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1203, 1290, 1836, 1927, 4031};
  // Lock wait timeout, deadlock, query interrupted, statement timeouts.
  static constexpr unsigned kTransient[] = {1205, 1213, 1317, 1969, 3024};
  // Statements over max_allowed_packet; credentials, database, privileges; table definitions
  // the server refuses (usually because of column_types).
  static constexpr unsigned kConfig[] = {1153, 2020, 1044, 1045, 1049, 1129, 1130, 1142,
                                         1143, 1227, 1251, 1698, 1820, 1862, 1067, 1071,
                                         1074, 1115, 1118, 1170, 1273, 1286};
  // NULL in NOT NULL, out of range, truncated, bad datetime/string, too long, ...
  static constexpr unsigned kData[] = {1048, 1264, 1265, 1292, 1365, 1366,
                                       1367, 1406, 1411, 1690, 4025};
  // Unknown column or table, syntax, column count, commands out of sync.
  static constexpr unsigned kBug[] = {1054, 1064, 1110, 1136, 1146, 1149, 2014};
  auto in = [n](const auto& list) {
    return std::find(std::begin(list), std::end(list), n) != std::end(list);
  };
  if (in(kConnection)) return ErrorKind::kConnection;
  if (in(kTransient)) return ErrorKind::kTransient;
  if (in(kConfig)) return ErrorKind::kConfig;
  if (in(kData)) return ErrorKind::kData;
  if (in(kBug)) return ErrorKind::kBug;
  return ErrorKind::kOther;
}

bool IsDiskFull(unsigned n, std::string_view message) {
  // ER_DISK_FULL, ER_RECORD_FILE_FULL; otherwise the OS error in the text (ER_CANT_CREATE_TABLE
  // "(errno: 28 ...)", ER_GET_ERRNO "Got error 28 ...", EE_WRITE "(Errcode: 28 ...)").
  if (n == 1021 || n == 1114) return true;
  for (std::string_view mark : {"No space left on device", "Errcode: 28", "errno: 28", "error 28 "}) {
    if (message.find(mark) != std::string_view::npos) return true;
  }
  return false;
}

ErrorKind ClassifyError(unsigned n, std::string_view message) {
  if (IsDiskFull(n, message)) return ErrorKind::kTransient;
  return ClassifyError(n);
}

StatusCode StatusCodeFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnection:
    case ErrorKind::kTransient:
      return StatusCode::kUnavailable;
    case ErrorKind::kConfig:
    case ErrorKind::kData:
      return StatusCode::kInvalidArgument;
    case ErrorKind::kBug:
      return StatusCode::kInternal;
    case ErrorKind::kOther:
      break;
  }
  return StatusCode::kIOError;
}

std::string Uri::Display() const {
  std::string out = user + "@" + ServerUri::HostPort(host, port) + "/" + database;
  if (!table.empty()) out += "/" + table;
  return out;
}

Result<Uri> ParseUri(std::string_view uri, bool with_table) {
  const std::string form =
      with_table ? "mysql://USER@HOST[:PORT]/DATABASE/TABLE" : "mysql://USER@HOST[:PORT]/DATABASE";
  ServerUriRules rules;
  rules.scheme = "mysql";
  rules.form = form;
  rules.password_hint =
      "give only the user and put the password in the environment variable SLUICE_MYSQL_PASSWORD, "
      "or in a file named by SLUICE_MYSQL_PASSWORD_FILE or by the option password_file";
  rules.user_required = true;
  ASSIGN_OR_RETURN(ServerUri server, ParseServerUri(uri, rules));
  Uri out;
  out.user = std::move(server.user);
  out.host = std::move(server.host);
  if (server.port != 0) out.port = server.port;
  const std::string& path = server.path;
  if (path.find('?') != std::string::npos) {
    return Status::InvalidArgument("mysql URI: query parameters are not supported; use options");
  }
  const size_t split = path.find('/');
  out.database = path.substr(0, split);
  if (split != std::string::npos) out.table = path.substr(split + 1);
  if (out.database.empty()) return Status::InvalidArgument("mysql URI needs a database: " + form);
  if (with_table && (out.table.empty() || out.table.find('/') != std::string::npos)) {
    return Status::InvalidArgument("mysql dimension URI needs a table: " + form);
  }
  if (!with_table && split != std::string::npos) {
    return Status::InvalidArgument("mysql sink URI names only the database (" + form +
                                   "); the table comes from the sink's table option");
  }
  return out;
}

Result<std::string> ResolvePassword(const std::string& password_file) {
  if (!password_file.empty()) return ReadPasswordFile(password_file, "option password_file");
  if (const char* file = std::getenv("SLUICE_MYSQL_PASSWORD_FILE"); file && *file) {
    return ReadPasswordFile(file, "SLUICE_MYSQL_PASSWORD_FILE");
  }
  if (const char* password = std::getenv("SLUICE_MYSQL_PASSWORD")) return std::string(password);
  return std::string();
}

Result<std::map<std::string, std::string>> ParseColumnTypes(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size()) {
      if (text[i] == '(') ++depth;
      if (text[i] == ')') --depth;
      if (text[i] != ',' || depth > 0) continue;
    }
    std::string entry = Trim(text.substr(start, i - start));
    start = i + 1;
    if (entry.empty()) continue;
    size_t colon = entry.find(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("column_types: expected NAME:TYPE, got '" + entry + "'");
    }
    std::string name = Trim(std::string_view(entry).substr(0, colon));
    std::string type = Trim(std::string_view(entry).substr(colon + 1));
    if (name.empty()) {
      return Status::InvalidArgument("column_types: missing column name in '" + entry + "'");
    }
    if (!PlausibleType(type)) {
      return Status::InvalidArgument("column_types: '" + type + "' (for " + name +
                                     ") is not an SQL column type such as DATE or DECIMAL(10,2)");
    }
    if (!out.emplace(name, type).second) {
      return Status::InvalidArgument("column_types: column " + name + " is given twice");
    }
  }
  return out;
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`') out += '`';
    out += c;
  }
  return out + "`";
}

std::string StringLiteral(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '\'';
  for (char c : text) {
    switch (c) {
      case '\0':
        out += "\\0";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\x1a':
        out += "\\Z";
        break;
      default:
        out += c;
    }
  }
  out += '\'';
  return out;
}

Status AppendLiteral(const Value& v, std::string* out) {
  switch (v.type()) {
    case Type::kNull:
      *out += "NULL";
      break;
    case Type::kBool:
      *out += v.bool_value() ? '1' : '0';
      break;
    case Type::kInt64: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.int_value());
      out->append(buf, end);
      break;
    }
    case Type::kDouble: {
      const double d = v.double_value();
      if (!std::isfinite(d)) {
        return Status::InvalidArgument("MySQL cannot store the non-finite number " +
                                       FormatDouble(d));
      }
      const size_t mark = out->size();
      *out += FormatDouble(d);
      // An exponent makes it an approximate (DOUBLE) literal rather than an exact DECIMAL one.
      if (out->find_first_of("eE", mark) == std::string::npos) *out += "e0";
      break;
    }
    case Type::kString:
      *out += StringLiteral(v.string_value());
      break;
    case Type::kTimestamp:
      *out += '\'';
      *out += FormatTimestamp(v.time_value().micros, "%Y-%m-%d %H:%M:%S");
      *out += '\'';
      break;
  }
  return Status::OK();
}

std::string ChooseCollation(const std::vector<std::string>& available) {
  for (const char* preferred : {"utf8mb4_nopad_bin", "utf8mb4_0900_bin"}) {
    for (const auto& a : available) {
      if (a == preferred) return a;
    }
  }
  return "utf8mb4_bin";
}

std::string CreateDeadLettersTableSql(const std::string& collation) {
  return "CREATE TABLE IF NOT EXISTS `_sluice_dead_letters` (`pipeline` VARCHAR(255) NOT NULL, "
         "`source` VARCHAR(255) NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, "
         "`generation` BIGINT NOT NULL DEFAULT 0, "
         "`seq` INT NOT NULL, `reason` TEXT NOT NULL, `time` DATETIME(6) NOT NULL, "
         "`payload` MEDIUMTEXT NOT NULL, `payload_base64` MEDIUMTEXT NULL, "
         "`payload_bytes` BIGINT NOT NULL, `truncated` BOOLEAN NOT NULL, "
         "`payload_sha256` CHAR(64) NOT NULL, "
         "PRIMARY KEY (`pipeline`, `source`, `partition`, `offset`, `generation`, `seq`)) "
         "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" +
         collation;
}

std::string DeadLettersHaveGenerationSql() {
  return "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND "
         "TABLE_NAME = '_sluice_dead_letters' AND COLUMN_NAME = 'generation'";
}

std::string MigrateDeadLettersSql() {
  return "ALTER TABLE `_sluice_dead_letters` ADD COLUMN `generation` BIGINT NOT NULL DEFAULT 0 "
         "AFTER `offset`, DROP PRIMARY KEY, ADD PRIMARY KEY (`pipeline`, `source`, `partition`, "
         "`offset`, `generation`, `seq`)";
}

Status ForEachDeadLetterStatement(const std::string& pipeline, const std::vector<DeadLetter>& letters,
                                  size_t max_bytes,
                                  const std::function<Status(const std::string&)>& run) {
  static const std::string kHead =
      "INSERT INTO `_sluice_dead_letters` (`pipeline`, `source`, `partition`, `offset`, "
      "`generation`, `seq`, `reason`, `time`, `payload`, `payload_base64`, `payload_bytes`, "
      "`truncated`, `payload_sha256`) VALUES ";
  // Keeps the stored letter: the row already holds this key (the same record, dead-lettered
  // by an earlier attempt of this checkpoint that did commit).
  static const std::string kTail = " ON DUPLICATE KEY UPDATE `seq` = `seq`";
  const std::string p = StringLiteral(ToValidUtf8(pipeline));
  std::string sql;
  for (const DeadLetter& d : letters) {
    const StoredPayload payload = EncodeDeadLetterPayload(d.payload);
    std::string row = "(" + p + ", " + StringLiteral(ToValidUtf8(d.source)) + ", " +
                      std::to_string(d.partition) + ", " + std::to_string(d.offset) + ", " +
                      std::to_string(d.generation) + ", " + std::to_string(d.seq) + ", " + StringLiteral(ToValidUtf8(d.reason)) + ", '" +
                      FormatTimestamp(d.time_micros, "%Y-%m-%d %H:%M:%S.%f") + "', " +
                      StringLiteral(payload.json) + ", " +
                      (payload.base64.empty() ? std::string("NULL") : StringLiteral(payload.base64)) +
                      ", " + std::to_string(payload.bytes) + ", " + (payload.truncated ? "1" : "0") +
                      ", '" + payload.sha256 + "')";
    if (!sql.empty() && sql.size() + row.size() + 2 > max_bytes) {
      RETURN_IF_ERROR(run(sql + kTail));
      sql.clear();
    }
    sql += sql.empty() ? kHead : ", ";
    sql += row;
  }
  if (!sql.empty()) RETURN_IF_ERROR(run(sql + kTail));
  return Status::OK();
}

std::string CountDeadLettersSql(const std::string& pipeline) {
  return "SELECT `reason`, COUNT(*) FROM `_sluice_dead_letters` WHERE `pipeline` = " +
         StringLiteral(pipeline) + " GROUP BY `reason`";
}

std::string SampleDeadLettersSql(const std::string& pipeline, const std::string& reason,
                                 size_t limit) {
  return "SELECT `source`, `partition`, `offset`, DATE_FORMAT(`time`, "
         "'%Y-%m-%dT%H:%i:%s.%fZ'), `payload`, `payload_bytes`, `truncated` FROM "
         "`_sluice_dead_letters` WHERE `pipeline` = " +
         StringLiteral(pipeline) + " AND `reason` = " + StringLiteral(reason) +
         " ORDER BY `time` DESC, `source`, `partition`, `offset` DESC, `seq` DESC LIMIT " +
         std::to_string(limit);
}

std::string SluiceTablesSql() {
  return "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
         "TABLE_NAME IN ('_sluice_positions', '_sluice_state', '_sluice_tasks', '_sluice_dead_letters') "
         "ORDER BY "
         "TABLE_NAME";
}

std::string PipelinesSql(const std::vector<std::string>& tables) {
  std::string sql;
  for (const auto& t : tables) {
    sql += (sql.empty() ? "" : " UNION ") + std::string("SELECT `pipeline` FROM ") + QuoteIdentifier(t);
  }
  return sql;
}

std::string LastUpdateSql(const std::string& table, const std::string& pipeline) {
  return "SELECT DATE_FORMAT(MAX(`updated_at`), '%Y-%m-%d %H:%i:%s') FROM " +
         QuoteIdentifier(table) + " WHERE `pipeline` = " + StringLiteral(pipeline);
}

std::string CreatePositionsTableSql(const std::string& collation) {
  return "CREATE TABLE IF NOT EXISTS `_sluice_positions` (`pipeline` VARCHAR(255) NOT NULL, "
         "`source` VARCHAR(255) NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, "
         "`updated_at` DATETIME NOT NULL, PRIMARY KEY (`pipeline`, `source`, `partition`)) "
         "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" +
         collation;
}

std::string UpsertPositionsSql(const std::string& pipeline,
                               const std::vector<StoredPosition>& positions) {
  std::string sql =
      "INSERT INTO `_sluice_positions` (`pipeline`, `source`, `partition`, `offset`, "
      "`updated_at`) VALUES ";
  const std::string p = StringLiteral(pipeline);
  for (size_t i = 0; i < positions.size(); ++i) {
    const StoredPosition& pos = positions[i];
    sql += (i ? ", (" : "(") + p + ", " + StringLiteral(pos.source) + ", " +
           std::to_string(pos.partition) + ", " + std::to_string(pos.offset) + ", UTC_TIMESTAMP())";
  }
  return sql +
         " ON DUPLICATE KEY UPDATE `offset` = VALUES(`offset`), `updated_at` = "
         "VALUES(`updated_at`)";
}

std::string SelectPositionsSql(const std::string& pipeline) {
  return "SELECT `source`, `partition`, `offset` FROM `_sluice_positions` WHERE `pipeline` = " +
         StringLiteral(pipeline);
}

std::string CreateStateTableSql(const std::string& collation) {
  return "CREATE TABLE IF NOT EXISTS `_sluice_state` (`pipeline` VARCHAR(255) NOT NULL, "
         "`state` LONGBLOB NOT NULL, `updated_at` DATETIME NOT NULL, PRIMARY KEY (`pipeline`)) "
         "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" +
         collation;
}

std::string HexLiteral(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 2 + 3);
  out += "X'";
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  out += '\'';
  return out;
}

std::string UpsertStateSql(const std::string& pipeline, std::string_view state) {
  return "INSERT INTO `_sluice_state` (`pipeline`, `state`, `updated_at`) VALUES (" +
         StringLiteral(pipeline) + ", " + HexLiteral(state) +
         ", UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE `state` = VALUES(`state`), "
         "`updated_at` = VALUES(`updated_at`)";
}

std::string SelectStateSql(const std::string& pipeline) {
  return "SELECT HEX(`state`) FROM `_sluice_state` WHERE `pipeline` = " + StringLiteral(pipeline);
}

bool DecodeHex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  out->clear();
  out->reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

namespace {

/// An event time (microseconds) as a BIGINT literal, NULL for kNoWatermark.
std::string TimeLiteral(int64_t t) { return t == kNoWatermark ? "NULL" : std::to_string(t); }

std::string TaskWhere(const std::string& pipeline, const TaskId& task) {
  return " WHERE `pipeline` = " + StringLiteral(pipeline) + " AND `source` = " + StringLiteral(task.source) +
         " AND `partition` = " + std::to_string(task.partition);
}

}  // namespace

std::string CreateTasksTableSql(const std::string& collation) {
  return "CREATE TABLE IF NOT EXISTS `_sluice_tasks` (`pipeline` VARCHAR(255) NOT NULL, "
         "`source` VARCHAR(255) NOT NULL, `partition` INT NOT NULL, `fence` BIGINT NOT NULL DEFAULT 0, "
         "`owner` VARCHAR(1024) NOT NULL DEFAULT '', `max_event_time` BIGINT NULL, `watermark` BIGINT NULL, "
         "`enforced` BIGINT NULL, `idle` TINYINT NOT NULL DEFAULT 0, `state` LONGBLOB NULL, "
         "`updated_at` DATETIME NOT NULL, PRIMARY KEY (`pipeline`, `source`, `partition`)) "
         "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" +
         collation;
}

std::string ClaimTaskSql(const std::string& pipeline, const TaskId& task, const std::string& owner) {
  return "INSERT INTO `_sluice_tasks` (`pipeline`, `source`, `partition`, `fence`, `owner`, `updated_at`) "
         "VALUES (" +
         StringLiteral(pipeline) + ", " + StringLiteral(task.source) + ", " + std::to_string(task.partition) +
         ", 1, " + StringLiteral(owner) +
         ", UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE `fence` = `fence` + 1, `owner` = VALUES(`owner`), "
         "`updated_at` = VALUES(`updated_at`)";
}

std::string SelectTaskSql(const std::string& pipeline, const TaskId& task) {
  return "SELECT `fence`, HEX(`state`) FROM `_sluice_tasks`" + TaskWhere(pipeline, task) + " FOR UPDATE";
}

std::string SelectTaskPositionsSql(const std::string& pipeline, const TaskId& task) {
  return "SELECT `partition`, `offset` FROM `_sluice_positions` WHERE `pipeline` = " + StringLiteral(pipeline) +
         " AND `source` = " + StringLiteral(task.source) + " AND `partition` IN (" +
         std::to_string(task.partition) + ", " + std::to_string(kGenerationPartitionBase + task.partition) +
         ") ORDER BY `partition` FOR UPDATE";
}

std::string LockTasksSql(const std::string& pipeline, const std::vector<TaskId>& tasks, bool with_progress) {
  // Grouped by source with an IN list each: InnoDB reads (and locks) them as ranges of the
  // primary key in its order, and only those rows (an OR of row constructors may be scanned
  // over the whole pipeline, locking every task of it).
  std::map<std::string, std::set<int32_t>> by_source;
  for (const auto& t : tasks) by_source[t.source].insert(t.partition);
  std::string where;
  for (const auto& [source, partitions] : by_source) {
    std::string in;
    for (int32_t p : partitions) in += (in.empty() ? "" : ", ") + std::to_string(p);
    where += (where.empty() ? "" : " OR ") + std::string("(`source` = ") + StringLiteral(source) +
             " AND `partition` IN (" + in + "))";
  }
  return std::string("SELECT `source`, `partition`, `fence`") +
         (with_progress ? ", `owner`, `max_event_time`, `watermark`, `enforced`, `idle`, HEX(`state`)" : "") +
         " FROM `_sluice_tasks` WHERE `pipeline` = " + StringLiteral(pipeline) + " AND (" + where +
         ") ORDER BY `source`, `partition` FOR UPDATE";
}

std::string UpdateTaskSql(const std::string& pipeline, const TaskCommit& t) {
  std::string sql = "UPDATE `_sluice_tasks` SET `max_event_time` = " + TimeLiteral(t.progress.max_event_time) +
                    ", `watermark` = " + TimeLiteral(t.progress.watermark) +
                    ", `enforced` = " + TimeLiteral(t.progress.enforced) +
                    ", `idle` = " + (t.progress.idle ? "1" : "0");
  if (t.state) sql += ", `state` = " + HexLiteral(*t.state);
  if (t.release) sql += ", `owner` = ''";
  return sql + ", `updated_at` = UTC_TIMESTAMP()" + TaskWhere(pipeline, t.task);
}

std::string InsertMigratedTaskSql(const std::string& pipeline, const TaskId& task,
                                  const TaskProgress& progress, std::string_view state) {
  return "INSERT INTO `_sluice_tasks` (`pipeline`, `source`, `partition`, `fence`, `owner`, `max_event_time`, "
         "`watermark`, `enforced`, `idle`, `state`, `updated_at`) VALUES (" +
         StringLiteral(pipeline) + ", " + StringLiteral(task.source) + ", " + std::to_string(task.partition) +
         ", 0, '', " + TimeLiteral(progress.max_event_time) + ", " + TimeLiteral(progress.watermark) + ", " +
         TimeLiteral(progress.enforced) + ", " + (progress.idle ? "1" : "0") + ", " + HexLiteral(state) +
         ", UTC_TIMESTAMP())";
}

std::string SelectTaskProgressSql(const std::string& pipeline) {
  return "SELECT `source`, `partition`, `fence`, `owner`, `max_event_time`, `watermark`, `enforced`, `idle`, "
         "UNIX_TIMESTAMP(`updated_at`) FROM `_sluice_tasks` WHERE `pipeline` = " +
         StringLiteral(pipeline) + " ORDER BY `source`, `partition`";
}

std::string AnyTaskSql(const std::string& pipeline) {
  return "SELECT 1 FROM `_sluice_tasks` WHERE `pipeline` = " + StringLiteral(pipeline) + " LIMIT 1 FOR UPDATE";
}

std::string DeleteStateSql(const std::string& pipeline) {
  return "DELETE FROM `_sluice_state` WHERE `pipeline` = " + StringLiteral(pipeline);
}

std::string TaskStateSizeSql(const std::string& pipeline) {
  return "SELECT COUNT(*), COALESCE(SUM(LENGTH(`state`)), 0) FROM `_sluice_tasks` WHERE `pipeline` = " +
         StringLiteral(pipeline);
}

Result<TableSql> TableSql::Make(const SinkContext& ctx, std::string table,
                                const std::map<std::string, std::string>& types) {
  TableSql t;
  t.table_ = std::move(table);
  t.internal_ = InternalColumnNames(ctx.aggregate);
  t.view_ = !t.internal_.empty();
  t.physical_ = t.view_ ? InternalTableName(t.table_) : t.table_;
  std::vector<Column> hidden;  // after the visible columns
  std::string cols;            // insert column list, in tuple order
  std::string updates;
  auto col = [&](const std::string& name) {
    cols += (cols.empty() ? "" : ", ") + QuoteIdentifier(name);
    ++t.tuple_columns_;
  };
  auto set = [&](const std::string& assignment) {
    updates += (updates.empty() ? "" : ", ") + assignment;
  };
  if (ctx.aggregate && !ctx.aggregate->append_mode) {
    const AggregateSpec& a = *ctx.aggregate;
    t.aggregate_ = &a;
    if (a.emit_window_start) t.columns_.push_back({"window_start", "DATETIME", " NOT NULL"});
    if (a.emit_window_end) t.columns_.push_back({"window_end", "DATETIME", " NOT NULL"});
    for (const auto& k : a.keys) t.columns_.push_back({k.name, SqlType(k.type, true), " NOT NULL"});
    t.keys_ = a.KeyColumns();
    for (const auto& k : t.keys_) col(k);
    for (const auto& m : a.metrics) {
      const AggregateFunction& f = FunctionOf(m);
      for (const StoredColumn& c : f.stored_columns(m)) {
        (c.hidden ? hidden : t.columns_)
            .push_back({c.name, SqlType(c.type, false),
                        c.not_null_default_zero ? " NOT NULL DEFAULT 0" : ""});
        col(c.name);
      }
      ASSIGN_OR_RETURN(const std::vector<std::string> merged, f.merge_sql(m, kSpelling));
      for (const std::string& assignment : merged) set(assignment);
      std::vector<SqlInput> markers(f.inputs);
      for (size_t i = 0; i < markers.size(); ++i) markers[i].text = "?" + std::to_string(i + 1);
      ASSIGN_OR_RETURN(const std::vector<std::string> inserted, f.insert_sql(m, kSpelling, markers));
      bool as_is = inserted.size() == markers.size();
      for (size_t i = 0; as_is && i < markers.size(); ++i) as_is = inserted[i] == markers[i].text;
      t.inserts_inputs_.push_back(as_is);
    }
  } else {
    t.keys_ = ctx.key_columns;
    for (const auto& f : ctx.output.fields()) {
      bool key = std::find(t.keys_.begin(), t.keys_.end(), f.name) != t.keys_.end();
      t.columns_.push_back({f.name, SqlType(f.type, key), key ? " NOT NULL" : ""});
      col(f.name);
      if (!key) set(QuoteIdentifier(f.name) + " = VALUES(" + QuoteIdentifier(f.name) + ")");
    }
    if (!t.keys_.empty() && updates.empty()) {
      set(QuoteIdentifier(t.keys_[0]) + " = " + QuoteIdentifier(t.keys_[0]));
    }
    if (t.keys_.empty()) updates.clear();
  }
  for (auto& h : hidden) t.columns_.push_back(std::move(h));

  for (const auto& [name, type] : types) {
    // Compared through a plain reference: clang before 16 cannot capture a structured binding.
    const std::string& wanted = name;
    auto it = std::find_if(t.columns_.begin(), t.columns_.end(),
                           [&](const Column& c) { return c.name == wanted; });
    if (it == t.columns_.end()) {
      std::string known;
      for (const auto& c : t.columns_) known += (known.empty() ? "" : ", ") + c.name;
      return Status::InvalidArgument("column_types names column " + name +
                                     ", which this pipeline does not write (columns: " + known +
                                     ")");
    }
    it->type = type;
  }
  t.insert_into_ = "INSERT INTO " + QuoteIdentifier(t.physical_) + " (" + cols + ") ";
  t.insert_prefix_ = t.insert_into_ + "VALUES ";
  if (!updates.empty()) t.update_suffix_ = " ON DUPLICATE KEY UPDATE " + updates;
  return t;
}

std::string TableSql::UpsertTemplateSql() const {
  std::string marks;
  for (size_t i = 0; i < tuple_columns_; ++i) marks += i ? ", ?" : "?";
  return insert_prefix_ + "(" + marks + ")" + update_suffix_;
}

std::vector<std::string> TableSql::column_names() const {
  std::vector<std::string> out;
  for (const auto& c : columns_) out.push_back(c.name);
  return out;
}

std::string TableSql::CreateTableSql(const std::string& collation) const {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + QuoteIdentifier(physical_) + " (";
  for (size_t i = 0; i < columns_.size(); ++i) {
    sql += (i ? ", " : "") + QuoteIdentifier(columns_[i].name) + " " + columns_[i].type +
           columns_[i].attributes;
  }
  if (!keys_.empty()) {
    sql += ", PRIMARY KEY (";
    for (size_t i = 0; i < keys_.size(); ++i) sql += (i ? ", " : "") + QuoteIdentifier(keys_[i]);
    sql += ")";
  }
  return sql + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + collation;
}

std::string TableSql::DescribeTableSql() const {
  return "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM "
         "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
         StringLiteral(physical_) + " ORDER BY ORDINAL_POSITION";
}

std::string TableSql::CreateViewSql(const std::vector<std::string>& table_columns) const {
  std::string select;
  for (const auto& c : table_columns) {
    if (std::find(internal_.begin(), internal_.end(), c) != internal_.end()) continue;
    select += (select.empty() ? "" : ", ") + QuoteIdentifier(c);
  }
  return "CREATE OR REPLACE ALGORITHM=MERGE VIEW " + QuoteIdentifier(table_) + " AS SELECT " +
         select + " FROM " + QuoteIdentifier(physical_);
}

Status TableSql::AppendDeltaTuple(const DeltaRow& row, std::string* out) const {
  const AggregateSpec& a = *aggregate_;
  *out += '(';
  bool first = true;
  auto next = [&]() -> std::string* {
    if (!first) *out += ", ";
    first = false;
    return out;
  };
  if (a.emit_window_start) {
    RETURN_IF_ERROR(AppendLiteral(Value::TimeMicros(row.window_start), next()));
  }
  if (a.emit_window_end) {
    RETURN_IF_ERROR(AppendLiteral(Value::TimeMicros(row.window_start + a.window_micros), next()));
  }
  for (const auto& k : row.keys) RETURN_IF_ERROR(AppendLiteral(k, next()));
  // Reused from row to row (a statement holds thousands).
  thread_local std::vector<Value> values;
  thread_local std::vector<SqlInput> inputs;
  for (size_t i = 0; i < a.metrics.size(); ++i) {
    const MetricSpec& m = a.metrics[i];
    const AggregateFunction& f = FunctionOf(m);
    values.clear();
    f.stored_values(m, row.metrics[i], &values);
    if (inserts_inputs_[i]) {
      for (const Value& v : values) RETURN_IF_ERROR(AppendLiteral(v, next()));
      continue;
    }
    inputs.resize(values.size());
    for (size_t k = 0; k < values.size(); ++k) {
      inputs[k].text.clear();
      RETURN_IF_ERROR(AppendLiteral(values[k], &inputs[k].text));
      inputs[k].known = &values[k];
    }
    // The server computes what the catalog inserts (an average from its sum and count), with
    // the same expression as on update, so a row's value does not depend on how its records
    // were split into checkpoints.
    ASSIGN_OR_RETURN(const std::vector<std::string> inserted, f.insert_sql(m, kSpelling, inputs));
    for (const std::string& v : inserted) *next() += v;
  }
  *out += ')';
  return Status::OK();
}

void TableSql::DeltaValues(const DeltaRow& row, std::vector<Value>* out) const {
  const AggregateSpec& a = *aggregate_;
  if (a.emit_window_start) out->push_back(Value::TimeMicros(row.window_start));
  if (a.emit_window_end) out->push_back(Value::TimeMicros(row.window_start + a.window_micros));
  for (const auto& k : row.keys) out->push_back(k);
  for (size_t i = 0; i < a.metrics.size(); ++i) {
    FunctionOf(a.metrics[i]).stored_values(a.metrics[i], row.metrics[i], out);
  }
}

namespace {

constexpr char kStage[] = "`_sluice_stage`";

/// The name of the stage's column `i`: unlike every column of the table, so that the merge's
/// ON DUPLICATE KEY UPDATE assignments name the table's columns only.
std::string StageColumn(size_t i) { return "`_v" + std::to_string(i) + "`"; }

/// Appends `v` as a field of LOAD DATA's default format (tab-separated, backslash escapes,
/// \N for NULL): the text of its literal without quotes. False for a non-finite double.
bool AppendField(const Value& v, std::string* out) {
  switch (v.type()) {
    case Type::kNull:
      *out += "\\N";
      return true;
    case Type::kBool:
    case Type::kInt64:
    case Type::kDouble:
      if (v.type() == Type::kDouble && !std::isfinite(v.double_value())) return false;
      return AppendLiteral(v, out).ok();
    case Type::kString:
      for (char c : v.string_value()) {
        switch (c) {
          case '\\':
            *out += "\\\\";
            break;
          case '\t':
            *out += "\\t";
            break;
          case '\n':
            *out += "\\n";
            break;
          case '\r':
            *out += "\\r";
            break;
          case '\0':
            *out += "\\0";
            break;
          default:
            *out += c;
        }
      }
      return true;
    case Type::kTimestamp:
      *out += FormatTimestamp(v.time_value().micros, "%Y-%m-%d %H:%M:%S");
      return true;
  }
  return false;
}

}  // namespace

std::string DropStageSql() { return std::string("DROP TEMPORARY TABLE IF EXISTS ") + kStage; }

bool TableSql::BulkDeltas(std::span<const DeltaRow> deltas, BulkLoad* out) const {
  if (!aggregate_ || deltas.empty()) return false;
  const AggregateSpec& a = *aggregate_;
  std::vector<Value> values;
  std::vector<Type> types;  // per stage column: the type of its values (kNull: none seen yet)
  out->data.clear();
  for (const DeltaRow& row : deltas) {
    values.clear();
    DeltaValues(row, &values);
    if (types.empty()) types.assign(values.size(), Type::kNull);
    if (values.size() != types.size()) return false;
    for (size_t i = 0; i < values.size(); ++i) {
      const Type t = values[i].type() == Type::kBool ? Type::kInt64 : values[i].type();
      if (t != Type::kNull) {
        if (types[i] == Type::kNull) types[i] = t;
        if (types[i] != t) return false;
      }
      if (i > 0) out->data += '\t';
      if (!AppendField(values[i], &out->data)) return false;
    }
    out->data += '\n';
  }
  std::string columns, list;
  for (size_t i = 0; i < types.size(); ++i) {
    const char* type = "BIGINT";
    if (types[i] == Type::kDouble) type = "DOUBLE";
    if (types[i] == Type::kString) type = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
    if (types[i] == Type::kTimestamp) type = "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
    columns += (i ? ", " : "") + StageColumn(i) + " " + type;
    list += (i ? ", " : "") + StageColumn(i);
  }
  out->create = std::string("CREATE TEMPORARY TABLE ") + kStage + " (" + columns +
                ") DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
  // LOAD DATA's default format, spelled out; the name is not opened (Connection::LoadLocal).
  out->load = std::string("LOAD DATA LOCAL INFILE 'sluice-stage.tsv' INTO TABLE ") + kStage +
              " CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY "
              "'\\\\' LINES TERMINATED BY '\\n' STARTING BY '' (" +
              list + ")";
  // The SELECT list is the tuple of the chunked upserts with the stage's columns in place of
  // the literals: what the catalog inserts as it is, or its expression (an average) of them.
  std::string select;
  size_t next = 0;
  auto add = [&](const std::string& expr) { select += (select.empty() ? "" : ", ") + expr; };
  const size_t fixed = (a.emit_window_start ? 1 : 0) + (a.emit_window_end ? 1 : 0) + a.keys.size();
  for (; next < fixed; ++next) add(StageColumn(next));
  for (size_t i = 0; i < a.metrics.size(); ++i) {
    const MetricSpec& m = a.metrics[i];
    const AggregateFunction& f = FunctionOf(m);
    std::vector<SqlInput> inputs(f.inputs);
    for (auto& in : inputs) in.text = StageColumn(next++);
    if (inserts_inputs_[i]) {
      for (const auto& in : inputs) add(in.text);
      continue;
    }
    auto inserted = f.insert_sql(m, kSpelling, inputs);
    if (!inserted.ok()) return false;
    for (const std::string& v : *inserted) add(v);
  }
  if (next != types.size()) return false;
  out->merge = insert_into_ + "SELECT " + select + " FROM " + kStage + update_suffix_;
  out->rows = deltas.size();
  return true;
}

Status TableSql::AppendRowTuple(const std::vector<Value>& row, std::string* out) const {
  *out += '(';
  for (size_t i = 0; i < row.size(); ++i) {
    if (i) *out += ", ";
    RETURN_IF_ERROR(AppendLiteral(row[i], out));
  }
  *out += ')';
  return Status::OK();
}

template <typename T, typename F>
Status TableSql::Chunk(std::span<const T> items, size_t max_rows, size_t max_bytes, F&& append,
                       const std::function<Status(const std::string&, size_t)>& run) const {
  std::string sql, tuple;
  size_t rows = 0;
  auto flush = [&]() -> Status {
    if (rows == 0) return Status::OK();
    sql += update_suffix_;
    const size_t n = rows;
    rows = 0;
    return run(sql, n);
  };
  for (const T& item : items) {
    tuple.clear();
    RETURN_IF_ERROR(append(item, &tuple));
    if (rows > 0 &&
        (rows >= max_rows || sql.size() + 2 + tuple.size() + update_suffix_.size() > max_bytes)) {
      RETURN_IF_ERROR(flush());
    }
    if (rows == 0) {
      sql = insert_prefix_;
    } else {
      sql += ", ";
    }
    sql += tuple;
    ++rows;
  }
  return flush();
}

Status TableSql::ForEachDeltaStatement(std::span<const DeltaRow> deltas, size_t max_rows,
                                       size_t max_bytes,
                                       const std::function<Status(const std::string&)>& run) const {
  return ForEachDeltaStatement(
      deltas, max_rows, max_bytes,
      std::function<Status(const std::string&, size_t)>(
          [&run](const std::string& sql, size_t) { return run(sql); }));
}

Status TableSql::ForEachDeltaStatement(
    std::span<const DeltaRow> deltas, size_t max_rows, size_t max_bytes,
    const std::function<Status(const std::string&, size_t)>& run) const {
  if (!aggregate_) {
    return Status::Internal("mysql sink: deltas given to a table without an aggregate");
  }
  return Chunk(
      deltas, max_rows, max_bytes,
      [this](const DeltaRow& r, std::string* out) { return AppendDeltaTuple(r, out); }, run);
}

Status TableSql::ForEachRowStatement(std::span<const std::vector<Value>> rows, size_t max_rows,
                                     size_t max_bytes,
                                     const std::function<Status(const std::string&)>& run) const {
  return ForEachRowStatement(
      rows, max_rows, max_bytes,
      std::function<Status(const std::string&, size_t)>(
          [&run](const std::string& sql, size_t) { return run(sql); }));
}

Status TableSql::ForEachRowStatement(
    std::span<const std::vector<Value>> rows, size_t max_rows, size_t max_bytes,
    const std::function<Status(const std::string&, size_t)>& run) const {
  return Chunk(
      rows, max_rows, max_bytes,
      [this](const std::vector<Value>& r, std::string* out) { return AppendRowTuple(r, out); },
      run);
}

}  // namespace sluice::mysql
