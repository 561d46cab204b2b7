#include "serve.h"

#include <spdlog/spdlog.h>

#include "core/uri.h"

namespace sluice::cli {

namespace {

/// The result view of `runner`'s output: update mode hands over mergeable deltas; append mode
/// (and select) finished rows, which the view keeps as the latest rows.
std::unique_ptr<http::ResultView> MakeView(const Runner& runner) {
  const Plan& plan = runner.plan();
  if (plan.aggregate && !plan.aggregate->append_mode) {
    return http::ResultView::ForAggregate(plan.aggregate.get(),
                                          http::ResultView::DefaultTrackedKeys(*plan.aggregate));
  }
  return http::ResultView::ForRows(plan.OutputSchema(), http::ResultView::Limits());
}

/// The names /api/status and /metrics show for `runner`'s pipeline.
http::StatusInfo InfoOf(const Runner& runner, const std::string& sink) {
  const PipelineConfig& config = runner.config();
  http::StatusInfo info;
  info.pipeline = config.name;
  info.source = config.source.name;
  info.sink = !sink.empty()                ? sink
              : !config.sink.table.empty() ? config.sink.table
                                           : SplitUri(config.sink.uri).first;
  info.version = SLUICE_VERSION;
  info.checkpoint_interval_micros = config.checkpoint_interval_micros;
  return info;
}

/// Starts serving `ctx` with `view` (registered on `results`) on `address`.
Result<HttpEndpoint> Serve(Runner* results, std::unique_ptr<http::ResultView> view, http::ServerContext ctx,
                           const std::string& address) {
  ASSIGN_OR_RETURN(http::ListenAddress listen, http::ParseListenAddress(address));
  HttpEndpoint e;
  e.view = std::move(view);
  ctx.results = e.view.get();
  ObserveCommits(e, results);
  auto server = http::HttpServer::Start(listen, std::move(ctx));
  if (!server.ok()) {
    results->SetCommitObserver(nullptr);
    return server.status();
  }
  e.server = std::move(server).value();
  const std::string host =
      listen.host.find(':') != std::string::npos ? "[" + listen.host + "]" : listen.host;
  e.url = "http://" + host + ":" + std::to_string(e.server->port()) + "/";
  spdlog::info("http: dashboard {}, metrics {}metrics", e.url, e.url);
  return e;
}

}  // namespace

void ObserveCommits(const HttpEndpoint& endpoint, Runner* runner) {
  http::ResultView* view = endpoint.view.get();
  runner->SetCommitObserver(
      [view](const std::vector<DeltaRow>& deltas, const std::vector<std::vector<Value>>& rows) {
        view->OnCommit(deltas, rows);
      });
}

Result<HttpEndpoint> StartHttp(Runner* runner, const std::string& address) {
  http::ServerContext ctx;
  ctx.info = InfoOf(*runner, "");
  ctx.snapshot = [runner] {
    PipelineSnapshot s = runner->Snapshot();
    if (s.pipeline.empty()) s.pipeline = runner->config().name;
    return s;
  };
  ctx.stored_dead_letters = [runner] { return runner->StoredDeadLetters(); };
  return Serve(runner, MakeView(*runner), std::move(ctx), address);
}

Result<HttpEndpoint> StartHttpStages(Runner* results, std::vector<HttpStage> stages, const std::string& address) {
  http::ServerContext ctx;
  for (HttpStage& st : stages) {
    http::ServerStage served;
    served.name = st.name;
    served.info = InfoOf(*st.runner, st.sink);
    served.snapshot = std::move(st.snapshot);
    served.stored_dead_letters = std::move(st.stored_dead_letters);
    ctx.stages.push_back(std::move(served));
  }
  return Serve(results, MakeView(*results), std::move(ctx), address);
}

}  // namespace sluice::cli
