#pragma once

#include <cstdint>

namespace sluice::http {

/// Resource usage of this process, read from /proc (Linux). Fields that cannot be read are -1.
struct ProcessStats {
  int64_t resident_bytes = -1;
  int64_t virtual_bytes = -1;
  double cpu_seconds = -1;         ///< user + system time
  double start_time_seconds = -1;  ///< Unix time the process started
  int64_t open_fds = -1;
  int64_t max_fds = -1;
};

/// Reads the current process's statistics from /proc/self (and the boot time from /proc/stat).
ProcessStats ReadProcessStats();

}  // namespace sluice::http
