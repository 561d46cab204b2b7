#include "core/uri.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

ServerUriRules Rules(bool user_required = false) {
  ServerUriRules r;
  r.scheme = "mysql";
  r.form = "mysql://USER@HOST[:PORT]/DB";
  r.password_hint = "use SLUICE_MYSQL_PASSWORD";
  r.user_required = user_required;
  return r;
}

TEST(SplitUriTest, SchemesAndBarePaths) {
  EXPECT_EQ(SplitUri("kafka://h:9092/t"), std::make_pair(std::string("kafka"), std::string("h:9092/t")));
  EXPECT_EQ(SplitUri("sqlite:out.db"), std::make_pair(std::string("sqlite"), std::string("out.db")));
  EXPECT_EQ(SplitUri("data/x.csv"), std::make_pair(std::string("file"), std::string("data/x.csv")));
  // A colon after a character no scheme has is part of a path.
  EXPECT_EQ(SplitUri("./a:b"), std::make_pair(std::string("file"), std::string("./a:b")));
  EXPECT_EQ(SplitUri(":x"), std::make_pair(std::string("file"), std::string(":x")));
}

TEST(ServerUriTest, UserHostPortPath) {
  auto u = ParseServerUri("mysql://etl@db.local:3307/shop/events", Rules());
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->user, "etl");
  EXPECT_EQ(u->host, "db.local");
  EXPECT_EQ(u->port, 3307);
  EXPECT_EQ(u->path, "shop/events");
  auto bare = ParseServerUri("mysql:h", Rules());
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->host, "h");
  EXPECT_EQ(bare->port, 0);  // the connector's default
  EXPECT_EQ(bare->path, "");
}

TEST(ServerUriTest, Ipv6InBrackets) {
  auto u = ParseServerUri("mysql://u@[::1]:3306/db", Rules());
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 3306);
  EXPECT_EQ(ServerUri::HostPort(u->host, u->port), "[::1]:3306");
  EXPECT_EQ(ServerUri::HostPort("h", 1), "h:1");
}

TEST(ServerUriTest, RefusesWhatItCannotUse) {
  auto password = ParseServerUri("mysql://u:secret@h/db", Rules());
  ASSERT_FALSE(password.ok());
  EXPECT_EQ(password.status().message().find("secret"), std::string::npos);  // never echoed
  EXPECT_NE(password.status().message().find("use SLUICE_MYSQL_PASSWORD"), std::string::npos);
  EXPECT_NE(ParseServerUri("mysql://h/db", Rules(true)).status().message().find("needs a user"),
            std::string::npos);
  EXPECT_NE(ParseServerUri("mysql://u@:1/db", Rules()).status().message().find("needs a host"),
            std::string::npos);
  EXPECT_NE(ParseServerUri("mysql://u@[::1/db", Rules()).status().message().find("unclosed"),
            std::string::npos);
  for (const char* bad : {"mysql://h:0/db", "mysql://h:65536/db", "mysql://h:x/db", "mysql://h:/db",
                          "mysql://[::1]x/db"}) {
    auto r = ParseServerUri(bad, Rules());
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_FALSE(ParseServerUri("kafka://h/t", Rules()).ok());  // another scheme
}

}  // namespace
}  // namespace sluice
