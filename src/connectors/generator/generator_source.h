#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "core/random.h"
#include "runtime/source.h"

namespace sluice {

/// The options of a generator source, its profiles' included (ParseGeneratorSettings and
/// MakeGeneratorProfile read them).
const OptionTable& GeneratorSourceOptions();

/// Produces the payload of one synthetic event. Implementations are immutable after Make and
/// shared by all generator instances of a pipeline.
class GeneratorProfile {
 public:
  virtual ~GeneratorProfile() = default;
  /// Appends the NDJSON payload of the event with global sequence number `seq` to `out`, and
  /// when `key` is not null sets it to the event's message key (e.g. the job id).
  /// Must depend only on (seed, seq, event_time) so that a replay reproduces it exactly.
  virtual void Make(uint64_t seq, int64_t event_time_micros, Rng& rng, std::string* out,
                    std::string* key = nullptr) const = 0;
};

/// Settings shared by all profiles.
struct GeneratorSettings {
  std::string profile;
  uint64_t seed = 1;
  double rate = 1000;       ///< events per second over all partitions; 0 = as fast as possible
  int64_t count = -1;       ///< total events; -1 = unbounded
  int32_t partitions = 1;
  int64_t start_micros = 0; ///< event time of the first event
  int64_t spacing_micros = 0;  ///< event-time distance between consecutive events
};

/// Emits synthetic events of a named profile (recruitment, viewlog, ...) at a given rate.
///
/// Event `seq` belongs to partition seq % partitions; positions are per-partition sequence
/// counts, so a restart regenerates exactly the events after the committed ones.
class GeneratorSource : public Source {
 public:
  static Result<std::vector<std::unique_ptr<Source>>> Make(const SourceConfig& config,
                                                           int max_instances);

  Status Open(const SourceContext& ctx) override;
  Result<PollState> Poll(RawBatch* out, size_t max_records,
                         std::chrono::milliseconds budget) override;
  std::vector<int32_t> Partitions() const override {
    std::vector<int32_t> out;
    for (const auto& p : partitions_) {
      if (p.limit < 0 || p.next < p.limit) out.push_back(p.id);
    }
    return out;
  }
  std::string_view kind() const override { return "generator"; }
  DecoderOptions decoder_options() const override { return {}; }

  GeneratorSource(GeneratorSettings settings, std::shared_ptr<const GeneratorProfile> profile,
                  std::vector<int32_t> partitions);

 private:
  struct Partition {
    int32_t id;
    int64_t next = 0;   ///< events of this partition emitted so far
    int64_t limit = -1; ///< events this partition emits in total; -1 = unbounded
  };
  GeneratorSettings settings_;
  std::shared_ptr<const GeneratorProfile> profile_;
  std::vector<Partition> partitions_;
  std::chrono::steady_clock::time_point started_;
  int64_t emitted_since_start_ = 0;
  std::string scratch_;
};

/// Creates a built-in profile by name, reading its extra options (e.g. `jobs`).
Result<std::shared_ptr<const GeneratorProfile>> MakeGeneratorProfile(const std::string& name,
                                                                     const Options& options,
                                                                     uint64_t seed);

/// Parses the settings every generator shares from [source] options.
Result<GeneratorSettings> ParseGeneratorSettings(const Options& options);

}  // namespace sluice
