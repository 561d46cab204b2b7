#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "connectors/cassandra/cql_client.h"
#include "runtime/source.h"

namespace sluice {

/// The options of a cassandra:// table source, in [source] or the URI's query (CassandraTableSource::Make reads them).
const OptionTable& CassandraTableSourceOptions();

namespace cassandra {

/// A row's place in the table source's total order: (time, tie), compared as unsigned tie.
/// timeuuid order_by: time = the UUID's 100-ns ticks since 1582-10-15, tie = its low 64 bits
/// (clock sequence and node). timestamp order_by: time = milliseconds since the epoch, tie = the
/// key column's value mapped order-preservingly to unsigned (0 without a key column).
struct OrderKey {
  int64_t time = 0;
  uint64_t tie = 0;
  friend auto operator<=>(const OrderKey&, const OrderKey&) = default;
  friend bool operator==(const OrderKey&, const OrderKey&) = default;
};

/// Returns the order key of a row from its order_by value and (timestamp order only) its key
/// value; nullopt when order_by is null or of another type.
std::optional<OrderKey> OrderKeyOf(const CqlValue& order_by, const CqlValue* key);

/// Returns the order key's time for "now minus grace" (`unix_micros`) in the unit of
/// `order_type` (timeuuid ticks or timestamp milliseconds), rounded down.
int64_t HorizonTime(CqlType order_type, int64_t unix_micros);

/// Encodes the cursor as the two source positions (partition 0: time, partition 1: tie as the
/// same 64 bits), and back.
std::vector<std::pair<int32_t, int64_t>> CursorPositions(const OrderKey& cursor);
OrderKey CursorFromPositions(int64_t time, int64_t tie);

/// Collects, from rows offered in any order, the `limit` smallest by OrderKey that are after
/// the cursor and whose time is at or before the horizon; Take() returns them sorted.
class PageSelector {
 public:
  PageSelector(std::optional<OrderKey> cursor, int64_t horizon_time, size_t limit)
      : cursor_(cursor), horizon_(horizon_time), limit_(limit) {}
  /// Returns true when a row with `key` would be kept now (to skip rendering the others).
  bool Wants(const OrderKey& key) const;
  /// Returns true when the row was kept (for now).
  bool Offer(const OrderKey& key, std::string payload);
  /// Returns the kept rows in order, and how many were left out as too recent.
  std::vector<std::pair<OrderKey, std::string>> Take();
  size_t too_recent() const { return too_recent_; }
  /// Rows whose key equalled another kept row's (a broken uniqueness assumption).
  size_t duplicates() const { return duplicates_; }

 private:
  std::optional<OrderKey> cursor_;
  int64_t horizon_;
  size_t limit_;
  size_t too_recent_ = 0;
  size_t duplicates_ = 0;
  std::vector<std::pair<OrderKey, std::string>> heap_;  ///< max-heap by key
};

/// How a bucket column is derived from a row's order_by time (the efficient layout,
/// `PRIMARY KEY ((bucket), order_by)`): buckets are `width_ms` wide and aligned on the Unix epoch,
/// bucket i covering [i * width, (i + 1) * width). The column holds, by its type:
/// bigint/int the index i; timestamp the bucket's start; text the start formatted with
/// `format` (strftime, UTC, e.g. "%Y-%m-%d" for days).
struct BucketScheme {
  CqlType type = CqlType::kBigint;
  int64_t width_ms = 86'400'000;
  std::string format;

  /// Returns the index of the bucket holding `unix_ms`.
  int64_t IndexOf(int64_t unix_ms) const;
  /// Returns the column value of bucket `index`.
  CqlValue Value(int64_t index) const;
  /// Returns the index whose Value() is `v`; nullopt for a value no bucket of this scheme has.
  std::optional<int64_t> IndexOfValue(const CqlValue& v) const;
};

/// Returns the Unix milliseconds of an order key's time (timeuuid ticks or timestamp millis),
/// rounded down.
int64_t OrderKeyUnixMillis(CqlType order_type, const OrderKey& key);

/// Returns the version-1 UUID whose OrderKey is `key` (the inverse of OrderKeyOf for timeuuids).
Uuid TimeUuidOf(const OrderKey& key);

/// Returns true when a read failed in a way that a smaller page may avoid (the server gave up
/// reading: too many tombstones, a read timeout or failure).
bool IsReadOverload(const Status& status);

}  // namespace cassandra

/// Reads new rows of a Cassandra table incrementally
/// (`uri = "cassandra://HOST:PORT/KEYSPACE/TABLE?order_by=create_time"`), in one of two ways:
///
/// - Buckets (`bucket=COLUMN`, for `PRIMARY KEY ((bucket), order_by[, key])`): reads the
///   cursor's bucket after the cursor, in the table's clustering order, with `LIMIT fetch_size`
///   per read; an exhausted bucket older than the horizon moves the read to the next bucket
///   (past a run of empty buckets by one `SELECT DISTINCT` of the buckets). Each poll costs one
///   bounded single-partition read.
/// - Scan (any other table, e.g. keyed by order_by alone): each scan pages through the whole
///   table (`fetch_size` rows a page, no filtering), keeps the `page_rows` smallest rows after
///   the cursor in the total order of cassandra::OrderKey and emits them sorted. A table scan
///   per `page_rows` rows; a warning at Open says so.
///
/// Rows newer than now minus `grace` (default 5 s) wait for a later read. The cursor (the last
/// emitted row's OrderKey) is the source's position: partitions 0 and 1, committed with the
/// results, so re-runs read each row exactly once. The order key must be unique per row (a
/// timeuuid column is; a timestamp column needs an integer `key` column to break ties).
///
/// A read the server gives up on (too many tombstones, a read timeout) is retried with half
/// the page size; under --until-caught-up, reads failing for `give_up_after` end the run with
/// an Aborted status (fatal to the worker) that carries the server's message.
///
/// Options: `order_by`, `key`, `bucket`, `bucket_width`, `bucket_format`, `grace`,
/// `page_rows` (scan, default 100000), `fetch_size` (rows per server page / bucket read,
/// default 5000), `consistency` (default local_quorum), `give_up_after` (default 2m),
/// `timeout` (default 12s), `password_file`. Each row becomes one NDJSON record of the
/// declared fields: timeuuid/uuid in canonical form, timestamps ISO-8601 UTC, nulls as null.
///
/// Lifecycle and threads: as every table source (connectors/table/table_util.h).
class CassandraTableSource : public Source {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config,
                                                           int max_instances);

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records,
                         std::chrono::milliseconds budget) override;
  std::string_view kind() const override { return "cassandra"; }
  DecoderOptions decoder_options() const override { return {}; }
  bool EndIsFinal() const override { return false; }
  std::vector<int32_t> Partitions() const override { return {0}; }
  std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const override;
  std::vector<SourceCounter> Counters() const override;
  /// Closes the connection and logs what the reading cost (reads, rows read, scans, buckets).
  void Close() override;

  struct Settings {
    cassandra::CassandraUri uri;
    std::string password_file;
    cassandra::ClientOptions client;
    cassandra::Consistency consistency = cassandra::Consistency::kLocalQuorum;
    std::vector<std::string> columns;  ///< the declared fields' column names
    std::string order_by;
    std::string key;
    std::string bucket;  ///< the bucket column; empty: the scan layout
    cassandra::BucketScheme scheme;  ///< type filled in by Connect()
    int64_t grace_micros = 5'000'000;
    int64_t page_rows = 100000;
    int32_t fetch_size = 5000;
    int64_t give_up_micros = 120'000'000;
  };

 private:
  explicit CassandraTableSource(Settings s) : settings_(std::move(s)) {}
  Status Connect();
  /// Continues the scan (scan layout) until it is complete or `deadline` passes.
  Status ScanStep(int64_t deadline_micros);
  /// Reads the next rows of the current bucket into buffer_, moving through buckets (bucket
  /// layout). Sets caught_up_ when nothing more is readable now.
  Status BucketStep(int64_t deadline_micros);
  /// Sets bucket_ to the smallest bucket in the table after bucket_ (the first one when
  /// bucket_ is unset), at most `limit`; nullopt limit: no bound. Returns false when none.
  Result<bool> JumpToNextBucket(std::optional<int64_t> limit);
  std::string SelectList() const;
  Status RenderRow(const std::vector<cassandra::CqlValue>& row, std::string* json);
  /// Records a failed read: halves the page size for overloads, and turns failures that
  /// lasted give_up_after (under --until-caught-up) into a fatal Aborted status.
  Status ReadFailed(Status s);

  struct Scan {
    std::optional<cassandra::PageSelector> selector;
    std::string paging_state;
    int64_t started_micros = 0;
    int64_t pages = 0;
    int64_t rows = 0;
    size_t null_order = 0;
  };

  struct Counts {
    std::atomic<int64_t> reads{0};       ///< requests for rows (pages, bucket reads)
    std::atomic<int64_t> rows_read{0};   ///< rows the server returned
    std::atomic<int64_t> scans{0};       ///< completed table scans (scan layout)
    std::atomic<int64_t> buckets{0};     ///< buckets moved past (bucket layout)
    std::atomic<int64_t> failures{0};    ///< failed reads
  };

  Settings settings_;
  SourceContext ctx_;
  std::unique_ptr<cassandra::Connection> conn_;
  cassandra::CqlType order_type_ = cassandra::CqlType::kTimeuuid;
  std::vector<std::string> select_;  ///< selected columns
  std::vector<size_t> field_slots_;  ///< declared column i is select_[field_slots_[i]]
  size_t order_slot_ = 0;
  std::optional<size_t> key_slot_;
  std::optional<cassandra::OrderKey> cursor_;
  std::vector<std::pair<cassandra::OrderKey, std::string>> buffer_;
  size_t buffer_pos_ = 0;
  int32_t page_size_ = 5000;  ///< fetch_size, halved after reads the server gave up on
  std::optional<Scan> scan_;
  std::optional<int64_t> bucket_;  ///< the bucket being read (bucket layout)
  int empty_buckets_ = 0;          ///< consecutive empty buckets walked
  bool caught_up_ = false;
  int64_t next_scan_micros_ = 0;  ///< steady micros before which an idle scan layout waits
  bool layout_warned_ = false;
  bool key_is_int_ = false;
  int64_t failing_since_ = 0;  ///< steady micros of the first failure in a row; 0: none
  std::vector<std::string> rendered_;
  std::vector<std::optional<std::string_view>> views_;
  Counts counts_;
};

}  // namespace sluice
