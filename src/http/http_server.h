#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/status.h"
#include "http/connection_loop.h"
#include "http/metrics.h"
#include "http/result_view.h"
#include "http/status.h"
#include "runtime/stats.h"

namespace sluice::http {

class Router;

/// Parses "HOST:PORT", ":PORT" or "PORT" (host 127.0.0.1). IPv6 hosts are written "[::1]:PORT".
Result<ListenAddress> ParseListenAddress(const std::string& text);

/// What the server needs to know about the pipeline it shows.
struct ServerContext {
  StatusInfo info;  ///< names, version, checkpoint interval
  /// Returns the current snapshot; called from the server's threads (Runner::Snapshot()).
  std::function<PipelineSnapshot()> snapshot;
  /// Returns the dead letters in the store by reason (Runner::StoredDeadLetters(), a cached
  /// count); null: not known.
  std::function<StoredDeadLetterCounts()> stored_dead_letters;
  /// The committed-results view, or null (then /api/results answers 404).
  const ResultView* results = nullptr;
  /// What a client may take (deadlines, caps; see README.md, "Slow and hostile clients").
  ServerLimits limits;
};

/// Serves /metrics, /healthz, /readyz, /api/status, /api/results and the dashboard at /.
///
/// Lifecycle: Start() binds (failing when the address is taken) and serves from its own
/// threads, which block SIGINT/SIGTERM/SIGUSR1 so signal handling stays with the command line.
/// A sampler thread takes a snapshot every second for rates and charts. Handlers only read
/// snapshots and the result view, so a slow client never blocks the pipeline. Connections are
/// read by a ConnectionLoop: a slow client costs a descriptor, not a thread, and /healthz,
/// /readyz and /metrics have a handler thread of their own. Stop() (or the destructor) stops
/// serving and joins the threads.
class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Start(const ListenAddress& address,
                                                   ServerContext context);
  ~HttpServer();
  void Stop();
  /// Returns the bound port (useful with port 0).
  int port() const { return port_; }
  const std::string& host() const { return host_; }
  /// What the connection loop did to its clients (deadlines, evictions).
  const ConnectionLoopCounters& connection_counters() const { return loop_->counters(); }

 private:
  HttpServer() = default;
  void Sample();

  ServerContext context_;
  MetricsInfo metrics_info_;
  StoredDeadLetterCounts StoredDeadLetters() const {
    return context_.stored_dead_letters ? context_.stored_dead_letters() : StoredDeadLetterCounts{};
  }
  std::unique_ptr<Router> router_;
  std::unique_ptr<ConnectionLoop> loop_;
  StatusHistory history_;
  std::string host_;
  int port_ = 0;
  std::thread sampler_;
  std::atomic<bool> stop_{false};
};

}  // namespace sluice::http
