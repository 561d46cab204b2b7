#include "connectors/table/table_util.h"

#include <cstdio>

#include "core/json_writer.h"

namespace sluice {

Result<std::string> TakeUriOptions(const std::string& uri, Options* options) {
  const size_t q = uri.find('?');
  if (q == std::string::npos) return uri;
  const std::string query = uri.substr(q + 1);
  size_t start = 0;
  while (start <= query.size()) {
    const size_t amp = query.find('&', start);
    const std::string pair = query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!pair.empty()) {
      const size_t eq = pair.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Status::InvalidArgument(options->Where("uri") + ": expected NAME=VALUE in the query of " + uri);
      }
      options->Set(pair.substr(0, eq), Option{pair.substr(eq + 1), options->section_location});
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return uri.substr(0, q);
}

void AppendJsonRow(const std::vector<std::string>& columns,
                   const std::vector<std::optional<std::string_view>>& values, std::string* out) {
  *out += '{';
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) *out += ',';
    AppendJsonString(columns[i], out);
    *out += ':';
    if (values[i]) {
      AppendJsonString(*values[i], out);
    } else {
      *out += "null";
    }
  }
  *out += '}';
}

Status CursorRowChanged(const std::string& what, const std::string& source_name, const std::string& cursor,
                        bool gone, const std::string& extra) {
  std::string m = what + ": the last row read, at the committed cursor (" + cursor + "), " +
                  (gone ? "is gone" : "holds other values now") +
                  ": the table was dropped and recreated, truncated, or that row was " +
                  (gone ? "deleted" : "updated") + " since. ";
  if (!extra.empty()) m += extra + " ";
  m += "sluice cannot tell which rows are new and refuses to guess. If the table holds new data, run again "
       "with --reset-source " + source_name + " to read it from its beginning (results already in the sink "
       "stay).";
  return Status::FailedPrecondition(std::move(m));
}

std::optional<std::string> DescribeTableCursor(const std::map<int32_t, int64_t>& positions) {
  std::vector<int32_t> partitions;
  for (const auto& [partition, offset] : positions) partitions.push_back(partition);
  if (partitions != std::vector<int32_t>{0, 1, kCursorRowPartition}) return std::nullopt;
  char hash[24];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(positions.at(kCursorRowPartition)));
  return "after order_by value " + std::to_string(positions.at(0)) + ", key " +
         std::to_string(positions.at(1)) + " (hash of the last row read " + hash + ")";
}

}  // namespace sluice
