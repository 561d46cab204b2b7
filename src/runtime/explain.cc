#include "runtime/explain.h"

#include <cctype>
#include <sstream>

#include "core/json_builder.h"
#include "core/time.h"
#include "core/uri.h"
#include "operators/aggregate_function.h"
#include "runtime/repartition_plan.h"

namespace sluice {
namespace {

/// Puts an expression written over several lines on one: runs of white space outside quotes
/// become one space, leading and trailing ones go.
std::string OneLine(const std::string& text) {
  std::string out;
  bool quoted = false, space = false;
  for (char c : text) {
    if (!quoted && std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    if (c == '\'') quoted = !quoted;
    out += c;
  }
  return out;
}

std::string Seconds(double s) { return FormatDouble(s) + "s"; }

std::string Join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

/// The record format a source reads, as far as the configuration says.
std::string SourceFormat(const SourceConfig& source, const std::string& kind) {
  const std::string format = source.options.Has("format") ? source.options.GetString("format") : "";
  if (kind == "file") {
    if (!format.empty() && format != "auto") return format;
    const std::string path = SplitUri(source.uri).second.empty() ? source.uri : SplitUri(source.uri).second;
    auto ends = [&](const std::string& suffix) {
      return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".csv")) return "csv";
    if (ends(".ndjson") || ends(".jsonl") || ends(".json")) return "ndjson";
    return "auto (csv or ndjson, by content)";
  }
  if (kind == "kafka") return format.empty() ? "json" : format;
  if (kind == "http" || kind == "https") return "json pages";
  if (kind == "generator") {
    const std::string profile = source.options.Has("profile") ? source.options.GetString("profile") : "";
    return "generated events" + (profile.empty() ? std::string() : " (profile " + profile + ")");
  }
  if (kind == "mysql" || kind == "sqlite" || kind == "cassandra") return "table rows, read incrementally";
  return format;
}

/// Splits a metric's text "[round(]fn(arg)[, n)] [where cond] [default x]" into argument and
/// condition for display; the compiled MetricSpec has already checked it.
void MetricParts(const std::string& text, std::string* arg, std::string* where) {
  const size_t open = text.find('(');
  size_t w = std::string::npos;
  // " where " outside parentheses and quotes.
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i + 7 <= text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '\'') quoted = false;
      continue;
    }
    if (c == '\'') quoted = true;
    else if (c == '(') ++depth;
    else if (c == ')') --depth;
    else if (depth == 0 && text.compare(i, 7, " where ") == 0) {
      w = i;
      break;
    }
  }
  if (w != std::string::npos) {
    std::string cond = text.substr(w + 7);
    const size_t def = cond.rfind(" default ");
    if (def != std::string::npos) cond = cond.substr(0, def);
    *where = cond;
  }
  if (open == std::string::npos) return;
  // The innermost call's argument: round(avg(x), 2) -> x.
  std::string head = text.substr(0, w == std::string::npos ? text.size() : w);
  size_t start = head.rfind('(', head.find(')'));
  size_t end = head.find(')');
  if (start != std::string::npos && end != std::string::npos && end > start) {
    *arg = head.substr(start + 1, end - start - 1);
    if (*arg == "*") arg->clear();
  }
}

}  // namespace

SinkContext SinkContextFor(const PipelineConfig& config, const Plan& plan) {
  SinkContext ctx;
  ctx.pipeline = config.name;
  ctx.aggregate = plan.aggregate.get();
  ctx.output = plan.OutputSchema();
  if (plan.aggregate) ctx.key_columns = plan.aggregate->KeyColumns();
  return ctx;
}

Result<PipelineExplanation> ExplainPipeline(const Plan& plan, ::sluice::Sink* sink,
                                            const std::string& dead_letters) {
  const PipelineConfig& c = *plan.config;
  PipelineExplanation e;
  e.name = c.name;
  e.file = c.file;
  e.language = c.language;
  e.checkpoint_interval_seconds = static_cast<double>(c.checkpoint_interval_micros) / 1e6;

  e.source.name = c.source.name;
  e.source.uri = c.source.uri;
  auto [scheme, rest] = SplitUri(c.source.uri);
  e.source.kind = scheme.empty() ? "file" : scheme;
  e.source.format = SourceFormat(c.source, e.source.kind);
  for (size_t i = 0; i < plan.input.size(); ++i) {
    const Field& f = plan.input.field(i);
    e.source.fields.push_back({f.name, std::string(TypeName(f.type)), f.path});
  }

  for (const auto& [name, dim] : plan.dimensions) {
    auto table = dim->snapshot();
    PipelineExplanation::Dimension d;
    d.name = name;
    d.uri = dim->config().uri;
    d.key = table->fields().field(table->key_index()).name;
    for (size_t i = 0; i < table->fields().size(); ++i) {
      d.fields.push_back({table->fields().field(i).name, std::string(TypeName(table->fields().field(i).type)), ""});
    }
    d.rows = static_cast<int64_t>(table->size());
    d.refresh_seconds = static_cast<double>(dim->refresh().interval_micros) / 1e6;
    e.dimensions.push_back(std::move(d));
  }

  for (size_t i = 0; i < plan.steps.size(); ++i) {
    StepDescription d;
    plan.steps[i]->Describe(&d);
    PipelineExplanation::Step s;
    s.number = static_cast<int>(i) + 1;
    s.kind = std::move(d.kind);
    s.expr = OneLine(d.expr);
    s.reason = std::move(d.reason);
    s.target = std::move(d.target);
    s.type = std::move(d.type);
    s.fields = std::move(d.fields);
    s.dimension_key = std::move(d.dimension_key);
    s.on_missing = std::move(d.on_missing);
    s.hold_seconds = d.hold_seconds;
    s.then = std::move(d.then);
    s.defaults = std::move(d.defaults);
    e.steps.push_back(std::move(s));
  }

  std::string needs;
  if (plan.aggregate) {
    const AggregateSpec& spec = *plan.aggregate;
    const AggregateConfig& ac = *c.aggregate;
    PipelineExplanation::Aggregate a;
    a.time = OneLine(ac.time_expr);
    a.window_seconds = static_cast<double>(spec.window_micros) / 1e6;
    a.window = spec.hopping() ? "hopping" : "tumbling";
    a.slide_seconds = static_cast<double>(spec.slide()) / 1e6;
    a.windows_per_record = spec.windows_per_record();
    a.mode = spec.append_mode ? "append" : "update";
    a.watermark_delay_seconds = static_cast<double>(spec.watermark_delay_micros) / 1e6;
    a.idle_timeout_seconds = static_cast<double>(spec.idle_timeout_micros) / 1e6;
    a.allowed_lateness_seconds =
        spec.allowed_lateness_micros < 0 ? -1 : static_cast<double>(spec.allowed_lateness_micros) / 1e6;
    if (spec.emit_window_start) a.window_columns.push_back("window_start");
    if (spec.emit_window_end) a.window_columns.push_back("window_end");
    for (size_t i = 0; i < spec.keys.size(); ++i) {
      const ColumnConfig& kc = ac.keys[i];
      a.keys.push_back({spec.keys[i].name, std::string(TypeName(spec.keys[i].type)),
                        kc.text == kc.name ? std::string() : OneLine(kc.text)});
    }
    for (size_t i = 0; i < spec.metrics.size(); ++i) {
      const MetricSpec& m = spec.metrics[i];
      PipelineExplanation::Metric me;
      me.name = m.name;
      const AggregateFunction& f = FunctionOf(m);
      me.function = std::string(f.name);
      me.text = OneLine(ac.metrics[i].text);
      MetricParts(me.text, &me.argument, &me.where);
      me.type = std::string(TypeName(m.result_type));
      me.state = f.kept_state(m, me.argument);
      if (!spec.append_mode) {
        for (const StoredColumn& col : f.stored_columns(m)) {
          if (col.hidden) me.internal_columns.push_back(col.name);
        }
      }
      a.metrics.push_back(std::move(me));
    }
    if (spec.append_mode) {
      needs = "mode = \"append\" (windows stay open until the watermark passes their end)";
    } else if (spec.allowed_lateness_micros >= 0) {
      needs = "allowed_lateness (records later than that are dead-lettered)";
    }
    e.aggregate = std::move(a);
  } else {
    for (size_t i = 0; i < plan.select.size(); ++i) {
      const ColumnConfig& sc = c.select[i];
      e.select.push_back({plan.select[i].name, std::string(TypeName(plan.select[i].expr->type())),
                          sc.text == sc.name ? std::string() : OneLine(sc.text)});
    }
  }
  if (needs.empty() && plan.holds) needs = "on_missing = \"hold\" (held records wait for their dimension row)";
  e.state_needed = needs;
  if (e.aggregate && !needs.empty()) e.aggregate->state_stored = "with each checkpoint, in the sink";

  const Schema output = plan.OutputSchema();
  for (size_t i = 0; i < output.size(); ++i) {
    e.output.push_back({output.field(i).name, std::string(TypeName(output.field(i).type)), ""});
  }

  e.sink.uri = c.sink.uri;
  e.sink.kind = SplitUri(c.sink.uri).first;
  e.sink.table = c.sink.table;
  const SinkContext ctx = SinkContextFor(c, plan);
  e.sink.key = ctx.key_columns;
  if (e.sink.key.empty() && c.sink.options.Has("key")) {
    // A pipeline without an aggregate: the sink's `key` option ("id" or ["a", "b"], kept as
    // "a,b") names the columns rows are upserted by.
    std::string item;
    for (char ch : c.sink.options.GetString("key") + ",") {
      if (ch != ',') {
        if (!std::isspace(static_cast<unsigned char>(ch))) item += ch;
        continue;
      }
      if (!item.empty()) e.sink.key.push_back(item);
      item.clear();
    }
  }
  if (auto* explainer = dynamic_cast<SinkExplainer*>(sink)) {
    ASSIGN_OR_RETURN(e.sink.details, explainer->Explain(ctx));
    e.sink.explained = true;
  }
  e.dead_letters = dead_letters;
  const RepartitionDecision rd = DecideRepartition(c);
  e.repartition.would = rd.would;
  e.repartition.reason = RepartitionReasonName(rd.reason);
  e.repartition.why = rd.why;
  e.repartition.topic = rd.topic;
  e.repartition.partitions = rd.partitions;
  e.repartition.built = kRepartitionBuilt;
  return e;
}

std::string FormatExplanation(const PipelineExplanation& e) {
  std::ostringstream out;
  auto columns = [](const std::vector<PipelineExplanation::Column>& cols, bool with_expr) {
    std::string s;
    for (const auto& c : cols) {
      s += (s.empty() ? "" : ", ") + c.name + " " + c.type;
      if (with_expr && !c.expr.empty()) s += " (" + c.expr + ")";
    }
    return s;
  };
  out << "pipeline " << e.name << " (" << e.file << ", " << e.language << "), checkpoint every "
      << Seconds(e.checkpoint_interval_seconds) << "\n";
  int n = 0;
  const auto& s = e.source;
  out << "[" << n++ << "] source " << s.name << ": " << s.uri << "\n";
  out << "      kind " << s.kind << ", format " << s.format << "\n";
  out << "      reads " << columns(s.fields, true) << "\n";
  if (e.aggregate) {
    out << "      event time " << e.aggregate->time << "; watermark = max event time - "
        << Seconds(e.aggregate->watermark_delay_seconds) << " per partition, the pipeline's is the "
        << "minimum over partitions (a partition idle " << Seconds(e.aggregate->idle_timeout_seconds)
        << " does not hold it back)\n";
  } else {
    out << "      no event time (no aggregate)\n";
  }
  for (const auto& st : e.steps) {
    out << "[" << n++ << "] step " << st.number << " " << st.kind;
    if (st.kind == "derive") {
      out << " " << st.target << " " << st.type << " = " << st.expr << "\n";
    } else if (st.kind == "lookup") {
      const PipelineExplanation::Dimension* dim = nullptr;
      for (const auto& d : e.dimensions) {
        if (d.name == st.target) dim = &d;
      }
      out << " in dimension " << st.target << " by " << st.dimension_key << " = " << st.expr << " -> "
          << Join(st.fields) << "\n";
      if (dim) {
        out << "      dimension " << dim->uri << ": " << dim->rows << " keys now, held in memory by every worker, "
            << (dim->refresh_seconds > 0 ? "refreshed every " + Seconds(dim->refresh_seconds) : std::string("loaded once"))
            << "\n";
      }
      out << "      key not found: " << st.on_missing;
      if (st.on_missing == "hold") out << " for " << Seconds(st.hold_seconds) << ", then " << st.then;
      if (!st.defaults.empty()) {
        out << " (";
        for (size_t i = 0; i < st.defaults.size(); ++i) {
          out << (i ? ", " : "") << st.defaults[i].first << " = " << st.defaults[i].second;
        }
        out << ")";
      }
      out << "\n";
    } else {
      const char* what = st.kind == "filter" ? "keep if " : st.kind == "ignore_if" ? "ignore if " : "dead-letter if ";
      out << ": " << what << st.expr << "\n";
      if (!st.reason.empty()) out << "      reason \"" << st.reason << "\"\n";
    }
  }
  if (e.aggregate) {
    const auto& a = *e.aggregate;
    out << "[" << n++ << "] aggregate " << a.window << " " << Seconds(a.window_seconds) << " windows";
    if (a.window == "hopping") out << " every " << Seconds(a.slide_seconds);
    out << " on " << a.time << ", " << a.mode << " mode\n";
    if (a.window == "hopping") {
      out << "      each record is added to the " << a.windows_per_record
          << " windows that hold it (state: up to " << a.windows_per_record << " groups per record)\n";
    }
    out << "      group by " << (a.window_columns.empty() ? std::string() : Join(a.window_columns) + ", ")
        << columns(a.keys, true) << "\n";
    out << "      lateness: "
        << (a.allowed_lateness_seconds < 0
                ? std::string("none (every record counts, whenever it comes)")
                : a.window == "hopping"
                      ? "a window whose end + " + Seconds(a.allowed_lateness_seconds) +
                            " is at or before the watermark takes no more records (counted as "
                            "late windows); a record no window takes is dead-lettered"
                      : "a record later than its window's end + " + Seconds(a.allowed_lateness_seconds) +
                            " behind the watermark is dead-lettered")
        << "\n";
    out << "      " << (a.mode == "append" ? "a window is emitted once, when the watermark passes its end"
                                           : "each checkpoint merges the groups it changed into the sink")
        << "\n";
    for (const auto& m : a.metrics) {
      out << "      metric " << m.name << " " << m.type << " = " << m.text << "\n";
      out << "        keeps " << m.state;
      if (!m.internal_columns.empty()) out << " (internal columns " << Join(m.internal_columns) << ")";
      out << "\n";
    }
    if (!a.state_stored.empty()) out << "      engine state (open windows, watermarks) stored " << a.state_stored << "\n";
  } else if (!e.select.empty()) {
    out << "[" << n++ << "] select " << columns(e.select, true) << "\n";
  }
  out << "[" << n++ << "] sink " << e.sink.uri << (e.sink.table.empty() ? "" : " table " + e.sink.table) << "\n";
  out << "      receives " << columns(e.output, false) << "\n";
  if (!e.sink.key.empty()) out << "      key " << Join(e.sink.key) << "\n";
  for (const auto& [k, v] : e.sink.details.facts) out << "      " << k << ": " << v << "\n";
  for (const auto& st : e.sink.details.statements) {
    out << "      " << st.role << " (" << st.dialect << "):\n        " << st.text << "\n";
  }
  out << "      dead letters -> " << e.dead_letters << "\n";
  if (!e.state_needed.empty()) out << "      keeps engine state for " << e.state_needed << "\n";
  const auto& rp = e.repartition;
  if (!rp.would) {
    out << "repartition: no, " << rp.why << "\n";
  } else {
    out << "repartition: when the source's topics have more than one partition in all, " << rp.why << "\n";
    out << "      stage one (a task per source partition): source, steps, lookups, partial aggregates -> topic "
        << rp.topic << " ("
        << (rp.partitions > 0 ? std::to_string(rp.partitions) + " partitions"
                              : std::string("as many partitions as the source's topics in all"))
        << ")\n";
    out << "      stage two (a task per partition of " << rp.topic
        << "): merge, a window emitted once when every upstream's watermark has passed it -> the sink\n";
    if (!rp.built) out << "      not built yet: sluice run reads this pipeline in one stage, as before (one process)\n";
  }
  return out.str();
}

std::string ExplanationJson(const PipelineExplanation& e) {
  JsonBuilder j;
  auto columns = [&](const char* key, const std::vector<PipelineExplanation::Column>& cols) {
    j.Key(key).BeginArray();
    for (const auto& c : cols) {
      j.BeginObject().Key("name").String(c.name).Key("type").String(c.type);
      if (!c.expr.empty()) j.Key("expr").String(c.expr);
      j.EndObject();
    }
    j.EndArray();
  };
  auto strings = [&](const char* key, const std::vector<std::string>& items) {
    j.Key(key).BeginArray();
    for (const auto& i : items) j.String(i);
    j.EndArray();
  };
  j.BeginObject();
  j.Key("pipeline").String(e.name).Key("file").String(e.file).Key("language").String(e.language);
  j.Key("checkpoint_interval_seconds").Double(e.checkpoint_interval_seconds);
  j.Key("source").BeginObject();
  j.Key("name").String(e.source.name).Key("uri").String(e.source.uri).Key("kind").String(e.source.kind);
  j.Key("format").String(e.source.format);
  j.Key("fields").BeginArray();
  for (const auto& f : e.source.fields) {
    j.BeginObject().Key("name").String(f.name).Key("type").String(f.type);
    if (!f.expr.empty()) j.Key("path").String(f.expr);
    j.EndObject();
  }
  j.EndArray();
  if (e.aggregate) {
    j.Key("event_time").String(e.aggregate->time);
    j.Key("watermark").BeginObject().Key("delay_seconds").Double(e.aggregate->watermark_delay_seconds);
    j.Key("idle_timeout_seconds").Double(e.aggregate->idle_timeout_seconds).EndObject();
  } else {
    j.Key("event_time").Null();
  }
  j.EndObject();
  j.Key("dimensions").BeginArray();
  for (const auto& d : e.dimensions) {
    j.BeginObject().Key("name").String(d.name).Key("uri").String(d.uri).Key("key").String(d.key);
    columns("fields", d.fields);
    j.Key("rows").Int(d.rows).Key("refresh_seconds").Double(d.refresh_seconds).EndObject();
  }
  j.EndArray();
  j.Key("steps").BeginArray();
  for (const auto& s : e.steps) {
    j.BeginObject().Key("number").Int(s.number).Key("kind").String(s.kind);
    if (!s.target.empty()) j.Key(s.kind == "lookup" ? "dimension" : "field").String(s.target);
    if (!s.type.empty()) j.Key("type").String(s.type);
    j.Key(s.kind == "lookup" ? "key" : "expr").String(s.expr);
    if (!s.reason.empty()) j.Key("reason").String(s.reason);
    if (s.kind == "lookup") {
      j.Key("dimension_key").String(s.dimension_key);
      strings("fields", s.fields);
      j.Key("on_missing").String(s.on_missing);
      if (s.on_missing == "hold") j.Key("hold_seconds").Double(s.hold_seconds).Key("then").String(s.then);
      j.Key("defaults").BeginObject();
      for (const auto& [k, v] : s.defaults) j.Key(k).String(v);
      j.EndObject();
    }
    j.EndObject();
  }
  j.EndArray();
  if (e.aggregate) {
    const auto& a = *e.aggregate;
    j.Key("aggregate").BeginObject();
    j.Key("time").String(a.time).Key("window").String(a.window).Key("window_seconds").Double(a.window_seconds);
    j.Key("slide_seconds").Double(a.slide_seconds);
    j.Key("mode").String(a.mode);
    j.Key("watermark_delay_seconds").Double(a.watermark_delay_seconds);
    j.Key("idle_timeout_seconds").Double(a.idle_timeout_seconds);
    if (a.allowed_lateness_seconds < 0) {
      j.Key("allowed_lateness_seconds").Null();
    } else {
      j.Key("allowed_lateness_seconds").Double(a.allowed_lateness_seconds);
    }
    strings("window_columns", a.window_columns);
    columns("keys", a.keys);
    j.Key("metrics").BeginArray();
    for (const auto& m : a.metrics) {
      j.BeginObject().Key("name").String(m.name).Key("function").String(m.function);
      j.Key("argument").String(m.argument).Key("where").String(m.where).Key("type").String(m.type);
      j.Key("text").String(m.text).Key("state").String(m.state);
      strings("internal_columns", m.internal_columns);
      j.EndObject();
    }
    j.EndArray();
    if (a.state_stored.empty()) {
      j.Key("state_stored").Null();
    } else {
      j.Key("state_stored").String(a.state_stored);
    }
    j.EndObject();
  } else {
    j.Key("aggregate").Null();
    columns("select", e.select);
  }
  columns("output", e.output);
  j.Key("sink").BeginObject();
  j.Key("uri").String(e.sink.uri).Key("kind").String(e.sink.kind).Key("table").String(e.sink.table);
  strings("key", e.sink.key);
  j.Key("facts").BeginObject();
  for (const auto& [k, v] : e.sink.details.facts) j.Key(k).String(v);
  j.EndObject();
  j.Key("statements").BeginArray();
  for (const auto& s : e.sink.details.statements) {
    j.BeginObject().Key("role").String(s.role).Key("dialect").String(s.dialect).Key("text").String(s.text).EndObject();
  }
  j.EndArray();
  j.EndObject();
  j.Key("dead_letters").String(e.dead_letters);
  if (e.state_needed.empty()) {
    j.Key("state_needed").Null();
  } else {
    j.Key("state_needed").String(e.state_needed);
  }
  j.Key("repartition").BeginObject();
  j.Key("would").Bool(e.repartition.would).Key("reason").String(e.repartition.reason);
  j.Key("why").String(e.repartition.why);
  if (e.repartition.would) {
    j.Key("topic").String(e.repartition.topic);
    if (e.repartition.partitions > 0) {
      j.Key("partitions").Int(e.repartition.partitions);
    } else {
      j.Key("partitions").Null();
    }
  }
  j.Key("built").Bool(e.repartition.built);
  j.EndObject();
  j.EndObject();
  return j.Take();
}

}  // namespace sluice
