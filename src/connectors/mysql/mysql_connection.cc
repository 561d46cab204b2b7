#include "connectors/mysql/mysql_connection.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <mysql.h>

#include <mutex>

namespace sluice::mysql {
namespace {

struct MysqlCloser {
  void operator()(MYSQL* m) const { mysql_close(m); }
};

std::string Brief(std::string_view sql) {
  constexpr size_t kMax = 100;
  if (sql.size() <= kMax) return std::string(sql);
  return std::string(sql.substr(0, kMax)) + "...";
}

}  // namespace

Status ErrorStatus(unsigned number, std::string_view message, const std::string& display,
                   std::string_view sql) {
  const ErrorKind kind = ClassifyError(number, message);
  std::string text =
      "mysql " + display + ": error " + std::to_string(number) + ": " + std::string(message);
  if (!sql.empty()) text += " (in: " + Brief(sql) + ")";
  switch (number) {
    case 1045:
    case 1698:
      text +=
          "; the password comes from SLUICE_MYSQL_PASSWORD, or from the file named by "
          "SLUICE_MYSQL_PASSWORD_FILE or by the option password_file";
      break;
    case 1049:
      text +=
          "; sluice does not create databases: create it first (CREATE DATABASE name "
          "CHARACTER SET utf8mb4) or fix the URI";
      break;
    case 1071:
    case 1170:
      text +=
          "; key columns must fit an index: give long string keys a shorter VARCHAR with "
          "the sink option column_types";
      break;
    case 1153:
    case 2020:
      text +=
          "; a statement is larger than max_allowed_packet: raise it on the server or lower "
          "the sink option batch_bytes";
      break;
    case 1406:
      text +=
          "; a string key longer than its column (VARCHAR(255) by default): widen it with "
          "the sink option column_types";
      break;
    default:
      break;
  }
  if (kind == ErrorKind::kData) text += " (a value the column cannot hold; see column_types)";
  if (IsDiskFull(number, message)) text += " (the server's disk is full: retried until space is freed)";
  return Status(StatusCodeFor(kind), std::move(text));
}

Result<std::unique_ptr<Connection>> Connection::Open(const Options& options) {
  static std::once_flag init;
  std::call_once(init, [] { mysql_library_init(0, nullptr, nullptr); });
  ASSIGN_OR_RETURN(std::string password, ResolvePassword(options.password_file));
  const std::string display = options.uri.Display();
  std::unique_ptr<MYSQL, MysqlCloser> m(mysql_init(nullptr));
  if (!m) return Status::Internal("mysql " + display + ": out of memory in mysql_init");
  unsigned timeout = options.timeout_seconds;
  unsigned protocol = MYSQL_PROTOCOL_TCP;
  my_bool reconnect = 0;  // a silent reconnect would lose the open transaction
  mysql_optionsv(m.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_READ_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_WRITE_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_PROTOCOL, &protocol);
  mysql_optionsv(m.get(), MYSQL_OPT_RECONNECT, &reconnect);
  mysql_optionsv(m.get(), MYSQL_SET_CHARSET_NAME, "utf8mb4");
  // LOAD DATA LOCAL INFILE for the sink's bulk path; the callbacks installed below serve only
  // the buffer of a LoadLocal call, never a file.
  unsigned local_infile = options.local_infile ? 1 : 0;
  mysql_optionsv(m.get(), MYSQL_OPT_LOCAL_INFILE, &local_infile);
  // The client's own limit (error 2020) as high as it goes: the server's is the one that counts,
  // read below, and statements over it are refused here before they are sent.
  unsigned long client_packet = 1UL << 30;
  mysql_optionsv(m.get(), MYSQL_OPT_MAX_ALLOWED_PACKET, &client_packet);
  if (!mysql_real_connect(m.get(), options.uri.host.c_str(), options.uri.user.c_str(),
                          password.c_str(), options.uri.database.c_str(),
                          static_cast<unsigned>(options.uri.port), nullptr, 0)) {
    return ErrorStatus(mysql_errno(m.get()), mysql_error(m.get()), display, "");
  }
  std::unique_ptr<Connection> c(new Connection(m.release(), display));
  mysql_set_local_infile_handler(c->mysql_, &Connection::InfileInit, &Connection::InfileRead,
                                 &Connection::InfileEnd, &Connection::InfileError, c.get());
  const unsigned lock_wait = timeout > 2 ? timeout - 2 : 1;
  RETURN_IF_ERROR(
      c->Execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                 "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00', "
                 "innodb_lock_wait_timeout = " +
                 std::to_string(lock_wait)));
  // A statement over the server's max_allowed_packet makes it send error 1153 and close the
  // connection, so the statement could never be isolated; Execute refuses such a statement
  // before sending it instead.
  ASSIGN_OR_RETURN(Rows packet, c->QueryAll("SELECT @@max_allowed_packet"));
  if (!packet.empty() && !packet[0].empty() && packet[0][0]) {
    const unsigned long long v = std::strtoull(packet[0][0]->c_str(), nullptr, 10);
    if (v > 0) c->max_packet_ = static_cast<size_t>(v);
  }
  return c;
}

Connection::~Connection() {
  if (mysql_) mysql_close(mysql_);
}

unsigned long Connection::id() const { return mysql_thread_id(mysql_); }

Status Connection::Fail(std::string_view sql) {
  last_error_ = mysql_errno(mysql_);
  if (last_error_ == 0) last_error_ = 2000;  // CR_UNKNOWN_ERROR
  // The server closes the connection after a packet over max_allowed_packet (1153).
  if (ClassifyError(last_error_) == ErrorKind::kConnection || last_error_ == 1153) broken_ = true;
  last_message_ = mysql_error(mysql_);
  return ErrorStatus(last_error_, last_message_, display_, sql);
}

Status Connection::TooLarge(std::string_view sql) {
  last_error_ = 1153;  // ER_NET_PACKET_TOO_LARGE, as the server would say it
  last_message_ = "Got a packet bigger than 'max_allowed_packet' bytes (a statement of " +
                  std::to_string(sql.size()) + " bytes; max_allowed_packet is " +
                  std::to_string(max_packet_) + ")";
  return ErrorStatus(last_error_, last_message_, display_, sql);
}

Status Connection::Execute(std::string_view sql) {
  if (broken_) return Status::Unavailable("mysql " + display_ + ": connection lost");
  last_error_ = 0;
  last_message_.clear();
  if (!Fits(sql)) return TooLarge(sql);
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) return Fail(sql);
  if (mysql_field_count(mysql_) > 0) {
    MYSQL_RES* res = mysql_store_result(mysql_);
    if (!res) return Fail(sql);
    mysql_free_result(res);
  }
  return Status::OK();
}

Result<Connection::Affected> Connection::ExecuteCounted(std::string_view sql) {
  RETURN_IF_ERROR(Execute(sql));
  Affected out;
  out.rows = static_cast<int64_t>(mysql_affected_rows(mysql_));
  if (const char* info = mysql_info(mysql_)) {
    // "Records: 3  Duplicates: 1  Warnings: 0"
    if (const char* d = std::strstr(info, "Duplicates:")) {
      out.duplicates = std::strtoll(d + 11, nullptr, 10);
    }
  }
  return out;
}

Result<Connection::Affected> Connection::LoadLocal(std::string_view sql, std::string_view data) {
  infile_ = data;
  infile_read_ = 0;
  Status s = Execute(sql);
  infile_.reset();
  RETURN_IF_ERROR(s);
  Affected out;
  out.rows = static_cast<int64_t>(mysql_affected_rows(mysql_));
  out.warnings = mysql_warning_count(mysql_);
  return out;
}

int Connection::InfileInit(void** ptr, const char*, void* self) {
  auto* c = static_cast<Connection*>(self);
  *ptr = c;
  return c->infile_ ? 0 : 1;
}

int Connection::InfileRead(void* ptr, char* buf, unsigned int size) {
  auto* c = static_cast<Connection*>(ptr);
  if (!c->infile_) return -1;
  const size_t n = std::min<size_t>(size, c->infile_->size() - c->infile_read_);
  std::memcpy(buf, c->infile_->data() + c->infile_read_, n);
  c->infile_read_ += n;
  return static_cast<int>(n);
}

void Connection::InfileEnd(void*) {}

int Connection::InfileError(void*, char* message, unsigned int size) {
  std::snprintf(message, size, "%s", "sluice sends no file but the rows of a bulk load");
  return 2000;  // CR_UNKNOWN_ERROR
}

Status Connection::Query(std::string_view sql, const std::function<Status(RowView)>& row) {
  if (broken_) return Status::Unavailable("mysql " + display_ + ": connection lost");
  last_error_ = 0;
  last_message_.clear();
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) return Fail(sql);
  MYSQL_RES* res = mysql_use_result(mysql_);
  if (!res) {
    if (mysql_field_count(mysql_) == 0) return Status::OK();
    return Fail(sql);
  }
  const unsigned n = mysql_num_fields(res);
  std::vector<std::optional<std::string_view>> values(n);
  Status status;
  while (MYSQL_ROW r = mysql_fetch_row(res)) {
    if (!status.ok()) continue;  // drain the rest: the protocol needs it
    const unsigned long* lengths = mysql_fetch_lengths(res);
    for (unsigned i = 0; i < n; ++i) {
      values[i] =
          r[i] ? std::optional<std::string_view>(std::string_view(r[i], lengths[i])) : std::nullopt;
    }
    status = row(RowView(values));
  }
  const bool failed = mysql_errno(mysql_) != 0;
  Status fetch = failed ? Fail(sql) : Status::OK();
  mysql_free_result(res);
  if (!fetch.ok()) return fetch;
  return status;
}

Result<Rows> Connection::QueryAll(std::string_view sql) {
  Rows rows;
  RETURN_IF_ERROR(Query(sql, [&](RowView r) {
    std::vector<std::optional<std::string>> out;
    out.reserve(r.size());
    for (const auto& v : r) {
      out.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
    }
    rows.push_back(std::move(out));
    return Status::OK();
  }));
  return rows;
}

}  // namespace sluice::mysql
