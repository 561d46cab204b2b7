#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/source.h"

namespace sluice {

/// Reads records from a local CSV or NDJSON file: one partition, positions are byte offsets.
///
/// Bounded by default (Poll returns kEnd at the end of the file); with SourceContext::follow it
/// tails the file and waits for complete records. A final record without a line terminator is
/// read at the end of a bounded run but waited for while following.
class FileSource : public Source {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config,
                                                           int max_instances);

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records,
                         std::chrono::milliseconds budget) override;
  std::optional<std::string> Header() const override { return header_; }
  std::string_view kind() const override { return "file"; }
  DecoderOptions decoder_options() const override { return options_; }
  std::vector<std::pair<int32_t, int64_t>> Lag() const override;
  std::vector<int32_t> Partitions() const override { return {0}; }
  void Close() override;
  ~FileSource() override { Close(); }

 private:
  FileSource(std::string path, DecoderOptions options) : path_(std::move(path)), options_(options) {}
  /// Reads more bytes into buf_; returns the number read (0 at end of file).
  Result<size_t> Fill();
  /// Returns the length of the next complete record in buf_ from buf_pos_, or 0.
  size_t NextRecordLength(bool at_eof) const;

  std::string path_;
  DecoderOptions options_;
  int fd_ = -1;
  bool follow_ = false;
  std::optional<std::string> header_;
  /// Returns the buffered bytes [0, buf_len_).
  std::string_view Buffered() const { return {buf_.get(), buf_len_}; }

  // A plain array rather than a std::string: growing a string zero-fills the 1 MB read area.
  std::unique_ptr<char[]> buf_;
  size_t buf_len_ = 0;
  size_t buf_cap_ = 0;
  size_t buf_pos_ = 0;      ///< first unconsumed byte in buf_
  int64_t buf_offset_ = 0;  ///< file offset of buf_[0]
  bool eof_ = false;
};

/// Returns the decoder format implied by a file name (.csv, .ndjson, .jsonl, .json).
Result<DecoderOptions::Format> FormatFromPath(const std::string& path);

}  // namespace sluice
