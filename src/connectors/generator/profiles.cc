#include <algorithm>
#include <vector>

#include "connectors/generator/generator_source.h"
#include "core/time.h"
#include "operators/dimension.h"

namespace sluice {
namespace {

constexpr const char* kUserAgents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/103.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/15.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 15_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
};

// Publisher ids present in the seed publisher dimension.
constexpr int kPublishers[] = {1,  2,  3,  4,  5,  9,  10, 11, 12, 13, 15, 16, 17, 20, 22, 23,
                               24, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38};

struct Job {
  int64_t id, campaign_id, group_id;  // group_id -1: blank
};

/// Tracking events shaped like the recruitment platform's log: about 70% of counted events are
/// clicks and 10% each conversion/qualified/unqualified, plus noise (alive, blank, odd case),
/// blank ids, corrupt `ts`, and a few records whose only usable time is `ts` or none at all.
class RecruitmentProfile : public GeneratorProfile {
 public:
  explicit RecruitmentProfile(std::vector<Job> jobs) : jobs_(std::move(jobs)) {}

  void Make(uint64_t seq, int64_t event_time, Rng& rng, std::string* out,
            std::string* key) const override {
    // Up to 2 s of jitter: events arrive slightly out of order, as from real browsers.
    event_time += static_cast<int64_t>(rng.Below(2'000'000));
    const Job& job = jobs_[rng.Below(jobs_.size())];
    const uint64_t r = rng.Below(1000);
    const char* track;
    if (r < 640) track = "click";
    else if (r < 730) track = "conversion";
    else if (r < 820) track = "qualified";
    else if (r < 910) track = "unqualified";
    else if (r < 960) track = "alive";
    else if (r < 985) track = "";
    else if (r < 992) track = "Click";
    else track = "interview_scheduled";

    std::string create_time;
    std::string ts;
    const uint64_t time_kind = rng.Below(10000);
    CivilTime c = ToCivil(event_time);
    char buf[64];
    if (time_kind < 9970) {
      create_time = FormatTimeUuid(event_time, static_cast<int>(seq % 10),
                                   static_cast<uint16_t>(rng.Next()), rng.Next());
      // The log's ts column is mostly spreadsheet-mangled "mm:ss.f".
      std::snprintf(buf, sizeof buf, "%02d:%02d.%d", c.minute, c.second, c.micros / 100000);
      ts = buf;
    } else if (time_kind < 9995) {
      // A version-4 UUID: the time has to come from ts.
      std::snprintf(buf, sizeof buf, "%08llx-%04llx-4%03llx-a%03llx-%012llx",
                    static_cast<unsigned long long>(rng.Next() & 0xffffffff),
                    static_cast<unsigned long long>(rng.Next() & 0xffff),
                    static_cast<unsigned long long>(rng.Next() & 0xfff),
                    static_cast<unsigned long long>(rng.Next() & 0xfff),
                    static_cast<unsigned long long>(rng.Next() & 0xffffffffffffULL));
      create_time = buf;
      std::snprintf(buf, sizeof buf, "%d/%d/%04d %d:%02d", c.month, c.day, c.year, c.hour,
                    c.minute);
      ts = buf;
      // ts has minute precision; keep the event in the same hour bucket either way.
    } else {
      create_time = "not-a-uuid";
      ts = "58:22.5";
    }

    const bool blank_job = rng.Below(100) < 3;
    if (key) *key = blank_job ? "" : std::to_string(job.id);
    const bool blank_bid = rng.Below(100) < 3;
    const bool blank_publisher = rng.Below(100) < 2;
    static constexpr int kBids[] = {0, 1, 1, 1, 2, 2, 2, 7};
    const int bid = kBids[rng.Below(8)];
    const int publisher = kPublishers[rng.Below(std::size(kPublishers))];

    out->append("{\"create_time\":\"").append(create_time).append("\",\"bid\":");
    out->append(blank_bid ? "null" : std::to_string(bid));
    out->append(",\"bn\":\"Chrome 103\",\"campaign_id\":").append(std::to_string(job.campaign_id));
    out->append(",\"custom_track\":\"").append(track).append("\",\"group_id\":");
    out->append(job.group_id < 0 ? "\"\"" : std::to_string(job.group_id));
    out->append(",\"job_id\":");
    out->append(blank_job ? "\"\"" : std::to_string(job.id));
    out->append(",\"publisher_id\":");
    out->append(blank_publisher ? "null" : "\"" + std::to_string(publisher) + "\"");
    out->append(",\"ts\":\"").append(ts).append("\",\"ua\":\"");
    out->append(kUserAgents[rng.Below(std::size(kUserAgents))]);
    out->append("\",\"dl\":\"http://fe.dev.gotoro.io/candidate-portal/job/");
    out->append(std::to_string(job.id)).append("\",\"tz\":-420}");
  }

 private:
  std::vector<Job> jobs_;
};

Result<std::vector<Job>> LoadJobs(const std::string& path) {
  DimensionConfig dim;
  dim.name = "generator jobs";
  dim.uri = path;
  dim.key = "id";
  dim.fields = {{"id", Type::kInt64, ""}, {"campaign_id", Type::kInt64, ""},
                {"group_id", Type::kInt64, ""}};
  size_t skipped = 0;
  std::string first_error;
  ASSIGN_OR_RETURN(auto table, LoadCsvDimension(dim, &skipped, &first_error));
  std::vector<Job> jobs;
  table->ForEach([&](const std::vector<Value>& row) {
    jobs.push_back(Job{row[0].int_value(), row[1].is_null() ? 0 : row[1].int_value(),
                       row[2].is_null() ? -1 : row[2].int_value()});
  });
  // A fixed order keeps the generated stream independent of hash-table order.
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.id < b.id; });
  if (jobs.empty()) return Status::InvalidArgument("no jobs in " + path);
  return jobs;
}

}  // namespace

Result<std::shared_ptr<const GeneratorProfile>> MakeGeneratorProfile(const std::string& name,
                                                                     const Options& options,
                                                                     uint64_t /*seed*/) {
  if (name == "recruitment") {
    std::string jobs_path = options.GetString("jobs", "examples/data/job.csv");
    auto jobs = LoadJobs(jobs_path);
    if (!jobs.ok()) {
      return Status::InvalidArgument(options.Where("jobs") + ": recruitment generator: " +
                                     jobs.status().message());
    }
    return std::shared_ptr<const GeneratorProfile>(
        std::make_shared<RecruitmentProfile>(std::move(jobs).value()));
  }
  return Status::InvalidArgument(options.Where("profile") + ": unknown generator profile '" +
                                 name + "' (available: recruitment)");
}

}  // namespace sluice
