// A source's Poll errors: retried with backoff, except kAborted (the source gave up), which
// ends the run with that error.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "runtime/registry.h"
#include "runtime/runner.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

const std::string kRepo = SLUICE_SOURCE_DIR;

/// Fails its first `failures` polls as unavailable, then gives up (kAborted) or, when
/// `give_up` is false, reports the end of its (empty) input.
class FailingSource : public Source {
 public:
  static std::atomic<int> polls;
  static int failures;
  static bool give_up;
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch*, size_t, std::chrono::milliseconds) override {
    const int n = polls.fetch_add(1) + 1;
    if (n <= failures) return Status::Unavailable("the server says no (" + std::to_string(n) + ")");
    if (give_up) return Status::Aborted("gave up after the server said no");
    return PollState::kEnd;
  }
  std::string_view kind() const override { return "failing"; }
  DecoderOptions decoder_options() const override { return {}; }
};
std::atomic<int> FailingSource::polls{0};
int FailingSource::failures = 0;
bool FailingSource::give_up = false;

Status RunWithFailingSource(const fs::path& dir) {
  RegisterBuiltins();
  ConnectorRegistry::Instance().AddSource(
      "failing", [](const SourceConfig&, int) -> Result<std::vector<std::unique_ptr<Source>>> {
        std::vector<std::unique_ptr<Source>> out;
        out.push_back(std::make_unique<FailingSource>());
        return out;
      });
  Variables vars;
  vars.use_environment = false;
  vars.values = {{"TRACKING", "failing:"},
                 {"JOBS", kRepo + "/examples/data/job.csv"},
                 {"SINK", "sqlite:" + (dir / "out.db").string()},
                 {"DLQ", (dir / "out.dlq.ndjson").string()}};
  auto cfg = LoadPipelineConfig(kRepo + "/examples/recruitment.toml", vars);
  if (!cfg.ok()) return cfg.status();
  auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
  if (!runner.ok()) return runner.status();
  // A worker that retried forever would hang the test: stop it after 15 s (a clean stop, so
  // the run then returns OK, which the tests reject).
  std::atomic<bool> done{false};
  Runner* r = runner->get();
  std::thread watchdog([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!done.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!done.load()) r->RequestStop();
  });
  Status s = r->Run();
  done = true;
  watchdog.join();
  return s;
}

class SourceGiveUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sluice_give_up_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SourceGiveUpTest, UnavailableIsRetriedAndAbortedEndsTheRun) {
  FailingSource::polls = 0;
  FailingSource::failures = 3;
  FailingSource::give_up = true;
  Status s = RunWithFailingSource(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("gave up after the server said no"), std::string::npos)
      << s.message();
  EXPECT_EQ(FailingSource::polls.load(), 4);  // three retried failures, then the give-up
}

TEST_F(SourceGiveUpTest, UnavailableAloneIsRetriedUntilItPasses) {
  FailingSource::polls = 0;
  FailingSource::failures = 3;
  FailingSource::give_up = false;
  Status s = RunWithFailingSource(dir_);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(FailingSource::polls.load(), 4);
}

}  // namespace
}  // namespace sluice
