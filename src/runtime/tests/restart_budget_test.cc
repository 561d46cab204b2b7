// RestartBudget: at most N restarts after a fence within any window of M; older ones age out.
#include "runtime/restart_budget.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

constexpr int64_t kSecond = 1000000;

TEST(RestartBudget, TheRestartOverTheLimitWithinTheWindowIsRefused) {
  RestartBudget budget(3, 60 * kSecond);
  EXPECT_TRUE(budget.Allow(0));
  EXPECT_TRUE(budget.Allow(10 * kSecond));
  EXPECT_TRUE(budget.Allow(20 * kSecond));
  EXPECT_FALSE(budget.Allow(30 * kSecond));  // a 4th within 60 s
  EXPECT_FALSE(budget.Allow(59 * kSecond));  // still 3 in (−1 s, 59 s]
}

TEST(RestartBudget, RestartsOlderThanTheWindowNoLongerCount) {
  RestartBudget budget(2, 60 * kSecond);
  EXPECT_TRUE(budget.Allow(0));
  EXPECT_TRUE(budget.Allow(30 * kSecond));
  EXPECT_FALSE(budget.Allow(59 * kSecond));
  EXPECT_TRUE(budget.Allow(60 * kSecond));   // the one at 0 is 60 s old: out of the window
  EXPECT_FALSE(budget.Allow(61 * kSecond));  // 30 s and 60 s are in it
  // Restarts spread out (a process cut off now and then) never run out.
  RestartBudget spread(2, 60 * kSecond);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(spread.Allow(i * 31 * kSecond)) << i;
}

}  // namespace
}  // namespace sluice
