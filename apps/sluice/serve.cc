#include "serve.h"

#include <spdlog/spdlog.h>

#include "core/uri.h"

namespace sluice::cli {

Result<HttpEndpoint> StartHttp(Runner* runner, const std::string& address) {
  ASSIGN_OR_RETURN(http::ListenAddress listen, http::ParseListenAddress(address));
  HttpEndpoint e;
  const Plan& plan = runner->plan();
  // Update mode hands over mergeable deltas; append mode (and select) finished rows, which the
  // view keeps as the latest rows.
  if (plan.aggregate && !plan.aggregate->append_mode) {
    e.view = http::ResultView::ForAggregate(plan.aggregate.get(),
                                            http::ResultView::DefaultTrackedKeys(*plan.aggregate));
  } else {
    e.view = http::ResultView::ForRows(plan.OutputSchema(), http::ResultView::Limits());
  }
  http::ResultView* view = e.view.get();
  runner->SetCommitObserver(
      [view](const std::vector<DeltaRow>& deltas, const std::vector<std::vector<Value>>& rows) {
        view->OnCommit(deltas, rows);
      });

  const PipelineConfig& config = runner->config();
  http::ServerContext ctx;
  ctx.info.pipeline = config.name;
  ctx.info.source = config.source.name;
  ctx.info.sink = !config.sink.table.empty() ? config.sink.table : SplitUri(config.sink.uri).first;
  ctx.info.version = SLUICE_VERSION;
  ctx.info.checkpoint_interval_micros = config.checkpoint_interval_micros;
  ctx.snapshot = [runner] {
    PipelineSnapshot s = runner->Snapshot();
    if (s.pipeline.empty()) s.pipeline = runner->config().name;
    return s;
  };
  ctx.stored_dead_letters = [runner] { return runner->StoredDeadLetters(); };
  ctx.results = view;
  auto server = http::HttpServer::Start(listen, std::move(ctx));
  if (!server.ok()) {
    runner->SetCommitObserver(nullptr);
    return server.status();
  }
  e.server = std::move(server).value();
  const std::string host =
      listen.host.find(':') != std::string::npos ? "[" + listen.host + "]" : listen.host;
  e.url = "http://" + host + ":" + std::to_string(e.server->port()) + "/";
  spdlog::info("http: dashboard {}, metrics {}metrics", e.url, e.url);
  return e;
}

}  // namespace sluice::cli
