#include "connectors/http/http_source.h"

#include <httplib.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "core/json_writer.h"
#include "core/random.h"

namespace sluice {
namespace {

/// Pages the fetch thread may hold ahead of the worker.
constexpr size_t kMaxReadyPages = 4;
/// Bytes of a failed answer's body kept in its dead letter.
constexpr size_t kExcerptBytes = 1024;

std::string PercentEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string FormatMicros(int64_t micros) {
  if (micros % 1'000'000 == 0) return std::to_string(micros / 1'000'000) + "s";
  return std::to_string(micros / 1000) + "ms";
}

}  // namespace

std::string HttpSourceCounters::ToString() const {
  auto v = [](const std::atomic<int64_t>& a) { return std::to_string(a.load()); };
  return "requests=" + v(requests) + " retries=" + v(retries) + " pages=" + v(pages) +
         " records=" + v(records) + " dead_lettered_pages=" + v(dead_lettered_pages) +
         " failures: timeout=" + v(timeout) + " connection=" + v(connection) +
         " http_5xx=" + v(http_5xx) + " http_429=" + v(http_429) + " http_4xx=" + v(http_4xx) +
         " invalid_body=" + v(invalid_body) + " too_large=" + v(too_large);
}

std::vector<SourceCounter> HttpSource::Counters() const {
  const HttpSourceCounters& c = counters_;
  auto v = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  const char* kFailures = "Failed HTTP requests of the http source, by kind.";
  return {
      {"http_requests", "HTTP requests of the http source (first attempts and retries).", "",
       v(c.requests)},
      {"http_retries", "HTTP requests the http source retried after a failure.", "", v(c.retries)},
      {"http_pages", "Pages whose records the http source emitted.", "", v(c.pages)},
      {"http_records", "Records the http source emitted.", "", v(c.records)},
      {"http_dead_lettered_pages", "Pages the http source dead-lettered.", "",
       v(c.dead_lettered_pages)},
      {"http_failures", kFailures, "timeout", v(c.timeout)},
      {"http_failures", kFailures, "connection", v(c.connection)},
      {"http_failures", kFailures, "http_5xx", v(c.http_5xx)},
      {"http_failures", kFailures, "http_429", v(c.http_429)},
      {"http_failures", kFailures, "http_4xx", v(c.http_4xx)},
      {"http_failures", kFailures, "invalid_body", v(c.invalid_body)},
      {"http_failures", kFailures, "too_large", v(c.too_large)},
  };
}

int64_t BackoffDelayMicros(int64_t base, int64_t max, int retry, double unit) {
  if (base <= 0) return 0;
  int64_t delay = base;
  for (int i = 0; i < retry && delay < max; ++i) delay *= 2;
  delay = std::min(delay, max);
  const int64_t half = delay / 2;
  unit = std::clamp(unit, 0.0, 1.0);
  return delay - half + static_cast<int64_t>(static_cast<double>(half) * unit);
}

const OptionTable& HttpSourceOptions() {
  using T = OptionType;
  static const OptionTable kTable{
      .uri = "http://HOST[:PORT]/PATH",
      .summary = "A paged JSON API, one page per request; the next page to request is the position "
                 "(src/connectors/http/README.md).",
      .options = {
          {.name = "records",
           .help = "Dotted path of the records array in the body (`results`, `data.items`; a numeric "
                   "segment indexes an array). Unset: the body is an array of records, or one record."},
          {.name = "interval",
           .type = T::kDuration,
           .default_value = "1s",
           .help = "Time between the starts of two requests (`0s`: as fast as the API answers)."},
          {.name = "timeout", .type = T::kDuration, .default_value = "10s", .help = "Connect and read timeout of one request."},
          {.name = "retries",
           .type = T::kInt,
           .default_value = "3",
           .help = "Further attempts after a failed one (timeouts, connection errors, 5xx, 429), 0..100."},
          {.name = "backoff",
           .type = T::kDuration,
           .default_value = "200ms",
           .help = "Delay before the first retry; doubled for each further retry."},
          {.name = "backoff_max", .type = T::kDuration, .default_value = "10s", .help = "Cap of the retry delay."},
          {.name = "page_param",
           .default_value = "page",
           .help = "Query parameter of the page number; `\"\"`: no paging (every request asks the same URL)."},
          {.name = "first_page", .type = T::kInt, .default_value = "1", .help = "The first page number."},
          {.name = "page_size", .type = T::kInt, .default_value = "-1", .help = "Records per page, sent as `size_param`; -1: not sent."},
          {.name = "size_param", .default_value = "results", .help = "Query parameter of the page size."},
          {.name = "seed",
           .help = "Sent as `seed_param` when set (generator sources read the same key; a pipeline can switch)."},
          {.name = "seed_param", .default_value = "seed", .help = "Query parameter of the seed."},
          {.name = "pages",
           .type = T::kInt,
           .default_value = "-1",
           .help = "Stop after this many pages (counted from `first_page`); -1: never."},
          {.name = "count",
           .type = T::kInt,
           .default_value = "-1",
           .help = "Stop after this many records received (the last page is truncated), counted as "
                   "they arrive whatever the API's page size; -1: never."},
          {.name = "max_body",
           .type = T::kInt,
           .default_value = "67108864",
           .help = "A larger answer is dead-lettered (`too_large`) without retry."},
          {.name = "ca_file", .type = T::kPath, .default_note = "the system's", .help = "https: CA bundle to verify the server with."},
          {.name = "insecure", .type = T::kBool, .default_value = "false", .help = "https: do not verify the server's certificate."},
          {.name = "format", .default_value = "json", .allowed = {"json", "ndjson"}, .help = "The body is JSON."},
      }};
  return kTable;
}

Result<HttpSourceSettings> ParseHttpSourceSettings(const std::string& uri, const Options& options) {
  OptionReader o(options, HttpSourceOptions(), "source");
  HttpSourceSettings s;
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string::npos || scheme_end + 3 >= uri.size()) {
    return Status::InvalidArgument(o.Where("uri") + ": expected http://HOST[:PORT]/PATH, got '" +
                                   uri + "'");
  }
  const size_t path_start = uri.find_first_of("/?", scheme_end + 3);
  s.base = uri.substr(0, path_start);
  s.path = path_start == std::string::npos ? "/" : uri.substr(path_start);
  if (s.path[0] == '?') s.path = "/" + s.path;

  ASSIGN_OR_RETURN(s.interval_micros, o.Duration("interval"));
  s.records = o.String("records");
  ASSIGN_OR_RETURN(s.timeout_micros, o.Duration("timeout"));
  if (s.timeout_micros <= 0) return Status::InvalidArgument(o.Where("timeout") + ": must be > 0");
  ASSIGN_OR_RETURN(int64_t retries, o.Int("retries"));
  if (retries < 0 || retries > 100) {
    return Status::InvalidArgument(o.Where("retries") + ": retries must be 0..100");
  }
  s.retries = static_cast<int>(retries);
  ASSIGN_OR_RETURN(s.backoff_micros, o.Duration("backoff"));
  ASSIGN_OR_RETURN(s.backoff_max_micros, o.Duration("backoff_max"));
  ASSIGN_OR_RETURN(s.count, o.Int("count"));
  ASSIGN_OR_RETURN(s.pages, o.Int("pages"));
  s.page_param = o.String("page_param");  // set to "": no paging
  ASSIGN_OR_RETURN(s.first_page, o.Int("first_page"));
  if (s.first_page < 0) return Status::InvalidArgument(o.Where("first_page") + ": must be >= 0");
  s.size_param = o.String("size_param");
  ASSIGN_OR_RETURN(s.page_size, o.Int("page_size"));
  s.seed_param = o.String("seed_param");
  s.seed = o.String("seed");
  ASSIGN_OR_RETURN(s.max_body_bytes, o.Int("max_body"));
  if (s.max_body_bytes <= 0) return Status::InvalidArgument(o.Where("max_body") + ": must be > 0");
  s.ca_file = o.String("ca_file");
  ASSIGN_OR_RETURN(s.insecure, o.Bool("insecure"));
  if (!o.Choice("format").ok()) {
    return Status::InvalidArgument(o.Where("format") + ": an http source reads JSON (format = \"json\")");
  }
  return s;
}

Result<std::vector<std::unique_ptr<Source>>> HttpSource::Make(const SourceConfig& config,
                                                              int /*max_instances*/) {
  ASSIGN_OR_RETURN(HttpSourceSettings settings, ParseHttpSourceSettings(config.uri, config.options));
  RETURN_IF_ERROR(OptionReader(config.options, HttpSourceOptions(), "source").Finish());
  std::vector<std::unique_ptr<Source>> out;
  out.push_back(std::make_unique<HttpSource>(std::move(settings)));
  return out;
}

HttpSource::HttpSource(HttpSourceSettings settings) : settings_(std::move(settings)) {}

HttpSource::~HttpSource() { Close(); }

Status HttpSource::Open(const SourceContext& ctx) {
  until_caught_up_ = ctx.until_caught_up;
  start_page_ = settings_.page_param.empty() ? 0 : settings_.first_page;
  start_received_ = 0;
  if (auto committed = ctx.committed_position(0)) {
    start_page_ = *committed;
    if (auto received = ctx.committed_position(1)) {
      start_received_ = *received;
    } else if (!settings_.page_param.empty() && settings_.page_size > 0) {
      // Committed before the count was kept (partition 1): every page was taken as full.
      start_received_ = std::max<int64_t>(0, start_page_ - settings_.first_page) * settings_.page_size;
      spdlog::info("http source: no record count committed; {} records assumed before page {}",
                   start_received_, start_page_);
    }
  }
  client_ = std::make_unique<httplib::Client>(settings_.base);
  if (!client_->is_valid()) {
    return Status::InvalidArgument("http source: cannot use '" + settings_.base + "'");
  }
  const int64_t t = settings_.timeout_micros;
  client_->set_connection_timeout(t / 1'000'000, t % 1'000'000);
  client_->set_read_timeout(t / 1'000'000, t % 1'000'000);
  client_->set_write_timeout(t / 1'000'000, t % 1'000'000);
  client_->set_follow_location(true);
  client_->set_keep_alive(true);
  if (!settings_.ca_file.empty()) client_->set_ca_cert_path(settings_.ca_file);
  client_->enable_server_certificate_verification(!settings_.insecure);
  jitter_state_ = static_cast<uint64_t>(start_page_) * 0x9e3779b97f4a7c15ULL + 0x5851f42d4c957f2dULL;
  stop_.store(false);
  // The start page is requested here, so that what no retry can fix fails the run at once
  // (exit 2) instead of dead-lettering page after page; a transient failure is retried as
  // always, and the page (whatever came of it) is handed to the fetch thread.
  first_.reset();
  if (!Finished(start_page_, start_received_)) {
    first_requested_ = std::chrono::steady_clock::now();
    // One attempt only: the retries of a transient failure are the fetch thread's, which
    // Close() can interrupt.
    Page first;
    Fetch(start_page_, &first, 0, /*one_attempt=*/true);
    // A 404 after a committed page may just be past the API's last page.
    const bool fresh = !ctx.committed_position(0).has_value() || settings_.page_param.empty();
    if (first.dead && first.permanent && (fresh || first.reason != "http: HTTP 404")) {
      client_->stop();  // no connection is kept for a run that does not start
      client_.reset();
      const bool tls = first.reason.find("TLS") != std::string::npos;
      const bool auth = first.reason == "http: HTTP 401" || first.reason == "http: HTTP 403";
      return Status::InvalidArgument(
          "http source " + settings_.base + Target(start_page_) + ": " + first.reason.substr(6) +
          (auth  ? ": the credentials were refused"
           : tls ? ": the server's certificate does not verify (ca_file, or insecure = true)"
                 : ": the URL does not exist") +
          "; not retried");
    }
    first_ = std::move(first);
  }
  fetcher_ = std::thread([this] { FetchLoop(); });
  return Status::OK();
}

bool HttpSource::Finished(int64_t page, int64_t received) const {
  const bool paging = !settings_.page_param.empty();
  if (settings_.pages >= 0 && (paging ? page - settings_.first_page : page - start_page_) >= settings_.pages) {
    return true;
  }
  return settings_.count >= 0 && received >= settings_.count;
}

std::string HttpSource::Target(int64_t page) const {
  std::string target = settings_.path;
  auto add = [&](const std::string& name, const std::string& value) {
    target += (target.find('?') == std::string::npos ? "?" : "&");
    target += PercentEncode(name) + "=" + PercentEncode(value);
  };
  if (settings_.page_size >= 0 && !settings_.size_param.empty()) {
    add(settings_.size_param, std::to_string(settings_.page_size));
  }
  if (!settings_.seed.empty() && !settings_.seed_param.empty()) add(settings_.seed_param, settings_.seed);
  if (!settings_.page_param.empty()) add(settings_.page_param, std::to_string(page));
  return target;
}

bool HttpSource::SleepUntil(std::chrono::steady_clock::time_point until) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, until, [&] { return stop_.load(); });
  return !stop_.load();
}

bool HttpSource::Fetch(int64_t page, Page* out, int first_attempt, bool one_attempt) {
  out->page = page;
  out->retry_from = 0;
  const std::string target = Target(page);
  std::string body;
  std::string failure;  // the last attempt's reason
  int status = 0;
  int attempts = first_attempt;
  bool give_up = false;  // a failure that retrying cannot fix
  for (int attempt = first_attempt; attempt <= settings_.retries && !give_up; ++attempt) {
    if (one_attempt && attempt > first_attempt) {
      out->retry_from = attempt;  // the caller goes on from here
      return true;
    }
    if (attempt > 0) {
      counters_.retries.fetch_add(1);
      Rng rng(jitter_state_++);
      const int64_t delay = BackoffDelayMicros(settings_.backoff_micros, settings_.backoff_max_micros,
                                               attempt - 1, rng.Unit());
      if (!SleepUntil(std::chrono::steady_clock::now() + std::chrono::microseconds(delay))) {
        return false;
      }
    }
    ++attempts;
    counters_.requests.fetch_add(1);
    body.clear();
    bool too_large = false;
    const auto started = std::chrono::steady_clock::now();
    auto res = client_->Get(target, [&](const char* data, size_t n) {
      if (stop_.load()) return false;
      if (body.size() + n > static_cast<size_t>(settings_.max_body_bytes)) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (stop_.load()) return false;
    status = res ? res->status : 0;
    if (!res) {
      const auto err = res.error();
      const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count();
      if (too_large) {
        counters_.too_large.fetch_add(1);
        failure = "body larger than max_body (" + std::to_string(settings_.max_body_bytes) + " bytes)";
        give_up = true;
      } else if (err == httplib::Error::ConnectionTimeout ||
                 (err == httplib::Error::Read && elapsed >= settings_.timeout_micros * 9 / 10)) {
        counters_.timeout.fetch_add(1);
        failure = "timeout (" + FormatMicros(settings_.timeout_micros) + ")";
      } else {
        counters_.connection.fetch_add(1);
        // A certificate that does not verify will not verify on a retry either.
        give_up = err == httplib::Error::SSLServerVerification ||
                  err == httplib::Error::SSLLoadingCerts;
        out->permanent = give_up;
        if (err == httplib::Error::Connection) {
          failure = "cannot connect";
        } else if (give_up || err == httplib::Error::SSLConnection) {
          failure = "TLS: " + httplib::to_string(err);
        } else {
          failure = "connection: " + httplib::to_string(err);
        }
      }
      continue;
    }
    if (status >= 200 && status < 300) {
      std::vector<std::string> records;
      Status parsed = ExtractJsonRecords(body, settings_.records, &records);
      if (parsed.ok()) {
        out->records = std::move(records);
        return true;
      }
      counters_.invalid_body.fetch_add(1);
      failure = parsed.message();
      give_up = true;
      continue;
    }
    failure = "HTTP " + std::to_string(status);
    if (status >= 500) {
      counters_.http_5xx.fetch_add(1);
    } else if (status == 429) {
      counters_.http_429.fetch_add(1);
    } else {
      counters_.http_4xx.fetch_add(1);
      give_up = true;
      out->permanent = status == 401 || status == 403 || status == 404;
    }
  }
  out->dead = true;
  out->reason = "http: " + failure;
  if (attempts > 1) out->reason += " after " + std::to_string(attempts) + " attempts";
  std::string& p = out->payload;
  p = "{\"url\":";
  AppendJsonString(settings_.base + target, &p);
  p += ",\"page\":" + std::to_string(page) + ",\"attempts\":" + std::to_string(attempts);
  p += ",\"status\":" + (status > 0 ? std::to_string(status) : std::string("null"));
  p += ",\"error\":";
  AppendJsonString(failure, &p);
  p += ",\"body\":";
  AppendJsonString(BodyExcerpt(body, kExcerptBytes), &p);
  p += "}";
  counters_.dead_lettered_pages.fetch_add(1);
  spdlog::warn("http source: page {} of {} dead-lettered: {}", page, settings_.base + settings_.path,
               out->reason);
  return true;
}

void HttpSource::FetchLoop() {
  const bool paging = !settings_.page_param.empty();
  int64_t page = start_page_;
  int64_t received = start_received_;  // records received before `page`, committed ones included
  bool short_page_logged = false;
  auto next_request = std::chrono::steady_clock::now();
  auto finish = [&](bool final_end) {
    end_is_final_.store(final_end);
    std::lock_guard<std::mutex> lock(mu_);
    fetch_done_ = true;
    cv_.notify_all();
  };
  while (!stop_.load()) {
    if (Finished(page, received)) {
      finish(true);
      return;
    }
    Page result;
    if (first_ && first_->retry_from == 0) {  // requested by Open
      result = std::move(*first_);
      first_.reset();
      next_request = first_requested_ + std::chrono::microseconds(settings_.interval_micros);
    } else if (first_) {  // Open's attempt failed transiently: its retries follow
      const int retry_from = first_->retry_from;
      first_.reset();
      next_request = first_requested_ + std::chrono::microseconds(settings_.interval_micros);
      if (!Fetch(page, &result, retry_from)) break;
    } else {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_.load() || ready_.size() < kMaxReadyPages; });
      }
      if (!SleepUntil(next_request)) break;
      next_request = std::chrono::steady_clock::now() + std::chrono::microseconds(settings_.interval_micros);
      if (!Fetch(page, &result)) break;
    }
    if (!result.dead && result.records.empty()) {
      // Caught up: ask for the same page again after the interval.
      if (until_caught_up_) {
        finish(false);
        return;
      }
      if (!paging) ++page;
      continue;
    }
    if (!result.dead) {
      const auto size = static_cast<int64_t>(result.records.size());
      // Many APIs cap their page size: a short page is their page size, not the end.
      if (paging && settings_.page_size > 0 && size < settings_.page_size && !short_page_logged) {
        short_page_logged = true;
        spdlog::info("http source: page {} of {} held {} records where page_size = {} asked for "
                     "more; taken as the API's page size, reading on", page,
                     settings_.base + settings_.path, size, settings_.page_size);
      }
      if (settings_.count >= 0 && received + size > settings_.count) {
        result.records.resize(static_cast<size_t>(settings_.count - received));
      }
      received += static_cast<int64_t>(result.records.size());
      counters_.pages.fetch_add(1);
      counters_.records.fetch_add(static_cast<int64_t>(result.records.size()));
    }
    result.received_after = received;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(result));
      cv_.notify_all();
    }
    ++page;
  }
  std::lock_guard<std::mutex> lock(mu_);
  fetch_done_ = true;
  cv_.notify_all();
}

Result<PollState> HttpSource::Poll(RawBatch* out, size_t max_records,
                                   std::chrono::milliseconds budget) {
  batch_next_page_ = -1;
  std::deque<Page> pages;
  bool done = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, budget, [&] { return !ready_.empty() || fetch_done_; });
    size_t taken = 0;
    while (!ready_.empty() && (pages.empty() || taken + ready_.front().records.size() <= max_records)) {
      taken += ready_.front().records.size();
      pages.push_back(std::move(ready_.front()));
      ready_.pop_front();
    }
    done = fetch_done_ && ready_.empty();
    cv_.notify_all();
  }
  for (Page& p : pages) {
    if (p.dead) {
      out->AddDeadLetter(SourceDeadLetter{std::move(p.reason), std::move(p.payload), 0, p.page});
    } else {
      for (const std::string& r : p.records) {
        RawRecord& rec = out->Append(r);
        rec.partition = 0;
        rec.offset = p.page;
        rec.next_offset = p.page + 1;
      }
    }
    batch_next_page_ = p.page + 1;
    batch_received_ = p.received_after;
  }
  if (!pages.empty()) return PollState::kData;
  return done ? PollState::kEnd : PollState::kIdle;
}

void HttpSource::Close() {
  if (!fetcher_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    cv_.notify_all();
  }
  if (client_) client_->stop();
  fetcher_.join();
  spdlog::info("http source {}: {}", settings_.base + settings_.path, counters_.ToString());
}

}  // namespace sluice
