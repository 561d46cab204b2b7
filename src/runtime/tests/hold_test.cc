// on_missing = "hold": records whose dimension key is not known yet wait for it, exactly once.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runtime/registry.h"
#include "runtime/runner.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Rows(const std::string& db) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::vector<std::string> out;
  if (sqlite3_prepare_v2(h, "SELECT seq, job_id, company_id FROM out ORDER BY seq", -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string line;
      for (int c = 0; c < 3; ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        line += (c ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      out.push_back(line);
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

class HoldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    dir_ = fs::temp_directory_path() / ("sluice_hold_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    jobs_ = (dir_ / "jobs.csv").string();
    db_ = (dir_ / "out.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteJobs(const std::string& rows) {
    const std::string tmp = jobs_ + ".tmp";
    std::ofstream(tmp) << "id,company_id\n" << rows;
    fs::rename(tmp, jobs_);
  }

  std::unique_ptr<Runner> Make(const std::string& events, const std::string& hold_for) {
    const std::string in = (dir_ / "in.ndjson").string();
    std::ofstream(in) << events;
    Variables vars;
    vars.use_environment = false;
    const std::string text =
        "select = [\"seq\", \"job_id\", \"company_id\"]\n"
        "[pipeline]\nname = \"hold\"\ncheckpoint_interval = \"50ms\"\n"
        "[source]\nuri = \"" + in + "\"\n[source.fields]\nseq = \"int64\"\njob_id = \"int64\"\n"
        "[dimension.job]\nuri = \"" + jobs_ + "\"\nkey = \"id\"\n"
        "fields = { id = \"int64\", company_id = \"int64\" }\nrefresh = \"100ms\"\n"
        "[[step]]\nlookup = \"job\"\nkey = \"job_id\"\nfields = [\"company_id\"]\n"
        "on_missing = \"hold\"\nhold_for = \"" + hold_for + "\"\nthen = \"dead_letter\"\n"
        "[sink]\nuri = \"sqlite:" + db_ + "\"\ntable = \"out\"\n[dead_letter]\npath = \"" + db_ + ".dlq\"\n";
    auto cfg = ParsePipelineConfig(text, "hold.toml", vars);
    EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
    auto runner = Runner::Make(std::move(cfg).value(), RunOptions{});
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    return std::move(runner).value();
  }

  fs::path dir_;
  std::string jobs_, db_;
};

TEST_F(HoldTest, ARecordWaitsForItsKeyThenExpires) {
  WriteJobs("1,10\n2,20\n");
  auto runner = Make("{\"seq\":1,\"job_id\":1}\n{\"seq\":2,\"job_id\":3}\n{\"seq\":3,\"job_id\":2}\n"
                     "{\"seq\":4,\"job_id\":4}\n",
                     "3s");
  Status result;
  std::thread run([&] { result = runner->Run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(runner->Snapshot().held, 2);  // jobs 3 and 4 are not known yet
  WriteJobs("1,10\n2,20\n3,30\n");          // job 3 arrives late
  run.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(Rows(db_), (std::vector<std::string>{"1|1|10", "2|3|30", "3|2|20"}));
  auto letters = Lines(db_ + ".dlq");
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].find("no job for key 4 after holding it 3s"), std::string::npos) << letters[0];
  EXPECT_EQ(runner->Snapshot().held, 0);
}

TEST_F(HoldTest, HeldRecordsSurviveARestartExactlyOnce) {
  WriteJobs("1,10\n");
  const std::string events = "{\"seq\":1,\"job_id\":1}\n{\"seq\":2,\"job_id\":5}\n";
  {
    auto runner = Make(events, "60s");
    Status result;
    std::thread run([&] { result = runner->Run(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (runner->Snapshot().held < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a checkpoint with it held
    runner->RequestStop();
    run.join();
    ASSERT_TRUE(result.ok()) << result.ToString();
  }
  EXPECT_EQ(Rows(db_), (std::vector<std::string>{"1|1|10"}));
  // The file is consumed and its position committed: only the stored state still has seq 2.
  WriteJobs("1,10\n5,50\n");
  auto runner = Make(events, "60s");
  ASSERT_TRUE(runner->Run().ok());
  EXPECT_EQ(runner->Snapshot().records_in, 0);
  EXPECT_EQ(Rows(db_), (std::vector<std::string>{"1|1|10", "2|5|50"}));
  EXPECT_TRUE(Lines(db_ + ".dlq").empty());
}

TEST_F(HoldTest, HoldForAndThenAreValidated) {
  Variables vars;
  vars.use_environment = false;
  auto bad = ParsePipelineConfig(
      "[pipeline]\nname = \"x\"\n[source]\nuri = \"a.ndjson\"\n[source.fields]\nk = \"int64\"\n"
      "[[step]]\nlookup = \"job\"\nkey = \"k\"\nfields = [\"c\"]\non_missing = \"drop\"\nhold_for = \"5s\"\n"
      "[sink]\nuri = \"sqlite:x.db\"\n",
      "x.toml", vars);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("hold_for needs on_missing"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace sluice
