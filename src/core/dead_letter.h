#pragma once

#include <cstdint>
#include <string>

namespace sluice {

/// A record that could not be processed, with why and where it came from.
struct DeadLetter {
  std::string reason;   ///< short, stable cause, e.g. "decode: field bid: 'x' is not an int64"
  std::string payload;  ///< the original bytes, unchanged
  std::string source;   ///< source name from the pipeline file
  int32_t partition = 0;
  int64_t offset = 0;   ///< position of the record in its partition
};

}  // namespace sluice
