#include "http/connection_loop.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/http_server.h"

namespace sluice::http {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Connect(int port, int receive_buffer = 0) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Send(int fd, std::string_view s) {
  return send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

/// Reads what arrives within `timeout`; stops early when the peer closes (then *closed) or,
/// with `until` set, once the text holds it.
std::string Receive(int fd, double timeout, bool* closed = nullptr, std::string_view until = {}) {
  std::string got;
  const auto start = Clock::now();
  if (closed != nullptr) *closed = false;
  while (SecondsSince(start) < timeout) {
    pollfd p{fd, POLLIN, 0};
    const int left_ms = static_cast<int>((timeout - SecondsSince(start)) * 1000) + 1;
    if (poll(&p, 1, left_ms) <= 0) break;
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
    if (!until.empty() && got.find(until) != std::string::npos) break;
  }
  return got;
}

/// One request on a fresh connection; returns the status (0: none within `timeout`).
int Get(int port, const std::string& path, double timeout, double* seconds = nullptr) {
  const auto start = Clock::now();
  const int fd = Connect(port);
  if (fd < 0) return 0;
  Send(fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  bool closed = false;
  const std::string got = Receive(fd, timeout, &closed);
  close(fd);
  if (seconds != nullptr) *seconds = SecondsSince(start);
  if (!closed || got.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(got.substr(9, 3));
}

TEST(ConnectionLoopTest, FindsTheHeadAndItsPath) {
  EXPECT_EQ(ConnectionLoop::HeadLength("GET / HTTP/1.1\r\nHost: x\r\n"), 0u);
  EXPECT_EQ(ConnectionLoop::HeadLength("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 27u);
  EXPECT_EQ(ConnectionLoop::HeadLength("GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 18u);
  EXPECT_EQ(ConnectionLoop::HeadLength("GET / HTTP/1.0\n\n"), 16u);
  EXPECT_EQ(ConnectionLoop::RequestPath("GET /healthz HTTP/1.1\r\n"), "/healthz");
  EXPECT_EQ(ConnectionLoop::RequestPath("GET /api/results?by=clicks HTTP/1.1\r\n"), "/api/results");
  EXPECT_EQ(ConnectionLoop::RequestPath("HEAD /metrics HTTP/1.1\r\n"), "/metrics");
  EXPECT_EQ(ConnectionLoop::RequestPath("garbage"), "");
}

class GuardedServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<HttpServer> Start(ServerLimits limits) {
    ServerContext ctx;
    ctx.info = {"demo", "src", "events", "0.1.0", 1'000'000};
    ctx.snapshot = [] {
      PipelineSnapshot s;
      s.pipeline = "demo";
      s.state = "running";
      s.workers = 1;
      s.records_in = 7;
      return s;
    };
    ctx.limits = limits;
    auto s = HttpServer::Start({"127.0.0.1", 0}, std::move(ctx));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
};

// The reproducer, shortened: many clients that send a header line now and then and
// never finish their request must not keep /healthz, /readyz and /metrics from answering.
TEST_F(GuardedServerTest, HealthAnswersWhileSixtySlowClientsTrickle) {
  ServerLimits limits;
  limits.request_deadline_micros = 3'000'000;
  auto server = Start(limits);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  std::vector<int> slow;
  for (int i = 0; i < 60; ++i) {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0);
    Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
    slow.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    while (!stop.load()) {
      for (int fd : slow) Send(fd, "X-Slow: 1\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  const auto start = Clock::now();
  int probes = 0;
  double worst = 0;
  while (SecondsSince(start) < 4.0) {
    for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
      double secs = 0;
      EXPECT_EQ(Get(port, path, 2.0, &secs), 200) << path << " after " << secs << "s";
      worst = std::max(worst, secs);
      ++probes;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop.store(true);
  trickle.join();
  for (int fd : slow) close(fd);
  EXPECT_GT(probes, 10);
  EXPECT_LT(worst, 1.0);
  EXPECT_GT(server->connection_counters().evicted.load(), 0);  // 60 > 32 per client
}

TEST_F(GuardedServerTest, TheHeadDeadlineIsNotRestartedByEachByte) {
  ServerLimits limits;
  limits.request_deadline_micros = 1'000'000;
  auto server = Start(limits);
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const auto start = Clock::now();
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  bool closed = false;
  std::string got;
  for (size_t i = 0; i < request.size() && !closed && SecondsSince(start) < 5; ++i) {
    Send(fd, request.substr(i, 1));
    got += Receive(fd, 0.1, &closed);
  }
  const double open_for = SecondsSince(start);
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_GE(open_for, 0.9);
  EXPECT_LE(open_for, 2.0);
  EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_EQ(server->connection_counters().deadline_closed.load(), 1);
}

TEST_F(GuardedServerTest, AnIdleKeepAliveConnectionIsClosedAtTheDeadline) {
  ServerLimits limits;
  limits.request_deadline_micros = 500'000;
  auto server = Start(limits);
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  Send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string answer = Receive(fd, 2.0, nullptr, "ok\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  const auto start = Clock::now();
  bool closed = false;
  Receive(fd, 3.0, &closed);
  EXPECT_TRUE(closed);
  EXPECT_LT(SecondsSince(start), 1.5);
  close(fd);
  // Not a client turned away: counted apart from request heads that were too slow.
  EXPECT_EQ(server->connection_counters().idle_closed.load(), 1);
  EXPECT_EQ(server->connection_counters().deadline_closed.load(), 0);
}

TEST_F(GuardedServerTest, ACapPerClientEvictsTheConnectionsThatWaitedLongest) {
  ServerLimits limits;
  limits.max_waiting_per_client = 4;
  auto server = Start(limits);
  ASSERT_NE(server, nullptr);
  std::vector<int> fds;
  for (int i = 0; i < 10; ++i) {
    const int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    Send(fd, "GET /healthz HTTP/1.1\r\n");
    fds.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a clear order of arrival
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int i = 0; i < 10; ++i) {
    bool closed = false;
    Receive(fds[static_cast<size_t>(i)], 0.05, &closed);
    EXPECT_EQ(closed, i < 6) << "connection " << i;
  }
  // The newest finishes its request and is answered.
  Send(fds[9], "Host: x\r\n\r\n");
  EXPECT_EQ(Receive(fds[9], 2.0, nullptr, "ok\n").rfind("HTTP/1.1 200", 0), 0u);
  // A new client's request (here from the same address) gets in, evicting the oldest waiting.
  EXPECT_EQ(Get(server->port(), "/healthz", 2.0), 200);
  for (int fd : fds) close(fd);
  EXPECT_GE(server->connection_counters().evicted.load(), 6);
}

TEST_F(GuardedServerTest, ATooLargeHeadIsAnswered431) {
  ServerLimits limits;
  limits.max_head_bytes = 1024;
  auto server = Start(limits);
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  Send(fd, "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(2000, 'a'));
  bool closed = false;
  const std::string got = Receive(fd, 2.0, &closed);
  close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got;
  EXPECT_TRUE(closed);
  EXPECT_EQ(Get(server->port(), "/healthz", 2.0), 200);
}

TEST_F(GuardedServerTest, KeepsAliveAndAnswersPipelinedRequestsInOrder) {
  auto server = Start(ServerLimits{});
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  Send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = Receive(fd, 2.0, nullptr, "not found\n");
  const size_t first = got.find("HTTP/1.1 200");
  const size_t second = got.find("HTTP/1.1 404");
  EXPECT_NE(first, std::string::npos) << got;
  EXPECT_NE(second, std::string::npos) << got;
  EXPECT_LT(first, second);
  // The same connection serves a third request.
  Send(fd, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  got = Receive(fd, 2.0, nullptr, "\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
  close(fd);
}

// Handlers that take long (a slow snapshot, a large result view) hold the general threads;
// health checks have a thread of their own.
TEST(ConnectionLoopPriorityTest, HealthHasAThreadNothingElseCanOccupy) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> slow_started{0};
  ServerLimits limits;
  limits.workers = 2;
  auto loop = ConnectionLoop::Bind(
      {"127.0.0.1", 0}, limits, [](std::string_view path) { return path == "/healthz"; },
      [&](std::string_view head, const Peer&, bool, std::string* out) {
        if (ConnectionLoop::RequestPath(head) == "/slow") {
          ++slow_started;
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return release; });
        }
        *out = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        return false;
      });
  ASSERT_TRUE(loop.ok()) << loop.status().ToString();
  (*loop)->Start({});
  const int port = (*loop)->port();
  std::vector<int> slow;
  for (int i = 0; i < 6; ++i) {
    const int fd = Connect(port);
    Send(fd, "GET /slow HTTP/1.1\r\n\r\n");
    slow.push_back(fd);
  }
  for (int i = 0; i < 100 && slow_started.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(slow_started.load(), 2);  // both general threads are held
  double secs = 0;
  EXPECT_EQ(Get(port, "/healthz", 2.0, &secs), 200);
  EXPECT_LT(secs, 1.0);
  EXPECT_EQ(slow_started.load(), 2);  // the health thread took no /slow request
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (int fd : slow) {
    EXPECT_EQ(Receive(fd, 2.0, nullptr, "ok\n").rfind("HTTP/1.1 200", 0), 0u);
    close(fd);
  }
  (*loop)->Stop();
}

// Clients that do not read their (large) answers hold no thread, and count against the cap.
TEST(ConnectionLoopPriorityTest, ClientsThatDoNotReadTheirAnswersHoldNoThread) {
  ServerLimits limits;
  limits.max_waiting_per_client = 4;
  limits.workers = 1;
  const std::string big(8 << 20, 'x');
  auto loop = ConnectionLoop::Bind(
      {"127.0.0.1", 0}, limits, [](std::string_view) { return false; },
      [&](std::string_view head, const Peer&, bool, std::string* out) {
        const bool large = ConnectionLoop::RequestPath(head) == "/large";
        const std::string body = large ? big : std::string("ok\n");
        *out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        return large;  // Get() asks for Connection: close
      });
  ASSERT_TRUE(loop.ok()) << loop.status().ToString();
  (*loop)->Start({});
  const int port = (*loop)->port();
  std::vector<int> readers;
  for (int i = 0; i < 10; ++i) {
    const int fd = Connect(port, 4096);  // a small window: 8 MB cannot be buffered
    Send(fd, "GET /large HTTP/1.1\r\n\r\n");
    readers.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < 200 && (*loop)->counters().requests.load() < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The one handler thread is free: a new request is answered at once.
  double secs = 0;
  EXPECT_EQ(Get(port, "/small", 2.0, &secs), 200);
  EXPECT_LT(secs, 1.0);
  // Over the cap of 4, the oldest non-readers were evicted: their answers are cut short.
  EXPECT_GE((*loop)->counters().evicted.load(), 6)
      << "accepted " << (*loop)->counters().accepted.load() << " requests "
      << (*loop)->counters().requests.load() << " write timeouts "
      << (*loop)->counters().write_timeouts.load();
  bool closed = false;
  size_t got = 0;
  while (!closed && got < big.size()) got += Receive(readers[0], 2.0, &closed).size();
  EXPECT_TRUE(closed);
  EXPECT_LT(got, big.size());
  for (int fd : readers) close(fd);
  (*loop)->Stop();
}

TEST_F(GuardedServerTest, StopsPromptlyWithSlowClientsConnected) {
  auto server = Start(ServerLimits{});
  ASSERT_NE(server, nullptr);
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    const int fd = Connect(server->port());
    Send(fd, "GET /healthz HTTP/1.1\r\n");
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = Clock::now();
  server->Stop();
  EXPECT_LT(SecondsSince(start), 1.0);
  for (int fd : fds) close(fd);
}

}  // namespace
}  // namespace sluice::http
