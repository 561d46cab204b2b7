#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

/// One counter a source keeps about itself (requests, retries, failures by kind, ...), exposed
/// on /metrics as `sluice_<name>_total{pipeline,source[,kind]}`.
struct SourceCounter {
  std::string name;  ///< metric name between "sluice_" and "_total": "http_requests"
  std::string help;  ///< the family's HELP text
  std::string kind;  ///< value of the `kind` label; "" = no such label
  int64_t value = 0;
};

/// Adds `counters` to `sum`, matching on (name, kind); new ones are appended in their order.
inline void AddSourceCounters(const std::vector<SourceCounter>& counters,
                              std::vector<SourceCounter>* sum) {
  for (const SourceCounter& c : counters) {
    bool found = false;
    for (SourceCounter& s : *sum) {
      if (s.name == c.name && s.kind == c.kind) {
        s.value += c.value;
        found = true;
        break;
      }
    }
    if (!found) sum->push_back(c);
  }
}

/// Counters one worker updates with relaxed atomics; readers (console, /metrics) sum them.
/// Aligned so two workers never share a cache line.
struct alignas(64) WorkerCounters {
  std::atomic<int64_t> records_in{0};
  std::atomic<int64_t> bytes_in{0};
  std::atomic<int64_t> aggregated{0};  ///< records that reached the aggregate or output
  std::atomic<int64_t> ignored{0};
  std::atomic<int64_t> dead_lettered{0};
  std::atomic<int64_t> decode_errors{0};
  std::atomic<int64_t> late{0};
  /// Windows a record of hopping windows missed because they were late while others took it.
  std::atomic<int64_t> late_windows{0};
  std::atomic<int64_t> lookup_misses{0};
  std::atomic<int64_t> source_errors{0};
  std::atomic<int64_t> backpressure_waits{0};
  std::atomic<int64_t> max_event_time{INT64_MIN};
  std::atomic<int64_t> held{0};  ///< records a lookup is holding now (late-arriving dimension)
};

/// A point-in-time view of a running pipeline, for the console and the HTTP endpoints.
struct PipelineSnapshot {
  std::string pipeline;
  std::string state;  ///< starting, running, draining, finished, failed
  int64_t records_in = 0, bytes_in = 0, aggregated = 0, ignored = 0, dead_lettered = 0;
  int64_t decode_errors = 0, late = 0, lookup_misses = 0, source_errors = 0;
  int64_t late_windows = 0;  ///< windows skipped as late by records that other windows took
  int64_t backpressure_waits = 0;  ///< times a worker paused because the sink was behind
  int64_t checkpoints = 0, checkpoint_failures = 0, sink_retries = 0, rows_written = 0;
  /// Source partitions the group took away without a revoke (a lost assignment), dropped
  /// uncommitted: their next owner reads again what was not committed.
  int64_t partitions_lost = 0;
  /// How often `sluice run` started this pipeline again after its commits were fenced
  /// (RunOptions::fenced_restarts, carried across those restarts).
  int64_t fenced_restarts = 0;
  /// Result rows the sink refused and dead-lettered (reason "sink_rejected"); also counted in
  /// dead_lettered and dead_lettered_by_reason.
  int64_t sink_rejected = 0;
  /// What the commits did to the results table's rows, when the sink tells (SQL sinks; see
  /// Sink::LastCommitRowCounts): rows_written = inserted + updated + unchanged.
  bool row_counts_known = false;
  int64_t rows_inserted = 0, rows_updated = 0, rows_unchanged = 0;
  int64_t last_checkpoint_micros = 0;      ///< wall-clock time of the last successful commit
  int64_t last_checkpoint_duration_micros = 0;
  int64_t checkpoint_duration_total_micros = 0;
  int64_t max_event_time = INT64_MIN;      ///< highest event time seen
  /// The pipeline's event-time watermark (INT64_MIN until known; pipelines without windows or
  /// lateness track none).
  int64_t watermark_micros = INT64_MIN;
  int64_t open_windows = 0;
  int64_t held = 0;                        ///< records held by lookups waiting for their key                ///< groups held until their window closes (append mode)
  int64_t started_micros = 0;
  int workers = 0;
  std::vector<std::pair<std::string, int64_t>> ignored_by_reason;
  std::vector<std::pair<std::string, int64_t>> dead_lettered_by_reason;  ///< by dead_letter_if step
  struct PartitionInfo {
    int32_t partition;
    int64_t position;
    int64_t lag;  ///< -1 when unknown
    int64_t end = -1;  ///< the partition's end as last seen (Kafka: high watermark); -1 unknown
    /// Source::NamePartition of the id (a Kafka source with several topics): the topic and its
    /// partition number, shown instead of the id. Empty when the id is the partition number.
    std::string input{};
    int32_t input_partition = 0;
    /// The position this process last committed for the partition (-1: none yet, or a source
    /// that stores none).
    int64_t committed = -1;
    /// The partition's own event-time watermark as this process last committed it (INT64_MIN:
    /// unknown; a stage-two partition: the lowest watermark of its upstream partitions).
    int64_t watermark_micros = INT64_MIN;
  };
  std::vector<PartitionInfo> partitions;
  /// Every source partition this process committed a position for, with the last one it
  /// committed, whether it reads the partition now or not (a partition another process took
  /// over may be further by now: never less). Repartitioning purges the records stage two has
  /// committed past by it.
  std::vector<std::pair<int32_t, int64_t>> committed_positions;
  struct DimensionInfo {
    std::string name;
    int64_t size;                ///< keys in the current snapshot
    int64_t versions;            ///< snapshots published after the first
    int64_t changes;             ///< rows changed by them
    int64_t last_update_micros;  ///< wall clock of the last change (0: none)
    int64_t lag_micros;          ///< newest change seen behind now; -1 unknown
    int64_t refresh_errors;
    int64_t misses;              ///< lookups that found no row
  };
  std::vector<DimensionInfo> dimensions;
  /// The sources' own counters (Source::Counters()), summed over the pipeline's instances.
  std::vector<SourceCounter> source_counters;
  bool sink_healthy = true;
};

}  // namespace sluice
