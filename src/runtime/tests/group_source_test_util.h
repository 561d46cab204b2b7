// A fake partitioned source whose partitions a test hands out like a consumer group, for tests
// that run several Runners of one pipeline (tasks, issue 16): RunnerTasksTest on SQLite,
// MysqlRunnerTasksTest on MariaDB. Test code only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/source.h"

namespace sluice {
namespace group_test {

/// The "topic" (records per partition) and what the test tells each member to do.
struct Group {
  std::mutex mu;
  std::condition_variable cv;
  std::map<int32_t, std::vector<std::string>> topic;
  struct Member {
    std::vector<std::pair<char, int32_t>> commands;  ///< ('a'ssign | 'r'evoke | 'l'ose | 'b'usy, partition)
    int done = 0;                                    ///< commands carried out
  };
  std::map<std::string, Member> members;
  bool finish = false;
};
/// The group of the running test (set in its SetUp, cleared in its TearDown).
inline Group* g_group = nullptr;

class GroupSource : public Source {
 public:
  explicit GroupSource(std::string member) : member_(std::move(member)) {}
  Status Open(const SourceContext& ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds budget) override {
    std::vector<std::pair<char, int32_t>> commands;
    {
      std::lock_guard<std::mutex> lock(g_group->mu);
      auto& m = g_group->members[member_];
      commands.assign(m.commands.begin() + done_, m.commands.end());
    }
    for (const auto& [what, p] : commands) {
      if (what == 'r') {
        RETURN_IF_ERROR(ctx_.checkpoint_before_revoke({p}));
        next_.erase(p);
      } else if (what == 'l') {
        // Lost (the group took it away without a revoke this member could answer, as a Kafka
        // member whose session expired): dropped uncommitted when the engine can, else the
        // revoke way (as KafkaSource::rebalance_cb does).
        bool dropped = false;
        if (ctx_.drop_lost) {
          ASSIGN_OR_RETURN(dropped, ctx_.drop_lost({p}));
        }
        if (!dropped) RETURN_IF_ERROR(ctx_.checkpoint_before_revoke({p}));
        next_.erase(p);
      } else if (what == 'b') {
        // busy: this Poll() takes p ms (reported done first), so the worker hands over late
        ++done_;
        {
          std::lock_guard<std::mutex> lock(g_group->mu);
          g_group->members[member_].done = done_;
          g_group->cv.notify_all();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(p));
        continue;
      } else {
        next_[p] = (ctx_.claim_position ? ctx_.claim_position(p) : ctx_.committed_position(p)).value_or(0);
      }
      ++done_;
      std::lock_guard<std::mutex> lock(g_group->mu);
      g_group->members[member_].done = done_;
      g_group->cv.notify_all();
    }
    bool any = false;
    {
      std::unique_lock<std::mutex> lock(g_group->mu);
      for (auto& [p, next] : next_) {
        const auto& records = g_group->topic[p];
        for (; next < static_cast<int64_t>(records.size()); ++next) {
          RawRecord& r = out->Append(records[static_cast<size_t>(next)]);
          r.partition = p;
          r.offset = next;
          r.next_offset = next + 1;
          any = true;
        }
      }
      if (!any) {
        if (g_group->finish) return PollState::kEnd;
        g_group->cv.wait_for(lock, std::min(budget, std::chrono::milliseconds(5)));
      }
    }
    return any ? PollState::kData : PollState::kIdle;
  }
  std::string_view kind() const override { return "group"; }
  DecoderOptions decoder_options() const override { return {}; }
  bool GroupManaged() const override { return true; }
  bool EndIsFinal() const override { return false; }
  std::vector<int32_t> Partitions() const override {
    std::vector<int32_t> out;
    for (const auto& [p, next] : next_) out.push_back(p);
    return out;
  }
  std::vector<int32_t> InputPartitions() const override { return {0, 1}; }

 private:
  std::string member_;
  SourceContext ctx_;
  size_t done_ = 0;
  std::map<int32_t, int64_t> next_;
};

/// A record of key `k` at 2024-01-01 `t`, for job `job`, with value `v`.
inline std::string Rec(const std::string& k, const std::string& t, int job, int v) {
  return R"({"k":")" + k + R"(","t":"2024-01-01 )" + t + R"(","job":)" + std::to_string(job) +
         R"(,"v":)" + std::to_string(v) + "}";
}

}  // namespace group_test
}  // namespace sluice
