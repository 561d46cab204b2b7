#include "http/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <simdjson.h>

#include <atomic>
#include <mutex>

#include "http/assets.h"

namespace sluice::http {
namespace {

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_.pipeline = "demo";
    snapshot_.state = "running";
    snapshot_.workers = 1;
    snapshot_.records_in = 42;
  }

  std::unique_ptr<HttpServer> Start(const ListenAddress& address = {"127.0.0.1", 0}) {
    ServerContext ctx;
    ctx.info = {"demo", "src", "events", "0.1.0", 1'000'000};
    ctx.snapshot = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      ++snapshots_;
      return snapshot_;
    };
    auto s = HttpServer::Start(address, std::move(ctx));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::mutex mu_;
  PipelineSnapshot snapshot_;
  int snapshots_ = 0;
};

TEST_F(HttpServerTest, ServesEveryEndpoint) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  httplib::Client c("127.0.0.1", server->port());

  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");

  r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r->body.find("sluice_source_records_total{pipeline=\"demo\",source=\"src\"} 42\n"),
            std::string::npos);

  r = c.Get("/api/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_NE(r->body.find("\"records_in\":42"), std::string::npos);

  r = c.Get("/api/results");  // no view given
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("/app.js"), std::string::npos);
  for (const char* path : {"/app.js", "/style.css"}) {
    r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body, FindAsset(path)->body) << path;
  }
  r = c.Get("/nothing-here");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST_F(HttpServerTest, ReadyzFollowsTheState) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  httplib::Client c("127.0.0.1", server->port());
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_.state = "draining";
  }
  auto r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not ready: pipeline is draining\n");
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_.state = "running";
    snapshot_.sink_healthy = false;
  }
  r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
}

TEST_F(HttpServerTest, ABusyPortIsAnError) {
  auto first = Start();
  ASSERT_NE(first, nullptr);
  ServerContext ctx;
  ctx.snapshot = [] { return PipelineSnapshot(); };
  auto second = HttpServer::Start({"127.0.0.1", first->port()}, std::move(ctx));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

TEST_F(HttpServerTest, StopsRightAfterStart) {
  for (int i = 0; i < 5; ++i) {
    auto server = Start();
    ASSERT_NE(server, nullptr);
    server->Stop();
  }
}

/// A repartitioned pipeline: one server for both stages.
TEST_F(HttpServerTest, ServesBothStagesOfARepartitionedPipeline) {
  PipelineSnapshot one, two;
  one.pipeline = two.pipeline = "views";
  one.state = two.state = "running";
  one.workers = two.workers = 1;
  one.records_in = 600;
  one.partitions = {{0, 300, 0}, {1, 300, 4}};
  one.partitions[0].committed = 300;
  one.partitions[0].watermark_micros = 1'700'000'000'000'000;
  two.records_in = 55;
  two.partitions = {{0, 20, 0}};
  two.partitions[0].committed = 18;
  std::mutex mu;
  auto snapshot_of = [&mu](PipelineSnapshot* s) {
    return [&mu, s] {
      std::lock_guard<std::mutex> lock(mu);
      return *s;
    };
  };
  ServerContext ctx;
  ctx.stages.push_back({"one", {"views", "views", "views-repartition", "0.1.0", 1'000'000}, snapshot_of(&one), nullptr});
  ctx.stages.push_back({"two", {"views", "views_repartition", "events", "0.1.0", 1'000'000}, snapshot_of(&two), nullptr});
  auto started = HttpServer::Start({"127.0.0.1", 0}, std::move(ctx));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<HttpServer> server = std::move(started).value();
  httplib::Client c("127.0.0.1", server->port());

  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("sluice_source_records_total{pipeline=\"views\",source=\"views\",stage=\"one\"} 600\n"),
            std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("sluice_source_records_total{pipeline=\"views\",source=\"views_repartition\",stage=\"two\"} 55\n"),
            std::string::npos)
      << r->body;

  r = c.Get("/api/status");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(r->body);
  // The top level is the last stage's (the dashboard shows the sink's results)...
  EXPECT_EQ(std::string_view(doc["source"]), "views_repartition");
  EXPECT_EQ(int64_t(doc["counts"]["records_in"]), 55);
  EXPECT_TRUE(bool(doc["ready"]));
  // ... and each stage is there in full.
  simdjson::dom::array stages = doc["stages"];
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(std::string_view(stages.at(0)["stage"]), "one");
  EXPECT_EQ(std::string_view(stages.at(0)["sink"]), "views-repartition");
  EXPECT_EQ(int64_t(stages.at(0)["counts"]["records_in"]), 600);
  simdjson::dom::array parts = stages.at(0)["partitions"];
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(int64_t(parts.at(0)["committed"]), 300);
  EXPECT_EQ(int64_t(parts.at(0)["watermark_micros"]), 1'700'000'000'000'000);
  EXPECT_TRUE(parts.at(1)["committed"].is_null());
  EXPECT_EQ(int64_t(parts.at(1)["lag"]), 4);
  EXPECT_EQ(std::string_view(stages.at(1)["stage"]), "two");
  EXPECT_EQ(int64_t(stages.at(1)["partitions"].at(0)["committed"]), 18);

  r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  // Stage one draining: the process is not ready, and says which stage.
  {
    std::lock_guard<std::mutex> lock(mu);
    one.state = "draining";
  }
  r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not ready: stage one: pipeline is draining\n");
  r = c.Get("/api/status");
  ASSERT_TRUE(r);
  doc = parser.parse(r->body);
  EXPECT_FALSE(bool(doc["ready"]));
  EXPECT_EQ(std::string_view(doc["not_ready_reasons"].at(0)), "stage one: pipeline is draining");
  EXPECT_TRUE(bool(doc["stages"].at(1)["ready"]));

  // Stage two failed: not healthy either.
  {
    std::lock_guard<std::mutex> lock(mu);
    two.state = "failed";
  }
  r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not healthy: stage two failed\n");
  server->Stop();
}

TEST(ListenAddressTest, Parses) {
  auto a = ParseListenAddress("127.0.0.1:8080");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  a = ParseListenAddress(":9000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9000);
  a = ParseListenAddress("9100");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  a = ParseListenAddress("0.0.0.0:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 0);
  a = ParseListenAddress("[::1]:8080");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  for (const char* bad : {"", "host:", "host:http", "1:99999", "[::1]8080"}) {
    EXPECT_FALSE(ParseListenAddress(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace sluice::http
