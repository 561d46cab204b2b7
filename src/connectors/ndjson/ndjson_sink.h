#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/option_spec.h"
#include "runtime/sink.h"
#include "runtime/sink_explain.h"

namespace sluice {

/// The options of an ndjson: sink (none).
const OptionTable& NdjsonFileSinkOptions();
/// The options of the stdout: sink (NdjsonSink::MakeStdout reads them).
const OptionTable& StdoutSinkOptions();

/// Appends `row` as one JSON object with the names of `schema` and a newline: numbers as
/// numbers, timestamps as "YYYY-MM-DD HH:MM:SS[.ffffff]" strings, NaN and infinities as null.
void AppendNdjsonRow(const Schema& schema, const std::vector<Value>& row, std::string* out);

/// Writes the output rows as NDJSON, one object per line with the output columns.
///
/// `ndjson:PATH` is exactly once, like the dead-letter file: the data file's committed length,
/// the source positions and the engine state live in the sidecar `PATH.sluice-positions`,
/// replaced atomically (temporary file, fsync, rename, fsync of the folder) only after the new
/// lines are fsynced. On start the data file is cut back to the committed length, so lines of a
/// checkpoint whose sidecar never landed are written again by the replay, not twice.
///
/// `stdout:` writes the same lines to standard output and stores nothing: every run starts
/// from the beginning of the source (with empty engine state), and a failed write may repeat
/// lines (at least once). It accepts, and ignores, `table`, `key`, `partition_by` and
/// `column_types`, so any pipeline written for a table, Kafka or Parquet can be looked at.
///
/// Both take rows only (select pipelines and `mode = "append"` aggregates); update-mode
/// deltas are refused in Check().
class NdjsonSink : public Sink, public SinkExplainer {
 public:
  static Result<std::unique_ptr<Sink>> MakeFile(const SinkConfig& config);
  static Result<std::unique_ptr<Sink>> MakeStdout(const SinkConfig& config);
  ~NdjsonSink() override;

  Status Check(const SinkContext& ctx) const override;
  Status Open(const SinkContext& ctx) override;
  Result<std::vector<StoredPosition>> LoadPositions() override;
  Result<std::string> LoadState() override { return state_; }
  bool SupportsState() const override { return true; }
  Status Commit(const Checkpoint& checkpoint) override;
  void Close() override;
  /// Where the lines go and what is committed with them (touches no file).
  Result<SinkExplanation> Explain(const SinkContext& ctx) override;

  /// The sidecar holding the committed lengths, positions and state of `path`.
  static std::string SidecarPath(const std::string& path) { return path + ".sluice-positions"; }

 private:
  /// What the sidecar holds. `lengths` maps a file's role to its committed length: "data"
  /// for the output; a further role (dead letters next to the output) is one more entry.
  struct Committed {
    std::string pipeline;
    std::map<std::string, int64_t> lengths;
    std::map<std::pair<std::string, int32_t>, int64_t> positions;
    bool has_state = false;
    std::string state;
  };

  NdjsonSink(std::string path, std::string where)
      : path_(std::move(path)), where_(std::move(where)) {}
  Status OpenFile(const SinkContext& ctx);
  Result<bool> ReadSidecar(Committed* out) const;
  Status WriteSidecar(const Committed& c) const;
  Status WriteAt(int64_t offset, const std::string& bytes);

  std::string path_;  ///< empty for stdout:
  std::string where_;
  SinkContext ctx_;
  int fd_ = -1;
  Committed committed_;
  std::string state_;
};

}  // namespace sluice
