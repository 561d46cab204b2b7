#include "runtime/columnar.h"

#include <cstdlib>
#include <optional>
#include <set>
#include <string_view>

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
      case StepConfig::Kind::kLookup: return out;
    }
    auto compiled = expr::Compile(step.expr, plan.schema, step.where);
    if (!compiled.ok()) return out;
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
