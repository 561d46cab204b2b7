#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "core/raw_batch.h"
#include "core/schema.h"
#include "core/status.h"
#include "operators/batch.h"
#include "operators/decoder.h"

namespace sluice {

/// Decodes a whole RawBatch into a ColumnBatch, each declared field straight into its typed
/// column, with the same results as the format's row decoder record for record: a record the
/// fast path does not handle is decoded again by the row decoder, whose values or error message
/// the batch takes.
///
/// Lifecycle: made once per worker by MakeColumnarDecoder(), then Decode() per batch. Owned by
/// one worker thread and never shared. String views in the batch point into `batch` (or into
/// the decoder's own copy of it) and stay valid until the next Decode() or until `batch`
/// changes.
class ColumnarDecoder {
 public:
  virtual ~ColumnarDecoder() = default;

  /// Decodes every record of `batch` into `out` (reset to the batch's size first). A record the
  /// row decoder would reject gets that decoder's message as its error.
  virtual void Decode(const RawBatch& batch, ColumnBatch* out) = 0;

  /// Counts records handed to the row decoder since construction (tests, profiling).
  virtual int64_t fallbacks() const = 0;
};

/// Creates the columnar decoder for `options.format` and `schema`, or null (not an error) when
/// there is none: a format other than NDJSON and CSV, an NDJSON schema that is not flat, CSV
/// with a header that was not given. `header` is the source's header record (CSV).
Result<std::unique_ptr<ColumnarDecoder>> MakeColumnarDecoder(
    const DecoderOptions& options, const Schema& schema, std::optional<std::string_view> header);

}  // namespace sluice
