#include "runtime/columnar.h"

#include <cstdlib>
#include <set>
#include <string_view>

namespace sluice {

std::string ColumnarIneligibility(const Plan& plan, const DecoderOptions& options) {
  if (options.format != DecoderOptions::Format::kNdjson) return "the input is not NDJSON";
  if (plan.holds) return "a lookup holds records (on_missing = \"hold\")";
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

std::vector<ColumnFilterStep> ColumnFilterPrefix(const Plan& plan) {
  std::vector<ColumnFilterStep> out;
  for (size_t k = 0; k < plan.steps.size(); ++k) {
    const CompiledStep& step = plan.steps[k];
    if (step.kind != StepConfig::Kind::kIgnoreIf && step.kind != StepConfig::Kind::kFilter) break;
    std::unique_ptr<ColumnCondition> condition = ColumnCondition::Make(*step.expr, plan.input);
    if (!condition) break;
    out.push_back(ColumnFilterStep{k, step.kind == StepConfig::Kind::kIgnoreIf, std::move(condition)});
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
