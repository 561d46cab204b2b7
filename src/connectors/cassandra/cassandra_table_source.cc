#include "connectors/cassandra/cassandra_table_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "connectors/generator/generator_source.h"
#include "connectors/table/table_util.h"
#include "core/time.h"

namespace sluice {

namespace cassandra {
namespace {

constexpr int64_t kUuidEpochOffsetTicks = 0x01B21DD213814000LL;

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace

std::optional<OrderKey> OrderKeyOf(const CqlValue& order_by, const CqlValue* key) {
  if (order_by.kind() == CqlValue::Kind::kUuid) {
    if (order_by.uuid().version() != 1) return std::nullopt;
    return OrderKey{static_cast<int64_t>(order_by.uuid().TimeTicks()), order_by.uuid().LowBits()};
  }
  if (order_by.kind() == CqlValue::Kind::kTimestamp) {
    OrderKey k{order_by.int64(), 0};
    if (key != nullptr) {
      if (key->kind() != CqlValue::Kind::kInt && key->kind() != CqlValue::Kind::kBigint) {
        return std::nullopt;
      }
      // Flipping the sign bit maps signed order onto unsigned order.
      k.tie = static_cast<uint64_t>(key->int64()) ^ (uint64_t{1} << 63);
    }
    return k;
  }
  return std::nullopt;
}

int64_t HorizonTime(CqlType order_type, int64_t unix_micros) {
  if (order_type == CqlType::kTimeuuid) return unix_micros * 10 + kUuidEpochOffsetTicks;
  return FloorDiv(unix_micros, 1000);
}

std::vector<std::pair<int32_t, int64_t>> CursorPositions(const OrderKey& cursor) {
  return {{0, cursor.time}, {1, static_cast<int64_t>(cursor.tie)}};
}

OrderKey CursorFromPositions(int64_t time, int64_t tie) {
  return OrderKey{time, static_cast<uint64_t>(tie)};
}

bool PageSelector::Wants(const OrderKey& key) const {
  if (cursor_ && !(key > *cursor_)) return false;
  if (key.time > horizon_) return false;
  return heap_.size() < limit_ || key <= heap_.front().first;
}

bool PageSelector::Offer(const OrderKey& key, std::string payload) {
  if (cursor_ && !(key > *cursor_)) return false;
  if (key.time > horizon_) {
    ++too_recent_;
    return false;
  }
  auto less = [](const auto& a, const auto& b) { return a.first < b.first; };
  if (heap_.size() >= limit_) {
    if (limit_ == 0 || key > heap_.front().first) return false;
    if (key == heap_.front().first) {
      ++duplicates_;
      return false;
    }
    std::pop_heap(heap_.begin(), heap_.end(), less);
    heap_.pop_back();
  }
  heap_.emplace_back(key, std::move(payload));
  std::push_heap(heap_.begin(), heap_.end(), less);
  return true;
}

std::vector<std::pair<OrderKey, std::string>> PageSelector::Take() {
  auto less = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort_heap(heap_.begin(), heap_.end(), less);
  for (size_t i = 1; i < heap_.size(); ++i) {
    if (heap_[i].first == heap_[i - 1].first) ++duplicates_;
  }
  return std::move(heap_);
}

}  // namespace cassandra

using cassandra::CqlType;
using cassandra::CqlValue;
using cassandra::QuoteIdentifier;

namespace {
constexpr auto kIdleWait = std::chrono::milliseconds(500);
}  // namespace

Result<std::vector<std::unique_ptr<Source>>> CassandraTableSource::Make(const SourceConfig& config,
                                                                        int /*max_instances*/) {
  Options o = config.options;
  ASSIGN_OR_RETURN(std::string uri, TakeUriOptions(config.uri, &o));
  auto parsed = cassandra::ParseCassandraUri(uri, true);
  if (!parsed.ok()) {
    return Status::InvalidArgument(o.Where("uri") + ": " + parsed.status().message());
  }
  Settings s;
  s.uri = std::move(parsed).value();
  s.password_file = o.GetString("password_file");
  auto credentials = cassandra::ResolveCredentials(s.uri.user, s.password_file);
  if (!credentials.ok()) {
    return Status::InvalidArgument(o.Where("password_file") + ": " +
                                   credentials.status().message());
  }
  s.order_by = o.GetString("order_by");
  if (s.order_by.empty()) {
    return Status::InvalidArgument(o.Where("uri") +
                                   ": a cassandra source needs order_by (a timeuuid or timestamp "
                                   "column), e.g. ...?order_by=create_time");
  }
  s.key = o.GetString("key");
  ASSIGN_OR_RETURN(s.grace_micros, o.GetDurationMicros("grace", 5'000'000));
  ASSIGN_OR_RETURN(s.page_rows, o.GetInt("page_rows", 10000));
  ASSIGN_OR_RETURN(int64_t fetch, o.GetInt("fetch_size", 5000));
  ASSIGN_OR_RETURN(int64_t timeout, o.GetDurationMicros("timeout", 12 * kMicrosPerSecond));
  if (s.page_rows <= 0) {
    return Status::InvalidArgument(o.Where("page_rows") + ": page_rows must be positive");
  }
  if (fetch <= 0 || fetch > 1'000'000) {
    return Status::InvalidArgument(o.Where("fetch_size") + ": fetch_size must be 1..1000000");
  }
  if (s.grace_micros < 0) return Status::InvalidArgument(o.Where("grace") + ": negative grace");
  if (timeout < 100'000) {
    return Status::InvalidArgument(o.Where("timeout") + ": timeout must be at least 100ms");
  }
  std::string consistency = o.GetString("consistency", "local_quorum");
  if (!cassandra::ParseConsistency(consistency, &s.consistency)) {
    return Status::InvalidArgument(o.Where("consistency") + ": unknown consistency '" +
                                   consistency + "'");
  }
  s.fetch_size = static_cast<int32_t>(fetch);
  s.client.host = s.uri.host;
  s.client.port = s.uri.port;
  s.client.request_timeout = std::chrono::milliseconds(timeout / 1000);
  s.client.connect_timeout = std::chrono::milliseconds(std::min<int64_t>(timeout / 1000, 5000));
  s.client.max_in_flight = 1;
  for (const auto& f : config.fields) s.columns.push_back(f.source_path());
  IgnoreGeneratorOptions(o);
  RETURN_IF_ERROR(o.RejectUnconsumed("source"));
  std::vector<std::unique_ptr<Source>> out;
  // One reader: the cursor is one position, so the table is not split between workers.
  out.push_back(std::unique_ptr<Source>(new CassandraTableSource(std::move(s))));
  return out;
}

Status CassandraTableSource::Connect() {
  conn_.reset();
  ASSIGN_OR_RETURN(settings_.client.credentials,
                   cassandra::ResolveCredentials(settings_.uri.user, settings_.password_file));
  ASSIGN_OR_RETURN(conn_, cassandra::Connection::Open(settings_.client));
  const std::string where = "source cassandra " + settings_.uri.Display();
  cassandra::QueryOptions q;
  q.consistency = cassandra::Consistency::kOne;
  std::vector<CqlValue> args = {CqlValue::Text(settings_.uri.keyspace),
                                CqlValue::Text(settings_.uri.table)};
  ASSIGN_OR_RETURN(cassandra::QueryResult r,
                   conn_->QueryAllPages("SELECT column_name, type FROM system_schema.columns "
                                        "WHERE keyspace_name = ? AND table_name = ?",
                                        args, q));
  if (r.rows.empty()) return Status::InvalidArgument(where + ": the table does not exist");
  auto type_of = [&](const std::string& name) -> std::optional<std::string> {
    for (const auto& row : r.rows) {
      if (row.size() == 2 && row[0].text() == name) return row[1].text();
    }
    return std::nullopt;
  };
  for (const auto& c : settings_.columns) {
    if (!type_of(c)) {
      return Status::InvalidArgument(where + ": no column " + c + " (a declared field)");
    }
  }
  auto order = type_of(settings_.order_by);
  if (!order) return Status::InvalidArgument(where + ": no order_by column " + settings_.order_by);
  if (*order == "timeuuid") {
    order_type_ = CqlType::kTimeuuid;
    if (!settings_.key.empty()) {
      return Status::InvalidArgument(where +
                                     ": key is only for a timestamp order_by; a timeuuid "
                                     "orders rows by itself (time, then clock sequence and node)");
    }
  } else if (*order == "timestamp") {
    order_type_ = CqlType::kTimestamp;
  } else {
    return Status::InvalidArgument(where + ": order_by column " + settings_.order_by + " is " +
                                   *order + "; it must be a timeuuid or a timestamp");
  }
  if (!settings_.key.empty()) {
    auto key = type_of(settings_.key);
    if (!key || (*key != "int" && *key != "bigint")) {
      return Status::InvalidArgument(where + ": key column " + settings_.key +
                                     " must be an int or bigint column");
    }
  }
  select_.clear();
  field_slots_.clear();
  auto slot_of = [&](const std::string& name) {
    auto it = std::find(select_.begin(), select_.end(), name);
    if (it != select_.end()) return static_cast<size_t>(it - select_.begin());
    select_.push_back(name);
    return select_.size() - 1;
  };
  for (const auto& c : settings_.columns) field_slots_.push_back(slot_of(c));
  order_slot_ = slot_of(settings_.order_by);
  key_slot_.reset();
  if (!settings_.key.empty()) key_slot_ = slot_of(settings_.key);
  return Status::OK();
}

Status CassandraTableSource::Open(const SourceContext& ctx) {
  ctx_ = ctx;
  RETURN_IF_ERROR(Connect());
  cursor_.reset();
  if (auto time = ctx.committed_position(0)) {
    cursor_ = cassandra::CursorFromPositions(*time, ctx.committed_position(1).value_or(0));
  }
  buffer_.clear();
  buffer_pos_ = 0;
  spdlog::info("source cassandra {}: reading by {} {}", settings_.uri.Display(), settings_.order_by,
               cursor_ ? "after the committed cursor" : "from the start");
  return Status::OK();
}

std::string CassandraTableSource::ScanCql(bool filtered) const {
  std::string cql = "SELECT ";
  for (size_t i = 0; i < select_.size(); ++i) cql += (i ? ", " : "") + QuoteIdentifier(select_[i]);
  cql += " FROM " + QuoteIdentifier(settings_.uri.keyspace) + "." +
         QuoteIdentifier(settings_.uri.table);
  if (filtered) {
    const std::string col = QuoteIdentifier(settings_.order_by);
    cql += " WHERE " + col + (order_type_ == CqlType::kTimeuuid ? " >= minTimeuuid(?)" : " >= ?") +
           " ALLOW FILTERING";
  }
  return cql;
}

Status CassandraTableSource::Scan() {
  const int64_t horizon =
      cassandra::HorizonTime(order_type_, WallClockMicros() - settings_.grace_micros);
  cassandra::PageSelector selector(cursor_, horizon, static_cast<size_t>(settings_.page_rows));
  // A bound at or below the cursor, in milliseconds (minTimeuuid's unit rounds down).
  std::vector<CqlValue> bound;
  bool filtered = cursor_.has_value() && !filter_refused_;
  if (filtered) {
    int64_t millis = order_type_ == CqlType::kTimeuuid
                         ? (cursor_->time - 0x01B21DD213814000LL) / 10 / 1000 - 1
                         : cursor_->time;
    bound.push_back(CqlValue::Timestamp(millis));
  }
  cassandra::QueryOptions q;
  q.consistency = settings_.consistency;
  q.page_size = settings_.fetch_size;
  std::vector<std::string> rendered(settings_.columns.size());
  std::vector<std::optional<std::string_view>> views(settings_.columns.size());
  size_t null_order = 0;
  std::string json;
  while (true) {
    auto page = conn_->Query(ScanCql(filtered), filtered ? bound : std::vector<CqlValue>{}, q);
    if (!page.ok()) {
      if (filtered && q.paging_state.empty() &&
          page.status().code() == StatusCode::kInvalidArgument) {
        spdlog::warn(
            "source cassandra {}: the server refuses to filter on {} ({}); scanning "
            "the whole table each time instead",
            settings_.uri.Display(), settings_.order_by, page.status().message());
        filter_refused_ = true;
        filtered = false;
        continue;
      }
      return page.status();
    }
    for (const auto& row : page->rows) {
      if (row.size() != select_.size()) {
        return Status::Internal("source cassandra: a row has the wrong number of columns");
      }
      auto key = cassandra::OrderKeyOf(row[order_slot_], key_slot_ ? &row[*key_slot_] : nullptr);
      if (!key) {
        ++null_order;
        continue;
      }
      if (!selector.Wants(*key)) {
        selector.Offer(*key, std::string());  // counts the too-recent ones
        continue;
      }
      for (size_t i = 0; i < field_slots_.size(); ++i) {
        const CqlValue& v = row[field_slots_[i]];
        if (v.is_null()) {
          views[i].reset();
        } else {
          rendered[i] = v.ToString();
          views[i] = rendered[i];
        }
      }
      json.clear();
      AppendJsonRow(settings_.columns, views, &json);
      selector.Offer(*key, json);
    }
    if (!page->paging_state || page->paging_state->empty()) break;
    q.paging_state = *page->paging_state;
  }
  buffer_ = selector.Take();
  buffer_pos_ = 0;
  if (null_order > 0) {
    spdlog::warn("source cassandra {}: {} row(s) without a usable {} (null{}) are not read",
                 settings_.uri.Display(), null_order, settings_.order_by,
                 key_slot_ ? " or a null key" : "");
  }
  if (selector.duplicates() > 0) {
    spdlog::warn(
        "source cassandra {}: {} row(s) share their ({}{}) with another row; only "
        "one of each is read (the order must be unique)",
        settings_.uri.Display(), selector.duplicates(), settings_.order_by,
        key_slot_ ? ", " + settings_.key : std::string());
  }
  return Status::OK();
}

Result<PollState> CassandraTableSource::Poll(RawBatch* out, size_t max_records,
                                             std::chrono::milliseconds budget) {
  if (!conn_ || conn_->broken()) {
    Status s = Connect();
    if (!s.ok()) {
      conn_.reset();
      return s;
    }
  }
  if (buffer_pos_ >= buffer_.size()) {
    Status s = Scan();
    if (!s.ok()) {
      if (conn_ && conn_->broken()) conn_.reset();
      buffer_.clear();
      buffer_pos_ = 0;
      return s;
    }
  }
  size_t emitted = 0;
  while (buffer_pos_ < buffer_.size() && emitted < max_records) {
    auto& [key, payload] = buffer_[buffer_pos_++];
    RawRecord& rec = out->Append(payload);
    rec.partition = 0;
    rec.offset = key.time;
    rec.next_offset = key.time;
    cursor_ = key;
    ++emitted;
  }
  if (buffer_pos_ >= buffer_.size()) {
    buffer_.clear();
    buffer_pos_ = 0;
  }
  if (emitted > 0) return PollState::kData;
  if (ctx_.until_caught_up) return PollState::kEnd;
  std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(budget, kIdleWait));
  return PollState::kIdle;
}

std::vector<std::pair<int32_t, int64_t>> CassandraTableSource::PositionsAfterBatch() const {
  if (!cursor_) return {};
  return cassandra::CursorPositions(*cursor_);
}

}  // namespace sluice
