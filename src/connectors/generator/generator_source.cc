#include "connectors/generator/generator_source.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "core/time.h"

namespace sluice {

const OptionTable& GeneratorSourceOptions() {
  static const OptionTable kTable{
      .uri = "generator:",
      .summary = "Synthetic events of a built-in profile, at a set rate; a restart regenerates exactly "
                 "the events after the committed ones. Its keys may stay in a `[source]` whose "
                 "`uri` a variable switches to another source.",
      .options = {
          {.name = "profile",
           .allowed = {"recruitment", "viewlog", "ysb", "keyed"},
           .help = "Which events to make (required)."},
          {.name = "seed", .type = OptionType::kInt, .default_value = "1", .help = "Random seed."},
          {.name = "rate",
           .type = OptionType::kNumber,
           .default_value = "1000",
           .help = "Events per second over all partitions; 0: as fast as possible."},
          {.name = "count", .type = OptionType::kInt, .default_value = "-1", .help = "Total events; -1: unbounded."},
          {.name = "partitions", .type = OptionType::kInt, .default_value = "1", .help = "Partitions, 1..1024."},
          {.name = "start",
           .default_value = "2026-01-01T00:00:00Z",
           .help = "Event time of the first event (ISO 8601)."},
          {.name = "spacing",
           .type = OptionType::kDuration,
           .default_note = "1 s / rate (1ms at rate 0)",
           .help = "Event-time distance between consecutive events."},
          {.name = "jobs",
           .type = OptionType::kPath,
           .default_value = "examples/data/job.csv",
           .help = "recruitment: the jobs CSV the events refer to."},
          {.name = "campaigns",
           .type = OptionType::kPath,
           .default_note = "ysb: `examples/data/ysb_ads.csv`; viewlog: built in",
           .help = "viewlog: a CSV of campaign_id; ysb: the ads CSV (ad_id, campaign_id)."},
          {.name = "out_of_order",
           .type = OptionType::kNumber,
           .default_value = "0.05",
           .help = "viewlog: share of records out of order (0..1)."},
          {.name = "late", .type = OptionType::kNumber, .default_value = "0.01", .help = "viewlog: share of late records."},
          {.name = "invalid",
           .type = OptionType::kNumber,
           .default_value = "0.02",
           .help = "viewlog: share of invalid records; the three shares add up to at most 1."},
          {.name = "groups",
           .type = OptionType::kInt,
           .default_value = "1000",
           .help = "keyed: how many distinct keys (1..10^9); n events have min(n, groups)."},
          {.name = "format", .help = "Ignored (a file or Kafka source's setting)."},
      }};
  return kTable;
}

Result<GeneratorSettings> ParseGeneratorSettings(const Options& options) {
  OptionReader o(options, GeneratorSourceOptions(), "source");
  GeneratorSettings s;
  s.profile = o.String("profile");
  if (s.profile.empty()) {
    return Status::InvalidArgument(o.Where("profile") +
                                   ": a generator source needs profile = \"recruitment\" (or "
                                   "another built-in profile)");
  }
  ASSIGN_OR_RETURN(int64_t seed, o.Int("seed"));
  s.seed = static_cast<uint64_t>(seed);
  ASSIGN_OR_RETURN(s.rate, o.Number("rate"));
  if (s.rate < 0) return Status::InvalidArgument(o.Where("rate") + ": rate must be >= 0");
  ASSIGN_OR_RETURN(s.count, o.Int("count"));
  ASSIGN_OR_RETURN(int64_t partitions, o.Int("partitions"));
  if (partitions < 1 || partitions > 1024) {
    return Status::InvalidArgument(o.Where("partitions") + ": partitions must be 1..1024");
  }
  s.partitions = static_cast<int32_t>(partitions);
  std::string start = o.String("start");
  auto start_micros = ParseTimestamp(start);
  if (!start_micros) {
    return Status::InvalidArgument(o.Where("start") + ": start must be an ISO 8601 time, got '" +
                                   start + "'");
  }
  s.start_micros = *start_micros;
  int64_t default_spacing = s.rate > 0 ? static_cast<int64_t>(1e6 / s.rate) : 1000;
  ASSIGN_OR_RETURN(s.spacing_micros, o.Duration("spacing", std::max<int64_t>(1, default_spacing)));
  return s;
}

Result<std::vector<std::unique_ptr<Source>>> GeneratorSource::Make(const SourceConfig& config,
                                                                   int max_instances) {
  ASSIGN_OR_RETURN(GeneratorSettings settings, ParseGeneratorSettings(config.options));
  ASSIGN_OR_RETURN(auto profile,
                   MakeGeneratorProfile(settings.profile, config.options, settings.seed));
  OptionReader o(config.options, GeneratorSourceOptions(), "source");
  o.String("format");
  RETURN_IF_ERROR(o.Finish());
  int instances = std::max(1, std::min<int>(max_instances, settings.partitions));
  std::vector<std::vector<int32_t>> owned(instances);
  for (int32_t p = 0; p < settings.partitions; ++p) owned[p % instances].push_back(p);
  std::vector<std::unique_ptr<Source>> out;
  for (auto& parts : owned) {
    out.push_back(std::make_unique<GeneratorSource>(settings, profile, std::move(parts)));
  }
  return out;
}

GeneratorSource::GeneratorSource(GeneratorSettings settings,
                                 std::shared_ptr<const GeneratorProfile> profile,
                                 std::vector<int32_t> partitions)
    : settings_(std::move(settings)), profile_(std::move(profile)) {
  for (int32_t p : partitions) {
    Partition part{p, 0, -1};
    if (settings_.count >= 0) {
      const int64_t n = settings_.partitions;
      part.limit = settings_.count > p ? (settings_.count - p + n - 1) / n : 0;
    }
    partitions_.push_back(part);
  }
}

Status GeneratorSource::Open(const SourceContext& ctx) {
  for (auto& p : partitions_) {
    if (auto committed = ctx.committed_position(p.id)) p.next = *committed;
  }
  if (ctx.until_caught_up && settings_.count < 0) {
    return Status::InvalidArgument(
        "--until-caught-up needs a bounded generator: set count (an unbounded generator never "
        "catches up)");
  }
  started_ = std::chrono::steady_clock::now();
  emitted_since_start_ = 0;
  return Status::OK();
}

Result<PollState> GeneratorSource::Poll(RawBatch* out, size_t max_records,
                                        std::chrono::milliseconds budget) {
  size_t allowed = max_records;
  if (settings_.rate > 0) {
    const double instance_rate =
        settings_.rate * static_cast<double>(partitions_.size()) / settings_.partitions;
    auto deadline = std::chrono::steady_clock::now() + budget;
    while (true) {
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      double due = elapsed * instance_rate - static_cast<double>(emitted_since_start_);
      if (due >= 1) {
        allowed = std::min<size_t>(max_records, static_cast<size_t>(due));
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) return PollState::kIdle;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  bool any_open = false;
  size_t produced = 0;
  // Round-robin over partitions so each advances evenly.
  while (produced < allowed) {
    bool progressed = false;
    for (auto& p : partitions_) {
      if (produced >= allowed) break;
      if (p.limit >= 0 && p.next >= p.limit) continue;
      const uint64_t seq = static_cast<uint64_t>(p.next) * settings_.partitions + p.id;
      Rng rng(settings_.seed * 0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
      const int64_t event_time =
          settings_.start_micros + static_cast<int64_t>(seq) * settings_.spacing_micros;
      scratch_.clear();
      profile_->Make(seq, event_time, rng, &scratch_);
      RawRecord& r = out->Append(scratch_);
      r.partition = p.id;
      r.offset = p.next;
      r.next_offset = p.next + 1;
      ++p.next;
      ++produced;
      progressed = true;
    }
    if (!progressed) break;
  }
  emitted_since_start_ += static_cast<int64_t>(produced);
  for (const auto& p : partitions_) {
    if (p.limit < 0 || p.next < p.limit) any_open = true;
  }
  if (produced > 0) return PollState::kData;
  return any_open ? PollState::kIdle : PollState::kEnd;
}

}  // namespace sluice
