#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/cassandra/cql_client.h"
#include "runtime/source.h"

namespace sluice {

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

}  // namespace cassandra

/// Reads new rows of a Cassandra table incrementally
/// (`uri = "cassandra://HOST:PORT/KEYSPACE/TABLE?order_by=create_time"`).
///
/// Cassandra cannot scan a table in the order of a column, so each scan pages through the rows
/// after the cursor (`WHERE order_by >= bound ALLOW FILTERING`, or the whole table when the
/// server refuses that filter), keeps the `page_rows` smallest in the total order of
/// cassandra::OrderKey, and emits them sorted. Rows newer than now minus `grace` (default 5 s)
/// wait for a later scan. The cursor (the last emitted row's OrderKey) is the source's position:
/// partitions 0 and 1, committed with the results like the MySQL table source, so re-runs read
/// each row exactly once. The order key must be unique per row (a timeuuid column is; a
/// timestamp column needs an integer `key` column to break ties).
///
/// Options: `order_by` (timeuuid or timestamp column), `key` (int/bigint tie-break for a
/// timestamp order_by), `grace`, `page_rows` (default 10000), `fetch_size` (rows per server page,
/// default 5000), `consistency` (default local_quorum), `timeout` (default 12s),
/// `password_file`. Each row becomes one NDJSON record of the declared fields: timeuuid/uuid in
/// canonical form, timestamps ISO-8601 UTC, nulls as null.
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
  void Close() override { conn_.reset(); }

  struct Settings {
    cassandra::CassandraUri uri;
    std::string password_file;
    cassandra::ClientOptions client;
    cassandra::Consistency consistency = cassandra::Consistency::kLocalQuorum;
    std::vector<std::string> columns;  ///< the declared fields' column names
    std::string order_by;
    std::string key;
    int64_t grace_micros = 5'000'000;
    int64_t page_rows = 10000;
    int32_t fetch_size = 5000;
  };

 private:
  explicit CassandraTableSource(Settings s) : settings_(std::move(s)) {}
  Status Connect();
  Status Scan();
  std::string ScanCql(bool filtered) const;

  Settings settings_;
  SourceContext ctx_;
  std::unique_ptr<cassandra::Connection> conn_;
  cassandra::CqlType order_type_ = cassandra::CqlType::kTimeuuid;
  std::vector<std::string> select_;  ///< selected columns
  std::vector<size_t> field_slots_;  ///< declared column i is select_[field_slots_[i]]
  size_t order_slot_ = 0;
  std::optional<size_t> key_slot_;
  bool filter_refused_ = false;
  std::optional<cassandra::OrderKey> cursor_;
  std::vector<std::pair<cassandra::OrderKey, std::string>> buffer_;
  size_t buffer_pos_ = 0;
};

}  // namespace sluice
