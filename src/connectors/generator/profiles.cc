#include <algorithm>
#include <cstdio>
#include <iterator>
#include <numeric>
#include <utility>
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

/// Shares of the viewlog profile's special records (see ViewlogProfile).
/// The defaults are declared in GeneratorSourceOptions().
struct ViewlogShares {
  double out_of_order = 0;
  double late = 0;
  double invalid = 0;
};

/// A timestamp spelling seen in view logs; the offset shifts the local time written.
struct ViewTimeFormat {
  const char* separator;
  int fraction_digits;  ///< 0, 3 or 6
  const char* zone;
  int offset_minutes;
};

// The seed sample's "2023-10-08 12:00:00" is the most common.
constexpr ViewTimeFormat kViewTimeFormats[] = {
    {" ", 0, "", 0},         {" ", 0, "", 0},          {" ", 0, "", 0},
    {"T", 0, "Z", 0},        {"T", 6, "Z", 0},         {" ", 3, "", 0},
    {"T", 0, "+02:00", 120}, {"T", 3, "-05:30", -330}, {"T", 0, "", 0},
};

/// Formats `micros` in spelling `kind` of kViewTimeFormats, keeping the instant.
std::string FormatViewTime(int64_t micros, uint64_t kind) {
  const ViewTimeFormat& f = kViewTimeFormats[kind % std::size(kViewTimeFormats)];
  CivilTime c = ToCivil(micros + f.offset_minutes * kMicrosPerMinute);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02d%s%02d:%02d:%02d", c.year, c.month, c.day,
                        f.separator, c.hour, c.minute, c.second);
  std::string out(buf, static_cast<size_t>(n));
  if (f.fraction_digits == 6) {
    std::snprintf(buf, sizeof buf, ".%06d", c.micros);
    out += buf;
  } else if (f.fraction_digits == 3) {
    std::snprintf(buf, sizeof buf, ".%03d", c.micros / 1000);
    out += buf;
  }
  return out + f.zone;
}
constexpr uint64_t kViewTimeKinds = std::size(kViewTimeFormats);

/// Appends a version-4 UUID drawn from `rng`.
void AppendUuidV4(Rng& rng, std::string* out) {
  const uint64_t hi = rng.Next();
  const uint64_t lo = rng.Next();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-4%03llx-%x%03llx-%012llx",
                static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xffff),
                static_cast<unsigned long long>(hi & 0xfff), static_cast<unsigned>(8 + (lo >> 62)),
                static_cast<unsigned long long>((lo >> 48) & 0xfff),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  out->append(buf);
}

/// `view_log` records like the big_data_pipeline's: view_id, start/end timestamps in varied
/// ISO 8601 spellings, banner_id and campaign_id, views of 1-600 s. The start time follows the
/// generator's clock, except for three configurable shares:
///   out_of_order: start up to 8 s earlier (under the example pipeline's 10 s watermark delay,
///                 so such a record is never late);
///   late:         start 2-6 minutes earlier (late once the stream has run a few minutes);
///   invalid:      one defect each: no/blank view_id, no/garbage start or end timestamp, end
///                 before start, an unknown campaign, no campaign, a non-numeric campaign_id,
///                 or a broken JSON line.
class ViewlogProfile : public GeneratorProfile {
 public:
  ViewlogProfile(std::vector<int64_t> campaigns, ViewlogShares shares)
      : campaigns_(std::move(campaigns)), shares_(shares) {
    unknown_campaign_ = 999;
    while (std::find(campaigns_.begin(), campaigns_.end(), unknown_campaign_) != campaigns_.end()) {
      ++unknown_campaign_;
    }
  }

  void Make(uint64_t /*seq*/, int64_t event_time, Rng& rng, std::string* out,
            std::string* key) const override {
    const double r = rng.Unit();
    const bool invalid = r < shares_.invalid;
    const bool late = !invalid && r < shares_.invalid + shares_.late;
    const bool out_of_order =
        !invalid && !late && r < shares_.invalid + shares_.late + shares_.out_of_order;
    int64_t start = event_time;
    if (late) {
      start -= 120 * kMicrosPerSecond + static_cast<int64_t>(rng.Below(240 * kMicrosPerSecond));
    } else if (out_of_order) {
      start -= 1 + static_cast<int64_t>(rng.Below(8 * kMicrosPerSecond));
    }
    const int64_t duration =
        kMicrosPerSecond + static_cast<int64_t>(rng.Below(599 * kMicrosPerSecond + 1));
    int64_t campaign = campaigns_[rng.Below(campaigns_.size())];
    const int64_t banner = 100 + static_cast<int64_t>(rng.Below(900));
    std::string view_id = "\"";
    AppendUuidV4(rng, &view_id);
    view_id += '"';
    std::string start_text = '"' + FormatViewTime(start, rng.Below(kViewTimeKinds)) + '"';
    std::string end_text = '"' + FormatViewTime(start + duration, rng.Below(kViewTimeKinds)) + '"';
    std::string campaign_text = std::to_string(campaign);
    bool omit_view_id = false, omit_start = false, omit_end = false, broken_json = false;

    if (invalid) {
      static constexpr const char* kMissing[] = {"null", "\"\"", "\"  \""};
      static constexpr const char* kGarbage[] = {"\"not a time\"", "\"58:22.5\"",
                                                 "\"2026-02-30 10:00:00\"", "\"1767225600\"",
                                                 "\"2026-01-01 25:00:00\""};
      const uint64_t what = rng.Below(11);
      const uint64_t variant = rng.Below(3);
      switch (what) {
        case 0:
          omit_view_id = true;
          break;
        case 1:
          view_id = kMissing[variant];
          break;
        case 2:
          if (variant == 0)
            omit_start = true;
          else
            start_text = kMissing[variant];
          break;
        case 3:
          if (variant == 0)
            omit_end = true;
          else
            end_text = kMissing[variant];
          break;
        case 4:
          start_text = kGarbage[rng.Below(std::size(kGarbage))];
          break;
        case 5:
          end_text = kGarbage[rng.Below(std::size(kGarbage))];
          break;
        case 6:
          end_text = '"' +
                     FormatViewTime(start - kMicrosPerSecond -
                                        static_cast<int64_t>(rng.Below(300 * kMicrosPerSecond)),
                                    rng.Below(kViewTimeKinds)) +
                     '"';
          break;
        case 7:
          campaign = unknown_campaign_;
          campaign_text = std::to_string(campaign);
          break;
        case 8:
          campaign_text = variant == 0 ? "null" : "\"\"";
          break;
        case 9:
          campaign_text = variant == 0 ? "\"abc\"" : "12.5";
          break;
        default:
          broken_json = true;
          break;
      }
    }
    if (key) *key = std::to_string(campaign);

    std::string& o = *out;
    const size_t begin = o.size();
    o += '{';
    bool first = true;
    auto field = [&](const char* name, const std::string& value) {
      if (!first) o += ',';
      first = false;
      o.append("\"").append(name).append("\":").append(value);
    };
    if (!omit_view_id) field("view_id", view_id);
    if (!omit_start) field("start_timestamp", start_text);
    if (!omit_end) field("end_timestamp", end_text);
    field("banner_id", std::to_string(banner));
    field("campaign_id", campaign_text);
    o += '}';
    if (broken_json) {
      // A record cut short, as by a crashed writer: any proper prefix of an object is malformed.
      const size_t length = o.size() - begin;
      o.resize(begin + 1 + static_cast<size_t>(rng.Below(length - 2)));
    }
  }

 private:
  std::vector<int64_t> campaigns_;
  ViewlogShares shares_;
  int64_t unknown_campaign_;
};

/// Campaign ids of the campaigns CSV of big_data_pipeline (campaigns1.csv).
std::vector<int64_t> DefaultCampaigns() {
  std::vector<int64_t> ids;
  for (int64_t id = 10; id <= 140; id += 10) ids.push_back(id);
  return ids;
}

Result<std::vector<int64_t>> LoadCampaigns(const std::string& path) {
  DimensionConfig dim;
  dim.name = "generator campaigns";
  dim.uri = path;
  dim.key = "campaign_id";
  dim.fields = {{"campaign_id", Type::kInt64, ""}};
  size_t skipped = 0;
  std::string first_error;
  ASSIGN_OR_RETURN(auto table, LoadCsvDimension(dim, &skipped, &first_error));
  std::vector<int64_t> ids;
  table->ForEach([&](const std::vector<Value>& row) { ids.push_back(row[0].int_value()); });
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) return Status::InvalidArgument("no campaigns in " + path);
  return ids;
}

Result<ViewlogShares> ParseViewlogShares(const OptionReader& o) {
  ViewlogShares s;
  ASSIGN_OR_RETURN(s.out_of_order, o.Number("out_of_order"));
  ASSIGN_OR_RETURN(s.late, o.Number("late"));
  ASSIGN_OR_RETURN(s.invalid, o.Number("invalid"));
  for (auto [name, v] : {std::pair{"out_of_order", s.out_of_order}, std::pair{"late", s.late},
                         std::pair{"invalid", s.invalid}}) {
    if (!(v >= 0 && v <= 1)) {
      return Status::InvalidArgument(o.Where(name) + ": " + name +
                                     " must be a share between 0 and 1");
    }
  }
  if (s.out_of_order + s.late + s.invalid > 1) {
    return Status::InvalidArgument(o.Where("out_of_order") +
                                   ": out_of_order + late + invalid must not exceed 1");
  }
  return s;
}

/// One ad of the Yahoo Streaming Benchmark: its id and the campaign that bought it.
struct YsbAd {
  std::string ad_id;
  std::string campaign_id;
};

constexpr const char* kYsbAdTypes[] = {"banner", "modal", "sponsored-search", "mail", "mobile"};
constexpr const char* kYsbEventTypes[] = {"view", "click", "purchase"};

/// Appends a version-4 UUID drawn from `rng`, without going through printf (the YSB profile
/// makes two per event, and the in-process benchmark counts the generator's time).
void AppendFastUuidV4(Rng& rng, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = rng.Next();
  uint64_t lo = rng.Next();
  hi = (hi & ~0xf000ULL) | 0x4000ULL;                           // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[36];
  int at = 0;
  // 8-4-4-4-12 hex digits: `hi` holds the first three groups, `lo` the last two.
  for (int i = 0; i < 16; ++i) {
    if (i == 8 || i == 12) buf[at++] = '-';
    buf[at++] = kHex[(hi >> (60 - 4 * i)) & 0xf];
  }
  for (int i = 0; i < 16; ++i) {
    if (i == 0 || i == 4) buf[at++] = '-';
    buf[at++] = kHex[(lo >> (60 - 4 * i)) & 0xf];
  }
  out->append(buf, sizeof buf);
}

void AppendUnsigned(uint64_t v, std::string* out) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out->push_back(buf[--n]);
}

/// Ad events of the Yahoo Streaming Benchmark (YSB): `user_id`, `page_id` and `ad_id` UUIDs,
/// `ad_type` (banner, modal, sponsored-search, mail, mobile), `event_type` (view, click,
/// purchase; each a third), `event_time` and `ip_address`. Unlike the original, which writes
/// epoch milliseconds as a string, `event_time` is a JSON number of epoch milliseconds (what a
/// `timestamp` field decodes). The ad is drawn uniformly from the ads CSV (ad_id,
/// campaign_id), by default examples/data/ysb_ads.csv: 100 campaigns x 10 ads. The message
/// key is the ad_id.
class YsbProfile : public GeneratorProfile {
 public:
  explicit YsbProfile(std::vector<YsbAd> ads) : ads_(std::move(ads)) {}

  void Make(uint64_t /*seq*/, int64_t event_time, Rng& rng, std::string* out,
            std::string* key) const override {
    const YsbAd& ad = ads_[rng.Below(ads_.size())];
    if (key) *key = ad.ad_id;
    std::string& o = *out;
    o.append("{\"user_id\":\"");
    AppendFastUuidV4(rng, &o);
    o.append("\",\"page_id\":\"");
    AppendFastUuidV4(rng, &o);
    o.append("\",\"ad_id\":\"").append(ad.ad_id);
    o.append("\",\"ad_type\":\"").append(kYsbAdTypes[rng.Below(std::size(kYsbAdTypes))]);
    o.append("\",\"event_type\":\"").append(kYsbEventTypes[rng.Below(std::size(kYsbEventTypes))]);
    o.append("\",\"event_time\":");
    // Floor to whole milliseconds (event times before 1970 do not occur here).
    AppendUnsigned(static_cast<uint64_t>(std::max<int64_t>(0, event_time) / 1000), &o);
    o.append(",\"ip_address\":\"");
    const uint64_t ip = rng.Next();
    for (int i = 0; i < 4; ++i) {
      if (i > 0) o.push_back('.');
      AppendUnsigned((ip >> (8 * i)) & 0xff, &o);
    }
    o.append("\"}");
  }

 private:
  std::vector<YsbAd> ads_;
};

Result<std::vector<YsbAd>> LoadYsbAds(const std::string& path) {
  DimensionConfig dim;
  dim.name = "generator ads";
  dim.uri = path;
  dim.key = "ad_id";
  dim.fields = {{"ad_id", Type::kString, ""}, {"campaign_id", Type::kString, ""}};
  size_t skipped = 0;
  std::string first_error;
  ASSIGN_OR_RETURN(auto table, LoadCsvDimension(dim, &skipped, &first_error));
  std::vector<YsbAd> ads;
  table->ForEach([&](const std::vector<Value>& row) {
    if (row[0].is_null() || row[1].is_null()) return;
    ads.push_back(YsbAd{std::string(row[0].string_value()), std::string(row[1].string_value())});
  });
  // A fixed order keeps the generated stream independent of hash-table order.
  std::sort(ads.begin(), ads.end(), [](const YsbAd& a, const YsbAd& b) { return a.ad_id < b.ad_id; });
  if (ads.empty()) return Status::InvalidArgument("no ads (ad_id, campaign_id) in " + path);
  return ads;
}

/// Events of a key space of `groups` keys, for scaling runs (bench/scaling.py): `key` ("k" and
/// a number below `groups`), `value` (0..999) and `event_time` (epoch milliseconds as a JSON
/// number), about 50 bytes a line. Event `seq` has key (seq mod groups) * stride mod groups, with
/// the stride coprime to `groups` and near 0.618 groups: the first `groups` events have every key
/// once, in scattered order, and every key then recurs once per `groups` events. So n events
/// have exactly min(n, groups) distinct keys, and each key floor or ceil(n / groups) events.
class KeyedProfile : public GeneratorProfile {
 public:
  explicit KeyedProfile(uint64_t groups) : groups_(groups) {
    stride_ = std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(groups) * 0.6180339887));
    while (std::gcd(stride_, groups_) != 1) ++stride_;
  }

  void Make(uint64_t seq, int64_t event_time, Rng& rng, std::string* out,
            std::string* key) const override {
    // groups_ <= 1e9 and stride_ < 2 groups_: the product fits in 64 bits.
    const uint64_t id = (seq % groups_) * stride_ % groups_;
    std::string& o = *out;
    const size_t key_at = o.size() + 8;
    o.append("{\"key\":\"k");
    AppendUnsigned(id, &o);
    if (key) *key = o.substr(key_at);
    o.append("\",\"value\":");
    AppendUnsigned(rng.Below(1000), &o);
    o.append(",\"event_time\":");
    AppendUnsigned(static_cast<uint64_t>(std::max<int64_t>(0, event_time) / 1000), &o);
    o.push_back('}');
  }

 private:
  uint64_t groups_;
  uint64_t stride_;
};

}  // namespace

Result<std::shared_ptr<const GeneratorProfile>> MakeGeneratorProfile(const std::string& name,
                                                                     const Options& options,
                                                                     uint64_t /*seed*/) {
  OptionReader o(options, GeneratorSourceOptions(), "source");
  if (name == "recruitment") {
    std::string jobs_path = o.String("jobs");
    auto jobs = LoadJobs(jobs_path);
    if (!jobs.ok()) {
      return Status::InvalidArgument(o.Where("jobs") + ": recruitment generator: " +
                                     jobs.status().message());
    }
    return std::shared_ptr<const GeneratorProfile>(
        std::make_shared<RecruitmentProfile>(std::move(jobs).value()));
  }
  if (name == "viewlog") {
    ASSIGN_OR_RETURN(ViewlogShares shares, ParseViewlogShares(o));
    std::vector<int64_t> campaigns = DefaultCampaigns();
    if (std::string path = o.String("campaigns"); !path.empty()) {
      auto loaded = LoadCampaigns(path);
      if (!loaded.ok()) {
        return Status::InvalidArgument(o.Where("campaigns") +
                                       ": viewlog generator: " + loaded.status().message());
      }
      campaigns = std::move(loaded).value();
    }
    return std::shared_ptr<const GeneratorProfile>(
        std::make_shared<ViewlogProfile>(std::move(campaigns), shares));
  }
  if (name == "ysb") {
    // `campaigns` names the ads CSV: which campaign bought each ad.
    const std::string path = o.String("campaigns", "examples/data/ysb_ads.csv");
    auto ads = LoadYsbAds(path);
    if (!ads.ok()) {
      return Status::InvalidArgument(o.Where("campaigns") + ": ysb generator: " +
                                     ads.status().message());
    }
    return std::shared_ptr<const GeneratorProfile>(
        std::make_shared<YsbProfile>(std::move(ads).value()));
  }
  if (name == "keyed") {
    ASSIGN_OR_RETURN(int64_t groups, o.Int("groups"));
    if (groups < 1 || groups > 1'000'000'000) {
      return Status::InvalidArgument(o.Where("groups") + ": groups must be 1..1000000000");
    }
    return std::shared_ptr<const GeneratorProfile>(
        std::make_shared<KeyedProfile>(static_cast<uint64_t>(groups)));
  }
  return Status::InvalidArgument(options.Where("profile") + ": unknown generator profile '" + name +
                                 "' (available: recruitment, viewlog, ysb, keyed)");
}

}  // namespace sluice
