#include "connectors/generator/generator_source.h"
#include "runtime/registry.h"

namespace sluice {

/// generator: synthetic events of a built-in profile.
void RegisterGenerator(ConnectorRegistry& registry) {
  registry.AddSource("generator", GeneratorSource::Make, GeneratorSourceOptions());
  // A pipeline whose source a variable switches between a generator and real input keeps the
  // generator's settings in [source]; the other sources treat them as read. `format` is not
  // one of them: it belongs to the other sources, and the generator ignores it.
  std::vector<std::string> switchable = GeneratorSourceOptions().Names();
  std::erase(switchable, "format");
  registry.AddSwitchableSourceOptions(switchable);
}

}  // namespace sluice
