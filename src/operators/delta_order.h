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

}  // namespace sluice
