#pragma once

#include <vector>

#include "operators/aggregate_spec.h"

namespace sluice {

/// Orders delta rows by window start, then by their key values lexicographically, each value
/// as Value's operator< orders it (by type first, then by value). Sinks write a checkpoint's
/// rows in this order, so concurrent writers lock rows in the same order.
bool DeltaLess(const DeltaRow& a, const DeltaRow& b);

/// Sorts `rows` into DeltaLess order (the order of equal rows, which distinct groups never
/// are, is unspecified, as with std::sort).
///
/// Each row's window start and keys are encoded once into bytes whose memcmp order is DeltaLess
/// order, and a compact array of (first 24 bytes, offset, row) is sorted instead of the rows:
/// comparing two rows then reads no heap value, and each row is moved once. When a key is a
/// double (its order has -0.0 == 0.0 and NaN) the rows are sorted with DeltaLess itself.
void SortDeltas(std::vector<DeltaRow>* rows);

/// Merges several lists of delta rows (each a worker's or a collection's, with distinct
/// groups) into `out` in DeltaLess order, combining the rows of one group as MergeDeltas does
/// (the earliest part's row first, the later ones merged into it in order), with the same
/// result rows: sorting and merging in one pass over the encoded keys, instead of a hash table
/// that copies every key and state and is sorted again before the commit. Returns false, and
/// leaves `parts` as they were, when a key is a double: use MergeDeltas and SortDeltas then.
bool MergeDeltasInOrder(const AggregateSpec& spec, std::vector<std::vector<DeltaRow>>* parts,
                        std::vector<DeltaRow>* out);

}  // namespace sluice
