#include "connectors/cassandra/cassandra_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <thread>

#include "core/json_writer.h"
#include "core/time.h"
#include "runtime/sink_rejection.h"
#include "runtime/source.h"
#include "runtime/window_state.h"

namespace sluice {

using cassandra::BatchEntry;
using cassandra::CqlType;
using cassandra::CqlValue;
using cassandra::Prepared;
using cassandra::QuoteIdentifier;
using cassandra::Request;

namespace {

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item =
        Trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// Quoted: an unquoted CQL identifier cannot start with '_'.
constexpr const char* kPositionsTable = "\"_sluice_positions\"";
constexpr const char* kStateTable = "\"_sluice_state\"";
constexpr const char* kDeadLettersTable = "\"_sluice_dead_letters\"";
constexpr const char* kTasksTable = "\"_sluice_tasks\"";
// Task states too large for the tasks' conditional batch, in chunks, one partition per task.
constexpr const char* kTaskStateTable = "\"_sluice_task_state\"";

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace

CqlType CqlTypeFor(Type type) {
  switch (type) {
    case Type::kBool:
      return CqlType::kBoolean;
    case Type::kInt64:
      return CqlType::kBigint;
    case Type::kDouble:
      return CqlType::kDouble;
    case Type::kTimestamp:
      return CqlType::kTimestamp;
    case Type::kString:
    case Type::kNull:
      return CqlType::kVarchar;
  }
  return CqlType::kVarchar;
}

bool ParseCqlTypeName(std::string_view name, CqlType* out) {
  std::string lower;
  for (char c : name)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  static const std::map<std::string, CqlType> kTypes = {
      {"text", CqlType::kVarchar},    {"varchar", CqlType::kVarchar},
      {"ascii", CqlType::kAscii},     {"int", CqlType::kInt},
      {"bigint", CqlType::kBigint},   {"double", CqlType::kDouble},
      {"boolean", CqlType::kBoolean}, {"timestamp", CqlType::kTimestamp},
      {"uuid", CqlType::kUuid},       {"timeuuid", CqlType::kTimeuuid}};
  auto it = kTypes.find(lower);
  if (it == kTypes.end()) return false;
  *out = it->second;
  return true;
}

int64_t RejectionOffset(std::string_view payload) {
  const std::string hex = EncodeDeadLetterPayload(payload, 0).sha256;
  int64_t out = 0;
  std::from_chars(hex.data(), hex.data() + 15, out, 16);
  return out;
}

Result<CqlValue> ToCqlValue(const Value& value, CqlType type) {
  if (value.is_null()) return CqlValue::Null();
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("value '" + value.ToString().substr(0, 60) + "' (" +
                                   std::string(TypeName(value.type())) + ") does not fit a " +
                                   std::string(cassandra::CqlTypeName(type)) +
                                   " column: " + std::string(why));
  };
  switch (type) {
    case CqlType::kVarchar:
    case CqlType::kAscii:
      if (value.type() == Type::kString) return CqlValue::Text(value.string_value());
      return CqlValue::Text(value.ToString());
    case CqlType::kInt:
    case CqlType::kBigint: {
      int64_t v = 0;
      if (value.type() == Type::kInt64) {
        v = value.int_value();
      } else if (value.type() == Type::kBool) {
        v = value.bool_value() ? 1 : 0;
      } else if (value.type() == Type::kString) {
        const std::string& s = value.string_value();
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size()) return bad("not an integer");
      } else if (value.type() == Type::kDouble &&
                 std::trunc(value.double_value()) == value.double_value() &&
                 std::fabs(value.double_value()) < 9.0e15) {
        v = static_cast<int64_t>(value.double_value());
      } else {
        return bad("not an integer");
      }
      if (type == CqlType::kInt) {
        if (v < INT32_MIN || v > INT32_MAX) return bad("out of the int range");
        return CqlValue::Int(static_cast<int32_t>(v));
      }
      return CqlValue::Bigint(v);
    }
    case CqlType::kDouble:
      if (value.type() == Type::kDouble) return CqlValue::Double(value.double_value());
      if (value.type() == Type::kInt64) {
        return CqlValue::Double(static_cast<double>(value.int_value()));
      }
      return bad("not a number");
    case CqlType::kBoolean:
      if (value.type() == Type::kBool) return CqlValue::Boolean(value.bool_value());
      if (value.type() == Type::kInt64) return CqlValue::Boolean(value.int_value() != 0);
      return bad("not a boolean");
    case CqlType::kTimestamp:
      if (value.type() == Type::kTimestamp) {
        return CqlValue::Timestamp(FloorDiv(value.time_value().micros, 1000));
      }
      if (value.type() == Type::kString) {
        auto t = ParseTimestamp(value.string_value());
        if (!t) return bad("not a timestamp");
        return CqlValue::Timestamp(FloorDiv(*t, 1000));
      }
      return bad("not a timestamp");
    case CqlType::kUuid:
    case CqlType::kTimeuuid: {
      if (value.type() != Type::kString) return bad("not a UUID");
      auto u = cassandra::Uuid::Parse(value.string_value());
      if (!u) return bad("not a UUID");
      if (type == CqlType::kTimeuuid && u->version() != 1) return bad("not a version-1 UUID");
      return CqlValue::FromUuid(*u);
    }
    default:
      return bad("type not supported");
  }
}

const OptionTable& CassandraSinkOptions() {
  using T = OptionType;
  static const OptionTable kTable{
      .uri = "cassandra://[USER@]HOST[:PORT]/KEYSPACE",
      .summary = "A Cassandra table (`table`), created with its keyspace when missing, written with "
                 "idempotent upserts; the positions follow the rows of each checkpoint "
                 "(src/connectors/cassandra/README.md).",
      .options = {
          {.name = "password_file",
           .type = OptionType::kPath,
           .default_note = "`SLUICE_CASSANDRA_PASSWORD_FILE`",
           .help = "File holding the password of the URI's user (else `SLUICE_CASSANDRA_PASSWORD`)."},
          {.name = "table", .default_note = "the pipeline name", .help = "The table, when `[sink] table` is not set."},
          {.name = "key",
           .type = T::kList,
           .help = "Primary key columns of a select pipeline (aggregates in append mode use their keys)."},
          {.name = "partition_key",
           .type = T::kList,
           .default_note = "all key columns",
           .help = "The leading key columns forming the partition key; the rest are clustering columns."},
          {.name = "column_types",
           .type = T::kList,
           .default_note = "from the output types",
           .help = "`\"name:TYPE,...\"`, TYPE one of text, ascii, int, bigint, double, boolean, timestamp, "
                   "uuid, timeuuid."},
          {.name = "consistency",
           .default_value = "local_quorum",
           .allowed = {"any", "one", "two", "three", "quorum", "all", "local_quorum", "each_quorum", "local_one"},
           .help = "Write consistency level."},
          {.name = "read_consistency",
           .default_note = "`consistency` (`local_quorum` when that is write-only)",
           .allowed = {"one", "two", "three", "quorum", "all", "local_quorum", "local_one"},
           .help = "Level of the sink's own reads (positions and state, at start)."},
          {.name = "concurrency", .type = T::kInt, .default_value = "4", .help = "Requests in flight on the connection, 1..1024."},
          {.name = "batch_rows", .type = T::kInt, .default_value = "50", .help = "Rows per unlogged batch (only rows of one partition are batched together), 1..1000."},
          {.name = "retries", .type = T::kInt, .default_value = "6", .help = "Attempts per request on timeouts, unavailable, overloaded or a lost connection, backoff 100 ms doubling to 5 s."},
          {.name = "replication_factor", .type = T::kInt, .default_value = "1", .help = "Of a keyspace the sink creates."},
          {.name = "timeout", .type = T::kDuration, .default_value = "12s", .help = "Connect and request timeout; at least 100ms."},
      }};
  return kTable;
}

Result<std::unique_ptr<Sink>> CassandraSink::Make(const SinkConfig& config) {
  OptionReader o(config.options, CassandraSinkOptions(), "sink");
  auto uri = cassandra::ParseCassandraUri(config.uri, false);
  if (!uri.ok()) return Status::InvalidArgument(o.Where("uri") + ": " + uri.status().message());
  std::unique_ptr<CassandraSink> sink(new CassandraSink());
  sink->uri_ = std::move(uri).value();
  sink->where_ = o.Where("uri");
  sink->password_file_ = o.String("password_file");
  auto credentials = cassandra::ResolveCredentials(sink->uri_.user, sink->password_file_);
  if (!credentials.ok()) {
    return Status::InvalidArgument(o.Where("password_file") + ": " +
                                   credentials.status().message());
  }
  sink->table_ = config.table;
  if (sink->table_.empty()) sink->table_ = o.String("table");
  sink->key_option_ = SplitList(o.String("key"));
  sink->partition_key_option_ = SplitList(o.String("partition_key"));
  for (const std::string& entry : SplitList(o.String("column_types"))) {
    size_t colon = entry.find(':');
    CqlType t;
    if (colon == std::string::npos ||
        !ParseCqlTypeName(Trim(std::string_view(entry).substr(colon + 1)), &t)) {
      return Status::InvalidArgument(o.Where("column_types") +
                                     ": expected NAME:TYPE with TYPE one of text, ascii, int, "
                                     "bigint, double, boolean, timestamp, uuid, timeuuid; got '" +
                                     entry + "'");
    }
    sink->column_types_[Trim(std::string_view(entry).substr(0, colon))] =
        Trim(std::string_view(entry).substr(colon + 1));
  }
  std::string consistency = o.String("consistency");
  if (!cassandra::ParseConsistency(consistency, &sink->consistency_)) {
    return Status::InvalidArgument(o.Where("consistency") + ": unknown consistency '" +
                                   consistency + "' (one, quorum, local_quorum, all, ...)");
  }
  // The sink's own reads (positions and state, at start) cannot use the write-only levels.
  const bool write_only = sink->consistency_ == cassandra::Consistency::kAny ||
                          sink->consistency_ == cassandra::Consistency::kEachQuorum;
  std::string read_consistency =
      o.String("read_consistency", write_only ? "local_quorum" : consistency);
  if (!cassandra::ParseConsistency(read_consistency, &sink->read_consistency_) ||
      sink->read_consistency_ == cassandra::Consistency::kAny ||
      sink->read_consistency_ == cassandra::Consistency::kEachQuorum) {
    return Status::InvalidArgument(o.Where("read_consistency") + ": '" + read_consistency +
                                   "' is not a read consistency (one, two, three, quorum, all, "
                                   "local_quorum, local_one)");
  }
  ASSIGN_OR_RETURN(int64_t concurrency, o.Int("concurrency"));
  ASSIGN_OR_RETURN(int64_t batch_rows, o.Int("batch_rows"));
  ASSIGN_OR_RETURN(int64_t retries, o.Int("retries"));
  ASSIGN_OR_RETURN(int64_t rf, o.Int("replication_factor"));
  ASSIGN_OR_RETURN(int64_t timeout, o.Duration("timeout"));
  if (concurrency < 1 || concurrency > 1024) {
    return Status::InvalidArgument(o.Where("concurrency") + ": concurrency must be 1..1024");
  }
  if (batch_rows < 1 || batch_rows > 1000) {
    return Status::InvalidArgument(o.Where("batch_rows") + ": batch_rows must be 1..1000");
  }
  if (retries < 1) return Status::InvalidArgument(o.Where("retries") + ": retries must be >= 1");
  if (rf < 1) {
    return Status::InvalidArgument(o.Where("replication_factor") + ": must be at least 1");
  }
  if (timeout < 100'000) {
    return Status::InvalidArgument(o.Where("timeout") + ": timeout must be at least 100ms");
  }
  sink->concurrency_ = static_cast<int>(concurrency);
  sink->batch_rows_ = static_cast<size_t>(batch_rows);
  sink->retries_ = static_cast<int>(retries);
  sink->replication_factor_ = static_cast<int>(rf);
  sink->client_options_.host = sink->uri_.host;
  sink->client_options_.port = sink->uri_.port;
  sink->client_options_.request_timeout = std::chrono::milliseconds(timeout / 1000);
  sink->client_options_.connect_timeout =
      std::chrono::milliseconds(std::min<int64_t>(timeout / 1000, 5000));
  sink->client_options_.max_in_flight = sink->concurrency_;
  RETURN_IF_ERROR(o.Finish());
  return std::unique_ptr<Sink>(std::move(sink));
}

CassandraSink::~CassandraSink() { Close(); }

void CassandraSink::Close() {
  insert_.reset();
  insert_position_.reset();
  insert_state_.reset();
  insert_ts_.reset();
  insert_dead_letter_ts_.reset();
  insert_position_ts_.reset();
  insert_state_chunk_.reset();
  conn_.reset();
}

Status CassandraSink::Failed(Status s) {
  if (conn_ && conn_->broken()) {
    insert_.reset();
    insert_position_.reset();
    insert_state_.reset();
    insert_ts_.reset();
    insert_dead_letter_ts_.reset();
    insert_position_ts_.reset();
    insert_state_chunk_.reset();
    conn_.reset();
    healthy_ = false;
  }
  return s;
}

Status CassandraSink::Connect() {
  conn_.reset();
  // Credentials are read at every connect, so a rotated password file is picked up.
  ASSIGN_OR_RETURN(client_options_.credentials,
                   cassandra::ResolveCredentials(uri_.user, password_file_));
  auto c = cassandra::Connection::Open(client_options_);
  if (!c.ok()) {
    healthy_ = false;
    return c.status();
  }
  conn_ = std::move(c).value();
  if (schema_ready_) RETURN_IF_ERROR(PrepareStatements());
  healthy_ = true;
  return Status::OK();
}

std::string CassandraSink::InsertCql() const {
  std::string cols, marks;
  for (const Column& c : columns_) {
    cols += (cols.empty() ? "" : ", ") + QuoteIdentifier(c.name);
    marks += marks.empty() ? "?" : ", ?";
  }
  return "INSERT INTO " + QuoteIdentifier(uri_.keyspace) + "." + QuoteIdentifier(table_) + " (" +
         cols + ") VALUES (" + marks + ")";
}

Result<SinkExplanation> CassandraSink::Explain(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetLayout(ctx));
  SinkExplanation e;
  e.facts.push_back({"cluster", uri_.Display()});
  std::string partition, clustering;
  for (size_t i = 0; i < key_slots_.size(); ++i) {
    std::string& to = i < partition_key_count_ ? partition : clustering;
    to += (to.empty() ? "" : ", ") + columns_[key_slots_[i]].name;
  }
  e.facts.push_back({"partition key", partition});
  if (!clustering.empty()) e.facts.push_back({"clustering", clustering});
  e.facts.push_back({"per checkpoint",
                     "the rows first (the last row of a key wins; unlogged batches of up to " +
                         std::to_string(batch_rows_) + " rows per partition), then the positions "
                         "in _sluice_positions: a replay rewrites the same rows"});
  e.statements.push_back({"create table", "cql", TableCql()});
  e.statements.push_back({"write", "cql", InsertCql()});
  return e;
}

Status CassandraSink::PrepareStatements() {
  const std::string ks = QuoteIdentifier(uri_.keyspace) + ".";
  if (!columns_.empty()) {
    auto insert = conn_->Prepare(InsertCql());
    auto position = conn_->Prepare("INSERT INTO " + ks + kPositionsTable +
                                   " (pipeline, source, \"partition\", \"offset\") VALUES "
                                   "(?, ?, ?, ?)");
    auto state =
        conn_->Prepare("INSERT INTO " + ks + kStateTable + " (pipeline, state) VALUES (?, ?)");
    auto dead_letter = conn_->Prepare(
        "INSERT INTO " + ks + kDeadLettersTable +
        " (pipeline, source, \"partition\", \"offset\", seq, reason, time, payload, "
        "payload_base64, payload_bytes, truncated, payload_sha256, generation) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (auto* r : {&insert, &position, &state, &dead_letter}) {
      if (!r->ok()) return Failed(r->status());
    }
    insert_ = *insert;
    insert_position_ = *position;
    insert_state_ = *state;
    insert_dead_letter_ = *dead_letter;
    if (ctx_.tasks) {
      // Tasks: rows, dead letters and mirrored positions carry the checkpoint's timestamp.
      auto with_ts = [&](const Prepared& p) { return conn_->Prepare(p.query + " USING TIMESTAMP ?"); };
      auto insert_ts = with_ts(**insert);
      auto position_ts = with_ts(**position);
      auto dead_letter_ts = with_ts(**dead_letter);
      for (auto* r : {&insert_ts, &position_ts, &dead_letter_ts}) {
        if (!r->ok()) return Failed(r->status());
      }
      auto chunk = conn_->Prepare("INSERT INTO " + ks + kTaskStateTable +
                                  " (pipeline, source, \"partition\", version, chunk, data) VALUES (?, ?, ?, ?, ?, ?) "
                                  "USING TIMESTAMP ?");
      if (!chunk.ok()) return Failed(chunk.status());
      insert_ts_ = *insert_ts;
      insert_position_ts_ = *position_ts;
      insert_dead_letter_ts_ = *dead_letter_ts;
      insert_state_chunk_ = *chunk;
    }
  }
  return Status::OK();
}

Status CassandraSink::Check(const SinkContext& ctx) const {
  if (ctx.aggregate && !ctx.aggregate->append_mode) {
    return Status::InvalidArgument(
        where_ +
        ": the cassandra sink cannot store update-mode aggregates: merging deltas "
        "into stored rows is not idempotent in Cassandra (no transactions; counters cannot be "
        "replayed safely), so exactly-once would be lost. Use mode = \"append\" under "
        "[aggregate] (finished windows, upserted once), or a select pipeline without "
        "[aggregate]");
  }
  if (table_.empty() && ctx.pipeline.empty()) {
    return Status::InvalidArgument(where_ + ": the sink needs a table");
  }
  for (const auto& [name, type] : column_types_) {
    if (!ctx.output.IndexOf(name)) {
      std::vector<std::string> names;
      for (const Field& f : ctx.output.fields()) names.push_back(f.name);
      return Status::InvalidArgument(
          where_ + ": column_types names column " + name +
          ", which this pipeline does not write (columns: " + Join(names) + ")");
    }
  }
  if (!ctx.key_columns.empty() && !key_option_.empty() && key_option_ != ctx.key_columns) {
    return Status::InvalidArgument(where_ + ": option key (" + Join(key_option_) +
                                   ") differs from the aggregate's keys (" + Join(ctx.key_columns) +
                                   "); leave it out");
  }
  std::vector<std::string> keys = ctx.key_columns.empty() ? key_option_ : ctx.key_columns;
  if (keys.empty()) {
    return Status::InvalidArgument(
        where_ +
        ": a Cassandra table needs a primary key: name it with key = [\"id\"] under "
        "[sink] (the columns that identify a row; rows with the same key are upserted)");
  }
  for (const std::string& k : keys) {
    if (!ctx.output.IndexOf(k)) {
      return Status::InvalidArgument(where_ + ": key column " + k + " is not an output column");
    }
  }
  if (!partition_key_option_.empty() &&
      (partition_key_option_.size() > keys.size() ||
       !std::equal(partition_key_option_.begin(), partition_key_option_.end(), keys.begin()))) {
    return Status::InvalidArgument(where_ + ": partition_key (" + Join(partition_key_option_) +
                                   ") must be leading columns of the key (" + Join(keys) + ")");
  }
  return Status::OK();
}

Status CassandraSink::SetLayout(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  ctx_ = ctx;
  if (table_.empty()) table_ = ctx.pipeline;
  if (table_.empty()) return Status::InvalidArgument(where_ + ": the sink needs a table");
  columns_.clear();
  key_slots_.clear();
  for (const Field& f : ctx.output.fields()) {
    Column c{f.name, CqlTypeFor(f.type)};
    auto it = column_types_.find(f.name);
    if (it != column_types_.end()) ParseCqlTypeName(it->second, &c.type);
    columns_.push_back(std::move(c));
  }
  for (const auto& [name, type] : column_types_) {
    if (!ctx.output.IndexOf(name)) {
      std::vector<std::string> names;
      for (const Column& c : columns_) names.push_back(c.name);
      return Status::InvalidArgument(
          where_ + ": column_types names column " + name +
          ", which this pipeline does not write (columns: " + Join(names) + ")");
    }
  }
  std::vector<std::string> keys = ctx.key_columns.empty() ? key_option_ : ctx.key_columns;
  if (!ctx.key_columns.empty() && !key_option_.empty() && key_option_ != ctx.key_columns) {
    return Status::InvalidArgument(where_ + ": option key (" + Join(key_option_) +
                                   ") differs from the aggregate's keys (" + Join(ctx.key_columns) +
                                   "); leave it out");
  }
  if (keys.empty()) {
    return Status::InvalidArgument(
        where_ +
        ": a Cassandra table needs a primary key: name it with key = [\"id\"] under "
        "[sink] (the columns that identify a row; rows with the same key are upserted)");
  }
  for (const std::string& k : keys) {
    auto slot = ctx.output.IndexOf(k);
    if (!slot) {
      return Status::InvalidArgument(where_ + ": key column " + k + " is not an output column");
    }
    key_slots_.push_back(*slot);
  }
  partition_key_count_ = keys.size();
  if (!partition_key_option_.empty()) {
    if (partition_key_option_.size() > keys.size() ||
        !std::equal(partition_key_option_.begin(), partition_key_option_.end(), keys.begin())) {
      return Status::InvalidArgument(where_ + ": partition_key (" + Join(partition_key_option_) +
                                     ") must be leading columns of the key (" + Join(keys) + ")");
    }
    partition_key_count_ = partition_key_option_.size();
  }
  return Status::OK();
}

Status CassandraSink::Open(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetLayout(ctx));
  schema_ready_ = false;
  Status s = Connect();
  if (s.ok()) s = CreateSchema();
  if (s.ok()) {
    schema_ready_ = true;
    s = PrepareStatements();
  }
  if (s.ok() && ctx_.tasks) s = MigrateLegacyState();
  reading_only_ = false;
  task_rows_readable_ = ctx_.tasks;
  if (s.ok() && !ctx_.tasks) {
    // Read by the runner's check that an append-mode run without keyed_by finds no task rows
    // of a keyed run of the pipeline.
    auto exists = TableExists("_sluice_tasks");
    if (exists.ok()) {
      task_rows_readable_ = *exists;
    } else {
      s = exists.status();
    }
  }
  if (!s.ok()) return Failed(s);
  // Task mode: every checkpoint writes at a larger timestamp than the last (see Commit).
  owned_.clear();
  last_write_ts_ = ctx_.tasks ? WallClockMicros() : 0;
  return Status::OK();
}

Status CassandraSink::OpenForReading(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetLayout(ctx));
  schema_ready_ = false;  // no statement is prepared: nothing is written
  reading_only_ = true;
  owned_.clear();
  RETURN_IF_ERROR(Connect());
  ASSIGN_OR_RETURN(task_rows_readable_, TableExists("_sluice_tasks"));
  // Positions as a run of the pipeline reads them: the task rows' over the mirror.
  tasks_table_ = task_rows_readable_;
  return Status::OK();
}

std::string CassandraSink::TableCql() const {
  const std::string ks = QuoteIdentifier(uri_.keyspace);
  std::string table = "CREATE TABLE IF NOT EXISTS " + ks + "." + QuoteIdentifier(table_) + " (";
  for (const Column& c : columns_) {
    table += QuoteIdentifier(c.name) + " " + std::string(cassandra::CqlTypeName(c.type)) + ", ";
  }
  std::string partition, clustering;
  for (size_t i = 0; i < key_slots_.size(); ++i) {
    const std::string name = QuoteIdentifier(columns_[key_slots_[i]].name);
    if (i < partition_key_count_) {
      partition += (partition.empty() ? "" : ", ") + name;
    } else {
      clustering += ", " + name;
    }
  }
  table += "PRIMARY KEY ((" + partition + ")" + clustering + "))";
  return table;
}

Status CassandraSink::CreateSchema() {
  const std::string ks = QuoteIdentifier(uri_.keyspace);
  cassandra::QueryOptions ddl;
  ddl.consistency = consistency_;
  ddl.page_size = 0;
  std::vector<std::string> statements = {
      "CREATE KEYSPACE IF NOT EXISTS " + ks +
          " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': " +
          std::to_string(replication_factor_) + "}",
      "CREATE TABLE IF NOT EXISTS " + ks + "." + kPositionsTable +
          " (pipeline text, source text, \"partition\" int, \"offset\" bigint, "
          "PRIMARY KEY ((pipeline), source, \"partition\"))",
      "CREATE TABLE IF NOT EXISTS " + ks + "." + kStateTable +
          " (pipeline text PRIMARY KEY, state blob)",
      // One partition per source partition, ordered by offset; an upsert by the letter's
      // identity, so a replayed checkpoint rewrites the same rows.
      "CREATE TABLE IF NOT EXISTS " + ks + "." + kDeadLettersTable +
          " (pipeline text, source text, \"partition\" int, \"offset\" bigint, generation bigint, "
          "seq int, reason text, time text, payload text, payload_base64 text, payload_bytes bigint, "
          "truncated boolean, payload_sha256 text, "
          "PRIMARY KEY ((pipeline, source, \"partition\"), \"offset\", generation, seq))",
  };
  if (ctx_.tasks) {
    // One row per task in the pipeline's partition: claims and commits are lightweight
    // transactions on it, and a checkpoint's tasks go in one conditional batch.
    statements.push_back("CREATE TABLE IF NOT EXISTS " + ks + "." + kTasksTable +
                         " (pipeline text, source text, \"partition\" int, fence bigint, owner text, "
                         "max_event_time bigint, watermark bigint, enforced bigint, idle boolean, state blob, "
                         "\"position\" bigint, generation_position bigint, ts_limit bigint, updated_at timestamp, "
                         "state_version bigint, state_chunks int, state_bytes bigint, "
                         "legacy_state_ts bigint static, PRIMARY KEY ((pipeline), source, \"partition\"))");
    // A state too large for the conditional batch: its chunks under a version (the write
    // timestamp of the commit that wrote them), which the task row names once committed.
    statements.push_back("CREATE TABLE IF NOT EXISTS " + ks + "." + kTaskStateTable +
                         " (pipeline text, source text, \"partition\" int, version bigint, chunk int, data blob, "
                         "PRIMARY KEY ((pipeline, source, \"partition\"), version, chunk))");
  }
  const std::string table = TableCql();
  statements.push_back(table);
  for (const std::string& cql : statements) {
    auto r = conn_->Query(cql, {}, ddl);
    if (!r.ok()) return r.status().WithContext("cassandra " + uri_.Display());
  }
  RETURN_IF_ERROR(MigrateDeadLetters());
  if (ctx_.tasks) RETURN_IF_ERROR(AddTaskColumns());
  RETURN_IF_ERROR(CheckExistingTable());
  tasks_table_ = ctx_.tasks;
  return Status::OK();
}

Status CassandraSink::MigrateDeadLetters() {
  cassandra::QueryOptions q;
  q.consistency = cassandra::Consistency::kOne;
  const std::vector<CqlValue> args = {CqlValue::Text(uri_.keyspace), CqlValue::Text("_sluice_dead_letters")};
  auto kind = [&]() -> Result<std::string> {
    ASSIGN_OR_RETURN(cassandra::QueryResult r,
                     conn_->QueryAllPages("SELECT column_name, kind FROM system_schema.columns "
                                          "WHERE keyspace_name = ? AND table_name = ?",
                                          args, q));
    for (const auto& row : r.rows) {
      if (row.size() == 2 && row[0].text() == "generation") return row[1].text();
    }
    return std::string();
  };
  ASSIGN_OR_RETURN(std::string found, kind());
  if (found.empty()) {
    // A table of an older sluice: Cassandra cannot change a primary key, so the generation is
    // a regular column there and goes into the key through seq (see legacy_dead_letter_key_).
    cassandra::QueryOptions ddl;
    ddl.consistency = consistency_;
    ddl.page_size = 0;
    auto r = conn_->Query("ALTER TABLE " + QuoteIdentifier(uri_.keyspace) + "." + kDeadLettersTable +
                              " ADD generation bigint",
                          {}, ddl);
    ASSIGN_OR_RETURN(found, kind());  // another process may have added it first
    if (found.empty()) {
      return (r.ok() ? Status::Internal("the column did not appear") : r.status())
          .WithContext("cassandra " + uri_.Display() + ": adding generation to _sluice_dead_letters");
    }
    spdlog::info("cassandra {}: _sluice_dead_letters (an older sluice's layout, whose key cannot change) "
                 "now stores the input's generation; its key tells generations apart through seq",
                 uri_.Display());
  }
  legacy_dead_letter_key_ = found != "clustering";
  return Status::OK();
}

Status CassandraSink::AddTaskColumns() {
  cassandra::QueryOptions q;
  q.consistency = cassandra::Consistency::kOne;
  const std::vector<CqlValue> args = {CqlValue::Text(uri_.keyspace), CqlValue::Text("_sluice_tasks")};
  auto columns = [&]() -> Result<std::set<std::string>> {
    ASSIGN_OR_RETURN(cassandra::QueryResult r,
                     conn_->QueryAllPages("SELECT column_name FROM system_schema.columns "
                                          "WHERE keyspace_name = ? AND table_name = ?",
                                          args, q));
    std::set<std::string> out;
    for (const auto& row : r.rows) {
      if (row.size() == 1) out.insert(row[0].text());
    }
    return out;
  };
  ASSIGN_OR_RETURN(std::set<std::string> have, columns());
  // A task table of an earlier sluice: the mark (static: one value per pipeline), then the
  // pointer to a chunked state.
  const std::vector<std::pair<std::string, std::string>> wanted = {{"legacy_state_ts", "bigint static"},
                                                                   {"state_version", "bigint"},
                                                                   {"state_chunks", "int"},
                                                                   {"state_bytes", "bigint"}};
  cassandra::QueryOptions ddl;
  ddl.consistency = consistency_;
  ddl.page_size = 0;
  for (const auto& [name, type] : wanted) {
    if (have.count(name)) continue;
    auto r = conn_->Query("ALTER TABLE " + TasksTable() + " ADD " + name + " " + type, {}, ddl);
    ASSIGN_OR_RETURN(have, columns());  // another process may have added it first
    if (!have.count(name)) {
      return (r.ok() ? Status::Internal("the column did not appear") : r.status())
          .WithContext("cassandra " + uri_.Display() + ": adding " + name + " to _sluice_tasks");
    }
  }
  return Status::OK();
}

Result<bool> CassandraSink::TableExists(const std::string& name) {
  cassandra::QueryOptions q;
  q.consistency = cassandra::Consistency::kOne;
  const std::vector<CqlValue> args = {CqlValue::Text(uri_.keyspace), CqlValue::Text(name)};
  auto r = conn_->QueryAllPages("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
                                args, q);
  if (!r.ok()) return Failed(r.status());
  return !r->rows.empty();
}

Status CassandraSink::CheckExistingTable() {
  // An existing table must have every column this pipeline writes, with the same type.
  cassandra::QueryOptions q;
  q.consistency = cassandra::Consistency::kOne;
  std::vector<CqlValue> args = {CqlValue::Text(uri_.keyspace), CqlValue::Text(table_)};
  ASSIGN_OR_RETURN(cassandra::QueryResult r,
                   conn_->QueryAllPages("SELECT column_name, type FROM system_schema.columns "
                                        "WHERE keyspace_name = ? AND table_name = ?",
                                        args, q));
  std::map<std::string, std::string> existing;
  for (const auto& row : r.rows) {
    if (row.size() == 2) existing[row[0].text()] = row[1].text();
  }
  for (const Column& c : columns_) {
    auto it = existing.find(c.name);
    if (it == existing.end()) {
      return Status::InvalidArgument("cassandra table " + uri_.keyspace + "." + table_ +
                                     " exists without column " + c.name +
                                     ", which this pipeline writes; drop the table or write "
                                     "to another one");
    }
    std::string want(cassandra::CqlTypeName(c.type));
    if (it->second != want) {
      return Status::InvalidArgument("cassandra table " + uri_.keyspace + "." + table_ +
                                     ": column " + c.name + " is " + it->second +
                                     " but this pipeline writes " + want +
                                     " (set column_types, or drop the table)");
    }
  }
  return Status::OK();
}

Result<std::vector<StoredPosition>> CassandraSink::LoadPositions() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  cassandra::QueryOptions q;
  q.consistency = read_consistency_;
  std::vector<CqlValue> args = {CqlValue::Text(ctx_.pipeline)};
  auto r = conn_->QueryAllPages("SELECT source, \"partition\", \"offset\" FROM " +
                                    QuoteIdentifier(uri_.keyspace) + "." + kPositionsTable +
                                    " WHERE pipeline = ?",
                                args, q);
  if (!r.ok()) return Failed(r.status());
  std::vector<StoredPosition> out;
  for (const auto& row : r->rows) {
    if (row.size() != 3 || row[1].kind() != CqlValue::Kind::kInt ||
        row[2].kind() != CqlValue::Kind::kBigint) {
      return Status::Internal("cassandra " + uri_.Display() + ": bad row in _sluice_positions");
    }
    out.push_back({row[0].text(), row[1].int32(), row[2].int64()});
  }
  if (!tasks_table_) return out;
  // The task rows hold the positions as committed (under their fence); _sluice_positions mirrors
  // them after and may lag behind them after a crash in between.
  auto t = conn_->QueryAllPages("SELECT source, \"partition\", \"position\", generation_position FROM " +
                                    TasksTable() + " WHERE pipeline = ?",
                                args, q);
  if (!t.ok()) return Failed(t.status());
  std::map<std::pair<std::string, int32_t>, int64_t> merged;
  for (const auto& p : out) merged[{p.source, p.partition}] = p.offset;
  for (const auto& row : t->rows) {
    if (row.size() != 4) continue;
    if (!row[2].is_null()) merged[{row[0].text(), row[1].int32()}] = row[2].int64();
    if (!row[3].is_null()) merged[{row[0].text(), kGenerationPartitionBase + row[1].int32()}] = row[3].int64();
  }
  out.clear();
  for (const auto& [key, offset] : merged) out.push_back({key.first, key.second, offset});
  return out;
}

Result<std::string> CassandraSink::LoadState() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  cassandra::QueryOptions q;
  q.consistency = read_consistency_;
  std::vector<CqlValue> args = {CqlValue::Text(ctx_.pipeline)};
  auto r = conn_->Query("SELECT state FROM " + QuoteIdentifier(uri_.keyspace) + "." + kStateTable +
                            " WHERE pipeline = ?",
                        args, q);
  if (!r.ok()) return Failed(r.status());
  if (r->rows.empty() || r->rows[0].empty() || r->rows[0][0].is_null()) return std::string();
  return r->rows[0][0].text();
}

Result<std::vector<CqlValue>> CassandraSink::ConvertRow(const std::vector<Value>& row) const {
  if (row.size() != columns_.size()) {
    return Status::Internal("cassandra sink: a row has " + std::to_string(row.size()) +
                            " values for " + std::to_string(columns_.size()) + " columns");
  }
  std::vector<CqlValue> values;
  values.reserve(row.size());
  for (size_t i = 0; i < row.size(); ++i) {
    auto v = ToCqlValue(row[i], columns_[i].type);
    if (!v.ok()) {
      return v.status().WithContext("cassandra table " + table_ + ", column " + columns_[i].name);
    }
    values.push_back(std::move(v).value());
  }
  for (size_t slot : key_slots_) {
    if (values[slot].is_null()) {
      return Status::InvalidArgument("cassandra table " + table_ + ": key column " +
                                     columns_[slot].name +
                                     " is null in a row; Cassandra keys cannot be null "
                                     "(give it a default with coalesce)");
    }
    // The server refuses a key component over 64 KiB (its length is a 16-bit number).
    std::string bytes;
    RETURN_IF_ERROR(cassandra::AppendValue(columns_[slot].type, values[slot], &bytes));
    if (bytes.size() > kMaxKeyComponentBytes + 4) {
      return Status::InvalidArgument("cassandra table " + table_ + ": key column " +
                                     columns_[slot].name + " holds " +
                                     std::to_string(bytes.size() - 4) +
                                     " bytes, over Cassandra's limit of 65535 for a key");
    }
  }
  return values;
}

Status CassandraSink::RunWithRetry(size_t groups, const std::function<Request(size_t group)>& build,
                                   const std::function<bool(size_t, const Status&)>& reject) {
  std::vector<size_t> pending(groups);
  for (size_t i = 0; i < groups; ++i) pending[i] = i;
  int64_t backoff_ms = 100;
  Status last;
  for (int attempt = 0; attempt < retries_ && !pending.empty(); ++attempt) {
    if (attempt > 0) {
      spdlog::warn("cassandra sink: {} request(s) failed ({}); retrying in {} ms", pending.size(),
                   last.message(), backoff_ms);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
    }
    if (!conn_) {
      Status c = Connect();
      if (!c.ok()) {
        last = c;
        if (!cassandra::IsRetryable(c)) return c;
        continue;
      }
    }
    std::vector<Request> requests;
    requests.reserve(pending.size());
    for (size_t g : pending) requests.push_back(build(g));
    std::vector<Result<cassandra::QueryResult>> results = conn_->Run(requests);
    std::vector<size_t> still;
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) continue;
      if (!cassandra::IsRetryable(results[i].status())) {
        if (reject && reject(pending[i], results[i].status())) continue;
        return Failed(results[i].status().WithContext("cassandra " + uri_.Display()));
      }
      last = results[i].status();
      still.push_back(pending[i]);
    }
    pending.swap(still);
    if (conn_->broken()) {
      Status ignored = Failed(last);
      (void)ignored;
    }
  }
  if (pending.empty()) return Status::OK();
  healthy_ = false;
  return Status::Unavailable("cassandra " + uri_.Display() + ": " + std::to_string(pending.size()) +
                             " request(s) still failing after " + std::to_string(retries_) +
                             " attempts: " + last.message());
}

Result<std::map<std::string, int64_t>> CassandraSink::CountDeadLetters() {
  if (!conn_) RETURN_IF_ERROR(Connect());
  cassandra::QueryOptions q;
  q.consistency = read_consistency_;
  const std::string table = QuoteIdentifier(uri_.keyspace) + "." + kDeadLettersTable;
  // CQL groups only by primary key columns: the reasons are counted here, partition by
  // partition (one per source partition of the pipeline).
  auto parts = conn_->QueryAllPages("SELECT DISTINCT pipeline, source, \"partition\" FROM " + table, {}, q);
  if (!parts.ok()) return Failed(parts.status());
  std::map<std::string, int64_t> out;
  for (const auto& part : parts->rows) {
    if (part.size() != 3 || part[0].text() != ctx_.pipeline) continue;
    std::vector<CqlValue> key = {part[0], part[1], part[2]};
    auto r = conn_->QueryAllPages("SELECT reason FROM " + table +
                                      " WHERE pipeline = ? AND source = ? AND \"partition\" = ?",
                                  key, q);
    if (!r.ok()) return Failed(r.status());
    for (const auto& row : r->rows) {
      if (!row.empty()) ++out[row[0].text()];
    }
  }
  return out;
}

Result<SinkInventory> CassandraSink::Inventory(const InventoryOptions& options) {
  if (schema_ready_) return Status::Internal("cassandra sink: Inventory() on an opened sink");
  RETURN_IF_ERROR(Connect());
  Result<SinkInventory> out = [&]() -> Result<SinkInventory> {
    cassandra::QueryOptions q;
    q.consistency = read_consistency_;
    const std::string ks = QuoteIdentifier(uri_.keyspace) + ".";
    SinkInventory inv;
    inv.location = "cassandra://" + uri_.Display();
    inv.dead_letter_location = DeadLetterLocation();
    std::vector<CqlValue> ks_arg = {CqlValue::Text(uri_.keyspace)};
    cassandra::QueryOptions schema;
    schema.consistency = cassandra::Consistency::kOne;
    ASSIGN_OR_RETURN(cassandra::QueryResult keyspaces,
                     conn_->QueryAllPages("SELECT keyspace_name FROM system_schema.keyspaces WHERE "
                                          "keyspace_name = ?",
                                          ks_arg, schema));
    if (keyspaces.rows.empty()) {
      return Status::NotFound("cassandra keyspace " + uri_.keyspace + " does not exist");
    }
    ASSIGN_OR_RETURN(cassandra::QueryResult tables,
                     conn_->QueryAllPages("SELECT table_name FROM system_schema.tables WHERE "
                                          "keyspace_name = ?",
                                          ks_arg, schema));
    std::set<std::string> have;
    for (const auto& row : tables.rows) {
      if (!row.empty()) have.insert(row[0].text());
    }
    if (options.positions_only) {
      // The named pipeline's positions only (with its task rows', as LoadPositions merges
      // them): no scan of the tables for pipeline names, no state read.
      return PositionsOnlyInventory(std::move(inv), options, "cassandra sink", have.count("_sluice_positions") > 0,
                                    [&] {
                                      tasks_table_ = have.count("_sluice_tasks") > 0;
                                      ctx_.pipeline = options.pipeline;
                                      return LoadPositions();
                                    });
    }
    std::set<std::string> names;
    auto collect = [&](const std::string& cql) -> Status {
      ASSIGN_OR_RETURN(cassandra::QueryResult r, conn_->QueryAllPages(cql, {}, q));
      for (const auto& row : r.rows) {
        if (!row.empty() && !row[0].is_null()) names.insert(row[0].text());
      }
      return Status::OK();
    };
    if (have.count("_sluice_positions")) {
      RETURN_IF_ERROR(collect("SELECT DISTINCT pipeline FROM " + ks + kPositionsTable));
    }
    if (have.count("_sluice_state")) RETURN_IF_ERROR(collect("SELECT pipeline FROM " + ks + kStateTable));
    tasks_table_ = have.count("_sluice_tasks") > 0;
    if (tasks_table_) RETURN_IF_ERROR(collect("SELECT DISTINCT pipeline FROM " + ks + kTasksTable));
    if (have.count("_sluice_dead_letters")) {
      RETURN_IF_ERROR(collect("SELECT DISTINCT pipeline, source, \"partition\" FROM " + ks + kDeadLettersTable));
    }
    for (const auto& name : names) {
      if (!options.pipeline.empty() && name != options.pipeline) continue;
      ctx_.pipeline = name;
      PipelineInventory p;
      p.pipeline = name;
      std::vector<CqlValue> arg = {CqlValue::Text(name)};
      int64_t written = 0;  // microseconds: WRITETIME of the newest position or state
      if (have.count("_sluice_positions")) {
        ASSIGN_OR_RETURN(p.positions, LoadPositions());
        ASSIGN_OR_RETURN(cassandra::QueryResult r,
                         conn_->QueryAllPages("SELECT WRITETIME(\"offset\") FROM " + ks + kPositionsTable +
                                                  " WHERE pipeline = ?",
                                              arg, q));
        for (const auto& row : r.rows) {
          if (!row.empty() && !row[0].is_null()) written = std::max(written, row[0].int64());
        }
      }
      if (have.count("_sluice_state")) {
        ASSIGN_OR_RETURN(cassandra::QueryResult r,
                         conn_->QueryAllPages("SELECT state, WRITETIME(state) FROM " + ks + kStateTable +
                                                  " WHERE pipeline = ?",
                                              arg, q));
        if (!r.rows.empty() && r.rows[0].size() == 2 && !r.rows[0][0].is_null()) {
          p.state_bytes = static_cast<int64_t>(r.rows[0][0].text().size());
          if (!r.rows[0][1].is_null()) written = std::max(written, r.rows[0][1].int64());
        }
      }
      if (tasks_table_) {
        // State kept per partition (tasks): its size is the sum of the tasks' states (a chunked
        // one's size is in state_bytes; a table of an earlier sluice has no such column).
        auto r = conn_->QueryAllPages("SELECT state, updated_at, state_bytes FROM " + ks + kTasksTable +
                                          " WHERE pipeline = ?",
                                      arg, q);
        if (!r.ok()) {
          r = conn_->QueryAllPages("SELECT state, updated_at FROM " + ks + kTasksTable + " WHERE pipeline = ?", arg, q);
        }
        if (!r.ok()) return r.status();
        for (const auto& row : r->rows) {
          if (row.size() < 2) continue;
          if (row.size() == 3 && !row[2].is_null()) {
            p.state_bytes = std::max<int64_t>(p.state_bytes, 0) + row[2].int64();
          } else if (!row[0].is_null()) {
            p.state_bytes = std::max<int64_t>(p.state_bytes, 0) + static_cast<int64_t>(row[0].text().size());
          }
          if (!row[1].is_null()) written = std::max(written, row[1].int64() * 1000);
        }
      }
      p.last_checkpoint_micros = written;
      if (have.count("_sluice_dead_letters")) {
        p.dead_letters_stored = true;
        // One partition per (pipeline, source, partition); the dead letters of the pipeline are
        // read partition by partition, and the newest by `time` kept as samples.
        ASSIGN_OR_RETURN(cassandra::QueryResult parts,
                         conn_->QueryAllPages("SELECT DISTINCT pipeline, source, \"partition\" FROM " + ks +
                                                  kDeadLettersTable,
                                              {}, q));
        std::map<std::string, std::vector<StoredDeadLetter>> all;
        for (const auto& part : parts.rows) {
          if (part.size() != 3 || part[0].text() != name) continue;
          std::vector<CqlValue> key = {part[0], part[1], part[2]};
          ASSIGN_OR_RETURN(cassandra::QueryResult r,
                           conn_->QueryAllPages("SELECT reason, \"offset\", time, payload, payload_bytes, "
                                                "truncated FROM " + ks + kDeadLettersTable +
                                                    " WHERE pipeline = ? AND source = ? AND \"partition\" = ?",
                                                key, q));
          for (const auto& row : r.rows) {
            if (row.size() != 6) continue;
            StoredDeadLetter d;
            d.source = part[1].text();
            d.partition = part[2].int32();
            d.reason = row[0].text();
            d.offset = row[1].int64();
            d.time = row[2].text();
            d.payload = row[3].text();
            d.payload_bytes = row[4].is_null() ? 0 : row[4].int64();
            d.truncated = !row[5].is_null() && row[5].boolean();
            ++p.dead_letters.by_reason[d.reason];
            all[d.reason].push_back(std::move(d));
          }
        }
        const auto ranked = p.dead_letters.Ranked();
        for (size_t i = 0; i < ranked.size() && i < options.sample_reasons; ++i) {
          auto& letters = all[ranked[i].first];
          std::stable_sort(letters.begin(), letters.end(), [](const auto& a, const auto& b) {
            return a.time != b.time ? a.time > b.time : a.offset > b.offset;
          });
          if (letters.size() > options.samples_per_reason) letters.resize(options.samples_per_reason);
          p.dead_letters.samples[ranked[i].first] = std::move(letters);
        }
      }
      inv.pipelines.push_back(std::move(p));
    }
    return inv;
  }();
  ctx_.pipeline.clear();
  tasks_table_ = false;
  conn_.reset();
  return out;
}

std::string CassandraSink::DeadLetterLocation() const {
  return "table " + uri_.keyspace + "._sluice_dead_letters";
}

Status CassandraSink::Commit(const Checkpoint& cp) {
  if (columns_.empty() || reading_only_) return Status::Internal("cassandra sink: Commit() before Open()");
  if (cp.deltas && !cp.deltas->empty()) {
    return Status::Internal("cassandra sink: received update-mode deltas");
  }
  if (!conn_) RETURN_IF_ERROR(Connect());
  // Tasks: every write of this checkpoint carries one timestamp, larger than this sink's last
  // and inside the range each of its tasks reserved (so below the next owner's).
  int64_t ts = 0;
  if (ctx_.tasks) {
    // An older sluice writing the one state row again (a rolling upgrade): its row would be
    // ignored. One read of one row, before anything of this checkpoint is written.
    if (!cp.tasks.empty()) RETURN_IF_ERROR(CheckNoLegacyState());
    ASSIGN_OR_RETURN(ts, ReserveTimestamp(cp));
    last_write_ts_ = ts;
  }
  std::vector<RejectedItem> rejected;
  if (cp.rows && !cp.rows->empty()) {
    // A row whose values cannot be stored (a value that does not fit its column, a null or
    // oversized key) is refused here, before anything is sent.
    std::vector<std::vector<CqlValue>> rows(cp.rows->size());
    std::vector<size_t> accepted;
    for (size_t i = 0; i < cp.rows->size(); ++i) {
      auto converted = ConvertRow((*cp.rows)[i]);
      if (converted.ok()) {
        rows[i] = std::move(converted).value();
        accepted.push_back(i);
      } else if (converted.status().code() == StatusCode::kInvalidArgument) {
        rejected.push_back({i, converted.status().message()});
      } else {
        return converted.status();
      }
    }
    // Requests in flight at once are applied in any order: keep only the last row of each key
    // (stream order), so the final value never depends on that order.
    std::map<std::vector<std::string>, size_t> last_of_key;
    std::map<std::vector<std::string>, std::vector<size_t>> by_partition;
    auto encode = [&](const std::vector<CqlValue>& row, size_t count) {
      std::vector<std::string> key;
      for (size_t k = 0; k < count; ++k) {
        const CqlValue& v = row[key_slots_[k]];
        std::string bytes;
        Status s = cassandra::AppendValue(columns_[key_slots_[k]].type, v, &bytes);
        (void)s;  // already converted for this type
        key.push_back(std::move(bytes));
      }
      return key;
    };
    for (size_t i : accepted) last_of_key[encode(rows[i], key_slots_.size())] = i;
    std::vector<size_t> keep;
    keep.reserve(last_of_key.size());
    for (const auto& [key, index] : last_of_key) keep.push_back(index);
    std::sort(keep.begin(), keep.end());
    for (size_t i : keep) by_partition[encode(rows[i], partition_key_count_)].push_back(i);
    // One request per partition chunk: a single EXECUTE, or an unlogged batch of rows of the
    // same partition (applied atomically there, and cheap for the coordinator).
    std::vector<std::vector<size_t>> groups;
    for (auto& [key, indexes] : by_partition) {
      for (size_t start = 0; start < indexes.size(); start += batch_rows_) {
        size_t end = std::min(indexes.size(), start + batch_rows_);
        groups.emplace_back(indexes.begin() + static_cast<std::ptrdiff_t>(start),
                            indexes.begin() + static_cast<std::ptrdiff_t>(end));
      }
    }
    auto build = [&](const std::vector<size_t>& group) {
      Request req;
      req.options.consistency = consistency_;
      req.options.page_size = 0;
      auto values = [&](size_t i) {
        std::vector<CqlValue> v = rows[i];
        if (ts != 0) v.push_back(CqlValue::Bigint(ts));
        return v;
      };
      const auto& insert = ts != 0 ? insert_ts_ : insert_;
      if (group.size() == 1) {
        req.prepared = insert;
        req.values = values(group[0]);
      } else {
        for (size_t i : group) req.batch.push_back({"", insert.get(), values(i)});
      }
      return req;
    };
    // A request the server refuses as invalid is taken apart: each of its rows is sent alone
    // (upserts, so sending again the ones that were fine changes nothing), and the rows still
    // refused are dead-lettered.
    auto invalid = [](const Status& s) {
      return cassandra::ErrorCodeOf(s) == static_cast<int32_t>(cassandra::ErrorCode::kInvalid);
    };
    std::vector<size_t> singles;
    RETURN_IF_ERROR(RunWithRetry(
        groups.size(), [&](size_t g) { return build(groups[g]); },
        [&](size_t g, const Status& s) {
          if (!invalid(s)) return false;
          if (groups[g].size() == 1) {
            rejected.push_back({groups[g][0], s.message()});
          } else {
            singles.insert(singles.end(), groups[g].begin(), groups[g].end());
          }
          return true;
        }));
    if (!singles.empty()) {
      RETURN_IF_ERROR(RunWithRetry(
          singles.size(), [&](size_t g) { return build({singles[g]}); },
          [&](size_t g, const Status& s) {
            if (!invalid(s)) return false;
            rejected.push_back({singles[g], s.message()});
            return true;
          }));
    }
  }
  std::vector<DeadLetter> letters;
  if (!rejected.empty()) {
    std::sort(rejected.begin(), rejected.end(),
              [](const RejectedItem& a, const RejectedItem& b) { return a.index < b.index; });
    const int64_t now = WallClockMicros();
    letters = RejectedLetters(ctx_, cp, {}, rejected, 0, now);
    for (DeadLetter& d : letters) {
      // Idempotent like the rows: a replay of the checkpoint refuses the same row again and
      // writes the same letter, so its identity comes from its content.
      d.offset = RejectionOffset(d.payload);
      d.seq = 0;
    }
    LogRejected("cassandra", cp.id, letters);
  }
  if (cp.dead_letters) {
    letters.insert(letters.end(), cp.dead_letters->begin(), cp.dead_letters->end());
  }
  if (!letters.empty()) {
    // Idempotent rows written before the positions, like the results.
    RETURN_IF_ERROR(RunWithRetry(letters.size(), [&](size_t i) {
      const DeadLetter& d = letters[i];
      const StoredPayload p = EncodeDeadLetterPayload(d.payload);
      Request req;
      req.options.consistency = consistency_;
      req.options.page_size = 0;
      req.prepared = ts != 0 ? insert_dead_letter_ts_ : insert_dead_letter_;
      req.values = {CqlValue::Text(ToValidUtf8(ctx_.pipeline)),
                    CqlValue::Text(ToValidUtf8(d.source)),
                    CqlValue::Int(d.partition),
                    CqlValue::Bigint(d.offset),
                    CqlValue::Int(LegacyDeadLetterSeq(d)),
                    CqlValue::Text(ToValidUtf8(d.reason)),
                    CqlValue::Text(FormatIsoUtc(d.time_micros)),
                    CqlValue::Text(p.json),
                    p.base64.empty() ? CqlValue::Null() : CqlValue::Text(p.base64),
                    CqlValue::Bigint(p.bytes),
                    CqlValue::Boolean(p.truncated),
                    CqlValue::Text(p.sha256),
                    CqlValue::Bigint(d.generation)};
      if (ts != 0) req.values.push_back(CqlValue::Bigint(ts));
      return req;
    }));
  }
  if (hook_) RETURN_IF_ERROR(hook_("rows_written"));
  if (ctx_.tasks && !cp.tasks.empty()) {
    RETURN_IF_ERROR(CommitTasks(cp, ts));
    if (hook_) RETURN_IF_ERROR(hook_("tasks_committed"));
  }
  if (cp.positions.empty() && !cp.state) {
    rows_rejected_ += static_cast<int64_t>(rejected.size());
    return Status::OK();
  }
  // Positions and state together in one logged batch: both are applied, or (after a crash
  // before the batch log took it) neither, so state always matches the positions.
  RETURN_IF_ERROR(RunWithRetry(1, [&](size_t) {
    Request req;
    req.options.consistency = consistency_;
    req.batch_type = cassandra::BatchType::kLogged;
    for (const StoredPosition& p : cp.positions) {
      std::vector<CqlValue> v = {CqlValue::Text(ctx_.pipeline), CqlValue::Text(p.source),
                                 CqlValue::Int(p.partition), CqlValue::Bigint(p.offset)};
      if (ts != 0) v.push_back(CqlValue::Bigint(ts));  // a fenced owner's late mirror loses
      req.batch.push_back({"", ts != 0 ? insert_position_ts_.get() : insert_position_.get(), std::move(v)});
    }
    if (cp.state) {
      req.batch.push_back(
          {"",
           insert_state_.get(),
           {CqlValue::Text(ctx_.pipeline), CqlValue::Raw(CqlType::kBlob, *cp.state)}});
    }
    return req;
  }));
  rows_rejected_ += static_cast<int64_t>(rejected.size());
  healthy_ = true;
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Tasks

namespace {

CqlValue TimeOrNull(int64_t t) { return t == kNoWatermark ? CqlValue::Null() : CqlValue::Bigint(t); }
int64_t TimeOrNone(const CqlValue& v) { return v.is_null() ? kNoWatermark : v.int64(); }

std::string TaskName(const TaskId& t) { return t.source + "[" + std::to_string(t.partition) + "]"; }

}  // namespace

std::string CassandraSink::TasksTable() const { return QuoteIdentifier(uri_.keyspace) + "." + kTasksTable; }

Result<bool> CassandraSink::RunConditional(Request request) {
  request.options.consistency = consistency_;  // of the commit phase; the Paxos phase is SERIAL
  request.options.page_size = 0;
  if (!request.batch.empty()) request.batch_type = cassandra::BatchType::kLogged;
  int64_t backoff_ms = 100;
  Status last;
  for (int attempt = 0; attempt < retries_; ++attempt) {
    if (attempt > 0) {
      spdlog::warn("cassandra sink: a lightweight transaction failed ({}); retrying in {} ms", last.message(),
                   backoff_ms);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
    }
    if (!conn_) {
      Status c = Connect();
      if (!c.ok()) {
        last = c;
        if (!cassandra::IsRetryable(c)) return c;
        continue;
      }
    }
    // A timeout leaves the outcome unknown: the retry asks the same question again, and a
    // commit's condition (the fence) still holds if the first attempt applied it.
    std::vector<Request> one = {request};
    Result<cassandra::QueryResult> r = std::move(conn_->Run(one)[0]);
    if (conn_->broken()) {
      Status ignored = Failed(r.ok() ? Status::IOError("connection lost") : r.status());
      (void)ignored;
    }
    if (!r.ok()) {
      if (!cassandra::IsRetryable(r.status())) return Failed(r.status().WithContext("cassandra " + uri_.Display()));
      last = r.status();
      continue;
    }
    if (r->rows.empty() || r->rows[0].empty() || r->rows[0][0].kind() != CqlValue::Kind::kBoolean) {
      return Status::Internal("cassandra " + uri_.Display() + ": a conditional write answered without [applied]");
    }
    return r->rows[0][0].boolean();
  }
  healthy_ = false;
  return Status::Unavailable("cassandra " + uri_.Display() + ": a lightweight transaction still failing after " +
                             std::to_string(retries_) + " attempts: " + last.message());
}

Result<TaskClaim> CassandraSink::ClaimTask(const TaskId& task, const OwnerInfo& owner) {
  if (!schema_ready_ || !ctx_.tasks || reading_only_) {
    return Status::Internal("cassandra sink: ClaimTask() before Open() with tasks");
  }
  if (!conn_) RETURN_IF_ERROR(Connect());
  const std::vector<CqlValue> key = {CqlValue::Text(ctx_.pipeline), CqlValue::Text(task.source),
                                     CqlValue::Int(task.partition)};
  const std::string where = " WHERE pipeline = ? AND source = ? AND \"partition\" = ?";
  cassandra::QueryOptions serial;
  serial.consistency = cassandra::Consistency::kSerial;
  serial.page_size = 0;
  // The row a read of state chunks did not match (fence, ts_limit, version): the same row read
  // again with chunks that still do not match is corrupt, not a commit the read raced.
  std::optional<std::vector<CqlValue>> mismatched;
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10 * attempt));
    // Read the row (SERIAL: also finishes a commit still in flight), then bump the fence only if
    // nothing changed it since: every commit moves ts_limit, so the state and positions read
    // here are exactly those the claim takes over.
    auto r = conn_->Query("SELECT fence, ts_limit, state, \"position\", generation_position, state_version, "
                          "state_chunks, state_bytes FROM " + TasksTable() + where,
                          key, serial);
    if (!r.ok()) return Failed(r.status());
    TaskClaim claim;
    CqlValue fence = CqlValue::Bigint(0), limit = CqlValue::Bigint(0);
    const bool exists = !r->rows.empty() && r->rows[0].size() == 8;
    if (exists) {
      const auto& row = r->rows[0];
      fence = row[0];
      limit = row[1];
      if (!row[2].is_null()) claim.state = row[2].text();
      if (!row[3].is_null()) claim.positions[task.partition] = row[3].int64();
      if (!row[4].is_null()) claim.positions[kGenerationPartitionBase + task.partition] = row[4].int64();
      if (!row[2].is_null() && !row[5].is_null()) {
        // This sluice clears one when it writes the other (an inline commit the version, a
        // chunked one the inline state); a sluice from before chunked states commits inline
        // over a chunked state and leaves the version, and its positions go with the inline one.
        return Status::FailedPrecondition(
            "cassandra " + uri_.Display() + ": the row of " + TaskName(task) + " of pipeline " + ctx_.pipeline +
            " in _sluice_tasks holds both an inline state and a chunked one (state_version " +
            std::to_string(row[5].int64()) +
            "): a process of an older sluice (without chunked task states) committed this task; every process "
            "of a pipeline must run a version with chunked states: stop them all, then start only this version; "
            "the row is left as it is");
      }
      if (hook_) RETURN_IF_ERROR(hook_("task_row_read"));
      if (!row[5].is_null()) {
        // A chunked state: the version the row names is complete (its chunks were acknowledged
        // before the commit that named it) and stays until a later commit names another one,
        // which would make the claim below not apply.
        std::string mismatch;
        ASSIGN_OR_RETURN(std::optional<std::string> state,
                         ReadStateChunks(task, row[5].int64(), row[6].is_null() ? -1 : row[6].int32(),
                                         row[7].is_null() ? -1 : row[7].int64(), &mismatch));
        if (!state) {
          // A commit that named a later version may have deleted these chunks after the row was
          // read: read the row again. The same row with chunks that still do not match is not
          // going to change by itself.
          std::vector<CqlValue> seen = {row[0], row[1], row[5], row[6], row[7]};
          if (mismatched && *mismatched == seen) {
            return Status::FailedPrecondition(
                "cassandra " + uri_.Display() + ": the state of " + TaskName(task) + " of pipeline " +
                ctx_.pipeline + " is corrupt: its row in _sluice_tasks names " + mismatch +
                " (read twice at " + std::string(cassandra::ConsistencyName(StateChunkConsistency().second)) +
                "); the task cannot be claimed: restore the keyspace from a backup, or delete the task's row "
                "(its open windows and position are lost: it starts over from the stored positions)");
          }
          mismatched = std::move(seen);
          continue;
        }
        claim.state = std::move(*state);
      }
    }
    const int64_t now = WallClockMicros();
    // Rows of earlier owners were written below `limit`: this owner's start above it.
    const int64_t base = std::max(now, limit.is_null() ? 0 : limit.int64());
    claim.fence = (fence.is_null() ? 0 : fence.int64()) + 1;
    Request req;
    if (!exists) {
      req.cql = "INSERT INTO " + TasksTable() +
                " (pipeline, source, \"partition\", fence, owner, ts_limit, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "IF NOT EXISTS";
      req.values = key;
    } else {
      req.cql = "UPDATE " + TasksTable() + " SET fence = ?, owner = ?, ts_limit = ?, updated_at = ?" + where +
                " IF fence = ? AND ts_limit = ?";
    }
    std::vector<CqlValue> set = {CqlValue::Bigint(claim.fence), CqlValue::Text(owner.ToString()),
                                 CqlValue::Bigint(base + kTaskTimestampRange), CqlValue::Timestamp(now / 1000)};
    if (!exists) {
      req.values.insert(req.values.end(), set.begin(), set.end());
    } else {
      req.values = set;
      req.values.insert(req.values.end(), key.begin(), key.end());
      req.values.push_back(fence);
      req.values.push_back(limit);
    }
    ASSIGN_OR_RETURN(bool applied, RunConditional(std::move(req)));
    if (!applied) continue;  // another claim or a commit came first: read again
    // A task never committed under tasks falls back to the positions stored without them.
    if (!claim.positions.count(task.partition) ||
        !claim.positions.count(kGenerationPartitionBase + task.partition)) {
      cassandra::QueryOptions q;
      q.consistency = read_consistency_;
      std::vector<CqlValue> args = key;
      args.push_back(CqlValue::Int(kGenerationPartitionBase + task.partition));
      auto p = conn_->Query("SELECT \"partition\", \"offset\" FROM " + QuoteIdentifier(uri_.keyspace) + "." +
                                kPositionsTable + " WHERE pipeline = ? AND source = ? AND \"partition\" IN (?, ?)",
                            args, q);
      if (!p.ok()) return Failed(p.status());
      for (const auto& row : p->rows) {
        if (row.size() == 2 && !row[1].is_null()) claim.positions.try_emplace(row[0].int32(), row[1].int64());
      }
    }
    // Chunks left by earlier owners (a chunked state, or a commit that wrote chunks and was
    // refused): this owner's first commit with a state deletes them.
    cassandra::QueryOptions q;
    q.consistency = read_consistency_;
    auto chunks = conn_->Query("SELECT version FROM " + QuoteIdentifier(uri_.keyspace) + "." + kTaskStateTable +
                                   where + " LIMIT 1",
                               key, q);
    if (!chunks.ok()) return Failed(chunks.status());
    owned_[task] = OwnedTask{claim.fence, base, base + kTaskTimestampRange, !chunks->rows.empty()};
    return claim;
  }
  return Status::Unavailable("cassandra " + uri_.Display() + ": the claim of " + TaskName(task) +
                             " kept losing to other writes of the task; trying again later");
}

Result<std::vector<TaskRow>> CassandraSink::LoadTaskProgress() {
  if (ctx_.pipeline.empty()) return Status::Internal("cassandra sink: LoadTaskProgress() before Open()");
  if (!task_rows_readable_) return std::vector<TaskRow>{};  // no task was ever claimed here
  if (!conn_) RETURN_IF_ERROR(Connect());
  cassandra::QueryOptions q;
  q.consistency = read_consistency_;
  std::vector<CqlValue> args = {CqlValue::Text(ctx_.pipeline)};
  auto r = conn_->QueryAllPages("SELECT source, \"partition\", fence, owner, max_event_time, watermark, enforced, "
                                "idle, updated_at FROM " + TasksTable() + " WHERE pipeline = ?",
                                args, q);
  if (!r.ok()) return Failed(r.status());
  std::vector<TaskRow> out;
  for (const auto& row : r->rows) {
    if (row.size() != 9) return Status::Internal("cassandra " + uri_.Display() + ": bad row in _sluice_tasks");
    TaskRow t;
    t.task = TaskId{row[0].text(), row[1].int32()};
    t.fence = row[2].is_null() ? 0 : row[2].int64();
    t.owner = row[3].is_null() ? "" : row[3].text();
    t.progress.max_event_time = TimeOrNone(row[4]);
    t.progress.watermark = TimeOrNone(row[5]);
    t.progress.enforced = TimeOrNone(row[6]);
    t.progress.idle = !row[7].is_null() && row[7].boolean();
    t.updated_micros = row[8].is_null() ? 0 : row[8].int64() * 1000;
    out.push_back(std::move(t));
  }
  return out;
}

Result<int64_t> CassandraSink::ReserveTimestamp(const Checkpoint& cp) {
  const std::string where = " WHERE pipeline = ? AND source = ? AND \"partition\" = ?";
  auto key = [&](const TaskId& t) {
    return std::vector<CqlValue>{CqlValue::Text(ctx_.pipeline), CqlValue::Text(t.source), CqlValue::Int(t.partition)};
  };
  auto fenced = [&](const TaskId& t, const std::string& stored, int64_t ours) {
    return Status::Fenced("cassandra " + uri_.Display() + ": " + TaskName(t) + " of pipeline " + ctx_.pipeline +
                          " was claimed by another process (fence " + stored + ", this one holds " +
                          std::to_string(ours) + ")");
  };
  for (const TaskCommit& t : cp.tasks) {
    auto it = owned_.find(t.task);
    if (it != owned_.end() && it->second.fence == t.fence) continue;
    // Not claimed through this sink at this fence: its row says whether it is still ours, and
    // its limit is the floor (every earlier owner wrote below it).
    cassandra::QueryOptions serial;
    serial.consistency = cassandra::Consistency::kSerial;
    serial.page_size = 0;
    auto r = conn_->Query("SELECT fence, ts_limit FROM " + TasksTable() + where, key(t.task), serial);
    if (!r.ok()) return Failed(r.status());
    if (r->rows.empty() || r->rows[0].size() != 2 || r->rows[0][0].is_null()) {
      return fenced(t.task, "none", t.fence);
    }
    if (r->rows[0][0].int64() != t.fence) return fenced(t.task, std::to_string(r->rows[0][0].int64()), t.fence);
    const int64_t limit = r->rows[0][1].is_null() ? 0 : r->rows[0][1].int64();
    owned_[t.task] = OwnedTask{t.fence, limit, limit, /*sweep=*/true};
  }
  int64_t ts = last_write_ts_ + 1;
  for (const TaskCommit& t : cp.tasks) ts = std::max(ts, owned_[t.task].floor + 1);
  Request extend;
  std::vector<TaskId> extended;
  for (const TaskCommit& t : cp.tasks) {
    if (ts < owned_[t.task].limit) continue;
    std::vector<CqlValue> v = {CqlValue::Bigint(ts + kTaskTimestampRange)};
    for (auto& k : key(t.task)) v.push_back(std::move(k));
    v.push_back(CqlValue::Bigint(t.fence));
    extend.batch.push_back({"UPDATE " + TasksTable() + " SET ts_limit = ?" + where + " IF fence = ?", nullptr, v});
    extended.push_back(t.task);
  }
  if (!extend.batch.empty()) {
    ASSIGN_OR_RETURN(bool applied, RunConditional(std::move(extend)));
    if (!applied) {
      std::string names;
      for (const auto& t : extended) names += (names.empty() ? "" : ", ") + TaskName(t);
      return Status::Fenced("cassandra " + uri_.Display() + ": a task of pipeline " + ctx_.pipeline + " (" + names +
                            ") was claimed by another process");
    }
    for (const auto& t : extended) owned_[t].limit = ts + kTaskTimestampRange;
  }
  return ts;
}

Status CassandraSink::CommitTasks(const Checkpoint& cp, int64_t ts) {
  // One conditional batch on the pipeline's partition: every task's fence is checked and either
  // all of their updates apply or none does.
  const int64_t now_ms = WallClockMicros() / 1000;
  // One above what an extension for this T set: every write that changes a task row moves its
  // ts_limit, so a claim conditioned on the ts_limit it read fails if a commit came in between.
  const int64_t commit_limit = ts + kTaskTimestampRange + 1;
  // Which states go inline into the batch and which in chunks, written first under version ts
  // (named by nothing until the batch applies: a refused commit leaves only unnamed chunks).
  std::vector<bool> chunked(cp.tasks.size(), false);
  size_t inline_bytes = 0;
  for (size_t i = 0; i < cp.tasks.size(); ++i) {
    const TaskCommit& t = cp.tasks[i];
    if (!t.state) continue;
    if (t.state->size() <= kTaskStateInlineBytes && inline_bytes + t.state->size() <= kTaskStateInlineBudget) {
      inline_bytes += t.state->size();
      continue;
    }
    chunked[i] = true;
    owned_[t.task].sweep = true;  // written below, named only if the batch applies
    RETURN_IF_ERROR(WriteStateChunks(t.task, ts, *t.state));
  }
  if (hook_ && std::find(chunked.begin(), chunked.end(), true) != chunked.end()) {
    RETURN_IF_ERROR(hook_("state_chunks_written"));
  }
  Request req;
  for (size_t i = 0; i < cp.tasks.size(); ++i) {
    const TaskCommit& t = cp.tasks[i];
    std::string set = "max_event_time = ?, watermark = ?, enforced = ?, idle = ?, ts_limit = ?, updated_at = ?";
    std::vector<CqlValue> v = {TimeOrNull(t.progress.max_event_time), TimeOrNull(t.progress.watermark),
                               TimeOrNull(t.progress.enforced), CqlValue::Boolean(t.progress.idle),
                               CqlValue::Bigint(commit_limit), CqlValue::Timestamp(now_ms)};
    if (t.state && chunked[i]) {
      set += ", state = null, state_version = ?, state_chunks = ?, state_bytes = ?";
      v.push_back(CqlValue::Bigint(ts));
      v.push_back(CqlValue::Int(static_cast<int32_t>((t.state->size() + kTaskStateChunkBytes - 1) / kTaskStateChunkBytes)));
      v.push_back(CqlValue::Bigint(static_cast<int64_t>(t.state->size())));
    } else if (t.state) {
      set += ", state = ?, state_version = null, state_chunks = null, state_bytes = ?";
      v.push_back(CqlValue::Raw(CqlType::kBlob, *t.state));
      v.push_back(CqlValue::Bigint(static_cast<int64_t>(t.state->size())));
    }
    if (t.release) set += ", owner = ''";
    for (const StoredPosition& p : cp.positions) {
      if (p.source != t.task.source) continue;
      if (p.partition == t.task.partition) {
        set += ", \"position\" = ?";
        v.push_back(CqlValue::Bigint(p.offset));
      } else if (p.partition == kGenerationPartitionBase + t.task.partition) {
        set += ", generation_position = ?";
        v.push_back(CqlValue::Bigint(p.offset));
      }
    }
    for (auto k : {CqlValue::Text(ctx_.pipeline), CqlValue::Text(t.task.source), CqlValue::Int(t.task.partition),
                   CqlValue::Bigint(t.fence)}) {
      v.push_back(std::move(k));
    }
    req.batch.push_back({"UPDATE " + TasksTable() + " SET " + set +
                             " WHERE pipeline = ? AND source = ? AND \"partition\" = ? IF fence = ?",
                         nullptr, std::move(v)});
  }
  ASSIGN_OR_RETURN(bool applied, RunConditional(std::move(req)));
  if (!applied) {
    std::string names;
    for (const TaskCommit& t : cp.tasks) names += (names.empty() ? "" : ", ") + TaskName(t.task);
    for (const TaskCommit& t : cp.tasks) owned_.erase(t.task);  // read again if ever committed
    return Status::Fenced("cassandra " + uri_.Display() + ": pipeline " + ctx_.pipeline +
                          ": a task of this checkpoint (" + names +
                          ") was claimed by another process; nothing of the tasks was committed");
  }
  for (size_t i = 0; i < cp.tasks.size(); ++i) {
    const TaskCommit& t = cp.tasks[i];
    OwnedTask& owned = owned_[t.task];
    if (t.state && owned.sweep) {
      // The task row names version ts (or an inline state) now: every chunk below ts is of an
      // earlier state or of a refused commit. The delete carries ts, so chunks a fenced earlier
      // owner writes after it (below ts: its range is below this owner's) are shadowed by it;
      // ones it writes after a claim that found none, while this owner's states stay inline,
      // stay until a chunked commit or a later claim's sweep. A failure leaves garbage that the
      // next commit with a state deletes; the commit stands.
      Status swept = RunWithRetry(1, [&](size_t) {
        Request del;
        del.cql = "DELETE FROM " + QuoteIdentifier(uri_.keyspace) + "." + kTaskStateTable +
                  " USING TIMESTAMP ? WHERE pipeline = ? AND source = ? AND \"partition\" = ? AND version < ?";
        del.values = {CqlValue::Bigint(ts), CqlValue::Text(ctx_.pipeline), CqlValue::Text(t.task.source),
                      CqlValue::Int(t.task.partition), CqlValue::Bigint(ts)};
        del.options.consistency = consistency_;
        del.options.page_size = 0;
        return del;
      });
      if (!swept.ok()) {
        spdlog::warn("cassandra {}: pipeline {}: older state chunks of {} not deleted yet ({}); the next commit "
                     "tries again", uri_.Display(), ctx_.pipeline, TaskName(t.task), swept.message());
      }
      owned.sweep = chunked[i] || !swept.ok();
    } else if (t.state) {
      owned.sweep = chunked[i];
    }
    if (t.release) {
      owned_.erase(t.task);
    } else {
      owned.limit = commit_limit;
    }
  }
  return Status::OK();
}

Status CassandraSink::WriteStateChunks(const TaskId& task, int64_t ts, const std::string& state) {
  const size_t chunks = (state.size() + kTaskStateChunkBytes - 1) / kTaskStateChunkBytes;
  const cassandra::Consistency level = StateChunkConsistency().first;
  return RunWithRetry(chunks, [&](size_t c) {
    Request req;
    req.options.consistency = level;
    req.options.page_size = 0;
    req.prepared = insert_state_chunk_;
    req.values = {CqlValue::Text(ctx_.pipeline), CqlValue::Text(task.source), CqlValue::Int(task.partition),
                  CqlValue::Bigint(ts), CqlValue::Int(static_cast<int32_t>(c)),
                  CqlValue::Raw(CqlType::kBlob, state.substr(c * kTaskStateChunkBytes, kTaskStateChunkBytes)),
                  CqlValue::Bigint(ts)};
    return req;
  });
}

std::pair<cassandra::Consistency, cassandra::Consistency> CassandraSink::StateChunkConsistency() const {
  using C = cassandra::Consistency;
  const C write = consistency_ == C::kAll || consistency_ == C::kEachQuorum ? consistency_ : C::kQuorum;
  const C read = read_consistency_ == C::kAll ? read_consistency_ : C::kQuorum;
  return {write, read};
}

Result<std::optional<std::string>> CassandraSink::ReadStateChunks(const TaskId& task, int64_t version, int64_t chunks,
                                                                  int64_t bytes, std::string* mismatch) {
  const std::string named = "version " + std::to_string(version) + " of " + std::to_string(chunks) +
                            " chunk(s), " + std::to_string(bytes) + " bytes";
  // A state of `chunks` chunks has more than chunks - 1 of them in bytes and at most chunks.
  const int64_t chunk = static_cast<int64_t>(kTaskStateChunkBytes);
  if (chunks < 1 || chunks > kTaskStateMaxChunks || bytes <= (chunks - 1) * chunk || bytes > chunks * chunk) {
    *mismatch = named + ", which no state is (at most " + std::to_string(kTaskStateMaxChunks) + " chunks of " +
                std::to_string(chunk) + " bytes, all but the last full)";
    return std::optional<std::string>();
  }
  cassandra::QueryOptions q;
  q.consistency = StateChunkConsistency().second;
  q.page_size = 8;  // chunks of 256 KiB: pages of 2 MiB
  const std::vector<CqlValue> args = {CqlValue::Text(ctx_.pipeline), CqlValue::Text(task.source),
                                      CqlValue::Int(task.partition), CqlValue::Bigint(version)};
  auto r = conn_->QueryAllPages("SELECT chunk, data FROM " + QuoteIdentifier(uri_.keyspace) + "." + kTaskStateTable +
                                    " WHERE pipeline = ? AND source = ? AND \"partition\" = ? AND version = ?",
                                args, q);
  if (!r.ok()) return Failed(r.status());
  std::string out;
  out.reserve(static_cast<size_t>(bytes));
  int64_t next = 0;
  bool in_order = true;
  for (const auto& row : r->rows) {
    if (row.size() != 2 || row[0].is_null() || row[0].int32() != next || next == chunks) {
      in_order = false;
      break;
    }
    if (!row[1].is_null()) out += row[1].text();
    ++next;
  }
  if (!in_order || next != chunks || static_cast<int64_t>(out.size()) != bytes) {
    *mismatch = named + ", whose chunks read back as " + std::to_string(r->rows.size()) + " chunk(s), " +
                (in_order ? std::to_string(out.size()) + " bytes"
                          : "not numbered 0 to " + std::to_string(chunks - 1));
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(out));
}

Result<CassandraSink::LegacyRow> CassandraSink::ReadLegacyState() {
  cassandra::QueryOptions q;
  q.consistency = read_consistency_;
  const std::vector<CqlValue> args = {CqlValue::Text(ctx_.pipeline)};
  auto r = conn_->Query("SELECT state, WRITETIME(state) FROM " + QuoteIdentifier(uri_.keyspace) + "." + kStateTable +
                            " WHERE pipeline = ?",
                        args, q);
  if (!r.ok()) return Failed(r.status());
  LegacyRow out;
  if (r->rows.empty() || r->rows[0].size() != 2 || r->rows[0][0].is_null() || r->rows[0][0].text().empty() ||
      r->rows[0][1].is_null()) {
    return out;
  }
  out.state = r->rows[0][0].text();
  out.written = r->rows[0][1].int64();
  return out;
}

Status CassandraSink::CheckNoLegacyState() {
  ASSIGN_OR_RETURN(const LegacyRow legacy, ReadLegacyState());
  const int64_t written = legacy.written;
  // The row the migration moved (written at or before the mark), not deleted yet: a crash or
  // another process's Open came between the migration's batch and its delete.
  if (written == 0 || written <= migrated_legacy_ts_) return Status::OK();
  return Status::FailedPrecondition(
      "cassandra " + uri_.Display() + ": pipeline " + ctx_.pipeline +
      " has a state row in _sluice_state next to its per-partition rows in _sluice_tasks: a process of an "
      "older sluice (without per-partition state) wrote it after the state moved into tasks, and it would be "
      "ignored (its held records lost, what it applied applied again): every process of a pipeline must run "
      "a version with per-partition state: stop them all, then start; the row is left as it is (delete it "
      "to go on from the task rows)");
}

Status CassandraSink::MigrateLegacyState() {
  cassandra::QueryOptions q;
  q.consistency = read_consistency_;
  std::vector<CqlValue> args = {CqlValue::Text(ctx_.pipeline)};
  // The task rows (if any) and the mark: the WRITETIME of the legacy row moved into them.
  auto read_mark = [&]() -> Result<bool> {
    auto any = conn_->Query("SELECT source, legacy_state_ts FROM " + TasksTable() + " WHERE pipeline = ? LIMIT 1",
                            args, q);
    if (!any.ok()) return Failed(any.status());
    if (any->rows.empty() || any->rows[0].size() != 2 || any->rows[0][0].is_null()) return false;
    migrated_legacy_ts_ = any->rows[0][1].is_null() ? 0 : any->rows[0][1].int64();
    return true;
  };
  migrated_legacy_ts_ = 0;
  ASSIGN_OR_RETURN(bool tasks, read_mark());
  auto delete_legacy = [&](int64_t written) {
    // USING TIMESTAMP of the row read: a later write (an older sluice still running) survives,
    // and is found by the check below and by every commit.
    return RunWithRetry(1, [&](size_t) {
      Request del;
      del.cql = "DELETE FROM " + QuoteIdentifier(uri_.keyspace) + "." + kStateTable + " USING TIMESTAMP ? WHERE pipeline = ?";
      del.values = {CqlValue::Bigint(written), CqlValue::Text(ctx_.pipeline)};
      del.options.consistency = consistency_;
      del.options.page_size = 0;
      return del;
    });
  };
  if (!tasks) {
    ASSIGN_OR_RETURN(const LegacyRow legacy, ReadLegacyState());
    const int64_t written = legacy.written;
    if (written == 0) return Status::OK();
    ASSIGN_OR_RETURN(WindowState old, WindowState::Parse(legacy.state, ctx_.aggregate));
    if (!old.open.empty()) {
      return Status::FailedPrecondition("cassandra " + uri_.Display() + ": the stored state of pipeline " +
                                        ctx_.pipeline + " has open windows, which per-task state does not take");
    }
    const int64_t delay = ctx_.aggregate ? ctx_.aggregate->watermark_delay_micros : 0;
    const int64_t now_ms = WallClockMicros() / 1000;
    Request batch;
    size_t held = 0;
    for (const auto& [id, task] : SplitLegacyState(old, ctx_.source, delay)) {
      held += task.held.size();
      batch.batch.push_back(
          {"INSERT INTO " + TasksTable() +
               " (pipeline, source, \"partition\", fence, owner, max_event_time, watermark, enforced, idle, state, "
               "ts_limit, updated_at, legacy_state_ts) VALUES (?, ?, ?, 0, '', ?, ?, ?, false, ?, 0, ?, ?) IF NOT EXISTS",
           nullptr,
           {CqlValue::Text(ctx_.pipeline), CqlValue::Text(id.source), CqlValue::Int(id.partition),
            TimeOrNull(task.progress.max_event_time), TimeOrNull(task.progress.watermark),
            TimeOrNull(task.progress.enforced), CqlValue::Raw(CqlType::kBlob, task.Serialize(ctx_.aggregate)),
            CqlValue::Timestamp(now_ms), CqlValue::Bigint(written)}});
    }
    const size_t moved = batch.batch.size();
    bool applied = true;
    if (!batch.batch.empty()) {
      // All task rows or none (a conditional batch of one partition), with the mark: the
      // WRITETIME of the legacy row they come from. Another process migrating at the same time
      // makes this one's not apply.
      ASSIGN_OR_RETURN(applied, RunConditional(std::move(batch)));
    }
    if (moved == 0) return delete_legacy(written);  // nothing in it to keep
    if (applied) {
      spdlog::info("cassandra {}: pipeline {}: the stored state now lives per partition in _sluice_tasks ({} task(s), "
                   "{} held record(s))", uri_.Display(), ctx_.pipeline, moved, held);
      if (hook_) RETURN_IF_ERROR(hook_("state_moved"));
    }
    ASSIGN_OR_RETURN(tasks, read_mark());
  }
  // Then the legacy row goes, if it is the one moved (at or before the mark). A crash before
  // this delete leaves it, and the next Open deletes it here; a row written after the mark is an
  // older sluice still running, and refused.
  RETURN_IF_ERROR(CheckNoLegacyState());
  ASSIGN_OR_RETURN(const LegacyRow left, ReadLegacyState());
  if (left.written != 0) {
    RETURN_IF_ERROR(delete_legacy(left.written));
    spdlog::info("cassandra {}: pipeline {}: deleted the legacy state row already moved into _sluice_tasks",
                 uri_.Display(), ctx_.pipeline);
  }
  return Status::OK();
}

}  // namespace sluice
