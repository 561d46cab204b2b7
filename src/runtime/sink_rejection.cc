#include "runtime/sink_rejection.h"

#include <spdlog/spdlog.h>

#include "core/json_writer.h"
#include "core/json_builder.h"

namespace sluice {
namespace {

Status Isolate(size_t begin, size_t end, const std::function<Status(size_t, size_t)>& write,
               const std::function<bool(const Status&)>& rejected,
               std::vector<RejectedItem>* out) {
  if (begin >= end) return Status::OK();
  Status s = write(begin, end);
  if (s.ok()) return s;
  if (!rejected(s)) return s;
  if (end - begin == 1) {
    out->push_back({begin, s.message()});
    return Status::OK();
  }
  const size_t mid = begin + (end - begin) / 2;
  RETURN_IF_ERROR(Isolate(begin, mid, write, rejected, out));
  return Isolate(mid, end, write, rejected, out);
}

}  // namespace

Result<std::vector<RejectedItem>> WriteIsolatingRejects(
    size_t n, const std::function<Status(size_t begin, size_t end)>& write,
    const std::function<bool(const Status&)>& rejected) {
  std::vector<RejectedItem> out;
  RETURN_IF_ERROR(Isolate(0, n, write, rejected, &out));
  return out;
}

DeadLetter RejectedRowLetter(const Schema& output, const std::vector<Value>& row,
                             const std::string& message, const std::string& what, int64_t offset,
                             int32_t seq, int64_t time_micros) {
  JsonBuilder j;
  j.BeginObject();
  for (size_t i = 0; i < row.size() && i < output.size(); ++i) {
    j.Key(output.field(i).name).ValueOf(row[i]);
  }
  j.EndObject();
  DeadLetter d;
  d.reason = std::string(kSinkRejectedReason) + ": " + what + " refused by the sink: " + message;
  d.payload = j.str();
  d.source = kSinkRejectionSource;
  d.partition = 0;
  d.offset = offset;
  d.seq = seq;
  d.time_micros = time_micros;
  return d;
}

std::vector<DeadLetter> RejectedLetters(const SinkContext& ctx, const Checkpoint& cp,
                                        const std::vector<RejectedItem>& rejected_deltas,
                                        const std::vector<RejectedItem>& rejected_rows,
                                        int64_t offset, int64_t time_micros) {
  std::vector<DeadLetter> out;
  int32_t seq = 0;
  if (cp.deltas && ctx.aggregate) {
    const Schema schema = ctx.aggregate->OutputSchema();
    for (const auto& r : rejected_deltas) {
      out.push_back(RejectedRowLetter(schema, FinalRow(*ctx.aggregate, (*cp.deltas)[r.index]),
                                      r.message, "delta of group", offset, seq++, time_micros));
    }
  }
  if (cp.rows) {
    for (const auto& r : rejected_rows) {
      out.push_back(RejectedRowLetter(ctx.output, (*cp.rows)[r.index], r.message, "row", offset,
                                      seq++, time_micros));
    }
  }
  return out;
}

void LogRejected(std::string_view sink, int64_t checkpoint,
                 const std::vector<DeadLetter>& letters) {
  constexpr size_t kShown = 200;
  for (const DeadLetter& d : letters) {
    const std::string_view reason(d.reason);
    const size_t cut = reason.find(" refused by the sink: ");
    const std::string_view what = reason.substr(0, cut).substr(sizeof(kSinkRejectedReason) + 1);
    const std::string row = ToValidUtf8(std::string_view(d.payload).substr(0, kShown)) +
                            (d.payload.size() > kShown ? "..." : "");
    spdlog::warn("{} sink: checkpoint {}: dead-lettered a {} the server refused: {} ({})", sink,
                 checkpoint, what, row,
                 cut == std::string_view::npos ? reason : reason.substr(cut + 22));
  }
}

}  // namespace sluice
