#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "expr/node.h"

namespace sluice::expr::internal {

/// Describes one built-in function: its arity and how to type-check and build its node.
struct FunctionSpec {
  std::string_view name;  ///< lower case
  int min_args;
  int max_args;  ///< -1 for variadic
  /// Builds the node; the arity is already checked. `pos` is where the name is written.
  Result<Operand> (*build)(std::vector<Operand>& args, size_t pos, const Diag& diag);
};

/// Returns the function called `lower_name`, or nullptr.
const FunctionSpec* FindFunction(std::string_view lower_name);

/// Returns every function, for suggestions.
std::span<const FunctionSpec> AllFunctions();

}  // namespace sluice::expr::internal
