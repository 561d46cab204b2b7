#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "core/status.h"
#include "core/value.h"
#include "runtime/sink.h"
#include "runtime/source.h"

namespace sluice {

struct Plan;

/// Settings of `sluice verify`.
struct VerifyOptions {
  size_t show = 10;  ///< rows listed of each kind (differ, dimension changed, missing, extra)
  int workers = 1;   ///< workers of the recomputation (the result does not depend on it)
};

/// One row found on both sides whose values differ.
struct VerifyDifference {
  std::vector<Value> sink;        ///< as ReadOutput() returned it
  std::vector<Value> recomputed;  ///< as the sink would store it (Sink::AsStored)
  std::vector<size_t> columns;    ///< the output columns that differ
};

/// What `sluice verify` found: the sink's rows against a recomputation of the same plan over the
/// same input, up to the sink's committed positions.
struct VerifyReport {
  std::string pipeline;
  std::string sink;                           ///< the sink's URI (and table)
  std::vector<std::string> columns;           ///< the output columns compared
  std::vector<size_t> key_columns;            ///< indices into columns: the row key
  std::set<size_t> dimension_columns;         ///< indices into columns derived from a dimension
  std::vector<StoredPosition> positions;      ///< the committed positions read up to
  int64_t records = 0, ignored = 0, dead_lettered = 0;  ///< of the recomputation
  int64_t sink_rows = 0, recomputed_rows = 0;
  int64_t matching = 0;
  int64_t differing = 0;          ///< rows whose values differ (corruption)
  int64_t dimension_changed = 0;  ///< rows that differ only in dimension-derived columns
  int64_t missing_from_sink = 0;  ///< recomputed rows the sink does not hold
  int64_t only_in_sink = 0;       ///< sink rows the recomputation did not produce (or duplicates)
  std::vector<VerifyDifference> differences;       ///< the first `show`
  std::vector<VerifyDifference> dimension_rows;    ///< the first `show`
  std::vector<std::vector<Value>> missing_rows;    ///< the first `show`
  std::vector<std::vector<Value>> extra_rows;      ///< the first `show`

  /// True when the sink holds exactly what the recomputation produced; rows that differ only
  /// because a dimension changed since they were written do not count against it.
  bool equal() const { return differing == 0 && missing_from_sink == 0 && only_in_sink == 0; }
};

/// Recomputes what `config`'s sink should hold and compares it with what it holds, row by row.
///
/// Reads the sink's committed positions, then runs the pipeline's own plan and engine (Runner,
/// Worker, Aggregator) from the beginning of the source up to those positions, with an in-memory
/// collector in place of the sink, and diffs the collector's rows against Sink::ReadOutput().
/// Nothing is written anywhere. A file source whose stored identity (device, inode, hashes of
/// its first bytes and of the bytes before the position) no longer matches the file is a
/// FailedPrecondition: the input changed, so the sink cannot be checked against it. Errors in
/// the pipeline file are InvalidArgument/ParseError/NotFound, as for `sluice run`.
Result<VerifyReport> VerifyPipeline(PipelineConfig config, const VerifyOptions& options);

/// Renders the report for a terminal (the README's example).
std::string FormatVerifyReport(const VerifyReport& report);
/// Renders the report as one JSON object.
std::string VerifyReportJson(const VerifyReport& report);

/// Returns the names an expression text refers to (identifiers outside string literals; a
/// `quoted name` counts too). Keywords and function names are included: callers intersect.
std::set<std::string> ReferencedNames(const std::string& text);

/// Returns the output columns (indices into `output`) of `plan` whose values depend on a
/// dimension lookup: a looked-up field, a let that uses one, and a key or metric that uses those.
std::set<size_t> DimensionDerivedColumns(const Plan& plan, const Schema& output);

/// Wraps a source so that it hands on only records at or before `limits` (partition -> the
/// committed next position; a partition without one hands on nothing). Table sources, whose
/// records carry their cursor value as offset, are limited by partition 0's cursor; an SQL
/// table source whose last row read (its hash among `identity`, the committed identity
/// partitions) is not found again at the cursor fails with kAborted: the input changed.
std::unique_ptr<Source> LimitSource(std::unique_ptr<Source> inner, std::map<int32_t, int64_t> limits,
                                    const std::map<int32_t, int64_t>& identity = {});

}  // namespace sluice
