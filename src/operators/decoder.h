#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "core/value.h"

namespace sluice {

class AvroSchemaCache;

/// Turns one undecoded payload into typed values.
///
/// Lifecycle: Make() once per worker, optionally SetHeader() (CSV), then Decode() per record.
/// A decoder is owned by one worker thread and never shared; Decode() reuses internal buffers.
class Decoder {
 public:
  virtual ~Decoder() = default;

  /// Gives the decoder the header record (CSV with a header row). Fails when a required
  /// column is missing. Decoders without headers ignore it.
  virtual Status SetHeader(std::string_view header_payload) = 0;

  /// Decodes `payload` into `out[0 .. schema.size())`, setting absent fields to null.
  /// Returns ParseError with a short reason ("field bid: 'x1' is not an int64", "malformed JSON
  /// at byte 17") when the record cannot be decoded; the caller dead-letters it. After a
  /// failure the contents of `out` are unspecified.
  virtual Status Decode(std::string_view payload, std::span<Value> out) = 0;
};

/// Options shared by the decoders.
struct DecoderOptions {
  enum class Format { kCsv, kNdjson, kAvro, kProtobuf };
  Format format = Format::kNdjson;
  char delimiter = ',';  ///< CSV only: ',' or ';'
  bool header = true;    ///< CSV only: the first record names the columns
  /// CSV without header: column names in order. Ignored when `header` is true.
  std::vector<std::string> columns;
  /// Avro and Protobuf: the writer schemas by id (Confluent wire format), shared by the workers.
  std::shared_ptr<AvroSchemaCache> avro_schemas;
};

/// Creates a decoder that fills the fields of `schema` (by Field::source_path()).
Result<std::unique_ptr<Decoder>> MakeDecoder(const DecoderOptions& options, const Schema& schema);

/// Splits CSV text into records, honouring RFC 4180 quotes (a quoted field may hold the
/// delimiter, doubled quotes and newlines). Stateless: call on a buffer and get back the
/// length of the first complete record including its line terminator (\n or \r\n), or 0 when
/// the buffer holds no complete record yet. When `at_eof` is true a final record without a
/// terminator counts as complete (and an unterminated quote makes the rest one record).
size_t CsvRecordLength(std::string_view buffer, bool at_eof);

/// Splits one CSV record (without its line terminator) into fields, unquoting them.
/// Fails on a quote in the middle of an unquoted field or text after a closing quote.
/// A trailing \n, \r\n or \r is ignored, so a record straight from CsvRecordLength() works too.
Status SplitCsvRecord(std::string_view record, char delimiter, std::vector<std::string>* fields);

/// Splits like SplitCsvRecord() without copying: unquoted fields and quoted fields without
/// doubled quotes point into `record`; the others point into `scratch`, which is cleared and
/// must outlive the views (and stay untouched while they are used).
Status SplitCsvRecordViews(std::string_view record, char delimiter,
                           std::vector<std::string_view>* fields, std::string* scratch);

/// Parses a strict integer: optional surrounding ASCII whitespace, an optional sign, digits.
/// Returns nullopt for anything else ("12.0", "1e3", "") and on overflow.
std::optional<int64_t> ParseStrictInt64(std::string_view text);

/// Parses a whole string as a double (surrounding whitespace allowed, leading '+' allowed).
std::optional<double> ParseStrictDouble(std::string_view text);

/// Parses true/false/1/0/yes/no, ignoring case and surrounding whitespace.
std::optional<bool> ParseBoolText(std::string_view text);

/// Quotes `text` for an error message ('abc'), cutting it at 64 bytes on a UTF-8 boundary.
std::string QuoteForMessage(std::string_view text);

/// Converts the text of a CSV cell (or a JSON string) to `field`'s type. Empty or blank text
/// gives null for every type; for strings only the empty text does ("blank means absent").
/// Returns ParseError "field bid: 'abc' is not an int64" when the text does not fit the type.
Status ParseTextValue(std::string_view text, const Field& field, Value* out);

}  // namespace sluice
