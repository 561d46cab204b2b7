// The condition steps: filter (`keep if`), ignore_if and dead_letter_if.

#include "operators/step_kinds.h"

namespace sluice::steps {
namespace {

/// One boolean condition; `kKeepWhenTrue` says whether a true condition keeps the record
/// (filter) or diverts it (ignore_if, dead_letter_if) with outcome `kDiverted`.
template <bool kKeepWhenTrue, Step::Outcome kDiverted>
class ConditionStep final : public Step {
 public:
  ConditionStep(const StepConfig& config, std::unique_ptr<expr::Expr> condition,
                std::string_view kind, std::string_view verb)
      : config_(config), condition_(std::move(condition)), kind_(kind), verb_(verb) {}

  Outcome Apply(std::span<Value> row, StepContext& ctx) const override {
    if (condition_->EvalTrue(row) == kKeepWhenTrue) return Outcome::kContinue;
    if constexpr (kDiverted == Outcome::kDeadLetter) ctx.reason = config_.reason;
    return kDiverted;
  }

  void Describe(StepDescription* out) const override {
    out->kind = std::string(kind_);
    out->summary = std::string(verb_) + " " + config_.expr;
    out->expr = config_.expr;
    out->reason = config_.reason;
    out->counting = counting();
  }

  StepCounting counting() const override {
    return kDiverted == Outcome::kDeadLetter ? StepCounting::kDeadLettered : StepCounting::kIgnored;
  }

 private:
  const StepConfig config_;
  const std::unique_ptr<expr::Expr> condition_;
  const std::string_view kind_, verb_;
};

/// Refuses a condition that is not boolean.
Status CheckCondition(const StepConfig& sc, const expr::Expr& condition) {
  if (condition.type() != Type::kBool) {
    return Status::InvalidArgument(At(sc.where) + ": a condition must be boolean, this is " +
                                   std::string(TypeName(condition.type())));
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<Step>> MakeFilter(const StepConfig& sc,
                                         std::unique_ptr<expr::Expr> condition, Schema*,
                                         const DimensionMap&) {
  RETURN_IF_ERROR(CheckCondition(sc, *condition));
  return std::unique_ptr<Step>(new ConditionStep<true, Step::Outcome::kIgnored>(
      sc, std::move(condition), "filter", "keep if"));
}

Result<std::unique_ptr<Step>> MakeIgnoreIf(const StepConfig& sc,
                                           std::unique_ptr<expr::Expr> condition, Schema*,
                                           const DimensionMap&) {
  RETURN_IF_ERROR(CheckCondition(sc, *condition));
  return std::unique_ptr<Step>(new ConditionStep<false, Step::Outcome::kIgnored>(
      sc, std::move(condition), "ignore_if", "ignore if"));
}

Result<std::unique_ptr<Step>> MakeDeadLetterIf(const StepConfig& sc,
                                               std::unique_ptr<expr::Expr> condition, Schema*,
                                               const DimensionMap&) {
  RETURN_IF_ERROR(CheckCondition(sc, *condition));
  return std::unique_ptr<Step>(new ConditionStep<false, Step::Outcome::kDeadLetter>(
      sc, std::move(condition), "dead_letter_if", "dead-letter if"));
}

}  // namespace sluice::steps
