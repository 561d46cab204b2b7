#include "connectors/file/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "connectors/generator/generator_source.h"
#include "operators/dimension.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

constexpr size_t kReadSize = 1 << 20;

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

Result<std::vector<std::unique_ptr<Source>>> FileSource::Make(const SourceConfig& config,
                                                              int /*max_instances*/) {
  auto [scheme, path] = SplitUri(config.uri);
  const Options& o = config.options;
  DecoderOptions options;
  std::string format = o.GetString("format", "auto");
  if (format == "auto") {
    auto f = FormatFromPath(path);
    if (!f.ok()) return Status::InvalidArgument(o.Where("format") + ": " + f.status().message());
    options.format = *f;
  } else if (format == "csv") {
    options.format = DecoderOptions::Format::kCsv;
  } else if (format == "ndjson" || format == "json") {
    options.format = DecoderOptions::Format::kNdjson;
  } else {
    return Status::InvalidArgument(o.Where("format") + ": format must be auto, csv or ndjson");
  }
  std::string delimiter = o.GetString("delimiter", "");
  if (delimiter == ";" || delimiter == ",") {
    options.delimiter = delimiter[0];
  } else if (!delimiter.empty()) {
    return Status::InvalidArgument(o.Where("delimiter") + ": delimiter must be \",\" or \";\"");
  }
  ASSIGN_OR_RETURN(options.header, o.GetBool("header", true));
  IgnoreGeneratorOptions(o);
  RETURN_IF_ERROR(o.RejectUnconsumed("source"));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::NotFound(config.options.Where("") + ": source file " + path + ": " +
                            std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    // Permanent: waiting or retrying cannot turn a directory into a file.
    return Status::InvalidArgument(config.options.Where("") + ": source file " + path +
                                   " is a directory; name a .csv or .ndjson file in it");
  }
  std::vector<std::unique_ptr<Source>> out;
  out.push_back(std::unique_ptr<Source>(new FileSource(path, options)));
  if (delimiter.empty()) static_cast<FileSource*>(out.back().get())->options_.delimiter = 0;
  return out;
}

Status FileSource::Open(const SourceContext& ctx) {
  follow_ = ctx.follow && !ctx.until_caught_up;
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return Status::IOError("open " + path_ + ": " + std::strerror(errno));
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
  int64_t start = data_start;
  if (auto committed = ctx.committed_position(0)) start = std::max(start, *committed);
  if (::lseek(fd_, start, SEEK_SET) < 0) {
    return Status::IOError("seek " + path_ + ": " + std::strerror(errno));
  }
  buf_len_ = 0;
  buf_pos_ = 0;
  buf_offset_ = start;
  eof_ = false;
  return Status::OK();
}

Result<size_t> FileSource::Fill() {
  if (buf_pos_ > 0 && buf_pos_ >= buf_len_ / 2) {
    std::memmove(buf_.get(), buf_.get() + buf_pos_, buf_len_ - buf_pos_);
    buf_len_ -= buf_pos_;
    buf_offset_ += static_cast<int64_t>(buf_pos_);
    buf_pos_ = 0;
  }
  if (buf_cap_ - buf_len_ < kReadSize) {
    size_t cap = std::max(2 * buf_cap_, buf_len_ + kReadSize);
    auto grown = std::make_unique_for_overwrite<char[]>(cap);
    if (buf_len_ > 0) std::memcpy(grown.get(), buf_.get(), buf_len_);
    buf_ = std::move(grown);
    buf_cap_ = cap;
  }
  ssize_t n;
  do {
    n = ::read(fd_, buf_.get() + buf_len_, kReadSize);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::IOError("read " + path_ + ": " + std::strerror(errno));
  buf_len_ += static_cast<size_t>(n);
  if (n == 0) eof_ = true;
  return static_cast<size_t>(n);
}

size_t FileSource::NextRecordLength(bool at_eof) const {
  std::string_view rest = Buffered().substr(buf_pos_);
  if (rest.empty()) return 0;
  if (options_.format == DecoderOptions::Format::kCsv) return CsvRecordLength(rest, at_eof);
  size_t nl = rest.find('\n');
  if (nl != std::string_view::npos) return nl + 1;
  return at_eof ? rest.size() : 0;
}

Result<PollState> FileSource::Poll(RawBatch* out, size_t max_records,
                                   std::chrono::milliseconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  while (out->size() < max_records) {
    // A record cut at the end of a followed file is not final: more may be appended.
    size_t len = NextRecordLength(eof_ && !follow_);
    if (len == 0) {
      if (!out->empty() && eof_) break;
      if (eof_ && !follow_) return out->empty() ? PollState::kEnd : PollState::kData;
      eof_ = false;
      ASSIGN_OR_RETURN(size_t n, Fill());
      if (n == 0 && follow_) {
        if (!out->empty()) break;
        if (std::chrono::steady_clock::now() >= deadline) return PollState::kIdle;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      continue;
    }
    std::string_view record = Buffered().substr(buf_pos_, len);
    const int64_t offset = buf_offset_ + static_cast<int64_t>(buf_pos_);
    buf_pos_ += len;
    std::string_view payload = StripTerminator(record);
    if (payload.empty()) continue;  // blank line
    RawRecord& r = out->Append(payload);
    r.partition = 0;
    r.offset = offset;
    r.next_offset = offset + static_cast<int64_t>(len);
  }
  return out->empty() ? (follow_ ? PollState::kIdle : PollState::kEnd) : PollState::kData;
}

std::vector<std::pair<int32_t, int64_t>> FileSource::Lag() const {
  struct stat st;
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return {};
  int64_t pos = buf_offset_ + static_cast<int64_t>(buf_pos_);
  return {{0, std::max<int64_t>(0, st.st_size - pos)}};
}

void FileSource::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace sluice
