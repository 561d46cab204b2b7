#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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

/// Decodes a whole RawBatch of CSV records into a ColumnBatch: each record split once, each
/// declared column converted straight into its typed column, strings as views into the batch
/// (unescaped text of a field with doubled quotes into the batch's arena).
///
/// Same results as the row decoder (MakeCsvDecoder with the same options and header), record
/// for record, by construction: the fast path takes records whose fields are unquoted or
/// quoted the plain RFC 4180 way (a quoted field closed just before a delimiter or the end,
/// doubled quotes inside), with exactly the header's number of fields and values that convert;
/// every other record (a stray quote, text after a closing quote, an unterminated quote, a
/// missing or extra field, a value that does not convert) is decoded again by the row decoder,
/// whose values or error message the batch then receives.
class ColumnarCsvDecoder final : public ColumnarDecoder {
 public:
  /// Takes the column mapping from `header` when `options.header` (from `options.columns`
  /// otherwise). Returns null (not an error) when `options.header` is set and no header is
  /// given; the row decoder's error when it cannot be built or the header lacks a column.
  static Result<std::unique_ptr<ColumnarCsvDecoder>> Make(const DecoderOptions& options,
                                                          const Schema& schema,
                                                          std::optional<std::string_view> header);

  void Decode(const RawBatch& batch, ColumnBatch* out) override;
  int64_t fallbacks() const override { return fallbacks_; }

 private:
  static constexpr uint32_t kNone = 0xffffffffu;

  explicit ColumnarCsvDecoder(const Schema& schema) : schema_(schema) {}
  /// Splits and converts record `i` on the fast path; false when the row decoder must decide.
  bool DecodeFast(size_t i, std::string_view payload, ColumnBatch* out);
  /// Converts the text of column `column`, which a field reads (quoted with doubled quotes
  /// when `doubled`), into every field that reads it; false when a value does not convert.
  bool Store(size_t i, size_t column, std::string_view text, bool doubled, ColumnBatch* out);
  void Fallback(size_t i, std::string_view payload, ColumnBatch* out);

  Schema schema_;
  char delimiter_ = ',';
  size_t num_columns_ = 0;
  /// The first field reading each column (kNone: none), and the next field reading the same
  /// column as a field (usually kNone).
  std::vector<uint32_t> first_slot_of_column_;
  std::vector<uint32_t> next_slot_;
  std::unique_ptr<Decoder> row_decoder_;
  std::vector<Value> row_;
  Value scratch_;
  std::string unescaped_;
  std::vector<uint32_t> index_;  ///< a record's delimiter and quote offsets (DecodeFast)
  int64_t fallbacks_ = 0;
};

}  // namespace sluice
