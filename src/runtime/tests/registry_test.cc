#include "runtime/registry.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

class CountingPoller : public DimensionPoller {
 public:
  Status Poll() override { return Status::OK(); }
};

DimensionConfig Config(const std::string& uri) {
  DimensionConfig c;
  c.name = "job";
  c.uri = uri;
  c.key = "id";
  c.fields = {{"id", Type::kInt64, ""}};
  return c;
}

DimensionFactory Factory(int64_t default_refresh, bool fills_at_start) {
  DimensionFactory f;
  f.load = [](const DimensionConfig& config, DimensionRefresh refresh) -> Result<std::shared_ptr<Dimension>> {
    auto table = std::make_shared<DimensionTable>(config.name, Schema(config.fields), 0);
    return std::make_shared<Dimension>(config, std::move(refresh), std::move(table));
  };
  f.poller = [](std::shared_ptr<Dimension>) -> Result<std::unique_ptr<DimensionPoller>> {
    return std::unique_ptr<DimensionPoller>(std::make_unique<CountingPoller>());
  };
  f.default_refresh_micros = default_refresh;
  f.fills_at_start = fills_at_start;
  return f;
}

// The registry, not the engine, knows which schemes exist: a dimension goes to its connector,
// with the connector's default refresh, and an unknown scheme names the known ones.
TEST(RegistryTest, DimensionsGoThroughTheirConnector) {
  ConnectorRegistry r;
  r.AddDimension("tbl", Factory(7'000'000, false));
  r.AddDimension("log", Factory(1'000'000, true));

  auto tbl = r.LoadDimension(Config("tbl://x"));
  ASSERT_TRUE(tbl.ok()) << tbl.status().ToString();
  EXPECT_EQ((*tbl)->refresh().interval_micros, 7'000'000);
  auto poller = r.MakeDimensionPoller(*tbl);
  ASSERT_TRUE(poller.ok());
  EXPECT_NE(*poller, nullptr);

  DimensionConfig off = Config("tbl://x");
  off.options.Set("refresh", {"0", {}});
  auto still = r.LoadDimension(off);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(*r.MakeDimensionPoller(*still), nullptr);  // refresh off: nothing to follow

  DimensionConfig log = Config("log://t");
  log.options.Set("refresh", {"0", {}});
  auto changelog = r.LoadDimension(log);
  ASSERT_TRUE(changelog.ok());
  EXPECT_NE(*r.MakeDimensionPoller(*changelog), nullptr);  // it fills its table at start

  DimensionConfig negative = Config("tbl://x");
  negative.options.Set("refresh", {"-1s", {}});
  EXPECT_FALSE(r.LoadDimension(negative).ok());

  auto unknown = r.LoadDimension(Config("nosuch://x"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("log, tbl"), std::string::npos) << unknown.status().message();
}

// Options another source kind declared switchable are read for every source; others are not.
TEST(RegistryTest, SwitchableSourceOptionsAreReadForEverySource) {
  ConnectorRegistry r;
  r.AddSwitchableSourceOptions({"rate"});
  r.AddSource("s", [](const SourceConfig& config, int) -> Result<std::vector<std::unique_ptr<Source>>> {
    RETURN_IF_ERROR(config.options.RejectUnconsumed("source"));
    return std::vector<std::unique_ptr<Source>>();
  });
  SourceConfig c;
  c.uri = "s:x";
  c.options.Set("rate", {"10", {}});
  EXPECT_TRUE(r.MakeSources(c, 1).ok());
  c.options.Set("rtae", {"10", {}});
  EXPECT_FALSE(r.MakeSources(c, 1).ok());  // a misspelling is still reported
}

TEST(RegistryTest, SinkTraitsByScheme) {
  ConnectorRegistry r;
  SinkTraits local;
  local.local_file = true;
  r.AddSink("db", [](const SinkConfig&) -> Result<std::unique_ptr<Sink>> { return Status::Internal("unused"); },
            local);
  EXPECT_TRUE(r.SinkTraitsFor("db:out.db").local_file);
  EXPECT_FALSE(r.SinkTraitsFor("other:x").local_file);
}

}  // namespace
}  // namespace sluice
