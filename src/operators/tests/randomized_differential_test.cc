// Randomized differential checks of the staged aggregator (against a naive
// oracle) and of the columnar CSV decoder (against the row decoder).
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
#include "operators/columnar_csv_decoder.h"
#include "operators/decoder.h"

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

}  // namespace
}  // namespace sluice
