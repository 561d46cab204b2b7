#include "connectors/file/file_dimension.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "core/time.h"
#include "core/uri.h"

namespace sluice {
namespace {

/// Counts the rows that differ between two versions (added, changed or removed keys).
int64_t CountChanges(const DimensionTable& before, const DimensionTable& after) {
  int64_t changes = 0;
  after.ForEach([&](const std::vector<Value>& row) {
    const std::vector<Value>* old = before.Find(row[after.key_index()]);
    if (!old || *old != row) ++changes;
  });
  before.ForEach([&](const std::vector<Value>& row) {
    if (!after.Find(row[before.key_index()])) ++changes;
  });
  return changes;
}

class CsvPoller : public DimensionPoller {
 public:
  explicit CsvPoller(std::shared_ptr<Dimension> dim) : dim_(std::move(dim)) {
    path_ = SplitUri(dim_->config().uri).second;
    Stat(&seen_);
  }

  Status Poll() override {
    FileVersion now;
    if (!Stat(&now)) return Status::NotFound("dimension " + dim_->name() + ": " + path_ + " is missing");
    if (now == seen_) return Status::OK();
    size_t skipped = 0;
    std::string first_error;
    auto table = LoadCsvDimension(dim_->config(), &skipped, &first_error);
    if (!table.ok()) return table.status();
    seen_ = now;
    auto current = dim_->snapshot();
    const int64_t changes = CountChanges(*current, **table);
    if (skipped > 0) {
      spdlog::warn("dimension {}: skipped {} rows of {} (first: {})", dim_->name(), skipped, path_,
                   first_error);
    }
    if (changes == 0) return Status::OK();
    dim_->Publish(std::move(table).value(), changes, WallClockMicros());
    spdlog::info("dimension {}: reloaded {} ({} rows changed)", dim_->name(), path_, changes);
    return Status::OK();
  }

 private:
  struct FileVersion {
    int64_t size = -1;
    int64_t mtime_ns = 0;
    uint64_t inode = 0;  ///< a file renamed over the old one is a change even within one mtime tick
    friend bool operator==(const FileVersion&, const FileVersion&) = default;
  };
  bool Stat(FileVersion* v) const {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) return false;
    v->size = st.st_size;
    v->mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    v->inode = static_cast<uint64_t>(st.st_ino);
    return true;
  }

  std::shared_ptr<Dimension> dim_;
  std::string path_;
  FileVersion seen_;
};

Result<std::shared_ptr<Dimension>> LoadCsv(const DimensionConfig& config, DimensionRefresh refresh) {
  RETURN_IF_ERROR(OptionReader(config.options, CsvDimensionOptions(), "dimension." + config.name).Finish());
  size_t skipped = 0;
  std::string first_error;
  ASSIGN_OR_RETURN(std::shared_ptr<DimensionTable> table, LoadCsvDimension(config, &skipped, &first_error));
  const std::string path = SplitUri(config.uri).second;
  if (skipped > 0) {
    spdlog::warn("dimension {}: skipped {} rows of {} (first: {})", config.name, skipped, path,
                 first_error);
  }
  spdlog::info("dimension {}: {} keys from {}", config.name, table->size(), path);
  return std::make_shared<Dimension>(config, std::move(refresh), std::move(table));
}

}  // namespace

const OptionTable& CsvDimensionOptions() {
  static const OptionTable kTable{
      .uri = "PATH.csv",
      .summary = "A CSV file (',' or ';' delimited, sniffed from the header), loaded whole and reloaded "
                 "when it changes; a file that is missing or does not parse keeps the previous "
                 "snapshot.",
      .options = {}};
  return kTable;
}

DimensionFactory CsvDimensionFactory() {
  DimensionFactory f;
  f.load = LoadCsv;
  f.poller = [](std::shared_ptr<Dimension> dim) -> Result<std::unique_ptr<DimensionPoller>> {
    return std::unique_ptr<DimensionPoller>(std::make_unique<CsvPoller>(std::move(dim)));
  };
  return f;
}

}  // namespace sluice
