#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/pipeline_config.h"
#include "core/schema.h"
#include "core/status.h"
#include "core/time.h"
#include "core/value.h"
#include "operators/dimension.h"

namespace sluice {

/// The dimensions a pipeline declared, by name (Plan::dimensions), for the lookup steps.
using DimensionMap = std::map<std::string, std::shared_ptr<Dimension>>;

/// What the worker's per-step counter of a step counts (the runner reports it by reason).
enum class StepCounting {
  kNothing,        ///< derive: nothing to count
  kIgnored,        ///< filter, ignore_if: records ignored, reported under the step's reason
  kDeadLettered,   ///< dead_letter_if: records dead-lettered, under the step's reason
  kLookupMisses,   ///< lookup: keys not found (each record once, not again when it is retried)
};

/// What a step says about itself: `sluice validate`, `sluice explain` and the runner's counts
/// read this, never the step's kind.
struct StepDescription {
  std::string kind;     ///< the kind's name: derive, filter, ignore_if, dead_letter_if, lookup
  std::string summary;  ///< one line for `sluice validate`: "let x = ...", "keep if ..."
  std::string target;   ///< derive: the field set; lookup: the dimension
  std::string type;     ///< derive: the type of the field
  std::string expr;     ///< the expression as written (lookup: the key)
  std::string reason;   ///< conditions: the reason records are counted (or dead-lettered) under
  StepCounting counting = StepCounting::kNothing;
  /// The row slots the step writes (derive: its field; lookup: one per field, in `fields` order).
  std::vector<size_t> slots;
  // lookup only
  std::vector<std::string> fields;  ///< the dimension's fields copied into the row
  std::string dimension_key;        ///< the dimension's key field
  std::string on_missing;           ///< default | drop | dead_letter | hold
  double hold_seconds = 0;          ///< on_missing = hold
  std::string then;                 ///< on_missing = hold: after the hold
  std::vector<std::pair<std::string, std::string>> defaults;  ///< field -> literal as written
  bool holds = false;               ///< may hold records (on_missing = hold)
};

/// What one worker gives a step for one record, and what the step gives back besides its
/// outcome. The worker owns it and reuses it for every record (no allocation per record).
struct StepContext {
  // In.
  /// A lookup step: its dimension's snapshot for this batch (Step::dimension()); null otherwise.
  const DimensionTable* snapshot = nullptr;
  bool retrying = false;              ///< the record is a held record processed again
  int64_t retry_deadline_micros = 0;  ///< retrying: the wall-clock time its hold expires
  int64_t (*wall_clock)() = &WallClockMicros;  ///< read only when a lookup misses with hold
  // Out, valid for the outcome returned.
  std::string reason;              ///< kDeadLetter: why
  int64_t hold_until_micros = 0;   ///< kHold, not retrying: when the hold expires
};

/// One compiled [[step]] (or the SQL clause that became one): immutable after planning.
///
/// Lifecycle and threads: made by MakeStep while the plan is built, owned by the plan until the
/// run ends. Every method is const and may be called from any thread at any time; Apply() runs
/// on every worker at once, and what differs per worker comes in the StepContext. The worker
/// owns counting, dead letters and held records; a step only says what happens to the record.
class Step {
 public:
  enum class Outcome {
    kContinue,    ///< the record goes on to the next step
    kDefaulted,   ///< a lookup missed its key and wrote the defaults; the record goes on
    kIgnored,     ///< dropped on purpose (counted as ignored)
    kDeadLetter,  ///< dead-lettered with ctx.reason
    kHold,        ///< held until its key arrives or the hold expires (ctx.hold_until_micros)
  };

  virtual ~Step() = default;
  /// Runs the step on `row` (the working row of Plan::schema).
  virtual Outcome Apply(std::span<Value> row, StepContext& ctx) const = 0;
  virtual void Describe(StepDescription* out) const = 0;
  /// What the worker's per-step counter counts for this step.
  virtual StepCounting counting() const = 0;
  /// The dimension a lookup reads (its snapshot goes in StepContext::snapshot); null otherwise.
  virtual Dimension* dimension() const { return nullptr; }
};

/// Compiles `config` against `schema` (the fields the steps before it defined); a step that
/// defines a field adds it to `schema`. Errors point at the step's file:line:column.
Result<std::unique_ptr<Step>> MakeStep(const StepConfig& config, Schema* schema,
                                       const DimensionMap& dimensions);

}  // namespace sluice
