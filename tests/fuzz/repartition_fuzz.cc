// libFuzzer target for the records of the repartition topic (src/runtime/repartition_record.h):
// the input is one record's value, decoded for a fixed [aggregate] (two keys, a metric of each
// kind of state). A record that decodes must encode to bytes that decode to the same record
// and encode to the same bytes again; the keys of a decoded partial must encode and land in a
// partition in range. Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/repartition_record.h"

namespace {

using sluice::AggFn;
using sluice::AggregateSpec;
using sluice::KeySpec;
using sluice::MetricSpec;
using sluice::Type;

// The fingerprint the seeds carry: "60000000|k:network_id|k:campaign|m:views:count|
// m:spend:sum|m:top:max|m:price:last" (tests/fuzz/make_repartition_seeds.py writes them).
AggregateSpec FuzzSpec() {
  AggregateSpec spec;
  spec.window_micros = 60'000'000;
  spec.append_mode = true;
  for (const auto& [name, type] :
       {std::pair{"network_id", Type::kInt64}, std::pair{"campaign", Type::kString}}) {
    KeySpec k;
    k.name = name;
    k.type = type;
    spec.keys.push_back(std::move(k));
  }
  const std::pair<const char*, AggFn> metrics[] = {
      {"views", AggFn::kCount}, {"spend", AggFn::kSum}, {"top", AggFn::kMax},
      {"price", AggFn::kLast}};
  for (const auto& [name, fn] : metrics) {
    MetricSpec m;
    m.name = name;
    m.fn = fn;
    spec.metrics.push_back(std::move(m));
  }
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const AggregateSpec spec = FuzzSpec();
  // A copy without spare bytes after it, so that a read past the value is seen by ASan.
  const std::string value(reinterpret_cast<const char*>(data), size);
  auto decoded = sluice::DecodeRepartitionValue(value, spec);
  if (!decoded.ok()) return 0;
  const std::string once = sluice::EncodeRepartitionValue(*decoded, spec);
  auto again = sluice::DecodeRepartitionValue(once, spec);
  if (!again.ok()) __builtin_trap();
  if (again->kind != decoded->kind) __builtin_trap();
  if (sluice::EncodeRepartitionValue(*again, spec) != once) __builtin_trap();
  if (decoded->kind == sluice::RepartitionRecord::Kind::kPartial) {
    if (decoded->partial.keys.size() != spec.keys.size()) __builtin_trap();
    const std::string key = sluice::EncodeRepartitionKey(decoded->partial.keys);
    if (key != sluice::EncodeRepartitionKey(again->partial.keys)) __builtin_trap();
    for (int32_t r : {-1, 0, 1, 6, 8, 2147483647}) {
      const int32_t p = sluice::RepartitionPartitionOf(key, r);
      if (p < 0 || (r > 1 && p >= r) || (r <= 1 && p != 0)) __builtin_trap();
    }
  }
  return 0;
}
