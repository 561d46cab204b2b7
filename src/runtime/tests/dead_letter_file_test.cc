#include "runtime/dead_letter_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "operators/dimension.h"

namespace sluice {
namespace {

TEST(DeadLetterFileTest, WritesJsonLinesAndCutsBackToCommittedLength) {
  auto dir = std::filesystem::temp_directory_path() / ("sluice_dlq_" + std::to_string(::getpid()));
  std::string path = (dir / "sub" / "dl.ndjson").string();
  {
    auto f = DeadLetterFile::Open(path, 0);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    auto len = (*f)->Append("pipe", {{"decode: bad \"bid\"", "1,x\n2", "tracking", 0, 42, 0}});
    ASSERT_TRUE(len.ok());
    EXPECT_EQ(*ReadFile(path),
              "{\"pipeline\":\"pipe\",\"source\":\"tracking\",\"partition\":0,\"offset\":42,\"generation\":0,"
              "\"reason\":\"decode: bad \\\"bid\\\"\",\"time\":\"1970-01-01T00:00:00.000000Z\","
              "\"payload\":\"1,x\\n2\",\"payload_bytes\":5,\"truncated\":false,\"payload_sha256\":"
              "\"4f9c39f0416b87eeb95549e4f94d44911019529f89c4a8219416f6af3daf4d7c\"}\n");
    const int64_t committed = *len;
    ASSERT_TRUE((*f)->Append("pipe", {{"late", "p", "s", 1, 7}}).ok());
    // Reopening with the committed length drops the uncommitted second letter.
    f->reset();
    f = DeadLetterFile::Open(path, committed);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(static_cast<int64_t>(ReadFile(path)->size()), committed);
  }
  // A committed length beyond the file means someone truncated it: refuse to guess.
  ASSERT_TRUE(std::filesystem::exists(path));
  auto bad = DeadLetterFile::Open(path, 1 << 20);
  EXPECT_FALSE(bad.ok());
  std::filesystem::remove_all(dir);
}

TEST(DeadLetterFileTest, OneProcessAtATime) {
  auto dir = std::filesystem::temp_directory_path() / ("sluice_dlq3_" + std::to_string(::getpid()));
  std::string path = (dir / "dl.ndjson").string();
  auto first = DeadLetterFile::Open(path, 0);
  ASSERT_TRUE(first.ok());
  auto second = DeadLetterFile::Open(path, 0);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use by another process"), std::string::npos);
  first->reset();
  EXPECT_TRUE(DeadLetterFile::Open(path, 0).ok());
  std::filesystem::remove_all(dir);
}

TEST(DeadLetterFileTest, InvalidUtf8StaysValidJson) {
  auto dir = std::filesystem::temp_directory_path() / ("sluice_dlq2_" + std::to_string(::getpid()));
  std::string path = (dir / "dl.ndjson").string();
  auto f = DeadLetterFile::Open(path, 0);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("pipe", {{"r", std::string("a\xff\x01", 3), "s", 0, 0}}).ok());
  EXPECT_NE(ReadFile(path)->find("\"payload\":\"a\\u00ff\\u0001\",\"payload_base64\":\"Yf8B\""), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice
