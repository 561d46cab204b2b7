// derive (`let`): sets a field to an expression's value.

#include "operators/step_kinds.h"

namespace sluice::steps {
namespace {

class DeriveStep final : public Step {
 public:
  DeriveStep(const StepConfig& config, std::unique_ptr<expr::Expr> value, size_t slot, Type type)
      : config_(config), value_(std::move(value)), slot_(slot), type_(type) {}

  Outcome Apply(std::span<Value> row, StepContext&) const override {
    Value scratch;
    const Value& v = value_->EvalRef(row, scratch);
    if (&v != &row[slot_]) row[slot_] = v;
    return Outcome::kContinue;
  }

  void Describe(StepDescription* out) const override {
    out->kind = "derive";
    out->summary = "let " + config_.target + " = " + config_.expr;
    out->target = config_.target;
    out->type = std::string(TypeName(type_));
    out->expr = config_.expr;
    out->reason = config_.reason;
    out->counting = counting();
    out->slots = {slot_};
  }

  StepCounting counting() const override { return StepCounting::kNothing; }

 private:
  const StepConfig config_;
  const std::unique_ptr<expr::Expr> value_;
  const size_t slot_;
  const Type type_;  ///< the field's type in the row
};

}  // namespace

/// Gives the step its slot: the field it names when it exists (of the same type), else a new
/// field of the expression's type.
Result<std::unique_ptr<Step>> MakeDerive(const StepConfig& sc, std::unique_ptr<expr::Expr> value,
                                         Schema* schema, const DimensionMap&) {
  Type t = value->type();
  auto existing = schema->IndexOf(sc.target);
  size_t slot;
  if (existing) {
    Type old = schema->field(*existing).type;
    if (old != t && t != Type::kNull) {
      return Status::InvalidArgument(At(sc.where) + ": let " + sc.target +
                                     " changes its type from " + std::string(TypeName(old)) +
                                     " to " + std::string(TypeName(t)) + "; use a new name");
    }
    slot = *existing;
  } else {
    if (t == Type::kNull) {
      return Status::InvalidArgument(At(sc.where) + ": cannot infer the type of " + sc.target);
    }
    slot = schema->Add({sc.target, t, ""});
  }
  Type field_type = schema->field(slot).type;
  return std::unique_ptr<Step>(new DeriveStep(sc, std::move(value), slot, field_type));
}

}  // namespace sluice::steps
