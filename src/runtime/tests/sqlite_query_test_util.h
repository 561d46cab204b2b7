// Reading an SQLite sink's file back in tests: every row of a query as "a|b|c" text.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

namespace sluice {
namespace sqlite_test {

/// The rows `sql` returns from the SQLite file `db_path`, opened read-only, each as its columns'
/// text joined by '|' (NULL as "NULL"); none when the file cannot be opened or the query fails.
inline std::vector<std::string> Query(const std::string& db_path, const std::string& sql) {
  std::vector<std::string> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string line;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        line += (c ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      out.push_back(line);
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

}  // namespace sqlite_test
}  // namespace sluice
