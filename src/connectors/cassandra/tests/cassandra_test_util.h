#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "connectors/cassandra/cql_client.h"
#include "core/tests/ci_rule.h"

namespace sluice::cassandra_test {

/// The test server: $SLUICE_TEST_CASSANDRA ("HOST:PORT"), else 127.0.0.1:9042, as started by
/// `scripts/services.sh up cassandra`.
inline cassandra::ClientOptions ServerOptions() {
  cassandra::ClientOptions o;
  if (const char* env = std::getenv("SLUICE_TEST_CASSANDRA"); env && *env) {
    std::string s = env;
    size_t colon = s.rfind(':');
    o.host = s.substr(0, colon);
    if (colon != std::string::npos) o.port = std::atoi(s.c_str() + colon + 1);
  }
  o.connect_timeout = std::chrono::milliseconds(3000);
  o.request_timeout = std::chrono::milliseconds(30000);
  return o;
}

inline std::string ServerHostPort() {
  cassandra::ClientOptions o = ServerOptions();
  return o.host + ":" + std::to_string(o.port);
}


/// The keyspace every integration test of this module uses: $SLUICE_TEST_CASSANDRA_KEYSPACE,
/// else sluice_cql_test (a separate name lets several checkouts test against one server).
inline const std::string kKeyspace = [] {
  const char* env = std::getenv("SLUICE_TEST_CASSANDRA_KEYSPACE");
  return std::string(env && *env ? env : "sluice_cql_test");
}();

/// Connects to the test server and makes sure kKeyspace exists; nullptr when the server is
/// unreachable (the caller then FAILs under CI=true, else skips).
inline std::unique_ptr<cassandra::Connection> ConnectForTest(std::string* why) {
  auto c = cassandra::Connection::Open(ServerOptions());
  if (!c.ok()) {
    *why = "Cassandra is not reachable at " + ServerHostPort() + " (" + c.status().ToString() +
           "); start it with `scripts/services.sh up cassandra`";
    return nullptr;
  }
  cassandra::QueryOptions q;
  q.page_size = 0;
  auto ks = (*c)->Query(std::string("CREATE KEYSPACE IF NOT EXISTS ") + kKeyspace +
                            " WITH replication = {'class': 'SimpleStrategy', "
                            "'replication_factor': 1}",
                        {}, q);
  if (!ks.ok()) {
    *why = "cannot create keyspace " + std::string(kKeyspace) + ": " + ks.status().ToString();
    return nullptr;
  }
  return std::move(c).value();
}

}  // namespace sluice::cassandra_test

/// Sets `conn` to a connection to the test server, or fails (under CI) / skips loudly.
#define CASSANDRA_CONNECT_OR_SKIP(conn)                                                   \
  do {                                                                                    \
    std::string why_;                                                                     \
    conn = ::sluice::cassandra_test::ConnectForTest(&why_);                               \
    if (!conn) {                                                                          \
      SLUICE_SKIP_OR_FAIL("Cassandra integration test: " + why_);                         \
    }                                                                                     \
  } while (0)
