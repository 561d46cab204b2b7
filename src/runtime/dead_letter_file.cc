#include "runtime/dead_letter_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>


namespace sluice {

Status EnsureParentDirectory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return Status::OK();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return Status::IOError("cannot create directory " + parent.string() + ": " + ec.message());
  return Status::OK();
}

Result<std::unique_ptr<DeadLetterFile>> DeadLetterFile::Open(
    const std::string& path, int64_t committed_length) {
  RETURN_IF_ERROR(EnsureParentDirectory(path));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("open dead-letter file " + path + ": " + std::strerror(errno));
  // Two processes appending to one file would interleave and lose lines.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Status::InvalidArgument("dead-letter file " + path +
                                   " is in use by another process; give each process of a "
                                   "pipeline its own file ([dead_letter] path or DLQ)");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IOError("stat " + path + ": " + std::strerror(errno));
  }
  int64_t length = st.st_size;
  if (committed_length > length) {
    ::close(fd);
    return Status::Internal("dead-letter file " + path + " is shorter (" + std::to_string(length) +
                            " bytes) than the committed length " +
                            std::to_string(committed_length) + ": it was truncated or replaced");
  }
  if (committed_length < length) {
    if (::ftruncate(fd, committed_length) != 0) {
      ::close(fd);
      return Status::IOError("truncate " + path + ": " + std::strerror(errno));
    }
    length = committed_length;
  }
  return std::unique_ptr<DeadLetterFile>(new DeadLetterFile(path, fd, length));
}

DeadLetterFile::~DeadLetterFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<int64_t> DeadLetterFile::Append(std::string_view pipeline,
                                       const std::vector<DeadLetter>& letters) {
  if (letters.empty()) return length_;
  std::string out;
  for (const DeadLetter& d : letters) {
    AppendDeadLetterJson(pipeline, d, &out);
    out.push_back('\n');
  }
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pwrite(fd_, out.data() + done, out.size() - done, length_ + static_cast<int64_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("write " + path_ + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) return Status::IOError("fsync " + path_ + ": " + std::strerror(errno));
  length_ += static_cast<int64_t>(out.size());
  return length_;
}

}  // namespace sluice
