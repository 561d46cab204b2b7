#include "operators/csv_decoder.h"

#include <bit>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sluice {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
constexpr size_t kMaxListedColumns = 60;

/// Returns the first occurrence of `c` in [p, end), or nullptr; safe for empty ranges.
const char* Find(const char* p, const char* end, char c) {
  if (p >= end) return nullptr;
  return static_cast<const char*>(std::memchr(p, c, static_cast<size_t>(end - p)));
}

std::string_view TrimName(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

Status ColumnError(size_t column, std::string_view what) {
  std::string m = "column ";
  m += std::to_string(column);
  m += ": ";
  m += what;
  return Status::ParseError(std::move(m));
}

class CsvDecoder final : public Decoder {
 public:
  CsvDecoder(const DecoderOptions& options, const Schema& schema)
      : delimiter_(options.delimiter), has_header_(options.header), schema_(schema) {}

  /// Maps schema fields to the named columns; fails when one is missing.
  Status MapColumns(const std::vector<std::string>& names) {
    ASSIGN_OR_RETURN(CsvColumnMap map, MapCsvColumns(names, schema_));
    column_of_slot_ = std::move(map.column_of_slot);
    num_columns_ = map.num_columns;
    mapped_ = true;
    return Status::OK();
  }

  Status SetHeader(std::string_view header_payload) override {
    if (!has_header_) return Status::OK();
    ASSIGN_OR_RETURN(std::vector<std::string> names, CsvHeaderNames(header_payload, delimiter_));
    return MapColumns(names);
  }

  Status Decode(std::string_view payload, std::span<Value> out) override {
    if (!mapped_) return Status::Internal("CSV decoder: SetHeader() was not called");
    if (out.size() < schema_.size()) return Status::Internal("CSV decoder: output row too small");
    RETURN_IF_ERROR(SplitCsvRecordViews(payload, delimiter_, &fields_, &scratch_));
    if (fields_.size() != num_columns_) {
      return Status::ParseError("expected " + std::to_string(num_columns_) + " fields, got " +
                                std::to_string(fields_.size()));
    }
    for (size_t slot = 0; slot < schema_.size(); ++slot) {
      RETURN_IF_ERROR(
          ParseTextValue(fields_[column_of_slot_[slot]], schema_.field(slot), &out[slot]));
    }
    return Status::OK();
  }

 private:
  char delimiter_;
  bool has_header_;
  Schema schema_;
  bool mapped_ = false;
  size_t num_columns_ = 0;
  std::vector<size_t> column_of_slot_;
  std::vector<std::string_view> fields_;  // reused across records
  std::string scratch_;                   // unescaped text of fields with doubled quotes
};

}  // namespace

Result<CsvColumnMap> MapCsvColumns(const std::vector<std::string>& names, const Schema& schema) {
  std::unordered_map<std::string_view, size_t> index;
  index.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) index.emplace(names[i], i);  // first one wins

  CsvColumnMap map;
  map.column_of_slot.resize(schema.size());
  std::string missing;
  size_t missing_count = 0;
  for (size_t slot = 0; slot < schema.size(); ++slot) {
    const std::string& path = schema.field(slot).source_path();
    auto it = index.find(path);
    if (it == index.end()) {
      if (missing_count++ > 0) missing += ", ";
      missing += path;
      continue;
    }
    map.column_of_slot[slot] = it->second;
  }
  if (missing_count > 0) {
    std::string m = missing_count == 1 ? "CSV column missing: " : "CSV columns missing: ";
    m += missing;
    m += " (available: ";
    for (size_t i = 0; i < names.size() && i < kMaxListedColumns; ++i) {
      if (i > 0) m += ", ";
      m += names[i];
    }
    if (names.size() > kMaxListedColumns) m += ", ...";
    m += ')';
    return Status::InvalidArgument(std::move(m));
  }
  map.num_columns = names.size();
  return map;
}

Result<std::vector<std::string>> CsvHeaderNames(std::string_view header_payload, char delimiter) {
  if (header_payload.starts_with(kUtf8Bom)) header_payload.remove_prefix(kUtf8Bom.size());
  std::vector<std::string> names;
  Status st = SplitCsvRecord(header_payload, delimiter, &names);
  if (!st.ok()) return st.WithContext("CSV header");
  for (std::string& name : names) name = std::string(TrimName(name));
  return names;
}

size_t CsvRecordLength(std::string_view buffer, bool at_eof) {
  // A newline ends the record when an even number of quotes precede it: a doubled quote inside
  // a quoted field closes and reopens it, so counting parity is enough for RFC 4180 framing.
  const char* const data = buffer.data();
  const size_t size = buffer.size();
  bool quoted = false;
  size_t at = 0;
#if defined(__SSE2__)
  // Sixteen bytes at a time (SSE2 is part of every x86-64 target): most blocks hold neither.
  const __m128i newlines = _mm_set1_epi8('\n');
  const __m128i quotes = _mm_set1_epi8('"');
  for (; at + 16 <= size; at += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + at));
    const unsigned nl = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, newlines)));
    const unsigned q = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, quotes)));
    unsigned hits = nl | q;
    while (hits != 0) {
      const unsigned bit = hits & (0u - hits);
      if (q & bit) {
        quoted = !quoted;
      } else if (!quoted) {
        return at + static_cast<size_t>(std::countr_zero(bit)) + 1;
      }
      hits &= hits - 1;
    }
  }
#endif
  for (; at < size; ++at) {
    if (data[at] == '"') {
      quoted = !quoted;
    } else if (data[at] == '\n' && !quoted) {
      return at + 1;
    }
  }
  return at_eof ? size : 0;
}

Status SplitCsvRecordViews(std::string_view record, char delimiter,
                           std::vector<std::string_view>* fields, std::string* scratch) {
  fields->clear();
  scratch->clear();
  if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  // Unescaped text is never longer than the record, so views into scratch stay valid.
  scratch->reserve(record.size());

  const char* p = record.data();
  const char* const end = p + record.size();
  size_t column = 1;
  while (true) {
    if (p < end && *p == '"') {
      const char* start = p + 1;
      const char* quote = Find(start, end, '"');
      if (quote == nullptr) return ColumnError(column, "unterminated quoted field");
      if (quote + 1 < end && quote[1] == '"') {
        const size_t first = scratch->size();
        const char* segment = start;
        while (quote + 1 < end && quote[1] == '"') {
          scratch->append(segment, static_cast<size_t>(quote + 1 - segment));
          segment = quote + 2;
          quote = Find(segment, end, '"');
          if (quote == nullptr) return ColumnError(column, "unterminated quoted field");
        }
        scratch->append(segment, static_cast<size_t>(quote - segment));
        fields->emplace_back(scratch->data() + first, scratch->size() - first);
      } else {
        fields->emplace_back(start, static_cast<size_t>(quote - start));
      }
      p = quote + 1;
      if (p == end) break;
      if (*p != delimiter) {
        return ColumnError(column, "unexpected " + QuoteForMessage(std::string_view(p, 1)) +
                                       " after closing quote");
      }
      ++p;
      ++column;
      continue;
    }
    const char* delim = Find(p, end, delimiter);
    const char* field_end = delim == nullptr ? end : delim;
    if (Find(p, field_end, '"') != nullptr) {
      return ColumnError(column, "stray quote in unquoted field");
    }
    fields->emplace_back(p, static_cast<size_t>(field_end - p));
    if (delim == nullptr) break;
    p = delim + 1;
    ++column;
  }
  return Status::OK();
}

Status SplitCsvRecord(std::string_view record, char delimiter, std::vector<std::string>* fields) {
  std::vector<std::string_view> views;
  std::string scratch;
  RETURN_IF_ERROR(SplitCsvRecordViews(record, delimiter, &views, &scratch));
  fields->resize(views.size());
  for (size_t i = 0; i < views.size(); ++i) (*fields)[i].assign(views[i]);
  return Status::OK();
}

Result<std::unique_ptr<Decoder>> MakeCsvDecoder(const DecoderOptions& options,
                                                const Schema& schema) {
  if (options.delimiter == '"' || options.delimiter == '\n' || options.delimiter == '\r') {
    return Status::InvalidArgument("CSV delimiter cannot be a quote or a line break");
  }
  auto decoder = std::make_unique<CsvDecoder>(options, schema);
  if (!options.header) {
    if (options.columns.empty()) {
      return Status::InvalidArgument("CSV without header needs the column names (columns)");
    }
    RETURN_IF_ERROR(decoder->MapColumns(options.columns));
  }
  return std::unique_ptr<Decoder>(std::move(decoder));
}

}  // namespace sluice
