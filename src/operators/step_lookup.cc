// lookup: copies a dimension row's fields into the record, and what happens when the key is
// missing (on_missing: default, drop, dead_letter, or hold and then one of those).

#include <algorithm>

#include "operators/step_kinds.h"

namespace sluice::steps {
namespace {

enum class Missing { kDefault, kDrop, kDeadLetter, kHold };

Missing ParseMissing(const std::string& s) {
  if (s == "drop") return Missing::kDrop;
  if (s == "dead_letter") return Missing::kDeadLetter;
  if (s == "hold") return Missing::kHold;
  return Missing::kDefault;  // the config loader accepts nothing else
}

std::string FormatDuration(int64_t micros) {
  if (micros % 1'000'000 == 0) return std::to_string(micros / 1'000'000) + "s";
  return std::to_string(micros / 1000) + "ms";
}

Result<Value> CompileDefault(const std::string& text, Type type, const std::string& where) {
  Schema empty;
  ASSIGN_OR_RETURN(auto lit, expr::Compile(text, empty, {}));
  Value v = lit->Eval({});
  if (v.is_null()) return v;
  if (v.type() == type) return v;
  if (type == Type::kDouble && v.type() == Type::kInt64) return Value::Double(v.AsDouble());
  return Status::InvalidArgument(where + ": default " + text + " is not a " +
                                 std::string(TypeName(type)));
}

class LookupStep final : public Step {
 public:
  /// One field copied: the row slot it goes to, the dimension column it comes from, and the
  /// value written when the key is missing with on_missing = default.
  struct Field {
    size_t slot;
    size_t column;
    Value fallback;
  };

  LookupStep(const StepConfig& config, std::unique_ptr<expr::Expr> key, Dimension* dim,
             std::vector<Field> fields)
      : config_(config),
        key_(std::move(key)),
        dim_(dim),
        fields_(std::move(fields)),
        missing_(ParseMissing(config.on_missing)),
        then_(ParseMissing(config.then)) {}

  Outcome Apply(std::span<Value> row, StepContext& ctx) const override {
    Value key_scratch;
    const Value& key = key_->EvalRef(row, key_scratch);
    const std::vector<Value>* found = key.is_null() ? nullptr : ctx.snapshot->Find(key);
    if (found) {
      for (const Field& f : fields_) row[f.slot] = (*found)[f.column];
      return Outcome::kContinue;
    }
    return Missed(key, row, ctx);
  }

  void Describe(StepDescription* out) const override {
    out->kind = "lookup";
    out->target = config_.target;
    out->expr = config_.expr;
    out->reason = config_.reason;
    out->counting = counting();
    out->fields = config_.fields;
    out->summary = "lookup " + config_.target + " by " + config_.expr + " -> ";
    for (size_t f = 0; f < config_.fields.size(); ++f) {
      out->summary += (f ? ", " : "") + config_.fields[f];
    }
    out->summary += " (missing: " + config_.on_missing + ")";
    out->slots.clear();
    for (const Field& f : fields_) out->slots.push_back(f.slot);
    auto table = dim_->snapshot();
    out->dimension_key = table->fields().field(table->key_index()).name;
    out->on_missing = config_.on_missing;
    out->holds = missing_ == Missing::kHold;
    if (out->holds) {
      out->hold_seconds = static_cast<double>(config_.hold_micros) / 1e6;
      out->then = config_.then;
    }
    out->defaults.assign(config_.defaults.begin(), config_.defaults.end());
  }

  StepCounting counting() const override { return StepCounting::kLookupMisses; }
  Dimension* dimension() const override { return dim_; }

 private:
  /// The key is not in this batch's snapshot: on_missing says what happens.
  Outcome Missed(const Value& key, std::span<Value> row, StepContext& ctx) const {
    if (!ctx.retrying) dim_->RecordMiss();
    Missing policy = missing_;
    if (policy == Missing::kHold) {
      // A late-arriving dimension row: the worker keeps the record and retries it between
      // batches until the hold expires.
      if (!ctx.retrying) {
        ctx.hold_until_micros = ctx.wall_clock() + config_.hold_micros;
        return Outcome::kHold;
      }
      if (ctx.wall_clock() < ctx.retry_deadline_micros) return Outcome::kHold;
      policy = then_;
    }
    switch (policy) {
      case Missing::kDrop:
        return Outcome::kIgnored;
      case Missing::kDeadLetter:
        ctx.reason = "no " + config_.target + " for key " + key.ToString();
        if (missing_ == Missing::kHold) {
          ctx.reason += " after holding it " + FormatDuration(config_.hold_micros);
        }
        return Outcome::kDeadLetter;
      case Missing::kDefault:
      case Missing::kHold:  // `then` is never hold
        break;
    }
    for (const Field& f : fields_) row[f.slot] = f.fallback;
    return Outcome::kDefaulted;
  }

  const StepConfig config_;
  const std::unique_ptr<expr::Expr> key_;
  Dimension* const dim_;  ///< owned by the plan's DimensionMap
  const std::vector<Field> fields_;
  const Missing missing_;
  const Missing then_;
};

/// Gives one field the lookup copies its slot in `schema` (a new field, or an existing one of
/// the same type) and its default.
Result<LookupStep::Field> CompileField(const StepConfig& sc, const DimensionTable& dim,
                                       const std::string& f, Schema* schema) {
  auto col = dim.fields().IndexOf(f);
  if (!col) {
    return Status::InvalidArgument(At(sc.where) + ": dimension " + sc.target + " has no field '" +
                                   f + "'");
  }
  Type t = dim.fields().field(*col).type;
  auto existing = schema->IndexOf(f);
  size_t slot;
  if (existing) {
    if (schema->field(*existing).type != t) {
      return Status::InvalidArgument(At(sc.where) + ": lookup field " + f +
                                     " clashes with an existing field of another type");
    }
    slot = *existing;
  } else {
    slot = schema->Add({f, t, ""});
  }
  Value def;
  auto d = sc.defaults.find(f);
  if (d != sc.defaults.end()) {
    ASSIGN_OR_RETURN(def, CompileDefault(d->second, t, At(sc.where)));
  }
  return LookupStep::Field{slot, *col, std::move(def)};
}

}  // namespace

/// Binds the lookup to its dimension (loaded with the plan) and its fields to slots.
Result<std::unique_ptr<Step>> MakeLookup(const StepConfig& sc, std::unique_ptr<expr::Expr> key,
                                         Schema* schema, const DimensionMap& dimensions) {
  auto it = dimensions.find(sc.target);
  if (it == dimensions.end()) {
    return Status::InvalidArgument(At(sc.where) + ": lookup of unknown dimension '" + sc.target +
                                   "' (declare [dimension." + sc.target + "])");
  }
  std::shared_ptr<const DimensionTable> snapshot = it->second->snapshot();
  const DimensionTable& dim = *snapshot;
  if (key->type() != dim.key_type()) {
    return Status::InvalidArgument(At(sc.where) + ": lookup key is " +
                                   std::string(TypeName(key->type())) +
                                   " but the key of dimension " + sc.target + " is " +
                                   std::string(TypeName(dim.key_type())));
  }
  std::vector<LookupStep::Field> fields;
  for (const auto& f : sc.fields) {
    ASSIGN_OR_RETURN(auto field, CompileField(sc, dim, f, schema));
    fields.push_back(std::move(field));
  }
  for (const auto& [k, v] : sc.defaults) {
    if (std::find(sc.fields.begin(), sc.fields.end(), k) == sc.fields.end()) {
      return Status::InvalidArgument(At(sc.where) + ": default for '" + k +
                                     "', which is not one of the lookup fields");
    }
  }
  return std::unique_ptr<Step>(
      new LookupStep(sc, std::move(key), it->second.get(), std::move(fields)));
}

}  // namespace sluice::steps
