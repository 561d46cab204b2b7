#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "commands.h"
#include "logging.h"
#include "connectors/http/fake_api.h"

namespace sluice::cli {

int RunFakeApi(const FakeApiCliOptions& cli) {
  FakeApiOptions options;
  options.host = cli.host;
  options.port = cli.port;
  options.seed = cli.seed;
  options.error_rate = cli.error_rate;
  options.delay_ms = cli.delay_ms;
  options.hang_ms = cli.hang_ms;
  options.fail_times = cli.fail_times;
  options.max_results = cli.max_results;
  options.errors.clear();
  size_t start = 0;
  while (start <= cli.errors.size()) {
    size_t comma = cli.errors.find(',', start);
    if (comma == std::string::npos) comma = cli.errors.size();
    const std::string name = cli.errors.substr(start, comma - start);
    if (!name.empty()) {
      auto fault = ParseFakeFault(name);
      if (!fault.ok()) {
        ReportError("--errors: " + fault.status().message());
        return 2;
      }
      options.errors.push_back(*fault);
    }
    start = comma + 1;
  }
  if (options.error_rate > 0 && options.errors.empty()) {
    ReportError("--error-rate needs at least one kind in --errors");
    return 2;
  }
  // A handler, not sigwait: threads started before this one (logging) would otherwise take
  // the signal with its default action.
  static std::atomic<int> received{0};
  std::signal(SIGINT, [](int sig) { received.store(sig); });
  std::signal(SIGTERM, [](int sig) { received.store(sig); });
  auto server = FakeApiServer::Start(options);
  if (!server.ok()) {
    ReportError(server.status().message());
    return 1;
  }
  std::cout << "fake-api listening on http://" << options.host << ":" << (*server)->port()
            << "/api/" << std::endl;
  while (received.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int sig = received.load();
  spdlog::info("fake-api: {} received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Stop();
  return 0;
}

}  // namespace sluice::cli
