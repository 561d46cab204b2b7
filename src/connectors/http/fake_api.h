#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"

namespace httplib {
class Server;
}

namespace sluice {

/// A failure the fake API injects into a page's answer.
enum class FakeFault {
  kNone,
  k5xx,        ///< 500, 502 or 503 with a JSON error body
  kTimeout,    ///< the answer comes `hang_ms` late (longer than a client's timeout)
  kMalformed,  ///< 200 with the page's JSON cut in half
};

/// Parses "5xx", "timeout" or "malformed".
Result<FakeFault> ParseFakeFault(std::string_view name);

/// Settings of `sluice fake-api`.
struct FakeApiOptions {
  std::string host = "127.0.0.1";
  int port = 0;                  ///< 0: any free port
  std::string seed = "sluice";   ///< used when a request has no `seed`
  double error_rate = 0;         ///< share of pages that fail, decided by (seed, page)
  std::vector<FakeFault> errors = {FakeFault::k5xx, FakeFault::kTimeout, FakeFault::kMalformed};
  int64_t delay_ms = 0;          ///< added to every answer
  int64_t hang_ms = 5000;        ///< how late a "timeout" answer comes
  /// 0: a failing page fails on every request; N: on its first N requests only (then it
  /// answers normally, so a client's retry succeeds).
  int fail_times = 0;
  /// The most users one page holds, whatever `results` asks (at most kMaxResults): like APIs
  /// that cap their page size, so a client that asked for more gets fewer per page.
  int64_t max_results = 5000;
};

/// The largest page the fake API serves.
constexpr int64_t kMaxResults = 5000;

/// Hashes a seed string (64-bit FNV-1a).
uint64_t FakeSeedHash(std::string_view seed);
/// Mixes 64 bits (the SplitMix64 finaliser applied to x + golden ratio).
uint64_t FakeMix(uint64_t x);

/// Returns the fault of page `page` for requests with seed `seed`: the page fails when
/// u < error_rate, u = top 53 bits of FakeMix(FakeSeedHash(seed) ^ FakeMix(page)) / 2^53; its
/// kind is errors[FakeMix(that hash) % errors.size()].
FakeFault FakeFaultFor(const FakeApiOptions& options, std::string_view seed, int64_t page);

/// Renders the randomuser-shaped answer {"results":[...],"info":{...}} for (seed, page,
/// results): byte-identical for the same arguments; user i of page p is drawn from
/// (seed, p, i) alone.
std::string RenderFakeUsersPage(std::string_view seed, int64_t page, int results);

/// One answer of the fake API.
struct FakeApiResponse {
  int status = 200;
  std::string body;
  int64_t hang_ms = 0;  ///< wait this long before answering
};

/// Answers GET `path` with query `params`; `attempt` is how many times this (seed, page) was
/// requested before (for fail_times).
FakeApiResponse HandleFakeApiRequest(const FakeApiOptions& options, const std::string& path,
                                     const std::multimap<std::string, std::string>& params,
                                     const std::function<int(const std::string& seed, int64_t page)>& attempt);

/// Serves the fake API on its own threads until Stop().
class FakeApiServer {
 public:
  static Result<std::unique_ptr<FakeApiServer>> Start(FakeApiOptions options);
  ~FakeApiServer();
  /// Stops serving (hanging answers are cut short) and joins the threads.
  void Stop();
  int port() const { return port_; }

 private:
  FakeApiServer() = default;
  FakeApiOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  std::atomic<bool> listen_returned_{false};
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                                  // guarded by mu_
  std::map<std::pair<std::string, int64_t>, int> seen_;    // guarded by mu_
};

}  // namespace sluice
