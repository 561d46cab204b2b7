#include "runtime/columnar.h"

#include <cstdlib>
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

std::vector<ColumnFilterStep> ColumnFilterPrefix(const Plan& plan) {
  std::vector<ColumnFilterStep> out;
  if (plan.config == nullptr) return out;
  // The conditions are compiled again from the pipeline's text against the declared fields
  // alone (the slots they read are the same in the working row): one that reads anything else
  // (_source, a derived field) does not compile here and ends the prefix.
  for (size_t k = 0; k < plan.config->steps.size(); ++k) {
    const StepConfig& step = plan.config->steps[k];
    if (step.kind != StepConfig::Kind::kIgnoreIf && step.kind != StepConfig::Kind::kFilter) break;
    auto compiled = expr::Compile(step.expr, plan.input, step.where);
    if (!compiled.ok() || (*compiled)->type() != Type::kBool) break;
    std::unique_ptr<ColumnCondition> condition = ColumnCondition::Make(**compiled, plan.input);
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
