#include "http/result_view.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <vector>

#include "core/time.h"
#include "expr/expr.h"
#include "operators/aggregator.h"

namespace sluice::http {
namespace {

// Rows: t (timestamp), job (int64), track (string), bid (int64), window_start, window_end.
// Keys: job (a field: tracked), hours = hour(window_start) (derived from the window: not tracked).
class ResultViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    schema_ = Schema({{"t", Type::kTimestamp, ""},
                      {"job", Type::kInt64, ""},
                      {"track", Type::kString, ""},
                      {"bid", Type::kInt64, ""},
                      {"window_start", Type::kTimestamp, ""},
                      {"window_end", Type::kTimestamp, ""}});
    spec_.time = Compile("t");
    spec_.window_micros = kMicrosPerHour;
    spec_.window_start_slot = 4;
    spec_.window_end_slot = 5;
    spec_.emit_window_start = spec_.emit_window_end = false;
    AddKey("job", "job", 1);
    AddKey("hours", "hour(window_start)", -1);
    AddMetric("clicks", AggFn::kCount, "", "track = 'click'", Type::kInt64);
    AddMetric("spend", AggFn::kSum, "bid", "track = 'click'", Type::kInt64);
    AddMetric("avg_bid", AggFn::kAvg, "bid", "track = 'click'", Type::kDouble, 2);
    AddMetric("conversion", AggFn::kCount, "", "track = 'conversion'", Type::kInt64);
    AddMetric("last_track", AggFn::kLast, "track", "", Type::kString);
  }

  std::unique_ptr<expr::Expr> Compile(const std::string& text) {
    auto e = expr::Compile(text, schema_);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(e).value();
  }
  void AddKey(const std::string& name, const std::string& text, int slot) {
    KeySpec k;
    k.name = name;
    k.expr = Compile(text);
    k.type = k.expr->type();
    k.slot = slot;
    spec_.keys.push_back(std::move(k));
  }
  void AddMetric(const std::string& name, AggFn fn, const std::string& arg,
                 const std::string& where, Type result, int round = -1) {
    MetricSpec m;
    m.name = name;
    m.fn = fn;
    if (!arg.empty()) {
      m.arg = Compile(arg);
      m.arg_type = m.arg->type();
    }
    if (!where.empty()) m.where = Compile(where);
    m.round_digits = round;
    m.result_type = result;
    if (fn == AggFn::kAvg) m.default_value = Value::Double(0);
    spec_.metrics.push_back(std::move(m));
  }

  /// Aggregates `events` (hour, job, track, bid) into one checkpoint's deltas, as a worker does.
  std::vector<DeltaRow> Deltas(const std::vector<std::tuple<int, int, std::string, int>>& events) {
    Aggregator agg(&spec_);
    std::string null_key;
    for (const auto& [hour, job, track, bid] : events) {
      std::vector<Value> row = {Value::TimeMicros(hour * kMicrosPerHour + 10),
                                Value::Int(job),
                                Value::String(track),
                                Value::Int(bid),
                                Value(),
                                Value()};
      EXPECT_EQ(agg.Add(row, &null_key), Aggregator::AddResult::kAdded);
    }
    return agg.TakeAll();
  }

  Schema schema_;
  AggregateSpec spec_;
};

TEST_F(ResultViewTest, TracksFieldKeysOnly) {
  EXPECT_EQ(ResultView::DefaultTrackedKeys(spec_), std::vector<size_t>{0});
}

TEST_F(ResultViewTest, SeriesTotalsAndTopListsEqualAGroupByOverCommits) {
  auto view = ResultView::ForAggregate(&spec_, ResultView::DefaultTrackedKeys(spec_));
  // Two checkpoints; the second updates groups of the first (update-mode deltas).
  view->OnCommit(Deltas({{0, 1, "click", 3},
                         {0, 1, "click", 4},
                         {0, 2, "click", 10},
                         {0, 2, "conversion", 0},
                         {1, 3, "click", 1}}),
                 {});
  view->OnCommit(
      Deltas({{0, 1, "click", 5}, {1, 3, "click", 2}, {1, 3, "alive", 0}, {1, 2, "conversion", 0}}),
      {});

  simdjson::dom::parser parser;
  const std::string text = view->RenderJson(ResultQuery{});
  simdjson::dom::element doc = parser.parse(text);
  EXPECT_EQ(int64_t(doc["commits"]), 2);
  EXPECT_EQ(std::string_view(doc["mode"]), "aggregate");
  EXPECT_EQ(std::string_view(doc["top_by"]), "clicks");
  // Numeric metrics only: last() is not charted.
  simdjson::dom::array metrics = doc["metrics"];
  EXPECT_EQ(metrics.size(), 4u);

  simdjson::dom::array windows = doc["windows"];
  ASSERT_EQ(windows.size(), 2u);
  simdjson::dom::element w0 = windows.at(0), w1 = windows.at(1);
  EXPECT_EQ(int64_t(w0["start_micros"]), 0);
  EXPECT_EQ(std::string_view(w0["start"]), "1970-01-01 00:00:00");
  EXPECT_EQ(int64_t(w0["values"]["clicks"]), 4);    // job 1: 3 clicks, job 2: 1
  EXPECT_EQ(int64_t(w0["values"]["spend"]), 22);    // 3 + 4 + 5 + 10
  EXPECT_EQ(double(w0["values"]["avg_bid"]), 5.5);  // 22 / 4
  EXPECT_EQ(int64_t(w0["values"]["conversion"]), 1);
  EXPECT_EQ(int64_t(w1["start_micros"]), kMicrosPerHour);
  EXPECT_EQ(int64_t(w1["values"]["clicks"]), 2);
  EXPECT_EQ(int64_t(w1["values"]["conversion"]), 1);
  EXPECT_EQ(int64_t(doc["totals"]["clicks"]), 6);
  EXPECT_EQ(int64_t(doc["totals"]["spend"]), 25);
  EXPECT_EQ(double(doc["totals"]["avg_bid"]), 4.17);  // round(25 / 6, 2)

  // Top jobs by clicks over both windows: job 1 (3), job 3 (2), job 2 (1).
  simdjson::dom::array top = doc["top"]["job"]["rows"];
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(int64_t(top.at(0)["key"]), 1);
  EXPECT_EQ(int64_t(top.at(0)["values"]["clicks"]), 3);
  EXPECT_EQ(int64_t(top.at(1)["key"]), 3);
  EXPECT_EQ(int64_t(top.at(2)["key"]), 2);
  EXPECT_EQ(int64_t(top.at(2)["values"]["conversion"]), 2);
  EXPECT_EQ(int64_t(doc["top"]["job"]["distinct"]), 3);
  EXPECT_TRUE(doc["top"]["hours"].error());  // derived from the window: no top list

  // Another order and a shorter list; ties go to the smaller key.
  simdjson::dom::element by_conv = parser.parse(view->RenderJson(ResultQuery{"conversion", 2}));
  simdjson::dom::array top2 = by_conv["top"]["job"]["rows"];
  ASSERT_EQ(top2.size(), 2u);
  EXPECT_EQ(int64_t(top2.at(0)["key"]), 2);
  EXPECT_EQ(int64_t(top2.at(1)["key"]), 1);  // 0 conversions, as job 3, but the smaller id
}

// Hopping windows of 2 h every hour: each window shows its own records, but totals and top
// lists add up only the windows starting at a multiple of 2 h, so every click counts once.
TEST_F(ResultViewTest, HoppingWindowsCountEachRecordOnceInTotals) {
  spec_.window_micros = 2 * kMicrosPerHour;
  spec_.slide_micros = kMicrosPerHour;
  auto view = ResultView::ForAggregate(&spec_, {0});
  // Clicks: job 1 at hours 0 and 1, job 2 twice at hour 2. Windows (start hour: clicks):
  // -1: 1 (h0); 0: 2 (h0, h1); 1: 3 (h1, h2, h2); 2: 2 (h2, h2).
  view->OnCommit(Deltas({{0, 1, "click", 1}, {1, 1, "click", 1}, {2, 2, "click", 1}, {2, 2, "click", 1}}), {});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(view->RenderJson(ResultQuery{}));
  EXPECT_EQ(double(doc["window_seconds"]), 7200);
  EXPECT_EQ(double(doc["slide_seconds"]), 3600);
  simdjson::dom::array windows = doc["windows"];
  ASSERT_EQ(windows.size(), 4u);
  std::vector<int64_t> clicks;
  for (simdjson::dom::element w : windows) clicks.push_back(int64_t(w["values"]["clicks"]));
  EXPECT_EQ(clicks, (std::vector<int64_t>{1, 2, 3, 2}));
  EXPECT_EQ(int64_t(doc["totals"]["clicks"]), 4);  // windows 0 and 2 only
  simdjson::dom::array top = doc["top"]["job"]["rows"];
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(int64_t(top.at(0)["values"]["clicks"]), 2);
  EXPECT_EQ(int64_t(top.at(1)["values"]["clicks"]), 2);
}

TEST_F(ResultViewTest, KeepsTheMostRecentWindows) {
  ResultView::Limits limits;
  limits.max_windows = 2;
  auto view = ResultView::ForAggregate(&spec_, {0}, limits);
  view->OnCommit(Deltas({{0, 1, "click", 1}, {1, 1, "click", 1}}), {});
  view->OnCommit(Deltas({{2, 1, "click", 1}, {2, 1, "click", 1}}), {});
  // Window 0 was evicted; a late delta for it is not taken back in.
  view->OnCommit(Deltas({{0, 1, "click", 1}}), {});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(view->RenderJson(ResultQuery{}));
  simdjson::dom::array windows = doc["windows"];
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(int64_t(windows.at(0)["start_micros"]), kMicrosPerHour);
  EXPECT_EQ(int64_t(doc["totals"]["clicks"]), 3);
  EXPECT_EQ(int64_t(doc["dropped_deltas"]), 1);
}

TEST_F(ResultViewTest, EmptyViewRendersDefaults) {
  auto view = ResultView::ForAggregate(&spec_, {0});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(view->RenderJson(ResultQuery{}));
  EXPECT_EQ(int64_t(doc["commits"]), 0);
  EXPECT_TRUE(doc["last_commit_micros"].is_null());
  EXPECT_EQ(int64_t(doc["totals"]["clicks"]), 0);
  EXPECT_EQ(double(doc["totals"]["avg_bid"]), 0.0);
}

TEST(ResultViewRowsTest, KeepsTheLastRows) {
  Schema out({{"a", Type::kInt64, ""}, {"b", Type::kString, ""}});
  ResultView::Limits limits;
  limits.max_rows = 2;
  auto view = ResultView::ForRows(out, limits);
  view->OnCommit({}, {{Value::Int(1), Value::String("x")}, {Value::Int(2), Value::String("y\"")}});
  view->OnCommit({}, {{Value::Int(3), Value()}});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(view->RenderJson(ResultQuery{}));
  EXPECT_EQ(std::string_view(doc["mode"]), "rows");
  EXPECT_EQ(int64_t(doc["rows_seen"]), 3);
  simdjson::dom::array rows = doc["rows"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(std::string_view(rows.at(0).at(1)), "y\"");
  EXPECT_TRUE(rows.at(1).at(1).is_null());
}

}  // namespace
}  // namespace sluice::http
