#include "operators/columnar_csv_decoder.h"

#include <cstring>
#include <utility>

#include "operators/csv_decoder.h"

namespace sluice {
namespace {

/// Returns the first `c` in [p, end), or `end`.
const char* FindOrEnd(const char* p, const char* end, char c) {
  if (p >= end) return end;
  const void* found = std::memchr(p, c, static_cast<size_t>(end - p));
  return found == nullptr ? end : static_cast<const char*>(found);
}

/// Parses an optional '-' and 1 to 18 digits, the common case of ParseStrictInt64() (which
/// takes the rest: blanks, '+', 19 digits, overflow).
bool ParsePlainInt(std::string_view s, int64_t* out) {
  size_t k = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (negative) k = 1;
  const size_t digits = s.size() - k;
  if (digits == 0 || digits > 18) return false;
  int64_t v = 0;
  for (; k < s.size(); ++k) {
    const unsigned d = static_cast<unsigned char>(s[k]) - '0';
    if (d > 9) return false;
    v = v * 10 + static_cast<int64_t>(d);
  }
  *out = negative ? -v : v;
  return true;
}

}  // namespace

Result<std::unique_ptr<ColumnarCsvDecoder>> ColumnarCsvDecoder::Make(
    const DecoderOptions& options, const Schema& schema, std::optional<std::string_view> header) {
  if (options.header && !header) return std::unique_ptr<ColumnarCsvDecoder>();
  std::unique_ptr<ColumnarCsvDecoder> d(new ColumnarCsvDecoder(schema));
  ASSIGN_OR_RETURN(d->row_decoder_, MakeCsvDecoder(options, schema));
  std::vector<std::string> names;
  if (options.header) {
    RETURN_IF_ERROR(d->row_decoder_->SetHeader(*header));
    ASSIGN_OR_RETURN(names, CsvHeaderNames(*header, options.delimiter));
  } else {
    names = options.columns;
  }
  // The row decoder's own mapping, so both read the same column for each field.
  ASSIGN_OR_RETURN(CsvColumnMap map, MapCsvColumns(names, schema));
  d->delimiter_ = options.delimiter;
  d->num_columns_ = map.num_columns;
  d->first_slot_of_column_.assign(map.num_columns, kNone);
  d->next_slot_.assign(schema.size(), kNone);
  for (size_t slot = schema.size(); slot-- > 0;) {
    const size_t column = map.column_of_slot[slot];
    d->next_slot_[slot] = d->first_slot_of_column_[column];
    d->first_slot_of_column_[column] = static_cast<uint32_t>(slot);
  }
  d->row_.assign(schema.size(), Value());
  return d;
}

void ColumnarCsvDecoder::Fallback(size_t i, std::string_view payload, ColumnBatch* out) {
  ++fallbacks_;
  Status s = row_decoder_->Decode(payload, std::span<Value>(row_));
  if (!s.ok()) {
    out->SetError(i, s.message());
    return;
  }
  for (size_t c = 0; c < schema_.size(); ++c) out->column(c).Set(i, row_[c], out->arena());
}

bool ColumnarCsvDecoder::Store(size_t i, size_t column, std::string_view text, bool doubled,
                               ColumnBatch* out) {
  uint32_t slot = first_slot_of_column_[column];
  if (slot == kNone) return true;
  if (doubled) {
    // "" inside a quoted field is one quote.
    unescaped_.clear();
    size_t from = 0;
    while (true) {
      const size_t q = text.find('"', from);
      if (q == std::string_view::npos) break;
      unescaped_.append(text.substr(from, q + 1 - from));
      from = q + 2;
    }
    unescaped_.append(text.substr(from));
    text = unescaped_;
  }
  for (; slot != kNone; slot = next_slot_[slot]) {
    const Field& f = schema_.field(slot);
    Column& col = out->column(slot);
    if (f.type == Type::kString) {
      if (text.empty()) continue;  // null, as the reset left it
      if (doubled) {
        out->arena()->emplace_back(text);
        col.SetString(i, out->arena()->back());
      } else {
        col.SetString(i, text);
      }
      continue;
    }
    if (text.empty()) continue;  // null
    if (f.type == Type::kInt64) {
      int64_t v;
      if (ParsePlainInt(text, &v)) {
        col.SetInt(i, v);
        continue;
      }
    }
    if (!ParseTextValue(text, f, &scratch_).ok()) return false;
    col.Set(i, scratch_, out->arena());
  }
  return true;
}

bool ColumnarCsvDecoder::DecodeFast(size_t i, std::string_view record, ColumnBatch* out) {
  // As SplitCsvRecordViews(): a trailing \n, \r\n or \r is not part of the last field.
  if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  const char* p = record.data();
  const char* const end = p + record.size();
  // The next quote at or after p (end: none): an unquoted field holds a quote when this comes
  // before its delimiter, so the record is searched for quotes once, not field by field.
  const char* quote = FindOrEnd(p, end, '"');
  size_t column = 0;
  while (true) {
    if (column == num_columns_) return false;  // more fields than the header has
    if (p < end && *p == '"') {
      const char* close = FindOrEnd(p + 1, end, '"');
      if (close == end) return false;  // unterminated
      bool doubled = false;
      while (close + 1 < end && close[1] == '"') {
        doubled = true;
        close = FindOrEnd(close + 2, end, '"');
        if (close == end) return false;
      }
      if (!Store(i, column, std::string_view(p + 1, static_cast<size_t>(close - p - 1)), doubled,
                 out)) {
        return false;
      }
      ++column;
      p = close + 1;
      if (p == end) break;
      if (*p != delimiter_) return false;  // text after the closing quote
      ++p;
      quote = FindOrEnd(p, end, '"');
      continue;
    }
    const char* delim = FindOrEnd(p, end, delimiter_);
    if (quote < delim) return false;  // a stray quote in an unquoted field
    if (!Store(i, column, std::string_view(p, static_cast<size_t>(delim - p)), false, out)) {
      return false;
    }
    ++column;
    if (delim == end) break;
    p = delim + 1;
  }
  return column == num_columns_;
}

void ColumnarCsvDecoder::Decode(const RawBatch& batch, ColumnBatch* out) {
  const size_t n = batch.size();
  out->Reset(schema_, n);
  for (size_t i = 0; i < n; ++i) {
    const std::string_view payload = batch.payload(i);
    if (!DecodeFast(i, payload, out)) Fallback(i, payload, out);
  }
}

}  // namespace sluice
