#pragma once

#include <span>
#include <string_view>

namespace sluice::http {

/// One dashboard file compiled into the binary (see web/ and src/http/embed_assets.cmake).
struct Asset {
  std::string_view path;  ///< URL path, e.g. "/app.js"
  std::string_view content_type;
  std::string_view body;
};

/// Returns every embedded asset. Defined in the .cc file generated at build time from web/.
std::span<const Asset> EmbeddedAssets();

/// Returns the asset served at `path` ("/" is "/index.html"), or null.
const Asset* FindAsset(std::string_view path);

}  // namespace sluice::http
