#include "connectors/generator/generator_source.h"
#include "runtime/registry.h"

namespace sluice {

/// generator: synthetic events of a built-in profile.
void RegisterGenerator(ConnectorRegistry& registry) {
  registry.AddSource("generator", GeneratorSource::Make);
  // A pipeline whose source a variable switches between a generator and real input keeps the
  // generator's settings in [source]; the other sources treat them as read.
  registry.AddSwitchableSourceOptions({"profile", "rate", "seed", "count", "jobs", "start", "partitions",
                                       "spacing", "campaigns", "out_of_order", "late", "invalid"});
}

}  // namespace sluice
