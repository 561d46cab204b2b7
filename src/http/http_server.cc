#include "http/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>

#include "core/json_writer.h"
#include "core/time.h"
#include "http/assets.h"
#include "http/process_stats.h"

namespace sluice::http {
namespace {

/// Keeps the process's termination signals away from server threads: the command line waits for
/// them on its own thread, and SIGUSR1 would otherwise kill the process.
void BlockSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

/// Reads one request head that the connection loop has received whole, and collects the answer
/// (httplib writes it in pieces) for the loop to send.
class HeadStream : public httplib::Stream {
 public:
  HeadStream(std::string_view head, const Peer& peer, std::string* out)
      : head_(head), peer_(peer), out_(out) {}
  bool is_readable() const override { return pos_ < head_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, head_.size() - pos_);
    std::memcpy(ptr, head_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_->append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = peer_.ip;
    port = peer_.port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = peer_.local_ip;
    port = peer_.local_port;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

 private:
  std::string_view head_;
  size_t pos_ = 0;
  const Peer& peer_;
  std::string* out_;
};

}  // namespace

/// httplib's routing and answer writing, fed by the connection loop instead of httplib's own
/// blocking accept loop and thread pool.
class Router : public httplib::Server {
 public:
  bool Serve(std::string_view head, const Peer& peer, bool must_close, std::string* out) {
    HeadStream stream(head, peer, out);
    bool connection_closed = false;
    const bool ok = process_request(stream, must_close, connection_closed, {});
    return ok && !connection_closed;
  }
};

Result<ListenAddress> ParseListenAddress(const std::string& text) {
  ListenAddress a;
  std::string port = text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::InvalidArgument("--http expects [IPV6]:PORT, got '" + text + "'");
    }
    a.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    if (colon > 0) a.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return Status::InvalidArgument("--http expects HOST:PORT (e.g. 127.0.0.1:8080), got '" + text +
                                   "'");
  }
  a.port = std::stoi(port);
  return a;
}

std::vector<PipelineSnapshot> HttpServer::Snapshots() const {
  std::vector<PipelineSnapshot> out;
  out.reserve(stages_.size());
  for (const auto& st : stages_) out.push_back(st->served.snapshot());
  return out;
}

Readiness HttpServer::ReadinessOf(const std::vector<PipelineSnapshot>& snaps, int64_t now) const {
  Readiness all;
  for (size_t i = 0; i < stages_.size(); ++i) {
    const Stage& st = *stages_[i];
    Readiness r = CheckReadiness(snaps[i], now, st.served.info.checkpoint_interval_micros,
                                 st.history.records_at_last_checkpoint());
    for (auto& reason : r.reasons) {
      all.reasons.push_back(stages_.size() > 1 ? "stage " + st.served.name + ": " + reason : std::move(reason));
    }
  }
  all.ready = all.reasons.empty();
  return all;
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ListenAddress& address,
                                                      ServerContext context) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->context_ = std::move(context);
  std::vector<ServerStage> stages = std::move(s->context_.stages);
  if (stages.empty()) {
    stages.push_back({"", s->context_.info, s->context_.snapshot, s->context_.stored_dead_letters});
  }
  for (ServerStage& served : stages) {
    auto st = std::make_unique<Stage>();
    st->metrics = {served.info.pipeline, served.info.source, served.info.sink, served.info.version};
    st->served = std::move(served);
    s->stages_.push_back(std::move(st));
  }
  s->router_ = std::make_unique<Router>();
  Router& srv = *s->router_;
  const ServerLimits limits = s->context_.limits;
  srv.set_keep_alive_timeout(std::max<time_t>(1, limits.request_deadline_micros / 1'000'000));
  srv.set_keep_alive_max_count(static_cast<size_t>(std::max(1, limits.keep_alive_max)));

  HttpServer* self = s.get();
  srv.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    const std::vector<PipelineSnapshot> snaps = self->Snapshots();
    std::vector<MetricsStage> stages;
    for (size_t i = 0; i < snaps.size(); ++i) {
      const Stage& st = *self->stages_[i];
      stages.push_back({&snaps[i], st.metrics, st.served.name, st.StoredDeadLetters()});
    }
    res.set_content(RenderMetrics(stages, ReadProcessStats(), WallClockMicros()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/healthz", [self](const httplib::Request&, httplib::Response& res) {
    // Several stages: one that failed leaves the process without its other half's purpose
    // (the run stops both); one stage answers ok while the process serves.
    if (self->stages_.size() > 1) {
      const std::vector<PipelineSnapshot> snaps = self->Snapshots();
      std::string failed;
      for (size_t i = 0; i < snaps.size(); ++i) {
        if (snaps[i].state == "failed") failed += " stage " + self->stages_[i]->served.name + " failed;";
      }
      if (!failed.empty()) {
        failed.back() = '\n';
        res.status = 503;
        res.set_content("not healthy:" + failed, "text/plain; charset=utf-8");
        return;
      }
    }
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  srv.Get("/readyz", [self](const httplib::Request&, httplib::Response& res) {
    Readiness r = self->ReadinessOf(self->Snapshots(), WallClockMicros());
    std::string body = r.ready ? "ready\n" : "not ready:";
    for (const auto& reason : r.reasons) body += " " + reason + ";";
    if (!r.ready) body.back() = '\n';
    res.status = r.ready ? 200 : 503;
    res.set_content(body, "text/plain; charset=utf-8");
  });
  srv.Get("/api/status", [self](const httplib::Request&, httplib::Response& res) {
    const std::vector<PipelineSnapshot> snaps = self->Snapshots();
    const int64_t now = WallClockMicros();
    const Readiness all = self->ReadinessOf(snaps, now);
    const Stage& last = *self->stages_.back();
    std::string body = RenderStatusJson(snaps.back(), last.served.info, last.history.Samples(), all, now, 300,
                                        last.StoredDeadLetters());
    if (self->stages_.size() > 1) {
      // Each stage in full as `stages` (its own readiness, a shorter history), after the last
      // stage's fields at the top, which the dashboard reads.
      std::string stages = ",\"stages\":[";
      for (size_t i = 0; i < snaps.size(); ++i) {
        const Stage& st = *self->stages_[i];
        const Readiness r = CheckReadiness(snaps[i], now, st.served.info.checkpoint_interval_micros,
                                           st.history.records_at_last_checkpoint());
        const std::string one = RenderStatusJson(snaps[i], st.served.info, st.history.Samples(), r, now, 60,
                                                 st.StoredDeadLetters());
        if (i > 0) stages += ',';
        stages += "{\"stage\":";
        AppendJsonString(st.served.name, &stages);
        stages += "," + one.substr(1);
      }
      stages += "]}";
      body.pop_back();  // the closing brace
      body += stages;
    }
    res.set_header("Cache-Control", "no-store");
    res.set_content(body, "application/json");
  });
  srv.Get("/api/results", [self](const httplib::Request& req, httplib::Response& res) {
    if (self->context_.results == nullptr) {
      res.status = 404;
      res.set_content("{\"error\":\"no result view\"}", "application/json");
      return;
    }
    ResultQuery q;
    if (req.has_param("by")) q.by = req.get_param_value("by");
    if (req.has_param("top")) {
      const std::string t = req.get_param_value("top");
      if (!t.empty() && t.size() < 5 && t.find_first_not_of("0123456789") == std::string::npos) {
        q.top = static_cast<size_t>(std::stoi(t));
      }
    }
    res.set_header("Cache-Control", "no-store");
    res.set_content(self->context_.results->RenderJson(q), "application/json");
  });
  srv.Get(R"(/[A-Za-z0-9_.\-]*)", [](const httplib::Request& req, httplib::Response& res) {
    const std::optional<Asset> a = FindAsset(req.path);
    if (!a) {
      res.status = 404;
      res.set_content("not found\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(a->body), std::string(a->content_type).c_str());
  });

  ASSIGN_OR_RETURN(
      s->loop_,
      ConnectionLoop::Bind(
          address, limits,
          [](std::string_view path) {
            return path == "/healthz" || path == "/readyz" || path == "/metrics";
          },
          [self](std::string_view head, const Peer& peer, bool must_close, std::string* out) {
            return self->router_->Serve(head, peer, must_close, out);
          }));
  s->port_ = s->loop_->port();
  s->host_ = address.host;
  s->loop_->Start(BlockSignals);
  s->sampler_ = std::thread([self] {
    BlockSignals();
    self->Sample();
  });
  return s;
}

void HttpServer::Sample() {
  int64_t reported = 0;  // clients turned away, as of the last warning
  int64_t last_warning = 0;
  while (!stop_.load()) {
    for (auto& st : stages_) st->history.Add(st->served.snapshot(), WallClockMicros());
    const ConnectionLoopCounters& c = loop_->counters();
    const int64_t turned_away = c.deadline_closed.load() + c.evicted.load() + c.too_large.load() +
                                c.write_timeouts.load();
    const int64_t now = SteadyClockMicros();
    if (turned_away > reported && (last_warning == 0 || now - last_warning >= 60'000'000)) {
      spdlog::warn("http: turned away slow or oversized clients: {} request heads not complete "
                   "within {}s, {} connections evicted (over {} waiting per client or {} in all), "
                   "{} heads over {} bytes, {} answers not taken within {}s",
                   c.deadline_closed.load(), context_.limits.request_deadline_micros / 1'000'000,
                   c.evicted.load(), context_.limits.max_waiting_per_client,
                   context_.limits.max_connections, c.too_large.load(),
                   context_.limits.max_head_bytes, c.write_timeouts.load(),
                   context_.limits.write_deadline_micros / 1'000'000);
      reported = turned_away;
      last_warning = now;
    }
    for (int i = 0; i < 10 && !stop_.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void HttpServer::Stop() {
  if (stop_.exchange(true)) return;
  if (loop_) loop_->Stop();
  if (sampler_.joinable()) sampler_.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace sluice::http
