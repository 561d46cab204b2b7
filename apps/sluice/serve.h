#pragma once

#include <memory>
#include <string>

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

}  // namespace sluice::cli
