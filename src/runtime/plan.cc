#include "runtime/plan.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/time.h"
#include "operators/aggregate_function.h"
#include "runtime/registry.h"
#include "runtime/repartition_plan.h"

namespace sluice {
namespace {

// Byte `offset` of an expression's text; anchored (SQL) text maps it to the token written.
std::string At(const expr::SourceLocation& w, size_t offset = 0) { return expr::Locate(w, offset); }

expr::SourceLocation Shift(expr::SourceLocation w, size_t offset) {
  return expr::Advance(std::move(w), offset);
}

/// Finds `keyword` as a whole word outside quotes and parentheses; returns npos if absent.
size_t FindTopLevelKeyword(std::string_view text, std::string_view keyword) {
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '\'') quoted = false;
      continue;
    }
    if (c == '\'') {
      quoted = true;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (depth == 0 && i + keyword.size() <= text.size()) {
      bool word_start = i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_');
      size_t end = i + keyword.size();
      bool word_end = end == text.size() || !(std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_');
      if (word_start && word_end) {
        bool match = true;
        for (size_t k = 0; k < keyword.size(); ++k) {
          if (std::tolower(static_cast<unsigned char>(text[i + k])) != keyword[k]) {
            match = false;
            break;
          }
        }
        if (match) return i;
      }
    }
  }
  return std::string_view::npos;
}

std::pair<size_t, size_t> TrimRange(std::string_view s, size_t begin, size_t end) {
  while (begin < end && std::isspace(static_cast<unsigned char>(s[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(s[end - 1]))) --end;
  return {begin, end};
}

Result<std::unique_ptr<expr::Expr>> CompileAt(std::string_view text, const Schema& schema,
                                              const expr::SourceLocation& where) {
  return expr::Compile(text, schema, where);
}

/// Takes "round(inner, n)" apart: sets m->round_digits to n and `*agg` to inner, moving
/// `*agg_at` to where inner starts. Leaves anything else as it is.
Status TakeRound(const ColumnConfig& c, std::string_view* agg, size_t* agg_at, MetricSpec* m) {
  if (!(agg->size() > 6 && agg->substr(0, 6) == "round(" && agg->back() == ')')) return Status::OK();
  std::string_view inside = agg->substr(6, agg->size() - 7);
  size_t comma = std::string_view::npos;
  int depth = 0;
  for (size_t i = 0; i < inside.size(); ++i) {
    if (inside[i] == '(') ++depth;
    if (inside[i] == ')') --depth;
    if (inside[i] == ',' && depth == 0) comma = i;
  }
  if (comma == std::string_view::npos) {
    return Status::InvalidArgument(At(c.where, *agg_at) + ": round() needs two arguments: round(avg(x), 2)");
  }
  auto [db, de] = TrimRange(inside, comma + 1, inside.size());
  std::string digits(inside.substr(db, de - db));
  char* endp = nullptr;
  long n = std::strtol(digits.c_str(), &endp, 10);
  if (digits.empty() || *endp != '\0' || n < 0 || n > 15) {
    return Status::InvalidArgument(At(c.where, *agg_at + 6 + db) + ": round() digits must be 0..15");
  }
  m->round_digits = static_cast<int>(n);
  auto [ib, ie] = TrimRange(inside, 0, comma);
  *agg_at += 6 + ib;
  *agg = inside.substr(ib, ie - ib);
  return Status::OK();
}

/// Reads the aggregate's name, `agg` up to `open` (its parenthesis), from the catalog into
/// m->fn.
Result<const AggregateFunction*> ParseAggregateName(const ColumnConfig& c, std::string_view agg,
                                                    size_t agg_at, size_t open, MetricSpec* m) {
  const std::string_view name = agg.substr(0, open);
  const AggregateFunction* f = FindAggregateFunction(name);
  if (f == nullptr) {
    std::string fn(name);
    for (auto& ch : fn) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::vector<std::string> names;
    for (const AggregateFunction& g : AllAggregateFunctions()) names.emplace_back(g.name);
    const std::string closest = ClosestName(fn, names);
    return Status::InvalidArgument(At(c.where, agg_at) + ": unknown aggregate '" + fn + "' (" +
                                   (closest.empty() ? "" : "did you mean " + closest + "? ") +
                                   "expected " + AggregateFunctionList() + ")");
  }
  m->fn = f->id;
  return f;
}

/// Compiles the aggregate's argument (`arg`, at `arg_at` in the column's text) and sets the
/// argument and result types, as the function's descriptor says.
Status CompileMetricArgument(const ColumnConfig& c, const Schema& schema, std::string_view arg,
                             size_t arg_at, size_t agg_at, const AggregateFunction& f,
                             MetricSpec* m) {
  const std::string fn(f.name);
  if (f.arg == AggregateFunction::Arg::kOptional && (arg.empty() || arg == "*")) {
    m->result_type = f.result_type(Type::kNull);
    return Status::OK();
  }
  if (arg.empty()) {
    return Status::InvalidArgument(At(c.where, agg_at) + ": " + fn + "() needs an argument");
  }
  ASSIGN_OR_RETURN(m->arg, CompileAt(arg, schema, Shift(c.where, arg_at)));
  m->arg_type = m->arg->type();
  bool numeric = m->arg_type == Type::kInt64 || m->arg_type == Type::kDouble;
  if (f.arg == AggregateFunction::Arg::kNumeric && !numeric) {
    return Status::InvalidArgument(At(c.where, arg_at) + ": " + fn +
                                   "() needs a numeric argument, got " +
                                   std::string(TypeName(m->arg_type)));
  }
  m->result_type = f.result_type(m->arg_type);
  return Status::OK();
}

/// The functions whose descriptor allows `allowed`: "avg()" (or "avg() and x()").
std::string FunctionsAllowing(bool AggregateFunction::*allowed) {
  std::string out;
  for (const AggregateFunction& f : AllAggregateFunctions()) {
    if (f.*allowed) out += (out.empty() ? "" : " and ") + std::string(f.name) + "()";
  }
  return out;
}

/// Sets the value without records from `default_text` (at `default_at`), a number, for the
/// functions that allow one (avg).
Status CompileMetricDefault(const ColumnConfig& c, const std::string& default_text,
                            size_t default_at, const AggregateFunction& f, MetricSpec* m) {
  if (!f.allows_default) {
    return Status::InvalidArgument(At(c.where, default_at) + ": 'default' applies to " +
                                   FunctionsAllowing(&AggregateFunction::allows_default) +
                                   " only (count and sum are 0 without records)");
  }
  Schema empty;
  ASSIGN_OR_RETURN(auto lit, CompileAt(default_text, empty, Shift(c.where, default_at)));
  Value v = lit->Eval({});
  if (v.type() != Type::kInt64 && v.type() != Type::kDouble) {
    return Status::InvalidArgument(At(c.where, default_at) + ": the default of " + std::string(f.name) +
                                   "() must be a number");
  }
  m->default_value = Value::Double(v.AsDouble());
  return Status::OK();
}

/// Parses "[round(]fn(arg)[, n)] [where cond] [default literal]".
Status CompileMetric(const ColumnConfig& c, const Schema& schema, MetricSpec* m) {
  std::string_view text = c.text;
  m->name = c.name;
  size_t end = text.size();
  size_t def = FindTopLevelKeyword(text, "default");
  std::string default_text;
  size_t default_at = 0;
  if (def != std::string_view::npos) {
    auto [b, e] = TrimRange(text, def + 7, end);
    default_text = std::string(text.substr(b, e - b));
    default_at = b;
    end = def;
  }
  size_t where = FindTopLevelKeyword(text.substr(0, end), "where");
  if (where != std::string_view::npos) {
    auto [b, e] = TrimRange(text, where + 5, end);
    if (b == e) return Status::InvalidArgument(At(c.where, where) + ": 'where' needs a condition");
    ASSIGN_OR_RETURN(m->where, CompileAt(text.substr(b, e - b), schema, Shift(c.where, b)));
    if (m->where->type() != Type::kBool) {
      return Status::InvalidArgument(At(c.where, b) + ": the where condition of metric '" +
                                     c.name + "' must be a boolean expression");
    }
    end = where;
  }
  auto [b, e] = TrimRange(text, 0, end);
  std::string_view agg = text.substr(b, e - b);
  size_t agg_at = b;
  RETURN_IF_ERROR(TakeRound(c, &agg, &agg_at, m));
  size_t open = agg.find('(');
  if (open == std::string_view::npos || agg.back() != ')') {
    std::string examples;
    const auto all = AllAggregateFunctions();
    for (size_t i = 0; i < all.size(); ++i) {
      if (i > 0) examples += i + 1 == all.size() ? " or " : ", ";
      examples += std::string(all[i].name) +
                  (all[i].arg == AggregateFunction::Arg::kOptional ? "()" : "(x)");
    }
    return Status::InvalidArgument(At(c.where, agg_at) + ": metric '" + c.name +
                                   "' must be an aggregate such as " + examples);
  }
  ASSIGN_OR_RETURN(const AggregateFunction* f, ParseAggregateName(c, agg, agg_at, open, m));
  auto [ab, ae] = TrimRange(agg, open + 1, agg.size() - 1);
  RETURN_IF_ERROR(CompileMetricArgument(c, schema, agg.substr(ab, ae - ab), agg_at + ab, agg_at, *f, m));
  if (m->round_digits >= 0 && !f->allows_round) {
    return Status::InvalidArgument(At(c.where) + ": round() applies to " +
                                   FunctionsAllowing(&AggregateFunction::allows_round) + " only");
  }
  if (!default_text.empty()) {
    RETURN_IF_ERROR(CompileMetricDefault(c, default_text, default_at, *f, m));
  }
  return Status::OK();
}

/// Adds the declared source fields to the plan's input and row schemas, then the columns every
/// record carries (_source, _partition, _offset).
Status DeclareInputFields(const PipelineConfig& config, Plan* plan) {
  for (const auto& f : config.source.fields) {
    plan->input.Add(f);
    plan->schema.Add(f);
  }
  if (config.source.fields.empty()) {
    return Status::InvalidArgument(config.source.options.Where("") +
                                   ": [source.fields] must declare the fields to read");
  }
  plan->source_slot = plan->schema.Add({"_source", Type::kString, ""});
  plan->partition_slot = plan->schema.Add({"_partition", Type::kInt64, ""});
  plan->offset_slot = plan->schema.Add({"_offset", Type::kInt64, ""});
  return Status::OK();
}

/// Loads every [dimension.NAME] through the connector registry; an error points at the setting
/// that names the dimension, unless it already has a place.
Status LoadDimensions(const PipelineConfig& config, Plan* plan) {
  for (const auto& [name, dim] : config.dimensions) {
    auto loaded = ConnectorRegistry::Instance().LoadDimension(dim);
    if (!loaded.ok()) {
      const Status& s = loaded.status();
      if (dim.uri_where.file.empty() || s.message().rfind(dim.uri_where.file + ":", 0) == 0) {
        return s;
      }
      const std::string prefix = "dimension " + name + ": ";
      const bool named = s.message().rfind(prefix, 0) == 0;
      return Status(s.code(), At(dim.uri_where) + ": " + (named ? "" : prefix) + s.message());
    }
    plan->dimensions[name] = std::move(loaded).value();
  }
  return Status::OK();
}

/// Compiles the steps in order, each against the fields the steps before it defined.
Status CompileSteps(const PipelineConfig& config, Plan* plan) {
  for (const StepConfig& sc : config.steps) {
    ASSIGN_OR_RETURN(auto step, MakeStep(sc, &plan->schema, plan->dimensions));
    StepDescription d;
    step->Describe(&d);
    if (d.holds) plan->holds = true;
    plan->steps.push_back(std::move(step));
  }
  return Status::OK();
}

/// Compiles one group key; a key that compiles against the window columns alone also gets
/// that form (`window_expr`), since it depends on nothing else, unless a field of the same name
/// hides a window column.
Result<KeySpec> CompileKey(const ColumnConfig& kc, const Schema& schema, const AggregateSpec& spec,
                           const Schema& without_window) {
  KeySpec k;
  k.name = kc.name;
  ASSIGN_OR_RETURN(k.expr, expr::Compile(kc.text, schema, kc.where));
  k.type = k.expr->type();
  k.uses_window = !expr::Compile(kc.text, without_window, kc.where).ok();
  if (auto idx = schema.IndexOf(kc.text)) k.slot = static_cast<int>(*idx);
  if (k.slot < 0 && schema.IndexOf("window_start") == spec.window_start_slot &&
      schema.IndexOf("window_end") == spec.window_end_slot) {
    Schema window_row;
    window_row.Add({"window_start", Type::kTimestamp, ""});
    window_row.Add({"window_end", Type::kTimestamp, ""});
    auto window_expr = expr::Compile(kc.text, window_row, kc.where);
    if (window_expr.ok() && (*window_expr)->type() == k.type) {
      k.window_expr = std::move(*window_expr);
    }
  }
  return k;
}

/// Finds the first whole word `word` outside quotes (at any depth); returns npos if absent.
size_t FindWord(std::string_view text, std::string_view word) {
  bool quoted = false;
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\'') quoted = !quoted;
    if (quoted || text.compare(i, word.size(), word) != 0) continue;
    if ((i == 0 || !ident(text[i - 1])) && (i + word.size() == text.size() || !ident(text[i + word.size()]))) {
      return i;
    }
  }
  return std::string_view::npos;
}

/// Checks hopping windows' slide against their size (the pipeline-file reader checks it too,
/// with the slide's own location; this covers configurations built otherwise).
Status CheckSlide(const AggregateConfig& ac) {
  if (ac.slide_micros == 0) return Status::OK();
  if (ac.slide_micros < 0 || ac.slide_micros > ac.window_micros || ac.window_micros % ac.slide_micros != 0) {
    return Status::InvalidArgument(At(ac.where) + ": the slide of hopping windows (" +
                                   FormatDouble(ac.slide_micros / 1e6) + "s) must divide the window (" +
                                   FormatDouble(ac.window_micros / 1e6) + "s)");
  }
  if (ac.window_micros / ac.slide_micros > kMaxWindowsPerRecord) {
    return Status::InvalidArgument(At(ac.where) + ": hopping windows of " +
                                   FormatDouble(ac.window_micros / 1e6) + "s every " +
                                   FormatDouble(ac.slide_micros / 1e6) + "s put a record in " +
                                   std::to_string(ac.window_micros / ac.slide_micros) +
                                   " windows, at most " + std::to_string(kMaxWindowsPerRecord));
  }
  return Status::OK();
}

/// Rejects a metric of hopping windows that reads window_start or window_end: a record belongs
/// to several windows, and its metric arguments and conditions are evaluated once for all.
Status CheckHoppingMetric(const ColumnConfig& mc, const Schema& without_window) {
  MetricSpec probe;
  if (CompileMetric(mc, without_window, &probe).ok()) return Status::OK();
  size_t at = FindWord(mc.text, "window_start");
  const size_t end_at = FindWord(mc.text, "window_end");
  if (end_at < at) at = end_at;
  const std::string_view word = at == std::string_view::npos ? "the window"
                                : at == end_at                ? "window_end"
                                                              : "window_start";
  return Status::InvalidArgument(At(mc.where, at == std::string_view::npos ? 0 : at) + ": metric '" +
                                 mc.name + "' reads " + std::string(word) +
                                 ", but with hopping windows (slide) a record falls into several "
                                 "windows at once; only group keys may use window_start and window_end");
}

/// Compiles [aggregate]: its window and event time, then (after adding the window columns to
/// the row schema) its keys and metrics.
Result<std::unique_ptr<AggregateSpec>> CompileAggregate(const AggregateConfig& ac, Schema* schema) {
  auto spec = std::make_unique<AggregateSpec>();
  RETURN_IF_ERROR(CheckSlide(ac));
  spec->window_micros = ac.window_micros;
  spec->slide_micros = ac.slide_micros == ac.window_micros ? 0 : ac.slide_micros;
  spec->append_mode = ac.mode == "append";
  spec->watermark_delay_micros = ac.watermark_delay_micros;
  spec->allowed_lateness_micros = ac.allowed_lateness_micros;
  spec->idle_timeout_micros = ac.idle_timeout_micros;
  spec->emit_window_start = false;
  spec->emit_window_end = false;
  for (const auto& w : ac.window_columns) {
    if (w == "window_start") spec->emit_window_start = true;
    if (w == "window_end") spec->emit_window_end = true;
  }
  ASSIGN_OR_RETURN(spec->time, expr::Compile(ac.time_expr, *schema, ac.time_where));
  if (spec->time->type() != Type::kTimestamp) {
    return Status::InvalidArgument(At(ac.time_where) + ": aggregate time must be a timestamp, this is " +
                                   std::string(TypeName(spec->time->type())));
  }
  const Schema without_window = *schema;
  spec->window_start_slot = schema->Add({"window_start", Type::kTimestamp, ""});
  spec->window_end_slot = schema->Add({"window_end", Type::kTimestamp, ""});
  for (const auto& kc : ac.keys) {
    ASSIGN_OR_RETURN(KeySpec k, CompileKey(kc, *schema, *spec, without_window));
    spec->keys.push_back(std::move(k));
  }
  for (const auto& mc : ac.metrics) {
    MetricSpec m;
    RETURN_IF_ERROR(CompileMetric(mc, *schema, &m));
    if (spec->hopping()) RETURN_IF_ERROR(CheckHoppingMetric(mc, without_window));
    for (const auto& k : spec->keys) {
      if (k.name == m.name) {
        return Status::InvalidArgument(At(mc.where) + ": metric '" + m.name + "' has the name of a key");
      }
    }
    spec->metrics.push_back(std::move(m));
  }
  return spec;
}

/// Compiles the output columns of a pipeline without an aggregate.
Status CompileSelect(const PipelineConfig& config, Plan* plan) {
  for (const auto& sc : config.select) {
    SelectColumn c;
    c.name = sc.name;
    ASSIGN_OR_RETURN(c.expr, expr::Compile(sc.text, plan->schema, sc.where));
    plan->select.push_back(std::move(c));
  }
  return Status::OK();
}

}  // namespace

Schema Plan::OutputSchema() const {
  if (aggregate) return aggregate->OutputSchema();
  Schema out;
  if (select.empty()) {
    for (const auto& f : input.fields()) out.Add({f.name, f.type, ""});
    return out;
  }
  for (const auto& c : select) out.Add({c.name, c.expr->type(), ""});
  return out;
}

namespace {

/// Checks [source] keyed_by: each entry names a group key of the aggregate that comes from the
/// record (not from the window), since it promises that records of one group share a partition.
Status CheckKeyedBy(const PipelineConfig& config, const Plan& plan) {
  const SourceConfig& src = config.source;
  if (src.keyed_by.empty()) return Status::OK();
  if (!plan.aggregate) {
    return Status::InvalidArgument(At(src.keyed_by_list_where) +
                                   ": [source] keyed_by names group-key columns of [aggregate], and this "
                                   "pipeline has no [aggregate]; leave keyed_by out");
  }
  std::string keys;
  for (const KeySpec& k : plan.aggregate->keys) keys += (keys.empty() ? "" : ", ") + k.name;
  if (keys.empty()) keys = "none";
  for (size_t i = 0; i < src.keyed_by.size(); ++i) {
    const std::string& name = src.keyed_by[i];
    const expr::SourceLocation& where = i < src.keyed_by_where.size() ? src.keyed_by_where[i] : src.keyed_by_list_where;
    const KeySpec* key = nullptr;
    for (const KeySpec& k : plan.aggregate->keys) {
      if (k.name == name) key = &k;
    }
    if (!key) {
      std::string what = "unknown column '" + name + "'";
      if (name == "window_start" || name == "window_end") {
        what = "'" + name + "' is the window, not a group key";
      } else if (plan.schema.IndexOf(name)) {
        what = "'" + name + "' is a field but not a group key of [aggregate]";
      }
      return Status::InvalidArgument(At(where) + ": [source] keyed_by: " + what + " (the aggregate's keys: " +
                                     keys + ")");
    }
    if (key->uses_window) {
      return Status::InvalidArgument(At(where) + ": [source] keyed_by: the group key '" + name +
                                     "' is computed from the window; keyed_by names keys that come from the "
                                     "record (the aggregate's keys: " + keys + ")");
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<Plan>> BuildPlan(const PipelineConfig& config) {
  auto plan = std::make_unique<Plan>();
  plan->config = &config;
  RETURN_IF_ERROR(DeclareInputFields(config, plan.get()));
  RETURN_IF_ERROR(LoadDimensions(config, plan.get()));
  RETURN_IF_ERROR(CompileSteps(config, plan.get()));
  if (config.aggregate) {
    ASSIGN_OR_RETURN(plan->aggregate, CompileAggregate(*config.aggregate, &plan->schema));
  } else {
    RETURN_IF_ERROR(CompileSelect(config, plan.get()));
  }
  RETURN_IF_ERROR(CheckKeyedBy(config, *plan));
  RETURN_IF_ERROR(CheckRepartitionPartitions(config));
  return plan;
}

std::string DescribePlan(const Plan& plan) {
  std::ostringstream out;
  const PipelineConfig& c = *plan.config;
  out << "pipeline " << c.name << " (" << c.file << (c.language == "toml" ? "" : ", " + c.language) << ")\n";
  out << "  source   " << c.source.name << ": " << c.source.uri;
  if (!c.source.keyed_by.empty()) {
    out << " (keyed by ";
    for (size_t i = 0; i < c.source.keyed_by.size(); ++i) out << (i ? ", " : "") << c.source.keyed_by[i];
    out << ")";
  }
  out << "\n";
  out << "  fields   ";
  for (size_t i = 0; i < plan.input.size(); ++i) {
    out << (i ? ", " : "") << plan.input.field(i).name << " " << TypeName(plan.input.field(i).type);
  }
  out << "\n";
  for (const auto& [name, dim] : plan.dimensions) {
    auto table = dim->snapshot();
    out << "  dimension " << name << ": " << dim->config().uri << ", " << table->size() << " keys by "
        << table->fields().field(table->key_index()).name;
    if (dim->refresh().interval_micros > 0) {
      out << ", refreshed every " << FormatDouble(dim->refresh().interval_micros / 1e6) << "s";
    }
    out << "\n";
  }
  int n = 1;
  for (const auto& step : plan.steps) {
    StepDescription d;
    step->Describe(&d);
    out << "  step " << n++ << "   " << d.summary << "\n";
  }
  if (plan.aggregate) {
    const AggregateConfig& a = *c.aggregate;
    out << "  aggregate ";
    if (plan.aggregate->hopping()) {
      out << "hopping " << FormatDouble(a.window_micros / 1e6) << "s windows every "
          << FormatDouble(plan.aggregate->slide() / 1e6) << "s (each record in "
          << plan.aggregate->windows_per_record() << ")";
    } else {
      out << "tumbling " << FormatDouble(a.window_micros / 1e6) << "s windows";
    }
    out << " on " << a.time_expr << ", " << a.mode << " mode\n";
    out << "    event time: watermark delay " << FormatDouble(a.watermark_delay_micros / 1e6)
        << "s, idle timeout " << FormatDouble(a.idle_timeout_micros / 1e6) << "s, "
        << (a.allowed_lateness_micros < 0
                ? std::string("no record is late")
                : "late after the window end + " + FormatDouble(a.allowed_lateness_micros / 1e6) + "s")
        << "\n";
    out << "    keys    ";
    for (size_t i = 0; i < a.keys.size(); ++i) out << (i ? ", " : "") << a.keys[i].name;
    out << "\n";
    for (const auto& m : a.metrics) out << "    metric  " << m.name << " = " << m.text << "\n";
  }
  out << DescribeRepartition(DecideRepartition(c));
  Schema output = plan.OutputSchema();
  out << "  output   ";
  for (size_t i = 0; i < output.size(); ++i) {
    out << (i ? ", " : "") << output.field(i).name << " " << TypeName(output.field(i).type);
  }
  out << "\n  sink     " << c.sink.uri << (c.sink.table.empty() ? "" : " table " + c.sink.table) << "\n";
  return out.str();
}

}  // namespace sluice
