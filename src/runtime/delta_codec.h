#pragma once

#include <string>
#include <vector>

#include "core/serialize.h"
#include "operators/aggregate_spec.h"
#include "runtime/window_state.h"

namespace sluice {

/// The binary form of groups of windows (DeltaRow: window start, key values, one partial state
/// per metric), shared by every state sluice stores: the legacy window state (window_state.h)
/// and the task state (task_state.h).

/// Names the layout the groups are stored in (window, slide, keys, metrics): a state written for
/// other keys or metrics cannot be merged into this pipeline's windows. `spec` null: a pipeline
/// without [aggregate].
std::string AggregateFingerprint(const AggregateSpec* spec);

/// Appends `rows` (count first) to `w`.
void EncodeDeltaRows(const std::vector<DeltaRow>& rows, BinaryWriter* w);
/// Reads what EncodeDeltaRows wrote, appending to `out`; fails on a group that does not have
/// `spec`'s width (or any group when `spec` is null).
Status DecodeDeltaRows(BinaryReader* r, const AggregateSpec* spec, std::vector<DeltaRow>* out);

/// Every stored state starts with its magic, its version and the AggregateFingerprint of the
/// layout it was written for.
void WriteStateHeader(std::string_view magic, int64_t version, const AggregateSpec* spec, BinaryWriter* w);
/// Reads that header and refuses another kind (magic), another version, or a state written for a
/// different [aggregate]. `what` names the state in the messages ("window state", "task state").
Status ReadStateHeader(BinaryReader* r, std::string_view magic, int64_t version, const AggregateSpec* spec,
                       const std::string& what);
/// The same for a state whose layout grew: accepts any version in [min_version, max_version] and
/// puts the one read in `*version`, so the caller parses the fields that version has.
Status ReadStateHeader(BinaryReader* r, std::string_view magic, int64_t min_version, int64_t max_version,
                       const AggregateSpec* spec, const std::string& what, int64_t* version);

/// Appends the held records (count first) to `w`; DecodeHeldRecords appends what it wrote to `out`.
void EncodeHeldRecords(const std::vector<HeldRecord>& held, BinaryWriter* w);
Status DecodeHeldRecords(BinaryReader* r, std::vector<HeldRecord>* out);

}  // namespace sluice
