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
#include <optional>
#include <filesystem>
#include <set>
#include <string_view>
#include <unordered_map>

#include "core/time.h"
#include "connectors/parquet/parquet_file.h"
#include "connectors/parquet/parquet_naming.h"
#include "connectors/parquet/parquet_state.h"
#include "core/serialize.h"
#include "core/uri.h"
#include "runtime/sink_rejection.h"

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
  return ReadState();
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
  RETURN_IF_ERROR(LockDirectory());
  RETURN_IF_ERROR(ReadState());
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
  return Status::OK();
}

Status ParquetSink::LockDirectory() {
  const std::string path =
      (fs::path(settings_.dir) / kStateDir / (HiveEscape(ctx_.pipeline) + ".lock")).string();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("parquet sink: cannot open " + path + ": " + Errno());
  // Two processes of one pipeline would each delete the other's files in flight as orphans.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
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

Status ParquetSink::WriteAtomically(const std::string& path, const std::string& tmp,
                                    const std::string& content) {
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
    }
    if (ec) return Status::IOError("cannot list " + state_dir.string() + ": " + ec.message());
  }
  std::sort(names.begin(), names.end());
  const SinkContext saved = ctx_;
  Result<SinkInventory> out = [&]() -> Result<SinkInventory> {
    for (const auto& name : names) {
      if (!options.pipeline.empty() && name != options.pipeline) continue;
      ctx_.pipeline = name;
      const std::string path = StatePath();
      ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
      auto state = DecodeParquetSinkState(data, name);
      if (!state.ok()) return Status::Internal("parquet state file " + path + ": " + state.status().message());
      PipelineInventory p;
      p.pipeline = name;
      p.positions = state->positions;
      p.state_bytes = static_cast<int64_t>(state->engine_state.size());
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
  return out;
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
  for (const auto& [key, offset] : positions_) out.push_back({key.first, key.second, offset});
  return out;
}

Result<std::string> ParquetSink::LoadState() { return engine_state_; }

}  // namespace sluice
