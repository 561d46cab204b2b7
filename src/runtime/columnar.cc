#include "runtime/columnar.h"

#include <cstdlib>
#include <optional>
#include <set>
#include <string_view>

#include "expr/shape.h"

namespace sluice {

std::string ColumnarIneligibility(const Plan& plan, const DecoderOptions& options) {
  if (options.format != DecoderOptions::Format::kNdjson &&
      options.format != DecoderOptions::Format::kCsv) {
    return "the input is neither NDJSON nor CSV";
  }
  if (plan.holds) return "a lookup holds records (on_missing = \"hold\")";
  if (options.format == DecoderOptions::Format::kCsv) return "";  // columns are matched by name
  std::set<std::string_view> paths;
  for (size_t i = 0; i < plan.input.size(); ++i) {
    const std::string& path = plan.input.field(i).source_path();
    if (path.empty() || path.find('.') != std::string::npos) {
      return "field " + plan.input.field(i).name + " reads a nested path";
    }
    if (!paths.insert(path).second) return "two fields read the key " + path;
  }
  return "";
}

ColumnPrefix ColumnStepPrefix(const Plan& plan) {
  ColumnPrefix out;
  if (plan.config == nullptr) return out;
  // The type of the column each working-row slot has at this point of the steps (kNull: none).
  std::vector<Type> columns(plan.schema.size(), Type::kNull);
  for (size_t i = 0; i < plan.input.size(); ++i) columns[i] = plan.input.field(i).type;
  out.columns = columns;
  // The steps are compiled again from the pipeline's text against the working row (a field
  // resolves to the slot it had when the plan compiled the step, since fields are only ever
  // added); what reads a slot without a column (_source, a field a later or per-row step sets)
  // or uses another kind of node does not compile here and ends the prefix.
  for (size_t k = 0; k < plan.config->steps.size(); ++k) {
    const StepConfig& step = plan.config->steps[k];
    ColumnStep s;
    s.step = k;
    switch (step.kind) {
      case StepConfig::Kind::kIgnoreIf: s.kind = ColumnStep::Kind::kIgnoreIf; break;
      case StepConfig::Kind::kFilter: s.kind = ColumnStep::Kind::kFilter; break;
      case StepConfig::Kind::kDeadLetterIf: s.kind = ColumnStep::Kind::kDeadLetterIf; break;
      case StepConfig::Kind::kLet: s.kind = ColumnStep::Kind::kLet; break;
      case StepConfig::Kind::kLookup: s.kind = ColumnStep::Kind::kLookup; break;
    }
    auto compiled = expr::Compile(step.expr, plan.schema, step.where);
    if (!compiled.ok()) return out;
    if (s.kind == ColumnStep::Kind::kLookup) {
      // The key a field with a column of the dimension's key type; each field copied into a
      // column of its type (a new one, or the field's own).
      const Dimension* dimension = k < plan.steps.size() ? plan.steps[k]->dimension() : nullptr;
      if (dimension == nullptr || step.on_missing == "hold") return out;
      const std::shared_ptr<const DimensionTable> table = dimension->snapshot();
      const expr::Shape key = expr::Describe(**compiled);
      if (key.kind != expr::Shape::Kind::kField || key.slot >= columns.size() ||
          columns[key.slot] != table->key_type() ||
          (table->key_type() != Type::kInt64 && table->key_type() != Type::kString)) {
        return out;
      }
      s.slot = key.slot;
      std::vector<Type> after = columns;
      std::vector<std::pair<size_t, Type>> derived;
      for (const std::string& f : step.fields) {
        const std::optional<size_t> column = table->fields().IndexOf(f);
        const std::optional<size_t> slot = plan.schema.IndexOf(f);
        if (!column || !slot || *slot == plan.source_slot || *slot == plan.partition_slot ||
            *slot == plan.offset_slot) {
          return out;
        }
        const Type type = table->fields().field(*column).type;
        if (type == Type::kNull || plan.schema.field(*slot).type != type) return out;
        if (after[*slot] == Type::kNull) {
          if (*slot < plan.input.size()) return out;
          derived.emplace_back(*slot, type);
          after[*slot] = type;
        } else if (after[*slot] != type) {
          return out;
        }
        s.fields.push_back({*slot, *column});
      }
      columns = std::move(after);
      for (auto& d : derived) out.derived.push_back(d);
      out.columns = columns;
      out.steps.push_back(std::move(s));
      continue;
    }
    if (s.kind == ColumnStep::Kind::kLet) {
      const std::optional<size_t> slot = plan.schema.IndexOf(step.target);
      if (!slot || *slot == plan.source_slot || *slot == plan.partition_slot ||
          *slot == plan.offset_slot || plan.schema.field(*slot).type != (*compiled)->type()) {
        return out;
      }
      s.value = ColumnValue::Make(**compiled, columns);
      if (!s.value) return out;
      if (columns[*slot] == Type::kNull) {
        if (*slot < plan.input.size()) return out;
        out.derived.emplace_back(*slot, s.value->type());
        columns[*slot] = s.value->type();
      } else if (columns[*slot] != s.value->type()) {
        return out;
      }
      s.slot = *slot;
    } else {
      if ((*compiled)->type() != Type::kBool) return out;
      s.condition = ColumnCondition::Make(**compiled, columns);
      if (!s.condition) return out;
      s.reason = step.reason;
    }
    out.steps.push_back(std::move(s));
    out.columns = columns;
  }
  return out;
}

std::unique_ptr<AggregateColumns> AggregateColumnsOf(const Plan& plan, const ColumnPrefix& prefix,
                                                     const Value& source_kind) {
  if (!plan.aggregate || prefix.steps.size() != plan.steps.size()) return nullptr;
  const AggregateSpec& spec = *plan.aggregate;
  const std::vector<Type>& columns = prefix.columns;
  // The column a plain field reference reads, or -1.
  auto column_of = [&](const expr::Expr& e) -> int {
    const expr::Shape shape = expr::Describe(e);
    if (shape.kind != expr::Shape::Kind::kField || shape.slot >= columns.size() ||
        columns[shape.slot] == Type::kNull || columns[shape.slot] != e.type()) {
      return -1;
    }
    return static_cast<int>(shape.slot);
  };
  auto out = std::make_unique<AggregateColumns>();
  const int time = column_of(*spec.time);
  if (time < 0 || columns[static_cast<size_t>(time)] != Type::kTimestamp) return nullptr;
  out->time = static_cast<size_t>(time);
  for (const KeySpec& k : spec.keys) {
    if (k.window_expr) {
      out->keys.push_back(-1);
      continue;
    }
    if (k.uses_window || !k.expr) return nullptr;
    const int c = column_of(*k.expr);
    if (c < 0) return nullptr;
    out->keys.push_back(c);
  }
  for (const MetricSpec& m : spec.metrics) {
    std::unique_ptr<ColumnCondition> where;
    if (m.where) {
      where = ColumnCondition::Make(*m.where, columns);
      if (!where) return nullptr;
    }
    out->where.push_back(std::move(where));
    int arg = -1;
    Value constant;
    if (m.arg) {
      arg = column_of(*m.arg);
      if (arg < 0) {
        const expr::Shape shape = expr::Describe(*m.arg);
        if (shape.kind != expr::Shape::Kind::kField || shape.slot != plan.source_slot) return nullptr;
        constant = source_kind;
      }
    }
    out->args.push_back(arg);
    out->constants.push_back(std::move(constant));
  }
  return out;
}

bool ColumnarWanted() {
  const char* v = std::getenv("SLUICE_COLUMNAR");
  if (v == nullptr) return kColumnarByDefault;
  const std::string_view s(v);
  if (s == "0") return false;
  if (s == "1") return true;
  return kColumnarByDefault;
}

}  // namespace sluice
