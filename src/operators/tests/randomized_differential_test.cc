// Randomized differential checks of the staged aggregator (against a naive
// oracle), of the columnar CSV decoder (against the row decoder), of steps over columns
// (against the same steps on rows; recruitment's kind and viewlog's) and of a lookup and the
// aggregate over columns (against the lookup step and Aggregator::Add on rows).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/raw_batch.h"
#include "core/time.h"
#include "expr/expr.h"
#include "expr/shape.h"
#include "operators/aggregate_function.h"
#include "operators/aggregator.h"
#include "operators/batch.h"
#include "operators/column_filter.h"
#include "operators/columnar_csv_decoder.h"
#include "operators/columnar_json_decoder.h"
#include "operators/decoder.h"
#include "operators/dimension.h"
#include "operators/step.h"

namespace sluice {
namespace {

struct Oracle {
  int64_t n = 0, n_aa = 0, sum_aa = 0, sum_not_aa = 0;
  std::optional<int64_t> lo, hi;
};

TEST(RandomizedDifferential, StagedAggregatorMatchesNaiveOracle) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"s", Type::kString, ""}, {"x", Type::kInt64, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  Schema window_row({{"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  const int64_t m = kMicrosPerMinute;
  for (int variant = 0; variant < 4; ++variant) {
    AggregateSpec spec;
    spec.time = expr::Compile("t", schema).value();
    spec.window_micros = 10 * m;
    spec.slide_micros = (variant % 2 == 0) ? 5 * m : 0;
    spec.window_start_slot = 3;
    spec.window_end_slot = 4;
    spec.append_mode = true;
    spec.emit_window_start = spec.emit_window_end = false;
    KeySpec k;
    k.name = "s";
    k.expr = expr::Compile("s", schema).value();
    k.type = Type::kString;
    k.slot = 1;
    k.uses_window = false;
    spec.keys.push_back(std::move(k));
    if (variant >= 2) {
      KeySpec w;
      w.name = "wm";
      w.expr = expr::Compile("minute(window_start)", schema).value();
      w.type = w.expr->type();
      w.uses_window = true;
      w.window_expr = expr::Compile("minute(window_start)", window_row).value();
      spec.keys.push_back(std::move(w));
    }
    auto metric = [&](const std::string& name, AggFn fn, const std::string& arg, const std::string& where) {
      MetricSpec mm;
      mm.name = name;
      mm.fn = fn;
      if (!arg.empty()) {
        mm.arg = expr::Compile(arg, schema).value();
        mm.arg_type = mm.arg->type();
      }
      if (!where.empty()) mm.where = expr::Compile(where, schema).value();
      mm.result_type = Type::kInt64;
      spec.metrics.push_back(std::move(mm));
    };
    metric("n", AggFn::kCount, "", "");
    metric("n_aa", AggFn::kCount, "", "s = 'aa'");
    metric("sum_aa", AggFn::kSum, "x", "s = 'aa'");
    metric("sum_not_aa", AggFn::kSum, "x", "s <> 'aa'");
    metric("lo", AggFn::kMin, "x", "");
    metric("hi", AggFn::kMax, "x", "");

    std::mt19937_64 rng(1234 + variant);
    std::vector<std::string> pool = {"aa", "b", "", std::string(43, 'y'), std::string(44, 'y'),
                                     std::string(45, 'y'), std::string(60, 'z') + "1",
                                     std::string(60, 'z') + "2"};
    for (int i = 0; i < 300; ++i) pool.push_back("k" + std::to_string(i) + std::string(rng() % 50, 'q'));
    using GK = std::tuple<int64_t, std::string>;
    std::map<GK, Oracle> want;
    std::map<GK, Oracle> got;
    Aggregator agg(&spec);
    std::string null_key;
    auto absorb = [&](std::vector<DeltaRow>&& rows) {
      for (auto& r : rows) {
        GK key{r.window_start, r.keys[0].string_value()};
        Oracle& o = got[key];
        o.n += r.metrics[0].count;
        o.n_aa += r.metrics[1].count;
        o.sum_aa += r.metrics[2].isum;
        o.sum_not_aa += r.metrics[3].isum;
        std::vector<Value> fin = FinalRow(spec, r);
        const size_t base = spec.keys.size();
        if (variant >= 2) {
          EXPECT_EQ(fin[1], Value::Int(((r.window_start / m) % 60 + 60) % 60));
        }
        if (!fin[base + 4].is_null()) {
          const int64_t lo = fin[base + 4].int_value(), hi = fin[base + 5].int_value();
          o.lo = o.lo ? std::min(*o.lo, lo) : lo;
          o.hi = o.hi ? std::max(*o.hi, hi) : hi;
        }
      }
    };
    int64_t max_t = 0;
    for (int i = 0; i < 20000; ++i) {
      const int64_t t = static_cast<int64_t>(i) * 3000000 + static_cast<int64_t>(rng() % (20 * m));
      max_t = std::max(max_t, t);
      const int r = static_cast<int>(rng() % 100);
      Value s = r < 3 ? Value::Null() : Value::String(pool[rng() % pool.size()]);
      Value x = r >= 3 && r < 8 ? Value::Null() : Value::Int(static_cast<int64_t>(rng() % 1000) - 300);
      std::vector<Value> row = {Value::TimeMicros(t), s, x, Value(), Value()};
      auto res = agg.Add(row, &null_key);
      if (s.is_null()) {
        ASSERT_EQ(res, Aggregator::AddResult::kNullKey);
        continue;
      }
      ASSERT_EQ(res, Aggregator::AddResult::kAdded);
      const int64_t slide = spec.slide();
      const int64_t last = FloorTo(t, slide);
      for (int64_t st = last - (spec.windows_per_record() - 1) * slide; st <= last; st += slide) {
        Oracle& o = want[{st, s.string_value()}];
        ++o.n;
        const bool aa = s.string_value() == "aa";
        if (aa) ++o.n_aa;
        if (!x.is_null()) {
          if (aa) o.sum_aa += x.int_value();
          else o.sum_not_aa += x.int_value();
          o.lo = o.lo ? std::min(*o.lo, x.int_value()) : x.int_value();
          o.hi = o.hi ? std::max(*o.hi, x.int_value()) : x.int_value();
        }
      }
      const int op = static_cast<int>(rng() % 500);
      if (op == 0) absorb(agg.TakeClosed(max_t - 30 * m));
      if (op == 1) (void)agg.Snapshot();
      if (op == 2) (void)agg.size();
      if (op == 3) {
        // Round trip through Merge of a snapshot taken out.
        auto all = agg.TakeAll();
        agg.Merge(std::move(all));
      }
    }
    absorb(agg.TakeAll());
    ASSERT_EQ(got.size(), want.size()) << "variant " << variant;
    for (const auto& [key, o] : want) {
      auto it = got.find(key);
      ASSERT_NE(it, got.end());
      EXPECT_EQ(it->second.n, o.n);
      EXPECT_EQ(it->second.n_aa, o.n_aa);
      EXPECT_EQ(it->second.sum_aa, o.sum_aa);
      EXPECT_EQ(it->second.sum_not_aa, o.sum_not_aa);
      EXPECT_EQ(it->second.lo, o.lo);
      EXPECT_EQ(it->second.hi, o.hi);
    }
  }
}

TEST(RandomizedDifferential, ColumnarCsvMatchesRowDecoder) {
  const Schema schema({Field{"a", Type::kInt64, ""}, Field{"b", Type::kDouble, ""},
                       Field{"c", Type::kString, ""}, Field{"d", Type::kBool, ""},
                       Field{"f", Type::kString, "a"}});
  const std::string alphabet = "01-,\"\"\r\n a.e+;\t\xEF\xBB\xBF";
  std::mt19937_64 rng(99);
  for (int mode = 0; mode < 4; ++mode) {
    DecoderOptions options;
    options.format = DecoderOptions::Format::kCsv;
    options.delimiter = mode & 1 ? ';' : ',';
    const std::string d(1, options.delimiter);
    std::string header = "\xEF\xBB\xBF" "x" + d + " c " + d + "d" + d + "b" + d + "a";
    if (mode & 2) header = "\"a\"" + d + "b" + d + "c" + d + "d";
    auto row_decoder = MakeDecoder(options, schema);
    ASSERT_TRUE(row_decoder.ok());
    ASSERT_TRUE((*row_decoder)->SetHeader(header).ok());
    auto columnar = ColumnarCsvDecoder::Make(options, schema, std::string_view(header));
    ASSERT_TRUE(columnar.ok()) << columnar.status().ToString();
    const int batches = std::getenv("SLUICE_CSV_DIFF_BATCHES") ? std::atoi(std::getenv("SLUICE_CSV_DIFF_BATCHES")) : 300;
    for (int b = 0; b < batches; ++b) {
      RawBatch raw;
      std::vector<std::string> records;
      const int count = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < count; ++i) {
        std::string r;
        const int len = static_cast<int>(rng() % 40);
        if (rng() % 2) {
          // A mostly well-formed record.
          const int fields = (mode & 2 ? 4 : 5) + static_cast<int>(rng() % 3) - 1;
          for (int f = 0; f < fields; ++f) {
            if (f) r += d;
            switch (rng() % 7) {
              case 0: r += std::to_string(static_cast<int64_t>(rng() % 2000) - 1000); break;
              case 1: r += "\"" + std::string(rng() % 3, 'a') + "\"\"" + d + "x\""; break;
              case 2: break;
              case 3: r += "\"\""; break;
              case 4: r += " 12 "; break;
              case 5: r += "1e3"; break;
              case 6: r += "\"7\""; break;
            }
          }
          switch (rng() % 4) {
            case 0: r += "\n"; break;
            case 1: r += "\r\n"; break;
            case 2: r += "\r"; break;
            default: break;
          }
        } else {
          for (int j = 0; j < len; ++j) r += alphabet[rng() % alphabet.size()];
        }
        records.push_back(r);
        raw.Append(r);
      }
      ColumnBatch batch;
      (*columnar)->Decode(raw, &batch);
      std::vector<Value> expected(schema.size()), got(schema.size());
      for (size_t i = 0; i < records.size(); ++i) {
        Status s = (*row_decoder)->Decode(records[i], expected);
        ASSERT_EQ(s.ok(), !batch.failed(i)) << "record [" << records[i] << "]";
        if (!s.ok()) {
          EXPECT_EQ(batch.error(i), s.message());
          continue;
        }
        batch.LoadRow(i, got);
        for (size_t c = 0; c < schema.size(); ++c) {
          EXPECT_TRUE(got[c].type() == expected[c].type() && got[c] == expected[c])
              << "record [" << records[i] << "] column " << c << ": " << got[c].ToString() << " vs "
              << expected[c].ToString();
        }
      }
    }
  }
}

// Staged vs folded one record at a time (Flush() after every Add), with allowed lateness,
// hopping windows and TakeClosed() interleaved: the same results, late decisions and groups.
TEST(RandomizedDifferential, StagedEqualsFlushedWithLateness) {
  Schema schema({{"t", Type::kTimestamp, ""}, {"s", Type::kString, ""}, {"x", Type::kInt64, ""},
                 {"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});
  const int64_t m = kMicrosPerMinute;
  AggregateSpec spec;
  spec.time = expr::Compile("t", schema).value();
  spec.window_micros = 10 * m;
  spec.slide_micros = 2 * m;
  spec.allowed_lateness_micros = 3 * m;
  spec.window_start_slot = 3;
  spec.window_end_slot = 4;
  spec.append_mode = true;
  KeySpec k;
  k.name = "s";
  k.expr = expr::Compile("s", schema).value();
  k.type = Type::kString;
  k.slot = 1;
  k.uses_window = false;
  spec.keys.push_back(std::move(k));
  for (const char* where : {"s = 'a'", "s = 'a'", "s in ('a', 'b')", ""}) {
    MetricSpec mm;
    mm.name = std::string("m") + std::to_string(spec.metrics.size());
    mm.fn = AggFn::kSum;
    mm.arg = expr::Compile("x", schema).value();
    mm.arg_type = Type::kInt64;
    if (*where) mm.where = expr::Compile(where, schema).value();
    spec.metrics.push_back(std::move(mm));
  }
  MetricSpec last;
  last.name = "last_s";
  last.fn = AggFn::kLast;
  last.arg = expr::Compile("s", schema).value();
  last.arg_type = Type::kString;
  last.result_type = Type::kString;
  spec.metrics.push_back(std::move(last));
  Aggregator staged(&spec), flushed(&spec);
  std::mt19937_64 rng(7);
  std::string nk1, nk2;
  int64_t watermark = 0;
  int lates = 0, partly = 0;
  auto same = [&](std::vector<DeltaRow> a, std::vector<DeltaRow> b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(FinalRow(spec, a[i]), FinalRow(spec, b[i]));
      EXPECT_EQ(a[i].window_start, b[i].window_start);
    }
  };
  for (int i = 0; i < 50000; ++i) {
    const int64_t t = static_cast<int64_t>(i) * 1000000 + static_cast<int64_t>(rng() % (25 * m)) - 20 * m;
    const std::string s = rng() % 3 == 0 ? "a" : (rng() % 2 ? "b" : std::string(50, 'c') + std::to_string(rng() % 40));
    std::vector<Value> r1 = {Value::TimeMicros(t), Value::String(s), Value::Int(static_cast<int64_t>(rng() % 100)), Value(), Value()};
    std::vector<Value> r2 = r1;
    int64_t e1 = 0, e2 = 0, l1 = -1, l2 = -1;
    auto a = staged.Add(r1, watermark, &e1, &nk1, &l1);
    auto b = flushed.Add(r2, watermark, &e2, &nk2, &l2);
    flushed.Flush();
    ASSERT_EQ(a, b);
    ASSERT_EQ(l1, l2);
    lates += a == Aggregator::AddResult::kLate;
    partly += a == Aggregator::AddResult::kAdded && l1 > 0;
    if (rng() % 97 == 0) {
      watermark = static_cast<int64_t>(i) * 1000000 - 2 * m;
      same(staged.TakeClosed(watermark - spec.allowed_lateness_micros), flushed.TakeClosed(watermark - spec.allowed_lateness_micros));
    }
  }
  same(staged.TakeAll(), flushed.TakeAll());
  EXPECT_GT(lates, 100);
  EXPECT_GT(partly, 100);
  std::printf("late %d, partly late %d\n", lates, partly);
}

// A recruitment-like run of leading steps (ignore_if, a derived event time from a TimeUUID
// with a timestamp fallback, dead_letter_if on it, coalesce() lets over declared fields and
// over a derived one) over columns (ApplyColumnSteps) against the steps MakeStep builds, run on
// the row decoder's rows: the same records ignored or dead-lettered (at the same step, with the
// same reason) and the same values for the others, on random messy records.
TEST(RandomizedDifferential, ColumnStepsMatchRowSteps) {
  const Schema input({Field{"kind", Type::kString, ""}, Field{"create_time", Type::kString, ""},
                      Field{"ts", Type::kString, ""}, Field{"bid", Type::kInt64, ""},
                      Field{"group_id", Type::kInt64, ""}});
  auto config = [](StepConfig::Kind kind, std::string target, std::string text, std::string reason) {
    StepConfig c;
    c.kind = kind;
    c.target = std::move(target);
    c.expr = std::move(text);
    c.reason = std::move(reason);
    return c;
  };
  const std::vector<StepConfig> configs = {
      config(StepConfig::Kind::kIgnoreIf, "", "kind is null or kind not in ('click', 'view')", "not counted"),
      config(StepConfig::Kind::kLet, "event_time", "coalesce(timeuuid_time(create_time), parse_time(ts))", ""),
      config(StepConfig::Kind::kDeadLetterIf, "", "event_time is null", "no event time"),
      config(StepConfig::Kind::kLet, "bid", "coalesce(bid, 0)", ""),
      config(StepConfig::Kind::kLet, "fallback", "coalesce(parse_time(ts), event_time)", ""),
      config(StepConfig::Kind::kLet, "group_id", "coalesce(group_id, bid)", ""),
      config(StepConfig::Kind::kFilter, "", "kind = 'click' or create_time is not null", "dropped"),
  };
  Schema schema = input;
  DimensionMap dimensions;
  std::vector<std::unique_ptr<Step>> steps;
  for (const StepConfig& c : configs) {
    auto made = MakeStep(c, &schema, dimensions);
    ASSERT_TRUE(made.ok()) << c.expr << ": " << made.status().ToString();
    steps.push_back(std::move(made).value());
  }
  // The same steps over the columns, compiled against the whole working row.
  std::vector<Type> columns(schema.size(), Type::kNull);
  for (size_t c = 0; c < input.size(); ++c) columns[c] = input.field(c).type;
  std::vector<ColumnStep> column_steps;
  std::vector<std::pair<size_t, Type>> derived;
  for (size_t k = 0; k < configs.size(); ++k) {
    auto compiled = expr::Compile(configs[k].expr, schema);
    ASSERT_TRUE(compiled.ok()) << configs[k].expr;
    ColumnStep s;
    s.step = k;
    s.reason = configs[k].reason;
    switch (configs[k].kind) {
      case StepConfig::Kind::kLet: {
        s.kind = ColumnStep::Kind::kLet;
        s.slot = *schema.IndexOf(configs[k].target);
        s.value = ColumnValue::Make(**compiled, columns);
        ASSERT_NE(s.value, nullptr) << configs[k].expr;
        if (s.slot >= input.size() && columns[s.slot] == Type::kNull) derived.emplace_back(s.slot, s.value->type());
        columns[s.slot] = s.value->type();
        break;
      }
      case StepConfig::Kind::kIgnoreIf: s.kind = ColumnStep::Kind::kIgnoreIf; break;
      case StepConfig::Kind::kFilter: s.kind = ColumnStep::Kind::kFilter; break;
      case StepConfig::Kind::kDeadLetterIf: s.kind = ColumnStep::Kind::kDeadLetterIf; break;
      case StepConfig::Kind::kLookup: FAIL();
    }
    if (!s.value) {
      s.condition = ColumnCondition::Make(**compiled, columns);
      ASSERT_NE(s.condition, nullptr) << configs[k].expr;
    }
    column_steps.push_back(std::move(s));
  }
  ASSERT_EQ(derived.size(), 2u);

  DecoderOptions options;
  options.format = DecoderOptions::Format::kNdjson;
  auto row_decoder = MakeDecoder(options, input);
  ASSERT_TRUE(row_decoder.ok());
  auto columnar = ColumnarJsonDecoder::Make(input);
  ASSERT_TRUE(columnar.ok());
  std::mt19937_64 rng(1919);
  auto timeuuid = [&](int64_t unix_micros, int version) {
    const uint64_t t = static_cast<uint64_t>(unix_micros) * 10 + 0x01B21DD213814000ULL;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx",
                  static_cast<unsigned long long>(t & 0xffffffffULL),
                  static_cast<unsigned long long>((t >> 32) & 0xffff),
                  static_cast<unsigned long long>(((t >> 48) & 0x0fff) | (static_cast<uint64_t>(version) << 12)),
                  static_cast<unsigned long long>(0x8000 | (rng() & 0x3fff)),
                  static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
    return std::string(buf);
  };
  auto pick = [&](std::vector<std::string> options_list) { return options_list[rng() % options_list.size()]; };
  size_t ignored = 0, dead = 0, kept = 0, from_uuid = 0, from_ts = 0;
  ColumnBatch batch;
  batch.SetDerived(derived);
  for (int b = 0; b < 200; ++b) {
    RawBatch raw;
    std::vector<std::string> records;
    const int count = 1 + static_cast<int>(rng() % 64);
    for (int i = 0; i < count; ++i) {
      const int64_t micros = 1767225600000000LL + static_cast<int64_t>(rng() % 86400000000ULL);
      std::string r = "{";
      auto add = [&](const std::string& key, const std::string& value) {
        if (r.size() > 1) r += ",";
        r += "\"" + key + "\":" + value;
      };
      if (rng() % 8) add("kind", pick({"\"click\"", "\"view\"", "\"other\"", "null", "\"Click\"", "3"}));
      switch (rng() % 6) {
        case 0: break;
        case 1: add("create_time", "null"); break;
        case 2: add("create_time", "\"" + timeuuid(micros, 4) + "\""); break;
        case 3: add("create_time", pick({"\"not a uuid\"", "\"\"", "\"0000\""})); break;
        default: add("create_time", "\"" + timeuuid(micros, 1) + "\""); break;
      }
      switch (rng() % 5) {
        case 0: break;
        case 1: add("ts", pick({"null", "\"corrupt\"", "\"2026-13-01 00:00:00\"", "\"\"", "12"})); break;
        default:
          add("ts", pick({"\"2026-01-02 03:04:05\"", "\"2026-01-02T03:04:05Z\"",
                          "\"2026-01-02 03:04:05.250\"", "\"1767225600\""}));
          break;
      }
      if (rng() % 3) add("bid", pick({"1", "0", "-5", "null", "\"x\"", "9223372036854775807", "2.5"}));
      if (rng() % 3) add("group_id", pick({"7", "null", "-1"}));
      r += "}";
      records.push_back(r);
      raw.Append(r);
    }
    (*columnar)->Decode(raw, &batch);
    ApplyColumnSteps(column_steps, &batch);
    std::vector<uint32_t> expected_selection;
    std::vector<Value> row(schema.size()), got(schema.size());
    StepContext ctx;
    for (size_t i = 0; i < records.size(); ++i) {
      const Status s = (*row_decoder)->Decode(records[i], std::span<Value>(row).first(input.size()));
      ASSERT_EQ(s.ok(), !batch.failed(i)) << records[i];
      if (!s.ok()) continue;
      int32_t stopped = -1;
      std::string reason;
      for (size_t k = 0; k < steps.size(); ++k) {
        const Step::Outcome o = steps[k]->Apply(row, ctx);
        if (o == Step::Outcome::kContinue) continue;
        stopped = static_cast<int32_t>(k);
        reason = o == Step::Outcome::kDeadLetter ? ctx.reason : "ignored";
        break;
      }
      ASSERT_EQ(batch.dropped_at(i), stopped) << records[i];
      if (stopped >= 0) {
        const ColumnStep& cs = column_steps[static_cast<size_t>(stopped)];
        EXPECT_EQ(cs.kind == ColumnStep::Kind::kDeadLetterIf ? cs.reason : "ignored", reason);
        (reason == "ignored" ? ignored : dead) += 1;
        continue;
      }
      ++kept;
      expected_selection.push_back(static_cast<uint32_t>(i));
      batch.LoadRow(i, got);
      for (size_t c = 0; c < schema.size(); ++c) {
        EXPECT_TRUE(got[c].type() == row[c].type() && got[c] == row[c])
            << records[i] << " field " << schema.field(c).name << ": " << got[c].ToString()
            << " vs " << row[c].ToString();
      }
      const Value& ct = row[*input.IndexOf("create_time")];
      (!ct.is_null() && ParseTimeUuid(ct.string_value()) ? from_uuid : from_ts) += 1;
    }
    EXPECT_EQ(batch.selection(), expected_selection);
  }
  // Every outcome occurs, so a wrong one would show.
  EXPECT_GT(ignored, 100u);
  EXPECT_GT(dead, 100u);
  EXPECT_GT(kept, 100u);
  EXPECT_GT(from_uuid, 100u);
  EXPECT_GT(from_ts, 100u);
}


// viewlog's kind of prefix over columns: trim(x) = '' and `is null` conditions, parse_time(x,
// 'iso') into timestamp columns, seconds_between() into a double column and comparisons of the
// derived values with constants, against the same steps on rows, on random messy NDJSON:
// absent, null and wrong-typed fields, empty and whitespace-only strings (every byte trim()
// strips, and Unicode spaces it does not), ISO timestamps with offsets, fractions, leap days,
// out-of-range parts, far years, and ends before starts.
TEST(RandomizedDifferential, ViewlogStepsMatchRowSteps) {
  const Schema input({Field{"view_id", Type::kString, ""}, Field{"start_timestamp", Type::kString, ""},
                      Field{"end_timestamp", Type::kString, ""}, Field{"campaign_id", Type::kInt64, ""}});
  auto config = [](StepConfig::Kind kind, std::string target, std::string text, std::string reason) {
    StepConfig c;
    c.kind = kind;
    c.target = std::move(target);
    c.expr = std::move(text);
    c.reason = std::move(reason);
    return c;
  };
  using K = StepConfig::Kind;
  const std::vector<StepConfig> configs = {
      config(K::kDeadLetterIf, "", "view_id is null or trim(view_id) = ''", "missing view_id"),
      config(K::kDeadLetterIf, "", "start_timestamp is null or trim(start_timestamp) = ''", "missing start"),
      config(K::kIgnoreIf, "", "trim(view_id) in ('skip', 'x y')", "ignored"),
      config(K::kDeadLetterIf, "", "end_timestamp is null or trim(end_timestamp) = ''", "missing end"),
      config(K::kDeadLetterIf, "", "campaign_id is null", "missing campaign_id"),
      config(K::kLet, "start_time", "parse_time(start_timestamp, 'iso')", ""),
      config(K::kDeadLetterIf, "", "start_time is null", "unparseable start"),
      config(K::kLet, "end_time", "parse_time(end_timestamp, 'iso')", ""),
      config(K::kDeadLetterIf, "", "end_time is null", "unparseable end"),
      config(K::kLet, "us_time", "parse_time(end_timestamp, 'us')", ""),
      config(K::kLet, "view_duration", "seconds_between(start_time, end_time)", ""),
      config(K::kDeadLetterIf, "", "view_duration < 0", "end before start"),
      config(K::kDeadLetterIf, "", "view_duration >= 86400.5 or campaign_id > 900", "too long"),
      config(K::kIgnoreIf, "", "start_time < '2000-01-01' or 7 = campaign_id", "ignored"),
      config(K::kFilter, "", "view_duration <> 3 and trim(view_id) <> 'drop'", "dropped"),
  };
  Schema schema = input;
  DimensionMap dimensions;
  std::vector<std::unique_ptr<Step>> steps;
  for (const StepConfig& c : configs) {
    auto made = MakeStep(c, &schema, dimensions);
    ASSERT_TRUE(made.ok()) << c.expr << ": " << made.status().ToString();
    steps.push_back(std::move(made).value());
  }
  std::vector<Type> columns(schema.size(), Type::kNull);
  for (size_t c = 0; c < input.size(); ++c) columns[c] = input.field(c).type;
  std::vector<ColumnStep> column_steps;
  std::vector<std::pair<size_t, Type>> derived;
  for (size_t k = 0; k < configs.size(); ++k) {
    auto compiled = expr::Compile(configs[k].expr, schema);
    ASSERT_TRUE(compiled.ok()) << configs[k].expr;
    ColumnStep s;
    s.step = k;
    s.reason = configs[k].reason;
    switch (configs[k].kind) {
      case K::kLet: {
        s.kind = ColumnStep::Kind::kLet;
        s.slot = *schema.IndexOf(configs[k].target);
        s.value = ColumnValue::Make(**compiled, columns);
        ASSERT_NE(s.value, nullptr) << configs[k].expr;
        EXPECT_EQ(s.value->type(), (*compiled)->type()) << configs[k].expr;
        if (s.slot >= input.size() && columns[s.slot] == Type::kNull) derived.emplace_back(s.slot, s.value->type());
        columns[s.slot] = s.value->type();
        break;
      }
      case K::kIgnoreIf: s.kind = ColumnStep::Kind::kIgnoreIf; break;
      case K::kFilter: s.kind = ColumnStep::Kind::kFilter; break;
      case K::kDeadLetterIf: s.kind = ColumnStep::Kind::kDeadLetterIf; break;
      case K::kLookup: FAIL();
    }
    if (!s.value) {
      s.condition = ColumnCondition::Make(**compiled, columns);
      ASSERT_NE(s.condition, nullptr) << configs[k].expr;
    }
    column_steps.push_back(std::move(s));
  }
  ASSERT_EQ(derived.size(), 4u);
  ASSERT_EQ(columns[*schema.IndexOf("view_duration")], Type::kDouble);

  DecoderOptions options;
  options.format = DecoderOptions::Format::kNdjson;
  auto row_decoder = MakeDecoder(options, input);
  ASSERT_TRUE(row_decoder.ok());
  auto columnar = ColumnarJsonDecoder::Make(input);
  ASSERT_TRUE(columnar.ok());
  std::mt19937_64 rng(2019);
  auto pick = [&](const std::vector<std::string>& list) { return list[rng() % list.size()]; };
  // JSON string bodies: blank ones (each byte trim() strips; Unicode spaces it keeps), padded
  // ones, ordinary ones.
  const std::vector<std::string> blanks = {
      "", " ", "  ", "\\t", "\\n", "\\r\\n", "\\f", "\\u000b", " \\t\\n\\r\\f\\u000b ",
      "\\u00a0", " \\u00a0 ", "\\u2003", "\\u3000", "\\u0000", "\\u0085", "\\u200b"};
  auto text = [&](const std::string& body) {
    switch (rng() % 4) {
      case 0: return pick(blanks) + body;
      case 1: return body + pick(blanks);
      default: return body;
    }
  };
  auto iso = [&](bool far) {
    char buf[96];
    const int year = far ? static_cast<int>(rng() % 10000) : 2023 + static_cast<int>(rng() % 3);
    const int month = 1 + static_cast<int>(rng() % (far ? 14 : 12));
    const int day = 1 + static_cast<int>(rng() % (far ? 32 : 28));
    const int hour = static_cast<int>(rng() % (far ? 26 : 24));
    const int minute = static_cast<int>(rng() % (far ? 61 : 60));
    const int second = static_cast<int>(rng() % (far ? 62 : 60));
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d%c%02d:%02d:%02d", year, month, day,
                  rng() % 2 ? 'T' : ' ', hour, minute, second);
    std::string out = buf;
    switch (rng() % 8) {
      case 0: out += "." + std::to_string(rng() % 1000); break;
      case 1: out += "." + std::to_string(rng() % 1000000000); break;
      case 2: out += "Z"; break;
      case 3: out += pick({"+02:00", "-05:30", "+14:00", "-12:00", "+0100", "+25:00", "+02", "z"}); break;
      case 4: out += ".5Z"; break;
      default: break;
    }
    return out;
  };
  auto timestamp = [&]() -> std::string {
    switch (rng() % 12) {
      case 0: return "null";
      case 1: return pick({"12", "true", "[1]", "{}", "1.5"});
      case 2: return "\"" + pick(blanks) + "\"";
      case 3:
        return "\"" + pick({"2024-02-29T00:00:00", "2023-02-29 00:00:00", "2000-02-29T12:00:00Z",
                            "1900-02-29T00:00:00", "2024-12-31T23:59:60", "2024-01-01T24:00:00",
                            "0000-01-01T00:00:00", "9999-12-31T23:59:59.999999", "2024-01-01",
                            "2024-01-01T", "2024-1-1T00:00:00", "20240101T000000", "1/2/2024 03:04",
                            "1/2/2024 03:04:05", "2024-01-02T03:04", "2024-01-02T03:04:05+00:00",
                            "2024-01-02t03:04:05", "yesterday", "2024-01-02T03:04:05.Z",
                            "2024-01-02T03:04:05.1234567"}) + "\"";
      case 4: return "\"" + text(iso(true)) + "\"";
      default: return "\"" + text(iso(false)) + "\"";
    }
  };
  size_t ignored = 0, dead = 0, kept = 0;
  std::map<std::string, size_t> reasons;
  ColumnBatch batch;
  batch.SetDerived(derived);
  for (int b = 0; b < 300; ++b) {
    RawBatch raw;
    std::vector<std::string> records;
    const int count = 1 + static_cast<int>(rng() % 64);
    for (int i = 0; i < count; ++i) {
      std::string r = "{";
      auto add = [&](const std::string& key, const std::string& value) {
        if (r.size() > 1) r += ",";
        r += "\"" + key + "\":" + value;
      };
      if (rng() % 10) {
        switch (rng() % 6) {
          case 0: add("view_id", pick({"null", "7", "\"" + pick(blanks) + "\""})); break;
          case 1: add("view_id", "\"" + text(pick({"skip", "x y", "drop", "caf\\u00e9"})) + "\""); break;
          default: add("view_id", "\"" + text("v" + std::to_string(rng() % 1000)) + "\""); break;
        }
      }
      // End near the start (before it too), or unrelated.
      std::string start = timestamp(), end;
      if (start.size() > 20 && rng() % 3 && start.find("2024") == std::string::npos) {
        end = start;
      } else {
        end = timestamp();
      }
      if (rng() % 12) add("start_timestamp", start);
      if (rng() % 12) add("end_timestamp", end);
      if (rng() % 8) add("campaign_id", pick({"1", "7", "950", "null", "\"5\"", "2.5", "-3", "\"\""}));
      r += "}";
      records.push_back(r);
      raw.Append(r);
    }
    (*columnar)->Decode(raw, &batch);
    ApplyColumnSteps(column_steps, &batch);
    std::vector<uint32_t> expected_selection;
    std::vector<Value> row(schema.size()), got(schema.size());
    StepContext ctx;
    for (size_t i = 0; i < records.size(); ++i) {
      const Status s = (*row_decoder)->Decode(records[i], std::span<Value>(row).first(input.size()));
      ASSERT_EQ(s.ok(), !batch.failed(i)) << records[i];
      if (!s.ok()) continue;
      for (size_t c = input.size(); c < row.size(); ++c) row[c] = Value();
      int32_t stopped = -1;
      std::string reason;
      for (size_t k = 0; k < steps.size(); ++k) {
        const Step::Outcome o = steps[k]->Apply(row, ctx);
        if (o == Step::Outcome::kContinue) continue;
        stopped = static_cast<int32_t>(k);
        reason = o == Step::Outcome::kDeadLetter ? ctx.reason : "ignored";
        break;
      }
      ASSERT_EQ(batch.dropped_at(i), stopped) << records[i];
      if (stopped >= 0) {
        const ColumnStep& cs = column_steps[static_cast<size_t>(stopped)];
        EXPECT_EQ(cs.kind == ColumnStep::Kind::kDeadLetterIf ? cs.reason : "ignored", reason);
        (reason == "ignored" ? ignored : dead) += 1;
        reasons[reason] += 1;
        continue;
      }
      ++kept;
      expected_selection.push_back(static_cast<uint32_t>(i));
      batch.LoadRow(i, got);
      for (size_t c = 0; c < schema.size(); ++c) {
        EXPECT_TRUE(got[c].type() == row[c].type() && got[c] == row[c])
            << records[i] << " field " << schema.field(c).name << ": " << got[c].ToString()
            << " vs " << row[c].ToString();
      }
    }
    EXPECT_EQ(batch.selection(), expected_selection);
  }
  // Every outcome occurs, so a wrong one would show.
  EXPECT_GT(kept, 200u);
  EXPECT_GT(ignored, 20u);
  for (const char* r : {"missing view_id", "missing start", "missing end", "missing campaign_id",
                        "unparseable start", "unparseable end", "end before start", "too long"}) {
    EXPECT_GT(reasons[r], 10u) << r;
  }
  (void)dead;
}

// A lookup over columns (ColumnStep::kLookup) and the aggregate reading its time, keys,
// conditions and arguments from the columns (Aggregator::AddColumns) against the lookup step
// MakeStep builds and Aggregator::Add on the row decoder's rows, as the worker runs them (a
// record whose key the lookup misses runs the lookup step and Add on its row): on random
// messy NDJSON records (absent, null and wrong-typed fields, unicode and empty keys, -0.0 and
// 0.0, long keys), every aggregate function of the catalog with and without `where`, tumbling
// and hopping windows, window keys, lateness: the same result per record (time, null key
// name, late windows) and the same groups, in the same order, with the same states.
TEST(RandomizedDifferential, AggregateOverColumnsMatchesRows) {
  const Schema input({Field{"k", Type::kString, ""}, Field{"n", Type::kInt64, ""},
                      Field{"d", Type::kDouble, ""}, Field{"t", Type::kTimestamp, ""},
                      Field{"ad", Type::kString, ""}});
  auto table = std::make_shared<DimensionTable>(
      "ads", Schema({{"ad", Type::kString, ""}, {"campaign", Type::kString, ""}, {"weight", Type::kInt64, ""}}), 0);
  table->Put({Value::String("a1"), Value::String("camp-1"), Value::Int(3)});
  table->Put({Value::String("a2"), Value::String("camp-2"), Value::Null()});
  table->Put({Value::String("ключ"), Value::String("кампания"), Value::Int(-7)});
  table->Put({Value::String(std::string(50, 'x')), Value::Null(), Value::Int(0)});
  table->Put({Value::String(""), Value::String("empty"), Value::Int(1)});
  DimensionConfig dc;
  dc.name = "ads";
  dc.key = "ad";
  DimensionMap dimensions;
  dimensions["ads"] = std::make_shared<Dimension>(dc, DimensionRefresh{}, table);
  const int64_t m = kMicrosPerMinute;
  for (int variant = 0; variant < 7; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    // The working row: the input, _src (no column: a constant argument), the lookup's fields,
    // then the window slots.
    Schema schema = input;
    const size_t src_slot = schema.Add({"_src", Type::kString, ""});
    StepConfig lookup;
    lookup.kind = StepConfig::Kind::kLookup;
    lookup.target = "ads";
    lookup.expr = "ad";
    lookup.fields = {"campaign", "weight"};
    lookup.on_missing = variant % 3 == 0 ? "dead_letter" : (variant % 3 == 1 ? "default" : "drop");
    if (lookup.on_missing == "default") lookup.defaults = {{"campaign", "'none'"}};
    auto step = MakeStep(lookup, &schema, dimensions);
    ASSERT_TRUE(step.ok()) << step.status().ToString();
    const size_t ws = schema.Add({"window_start", Type::kTimestamp, ""});
    const size_t we = schema.Add({"window_end", Type::kTimestamp, ""});
    Schema window_row({{"window_start", Type::kTimestamp, ""}, {"window_end", Type::kTimestamp, ""}});

    AggregateSpec spec;
    spec.time = expr::Compile("t", schema).value();
    spec.window_micros = 10 * m;
    spec.slide_micros = variant % 2 == 1 ? 5 * m : 0;
    spec.window_start_slot = ws;
    spec.window_end_slot = we;
    if (variant >= 4) spec.allowed_lateness_micros = 2 * m;
    auto key = [&](const std::string& name, const std::string& text) {
      KeySpec k;
      k.name = name;
      k.expr = expr::Compile(text, schema).value();
      k.type = k.expr->type();
      const expr::Shape shape = expr::Describe(*k.expr);
      if (shape.kind == expr::Shape::Kind::kField) {
        k.slot = static_cast<int>(shape.slot);
        k.uses_window = false;
      } else {
        k.window_expr = expr::Compile(text, window_row).value();
        // As the planner marks it: a key that reads neither the record nor the window (a
        // constant) has one value for all of a record's windows.
        k.uses_window = text.find("window_") != std::string::npos;
      }
      spec.keys.push_back(std::move(k));
    };
    switch (variant) {
      case 0: key("k", "k"); break;
      case 1: key("k", "k"); key("wm", "minute(window_start)"); key("n", "n"); break;
      case 2: key("campaign", "campaign"); key("wd", "date(window_start)"); break;
      case 3: key("d", "d"); break;
      case 4: key("weight", "weight"); key("k", "k"); break;
      case 5: key("wm", "minute(window_start)"); key("campaign", "campaign"); break;
      // A constant key that is always NULL, before a column key: the row path names it first.
      default: key("kc", "if(false, 'x', null)"); key("k", "k"); break;
    }
    auto metric = [&](AggFn fn, const std::string& arg, const std::string& where) {
      MetricSpec mm;
      mm.name = "m" + std::to_string(spec.metrics.size());
      mm.fn = fn;
      if (!arg.empty()) {
        mm.arg = expr::Compile(arg, schema).value();
        mm.arg_type = mm.arg->type();
      }
      if (!where.empty()) mm.where = expr::Compile(where, schema).value();
      mm.result_type = AggregateFunctionOf(fn).result_type(mm.arg_type);
      spec.metrics.push_back(std::move(mm));
    };
    metric(AggFn::kCount, "", "");
    metric(AggFn::kCount, "n", "");
    metric(AggFn::kSum, "n", "k = 'aa'");
    metric(AggFn::kSum, "d", "");
    metric(AggFn::kAvg, "d", "k = 'aa'");  // the same condition: evaluated once
    metric(AggFn::kAvg, "n", "k in ('b', 'ключ') or n is null");
    metric(AggFn::kMin, "k", "");
    metric(AggFn::kMax, "n", "not (k = 'b')");
    metric(AggFn::kMin, "d", "");
    metric(AggFn::kMax, "t", "");
    metric(AggFn::kLast, "k", "");
    metric(AggFn::kLast, "campaign", "");
    metric(AggFn::kLast, "weight", "k <> 'aa'");
    metric(AggFn::kLast, "_src", "");
    metric(AggFn::kCount, "", "k not in ('aa', '😀')");
    for (const AggregateFunction& f : AllAggregateFunctions()) {
      EXPECT_TRUE(std::any_of(spec.metrics.begin(), spec.metrics.end(),
                              [&](const MetricSpec& mm) { return mm.fn == f.id; }))
          << f.name << " is not tested";
    }

    // Where each input is in the columns (as runtime/columnar.cc's AggregateColumnsOf says).
    std::vector<Type> columns(schema.size(), Type::kNull);
    for (size_t c = 0; c < input.size(); ++c) columns[c] = input.field(c).type;
    columns[*schema.IndexOf("campaign")] = Type::kString;
    columns[*schema.IndexOf("weight")] = Type::kInt64;
    AggregateColumns in;
    in.time = *schema.IndexOf("t");
    for (const KeySpec& k : spec.keys) in.keys.push_back(k.window_expr ? -1 : k.slot);
    const Value src = Value::String("file");
    for (const MetricSpec& mm : spec.metrics) {
      in.where.push_back(mm.where ? ColumnCondition::Make(*mm.where, columns) : nullptr);
      if (mm.where) { ASSERT_NE(in.where.back(), nullptr); }
      int arg = -1;
      if (mm.arg) arg = static_cast<int>(expr::Describe(*mm.arg).slot);
      in.constants.push_back(arg == static_cast<int>(src_slot) ? src : Value());
      in.args.push_back(arg == static_cast<int>(src_slot) ? -1 : arg);
    }
    ColumnStep column_lookup;
    column_lookup.step = 0;
    column_lookup.kind = ColumnStep::Kind::kLookup;
    column_lookup.slot = *schema.IndexOf("ad");
    column_lookup.fields = {{*schema.IndexOf("campaign"), 1}, {*schema.IndexOf("weight"), 2}};
    std::vector<ColumnStep> column_steps;
    column_steps.push_back(std::move(column_lookup));
    const std::vector<std::shared_ptr<const DimensionTable>> snapshots = {table};

    DecoderOptions options;
    options.format = DecoderOptions::Format::kNdjson;
    auto row_decoder = MakeDecoder(options, input);
    ASSERT_TRUE(row_decoder.ok());
    auto columnar = ColumnarJsonDecoder::Make(input);
    ASSERT_TRUE(columnar.ok());
    ColumnBatch batch;
    batch.SetDerived({{*schema.IndexOf("campaign"), Type::kString}, {*schema.IndexOf("weight"), Type::kInt64}});
    Aggregator by_row(&spec), by_columns(&spec);
    std::mt19937_64 rng(4242 + variant);
    auto pick = [&](std::vector<std::string> list) { return list[rng() % list.size()]; };
    std::map<std::string, int> outcomes;
    auto same = [&](std::vector<DeltaRow> a, std::vector<DeltaRow> b) {
      ASSERT_EQ(a.size(), b.size());
      for (size_t g = 0; g < a.size(); ++g) {
        ASSERT_EQ(a[g].window_start, b[g].window_start);
        ASSERT_EQ(a[g].keys.size(), b[g].keys.size());
        for (size_t i = 0; i < a[g].keys.size(); ++i) {
          ASSERT_TRUE(a[g].keys[i].type() == b[g].keys[i].type() && a[g].keys[i] == b[g].keys[i])
              << a[g].keys[i].ToString() << " vs " << b[g].keys[i].ToString();
        }
        for (size_t i = 0; i < a[g].metrics.size(); ++i) {
          const MetricState &x = a[g].metrics[i], &y = b[g].metrics[i];
          EXPECT_EQ(x.count, y.count) << spec.metrics[i].name;
          EXPECT_EQ(x.isum, y.isum) << spec.metrics[i].name;
          EXPECT_EQ(std::memcmp(&x.dsum, &y.dsum, sizeof x.dsum), 0) << spec.metrics[i].name;
          EXPECT_TRUE(x.value.type() == y.value.type() && x.value.ToString() == y.value.ToString())
              << spec.metrics[i].name << ": " << x.value.ToString() << " vs " << y.value.ToString();
          EXPECT_EQ(x.at, y.at) << spec.metrics[i].name;
        }
      }
      outcomes["groups"] += static_cast<int>(a.size());
    };
    int64_t late_before = Aggregator::kNoLateness;
    const int64_t base = 1767225600000LL;  // 2026-01-01, milliseconds
    for (int b = 0; b < 150; ++b) {
      RawBatch raw;
      std::vector<std::string> records;
      const int count = 1 + static_cast<int>(rng() % 80);
      for (int i = 0; i < count; ++i) {
        std::string r = "{";
        auto add = [&](const std::string& name, const std::string& value) {
          if (r.size() > 1) r += ",";
          r += "\"" + name + "\":" + value;
        };
        if (rng() % 10) {
          add("k", pick({"\"aa\"", "\"b\"", "\"\"", "null", "\"ключ\"", "\"日本語\"", "\"😀\"", "\"e\\u0301\"",
                         "\"a\\\"q\"", "3", "\"" + std::string(45 + rng() % 20, 'y') + "\"", "\"aa\"", "\"b\""}));
        }
        if (rng() % 6) add("n", pick({"1", "0", "-5", "null", "\"x\"", "9223372036854775807", "2.5", "7", "7", "42"}));
        if (rng() % 6) add("d", pick({"0.0", "-0.0", "1.5", "-2.25", "null", "1e300", "3", "true", "0.1", "0.1"}));
        switch (rng() % 10) {
          case 0: break;
          case 1: add("t", pick({"null", "\"2026-01-01T00:00:00Z\"", "\"soon\"", "1.5e3"})); break;
          default:
            add("t", std::to_string(base + b * 60000 + static_cast<int64_t>(rng() % (30 * 60000)) - 15 * 60000));
            break;
        }
        if (rng() % 8) add("ad", pick({"\"a1\"", "\"a2\"", "\"ключ\"", "\"" + std::string(50, 'x') + "\"", "\"\"",
                                      "\"missing\"", "null", "5", "\"a1\""}));
        r += "}";
        records.push_back(r);
        raw.Append(r);
      }
      (*columnar)->Decode(raw, &batch);
      ApplyColumnSteps(column_steps, &batch, snapshots);
      std::vector<Value> row(schema.size()), col_row(schema.size());
      StepContext ctx;
      ctx.snapshot = table.get();
      for (size_t i = 0; i < records.size(); ++i) {
        const Status s = (*row_decoder)->Decode(records[i], std::span<Value>(row).first(input.size()));
        ASSERT_EQ(s.ok(), !batch.failed(i)) << records[i];
        if (!s.ok()) {
          EXPECT_EQ(batch.error(i), s.message()) << records[i];  // the dead letter's reason
          ++outcomes["decode error"];
          continue;
        }
        row[src_slot] = src;
        const Step::Outcome o = (*step)->Apply(row, ctx);
        const std::string reason = ctx.reason;
        // The columnar side, as the worker runs it.
        Aggregator::AddResult got = Aggregator::AddResult::kAdded;
        int64_t got_time = -1, got_late = -1;
        std::string got_key;
        bool got_row = false;
        if (batch.dropped_at(i) == 0) {
          batch.LoadRow(i, col_row);
          col_row[src_slot] = src;
          ctx.reason.clear();
          const Step::Outcome co = (*step)->Apply(col_row, ctx);
          ASSERT_EQ(co, o) << records[i];
          ASSERT_NE(o, Step::Outcome::kContinue) << records[i];
          EXPECT_EQ(ctx.reason, reason);
          got_row = co == Step::Outcome::kDefaulted;
          if (got_row) got = by_columns.Add(col_row, late_before, &got_time, &got_key, &got_late);
        } else {
          ASSERT_EQ(batch.dropped_at(i), -1);
          ASSERT_EQ(o, Step::Outcome::kContinue) << records[i];
          got = by_columns.AddColumns(batch, i, in, late_before, &got_time, &got_key, &got_late);
        }
        if (o == Step::Outcome::kIgnored || o == Step::Outcome::kDeadLetter) {
          ++outcomes["lookup dropped"];
          continue;
        }
        ++outcomes[got_row ? "lookup defaulted" : "over columns"];
        int64_t want_time = -1, want_late = -1;
        std::string want_key;
        const Aggregator::AddResult want = by_row.Add(row, late_before, &want_time, &want_key, &want_late);
        ASSERT_EQ(got, want) << records[i];
        EXPECT_EQ(got_key, want_key) << records[i];
        if (want != Aggregator::AddResult::kNoTime) { EXPECT_EQ(got_time, want_time) << records[i]; }
        if (want == Aggregator::AddResult::kAdded) { EXPECT_EQ(got_late, want_late) << records[i]; }
        ++outcomes[want == Aggregator::AddResult::kAdded     ? "added"
                   : want == Aggregator::AddResult::kNullKey ? "null key"
                   : want == Aggregator::AddResult::kNoTime  ? "no time"
                                                             : "late"];
      }
      if (spec.allowed_lateness_micros >= 0 && rng() % 4 == 0) {
        late_before = (base + b * 60000) * 1000 - 12 * m;
        same(by_row.TakeClosed(late_before), by_columns.TakeClosed(late_before));
      }
      if (rng() % 10 == 0) same(by_row.Snapshot(), by_columns.Snapshot());
      if (rng() % 25 == 0) same(by_row.TakeAll(), by_columns.TakeAll());
    }
    same(by_row.TakeAll(), by_columns.TakeAll());
    for (const auto& [what, n] : outcomes) std::printf("variant %d: %s %d\n", variant, what.c_str(), n);
    // Every path and outcome occurs, so a wrong one would show.
    EXPECT_GT(outcomes["over columns"], 1000);
    if (variant == 6) {
      // The constant NULL key refuses every record that reaches the keys (named first).
      EXPECT_EQ(outcomes["added"], 0);
      EXPECT_GT(outcomes["null key"], 1000);
      continue;
    }
    EXPECT_GT(outcomes["added"], 1000);
    EXPECT_GT(outcomes["null key"], 50);
    EXPECT_GT(outcomes["no time"], 50);
    EXPECT_GT(outcomes["decode error"], 50);
    EXPECT_GT(outcomes["groups"], 100);
    if (lookup.on_missing == "default") { EXPECT_GT(outcomes["lookup defaulted"], 50); }
    if (lookup.on_missing != "default") { EXPECT_GT(outcomes["lookup dropped"], 50); }
    if (spec.allowed_lateness_micros >= 0) { EXPECT_GT(outcomes["late"], 10); }
  }
}

}  // namespace
}  // namespace sluice
