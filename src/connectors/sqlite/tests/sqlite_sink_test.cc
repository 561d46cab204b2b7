#include "connectors/sqlite/sqlite_sink.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
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

}  // namespace
}  // namespace sluice
