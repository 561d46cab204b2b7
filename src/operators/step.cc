#include "operators/step.h"

#include "operators/step_kinds.h"

namespace sluice {
namespace {

/// Every step kind and how it is built. Adding a kind is one Step class (step_*.cc), one row
/// here and its tests (operators/tests/step_test.cc); the TOML and SQL front ends produce its
/// StepConfig.
struct StepKindEntry {
  StepConfig::Kind kind;
  steps::Factory make;
};

constexpr StepKindEntry kStepKinds[] = {
    {StepConfig::Kind::kLet, &steps::MakeDerive},
    {StepConfig::Kind::kFilter, &steps::MakeFilter},
    {StepConfig::Kind::kIgnoreIf, &steps::MakeIgnoreIf},
    {StepConfig::Kind::kDeadLetterIf, &steps::MakeDeadLetterIf},
    {StepConfig::Kind::kLookup, &steps::MakeLookup},
};

const StepKindEntry* FindKind(StepConfig::Kind kind) {
  for (const auto& e : kStepKinds) {
    if (e.kind == kind) return &e;
  }
  return nullptr;
}

}  // namespace

Result<std::unique_ptr<Step>> MakeStep(const StepConfig& config, Schema* schema,
                                       const DimensionMap& dimensions) {
  const StepKindEntry* e = FindKind(config.kind);
  if (e == nullptr) {
    return Status::Internal(steps::At(config.where) + ": a step of a kind sluice does not know");
  }
  ASSIGN_OR_RETURN(auto compiled, expr::Compile(config.expr, *schema, config.where));
  return e->make(config, std::move(compiled), schema, dimensions);
}

}  // namespace sluice
