#pragma once

#include <span>
#include <string_view>

namespace sluice {

/// A file compiled into the binary by cmake/embed_files.cmake (the dashboard, the demo's files).
struct EmbeddedFile {
  std::string_view path;  ///< as named when embedding, e.g. "app.js" or "data/job.csv"
  std::string_view body;
};

/// Returns the file of `files` at `path`, or null.
inline const EmbeddedFile* FindEmbeddedFile(std::span<const EmbeddedFile> files, std::string_view path) {
  for (const EmbeddedFile& f : files) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

}  // namespace sluice
