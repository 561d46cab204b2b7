#include "connectors/parquet/parquet_sink.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "connectors/parquet/parquet_file.h"
#include "connectors/parquet/parquet_naming.h"
#include "connectors/parquet/parquet_state.h"
#include "core/serialize.h"
#include "core/time.h"
#include "core/uri.h"
#include "runtime/sink_rejection.h"
#include "runtime/source.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

constexpr char kStateDir[] = "_sluice";
constexpr char kDeadLetterDir[] = "dead_letters";

/// The temporary name a file is written under before its rename: `.NAME.tmp`, same directory.
std::string TempPathFor(const std::string& path) {
  const fs::path p(path);
  return (p.parent_path() / ("." + p.filename().string() + ".tmp")).string();
}

std::string DeadLetterFilePrefix(std::string_view pipeline) {
  return "dead-letters-" + HiveEscape(pipeline) + "-";
}

/// Returns `dead-letters-<pipeline>-<n, 10 digits>.ndjson`.
std::string DeadLetterFileName(std::string_view pipeline, int64_t n) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%010lld", static_cast<long long>(n));
  return DeadLetterFilePrefix(pipeline) + digits + ".ndjson";
}

/// Returns the number of a dead-letter file of `pipeline` (a temporary one too), else nullopt.
std::optional<int64_t> ParseDeadLetterFileName(std::string_view pipeline, std::string name) {
  if (name.size() > 5 && name.front() == '.' && name.ends_with(".tmp")) {
    name = name.substr(1, name.size() - 5);
  }
  const std::string prefix = DeadLetterFilePrefix(pipeline);
  if (!name.starts_with(prefix) || !name.ends_with(".ndjson")) return std::nullopt;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - 7);
  if (digits.size() != 10 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(digits);
}
/// Returns `dead-letters-<pipeline>-<n, 10 digits>-<source>-<partition>.ndjson`: the dead
/// letters of one commit of a task (its n-th).
std::string TaskDeadLetterFileName(std::string_view pipeline, const TaskId& task, int64_t n) {
  std::string name = DeadLetterFileName(pipeline, n);
  name.resize(name.size() - 7);  // ".ndjson"
  return name + "-" + HiveEscape(task.source) + "-" + std::to_string(task.partition) + ".ndjson";
}

/// Returns the task a position belongs to: partition p and its generation partition
/// kGenerationPartitionBase + p are task p's; the other identity partitions are no task's.
std::optional<TaskId> TaskOfPosition(const StoredPosition& p) {
  // A dead-letter file's committed length (the runner's "__dead_letters:PATH", partition 0) is
  // no task's: it is the process's own, kept with the commit's shared positions.
  if (p.source.rfind("__dead_letters", 0) == 0) return std::nullopt;
  if (p.partition >= 0 && p.partition < kIdentityPartitionBase)
    return TaskId{p.source, p.partition};
  if (p.partition >= kGenerationPartitionBase) {
    return TaskId{p.source, p.partition - kGenerationPartitionBase};
  }
  return std::nullopt;
}

/// Returns the positions the task files hold together: every task's own (its partition and
/// generation partition) from its file, the positions of no task from the newest commit (the
/// highest commit number).
std::vector<StoredPosition> MergedTaskPositions(const std::map<TaskId, ParquetTaskFile>& files) {
  std::map<std::pair<std::string, int32_t>, int64_t> merged;
  const ParquetTaskFile* newest = nullptr;
  for (const auto& [id, f] : files) {
    if (!newest || f.commit_number > newest->commit_number) newest = &f;
  }
  if (newest) {
    for (const auto& p : newest->positions) merged[{p.source, p.partition}] = p.offset;
  }
  for (const auto& [id, f] : files) {
    for (const auto& p : f.positions) {
      if (TaskOfPosition(p) == id) merged[{p.source, p.partition}] = p.offset;
    }
  }
  std::vector<StoredPosition> out;
  for (const auto& [key, offset] : merged) out.push_back({key.first, key.second, offset});
  return out;
}

constexpr char kTaskFilePrefix[] = "task-";
constexpr char kTaskFileSuffix[] = ".state";

/// Returns the task a task file's name names, given the pipeline's source names are unknown:
/// `task-<escaped source>-<partition>.state` (the partition after the last '-').
std::optional<std::pair<std::string, int32_t>> ParseTaskFileName(std::string_view name) {
  if (!name.starts_with(kTaskFilePrefix) || !name.ends_with(kTaskFileSuffix)) return std::nullopt;
  name.remove_prefix(sizeof kTaskFilePrefix - 1);
  name.remove_suffix(sizeof kTaskFileSuffix - 1);
  const size_t dash = name.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == name.size()) return std::nullopt;
  const std::string_view digits = name.substr(dash + 1);
  if (digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const int64_t p = std::stoll(std::string(digits));
  if (p > INT32_MAX) return std::nullopt;
  return std::make_pair(std::string(name.substr(0, dash)), static_cast<int32_t>(p));
}

/// Holds an exclusive flock(2) until destroyed.
class FlockHold {
 public:
  explicit FlockHold(int fd) : fd_(fd) {}
  FlockHold(const FlockHold&) = delete;
  FlockHold& operator=(const FlockHold&) = delete;
  ~FlockHold() { ::flock(fd_, LOCK_UN); }

 private:
  int fd_;
};

std::string TaskName(const TaskId& t) { return t.source + "[" + std::to_string(t.partition) + "]"; }

constexpr char kNeedsAppendMode[] =
    "the parquet sink needs [aggregate] mode = \"append\" (or a pipeline without [aggregate])";

std::string Errno() { return std::strerror(errno); }

/// Every fsync and syncfs of the sink (ParquetSink::SyncCountForTesting).
std::atomic<int64_t> g_syncs{0};

Status FsyncDir(const std::string& dir) {
  ++g_syncs;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("open directory " + dir + " to fsync: " + Errno());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError("fsync directory " + dir + ": " + std::strerror(err));
  return Status::OK();
}

/// Creates `dir` and its missing parents. With `sync`, fsyncs each parent that gained an entry,
/// so a new directory survives a crash together with the file renamed into it; without, the
/// caller syncs the file system afterwards (SyncFileSystem).
Status CreateDirectories(const fs::path& dir, bool sync = true) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::OK();
  const fs::path parent = dir.parent_path();
  if (!parent.empty() && parent != dir) RETURN_IF_ERROR(CreateDirectories(parent, sync));
  if (!fs::create_directory(dir, ec) && ec) {
    return Status::IOError("cannot create directory " + dir.string() + ": " + ec.message());
  }
  return sync ? FsyncDir(parent.empty() ? "." : parent.string()) : Status::OK();
}

#ifdef __linux__
/// One syncfs(2) makes every file and directory entry a roll wrote durable at once: a single
/// journal commit instead of an fsync per file and per directory. (Since Linux 5.8 it also
/// reports write-back errors of the file system.)
constexpr bool kSyncWholeFileSystem = true;
Status SyncFileSystem(const std::string& dir) {
  ++g_syncs;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("open directory " + dir + " to sync: " + Errno());
  int rc = ::syncfs(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError("syncfs " + dir + ": " + std::strerror(err));
  return Status::OK();
}
#else
/// Without syncfs(2) every file and directory is fsynced on its own (WriteFiles).
constexpr bool kSyncWholeFileSystem = false;
Status SyncFileSystem(const std::string&) { return Status::OK(); }
#endif

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot read " + path + ": " + Errno());
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::IOError("cannot read " + path + ": " + Errno());
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

/// Splits `partition_by`: "a, b", or the text of a TOML array ["a", "b"].
Result<std::vector<std::string>> ParseColumnList(std::string text, const std::string& where) {
  auto trim = [](std::string s) {
    const char* ws = " \t\r\n";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
  };
  text = trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = trim(text.substr(1, text.size() - 2));
  }
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::set<std::string> seen;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string name =
        trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (name.size() >= 2 && (name.front() == '"' || name.front() == '\'') &&
        name.back() == name.front()) {
      name = name.substr(1, name.size() - 2);
    }
    if (name.empty()) {
      return Status::InvalidArgument(where + ": partition_by has an empty column name");
    }
    if (!seen.insert(name).second) {
      return Status::InvalidArgument(where + ": partition_by names column '" + name + "' twice");
    }
    out.push_back(std::move(name));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string ColumnList(const std::vector<Field>& fields) {
  std::string out;
  for (const auto& f : fields) {
    out += (out.empty() ? "" : ", ") + f.name + " " + std::string(TypeName(f.type));
  }
  return out;
}

}  // namespace

const OptionTable& ParquetSinkOptions() {
  static const OptionTable kTable{
      .uri = "parquet:DIR",
      .summary = "A dataset of Parquet files under DIR, Hive-partitioned, exactly once "
                 "(src/connectors/parquet/README.md). Takes rows, not an update-mode aggregate; "
                 "`table` is not used.",
      .options = {
          {.name = "partition_by",
           .type = OptionType::kList,
           .help = "Output columns that make the Hive directories, in this order."},
          {.name = "compression", .default_value = "zstd", .allowed = {"zstd", "snappy", "gzip", "none"}},
          {.name = "roll_rows",
           .type = OptionType::kInt,
           .default_value = "1000000",
           .help = "Write the files once this many rows are buffered."},
          {.name = "roll_interval",
           .type = OptionType::kDuration,
           .default_value = "1m",
           .help = "... or this long after the last write."},
          {.name = "max_files_per_checkpoint",
           .type = OptionType::kInt,
           .default_value = "64",
           .help = "At most this many files per checkpoint (one per partition directory); the "
                   "rows of the other directories stay buffered in the committed state and are "
                   "written by the next checkpoints, oldest first. A final checkpoint writes "
                   "them all, in commits of this many files each."},
      }};
  return kTable;
}

Result<std::unique_ptr<Sink>> ParquetSink::Make(const SinkConfig& config) {
  OptionReader o(config.options, ParquetSinkOptions(), "sink");
  Settings s;
  s.dir = SplitUri(config.uri).second;
  if (s.dir.empty()) {
    return Status::InvalidArgument(o.Where("") +
                                   ": the parquet sink needs a directory: parquet:DIR");
  }
  s.partition_by_where = o.Where("partition_by");
  s.where = o.Where("");
  ASSIGN_OR_RETURN(s.partition_by,
                   ParseColumnList(o.String("partition_by"), s.partition_by_where));
  const std::string compression = o.String("compression");
  if (!ParseParquetCompression(compression, &s.compression)) {
    return Status::InvalidArgument(o.Where("compression") +
                                   ": compression must be zstd, snappy, "
                                   "gzip or none, got '" +
                                   compression + "'");
  }
  ASSIGN_OR_RETURN(s.roll_rows, o.Int("roll_rows"));
  if (s.roll_rows < 1) {
    return Status::InvalidArgument(o.Where("roll_rows") + ": roll_rows must be at least 1");
  }
  ASSIGN_OR_RETURN(s.roll_interval_micros, o.Duration("roll_interval"));
  if (s.roll_interval_micros <= 0) {
    return Status::InvalidArgument(o.Where("roll_interval") + ": roll_interval must be positive");
  }
  ASSIGN_OR_RETURN(s.max_files_per_checkpoint, o.Int("max_files_per_checkpoint"));
  if (s.max_files_per_checkpoint < 1) {
    return Status::InvalidArgument(o.Where("max_files_per_checkpoint") +
                                   ": max_files_per_checkpoint must be at least 1");
  }
  RETURN_IF_ERROR(o.Finish());
  return std::unique_ptr<Sink>(new ParquetSink(std::move(s)));
}

int64_t ParquetSink::SyncCountForTesting() { return g_syncs.load(); }

ParquetSink::ParquetSink(Settings settings)
    : settings_(std::move(settings)), clock_(SteadyClockMicros) {}

ParquetSink::~ParquetSink() { Close(); }

void ParquetSink::Close() {
  // Nothing to flush: buffered rows are in the state file since the commit that took them.
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
  if (tasks_lock_fd_ >= 0) ::close(tasks_lock_fd_);
  tasks_lock_fd_ = -1;
  opened_ = false;
}

std::string ParquetSink::StatePath() const {
  return (fs::path(settings_.dir) / kStateDir / (HiveEscape(ctx_.pipeline) + ".state")).string();
}

Status ParquetSink::Check(const SinkContext& ctx) const {
  if (ctx.aggregate && !ctx.aggregate->append_mode) {
    return Status::InvalidArgument(settings_.where + ": " + kNeedsAppendMode);
  }
  std::set<std::string> partition_columns;
  for (const auto& name : settings_.partition_by) {
    if (!ctx.output.IndexOf(name)) {
      return Status::InvalidArgument(
          settings_.partition_by_where + ": partition_by column '" + name +
          "' is not an output column (columns: " + ColumnList(ctx.output.fields()) + ")");
    }
    partition_columns.insert(name);
  }
  if (partition_columns.size() >= ctx.output.size()) {
    return Status::InvalidArgument(settings_.partition_by_where +
                                   ": partition_by leaves no column to write into the files");
  }
  return Status::OK();
}

Result<SinkExplanation> ParquetSink::Explain(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  SinkExplanation e;
  e.facts.push_back({"directory", settings_.dir});
  std::string layout, files;
  for (const auto& name : settings_.partition_by) layout += name + "=VALUE/";
  e.facts.push_back({"partition by", settings_.partition_by.empty()
                                         ? std::string("none (every file in the directory)")
                                         : layout + " (Hive folders, from the row's values)"});
  for (const Field& f : ctx.output.fields()) {
    if (std::find(settings_.partition_by.begin(), settings_.partition_by.end(), f.name) !=
        settings_.partition_by.end()) {
      continue;
    }
    files += (files.empty() ? "" : ", ") + f.name + " " + std::string(TypeName(f.type));
  }
  e.facts.push_back({"columns in the files", files});
  e.facts.push_back({"files", layout + "part-" + ctx.pipeline + "-SEQ-HASH.parquet, written under a "
                              "temporary name and renamed; then DIR/_sluice/" + ctx.pipeline +
                              ".state (positions, engine state, rows still buffered) replaces the "
                              "last one: that is the commit"});
  const char* compression = "zstd";
  switch (settings_.compression) {
    case ParquetCompression::kZstd: compression = "zstd"; break;
    case ParquetCompression::kSnappy: compression = "snappy"; break;
    case ParquetCompression::kGzip: compression = "gzip"; break;
    case ParquetCompression::kNone: compression = "none"; break;
  }
  e.facts.push_back({"compression", compression});
  e.facts.push_back({"roll", "a new file set every " + std::to_string(settings_.roll_rows) + " rows or " +
                                 FormatDouble(static_cast<double>(settings_.roll_interval_micros) / 1e6) +
                                 "s, and at the end of a run"});
  e.facts.push_back({"files per checkpoint",
                     "at most " + std::to_string(settings_.max_files_per_checkpoint) +
                         " (one per partition directory; rows of the others wait in the state "
                         "file for the next checkpoint)"});
  return e;
}

Status ParquetSink::OpenForReading(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetContext(ctx));
  std::error_code ec;
  if (!fs::is_directory(settings_.dir, ec)) {
    return Status::NotFound("parquet sink directory " + settings_.dir + " does not exist");
  }
  RETURN_IF_ERROR(ReadState());
  // A pipeline on tasks: what it holds is in the task files (and the files the state marker
  // counts from before the move).
  ASSIGN_OR_RETURN(task_files_, ReadTaskFiles());
  task_mode_ = moved_.has_value() || !task_files_.empty();
  return Status::OK();
}

Result<std::vector<std::vector<Value>>> ParquetSink::ReadOutput() {
  std::vector<std::vector<Value>> rows;
  std::error_code ec;
  // Every part file of the pipeline a reader of the dataset sees: folders starting with `_` or
  // `.` are skipped, as Hive, Spark and Arrow skip them.
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(settings_.dir, ec), end;
  if (ec) return Status::IOError("parquet sink: cannot list " + settings_.dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::IOError("parquet sink: cannot list " + settings_.dir + ": " + ec.message());
    const std::string name = it->path().filename().string();
    if (it->is_directory(ec)) {
      if (!name.empty() && (name[0] == '_' || name[0] == '.')) it.disable_recursion_pending();
      continue;
    }
    if (ParsePartFileName(ctx_.pipeline, name)) files.push_back(it->path());
    if (auto t = ParseTaskPartFileName(ctx_.pipeline, name); t && !t->temporary) {
      files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    ASSIGN_OR_RETURN(auto file_rows, ReadParquetFile(file.string(), ctx_.output, data_slots_));
    // The partition columns come from the directories: name=value, escaped the Hive way.
    std::vector<Value> partition(ctx_.output.size());
    for (const auto& part : fs::relative(file.parent_path(), settings_.dir)) {
      const std::string seg = part.string();
      const size_t eq = seg.find('=');
      if (eq == std::string::npos) continue;
      auto slot = ctx_.output.IndexOf(seg.substr(0, eq));
      if (!slot) continue;
      std::string text;
      const std::string escaped = seg.substr(eq + 1);
      for (size_t i = 0; i < escaped.size(); ++i) {
        if (escaped[i] == '%' && i + 2 < escaped.size() &&
            std::isxdigit(static_cast<unsigned char>(escaped[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(escaped[i + 2]))) {
          text += static_cast<char>(std::stoi(escaped.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          text += escaped[i];
        }
      }
      if (text == kHiveDefaultPartition) continue;  // null (or empty)
      auto v = ParseStoredValue(text, ctx_.output.field(*slot).type);
      partition[*slot] = v.ok() ? std::move(v).value() : Value::String(text);
    }
    for (auto& row : file_rows) {
      for (size_t slot : partition_slots_) row[slot] = partition[slot];
      rows.push_back(std::move(row));
    }
  }
  // Rows committed but not rolled into a file yet are in the state file.
  rows.insert(rows.end(), buffer_.begin(), buffer_.end());
  return rows;
}

Status ParquetSink::Open(const SinkContext& ctx) {
  RETURN_IF_ERROR(SetContext(ctx));
  Status s = CreateDirectories(fs::path(settings_.dir) / kStateDir);
  if (!s.ok()) return s.WithContext("parquet sink " + settings_.dir);
  if (::access(settings_.dir.c_str(), W_OK) != 0) {
    return Status::IOError("parquet sink directory " + settings_.dir +
                           " is not writable: " + Errno());
  }
  if (ctx.tasks) return OpenTasks();
  RETURN_IF_ERROR(LockDirectory());
  RETURN_IF_ERROR(ReadState());
  {
    // The state moved into task files: going on from the marker would start the pipeline over.
    ASSIGN_OR_RETURN(auto tasks, ReadTaskFiles());
    if (moved_ || !tasks.empty()) {
      return Status::FailedPrecondition(
          "parquet sink " + settings_.dir + ": pipeline " + ctx_.pipeline +
          " keeps its state per partition in " + TaskDir() +
          ", and this run would keep one state for the pipeline (start over); run it with a "
          "sluice and a pipeline that keep state per partition (append mode: with the [source] "
          "keyed_by of the run that wrote them)");
    }
  }
  RETURN_IF_ERROR(RemoveOrphans());
  last_roll_micros_ = clock_();
  opened_ = true;
  if (!buffer_.empty()) {
    spdlog::info("parquet sink {}: {} buffered rows restored from {}", settings_.dir,
                 buffer_.size(), StatePath());
  }
  return Status::OK();
}

Status ParquetSink::SetContext(const SinkContext& ctx) {
  RETURN_IF_ERROR(Check(ctx));
  Close();
  ctx_ = ctx;
  partition_slots_.clear();
  data_slots_.clear();
  for (const auto& name : settings_.partition_by) {
    auto slot = ctx_.output.IndexOf(name);
    if (!slot) {
      return Status::InvalidArgument(
          settings_.partition_by_where + ": partition_by column '" + name +
          "' is not an output column (columns: " + ColumnList(ctx_.output.fields()) + ")");
    }
    partition_slots_.push_back(*slot);
  }
  for (size_t i = 0; i < ctx_.output.size(); ++i) {
    if (std::find(partition_slots_.begin(), partition_slots_.end(), i) == partition_slots_.end()) {
      data_slots_.push_back(i);
    }
  }
  if (data_slots_.empty()) {
    return Status::InvalidArgument(settings_.partition_by_where +
                                   ": partition_by leaves no column to write into the files");
  }

  seq_ = 0;
  dead_letter_seq_ = 0;
  positions_.clear();
  engine_state_.clear();
  buffer_.clear();
  buffer_dirs_.clear();
  buffer_encoded_.clear();
  buffer_ends_.clear();
  roll_failed_ = false;
  carried_ = false;
  draining_checkpoint_.reset();
  task_mode_ = false;
  task_files_.clear();
  moved_.reset();
  commit_number_ = 0;
  committed_in_.clear();
  task_write_failed_ = false;
  return Status::OK();
}

Status ParquetSink::LockDirectory(bool shared) {
  const std::string path =
      (fs::path(settings_.dir) / kStateDir / (HiveEscape(ctx_.pipeline) + ".lock")).string();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("parquet sink: cannot open " + path + ": " + Errno());
  // Two processes of one pipeline would each delete the other's files in flight as orphans,
  // unless both keep state per task (shared: their claims and commits take the tasks lock).
  if (::flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    ::close(fd);
    return Status::InvalidArgument("parquet sink directory " + settings_.dir +
                                   " is in use by another process running pipeline '" +
                                   ctx_.pipeline + "' (" + path + " is locked)");
  }
  lock_fd_ = fd;
  return Status::OK();
}

Status ParquetSink::ReadState() {
  const std::string path = StatePath();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (ec) return Status::IOError("parquet sink: cannot stat " + path + ": " + ec.message());
    return Status::OK();
  }
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  auto state = DecodeParquetSinkState(data, ctx_.pipeline);
  if (!state.ok()) {
    return Status::Internal("parquet sink state file " + path + ": " + state.status().message() +
                            "; refusing to start over (moving the file away restarts the "
                            "pipeline from scratch and may write rows twice)");
  }
  if (state->moved) {
    // The state lives in task files; this file only counts the files written before.
    moved_ = std::move(state).value();
    return Status::OK();
  }
  if (!state->rows.empty()) {
    bool same = state->columns.size() == ctx_.output.size();
    for (size_t i = 0; same && i < state->columns.size(); ++i) {
      same = state->columns[i].name == ctx_.output.field(i).name &&
             state->columns[i].type == ctx_.output.field(i).type;
    }
    if (!same) {
      return Status::InvalidArgument(
          "parquet sink state file " + path + " holds " + std::to_string(state->rows.size()) +
          " buffered rows with columns (" + ColumnList(state->columns) +
          ") but the pipeline now writes (" + ColumnList(ctx_.output.fields()) +
          "); run the previous pipeline file to the end (a final checkpoint writes them) first");
    }
  }
  seq_ = state->seq;
  dead_letter_seq_ = state->dead_letter_seq;
  for (auto& p : state->positions) positions_[{p.source, p.partition}] = p.offset;
  engine_state_ = std::move(state->engine_state);
  carried_ = state->carried;
  BinaryWriter w;
  for (const auto& row : state->rows) {
    w.PutRow(row);
    buffer_ends_.push_back(w.data().size());
    buffer_dirs_.push_back(PartitionDir(row));
  }
  buffer_encoded_ = w.Take();
  buffer_ = std::move(state->rows);
  return Status::OK();
}

std::string ParquetSink::PartitionDir(const std::vector<Value>& row) const {
  std::string rel;
  for (size_t slot : partition_slots_) {
    if (!rel.empty()) rel += '/';
    rel += HivePartitionSegment(ctx_.output.field(slot).name, row[slot]);
  }
  return rel;
}

Status ParquetSink::RemoveOrphans() {
  const std::string state_tmp = StatePath() + ".tmp";
  std::vector<std::pair<fs::path, const char*>> doomed;
  std::error_code ec;
  fs::recursive_directory_iterator it(settings_.dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string name = it->path().filename().string();
    if (auto seq = ParsePartFileName(ctx_.pipeline, name); seq && *seq > seq_) {
      doomed.emplace_back(it->path(), "written by a checkpoint that never committed");
    } else if (IsPartTempFileName(ctx_.pipeline, name)) {
      doomed.emplace_back(it->path(), "temporary file of an interrupted write");
    } else if (it->path().string() == state_tmp) {
      doomed.emplace_back(it->path(), "temporary state file of an interrupted commit");
    } else if (auto n = ParseDeadLetterFileName(ctx_.pipeline, name);
               n && (*n > dead_letter_seq_ || name.front() == '.') &&
               it->path().parent_path() == fs::path(DeadLetterDir())) {
      doomed.emplace_back(it->path(), "dead letters of a checkpoint that never committed");
    }
  }
  if (ec) {
    return Status::IOError("parquet sink: cannot list " + settings_.dir + ": " + ec.message());
  }
  for (const auto& [path, why] : doomed) {
    if (!fs::remove(path, ec) && ec) {
      return Status::IOError("parquet sink: cannot remove " + path.string() + ": " + ec.message());
    }
    spdlog::info("parquet sink: removed {} ({}; committed sequence number {})", path.string(), why,
                 seq_);
  }
  return Status::OK();
}

Status ParquetSink::CheckPartitionPath(const std::vector<Value>& row) const {
  constexpr size_t kNameMax = 255;
  for (size_t slot : partition_slots_) {
    if (slot >= row.size()) continue;
    const std::string segment = HivePartitionSegment(ctx_.output.field(slot).name, row[slot]);
    if (segment.size() > kNameMax) {
      return Status::InvalidArgument("parquet sink: partition_by column " +
                                     ctx_.output.field(slot).name + " makes a folder name of " +
                                     std::to_string(segment.size()) + " bytes, over the " +
                                     std::to_string(kNameMax) + " a file system allows");
    }
  }
  return Status::OK();
}

Status ParquetSink::CheckRow(const std::vector<Value>& row) const {
  if (row.size() != ctx_.output.size()) {
    return Status::Internal("parquet sink: a row has " + std::to_string(row.size()) +
                            " values for " + std::to_string(ctx_.output.size()) + " columns");
  }
  for (size_t i = 0; i < row.size(); ++i) {
    const Field& f = ctx_.output.field(i);
    const Type t = row[i].type();
    const Type want = f.type == Type::kNull ? Type::kString : f.type;
    if (t == Type::kNull || t == want || (want == Type::kDouble && t == Type::kInt64)) continue;
    return Status::Internal("parquet sink: column " + f.name + " is " +
                            std::string(TypeName(f.type)) + " but a row holds a " +
                            std::string(TypeName(t)) + " value");
  }
  return Status::OK();
}

Status ParquetSink::WriteFiles(int64_t seq, const std::vector<StoredPosition>& positions,
                               std::vector<bool>* written, int64_t* files) {
  // Group rows by partition directory, the directories in the order of their oldest buffered
  // row: rows carried by the cap go first, so no directory waits longer than
  // (directories ahead of it) / max_files_per_checkpoint checkpoints.
  // (The directories were worked out once, when the rows were buffered: buffer_dirs_.)
  std::unordered_map<std::string_view, size_t> group_of;
  std::vector<std::pair<std::string_view, std::vector<size_t>>> groups;
  for (size_t i = 0; i < buffer_.size(); ++i) {
    auto [it, inserted] = group_of.try_emplace(buffer_dirs_[i], groups.size());
    if (inserted) groups.emplace_back(buffer_dirs_[i], std::vector<size_t>());
    groups[it->second].second.push_back(i);
  }
  written->assign(buffer_.size(), false);
  const size_t count =
      std::min(groups.size(), static_cast<size_t>(settings_.max_files_per_checkpoint));
  for (size_t g = 0; g < count; ++g) {
    const auto& [rel, indexes] = groups[g];
    const fs::path dir =
        rel.empty() ? fs::path(settings_.dir) : fs::path(settings_.dir) / fs::path(rel);
    RETURN_IF_ERROR(CreateDirectories(dir, !kSyncWholeFileSystem));
    const std::string hash = PartFileHash(ctx_.pipeline, rel, positions);
    const std::string tmp = (dir / PartTempFileName(ctx_.pipeline, seq, hash)).string();
    const std::string final_path = (dir / PartFileName(ctx_.pipeline, seq, hash)).string();
    std::vector<const std::vector<Value>*> rows;
    rows.reserve(indexes.size());
    for (size_t i : indexes) rows.push_back(&buffer_[i]);
    RETURN_IF_ERROR(WriteParquetFile(tmp, ctx_.output, data_slots_, rows, settings_.compression,
                                     !kSyncWholeFileSystem));
    if (!kSyncWholeFileSystem) ++g_syncs;
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
      Status s = Status::IOError("rename " + tmp + " to " + final_path + ": " + Errno());
      ::unlink(tmp.c_str());
      return s;
    }
    if (!kSyncWholeFileSystem) RETURN_IF_ERROR(FsyncDir(dir.string()));
    for (size_t i : indexes) (*written)[i] = true;
  }
  *files = static_cast<int64_t>(count);
  // One sync for every file, rename and new directory of the roll, before the state file that
  // commits them is written.
  if (count > 0 && kSyncWholeFileSystem) RETURN_IF_ERROR(SyncFileSystem(settings_.dir));
  return Status::OK();
}

Status ParquetSink::WriteStateFile(const std::string& content) {
  return WriteAtomically(StatePath(), StatePath() + ".tmp", content);
}

Status ParquetSink::WriteAndSync(const std::string& tmp, const std::string& content) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("parquet sink: cannot create " + tmp + ": " + Errno());
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::IOError("parquet sink: writing " + tmp + ": " + Errno());
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  ++g_syncs;
  if (::fsync(fd) != 0) {
    Status s = Status::IOError("parquet sink: fsync " + tmp + ": " + Errno());
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return Status::IOError("parquet sink: closing " + tmp + ": " + Errno());
  return Status::OK();
}

Status ParquetSink::WriteAtomically(const std::string& path, const std::string& tmp,
                                    const std::string& content) {
  RETURN_IF_ERROR(WriteAndSync(tmp, content));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::IOError("parquet sink: rename " + tmp + " to " + path + ": " + Errno());
  }
  return FsyncDir(fs::path(path).parent_path().string());
}

std::string ParquetSink::DeadLetterDir() const {
  return (fs::path(settings_.dir) / kStateDir / kDeadLetterDir).string();
}

std::string ParquetSink::DeadLetterLocation() const { return DeadLetterDir() + "/"; }

Status ParquetSink::TallyDeadLetters(int64_t committed, size_t samples_per_reason,
                                     DeadLetterTally* tally) const {
  // Files above the committed number belong to a checkpoint that never committed (Open()
  // removes them); temporary files start with '.'.
  for (int64_t n = 1; n <= committed; ++n) {
    const std::string path =
        (fs::path(DeadLetterDir()) / DeadLetterFileName(ctx_.pipeline, n)).string();
    ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
    Status s = TallyDeadLetterLines(data, ctx_.pipeline, samples_per_reason, tally);
    if (!s.ok()) return s.WithContext(path);
  }
  for (auto& [reason, samples] : tally->samples) std::reverse(samples.begin(), samples.end());
  return Status::OK();
}

Result<std::map<std::string, int64_t>> ParquetSink::CountDeadLetters() {
  if (!opened_) return Status::Internal("parquet sink: CountDeadLetters() before Open()");
  DeadLetterTally tally;
  if (task_mode_) {
    ASSIGN_OR_RETURN(auto files, ReadTaskFiles());
    RETURN_IF_ERROR(TallyTaskDeadLetters(files, 0, &tally));
    return tally.by_reason;
  }
  RETURN_IF_ERROR(TallyDeadLetters(dead_letter_seq_, 0, &tally));
  return tally.by_reason;
}

namespace {

/// Undoes HiveEscape: %XX becomes the byte XX.
std::string HiveUnescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string WithThousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace

Result<SinkInventory> ParquetSink::Inventory(const InventoryOptions& options) {
  if (opened_) return Status::Internal("parquet sink: Inventory() on an opened sink");
  std::error_code ec;
  if (!fs::exists(settings_.dir, ec)) {
    return Status::NotFound("parquet directory " + settings_.dir + " does not exist");
  }
  if (!fs::is_directory(settings_.dir, ec)) {
    return Status::InvalidArgument("parquet sink " + settings_.dir + " is not a directory");
  }
  SinkInventory inv;
  inv.location = "parquet:" + settings_.dir;
  inv.dead_letter_location = DeadLetterLocation();
  const fs::path state_dir = fs::path(settings_.dir) / kStateDir;
  std::vector<std::string> names;
  if (fs::is_directory(state_dir, ec)) {
    for (fs::directory_iterator it(state_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string file = it->path().filename().string();
      if (file.size() > 6 && file.ends_with(".state") && file.front() != '.') {
        names.push_back(HiveUnescape(std::string_view(file).substr(0, file.size() - 6)));
      }
      // A pipeline that started on tasks has only its task folder.
      std::error_code dir_ec;
      if (it->is_directory(dir_ec)) {
        for (fs::directory_iterator t(it->path(), dir_ec), tend; !dir_ec && t != tend;
             t.increment(dir_ec)) {
          if (ParseTaskFileName(t->path().filename().string())) {
            names.push_back(HiveUnescape(file));
            break;
          }
        }
      }
    }
    if (ec) return Status::IOError("cannot list " + state_dir.string() + ": " + ec.message());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  const SinkContext saved = ctx_;
  Result<SinkInventory> out = [&]() -> Result<SinkInventory> {
    for (const auto& name : names) {
      if (!options.pipeline.empty() && name != options.pipeline) continue;
      ctx_.pipeline = name;
      moved_.reset();
      ASSIGN_OR_RETURN(auto tasks, ReadTaskFiles());
      const std::string path = StatePath();
      if (!tasks.empty() && !fs::exists(path, ec)) {
        ASSIGN_OR_RETURN(PipelineInventory p, TasksInventory(name, tasks, options));
        inv.pipelines.push_back(std::move(p));
        continue;
      }
      ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
      auto state = DecodeParquetSinkState(data, name);
      if (!state.ok()) return Status::Internal("parquet state file " + path + ": " + state.status().message());
      if (state->moved || !tasks.empty()) {
        if (state->moved) moved_ = std::move(state).value();
        auto p = TasksInventory(name, tasks, options);
        moved_.reset();
        if (!p.ok()) return p.status();
        inv.pipelines.push_back(std::move(p).value());
        continue;
      }
      PipelineInventory p;
      p.pipeline = name;
      p.positions = state->positions;
      p.state_bytes = static_cast<int64_t>(state->engine_state.size());
      if (options.positions_only) {
        inv.pipelines.push_back(std::move(p));
        continue;
      }
      const auto mtime = fs::last_write_time(path, ec);
      if (!ec) {
        const auto since_epoch = std::chrono::file_clock::to_sys(mtime).time_since_epoch();
        p.last_checkpoint_micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count();
      }
      // The committed part files of this pipeline, wherever their partition directory is.
      int64_t files = 0, bytes = 0;
      for (fs::recursive_directory_iterator it(settings_.dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code type_ec;
        if (!it->is_regular_file(type_ec)) continue;
        auto seq = ParsePartFileName(name, it->path().filename().string());
        if (!seq || *seq > state->seq) continue;
        ++files;
        bytes += static_cast<int64_t>(it->file_size(type_ec));
      }
      if (ec) return Status::IOError("cannot list " + settings_.dir + ": " + ec.message());
      p.details.emplace_back("part files", WithThousands(files) + " (" + WithThousands(bytes) + " bytes)");
      p.details.emplace_back("rows buffered", WithThousands(static_cast<int64_t>(state->rows.size())));
      p.details.emplace_back("dead-letter files", WithThousands(state->dead_letter_seq));
      p.dead_letters_stored = true;
      RETURN_IF_ERROR(TallyDeadLetters(state->dead_letter_seq, options.samples_per_reason, &p.dead_letters));
      p.dead_letters.PruneSamples(options.sample_reasons);
      inv.pipelines.push_back(std::move(p));
    }
    return inv;
  }();
  ctx_ = saved;
  moved_.reset();
  return out;
}

Result<PipelineInventory> ParquetSink::TasksInventory(
    const std::string& name, const std::map<TaskId, ParquetTaskFile>& tasks,
    const InventoryOptions& options) const {
  PipelineInventory p;
  p.pipeline = name;
  p.positions = MergedTaskPositions(tasks);
  if (options.positions_only) return p;
  p.state_bytes = 0;
  int64_t dead_letter_files = moved_ ? moved_->dead_letter_seq : 0;
  std::map<std::pair<std::string, int32_t>, int64_t> task_seq;
  for (const auto& [id, f] : tasks) {
    p.state_bytes += static_cast<int64_t>(f.state.size());
    p.last_checkpoint_micros = std::max(p.last_checkpoint_micros, f.updated_micros);
    dead_letter_files += f.dead_letter_seq;
    task_seq[{HiveEscape(id.source), id.partition}] = f.seq;
  }
  // The committed part files: those written before the state moved into tasks (up to the
  // marker's sequence number) and each task's up to its own.
  int64_t files = 0, bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(settings_.dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string file = it->path().filename().string();
    bool committed = false;
    if (auto seq = ParsePartFileName(name, file)) {
      committed = moved_ && *seq <= moved_->seq;
    } else if (auto t = ParseTaskPartFileName(name, file); t && !t->temporary) {
      auto s = task_seq.find({t->escaped_source, t->partition});
      committed = s != task_seq.end() && t->seq <= s->second;
    }
    if (!committed) continue;
    ++files;
    bytes += static_cast<int64_t>(it->file_size(type_ec));
  }
  if (ec) return Status::IOError("cannot list " + settings_.dir + ": " + ec.message());
  p.details.emplace_back("tasks", WithThousands(static_cast<int64_t>(tasks.size())));
  p.details.emplace_back("part files",
                         WithThousands(files) + " (" + WithThousands(bytes) + " bytes)");
  p.details.emplace_back("dead-letter files", WithThousands(dead_letter_files));
  p.dead_letters_stored = true;
  RETURN_IF_ERROR(TallyTaskDeadLetters(tasks, options.samples_per_reason, &p.dead_letters));
  p.dead_letters.PruneSamples(options.sample_reasons);
  return p;
}

Status ParquetSink::WriteDeadLetters(int64_t n, const std::vector<DeadLetter>& letters) {
  RETURN_IF_ERROR(CreateDirectories(DeadLetterDir()));
  std::string content;
  for (const DeadLetter& d : letters) {
    AppendDeadLetterJson(ctx_.pipeline, d, &content);
    content.push_back('\n');
  }
  const std::string path =
      (fs::path(DeadLetterDir()) / DeadLetterFileName(ctx_.pipeline, n)).string();
  return WriteAtomically(path, TempPathFor(path), content);
}

Status ParquetSink::Commit(const Checkpoint& cp) {
  if (!opened_) return Status::Internal("parquet sink: Commit before Open");
  if (cp.deltas && !cp.deltas->empty()) return Status::InvalidArgument(kNeedsAppendMode);
  if (task_mode_) return CommitTasks(cp);
  // The retry of a final checkpoint whose first commit succeeded but whose drain failed: its
  // rows are in the buffer already; take them again and they would be written twice.
  if (draining_checkpoint_ && *draining_checkpoint_ == cp.id && cp.final) return Drain(cp);
  draining_checkpoint_.reset();

  // The new rows go to the end of the buffer and are cut off again unless the commit succeeds,
  // so a retry with the same checkpoint starts from the same buffer.
  const size_t old_size = buffer_.size();
  auto rollback = [&](Status s) {
    buffer_.resize(old_size);
    buffer_dirs_.resize(old_size);
    return s;
  };
  BinaryWriter added;
  std::vector<size_t> added_ends;
  std::vector<RejectedItem> rejected;
  if (cp.rows) {
    for (size_t i = 0; i < cp.rows->size(); ++i) {
      const auto& row = (*cp.rows)[i];
      Status s = CheckRow(row);
      if (!s.ok()) return rollback(s);
      if (Status p = CheckPartitionPath(row); !p.ok()) {
        rejected.push_back({i, p.message()});
        continue;
      }
      buffer_.push_back(row);
      buffer_dirs_.push_back(PartitionDir(row));
      added.PutRow(row);
      added_ends.push_back(added.data().size());
    }
  }
  // Refused rows are dead-lettered with the others, in the same dead-letter file.
  std::vector<DeadLetter> refused;
  if (!rejected.empty()) {
    const int64_t wall = WallClockMicros();
    refused = RejectedLetters(ctx_, cp, {}, rejected, wall, wall);
    LogRejected("parquet", cp.id, refused);
  }
  if (cp.dead_letters) {
    refused.insert(refused.end(), cp.dead_letters->begin(), cp.dead_letters->end());
  }

  const int64_t now = clock_();
  const bool roll = !buffer_.empty() &&
                    (cp.final || carried_ ||
                     static_cast<int64_t>(buffer_.size()) >= settings_.roll_rows ||
                     now - last_roll_micros_ >= settings_.roll_interval_micros);
  Status s = CommitStep(cp, roll, refused, added.data(), added_ends, now);
  if (!s.ok()) return rollback(s);
  rows_rejected_ += static_cast<int64_t>(rejected.size());
  return cp.final ? Drain(cp) : Status::OK();
}

Status ParquetSink::Drain(const Checkpoint& cp) {
  // The checkpoint is committed; what the cap left is written by further commits of the same
  // positions and engine state, each at most max_files_per_checkpoint files: a process killed
  // meanwhile restarts from the last of them, with fewer rows left.
  while (!buffer_.empty()) {
    Status s = CommitStep(cp, /*roll=*/true, {}, "", {}, clock_());
    if (!s.ok()) {
      draining_checkpoint_ = cp.id;
      return s.WithContext("parquet sink: writing the rows left by the final checkpoint");
    }
  }
  draining_checkpoint_.reset();
  return Status::OK();
}

Status ParquetSink::CommitStep(const Checkpoint& cp, bool roll,
                               const std::vector<DeadLetter>& refused, const std::string& added,
                               const std::vector<size_t>& added_ends, int64_t now) {
  const int64_t started = SteadyClockMicros();
  int64_t seq = seq_;
  std::vector<bool> written;
  int64_t files = 0;
  if (roll) {
    // A failed roll may have renamed some of its files; a retry of the same checkpoint
    // rewrites the same names, but a different checkpoint would not: remove them first.
    if (roll_failed_) RETURN_IF_ERROR(RemoveOrphans());
    seq = seq_ + 1;
    Status s = WriteFiles(seq, cp.positions, &written, &files);
    if (!s.ok()) {
      roll_failed_ = true;
      return s;
    }
  }

  // Dead letters are written before the state file that commits them, like the part files.
  int64_t dead_letter_seq = dead_letter_seq_;
  if (!refused.empty()) {
    dead_letter_seq = dead_letter_seq_ + 1;
    Status s = WriteDeadLetters(dead_letter_seq, refused);
    if (!s.ok()) {
      if (roll) roll_failed_ = true;
      return s;
    }
  }

  std::map<std::pair<std::string, int32_t>, int64_t> positions = positions_;
  for (const auto& p : cp.positions) positions[{p.source, p.partition}] = p.offset;
  std::vector<StoredPosition> stored;
  for (const auto& [key, offset] : positions) stored.push_back({key.first, key.second, offset});
  const std::string& engine_state = cp.state ? *cp.state : engine_state_;
  // The rows not written stay buffered: the state file that moves the positions past their
  // records holds them, so they are committed with the positions (README "Exactly once").
  // The encoding of every buffered row is buffer_encoded_ + added, row i ending at ends[i]; the
  // rows kept are copied out of it as they are, not encoded again.
  std::string encoded_rows = buffer_encoded_ + added;
  std::vector<size_t> ends = buffer_ends_;
  for (size_t end : added_ends) ends.push_back(buffer_encoded_.size() + end);
  int64_t row_count = static_cast<int64_t>(buffer_.size());
  if (roll) {
    std::string kept;
    std::vector<size_t> kept_ends;
    for (size_t i = 0; i < buffer_.size(); ++i) {
      if (written[i]) continue;
      const size_t begin = i == 0 ? 0 : ends[i - 1];
      kept.append(encoded_rows, begin, ends[i] - begin);
      kept_ends.push_back(kept.size());
    }
    encoded_rows = std::move(kept);
    ends = std::move(kept_ends);
    row_count = static_cast<int64_t>(ends.size());
  }
  const bool carried = roll && row_count > 0;
  Status s = WriteStateFile(EncodeParquetSinkState(ctx_.pipeline, seq, dead_letter_seq, stored,
                                                   engine_state, ctx_.output.fields(), row_count,
                                                   encoded_rows, carried));
  if (!s.ok()) {
    if (roll) roll_failed_ = true;
    return s;
  }

  seq_ = seq;
  dead_letter_seq_ = dead_letter_seq;
  positions_ = std::move(positions);
  if (cp.state) engine_state_ = *cp.state;
  roll_failed_ = false;
  carried_ = carried;
  buffer_encoded_ = std::move(encoded_rows);
  buffer_ends_ = std::move(ends);
  if (roll) {
    size_t out = 0;
    for (size_t i = 0; i < buffer_.size(); ++i) {
      if (written[i]) continue;
      buffer_[out] = std::move(buffer_[i]);
      buffer_dirs_[out++] = std::move(buffer_dirs_[i]);
    }
    const size_t rows_written = buffer_.size() - out;
    buffer_.resize(out);
    buffer_dirs_.resize(out);
    last_roll_micros_ = now;
    spdlog::debug("parquet sink {}: sequence {}: {} file(s), {} row(s) written, {} carried to the "
                  "next checkpoint, {} ms",
                  settings_.dir, seq, files, rows_written, buffer_.size(),
                  (SteadyClockMicros() - started) / 1000);
  } else if (buffer_.empty()) {
    // The interval counts from the moment rows start waiting, not from an idle stretch.
    last_roll_micros_ = now;
  }
  return Status::OK();
}

Result<std::vector<StoredPosition>> ParquetSink::LoadPositions() {
  std::vector<StoredPosition> out;
  if (task_mode_) {
    std::shared_ptr<void> hold;
    if (opened_) {
      ASSIGN_OR_RETURN(hold, LockTasks());  // a pending intent is applied first
    }
    ASSIGN_OR_RETURN(auto files, ReadTaskFiles());
    for (const auto& [id, f] : files) commit_number_ = std::max(commit_number_, f.commit_number);
    out = MergedTaskPositions(files);
    task_files_ = std::move(files);
    return out;
  }
  for (const auto& [key, offset] : positions_) out.push_back({key.first, key.second, offset});
  return out;
}

Result<std::string> ParquetSink::LoadState() { return engine_state_; }

// ---------------------------------------------------------------------------------------------
// Tasks (README "Tasks")

std::string ParquetSink::TaskDir() const {
  return (fs::path(settings_.dir) / kStateDir / HiveEscape(ctx_.pipeline)).string();
}

std::string ParquetSink::TaskFilePath(const TaskId& task) const {
  return (fs::path(TaskDir()) / (kTaskFilePrefix + HiveEscape(task.source) + "-" +
                                 std::to_string(task.partition) + kTaskFileSuffix))
      .string();
}

Result<std::shared_ptr<void>> ParquetSink::LockTasks() {
  if (tasks_lock_fd_ < 0) {
    const std::string path = (fs::path(TaskDir()) / "tasks.lock").string();
    tasks_lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (tasks_lock_fd_ < 0) {
      return Status::IOError("parquet sink: cannot open " + path + ": " + Errno());
    }
  }
  while (::flock(tasks_lock_fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      return Status::IOError("parquet sink: cannot lock " + TaskDir() + "/tasks.lock: " + Errno());
    }
  }
  auto hold = std::shared_ptr<void>(std::make_shared<FlockHold>(tasks_lock_fd_));
  // A commit of several tasks that passed its commit point (the intent) but not the renames of
  // its task files is finished first, whoever committed it.
  RETURN_IF_ERROR(ApplyCommitIntent());
  return hold;
}

std::string ParquetSink::IntentPath() const {
  return (fs::path(TaskDir()) / "commit.intent").string();
}

Status ParquetSink::ApplyCommitIntent() {
  const std::string path = IntentPath();
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::OK();
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  auto intent = DecodeParquetCommitIntent(data, ctx_.pipeline);
  if (!intent.ok()) {
    return Status::Internal("parquet commit intent " + path + ": " + intent.status().message());
  }
  // A task's commit numbers only grow (its owner commits above what it read at the claim), so an
  // entry not above the task file's number is applied already (the intent is removed without a
  // sync, and may come back after a crash).
  std::vector<const ParquetTaskFile*> apply;
  for (const ParquetTaskFile& f : *intent) {
    ASSIGN_OR_RETURN(std::optional<ParquetTaskFile> current, ReadTaskFile(f.task));
    if (!current || current->commit_number < f.commit_number) apply.push_back(&f);
  }
  size_t renamed = 0;
  RETURN_IF_ERROR(WriteTaskFiles(apply, &renamed));
  for (const ParquetTaskFile* f : apply) task_files_[f->task] = *f;
  if (!apply.empty()) {
    spdlog::info("parquet sink {}: pipeline {}: finished a commit of {} task(s) from its intent",
                 settings_.dir, ctx_.pipeline, apply.size());
  }
  if (!fs::remove(path, ec) && ec) {
    return Status::IOError("parquet sink: cannot remove " + path + ": " + ec.message());
  }
  return Status::OK();
}

Result<std::optional<ParquetTaskFile>> ParquetSink::ReadTaskFile(const TaskId& task) const {
  const std::string path = TaskFilePath(task);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (ec) return Status::IOError("parquet sink: cannot stat " + path + ": " + ec.message());
    return std::optional<ParquetTaskFile>();
  }
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  auto f = DecodeParquetTaskFile(data, ctx_.pipeline);
  if (!f.ok()) return Status::Internal("parquet task file " + path + ": " + f.status().message());
  if (f->task != task) return Status::Internal("parquet task file " + path + " holds another task");
  return std::optional<ParquetTaskFile>(std::move(f).value());
}

Result<std::map<TaskId, ParquetTaskFile>> ParquetSink::ReadTaskFiles() const {
  std::map<TaskId, ParquetTaskFile> out;
  std::error_code ec;
  const std::string dir = TaskDir();
  if (!fs::is_directory(dir, ec)) return out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!ParseTaskFileName(name)) continue;
    ASSIGN_OR_RETURN(std::string data, ReadWholeFile(it->path().string()));
    auto f = DecodeParquetTaskFile(data, ctx_.pipeline);
    if (!f.ok()) {
      return Status::Internal("parquet task file " + it->path().string() + ": " +
                              f.status().message());
    }
    TaskId id = f->task;
    out.emplace(std::move(id), std::move(f).value());
  }
  if (ec) return Status::IOError("parquet sink: cannot list " + dir + ": " + ec.message());
  return out;
}

Status ParquetSink::WriteTaskFiles(const std::vector<const ParquetTaskFile*>& files,
                                   size_t* renamed) {
  *renamed = 0;
  std::vector<std::pair<std::string, std::string>> moves;  // tmp -> path
  for (const ParquetTaskFile* f : files) {
    const std::string path = TaskFilePath(f->task);
    const std::string tmp = TempPathFor(path);
    const std::string content = EncodeParquetTaskFile(ctx_.pipeline, *f);
    RETURN_IF_ERROR(WriteAndSync(tmp, content));
    moves.emplace_back(tmp, path);
  }
  for (const auto& [tmp, path] : moves) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      return Status::IOError("parquet sink: rename " + tmp + " to " + path + ": " + Errno());
    }
    ++*renamed;
  }
  return moves.empty() ? Status::OK() : FsyncDir(TaskDir());
}

Status ParquetSink::RemoveTaskOrphans(const std::map<TaskId, ParquetTaskFile>& committed) {
  if (committed.empty()) return Status::OK();
  // By escaped source and partition, as the file names hold them.
  std::map<std::pair<std::string, int32_t>, const ParquetTaskFile*> by_name;
  for (const auto& [id, f] : committed) by_name[{HiveEscape(id.source), id.partition}] = &f;
  std::vector<std::pair<fs::path, const char*>> doomed;
  std::error_code ec;
  const fs::path dead_letter_dir(DeadLetterDir());
  for (fs::recursive_directory_iterator it(settings_.dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string name = it->path().filename().string();
    if (auto t = ParseTaskPartFileName(ctx_.pipeline, name)) {
      auto f = by_name.find({t->escaped_source, t->partition});
      if (f == by_name.end()) continue;
      if (t->temporary) {
        doomed.emplace_back(it->path(), "temporary file of an interrupted write");
      } else if (t->seq > f->second->seq) {
        doomed.emplace_back(it->path(), "written by a commit of the task that never happened");
      }
    } else if (it->path().parent_path() == dead_letter_dir) {
      for (const auto& [id, f] : committed) {
        for (int64_t n : {f.dead_letter_seq + 1, f.dead_letter_seq + 2}) {
          // A commit writes one dead-letter file per task: only the next number can be an
          // orphan (and its temporary file); the one after it is checked for safety.
          const std::string file = TaskDeadLetterFileName(ctx_.pipeline, id, n);
          if (name == file || name == "." + file + ".tmp") {
            doomed.emplace_back(it->path(),
                                "dead letters of a commit of the task that never happened");
          }
        }
      }
    } else if (it->path().parent_path() == fs::path(TaskDir()) && name.front() == '.' &&
               name.ends_with(".tmp")) {
      const std::string inner = name.substr(1, name.size() - 5);
      for (const auto& [id, f] : committed) {
        if (inner == fs::path(TaskFilePath(id)).filename().string()) {
          doomed.emplace_back(it->path(), "temporary task file of an interrupted commit");
        }
      }
    }
  }
  if (ec)
    return Status::IOError("parquet sink: cannot list " + settings_.dir + ": " + ec.message());
  for (const auto& [path, why] : doomed) {
    if (!fs::remove(path, ec) && ec) {
      return Status::IOError("parquet sink: cannot remove " + path.string() + ": " + ec.message());
    }
    spdlog::info("parquet sink: removed {} ({})", path.string(), why);
  }
  return Status::OK();
}

Status ParquetSink::CheckNoLegacyState() const {
  const std::string path = StatePath();
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::OK();
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  auto state = DecodeParquetSinkState(data, ctx_.pipeline);
  if (state.ok() && state->moved) return Status::OK();
  return Status::FailedPrecondition(
      "parquet sink " + settings_.dir + ": pipeline " + ctx_.pipeline + " has a state file " +
      path + " next to its per-partition task files in " + TaskDir() +
      ": a process of an older sluice (without per-partition state) wrote it after the state moved "
      "into tasks, and it would be ignored (what it wrote written again): every process of a "
      "pipeline must run a version with per-partition state: stop them all, then start; the file "
      "is left as it is");
}

Status ParquetSink::MigrateLegacyState() {
  const std::string path = StatePath();
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::OK();
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  auto decoded = DecodeParquetSinkState(data, ctx_.pipeline);
  if (!decoded.ok()) {
    return Status::Internal("parquet sink state file " + path + ": " + decoded.status().message() +
                            "; refusing to start over");
  }
  ParquetSinkState legacy = std::move(decoded).value();
  if (legacy.moved) {
    moved_ = std::move(legacy);
    return Status::OK();
  }
  ASSIGN_OR_RETURN(auto existing, ReadTaskFiles());
  for (const auto& [id, f] : existing) {
    // Files of an interrupted migration have fence 0 (no claim yet); a claimed task means the
    // state file came back after the move.
    if (f.fence > 0) return CheckNoLegacyState();
  }
  const std::string what = "parquet sink " + settings_.dir + ": the stored state of pipeline " +
                           ctx_.pipeline + " (" + path + ") ";
  WindowState old;
  if (!legacy.engine_state.empty()) {
    ASSIGN_OR_RETURN(old, WindowState::Parse(legacy.engine_state, ctx_.aggregate));
  }
  if (!old.open.empty()) {
    return Status::FailedPrecondition(
        what + "has " + std::to_string(old.open.size()) +
        " open windows kept by one process (append mode without [source] keyed_by), which "
        "cannot be split by partition: run it without keyed_by until those windows are "
        "written (a bounded input read to its end writes them all), then start it with "
        "keyed_by, or move the directory's _sluice folder away to start from scratch");
  }
  // The files of a roll that never committed go first, as a legacy Open would remove them.
  seq_ = legacy.seq;
  dead_letter_seq_ = legacy.dead_letter_seq;
  RETURN_IF_ERROR(RemoveOrphans());
  if (!legacy.rows.empty()) {
    // Rows buffered by the one state (a run killed before its final checkpoint): written first
    // as that state would write them, in commits of max_files_per_checkpoint files each (a
    // process killed meanwhile goes on from the last), so the task files start with none.
    RETURN_IF_ERROR(ReadState());
    Checkpoint drain;
    drain.positions = legacy.positions;
    while (!buffer_.empty()) {
      Status s = CommitStep(drain, /*roll=*/true, {}, "", {}, clock_());
      if (!s.ok()) return s.WithContext(what + "writing its buffered rows before the move");
    }
    spdlog::info("{}: its buffered rows are written (sequence number {})", what, seq_);
    ASSIGN_OR_RETURN(std::string drained, ReadWholeFile(path));
    ASSIGN_OR_RETURN(legacy, DecodeParquetSinkState(drained, ctx_.pipeline));
    positions_.clear();
    engine_state_.clear();
  }
  seq_ = 0;
  dead_letter_seq_ = 0;

  const int64_t delay = ctx_.aggregate ? ctx_.aggregate->watermark_delay_micros : 0;
  std::map<TaskId, TaskState> split = SplitLegacyState(old, ctx_.source, delay);
  std::map<TaskId, ParquetTaskFile> files;
  std::vector<StoredPosition> shared;
  for (const auto& p : legacy.positions) {
    if (auto t = TaskOfPosition(p)) {
      files[*t].positions.push_back(p);
    } else {
      shared.push_back(p);
    }
  }
  for (const auto& [id, st] : split) files[id];
  const int64_t now = WallClockMicros();
  std::vector<const ParquetTaskFile*> ptrs;
  size_t held = 0;
  for (auto& [id, f] : files) {
    f.task = id;
    f.positions.insert(f.positions.end(), shared.begin(), shared.end());
    f.updated_micros = now;
    if (auto st = split.find(id); st != split.end()) {
      f.progress = st->second.progress;
      f.state = st->second.Serialize(ctx_.aggregate);
      held += st->second.held.size();
    }
    ptrs.push_back(&f);
  }
  size_t renamed = 0;
  RETURN_IF_ERROR(WriteTaskFiles(ptrs, &renamed));
  // The marker replaces the state last: the move commits with it (an interrupted move is done
  // again, task files of fence 0 rewritten).
  legacy.moved = true;
  RETURN_IF_ERROR(WriteStateFile(
      EncodeParquetSinkState(ctx_.pipeline, legacy.seq, legacy.dead_letter_seq, legacy.positions,
                             "", ctx_.output.fields(), 0, "", false, /*moved=*/true)));
  legacy.engine_state.clear();
  moved_ = std::move(legacy);
  spdlog::info(
      "parquet sink {}: pipeline {}: the stored state now lives per partition in {} ({} "
      "task(s), {} held record(s))",
      settings_.dir, ctx_.pipeline, TaskDir(), files.size(), held);
  return Status::OK();
}

Status ParquetSink::OpenTasks() {
  Status s = CreateDirectories(TaskDir());
  if (!s.ok()) return s.WithContext("parquet sink " + settings_.dir);
  // Shared by the processes on tasks; a process without tasks (exclusive) cannot run next to them.
  RETURN_IF_ERROR(LockDirectory(/*shared=*/true));
  task_mode_ = true;
  ASSIGN_OR_RETURN(auto hold, LockTasks());
  RETURN_IF_ERROR(MigrateLegacyState());
  ASSIGN_OR_RETURN(task_files_, ReadTaskFiles());
  for (const auto& [id, f] : task_files_)
    commit_number_ = std::max(commit_number_, f.commit_number);
  opened_ = true;
  return Status::OK();
}

Result<TaskClaim> ParquetSink::ClaimTask(const TaskId& task, const OwnerInfo& owner) {
  if (!opened_ || !task_mode_) {
    return Status::Internal("parquet sink: ClaimTask() before Open() with tasks");
  }
  ASSIGN_OR_RETURN(auto hold, LockTasks());
  ASSIGN_OR_RETURN(std::optional<ParquetTaskFile> read, ReadTaskFile(task));
  ParquetTaskFile f;
  if (read) {
    f = std::move(*read);
  } else {
    f.task = task;
  }
  // What a commit of the task wrote without renaming its task file (a crash in between, or a
  // process fenced meanwhile) goes before anyone writes the task's next files.
  RETURN_IF_ERROR(RemoveTaskOrphans({{task, f}}));
  f.fence += 1;
  f.owner = owner.ToString();
  f.updated_micros = WallClockMicros();
  size_t renamed = 0;
  RETURN_IF_ERROR(WriteTaskFiles({&f}, &renamed));
  commit_number_ = std::max(commit_number_, f.commit_number);
  TaskClaim claim;
  claim.fence = f.fence;
  claim.state = f.state;
  for (const auto& p : f.positions) {
    if (TaskOfPosition(p) == task) claim.positions[p.partition] = p.offset;
  }
  task_files_[task] = std::move(f);
  return claim;
}

Result<std::vector<TaskRow>> ParquetSink::LoadTaskProgress() {
  std::vector<TaskRow> out;
  std::shared_ptr<void> hold;
  if (opened_ && task_mode_) {
    ASSIGN_OR_RETURN(hold, LockTasks());
  }
  ASSIGN_OR_RETURN(auto files, ReadTaskFiles());
  for (const auto& [id, f] : files) {
    TaskRow row;
    row.task = id;
    row.fence = f.fence;
    row.owner = f.owner;
    row.progress = f.progress;
    row.updated_micros = f.updated_micros;
    out.push_back(std::move(row));
  }
  return out;
}

Status ParquetSink::CommitTasks(const Checkpoint& cp) {
  const size_t row_count = cp.rows ? cp.rows->size() : 0;
  const size_t letter_count = cp.dead_letters ? cp.dead_letters->size() : 0;
  if (cp.tasks.empty()) {
    bool task_positions = false;
    for (const auto& p : cp.positions)
      task_positions = task_positions || TaskOfPosition(p).has_value();
    if (row_count > 0 || letter_count > 0 || task_positions) {
      return Status::Internal(
          "parquet sink: a checkpoint with rows, dead letters or positions of "
          "partitions but no task: with tasks they are stored by task");
    }
    return Status::OK();  // nothing of this process to commit
  }
  if (row_count > 0 && cp.row_tasks && cp.row_tasks->size() != row_count) {
    return Status::Internal("parquet sink: a checkpoint of tasks with " +
                            std::to_string(cp.row_tasks->size()) + " row tasks for " +
                            std::to_string(row_count) + " rows");
  }
  // Without row_tasks (the runner does not tell, e.g. a select pipeline) every row goes with the
  // first task: exact too, since a commit applies all its tasks or none (the intent).
  auto task_of_row = [&](size_t i) -> uint32_t { return cp.row_tasks ? (*cp.row_tasks)[i] : 0; };
  std::map<TaskId, size_t> index;
  for (size_t t = 0; t < cp.tasks.size(); ++t) index.emplace(cp.tasks[t].task, t);

  // Each task's rows (by partition directory) and dead letters.
  struct Work {
    std::vector<std::string> dirs;  ///< partition directories, in order of first row
    std::map<std::string, std::vector<const std::vector<Value>*>> rows;
    std::vector<DeadLetter> letters;
    std::vector<StoredPosition> positions;  ///< the task's own, from the checkpoint
  };
  std::vector<Work> work(cp.tasks.size());
  std::vector<RejectedItem> rejected;
  for (size_t i = 0; i < row_count; ++i) {
    const auto& row = (*cp.rows)[i];
    const uint32_t t = task_of_row(i);
    if (t >= cp.tasks.size()) return Status::Internal("parquet sink: a row's task is out of range");
    RETURN_IF_ERROR(CheckRow(row));
    if (Status p = CheckPartitionPath(row); !p.ok()) {
      rejected.push_back({i, p.message()});
      continue;
    }
    std::string dir = PartitionDir(row);
    auto [it, inserted] = work[t].rows.try_emplace(dir);
    if (inserted) work[t].dirs.push_back(dir);
    it->second.push_back(&row);
  }
  if (!rejected.empty()) {
    const int64_t wall = WallClockMicros();
    std::vector<DeadLetter> refused = RejectedLetters(ctx_, cp, {}, rejected, wall, wall);
    LogRejected("parquet", cp.id, refused);
    for (size_t k = 0; k < refused.size() && k < rejected.size(); ++k) {
      work[task_of_row(rejected[k].index)].letters.push_back(std::move(refused[k]));
    }
  }
  for (size_t i = 0; i < letter_count; ++i) {
    const DeadLetter& d = (*cp.dead_letters)[i];
    // A dead letter of no task of the checkpoint goes with its first task.
    auto it = index.find(TaskId{d.source, d.partition});
    work[it == index.end() ? 0 : it->second].letters.push_back(d);
  }
  std::vector<StoredPosition> shared;  // positions of no task of the checkpoint
  for (const auto& p : cp.positions) {
    auto t = TaskOfPosition(p);
    auto it = t ? index.find(*t) : index.end();
    if (it == index.end()) {
      shared.push_back(p);
    } else {
      work[it->second].positions.push_back(p);
    }
  }

  ASSIGN_OR_RETURN(auto hold, LockTasks());
  RETURN_IF_ERROR(CheckNoLegacyState());
  // Every fence first: a process that lost a task writes nothing, not even a data file.
  std::map<TaskId, ParquetTaskFile> current;
  for (const TaskCommit& t : cp.tasks) {
    ASSIGN_OR_RETURN(std::optional<ParquetTaskFile> f, ReadTaskFile(t.task));
    if (!f || f->fence != t.fence) {
      return Status::Fenced("parquet sink " + settings_.dir + ": " + TaskName(t.task) +
                            " of pipeline " + ctx_.pipeline +
                            " was claimed by another process (fence " +
                            (f ? std::to_string(f->fence) : std::string("none")) +
                            ", this one holds " + std::to_string(t.fence) + ")");
    }
    current.emplace(t.task, std::move(*f));
  }
  if (task_write_failed_) RETURN_IF_ERROR(RemoveTaskOrphans(current));

  int64_t number = commit_number_;
  for (const auto& [id, f] : current) number = std::max(number, f.commit_number);
  ++number;
  const int64_t now = WallClockMicros();
  std::vector<ParquetTaskFile> next;
  next.reserve(cp.tasks.size());
  int64_t files_written = 0;
  task_write_failed_ = true;  // until the task files are renamed
  for (size_t t = 0; t < cp.tasks.size(); ++t) {
    const TaskCommit& tc = cp.tasks[t];
    const ParquetTaskFile& old = current.at(tc.task);
    // The retry of a checkpoint whose commit renamed this task's file already.
    if (auto c = committed_in_.find(tc.task); c != committed_in_.end() && c->second == cp.id)
      continue;
    ParquetTaskFile f = old;
    const Work& w = work[t];
    if (!w.dirs.empty()) {
      f.seq = old.seq + 1;
      for (const std::string& rel : w.dirs) {
        const fs::path dir =
            rel.empty() ? fs::path(settings_.dir) : fs::path(settings_.dir) / fs::path(rel);
        RETURN_IF_ERROR(CreateDirectories(dir, !kSyncWholeFileSystem));
        const std::string hash = PartFileHash(ctx_.pipeline, rel, w.positions);
        const std::string tmp =
            (dir / TaskPartTempFileName(ctx_.pipeline, tc.task, f.seq, hash)).string();
        const std::string final_path =
            (dir / TaskPartFileName(ctx_.pipeline, tc.task, f.seq, hash)).string();
        RETURN_IF_ERROR(WriteParquetFile(tmp, ctx_.output, data_slots_, w.rows.at(rel),
                                         settings_.compression, !kSyncWholeFileSystem));
        if (!kSyncWholeFileSystem) ++g_syncs;
        if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
          Status s = Status::IOError("rename " + tmp + " to " + final_path + ": " + Errno());
          ::unlink(tmp.c_str());
          return s;
        }
        if (!kSyncWholeFileSystem) RETURN_IF_ERROR(FsyncDir(dir.string()));
        ++files_written;
      }
    }
    if (!w.letters.empty()) {
      f.dead_letter_seq = old.dead_letter_seq + 1;
      RETURN_IF_ERROR(CreateDirectories(DeadLetterDir()));
      std::string content;
      for (const DeadLetter& d : w.letters) {
        AppendDeadLetterJson(ctx_.pipeline, d, &content);
        content.push_back('\n');
      }
      const std::string path = (fs::path(DeadLetterDir()) /
                                TaskDeadLetterFileName(ctx_.pipeline, tc.task, f.dead_letter_seq))
                                   .string();
      RETURN_IF_ERROR(WriteAtomically(path, TempPathFor(path), content));
    }
    // Positions: the task's own from the checkpoint, the others (no task's) replaced by this
    // commit's when it has any.
    std::map<std::pair<std::string, int32_t>, int64_t> positions;
    for (const auto& p : old.positions) {
      if (TaskOfPosition(p) == tc.task || shared.empty())
        positions[{p.source, p.partition}] = p.offset;
    }
    for (const auto& p : w.positions) positions[{p.source, p.partition}] = p.offset;
    for (const auto& p : shared) positions[{p.source, p.partition}] = p.offset;
    f.positions.clear();
    for (const auto& [key, offset] : positions)
      f.positions.push_back({key.first, key.second, offset});
    f.progress = tc.progress;
    if (tc.state) f.state = *tc.state;
    if (tc.release) f.owner.clear();
    f.commit_number = number;
    f.updated_micros = now;
    next.push_back(std::move(f));
  }
  // One sync for every part file, rename and new directory, before the task files commit them.
  if (files_written > 0 && kSyncWholeFileSystem) RETURN_IF_ERROR(SyncFileSystem(settings_.dir));
  if (next.size() > 1) {
    // Several tasks: their task files are renamed one by one, so the commit point is the rename
    // of one intent holding them all; the renames follow, now or at the next lock (LockTasks).
    RETURN_IF_ERROR(WriteAtomically(IntentPath(), TempPathFor(IntentPath()),
                                    EncodeParquetCommitIntent(ctx_.pipeline, next)));
    for (const auto& f : next) {
      committed_in_[f.task] = cp.id;
      task_files_[f.task] = f;
    }
    task_write_failed_ = false;
    commit_number_ = number;
    rows_rejected_ += static_cast<int64_t>(rejected.size());
    if (fail_before_task_files_)
      return Status::IOError("parquet sink: stopping after the intent (test)");
    if (Status s = ApplyCommitIntent(); !s.ok()) {
      spdlog::warn(
          "parquet sink {}: checkpoint {} is committed, but its task files are not all "
          "written yet ({}); the next claim or commit finishes them",
          settings_.dir, cp.id, s.ToString());
    }
    return Status::OK();
  }
  if (fail_before_task_files_)
    return Status::IOError("parquet sink: failing before the task files (test)");
  // The retry of a checkpoint whose task file was renamed but whose folder sync failed.
  if (next.empty()) {
    RETURN_IF_ERROR(FsyncDir(TaskDir()));
    task_write_failed_ = false;
    return Status::OK();
  }
  std::vector<const ParquetTaskFile*> ptrs;
  for (const auto& f : next) ptrs.push_back(&f);
  size_t renamed = 0;
  Status s = WriteTaskFiles(ptrs, &renamed);
  for (size_t i = 0; i < renamed; ++i) {
    committed_in_[next[i].task] = cp.id;
    task_files_[next[i].task] = next[i];
  }
  if (!s.ok()) return s;
  task_write_failed_ = false;
  commit_number_ = number;
  rows_rejected_ += static_cast<int64_t>(rejected.size());
  return Status::OK();
}

Status ParquetSink::TallyTaskDeadLetters(const std::map<TaskId, ParquetTaskFile>& files,
                                         size_t samples_per_reason, DeadLetterTally* tally) const {
  // The files written before the state moved into tasks, then each task's, in its order.
  if (moved_) {
    for (int64_t n = 1; n <= moved_->dead_letter_seq; ++n) {
      const std::string path =
          (fs::path(DeadLetterDir()) / DeadLetterFileName(ctx_.pipeline, n)).string();
      ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
      Status s = TallyDeadLetterLines(data, ctx_.pipeline, samples_per_reason, tally);
      if (!s.ok()) return s.WithContext(path);
    }
  }
  for (const auto& [id, f] : files) {
    for (int64_t n = 1; n <= f.dead_letter_seq; ++n) {
      const std::string path =
          (fs::path(DeadLetterDir()) / TaskDeadLetterFileName(ctx_.pipeline, id, n)).string();
      ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
      Status s = TallyDeadLetterLines(data, ctx_.pipeline, samples_per_reason, tally);
      if (!s.ok()) return s.WithContext(path);
    }
  }
  for (auto& [reason, samples] : tally->samples) std::reverse(samples.begin(), samples.end());
  return Status::OK();
}

}  // namespace sluice
