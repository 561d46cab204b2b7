#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dead_letter.h"
#include "core/status.h"
#include "runtime/sink.h"

namespace sluice {

/// The reason code that starts the dead letter of a row a sink's server refused for good.
inline constexpr char kSinkRejectedReason[] = "sink_rejected";
/// The `source` of the dead letters a sink makes of the rows it rejects (a name no pipeline
/// source can take: source names are identifiers).
inline constexpr char kSinkRejectionSource[] = "_sink";

/// One item of a batch the sink refused, with the server's message.
struct RejectedItem {
  size_t index = 0;
  std::string message;
};

/// Writes the items [0, n) of a batch while isolating the ones the server refuses for good.
///
/// `write(begin, end)` writes items [begin, end) and, when it fails, must leave nothing of them
/// behind (a savepoint rolled back, a statement the server undid, a buffer dropped).
/// `rejected(status)` tells a failure caused by the rows themselves (data too long, out of range,
/// a key over the limit) from any other. Such a failure splits the range in halves, each written
/// again, down to single items, which are returned, in order, with their message; any other
/// failure is returned at once (the caller retries the whole checkpoint). With k refused items
/// the cost is about 2·k·log2(n) writes beyond the first.
Result<std::vector<RejectedItem>> WriteIsolatingRejects(
    size_t n, const std::function<Status(size_t begin, size_t end)>& write,
    const std::function<bool(const Status&)>& rejected);

/// Renders the dead letter of a refused output row: reason "sink_rejected: MESSAGE", source
/// kSinkRejectionSource, partition 0, offset `offset` (unique per checkpoint, e.g. its wall
/// time), and the row as a JSON object with the output's column names as its payload.
/// `what` says what the row was ("row", or "delta of group" for an aggregate: the stored row of
/// that group lacks this delta).
DeadLetter RejectedRowLetter(const Schema& output, const std::vector<Value>& row,
                             const std::string& message, const std::string& what, int64_t offset,
                             int32_t seq, int64_t time_micros);

/// Renders the rejected deltas and rows of a checkpoint as dead letters, in the order of
/// `rejected_deltas` then `rejected_rows` (seq 0, 1, ...), all under offset `offset`.
std::vector<DeadLetter> RejectedLetters(const SinkContext& ctx, const Checkpoint& cp,
                                        const std::vector<RejectedItem>& rejected_deltas,
                                        const std::vector<RejectedItem>& rejected_rows,
                                        int64_t offset, int64_t time_micros);

/// Logs one warning per letter made by RejectedLetters: the sink, the checkpoint, what was
/// refused with its row (the first 200 bytes of the payload) and the server's message.
void LogRejected(std::string_view sink, int64_t checkpoint,
                 const std::vector<DeadLetter>& letters);

}  // namespace sluice
