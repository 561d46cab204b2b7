#include "runtime/verify.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>

#include "core/json_writer.h"
#include "core/time.h"
#include "operators/aggregator.h"
#include "core/uri.h"
#include "runtime/registry.h"
#include "runtime/runner.h"

namespace sluice {

Result<Value> ParseStoredValue(std::string_view text, Type type) {
  auto bad = [&] {
    return Status::InvalidArgument("stored value '" + std::string(text) + "' is not a " +
                                   std::string(TypeName(type)));
  };
  switch (type) {
    case Type::kNull:
    case Type::kString:
      return Value::String(text);
    case Type::kBool:
      if (text == "1" || text == "true" || text == "TRUE") return Value::Bool(true);
      if (text == "0" || text == "false" || text == "FALSE") return Value::Bool(false);
      return bad();
    case Type::kInt64: {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc() && end == text.data() + text.size()) return Value::Int(v);
      // A DECIMAL or REAL column holding a whole number ("12.00").
      double d = 0;
      auto [dend, dec] = std::from_chars(text.data(), text.data() + text.size(), d);
      if (dec == std::errc() && dend == text.data() + text.size() && d == std::floor(d)) {
        return Value::Int(static_cast<int64_t>(d));
      }
      return bad();
    }
    case Type::kDouble: {
      double d = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
      if (ec == std::errc() && end == text.data() + text.size()) return Value::Double(d);
      return bad();
    }
    case Type::kTimestamp: {
      auto t = ParseIsoTimestamp(text);
      if (!t) return bad();
      return Value::TimeMicros(*t);
    }
  }
  return bad();
}

namespace {

// --- the in-memory collector: what the sink would have received ------------------------------

/// What the collector gathered over the run.
struct Collected {
  const AggregateSpec* spec = nullptr;
  std::unique_ptr<Aggregator> merged;  ///< update mode: every checkpoint's deltas, merged
  std::vector<std::vector<Value>> rows;  ///< append mode and select: every row, in order
};

/// A sink that keeps everything in memory: deltas merged by the engine's own Aggregator (as the
/// SQL sinks merge them), rows appended. Stores dead letters (so none go to a file) and state.
class CollectorSink : public Sink {
 public:
  explicit CollectorSink(Collected* out) : out_(out) {}
  Status Open(const SinkContext& ctx) override {
    out_->spec = ctx.aggregate;
    if (ctx.aggregate && !ctx.aggregate->append_mode) out_->merged = std::make_unique<Aggregator>(ctx.aggregate);
    return Status::OK();
  }
  Result<std::vector<StoredPosition>> LoadPositions() override { return std::vector<StoredPosition>{}; }
  bool SupportsState() const override { return true; }
  bool StoresDeadLetters() const override { return true; }
  std::string DeadLetterLocation() const override { return "nowhere (sluice verify)"; }
  Status Commit(const Checkpoint& cp) override {
    if (cp.deltas && !cp.deltas->empty()) {
      if (!out_->merged) return Status::Internal("verify: deltas for a pipeline without update-mode aggregate");
      out_->merged->Merge(std::vector<DeltaRow>(*cp.deltas));
    }
    if (cp.rows) out_->rows.insert(out_->rows.end(), cp.rows->begin(), cp.rows->end());
    return Status::OK();
  }

 private:
  Collected* out_;
};

// --- the source limited to the committed positions -------------------------------------------

class LimitedSource : public Source {
 public:
  LimitedSource(std::unique_ptr<Source> inner, std::map<int32_t, int64_t> limits,
                const std::map<int32_t, int64_t>& identity)
      : inner_(std::move(inner)), limits_(std::move(limits)) {
    const std::string_view k = inner_->kind();
    by_cursor_ = k == "sqlite" || k == "mysql" || k == "cassandra";
    kafka_ = k == "kafka";
    // The SQL table sources store the hash of the last row read (the NDJSON record, which is
    // the payload) at kIdentityPartitionBase: that row must still be there, as it was.
    if ((k == "sqlite" || k == "mysql") && limits_.count(0)) {
      if (auto it = identity.find(kIdentityPartitionBase); it != identity.end()) cursor_row_hash_ = it->second;
    }
  }
  Status Open(const SourceContext& ctx) override { return inner_->Open(ctx); }
  Result<PollState> Poll(RawBatch* out, size_t max_records, std::chrono::milliseconds budget) override {
    auto state = inner_->Poll(out, max_records, budget);
    if (!state.ok()) return state;
    bool past_cursor = false;
    for (size_t i = 0; cursor_row_hash_ && i < out->size(); ++i) {
      const RawRecord& r = out->record(i);
      if (r.offset == limits_[0] && Fingerprint64(out->payload(i)) == *cursor_row_hash_) cursor_row_found_ = true;
      if (r.offset > limits_[0]) past_cursor = true;
    }
    if (cursor_row_hash_ && !cursor_row_found_ && (past_cursor || *state == PollState::kEnd)) {
      return Status::Aborted("the input changed since the sink's positions were committed: the last row read "
                             "from the table (cursor " + std::to_string(limits_[0]) +
                             ") is gone or holds other values");
    }
    if (kafka_) {
      // Offsets start at 0: a partition whose first record comes later lost its beginning to
      // retention (or compaction), so its committed results cannot be recomputed.
      for (size_t i = 0; i < out->size(); ++i) {
        const RawRecord& r = out->record(i);
        if (!first_seen_.insert(r.partition).second || r.offset == 0) continue;
        return Status::Aborted("the topic no longer holds partition " + std::to_string(r.partition) +
                               " from its start: its first record is at offset " + std::to_string(r.offset) +
                               " (the records before it were deleted by retention or compaction, or "
                               "aborted), so what the sink holds cannot be recomputed");
      }
    }
    out->RemoveIf([&](const RawRecord& r) {
      const bool keep = Within(r);
      if (!keep) beyond_ = true;
      return !keep;
    });
    return state;
  }
  std::optional<std::string> Header() const override { return inner_->Header(); }
  std::string_view kind() const override { return inner_->kind(); }
  DecoderOptions decoder_options() const override { return inner_->decoder_options(); }
  void OnCommitted(const std::vector<std::pair<int32_t, int64_t>>& p) override { inner_->OnCommitted(p); }
  /// The input goes on past the committed positions: windows still open there stay open, as they
  /// were in the run that committed them.
  bool EndIsFinal() const override { return inner_->EndIsFinal() && !beyond_; }
  std::vector<int32_t> Partitions() const override { return inner_->Partitions(); }
  std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const override {
    return inner_->PositionsAfterBatch();
  }
  int64_t Generation(int32_t partition) const override { return inner_->Generation(partition); }
  std::vector<std::pair<int32_t, int64_t>> PositionsPastRecords() const override {
    return inner_->PositionsPastRecords();
  }
  std::vector<std::pair<int32_t, int64_t>> Lag() const override { return inner_->Lag(); }
  void Close() override { inner_->Close(); }
  std::vector<SourceCounter> Counters() const override { return inner_->Counters(); }

 private:
  bool Within(const RawRecord& r) const {
    if (by_cursor_) {
      auto it = limits_.find(0);
      return it != limits_.end() && r.offset <= it->second;
    }
    auto it = limits_.find(r.partition);
    return it != limits_.end() && r.next_offset <= it->second;
  }

  std::unique_ptr<Source> inner_;
  std::map<int32_t, int64_t> limits_;
  bool by_cursor_ = false;
  std::optional<int64_t> cursor_row_hash_;
  bool cursor_row_found_ = false;
  bool kafka_ = false;
  std::set<int32_t> first_seen_;  ///< Kafka: partitions whose first record was seen
  bool beyond_ = false;
};

// --- comparing --------------------------------------------------------------------------------

/// Renders a value so that equal values give equal text, for row keys.
void AppendKeyText(const Value& v, std::string* out) {
  *out += static_cast<char>('0' + static_cast<int>(v.type()));
  switch (v.type()) {
    case Type::kNull: break;
    case Type::kTimestamp: *out += std::to_string(v.time_value().micros); break;
    case Type::kDouble: *out += FormatDouble(v.double_value()); break;
    default: *out += v.ToString(); break;
  }
  *out += '\x1f';
}

std::string RowKey(const std::vector<Value>& row, const std::vector<size_t>& columns) {
  std::string key;
  for (size_t c : columns) AppendKeyText(row[c], &key);
  return key;
}

/// Compares two cells as stored: numbers numerically (a double to about 15 significant digits,
/// what a DOUBLE column keeps), everything else exactly.
bool SameCell(const Value& a, const Value& b) {
  const bool an = a.type() == Type::kInt64 || a.type() == Type::kDouble;
  const bool bn = b.type() == Type::kInt64 || b.type() == Type::kDouble;
  if (an && bn && (a.type() == Type::kDouble || b.type() == Type::kDouble)) {
    const double x = a.type() == Type::kDouble ? a.double_value() : static_cast<double>(a.int_value());
    const double y = b.type() == Type::kDouble ? b.double_value() : static_cast<double>(b.int_value());
    if (x == y) return true;
    return std::fabs(x - y) <= 1e-12 * std::max({1.0, std::fabs(x), std::fabs(y)});
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::kNull: return true;
    case Type::kBool: return a.bool_value() == b.bool_value();
    case Type::kInt64: return a.int_value() == b.int_value();
    case Type::kDouble: return a.double_value() == b.double_value();
    case Type::kString: return a.string_value() == b.string_value();
    case Type::kTimestamp: return a.time_value().micros == b.time_value().micros;
  }
  return false;
}

std::vector<size_t> DifferingColumns(const std::vector<Value>& a, const std::vector<Value>& b) {
  std::vector<size_t> out;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!SameCell(a[i], b[i])) out.push_back(i);
  }
  return out;
}

std::string SinkName(const SinkConfig& sink) {
  return sink.table.empty() ? sink.uri : sink.uri + " table " + sink.table;
}

std::string CellText(const Value& v) {
  if (v.is_null()) return "null";
  if (v.type() == Type::kTimestamp) return FormatTimestamp(v.time_value().micros);
  if (v.type() == Type::kDouble) return FormatDouble(v.double_value());
  return v.ToString();
}

void AppendJsonValue(const Value& v, std::string* out) {
  switch (v.type()) {
    case Type::kNull: *out += "null"; break;
    case Type::kBool: *out += v.bool_value() ? "true" : "false"; break;
    case Type::kInt64: *out += std::to_string(v.int_value()); break;
    case Type::kDouble:
      if (std::isfinite(v.double_value())) {
        *out += FormatDouble(v.double_value());
      } else {
        AppendJsonString(FormatDouble(v.double_value()), out);
      }
      break;
    default: AppendJsonString(CellText(v), out); break;
  }
}

/// The sink's `key` option: "id", "a, b" or ["a", "b"].
std::vector<std::string> KeyOption(const SinkConfig& sink) {
  std::vector<std::string> out;
  std::string name;
  for (char c : sink.options.GetString("key") + ",") {
    if (c == ',') {
      if (!name.empty()) out.push_back(name);
      name.clear();
    } else if (c != '[' && c != ']' && c != '"' && c != '\'' && !std::isspace(static_cast<unsigned char>(c))) {
      name += c;
    }
  }
  return out;
}

}  // namespace

std::unique_ptr<Source> LimitSource(std::unique_ptr<Source> inner, std::map<int32_t, int64_t> limits,
                                    const std::map<int32_t, int64_t>& identity) {
  return std::make_unique<LimitedSource>(std::move(inner), std::move(limits), identity);
}

std::set<std::string> ReferencedNames(const std::string& text) {
  std::set<std::string> out;
  size_t i = 0;
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\'' || c == '`') {
      // A string literal is skipped; a `quoted name` is a name. Doubled quotes escape one.
      std::string name;
      size_t j = i + 1;
      while (j < text.size()) {
        if (text[j] == c) {
          if (j + 1 < text.size() && text[j + 1] == c) {
            name += c;
            j += 2;
            continue;
          }
          break;
        }
        name += text[j++];
      }
      if (c == '`') out.insert(name);
      i = j + 1;
    } else if (ident(c)) {
      size_t j = i;
      while (j < text.size() && ident(text[j])) ++j;
      if (!std::isdigit(static_cast<unsigned char>(c))) out.insert(text.substr(i, j - i));
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

std::set<size_t> DimensionDerivedColumns(const Plan& plan, const Schema& output) {
  const PipelineConfig& config = *plan.config;
  std::set<std::string> derived;  // working-row fields whose value comes from a dimension
  auto uses_derived = [&](const std::string& text) {
    for (const auto& n : ReferencedNames(text)) {
      if (derived.count(n)) return true;
    }
    return false;
  };
  for (const auto& step : plan.steps) {
    StepDescription d;
    step->Describe(&d);
    // What a step writes comes from its dimension, if it reads one (a lookup), else from its
    // expression; a field overwritten by a value that depends on no dimension is no longer one.
    const bool from_dimension = step->dimension() != nullptr || uses_derived(d.expr);
    for (size_t slot : d.slots) {
      const std::string& name = plan.schema.field(slot).name;
      if (from_dimension) {
        derived.insert(name);
      } else {
        derived.erase(name);
      }
    }
  }
  std::set<size_t> out;
  auto mark = [&](const ColumnConfig& c) {
    if (!uses_derived(c.text)) return;
    if (auto i = output.IndexOf(c.name)) out.insert(*i);
  };
  if (config.aggregate) {
    for (const auto& k : config.aggregate->keys) mark(k);
    for (const auto& m : config.aggregate->metrics) mark(m);
  }
  for (const auto& s : config.select) mark(s);
  return out;
}

Result<VerifyReport> VerifyPipeline(PipelineConfig config, const VerifyOptions& options) {
  RegisterBuiltins();
  // A Kafka source must not join the running pipeline's consumer group (it would take
  // partitions away from it): the recomputation reads as a group of its own.
  if (SplitUri(config.source.uri).first == "kafka") {
    config.source.options.Set(
        "group", Option{config.source.pipeline + ".verify." + std::to_string(::getpid()), {}});
  }
  VerifyReport report;
  report.pipeline = config.name;
  report.sink = SinkName(config.sink);

  // The recomputation: the pipeline's own plan and engine, an in-memory collector as its sink.
  Collected collected;
  std::map<int32_t, int64_t> limits;
  RunOptions run;
  // A file (or a counted generator) ends by itself, and its end is final: every window is
  // emitted, as the run that read it to its end emitted them. Other sources (Kafka, tables, an
  // API) end at what is there now, as a `--until-caught-up` run: windows still open stay open.
  const std::string scheme = SplitUri(config.source.uri).first;
  run.until_caught_up = scheme != "file" && scheme != "generator";
  run.workers = std::max(1, options.workers);
  run.sink_override = [&collected]() -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(std::make_unique<CollectorSink>(&collected));
  };
  std::map<int32_t, int64_t> identity;
  run.wrap_source = [&limits, &identity](std::unique_ptr<Source> s) {
    return LimitSource(std::move(s), limits, identity);
  };
  const std::string source_name = config.source.name;
  const SinkConfig sink_config = config.sink;
  PipelineConfig recompute = config;
  // Dead letters stay in the collector: none may go to the pipeline's dead-letter file.
  recompute.dead_letter_store = PipelineConfig::DeadLetterStore::kDefault;
  ASSIGN_OR_RETURN(auto runner, Runner::Make(std::move(recompute), run));
  const Plan& plan = runner->plan();

  // What the sink holds.
  SinkContext ctx;
  ctx.pipeline = config.name;
  ctx.aggregate = plan.aggregate.get();
  ctx.output = plan.OutputSchema();
  if (plan.aggregate) ctx.key_columns = plan.aggregate->KeyColumns();
  ASSIGN_OR_RETURN(auto sink, ConnectorRegistry::Instance().MakeSink(sink_config));
  RETURN_IF_ERROR(sink->Check(ctx));
  RETURN_IF_ERROR(sink->OpenForReading(ctx).WithContext("sink " + report.sink));
  auto positions = sink->LoadPositions();
  if (!positions.ok()) return positions.status().WithContext("sink " + report.sink);
  auto stored_rows = sink->ReadOutput();
  if (!stored_rows.ok()) return stored_rows.status().WithContext("sink " + report.sink);

  for (const auto& p : *positions) {
    if (p.source != source_name) continue;
    if (p.offset == kForgottenPosition) {
      return Status::FailedPrecondition(
          "source " + source_name + " was reset (--reset-source) and has not committed a new position "
          "yet: the sink holds results of an earlier read of it, which cannot be recomputed");
    }
    if (p.partition >= kIdentityPartitionBase) {
      identity[p.partition] = p.offset;
    } else {
      limits[p.partition] = p.offset;
      report.positions.push_back(p);
    }
  }
  RETURN_IF_ERROR(ConnectorRegistry::Instance().CheckInput(config.source.uri, limits, identity));

  Status ran = runner->Run();
  if (!ran.ok()) return ran.WithContext("recomputing " + config.name);
  const PipelineSnapshot snap = runner->Snapshot();
  report.records = snap.records_in;
  report.ignored = snap.ignored;
  report.dead_lettered = snap.dead_lettered;

  std::vector<std::vector<Value>> recomputed;
  if (collected.merged) {
    for (const DeltaRow& d : collected.merged->TakeAll()) recomputed.push_back(FinalRow(*collected.spec, d));
  } else {
    recomputed = std::move(collected.rows);
  }
  for (auto& row : recomputed) {
    for (size_t i = 0; i < row.size(); ++i) row[i] = sink->AsStored(i, row[i]);
  }
  sink->Close();

  // The diff, by key (all columns when the output has no key: rows compared as a multiset).
  const Schema& out = ctx.output;
  for (size_t i = 0; i < out.size(); ++i) report.columns.push_back(out.field(i).name);
  // Without an aggregate, the sink's `key` (SQLite) upserts rows by it.
  const std::vector<std::string> upsert_key =
      ctx.key_columns.empty() ? KeyOption(sink_config) : std::vector<std::string>();
  for (const auto& k : ctx.key_columns.empty() ? upsert_key : ctx.key_columns) {
    if (auto i = out.IndexOf(k)) report.key_columns.push_back(*i);
  }
  if (!upsert_key.empty()) {
    // Rows upserted by a key: the last row of each key is what the sink keeps.
    std::unordered_map<std::string, size_t> last;
    for (size_t i = 0; i < recomputed.size(); ++i) last[RowKey(recomputed[i], report.key_columns)] = i;
    std::vector<std::vector<Value>> kept;
    for (size_t i = 0; i < recomputed.size(); ++i) {
      if (last[RowKey(recomputed[i], report.key_columns)] == i) kept.push_back(std::move(recomputed[i]));
    }
    recomputed = std::move(kept);
  }
  std::vector<size_t> key_cols = report.key_columns;
  if (key_cols.empty()) {
    for (size_t i = 0; i < out.size(); ++i) key_cols.push_back(i);
  }
  report.dimension_columns = DimensionDerivedColumns(plan, out);
  report.sink_rows = static_cast<int64_t>(stored_rows->size());
  report.recomputed_rows = static_cast<int64_t>(recomputed.size());

  std::unordered_multimap<std::string, size_t> by_key;  // recomputed rows not matched yet
  for (size_t i = 0; i < recomputed.size(); ++i) by_key.emplace(RowKey(recomputed[i], key_cols), i);
  std::vector<const std::vector<Value>*> extra;
  const size_t show = options.show;
  auto only_dimension = [&](const std::vector<size_t>& cols) {
    for (size_t c : cols) {
      if (!report.dimension_columns.count(c)) return false;
    }
    return !cols.empty();
  };
  auto add_difference = [&](const std::vector<Value>& s, const std::vector<Value>& r, std::vector<size_t> cols) {
    const bool dim = only_dimension(cols);
    int64_t& count = dim ? report.dimension_changed : report.differing;
    auto& list = dim ? report.dimension_rows : report.differences;
    ++count;
    if (list.size() < show) list.push_back(VerifyDifference{s, r, std::move(cols)});
  };
  for (const auto& row : *stored_rows) {
    auto it = by_key.find(RowKey(row, key_cols));
    if (it == by_key.end()) {
      extra.push_back(&row);
      continue;
    }
    const std::vector<Value>& r = recomputed[it->second];
    by_key.erase(it);
    std::vector<size_t> cols = DifferingColumns(row, r);
    if (cols.empty()) {
      ++report.matching;
    } else {
      add_difference(row, r, std::move(cols));
    }
  }
  std::vector<const std::vector<Value>*> missing;
  {  // by_key now holds the recomputed rows no sink row matched; list them in order
    std::vector<size_t> left;
    for (const auto& [k, i] : by_key) left.push_back(i);
    std::sort(left.begin(), left.end());
    for (size_t i : left) missing.push_back(&recomputed[i]);
  }
  // A key column derived from a dimension moves a row to another key when the dimension
  // changes: pair such rows by the rest of the key and report them as dimension changes.
  std::vector<size_t> stable_key;
  bool key_moves = false;
  for (size_t c : key_cols) {
    if (report.dimension_columns.count(c)) {
      key_moves = true;
    } else {
      stable_key.push_back(c);
    }
  }
  if (key_moves && !extra.empty() && !missing.empty()) {
    std::unordered_multimap<std::string, size_t> missing_by_stable;
    for (size_t i = 0; i < missing.size(); ++i) missing_by_stable.emplace(RowKey(*missing[i], stable_key), i);
    std::vector<bool> missing_used(missing.size(), false);
    std::vector<const std::vector<Value>*> still_extra;
    for (const auto* row : extra) {
      bool paired = false;
      auto range = missing_by_stable.equal_range(RowKey(*row, stable_key));
      for (auto it = range.first; it != range.second; ++it) {
        if (missing_used[it->second]) continue;
        std::vector<size_t> cols = DifferingColumns(*row, *missing[it->second]);
        if (!only_dimension(cols)) continue;
        missing_used[it->second] = true;
        add_difference(*row, *missing[it->second], std::move(cols));
        paired = true;
        break;
      }
      if (!paired) still_extra.push_back(row);
    }
    extra = std::move(still_extra);
    std::vector<const std::vector<Value>*> still_missing;
    for (size_t i = 0; i < missing.size(); ++i) {
      if (!missing_used[i]) still_missing.push_back(missing[i]);
    }
    missing = std::move(still_missing);
  }
  report.only_in_sink = static_cast<int64_t>(extra.size());
  report.missing_from_sink = static_cast<int64_t>(missing.size());
  for (size_t i = 0; i < extra.size() && i < show; ++i) report.extra_rows.push_back(*extra[i]);
  for (size_t i = 0; i < missing.size() && i < show; ++i) report.missing_rows.push_back(*missing[i]);
  return report;
}

namespace {

std::string RowText(const VerifyReport& r, const std::vector<Value>& row, const std::vector<size_t>& cols) {
  std::string out;
  for (size_t c : cols) {
    if (!out.empty()) out += ' ';
    out += r.columns[c] + "=" + CellText(row[c]);
  }
  return out;
}

std::vector<size_t> KeyOrAll(const VerifyReport& r) {
  if (!r.key_columns.empty()) return r.key_columns;
  std::vector<size_t> all;
  for (size_t i = 0; i < r.columns.size(); ++i) all.push_back(i);
  return all;
}

std::string Count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace

std::string FormatVerifyReport(const VerifyReport& r) {
  std::string out = "verify " + r.pipeline + ": " + r.sink + "\n";
  std::string upto;
  for (const auto& p : r.positions) {
    upto += (upto.empty() ? " (partition " : ", ") + std::to_string(p.partition) + " at " + std::to_string(p.offset);
  }
  out += "  read " + (r.positions.empty() ? std::string("nothing: no position is committed")
                                          : r.positions[0].source + " up to its committed positions" + upto + ")") +
         ": " + Count(r.records) + " records (" + Count(r.ignored) + " ignored, " + Count(r.dead_lettered) +
         " dead-lettered)\n";
  out += "  rows: " + Count(r.sink_rows) + " in the sink, " + Count(r.recomputed_rows) + " recomputed\n";
  out += "  " + Count(r.matching) + " match\n";
  out += "  " + Count(r.differing) + " differ\n";
  std::string dims;
  for (size_t c : r.dimension_columns) dims += (dims.empty() ? "" : ", ") + r.columns[c];
  out += "  " + Count(r.dimension_changed) + " dimension changed since" +
         (dims.empty() ? std::string(" (no column comes from a dimension)")
                       : " (differ only in " + dims + ", from a dimension)") + "\n";
  out += "  " + Count(r.missing_from_sink) + " missing from the sink\n";
  out += "  " + Count(r.only_in_sink) + " only in the sink\n";
  const std::vector<size_t> key = KeyOrAll(r);
  auto differences = [&](const char* title, int64_t total, const std::vector<VerifyDifference>& list) {
    if (list.empty()) return;
    out += std::string(title) + " (" + std::to_string(list.size()) + " of " + Count(total) + "):\n";
    for (const auto& d : list) {
      out += "  " + RowText(r, d.sink, key) + ":";
      for (size_t c : d.columns) {
        out += " " + r.columns[c] + " sink " + CellText(d.sink[c]) + ", recomputed " + CellText(d.recomputed[c]) + ";";
      }
      out.pop_back();
      out += "\n";
    }
  };
  auto rows = [&](const char* title, int64_t total, const std::vector<std::vector<Value>>& list) {
    if (list.empty()) return;
    out += std::string(title) + " (" + std::to_string(list.size()) + " of " + Count(total) + "):\n";
    std::vector<size_t> all;
    for (size_t i = 0; i < r.columns.size(); ++i) all.push_back(i);
    for (const auto& row : list) out += "  " + RowText(r, row, all) + "\n";
  };
  differences("differ", r.differing, r.differences);
  differences("dimension changed since", r.dimension_changed, r.dimension_rows);
  rows("missing from the sink", r.missing_from_sink, r.missing_rows);
  rows("only in the sink", r.only_in_sink, r.extra_rows);
  out += r.equal() ? (r.dimension_changed > 0 ? "equal (apart from dimension changes)\n" : "equal\n")
                   : "NOT equal\n";
  return out;
}

std::string VerifyReportJson(const VerifyReport& r) {
  std::string out = "{\"pipeline\":";
  AppendJsonString(r.pipeline, &out);
  out += ",\"sink\":";
  AppendJsonString(r.sink, &out);
  out += ",\"equal\":" + std::string(r.equal() ? "true" : "false");
  out += ",\"positions\":[";
  for (size_t i = 0; i < r.positions.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"source\":";
    AppendJsonString(r.positions[i].source, &out);
    out += ",\"partition\":" + std::to_string(r.positions[i].partition) +
           ",\"offset\":" + std::to_string(r.positions[i].offset) + "}";
  }
  out += "],\"records\":" + std::to_string(r.records) + ",\"ignored\":" + std::to_string(r.ignored) +
         ",\"dead_lettered\":" + std::to_string(r.dead_lettered) + ",\"sink_rows\":" + std::to_string(r.sink_rows) +
         ",\"recomputed_rows\":" + std::to_string(r.recomputed_rows) + ",\"matching\":" + std::to_string(r.matching);
  out += ",\"dimension_columns\":[";
  bool first = true;
  for (size_t c : r.dimension_columns) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(r.columns[c], &out);
  }
  out += "]";
  auto object = [&](const std::vector<Value>& row, const std::vector<size_t>& cols) {
    out += '{';
    for (size_t i = 0; i < cols.size(); ++i) {
      if (i > 0) out += ',';
      AppendJsonString(r.columns[cols[i]], &out);
      out += ':';
      AppendJsonValue(row[cols[i]], &out);
    }
    out += '}';
  };
  std::vector<size_t> all;
  for (size_t i = 0; i < r.columns.size(); ++i) all.push_back(i);
  const std::vector<size_t> key = KeyOrAll(r);
  auto differences = [&](const char* name, int64_t total, const std::vector<VerifyDifference>& list) {
    out += ",\"" + std::string(name) + "\":{\"count\":" + std::to_string(total) + ",\"rows\":[";
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) out += ',';
      out += "{\"key\":";
      object(list[i].sink, key);
      out += ",\"columns\":{";
      for (size_t j = 0; j < list[i].columns.size(); ++j) {
        const size_t c = list[i].columns[j];
        if (j > 0) out += ',';
        AppendJsonString(r.columns[c], &out);
        out += ":{\"sink\":";
        AppendJsonValue(list[i].sink[c], &out);
        out += ",\"recomputed\":";
        AppendJsonValue(list[i].recomputed[c], &out);
        out += '}';
      }
      out += "}}";
    }
    out += "]}";
  };
  auto rows = [&](const char* name, int64_t total, const std::vector<std::vector<Value>>& list) {
    out += ",\"" + std::string(name) + "\":{\"count\":" + std::to_string(total) + ",\"rows\":[";
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) out += ',';
      object(list[i], all);
    }
    out += "]}";
  };
  differences("differ", r.differing, r.differences);
  differences("dimension_changed", r.dimension_changed, r.dimension_rows);
  rows("missing_from_sink", r.missing_from_sink, r.missing_rows);
  rows("only_in_sink", r.only_in_sink, r.extra_rows);
  out += '}';
  return out;
}

}  // namespace sluice
