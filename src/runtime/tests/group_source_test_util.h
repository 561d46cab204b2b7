// A fake partitioned source whose partitions a test hands out like a consumer group, for tests
// that run several Runners of one pipeline (tasks, issue 16): RunnerTasksTest on SQLite,
// MysqlRunnerTasksTest on MariaDB. Test code only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
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
  /// Every partition of the input (Source::InputPartitions), assigned or not; set before the
  /// runners start.
  std::vector<int32_t> input_partitions = {0, 1};
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
  std::vector<int32_t> InputPartitions() const override { return g_group->input_partitions; }

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

/// Records for the append-mode tests over a source keyed by the group key ([source] keyed_by):
/// partition 0 holds keys a, b, c and partition 1 keys d, e (each key in one partition), event
/// times advancing 5 s a record from 00:02:00, mostly a little out of order, some far behind,
/// then one record an hour on per partition (keys z0, z1) so every earlier window closes. The
/// expectation is computed from them by the rule, for 1-minute windows, watermark delay 10 s
/// and lateness 0: a record is late when its window's end is at or before its own partition's
/// watermark (the highest event time of the partition's earlier records that were not late,
/// minus 10 s); a window is written when every partition's final watermark passed its end.
struct KeyedAppendData {
  struct Record {
    std::string key;
    int64_t seconds = 0;
    int v = 0;
  };
  std::map<int32_t, std::vector<Record>> records;
  /// "2024-01-01 HH:MM:SS|k|n|s", by window start then key.
  std::vector<std::string> expected_rows;
  /// "partition|offset" of every late record, by partition then offset.
  std::vector<std::string> expected_late;

  static std::string Clock(int64_t seconds) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d", static_cast<int>(seconds / 3600),
                  static_cast<int>(seconds / 60 % 60), static_cast<int>(seconds % 60));
    return buf;
  }
  /// Part `part` (0..3) of partition `p`'s records, as the source's messages.
  std::vector<std::string> Part(int32_t p, int part) const {
    const auto& list = records.at(p);
    std::vector<std::string> out;
    for (size_t i = Begin(p, part); i < Begin(p, part + 1); ++i) {
      out.push_back(Rec(list[i].key, Clock(list[i].seconds), 1, list[i].v));
    }
    return out;
  }
  /// The offset just after part `part` of partition `p`.
  int64_t EndOf(int32_t p, int part) const { return static_cast<int64_t>(Begin(p, part + 1)); }
  size_t Begin(int32_t p, int part) const { return records.at(p).size() * static_cast<size_t>(part) / 4; }

  static KeyedAppendData Make(int per_partition, uint32_t seed) {
    KeyedAppendData d;
    const std::map<int32_t, std::vector<std::string>> keys = {{0, {"a", "b", "c"}}, {1, {"d", "e"}}};
    auto next = [&seed] {
      seed = seed * 1103515245u + 12345u;
      return (seed >> 16) & 0x7fffu;
    };
    for (const auto& [p, ks] : keys) {
      for (int i = 0; i < per_partition; ++i) {
        const int64_t base = 120 + 5LL * i;
        const uint32_t r = next() % 100;
        int64_t back = next() % 20;                // mostly a little out of order
        if (r >= 85) back = 30 + next() % 25;       // some further behind: late or not, by the rule
        if (r >= 95) back = 100 + next() % 60;      // some surely late
        const std::string& key = ks[next() % ks.size()];
        d.records[p].push_back({key, std::max<int64_t>(0, base - back), static_cast<int>(next() % 1000)});
      }
      d.records[p].push_back({"z" + std::to_string(p), 3600, 0});
    }
    std::map<std::pair<int64_t, std::string>, std::pair<int, int64_t>> groups;  // (start, k) -> (n, s)
    int64_t closes_before = std::numeric_limits<int64_t>::max();
    for (const auto& [p, list] : d.records) {
      int64_t max_seen = -1;
      for (size_t o = 0; o < list.size(); ++o) {
        const int64_t start = list[o].seconds / 60 * 60;
        if (max_seen >= 0 && start + 60 <= max_seen - 10) {
          d.expected_late.push_back(std::to_string(p) + "|" + std::to_string(o));
          continue;
        }
        max_seen = std::max(max_seen, list[o].seconds);
        auto& g = groups[{start, list[o].key}];
        ++g.first;
        g.second += list[o].v;
      }
      closes_before = std::min(closes_before, max_seen - 10);
    }
    for (const auto& [key, g] : groups) {
      if (key.first + 60 > closes_before) continue;  // still open at the end
      d.expected_rows.push_back("2024-01-01 " + Clock(key.first) + "|" + key.second + "|" +
                                std::to_string(g.first) + "|" + std::to_string(g.second));
    }
    return d;
  }
};

}  // namespace group_test
}  // namespace sluice
