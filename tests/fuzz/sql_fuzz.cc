// libFuzzer target for pipelines written in SQL (src/sql with libpg_query): the input is a .sql
// file's text. ParseSqlPipeline must return a config or an error, never crash, whatever the file
// holds (broken SQL, NUL bytes, deep nesting, constructs sluice refuses, ${VAR} in literals).
// Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sql/sql_pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sluice::Variables vars = [] {
    sluice::Variables v;
    v.use_environment = false;  // the same result on every machine
    v.reject_unused = false;    // reach the translation, not only the --var check
    v.values = {{"TRACKING", "in.csv"}, {"SINK", "sqlite:out.db"}, {"Q", "it's"}, {"EMPTY", ""}};
    return v;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)sluice::sql::ParseSqlPipeline(text, "fuzz.sql", vars);
  return 0;
}
