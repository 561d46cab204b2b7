#include "connectors/cassandra/cql_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/time.h"
#include "core/uri.h"

namespace sluice::cassandra {
namespace {

Result<std::string> ReadPasswordFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read the Cassandra password file named by " +
                                   std::string(what) + ": " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

int64_t RemainingMillis(int64_t deadline_micros) {
  int64_t left = deadline_micros - SteadyClockMicros();
  return left <= 0 ? 0 : (left + 999) / 1000;
}

}  // namespace

std::string CassandraUri::Display() const {
  std::string out = ServerUri::HostPort(host, port) + "/" + keyspace;
  if (!table.empty()) out += "/" + table;
  return out;
}

Result<CassandraUri> ParseCassandraUri(std::string_view uri, bool with_table) {
  const std::string form = with_table ? "cassandra://[USER@]HOST[:PORT]/KEYSPACE/TABLE"
                                      : "cassandra://[USER@]HOST[:PORT]/KEYSPACE";
  if (uri.find('?') != std::string_view::npos) {
    return Status::InvalidArgument("cassandra URI: unexpected query string; use options");
  }
  ServerUriRules rules;
  rules.scheme = "cassandra";
  rules.form = form;
  rules.password_hint =
      "put the password in the environment variable SLUICE_CASSANDRA_PASSWORD, or in a file named "
      "by SLUICE_CASSANDRA_PASSWORD_FILE or by the option password_file";
  ASSIGN_OR_RETURN(ServerUri server, ParseServerUri(uri, rules));
  CassandraUri out;
  out.user = std::move(server.user);
  out.host = std::move(server.host);
  if (server.port != 0) out.port = server.port;
  const std::string& path = server.path;
  const size_t split = path.find('/');
  out.keyspace = path.substr(0, split);
  if (split != std::string::npos) out.table = path.substr(split + 1);
  if (out.keyspace.empty()) return Status::InvalidArgument("cassandra URI needs a keyspace: " + form);
  if (with_table && (out.table.empty() || out.table.find('/') != std::string::npos)) {
    return Status::InvalidArgument("cassandra source URI needs a table: " + form);
  }
  if (!with_table && split != std::string::npos) {
    return Status::InvalidArgument("cassandra sink URI names only the keyspace (" + form +
                                   "); the table comes from the sink's table option");
  }
  return out;
}

Result<Credentials> ResolveCredentials(const std::string& uri_user,
                                       const std::string& password_file) {
  Credentials out;
  out.user = uri_user;
  if (out.user.empty()) {
    if (const char* user = std::getenv("SLUICE_CASSANDRA_USER")) out.user = user;
  }
  if (!password_file.empty()) {
    ASSIGN_OR_RETURN(out.password, ReadPasswordFile(password_file, "option password_file"));
  } else if (const char* file = std::getenv("SLUICE_CASSANDRA_PASSWORD_FILE"); file && *file) {
    ASSIGN_OR_RETURN(out.password, ReadPasswordFile(file, "SLUICE_CASSANDRA_PASSWORD_FILE"));
  } else if (const char* password = std::getenv("SLUICE_CASSANDRA_PASSWORD")) {
    out.password = password;
  }
  return out;
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

bool IsRetryable(const Status& status) {
  return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kIOError;
}

Connection::Connection(int fd, ClientOptions options)
    : fd_(fd), options_(std::move(options)), display_(ServerUri::HostPort(options_.host, options_.port)) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Connection>> Connection::Open(const ClientOptions& options) {
  if (options.max_in_flight < 1 || options.max_in_flight > 32768) {
    return Status::InvalidArgument("cassandra: max_in_flight must be 1..32768");
  }
  std::string where = options.host + ":" + std::to_string(options.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  int rc =
      ::getaddrinfo(options.host.c_str(), std::to_string(options.port).c_str(), &hints, &addrs);
  if (rc != 0) {
    return Status::Unavailable("cassandra " + where +
                               ": cannot resolve host: " + ::gai_strerror(rc));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* a = addrs; a != nullptr && fd < 0; a = a->ai_next) {
    int s = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (s < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int r = ::connect(s, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      int ready = ::poll(&p, 1, static_cast<int>(options.connect_timeout.count()));
      if (ready == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        r = err == 0 ? 0 : -1;
        errno = err;
      } else {
        r = -1;
        errno = ready == 0 ? ETIMEDOUT : errno;
      }
    }
    if (r != 0) {
      last_error = std::strerror(errno);
      ::close(s);
      continue;
    }
    int one = 1;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd = s;
  }
  ::freeaddrinfo(addrs);
  if (fd < 0) {
    return Status::Unavailable("cassandra " + where + ": cannot connect: " + last_error);
  }
  std::unique_ptr<Connection> conn(new Connection(fd, options));
  RETURN_IF_ERROR(conn->Handshake());
  return conn;
}

Status Connection::Fail(Status status) {
  broken_ = true;
  return status;
}

Status Connection::WriteAll(std::string_view bytes) {
  if (broken_) return Status::IOError("cassandra " + display_ + ": connection is broken");
  int64_t deadline = SteadyClockMicros() + options_.request_timeout.count() * 1000;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      int64_t left = RemainingMillis(deadline);
      if (left == 0 || ::poll(&p, 1, static_cast<int>(left)) == 0) {
        return Fail(Status::Unavailable("cassandra " + display_ + ": write timed out after " +
                                        std::to_string(options_.request_timeout.count()) + " ms"));
      }
      continue;
    }
    return Fail(
        Status::IOError("cassandra " + display_ + ": write failed: " + std::strerror(errno)));
  }
  return Status::OK();
}

Status Connection::ReadFrame(FrameHeader* header, std::string* body) {
  if (broken_) return Status::IOError("cassandra " + display_ + ": connection is broken");
  int64_t deadline = SteadyClockMicros() + options_.request_timeout.count() * 1000;
  auto read_exact = [&](char* dst, size_t n) -> Status {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, dst + got, n - got, 0);
      if (r > 0) {
        got += static_cast<size_t>(r);
        continue;
      }
      if (r == 0) {
        return Fail(
            Status::IOError("cassandra " + display_ + ": the server closed the connection"));
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd_, POLLIN, 0};
        int64_t left = RemainingMillis(deadline);
        if (left == 0 || ::poll(&p, 1, static_cast<int>(left)) == 0) {
          return Fail(Status::Unavailable("cassandra " + display_ + ": no response within " +
                                          std::to_string(options_.request_timeout.count()) +
                                          " ms"));
        }
        continue;
      }
      return Fail(
          Status::IOError("cassandra " + display_ + ": read failed: " + std::strerror(errno)));
    }
    return Status::OK();
  };
  char head[kHeaderSize];
  RETURN_IF_ERROR(read_exact(head, kHeaderSize));
  auto h = DecodeHeader(std::string_view(head, kHeaderSize));
  if (!h.ok()) return Fail(h.status().WithContext("cassandra " + display_));
  *header = *h;
  body->resize(header->length);
  if (header->length > 0) RETURN_IF_ERROR(read_exact(body->data(), header->length));
  return Status::OK();
}

Result<Response> Connection::RoundTrip(const std::string& frame) {
  RETURN_IF_ERROR(WriteAll(frame));
  while (true) {
    FrameHeader header;
    std::string body;
    RETURN_IF_ERROR(ReadFrame(&header, &body));
    if (header.stream < 0) continue;  // a server event; none are registered for
    auto response = DecodeResponse(header, body);
    if (!response.ok()) return Fail(response.status().WithContext("cassandra " + display_));
    return response;
  }
}

Status Connection::Handshake() {
  ASSIGN_OR_RETURN(Response r, RoundTrip(EncodeStartup(0, {{"CQL_VERSION", "3.0.0"}})));
  if (r.header.opcode == Opcode::kAuthenticate) {
    authenticator_ = r.authenticator;
    if (options_.credentials.user.empty()) {
      return Status::InvalidArgument(
          "cassandra " + display_ + ": the server requires authentication (" + authenticator_ +
          "); give the user in the URI (cassandra://USER@HOST/...) or in SLUICE_CASSANDRA_USER, "
          "and the password in SLUICE_CASSANDRA_PASSWORD or a file named by "
          "SLUICE_CASSANDRA_PASSWORD_FILE or the option password_file");
    }
    std::string token = PlainSaslToken(options_.credentials.user, options_.credentials.password);
    for (int round = 0;; ++round) {
      ASSIGN_OR_RETURN(r, RoundTrip(EncodeAuthResponse(0, token)));
      if (r.header.opcode == Opcode::kAuthSuccess) break;
      if (r.header.opcode == Opcode::kError) {
        return r.error.ToStatus().WithContext(display_);
      }
      if (r.header.opcode != Opcode::kAuthChallenge || round >= 3) {
        return Fail(Status::Internal("cassandra " + display_ +
                                     ": unexpected answer during authentication (opcode " +
                                     std::to_string(static_cast<int>(r.header.opcode)) + ")"));
      }
    }
  } else if (r.header.opcode == Opcode::kError) {
    return r.error.ToStatus().WithContext(display_);
  } else if (r.header.opcode != Opcode::kReady) {
    return Fail(Status::Internal("cassandra " + display_ + ": unexpected answer to STARTUP"));
  }
  if (!options_.keyspace.empty()) {
    QueryOptions no_paging;
    no_paging.page_size = 0;
    auto use =
        RoundTrip(*EncodeQuery(0, "USE " + QuoteIdentifier(options_.keyspace), {}, no_paging));
    if (!use.ok()) return use.status();
    if (use->header.opcode == Opcode::kError) {
      return use->error.ToStatus().WithContext(display_);
    }
  }
  return Status::OK();
}

Result<std::map<std::string, std::vector<std::string>>> Connection::Options() {
  std::lock_guard lock(mutex_);
  ASSIGN_OR_RETURN(Response r, RoundTrip(EncodeOptions(0)));
  if (r.header.opcode == Opcode::kError) return r.error.ToStatus().WithContext(display_);
  if (r.header.opcode != Opcode::kSupported) {
    return Status::Internal("cassandra " + display_ + ": unexpected answer to OPTIONS");
  }
  return r.supported;
}

Result<std::shared_ptr<const Prepared>> Connection::PrepareLocked(std::string_view cql,
                                                                  bool refresh) {
  if (!refresh) {
    auto it = prepared_cache_.find(cql);
    if (it != prepared_cache_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(Response r, RoundTrip(EncodePrepare(0, cql)));
  if (r.header.opcode == Opcode::kError) {
    return r.error.ToStatus().WithContext("preparing '" + std::string(cql.substr(0, 120)) + "'");
  }
  if (r.header.opcode != Opcode::kResult || r.result.kind != ResultKind::kPrepared) {
    return Status::Internal("cassandra " + display_ + ": unexpected answer to PREPARE");
  }
  auto prepared = std::make_shared<Prepared>(std::move(r.result.prepared));
  prepared->query = std::string(cql);
  prepared_cache_[std::string(cql)] = prepared;
  return std::shared_ptr<const Prepared>(prepared);
}

Result<std::shared_ptr<const Prepared>> Connection::Prepare(std::string_view cql) {
  std::lock_guard lock(mutex_);
  return PrepareLocked(cql, false);
}

std::vector<Result<QueryResult>> Connection::RunRound(std::span<const Request> requests) {
  std::vector<Result<QueryResult>> results(requests.size(),
                                           Status::Internal("cassandra: request not run"));
  const int slots = options_.max_in_flight;
  std::vector<int> free_streams;
  for (int s = slots - 1; s >= 0; --s) free_streams.push_back(s);
  std::vector<int> stream_request(static_cast<size_t>(slots), -1);
  size_t next = 0;
  size_t in_flight = 0;
  Status connection_error;
  while (next < requests.size() || in_flight > 0) {
    // Fill the free streams.
    while (next < requests.size() && !free_streams.empty() && connection_error.ok()) {
      const Request& req = requests[next];
      int stream = free_streams.back();
      Result<std::string> frame = Status::Internal("unset");
      if (!req.batch.empty()) {
        frame = EncodeBatch(static_cast<int16_t>(stream), req.batch_type, req.batch,
                            req.options.consistency);
      } else if (req.prepared) {
        frame = EncodeExecute(static_cast<int16_t>(stream), *req.prepared, req.values, req.options);
      } else {
        frame = EncodeQuery(static_cast<int16_t>(stream), req.cql, req.values, req.options);
      }
      if (!frame.ok()) {
        results[next] = frame.status();
        ++next;
        continue;
      }
      Status w = WriteAll(*frame);
      if (!w.ok()) {
        connection_error = w;
        break;
      }
      free_streams.pop_back();
      stream_request[static_cast<size_t>(stream)] = static_cast<int>(next);
      ++in_flight;
      ++next;
    }
    if (!connection_error.ok()) break;
    if (in_flight == 0) continue;
    FrameHeader header;
    std::string body;
    Status rs = ReadFrame(&header, &body);
    if (!rs.ok()) {
      connection_error = rs;
      break;
    }
    if (header.stream < 0) continue;
    if (header.stream >= slots || stream_request[static_cast<size_t>(header.stream)] < 0) {
      connection_error =
          Fail(Status::Internal("cassandra " + display_ + ": response on unknown stream " +
                                std::to_string(header.stream)));
      break;
    }
    size_t index = static_cast<size_t>(stream_request[static_cast<size_t>(header.stream)]);
    stream_request[static_cast<size_t>(header.stream)] = -1;
    free_streams.push_back(header.stream);
    --in_flight;
    const Request& req = requests[index];
    const std::vector<ColumnSpec>* columns =
        req.prepared && req.batch.empty() ? &req.prepared->result_columns : nullptr;
    auto response = DecodeResponse(header, body, columns);
    if (!response.ok()) {
      // The frame was read whole, so the stream stays in sync; only this request fails.
      results[index] = response.status().WithContext("cassandra " + display_);
      continue;
    }
    if (response->header.opcode == Opcode::kError) {
      results[index] = response->error.ToStatus();
    } else if (response->header.opcode == Opcode::kResult) {
      results[index] = std::move(response->result);
    } else {
      results[index] = Status::Internal("cassandra " + display_ + ": unexpected response opcode");
    }
  }
  if (!connection_error.ok()) {
    for (auto& r : results) {
      if (!r.ok() && r.status().message() == "cassandra: request not run") r = connection_error;
    }
  }
  return results;
}

std::vector<Result<QueryResult>> Connection::RunLocked(std::span<const Request> requests) {
  std::vector<Result<QueryResult>> results = RunRound(requests);
  // Re-prepare what the server forgot (a restart, an evicted cache) and run those again once.
  std::vector<Request> again;
  std::vector<size_t> again_index;
  std::vector<std::shared_ptr<const Prepared>> keep_alive;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    auto code = ErrorCodeOf(results[i].status());
    if (!code || *code != static_cast<int32_t>(ErrorCode::kUnprepared)) continue;
    Request copy = requests[i];
    Status s;
    if (copy.prepared) {
      auto fresh = PrepareLocked(copy.prepared->query, true);
      if (fresh.ok())
        copy.prepared = *fresh;
      else
        s = fresh.status();
    }
    for (BatchEntry& e : copy.batch) {
      if (!e.prepared || !s.ok()) continue;
      auto fresh = PrepareLocked(e.prepared->query, true);
      if (!fresh.ok()) {
        s = fresh.status();
        continue;
      }
      keep_alive.push_back(*fresh);
      e.prepared = fresh->get();
    }
    if (!s.ok()) {
      results[i] = s;
      continue;
    }
    again.push_back(std::move(copy));
    again_index.push_back(i);
  }
  if (!again.empty()) {
    auto second = RunRound(again);
    for (size_t k = 0; k < again.size(); ++k) results[again_index[k]] = std::move(second[k]);
  }
  return results;
}

std::vector<Result<QueryResult>> Connection::Run(std::span<const Request> requests) {
  std::lock_guard lock(mutex_);
  return RunLocked(requests);
}

Result<QueryResult> Connection::Query(std::string_view cql, std::span<const CqlValue> values,
                                      const QueryOptions& options) {
  Request req;
  req.cql = std::string(cql);
  req.values.assign(values.begin(), values.end());
  req.options = options;
  std::lock_guard lock(mutex_);
  auto results = RunLocked(std::span<const Request>(&req, 1));
  return std::move(results[0]);
}

Result<QueryResult> Connection::Execute(const std::shared_ptr<const Prepared>& prepared,
                                        std::span<const CqlValue> values,
                                        const QueryOptions& options) {
  Request req;
  req.prepared = prepared;
  req.values.assign(values.begin(), values.end());
  req.options = options;
  std::lock_guard lock(mutex_);
  auto results = RunLocked(std::span<const Request>(&req, 1));
  return std::move(results[0]);
}

Status Connection::Batch(std::span<const BatchEntry> entries, Consistency consistency,
                         BatchType type) {
  Request req;
  req.batch_type = type;
  req.batch.assign(entries.begin(), entries.end());
  req.options.consistency = consistency;
  std::lock_guard lock(mutex_);
  auto results = RunLocked(std::span<const Request>(&req, 1));
  return results[0].status();
}

Result<QueryResult> Connection::QueryAllPages(std::string_view cql,
                                              std::span<const CqlValue> values,
                                              QueryOptions options) {
  QueryResult all;
  options.paging_state.clear();
  for (int page = 0;; ++page) {
    ASSIGN_OR_RETURN(QueryResult r, Query(cql, values, options));
    if (page == 0) {
      all.kind = r.kind;
      all.columns = r.columns;
    }
    for (auto& row : r.rows) all.rows.push_back(std::move(row));
    if (!r.paging_state || r.paging_state->empty()) break;
    options.paging_state = *r.paging_state;
  }
  return all;
}

}  // namespace sluice::cassandra
