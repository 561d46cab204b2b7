#include "runtime/dimension_refresh.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>

#include "core/time.h"
#include "connectors/kafka/kafka_dimension.h"
#include "connectors/mysql/mysql_dimension.h"
#include "runtime/plan.h"
#include "runtime/registry.h"

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

}  // namespace

std::unique_ptr<DimensionPoller> MakeCsvDimensionPoller(std::shared_ptr<Dimension> dim) {
  return std::make_unique<CsvPoller>(std::move(dim));
}

Result<std::unique_ptr<DimensionRefresher>> DimensionRefresher::Make(const Plan& plan) {
  std::unique_ptr<DimensionRefresher> r(new DimensionRefresher());
  for (const auto& [name, dim] : plan.dimensions) {
    const std::string scheme = SplitUri(dim->config().uri).first;
    std::unique_ptr<DimensionPoller> poller;
    if (scheme == "kafka") {
      // Reads the topic to its end now, so the first lookups see the whole table.
      ASSIGN_OR_RETURN(poller, MakeKafkaDimensionPoller(dim));
      if (dim->refresh().interval_micros <= 0) continue;
    } else if (dim->refresh().interval_micros <= 0) {
      continue;
    } else if (scheme == "mysql") {
      ASSIGN_OR_RETURN(poller, MakeMysqlDimensionPoller(dim));
    } else if (scheme == "file") {
      poller = MakeCsvDimensionPoller(dim);
    }
    if (!poller) continue;
    r->entries_.push_back(Entry{dim, std::move(poller), SteadyClockMicros() + dim->refresh().interval_micros, 0});
  }
  if (r->entries_.empty()) return std::unique_ptr<DimensionRefresher>();
  return r;
}

DimensionRefresher::~DimensionRefresher() { Stop(); }

void DimensionRefresher::Start() { thread_ = std::thread([this] { Run(); }); }

void DimensionRefresher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status DimensionRefresher::PollAllNow() {
  for (auto& e : entries_) RETURN_IF_ERROR(e.poller->Poll());
  return Status::OK();
}

void DimensionRefresher::PollOne(Entry& e) {
  Status s = e.poller->Poll();
  if (s.ok()) {
    if (e.failures > 0) spdlog::info("dimension {}: refreshing works again", e.dim->name());
    e.failures = 0;
    return;
  }
  e.dim->RecordRefreshError();
  // The first failure and then every tenth: a source that stays down does not flood the log.
  if (e.failures++ % 10 == 0) {
    spdlog::warn("dimension {}: refresh failed ({} in a row), keeping the current snapshot: {}",
                 e.dim->name(), e.failures, s.ToString());
  }
}

void DimensionRefresher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    int64_t now = SteadyClockMicros();
    int64_t next = now + 1'000'000;
    for (auto& e : entries_) {
      if (e.next_due <= now) {
        lock.unlock();
        PollOne(e);
        lock.lock();
        if (stop_) return;
        now = SteadyClockMicros();
        e.next_due = now + e.dim->refresh().interval_micros;
      }
      next = std::min(next, e.next_due);
    }
    cv_.wait_for(lock, std::chrono::microseconds(std::max<int64_t>(next - SteadyClockMicros(), 1000)),
                 [&] { return stop_; });
  }
}

}  // namespace sluice
