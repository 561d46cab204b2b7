#include "connectors/file/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "operators/dimension.h"
#include "core/uri.h"

namespace sluice {
namespace {

constexpr size_t kReadSize = 1 << 20;

/// Bytes at the start of a file whose hash, with the device and inode, identifies it.
constexpr int64_t kHeadBytes = 1024;
/// Bytes just before a position whose hash shows, on the next start, that the file still holds
/// what was read up to it. buf_ always keeps this many bytes before buf_pos_ (or all of them).
constexpr int64_t kTailBytes = 1024;
// The identity partitions (see kIdentityPartitionBase). The hashes cover kHeadBytes and
// kTailBytes: changing either needs new partition numbers, or every stored file looks new.
constexpr int32_t kDevicePartition = kIdentityPartitionBase + 0;
constexpr int32_t kInodePartition = kIdentityPartitionBase + 1;
constexpr int32_t kHeadPartition = kIdentityPartitionBase + 2;
constexpr int32_t kTailPartition = kIdentityPartitionBase + 3;

/// Reads up to `n` bytes at `offset` (fewer only at the end of the file).
Result<std::string> ReadAt(int fd, int64_t offset, size_t n, const std::string& path) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + static_cast<int64_t>(got)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IOError("read " + path + ": " + std::strerror(errno));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

/// Classifies a failed open() or stat() of a source file: missing is NotFound, and what no
/// retry can change (permissions, not a file) is InvalidArgument; both exit 2 at start.
Status OpenError(const std::string& what, int error) {
  std::string m = what + ": " + std::strerror(error);
  if (error == ENOENT || error == ENOTDIR) return Status::NotFound(m);
  if (error == EACCES || error == EPERM || error == EISDIR || error == ELOOP || error == ENAMETOOLONG) {
    return Status::InvalidArgument(m);
  }
  return Status::IOError(m);
}

/// Returns why `st` cannot be a source file, or "" for a regular file.
std::string NotAFile(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISDIR(st.st_mode)) return "is a directory, not a file";
  return "is not a regular file (a FIFO, socket or device): a file source needs a file it can seek in";
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string_view StripTerminator(std::string_view record) {
  while (!record.empty() && (record.back() == '\n' || record.back() == '\r')) record.remove_suffix(1);
  return record;
}

}  // namespace

Result<DecoderOptions::Format> FormatFromPath(const std::string& path) {
  if (EndsWith(path, ".csv")) return DecoderOptions::Format::kCsv;
  if (EndsWith(path, ".ndjson") || EndsWith(path, ".jsonl") || EndsWith(path, ".json")) {
    return DecoderOptions::Format::kNdjson;
  }
  return Status::InvalidArgument("cannot tell the format of '" + path +
                                 "' from its name: use .csv, .ndjson or .jsonl, or set format");
}

const OptionTable& FileSourceOptions() {
  static const OptionTable kTable{
      .uri = "PATH",
      .summary = "A local CSV or NDJSON file (`file:PATH` or a path without a scheme), read once or "
                 "followed with `--follow`.",
      .options = {
          {.name = "format",
           .default_value = "auto",
           .allowed = {"auto", "csv", "ndjson", "json"},
           .help = "`auto` tells by the extension (.csv, .ndjson, .jsonl, .json)."},
          {.name = "delimiter",
           .default_note = "sniffed from the header",
           .allowed = {",", ";"},
           .help = "CSV field separator."},
          {.name = "header",
           .type = OptionType::kBool,
           .default_value = "true",
           .help = "The CSV file starts with a header naming its columns."},
          {.name = "max_quoted_bytes",
           .type = OptionType::kInt,
           .default_value = "1048576",
           .help = "A CSV record over several lines must split into the header's fields within "
                   "this size; else its quote is taken for a stray one, its first line "
                   "dead-lettered and reading resumes at the next line."},
      }};
  return kTable;
}

Result<std::vector<std::unique_ptr<Source>>> FileSource::Make(const SourceConfig& config,
                                                              int /*max_instances*/) {
  auto [scheme, path] = SplitUri(config.uri);
  OptionReader o(config.options, FileSourceOptions(), "source");
  DecoderOptions options;
  ASSIGN_OR_RETURN(std::string format, o.Choice("format"));
  if (format == "auto") {
    auto f = FormatFromPath(path);
    if (!f.ok()) return Status::InvalidArgument(o.Where("format") + ": " + f.status().message());
    options.format = *f;
  } else if (format == "csv") {
    options.format = DecoderOptions::Format::kCsv;
  } else {
    options.format = DecoderOptions::Format::kNdjson;
  }
  ASSIGN_OR_RETURN(std::string delimiter, o.Choice("delimiter"));
  if (!delimiter.empty()) options.delimiter = delimiter[0];
  ASSIGN_OR_RETURN(options.header, o.Bool("header"));
  ASSIGN_OR_RETURN(int64_t max_quoted, o.Int("max_quoted_bytes"));
  if (max_quoted <= 0) {
    return Status::InvalidArgument(o.Where("max_quoted_bytes") + ": max_quoted_bytes must be positive");
  }
  RETURN_IF_ERROR(o.Finish());
  // What no retry can fix fails here, at start (and in `validate`): a missing file, a
  // directory, a FIFO or device, a file this user cannot read.
  const std::string where = config.options.Where("") + ": source file " + path;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return OpenError(where, errno);
  if (std::string why = NotAFile(st); !why.empty()) return Status::InvalidArgument(where + " " + why);
  if (::access(path.c_str(), R_OK) != 0) return OpenError(where + " cannot be read", errno);
  std::vector<std::unique_ptr<Source>> out;
  auto* source = new FileSource(config.name, path, options);
  out.push_back(std::unique_ptr<Source>(source));
  if (delimiter.empty()) source->options_.delimiter = 0;
  source->max_quoted_bytes_ = max_quoted;
  return out;
}

Status FileSource::Open(const SourceContext& ctx) {
  follow_ = ctx.follow && !ctx.until_caught_up;
  until_caught_up_ = ctx.until_caught_up;
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return OpenError("source " + name_ + ": open " + path_, errno);
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::IOError("stat " + path_ + ": " + std::strerror(errno));
  if (std::string why = NotAFile(st); !why.empty()) {
    return Status::InvalidArgument("source " + name_ + ": " + path_ + " " + why);
  }
  device_ = static_cast<int64_t>(st.st_dev);
  inode_ = static_cast<int64_t>(st.st_ino);
  int64_t data_start = 0;
  if (options_.format == DecoderOptions::Format::kCsv && options_.header) {
    // Read until the header record is complete.
    while (true) {
      size_t len = CsvRecordLength(Buffered(), eof_);
      if (len > 0) {
        header_ = std::string(StripTerminator(Buffered().substr(0, len)));
        data_start = static_cast<int64_t>(len);
        break;
      }
      if (eof_) return Status::InvalidArgument(path_ + ": empty CSV file, expected a header row");
      ASSIGN_OR_RETURN(size_t n, Fill());
      if (n == 0 && follow_ && !eof_) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (header_->size() >= 3 && header_->compare(0, 3, "\xEF\xBB\xBF") == 0) header_->erase(0, 3);
    if (options_.delimiter == 0) options_.delimiter = SniffDelimiter(*header_);
  }
  if (options_.delimiter == 0) options_.delimiter = ',';
  if (header_) {
    std::vector<std::string> names;
    if (SplitCsvRecord(*header_, options_.delimiter, &names).ok()) columns_ = names.size();
  }
  ASSIGN_OR_RETURN(head_, ReadAt(fd_, 0, static_cast<size_t>(kHeadBytes), path_));
  int64_t start = data_start;
  generation_ = 0;
  if (auto committed = ctx.committed_position(0); committed && *committed > 0) {
    ASSIGN_OR_RETURN(int64_t resume, ResumeOffset(ctx, *committed, static_cast<int64_t>(st.st_size)));
    generation_ = ctx.committed_position(kGenerationPartitionBase).value_or(0);
    // Another file at the path: its offsets start again, and so that its dead letters do not
    // take the identity of the old file's at the same offsets, it is the next generation.
    if (resume == 0) ++generation_;
    start = std::max(start, resume);
  }
  // The buffer starts with the bytes before `start`, whose hash goes with the next position.
  const int64_t history = std::min(start, kTailBytes);
  ASSIGN_OR_RETURN(std::string before, ReadAt(fd_, start - history, static_cast<size_t>(history), path_));
  if (static_cast<int64_t>(before.size()) != history) {
    return Status::IOError("source " + name_ + ": " + path_ + " shrank while it was opened");
  }
  buf_len_ = 0;
  Reserve(before.size());
  if (!before.empty()) std::memcpy(buf_.get(), before.data(), before.size());
  buf_len_ = before.size();
  buf_pos_ = before.size();
  buf_offset_ = start - history;
  eof_ = false;
  if (::lseek(fd_, start, SEEK_SET) < 0) {
    return Status::IOError("seek " + path_ + ": " + std::strerror(errno));
  }
  return Status::OK();
}

Result<int64_t> FileSource::ResumeOffset(const SourceContext& ctx, int64_t committed, int64_t size) {
  const std::string what = "source " + name_ + ": file " + path_;
  const std::string reset = "run again with --reset-source " + name_ +
                            " to read it from its start (what was read before stays counted in the sink)";
  auto shrank = [&](const std::string& how) {
    return Status::FailedPrecondition(
        what + " is shorter (" + std::to_string(size) + " bytes) than the position committed for it (byte " +
        std::to_string(committed) + ") and " + how + ": it was truncated or rewritten shorter, and sluice " +
        "cannot tell which of its records are new; " + reset);
  };
  const auto device = ctx.committed_position(kDevicePartition);
  const auto inode = ctx.committed_position(kInodePartition);
  const auto head = ctx.committed_position(kHeadPartition);
  const auto tail = ctx.committed_position(kTailPartition);
  if (!head || !tail) {
    // A position stored by a sluice that kept no identity: trust it unless the file shrank.
    if (size < committed) return shrank("no file identity is stored with the position");
    spdlog::info("{}: no file identity is stored with its position (written by an older sluice); "
                 "continuing at byte {}", what, committed);
    return committed;
  }
  const bool same_inode = device && inode && *device == device_ && *inode == inode_;
  const int64_t head_len = std::min(committed, kHeadBytes);
  if (static_cast<int64_t>(head_.size()) < head_len) {
    // Shorter than the first bytes that were hashed: they cannot be compared.
    if (same_inode) return shrank("it is the same file (device and inode)");
    spdlog::info("{}: it was replaced (another inode) by a file shorter than the first bytes read before; "
                 "reading it from its start as a new file", what);
    return 0;
  }
  if (Fingerprint64(std::string_view(head_).substr(0, static_cast<size_t>(head_len))) != *head) {
    spdlog::info("{}: {} than the file read to byte {} before; reading it from its start as a new file", what,
                 same_inode ? "its first bytes were rewritten in place: it holds other data"
                            : "it was replaced: another inode and other first bytes, so other data",
                 committed);
    return 0;
  }
  if (size < committed) return shrank("starts with the same bytes as the file read before");
  const int64_t tail_len = std::min(committed, kTailBytes);
  ASSIGN_OR_RETURN(std::string before, ReadAt(fd_, committed - tail_len, static_cast<size_t>(tail_len), path_));
  if (Fingerprint64(before) != *tail) {
    return Status::FailedPrecondition(
        what + " starts with the same bytes as the file read before, but the bytes before the position " +
        "committed for it (byte " + std::to_string(committed) + ") changed: it was rewritten, not " +
        "appended to, and sluice cannot tell which of its records are new; " + reset);
  }
  if (!same_inode) {
    spdlog::info("{}: replaced by a file that keeps what was read (to byte {}) as its prefix; continuing there",
                 what, committed);
  }
  return committed;
}

void FileSource::Reserve(size_t n) {
  if (buf_cap_ - buf_len_ >= n) return;
  size_t cap = std::max(2 * buf_cap_, buf_len_ + n);
  auto grown = std::make_unique_for_overwrite<char[]>(cap);
  if (buf_len_ > 0) std::memcpy(grown.get(), buf_.get(), buf_len_);
  buf_ = std::move(grown);
  buf_cap_ = cap;
}

Result<size_t> FileSource::Fill() {
  // Consumed bytes are dropped, except the kTailBytes before buf_pos_ (hashed with positions).
  const size_t drop = buf_pos_ > static_cast<size_t>(kTailBytes) ? buf_pos_ - static_cast<size_t>(kTailBytes) : 0;
  if (drop > 0 && drop >= buf_len_ / 2) {
    std::memmove(buf_.get(), buf_.get() + drop, buf_len_ - drop);
    buf_len_ -= drop;
    buf_offset_ += static_cast<int64_t>(drop);
    buf_pos_ -= drop;
  }
  Reserve(kReadSize);
  ssize_t n;
  do {
    n = ::read(fd_, buf_.get() + buf_len_, kReadSize);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    // EIO and the like may pass (a flaky disk, a network file system): the worker retries them
    // with backoff and counts them. What a retry cannot change stops the run.
    const int e = errno;
    std::string m = "source " + name_ + ": read " + path_ + ": " + std::strerror(e);
    if (e == EISDIR || e == EBADF || e == EINVAL || e == EFAULT) return Status::FailedPrecondition(m);
    return Status::IOError(m);
  }
  // The first kHeadBytes of the file are kept in head_ as they are read (a followed file that
  // was shorter when it was opened).
  const int64_t at = buf_offset_ + static_cast<int64_t>(buf_len_);
  const int64_t have = static_cast<int64_t>(head_.size());
  if (n > 0 && have < kHeadBytes && at <= have && at + n > have) {
    const int64_t upto = std::min<int64_t>(at + n, kHeadBytes);
    head_.append(buf_.get() + buf_len_ + (have - at), static_cast<size_t>(upto - have));
  }
  buf_len_ += static_cast<size_t>(n);
  if (n == 0) eof_ = true;
  return static_cast<size_t>(n);
}

FileSource::Framed FileSource::NextRecord(bool at_eof) {
  std::string_view rest = Buffered().substr(buf_pos_);
  if (rest.empty()) return {};
  const size_t nl = rest.find('\n');
  if (options_.format != DecoderOptions::Format::kCsv) {
    if (nl != std::string_view::npos) return {nl + 1, {}};
    return {at_eof ? rest.size() : 0, {}};
  }
  const size_t len = CsvRecordLength(rest, at_eof);
  // The first line, which is all a broken record gives up.
  const size_t line = nl != std::string_view::npos ? nl + 1 : (at_eof ? rest.size() : 0);
  const size_t cap = static_cast<size_t>(max_quoted_bytes_);
  auto broken = [&](const std::string& why) {
    return Framed{line, "CSV record: " + why + " (a stray quote?); this line was dead-lettered and reading " +
                            "resumed at the next one"};
  };
  if (len == 0) {
    // Still inside quotes at the end of the buffer: more is needed, unless that is too much.
    if (line > 0 && rest.size() > cap) {
      return broken("a quoted field runs past " + std::to_string(cap) + " bytes (max_quoted_bytes)");
    }
    return {};
  }
  if (line == 0 || len <= line) return {len, {}};
  // A record over several lines: a quoted field with line breaks, or a quote that is not one.
  if (len > cap) return broken("a quoted field runs past " + std::to_string(cap) + " bytes (max_quoted_bytes)");
  Status s = SplitCsvRecordViews(rest.substr(0, len), options_.delimiter, &fields_, &scratch_);
  if (!s.ok()) return broken(s.message());
  if (columns_ > 0 && fields_.size() != columns_) {
    return broken("a quoted field over " + std::to_string(std::count(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(len), '\n')) +
                  " line breaks gives " + std::to_string(fields_.size()) + " fields where the header has " +
                  std::to_string(columns_));
  }
  return {len, {}};
}

Result<PollState> FileSource::Poll(RawBatch* out, size_t max_records,
                                   std::chrono::milliseconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  const int64_t position_before = buf_offset_ + static_cast<int64_t>(buf_pos_);
  auto taken = [&] { return out->size() + out->dead_letters().size(); };
  while (taken() < max_records) {
    // A record cut at the end of a followed file is not final: more may be appended.
    Framed next = NextRecord(eof_ && !follow_);
    if (next.length == 0) {
      if (taken() > 0 && eof_) break;
      if (eof_ && !follow_) break;
      eof_ = false;
      auto filled = Fill();
      if (!filled.ok()) {
        // The records taken so far are returned (their bytes are consumed); the error comes
        // again with the next poll.
        if (taken() > 0) break;
        return filled.status();
      }
      const size_t n = *filled;
      if (n == 0 && follow_) {
        if (taken() > 0) break;
        if (std::chrono::steady_clock::now() >= deadline) return PollState::kIdle;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      continue;
    }
    std::string_view record = Buffered().substr(buf_pos_, next.length);
    const int64_t offset = buf_offset_ + static_cast<int64_t>(buf_pos_);
    buf_pos_ += next.length;
    std::string_view payload = StripTerminator(record);
    if (!next.error.empty()) {
      out->AddDeadLetter(SourceDeadLetter{std::move(next.error), std::string(payload), 0, offset});
      continue;
    }
    if (payload.empty()) continue;  // blank line
    RawRecord& r = out->Append(payload);
    r.partition = 0;
    r.offset = offset;
    r.next_offset = offset + static_cast<int64_t>(next.length);
  }
  if (buf_offset_ + static_cast<int64_t>(buf_pos_) != position_before) UpdateIdentity();
  if (taken() > 0) return PollState::kData;
  return follow_ ? PollState::kIdle : PollState::kEnd;
}

void FileSource::UpdateIdentity() {
  const int64_t position = buf_offset_ + static_cast<int64_t>(buf_pos_);
  // Fill() keeps head_ up to date as the first bytes are read, so it covers head_len; were it
  // ever short, the next start would find other first bytes and read the file again as new.
  const size_t head_len = static_cast<size_t>(std::min(position, kHeadBytes));
  const size_t tail_len = static_cast<size_t>(std::min(position, kTailBytes));
  head_hash_ = Fingerprint64(std::string_view(head_).substr(0, head_len));
  tail_hash_ = Fingerprint64(Buffered().substr(buf_pos_ - tail_len, tail_len));
  identity_at_ = position;
}

std::vector<std::pair<int32_t, int64_t>> FileSource::PositionsAfterBatch() const {
  if (identity_at_ < 0) return {};
  std::vector<std::pair<int32_t, int64_t>> out = {{0, identity_at_},
                                                  {kDevicePartition, device_},
                                                  {kInodePartition, inode_},
                                                  {kHeadPartition, head_hash_},
                                                  {kTailPartition, tail_hash_}};
  if (generation_ > 0) out.push_back({kGenerationPartitionBase, generation_});
  return out;
}

std::vector<std::pair<int32_t, int64_t>> FileSource::Lag() const {
  struct stat st;
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return {};
  int64_t pos = buf_offset_ + static_cast<int64_t>(buf_pos_);
  return {{0, std::max<int64_t>(0, st.st_size - pos)}};
}

Status CheckFileIdentity(const std::string& path, int64_t committed,
                         const std::map<int32_t, int64_t>& stored) {
  auto get = [&](int32_t p) -> std::optional<int64_t> {
    auto it = stored.find(p);
    if (it == stored.end()) return std::nullopt;
    return it->second;
  };
  const auto head = get(kHeadPartition);
  const auto tail = get(kTailPartition);
  if (!head || !tail) return Status::OK();
  const std::string what = "the input changed since the sink's positions were committed: file " + path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FailedPrecondition(what + " cannot be opened: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IOError("stat " + path + ": " + std::strerror(errno));
  }
  const int64_t size = static_cast<int64_t>(st.st_size);
  auto fail = [&](const std::string& how) {
    ::close(fd);
    return Status::FailedPrecondition(what + " " + how);
  };
  if (size < committed) {
    return fail("is shorter (" + std::to_string(size) + " bytes) than the committed position (byte " +
                std::to_string(committed) + ")");
  }
  const int64_t head_len = std::min(committed, kHeadBytes);
  auto first = ReadAt(fd, 0, static_cast<size_t>(head_len), path);
  if (!first.ok()) return fail(first.status().message());
  if (Fingerprint64(*first) != *head) return fail("holds other first bytes than the file that was read");
  const int64_t tail_len = std::min(committed, kTailBytes);
  auto before = ReadAt(fd, committed - tail_len, static_cast<size_t>(tail_len), path);
  if (!before.ok()) return fail(before.status().message());
  if (Fingerprint64(*before) != *tail) {
    return fail("holds other bytes before the committed position (byte " + std::to_string(committed) +
                "): it was rewritten");
  }
  ::close(fd);
  return Status::OK();
}

void FileSource::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::optional<std::string> DescribeFileIdentity(const std::map<int32_t, int64_t>& positions) {
  std::vector<int32_t> identity;
  for (const auto& [partition, offset] : positions) {
    if (partition >= kIdentityPartitionBase) identity.push_back(partition);
  }
  if (identity != std::vector<int32_t>{kDevicePartition, kInodePartition, kHeadPartition, kTailPartition}) {
    return std::nullopt;
  }
  auto hex = [](int64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  return "device " + std::to_string(positions.at(kDevicePartition)) + ", inode " +
         std::to_string(positions.at(kInodePartition)) + ", hash of the first " +
         std::to_string(kHeadBytes) + " bytes " + hex(positions.at(kHeadPartition)) +
         ", hash of the " + std::to_string(kTailBytes) + " bytes before the offset " +
         hex(positions.at(kTailPartition));
}

}  // namespace sluice
