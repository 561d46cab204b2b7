// Randomized differential checks of the staged aggregator (against a naive
// oracle), of the columnar CSV decoder (against the row decoder) and of steps over columns
// (against the same steps on rows).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/raw_batch.h"
#include "core/time.h"
#include "expr/expr.h"
#include "operators/aggregator.h"
#include "operators/batch.h"
#include "operators/column_filter.h"
#include "operators/columnar_csv_decoder.h"
#include "operators/columnar_json_decoder.h"
#include "operators/decoder.h"
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

}  // namespace
}  // namespace sluice
