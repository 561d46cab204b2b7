#pragma once

// The step kinds MakeStep knows (step.cc registers each in its table). Private to
// src/operators/step*.cc.

#include <memory>
#include <string>

#include "expr/expr.h"
#include "operators/step.h"

namespace sluice::steps {

/// Builds one kind of step from its config and its compiled expression (the value, the
/// condition or the lookup key, compiled against `schema` by MakeStep).
using Factory = Result<std::unique_ptr<Step>> (*)(const StepConfig& config,
                                                   std::unique_ptr<expr::Expr> expr, Schema* schema,
                                                   const DimensionMap& dimensions);

Result<std::unique_ptr<Step>> MakeDerive(const StepConfig&, std::unique_ptr<expr::Expr>, Schema*,
                                         const DimensionMap&);
Result<std::unique_ptr<Step>> MakeFilter(const StepConfig&, std::unique_ptr<expr::Expr>, Schema*,
                                         const DimensionMap&);
Result<std::unique_ptr<Step>> MakeIgnoreIf(const StepConfig&, std::unique_ptr<expr::Expr>, Schema*,
                                           const DimensionMap&);
Result<std::unique_ptr<Step>> MakeDeadLetterIf(const StepConfig&, std::unique_ptr<expr::Expr>,
                                               Schema*, const DimensionMap&);
Result<std::unique_ptr<Step>> MakeLookup(const StepConfig&, std::unique_ptr<expr::Expr>, Schema*,
                                         const DimensionMap&);

/// "file:line:column" of a step's expression, the prefix of its errors (in a .sql pipeline, the
/// SQL token the expression starts with).
inline std::string At(const expr::SourceLocation& w) { return expr::Locate(w); }

}  // namespace sluice::steps
