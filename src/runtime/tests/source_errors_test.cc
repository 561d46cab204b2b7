// How a worker treats a source's errors: transient ones (I/O, unavailable) are retried with
// backoff and counted; a permanent one (FailedPrecondition) stops the run at once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>

#include "core/uri.h"
#include "runtime/registry.h"
#include "runtime/runner.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

/// Fails its first `failures` polls with `code`, then returns one record and ends.
class FailingSource : public Source {
 public:
  FailingSource(StatusCode code, int failures) : code_(code), failures_(failures) {}
  Status Open(const SourceContext&) override { return Status::OK(); }
  Result<PollState> Poll(RawBatch* out, size_t, std::chrono::milliseconds) override {
    if (polls_++ < failures_) return Status(code_, "poll " + std::to_string(polls_) + " failed");
    if (done_) return PollState::kEnd;
    RawRecord& r = out->Append(R"({"x":7})");
    r.partition = 0;
    r.offset = 0;
    r.next_offset = 1;
    done_ = true;
    return PollState::kData;
  }
  std::string_view kind() const override { return "failing"; }
  DecoderOptions decoder_options() const override { return {}; }
  std::vector<int32_t> Partitions() const override { return {0}; }

 private:
  StatusCode code_;
  int failures_;
  int polls_ = 0;
  bool done_ = false;
};

class SourceErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_source_errors_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ConnectorRegistry::Instance().AddSource(
        "failing", [](const SourceConfig& config, int) -> Result<std::vector<std::unique_ptr<Source>>> {
          const std::string what = SplitUri(config.uri).second;
          std::vector<std::unique_ptr<Source>> out;
          if (what == "transient") out.push_back(std::make_unique<FailingSource>(StatusCode::kIOError, 2));
          if (what == "permanent") out.push_back(std::make_unique<FailingSource>(StatusCode::kFailedPrecondition, 1000));
          return out;
        });
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Runner> Make(const std::string& what) {
    Variables vars;
    vars.use_environment = false;
    const std::string text = "select = [\"x\"]\n[pipeline]\nname = \"errs\"\ncheckpoint_interval = \"5ms\"\n"
                             "[source]\nname = \"in\"\nuri = \"failing:" + what + "\"\n"
                             "[source.fields]\nx = \"int64\"\n"
                             "[sink]\nuri = \"sqlite:" + (dir_ / "out.db").string() + "\"\ntable = \"t\"\n";
    auto cfg = ParsePipelineConfig(text, "errs.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    return std::move(runner).value();
  }

  fs::path dir_;
};

TEST_F(SourceErrorsTest, TransientErrorsAreRetriedAndCounted) {
  auto r = Make("transient");
  Status s = r->Run();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r->Snapshot().source_errors, 2);
  EXPECT_EQ(r->Snapshot().records_in, 1);
}

TEST_F(SourceErrorsTest, APermanentErrorStopsTheRunAtOnce) {
  auto r = Make("permanent");
  const auto started = std::chrono::steady_clock::now();
  Status s = r->Run();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("source in: poll 1 failed"), std::string::npos) << s.message();
  EXPECT_EQ(r->Snapshot().source_errors, 1);
  // Retried with backoff, 1000 failures would take minutes.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

}  // namespace
}  // namespace sluice
