#include "connectors/sqlite/sqlite_sink.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace sluice {
namespace {

namespace fs = std::filesystem;

/// Returns the rows of `sql` as "a|b|NULL" lines, read with plain SQLite.
std::vector<std::string> Query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::vector<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string line;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const unsigned char* t = sqlite3_column_text(st, c);
      line += (c ? "|" : "") + (t ? std::string(reinterpret_cast<const char*>(t)) : "NULL");
    }
    out.push_back(line);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST(SqliteSinkDeadLetterTest, StoredWithThePositionsOnceEach) {
  const fs::path dir = fs::temp_directory_path() / ("sluice_sqlite_dl_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string path = (dir / "out.db").string();
  SinkConfig config;
  config.uri = "sqlite:" + path;
  config.table = "out";
  auto sink = SqliteSink::Make(config);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  SinkContext ctx;
  ctx.pipeline = "p";
  ctx.output = Schema({{"k", Type::kString, ""}});
  ctx.key_columns = {"k"};
  ASSERT_TRUE((*sink)->Open(ctx).ok());
  EXPECT_TRUE((*sink)->StoresDeadLetters());

  const std::vector<DeadLetter> letters = {
      {"decode: 'x\xff'", std::string("a\xff\x01", 3), "tracking", 0, 7, 1767225600000006, 0},
      {"late", "[1, {\"a\": null}]", "tracking", 2, 9, 0, 0}};
  const std::vector<std::vector<Value>> rows = {{Value::String("r")}};
  Checkpoint cp;
  cp.rows = &rows;
  cp.positions = {{"tracking", 0, 8}};
  cp.dead_letters = &letters;
  ASSERT_TRUE((*sink)->Commit(cp).ok());
  // The same letters again (a replay that reaches the sink twice) add nothing.
  ASSERT_TRUE((*sink)->Commit(cp).ok());
  (*sink)->Close();
  EXPECT_EQ(Query(path, "SELECT pipeline, source, partition, offset, seq, reason, time, payload, "
                        "payload_base64, payload_bytes, truncated, payload_sha256 FROM "
                        "_sluice_dead_letters ORDER BY partition"),
            (std::vector<std::string>{
                "p|tracking|0|7|0|decode: 'x\xef\xbf\xbd'|2026-01-01T00:00:00.000006Z|"
                "\"a\\u00ff\\u0001\"|Yf8B|3|0|"
                "da75cf3a663ea72b55cb362eabd1676bdd658794b8c97fd0810557a0b1040319",
                "p|tracking|2|9|0|late|1970-01-01T00:00:00.000000Z|[1,{\"a\":null}]|NULL|16|0|"
                "8cf6476b77736cf49701894bb3057d1ecda312b822331bf7c892dff64db5bca4"}));
  EXPECT_EQ(Query(path, "SELECT source, partition, offset FROM _sluice_positions"),
            std::vector<std::string>{"tracking|0|8"});
  fs::remove_all(dir);
}

/// Runs `sql` on the database at `path` with plain SQLite.
void Exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// Two inputs at one path (a file replaced by another) put their dead letters at the same
// offsets; the generation keeps them apart. A table of an older sluice, keyed without it, is
// migrated on open and keeps its letters (generation 0).
TEST(SqliteSinkDeadLetterTest, GenerationsAtOneOffsetStoredApartAndOldTableMigrated) {
  const fs::path dir = fs::temp_directory_path() / ("sluice_sqlite_dlgen_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "out.db").string();
  // The table as the sluice before generations made it, with one stored letter.
  Exec(path,
       "CREATE TABLE _sluice_dead_letters (pipeline TEXT NOT NULL, source TEXT NOT NULL, partition "
       "INTEGER NOT NULL, offset INTEGER NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, time "
       "TEXT NOT NULL, payload TEXT NOT NULL, payload_base64 TEXT, payload_bytes INTEGER NOT NULL, "
       "truncated INTEGER NOT NULL, payload_sha256 TEXT NOT NULL, PRIMARY KEY (pipeline, source, "
       "partition, offset, seq));"
       "INSERT INTO _sluice_dead_letters VALUES ('p', 'tracking', 0, 100, 0, 'old', "
       "'2026-01-01T00:00:00.000000Z', '\"old\"', NULL, 3, 0, 'h');");
  SinkConfig config;
  config.uri = "sqlite:" + path;
  config.table = "out";
  SinkContext ctx;
  ctx.pipeline = "p";
  ctx.output = Schema({{"k", Type::kString, ""}});
  ctx.key_columns = {"k"};
  for (int open = 0; open < 2; ++open) {  // the second open finds the table migrated
    auto sink = SqliteSink::Make(config);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    Status opened = (*sink)->Open(ctx);
    ASSERT_TRUE(opened.ok()) << opened.ToString();
    std::vector<DeadLetter> letters(2);
    letters[0] = {"decode", "first file", "tracking", 0, 100, 0, 0};
    letters[1] = {"decode", "second file", "tracking", 0, 100, 0, 0};
    letters[1].generation = 1;
    Checkpoint cp;
    cp.positions = {{"tracking", 0, 200}};
    cp.dead_letters = &letters;
    ASSERT_TRUE((*sink)->Commit(cp).ok());
    auto counted = static_cast<SqliteSink*>(sink->get())->CountDeadLetters();
    ASSERT_TRUE(counted.ok());
    // The old letter (generation 0, migrated) holds the key of the first file's: kept, not doubled.
    EXPECT_EQ(*counted, (std::map<std::string, int64_t>{{"decode", 1}, {"old", 1}}));
    (*sink)->Close();
  }
  EXPECT_EQ(Query(path, "SELECT offset, generation, seq, reason, payload FROM _sluice_dead_letters "
                        "ORDER BY generation, reason"),
            (std::vector<std::string>{"100|0|0|old|\"old\"", "100|1|0|decode|\"second file\""}));
  EXPECT_EQ(Query(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%migrating%'"),
            std::vector<std::string>{"0"});
  fs::remove_all(dir);
}

// Several processes of one pipeline started together open one new file at the same moment:
// every one of them opens it (switching a new file to WAL answered "database is locked" to all
// but one, without waiting for the busy timeout). Threads with their own connections stand in
// for the processes; each round uses a fresh file.
TEST(SqliteSinkOpenTest, SeveralOpeningOneNewFileTogetherAllOpenIt) {
  const fs::path dir = fs::temp_directory_path() / ("sluice_sqlite_open_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  constexpr int kRounds = 30;
  constexpr int kOpeners = 4;
  for (int round = 0; round < kRounds; ++round) {
    SinkConfig config;
    config.uri = "sqlite:" + (dir / ("out" + std::to_string(round) + ".db")).string();
    config.table = "out";
    SinkContext ctx;
    ctx.pipeline = "p";
    ctx.output = Schema({{"k", Type::kString, ""}, {"n", Type::kInt64, ""}});
    ctx.key_columns = {"k"};
    std::vector<Status> opened(kOpeners);
    std::vector<std::unique_ptr<Sink>> sinks(kOpeners);
    std::vector<std::thread> threads;
    for (int i = 0; i < kOpeners; ++i) {
      threads.emplace_back([&, i] {
        auto sink = SqliteSink::Make(config);
        if (!sink.ok()) {
          opened[i] = sink.status();
          return;
        }
        sinks[i] = std::move(sink).value();
        opened[i] = sinks[i]->Open(ctx);
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kOpeners; ++i) {
      ASSERT_TRUE(opened[i].ok()) << "round " << round << ", opener " << i << ": " << opened[i].ToString();
    }
    for (auto& sink : sinks) sink->Close();
  }
  fs::remove_all(dir);
}

// `sluice run`'s check of what shape wrote the sink (positions_only): the named pipeline's
// positions and nothing else, from a sink never opened; nothing at the path is kNotFound, and a
// database without sluice's tables holds no pipeline.
TEST(SqliteSinkInventoryTest, PositionsOnlyReadsTheNamedPipelinesPositions) {
  const fs::path dir = fs::temp_directory_path() / ("sluice_sqlite_inv_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "out.db").string();
  SinkConfig config;
  config.uri = "sqlite:" + path;
  config.table = "out";
  InventoryOptions options;
  options.pipeline = "p";
  options.positions_only = true;
  {
    auto fresh = SqliteSink::Make(config);
    ASSERT_TRUE(fresh.ok());
    EXPECT_EQ(dynamic_cast<SinkReader&>(**fresh).Inventory(options).status().code(), StatusCode::kNotFound);
    EXPECT_FALSE(fs::exists(path));  // nothing created
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE other (x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    auto bare = SqliteSink::Make(config);
    ASSERT_TRUE(bare.ok());
    auto inv = dynamic_cast<SinkReader&>(**bare).Inventory(options);
    ASSERT_TRUE(inv.ok()) << inv.status().ToString();
    EXPECT_TRUE(inv->pipelines.empty());
  }
  for (const std::string pipeline : {"p", "q"}) {
    auto sink = SqliteSink::Make(config);
    ASSERT_TRUE(sink.ok());
    SinkContext ctx;
    ctx.pipeline = pipeline;
    ctx.output = Schema({{"k", Type::kString, ""}});
    ctx.key_columns = {"k"};
    ASSERT_TRUE((*sink)->Open(ctx).ok());
    const std::vector<std::vector<Value>> rows = {{Value::String("r")}};
    const std::vector<DeadLetter> letters = {{"late", "x", "views", 0, 3, 0, 0}};
    Checkpoint cp;
    cp.rows = &rows;
    cp.positions = {{"views_repartition", 1, pipeline == "p" ? 5 : 9}, {"views", 0, 4}};
    cp.dead_letters = &letters;
    ASSERT_TRUE((*sink)->Commit(cp).ok());
    (*sink)->Close();
  }
  auto sink = SqliteSink::Make(config);
  ASSERT_TRUE(sink.ok());
  auto inv = dynamic_cast<SinkReader&>(**sink).Inventory(options);
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->location, "sqlite:" + path);
  ASSERT_EQ(inv->pipelines.size(), 1u);
  const PipelineInventory& p = inv->pipelines[0];
  EXPECT_EQ(p.pipeline, "p");
  std::vector<StoredPosition> positions = p.positions;
  std::sort(positions.begin(), positions.end(),
            [](const StoredPosition& a, const StoredPosition& b) { return a.source < b.source; });
  EXPECT_EQ(positions, (std::vector<StoredPosition>{{"views", 0, 4}, {"views_repartition", 1, 5}}));
  // Positions only: no dead letters counted, no state size, no details.
  EXPECT_FALSE(p.dead_letters_stored);
  EXPECT_EQ(p.dead_letters.total(), 0);
  EXPECT_EQ(p.state_bytes, -1);
  EXPECT_TRUE(p.details.empty());
  // The full inventory of the same sink does count them.
  options.positions_only = false;
  auto full = dynamic_cast<SinkReader&>(**sink).Inventory(options);
  ASSERT_TRUE(full.ok());
  ASSERT_EQ(full->pipelines.size(), 1u);
  EXPECT_TRUE(full->pipelines[0].dead_letters_stored);
  EXPECT_EQ(full->pipelines[0].dead_letters.total(), 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice
