// One worker reading CSV with a header, on the row path (SLUICE_COLUMNAR=0) and on the columnar
// path: the same rows, dead letters (reasons, payloads, offsets) and counters, worked out by hand
// from the pipeline text and the records below.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "runtime/registry.h"
#include "runtime/worker.h"

namespace sluice {
namespace {

/// Returns the given CSV records (without their header) in one batch, then kEnd.
class CsvScriptedSource : public Source {
 public:
  CsvScriptedSource(std::string header, std::vector<std::string> records)
      : header_(std::move(header)), records_(std::move(records)) {}
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (polled_) return PollState::kEnd;
    polled_ = true;
    for (size_t i = 0; i < records_.size(); ++i) {
      RawRecord& r = out->Append(records_[i]);
      r.partition = 0;
      r.offset = static_cast<int64_t>(i);
      r.next_offset = static_cast<int64_t>(i) + 1;
    }
    return PollState::kData;
  }
  std::string_view kind() const override { return "scripted"; }
  DecoderOptions decoder_options() const override {
    DecoderOptions options;
    options.format = DecoderOptions::Format::kCsv;
    return options;
  }
  std::optional<std::string> Header() const override { return header_; }
  std::vector<int32_t> Partitions() const override { return {0}; }

 private:
  std::string header_;
  std::vector<std::string> records_;
  bool polled_ = false;
};

class NoRequester : public CheckpointRequester {
 public:
  int64_t RequestCheckpoint() override { return 0; }
  Status WaitCommitted(int64_t) override { return Status::OK(); }
};

constexpr const char* kPipeline = R"toml(select = ["job_id", "kind", "bid2"]
[pipeline]
name = "p"
[source]
uri = "generator:"
[source.fields]
job_id = "int64"
bid = "int64"
kind = "string"
[sink]
uri = "sqlite:x.db"
table = "t"
[[step]]
ignore_if = "kind is null or kind not in ('click', 'view')"
reason = "not counted"
[[step]]
dead_letter_if = "bid < 0"
reason = "negative bid"
[[step]]
let = "bid2"
expr = "coalesce(bid, 0) * 2"
)toml";

struct Outcome {
  bool columnar = false;
  Handoff handoff;
  int64_t records_in = 0, ignored = 0, dead_lettered = 0, decode_errors = 0, aggregated = 0;
  std::vector<int64_t> per_step;
};

Outcome RunCsv(bool columnar, const std::string& header, std::vector<std::string> records) {
  RegisterBuiltins();
  ::setenv("SLUICE_COLUMNAR", columnar ? "1" : "0", 1);
  Outcome out;
  Variables vars;
  vars.use_environment = false;
  auto cfg = ParsePipelineConfig(kPipeline, "/tmp/worker_csv_test.toml", vars);
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  if (!cfg.ok()) return out;
  PipelineConfig config = std::move(cfg).value();
  auto plan = BuildPlan(config);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return out;
  WorkerCounters counters;
  std::vector<std::atomic<int64_t>> step_counts((*plan)->steps.size());
  NoRequester requester;
  Worker worker(0, plan->get(), "events", std::make_unique<CsvScriptedSource>(header, std::move(records)),
                SourceContext{}, &counters, &step_counts, &requester);
  worker.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!worker.finished() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::unsetenv("SLUICE_COLUMNAR");
  EXPECT_TRUE(worker.finished());
  EXPECT_TRUE(worker.error().ok()) << worker.error().ToString();
  out.columnar = worker.columnar();
  auto handoff = worker.TakeHandoff(1, [] { return false; });
  EXPECT_TRUE(handoff.has_value());
  if (handoff) out.handoff = std::move(*handoff);
  out.records_in = counters.records_in.load();
  out.ignored = counters.ignored.load();
  out.dead_lettered = counters.dead_lettered.load();
  out.decode_errors = counters.decode_errors.load();
  out.aggregated = counters.aggregated.load();
  for (const auto& c : step_counts) out.per_step.push_back(c.load());
  return out;
}

std::vector<std::string> Describe(const std::vector<std::vector<Value>>& rows) {
  std::vector<std::string> out;
  for (const auto& row : rows) {
    std::string s;
    for (const Value& v : row) s += v.ToString() + "|";
    out.push_back(s);
  }
  return out;
}

// The header has a column nobody reads, out of order. Each record's fate:
//   0 7,click,5          -> kept: 7|click|10
//   1 "8","view, x"?     -> no: "view, x" is not counted: ignored by step 0
//   2 9,"click",         -> kept, bid null: 9|click|0
//   3 1,spam,2           -> ignored by step 0
//   4 2,click,-1         -> dead letter "negative bid" (step 1)
//   5 3,click            -> decode: expected 4 fields, got 3 (wrong count)
//   6 x,click,1          -> decode: field job_id: 'x' is not an int64
//   7 4,cl"ick,1         -> decode: column 3: stray quote in unquoted field
//   8 "5","cl""ick",1    -> ignored: cl"ick is not counted
//   9 6,view,3\r         -> kept (a CR before the end is the terminator's): 6|view|6
TEST(WorkerCsvTest, BothPathsGiveTheHandWorkedResults) {
  const std::string header = "job_id,skip,kind,bid";
  const std::vector<std::string> records = {
      "7,a,click,5",     "\"8\",a,\"view, x\",1", "9,,\"click\",",   "1,a,spam,2",
      "2,a,click,-1",    "3,a,click",             "x,a,click,1",     "4,a,cl\"ick,1",
      "\"5\",a,\"cl\"\"ick\",1", "6,a,view,3\r"};
  for (bool columnar : {false, true}) {
    SCOPED_TRACE(columnar ? "columnar" : "row");
    Outcome o = RunCsv(columnar, header, records);
    EXPECT_EQ(o.columnar, columnar);
    EXPECT_EQ(Describe(o.handoff.rows), (std::vector<std::string>{"7|click|10|", "9|click|0|", "6|view|6|"}));
    ASSERT_EQ(o.handoff.dead_letters.size(), 4u);
    EXPECT_EQ(o.handoff.dead_letters[0].reason, "negative bid");
    EXPECT_EQ(o.handoff.dead_letters[0].offset, 4);
    EXPECT_EQ(o.handoff.dead_letters[1].reason, "decode: expected 4 fields, got 3");
    EXPECT_EQ(o.handoff.dead_letters[1].payload, "3,a,click");
    EXPECT_EQ(o.handoff.dead_letters[2].reason, "decode: field job_id: 'x' is not an int64");
    EXPECT_EQ(o.handoff.dead_letters[3].reason, "decode: column 3: stray quote in unquoted field");
    EXPECT_EQ(o.handoff.dead_letters[3].offset, 7);
    EXPECT_EQ(o.records_in, 10);
    EXPECT_EQ(o.ignored, 3);
    EXPECT_EQ(o.dead_lettered, 4);
    EXPECT_EQ(o.decode_errors, 3);
    EXPECT_EQ(o.aggregated, 3);
    EXPECT_EQ(o.per_step, (std::vector<int64_t>{3, 1, 0}));
    EXPECT_EQ(o.handoff.positions, (std::map<int32_t, int64_t>{{0, 10}}));
  }
}

}  // namespace
}  // namespace sluice
