#include "runtime/plan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/time.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

// BuildPlan compiles a pipeline file into what every worker runs: the slot layout, the steps in
// order, the aggregate and the dimensions. These cases are worked out from the file text alone.
class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_plan_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "job.csv") << "id,company_id\n1,10\n2,20\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<std::unique_ptr<Plan>> Build(const std::string& body) {
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(kHead + body, (dir_ / "p.toml").string(), vars);
    if (!cfg.ok()) return cfg.status();
    config_ = std::move(cfg).value();
    return BuildPlan(config_);
  }

  static constexpr const char* kHead = R"([pipeline]
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
)";

  fs::path dir_;
  PipelineConfig config_;
};

TEST_F(PlanTest, SlotsStepsAndAggregate) {
  auto plan = Build(R"toml([dimension.job]
uri = "job.csv"
key = "id"
fields = { id = "int64", company_id = "int64" }
[[step]]
ignore_if = "kind is null"
reason = "no kind"
[[step]]
let = "bid2"
expr = "coalesce(bid, 0) * 2"
[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "default"
defaults = { company_id = 0 }
[[step]]
let = "at"
expr = "parse_time('2024-01-01T00:00:00Z')"
[aggregate]
time = "at"
window = "1h"
keys = ["job_id"]
metrics = ["n = count()", "spend = sum(bid2)"]
)toml");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Plan& p = **plan;
  // Input fields first, then the position slots, then what steps derive.
  ASSERT_EQ(p.input.size(), 3u);
  for (const char* f : {"job_id", "bid", "kind"}) EXPECT_LT(p.schema.IndexOf(f).value_or(99), 3u) << f;
  EXPECT_EQ(p.source_slot, 3u);
  EXPECT_EQ(p.partition_slot, 4u);
  EXPECT_EQ(p.offset_slot, 5u);
  EXPECT_EQ(p.schema.IndexOf("bid2"), std::optional<size_t>(6));
  ASSERT_TRUE(p.schema.IndexOf("company_id").has_value());
  ASSERT_EQ(p.steps.size(), 4u);
  StepDescription d0, d1, d2;
  p.steps[0]->Describe(&d0);
  p.steps[1]->Describe(&d1);
  p.steps[2]->Describe(&d2);
  EXPECT_EQ(d0.kind, "ignore_if");
  EXPECT_EQ(d0.reason, "no kind");
  EXPECT_EQ(d1.kind, "derive");
  EXPECT_EQ(d1.slots, std::vector<size_t>{6});
  EXPECT_EQ(d2.kind, "lookup");
  ASSERT_NE(p.steps[2]->dimension(), nullptr);
  EXPECT_EQ(p.steps[2]->dimension()->snapshot()->size(), 2u);  // the CSV, found beside the pipeline file
  ASSERT_NE(p.aggregate, nullptr);
  const auto keys = p.aggregate->KeyColumns();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "job_id"), keys.end());
  EXPECT_FALSE(p.holds);
  const std::string described = DescribePlan(p);
  EXPECT_NE(described.find("job"), std::string::npos) << described;
}

TEST_F(PlanTest, ErrorsPointAtTheFile) {
  auto unknown = Build("[[step]]\nlet = \"x\"\nexpr = \"nosuch + 1\"\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("p.toml:"), std::string::npos) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("nosuch"), std::string::npos) << unknown.status().message();

  auto no_dim = Build("[[step]]\nlookup = \"nodim\"\nkey = \"job_id\"\nfields = [\"x\"]\n");
  ASSERT_FALSE(no_dim.ok());
  EXPECT_NE(no_dim.status().message().find("nodim"), std::string::npos) << no_dim.status().message();

  auto missing_csv = Build("[dimension.job]\nuri = \"gone.csv\"\nkey = \"id\"\nfields = { id = \"int64\" }\n");
  ASSERT_FALSE(missing_csv.ok());
  EXPECT_NE(missing_csv.status().message().find("gone.csv"), std::string::npos)
      << missing_csv.status().message();
}


// Each kind of step is checked against the fields the steps before it defined; the error says
// which line of the file and why.
TEST_F(PlanTest, StepErrors) {
  struct Case {
    std::string body;
    std::string says;
  };
  const std::string lookup = "[[step]]\nlookup = \"job\"\nkey = \"job_id\"\n";
  const std::string dim = "[dimension.job]\nuri = \"job.csv\"\nkey = \"id\"\n"
                          "fields = { id = \"int64\", company_id = \"int64\" }\n";
  for (const Case& c : std::vector<Case>{
           {"[[step]]\nlet = \"bid\"\nexpr = \"'x'\"\n",
            "let bid changes its type from int64 to string; use a new name"},
           {"[[step]]\nignore_if = \"bid + 1\"\n", "a condition must be boolean, this is int64"},
           {dim + lookup + "fields = [\"nope\"]\n", "dimension job has no field 'nope'"},
           {dim + lookup + "fields = [\"company_id\"]\n"
                           "[[step]]\nlet = \"x\"\nexpr = \"1\"\n" + lookup +
                "fields = [\"company_id\"]\n",
            ""},  // the same field twice, same type: fine
           {dim + "[[step]]\nlet = \"company_id\"\nexpr = \"'s'\"\n" + lookup +
                "fields = [\"company_id\"]\n",
            "lookup field company_id clashes with an existing field of another type"},
           {dim + lookup + "fields = [\"company_id\"]\non_missing = \"default\"\n"
                           "defaults = { id = 1 }\n",
            "default for 'id', which is not one of the lookup fields"},
           {dim + "[[step]]\nlookup = \"job\"\nkey = \"kind\"\nfields = [\"company_id\"]\n",
            "lookup key is string but the key of dimension job is int64"},
           {"[aggregate]\ntime = \"bid\"\nwindow = \"1h\"\nkeys = [\"kind\"]\n"
            "metrics = [\"n = count()\"]\n",
            "aggregate time must be a timestamp, this is int64"},
           {"[[step]]\nlet = \"at\"\nexpr = \"parse_time('2024-01-01T00:00:00Z')\"\n"
            "[aggregate]\ntime = \"at\"\nwindow = \"1h\"\nkeys = [\"kind\"]\n"
            "metrics = [\"kind = count()\"]\n",
            "metric 'kind' has the name of a key"},
       }) {
    auto plan = Build(c.body);
    if (c.says.empty()) {
      EXPECT_TRUE(plan.ok()) << c.body << plan.status().ToString();
      continue;
    }
    ASSERT_FALSE(plan.ok()) << c.body;
    EXPECT_NE(plan.status().message().find(c.says), std::string::npos)
        << c.body << "\n" << plan.status().message();
  }
}

// A lookup that holds marks the plan (its state goes with the checkpoints); without an
// aggregate the select columns are the output, typed by their expressions.
TEST_F(PlanTest, HoldAndSelect) {
  Variables vars;
  vars.use_environment = false;
  auto cfg = ParsePipelineConfig(
      std::string("select = [\"job_id\", \"double_bid = bid * 2\", \"company_id\"]\n") + kHead +
          "[dimension.job]\nuri = \"job.csv\"\nkey = \"id\"\n"
          "fields = { id = \"int64\", company_id = \"int64\" }\n"
          "[[step]]\nlookup = \"job\"\nkey = \"job_id\"\nfields = [\"company_id\"]\n"
          "on_missing = \"hold\"\nhold_for = \"2s\"\nthen = \"drop\"\n",
      (dir_ / "p.toml").string(), vars);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  config_ = std::move(cfg).value();
  auto plan = BuildPlan(config_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Plan& p = **plan;
  EXPECT_TRUE(p.holds);
  ASSERT_EQ(p.steps.size(), 1u);
  StepDescription d;
  p.steps[0]->Describe(&d);
  EXPECT_EQ(d.on_missing, "hold");
  EXPECT_EQ(d.hold_seconds, 2.0);
  EXPECT_EQ(d.then, "drop");
  EXPECT_TRUE(d.holds);
  // job_id, bid, kind, _source, _partition, _offset, then company_id, from the dimension's
  // column of that name.
  EXPECT_EQ(d.fields, std::vector<std::string>{"company_id"});
  EXPECT_EQ(d.slots, std::vector<size_t>{6});
  ASSERT_NE(p.steps[0]->dimension(), nullptr);
  EXPECT_EQ(p.steps[0]->dimension()->name(), "job");
  EXPECT_EQ(p.aggregate, nullptr);
  const Schema out = p.OutputSchema();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out.field(0).name, "job_id");
  EXPECT_EQ(out.field(1).name, "double_bid");
  EXPECT_EQ(out.field(1).type, Type::kInt64);
  EXPECT_EQ(out.field(2).name, "company_id");
}


// A metric is "[round(]fn(arg)[, n)] [where cond] [default literal]"; each part is checked.
TEST_F(PlanTest, Metrics) {
  const std::string head =
      "[[step]]\nlet = \"at\"\nexpr = \"parse_time('2024-01-01T00:00:00Z')\"\n"
      "[aggregate]\ntime = \"at\"\nwindow = \"1h\"\nkeys = [\"kind\"]\nmetrics = [";
  auto plan = Build(head + "\"a = round(avg(bid), 2) where kind = 'click' default 1\", "
                           "\"n = count(bid)\", \"top = max(kind)\"]\n");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const auto& metrics = (*plan)->aggregate->metrics;
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[0].fn, AggFn::kAvg);
  EXPECT_EQ(metrics[0].round_digits, 2);
  EXPECT_NE(metrics[0].where, nullptr);
  ASSERT_TRUE(metrics[0].default_value.has_value());
  EXPECT_EQ(metrics[0].default_value->type(), Type::kDouble);
  EXPECT_EQ(metrics[0].default_value->AsDouble(), 1.0);
  EXPECT_EQ(metrics[0].result_type, Type::kDouble);
  EXPECT_EQ(metrics[1].fn, AggFn::kCount);
  EXPECT_NE(metrics[1].arg, nullptr);  // count(x) counts non-null x
  EXPECT_EQ(metrics[1].result_type, Type::kInt64);
  EXPECT_EQ(metrics[2].fn, AggFn::kMax);
  EXPECT_EQ(metrics[2].result_type, Type::kString);

  for (const auto& [metric, says] : std::vector<std::pair<std::string, std::string>>{
           {"x = round(avg(bid))", "round() needs two arguments"},
           {"x = round(avg(bid), 16)", "round() digits must be 0..15"},
           {"x = round(sum(bid), 2)", "round() applies to avg() only"},
           {"x = bid", "must be an aggregate such as count()"},
           {"x = median(bid)", "unknown aggregate 'median'"},
           {"x = sum()", "sum() needs an argument"},
           {"x = sum(kind)", "sum() needs a numeric argument, got string"},
           {"x = sum(bid) default 1", "'default' applies to avg() only"},
           {"x = avg(bid) default 'z'", "the default of avg() must be a number"},
           {"x = count() where", "'where' needs a condition"},
           {"x = count() where bid", "the where condition of metric 'x' must be a boolean"},
       }) {
    auto bad = Build(head + "\"" + metric + "\"]\n");
    ASSERT_FALSE(bad.ok()) << metric;
    EXPECT_NE(bad.status().message().find(says), std::string::npos)
        << metric << "\n" << bad.status().message();
  }
}

// `slide` makes hopping windows: the plan carries it, keys that read the window are marked, and
// metrics of hopping windows may not read the window (a record is in several at once).
TEST_F(PlanTest, HoppingWindows) {
  const std::string head =
      "[[step]]\nlet = \"at\"\nexpr = \"parse_time('2024-01-01T00:00:00Z')\"\n"
      "[aggregate]\ntime = \"at\"\nwindow = \"1h\"\nslide = \"15m\"\n";
  auto plan = Build(head +
                    "keys = [\"kind\", \"h = hour(window_start)\", \"kw = concat(kind, to_string(window_end))\"]\n"
                    "metrics = [\"n = count()\", \"x = sum(bid) where kind = 'a'\"]\n");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const AggregateSpec& a = *(*plan)->aggregate;
  EXPECT_EQ(a.window_micros, kMicrosPerHour);
  EXPECT_EQ(a.slide_micros, 15 * kMicrosPerMinute);
  EXPECT_TRUE(a.hopping());
  EXPECT_EQ(a.windows_per_record(), 4);
  ASSERT_EQ(a.keys.size(), 3u);
  EXPECT_FALSE(a.keys[0].uses_window);
  EXPECT_TRUE(a.keys[1].uses_window);
  EXPECT_NE(a.keys[1].window_expr, nullptr);
  EXPECT_TRUE(a.keys[2].uses_window);
  EXPECT_EQ(a.keys[2].window_expr, nullptr);
  const std::string described = DescribePlan(**plan);
  EXPECT_NE(described.find("aggregate hopping 3600s windows every 900s (each record in 4) on at"),
            std::string::npos)
      << described;

  // Line 20 holds the metrics; the right-hand side starts at column 17 and window_end is 20
  // characters into it.
  auto bad = Build(head + "keys = [\"kind\"]\nmetrics = [\"x = sum(bid) where hour(window_end) > 3\"]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.toml:20:37: metric 'x' reads window_end"), std::string::npos)
      << bad.status().message();
  bad = Build(head + "keys = [\"kind\"]\nmetrics = [\"x = max(window_start)\"]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.toml:20:21: metric 'x' reads window_start"), std::string::npos)
      << bad.status().message();

  // The same metrics are fine for tumbling windows, whose records have one window.
  auto tumbling = Build(
      "[[step]]\nlet = \"at\"\nexpr = \"parse_time('2024-01-01T00:00:00Z')\"\n"
      "[aggregate]\ntime = \"at\"\nwindow = \"1h\"\nkeys = [\"kind\"]\n"
      "metrics = [\"x = sum(bid) where hour(window_end) > 3\", \"y = max(window_start)\"]\n");
  ASSERT_TRUE(tumbling.ok()) << tumbling.status().ToString();
  EXPECT_FALSE((*tumbling)->aggregate->hopping());
  EXPECT_EQ((*tumbling)->aggregate->windows_per_record(), 1);
  EXPECT_NE(DescribePlan(**tumbling).find("aggregate tumbling 3600s windows on at"), std::string::npos);
}

// A configuration built without the pipeline-file reader (the SQL front end) is checked too.
TEST_F(PlanTest, SlideThatDoesNotDivideTheWindowIsRefused) {
  auto plan = Build(
      "[[step]]\nlet = \"at\"\nexpr = \"parse_time('2024-01-01T00:00:00Z')\"\n"
      "[aggregate]\ntime = \"at\"\nwindow = \"1h\"\nkeys = [\"kind\"]\nmetrics = [\"n = count()\"]\n");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  PipelineConfig config = config_;
  config.aggregate->slide_micros = 7 * kMicrosPerMinute;
  auto bad = BuildPlan(config);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.toml:15:1: the slide of hopping windows (420s) must divide the window (3600s)"),
            std::string::npos)
      << bad.status().message();
  config.aggregate->slide_micros = 3 * kMicrosPerSecond;
  bad = BuildPlan(config);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("put a record in 1200 windows, at most 1000"), std::string::npos)
      << bad.status().message();
  config.aggregate->slide_micros = kMicrosPerHour;  // the window itself: tumbling
  auto same = BuildPlan(config);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_FALSE((*same)->aggregate->hopping());
  EXPECT_EQ((*same)->aggregate->slide_micros, 0);
}

// [source] keyed_by promises that every record with equal values of those group keys is in one
// partition (append mode keeps its open windows per partition then). Each mistake is refused
// with the file's line of the key and what is wrong; the expectations follow from the text.
TEST_F(PlanTest, KeyedByNamesGroupKeysThatComeFromTheRecord) {
  auto build = [&](const std::string& keyed_by, bool aggregate = true, const std::string& mode = "append") {
    const std::string text =
        // A pipeline without [aggregate] selects (a top-level key: before the tables).
        std::string(aggregate ? "" : "select = [\"job_id\"]\n") +
        "[pipeline]\nname = \"p\"\n[source]\nuri = \"generator:\"\n" +
        (keyed_by.empty() ? std::string() : "keyed_by = " + keyed_by + "\n") +
        "[source.fields]\njob_id = \"int64\"\nbid = \"int64\"\nkind = \"string\"\n"
        "[[step]]\nlet = \"et\"\nexpr = \"parse_time(kind)\"\n" +
        (aggregate ? "[aggregate]\ntime = \"et\"\nwindow = \"1m\"\nmode = \"" + mode +
                         "\"\nkeys = [\"job_id\", \"kind\", \"day = date(window_start)\"]\n"
                         "metrics = [\"n = count()\"]\n"
                   : std::string()) +
        "[sink]\nuri = \"sqlite:x.db\"\ntable = \"t\"\n";
    Variables vars;
    vars.use_environment = false;
    auto cfg = ParsePipelineConfig(text, (dir_ / "p.toml").string(), vars);
    if (!cfg.ok()) return Result<std::unique_ptr<Plan>>(cfg.status());
    config_ = std::move(cfg).value();
    return BuildPlan(config_);
  };
  auto fails = [&](const std::string& keyed_by, const std::string& message, bool aggregate = true) {
    auto plan = build(keyed_by, aggregate);
    if (plan.ok()) return ::testing::AssertionFailure() << keyed_by << " was accepted";
    const std::string got = plan.status().message();
    const std::string line = aggregate ? "p.toml:5:" : "p.toml:6:";  // keyed_by's line
    if (got.find(line) == std::string::npos || got.find(message) == std::string::npos) {
      return ::testing::AssertionFailure() << keyed_by << ": " << got;
    }
    return ::testing::AssertionSuccess();
  };

  auto one = build("[\"job_id\"]");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(config_.source.keyed_by, std::vector<std::string>{"job_id"});
  // Not a connector option: the generator, which takes no keyed_by, never sees it.
  EXPECT_FALSE(config_.source.options.Has("keyed_by"));
  EXPECT_NE(DescribePlan(**one).find("generator: (keyed by job_id)"), std::string::npos) << DescribePlan(**one);
  auto two = build("[\"kind\", \"job_id\"]");
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(config_.source.keyed_by, (std::vector<std::string>{"kind", "job_id"}));
  EXPECT_TRUE(build("[\"job_id\"]", true, "update").ok());  // allowed; append mode uses it
  auto none = build("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(config_.source.keyed_by.empty());

  EXPECT_TRUE(fails("[]", "[source] keyed_by is empty"));
  EXPECT_TRUE(fails("\"job_id\"", "[source] keyed_by must be a list"));
  EXPECT_TRUE(fails("[1]", "keyed_by entries must be strings"));
  EXPECT_TRUE(fails("[\"job_id\", \"job_id\"]", "keyed_by names 'job_id' twice"));
  EXPECT_TRUE(fails("[\"job_id\", \"nosuch\"]",
                    "[source] keyed_by: unknown column 'nosuch' (the aggregate's keys: job_id, kind, day)"));
  EXPECT_TRUE(fails("[\"bid\"]", "'bid' is a field but not a group key of [aggregate]"));
  EXPECT_TRUE(fails("[\"window_start\"]", "'window_start' is the window, not a group key"));
  EXPECT_TRUE(fails("[\"day\"]", "the group key 'day' is computed from the window"));
  EXPECT_TRUE(fails("[\"job_id\"]", "this pipeline has no [aggregate]", /*aggregate=*/false));
}

}  // namespace
}  // namespace sluice
