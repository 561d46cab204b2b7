#include "sql/source_map.h"

#include <algorithm>

namespace sluice::sql {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

SourceMap::SourceMap(std::string file, std::string_view text) : file_(std::move(file)), text_(text) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

void SourceMap::LineColumn(size_t offset, int* line, int* column) const {
  offset = std::min(offset, text_.size());
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t index = static_cast<size_t>(it - line_starts_.begin()) - 1;
  *line = static_cast<int>(index) + 1;
  int col = 1;
  for (size_t i = line_starts_[index]; i < offset; ++i) {
    if (!IsContinuationByte(text_[i])) ++col;
  }
  *column = col;
}

std::string SourceMap::Locate(size_t offset) const {
  int line = 0;
  int column = 0;
  LineColumn(offset, &line, &column);
  return file_ + ":" + std::to_string(line) + ":" + std::to_string(column);
}

expr::SourceLocation SourceMap::Location(size_t offset) const {
  expr::SourceLocation w;
  w.file = file_;
  LineColumn(offset, &w.line, &w.column);
  return w;
}

size_t SourceMap::ByteOfCodePoint(size_t n) const {
  size_t seen = 0;
  for (size_t i = 0; i < text_.size(); ++i) {
    if (IsContinuationByte(text_[i])) continue;
    if (seen == n) return i;
    ++seen;
  }
  return text_.size();
}

}  // namespace sluice::sql
