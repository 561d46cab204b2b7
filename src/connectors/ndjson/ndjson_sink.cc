#include "connectors/ndjson/ndjson_sink.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "runtime/dead_letter_file.h"
#include "core/serialize.h"
#include "core/json_builder.h"
#include "core/uri.h"

namespace sluice {
namespace {

constexpr const char* kMagic = "sluice ndjson positions 1";
constexpr const char* kData = "data";

std::string Errno() { return std::strerror(errno); }

Result<std::string> ReadWhole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("open " + path + ": " + Errno());
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Status::IOError("read " + path + ": " + Errno());
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status WriteAll(int fd, const std::string& bytes, int64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                         offset + static_cast<int64_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("write " + path + ": " + Errno());
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

void AppendNdjsonRow(const Schema& schema, const std::vector<Value>& row, std::string* out) {
  JsonBuilder j;
  j.BeginObject();
  for (size_t i = 0; i < row.size() && i < schema.size(); ++i) {
    j.Key(schema.field(i).name).ValueOf(row[i]);
  }
  j.EndObject();
  out->append(j.str());
  out->push_back('\n');
}

const OptionTable& NdjsonFileSinkOptions() {
  static const OptionTable kTable{
      .uri = "ndjson:PATH",
      .summary = "Appends each output row as one JSON object per line, exactly once (the committed "
                 "length and positions sit beside it in `PATH.sluice-positions`). Takes rows, not an "
                 "update-mode aggregate; has no `table`.",
      .options = {}};
  return kTable;
}

const OptionTable& StdoutSinkOptions() {
  static const OptionTable kTable{
      .uri = "stdout:",
      .summary = "Prints each output row as one JSON object per line, for a quick look; logs go to "
                 "stderr. Takes rows, not an update-mode aggregate.",
      .options = {
          {.name = "key", .help = "Ignored (another sink's setting: a pipeline written for it runs unchanged)."},
          {.name = "partition_by", .help = "Ignored, as `key`."},
          {.name = "column_types", .help = "Ignored, as `key`."},
      }};
  return kTable;
}

Result<std::unique_ptr<Sink>> NdjsonSink::MakeFile(const SinkConfig& config) {
  auto [scheme, path] = SplitUri(config.uri);
  if (path.empty()) {
    return Status::InvalidArgument(config.options.Where("uri") +
                                   ": ndjson sink needs a path: ndjson:PATH");
  }
  if (!config.table.empty() && !config.table_from_name) {
    return Status::InvalidArgument(config.options.Where("table") +
                                   ": an ndjson sink has no tables; leave `table` out");
  }
  RETURN_IF_ERROR(OptionReader(config.options, NdjsonFileSinkOptions(), "sink").Finish());
  return std::unique_ptr<Sink>(new NdjsonSink(path, config.options.Where("uri")));
}

Result<std::unique_ptr<Sink>> NdjsonSink::MakeStdout(const SinkConfig& config) {
  auto [scheme, rest] = SplitUri(config.uri);
  if (!rest.empty()) {
    return Status::InvalidArgument(config.options.Where("uri") + ": write `stdout:` alone (got " +
                                   config.uri + "); a file is ndjson:PATH");
  }
  // A quick look at a pipeline written for another sink: the options that only shape that
  // sink's table or messages (not which rows there are) are accepted and have no effect.
  OptionReader o(config.options, StdoutSinkOptions(), "sink");
  for (const char* other : {"key", "partition_by", "column_types"}) (void)o.String(other);
  RETURN_IF_ERROR(o.Finish());
  return std::unique_ptr<Sink>(new NdjsonSink("", config.options.Where("uri")));
}

NdjsonSink::~NdjsonSink() { Close(); }

void NdjsonSink::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status NdjsonSink::Check(const SinkContext& ctx) const {
  if (ctx.aggregate && !ctx.aggregate->append_mode) {
    return Status::InvalidArgument(
        where_ + ": " + (path_.empty() ? std::string("stdout:") : "ndjson:") +
        " writes rows once and cannot update them, but this aggregate runs in update mode; "
        "add mode = \"append\" under [aggregate] (a row per closed window), or write to a table "
        "sink (sqlite:, mysql:, cassandra:)");
  }
  return Status::OK();
}

Result<SinkExplanation> NdjsonSink::Explain(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  SinkExplanation e;
  if (path_.empty()) {
    e.facts.push_back({"file", "standard output"});
    e.facts.push_back({"per checkpoint", "the new rows, one JSON object per line; nothing is stored, so "
                                         "every run starts from the source's beginning"});
  } else {
    e.facts.push_back({"file", path_});
    e.facts.push_back({"per checkpoint", "the new rows, one JSON object per line, fsynced; then " +
                                             SidecarPath(path_) +
                                             " (committed length, positions, engine state) is "
                                             "replaced: that is the commit"});
  }
  return e;
}

Status NdjsonSink::Open(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  ctx_ = ctx;
  if (path_.empty()) return Status::OK();
  Status s = OpenFile(ctx);
  if (!s.ok()) Close();  // and so release the lock
  return s;
}

Status NdjsonSink::OpenFile(const SinkContext& ctx) {
  RETURN_IF_ERROR(EnsureParentDirectory(path_));
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return Status::IOError("open " + path_ + ": " + Errno());
  // Two processes appending to one file would overwrite each other's lines.
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::InvalidArgument(path_ + " is in use by another sluice process; give each "
                                   "pipeline process its own ndjson file");
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::IOError("stat " + path_ + ": " + Errno());
  const int64_t size = st.st_size;
  Committed c;
  ASSIGN_OR_RETURN(bool found, ReadSidecar(&c));
  if (!found) {
    if (size > 0) {
      return Status::InvalidArgument(
          path_ + " already holds " + std::to_string(size) + " bytes but has no " +
          SidecarPath(path_) +
          ": it was not written by sluice (or its positions were deleted); remove it or write "
          "to another path");
    }
    c.pipeline = ctx.pipeline;
    c.lengths[kData] = 0;
  }
  if (c.pipeline != ctx.pipeline) {
    return Status::InvalidArgument(path_ + " holds the output of pipeline '" + c.pipeline +
                                   "', not '" + ctx.pipeline + "'; write to another path");
  }
  const int64_t length = c.lengths[kData];
  if (length > size) {
    return Status::Internal(path_ + " is shorter (" + std::to_string(size) +
                            " bytes) than its committed length " + std::to_string(length) +
                            " in " + SidecarPath(path_) + ": it was truncated or replaced");
  }
  if (length < size) {
    // Lines of a checkpoint that never committed: the replay writes them again.
    if (::ftruncate(fd_, length) != 0) return Status::IOError("truncate " + path_ + ": " + Errno());
    if (::fsync(fd_) != 0) return Status::IOError("fsync " + path_ + ": " + Errno());
  }
  committed_ = std::move(c);
  state_ = committed_.has_state ? committed_.state : std::string();
  return Status::OK();
}

Result<bool> NdjsonSink::ReadSidecar(Committed* out) const {
  const std::string sidecar = SidecarPath(path_);
  std::error_code ec;
  if (!std::filesystem::exists(sidecar, ec)) return false;
  ASSIGN_OR_RETURN(std::string bytes, ReadWhole(sidecar));
  BinaryReader r(bytes);
  std::string magic;
  int64_t files = 0, positions = 0;
  uint8_t has_state = 0;
  bool ok = r.GetString(&magic) && magic == kMagic && r.GetString(&out->pipeline) &&
            r.GetI64(&files);
  for (int64_t i = 0; ok && i < files; ++i) {
    std::string role;
    int64_t length = 0;
    ok = r.GetString(&role) && r.GetI64(&length);
    out->lengths[role] = length;
  }
  ok = ok && r.GetI64(&positions);
  for (int64_t i = 0; ok && i < positions; ++i) {
    std::string source;
    int64_t partition = 0, offset = 0;
    ok = r.GetString(&source) && r.GetI64(&partition) && r.GetI64(&offset);
    out->positions[{source, static_cast<int32_t>(partition)}] = offset;
  }
  ok = ok && r.GetU8(&has_state) && (!has_state || r.GetString(&out->state)) && r.done();
  out->has_state = has_state != 0;
  if (!ok) {
    const std::string why =
        r.status().ok() ? std::string("unexpected content") : r.status().message();
    return Status::Internal(sidecar + " is not a sluice positions file (" + why +
                            "); it must not be edited");
  }
  return true;
}

Status NdjsonSink::WriteSidecar(const Committed& c) const {
  BinaryWriter w;
  w.PutString(kMagic);
  w.PutString(c.pipeline);
  w.PutI64(static_cast<int64_t>(c.lengths.size()));
  for (const auto& [role, length] : c.lengths) {
    w.PutString(role);
    w.PutI64(length);
  }
  w.PutI64(static_cast<int64_t>(c.positions.size()));
  for (const auto& [key, offset] : c.positions) {
    w.PutString(key.first);
    w.PutI64(key.second);
    w.PutI64(offset);
  }
  w.PutU8(c.has_state ? 1 : 0);
  if (c.has_state) w.PutString(c.state);
  const std::string sidecar = SidecarPath(path_);
  const std::string temp = sidecar + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("open " + temp + ": " + Errno());
  Status s = WriteAll(fd, w.data(), 0, temp);
  if (s.ok() && ::fsync(fd) != 0) s = Status::IOError("fsync " + temp + ": " + Errno());
  ::close(fd);
  RETURN_IF_ERROR(s);
  if (::rename(temp.c_str(), sidecar.c_str()) != 0) {
    return Status::IOError("rename " + temp + " to " + sidecar + ": " + Errno());
  }
  // The rename is durable only once the folder is.
  std::string dir = std::filesystem::path(sidecar).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::IOError("open " + dir + ": " + Errno());
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return Status::IOError("fsync " + dir + ": " + Errno());
  return Status::OK();
}

Result<std::vector<StoredPosition>> NdjsonSink::LoadPositions() {
  std::vector<StoredPosition> out;
  for (const auto& [key, offset] : committed_.positions) {
    out.push_back({key.first, key.second, offset});
  }
  return out;
}

Status NdjsonSink::Commit(const Checkpoint& cp) {
  if (cp.deltas && !cp.deltas->empty()) {
    return Status::InvalidArgument(where_ + ": the ndjson sink cannot take update-mode deltas");
  }
  std::string lines;
  if (cp.rows) {
    for (const auto& row : *cp.rows) AppendNdjsonRow(ctx_.output, row, &lines);
  }
  if (path_.empty()) {
    if (!lines.empty() && std::fwrite(lines.data(), 1, lines.size(), stdout) != lines.size()) {
      return Status::IOError("write to stdout: " + Errno());
    }
    if (std::fflush(stdout) != 0) return Status::IOError("write to stdout: " + Errno());
    return Status::OK();
  }
  if (fd_ < 0) return Status::Internal(path_ + ": Commit before Open");
  // 1. The lines, after the committed length (a retried checkpoint overwrites its own earlier
  //    attempt), and nothing after them; fsynced.
  const int64_t start = committed_.lengths[kData];
  const int64_t end = start + static_cast<int64_t>(lines.size());
  RETURN_IF_ERROR(WriteAt(start, lines));
  if (::ftruncate(fd_, end) != 0) return Status::IOError("truncate " + path_ + ": " + Errno());
  if (::fdatasync(fd_) != 0) return Status::IOError("fsync " + path_ + ": " + Errno());
  // 2. The sidecar: new length, positions merged over the stored ones (a checkpoint carries
  //    only the partitions this process read), state. Its rename is the commit point.
  Committed next = committed_;
  next.lengths[kData] = end;
  for (const auto& p : cp.positions) next.positions[{p.source, p.partition}] = p.offset;
  if (cp.state) {
    next.has_state = true;
    next.state = *cp.state;
  }
  RETURN_IF_ERROR(WriteSidecar(next));
  committed_ = std::move(next);
  return Status::OK();
}

Status NdjsonSink::WriteAt(int64_t offset, const std::string& bytes) {
  return WriteAll(fd_, bytes, offset, path_);
}

}  // namespace sluice
