#include "runtime/sink_inventory.h"

#include <simdjson.h>

#include <algorithm>

namespace sluice {

int64_t DeadLetterTally::total() const {
  int64_t n = 0;
  for (const auto& [reason, count] : by_reason) n += count;
  return n;
}

std::vector<std::pair<std::string, int64_t>> DeadLetterTally::Ranked() const {
  std::vector<std::pair<std::string, int64_t>> out(by_reason.begin(), by_reason.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

void DeadLetterTally::PruneSamples(size_t max_reasons) {
  const auto ranked = Ranked();
  for (size_t i = max_reasons; i < ranked.size(); ++i) samples.erase(ranked[i].first);
}

Result<SinkInventory> PositionsOnlyInventory(SinkInventory inv, const InventoryOptions& options,
                                             const std::string& what, bool has_positions,
                                             const std::function<Result<std::vector<StoredPosition>>()>& load) {
  if (options.pipeline.empty()) return Status::Internal(what + ": positions_only without a pipeline");
  if (!has_positions) return inv;
  PipelineInventory p;
  p.pipeline = options.pipeline;
  ASSIGN_OR_RETURN(p.positions, load());
  if (!p.positions.empty()) inv.pipelines.push_back(std::move(p));
  return inv;
}

Status TallyDeadLetterLines(std::string_view ndjson, std::string_view pipeline,
                            size_t samples_per_reason, DeadLetterTally* tally) {
  simdjson::dom::parser parser;
  size_t start = 0;
  while (start < ndjson.size()) {
    size_t end = ndjson.find('\n', start);
    if (end == std::string_view::npos) end = ndjson.size();
    const std::string_view line = ndjson.substr(start, end - start);
    const size_t at = start;
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto bad = [&](const char* why) {
      return Status::ParseError("dead-letter record at byte " + std::to_string(at) + ": " + why);
    };
    simdjson::dom::object record;
    if (parser.parse(line.data(), line.size()).get_object().get(record) != simdjson::SUCCESS) {
      return bad("not a JSON object");
    }
    std::string_view name, reason, source, time;
    int64_t partition = 0, offset = 0, bytes = 0;
    simdjson::dom::element payload;
    if (record["pipeline"].get_string().get(name) != simdjson::SUCCESS ||
        record["reason"].get_string().get(reason) != simdjson::SUCCESS ||
        record["source"].get_string().get(source) != simdjson::SUCCESS ||
        record["partition"].get_int64().get(partition) != simdjson::SUCCESS ||
        record["offset"].get_int64().get(offset) != simdjson::SUCCESS ||
        record["payload"].get(payload) != simdjson::SUCCESS) {
      return bad("a field of the record format is missing or has another type");
    }
    if (!pipeline.empty() && name != pipeline) continue;
    // Optional for reading: a record without them still counts.
    if (record["time"].get_string().get(time) != simdjson::SUCCESS) time = {};
    if (record["payload_bytes"].get_int64().get(bytes) != simdjson::SUCCESS) bytes = 0;
    bool truncated = false;
    if (record["truncated"].get_bool().get(truncated) != simdjson::SUCCESS) truncated = false;
    const std::string r(reason);
    ++tally->by_reason[r];
    if (samples_per_reason == 0) continue;
    StoredDeadLetter d;
    d.source = std::string(source);
    d.partition = static_cast<int32_t>(partition);
    d.offset = offset;
    d.reason = r;
    d.time = std::string(time);
    d.payload = simdjson::minify(payload);
    d.payload_bytes = bytes;
    d.truncated = truncated;
    auto& samples = tally->samples[r];
    // Oldest first while reading; the newest `samples_per_reason` stay.
    if (samples.size() == samples_per_reason) samples.erase(samples.begin());
    samples.push_back(std::move(d));
  }
  return Status::OK();
}

}  // namespace sluice
