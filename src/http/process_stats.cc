#include "http/process_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::http {
namespace {

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return -1;
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats s;
  const long page = sysconf(_SC_PAGESIZE);
  const long ticks = sysconf(_SC_CLK_TCK);
  {
    std::ifstream in("/proc/self/statm");
    int64_t size = 0, resident = 0;
    if (in >> size >> resident) {
      s.virtual_bytes = size * page;
      s.resident_bytes = resident * page;
    }
  }
  {
    std::ifstream in("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may contain spaces and parentheses: fields resume after the
    // last ')'. Field 3 is then the first one.
    const size_t close = text.rfind(')');
    if (close != std::string::npos && ticks > 0) {
      std::istringstream rest(text.substr(close + 2));
      std::vector<std::string> f;
      std::string tok;
      while (rest >> tok) f.push_back(tok);
      // utime = field 14, stime = 15, starttime = 22 -> indexes 11, 12, 19 from field 3.
      if (f.size() > 19) {
        s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(ticks);
        const double boot = BootTimeSeconds();
        if (boot >= 0) s.start_time_seconds = boot + std::stod(f[19]) / static_cast<double>(ticks);
      }
    }
  }
  {
    std::error_code ec;
    int64_t n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    if (!ec) s.open_fds = n - 1;  // the directory iterator's own descriptor
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    s.max_fds = static_cast<int64_t>(lim.rlim_cur);
  }
  return s;
}

}  // namespace sluice::http
