#include "http/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

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
