#include "connectors/cassandra/cassandra_table_source.h"

#include <spdlog/spdlog.h>

#include <time.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <thread>

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

int64_t BucketScheme::IndexOf(int64_t unix_ms) const { return FloorDiv(unix_ms, width_ms); }

CqlValue BucketScheme::Value(int64_t index) const {
  const int64_t start_ms = index * width_ms;
  switch (type) {
    case CqlType::kInt:
      return CqlValue::Int(static_cast<int32_t>(index));
    case CqlType::kTimestamp:
      return CqlValue::Timestamp(start_ms);
    case CqlType::kVarchar:
    case CqlType::kAscii: {
      time_t secs = static_cast<time_t>(FloorDiv(start_ms, 1000));
      struct tm tm {};
      gmtime_r(&secs, &tm);
      char buf[128];
      size_t n = std::strftime(buf, sizeof(buf), format.c_str(), &tm);
      return CqlValue::Text(std::string(buf, n));
    }
    default:
      return CqlValue::Bigint(index);
  }
}

std::optional<int64_t> BucketScheme::IndexOfValue(const CqlValue& v) const {
  std::optional<int64_t> index;
  switch (v.kind()) {
    case CqlValue::Kind::kInt:
    case CqlValue::Kind::kBigint:
      index = v.int64();
      break;
    case CqlValue::Kind::kTimestamp:
      index = FloorDiv(v.int64(), width_ms);
      break;
    case CqlValue::Kind::kText: {
      struct tm tm {};
      const char* end = strptime(v.text().c_str(), format.c_str(), &tm);
      if (end == nullptr || *end != '\0') return std::nullopt;
      index = FloorDiv(static_cast<int64_t>(timegm(&tm)) * 1000, width_ms);
      break;
    }
    default:
      return std::nullopt;
  }
  // Only the exact value of a bucket counts (a timestamp not at a bucket's start, a text that
  // formats differently, e.g. without its leading zeros, belongs to no bucket of this scheme).
  CqlValue back = Value(*index);
  if (back.kind() != v.kind()) return std::nullopt;
  if (v.kind() == CqlValue::Kind::kText ? back.text() != v.text() : back.int64() != v.int64()) {
    return std::nullopt;
  }
  return index;
}

int64_t OrderKeyUnixMillis(CqlType order_type, const OrderKey& key) {
  if (order_type == CqlType::kTimeuuid) return FloorDiv(key.time - kUuidEpochOffsetTicks, 10'000);
  return key.time;
}

Uuid TimeUuidOf(const OrderKey& key) {
  const uint64_t t = static_cast<uint64_t>(key.time);
  const uint64_t msb = ((t & 0xFFFFFFFFULL) << 32) | (((t >> 32) & 0xFFFFULL) << 16) |
                       ((t >> 48) & 0x0FFFULL) | 0x1000ULL;
  Uuid u;
  for (int i = 0; i < 8; ++i) {
    u.bytes[i] = static_cast<uint8_t>(msb >> (56 - 8 * i));
    u.bytes[8 + i] = static_cast<uint8_t>(key.tie >> (56 - 8 * i));
  }
  return u;
}

bool IsReadOverload(const Status& status) {
  auto code = ErrorCodeOf(status);
  return code && (*code == static_cast<int32_t>(ErrorCode::kReadTimeout) ||
                  *code == static_cast<int32_t>(ErrorCode::kReadFailure));
}

}  // namespace cassandra

using cassandra::CqlType;
using cassandra::CqlValue;
using cassandra::QuoteIdentifier;

namespace {
constexpr auto kIdleWait = std::chrono::milliseconds(500);
/// The smallest page a read the server gave up on is retried with.
constexpr int32_t kMinPageSize = 16;
/// Empty buckets walked one read each before one SELECT DISTINCT finds the next bucket.
constexpr int kEmptyBucketsBeforeJump = 16;
/// Time a Poll may spend reading before it returns (the worker polls again at once).
constexpr int64_t kPollWorkMicros = 1'000'000;

std::string Seconds(int64_t micros) {
  return std::to_string(micros / kMicrosPerSecond) + "s";
}
}  // namespace

const OptionTable& CassandraTableSourceOptions() {
  using T = OptionType;
  static const OptionTable kTable{
      .uri = "cassandra://[USER@]HOST[:PORT]/KEYSPACE/TABLE?order_by=COLUMN",
      .summary = "A Cassandra table read incrementally by a `timeuuid` or `timestamp` column, bucket "
                 "by bucket when it is keyed by a time bucket. Options may also be written in the "
                 "URI's query.",
      .options = {
          {.name = "password_file",
           .type = OptionType::kPath,
           .default_note = "`SLUICE_CASSANDRA_PASSWORD_FILE`",
           .help = "File holding the password of the URI's user (else `SLUICE_CASSANDRA_PASSWORD`)."},
          {.name = "order_by", .help = "The timeuuid or timestamp column rows are read in order of (required)."},
          {.name = "key", .help = "int/bigint tie-break for a timestamp `order_by`."},
          {.name = "bucket", .help = "The time-bucket partition key column of `PRIMARY KEY ((bucket), order_by)` (the bucket layout); unset: the table is scanned."},
          {.name = "bucket_width",
           .type = T::kDuration,
           .help = "Width of a bucket in whole seconds (`1h`, `1d`), buckets starting at multiples of "
                   "it since 1970-01-01T00:00:00Z, as the table's writer computes it."},
          {.name = "bucket_format", .help = "strftime format (UTC) of a text bucket column (`%Y-%m-%d`); required for a text bucket."},
          {.name = "grace", .type = T::kDuration, .default_value = "5s", .help = "How long rows may arrive after their time; newer rows are left for the next poll."},
          {.name = "page_rows", .type = T::kInt, .default_value = "100000", .help = "Rows kept per scan (scan layout; memory bound: about 300 bytes each)."},
          {.name = "fetch_size", .type = T::kInt, .default_value = "5000", .help = "Rows per server page (scan) or per bucket read, 16..100000."},
          {.name = "timeout", .type = T::kDuration, .default_value = "12s", .help = "Connect and request timeout; at least 100ms."},
          {.name = "give_up_after",
           .type = T::kDuration,
           .default_value = "2m",
           .help = "Under `--until-caught-up`, reads failing this long end the run (exit 1)."},
          {.name = "consistency",
           .default_value = "local_quorum",
           .allowed = {"one", "two", "three", "quorum", "all", "local_quorum", "local_one"},
           .help = "Read consistency level."},
      }};
  return kTable;
}

Result<std::vector<std::unique_ptr<Source>>> CassandraTableSource::Make(const SourceConfig& config,
                                                                        int /*max_instances*/) {
  Options options = config.options;
  ASSIGN_OR_RETURN(std::string uri, TakeUriOptions(config.uri, &options));
  OptionReader o(options, CassandraTableSourceOptions(), "source");
  auto parsed = cassandra::ParseCassandraUri(uri, true);
  if (!parsed.ok()) {
    return Status::InvalidArgument(o.Where("uri") + ": " + parsed.status().message());
  }
  Settings s;
  s.uri = std::move(parsed).value();
  s.password_file = o.String("password_file");
  auto credentials = cassandra::ResolveCredentials(s.uri.user, s.password_file);
  if (!credentials.ok()) {
    return Status::InvalidArgument(o.Where("password_file") + ": " +
                                   credentials.status().message());
  }
  s.order_by = o.String("order_by");
  if (s.order_by.empty()) {
    return Status::InvalidArgument(o.Where("uri") +
                                   ": a cassandra source needs order_by (a timeuuid or timestamp "
                                   "column), e.g. ...?order_by=create_time");
  }
  s.key = o.String("key");
  s.bucket = o.String("bucket");
  ASSIGN_OR_RETURN(int64_t width, o.Duration("bucket_width"));
  s.scheme.format = o.String("bucket_format");
  if (s.bucket.empty()) {
    if (width != 0 || !s.scheme.format.empty()) {
      return Status::InvalidArgument(o.Where("bucket_width") +
                                     ": bucket_width and bucket_format need bucket (the time "
                                     "bucket column of PRIMARY KEY ((bucket), order_by))");
    }
  } else {
    if (width <= 0 || width % kMicrosPerSecond != 0) {
      return Status::InvalidArgument(
          o.Where("bucket") +
          ": bucket needs bucket_width, the width of a bucket in whole seconds (e.g. 1h or 1d; "
          "buckets start at multiples of it since 1970-01-01T00:00:00Z), as the table's writer "
          "computes it");
    }
    s.scheme.width_ms = width / 1000;
  }
  ASSIGN_OR_RETURN(s.grace_micros, o.Duration("grace"));
  ASSIGN_OR_RETURN(s.page_rows, o.Int("page_rows"));
  ASSIGN_OR_RETURN(int64_t fetch, o.Int("fetch_size"));
  ASSIGN_OR_RETURN(int64_t timeout, o.Duration("timeout"));
  ASSIGN_OR_RETURN(s.give_up_micros,
                   o.Duration("give_up_after"));
  if (s.page_rows <= 0) {
    return Status::InvalidArgument(o.Where("page_rows") + ": page_rows must be positive");
  }
  if (fetch < kMinPageSize || fetch > 100'000) {
    return Status::InvalidArgument(o.Where("fetch_size") + ": fetch_size must be " +
                                   std::to_string(kMinPageSize) + "..100000");
  }
  if (s.grace_micros < 0) return Status::InvalidArgument(o.Where("grace") + ": negative grace");
  if (timeout < 100'000) {
    return Status::InvalidArgument(o.Where("timeout") + ": timeout must be at least 100ms");
  }
  if (s.give_up_micros <= 0) {
    return Status::InvalidArgument(o.Where("give_up_after") + ": give_up_after must be positive");
  }
  std::string consistency = o.String("consistency");
  if (!cassandra::ParseConsistency(consistency, &s.consistency) ||
      s.consistency == cassandra::Consistency::kAny ||
      s.consistency == cassandra::Consistency::kEachQuorum) {
    return Status::InvalidArgument(o.Where("consistency") + ": '" + consistency +
                                   "' is not a read consistency (one, two, three, quorum, all, "
                                   "local_quorum, local_one)");
  }
  s.fetch_size = static_cast<int32_t>(fetch);
  s.client.host = s.uri.host;
  s.client.port = s.uri.port;
  s.client.request_timeout = std::chrono::milliseconds(timeout / 1000);
  s.client.connect_timeout = std::chrono::milliseconds(std::min<int64_t>(timeout / 1000, 5000));
  s.client.max_in_flight = 1;
  for (const auto& f : config.fields) s.columns.push_back(f.source_path());
  RETURN_IF_ERROR(o.Finish());
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
                   conn_->QueryAllPages("SELECT column_name, type, kind, position, "
                                        "clustering_order FROM system_schema.columns "
                                        "WHERE keyspace_name = ? AND table_name = ?",
                                        args, q));
  if (r.rows.empty()) return Status::InvalidArgument(where + ": the table does not exist");
  struct Column {
    std::string type, kind, order;
    int position = 0;
  };
  std::map<std::string, Column> columns;
  std::vector<std::string> partition_key, clustering;
  for (const auto& row : r.rows) {
    if (row.size() != 5) return Status::Internal(where + ": unexpected system_schema row");
    Column c{row[1].text(), row[2].text(), row[4].text(),
             row[3].is_null() ? 0 : static_cast<int>(row[3].int64())};
    std::vector<std::string>* list = c.kind == "partition_key" ? &partition_key
                                     : c.kind == "clustering"  ? &clustering
                                                               : nullptr;
    if (list) {
      if (list->size() <= static_cast<size_t>(c.position)) list->resize(c.position + 1);
      (*list)[c.position] = row[0].text();
    }
    columns[row[0].text()] = std::move(c);
  }
  auto type_of = [&](const std::string& name) -> std::optional<std::string> {
    auto it = columns.find(name);
    if (it == columns.end()) return std::nullopt;
    return it->second.type;
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
    key_is_int_ = *key == "int";
  }
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  if (!settings_.bucket.empty()) {
    // The bucket layout: PRIMARY KEY ((bucket), order_by[, key]), ascending.
    std::vector<std::string> want_clustering = {settings_.order_by};
    if (!settings_.key.empty()) want_clustering.push_back(settings_.key);
    if (partition_key != std::vector<std::string>{settings_.bucket} ||
        clustering != want_clustering) {
      return Status::InvalidArgument(
          where + ": bucket=" + settings_.bucket + " reads a table with PRIMARY KEY ((" +
          settings_.bucket + "), " + join(want_clustering) + "); this one has PRIMARY KEY ((" +
          join(partition_key) + ")" + (clustering.empty() ? "" : ", " + join(clustering)) + ")");
    }
    for (const auto& c : want_clustering) {
      if (columns[c].order != "asc") {
        return Status::InvalidArgument(where + ": clustering column " + c +
                                       " is in descending order; the bucket layout reads "
                                       "ascending clustering (CLUSTERING ORDER BY (" + c +
                                       " ASC))");
      }
    }
    const std::string& t = columns[settings_.bucket].type;
    if (t == "bigint") {
      settings_.scheme.type = CqlType::kBigint;
    } else if (t == "int") {
      settings_.scheme.type = CqlType::kInt;
    } else if (t == "timestamp") {
      settings_.scheme.type = CqlType::kTimestamp;
    } else if (t == "text" || t == "varchar" || t == "ascii") {
      settings_.scheme.type = CqlType::kVarchar;
    } else {
      return Status::InvalidArgument(where + ": bucket column " + settings_.bucket + " is " + t +
                                     "; it must be bigint or int (the bucket number), timestamp "
                                     "(the bucket's start) or text (with bucket_format)");
    }
    if ((settings_.scheme.type == CqlType::kVarchar) == settings_.scheme.format.empty()) {
      return Status::InvalidArgument(
          where + ": " +
          (settings_.scheme.format.empty()
               ? "a text bucket column needs bucket_format, the strftime format of the bucket's "
                 "start in UTC (e.g. %Y-%m-%d)"
               : "bucket_format is only for a text bucket column; " + settings_.bucket + " is " +
                     t));
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
  rendered_.assign(settings_.columns.size(), std::string());
  views_.assign(settings_.columns.size(), std::nullopt);
  if (settings_.bucket.empty() && !layout_warned_) {
    layout_warned_ = true;
    const bool clustered =
        std::find(clustering.begin(), clustering.end(), settings_.order_by) != clustering.end();
    spdlog::warn(
        "source cassandra {}: PRIMARY KEY (({}){}) is not read in {} order, so each poll "
        "scans the whole table ({} rows a page) to find the next {} rows after the cursor: "
        "the cost of a poll grows with the table. For a raw store use a time-bucket partition "
        "key with {} clustering, PRIMARY KEY ((bucket), {}), and read it with bucket=... "
        "bucket_width=... (see the cassandra connector's README)",
        settings_.uri.Display(), join(partition_key),
        clustering.empty() ? "" : ", " + join(clustering), settings_.order_by, page_size_,
        settings_.page_rows, settings_.order_by, settings_.order_by);
    if (clustered) {
      spdlog::warn("source cassandra {}: {} is a clustering column; if the partition key is a "
                   "time bucket, bucket=<its column> reads the table without scanning it",
                   settings_.uri.Display(), settings_.order_by);
    }
  }
  return Status::OK();
}

Status CassandraTableSource::Open(const SourceContext& ctx) {
  ctx_ = ctx;
  page_size_ = settings_.fetch_size;
  RETURN_IF_ERROR(Connect());
  cursor_.reset();
  if (auto time = ctx.committed_position(0)) {
    cursor_ = cassandra::CursorFromPositions(*time, ctx.committed_position(1).value_or(0));
  }
  buffer_.clear();
  buffer_pos_ = 0;
  scan_.reset();
  bucket_.reset();
  empty_buckets_ = 0;
  failing_since_ = 0;
  if (!settings_.bucket.empty() && cursor_) {
    bucket_ = settings_.scheme.IndexOf(cassandra::OrderKeyUnixMillis(order_type_, *cursor_));
  }
  spdlog::info("source cassandra {}: reading by {} {}, {}", settings_.uri.Display(),
               settings_.order_by, cursor_ ? "after the committed cursor" : "from the start",
               settings_.bucket.empty()
                   ? "scanning the table"
                   : "bucket by bucket (" + settings_.bucket + ", " +
                         std::to_string(settings_.scheme.width_ms / 1000) + "s wide)" +
                         (bucket_ ? ", from bucket " + settings_.scheme.Value(*bucket_).ToString()
                                  : std::string()));
  return Status::OK();
}

std::string CassandraTableSource::SelectList() const {
  std::string cql;
  for (size_t i = 0; i < select_.size(); ++i) cql += (i ? ", " : "") + QuoteIdentifier(select_[i]);
  return cql;
}

Status CassandraTableSource::RenderRow(const std::vector<CqlValue>& row, std::string* json) {
  for (size_t i = 0; i < field_slots_.size(); ++i) {
    const CqlValue& v = row[field_slots_[i]];
    if (v.is_null()) {
      views_[i].reset();
    } else {
      rendered_[i] = v.ToString();
      views_[i] = rendered_[i];
    }
  }
  json->clear();
  AppendJsonRow(settings_.columns, views_, json);
  return Status::OK();
}

Status CassandraTableSource::ReadFailed(Status s) {
  counts_.failures.fetch_add(1, std::memory_order_relaxed);
  if (conn_ && conn_->broken()) conn_.reset();
  const int64_t now = SteadyClockMicros();
  if (failing_since_ == 0) failing_since_ = now;
  if (cassandra::IsReadOverload(s) && page_size_ > kMinPageSize) {
    page_size_ = std::max(kMinPageSize, page_size_ / 2);
    spdlog::warn("source cassandra {}: the server gave up on a read; reading {} rows a page now",
                 settings_.uri.Display(), page_size_);
  }
  if (ctx_.until_caught_up && now - failing_since_ >= settings_.give_up_micros) {
    return Status::Aborted("source cassandra " + settings_.uri.Display() +
                           ": reads have failed for " + Seconds(now - failing_since_) +
                           " (give_up_after " + Seconds(settings_.give_up_micros) +
                           "); giving up. Last error: " + s.message());
  }
  return s;
}

Status CassandraTableSource::ScanStep(int64_t deadline_micros) {
  if (!scan_) {
    scan_.emplace();
    const int64_t horizon =
        cassandra::HorizonTime(order_type_, WallClockMicros() - settings_.grace_micros);
    scan_->selector.emplace(cursor_, horizon, static_cast<size_t>(settings_.page_rows));
    scan_->started_micros = SteadyClockMicros();
  }
  Scan& scan = *scan_;
  const std::string cql = "SELECT " + SelectList() + " FROM " +
                          QuoteIdentifier(settings_.uri.keyspace) + "." +
                          QuoteIdentifier(settings_.uri.table);
  std::string json;
  while (true) {
    cassandra::QueryOptions q;
    q.consistency = settings_.consistency;
    q.page_size = page_size_;
    q.paging_state = scan.paging_state;
    // A failed page is asked for again from the same paging state: the scan goes on where it
    // was, not from the start.
    auto page = conn_->Query(cql, {}, q);
    if (!page.ok()) return page.status();
    failing_since_ = 0;
    ++scan.pages;
    scan.rows += static_cast<int64_t>(page->rows.size());
    counts_.reads.fetch_add(1, std::memory_order_relaxed);
    counts_.rows_read.fetch_add(static_cast<int64_t>(page->rows.size()),
                                std::memory_order_relaxed);
    for (const auto& row : page->rows) {
      if (row.size() != select_.size()) {
        return Status::Internal("source cassandra: a row has the wrong number of columns");
      }
      auto key = cassandra::OrderKeyOf(row[order_slot_], key_slot_ ? &row[*key_slot_] : nullptr);
      if (!key) {
        ++scan.null_order;
        continue;
      }
      if (!scan.selector->Wants(*key)) {
        scan.selector->Offer(*key, std::string());  // counts the too-recent ones
        continue;
      }
      RETURN_IF_ERROR(RenderRow(row, &json));
      scan.selector->Offer(*key, json);
    }
    if (!page->paging_state || page->paging_state->empty()) break;
    scan.paging_state = *page->paging_state;
    if (SteadyClockMicros() >= deadline_micros) return Status::OK();  // more next poll
  }
  buffer_ = scan.selector->Take();
  buffer_pos_ = 0;
  counts_.scans.fetch_add(1, std::memory_order_relaxed);
  spdlog::info(
      "source cassandra {}: scanned the table: {} rows in {} pages, {} ms; {} to read{}",
      settings_.uri.Display(), scan.rows, scan.pages,
      (SteadyClockMicros() - scan.started_micros) / 1000, buffer_.size(),
      scan.selector->too_recent() ? " (" + std::to_string(scan.selector->too_recent()) +
                                        " newer than the grace horizon wait)"
                                  : std::string());
  if (scan.null_order > 0) {
    spdlog::warn("source cassandra {}: {} row(s) without a usable {} (null{}) are not read",
                 settings_.uri.Display(), scan.null_order, settings_.order_by,
                 key_slot_ ? " or a null key" : "");
  }
  if (scan.selector->duplicates() > 0) {
    spdlog::warn(
        "source cassandra {}: {} row(s) share their ({}{}) with another row; only "
        "one of each is read (the order must be unique)",
        settings_.uri.Display(), scan.selector->duplicates(), settings_.order_by,
        key_slot_ ? ", " + settings_.key : std::string());
  }
  caught_up_ = buffer_.empty();
  if (caught_up_) {
    // Nothing new: the next scan waits three times as long as this one took (at least the idle
    // wait), so an idle source keeps its share of the server's reads at about a quarter.
    const int64_t took = SteadyClockMicros() - scan.started_micros;
    next_scan_micros_ =
        SteadyClockMicros() + std::max<int64_t>(3 * took, int64_t{kIdleWait.count()} * 1000);
  }
  scan_.reset();
  return Status::OK();
}

Result<bool> CassandraTableSource::JumpToNextBucket(std::optional<int64_t> limit) {
  cassandra::QueryOptions q;
  q.consistency = settings_.consistency;
  q.page_size = 1000;
  const std::string cql = "SELECT DISTINCT " + QuoteIdentifier(settings_.bucket) + " FROM " +
                          QuoteIdentifier(settings_.uri.keyspace) + "." +
                          QuoteIdentifier(settings_.uri.table);
  std::optional<int64_t> next;
  size_t foreign = 0;
  std::string example;
  while (true) {
    auto page = conn_->Query(cql, {}, q);
    if (!page.ok()) return page.status();
    counts_.reads.fetch_add(1, std::memory_order_relaxed);
    for (const auto& row : page->rows) {
      if (row.empty() || row[0].is_null()) continue;
      auto index = settings_.scheme.IndexOfValue(row[0]);
      if (!index) {
        if (foreign++ == 0) example = row[0].ToString();
        continue;
      }
      if (bucket_ && *index <= *bucket_) continue;
      if (!next || *index < *next) next = index;
    }
    if (!page->paging_state || page->paging_state->empty()) break;
    q.paging_state = *page->paging_state;
  }
  if (foreign > 0) {
    spdlog::warn("source cassandra {}: {} bucket value(s) such as '{}' are not the start of a "
                 "bucket of width {}s{}; their rows are not read",
                 settings_.uri.Display(), foreign, example, settings_.scheme.width_ms / 1000,
                 settings_.scheme.format.empty() ? "" : " formatted " + settings_.scheme.format);
  }
  if (!next) return false;
  if (limit && *next > *limit) next = limit;
  if (bucket_ && *next > *bucket_ + 1) {
    spdlog::info("source cassandra {}: skipping empty buckets {} .. {}", settings_.uri.Display(),
                 settings_.scheme.Value(*bucket_ + 1).ToString(),
                 settings_.scheme.Value(*next - 1).ToString());
  }
  bucket_ = next;
  return true;
}

Status CassandraTableSource::BucketStep(int64_t deadline_micros) {
  const int64_t horizon =
      cassandra::HorizonTime(order_type_, WallClockMicros() - settings_.grace_micros);
  const int64_t horizon_bucket = settings_.scheme.IndexOf(
      cassandra::OrderKeyUnixMillis(order_type_, cassandra::OrderKey{horizon, 0}));
  caught_up_ = false;
  if (!bucket_) {
    // A first run: start at the oldest bucket in the table (found after the horizon was taken:
    // a bucket with rows at or before it exists by now).
    ASSIGN_OR_RETURN(bool found, JumpToNextBucket(std::nullopt));
    failing_since_ = 0;
    if (!found) {
      caught_up_ = true;  // an empty table
      return Status::OK();
    }
  }
  const std::string table =
      QuoteIdentifier(settings_.uri.keyspace) + "." + QuoteIdentifier(settings_.uri.table);
  std::string json;
  while (SteadyClockMicros() < deadline_micros) {
    const bool after_cursor =
        cursor_ &&
        settings_.scheme.IndexOf(cassandra::OrderKeyUnixMillis(order_type_, *cursor_)) == *bucket_;
    std::string cql = "SELECT " + SelectList() + " FROM " + table + " WHERE " +
                      QuoteIdentifier(settings_.bucket) + " = ?";
    std::vector<CqlValue> values = {settings_.scheme.Value(*bucket_)};
    if (after_cursor) {
      if (order_type_ == CqlType::kTimeuuid) {
        cql += " AND " + QuoteIdentifier(settings_.order_by) + " > ?";
        values.push_back(CqlValue::FromUuid(cassandra::TimeUuidOf(*cursor_)));
      } else if (key_slot_) {
        cql += " AND (" + QuoteIdentifier(settings_.order_by) + ", " +
               QuoteIdentifier(settings_.key) + ") > (?, ?)";
        values.push_back(CqlValue::Timestamp(cursor_->time));
        const auto key = static_cast<int64_t>(cursor_->tie ^ (uint64_t{1} << 63));
        values.push_back(key_is_int_ ? CqlValue::Int(static_cast<int32_t>(key))
                                     : CqlValue::Bigint(key));
      } else {
        cql += " AND " + QuoteIdentifier(settings_.order_by) + " > ?";
        values.push_back(CqlValue::Timestamp(cursor_->time));
      }
    }
    cql += " LIMIT " + std::to_string(page_size_);
    cassandra::QueryOptions q;
    q.consistency = settings_.consistency;
    q.page_size = page_size_;
    auto page = conn_->Query(cql, values, q);
    if (!page.ok()) return page.status();
    failing_since_ = 0;
    counts_.reads.fetch_add(1, std::memory_order_relaxed);
    counts_.rows_read.fetch_add(static_cast<int64_t>(page->rows.size()),
                                std::memory_order_relaxed);
    bool too_recent = false;
    for (const auto& row : page->rows) {
      if (row.size() != select_.size()) {
        return Status::Internal("source cassandra: a row has the wrong number of columns");
      }
      auto key = cassandra::OrderKeyOf(row[order_slot_], key_slot_ ? &row[*key_slot_] : nullptr);
      if (!key) {
        return Status::Aborted("source cassandra " + settings_.uri.Display() +
                               ": a row of bucket " + settings_.scheme.Value(*bucket_).ToString() +
                               " has " + settings_.order_by + " " + row[order_slot_].ToString() +
                               ", not a version-1 TimeUUID; it cannot be ordered");
      }
      const int64_t index =
          settings_.scheme.IndexOf(cassandra::OrderKeyUnixMillis(order_type_, *key));
      if (index != *bucket_) {
        return Status::Aborted(
            "source cassandra " + settings_.uri.Display() + ": the row with " +
            settings_.order_by + " " + row[order_slot_].ToString() + " is in bucket " +
            settings_.scheme.Value(*bucket_).ToString() + ", but bucket_width " +
            std::to_string(settings_.scheme.width_ms / 1000) + "s" +
            (settings_.scheme.format.empty() ? ""
                                             : " and bucket_format " + settings_.scheme.format) +
            " put it in " + settings_.scheme.Value(index).ToString() +
            ": set them to what the table's writer computes (rows in other buckets would be "
            "missed)");
      }
      if (key->time > horizon) {
        too_recent = true;  // rows come in order: the rest are newer still
        break;
      }
      RETURN_IF_ERROR(RenderRow(row, &json));
      buffer_.emplace_back(*key, json);
    }
    if (!buffer_.empty()) {
      empty_buckets_ = 0;
      return Status::OK();
    }
    // Nothing (more) in this bucket now. It is complete when it ended before the horizon.
    if (too_recent || *bucket_ >= horizon_bucket) {
      caught_up_ = true;
      return Status::OK();
    }
    counts_.buckets.fetch_add(1, std::memory_order_relaxed);
    if (++empty_buckets_ >= kEmptyBucketsBeforeJump) {
      // A gap: one look at the buckets that exist instead of a read per empty bucket. Rows at
      // or before the horizon were written by now (grace), so no bucket up to it can appear
      // later in the gap.
      ASSIGN_OR_RETURN(bool found, JumpToNextBucket(horizon_bucket));
      if (!found) {
        if (*bucket_ + 1 < horizon_bucket) {
          spdlog::info("source cassandra {}: skipping empty buckets {} .. {}",
                       settings_.uri.Display(), settings_.scheme.Value(*bucket_ + 1).ToString(),
                       settings_.scheme.Value(horizon_bucket - 1).ToString());
        }
        bucket_ = horizon_bucket;
      }
      empty_buckets_ = 0;
    } else {
      bucket_ = *bucket_ + 1;
    }
  }
  return Status::OK();
}

Result<PollState> CassandraTableSource::Poll(RawBatch* out, size_t max_records,
                                             std::chrono::milliseconds budget) {
  if (buffer_pos_ >= buffer_.size() && !ctx_.until_caught_up && !scan_ &&
      SteadyClockMicros() < next_scan_micros_) {
    const auto wait = std::chrono::microseconds(next_scan_micros_ - SteadyClockMicros());
    std::this_thread::sleep_for(std::min<std::chrono::microseconds>(budget, wait));
    return PollState::kIdle;
  }
  if (buffer_pos_ >= buffer_.size()) {
    buffer_.clear();
    buffer_pos_ = 0;
    caught_up_ = false;
    if (!conn_ || conn_->broken()) {
      Status s = Connect();
      if (!s.ok()) {
        conn_.reset();
        return ReadFailed(std::move(s));
      }
    }
    const int64_t deadline = SteadyClockMicros() + kPollWorkMicros;
    Status s = settings_.bucket.empty() ? ScanStep(deadline) : BucketStep(deadline);
    if (!s.ok()) {
      if (s.code() == StatusCode::kAborted) return s;
      buffer_.clear();
      return ReadFailed(std::move(s));
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
  if (!caught_up_) return PollState::kIdle;  // a scan or a bucket walk goes on at the next poll
  if (ctx_.until_caught_up) return PollState::kEnd;
  std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(budget, kIdleWait));
  return PollState::kIdle;
}

std::vector<std::pair<int32_t, int64_t>> CassandraTableSource::PositionsAfterBatch() const {
  if (!cursor_) return {};
  return cassandra::CursorPositions(*cursor_);
}

void CassandraTableSource::Close() {
  conn_.reset();
  auto v = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  spdlog::info("source cassandra {}: {} reads returned {} rows ({}), {} failed reads",
               settings_.uri.Display(), v(counts_.reads), v(counts_.rows_read),
               settings_.bucket.empty() ? std::to_string(v(counts_.scans)) + " whole-table scans"
                                        : std::to_string(v(counts_.buckets)) + " buckets done",
               v(counts_.failures));
}

std::vector<SourceCounter> CassandraTableSource::Counters() const {
  auto v = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {
      {"cassandra_reads", "Reads of rows by the cassandra source (scan pages, bucket reads).", "",
       v(counts_.reads)},
      {"cassandra_rows_read", "Rows the server returned to the cassandra source.", "",
       v(counts_.rows_read)},
      {"cassandra_scans", "Whole-table scans the cassandra source completed (scan layout).", "",
       v(counts_.scans)},
      {"cassandra_buckets", "Buckets the cassandra source finished and moved past.", "",
       v(counts_.buckets)},
      {"cassandra_read_failures", "Reads of the cassandra source that failed.", "",
       v(counts_.failures)},
  };
}

}  // namespace sluice
