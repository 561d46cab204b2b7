// Repartition-topic records for tests of stage two (issue 16) built by hand with the codec, as
// stage one would write them, and the result a brute-force aggregation of the raw records they
// stand for gives. Shared by the runner tests on the fake group source (SQLite) and the test
// against the real Kafka. Test code only.
#pragma once

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "operators/aggregate_spec.h"
#include "runtime/repartition_record.h"

namespace sluice {
namespace stage_two_test {

/// One transaction of one stage-one task: its records to each repartition partition, in order.
struct Transaction {
  int32_t upstream = 0;  ///< the stage-one task's source partition (topic index 0)
  std::map<int32_t, std::vector<std::string>> values;  ///< repartition partition -> values
  std::map<int32_t, std::vector<std::string>> keys;    ///< ... and their keys
};

/// Raw records of `upstreams` source partitions (keys a..e in every partition: producers did
/// not key by the group key), event times advancing 5 s a record from 00:02:00 with some out of
/// order and some late, then one record an hour on per partition so every earlier window closes;
/// cut into `checkpoints` checkpoints per upstream, each one transaction of partials (merged per
/// (window, key) over the checkpoint), late records as 'D' dead letters (partition = the source
/// partition mod R, as stage one sends them) and a control to every repartition partition. The
/// window is 1 minute, watermark delay 10 s, lateness 0 (the pipeline of the tests), metrics
/// n = count(), s = sum(v).
///
/// Expected, by brute force over the raw records: a record is late when its window's end is at
/// or before its own partition's watermark (the highest event time of its earlier records that
/// were not late, minus 10 s); a window is written when the minimum of all partitions' final
/// watermarks passed its end.
struct StageTwoData {
  struct Raw {
    std::string key;
    int64_t seconds = 0;
    int v = 0;
  };
  std::map<int32_t, std::vector<Raw>> raw;  ///< by source partition
  std::vector<Transaction> transactions;    ///< in the order they are produced
  /// "2024-01-01 HH:MM:SS|k|n|s", by window start then key.
  std::vector<std::string> expected_rows;
  /// "partition|offset" of every late record, by partition then offset.
  std::vector<std::string> expected_late;

  static constexpr int64_t kBase = 1704067200;  // 2024-01-01 00:00:00 UTC

  static std::string Clock(int64_t seconds) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "2024-01-01 %02d:%02d:%02d", static_cast<int>(seconds / 3600),
                  static_cast<int>(seconds / 60 % 60), static_cast<int>(seconds % 60));
    return buf;
  }
  static std::string Json(const Raw& r) {
    return R"({"k":")" + r.key + R"(","t":")" + Clock(r.seconds) + R"(","v":)" + std::to_string(r.v) + "}";
  }

  /// `lagging`: that upstream's transactions come `lag` checkpoints after the others'.
  static StageTwoData Make(const AggregateSpec& spec, int32_t upstreams, int32_t partitions, int per_upstream,
                           int checkpoints, uint32_t seed, int32_t lagging = -1, int lag = 0) {
    StageTwoData d;
    auto next = [&seed] {
      seed = seed * 1103515245u + 12345u;
      return (seed >> 16) & 0x7fffu;
    };
    const std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
    for (int32_t u = 0; u < upstreams; ++u) {
      for (int i = 0; i < per_upstream; ++i) {
        const int64_t base = 120 + 5LL * i + u;
        const uint32_t r = next() % 100;
        int64_t back = next() % 20;
        if (r >= 85) back = 30 + next() % 25;
        if (r >= 95) back = 100 + next() % 60;
        d.raw[u].push_back({keys[next() % keys.size()], std::max<int64_t>(0, base - back),
                            static_cast<int>(next() % 1000)});
      }
      d.raw[u].push_back({"z", 3600, 0});
    }
    // Brute force, and stage one's transactions.
    std::map<std::pair<int64_t, std::string>, std::pair<int64_t, int64_t>> groups;
    int64_t min_final = std::numeric_limits<int64_t>::max();
    std::map<std::pair<int, int32_t>, Transaction> by_slot;  // (slot, upstream) -> transaction
    for (const auto& [u, list] : d.raw) {
      int64_t max_seen = -1;
      const size_t n = list.size();
      for (int c = 0; c < checkpoints; ++c) {
        Transaction t;
        t.upstream = u;
        std::map<std::pair<int64_t, std::string>, std::pair<int64_t, int64_t>> partials;
        std::vector<std::pair<int32_t, std::string>> letters;  // (partition, value)
        for (size_t o = n * c / checkpoints; o < n * (c + 1) / checkpoints; ++o) {
          const int64_t start = list[o].seconds / 60 * 60;
          if (max_seen >= 0 && start + 60 <= max_seen - 10) {
            d.expected_late.push_back(std::to_string(u) + "|" + std::to_string(o));
            RepartitionRecord rec;
            rec.kind = RepartitionRecord::Kind::kDeadLetter;
            rec.dead_letter = DeadLetter{"late", Json(list[o]), "in", u, static_cast<int64_t>(o), 1'000'000};
            letters.emplace_back(u % partitions, EncodeRepartitionValue(rec, spec));
            continue;
          }
          max_seen = std::max(max_seen, list[o].seconds);
          auto& g = groups[{start, list[o].key}];
          ++g.first;
          g.second += list[o].v;
          auto& p = partials[{start, list[o].key}];
          ++p.first;
          p.second += list[o].v;
        }
        for (auto& [p, value] : letters) {
          t.values[p].push_back(std::move(value));
          t.keys[p].push_back("");
        }
        for (const auto& [gk, nv] : partials) {
          RepartitionRecord rec;
          rec.kind = RepartitionRecord::Kind::kPartial;
          rec.partial.window_start = (kBase + gk.first) * 1'000'000;
          rec.partial.keys = {Value::String(gk.second)};
          rec.partial.metrics.resize(2);
          rec.partial.metrics[0].count = nv.first;
          rec.partial.metrics[1].count = nv.first;
          rec.partial.metrics[1].isum = nv.second;
          const std::string key = EncodeRepartitionKey(rec.partial.keys);
          const int32_t p = RepartitionPartitionOf(key, partitions);
          t.values[p].push_back(EncodeRepartitionValue(rec, spec));
          t.keys[p].push_back(key);
        }
        RepartitionRecord control;
        control.kind = RepartitionRecord::Kind::kControl;
        control.control.upstream = UpstreamId{0, u};
        if (max_seen >= 0) {
          control.control.max_event_time = (kBase + max_seen) * 1'000'000;
          control.control.watermark = (kBase + max_seen - 10) * 1'000'000;
        }
        for (int32_t p = 0; p < partitions; ++p) {
          t.values[p].push_back(EncodeRepartitionValue(control, spec));
          t.keys[p].push_back("");
        }
        by_slot[{c + (u == lagging ? lag : 0), u}] = std::move(t);
      }
      min_final = std::min(min_final, max_seen - 10);
    }
    for (auto& [slot, t] : by_slot) d.transactions.push_back(std::move(t));
    for (const auto& [gk, nv] : groups) {
      if (gk.first + 60 > min_final) continue;
      d.expected_rows.push_back(Clock(gk.first) + "|" + gk.second + "|" + std::to_string(nv.first) + "|" +
                                std::to_string(nv.second));
    }
    std::sort(d.expected_late.begin(), d.expected_late.end(), [](const std::string& a, const std::string& b) {
      auto split = [](const std::string& s) {
        const size_t bar = s.find('|');
        return std::make_pair(std::stoi(s.substr(0, bar)), std::stoll(s.substr(bar + 1)));
      };
      return split(a) < split(b);
    });
    return d;
  }

  /// Every value of repartition partition `p`, in the order the transactions were produced.
  std::vector<std::string> Values(int32_t p) const {
    std::vector<std::string> out;
    for (const auto& t : transactions) {
      if (auto it = t.values.find(p); it != t.values.end()) out.insert(out.end(), it->second.begin(), it->second.end());
    }
    return out;
  }
};

}  // namespace stage_two_test
}  // namespace sluice
