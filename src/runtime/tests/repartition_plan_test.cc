#include "runtime/repartition_plan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/delta_codec.h"
#include "runtime/explain.h"
#include "runtime/registry.h"
#include "runtime/source.h"
#include "sluice_test_paths.h"
#include "sql/sql_pipeline.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
const std::string kRepo = SLUICE_SOURCE_DIR;

// The planner's part of the repartition stage: when a pipeline repartitions (from its file, and
// from its source's partitions at run time), `[source] repartition_partitions`, what validate
// and explain say, the split of a plan into its two stages, and the --until-caught-up order.
// Every expected text and value below is written out by hand from the pipeline texts.
class RepartitionPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_plan_repartition_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// A pipeline reading `uri`, with `source_extra` under [source] (before its fields) and an
  /// [aggregate] in `mode` ("" : a select pipeline instead).
  static std::string Pipeline(const std::string& uri, const std::string& mode,
                              const std::string& source_extra = "") {
    return std::string(mode.empty() ? "select = [\"k\", \"v\"]\n" : "") +
           "[pipeline]\nname = \"clicks\"\n[source]\nuri = \"" + uri + "\"\n" + source_extra +
           "[source.fields]\nk = \"int64\"\nv = \"int64\"\nts = \"timestamp\"\n" +
           (mode.empty() ? std::string()
                         : "[aggregate]\ntime = \"ts\"\nwindow = \"1m\"\nmode = \"" + mode +
                               "\"\nkeys = [\"k\"]\nmetrics = [\"n = count()\", \"total = sum(v)\"]\n") +
           "[sink]\nuri = \"sqlite:out.db\"\ntable = \"t\"\n";
  }

  Result<std::unique_ptr<Plan>> Build(const std::string& text) {
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(text, (dir_ / "p.toml").string(), vars);
    if (!cfg.ok()) return cfg.status();
    config_ = std::move(cfg).value();
    return BuildPlan(config_);
  }

  /// The lines `sluice validate` prints about repartitioning (DescribePlan).
  std::string ValidateLines(const std::string& text) {
    auto plan = Build(text);
    if (!plan.ok()) return "error: " + plan.status().message();
    const std::string all = DescribePlan(**plan);
    const size_t from = all.find("  repartition ");
    const size_t to = all.find("  output ");
    if (from == std::string::npos || to == std::string::npos || to < from) return "missing in:\n" + all;
    return all.substr(from, to - from);
  }

  /// The lines `sluice explain` prints about repartitioning (FormatExplanation, its end).
  std::string ExplainLines(const std::string& text, std::string* json = nullptr) {
    auto plan = Build(text);
    if (!plan.ok()) return "error: " + plan.status().message();
    auto e = ExplainPipeline(**plan, nullptr, "table _sluice_dead_letters");
    if (!e.ok()) return "error: " + e.status().message();
    if (json) *json = ExplanationJson(*e);
    const std::string all = FormatExplanation(*e);
    const size_t from = all.find("repartition: ");
    if (from == std::string::npos) return "missing in:\n" + all;
    return all.substr(from);
  }

  /// The message of the error building `text`, or "accepted".
  std::string Refusal(const std::string& text) {
    auto plan = Build(text);
    return plan.ok() ? "accepted" : plan.status().message();
  }

  std::string File() const { return (dir_ / "p.toml").string(); }

  fs::path dir_;
  PipelineConfig config_;
};

TEST_F(RepartitionPlanTest, DecisionFollowsModeSourceAndKeyedBy) {
  struct Case {
    std::string text;
    bool would;
    RepartitionReason reason;
  };
  const std::string kafka = "kafka://localhost:9092/clicks";
  for (const Case& c : std::vector<Case>{
           {Pipeline(kafka, "append"), true, RepartitionReason::kAppendUnkeyed},
           {Pipeline(kafka, "update"), false, RepartitionReason::kUpdateMode},
           {Pipeline(kafka, ""), false, RepartitionReason::kNoAggregate},
           {Pipeline("in.ndjson", "append"), false, RepartitionReason::kFileSource},
           {Pipeline("file:in.csv", "append"), false, RepartitionReason::kFileSource},
           {Pipeline("generator:", "append"), false, RepartitionReason::kOtherSource},
           {Pipeline(kafka, "append", "keyed_by = [\"k\"]\n"), false, RepartitionReason::kKeyedBy},
           {Pipeline(kafka, "append", "repartition = false\n"), false, RepartitionReason::kOptedOut},
           {Pipeline(kafka, "append", "repartition = true\n"), true, RepartitionReason::kAppendUnkeyed},
           // The first reason wins: update mode over a file.
           {Pipeline("in.ndjson", "update"), false, RepartitionReason::kUpdateMode},
       }) {
    auto plan = Build(c.text);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString() << "\n" << c.text;
    const RepartitionDecision d = DecideRepartition(config_);
    EXPECT_EQ(d.would, c.would) << c.text;
    EXPECT_EQ(d.reason, c.reason) << c.text;
    EXPECT_EQ(d.topic, c.would ? "clicks-repartition" : "") << c.text;
    // The run-time half: more than one partition in all.
    EXPECT_FALSE(RepartitionsWith(d, 0));
    EXPECT_FALSE(RepartitionsWith(d, 1));
    EXPECT_EQ(RepartitionsWith(d, 2), c.would) << c.text;
    EXPECT_EQ(RepartitionsWith(d, 8), c.would) << c.text;
  }
}

TEST_F(RepartitionPlanTest, RepartitionPartitionsIsAPositiveInteger) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  auto with = [&](const std::string& value) {
    return Pipeline(kafka, "append", "repartition_partitions = " + value + "\n");
  };
  ASSERT_EQ(Refusal(with("12")), "accepted");
  EXPECT_EQ(config_.source.repartition_partitions, 12);
  // Not a connector option: the Kafka source never sees it.
  EXPECT_FALSE(config_.source.options.Has("repartition_partitions"));
  ASSERT_EQ(Refusal(with("1")), "accepted");
  EXPECT_EQ(config_.source.repartition_partitions, 1);
  // From a variable, as text.
  ASSERT_EQ(Refusal(with("\"${R:-6}\"")), "accepted");
  EXPECT_EQ(config_.source.repartition_partitions, 6);
  ASSERT_EQ(Refusal(with("100000")), "accepted");
  ASSERT_EQ(Refusal(Pipeline(kafka, "append")), "accepted");
  EXPECT_EQ(config_.source.repartition_partitions, 0);

  // Line 5, column 26: the value.
  const std::string at = File() + ":5:26: ";
  const std::string rule =
      "[source] repartition_partitions must be a positive integer (the partitions of the internal topic "
      "<pipeline>-repartition, at most 100000), not ";
  EXPECT_EQ(Refusal(with("0")), at + rule + "\"0\"");
  EXPECT_EQ(Refusal(with("-3")), at + rule + "\"-3\"");
  EXPECT_EQ(Refusal(with("2.5")), at + rule + "\"2.5\"");
  // A string's location is its first character inside the quotes: column 27.
  const std::string in_quotes = File() + ":5:27: ";
  EXPECT_EQ(Refusal(with("\"six\"")), in_quotes + rule + "\"six\"");
  EXPECT_EQ(Refusal(with("\"\"")), in_quotes + rule + "\"\"");
  EXPECT_EQ(Refusal(with("100001")), at + rule + "\"100001\"");
  EXPECT_EQ(Refusal(with("99999999999999999999")).find(File() + ":5:"), 0u);
}

TEST_F(RepartitionPlanTest, RepartitionPartitionsIsRefusedWhereNothingRepartitions) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  const std::string set = "repartition_partitions = 4\n";
  const std::string head = ":5:26: [source] repartition_partitions sets the partitions of the internal topic "
                           "<pipeline>-repartition, and this pipeline does not repartition (";
  const std::string tail = "); leave repartition_partitions out";
  EXPECT_EQ(Refusal(Pipeline(kafka, "update", set)),
            File() + head + "update mode merges each partition's changes into the stored rows, exact without it" +
                tail);
  EXPECT_EQ(Refusal(Pipeline("in.ndjson", "append", set)),
            File() + head + "the source is a file, a bounded input one process reads whole" + tail);
  EXPECT_EQ(Refusal(Pipeline("generator:", "append", set)),
            File() + head +
                "the source (generator) is read whole by one process, not shared out by a Kafka consumer group" +
                tail);
  EXPECT_EQ(Refusal(Pipeline(kafka, "append", "keyed_by = [\"k\"]\n" + set)),
            File() + ":6:26: [source] repartition_partitions sets the partitions of the internal topic "
                     "<pipeline>-repartition, and this pipeline does not repartition ([source] keyed_by = [k] "
                     "says the records of a group are in one partition already); leave repartition_partitions out");
  // A select pipeline: the key is on line 6 (select comes first).
  EXPECT_EQ(Refusal(Pipeline(kafka, "", set)),
            File() + ":6:26: [source] repartition_partitions sets the partitions of the internal topic "
                     "<pipeline>-repartition, and this pipeline does not repartition (a pipeline without "
                     "[aggregate] keeps no windows); leave repartition_partitions out");
}

TEST_F(RepartitionPlanTest, SqlSetsRepartitionPartitionsInTheSourcesWith) {
  auto parse = [&](const std::string& value) {
    const std::string text =
        "CREATE TABLE src (a bigint, t timestamp) WITH (uri = 'kafka://localhost:9092/clicks', "
        "repartition_partitions = " + value + ");\n"
        "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db', mode = 'append') AS\n"
        "SELECT window_start, a, count(*) AS n\n"
        "FROM tumble(src, t, INTERVAL '1 minute') GROUP BY window_start, a;\n";
    Variables vars;
    vars.use_environment = false;
    return sql::ParseSqlPipeline(text, (dir_ / "p.sql").string(), vars);
  };
  auto cfg = parse("6");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.repartition_partitions, 6);
  EXPECT_FALSE(cfg->source.options.Has("repartition_partitions"));
  auto plan = BuildPlan(*cfg);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(DecideRepartition(*cfg).would);
  EXPECT_EQ(parse("'4'")->source.repartition_partitions, 4);
  auto zero = parse("0");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("p.sql:1:"), std::string::npos) << zero.status().message();
  EXPECT_NE(zero.status().message().find("repartition_partitions must be a positive integer"), std::string::npos)
      << zero.status().message();
}

// `[source] repartition`: a boolean (or a variable's text true/false), read by the planner and
// not the connector, located, and refused where nothing would repartition without it.
TEST_F(RepartitionPlanTest, RepartitionIsABooleanTheConnectorNeverSees) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  auto with = [&](const std::string& value) { return Pipeline(kafka, "append", "repartition = " + value + "\n"); };
  ASSERT_EQ(Refusal(with("false")), "accepted");
  EXPECT_FALSE(config_.source.repartition);
  EXPECT_TRUE(config_.source.repartition_set);
  EXPECT_EQ(config_.source.repartition_where.line, 5);
  EXPECT_EQ(config_.source.repartition_where.column, 15);
  EXPECT_FALSE(config_.source.options.Has("repartition"));
  EXPECT_EQ(DecideRepartition(config_).why,
            "[source] repartition = false: one stage, whose windows are exact over one process only");
  ASSERT_EQ(Refusal(with("true")), "accepted");
  EXPECT_TRUE(config_.source.repartition);
  ASSERT_EQ(Refusal(with("\"${R:-false}\"")), "accepted");
  EXPECT_FALSE(config_.source.repartition);
  ASSERT_EQ(Refusal(Pipeline(kafka, "append")), "accepted");
  EXPECT_TRUE(config_.source.repartition);
  EXPECT_FALSE(config_.source.repartition_set);

  const std::string rule = "[source] repartition must be true or false (false: run in one stage, whose windows are "
                           "exact over one process only), not ";
  EXPECT_EQ(Refusal(with("0")), File() + ":5:15: " + rule + "\"0\"");
  EXPECT_EQ(Refusal(with("\"no\"")), File() + ":5:16: " + rule + "\"no\"");
}

TEST_F(RepartitionPlanTest, RepartitionIsRefusedWhereNothingWouldRepartitionAndWithPartitions) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  const std::string head = "[source] repartition chooses whether a pipeline that would repartition does so, and "
                           "this pipeline does not repartition anyway (";
  const std::string tail = "); leave repartition out";
  EXPECT_EQ(Refusal(Pipeline(kafka, "update", "repartition = false\n")),
            File() + ":5:15: " + head +
                "update mode merges each partition's changes into the stored rows, exact without it" + tail);
  EXPECT_EQ(Refusal(Pipeline("in.ndjson", "append", "repartition = true\n")),
            File() + ":5:15: " + head + "the source is a file, a bounded input one process reads whole" + tail);
  EXPECT_EQ(Refusal(Pipeline(kafka, "append", "keyed_by = [\"k\"]\nrepartition = false\n")),
            File() + ":6:15: " + head +
                "[source] keyed_by = [k] says the records of a group are in one partition already" + tail);
  EXPECT_EQ(Refusal(Pipeline(kafka, "", "repartition = false\n")),
            File() + ":6:15: " + head + "a pipeline without [aggregate] keeps no windows" + tail);
  // The partitions of a topic that is not made.
  EXPECT_EQ(Refusal(Pipeline(kafka, "append", "repartition = false\nrepartition_partitions = 4\n")),
            File() + ":6:26: [source] repartition_partitions sets the partitions of the internal topic "
                     "<pipeline>-repartition, and this pipeline does not repartition ([source] repartition = false: "
                     "one stage, whose windows are exact over one process only); leave repartition_partitions out");
  EXPECT_EQ(Refusal(Pipeline(kafka, "append", "repartition = true\nrepartition_partitions = 4\n")), "accepted");
}

TEST_F(RepartitionPlanTest, SqlSetsRepartitionInTheSourcesWith) {
  auto parse = [&](const std::string& value) {
    const std::string text =
        "CREATE TABLE src (a bigint, t timestamp) WITH (uri = 'kafka://localhost:9092/clicks', "
        "repartition = " + value + ");\n"
        "CREATE MATERIALIZED VIEW v WITH (uri = 'sqlite:o.db', mode = 'append') AS\n"
        "SELECT window_start, a, count(*) AS n\n"
        "FROM tumble(src, t, INTERVAL '1 minute') GROUP BY window_start, a;\n";
    Variables vars;
    vars.use_environment = false;
    return sql::ParseSqlPipeline(text, (dir_ / "p.sql").string(), vars);
  };
  for (const std::string v : {"false", "'false'"}) {
    auto cfg = parse(v);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    EXPECT_FALSE(cfg->source.repartition) << v;
    EXPECT_TRUE(cfg->source.repartition_set) << v;
    EXPECT_FALSE(cfg->source.options.Has("repartition")) << v;
    ASSERT_TRUE(BuildPlan(*cfg).ok()) << v;
    EXPECT_EQ(DecideRepartition(*cfg).reason, RepartitionReason::kOptedOut) << v;
  }
  auto yes = parse("true");
  ASSERT_TRUE(yes.ok()) << yes.status().ToString();
  EXPECT_TRUE(DecideRepartition(*yes).would);
  auto bad = parse("'maybe'");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.sql:1:"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("repartition must be 'true' or 'false'"), std::string::npos)
      << bad.status().message();
}

// `sluice run`'s check at start: the sink's stored positions must have been written by a run of
// the shape decided now. Positions as (source, partition), as LoadPositions gives them.
TEST_F(RepartitionPlanTest, StoredPositionsOfTheOtherShapeAreRefused) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  ASSERT_EQ(Refusal(Pipeline(kafka, "append")), "accepted");
  const PipelineConfig config = config_;  // source "source", pipeline "clicks"
  using Stored = std::vector<std::pair<std::string, int32_t>>;
  const Stored none;
  const Stored one_stage = {{"source", 0}, {"source", 1}};
  const Stored two_stage = {{"source_repartition", 0}, {"source_repartition", 1}};
  const Stored both = {{"source", 0}, {"source_repartition", 0}};
  // Identity entries (a recreated topic's generation) and another source's positions: no shape.
  const Stored identity_only = {{"source", kGenerationPartitionBase + 1}, {"source_repartition", kIdentityPartitionBase}};
  const Stored other = {{"views", 0}, {"views_repartition", 0}};
  const std::string sink = "sqlite:out.db";
  for (bool two : {true, false}) {
    for (const Stored* s : {&none, &identity_only, &other}) {
      EXPECT_TRUE(CheckStoredShape(config, two, "why", *s, sink).ok()) << two;
    }
    // Both shapes' positions (a sluice without this check switched the shape): neither shape
    // can tell which are current, so both are refused, with the reset.
    Status mixed = CheckStoredShape(config, two, "why", both, sink);
    EXPECT_EQ(mixed.code(), StatusCode::kInvalidArgument) << two;
    EXPECT_NE(mixed.message().find("holds positions of both source source (one stage) and source_repartition"),
              std::string::npos)
        << mixed.message();
    EXPECT_NE(mixed.message().find("delete the topics clicks-repartition and clicks-repartition.sluice-positions"),
              std::string::npos)
        << mixed.message();
  }
  EXPECT_TRUE(CheckStoredShape(config, false, "why", one_stage, sink).ok());
  EXPECT_TRUE(CheckStoredShape(config, true, "why", two_stage, sink).ok());

  Status to_two = CheckStoredShape(config, true, "WHY-TWO", one_stage, sink);
  EXPECT_EQ(to_two.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(to_two.message(),
            "pipeline clicks: the sink sqlite:out.db holds positions of source source and none of source_repartition: "
            "it ran in one stage, and would run in two now (WHY-TWO). Stage one has no positions of its own: it "
            "would read the source's topics again from their beginning, writing windows the sink holds a "
            "second time, and the open windows of the one-stage state would be lost. Run it in one stage as before "
            "(restore [source] keyed_by if it had one, or set [source] repartition = false), or give the pipeline "
            "a new name ([pipeline] name) and a new table or directory in [sink]: it then reads the source's topics "
            "from their beginning");
  Status to_one = CheckStoredShape(config, false, "WHY-ONE", two_stage, sink);
  EXPECT_EQ(to_one.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(to_one.message(),
            "pipeline clicks: the sink sqlite:out.db holds positions of source source_repartition (stage two of a "
            "repartitioned run) and none of source: it ran in two stages, and would run in one now (WHY-ONE). The "
            "source's topics would be read from their beginning and every window written again. Run it in two stages as before "
            "(remove [source] keyed_by or repartition = false, keep the sink and the source's partitions), or give "
            "the pipeline a new name ([pipeline] name) and a new table or directory in [sink]: it then reads the "
            "source's topics from their beginning");

  // Pipelines whose shape never changes are not checked: update mode, a select, a file source.
  for (const std::string& text :
       {Pipeline(kafka, "update"), Pipeline(kafka, ""), Pipeline("in.ndjson", "append")}) {
    ASSERT_EQ(Refusal(text), "accepted") << text;
    EXPECT_FALSE(StageShapeMatters(config_)) << text;
    EXPECT_TRUE(CheckStoredShape(config_, false, "why", two_stage, sink).ok()) << text;
  }
  // keyed_by and repartition = false do matter: they choose one stage for such a pipeline.
  ASSERT_EQ(Refusal(Pipeline(kafka, "append", "keyed_by = [\"k\"]\n")), "accepted");
  EXPECT_TRUE(StageShapeMatters(config_));
  EXPECT_FALSE(CheckStoredShape(config_, false, "why", two_stage, sink).ok());
}

// `sluice validate`: one line for every pipeline, and for one that would repartition its topic,
// and its partitions.
TEST_F(RepartitionPlanTest, ValidateSaysWhetherAndWhy) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  EXPECT_EQ(ValidateLines(Pipeline(kafka, "append")),
            "  repartition when the source's topics have more than one partition in all: append-mode windows "
            "over a Kafka source not declared keyed by the group key ([source] keyed_by)\n"
            "    topic clicks-repartition, as many partitions as the source's topics in all\n");
  EXPECT_EQ(ValidateLines(Pipeline(kafka, "append", "repartition_partitions = 12\n")),
            "  repartition when the source's topics have more than one partition in all: append-mode windows "
            "over a Kafka source not declared keyed by the group key ([source] keyed_by)\n"
            "    topic clicks-repartition, 12 partitions (repartition_partitions)\n");
  EXPECT_EQ(ValidateLines(Pipeline(kafka, "append", "keyed_by = [\"k\"]\n")),
            "  repartition no: [source] keyed_by = [k] says the records of a group are in one partition already\n");
  EXPECT_EQ(ValidateLines(Pipeline(kafka, "update")),
            "  repartition no: update mode merges each partition's changes into the stored rows, exact without it\n");
  EXPECT_EQ(ValidateLines(Pipeline(kafka, "")),
            "  repartition no: a pipeline without [aggregate] keeps no windows\n");
  EXPECT_EQ(ValidateLines(Pipeline("in.ndjson", "append")),
            "  repartition no: the source is a file, a bounded input one process reads whole\n");
  EXPECT_EQ(ValidateLines(Pipeline("generator:", "append")),
            "  repartition no: the source (generator) is read whole by one process, not shared out by a Kafka "
            "consumer group\n");
  EXPECT_EQ(ValidateLines(Pipeline(kafka, "append", "repartition = false\n")),
            "  repartition no: [source] repartition = false: one stage, whose windows are exact over one process "
            "only\n");
}

// `sluice explain`: the same decision after the sink's block, and in the JSON.
TEST_F(RepartitionPlanTest, ExplainSaysWhetherAndWhy) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  std::string json;
  EXPECT_EQ(ExplainLines(Pipeline(kafka, "append"), &json),
            "repartition: when the source's topics have more than one partition in all, append-mode windows over "
            "a Kafka source not declared keyed by the group key ([source] keyed_by)\n"
            "      stage one (a task per source partition): source, steps, lookups, partial aggregates -> topic "
            "clicks-repartition (as many partitions as the source's topics in all)\n"
            "      stage two (a task per partition of clicks-repartition): merge, a window emitted once when every "
            "upstream's watermark has passed it -> the sink\n");
  EXPECT_NE(json.find("\"repartition\":{\"would\":true,\"reason\":\"append_unkeyed\",\"why\":\"append-mode windows "
                      "over a Kafka source not declared keyed by the group key ([source] keyed_by)\",\"topic\":"
                      "\"clicks-repartition\",\"partitions\":null,\"built\":true}"),
            std::string::npos)
      << json;
  EXPECT_EQ(ExplainLines(Pipeline(kafka, "append", "repartition_partitions = 3\n"), &json),
            "repartition: when the source's topics have more than one partition in all, append-mode windows over "
            "a Kafka source not declared keyed by the group key ([source] keyed_by)\n"
            "      stage one (a task per source partition): source, steps, lookups, partial aggregates -> topic "
            "clicks-repartition (3 partitions)\n"
            "      stage two (a task per partition of clicks-repartition): merge, a window emitted once when every "
            "upstream's watermark has passed it -> the sink\n");
  EXPECT_NE(json.find("\"topic\":\"clicks-repartition\",\"partitions\":3,\"built\":true}"), std::string::npos)
      << json;
  EXPECT_EQ(ExplainLines(Pipeline(kafka, "append", "keyed_by = [\"k\"]\n"), &json),
            "repartition: no, [source] keyed_by = [k] says the records of a group are in one partition already\n");
  EXPECT_NE(json.find("\"repartition\":{\"would\":false,\"reason\":\"keyed_by\",\"why\":\"[source] keyed_by = [k] "
                      "says the records of a group are in one partition already\",\"built\":true}"),
            std::string::npos)
      << json;
  EXPECT_EQ(ExplainLines(Pipeline(kafka, "update"), &json),
            "repartition: no, update mode merges each partition's changes into the stored rows, exact without it\n");
  EXPECT_NE(json.find("\"reason\":\"update_mode\""), std::string::npos) << json;
  EXPECT_EQ(ExplainLines(Pipeline(kafka, ""), &json),
            "repartition: no, a pipeline without [aggregate] keeps no windows\n");
  EXPECT_NE(json.find("\"reason\":\"no_aggregate\""), std::string::npos) << json;
  EXPECT_EQ(ExplainLines(Pipeline("in.ndjson", "append"), &json),
            "repartition: no, the source is a file, a bounded input one process reads whole\n");
  EXPECT_NE(json.find("\"reason\":\"file_source\""), std::string::npos) << json;
  EXPECT_EQ(ExplainLines(Pipeline(kafka, "append", "repartition = false\n"), &json),
            "repartition: no, [source] repartition = false: one stage, whose windows are exact over one process "
            "only\n");
  EXPECT_NE(json.find("\"repartition\":{\"would\":false,\"reason\":\"opted_out\",\"why\":\"[source] "
                      "repartition = false: one stage, whose windows are exact over one process only\",\"built\":true}"),
            std::string::npos)
      << json;
}

/// The shipped viewlog pipeline, reading a Kafka topic (it declares no keyed_by).
class ViewlogSplitTest : public RepartitionPlanTest {
 protected:
  Status Load(const std::string& dlq = "", const std::string& edit_from = "", const std::string& edit_to = "") {
    std::ifstream in(kRepo + "/examples/viewlog.toml");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (!edit_from.empty()) {
      const size_t at = text.find(edit_from);
      if (at == std::string::npos) return Status::InvalidArgument("no '" + edit_from + "' in viewlog.toml");
      text.replace(at, edit_from.size(), edit_to);
    }
    Variables vars;
    vars.use_environment = false;
    vars.values = {{"VIEWS", "kafka://localhost:9092/view_log"}, {"OUT", "parquet:" + (dir_ / "out").string()}};
    if (!dlq.empty()) vars.values["DLQ"] = dlq;
    // Where the shipped file is, so its relative defaults (the campaigns CSV) resolve.
    auto cfg = ParsePipelineConfig(text, kRepo + "/examples/viewlog.toml", vars);
    if (!cfg.ok()) return cfg.status();
    config_ = std::move(cfg).value();
    auto plan = BuildPlan(config_);
    if (!plan.ok()) return plan.status();
    plan_ = std::move(plan).value();
    return Status::OK();
  }

  /// The fingerprint the repartition records' header carries (bytes 3..10, little-endian),
  /// read from the header the codec writes.
  static int64_t HeaderFingerprint(const AggregateSpec& spec) {
    const std::string h = RepartitionValueHeader(spec);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(h[3 + i])) << (8 * i);
    return static_cast<int64_t>(v);
  }

  std::unique_ptr<Plan> plan_;
};

TEST_F(ViewlogSplitTest, SplitsIntoTheTwoStages) {
  ASSERT_TRUE(Load("", "[source]\n", "[source]\n\"kafka.security.protocol\" = \"SASL_SSL\"\n"
                                     "\"kafka.sasl.mechanism\" = \"PLAIN\"\n\"kafka.fetch.max.bytes\" = \"1000\"\n")
                  .ok());
  EXPECT_TRUE(DecideRepartition(config_).would);
  auto split = SplitPlan(*plan_, SourceTopics{"localhost:9092", {{"view_log", 0, 6}}});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  const StageOnePlan& one = split->one;
  const StageTwoPlan& two = split->two;
  // Stage one: the whole plan up to the aggregate (eleven steps, the campaign lookup), the
  // aggregate in partial mode, into viewlog-repartition with the source's 6 partitions, over
  // the source's connection settings (not its consumer's fetch size).
  EXPECT_EQ(one.plan, plan_.get());
  EXPECT_EQ(one.plan->steps.size(), 11u);
  EXPECT_EQ(one.plan->dimensions.count("campaign"), 1u);
  EXPECT_EQ(one.aggregate, plan_->aggregate.get());
  EXPECT_EQ(one.pipeline, "viewlog");
  EXPECT_EQ(one.brokers, "localhost:9092");
  EXPECT_EQ(one.topic, "viewlog-repartition");
  EXPECT_EQ(one.partitions, 6);
  EXPECT_EQ(one.properties,
            (std::map<std::string, std::string>{{"sasl.mechanism", "PLAIN"}, {"security.protocol", "SASL_SSL"}}));
  const std::vector<UpstreamId> six{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}};
  EXPECT_EQ(one.tasks, six);
  EXPECT_EQ(one.fingerprint, HeaderFingerprint(*plan_->aggregate));

  // Stage two: a Kafka source on the repartition topic in its own group, no dimension, no
  // step, the user's aggregate, sink and dead letters (the sink's own store: DLQ unset), every
  // source partition upstream.
  const PipelineConfig& c = two.config;
  EXPECT_EQ(two.topic, "viewlog-repartition");
  EXPECT_EQ(two.partitions, 6);
  EXPECT_EQ(two.upstreams, six);
  EXPECT_EQ(two.fingerprint, one.fingerprint);
  EXPECT_EQ(c.name, "viewlog");
  EXPECT_EQ(c.checkpoint_interval_micros, 1'000'000);
  EXPECT_EQ(c.source.name, "views_repartition");
  EXPECT_EQ(c.source.uri, "kafka://localhost:9092/viewlog-repartition");
  EXPECT_EQ(c.source.options.GetString("group"), "viewlog-repartition");
  EXPECT_EQ(c.source.options.GetString("kafka.security.protocol"), "SASL_SSL");
  EXPECT_EQ(c.source.options.GetString("kafka.sasl.mechanism"), "PLAIN");
  EXPECT_FALSE(c.source.options.Has("kafka.fetch.max.bytes"));
  EXPECT_FALSE(c.source.options.Has("profile"));  // the generator settings of the shipped file
  // Records deleted unread or a recreated topic stop stage two (KafkaSource's gapless).
  EXPECT_EQ(c.source.options.GetString("gapless"), "true");
  EXPECT_TRUE(c.source.keyed_by.empty());
  EXPECT_EQ(c.source.repartition_partitions, 0);
  EXPECT_TRUE(c.dimensions.empty());
  EXPECT_TRUE(c.steps.empty());
  EXPECT_EQ(c.sink.uri, "parquet:" + (dir_ / "out").string());
  EXPECT_EQ(c.dead_letter_store, PipelineConfig::DeadLetterStore::kDefault);
  // Its fields: the view's four (in the order the TOML table gives them: by name), the
  // engine's columns left out, then what the steps made, in their order.
  std::vector<std::string> fields;
  for (const Field& f : c.source.fields) fields.push_back(f.name + " " + std::string(TypeName(f.type)));
  EXPECT_EQ(fields, (std::vector<std::string>{"campaign_id int64", "end_timestamp string",
                                              "start_timestamp string", "view_id string", "start_time timestamp",
                                              "end_time timestamp", "view_duration double",
                                              "network_id int64"}));

  // Stage two compiles the same [aggregate]: the same keys and metrics, the same fingerprint.
  auto second = BuildPlan(c);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  const AggregateSpec& a = *plan_->aggregate;
  const AggregateSpec& b = *(*second)->aggregate;
  EXPECT_EQ(Fingerprint64(AggregateFingerprint(&b)), one.fingerprint);
  EXPECT_EQ(RepartitionValueHeader(b), RepartitionValueHeader(a));
  EXPECT_EQ(b.window_micros, 60'000'000);
  EXPECT_TRUE(b.append_mode);
  EXPECT_EQ(b.allowed_lateness_micros, 0);
  EXPECT_EQ(b.watermark_delay_micros, 10'000'000);
  ASSERT_EQ(b.keys.size(), 3u);
  ASSERT_EQ(b.metrics.size(), 2u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(b.keys[i].name, a.keys[i].name);
    EXPECT_EQ(b.keys[i].type, a.keys[i].type);
    EXPECT_EQ(b.keys[i].uses_window, a.keys[i].uses_window);
  }
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(b.metrics[i].name, a.metrics[i].name);
    EXPECT_EQ(b.metrics[i].fn, a.metrics[i].fn);
    EXPECT_EQ(b.metrics[i].result_type, a.metrics[i].result_type);
  }
  EXPECT_TRUE((*second)->steps.empty());
  EXPECT_TRUE((*second)->dimensions.empty());
  // The same output, so the user's sink takes stage two's rows as it took the one stage's.
  std::string out_a, out_b;
  const Schema schema_a = plan_->OutputSchema();
  const Schema schema_b = (*second)->OutputSchema();
  for (const Field& f : schema_a.fields()) out_a += f.name + " " + std::string(TypeName(f.type)) + ",";
  for (const Field& f : schema_b.fields()) out_b += f.name + " " + std::string(TypeName(f.type)) + ",";
  EXPECT_EQ(out_b, out_a);
}

TEST_F(ViewlogSplitTest, UpstreamsAreEveryPartitionOfEveryTopicAndRIsTheirCount) {
  ASSERT_TRUE(Load((dir_ / "dl.ndjson").string(), "[source]\n", "[source]\ngroup = \"views\"\n").ok());
  // Topics by slot (the second topic's slot from its name), listed in any order.
  auto split =
      SplitPlan(*plan_, SourceTopics{"b1:9092,b2:9092", {{"view_log_eu", 4711, 3}, {"view_log", 0, 2}}});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  const std::vector<UpstreamId> five{{0, 0}, {0, 1}, {4711, 0}, {4711, 1}, {4711, 2}};
  EXPECT_EQ(split->one.tasks, five);
  EXPECT_EQ(split->two.upstreams, five);
  EXPECT_EQ(split->one.partitions, 5);
  EXPECT_EQ(split->two.partitions, 5);
  EXPECT_EQ(split->two.config.source.uri, "kafka://b1:9092,b2:9092/viewlog-repartition");
  EXPECT_EQ(split->two.config.source.options.GetString("group"), "views-repartition");
  EXPECT_EQ(split->two.config.dead_letter_store, PipelineConfig::DeadLetterStore::kFile);
  EXPECT_EQ(split->two.config.dead_letter_path, (dir_ / "dl.ndjson").string());

  // repartition_partitions sets R, whatever the source has.
  ASSERT_TRUE(Load("", "[source]\n", "[source]\nrepartition_partitions = 12\n").ok());
  split = SplitPlan(*plan_, SourceTopics{"localhost:9092", {{"view_log", 0, 6}}});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->one.partitions, 12);
  EXPECT_EQ(split->two.partitions, 12);
  EXPECT_EQ(split->two.upstreams.size(), 6u);
  EXPECT_EQ(split->two.config.source.repartition_partitions, 0);  // stage two's topic is not repartitioned
}

TEST_F(ViewlogSplitTest, RefusesWhatCannotBeSplit) {
  ASSERT_TRUE(Load().ok());
  auto refusal = [&](const SourceTopics& topics) {
    auto split = SplitPlan(*plan_, topics);
    return split.ok() ? std::string("split") : split.status().message();
  };
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 1}}}),
            "pipeline viewlog: the source has one partition in all, which one task reads whole: nothing to "
            "repartition");
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 1}, {"view_log_eu", 9, 1}}}), "split");
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 6}, {"view_log", 3, 6}}}),
            "pipeline viewlog: the source's topic \"view_log\" is listed twice");
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 6}, {"other", 0, 6}}}),
            "pipeline viewlog: the source's topic \"other\" has slot 0, another topic's too");
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", -1, 6}}}),
            "pipeline viewlog: the source's topic \"view_log\" has slot -1, a negative one");
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 6}, {"empty", 5, 0}}}),
            "pipeline viewlog: the source's topic \"empty\" has no partitions (0) in its metadata");
  EXPECT_EQ(refusal({"localhost:9092", {{"viewlog-repartition", 0, 6}}}),
            "pipeline viewlog: the source reads \"viewlog-repartition\", its own repartition topic; read another "
            "topic or rename the pipeline");
  EXPECT_EQ(refusal({"localhost:9092", {}}), "pipeline viewlog: the source has no topic to split");
  EXPECT_EQ(refusal({"", {{"view_log", 0, 6}}}), "pipeline viewlog: no brokers for the repartition topic");
  // A name Kafka would refuse for the topic.
  config_.name = "view log";
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 6}}}),
            "pipeline view log: its repartition topic would be named \"view log-repartition\", which Kafka refuses "
            "(1 to 249 of a-z A-Z 0-9 . _ -): rename the pipeline");

  // Declared keyed by a group key: nothing to split.
  ASSERT_TRUE(Load("", "[source]\n", "[source]\nkeyed_by = [\"network_id\"]\n").ok());
  EXPECT_EQ(refusal({"localhost:9092", {{"view_log", 0, 6}}}),
            "pipeline viewlog does not repartition ([source] keyed_by = [network_id] says the records of a group "
            "are in one partition already): nothing to split");
}

TEST_F(RepartitionPlanTest, SplitRefusesPipelinesThatDoNotRepartition) {
  const std::string kafka = "kafka://localhost:9092/clicks";
  auto refusal = [&](const std::string& text) {
    auto plan = Build(text);
    if (!plan.ok()) return "build: " + plan.status().message();
    auto split = SplitPlan(**plan, SourceTopics{"localhost:9092", {{"clicks", 0, 4}}});
    return split.ok() ? std::string("split") : split.status().message();
  };
  EXPECT_EQ(refusal(Pipeline(kafka, "append")), "split");
  EXPECT_EQ(refusal(Pipeline(kafka, "update")),
            "pipeline clicks does not repartition (update mode merges each partition's changes into the stored "
            "rows, exact without it): nothing to split");
  EXPECT_EQ(refusal(Pipeline(kafka, "")),
            "pipeline clicks does not repartition (a pipeline without [aggregate] keeps no windows): nothing to split");
  EXPECT_EQ(refusal(Pipeline("in.ndjson", "append")),
            "pipeline clicks does not repartition (the source is a file, a bounded input one process reads whole): "
            "nothing to split");
}

// --until-caught-up: stage one to the end offsets seen at its start, then its `end` controls,
// then stage two to the repartition topic's last stable offsets taken after those commits.
TEST(CatchUpOrderTest, StageOneThenEndControlsThenStageTwo) {
  const UpstreamId a{0, 0}, b{0, 1}, c{1, 0};
  auto order = CatchUpOrder::Start({{a, 100}, {b, 50}, {c, 0}});
  ASSERT_TRUE(order.ok()) << order.status().ToString();
  // c is empty (end 0): at its end from the start; a and b are not.
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kStageOne);
  EXPECT_TRUE(order->StageOneStops(c));
  EXPECT_FALSE(order->StageOneStops(a));
  EXPECT_EQ(order->EndControlsDue(), std::vector<UpstreamId>{c});
  // Stage two cannot take its ends while stage one reads.
  EXPECT_EQ(order->StageTwoEnds({{0, 10}}).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(order->StageOneAt(a, 60).ok());
  ASSERT_TRUE(order->StageOneAt(b, 50).ok());
  EXPECT_TRUE(order->StageOneStops(b));
  EXPECT_EQ(order->EndControlsDue(), (std::vector<UpstreamId>{b, c}));
  // A control claiming an end a task has not reached is refused.
  EXPECT_EQ(order->EndControlsCommitted({a}).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(order->EndControlsCommitted({b, c}).ok());
  EXPECT_TRUE(order->EndControlsDue().empty());
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kStageOne);
  // A position reported lower than one before does not move a task back.
  ASSERT_TRUE(order->StageOneAt(a, 120).ok());
  ASSERT_TRUE(order->StageOneAt(a, 90).ok());
  EXPECT_TRUE(order->StageOneStops(a));
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kEndControls);
  EXPECT_EQ(order->EndControlsDue(), std::vector<UpstreamId>{a});
  EXPECT_EQ(order->StageTwoEnds({{0, 10}}).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(order->EndControlsCommitted({a}).ok());
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kStageTwoEnds);
  // Stage two read all along: partition 1 is at its end already when the ends are taken.
  ASSERT_TRUE(order->StageTwoAt(1, 40).ok());
  EXPECT_FALSE(order->StageTwoStops(0));  // no ends yet: stage two keeps reading
  ASSERT_TRUE(order->StageTwoEnds({{0, 30}, {1, 40}, {2, 0}}).ok());
  EXPECT_EQ(order->StageTwoEnds({{0, 30}}).code(), StatusCode::kFailedPrecondition);  // taken once
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kStageTwo);
  EXPECT_FALSE(order->StageTwoStops(0));
  EXPECT_TRUE(order->StageTwoStops(1));
  EXPECT_TRUE(order->StageTwoStops(2));  // empty
  EXPECT_TRUE(order->StageTwoStops(7));  // not a partition of the ends
  ASSERT_TRUE(order->StageTwoAt(0, 29).ok());
  EXPECT_FALSE(order->Done());
  ASSERT_TRUE(order->StageTwoAt(0, 30).ok());
  EXPECT_TRUE(order->Done());
}

TEST(CatchUpOrderTest, ALostTaskIsNotWaitedFor) {
  const UpstreamId a{0, 0}, b{0, 1}, other{0, 2};
  auto order = CatchUpOrder::Start({{a, 10}, {b, 10}});
  ASSERT_TRUE(order.ok());
  ASSERT_TRUE(order->StageOneAt(a, 10).ok());
  ASSERT_TRUE(order->EndControlsCommitted({a}).ok());
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kStageOne);
  // b moves to another process, which ends it; a partition gained after the start is not
  // waited for either (its end was not seen at the start).
  order->StageOneLost(b);
  EXPECT_TRUE(order->StageOneStops(b));
  EXPECT_TRUE(order->StageOneStops(other));
  ASSERT_TRUE(order->StageOneAt(other, 5).ok());
  EXPECT_TRUE(order->EndControlsDue().empty());
  EXPECT_EQ(order->phase(), CatchUpOrder::Phase::kStageTwoEnds);
  ASSERT_TRUE(order->StageTwoEnds({{0, 0}}).ok());
  EXPECT_TRUE(order->Done());
}

TEST(CatchUpOrderTest, RefusesWhatCannotBeAnOrder) {
  EXPECT_EQ(CatchUpOrder::Start({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CatchUpOrder::Start({{UpstreamId{0, 0}, -1}}).status().code(), StatusCode::kInvalidArgument);
  auto order = CatchUpOrder::Start({{UpstreamId{0, 0}, 0}});
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(order->StageOneAt(UpstreamId{0, 0}, -5).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(order->EndControlsCommitted({UpstreamId{0, 0}}).ok());
  EXPECT_EQ(order->StageTwoEnds({}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(order->StageTwoEnds({{0, -1}}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(order->StageTwoEnds({{0, 3}}).ok());
  EXPECT_EQ(order->StageTwoAt(0, -1).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
