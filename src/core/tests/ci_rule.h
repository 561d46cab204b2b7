// The one CI rule of the C++ tests, as tests/tools/harness.py has it for the Python ones: with
// CI set to true, 1 or yes (any case) a missing server or tool fails the test; otherwise the test
// is skipped, loudly.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>

namespace sluice::testing {

inline bool InCi() {
  const char* ci = std::getenv("CI");
  std::string v = ci ? ci : "";
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "true" || v == "1" || v == "yes";
}

}  // namespace sluice::testing

/// Ends the current test for a missing prerequisite `why` (a std::string): a failure under CI,
/// else a skip announced on stderr.
#define SLUICE_SKIP_OR_FAIL(why)                                                                  \
  do {                                                                                            \
    if (::sluice::testing::InCi()) FAIL() << (why) << " (CI=" << std::getenv("CI") << ": not skipping)"; \
    std::cerr << std::string(78, '!') << "\nSKIP " << (why) << "\n" << std::string(78, '!') << "\n"; \
    GTEST_SKIP() << (why);                                                                        \
  } while (0)
