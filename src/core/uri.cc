#include "core/uri.h"

#include <cctype>
#include <charconv>

namespace sluice {

std::pair<std::string, std::string> SplitUri(const std::string& uri) {
  size_t colon = uri.find(':');
  if (colon == std::string::npos || colon == 0) return {"file", uri};
  std::string scheme = uri.substr(0, colon);
  for (char c : scheme) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-') return {"file", uri};
  }
  std::string rest = uri.substr(colon + 1);
  if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
  return {scheme, rest};
}

std::string ServerUri::HostPort(const std::string& host, int port) {
  std::string host_part = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return host_part + ":" + std::to_string(port);
}

Result<ServerUri> ParseServerUri(std::string_view uri, const ServerUriRules& rules) {
  const std::string scheme(rules.scheme);
  const std::string form(rules.form);
  std::string_view rest = uri;
  if (rest.substr(0, scheme.size() + 1) != scheme + ":") {
    return Status::InvalidArgument("expected a URI like " + form);
  }
  rest.remove_prefix(scheme.size() + 1);
  if (rest.substr(0, 2) == "//") rest.remove_prefix(2);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  ServerUri out;
  if (slash != std::string_view::npos) out.path = std::string(rest.substr(slash + 1));

  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    if (userinfo.find(':') != std::string_view::npos) {
      // Do not echo the URI: it holds a password.
      return Status::InvalidArgument("a " + scheme +
                                     " URI must not contain a password (USER:PASSWORD@); " +
                                     std::string(rules.password_hint));
    }
    out.user = std::string(userinfo);
    authority.remove_prefix(at + 1);
  }
  if (rules.user_required && out.user.empty()) {
    return Status::InvalidArgument(scheme + " URI needs a user: " + form);
  }

  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Status::InvalidArgument(scheme + " URI: unclosed '[' in the host");
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return Status::InvalidArgument(scheme + " URI: expected ':PORT' after ']'");
      }
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (out.host.empty()) return Status::InvalidArgument(scheme + " URI needs a host: " + form);
  if (has_port) {
    int port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
      return Status::InvalidArgument(scheme + " URI: port must be a number from 1 to 65535, got '" +
                                     std::string(port_text) + "'");
    }
    out.port = port;
  }
  return out;
}

}  // namespace sluice
