#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "core/embedded_file.h"

namespace sluice::http {

/// One dashboard file compiled into the binary (see web/ and cmake/embed_files.cmake).
struct Asset {
  std::string_view path;  ///< URL path, e.g. "/app.js"
  std::string_view content_type;
  std::string_view body;
};

/// Returns every dashboard file (paths relative to web/). Defined in the .cc file generated at
/// build time from web/.
std::span<const EmbeddedFile> EmbeddedWebFiles();

/// Returns the asset served at `path` ("/" is "/index.html"), with the content type its name
/// implies, or nothing.
std::optional<Asset> FindAsset(std::string_view path);

}  // namespace sluice::http
