#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dead_letter.h"
#include "core/status.h"

namespace sluice {

/// Appends dead letters to an NDJSON file, one record per line in the format of
/// AppendDeadLetterJson (core/dead_letter.h).
///
/// Exactly once: the file's committed length is stored with the sink's positions. On start the
/// file is cut back to that length, so letters written by a checkpoint that never committed
/// are written again by the replay, not twice. Used by the checkpoint coordinator only.
class DeadLetterFile {
 public:
  /// Opens (creating parent directories) and cuts the file back to `committed_length`, the
  /// length stored with the sink's positions (0 when the sink has none: a fresh pipeline).
  static Result<std::unique_ptr<DeadLetterFile>> Open(const std::string& path,
                                                      int64_t committed_length);
  ~DeadLetterFile();

  /// Appends and fsyncs; returns the new length, to be committed with the positions.
  Result<int64_t> Append(std::string_view pipeline, const std::vector<DeadLetter>& letters);
  int64_t length() const { return length_; }
  const std::string& path() const { return path_; }

 private:
  DeadLetterFile(std::string path, int fd, int64_t length)
      : path_(std::move(path)), fd_(fd), length_(length) {}
  std::string path_;
  int fd_;
  int64_t length_;
};

/// Creates the parent directories of `path`.
Status EnsureParentDirectory(const std::string& path);

}  // namespace sluice
