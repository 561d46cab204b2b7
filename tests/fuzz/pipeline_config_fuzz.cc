// libFuzzer target for the pipeline-file loader (src/config with toml++): the input is a
// pipeline file's text. ParsePipelineConfig must return a config or an error, never crash,
// whatever the file holds (broken TOML, missing or mistyped keys, ${VAR} references).
// Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/pipeline_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sluice::Variables vars = [] {
    sluice::Variables v;
    v.use_environment = false;  // the same result on every machine
    v.values = {{"DIR", "/tmp/sluice-fuzz"}, {"N", "3"}, {"EMPTY", ""}};
    return v;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)sluice::ParsePipelineConfig(text, "fuzz.toml", vars);
  (void)sluice::SubstituteVariables(text, vars);
  return 0;
}
