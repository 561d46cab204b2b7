#include "connectors/http/http_source.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>
#include <simdjson.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>
#include <set>

#include "core/tests/ci_rule.h"
#include "connectors/http/fake_api.h"

namespace sluice {
namespace {

TEST(ExtractJsonRecords, ArrayAtPath) {
  std::vector<std::string> out;
  ASSERT_TRUE(ExtractJsonRecords(R"({"results": [{"a": 1}, {"b": [2, 3]}], "info": {}})", "results", &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], R"({"a":1})");
  EXPECT_EQ(out[1], R"({"b":[2,3]})");
}

TEST(ExtractJsonRecords, NestedPathAndIndex) {
  std::vector<std::string> out;
  const std::string body = R"({"data": {"pages": [{"items": [1, "x"]}, {"items": []}]}})";
  ASSERT_TRUE(ExtractJsonRecords(body, "data.pages.0.items", &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{"1", "\"x\""}));
  out.clear();
  ASSERT_TRUE(ExtractJsonRecords(body, "data.pages.1.items", &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(ExtractJsonRecords, BodyIsArrayOrOneRecord) {
  std::vector<std::string> out;
  ASSERT_TRUE(ExtractJsonRecords(R"([{"id": 1}, {"id": 2}])", "", &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{R"({"id":1})", R"({"id":2})"}));
  out.clear();
  ASSERT_TRUE(ExtractJsonRecords(R"( {"id": "é"} )", "", &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{R"({"id":"é"})"}));
}

TEST(ExtractJsonRecords, Failures) {
  std::vector<std::string> out;
  Status s = ExtractJsonRecords(R"({"results": [{"a": 1}, )", "results", &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("invalid JSON"), std::string::npos) << s.message();
  s = ExtractJsonRecords(R"({"data": {"x": []}})", "data.results", &out);
  EXPECT_EQ(s.message(), "no 'data.results' in the body");
  s = ExtractJsonRecords(R"({"results": {"a": 1}})", "results", &out);
  EXPECT_EQ(s.message(), "'results' is not an array");
  s = ExtractJsonRecords(R"("just a string")", "", &out);
  EXPECT_EQ(s.message(), "'the body' is not an array");
  s = ExtractJsonRecords(R"([1, 2])", "5", &out);
  EXPECT_EQ(s.message(), "no '5' in the body");
  s = ExtractJsonRecords("", "", &out);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(out.empty());
}

TEST(Backoff, DoublesWithEqualJitterAndCaps) {
  // base 100 ms, cap 1 s: nominal delays 100, 200, 400, 800, 1000, 1000 ms; half fixed, half jitter.
  const int64_t base = 100'000, cap = 1'000'000;
  const int64_t nominal[] = {100'000, 200'000, 400'000, 800'000, 1'000'000, 1'000'000};
  for (int retry = 0; retry < 6; ++retry) {
    EXPECT_EQ(BackoffDelayMicros(base, cap, retry, 0.0), nominal[retry] / 2) << retry;
    EXPECT_EQ(BackoffDelayMicros(base, cap, retry, 0.5), nominal[retry] * 3 / 4) << retry;
    EXPECT_LE(BackoffDelayMicros(base, cap, retry, 0.999999), nominal[retry]) << retry;
    EXPECT_GE(BackoffDelayMicros(base, cap, retry, 0.999999), nominal[retry] * 99 / 100) << retry;
  }
  EXPECT_EQ(BackoffDelayMicros(base, cap, 60, 0.0), 500'000);  // no overflow far out
  EXPECT_EQ(BackoffDelayMicros(0, cap, 3, 0.7), 0);
}

TEST(BodyExcerpt, CutsAtCharacterBoundary) {
  EXPECT_EQ(BodyExcerpt("short", 10), "short");
  EXPECT_EQ(BodyExcerpt("abcdef", 3), "abc...");
  // "é" is two bytes: a cut inside it backs up before it.
  EXPECT_EQ(BodyExcerpt("ab\xC3\xA9z", 3), "ab...");
}

Options MakeOptions(const std::map<std::string, std::string>& kv) {
  Options o;
  for (const auto& [k, v] : kv) o.Set(k, {v, {}});
  return o;
}

TEST(HttpSourceSettings, ParsesUriAndOptions) {
  auto s = ParseHttpSourceSettings("http://127.0.0.1:8080/api/?nat=us",
                                   MakeOptions({{"records", "results"}, {"interval", "250ms"},
                                                {"page_size", "50"}, {"seed", "a b"}}));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->base, "http://127.0.0.1:8080");
  EXPECT_EQ(s->path, "/api/?nat=us");
  EXPECT_EQ(s->interval_micros, 250'000);
  EXPECT_EQ(s->records, "results");
  s = ParseHttpSourceSettings("https://example.com", MakeOptions({}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->base, "https://example.com");
  EXPECT_EQ(s->path, "/");
  EXPECT_FALSE(ParseHttpSourceSettings("http://", MakeOptions({})).ok());
  // count counts the records received, so it needs no page_size.
  auto counted = ParseHttpSourceSettings("http://h/api", MakeOptions({{"count", "10"}}));
  ASSERT_TRUE(counted.ok()) << counted.status().message();
  EXPECT_EQ(counted->count, 10);
  EXPECT_FALSE(ParseHttpSourceSettings("http://h/", MakeOptions({{"retries", "-1"}})).ok());
  EXPECT_FALSE(ParseHttpSourceSettings("http://h/", MakeOptions({{"timeout", "soon"}})).ok());
  EXPECT_FALSE(ParseHttpSourceSettings("http://h/", MakeOptions({{"format", "csv"}})).ok());
}

// --- the fake API ---------------------------------------------------------------------------

TEST(FakeApi, SamePageIsByteIdenticalOtherPagesDiffer) {
  const std::string a = RenderFakeUsersPage("abc", 3, 50);
  EXPECT_EQ(a, RenderFakeUsersPage("abc", 3, 50));
  EXPECT_NE(a, RenderFakeUsersPage("abc", 4, 50));
  EXPECT_NE(a, RenderFakeUsersPage("abd", 3, 50));
  // A smaller page is a prefix of the same page's users.
  std::vector<std::string> big, small;
  ASSERT_TRUE(ExtractJsonRecords(a, "results", &big).ok());
  ASSERT_TRUE(ExtractJsonRecords(RenderFakeUsersPage("abc", 3, 10), "results", &small).ok());
  ASSERT_EQ(small.size(), 10u);
  for (size_t i = 0; i < small.size(); ++i) EXPECT_EQ(small[i], big[i]);
}

TEST(FakeApi, SchemaIsRandomuserShaped) {
  const std::string body = RenderFakeUsersPage("schema", 2, 400);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_FALSE(parser.parse(body).get(root));
  simdjson::dom::element info = root["info"];
  EXPECT_EQ(std::string(info["seed"].get_string().value()), "schema");
  EXPECT_EQ(info["results"].get_int64().value(), 400);
  EXPECT_EQ(info["page"].get_int64().value(), 2);
  EXPECT_EQ(std::string(info["version"].get_string().value()), "1.4");
  int numeric_postcodes = 0, string_postcodes = 0, null_ids = 0;
  std::set<std::string> genders;
  for (simdjson::dom::element u : root["results"].get_array()) {
    genders.insert(std::string(u["gender"].get_string().value()));
    for (const char* k : {"title", "first", "last"}) EXPECT_TRUE(u["name"][k].is_string()) << k;
    simdjson::dom::element loc = u["location"];
    EXPECT_TRUE(loc["street"]["number"].is_int64());
    EXPECT_TRUE(loc["street"]["name"].is_string());
    for (const char* k : {"city", "state", "country"}) EXPECT_TRUE(loc[k].is_string()) << k;
    if (loc["postcode"].is_int64()) ++numeric_postcodes;
    if (loc["postcode"].is_string()) ++string_postcodes;
    EXPECT_TRUE(u["email"].is_string());
    std::string uuid(u["login"]["uuid"].get_string().value());
    EXPECT_EQ(uuid.size(), 36u);
    EXPECT_EQ(uuid[14], '4');
    for (const char* k : {"username", "password", "salt", "md5", "sha1", "sha256"}) {
      EXPECT_TRUE(u["login"][k].is_string()) << k;
    }
    EXPECT_EQ(std::string(u["login"]["sha256"].get_string().value()).size(), 64u);
    for (const char* k : {"dob", "registered"}) {
      std::string date(u[k]["date"].get_string().value());
      EXPECT_EQ(date.size(), 24u) << date;  // 1993-07-20T09:44:18.674Z
      EXPECT_EQ(date.back(), 'Z');
      EXPECT_TRUE(u[k]["age"].is_int64());
    }
    int64_t age = u["dob"]["age"].get_int64().value();
    EXPECT_GE(age, 22);
    EXPECT_LE(age, 81);
    EXPECT_TRUE(u["phone"].is_string());
    EXPECT_TRUE(u["cell"].is_string());
    if (u["id"]["value"].is_null()) ++null_ids;
    for (const char* k : {"large", "medium", "thumbnail"}) EXPECT_TRUE(u["picture"][k].is_string());
    EXPECT_EQ(std::string(u["nat"].get_string().value()).size(), 2u);
  }
  EXPECT_EQ(genders, (std::set<std::string>{"female", "male"}));
  EXPECT_GT(numeric_postcodes, 0);
  EXPECT_GT(string_postcodes, 0);
  EXPECT_GT(null_ids, 0);
}

TEST(FakeApi, UuidsAreUniqueAcrossPages) {
  std::set<std::string> uuids;
  size_t total = 0;
  simdjson::dom::parser parser;
  for (int page = 1; page <= 10; ++page) {
    const std::string body = RenderFakeUsersPage("uniq", page, 300);
    simdjson::dom::element root;
    ASSERT_FALSE(parser.parse(body).get(root));
    for (simdjson::dom::element u : root["results"].get_array()) {
      uuids.insert(std::string(u["login"]["uuid"].get_string().value()));
      ++total;
    }
  }
  EXPECT_EQ(total, 3000u);
  EXPECT_EQ(uuids.size(), total);
}

TEST(FakeApi, FaultsAreDeterministicAtTheConfiguredRate) {
  FakeApiOptions o;
  EXPECT_EQ(FakeFaultFor(o, "s", 1), FakeFault::kNone);
  o.error_rate = 1;
  o.errors = {FakeFault::kMalformed};
  EXPECT_EQ(FakeFaultFor(o, "s", 1), FakeFault::kMalformed);
  o.error_rate = 0.3;
  o.errors = {FakeFault::k5xx, FakeFault::kTimeout, FakeFault::kMalformed};
  std::map<FakeFault, int> kinds;
  for (int page = 1; page <= 3000; ++page) {
    FakeFault f = FakeFaultFor(o, "seed", page);
    EXPECT_EQ(f, FakeFaultFor(o, "seed", page));
    ++kinds[f];
  }
  EXPECT_NEAR(kinds[FakeFault::kNone] / 3000.0, 0.7, 0.04);
  EXPECT_GT(kinds[FakeFault::k5xx], 200);
  EXPECT_GT(kinds[FakeFault::kTimeout], 200);
  EXPECT_GT(kinds[FakeFault::kMalformed], 200);
}

TEST(FakeApi, RequestHandling) {
  FakeApiOptions o;
  std::multimap<std::string, std::string> params{{"results", "7"}, {"seed", "x"}, {"page", "2"}};
  FakeApiResponse r = HandleFakeApiRequest(o, "/api/", params, nullptr);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, RenderFakeUsersPage("x", 2, 7));
  EXPECT_EQ(HandleFakeApiRequest(o, "/", params, nullptr).body, r.body);
  EXPECT_EQ(HandleFakeApiRequest(o, "/nope", params, nullptr).status, 404);
  EXPECT_EQ(HandleFakeApiRequest(o, "/api/", {{"results", "many"}}, nullptr).status, 400);
  EXPECT_EQ(HandleFakeApiRequest(o, "/api/", {{"page", "-1"}}, nullptr).status, 400);
  // Defaults: one result, page 1, the server's seed; results capped at 5000.
  EXPECT_EQ(HandleFakeApiRequest(o, "/api", {}, nullptr).body, RenderFakeUsersPage("sluice", 1, 1));
  std::vector<std::string> out;
  ASSERT_TRUE(ExtractJsonRecords(HandleFakeApiRequest(o, "/api/", {{"results", "9999"}}, nullptr).body,
                                 "results", &out).ok());
  EXPECT_EQ(out.size(), 5000u);

  o.error_rate = 1;
  o.errors = {FakeFault::kMalformed};
  r = HandleFakeApiRequest(o, "/api/", params, nullptr);
  EXPECT_EQ(r.status, 200);
  out.clear();
  EXPECT_FALSE(ExtractJsonRecords(r.body, "results", &out).ok());
  o.errors = {FakeFault::k5xx};
  r = HandleFakeApiRequest(o, "/api/", params, nullptr);
  EXPECT_GE(r.status, 500);
  o.errors = {FakeFault::kTimeout};
  o.hang_ms = 1234;
  r = HandleFakeApiRequest(o, "/api/", params, nullptr);
  EXPECT_EQ(r.hang_ms, 1234);
  EXPECT_EQ(r.body, RenderFakeUsersPage("x", 2, 7));
  // fail_times = 2: the first two requests of a page fail, the third answers.
  o.errors = {FakeFault::k5xx};
  o.fail_times = 2;
  int seen = 0;
  auto attempt = [&](const std::string&, int64_t) { return seen++; };
  EXPECT_GE(HandleFakeApiRequest(o, "/api/", params, attempt).status, 500);
  EXPECT_GE(HandleFakeApiRequest(o, "/api/", params, attempt).status, 500);
  EXPECT_EQ(HandleFakeApiRequest(o, "/api/", params, attempt).status, 200);
}

// --- the source against a real fake-api server ------------------------------------------------

struct Drained {
  std::vector<std::pair<int64_t, std::string>> records;  // (offset, payload)
  std::vector<SourceDeadLetter> dead;
  int64_t last_position = -1;  // partition 0: the next page
  int64_t last_received = -1;  // partition 1: records received before it
  PollState last_state = PollState::kIdle;
  Status open;  // what Open returned
};

/// Opens the source as a restart would, with the sink's committed positions by partition.
Drained Drain(HttpSource& src, std::map<int32_t, int64_t> committed = {}) {
  SourceContext ctx;
  ctx.committed_position = [committed](int32_t p) -> std::optional<int64_t> {
    auto it = committed.find(p);
    if (it == committed.end()) return std::nullopt;
    return it->second;
  };
  Drained d;
  d.open = src.Open(ctx);
  if (!d.open.ok()) return d;
  RawBatch batch;
  for (int polls = 0; polls < 2000; ++polls) {
    batch.Clear();
    auto st = src.Poll(&batch, 100, std::chrono::milliseconds(50));
    EXPECT_TRUE(st.ok());
    for (size_t i = 0; i < batch.size(); ++i) {
      EXPECT_EQ(batch.record(i).next_offset, batch.record(i).offset + 1);
      d.records.emplace_back(batch.record(i).offset, std::string(batch.payload(i)));
    }
    for (const auto& l : batch.dead_letters()) d.dead.push_back(l);
    for (const auto& [p, o] : src.PositionsAfterBatch()) (p == 0 ? d.last_position : d.last_received) = o;
    d.last_state = *st;
    if (*st == PollState::kEnd) break;
  }
  src.Close();
  return d;
}

HttpSourceSettings SettingsFor(int port, int64_t pages, int64_t page_size) {
  auto s = ParseHttpSourceSettings(
      "http://127.0.0.1:" + std::to_string(port) + "/api/",
      MakeOptions({{"records", "results"}, {"interval", "0s"}, {"timeout", "500ms"},
                   {"retries", "2"}, {"backoff", "10ms"}, {"backoff_max", "40ms"},
                   {"pages", std::to_string(pages)}, {"page_size", std::to_string(page_size)},
                   {"seed", "gtest"}}));
  EXPECT_TRUE(s.ok());
  return *s;
}

TEST(HttpSourceLive, GoodPagesOnceFailedPagesDeadLettered) {
  FakeApiOptions o;
  o.error_rate = 0.35;
  o.hang_ms = 1500;
  auto server = FakeApiServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const int pages = 12, size = 5;
  HttpSource src(SettingsFor((*server)->port(), pages, size));
  Drained d = Drain(src);

  std::vector<std::pair<int64_t, std::string>> expected;
  std::map<int64_t, FakeFault> faults;
  for (int page = 1; page <= pages; ++page) {
    FakeFault f = FakeFaultFor(o, "gtest", page);
    if (f != FakeFault::kNone) {
      faults[page] = f;
      continue;
    }
    std::vector<std::string> recs;
    ASSERT_TRUE(ExtractJsonRecords(RenderFakeUsersPage("gtest", page, size), "results", &recs).ok());
    for (auto& r : recs) expected.emplace_back(page, r);
  }
  ASSERT_FALSE(faults.empty()) << "the seed should give some failing pages";
  EXPECT_EQ(d.records, expected);
  ASSERT_EQ(d.dead.size(), faults.size());
  int64_t retried = 0;
  for (const auto& l : d.dead) {
    ASSERT_TRUE(faults.count(l.offset)) << l.offset;
    switch (faults[l.offset]) {
      case FakeFault::k5xx:
        EXPECT_NE(l.reason.find("HTTP 50"), std::string::npos) << l.reason;
        EXPECT_NE(l.reason.find("after 3 attempts"), std::string::npos) << l.reason;
        EXPECT_NE(l.payload.find("Uh oh"), std::string::npos) << l.payload;
        retried += 2;
        break;
      case FakeFault::kTimeout:
        EXPECT_NE(l.reason.find("timeout (500ms) after 3 attempts"), std::string::npos) << l.reason;
        retried += 2;
        break;
      case FakeFault::kMalformed:
        EXPECT_NE(l.reason.find("invalid JSON"), std::string::npos) << l.reason;
        EXPECT_EQ(l.reason.find("attempts"), std::string::npos) << l.reason;
        break;
      case FakeFault::kNone:
        break;
    }
    EXPECT_NE(l.payload.find("\"page\":" + std::to_string(l.offset)), std::string::npos);
  }
  EXPECT_EQ(d.last_position, pages + 1);
  const HttpSourceCounters& c = src.counters();
  EXPECT_EQ(c.retries.load(), retried);
  EXPECT_EQ(c.requests.load(), pages + retried);
  EXPECT_EQ(c.dead_lettered_pages.load(), static_cast<int64_t>(faults.size()));
  EXPECT_EQ(c.records.load(), static_cast<int64_t>(expected.size()));
  (*server)->Stop();
}

TEST(HttpSourceLive, ResumesAtCommittedPageAndRetriesTransientFailures) {
  FakeApiOptions o;
  o.error_rate = 0.5;
  o.errors = {FakeFault::k5xx};
  o.fail_times = 1;  // every failing page answers on its second request
  auto server = FakeApiServer::Start(o);
  ASSERT_TRUE(server.ok());
  HttpSource src(SettingsFor((*server)->port(), 8, 3));
  Drained d = Drain(src, {{0, 5}, {1, 12}});
  ASSERT_EQ(d.records.size(), 4u * 3);  // pages 5..8
  EXPECT_EQ(d.records.front().first, 5);
  EXPECT_TRUE(d.dead.empty());
  int failing = 0;
  for (int page = 5; page <= 8; ++page) failing += FakeFaultFor(o, "gtest", page) != FakeFault::kNone;
  EXPECT_EQ(src.counters().retries.load(), failing);
  EXPECT_EQ(src.counters().http_5xx.load(), failing);
  (*server)->Stop();
}

TEST(HttpSourceLive, ClientErrorsAreNotRetriedAndConnectionErrorsAre) {
  auto server = FakeApiServer::Start(FakeApiOptions{});
  ASSERT_TRUE(server.ok());
  auto s = SettingsFor((*server)->port(), 4, 1);
  s.path = "/missing";
  // A 404 on a fresh start: the URL is wrong, and no retry or next page will fix it.
  HttpSource fresh(s);
  Drained d = Drain(fresh);
  EXPECT_EQ(d.open.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.open.message().find("HTTP 404: the URL does not exist"), std::string::npos)
      << d.open.message();
  EXPECT_EQ(fresh.counters().requests.load(), 1);
  EXPECT_EQ(fresh.counters().http_4xx.load(), 1);
  // After a committed page a 404 may be past the API's end: dead-lettered, page by page.
  HttpSource src(s);
  d = Drain(src, {{0, 3}, {1, 2}});
  ASSERT_TRUE(d.open.ok()) << d.open.message();
  EXPECT_TRUE(d.records.empty());
  ASSERT_EQ(d.dead.size(), 2u);
  EXPECT_EQ(d.dead[0].reason, "http: HTTP 404");
  EXPECT_EQ(src.counters().requests.load(), 2);
  EXPECT_EQ(src.counters().http_4xx.load(), 2);
  const int port = (*server)->port();
  (*server)->Stop();

  // Nothing listens any more: every attempt fails to connect, then the page is dead-lettered.
  HttpSource gone(SettingsFor(port, 1, 1));
  d = Drain(gone);
  ASSERT_EQ(d.dead.size(), 1u);
  EXPECT_EQ(d.dead[0].reason, "http: cannot connect after 3 attempts");
  EXPECT_EQ(gone.counters().requests.load(), 3);
  EXPECT_EQ(gone.counters().connection.load(), 3);
}

TEST(HttpSourceLive, CountTruncatesTheLastPage) {
  auto server = FakeApiServer::Start(FakeApiOptions{});
  ASSERT_TRUE(server.ok());
  auto s = SettingsFor((*server)->port(), -1, 4);
  s.count = 10;
  HttpSource src(s);
  Drained d = Drain(src);
  ASSERT_EQ(d.records.size(), 10u);
  EXPECT_EQ(d.records.back().first, 3);  // pages 1, 2 whole; 2 records of page 3
  EXPECT_EQ(d.last_position, 4);
  EXPECT_EQ(d.last_received, 10);
  // From committed page 3 with 8 records received, only the 2 remaining records come.
  HttpSource again(s);
  d = Drain(again, {{0, 3}, {1, 8}});
  EXPECT_EQ(d.records.size(), 2u);
  // A checkpoint from before the record count was committed (partition 0 only): the pages
  // before were full, as that version assumed.
  HttpSource old_checkpoint(s);
  d = Drain(old_checkpoint, {{0, 3}});
  EXPECT_EQ(d.records.size(), 2u);
  (*server)->Stop();
}

TEST(FakeApi, MaxResultsCapsThePageSize) {
  FakeApiOptions o;
  o.max_results = 40;
  std::multimap<std::string, std::string> params = {{"results", "200"}, {"seed", "cap"}, {"page", "3"}};
  FakeApiResponse r = HandleFakeApiRequest(o, "/api/", params, nullptr);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, RenderFakeUsersPage("cap", 3, 40));
  params = {{"results", "7"}, {"seed", "cap"}, {"page", "3"}};
  EXPECT_EQ(HandleFakeApiRequest(o, "/api/", params, nullptr).body, RenderFakeUsersPage("cap", 3, 7));
}

/// The records the fake API serves for pages first..last at `per_page` users per page.
std::vector<std::pair<int64_t, std::string>> FakePages(const std::string& seed, int64_t first,
                                                       int64_t last, int per_page) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (int64_t page = first; page <= last; ++page) {
    std::vector<std::string> recs;
    EXPECT_TRUE(ExtractJsonRecords(RenderFakeUsersPage(seed, page, per_page), "results", &recs).ok());
    for (auto& r : recs) out.emplace_back(page, r);
  }
  return out;
}

// Issue 13: an API that serves fewer records per page than asked (asked 200, got 40) ended the
// run after its first page, since count assumed page_size records per page.
TEST(HttpSourceLive, CountCountsRecordsReceivedWhenTheApiCapsItsPageSize) {
  FakeApiOptions o;
  o.max_results = 40;
  auto server = FakeApiServer::Start(o);
  ASSERT_TRUE(server.ok());
  auto s = SettingsFor((*server)->port(), -1, 200);
  s.count = 200;
  HttpSource src(s);
  Drained d = Drain(src);
  EXPECT_EQ(d.records, FakePages("gtest", 1, 5, 40));  // 5 short pages, none taken as the end
  EXPECT_EQ(d.last_position, 6);
  EXPECT_EQ(d.last_received, 200);
  EXPECT_EQ(d.last_state, PollState::kEnd);
  EXPECT_EQ(src.counters().requests.load(), 5);

  // A restart in the middle resumes the page cursor: page 3, 80 records received.
  HttpSource resumed(s);
  d = Drain(resumed, {{0, 3}, {1, 80}});
  EXPECT_EQ(d.records, FakePages("gtest", 3, 5, 40));
  EXPECT_EQ(d.last_received, 200);

  // A count that ends inside a page: 130 = 3 pages and 10 records of page 4.
  s.count = 130;
  HttpSource partial(s);
  d = Drain(partial);
  auto expected = FakePages("gtest", 1, 4, 40);
  expected.resize(130);
  EXPECT_EQ(d.records, expected);
  EXPECT_EQ(d.last_position, 5);
  EXPECT_EQ(d.last_received, 130);

  // Restarted after everything was committed: nothing more, the run ends.
  HttpSource done(s);
  d = Drain(done, {{0, 5}, {1, 130}});
  EXPECT_TRUE(d.records.empty());
  EXPECT_EQ(d.last_state, PollState::kEnd);
  EXPECT_EQ(done.counters().requests.load(), 0);
  (*server)->Stop();
}

// Issue 14: a permanent error fails at start (exit 2 from the command line), a transient one
// is retried with backoff and counted.
TEST(HttpSourceLive, PermanentErrorsFailAtStartTransientOnesAreRetried) {
  httplib::Server server;
  std::atomic<int> hits{0};
  server.Get(R"(/(\d+)/)", [&](const httplib::Request& req, httplib::Response& res) {
    ++hits;
    res.status = std::stoi(req.matches[1]);
    res.set_content("{\"error\":\"no\"}", "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread listener([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (const char* code : {"401", "403"}) {
    auto settings = SettingsFor(port, 3, 2);
    settings.path = std::string("/") + code + "/";
    HttpSource src(settings);
    hits = 0;
    // Also after a committed page: credentials refused stay refused.
    Drained d = Drain(src, {{0, 2}, {1, 2}});
    EXPECT_EQ(d.open.code(), StatusCode::kInvalidArgument) << code;
    EXPECT_NE(d.open.message().find(std::string("HTTP ") + code + ": the credentials were refused; not retried"),
              std::string::npos) << d.open.message();
    EXPECT_EQ(hits.load(), 1) << code;  // no retry
    EXPECT_EQ(src.counters().http_4xx.load(), 1);
  }
  // 503 at start: retried with backoff (counted), then the page is dead-lettered and the run
  // goes on; nothing fails at start.
  auto settings = SettingsFor(port, 1, 2);
  settings.path = "/503/";
  HttpSource busy(settings);
  hits = 0;
  Drained d = Drain(busy);
  ASSERT_TRUE(d.open.ok()) << d.open.message();
  EXPECT_EQ(hits.load(), 3);
  EXPECT_EQ(busy.counters().retries.load(), 2);
  EXPECT_EQ(busy.counters().http_5xx.load(), 3);
  ASSERT_EQ(d.dead.size(), 1u);
  EXPECT_EQ(d.dead[0].reason, "http: HTTP 503 after 3 attempts");
  server.stop();
  listener.join();

  // Transient failures that pass: every page fails twice, then answers; all records arrive.
  FakeApiOptions o;
  o.error_rate = 1;
  o.errors = {FakeFault::k5xx};
  o.fail_times = 2;
  auto fake = FakeApiServer::Start(o);
  ASSERT_TRUE(fake.ok());
  HttpSource flaky(SettingsFor((*fake)->port(), 3, 2));
  d = Drain(flaky);
  ASSERT_TRUE(d.open.ok()) << d.open.message();
  EXPECT_EQ(d.records, FakePages("gtest", 1, 3, 2));
  EXPECT_TRUE(d.dead.empty());
  EXPECT_EQ(flaky.counters().retries.load(), 6);
  EXPECT_EQ(flaky.counters().http_5xx.load(), 6);
  EXPECT_EQ(flaky.counters().requests.load(), 9);
  (*fake)->Stop();
}

// Open makes one attempt: the retries of a transient failure are the fetch thread's, which
// Close() interrupts, so a signal ends a run at once even while the API is down at start.
TEST(HttpSourceLive, OpenMakesOneAttemptAndCloseInterruptsTheRetries) {
  auto server = FakeApiServer::Start(FakeApiOptions{});
  ASSERT_TRUE(server.ok());
  const int port = (*server)->port();
  (*server)->Stop();  // nothing listens there any more
  auto s = SettingsFor(port, 3, 2);
  s.backoff_micros = 5'000'000;
  s.backoff_max_micros = 5'000'000;
  HttpSource src(s);
  SourceContext ctx;
  ctx.committed_position = [](int32_t) -> std::optional<int64_t> { return std::nullopt; };
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(src.Open(ctx).ok());
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  EXPECT_EQ(src.counters().requests.load(), 1);
  EXPECT_EQ(src.counters().connection.load(), 1);
  const auto closing = std::chrono::steady_clock::now();
  src.Close();
  EXPECT_LT(std::chrono::steady_clock::now() - closing, std::chrono::seconds(1));
  EXPECT_EQ(src.counters().requests.load(), 1);  // the first retry waits at least 2.5 s
}

// https: a server with a self-signed certificate (made by the openssl tool) is trusted through
// ca_file or insecure, and otherwise fails the run at start, without retry.
TEST(HttpSourceLive, HttpsVerifiesTheServerCertificate) {
  const std::string dir = ::testing::TempDir() + "sluice-https-" + std::to_string(::getpid());
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  const std::string cmd = "mkdir -p " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
                          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + key +
                          " -out " + cert + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    SLUICE_SKIP_OR_FAIL(std::string("no openssl tool to make a certificate (scripts/install-deps.sh installs it)"));
  }
  httplib::SSLServer server(cert.c_str(), key.c_str());
  ASSERT_TRUE(server.is_valid());
  server.Get("/api/", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(RenderFakeUsersPage("tls", std::stoll(req.get_param_value("page")), 2),
                    "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread listener([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto settings = SettingsFor(port, 2, 2);
  settings.base = "https://127.0.0.1:" + std::to_string(port);

  // A certificate that does not verify will not verify on a retry: the run fails at start.
  HttpSource untrusted(settings);
  Drained d = Drain(untrusted);
  EXPECT_EQ(d.open.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.open.message().find("TLS: SSLServerVerification: the server's certificate does not verify"),
            std::string::npos) << d.open.message();
  EXPECT_EQ(untrusted.counters().requests.load(), 1);
  EXPECT_EQ(untrusted.counters().retries.load(), 0);

  settings.ca_file = cert;
  HttpSource trusted(settings);
  d = Drain(trusted);
  EXPECT_EQ(d.records.size(), 4u);
  EXPECT_TRUE(d.dead.empty());

  settings.ca_file.clear();
  settings.insecure = true;
  HttpSource insecure(settings);
  d = Drain(insecure);
  EXPECT_EQ(d.records.size(), 4u);

  server.stop();
  listener.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice
