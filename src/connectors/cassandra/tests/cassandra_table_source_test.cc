// The Cassandra table source: its total order, cursor and page selection offline, and
// incremental exactly-once reading against the real server of `scripts/services.sh up
// cassandra` (FAIL when CI=true and it is missing, else a loud skip).

#include "connectors/cassandra/cassandra_table_source.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "connectors/cassandra/tests/cassandra_test_util.h"
#include "core/time.h"

namespace sluice {
namespace {

using cassandra::CqlType;
using cassandra::CqlValue;
using cassandra::OrderKey;
using cassandra::PageSelector;
using cassandra::Uuid;
using cassandra_test::kKeyspace;

CqlValue TimeUuid(int64_t micros, int ticks, uint16_t clock_seq, uint64_t node) {
  return CqlValue::FromUuid(*Uuid::Parse(FormatTimeUuid(micros, ticks, clock_seq, node)));
}

TEST(CassandraOrder, TimeUuidsOrderByTimeThenLowBits) {
  const int64_t t = 1767323045678123;
  auto a = cassandra::OrderKeyOf(TimeUuid(t, 0, 0x0001, 0x1), nullptr);
  auto b = cassandra::OrderKeyOf(TimeUuid(t, 0, 0x0001, 0x2), nullptr);  // same tick
  auto c = cassandra::OrderKeyOf(TimeUuid(t, 0, 0x3fff, 0xffffffffffffULL), nullptr);
  auto d = cassandra::OrderKeyOf(TimeUuid(t, 1, 0x0000, 0x0), nullptr);  // 100 ns later
  ASSERT_TRUE(a && b && c && d);
  EXPECT_EQ(a->time, b->time);
  EXPECT_LT(*a, *b);
  EXPECT_LT(*b, *c);  // low bits compare unsigned (the variant bit is the top bit)
  EXPECT_LT(*c, *d);
  EXPECT_EQ(d->time - a->time, 1);
  // A cursor survives the trip through two int64 positions, also with the top bit set.
  auto pos = cassandra::CursorPositions(*c);
  ASSERT_EQ(pos.size(), 2u);
  EXPECT_EQ(pos[0].first, 0);
  EXPECT_EQ(pos[1].first, 1);
  EXPECT_EQ(cassandra::CursorFromPositions(pos[0].second, pos[1].second), *c);
  // Non-time UUIDs and nulls have no place in the order.
  EXPECT_FALSE(cassandra::OrderKeyOf(
      CqlValue::FromUuid(*Uuid::Parse("123e4567-e89b-42d3-a456-426614174000")), nullptr));
  EXPECT_FALSE(cassandra::OrderKeyOf(CqlValue::Null(), nullptr));
}

TEST(CassandraOrder, TimestampsBreakTiesWithASignedKey) {
  CqlValue ts = CqlValue::Timestamp(1000);
  CqlValue minus = CqlValue::Bigint(-5), zero = CqlValue::Int(0), plus = CqlValue::Bigint(7);
  auto a = cassandra::OrderKeyOf(ts, &minus);
  auto b = cassandra::OrderKeyOf(ts, &zero);
  auto c = cassandra::OrderKeyOf(ts, &plus);
  ASSERT_TRUE(a && b && c);
  EXPECT_LT(*a, *b);
  EXPECT_LT(*b, *c);
  CqlValue null_key;
  EXPECT_FALSE(cassandra::OrderKeyOf(ts, &null_key));
  EXPECT_EQ(cassandra::OrderKeyOf(ts, nullptr)->tie, 0u);
}

TEST(CassandraOrder, HorizonIsInTheOrderUnit) {
  const int64_t t = 1767323045678123;
  auto k = cassandra::OrderKeyOf(TimeUuid(t, 0, 0, 0), nullptr);
  EXPECT_EQ(cassandra::HorizonTime(CqlType::kTimeuuid, t), k->time);
  EXPECT_EQ(cassandra::HorizonTime(CqlType::kTimestamp, t), 1767323045678);
  EXPECT_EQ(cassandra::HorizonTime(CqlType::kTimestamp, -1), -1);
}

TEST(CassandraOrder, PageSelectorKeepsTheSmallestAfterTheCursor) {
  // 1000 keys offered in random order; time = i / 3 (three rows share each time), tie = i % 3.
  std::vector<int> order(1000);
  for (int i = 0; i < 1000; ++i) order[static_cast<size_t>(i)] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  auto key = [](int i) { return OrderKey{i / 3, static_cast<uint64_t>(i % 3)}; };
  std::optional<OrderKey> cursor;
  std::vector<int> read;
  // Pages of 64 with a horizon at time 300 (rows 0..902 qualify), like repeated scans.
  for (int scan = 0; scan < 100; ++scan) {
    PageSelector sel(cursor, 300, 64);
    for (int i : order) sel.Offer(key(i), std::to_string(i));
    auto page = sel.Take();
    EXPECT_EQ(sel.duplicates(), 0u);
    if (page.empty()) break;
    for (auto& [k, payload] : page) read.push_back(std::stoi(payload));
    cursor = page.back().first;
  }
  ASSERT_EQ(read.size(), 903u);
  for (size_t i = 0; i < read.size(); ++i) EXPECT_EQ(read[i], static_cast<int>(i));
  PageSelector late(cursor, 400, 64);
  for (int i : order) late.Offer(key(i), "");
  EXPECT_EQ(late.Take().front().first, key(903));  // later scans continue after the cursor
}

TEST(CassandraOrder, PageSelectorCountsTooRecentAndDuplicates) {
  PageSelector sel(std::nullopt, 10, 5);
  EXPECT_TRUE(sel.Offer({5, 0}, "a"));
  EXPECT_FALSE(sel.Offer({11, 0}, "future"));
  EXPECT_TRUE(sel.Offer({5, 1}, "b"));
  EXPECT_TRUE(sel.Offer({5, 1}, "b again"));
  EXPECT_FALSE(sel.Wants({11, 0}));
  auto page = sel.Take();
  EXPECT_EQ(page.size(), 3u);
  EXPECT_EQ(sel.too_recent(), 1u);
  EXPECT_EQ(sel.duplicates(), 1u);
}

TEST(CassandraBuckets, NumbersStartsAndTextOfEpochAlignedBuckets) {
  cassandra::BucketScheme hours{CqlType::kBigint, 3'600'000, ""};
  EXPECT_EQ(hours.IndexOf(0), 0);
  EXPECT_EQ(hours.IndexOf(3'599'999), 0);
  EXPECT_EQ(hours.IndexOf(3'600'000), 1);
  EXPECT_EQ(hours.IndexOf(-1), -1);  // before 1970: floor, not truncation
  EXPECT_EQ(hours.Value(491'000).int64(), 491'000);
  EXPECT_EQ(hours.IndexOfValue(CqlValue::Bigint(491'000)), 491'000);
  EXPECT_FALSE(hours.IndexOfValue(CqlValue::Int(491'000)));  // not the column's type
  cassandra::BucketScheme ints{CqlType::kInt, 3'600'000, ""};
  EXPECT_EQ(ints.Value(7).kind(), CqlValue::Kind::kInt);
  EXPECT_EQ(ints.IndexOfValue(CqlValue::Int(7)), 7);

  // 2026-01-02T03:04:05.678Z
  const int64_t t = 1767323045678;
  cassandra::BucketScheme starts{CqlType::kTimestamp, 86'400'000, ""};
  const int64_t day = starts.IndexOf(t);
  EXPECT_EQ(starts.Value(day).int64(), 1767312000000);  // 2026-01-02T00:00:00Z
  EXPECT_EQ(starts.IndexOfValue(CqlValue::Timestamp(1767312000000)), day);
  EXPECT_FALSE(starts.IndexOfValue(CqlValue::Timestamp(1767312000001)));  // not a start

  cassandra::BucketScheme days{CqlType::kVarchar, 86'400'000, "%Y-%m-%d"};
  EXPECT_EQ(days.Value(day).text(), "2026-01-02");
  EXPECT_EQ(days.IndexOfValue(CqlValue::Text("2026-01-02")), day);
  EXPECT_EQ(days.IndexOfValue(CqlValue::Text("1969-12-31")), -1);
  EXPECT_FALSE(days.IndexOfValue(CqlValue::Text("2026-1-2")));  // formatted otherwise
  EXPECT_FALSE(days.IndexOfValue(CqlValue::Text("2026-01-02x")));
  EXPECT_FALSE(days.IndexOfValue(CqlValue::Text("yesterday")));
  cassandra::BucketScheme text_hours{CqlType::kVarchar, 3'600'000, "%Y%m%d%H"};
  EXPECT_EQ(text_hours.Value(text_hours.IndexOf(t)).text(), "2026010203");
  EXPECT_EQ(text_hours.IndexOfValue(CqlValue::Text("2026010203")), text_hours.IndexOf(t));
}

TEST(CassandraBuckets, OrderKeysGiveBackTheirTimeAndTimeUuid) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 200; ++i) {
    const int64_t micros = 1767323045678123 + static_cast<int64_t>(rng() % 1'000'000'000'000);
    CqlValue u = TimeUuid(micros, static_cast<int>(rng() % 10),
                          static_cast<uint16_t>(rng() & 0x3fff), rng() & 0xffffffffffffULL);
    auto key = cassandra::OrderKeyOf(u, nullptr);
    ASSERT_TRUE(key);
    EXPECT_EQ(cassandra::TimeUuidOf(*key), u.uuid());
    EXPECT_EQ(cassandra::OrderKeyUnixMillis(CqlType::kTimeuuid, *key),
              u.uuid().UnixMicros() / 1000);
  }
  EXPECT_EQ(cassandra::OrderKeyUnixMillis(CqlType::kTimestamp, OrderKey{-5, 0}), -5);
}

TEST(CassandraBuckets, ReadsTheServerGaveUpOnAreOverloads) {
  EXPECT_TRUE(cassandra::IsReadOverload(Status::Unavailable(
      "cassandra read_failure (0x1300): Operation failed - received 0 responses and 1 failures: "
      "READ_TOO_MANY_TOMBSTONES from localhost/127.0.0.1:7000")));
  EXPECT_TRUE(cassandra::IsReadOverload(
      Status::Unavailable("cassandra read_timeout (0x1200): Operation timed out")));
  EXPECT_FALSE(cassandra::IsReadOverload(
      Status::Unavailable("cassandra unavailable (0x1000): Cannot achieve consistency level")));
  EXPECT_FALSE(cassandra::IsReadOverload(Status::IOError("connection reset")));
}

TEST(CassandraTableSourceConfig, NeedsOrderByAndATable) {
  SourceConfig c;
  c.uri = "cassandra://127.0.0.1:9042/ks/tracking";
  EXPECT_FALSE(CassandraTableSource::Make(c, 1).ok());
  c.uri = "cassandra://127.0.0.1:9042/ks?order_by=create_time";
  EXPECT_FALSE(CassandraTableSource::Make(c, 1).ok());
  c.uri = "cassandra://127.0.0.1:9042/ks/tracking?order_by=create_time&page_rows=0";
  EXPECT_FALSE(CassandraTableSource::Make(c, 1).ok());
  c.uri = "cassandra://127.0.0.1:9042/ks/tracking?order_by=create_time&grace=2s";
  auto ok = CassandraTableSource::Make(c, 4);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->size(), 1u);  // one reader: the cursor is one position
  auto error = [&](const std::string& query) {
    SourceConfig bad;
    bad.uri = "cassandra://127.0.0.1:9042/ks/tracking?order_by=create_time&" + query;
    auto r = CassandraTableSource::Make(bad, 1);
    return r.ok() ? std::string("ok") : r.status().message();
  };
  EXPECT_NE(error("bucket_width=1h").find("need bucket"), std::string::npos);
  EXPECT_NE(error("bucket=day").find("needs bucket_width"), std::string::npos);
  EXPECT_NE(error("bucket=day&bucket_width=1500ms").find("needs bucket_width"),
            std::string::npos);
  EXPECT_EQ(error("bucket=day&bucket_width=1d&bucket_format=%Y-%m-%d"), "ok");
  EXPECT_NE(error("consistency=each_quorum").find("not a read consistency"), std::string::npos);
  EXPECT_NE(error("consistency=any").find("not a read consistency"), std::string::npos);
  EXPECT_EQ(error("consistency=local_one"), "ok");
  EXPECT_NE(error("give_up_after=0s").find("give_up_after"), std::string::npos);
  EXPECT_NE(error("fetch_size=2").find("fetch_size"), std::string::npos);
}

// ---- Against the real server.

class CassandraTableSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { CASSANDRA_CONNECT_OR_SKIP(conn_); }

  void Cql(const std::string& cql, std::vector<CqlValue> values = {}) {
    cassandra::QueryOptions q;
    q.page_size = 0;
    auto r = conn_->Query(cql, values, q);
    ASSERT_TRUE(r.ok()) << cql << ": " << r.status().ToString();
  }

  std::unique_ptr<Source> MakeSource(const std::string& table, const std::string& query,
                                     std::vector<Field> fields) {
    SourceConfig c;
    c.uri = "cassandra://" + cassandra_test::ServerHostPort() + "/" + kKeyspace + "/" + table +
            "?" + query;
    c.fields = std::move(fields);
    auto s = CassandraTableSource::Make(c, 1);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    return std::move((*s)[0]);
  }

  /// Runs a source like the engine would with --until-caught-up: opens it at the committed
  /// positions, polls batches of `batch` records and "commits" PositionsAfterBatch() after
  /// each, stopping after `max_batches` (a stop) or at kEnd. Returns the payloads read.
  std::vector<std::string> RunOnce(Source* source, size_t batch, int max_batches) {
    SourceContext ctx;
    ctx.until_caught_up = true;
    ctx.committed_position = [this](int32_t p) -> std::optional<int64_t> {
      auto it = committed_.find(p);
      if (it == committed_.end()) return std::nullopt;
      return it->second;
    };
    Status open = source->Open(ctx);
    EXPECT_TRUE(open.ok()) << open.ToString();
    std::vector<std::string> out;
    if (!open.ok()) return out;
    int idle = 0;
    for (int b = 0; b < max_batches; ++b) {
      RawBatch raw;
      auto state = source->Poll(&raw, batch, std::chrono::milliseconds(100));
      if (state.ok() && *state == PollState::kIdle && raw.size() == 0 && ++idle < 100000) {
        --b;  // a scan or a bucket walk in progress, not a batch
        continue;
      }
      EXPECT_TRUE(state.ok()) << state.status().ToString();
      if (!state.ok() || *state == PollState::kEnd) break;
      for (size_t i = 0; i < raw.size(); ++i) out.emplace_back(raw.payload(i));
      for (auto [p, offset] : source->PositionsAfterBatch()) committed_[p] = offset;
    }
    source->Close();
    return out;
  }

  static std::string FieldOf(const std::string& json, const std::string& name) {
    const std::string needle = "\"" + name + "\":";
    size_t at = json.find(needle);
    if (at == std::string::npos) return "<missing>";
    at += needle.size();
    if (json.compare(at, 4, "null") == 0) return "<null>";
    size_t end = json.find('"', at + 1);
    return json.substr(at + 1, end - at - 1);
  }

  std::unique_ptr<cassandra::Connection> conn_;
  std::map<int32_t, int64_t> committed_;
};

TEST_F(CassandraTableSourceTest, ReadsEveryRowExactlyOnceAcrossStopsAndReruns) {
  const std::string table = std::string(kKeyspace) + ".tracking_src";
  Cql("DROP TABLE IF EXISTS " + table);
  Cql("CREATE TABLE " + table +
      " (create_time timeuuid PRIMARY KEY, job_id int, custom_track text, bid double, ts "
      "timestamp)");
  auto insert = conn_->Prepare("INSERT INTO " + table +
                               " (create_time, job_id, custom_track, bid, ts) VALUES (?,?,?,?,?)");
  ASSERT_TRUE(insert.ok());
  const int64_t base = WallClockMicros() - 3600 * kMicrosPerSecond;  // an hour ago
  std::set<std::string> inserted;
  std::mt19937 rng(11);
  auto insert_batch = [&](int first, int count) {
    std::vector<cassandra::Request> requests;
    for (int i = first; i < first + count; ++i) {
      // Groups of four rows share one 100-ns tick and differ only in clock sequence / node.
      int64_t micros = base + (i / 4) * 1000;
      std::string id = FormatTimeUuid(micros, 0, static_cast<uint16_t>(rng() & 0x3fff),
                                      (static_cast<uint64_t>(rng()) << 16) ^ rng());
      inserted.insert(id);
      cassandra::Request r;
      r.prepared = *insert;
      r.values = {CqlValue::Text(id), CqlValue::Int(i),
                  CqlValue::Text(i % 2 ? "click" : "conversion"), CqlValue::Double(i * 0.5),
                  i % 5 ? CqlValue::Timestamp(micros / 1000) : CqlValue::Null()};
      requests.push_back(std::move(r));
    }
    for (auto& r : conn_->Run(requests)) ASSERT_TRUE(r.ok()) << r.status().ToString();
  };
  insert_batch(0, 300);
  std::vector<Field> fields = {{"create_time", Type::kString, ""},
                               {"job_id", Type::kInt64, ""},
                               {"custom_track", Type::kString, ""},
                               {"bid", Type::kDouble, ""},
                               {"ts", Type::kTimestamp, ""}};
  std::vector<std::string> all;
  auto take = [&](std::vector<std::string> rows) {
    all.insert(all.end(), rows.begin(), rows.end());
  };
  // A run stopped after three batches of 25, then a run to the end, with small pages so the
  // scans split groups of equal ticks.
  auto s1 = MakeSource("tracking_src", "order_by=create_time&grace=1s&page_rows=30&fetch_size=70",
                       fields);
  ASSERT_TRUE(s1);
  take(RunOnce(s1.get(), 25, 3));
  EXPECT_GT(all.size(), 25u);  // a batch ends early where a scan's page ends
  EXPECT_LE(all.size(), 75u);
  auto s2 = MakeSource("tracking_src", "order_by=create_time&grace=1s&page_rows=30&fetch_size=70",
                       fields);
  take(RunOnce(s2.get(), 25, 1000));
  EXPECT_EQ(all.size(), 300u);
  // New rows, some in the same ticks as the last ones already read are impossible (time moves
  // forward), so append later ones; a re-run reads only those.
  insert_batch(300, 90);
  auto s3 = MakeSource("tracking_src", "order_by=create_time&grace=1s&page_rows=1000", fields);
  take(RunOnce(s3.get(), 1000, 1000));
  auto s4 = MakeSource("tracking_src", "order_by=create_time&grace=1s", fields);
  EXPECT_TRUE(RunOnce(s4.get(), 1000, 1000).empty());  // nothing new

  ASSERT_EQ(all.size(), 390u);
  std::set<std::string> read;
  std::string previous;
  for (const auto& json : all) {
    std::string id = FieldOf(json, "create_time");
    EXPECT_TRUE(read.insert(id).second) << "read twice: " << id;
    auto key = cassandra::OrderKeyOf(CqlValue::FromUuid(*Uuid::Parse(id)), nullptr);
    if (!previous.empty()) {
      auto prev = cassandra::OrderKeyOf(CqlValue::FromUuid(*Uuid::Parse(previous)), nullptr);
      EXPECT_LT(*prev, *key) << "out of order";
    }
    previous = id;
  }
  EXPECT_EQ(read, inserted);
  // The JSON carries every declared field as a string (null as null).
  std::map<std::string, std::string> by_job;
  for (const auto& json : all) by_job[FieldOf(json, "job_id")] = json;
  ASSERT_EQ(by_job.size(), 390u);
  EXPECT_EQ(FieldOf(by_job["0"], "ts"), "<null>");  // every fifth row has no ts
  EXPECT_EQ(FieldOf(by_job["3"], "custom_track"), "click");
  EXPECT_EQ(FieldOf(by_job["3"], "bid"), "1.5");
  const std::string ts = FieldOf(by_job["1"], "ts");
  EXPECT_EQ(ts.size(), 24u) << ts;  // like 2026-01-02T03:04:05.678Z
  EXPECT_EQ(ParseIsoTimestamp(ts).value_or(0) / 1000, (base + 0) / 1000) << ts;
}

TEST_F(CassandraTableSourceTest, RowsWithinGraceWaitForALaterPoll) {
  const std::string table = std::string(kKeyspace) + ".grace_src";
  Cql("DROP TABLE IF EXISTS " + table);
  Cql("CREATE TABLE " + table + " (id int PRIMARY KEY, at timestamp, label text)");
  const int64_t now = WallClockMicros();
  Cql("INSERT INTO " + table + " (id, at, label) VALUES (1, ?, 'old')",
      {CqlValue::Timestamp(now / 1000 - 60'000)});
  Cql("INSERT INTO " + table + " (id, at, label) VALUES (2, ?, 'fresh')",
      {CqlValue::Timestamp(now / 1000)});
  Cql("INSERT INTO " + table + " (id, at, label) VALUES (3, ?, 'same time as 2')",
      {CqlValue::Timestamp(now / 1000)});
  std::vector<Field> fields = {{"id", Type::kInt64, ""}, {"label", Type::kString, ""}};
  auto s1 = MakeSource("grace_src", "order_by=at&key=id&grace=3s", fields);
  auto first = RunOnce(s1.get(), 100, 100);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(FieldOf(first[0], "label"), "old");
  std::this_thread::sleep_for(std::chrono::milliseconds(3200));
  auto s2 = MakeSource("grace_src", "order_by=at&key=id&grace=3s", fields);
  auto second = RunOnce(s2.get(), 100, 100);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(FieldOf(second[0], "id"), "2");  // equal times, ordered by key
  EXPECT_EQ(FieldOf(second[1], "id"), "3");
}

TEST_F(CassandraTableSourceTest, WrongColumnsAreClearErrors) {
  const std::string table = std::string(kKeyspace) + ".bad_src";
  Cql("DROP TABLE IF EXISTS " + table);
  Cql("CREATE TABLE " + table + " (id int PRIMARY KEY, label text, at timestamp)");
  SourceContext ctx;
  ctx.committed_position = [](int32_t) { return std::nullopt; };
  auto by_text = MakeSource("bad_src", "order_by=label", {{"id", Type::kInt64, ""}});
  Status s = by_text->Open(ctx);
  EXPECT_NE(s.message().find("must be a timeuuid or a timestamp"), std::string::npos)
      << s.message();
  auto missing = MakeSource("bad_src", "order_by=at", {{"nope", Type::kInt64, ""}});
  s = missing->Open(ctx);
  EXPECT_NE(s.message().find("no column nope"), std::string::npos) << s.message();
  auto no_table = MakeSource("no_such_src", "order_by=at", {{"id", Type::kInt64, ""}});
  s = no_table->Open(ctx);
  EXPECT_NE(s.message().find("does not exist"), std::string::npos) << s.message();
}


TEST_F(CassandraTableSourceTest, BucketLayoutReadsBucketByBucketExactlyOnce) {
  // Hour buckets (bigint: hours since 1970), rows ordered by (at, id) inside each: rows share
  // their time in threes, most cells null, and the hours used leave a gap of 40 empty buckets
  // (read past by one SELECT DISTINCT) and a few single empty ones.
  const std::string table = kKeyspace + ".bucket_src";
  Cql("DROP TABLE IF EXISTS " + table);
  Cql("CREATE TABLE " + table +
      " (hour bigint, at timestamp, id int, label text, n int, PRIMARY KEY ((hour), at, id))");
  auto insert = conn_->Prepare("INSERT INTO " + table +
                               " (hour, at, id, label, n) VALUES (?,?,?,?,?)");
  ASSERT_TRUE(insert.ok());
  const int64_t now_ms = WallClockMicros() / 1000;
  const int64_t first_hour = now_ms / 3'600'000 - 60;
  std::vector<int64_t> hours = {0, 1, 3, 4, 45, 46, 50};  // after first_hour
  std::vector<std::pair<int64_t, int>> inserted;         // (at, id) in read order
  std::vector<cassandra::Request> requests;
  int id = 0;
  for (int64_t h : hours) {
    for (int i = 0; i < 40; ++i) {
      const int64_t at = (first_hour + h) * 3'600'000 + (i / 3) * 60'000;
      ++id;
      // Ids go down within a time so that (at, id) order is not insertion order.
      const int key = 1000 * static_cast<int>(h) + 100 - id % 3;
      inserted.emplace_back(at, key);
      cassandra::Request r;
      r.prepared = *insert;
      r.values = {CqlValue::Bigint(first_hour + h), CqlValue::Timestamp(at), CqlValue::Int(key),
                  i % 4 ? CqlValue::Null() : CqlValue::Text("row " + std::to_string(key)),
                  CqlValue::Null()};
      requests.push_back(std::move(r));
    }
  }
  for (auto& r : conn_->Run(requests)) ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::sort(inserted.begin(), inserted.end());
  inserted.erase(std::unique(inserted.begin(), inserted.end()), inserted.end());
  std::vector<Field> fields = {{"id", Type::kInt64, ""}, {"at", Type::kTimestamp, ""},
                               {"label", Type::kString, ""}, {"n", Type::kInt64, ""}};
  const std::string query =
      "order_by=at&key=id&bucket=hour&bucket_width=1h&grace=1s&fetch_size=16";
  std::vector<std::string> all;
  auto s1 = MakeSource("bucket_src", query, fields);
  ASSERT_TRUE(s1);
  for (auto& row : RunOnce(s1.get(), 7, 5)) all.push_back(row);  // stopped after 5 batches
  EXPECT_GE(all.size(), 5u);
  EXPECT_LE(all.size(), 35u);
  for (int run = 0; run < 3; ++run) {  // more stops at other places, then to the end
    auto s = MakeSource("bucket_src", query, fields);
    for (auto& row : RunOnce(s.get(), 13, run < 2 ? 9 : 10000)) all.push_back(row);
  }
  ASSERT_EQ(all.size(), inserted.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(FieldOf(all[i], "id"), std::to_string(inserted[i].second)) << i;
    EXPECT_EQ(ParseIsoTimestamp(FieldOf(all[i], "at")).value_or(0) / 1000, inserted[i].first);
    EXPECT_EQ(FieldOf(all[i], "n"), "<null>");
  }
  // A re-run reads nothing; a new row in the current hour is read by the next one.
  auto again = MakeSource("bucket_src", query, fields);
  EXPECT_TRUE(RunOnce(again.get(), 100, 100).empty());
  Cql("INSERT INTO " + table + " (hour, at, id, label) VALUES (?, ?, 1, 'new')",
      {CqlValue::Bigint(now_ms / 3'600'000), CqlValue::Timestamp(now_ms - 2000)});
  auto fresh = MakeSource("bucket_src", query, fields);
  auto rows = RunOnce(fresh.get(), 100, 100);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(FieldOf(rows[0], "label"), "new");
}

TEST_F(CassandraTableSourceTest, BucketLayoutRefusesRowsInTheWrongBucket) {
  const std::string table = kKeyspace + ".wrong_bucket_src";
  Cql("DROP TABLE IF EXISTS " + table);
  Cql("CREATE TABLE " + table + " (day text, at timestamp, n int, PRIMARY KEY ((day), at))");
  // A writer that put a row in the day before its own: the reader refuses it (rows of other
  // buckets would otherwise be missed), naming the bucket its settings give.
  Cql("INSERT INTO " + table + " (day, at) VALUES ('2026-01-02', '2026-01-03 04:00:00+0000')");
  std::vector<Field> fields = {{"at", Type::kTimestamp, ""}};
  auto s = MakeSource("wrong_bucket_src",
                      "order_by=at&bucket=day&bucket_width=1d&bucket_format=%Y-%m-%d", fields);
  SourceContext ctx;
  ctx.until_caught_up = true;
  ctx.committed_position = [](int32_t) { return std::nullopt; };
  ASSERT_TRUE(s->Open(ctx).ok());
  RawBatch raw;
  auto state = s->Poll(&raw, 100, std::chrono::milliseconds(100));
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), StatusCode::kAborted);
  EXPECT_NE(state.status().message().find("put it in 2026-01-03"), std::string::npos)
      << state.status().message();
  // The layout is checked at Open.
  auto other_key = MakeSource("wrong_bucket_src", "order_by=at&bucket=n&bucket_width=1h",
                              {{"at", Type::kTimestamp, ""}});
  Status open = other_key->Open(ctx);
  EXPECT_NE(open.message().find("bucket=n reads a table with PRIMARY KEY ((n), at); this one has "
                                "PRIMARY KEY ((day), at)"),
            std::string::npos)
      << open.message();
}

TEST_F(CassandraTableSourceTest, FailingReadsGiveUpUnderUntilCaughtUp) {
  const std::string table = kKeyspace + ".give_up_src";
  Cql("DROP TABLE IF EXISTS " + table);
  Cql("CREATE TABLE " + table + " (create_time timeuuid PRIMARY KEY, label text)");
  Cql("INSERT INTO " + table + " (create_time, label) VALUES (now(), 'x')");
  // Consistency TWO on a one-node cluster: the server refuses every read as unavailable.
  auto s = MakeSource("give_up_src", "order_by=create_time&consistency=two&give_up_after=1s",
                      {{"label", Type::kString, ""}});
  SourceContext ctx;
  ctx.until_caught_up = true;
  ctx.committed_position = [](int32_t) { return std::nullopt; };
  ASSERT_TRUE(s->Open(ctx).ok());
  const int64_t start = SteadyClockMicros();
  Status last;
  while (SteadyClockMicros() - start < 20 * kMicrosPerSecond) {
    RawBatch raw;
    auto state = s->Poll(&raw, 100, std::chrono::milliseconds(100));
    ASSERT_FALSE(state.ok()) << "a read at consistency TWO succeeded on this server";
    last = state.status();
    if (last.code() == StatusCode::kAborted) break;
    EXPECT_EQ(last.code(), StatusCode::kUnavailable) << last.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(last.code(), StatusCode::kAborted) << last.ToString();
  EXPECT_NE(last.message().find("give_up_after 1s"), std::string::npos) << last.message();
  EXPECT_NE(last.message().find("TWO"), std::string::npos) << last.message();  // the server's
  EXPECT_LT(SteadyClockMicros() - start, 5 * kMicrosPerSecond);
}

}  // namespace
}  // namespace sluice
