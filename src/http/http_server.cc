#include "http/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <sys/socket.h>

#include <chrono>
#include <csignal>

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

}  // namespace

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

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ListenAddress& address,
                                                      ServerContext context) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->context_ = std::move(context);
  s->metrics_info_.pipeline = s->context_.info.pipeline;
  s->metrics_info_.source = s->context_.info.source;
  s->metrics_info_.sink = s->context_.info.sink;
  s->metrics_info_.version = s->context_.info.version;
  s->server_ = std::make_unique<httplib::Server>();
  httplib::Server& srv = *s->server_;
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
  // process bind the same port silently.
  srv.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  srv.new_task_queue = [] { return new httplib::ThreadPool(4); };
  srv.set_keep_alive_timeout(2);
  srv.set_read_timeout(5);
  srv.set_write_timeout(5);

  HttpServer* self = s.get();
  srv.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    const PipelineSnapshot snap = self->context_.snapshot();
    res.set_content(RenderMetrics(snap, self->metrics_info_, ReadProcessStats(), WallClockMicros()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  srv.Get("/readyz", [self](const httplib::Request&, httplib::Response& res) {
    const PipelineSnapshot snap = self->context_.snapshot();
    Readiness r = CheckReadiness(snap, WallClockMicros(), self->context_.info.checkpoint_interval_micros,
                                 self->history_.records_at_last_checkpoint());
    std::string body = r.ready ? "ready\n" : "not ready:";
    for (const auto& reason : r.reasons) body += " " + reason + ";";
    if (!r.ready) body.back() = '\n';
    res.status = r.ready ? 200 : 503;
    res.set_content(body, "text/plain; charset=utf-8");
  });
  srv.Get("/api/status", [self](const httplib::Request&, httplib::Response& res) {
    const PipelineSnapshot snap = self->context_.snapshot();
    const int64_t now = WallClockMicros();
    Readiness r = CheckReadiness(snap, now, self->context_.info.checkpoint_interval_micros,
                                 self->history_.records_at_last_checkpoint());
    res.set_header("Cache-Control", "no-store");
    res.set_content(RenderStatusJson(snap, self->context_.info, self->history_.Samples(), r, now),
                    "application/json");
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
    const Asset* a = FindAsset(req.path);
    if (a == nullptr) {
      res.status = 404;
      res.set_content("not found\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(a->body), std::string(a->content_type).c_str());
  });

  if (address.port == 0) {
    s->port_ = srv.bind_to_any_port(address.host);
    if (s->port_ <= 0) {
      return Status::Unavailable("cannot listen on " + address.host + ": no free port");
    }
  } else {
    if (!srv.bind_to_port(address.host, address.port)) {
      return Status::Unavailable("cannot listen on " + address.host + ":" +
                                 std::to_string(address.port) + " (address in use or not local)");
    }
    s->port_ = address.port;
  }
  s->host_ = address.host;
  s->listener_ = std::thread([self] {
    BlockSignals();
    self->server_->listen_after_bind();
    self->listening_done_.store(true);
  });
  s->sampler_ = std::thread([self] {
    BlockSignals();
    self->Sample();
  });
  return s;
}

void HttpServer::Sample() {
  while (!stop_.load()) {
    history_.Add(context_.snapshot(), WallClockMicros());
    for (int i = 0; i < 10 && !stop_.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void HttpServer::Stop() {
  if (stop_.exchange(true)) return;
  // stop() does nothing until the listener thread is inside listen: repeat until it returned.
  if (listener_.joinable()) {
    while (!listening_done_.load()) {
      server_->stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    listener_.join();
  }
  if (sampler_.joinable()) sampler_.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace sluice::http
