#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/option_spec.h"
#include "connectors/http/http_body.h"
#include "runtime/source.h"

namespace httplib {
class Client;
}

namespace sluice {

/// Settings of the http/https source, from the URI and the [source] options (see README.md).
struct HttpSourceSettings {
  std::string base;   ///< scheme://host[:port]
  std::string path;   ///< path and query of the URI, without the paging parameters
  int64_t interval_micros = 1'000'000;  ///< between the starts of two requests
  std::string records;                  ///< dotted path of the records array; "" = the body
  int64_t timeout_micros = 10'000'000;  ///< connect and read timeout of one request
  int retries = 3;                      ///< further attempts after a failed one
  int64_t backoff_micros = 200'000;     ///< first retry delay, doubled per retry
  int64_t backoff_max_micros = 10'000'000;
  int64_t count = -1;        ///< stop after this many records received; -1 = none
  int64_t pages = -1;        ///< stop after this many pages; -1 = none
  std::string page_param = "page";  ///< "" = no paging: every poll requests the same URL
  int64_t first_page = 1;
  std::string size_param = "results";
  int64_t page_size = -1;    ///< sent as size_param when >= 0
  std::string seed_param = "seed";
  std::string seed;          ///< sent as seed_param when not empty
  int64_t max_body_bytes = 64 << 20;
  std::string ca_file;       ///< https: CA bundle; "" = the system's
  bool insecure = false;     ///< https: skip certificate verification
};

/// The options of an http(s) source (ParseHttpSourceSettings reads them).
const OptionTable& HttpSourceOptions();

/// Parses the URI and options of an http(s) source.
Result<HttpSourceSettings> ParseHttpSourceSettings(const std::string& uri, const Options& options);

/// Returns the delay before retry `retry` (0 for the first retry): base * 2^retry capped at
/// `max`, with "equal jitter": half of it fixed, the other half scaled by `unit` in [0, 1).
int64_t BackoffDelayMicros(int64_t base, int64_t max, int retry, double unit);

/// What the source did, for logs and tests. Updated by the fetch thread, read by anyone.
struct HttpSourceCounters {
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> retries{0};
  std::atomic<int64_t> pages{0};              ///< pages whose records were emitted
  std::atomic<int64_t> records{0};
  std::atomic<int64_t> dead_lettered_pages{0};
  // Failed requests by kind.
  std::atomic<int64_t> timeout{0};
  std::atomic<int64_t> connection{0};
  std::atomic<int64_t> http_5xx{0};
  std::atomic<int64_t> http_429{0};
  std::atomic<int64_t> http_4xx{0};       ///< other non-2xx answers (not retried)
  std::atomic<int64_t> invalid_body{0};   ///< not JSON, or no records at the path
  std::atomic<int64_t> too_large{0};
  /// Formats them as "requests=N retries=N ... ", the line logged when the source closes.
  std::string ToString() const;
};

/// Polls a JSON API over HTTP(S), one page per request.
///
/// Its position is a page cursor: partition 0 holds the next page to request (page P's records
/// carry offset P and next offset P + 1), partition 1 the records received before that page.
/// Both are committed with the results, so a restart requests the committed page again and
/// knows how many records it has: an API whose pages are replayable (randomuser's `seed` +
/// `page`) is read exactly once, and `count` counts records received, whatever the API's page
/// size (a page shorter than `page_size` is not the end; an empty one is).
/// A fetch thread requests pages ahead (at most a few) so the worker never blocks on the
/// network; a page is handed over whole in one Poll (it may exceed max_records). Requests that
/// time out, fail to connect or answer 5xx/429 are retried with capped exponential backoff with
/// jitter; a page that still fails, answers another non-2xx status, is not JSON or lacks the
/// records path is dead-lettered with the reason and the source moves on to the next page.
/// An empty page means "caught up": it is requested again after `interval` (or ends the run
/// with --until-caught-up). Open() requests the start page itself (one attempt; the retries of
/// a transient failure are the fetch thread's) and fails with InvalidArgument on a permanent
/// failure: credentials refused (401, 403), a certificate that does not verify, a 404 on a
/// fresh start.
class HttpSource : public Source {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config,
                                                           int max_instances);
  explicit HttpSource(HttpSourceSettings settings);
  ~HttpSource() override;

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records,
                         std::chrono::milliseconds budget) override;
  std::string_view kind() const override { return "http"; }
  DecoderOptions decoder_options() const override { return {}; }
  bool EndIsFinal() const override { return end_is_final_.load(); }
  std::vector<int32_t> Partitions() const override { return {0}; }
  /// Partition 0: the next page to request; partition 1: the records received before it.
  std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const override {
    if (batch_next_page_ < 0) return {};
    return {{0, batch_next_page_}, {1, batch_received_}};
  }
  void Close() override;
  /// Returns the counters as sluice_http_{requests,retries,pages,records,dead_lettered_pages}
  /// and sluice_http_failures{kind} (the failure kinds of README.md, zeros included).
  std::vector<SourceCounter> Counters() const override;

  const HttpSourceCounters& counters() const { return counters_; }

 private:
  /// One page as the fetch thread hands it over.
  struct Page {
    int64_t page = 0;
    int64_t received_after = 0;  ///< records received through this page
    std::vector<std::string> records;
    bool dead = false;
    /// The failure cannot be fixed by retrying, nor by the next page: refused credentials
    /// (401, 403), a certificate that does not verify, or a 404 on the first page.
    bool permanent = false;
    /// > 0: a transient failure whose retries are still to come, from this attempt on.
    int retry_from = 0;
    std::string reason;
    std::string payload;  ///< of the dead letter
  };
  void FetchLoop();
  /// True when `count` or `pages` is reached at `page` with `received` records.
  bool Finished(int64_t page, int64_t received) const;
  /// Requests `page` with retries, counting attempts from `first_attempt`. Returns false when
  /// stopped meanwhile. With `one_attempt`, a transient failure returns at once with
  /// `out->retry_from` set to the attempt to go on with.
  bool Fetch(int64_t page, Page* out, int first_attempt = 0, bool one_attempt = false);
  std::string Target(int64_t page) const;
  /// Waits until `until` or a stop; returns false on stop.
  bool SleepUntil(std::chrono::steady_clock::time_point until);

  HttpSourceSettings settings_;
  HttpSourceCounters counters_;
  bool until_caught_up_ = false;
  int64_t start_page_ = 0;
  int64_t start_received_ = 0;  ///< records received before start_page_ (committed)
  int64_t batch_next_page_ = -1;
  int64_t batch_received_ = 0;
  std::atomic<bool> end_is_final_{true};

  std::unique_ptr<httplib::Client> client_;
  std::thread fetcher_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Page> first_;  // the start page, requested by Open (then the fetch thread's)
  std::chrono::steady_clock::time_point first_requested_;
  std::deque<Page> ready_;   // guarded by mu_
  bool fetch_done_ = false;  // guarded by mu_
  std::atomic<bool> stop_{false};
  uint64_t jitter_state_ = 0;
};

}  // namespace sluice
