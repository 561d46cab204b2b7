#include "http/connection_loop.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/time.h"

namespace sluice::http {
namespace {

constexpr std::string_view kTooLarge =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 25\r\nConnection: close\r\n\r\nrequest head is too large";
constexpr std::string_view kTimedOut =
    "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 21\r\nConnection: close\r\n\r\nrequest head too slow";

void AddressOf(const sockaddr_storage& a, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    *port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf);
    *port = ntohs(in->sin6_port);
  }
  *ip = buf;
}

/// True when a request head announces a body (this server reads none).
bool HasBody(std::string_view head) {
  std::string lower(head);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (lower.find("\ntransfer-encoding:") != std::string::npos) return true;
  const size_t cl = lower.find("\ncontent-length:");
  if (cl == std::string::npos) return false;
  size_t i = cl + 16;
  while (i < lower.size() && (lower[i] == ' ' || lower[i] == '\t')) ++i;
  return i < lower.size() && lower[i] != '0';
}

}  // namespace

size_t ConnectionLoop::HeadLength(std::string_view in) {
  // A blank line ends the head: CRLF CRLF, or (leniently) LF LF.
  for (size_t i = in.find('\n'); i != std::string_view::npos; i = in.find('\n', i + 1)) {
    if (i + 1 < in.size() && in[i + 1] == '\n') return i + 2;
    if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
  }
  return 0;
}

std::string_view ConnectionLoop::RequestPath(std::string_view head) {
  const size_t sp = head.find(' ');
  if (sp == std::string_view::npos) return {};
  const size_t end = head.find_first_of(" ?#\r\n", sp + 1);
  if (end == std::string_view::npos) return {};
  return head.substr(sp + 1, end - sp - 1);
}

Result<std::unique_ptr<ConnectionLoop>> ConnectionLoop::Bind(
    const ListenAddress& address, ServerLimits limits,
    std::function<bool(std::string_view path)> is_priority, RequestHandler handler) {
  std::unique_ptr<ConnectionLoop> loop(new ConnectionLoop());
  loop->limits_ = limits;
  loop->is_priority_ = std::move(is_priority);
  loop->handler_ = std::move(handler);
  const std::string where = address.host + ":" + std::to_string(address.port);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(address.port);
  if (getaddrinfo(address.host.c_str(), port.c_str(), &hints, &result) != 0 || result == nullptr) {
    return Status::Unavailable("cannot listen on " + where + " (unknown host)");
  }
  int fd = -1;
  for (addrinfo* ai = result; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR only: SO_REUSEPORT would let a second process bind the same port silently.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 256) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(result);
  if (fd < 0) {
    if (address.port == 0) return Status::Unavailable("cannot listen on " + address.host + ": no free port");
    return Status::Unavailable("cannot listen on " + where + " (address in use or not local)");
  }
  loop->listen_fd_ = fd;
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  std::string ip;
  AddressOf(bound, &ip, &loop->port_);
  loop->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wake_fd_ < 0) return Status::Unavailable("cannot create an eventfd: " + std::string(strerror(errno)));
  return loop;
}

ConnectionLoop::~ConnectionLoop() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ConnectionLoop::Start(const std::function<void()>& thread_init) {
  poller_ = std::thread([this, thread_init] {
    if (thread_init) thread_init();
    PollLoop();
  });
  workers_.emplace_back([this, thread_init] {
    if (thread_init) thread_init();
    WorkerLoop(true);
  });
  for (int i = 0; i < std::max(1, limits_.workers); ++i) {
    workers_.emplace_back([this, thread_init] {
      if (thread_init) thread_init();
      WorkerLoop(false);
    });
  }
}

void ConnectionLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_.exchange(true)) return;
    cv_.notify_all();
  }
  Wake();
  if (poller_.joinable()) poller_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
  for (auto& [fd, conn] : conns_) close(fd);
  conns_.clear();
  priority_queue_.clear();
  queue_.clear();
  done_.clear();
}

void ConnectionLoop::Wake() {
  if (wake_fd_ < 0) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void ConnectionLoop::WorkerLoop(bool priority_only) {
  while (true) {
    Conn* c = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_.load() || !priority_queue_.empty() || (!priority_only && !queue_.empty());
      });
      if (stop_.load()) return;
      std::deque<Conn*>& q = priority_queue_.empty() ? queue_ : priority_queue_;
      c = q.front();
      q.pop_front();
    }
    const std::string_view head(c->in.data(), c->head_len);
    const bool must_close = c->requests + 1 >= limits_.keep_alive_max || HasBody(head);
    c->out.clear();
    c->out_done = 0;
    const bool keep = handler_(head, c->peer, must_close, &c->out);
    c->in.erase(0, c->head_len);
    c->head_len = 0;
    ++c->requests;
    c->close_after = !keep || must_close;
    counters_.requests.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_.push_back(c);
    }
    Wake();
  }
}

void ConnectionLoop::PollLoop() {
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  bool accept_paused = false;
  while (!stop_.load()) {
    int64_t now = SteadyClockMicros();
    std::deque<Conn*> done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done.swap(done_);
    }
    for (Conn* c : done) StartWriting(c, now);

    // Deadlines: a request head (or an idle keep-alive) too slow, an answer not taken.
    std::vector<int> expired;
    int64_t next_deadline = now + 1'000'000;
    for (auto& [fd, c] : conns_) {
      if (c->state == State::kHandling) continue;
      if (c->deadline <= now) {
        expired.push_back(fd);
      } else {
        next_deadline = std::min(next_deadline, c->deadline);
      }
    }
    for (int fd : expired) {
      Conn* c = conns_[fd].get();
      if (c->state == State::kReading) {
        // Only a request that started gets an answer; an idle connection is just closed.
        if (!c->in.empty()) {
          [[maybe_unused]] ssize_t n = send(fd, kTimedOut.data(), kTimedOut.size(), MSG_NOSIGNAL);
          counters_.deadline_closed.fetch_add(1, std::memory_order_relaxed);
        } else {
          counters_.idle_closed.fetch_add(1, std::memory_order_relaxed);
        }
      } else {
        counters_.write_timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      Close(fd);
    }

    fds.clear();
    polled.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({accept_paused ? -1 : listen_fd_, POLLIN, 0});
    accept_paused = false;
    for (auto& [fd, c] : conns_) {
      if (c->state == State::kHandling) continue;
      fds.push_back({fd, static_cast<short>(c->state == State::kReading ? POLLIN : POLLOUT), 0});
      polled.push_back(c.get());
    }
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>((next_deadline - now + 999) / 1000, 1, 1000));
    const int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (n == 0) continue;
    now = SteadyClockMicros();
    if (fds[0].revents != 0) {
      uint64_t v;
      [[maybe_unused]] ssize_t r = read(wake_fd_, &v, sizeof v);
    }
    for (size_t i = 0; i < polled.size(); ++i) {
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      Conn* c = polled[i];
      if (c->state == State::kReading) {
        Read(c, now);
      } else if (c->state == State::kWriting) {
        Write(c, now);
      }
    }
    // Accept last: evictions may close connections polled above.
    // Out of descriptors with nobody to evict: skip accepting for one round.
    if (fds[1].revents != 0) accept_paused = !Accept(now);
  }
}

bool ConnectionLoop::Accept(int64_t now) {
  for (int accepted = 0; accepted < 256; ++accepted) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        if (EvictOldestWaiting("")) continue;
        return false;
      }
      return true;
    }
    counters_.accepted.fetch_add(1, std::memory_order_relaxed);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    AddressOf(addr, &c->peer.ip, &c->peer.port);
    sockaddr_storage local{};
    len = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    AddressOf(local, &c->peer.local_ip, &c->peer.local_port);
    int waiting = 0;
    for (const auto& [other_fd, other] : conns_) {
      if (other->state != State::kHandling && other->peer.ip == c->peer.ip) ++waiting;
    }
    while (waiting >= limits_.max_waiting_per_client && EvictOldestWaiting(c->peer.ip)) --waiting;
    if (static_cast<int>(conns_.size()) >= limits_.max_connections && !EvictOldestWaiting("")) {
      close(fd);
      counters_.evicted.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    Conn* raw = c.get();
    conns_[fd] = std::move(c);
    StartWaiting(raw, now);
  }
  return true;
}

bool ConnectionLoop::EvictOldestWaiting(const std::string& ip) {
  Conn* oldest = nullptr;
  for (const auto& [fd, c] : conns_) {
    if (c->state == State::kHandling || (!ip.empty() && c->peer.ip != ip)) continue;
    if (oldest == nullptr || c->since < oldest->since) oldest = c.get();
  }
  if (oldest == nullptr) return false;
  counters_.evicted.fetch_add(1, std::memory_order_relaxed);
  Close(oldest->fd);
  return true;
}

void ConnectionLoop::StartWaiting(Conn* c, int64_t now) {
  c->state = State::kReading;
  c->since = now;
  c->deadline = now + limits_.request_deadline_micros;
  Dispatch(c, now);  // a pipelined request may already be here
}

void ConnectionLoop::Read(Conn* c, int64_t now) {
  char buf[16384];
  while (true) {
    const ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0) {
      c->in.append(buf, static_cast<size_t>(n));
      if (c->in.size() > limits_.max_head_bytes) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    Close(c->fd);  // the client closed, or an error
    return;
  }
  Dispatch(c, now);
}

void ConnectionLoop::Dispatch(Conn* c, int64_t now) {
  // Blank lines between requests are allowed (RFC 9112, 2.2).
  size_t skip = 0;
  while (skip < c->in.size() && (c->in[skip] == '\r' || c->in[skip] == '\n')) ++skip;
  if (skip > 0) c->in.erase(0, skip);
  const size_t head = HeadLength(c->in);
  if ((head == 0 && c->in.size() > limits_.max_head_bytes) || head > limits_.max_head_bytes) {
    counters_.too_large.fetch_add(1, std::memory_order_relaxed);
    c->in.clear();
    c->out.assign(kTooLarge);
    c->out_done = 0;
    c->close_after = true;
    StartWriting(c, now);
    return;
  }
  if (head == 0) return;
  c->head_len = head;
  c->state = State::kHandling;
  const bool priority = is_priority_ && is_priority_(RequestPath(std::string_view(c->in).substr(0, head)));
  {
    std::lock_guard<std::mutex> lock(mu_);
    (priority ? priority_queue_ : queue_).push_back(c);
  }
  cv_.notify_all();
}

void ConnectionLoop::StartWriting(Conn* c, int64_t now) {
  c->state = State::kWriting;
  c->since = now;
  c->deadline = now + limits_.write_deadline_micros;
  Write(c, now);
}

void ConnectionLoop::Write(Conn* c, int64_t now) {
  while (c->out_done < c->out.size()) {
    const ssize_t n = send(c->fd, c->out.data() + c->out_done, c->out.size() - c->out_done,
                           MSG_NOSIGNAL);
    if (n > 0) {
      c->out_done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // poll for POLLOUT
    if (n < 0 && errno == EINTR) continue;
    Close(c->fd);
    return;
  }
  c->out.clear();
  c->out_done = 0;
  if (c->close_after || stop_.load()) {
    // Let the client read the answer before the connection goes: half-close, then close.
    shutdown(c->fd, SHUT_WR);
    Close(c->fd);
    return;
  }
  StartWaiting(c, now);
}

void ConnectionLoop::Close(int fd) {
  close(fd);
  conns_.erase(fd);
}

}  // namespace sluice::http
