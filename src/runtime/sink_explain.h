#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "runtime/sink.h"

namespace sluice {

/// One statement a sink runs, as `sluice explain` shows it: `role` says when ("create table",
/// "merge", "positions"), `dialect` in what language ("sqlite", "mysql", "cql"), `text` is the
/// statement itself. Parameters are `?` (or SQLite's `?N`), filled per row.
struct SinkStatement {
  std::string role;
  std::string dialect;
  std::string text;
};

/// What a sink does with a pipeline's output, for `sluice explain`: facts in order ({"table",
/// "events"}, {"partition by", "network_id, minute_timestamp"}) and the statements it runs.
struct SinkExplanation {
  std::vector<std::pair<std::string, std::string>> facts;
  std::vector<SinkStatement> statements;
};

/// Says what a sink would write without connecting to anything or touching any file: the same
/// statement builders as Open() and Commit(), given the context Runner::Make checks. A sink
/// that can implements it next to Sink; find it with dynamic_cast<SinkExplainer*>(sink). Call
/// it on a sink made by its factory and never opened.
class SinkExplainer {
 public:
  virtual ~SinkExplainer() = default;
  virtual Result<SinkExplanation> Explain(const SinkContext& ctx) = 0;
};

}  // namespace sluice
