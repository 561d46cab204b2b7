#pragma once

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "runtime/source.h"

namespace sluice {

/// The options of a file source (FileSource::Make reads them).
const OptionTable& FileSourceOptions();

/// Reads records from a local CSV or NDJSON file: one partition, positions are byte offsets.
///
/// Bounded by default (Poll returns kEnd at the end of the file); with SourceContext::follow it
/// tails the file and waits for complete records. A final record without a line terminator is
/// read at the end of a bounded run but waited for while following.
///
/// The position is bound to the file's identity, stored with it as identity partitions: the
/// device and inode, a hash of the first min(position, 1 KiB) bytes and a hash of the 1 KiB
/// before the position. On Open with a committed position: other first bytes make it a new file,
/// read from its start (logged); the same first bytes continue at the position when the file
/// still holds the bytes before it (an append, or a rewrite that keeps what was read as its
/// prefix); a file shorter than the position, or with other bytes before it, is refused with
/// FailedPrecondition naming `--reset-source`. A new file is the next generation of the
/// input (Generation(), stored from 1 on as kGenerationPartitionBase), so its dead letters are
/// told apart from the old file's at the same offsets.
///
/// A CSV record that spans lines must split into the header's number of fields and keep its
/// quoted fields under `max_quoted_bytes` (default 1 MiB); otherwise the quote that opened it
/// is taken for a stray one: its first line is dead-lettered with the reason and reading
/// resumes at the next line.
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
  /// A bounded run ends the input for good (every open window is written); with
  /// --until-caught-up the file is what is there now, and the next run may bring more (a file
  /// appended to, or replaced by the next export), so open windows stay in the state.
  bool EndIsFinal() const override { return !until_caught_up_; }
  std::vector<std::pair<int32_t, int64_t>> Lag() const override;
  std::vector<int32_t> Partitions() const override { return {0}; }
  std::vector<std::pair<int32_t, int64_t>> PositionsAfterBatch() const override;
  int64_t Generation(int32_t /*partition*/) const override { return generation_; }
  void Close() override;
  ~FileSource() override { Close(); }

 private:
  FileSource(std::string name, std::string path, DecoderOptions options)
      : name_(std::move(name)), path_(std::move(path)), options_(options) {}
  /// Reads more bytes into buf_; returns the number read (0 at end of file).
  Result<size_t> Fill();
  /// Makes room for `n` bytes in buf_ (keeping its content).
  void Reserve(size_t n);

  /// The next record in buf_ from buf_pos_: its length (0: none complete yet), and when the
  /// record is broken (CSV framing) the reason; only its first line is then consumed.
  struct Framed {
    size_t length = 0;
    std::string error;
  };
  Framed NextRecord(bool at_eof);
  /// Decides where to resume for a committed position `committed` of a file of `size` bytes,
  /// from the identity stored with it: `committed`, 0 for a new file, or an error.
  Result<int64_t> ResumeOffset(const SourceContext& ctx, int64_t committed, int64_t size);
  /// Computes the identity hashes for the current position after a poll that consumed input.
  void UpdateIdentity();

  std::string name_;  ///< the source's name in the pipeline (for messages)
  std::string path_;
  DecoderOptions options_;
  int64_t max_quoted_bytes_ = 1 << 20;
  size_t columns_ = 0;  ///< fields in the CSV header (0: unknown)
  std::vector<std::string_view> fields_;  ///< scratch for checking multi-line CSV records
  std::string scratch_;
  int fd_ = -1;
  int64_t device_ = 0;
  int64_t inode_ = 0;
  std::string head_;             ///< the file's first bytes (up to 1 KiB), as far as known
  int64_t identity_at_ = -1;     ///< the position the hashes below are for (-1: none yet)
  int64_t head_hash_ = 0;
  int64_t tail_hash_ = 0;
  int64_t generation_ = 0;  ///< which file at the path this is (0: the first); see Generation()
  bool follow_ = false;
  bool until_caught_up_ = false;  ///< kEnd is "caught up for now": open windows stay open
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

/// For `sluice verify`: checks that the file at `path` is still the one a sink's positions were
/// committed for, with the same rules a resuming FileSource applies: its first bytes and the
/// bytes before the committed position `committed` hash to what `stored` (the identity
/// partitions, kIdentityPartitionBase and up) holds. Another inode is fine when the content
/// matches (a file replaced by one that keeps what was read). Returns FailedPrecondition
/// saying how the input changed; OK when no identity is stored (an older sluice).
Status CheckFileIdentity(const std::string& path, int64_t committed,
                         const std::map<int32_t, int64_t>& stored);
/// Describes for people the identity a file source stores with its position (the identity
/// partitions kIdentityPartitionBase + 0..3: device, inode, hash of the first bytes, hash of
/// the bytes before the offset), given one source's positions (partition -> offset); nullopt
/// when they are not a file's.
std::optional<std::string> DescribeFileIdentity(const std::map<int32_t, int64_t>& positions);

}  // namespace sluice
