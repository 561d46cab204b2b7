#include "fixtures.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "connectors/generator/generator_source.h"
#include "expr/expr.h"
#include "runtime/registry.h"
#include "sluice_test_paths.h"

namespace sluice::bench {

std::string SourceDir() { return SLUICE_SOURCE_DIR; }

void CheckOk(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "benchmark fixture: %s: %s\n", what, s.ToString().c_str());
    std::abort();
  }
}

std::unique_ptr<LoadedPipeline> LoadExample(const std::string& name) {
  const std::string root = SourceDir();
  Variables vars;
  vars.use_environment = false;
  vars.values["JOBS"] = root + "/examples/data/job.csv";
  vars.values["CAMPAIGNS"] = root + "/examples/data/campaigns1.csv";
  vars.values["ADS"] = root + "/examples/data/ysb_ads.csv";
  vars.values["COUNT"] = "1";
  // Each example requires its input and sink; the fixtures only plan, so these are never opened.
  vars.values["TRACKING"] = "generator:";
  vars.values["VIEWS"] = "generator:";
  vars.values["EVENTS"] = "generator:";
  vars.values["SINK"] = "sqlite::memory:";
  vars.values["OUT"] = "parquet:/nonexistent/sluice-bench";
  vars.reject_unused = false;  // one set of variables for every example
  auto config = LoadPipelineConfig(root + "/examples/" + name + ".toml", vars);
  CheckOk(config.status(), "load pipeline");
  auto out = std::make_unique<LoadedPipeline>();
  out->config = std::move(config).value();
  RegisterBuiltins();  // dimensions are loaded through their connectors
  auto plan = BuildPlan(out->config);
  CheckOk(plan.status(), "build plan");
  out->plan = std::move(plan).value();
  return out;
}

std::vector<std::string> GeneratedPayloads(const std::string& profile_name, size_t n) {
  const std::string root = SourceDir();
  Options o;
  o.Set("jobs", {root + "/examples/data/job.csv", {}});
  if (profile_name == "ysb") o.Set("campaigns", {root + "/examples/data/ysb_ads.csv", {}});
  auto profile = MakeGeneratorProfile(profile_name, o, 7);
  CheckOk(profile.status(), "generator profile");
  std::vector<std::string> out;
  out.reserve(n);
  const int64_t start = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
  for (uint64_t seq = 0; seq < n; ++seq) {
    Rng rng(7 * 0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
    std::string payload;
    (*profile)->Make(seq, start + static_cast<int64_t>(seq) * 1000, rng, &payload);
    out.push_back(std::move(payload));
  }
  return out;
}

std::vector<std::string> SeedTrackingCsv() {
  const std::string path =
      std::string(SLUICE_SEED_DIR) + "/TrannXuanTien__ETL-streaming-project/tracking.csv";
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> out;
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t len = CsvRecordLength(rest, true);
    if (len == 0) break;
    std::string_view rec = rest.substr(0, len);
    while (!rec.empty() && (rec.back() == '\n' || rec.back() == '\r')) rec.remove_suffix(1);
    if (!rec.empty()) out.emplace_back(rec);
    rest.remove_prefix(len);
  }
  return out;
}

std::vector<std::shared_ptr<const DimensionTable>> Snapshots(const Plan& plan) {
  std::vector<std::shared_ptr<const DimensionTable>> out(plan.steps.size());
  for (size_t k = 0; k < plan.steps.size(); ++k) {
    if (Dimension* d = plan.steps[k]->dimension()) out[k] = d->snapshot();
  }
  return out;
}

bool RunSteps(const Plan& plan, std::span<Value> row,
              const std::vector<std::shared_ptr<const DimensionTable>>& snapshots) {
  StepContext ctx;
  for (size_t k = 0; k < plan.steps.size(); ++k) {
    ctx.snapshot = snapshots[k].get();
    switch (plan.steps[k]->Apply(row, ctx)) {
      case Step::Outcome::kContinue:
      case Step::Outcome::kDefaulted:
        break;
      case Step::Outcome::kIgnored:
      case Step::Outcome::kDeadLetter:
      case Step::Outcome::kHold:
        return false;
    }
  }
  return true;
}

}  // namespace sluice::bench
