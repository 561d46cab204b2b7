// The Cassandra sink: option and mode checks offline, and writes against the real server of
// `scripts/services.sh up cassandra` (FAIL when CI=true and it is missing, else a loud skip),
// checked by reading the tables back with plain CQL queries.

#include "connectors/cassandra/cassandra_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>

#include "connectors/cassandra/tests/cassandra_test_util.h"
#include "core/time.h"

namespace sluice {
namespace {

using cassandra::CqlType;
using cassandra::CqlValue;
using cassandra_test::kKeyspace;

SinkConfig Config(std::map<std::string, std::string> options, std::string table = "") {
  SinkConfig c;
  c.uri = "cassandra://" + cassandra_test::ServerHostPort() + "/" + kKeyspace;
  c.table = std::move(table);
  for (auto& [k, v] : options) c.options.Set(k, Option{v, {"test.toml", 7, 1}});
  return c;
}

Schema UserSchema() {
  return Schema({{"id", Type::kString, ""},
                 {"name", Type::kString, ""},
                 {"age", Type::kInt64, ""},
                 {"score", Type::kDouble, ""},
                 {"active", Type::kBool, ""},
                 {"seen", Type::kTimestamp, ""}});
}

SinkContext SelectContext(const std::string& pipeline) {
  SinkContext ctx;
  ctx.pipeline = pipeline;
  ctx.output = UserSchema();
  return ctx;
}

TEST(CassandraSinkOptions, RejectsBadOptions) {
  EXPECT_FALSE(CassandraSink::Make(Config({{"concurrency", "0"}})).ok());
  EXPECT_FALSE(CassandraSink::Make(Config({{"consistency", "most"}})).ok());
  // Writes may use the write-only levels; the sink's reads of its positions may not.
  EXPECT_TRUE(CassandraSink::Make(Config({{"consistency", "each_quorum"}})).ok());
  EXPECT_TRUE(CassandraSink::Make(Config({{"consistency", "any"}})).ok());
  EXPECT_FALSE(CassandraSink::Make(Config({{"read_consistency", "any"}})).ok());
  EXPECT_FALSE(CassandraSink::Make(Config({{"read_consistency", "each_quorum"}})).ok());
  EXPECT_TRUE(CassandraSink::Make(Config({{"read_consistency", "local_one"}})).ok());
  EXPECT_FALSE(CassandraSink::Make(Config({{"column_types", "id:varint"}})).ok());
  EXPECT_FALSE(CassandraSink::Make(Config({{"colour", "blue"}})).ok());
  SinkConfig c = Config({});
  c.uri = "cassandra://u:secret@127.0.0.1/ks";
  auto bad = CassandraSink::Make(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("secret"), std::string::npos);
  c.uri = "cassandra://127.0.0.1/ks/table";
  EXPECT_FALSE(CassandraSink::Make(c).ok());
}

TEST(CassandraSinkOptions, RejectsUpdateModeAggregatesAtOpen) {
  auto sink = CassandraSink::Make(Config({}, "agg"));
  ASSERT_TRUE(sink.ok());
  AggregateSpec spec;  // update mode: deltas cannot be replayed idempotently
  spec.append_mode = false;
  SinkContext ctx;
  ctx.pipeline = "p";
  ctx.aggregate = &spec;
  Status s = (*sink)->Open(ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("mode = \"append\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("select pipeline"), std::string::npos);
}

TEST(CassandraSinkOptions, SelectPipelinesNeedAKey) {
  auto sink = CassandraSink::Make(Config({}, "nokey"));
  ASSERT_TRUE(sink.ok());
  Status s = (*sink)->Open(SelectContext("p"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("key = [\"id\"]"), std::string::npos) << s.message();
  auto wrong = CassandraSink::Make(Config({{"key", "nope"}}, "nokey"));
  ASSERT_TRUE(wrong.ok());
  EXPECT_FALSE((*wrong)->Open(SelectContext("p")).ok());
}

TEST(CassandraSinkValues, ConvertsSluiceValuesForEachColumnType) {
  EXPECT_EQ(*ToCqlValue(Value::Int(5), CqlType::kBigint), CqlValue::Bigint(5));
  EXPECT_EQ(*ToCqlValue(Value::Int(5), CqlType::kInt), CqlValue::Int(5));
  EXPECT_FALSE(ToCqlValue(Value::Int(1LL << 40), CqlType::kInt).ok());
  EXPECT_EQ(*ToCqlValue(Value::String("12"), CqlType::kBigint), CqlValue::Bigint(12));
  EXPECT_FALSE(ToCqlValue(Value::String("12x"), CqlType::kBigint).ok());
  EXPECT_EQ(*ToCqlValue(Value::Double(2.5), CqlType::kDouble), CqlValue::Double(2.5));
  // Microseconds round down to Cassandra's milliseconds, also before 1970.
  EXPECT_EQ(*ToCqlValue(Value::TimeMicros(1'500'999), CqlType::kTimestamp),
            CqlValue::Timestamp(1500));
  EXPECT_EQ(*ToCqlValue(Value::TimeMicros(-1), CqlType::kTimestamp), CqlValue::Timestamp(-1));
  EXPECT_EQ(*ToCqlValue(Value::String("2026-01-02T03:04:05.678Z"), CqlType::kTimestamp),
            CqlValue::Timestamp(1767323045678));
  auto u = ToCqlValue(Value::String("123e4567-e89b-42d3-a456-426614174000"), CqlType::kUuid);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->ToString(), "123e4567-e89b-42d3-a456-426614174000");
  EXPECT_FALSE(
      ToCqlValue(Value::String("123e4567-e89b-42d3-a456-426614174000"), CqlType::kTimeuuid).ok());
  EXPECT_TRUE(ToCqlValue(Value::Null(), CqlType::kUuid)->is_null());
  EXPECT_EQ(*ToCqlValue(Value::Int(7), CqlType::kVarchar), CqlValue::Text("7"));
}

class CassandraSinkTest : public ::testing::Test {
 protected:
  void SetUp() override { CASSANDRA_CONNECT_OR_SKIP(conn_); }

  /// Drops `table` and forgets what `pipeline` committed (other tests' pipelines stay).
  void Reset(const std::string& table, const std::string& pipeline) {
    cassandra::QueryOptions q;
    q.page_size = 0;
    const std::string ks = std::string(kKeyspace) + ".";
    auto r = conn_->Query("DROP TABLE IF EXISTS " + ks + table, {}, q);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<CqlValue> p = {CqlValue::Text(pipeline)};
    // The tables may not exist yet: errors are fine here.
    (void)conn_->Query("DELETE FROM " + ks + "\"_sluice_positions\" WHERE pipeline = ?", p, q);
    (void)conn_->Query("DELETE FROM " + ks + "\"_sluice_state\" WHERE pipeline = ?", p, q);
    (void)conn_->Query("DELETE FROM " + ks + "\"_sluice_dead_letters\" WHERE pipeline = ? AND "
                       "source = 'src' AND \"partition\" = 0", p, q);
  }

  std::unique_ptr<CassandraSink> Open(const SinkContext& ctx,
                                      std::map<std::string, std::string> options,
                                      const std::string& table) {
    auto s = CassandraSink::Make(Config(std::move(options), table));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    std::unique_ptr<CassandraSink> sink(static_cast<CassandraSink*>(s->release()));
    Status open = sink->Open(ctx);
    EXPECT_TRUE(open.ok()) << open.ToString();
    return open.ok() ? std::move(sink) : nullptr;
  }

  /// Returns the rows of `cql` as "a|b|" lines (null as empty), sorted.
  std::vector<std::string> Lines(const std::string& cql) {
    auto r = conn_->QueryAllPages(cql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> out;
    if (!r.ok()) return out;
    for (const auto& row : r->rows) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) line += (i ? "|" : "") + row[i].ToString();
      out.push_back(line);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::unique_ptr<cassandra::Connection> conn_;
};

std::vector<Value> User(const std::string& id, const char* name, int64_t age, double score,
                        bool active, int64_t seen_micros) {
  return {Value::String(id),   name ? Value::String(name) : Value::Null(),
          Value::Int(age),     Value::Double(score),
          Value::Bool(active), Value::TimeMicros(seen_micros)};
}

TEST_F(CassandraSinkTest, UpsertsRowsThenPositionsAndState) {
  Reset("users_sink", "users_pipeline");
  SinkContext ctx = SelectContext("users_pipeline");
  auto sink = Open(ctx, {{"key", "id"}, {"concurrency", "3"}}, "users_sink");
  ASSERT_TRUE(sink);
  auto stored = sink->LoadPositions();
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->empty());
  EXPECT_EQ(*sink->LoadState(), "");

  const int64_t t = *ParseTimestamp("2026-03-04 05:06:07.123456");
  std::vector<std::vector<Value>> rows = {
      User("u1", "Ann", 30, 1.5, true, t), User("u2", nullptr, 41, -2.25, false, t + 1000),
      User("u1", "Ann B.", 31, 2.5, false, t + 2000),  // a later version of u1 wins
  };
  std::string state("st\0ate\xff", 7);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"users_profile", 0, 17}, {"users_profile", 1, 4}};
  cp.state = &state;
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();

  EXPECT_EQ(Lines("SELECT id, name, age, score, active, seen FROM " + std::string(kKeyspace) +
                  ".users_sink"),
            (std::vector<std::string>{"u1|Ann B.|31|2.5|false|2026-03-04T05:06:07.125Z",
                                      "u2||41|-2.25|false|2026-03-04T05:06:07.124Z"}));
  EXPECT_EQ(
      Lines("SELECT pipeline, source, \"partition\", \"offset\" FROM " + std::string(kKeyspace) +
            ".\"_sluice_positions\" WHERE pipeline = 'users_pipeline'"),
      (std::vector<std::string>{"users_pipeline|users_profile|0|17",
                                "users_pipeline|users_profile|1|4"}));
  // The columns were typed from the output schema.
  EXPECT_EQ(Lines("SELECT column_name, type, kind FROM system_schema.columns WHERE "
                  "keyspace_name = '" +
                  std::string(kKeyspace) + "' AND table_name = 'users_sink'"),
            (std::vector<std::string>{"active|boolean|regular", "age|bigint|regular",
                                      "id|text|partition_key", "name|text|regular",
                                      "score|double|regular", "seen|timestamp|regular"}));

  // A new run reads back what the last one committed.
  sink.reset();
  auto again = Open(ctx, {{"key", "id"}}, "users_sink");
  ASSERT_TRUE(again);
  auto positions = again->LoadPositions();
  ASSERT_TRUE(positions.ok());
  std::sort(positions->begin(), positions->end(),
            [](const auto& a, const auto& b) { return a.partition < b.partition; });
  EXPECT_EQ(*positions,
            (std::vector<StoredPosition>{{"users_profile", 0, 17}, {"users_profile", 1, 4}}));
  EXPECT_EQ(*again->LoadState(), state);
}

TEST_F(CassandraSinkTest, ACrashBeforeThePositionsReplaysToTheSameRows) {
  Reset("replay_sink", "replay_pipeline");
  SinkContext ctx = SelectContext("replay_pipeline");
  auto sink = Open(ctx, {{"key", "id"}}, "replay_sink");
  ASSERT_TRUE(sink);
  std::vector<std::vector<Value>> first = {User("a", "one", 1, 1, true, 0)};
  Checkpoint cp1;
  cp1.id = 1;
  cp1.rows = &first;
  cp1.positions = {{"src", 0, 1}};
  ASSERT_TRUE(sink->Commit(cp1).ok());

  std::vector<std::vector<Value>> second = {User("a", "two", 2, 2, true, 0),
                                            User("b", "three", 3, 3, false, 0)};
  Checkpoint cp2;
  cp2.id = 2;
  cp2.rows = &second;
  cp2.positions = {{"src", 0, 3}};
  sink->SetTestHook([](std::string_view stage) {
    return stage == "rows_written" ? Status::Aborted("crash after the rows") : Status::OK();
  });
  EXPECT_FALSE(sink->Commit(cp2).ok());
  // The rows are there but the positions still say 1: a restart replays checkpoint 2.
  EXPECT_EQ(Lines("SELECT \"offset\" FROM " + std::string(kKeyspace) +
                  ".\"_sluice_positions\" WHERE pipeline = 'replay_pipeline'"),
            std::vector<std::string>{"1"});
  sink.reset();
  auto restarted = Open(ctx, {{"key", "id"}}, "replay_sink");
  ASSERT_TRUE(restarted);
  EXPECT_EQ(restarted->LoadPositions()->at(0).offset, 1);
  ASSERT_TRUE(restarted->Commit(cp2).ok());
  EXPECT_EQ(Lines("SELECT id, name, age FROM " + std::string(kKeyspace) + ".replay_sink"),
            (std::vector<std::string>{"a|two|2", "b|three|3"}));
  EXPECT_EQ(Lines("SELECT \"offset\" FROM " + std::string(kKeyspace) +
                  ".\"_sluice_positions\" WHERE pipeline = 'replay_pipeline'"),
            std::vector<std::string>{"3"});
}

TEST_F(CassandraSinkTest, DeadLettersAreIdempotentRowsBeforeThePositions) {
  Reset("dl_sink", "dl_pipeline");
  SinkContext ctx = SelectContext("dl_pipeline");
  auto sink = Open(ctx, {{"key", "id"}}, "dl_sink");
  ASSERT_TRUE(sink);
  EXPECT_TRUE(sink->StoresDeadLetters());
  std::vector<std::vector<Value>> rows = {User("a", "one", 1, 1, true, 0)};
  const std::vector<DeadLetter> letters = {
      {"decode: 'x\xff'", std::string("a\xff", 2), "src", 0, 7, 1767225600000006, 0},
      {"late", "{ \"k\": 1 }", "src", 0, 9, 0, 0}};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 10}};
  cp.dead_letters = &letters;
  // A crash after the rows and dead letters, before the positions: the replay writes the same.
  sink->SetTestHook([](std::string_view stage) {
    return stage == "rows_written" ? Status::Aborted("crash after the rows") : Status::OK();
  });
  EXPECT_FALSE(sink->Commit(cp).ok());
  sink->SetTestHook(nullptr);
  ASSERT_TRUE(sink->Commit(cp).ok());
  EXPECT_EQ(Lines("SELECT source, \"partition\", \"offset\", seq, reason, time, payload, "
                  "payload_base64, payload_bytes, truncated, payload_sha256 FROM " +
                  std::string(kKeyspace) + ".\"_sluice_dead_letters\" WHERE pipeline = "
                  "'dl_pipeline' AND source = 'src' AND \"partition\" = 0"),
            (std::vector<std::string>{
                "src|0|7|0|decode: 'x\xef\xbf\xbd'|2026-01-01T00:00:00.000006Z|\"a\\u00ff\"|Yf8=|2|"
                "false|8dd06b5ab6b594257e41b7d8dd440a4062eddc67fdab5c13b4dc300176896f6e",
                "src|0|9|0|late|1970-01-01T00:00:00.000000Z|{\"k\":1}||10|false|d695a39e577351ce510ed3ceb060e2dab8a0593413602e242d9ad2c8f0da1760"}));
}

// Two inputs at one path (a file replaced by another) put their dead letters at the same
// offsets; the generation keeps them apart (before, the second overwrote the first). In a new
// keyspace the generation is part of the key; a table of an older sluice, keyed (offset, seq),
// gets a regular generation column and stores a later generation under seq + generation * 65536.
TEST_F(CassandraSinkTest, DeadLetterGenerationsAtOneOffsetAreRowsOfTheirOwn) {
  cassandra::QueryOptions ddl;
  ddl.page_size = 0;
  std::vector<DeadLetter> letters(2);
  letters[0] = {"decode", "first file", "src", 0, 100, 0, 0};
  letters[1] = {"decode", "second file", "src", 0, 100, 0, 0};
  letters[1].generation = 1;
  for (bool older : {false, true}) {
    const std::string ks = std::string(older ? "sluice_dlgen_old_" : "sluice_dlgen_new_") + std::to_string(::getpid());
    ASSERT_TRUE(conn_->Query("DROP KEYSPACE IF EXISTS " + ks, {}, ddl).ok());
    if (older) {
      ASSERT_TRUE(conn_->Query("CREATE KEYSPACE " + ks + " WITH replication = {'class': 'SimpleStrategy', "
                               "'replication_factor': 1}", {}, ddl).ok());
      ASSERT_TRUE(conn_->Query("CREATE TABLE " + ks + ".\"_sluice_dead_letters\" (pipeline text, source text, "
                               "\"partition\" int, \"offset\" bigint, seq int, reason text, time text, payload text, "
                               "payload_base64 text, payload_bytes bigint, truncated boolean, payload_sha256 text, "
                               "PRIMARY KEY ((pipeline, source, \"partition\"), \"offset\", seq))", {}, ddl).ok());
      ASSERT_TRUE(conn_->Query("INSERT INTO " + ks + ".\"_sluice_dead_letters\" (pipeline, source, \"partition\", "
                               "\"offset\", seq, reason, payload) VALUES ('p', 'src', 0, 5, 0, 'old', 'x')", {}, ddl).ok());
    }
    SinkConfig config = Config({{"key", "id"}}, "dl_gen");
    config.uri = "cassandra://" + cassandra_test::ServerHostPort() + "/" + ks;
    for (int open = 0; open < 2; ++open) {  // the second open finds the table as the first left it
      auto made = CassandraSink::Make(config);
      ASSERT_TRUE(made.ok()) << made.status().ToString();
      std::unique_ptr<Sink> sink = std::move(made).value();
      Status opened = sink->Open(SelectContext("p"));
      ASSERT_TRUE(opened.ok()) << opened.ToString();
      Checkpoint cp;
      cp.id = 1 + open;
      cp.positions = {{"src", 0, 200}};
      cp.dead_letters = &letters;
      Status committed = sink->Commit(cp);
      ASSERT_TRUE(committed.ok()) << committed.ToString();
      sink->Close();
    }
    const std::string table = ks + ".\"_sluice_dead_letters\"";
    if (older) {
      EXPECT_EQ(Lines("SELECT \"offset\", generation, seq, reason, payload FROM " + table),
                (std::vector<std::string>{"100|0|0|decode|\"first file\"", "100|1|65536|decode|\"second file\"",
                                          "5||0|old|x"}));
      EXPECT_EQ(Lines("SELECT kind FROM system_schema.columns WHERE keyspace_name = '" + ks +
                      "' AND table_name = '_sluice_dead_letters' AND column_name = 'generation'"),
                std::vector<std::string>{"regular"});
    } else {
      EXPECT_EQ(Lines("SELECT \"offset\", generation, seq, reason, payload FROM " + table),
                (std::vector<std::string>{"100|0|0|decode|\"first file\"", "100|1|0|decode|\"second file\""}));
      EXPECT_EQ(Lines("SELECT kind FROM system_schema.columns WHERE keyspace_name = '" + ks +
                      "' AND table_name = '_sluice_dead_letters' AND column_name = 'generation'"),
                std::vector<std::string>{"clustering"});
    }
    (void)conn_->Query("DROP KEYSPACE IF EXISTS " + ks, {}, ddl);
  }
}

TEST_F(CassandraSinkTest, ManyRowsInConcurrentBatchesAndColumnTypes) {
  Reset("events_sink", "events_pipeline");
  // Append-mode aggregate: keys (window_start, job) with job as the clustering column.
  AggregateSpec spec;
  spec.append_mode = true;
  spec.emit_window_end = false;
  KeySpec job;
  job.name = "job";
  job.type = Type::kInt64;
  spec.keys.push_back(std::move(job));
  SinkContext ctx;
  ctx.pipeline = "events_pipeline";
  ctx.aggregate = &spec;
  ctx.output = Schema({{"window_start", Type::kTimestamp, ""},
                       {"job", Type::kInt64, ""},
                       {"ref", Type::kString, ""},
                       {"clicks", Type::kInt64, ""}});
  ctx.key_columns = spec.KeyColumns();
  auto sink = Open(ctx,
                   {{"partition_key", "window_start"},
                    {"column_types", "job:int, ref:uuid"},
                    {"batch_rows", "40"},
                    {"concurrency", "4"}},
                   "events_sink");
  ASSERT_TRUE(sink);
  const int64_t hour = *ParseTimestamp("2026-01-01 00:00:00");
  std::vector<std::vector<Value>> rows;
  int64_t expected_clicks = 0;
  for (int w = 0; w < 3; ++w) {
    for (int j = 0; j < 400; ++j) {
      char ref[40];
      std::snprintf(ref, sizeof(ref), "00000000-0000-4000-8000-%012d", w * 1000 + j);
      rows.push_back({Value::TimeMicros(hour + w * kMicrosPerHour), Value::Int(j),
                      Value::String(ref), Value::Int(w * j)});
      expected_clicks += w * j;
    }
  }
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"tracking", 0, 1200}};
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto all = conn_->QueryAllPages("SELECT window_start, job, ref, clicks FROM " +
                                  std::string(kKeyspace) + ".events_sink");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->rows.size(), 1200u);
  int64_t clicks = 0;
  for (const auto& r : all->rows) {
    clicks += r[3].int64();
    EXPECT_EQ(r[1].kind(), CqlValue::Kind::kInt);
    EXPECT_EQ(r[2].kind(), CqlValue::Kind::kUuid);
  }
  EXPECT_EQ(clicks, expected_clicks);
  EXPECT_EQ(Lines("SELECT column_name, kind FROM system_schema.columns WHERE keyspace_name = '" +
                  std::string(kKeyspace) + "' AND table_name = 'events_sink'"),
            (std::vector<std::string>{"clicks|regular", "job|clustering", "ref|regular",
                                      "window_start|partition_key"}));
}

TEST_F(CassandraSinkTest, BadRowsAndMismatchedTablesAreClearErrors) {
  Reset("mismatch_sink", "p");
  cassandra::QueryOptions q;
  q.page_size = 0;
  ASSERT_TRUE(conn_
                  ->Query("CREATE TABLE " + std::string(kKeyspace) +
                              ".mismatch_sink (id text PRIMARY KEY, name int)",
                          {}, q)
                  .ok());
  auto s = CassandraSink::Make(Config({{"key", "id"}}, "mismatch_sink"));
  ASSERT_TRUE(s.ok());
  Status open = (*s)->Open(SelectContext("p"));
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.message().find("column name is int but this pipeline writes text"),
            std::string::npos)
      << open.message();

  Reset("nullkey_sink", "p");
  auto sink = Open(SelectContext("p"), {{"key", "id"}}, "nullkey_sink");
  ASSERT_TRUE(sink);
  std::vector<std::vector<Value>> rows = {{Value::Null(), Value::String("x"), Value::Int(1),
                                           Value::Double(1), Value::Bool(true),
                                           Value::TimeMicros(0)}};
  Checkpoint cp;
  cp.rows = &rows;
  // A null key is a row the table cannot hold: dead-lettered, not a failed checkpoint.
  Status s2 = sink->Commit(cp);
  ASSERT_TRUE(s2.ok()) << s2.ToString();
  EXPECT_TRUE(Lines("SELECT id FROM " + std::string(kKeyspace) + ".nullkey_sink").empty());
  auto letters = Lines("SELECT reason FROM " + std::string(kKeyspace) +
                       ".\"_sluice_dead_letters\" WHERE pipeline = 'p' AND source = '_sink' AND "
                       "\"partition\" = 0");
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].find("sink_rejected: row refused by the sink: cassandra table nullkey_sink: "
                            "key column id is null"),
            std::string::npos)
      << letters[0];
}

/// Forgets the dead letters the sink made of refused rows for `pipeline`.
void ForgetRefused(cassandra::Connection* conn, const std::string& pipeline) {
  cassandra::QueryOptions q;
  q.page_size = 0;
  (void)conn->Query("DELETE FROM " + std::string(kKeyspace) +
                        ".\"_sluice_dead_letters\" WHERE pipeline = ? AND source = '_sink' AND "
                        "\"partition\" = 0",
                    std::vector<CqlValue>{CqlValue::Text(pipeline)}, q);
}

TEST_F(CassandraSinkTest, AnOversizedPartitionKeyIsDeadLetteredAndTheRestWritten) {
  // issue 14: one row whose key is over Cassandra's 64 KiB limit must not stop the pipeline.
  Reset("poison_bigkey_sink", "poison_bigkey");
  ForgetRefused(conn_.get(), "poison_bigkey");
  auto sink = Open(SelectContext("poison_bigkey"), {{"key", "id"}}, "poison_bigkey_sink");
  ASSERT_TRUE(sink);
  const std::string big(70000, 'k');
  std::vector<std::vector<Value>> rows = {User("a", "one", 1, 1, true, 0),
                                          User(big, "two", 2, 2, true, 0),
                                          User("c", "three", 3, 3, true, 0)};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 3}};
  // A crash after the rows and letters, before the positions: the replay must not add a second
  // letter for the same row.
  sink->SetTestHook([](std::string_view stage) {
    return stage == "rows_written" ? Status::Aborted("crash after the rows") : Status::OK();
  });
  EXPECT_FALSE(sink->Commit(cp).ok());
  sink->SetTestHook(nullptr);
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT id, name FROM " + std::string(kKeyspace) + ".poison_bigkey_sink"),
            (std::vector<std::string>{"a|one", "c|three"}));
  EXPECT_EQ(Lines("SELECT \"offset\" FROM " + std::string(kKeyspace) +
                  ".\"_sluice_positions\" WHERE pipeline = 'poison_bigkey'"),
            (std::vector<std::string>{"3"}));
  auto letters = Lines("SELECT reason, payload_bytes, truncated FROM " + std::string(kKeyspace) +
                       ".\"_sluice_dead_letters\" WHERE pipeline = 'poison_bigkey' AND source = "
                       "'_sink' AND \"partition\" = 0");
  // The payload: {"id":"kk...k","name":"two","age":2,"score":2,"active":true,
  // "seen":"1970-01-01 00:00:00"}, counted here by hand.
  const size_t payload_bytes =
      std::string("{\"id\":\"\",\"name\":\"two\",\"age\":2,\"score\":2,\"active\":true,"
                  "\"seen\":\"1970-01-01 00:00:00\"}")
          .size() +
      big.size();
  EXPECT_EQ(letters, (std::vector<std::string>{
                         "sink_rejected: row refused by the sink: cassandra table "
                         "poison_bigkey_sink: key column id holds 70000 bytes, over Cassandra's "
                         "limit of 65535 for a key|" +
                         std::to_string(payload_bytes) + "|true"}));
}

TEST_F(CassandraSinkTest, ARowTheServerRefusesIsIsolatedFromItsBatch) {
  // Invalid UTF-8 in a text column passes sluice's conversion, but the server refuses the
  // whole batch of that partition as an invalid request: its rows are sent one by one and
  // only the refused one is dead-lettered.
  Reset("poison_badtext_sink", "poison_badtext");
  ForgetRefused(conn_.get(), "poison_badtext");
  auto sink = Open(SelectContext("poison_badtext"),
                   {{"key", "id,age"}, {"partition_key", "id"}}, "poison_badtext_sink");
  ASSERT_TRUE(sink);
  std::vector<std::vector<Value>> rows = {
      User("p", "fine", 1, 1, true, 0), User("p", "bad\xff\xfe", 2, 2, true, 0),
      User("p", "also fine", 3, 3, true, 0), User("q", "other", 4, 4, true, 0)};
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 4}};
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lines("SELECT id, age, name FROM " + std::string(kKeyspace) + ".poison_badtext_sink"),
            (std::vector<std::string>{"p|1|fine", "p|3|also fine", "q|4|other"}));
  auto letters = Lines("SELECT reason, payload_base64 FROM " + std::string(kKeyspace) +
                       ".\"_sluice_dead_letters\" WHERE pipeline = 'poison_badtext' AND source "
                       "= '_sink' AND \"partition\" = 0");
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(
      letters[0].rfind("sink_rejected: row refused by the sink: cassandra invalid (0x2200)", 0),
      0u)
      << letters[0];
}

}  // namespace
}  // namespace sluice
