#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"

namespace sluice::http {

/// Where to listen.
struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 8080;  ///< 0: any free port (see ConnectionLoop::port())
};

/// How much a client may take from the server (see README.md, "Slow and hostile clients").
struct ServerLimits {
  /// A request head (request line and headers) must arrive whole within this time from when
  /// the connection starts waiting for it (accepted, or its previous answer sent); a keep-alive
  /// connection that stays idle that long is closed too. Not restarted by each byte.
  int64_t request_deadline_micros = 10'000'000;
  /// An answer must be taken by the client within this time.
  int64_t write_deadline_micros = 10'000'000;
  /// A larger request head is answered 431 and the connection closed.
  size_t max_head_bytes = 16 << 10;
  /// Connections of one client address that are waiting for their request or for the client
  /// to take its answer: one more evicts that client's connection that has waited longest (so
  /// a new one, a health check, gets in). Requests being handled are never evicted.
  int max_waiting_per_client = 32;
  /// Connections in all; one more evicts the connection that has waited longest.
  int max_connections = 512;
  /// Threads that run handlers, besides the one that runs only priority requests.
  int workers = 3;
  /// Requests served on one keep-alive connection before it is closed.
  int keep_alive_max = 100;
};

/// What the loop did to its clients, for logs and tests.
struct ConnectionLoopCounters {
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> deadline_closed{0};  ///< request head begun, not complete by the deadline
  std::atomic<int64_t> idle_closed{0};      ///< nothing sent by the deadline (idle keep-alive too)
  std::atomic<int64_t> evicted{0};          ///< over max_waiting_per_client or max_connections
  std::atomic<int64_t> too_large{0};        ///< request head over max_head_bytes (431)
  std::atomic<int64_t> write_timeouts{0};   ///< answer not taken by the write deadline
};

/// Who sent a request.
struct Peer {
  std::string ip;
  int port = 0;
  std::string local_ip;
  int local_port = 0;
};

/// Serves one whole request head: writes the complete answer to `out` and returns whether the
/// connection may serve another request. `must_close` asks for a `Connection: close` answer.
using RequestHandler = std::function<bool(std::string_view head, const Peer& peer, bool must_close,
                                          std::string* out)>;

/// Accepts connections and reads request heads on one poll() thread, so a slow client costs a
/// file descriptor and never a thread: only a request whose head arrived whole goes to a
/// handler thread, and answers are written back by the poll thread without blocking anyone.
/// Each request has a deadline for its whole head, each client address a cap of connections
/// waiting for their request, and requests for paths `is_priority` selects (health checks)
/// have a thread of their own that nothing else can occupy.
///
/// Lifecycle: Bind() (binds and listens; fails when the address is taken), Start() (threads),
/// Stop() (or the destructor) closes every connection and joins the threads. counters() and
/// port() may be read from any thread.
class ConnectionLoop {
 public:
  static Result<std::unique_ptr<ConnectionLoop>> Bind(const ListenAddress& address,
                                                      ServerLimits limits,
                                                      std::function<bool(std::string_view path)> is_priority,
                                                      RequestHandler handler);
  ~ConnectionLoop();
  /// Starts the poll thread and the handler threads, each with `thread_init` run first.
  void Start(const std::function<void()>& thread_init);
  void Stop();
  int port() const { return port_; }
  const ConnectionLoopCounters& counters() const { return counters_; }

  /// Returns the length of the request head at the start of `in` (through its blank line), 0
  /// when it is not complete yet.
  static size_t HeadLength(std::string_view in);
  /// Returns the path of a request head's request line ("" when it has none).
  static std::string_view RequestPath(std::string_view head);

 private:
  enum class State { kReading, kHandling, kWriting };
  struct Conn {
    int fd = -1;
    Peer peer;
    State state = State::kReading;
    std::string in;          // bytes read and not yet served
    size_t head_len = 0;     // of the request being handled
    std::string out;         // answer being written
    size_t out_done = 0;
    bool close_after = false;
    int requests = 0;
    int64_t since = 0;       // steady micros: when the current wait started
    int64_t deadline = 0;    // steady micros
  };

  ConnectionLoop() = default;
  void PollLoop();
  void WorkerLoop(bool priority_only);
  /// Accepts what is waiting; returns false when out of descriptors with nobody to evict.
  bool Accept(int64_t now);
  void Read(Conn* c, int64_t now);
  void Write(Conn* c, int64_t now);
  /// Hands a complete request to the handlers, or keeps reading.
  void Dispatch(Conn* c, int64_t now);
  void StartWaiting(Conn* c, int64_t now);
  void StartWriting(Conn* c, int64_t now);
  /// Closes the connection waiting for a request or for its answer to be taken (of `ip`, or
  /// of anyone when empty) that waited longest.
  bool EvictOldestWaiting(const std::string& ip);
  void Close(int fd);
  void Wake();

  ServerLimits limits_;
  std::function<bool(std::string_view)> is_priority_;
  RequestHandler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  ConnectionLoopCounters counters_;
  std::map<int, std::unique_ptr<Conn>> conns_;  // owned by the poll thread (and Stop after it)

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Conn*> priority_queue_;  // guarded by mu_
  std::deque<Conn*> queue_;           // guarded by mu_
  std::deque<Conn*> done_;            // guarded by mu_: handled, to be written
  std::atomic<bool> stop_{false};
  std::thread poller_;
  std::vector<std::thread> workers_;
};

}  // namespace sluice::http
