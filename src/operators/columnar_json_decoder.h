#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/raw_batch.h"
#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"
#include "operators/batch.h"
#include "operators/columnar_decoder.h"
#include "operators/decoder.h"

namespace sluice {

/// Decodes a whole RawBatch of NDJSON records into a ColumnBatch: each declared field straight
/// into its typed column, strings as views into one padded copy of the batch (simdjson
/// On-Demand, one parser for the batch).
///
/// Same results as the row decoder (MakeNdjsonDecoder), record for record, by construction:
/// the fast path handles the plain cases (an integer into int64, a number into double, a
/// string into string, text parsed by ParseTextValue() into the other types, JSON null, a bool
/// into bool) and hands every other record (a failure of any kind, an object or array value,
/// a non-integral number for int64, a NUL byte, trailing content) to the row decoder, whose
/// values or error message the batch then receives. Only flat schemas are supported (no dotted
/// path, no two fields reading one key): Make() returns null for the others.
class ColumnarJsonDecoder final : public ColumnarDecoder {
 public:
  /// Returns null (not an error) when the schema is not flat; an error when the row decoder
  /// cannot be built for it.
  static Result<std::unique_ptr<ColumnarJsonDecoder>> Make(const Schema& schema);

  /// Decodes every record of `batch` into `out` (reset to the batch's size first). A record the
  /// row decoder would reject gets that decoder's message as its error.
  void Decode(const RawBatch& batch, ColumnBatch* out) override;

  /// Counts records handed to the row decoder since construction (tests, profiling).
  int64_t fallbacks() const override { return fallbacks_; }

  ~ColumnarJsonDecoder() override;

 private:
  struct Impl;
  explicit ColumnarJsonDecoder(const Schema& schema);
  void Fallback(size_t i, std::string_view payload, ColumnBatch* out);

  Schema schema_;
  std::unique_ptr<Decoder> row_decoder_;
  std::vector<Value> row_;
  std::unique_ptr<Impl> impl_;
  int64_t fallbacks_ = 0;
};

}  // namespace sluice
