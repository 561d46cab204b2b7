// A partition assigned while the sink cannot be read: the worker waits for the sink's committed
// position instead of guessing. Another process of the group may have committed the partition
// further since this one last knew; starting from the older position counted those records
// twice (seen in the soak test: counts doubled after a MariaDB restart during a rebalance).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "runtime/registry.h"
#include "runtime/runner.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_failing_reads{0};     // LoadPositions() fails this many more times
std::atomic<int64_t> g_committed{42};    // what the sink holds for partition 0
std::atomic<int64_t> g_answer{-2};       // what the source was told on assignment (-1: none)
std::atomic<bool> g_asked{false};

/// A sink that holds one committed position and writes nothing; its reads can be made to fail,
/// as a database server's do while it restarts.
class RestartingSink : public Sink {
 public:
  Status Open(const SinkContext&) override { return Status::OK(); }
  Result<std::vector<StoredPosition>> LoadPositions() override {
    if (g_failing_reads.load() > 0) {
      g_failing_reads.fetch_sub(1);
      return Status::Unavailable("Lost connection to server during query (the test's sink)");
    }
    return std::vector<StoredPosition>{{"s", 0, g_committed.load()}};
  }
  bool SupportsState() const override { return true; }
  Status Commit(const Checkpoint&) override { return Status::OK(); }
};

/// A source whose partition 0 is (re)assigned on the first poll, as a consumer-group rebalance
/// does, while another process has meanwhile committed it further and the sink is down.
class ReassignedSource : public Source {
 public:
  Status Open(const SourceContext& ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<PollState> Poll(RawBatch*, size_t, std::chrono::milliseconds) override {
    if (!g_asked.load()) {
      g_committed.store(99);      // the other process committed up to 99
      g_failing_reads.store(3);   // and the sink is restarting
      std::optional<int64_t> at = ctx_.committed_position(0);
      g_answer.store(at ? *at : -1);
      g_asked.store(true);
    }
    return PollState::kEnd;
  }
  std::string_view kind() const override { return "reassigned"; }
  DecoderOptions decoder_options() const override { return DecoderOptions{}; }

 private:
  SourceContext ctx_;
};

TEST(AssignmentTest, WaitsForTheSinkInsteadOfGuessingAPosition) {
  RegisterBuiltins();
  auto& reg = ConnectorRegistry::Instance();
  reg.AddSink("restarting", [](const SinkConfig&) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(std::make_unique<RestartingSink>());
  });
  reg.AddSource("reassigned", [](const SourceConfig&, int) -> Result<std::vector<std::unique_ptr<Source>>> {
    std::vector<std::unique_ptr<Source>> v;
    v.push_back(std::make_unique<ReassignedSource>());
    return v;
  });
  const fs::path dir = fs::temp_directory_path() / ("sluice_assignment_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / "p.toml";
  std::ofstream(p) << "select = [\"x\"]\n[pipeline]\nname = \"p\"\n[source]\nname = \"s\"\n"
                      "uri = \"reassigned:\"\n[source.fields]\nx = \"int64\"\n[sink]\n"
                      "uri = \"restarting:\"\ntable = \"t\"\n[dead_letter]\nto = \"file:dlq.ndjson\"\n";
  auto cfg = LoadPipelineConfig(p.string(), Variables{});
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  Runner* r = runner->get();
  auto result = std::async(std::launch::async, [r] { return r->Run(); });
  if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    r->RequestStop();
    result.wait();
    FAIL() << "the run did not end after the sink answered again";
  }
  EXPECT_TRUE(result.get().ok());
  ASSERT_TRUE(g_asked.load());
  // 42 was the position known at start; the sink's position when it answered again is 99.
  EXPECT_EQ(g_answer.load(), 99);
  EXPECT_EQ(g_failing_reads.load(), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice
