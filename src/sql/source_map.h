#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "expr/expr.h"

namespace sluice::sql {

/// Turns positions in a .sql file into the line:column that errors report: 1-based lines and
/// 1-based columns counted in code points (a UTF-8 character is one column), as editors do.
/// libpg_query gives node locations as 0-based byte offsets and a parse error's position as a
/// 1-based code-point count; both land here.
class SourceMap {
 public:
  SourceMap(std::string file, std::string_view text);

  /// The line and column of the byte at `offset` (clamped to the end of the text).
  void LineColumn(size_t offset, int* line, int* column) const;
  /// "file:line:column" of the byte at `offset`.
  std::string Locate(size_t offset) const;
  /// Where an expression starting at `offset` is written, for the planner's messages.
  expr::SourceLocation Location(size_t offset) const;
  /// The byte offset of the `n`th code point (0-based), clamped to the end of the text.
  size_t ByteOfCodePoint(size_t n) const;

  const std::string& file() const { return file_; }
  std::string_view text() const { return text_; }

 private:
  std::string file_;
  std::string_view text_;
  std::vector<size_t> line_starts_;  ///< byte offset of each line's first character
};

}  // namespace sluice::sql
