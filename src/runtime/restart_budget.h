#pragma once

#include <cstdint>
#include <deque>

namespace sluice {

/// Bounds the restarts of `sluice run` after its commits were fenced (apps/sluice/main.cc): a
/// process cut off from its group once starts again from the committed state, but one fenced
/// over and over (another process keeps claiming its tasks, e.g. two processes of one pipeline
/// name reading different topics into one sink) must stop instead of looping for good.
class RestartBudget {
 public:
  /// At most `max_restarts` restarts within any `window_micros`.
  RestartBudget(int max_restarts, int64_t window_micros) : max_(max_restarts), window_(window_micros) {}

  /// Records a restart wanted at `now_micros` (steady clock); false when it is one more than the
  /// window allows (then it is not recorded).
  bool Allow(int64_t now_micros) {
    while (!times_.empty() && times_.front() <= now_micros - window_) times_.pop_front();
    if (static_cast<int>(times_.size()) >= max_) return false;
    times_.push_back(now_micros);
    return true;
  }

  int max_restarts() const { return max_; }
  int64_t window_micros() const { return window_; }

 private:
  int max_;
  int64_t window_;
  std::deque<int64_t> times_;
};

}  // namespace sluice
