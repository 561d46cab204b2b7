#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace sluice {

/// Splits "scheme:rest" or "scheme://rest"; a bare path has scheme "file".
std::pair<std::string, std::string> SplitUri(const std::string& uri);

/// The server part of a connector URI, SCHEME://[USER@]HOST[:PORT]/PATH, as the MySQL and
/// Cassandra connectors (and any future server connector) write it. An IPv6 host is written in
/// brackets ([::1]:3306) and kept here without them.
struct ServerUri {
  std::string user;  ///< empty when the URI names none
  std::string host;
  int port = 0;      ///< 0 when the URI names none: the connector's default applies
  std::string path;  ///< everything after the first '/', without it; may be empty

  /// HOST:PORT, with brackets around an IPv6 host.
  static std::string HostPort(const std::string& host, int port);
};

/// What a connector says in ParseServerUri's errors.
struct ServerUriRules {
  std::string_view scheme;         ///< "mysql": URIs start with "mysql:"; errors say "mysql URI"
  std::string_view form;           ///< the expected shape, quoted in errors
  std::string_view password_hint;  ///< where the password goes instead, after "must not contain a password"
  bool user_required = false;
};

/// Parses `uri` (which starts with `rules.scheme` and ':'). A password in the URI
/// (USER:PASSWORD@) is refused without echoing the URI.
Result<ServerUri> ParseServerUri(std::string_view uri, const ServerUriRules& rules);

}  // namespace sluice
