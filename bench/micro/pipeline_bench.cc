// Micro-benchmarks of the per-record path: decoding, TimeUUID parsing, the recruitment
// pipeline's steps (expressions and the job lookup), aggregate update, and all of it together.
// Items are records; bytes are payload bytes.
#include <benchmark/benchmark.h>

#include "connectors/generator/generator_source.h"
#include "core/time.h"
#include "fixtures.h"
#include "operators/aggregator.h"
#include "operators/decoder.h"

namespace sluice::bench {
namespace {

constexpr size_t kRecords = 20000;

int64_t Bytes(const std::vector<std::string>& payloads) {
  int64_t n = 0;
  for (const auto& p : payloads) n += static_cast<int64_t>(p.size());
  return n;
}

std::unique_ptr<Decoder> JsonDecoder(const Plan& plan) {
  DecoderOptions o;
  o.format = DecoderOptions::Format::kNdjson;
  auto d = MakeDecoder(o, plan.input);
  CheckOk(d.status(), "json decoder");
  return std::move(d).value();
}

void BM_DecodeJson(benchmark::State& state, const char* pipeline, const char* profile) {
  auto p = LoadExample(pipeline);
  auto payloads = GeneratedPayloads(profile, kRecords);
  auto decoder = JsonDecoder(*p->plan);
  std::vector<Value> row(p->plan->schema.size());
  std::span<Value> input = std::span<Value>(row).first(p->plan->input.size());
  size_t i = 0;
  int64_t failed = 0;
  for (auto _ : state) {
    if (!decoder->Decode(payloads[i], input).ok()) ++failed;
    if (++i == payloads.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * Bytes(payloads) /
                          static_cast<int64_t>(payloads.size()));
  state.counters["failed"] = static_cast<double>(failed);
}
BENCHMARK_CAPTURE(BM_DecodeJson, recruitment, "recruitment", "recruitment");
BENCHMARK_CAPTURE(BM_DecodeJson, ysb, "ysb", "ysb");

/// The seed tracking log (29 columns, real and messy) through the recruitment CSV decoder.
void BM_DecodeCsvRecruitment(benchmark::State& state) {
  auto p = LoadExample("recruitment");
  auto records = SeedTrackingCsv();
  if (records.size() < 2) {
    state.SkipWithError("seed tracking.csv not found");
    return;
  }
  DecoderOptions o;
  o.format = DecoderOptions::Format::kCsv;
  o.delimiter = ',';
  o.header = true;
  auto d = MakeDecoder(o, p->plan->input);
  CheckOk(d.status(), "csv decoder");
  auto decoder = std::move(d).value();
  CheckOk(decoder->SetHeader(records[0]), "csv header");
  records.erase(records.begin());
  std::vector<Value> row(p->plan->schema.size());
  std::span<Value> input = std::span<Value>(row).first(p->plan->input.size());
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decoder->Decode(records[i], input).ok());
    if (++i == records.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * Bytes(records) /
                          static_cast<int64_t>(records.size()));
}
BENCHMARK(BM_DecodeCsvRecruitment);

void BM_ParseTimeUuid(benchmark::State& state) {
  std::vector<std::string> uuids;
  Rng rng(3);
  for (int i = 0; i < 1024; ++i) {
    uuids.push_back(FormatTimeUuid(1'767'225'600'000'000 + i * 1'000'003LL, i % 10,
                                   static_cast<uint16_t>(rng.Next()), rng.Next()));
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ParseTimeUuid(uuids[i]));
    i = (i + 1) & 1023;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseTimeUuid);

/// Decoded recruitment rows, ready for the steps (decoded once, outside the timing).
struct DecodedRows {
  std::unique_ptr<LoadedPipeline> p;
  std::vector<std::vector<Value>> rows;
};

DecodedRows DecodeAll(const char* pipeline, const char* profile) {
  DecodedRows out;
  out.p = LoadExample(pipeline);
  auto decoder = JsonDecoder(*out.p->plan);
  for (const auto& payload : GeneratedPayloads(profile, kRecords)) {
    std::vector<Value> row(out.p->plan->schema.size());
    if (!decoder->Decode(payload, std::span<Value>(row).first(out.p->plan->input.size())).ok()) {
      continue;
    }
    row[out.p->plan->source_slot] = Value::String("file");
    out.rows.push_back(std::move(row));
  }
  return out;
}

/// The recruitment steps: the custom_track / job_id filters, event time from the TimeUUID
/// (coalesce with parse_time), four coalesce() lets and the job lookup.
void BM_StepsRecruitment(benchmark::State& state) {
  auto d = DecodeAll("recruitment", "recruitment");
  const Plan& plan = *d.p->plan;
  auto snapshots = Snapshots(plan);
  std::vector<Value> row(plan.schema.size());
  size_t i = 0;
  int64_t kept = 0;
  for (auto _ : state) {
    std::copy(d.rows[i].begin(), d.rows[i].end(), row.begin());
    kept += RunSteps(plan, row, snapshots) ? 1 : 0;
    if (++i == d.rows.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["kept"] = benchmark::Counter(static_cast<double>(kept) /
                                              static_cast<double>(state.iterations()));
}
BENCHMARK(BM_StepsRecruitment);

/// One expression on its own: the event-time derivation of the recruitment pipeline.
void BM_ExprEventTime(benchmark::State& state) {
  auto d = DecodeAll("recruitment", "recruitment");
  const Plan& plan = *d.p->plan;
  auto e = expr::Compile("coalesce(timeuuid_time(create_time), parse_time(ts))", plan.schema);
  CheckOk(e.status(), "compile");
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize((*e)->Eval(d.rows[i]));
    if (++i == d.rows.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExprEventTime);

void BM_ExprFilterIn(benchmark::State& state) {
  auto d = DecodeAll("recruitment", "recruitment");
  const Plan& plan = *d.p->plan;
  auto e = expr::CompilePredicate(
      "custom_track is null or custom_track not in ('click', 'conversion', 'qualified', "
      "'unqualified')",
      plan.schema);
  CheckOk(e.status(), "compile");
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize((*e)->Eval(d.rows[i]));
    if (++i == d.rows.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExprFilterIn);

/// The job dimension (examples/data/job.csv) looked up by int64 job_id, hits and misses as
/// the generated stream has them.
void BM_DimensionLookup(benchmark::State& state) {
  auto d = DecodeAll("recruitment", "recruitment");
  const Plan& plan = *d.p->plan;
  auto snapshot = plan.dimensions.at("job")->snapshot();
  const size_t job_slot = *plan.schema.IndexOf("job_id");
  std::vector<Value> keys;
  for (const auto& r : d.rows) keys.push_back(r[job_slot]);
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += snapshot->Find(keys[i]) != nullptr;
    if (++i == keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] =
      static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_DimensionLookup);

/// Rows after the steps, added to the hourly recruitment aggregate (6 keys, 9 metrics).
void BM_AggregateUpdate(benchmark::State& state, const char* pipeline, const char* profile) {
  auto d = DecodeAll(pipeline, profile);
  const Plan& plan = *d.p->plan;
  auto snapshots = Snapshots(plan);
  std::vector<std::vector<Value>> ready;
  for (auto& r : d.rows) {
    if (RunSteps(plan, r, snapshots)) ready.push_back(r);
  }
  Aggregator agg(plan.aggregate.get());
  std::string null_key;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(agg.Add(ready[i], &null_key));
    if (++i == ready.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["groups"] = static_cast<double>(agg.size());
}
BENCHMARK_CAPTURE(BM_AggregateUpdate, recruitment, "recruitment", "recruitment");
BENCHMARK_CAPTURE(BM_AggregateUpdate, ysb, "ysb", "ysb");

/// decode -> steps -> aggregate per record, as a worker does it (no source, no sink): the
/// ceiling of one core for the pipeline.
void BM_Pipeline(benchmark::State& state, const char* pipeline, const char* profile) {
  auto p = LoadExample(pipeline);
  const Plan& plan = *p->plan;
  auto payloads = GeneratedPayloads(profile, kRecords);
  auto decoder = JsonDecoder(plan);
  auto snapshots = Snapshots(plan);
  Aggregator agg(plan.aggregate.get());
  std::vector<Value> row(plan.schema.size());
  std::span<Value> input = std::span<Value>(row).first(plan.input.size());
  const Value source = Value::String("file");
  std::string null_key;
  size_t i = 0;
  for (auto _ : state) {
    if (decoder->Decode(payloads[i], input).ok()) {
      row[plan.source_slot] = source;
      if (RunSteps(plan, row, snapshots)) agg.Add(row, &null_key);
    }
    if (++i == payloads.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * Bytes(payloads) /
                          static_cast<int64_t>(payloads.size()));
}
BENCHMARK_CAPTURE(BM_Pipeline, recruitment_json, "recruitment", "recruitment");
BENCHMARK_CAPTURE(BM_Pipeline, ysb_json, "ysb", "ysb");

/// The generator's cost per event (it runs inside the process in the in-process benchmarks).
void BM_Generate(benchmark::State& state, const char* profile_name) {
  const std::string root = SourceDir();
  Options o;
  o.Set("jobs", {root + "/examples/data/job.csv", {}});
  if (std::string(profile_name) == "ysb") o.Set("campaigns", {root + "/examples/data/ysb_ads.csv", {}});
  auto profile = MakeGeneratorProfile(profile_name, o, 7);
  CheckOk(profile.status(), "profile");
  std::string out;
  uint64_t seq = 0;
  for (auto _ : state) {
    Rng rng(7 * 0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
    out.clear();
    (*profile)->Make(seq, 1'767'225'600'000'000 + static_cast<int64_t>(seq) * 10, rng, &out);
    benchmark::DoNotOptimize(out.data());
    ++seq;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_Generate, recruitment, "recruitment");
BENCHMARK_CAPTURE(BM_Generate, ysb, "ysb");

}  // namespace
}  // namespace sluice::bench
