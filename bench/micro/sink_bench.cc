// Micro-benchmarks of the sink side: the SQL text of the MySQL sink's multi-row upserts (no
// server), and Parquet files written to a temporary directory. Items are result rows.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "connectors/mysql/mysql_sql.h"
#include "connectors/parquet/parquet_file.h"
#include "fixtures.h"
#include "operators/aggregator.h"

namespace sluice::bench {
namespace {

/// The recruitment deltas of `n` generated events (what one checkpoint hands the sink).
std::vector<DeltaRow> RecruitmentDeltas(const Plan& plan, size_t n) {
  auto decoder = MakeDecoder(DecoderOptions{}, plan.input);
  CheckOk(decoder.status(), "decoder");
  auto snapshots = Snapshots(plan);
  Aggregator agg(plan.aggregate.get());
  std::vector<Value> row(plan.schema.size());
  std::string null_key;
  for (const auto& payload : GeneratedPayloads("recruitment", n)) {
    if (!(*decoder)->Decode(payload, std::span<Value>(row).first(plan.input.size())).ok()) continue;
    row[plan.source_slot] = Value::String("file");
    if (RunSteps(plan, row, snapshots)) agg.Add(row, &null_key);
  }
  return agg.TakeAll();
}

void BM_MysqlUpsertSql(benchmark::State& state) {
  auto p = LoadExample("recruitment");
  const Plan& plan = *p->plan;
  // Generated events are 1 ms apart: 200k span about 3 hours, so most rows are distinct groups.
  std::vector<DeltaRow> deltas = RecruitmentDeltas(plan, 200000);
  SinkContext ctx;
  ctx.pipeline = "recruitment";
  ctx.aggregate = plan.aggregate.get();
  ctx.output = plan.OutputSchema();
  ctx.key_columns = plan.aggregate->KeyColumns();
  auto types =
      mysql::ParseColumnTypes("dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2),latest_update_time:DATETIME");
  CheckOk(types.status(), "column types");
  auto sql = mysql::TableSql::Make(ctx, "events", *types);
  CheckOk(sql.status(), "table sql");
  int64_t bytes = 0, statements = 0;
  for (auto _ : state) {
    Status s = sql->ForEachDeltaStatement(deltas, 1000, 4 << 20, [&](const std::string& stmt) {
      bytes += static_cast<int64_t>(stmt.size());
      ++statements;
      return Status::OK();
    });
    CheckOk(s, "render");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(deltas.size()));
  state.SetBytesProcessed(bytes);
  state.counters["rows_per_stmt"] =
      static_cast<double>(state.iterations()) * static_cast<double>(deltas.size()) /
      static_cast<double>(statements);
}
BENCHMARK(BM_MysqlUpsertSql)->Unit(benchmark::kMillisecond);

/// Final recruitment rows written as one zstd Parquet file (the sink writes one per partition
/// directory and roll; the fsync is part of the cost).
void BM_ParquetWrite(benchmark::State& state) {
  auto p = LoadExample("recruitment");
  const Plan& plan = *p->plan;
  std::vector<DeltaRow> deltas = RecruitmentDeltas(plan, 200000);
  std::vector<std::vector<Value>> rows;
  for (const auto& d : deltas) rows.push_back(FinalRow(*plan.aggregate, d));
  std::vector<const std::vector<Value>*> ptrs;
  for (const auto& r : rows) ptrs.push_back(&r);
  const Schema schema = plan.aggregate->OutputSchema();
  std::vector<size_t> columns;
  for (size_t c = 0; c < schema.size(); ++c) columns.push_back(c);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("sluice-bench-parquet-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "rows.parquet").string();
  for (auto _ : state) {
    CheckOk(WriteParquetFile(path, schema, columns, ptrs, ParquetCompression::kZstd), "parquet");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(rows.size()));
  state.counters["file_bytes"] = static_cast<double>(std::filesystem::file_size(path));
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ParquetWrite)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::bench
