#include "connectors/file/file_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace sluice {
namespace {

namespace fs = std::filesystem;

class FileSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sluice_file_source_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::unique_ptr<Source> Make(const std::string& path) {
    SourceConfig cfg;
    cfg.uri = path;
    auto sources = FileSource::Make(cfg, 1);
    EXPECT_TRUE(sources.ok()) << sources.status().ToString();
    return std::move((*sources)[0]);
  }

  SourceContext Context(std::optional<int64_t> committed = std::nullopt, bool follow = false) {
    SourceContext ctx;
    ctx.committed_position = [committed](int32_t) { return committed; };
    ctx.follow = follow;
    return ctx;
  }

  /// Reads everything, returning payloads and filling `next` with the last next_offset.
  std::vector<std::string> ReadAll(Source& src, int64_t* next = nullptr) {
    std::vector<std::string> out;
    RawBatch batch;
    for (int i = 0; i < 100; ++i) {
      batch.Clear();
      auto st = src.Poll(&batch, 2, std::chrono::milliseconds(10));
      EXPECT_TRUE(st.ok());
      for (size_t k = 0; k < batch.size(); ++k) {
        out.emplace_back(batch.payload(k));
        if (next) *next = batch.record(k).next_offset;
      }
      if (*st == PollState::kEnd) break;
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(FileSourceTest, CsvRecordsWithQuotedNewlinesAndPositions) {
  const std::string text = "a,b\n1,\"x\ny\"\r\n2,\"q\"\"q\"\n\n3,z";
  auto path = Write("t.csv", text);
  auto src = Make(path);
  ASSERT_TRUE(src->Open(Context()).ok());
  EXPECT_EQ(src->Header(), "a,b");
  int64_t next = 0;
  auto records = ReadAll(*src, &next);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], "1,\"x\ny\"");
  EXPECT_EQ(records[1], "2,\"q\"\"q\"");
  EXPECT_EQ(records[2], "3,z");  // no terminator at the end of a bounded file
  EXPECT_EQ(next, static_cast<int64_t>(text.size()));
}

TEST_F(FileSourceTest, ResumesAfterCommittedOffsetAndStillReadsHeader) {
  const std::string text = "a;b\n1;x\n2;y\n3;z\n";
  auto path = Write("t.csv", text);
  auto src = Make(path);
  // Offset 8 is just after "1;x\n" (header is 4 bytes, first record 4 bytes).
  ASSERT_TRUE(src->Open(Context(8)).ok());
  EXPECT_EQ(src->Header(), "a;b");
  EXPECT_EQ(src->decoder_options().delimiter, ';');
  auto records = ReadAll(*src);
  EXPECT_EQ(records, (std::vector<std::string>{"2;y", "3;z"}));
}

TEST_F(FileSourceTest, NdjsonSkipsBlankLines) {
  auto path = Write("t.ndjson", "{\"a\":1}\n\n{\"a\":2}\n");
  auto src = Make(path);
  ASSERT_TRUE(src->Open(Context()).ok());
  EXPECT_EQ(ReadAll(*src), (std::vector<std::string>{"{\"a\":1}", "{\"a\":2}"}));
}

TEST_F(FileSourceTest, FollowWaitsForCompleteRecords) {
  auto path = Write("t.ndjson", "{\"a\":1}\n{\"a\":");
  auto src = Make(path);
  ASSERT_TRUE(src->Open(Context(std::nullopt, /*follow=*/true)).ok());
  RawBatch batch;
  auto st = src->Poll(&batch, 10, std::chrono::milliseconds(30));
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(batch.size(), 1u);  // the half-written second record is not returned
  batch.Clear();
  st = src->Poll(&batch, 10, std::chrono::milliseconds(30));
  EXPECT_EQ(*st, PollState::kIdle);
  std::ofstream(path, std::ios::app) << "2}\n";
  batch.Clear();
  st = src->Poll(&batch, 10, std::chrono::milliseconds(200));
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch.payload(0), "{\"a\":2}");
}

TEST_F(FileSourceTest, ErrorsAreClear) {
  SourceConfig cfg;
  cfg.uri = (dir_ / "missing.csv").string();
  auto missing = FileSource::Make(cfg, 1);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.csv"), std::string::npos);
  cfg.uri = Write("t.txt", "x");
  auto unknown = FileSource::Make(cfg, 1);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find(".csv, .ndjson"), std::string::npos);
  auto empty = Make(Write("e.csv", ""));
  EXPECT_FALSE(empty->Open(Context()).ok());
}

}  // namespace
}  // namespace sluice
