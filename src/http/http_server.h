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

/// One stage of a pipeline that runs as several in one process (a repartitioned pipeline: stage
/// one reads the source into the repartition topic, stage two reads that topic into the sink).
struct ServerStage {
  std::string name;  ///< "one", "two": the `stage` label on /metrics, `stage` on /api/status
  StatusInfo info;   ///< the stage's names (its own source and sink)
  /// Returns the stage's current snapshot; called from the server's threads.
  std::function<PipelineSnapshot()> snapshot;
  /// The stage's dead letters in its store (null: not known).
  std::function<StoredDeadLetterCounts()> stored_dead_letters;
};

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
  /// A pipeline run as several stages: each, in order; `info`, `snapshot` and
  /// `stored_dead_letters` above are then not used. /metrics carries every stage's series with
  /// the label `stage`; /api/status is the last stage's (the one whose sink holds the results,
  /// for the dashboard) with `stages`, one object per stage, and readiness over all; /readyz is
  /// ready when every stage is; /healthz fails (503) while a stage has failed. Empty: one stage,
  /// described by the fields above, served as always (no `stage` label, no `stages`).
  std::vector<ServerStage> stages;
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

  /// One stage served (the only one of a pipeline of one stage) with its sampled history.
  struct Stage {
    ServerStage served;
    MetricsInfo metrics;
    StatusHistory history;
    StoredDeadLetterCounts StoredDeadLetters() const {
      return served.stored_dead_letters ? served.stored_dead_letters() : StoredDeadLetterCounts{};
    }
  };
  /// /readyz and /api/status's readiness over every stage (a stage's reasons named by it when
  /// there are several), given each stage's snapshot.
  Readiness ReadinessOf(const std::vector<PipelineSnapshot>& snaps, int64_t now) const;
  std::vector<PipelineSnapshot> Snapshots() const;

  ServerContext context_;
  std::vector<std::unique_ptr<Stage>> stages_;  ///< at least one
  std::unique_ptr<Router> router_;
  std::unique_ptr<ConnectionLoop> loop_;
  std::string host_;
  int port_ = 0;
  std::thread sampler_;
  std::atomic<bool> stop_{false};
};

}  // namespace sluice::http
