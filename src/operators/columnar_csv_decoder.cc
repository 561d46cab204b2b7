#include "operators/columnar_csv_decoder.h"

#include <bit>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "operators/csv_decoder.h"

namespace sluice {
namespace {

/// Writes the offsets of every `delimiter` and '"' of `s` to `out`, ascending, and returns how
/// many: sixteen bytes at a time with SSE2 (part of every x86-64 target), a byte at a time
/// elsewhere and for the tail.
size_t IndexDelimitersAndQuotes(std::string_view s, char delimiter, uint32_t* out) {
  const char* const data = s.data();
  const size_t size = s.size();
  size_t n = 0;
  size_t at = 0;
#if defined(__SSE2__)
  const __m128i delimiters = _mm_set1_epi8(delimiter);
  const __m128i quotes = _mm_set1_epi8('"');
  for (; at + 16 <= size; at += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + at));
    unsigned hits = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(block, delimiters), _mm_cmpeq_epi8(block, quotes))));
    while (hits != 0) {
      out[n++] = static_cast<uint32_t>(at + static_cast<size_t>(std::countr_zero(hits)));
      hits &= hits - 1;
    }
  }
#endif
  for (; at < size; ++at) {
    if (data[at] == delimiter || data[at] == '"') out[n++] = static_cast<uint32_t>(at);
  }
  return n;
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
  const size_t n = record.size();
  if (index_.size() < n + 1) index_.resize(n + 1);
  uint32_t* const idx = index_.data();
  // Every delimiter and quote, then the end as a last delimiter: the fields are read from this
  // index instead of searching the record field by field.
  const size_t m = IndexDelimitersAndQuotes(record, delimiter_, idx);
  idx[m] = static_cast<uint32_t>(n);
  const char* const s = record.data();
  size_t k = 0;  // idx[k] is the first delimiter or quote at or after p (or the end)
  size_t p = 0;
  size_t column = 0;
  while (true) {
    if (column == num_columns_) return false;  // more fields than the header has
    if (p < n && s[p] == '"') {
      // idx[k] == p: the closing quote is the next quote not followed by another.
      size_t j = k + 1;
      bool doubled = false;
      while (true) {
        while (j < m && s[idx[j]] != '"') ++j;
        if (j == m) return false;  // unterminated
        if (idx[j] + 1 < n && s[idx[j] + 1] == '"') {
          doubled = true;
          j += 2;
          continue;
        }
        break;
      }
      const size_t close = idx[j];
      if (first_slot_of_column_[column] != kNone &&
          !Store(i, column, std::string_view(s + p + 1, close - p - 1), doubled, out)) {
        return false;
      }
      ++column;
      p = close + 1;
      k = j + 1;
      if (p == n) break;
      if (s[p] != delimiter_) return false;  // text after the closing quote
      ++p;
      ++k;
      continue;
    }
    const size_t d = idx[k];
    if (d < n && s[d] == '"') return false;  // a stray quote in an unquoted field
    if (first_slot_of_column_[column] != kNone &&
        !Store(i, column, std::string_view(s + p, d - p), false, out)) {
      return false;
    }
    ++column;
    if (d == n) break;
    p = d + 1;
    ++k;
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
