#include "operators/step.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

// Each step kind on its own: built by MakeStep from a StepConfig, run on a row with a fake
// StepContext (the snapshot and the wall clock the test chooses), described. The expected rows,
// outcomes and texts are worked out by hand from the configs below.

namespace sluice {
namespace {

/// The fake wall clock the hold policy reads.
int64_t g_now = 0;
int64_t FakeClock() { return g_now; }

StepConfig Config(StepConfig::Kind kind, std::string target, std::string expr) {
  StepConfig c;
  c.kind = kind;
  c.target = std::move(target);
  c.expr = std::move(expr);
  c.where = {"p.toml", 7, 8};
  return c;
}

/// Input row: a int64, name string, job_id int64 (slots 0, 1, 2).
Schema InputSchema() {
  return Schema(
      {{"a", Type::kInt64, ""}, {"name", Type::kString, ""}, {"job_id", Type::kInt64, ""}});
}

class StepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_now = 1'000'000;
    ctx_.wall_clock = &FakeClock;
    schema_ = InputSchema();
    auto table = std::make_shared<DimensionTable>(
        "job",
        Schema({{"id", Type::kInt64, ""},
                {"company_id", Type::kInt64, ""},
                {"title", Type::kString, ""}}),
        0);
    table->Put({Value::Int(1), Value::Int(100), Value::String("cook")});
    table->Put({Value::Int(2), Value::Int(200), Value::String("pilot")});
    DimensionConfig dc;
    dc.name = "job";
    dc.key = "id";
    job_ = std::make_shared<Dimension>(dc, DimensionRefresh{}, table);
    dimensions_["job"] = job_;
  }

  std::unique_ptr<Step> Make(const StepConfig& c) {
    auto s = MakeStep(c, &schema_, dimensions_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::string Error(const StepConfig& c) {
    auto s = MakeStep(c, &schema_, dimensions_);
    return s.ok() ? "" : s.status().message();
  }

  /// A row of the schema as it is now: a, name, job_id, then nulls for what steps added.
  std::vector<Value> Row(Value a, Value job_id) {
    std::vector<Value> row(schema_.size());
    row[0] = std::move(a);
    row[1] = Value::String("x");
    row[2] = std::move(job_id);
    return row;
  }

  StepDescription Describe(const Step& s) {
    StepDescription d;
    s.Describe(&d);
    return d;
  }

  /// A lookup of job by job_id copying company_id and title.
  StepConfig Lookup(std::string on_missing) {
    StepConfig c = Config(StepConfig::Kind::kLookup, "job", "job_id");
    c.fields = {"company_id", "title"};
    c.on_missing = std::move(on_missing);
    return c;
  }

  Schema schema_;
  DimensionMap dimensions_;
  std::shared_ptr<Dimension> job_;
  StepContext ctx_;
};

TEST_F(StepTest, DeriveWritesANewField) {
  auto step = Make(Config(StepConfig::Kind::kLet, "b", "a * 2 + 1"));
  ASSERT_NE(step, nullptr);
  ASSERT_EQ(schema_.size(), 4u);
  EXPECT_EQ(schema_.field(3).name, "b");
  EXPECT_EQ(schema_.field(3).type, Type::kInt64);
  auto row = Row(Value::Int(20), Value::Int(1));
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(row[3], Value::Int(41));
  const StepDescription d = Describe(*step);
  EXPECT_EQ(d.kind, "derive");
  EXPECT_EQ(d.summary, "let b = a * 2 + 1");
  EXPECT_EQ(d.target, "b");
  EXPECT_EQ(d.type, "int64");
  EXPECT_EQ(d.slots, std::vector<size_t>{3});
  EXPECT_EQ(step->counting(), StepCounting::kNothing);
  EXPECT_EQ(step->dimension(), nullptr);
}

TEST_F(StepTest, DeriveOverwritesAFieldOfTheSameTypeOnly) {
  auto step = Make(Config(StepConfig::Kind::kLet, "a", "a + 1"));
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(schema_.size(), 3u);  // no new field
  auto row = Row(Value::Int(5), Value());
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(row[0], Value::Int(6));
  EXPECT_EQ(Error(Config(StepConfig::Kind::kLet, "a", "'text'")),
            "p.toml:7:8: let a changes its type from int64 to string; use a new name");
  EXPECT_EQ(Error(Config(StepConfig::Kind::kLet, "n", "null")),
            "p.toml:7:8: cannot infer the type of n");
}

TEST_F(StepTest, FilterKeepsWhatIsTrueOnly) {
  StepConfig c = Config(StepConfig::Kind::kFilter, "", "a > 2");
  c.reason = "small";
  auto step = Make(c);
  ASSERT_NE(step, nullptr);
  auto big = Row(Value::Int(3), Value());
  auto small = Row(Value::Int(2), Value());
  auto null = Row(Value(), Value());
  EXPECT_EQ(step->Apply(big, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(step->Apply(small, ctx_), Step::Outcome::kIgnored);
  EXPECT_EQ(step->Apply(null, ctx_), Step::Outcome::kIgnored);  // null is not true
  const StepDescription d = Describe(*step);
  EXPECT_EQ(d.kind, "filter");
  EXPECT_EQ(d.summary, "keep if a > 2");
  EXPECT_EQ(d.reason, "small");
  EXPECT_EQ(step->counting(), StepCounting::kIgnored);
}

TEST_F(StepTest, IgnoreIfDropsWhatIsTrue) {
  auto step = Make(Config(StepConfig::Kind::kIgnoreIf, "", "a > 2"));
  ASSERT_NE(step, nullptr);
  auto big = Row(Value::Int(3), Value());
  auto null = Row(Value(), Value());
  EXPECT_EQ(step->Apply(big, ctx_), Step::Outcome::kIgnored);
  EXPECT_EQ(step->Apply(null, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(Describe(*step).summary, "ignore if a > 2");
  EXPECT_EQ(Describe(*step).kind, "ignore_if");
  EXPECT_EQ(step->counting(), StepCounting::kIgnored);
}

TEST_F(StepTest, DeadLetterIfGivesItsReason) {
  StepConfig c = Config(StepConfig::Kind::kDeadLetterIf, "", "a is null");
  c.reason = "no a";
  auto step = Make(c);
  ASSERT_NE(step, nullptr);
  auto set = Row(Value::Int(1), Value());
  auto null = Row(Value(), Value());
  EXPECT_EQ(step->Apply(set, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(ctx_.reason, "");
  EXPECT_EQ(step->Apply(null, ctx_), Step::Outcome::kDeadLetter);
  EXPECT_EQ(ctx_.reason, "no a");
  EXPECT_EQ(Describe(*step).summary, "dead-letter if a is null");
  EXPECT_EQ(step->counting(), StepCounting::kDeadLettered);
}

TEST_F(StepTest, ConditionsMustBeBoolean) {
  for (auto kind :
       {StepConfig::Kind::kFilter, StepConfig::Kind::kIgnoreIf, StepConfig::Kind::kDeadLetterIf}) {
    EXPECT_EQ(Error(Config(kind, "", "a + 1")),
              "p.toml:7:8: a condition must be boolean, this is int64");
  }
}

TEST_F(StepTest, LookupCopiesTheDimensionRow) {
  auto step = Make(Lookup("drop"));
  ASSERT_NE(step, nullptr);
  ASSERT_EQ(schema_.size(), 5u);
  EXPECT_EQ(schema_.field(3).name, "company_id");
  EXPECT_EQ(schema_.field(4).type, Type::kString);
  EXPECT_EQ(step->dimension(), job_.get());
  auto snapshot = job_->snapshot();
  ctx_.snapshot = snapshot.get();
  auto row = Row(Value::Int(1), Value::Int(2));
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(row[3], Value::Int(200));
  EXPECT_EQ(row[4], Value::String("pilot"));
  EXPECT_EQ(job_->stats().misses, 0);
  const StepDescription d = Describe(*step);
  EXPECT_EQ(d.kind, "lookup");
  EXPECT_EQ(d.summary, "lookup job by job_id -> company_id, title (missing: drop)");
  EXPECT_EQ(d.dimension_key, "id");
  EXPECT_EQ(d.fields, (std::vector<std::string>{"company_id", "title"}));
  EXPECT_EQ(d.slots, (std::vector<size_t>{3, 4}));
  EXPECT_FALSE(d.holds);
  EXPECT_EQ(step->counting(), StepCounting::kLookupMisses);
}

TEST_F(StepTest, LookupMissFollowsOnMissing) {
  StepConfig with_defaults = Lookup("default");
  with_defaults.defaults["company_id"] = "-1";
  auto defaulted = Make(with_defaults);
  auto dropped = Make(Lookup("drop"));
  auto dead = Make(Lookup("dead_letter"));
  ASSERT_TRUE(defaulted && dropped && dead);
  auto snapshot = job_->snapshot();
  ctx_.snapshot = snapshot.get();

  auto row = Row(Value(), Value::Int(7));
  EXPECT_EQ(defaulted->Apply(row, ctx_), Step::Outcome::kDefaulted);
  EXPECT_EQ(row[3], Value::Int(-1));
  EXPECT_TRUE(row[4].is_null());  // no default given
  auto null_key = Row(Value(), Value());
  EXPECT_EQ(dropped->Apply(null_key, ctx_), Step::Outcome::kIgnored);  // a null key is a miss
  auto missing = Row(Value(), Value::Int(7));
  EXPECT_EQ(dead->Apply(missing, ctx_), Step::Outcome::kDeadLetter);
  EXPECT_EQ(ctx_.reason, "no job for key 7");
  EXPECT_EQ(job_->stats().misses, 3);
}

TEST_F(StepTest, LookupHoldsThenFollowsThen) {
  StepConfig c = Lookup("hold");
  c.hold_micros = 2'000'000;
  c.then = "dead_letter";
  auto step = Make(c);
  ASSERT_NE(step, nullptr);
  const StepDescription d = Describe(*step);
  EXPECT_TRUE(d.holds);
  EXPECT_EQ(d.hold_seconds, 2.0);
  EXPECT_EQ(d.then, "dead_letter");

  auto snapshot = job_->snapshot();
  ctx_.snapshot = snapshot.get();
  auto row = Row(Value(), Value::Int(3));
  // First seen: held until now + 2 s.
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kHold);
  EXPECT_EQ(ctx_.hold_until_micros, 3'000'000);
  EXPECT_EQ(job_->stats().misses, 1);
  // Retried before the deadline: still held, not another miss.
  ctx_.retrying = true;
  ctx_.retry_deadline_micros = 3'000'000;
  g_now = 2'999'999;
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kHold);
  EXPECT_EQ(job_->stats().misses, 1);
  // The key arrives: the retry finds it.
  auto grown = std::make_shared<DimensionTable>(*snapshot);
  grown->Put({Value::Int(3), Value::Int(300), Value::String("baker")});
  ctx_.snapshot = grown.get();
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kContinue);
  EXPECT_EQ(row[3], Value::Int(300));
  // Without it, at the deadline, `then` applies and the reason says how long it waited.
  ctx_.snapshot = snapshot.get();
  g_now = 3'000'000;
  EXPECT_EQ(step->Apply(row, ctx_), Step::Outcome::kDeadLetter);
  EXPECT_EQ(ctx_.reason, "no job for key 3 after holding it 2s");
  EXPECT_EQ(job_->stats().misses, 1);
}

TEST_F(StepTest, LookupHoldThenDropOrDefault) {
  StepConfig drop = Lookup("hold");
  drop.hold_micros = 1'500'000;
  drop.then = "drop";
  StepConfig def = Lookup("hold");
  def.then = "default";
  def.defaults["title"] = "'none'";
  auto dropping = Make(drop);
  auto defaulting = Make(def);
  ASSERT_TRUE(dropping && defaulting);
  auto snapshot = job_->snapshot();
  ctx_.snapshot = snapshot.get();
  ctx_.retrying = true;
  ctx_.retry_deadline_micros = g_now;  // expired
  auto row = Row(Value(), Value::Int(9));
  EXPECT_EQ(dropping->Apply(row, ctx_), Step::Outcome::kIgnored);
  EXPECT_EQ(defaulting->Apply(row, ctx_), Step::Outcome::kDefaulted);
  EXPECT_EQ(row[4], Value::String("none"));
  EXPECT_TRUE(row[3].is_null());
  // Before the deadline both hold, whatever `then` says.
  ctx_.retry_deadline_micros = g_now + 1;
  EXPECT_EQ(dropping->Apply(row, ctx_), Step::Outcome::kHold);
  EXPECT_EQ(defaulting->Apply(row, ctx_), Step::Outcome::kHold);
}

TEST_F(StepTest, LookupErrorsPointAtTheStep) {
  EXPECT_EQ(Error(Config(StepConfig::Kind::kLookup, "nodim", "job_id")),
            "p.toml:7:8: lookup of unknown dimension 'nodim' (declare [dimension.nodim])");
  EXPECT_EQ(Error(Config(StepConfig::Kind::kLookup, "job", "name")),
            "p.toml:7:8: lookup key is string but the key of dimension job is int64");
  StepConfig no_field = Lookup("default");
  no_field.fields = {"salary"};
  EXPECT_EQ(Error(no_field), "p.toml:7:8: dimension job has no field 'salary'");
  StepConfig stray = Lookup("default");
  stray.defaults["a"] = "1";
  EXPECT_EQ(Error(stray), "p.toml:7:8: default for 'a', which is not one of the lookup fields");
  StepConfig bad_default = Lookup("default");
  bad_default.fields = {"company_id"};
  bad_default.defaults["company_id"] = "'x'";
  EXPECT_EQ(Error(bad_default), "p.toml:7:8: default 'x' is not a int64");
  // A failed lookup may have added fields already (the plan is dropped): start afresh.
  schema_ = InputSchema();
  StepConfig clash = Lookup("default");
  clash.fields = {"title"};
  schema_.Add({"title", Type::kInt64, ""});
  EXPECT_EQ(Error(clash),
            "p.toml:7:8: lookup field title clashes with an existing field of another type");
}

// Every kind of StepConfig has a Step: MakeStep's table misses none.
TEST_F(StepTest, EveryKindIsRegistered) {
  const std::pair<StepConfig::Kind, const char*> kinds[] = {
      {StepConfig::Kind::kLet, "derive"},
      {StepConfig::Kind::kFilter, "filter"},
      {StepConfig::Kind::kIgnoreIf, "ignore_if"},
      {StepConfig::Kind::kDeadLetterIf, "dead_letter_if"},
      {StepConfig::Kind::kLookup, "lookup"},
  };
  for (const auto& [kind, name] : kinds) {
    StepConfig c = Config(kind, "d", kind == StepConfig::Kind::kLet ? "a" : "a > 0");
    if (kind == StepConfig::Kind::kLookup) c = Lookup("default");
    auto step = Make(c);
    ASSERT_NE(step, nullptr) << name;
    EXPECT_EQ(Describe(*step).kind, name);
  }
}

}  // namespace
}  // namespace sluice
