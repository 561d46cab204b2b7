#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "http/http_server.h"
#include "http/result_view.h"
#include "runtime/runner.h"

namespace sluice::cli {

/// The HTTP side of one run: the committed-results view and the server showing it.
struct HttpEndpoint {
  std::unique_ptr<http::ResultView> view;
  std::unique_ptr<http::HttpServer> server;
  std::string url;  ///< http://HOST:PORT/
};

/// Builds the result view, registers it as `runner`'s commit observer and starts serving on
/// `address` ("HOST:PORT"). Call before Runner::Run(); `runner` must outlive the endpoint.
Result<HttpEndpoint> StartHttp(Runner* runner, const std::string& address);

/// One stage of a repartitioned run as --http serves it.
struct HttpStage {
  std::string name;        ///< "one", "two"
  const Runner* runner = nullptr;  ///< its first runner: the names shown (pipeline, source, sink)
  std::string sink;        ///< the sink shown ("": the runner's sink table or URI scheme)
  /// The stage's current snapshot and stored dead letters: its runner may be replaced (a fenced
  /// restart), so the caller reads whichever runs now.
  std::function<PipelineSnapshot()> snapshot;
  std::function<StoredDeadLetterCounts()> stored_dead_letters;
};

/// Serves both stages of a repartitioned run on `address` (http::ServerContext::stages): the
/// result view follows `results` (stage two's runner; ObserveCommits moves it to a runner made
/// again). Call before the runners' Run().
Result<HttpEndpoint> StartHttpStages(Runner* results, std::vector<HttpStage> stages,
                                     const std::string& address);

/// Registers `endpoint`'s result view as `runner`'s commit observer (a stage two made again
/// after a fenced restart).
void ObserveCommits(const HttpEndpoint& endpoint, Runner* runner);

}  // namespace sluice::cli
