#include "http/metrics.h"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

namespace sluice::http {
namespace {

PipelineSnapshot Sample() {
  PipelineSnapshot s;
  s.pipeline = "recruitment";
  s.state = "running";
  s.records_in = 1000;
  s.bytes_in = 123456;
  s.aggregated = 900;
  s.ignored = 70;
  s.ignored_by_reason = {{"custom_track not counted", 50}, {"blank job_id", 15}};
  s.dead_lettered = 30;
  s.decode_errors = 12;
  s.late = 3;
  s.late_windows = 6;
  s.lookup_misses = 4;
  s.checkpoints = 4;
  s.checkpoint_failures = 1;
  s.sink_retries = 1;
  s.rows_written = 77;
  s.last_checkpoint_micros = 1'700'000'000'500'000;
  s.last_checkpoint_duration_micros = 250'000;
  s.checkpoint_duration_total_micros = 1'000'000;
  s.workers = 2;
  s.partitions = {{0, 500, 20}, {1, 480, -1}};
  s.sink_healthy = false;
  return s;
}

MetricsInfo Info() { return {"recruitment", "tracking", "events", "0.1.0"}; }

ProcessStats Process() {
  ProcessStats p;
  p.resident_bytes = 4096;
  p.cpu_seconds = 1.5;
  p.start_time_seconds = 1'700'000'000.25;
  return p;
}

bool Has(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (l == line) return true;
  }
  return false;
}

/// A source reading several topics: the partition series name the topic and the topic's
/// partition number, not the internal id (slot << 12 | partition).
TEST(MetricsTest, PartitionsOfSeveralTopicsCarryTheTopic) {
  PipelineSnapshot s = Sample();
  s.partitions = {{0, 500, 20}, {(7 << 12) | 2, 40, 3}};
  s.partitions[0].input = "view_log";
  s.partitions[0].input_partition = 0;
  s.partitions[1].input = "view_log_eu";
  s.partitions[1].input_partition = 2;
  const std::string m = RenderMetrics(s, Info(), Process(), 1'700'000'010'000'000);
  EXPECT_TRUE(Has(m, R"(sluice_source_partition_position{pipeline="recruitment",source="tracking",topic="view_log",partition="0"} 500)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_source_partition_position{pipeline="recruitment",source="tracking",topic="view_log_eu",partition="2"} 40)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_source_partition_lag_records{pipeline="recruitment",source="tracking",topic="view_log_eu",partition="2"} 3)")) << m;
  EXPECT_EQ(m.find("partition=\"28674\""), std::string::npos) << m;
}

TEST(MetricsTest, ExportsTheContractNamesWithLabels) {
  const int64_t now = 1'700'000'010'000'000;
  const std::string m = RenderMetrics(Sample(), Info(), Process(), now);
  for (
      const char* line : {
          R"(sluice_source_records_total{pipeline="recruitment",source="tracking"} 1000)",
          R"(sluice_source_bytes_total{pipeline="recruitment",source="tracking"} 123456)",
          R"(sluice_records_aggregated_total{pipeline="recruitment"} 900)",
          R"(sluice_records_ignored_total{pipeline="recruitment",reason="custom_track not counted"} 50)",
          R"(sluice_records_ignored_total{pipeline="recruitment",reason="blank job_id"} 15)",
          R"(sluice_records_ignored_total{pipeline="recruitment",reason="other"} 5)",
          R"(sluice_records_dead_lettered_total{pipeline="recruitment"} 30)",
          R"(sluice_records_late_total{pipeline="recruitment"} 3)",
          R"(sluice_late_windows_total{pipeline="recruitment"} 6)",
          R"(sluice_decode_errors_total{pipeline="recruitment"} 12)",
          R"(sluice_lookup_misses_total{pipeline="recruitment"} 4)",
          R"(sluice_sink_rows_written_total{pipeline="recruitment",sink="events"} 77)",
          R"(sluice_sink_retries_total{pipeline="recruitment",sink="events"} 1)",
          R"(sluice_sink_up{pipeline="recruitment",sink="events"} 0)",
          R"(sluice_source_partition_position{pipeline="recruitment",source="tracking",partition="0"} 500)",
          R"(sluice_source_partition_position{pipeline="recruitment",source="tracking",partition="1"} 480)",
          R"(sluice_source_partition_lag_records{pipeline="recruitment",source="tracking",partition="0"} 20)",
          R"(sluice_open_windows{pipeline="recruitment"} 0)",
          R"(sluice_checkpoints_total{pipeline="recruitment"} 4)",
          R"(sluice_checkpoint_failures_total{pipeline="recruitment"} 1)",
          R"(sluice_checkpoint_duration_seconds_sum{pipeline="recruitment"} 1)",
          R"(sluice_checkpoint_duration_seconds_count{pipeline="recruitment"} 4)",
          R"(sluice_last_checkpoint_timestamp_seconds{pipeline="recruitment"} 1700000000.5)",
          R"(sluice_pipeline_state{pipeline="recruitment",state="running"} 1)",
          "# TYPE sluice_checkpoint_duration_seconds summary",
          "# TYPE sluice_source_records_total counter",
          "process_resident_memory_bytes 4096",
          "process_cpu_seconds_total 1.5",
          "process_start_time_seconds 1700000000.25",
      }) {
    EXPECT_TRUE(Has(m, line)) << "missing: " << line << "\n" << m;
  }
  // Unknown lag is left out, not written as -1.
  EXPECT_EQ(m.find(R"(partition="1"} -1)"), std::string::npos);
}

TEST(MetricsTest, LostPartitionsAndFencedRestarts) {
  PipelineSnapshot s = Sample();
  std::string m = RenderMetrics(s, Info(), Process(), 1'700'000'010'000'000);
  EXPECT_TRUE(Has(m, R"(sluice_partitions_lost_total{pipeline="recruitment",source="tracking"} 0)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_fenced_restarts_total{pipeline="recruitment"} 0)")) << m;
  s.partitions_lost = 3;
  s.fenced_restarts = 2;
  m = RenderMetrics(s, Info(), Process(), 1'700'000'010'000'000);
  EXPECT_TRUE(Has(m, "# TYPE sluice_partitions_lost_total counter")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_partitions_lost_total{pipeline="recruitment",source="tracking"} 3)")) << m;
  EXPECT_TRUE(Has(m, "# TYPE sluice_fenced_restarts_total counter")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_fenced_restarts_total{pipeline="recruitment"} 2)")) << m;
}

TEST(MetricsTest, WatermarkSeriesOnlyWhenKnown) {
  const int64_t now = 1'700'000'010'000'000;
  PipelineSnapshot s = Sample();
  std::string m = RenderMetrics(s, Info(), Process(), now);
  EXPECT_EQ(m.find("sluice_watermark_timestamp_seconds{"), std::string::npos);
  EXPECT_EQ(m.find("sluice_watermark_delay_seconds{"), std::string::npos);
  s.watermark_micros = now - 12'500'000;
  s.open_windows = 42;
  m = RenderMetrics(s, Info(), Process(), now);
  EXPECT_TRUE(Has(m, R"(sluice_watermark_timestamp_seconds{pipeline="recruitment"} 1699999997.5)"))
      << m;
  EXPECT_TRUE(Has(m, R"(sluice_watermark_delay_seconds{pipeline="recruitment"} 12.5)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_open_windows{pipeline="recruitment"} 42)")) << m;
}

TEST(MetricsTest, DimensionSeries) {
  PipelineSnapshot s = Sample();
  s.dimensions.push_back({"job", 1843, 2, 5, 1'700'000'000'000'000, -1, 1, 7});
  const std::string m = RenderMetrics(s, Info(), Process(), 1'700'000'001'000'000);
  EXPECT_TRUE(Has(m, R"(sluice_dimension_rows{pipeline="recruitment",dimension="job"} 1843)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_dimension_updates_total{pipeline="recruitment",dimension="job"} 5)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_dimension_refresh_errors_total{pipeline="recruitment",dimension="job"} 1)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_dimension_lookup_misses_total{pipeline="recruitment",dimension="job"} 7)")) << m;
  EXPECT_TRUE(Has(m, R"(sluice_dimension_last_update_timestamp_seconds{pipeline="recruitment",dimension="job"} 1700000000)")) << m;
  EXPECT_EQ(m.find("sluice_dimension_lag_seconds{"), std::string::npos) << "lag unknown: no sample";
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(PrometheusWriter::EscapeLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(PrometheusWriter::EscapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d");
  PipelineSnapshot s = Sample();
  s.ignored_by_reason = {{"say \"hi\"\\\n", 70}};
  MetricsInfo info = Info();
  info.pipeline = "p\"1";
  const std::string m = RenderMetrics(s, info, Process(), 0);
  EXPECT_TRUE(Has(m, R"(sluice_records_ignored_total{pipeline="p\"1",reason="say \"hi\"\\\n"} 70)"))
      << m;
}

TEST(MetricsTest, FormatsValues) {
  EXPECT_EQ(PrometheusWriter::FormatValue(3), "3");
  EXPECT_EQ(PrometheusWriter::FormatValue(0.25), "0.25");
  EXPECT_EQ(PrometheusWriter::FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(PrometheusWriter::FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(PrometheusWriter::FormatValue(-1.0 / 0.0), "-Inf");
}

// The text format's structure: every sample belongs to the family whose HELP and TYPE lines came
// last, each family is declared once, and sample lines are `name{labels} value`.
void ExpectWellFormed(const std::string& m) {
  std::istringstream in(m);
  std::string line, family;
  std::set<std::string> declared;
  std::map<std::string, std::string> types;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(declared.insert(family).second) << "declared twice: " << family;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      EXPECT_EQ(name, family);
      types[name] = type;
      continue;
    }
    const std::string name = line.substr(0, line.find_first_of("{ "));
    const bool ok = name == family || (types[family] == "summary" &&
                                       (name == family + "_sum" || name == family + "_count"));
    EXPECT_TRUE(ok) << line << " after family " << family;
    if (types[family] == "counter") {
      EXPECT_EQ(family.substr(family.size() - 6), "_total") << family;
    }
    const std::string value = line.substr(line.rfind(' ') + 1);
    EXPECT_NO_THROW((void)std::stod(value)) << line;
  }
  EXPECT_TRUE(declared.count("process_resident_memory_bytes"));
  EXPECT_TRUE(declared.count("process_cpu_seconds_total"));
  EXPECT_TRUE(declared.count("process_start_time_seconds"));
}

TEST(MetricsTest, EachFamilyDeclaredOnceBeforeItsSamples) {
  PipelineSnapshot s = Sample();
  s.watermark_micros = 5;
  ExpectWellFormed(RenderMetrics(s, Info(), ReadProcessStats(), 10));
}

/// How many lines of `text` start with `prefix`.
int LinesStartingWith(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string l;
  int n = 0;
  while (std::getline(in, l)) n += l.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

/// A repartitioned pipeline: both stages' series, told apart by `stage`, each family declared
/// once with the samples of both; the one-stage names and labels unchanged otherwise.
TEST(MetricsTest, TwoStagesCarryAStageLabelAndEachFamilyOnce) {
  const int64_t now = 1'700'000'010'000'000;
  PipelineSnapshot one = Sample();
  one.partitions[0].committed = 480;
  one.partitions[0].watermark_micros = 1'700'000'000'000'000;
  one.dimensions.push_back({"campaign", 40, 0, 0, 0, -1, 0, 2});
  PipelineSnapshot two = Sample();
  two.records_in = 77;
  two.state = "draining";
  two.partitions = {{2, 35, 1}};
  two.partitions[0].committed = 30;
  StoredDeadLetterCounts stored;
  stored.known = true;
  stored.by_reason = {{"late", 7}};
  const MetricsInfo info_one{"recruitment", "tracking", "recruitment-repartition", "0.1.0"};
  const MetricsInfo info_two{"recruitment", "tracking_repartition", "events", "0.1.0"};
  const std::string m =
      RenderMetrics({{&one, info_one, "one", {}}, {&two, info_two, "two", stored}}, Process(), now);
  ExpectWellFormed(m);
  for (const char* line : {
           R"(sluice_source_records_total{pipeline="recruitment",source="tracking",stage="one"} 1000)",
           R"(sluice_source_records_total{pipeline="recruitment",source="tracking_repartition",stage="two"} 77)",
           R"(sluice_pipeline_state{pipeline="recruitment",state="running",stage="one"} 1)",
           R"(sluice_pipeline_state{pipeline="recruitment",state="draining",stage="two"} 1)",
           R"(sluice_records_aggregated_total{pipeline="recruitment",stage="one"} 900)",
           R"(sluice_records_ignored_total{pipeline="recruitment",reason="blank job_id",stage="two"} 15)",
           R"(sluice_sink_rows_written_total{pipeline="recruitment",sink="recruitment-repartition",stage="one"} 77)",
           R"(sluice_sink_rows_written_total{pipeline="recruitment",sink="events",stage="two"} 77)",
           R"(sluice_dead_letters_stored{pipeline="recruitment",reason="late",stage="two"} 7)",
           R"(sluice_source_partition_position{pipeline="recruitment",source="tracking",partition="1",stage="one"} 480)",
           R"(sluice_source_partition_position{pipeline="recruitment",source="tracking_repartition",partition="2",stage="two"} 35)",
           R"(sluice_source_partition_committed_position{pipeline="recruitment",source="tracking",partition="0",stage="one"} 480)",
           R"(sluice_source_partition_committed_position{pipeline="recruitment",source="tracking_repartition",partition="2",stage="two"} 30)",
           R"(sluice_source_partition_watermark_timestamp_seconds{pipeline="recruitment",source="tracking",partition="0",stage="one"} 1700000000)",
           R"(sluice_dimension_rows{pipeline="recruitment",dimension="campaign",stage="one"} 40)",
           R"(sluice_checkpoints_total{pipeline="recruitment",stage="two"} 4)",
           R"(sluice_checkpoint_duration_seconds_count{pipeline="recruitment",stage="one"} 4)",
       }) {
    EXPECT_TRUE(Has(m, line)) << "missing: " << line << "\n" << m;
  }
  // Once per process, not per stage.
  EXPECT_EQ(LinesStartingWith(m, "sluice_build_info{"), 1) << m;
  EXPECT_EQ(LinesStartingWith(m, "process_cpu_seconds_total "), 1) << m;
  // A partition nobody committed has no committed series.
  EXPECT_EQ(m.find(R"(sluice_source_partition_committed_position{pipeline="recruitment",source="tracking",partition="1")"),
            std::string::npos);
  // One stage: no stage label anywhere.
  const std::string single = RenderMetrics(one, info_one, Process(), now);
  EXPECT_EQ(single.find("stage="), std::string::npos) << single;
  EXPECT_TRUE(Has(single, R"(sluice_source_partition_committed_position{pipeline="recruitment",source="tracking",partition="0"} 480)"))
      << single;
}

TEST(MetricsTest, ReadsThisProcessFromProc) {
  const ProcessStats p = ReadProcessStats();
  EXPECT_GT(p.resident_bytes, 0);
  EXPECT_GE(p.cpu_seconds, 0);
  EXPECT_GT(p.start_time_seconds, 1.5e9);
  EXPECT_GT(p.open_fds, 0);
}

TEST(MetricsTest, StoredDeadLettersByReasonOnlyWhenKnown) {
  const int64_t now = 1'700'000'010'000'000;
  // Not known (a sink that cannot be read back): no sample, no family.
  std::string m = RenderMetrics(Sample(), Info(), Process(), now);
  EXPECT_EQ(m.find("sluice_dead_letters_stored"), std::string::npos);

  StoredDeadLetterCounts stored;
  stored.known = true;
  stored.by_reason = {{"late", 7}, {"decode: field \"bid\"", 2}};
  m = RenderMetrics(Sample(), Info(), Process(), now, stored);
  EXPECT_TRUE(Has(m, "# TYPE sluice_dead_letters_stored gauge"));
  EXPECT_TRUE(Has(m, "sluice_dead_letters_stored{pipeline=\"recruitment\",reason=\"late\"} 7"));
  EXPECT_TRUE(Has(m, "sluice_dead_letters_stored{pipeline=\"recruitment\",reason=\"decode: field "
                     "\\\"bid\\\"\"} 2"));
}

TEST(MetricsTest, StoredDeadLettersPastFiftyReasonsAreSummed) {
  StoredDeadLetterCounts stored;
  stored.known = true;
  int64_t rest = 0;
  for (int i = 0; i < 60; ++i) {
    stored.by_reason.emplace_back("reason " + std::to_string(i), 100 - i);
    if (i >= 50) rest += 100 - i;
  }
  const std::string m = RenderMetrics(Sample(), Info(), Process(), 0, stored);
  int series = 0;
  std::istringstream in(m);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("sluice_dead_letters_stored{", 0) == 0) ++series;
  }
  EXPECT_EQ(series, 51);
  EXPECT_TRUE(Has(m, "sluice_dead_letters_stored{pipeline=\"recruitment\",reason=\"reason 49\"} 51"));
  EXPECT_FALSE(Has(m, "sluice_dead_letters_stored{pipeline=\"recruitment\",reason=\"reason 50\"} 50"));
  EXPECT_TRUE(Has(m, "sluice_dead_letters_stored{pipeline=\"recruitment\",reason=\"(other reasons)\"} " +
                     std::to_string(rest)));
}

}  // namespace
}  // namespace sluice::http
