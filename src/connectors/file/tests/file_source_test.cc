#include "connectors/file/file_source.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

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

  std::unique_ptr<Source> Make(const std::string& path, int64_t max_quoted_bytes = 0) {
    SourceConfig cfg;
    cfg.name = "tracking";
    cfg.uri = path;
    if (max_quoted_bytes > 0) cfg.options.Set("max_quoted_bytes", Option{std::to_string(max_quoted_bytes), {}});
    auto sources = FileSource::Make(cfg, 1);
    EXPECT_TRUE(sources.ok()) << sources.status().ToString();
    return std::move((*sources)[0]);
  }

  /// A context whose sink holds `committed` for partition 0 and nothing else (no file identity,
  /// as an older sluice stored it).
  SourceContext Context(std::optional<int64_t> committed = std::nullopt, bool follow = false) {
    SourceContext ctx;
    ctx.committed_position = [committed](int32_t p) { return p == 0 ? committed : std::nullopt; };
    ctx.follow = follow;
    return ctx;
  }

  /// A context whose sink holds `stored` (as committed after a batch).
  static SourceContext Stored(std::map<int32_t, int64_t> stored) {
    SourceContext ctx;
    ctx.committed_position = [stored](int32_t p) -> std::optional<int64_t> {
      auto it = stored.find(p);
      if (it == stored.end()) return std::nullopt;
      return it->second;
    };
    return ctx;
  }

  /// Reads the whole file from its committed position and returns the payloads; `stored` is
  /// the sink: read from it and updated with the positions after every batch, as the worker does.
  std::vector<std::string> Run(const std::string& path, std::map<int32_t, int64_t>* stored,
                               Status* open_status = nullptr) {
    auto src = Make(path);
    Status s = src->Open(Stored(*stored));
    if (open_status) *open_status = s;
    if (!s.ok()) return {};
    std::vector<std::string> out;
    RawBatch batch;
    for (int i = 0; i < 100000; ++i) {
      batch.Clear();
      auto st = src->Poll(&batch, 3, std::chrono::milliseconds(10));
      EXPECT_TRUE(st.ok()) << st.status().ToString();
      if (!st.ok()) break;
      for (size_t k = 0; k < batch.size(); ++k) {
        out.emplace_back(batch.payload(k));
        (*stored)[0] = batch.record(k).next_offset;  // as the worker does, then the source's own
      }
      if (!batch.empty() || !batch.dead_letters().empty()) {
        for (const auto& [p, o] : src->PositionsAfterBatch()) (*stored)[p] = o;
      }
      if (*st == PollState::kEnd) break;
    }
    return out;
  }

  /// Writes `text` to a new file and renames it over `path` (a new inode, as `mv` does).
  void Replace(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".new";
    std::ofstream(tmp, std::ios::binary) << text;
    fs::rename(tmp, path);
  }

  /// Rewrites `path` in place (same inode) with `text`.
  void Rewrite(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }

  static std::string Rows(int from, int to) {
    std::string out;
    for (int i = from; i < to; ++i) out += std::to_string(i) + ",row number " + std::to_string(i) + "\n";
    return out;
  }
  static std::vector<std::string> Lines(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(std::to_string(i) + ",row number " + std::to_string(i));
    return out;
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

// A bounded run ends the input for good, so every open window is written at its end; with
// --until-caught-up the end is "caught up for now" (the file may grow or be replaced by the next
// export), so open windows stay in the state as with Kafka.
TEST_F(FileSourceTest, EndIsFinalOnlyWithoutUntilCaughtUp) {
  auto path = Write("t.ndjson", "{\"a\":1}\n");
  auto bounded = Make(path);
  ASSERT_TRUE(bounded->Open(Context()).ok());
  EXPECT_TRUE(bounded->EndIsFinal());
  auto caught_up = Make(path);
  SourceContext ctx = Context();
  ctx.until_caught_up = true;
  ASSERT_TRUE(caught_up->Open(ctx).ok());
  EXPECT_FALSE(caught_up->EndIsFinal());
  EXPECT_EQ(ReadAll(*caught_up), (std::vector<std::string>{"{\"a\":1}"}));
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

// The position belongs to the file it was read from: a file replaced by one with other data is
// read from its start, an append or a rewrite that keeps the old bytes continues, a shrink is
// refused. Each case failed before identities were stored (the old offset was used blindly).
TEST_F(FileSourceTest, ReplacedByALongerFileIsReadFromItsStart) {
  const std::string path = Write("t.csv", "id,text\n" + Rows(0, 300));
  std::map<int32_t, int64_t> stored;
  EXPECT_EQ(Run(path, &stored), Lines(0, 300));
  Replace(path, "id,text\n" + Rows(300, 1000));  // longer than the committed offset
  EXPECT_EQ(Run(path, &stored), Lines(300, 1000));
  EXPECT_TRUE(Run(path, &stored).empty());  // and then it is done
}

TEST_F(FileSourceTest, ReplacedByAShorterFileIsReadFromItsStart) {
  const std::string path = Write("t.csv", "id,text\n" + Rows(0, 300));
  std::map<int32_t, int64_t> stored;
  EXPECT_EQ(Run(path, &stored).size(), 300u);
  Replace(path, "id,text\n" + Rows(300, 320));
  EXPECT_EQ(Run(path, &stored), Lines(300, 320));
  // A tiny replacement, shorter than the first bytes hashed before, is a new file too.
  Replace(path, "id,text\n" + Rows(7, 8));
  EXPECT_EQ(Run(path, &stored), Lines(7, 8));
}

TEST_F(FileSourceTest, RewrittenInPlaceWithOtherDataIsReadFromItsStart) {
  const std::string path = Write("t.csv", "id,text\n" + Rows(0, 300));
  std::map<int32_t, int64_t> stored;
  EXPECT_EQ(Run(path, &stored).size(), 300u);
  Rewrite(path, "id,text\n" + Rows(500, 900));  // same inode, other first bytes
  EXPECT_EQ(Run(path, &stored), Lines(500, 900));
}

TEST_F(FileSourceTest, AppendedAndPrefixKeepingRewritesContinue) {
  const std::string path = Write("t.csv", "id,text\n" + Rows(0, 300));
  std::map<int32_t, int64_t> stored;
  EXPECT_EQ(Run(path, &stored).size(), 300u);
  std::ofstream(path, std::ios::app) << Rows(300, 400);
  EXPECT_EQ(Run(path, &stored), Lines(300, 400));
  // A new file (another inode) that holds everything read so far, then more.
  Replace(path, "id,text\n" + Rows(0, 450));
  EXPECT_EQ(Run(path, &stored), Lines(400, 450));
  // Small files too, whose whole content is the hashed head.
  const std::string small = Write("s.csv", "id,text\n" + Rows(0, 2));
  std::map<int32_t, int64_t> small_stored;
  EXPECT_EQ(Run(small, &small_stored).size(), 2u);
  Replace(small, "id,text\n" + Rows(0, 5));
  EXPECT_EQ(Run(small, &small_stored), Lines(2, 5));
}

TEST_F(FileSourceTest, ShrunkOrRewrittenBeforeThePositionIsRefusedNamingResetSource) {
  const std::string path = Write("t.csv", "id,text\n" + Rows(0, 300));
  std::map<int32_t, int64_t> stored;
  EXPECT_EQ(Run(path, &stored).size(), 300u);
  // Truncated in place: the same file, shorter.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(fs::file_size(path) / 2)), 0);
  Status open;
  EXPECT_TRUE(Run(path, &stored, &open).empty());
  EXPECT_EQ(open.code(), StatusCode::kFailedPrecondition) << open.ToString();
  EXPECT_NE(open.message().find("--reset-source tracking"), std::string::npos) << open.message();
  EXPECT_NE(open.message().find("shorter"), std::string::npos) << open.message();
  // Replaced by a copy of its first half (same first bytes, another inode): shrank as well.
  Replace(path, "id,text\n" + Rows(0, 150));
  EXPECT_TRUE(Run(path, &stored, &open).empty());
  EXPECT_EQ(open.code(), StatusCode::kFailedPrecondition) << open.ToString();
  // The same first bytes and length, but a row before the position changed: not an append.
  std::string changed = "id,text\n" + Rows(0, 300);
  changed.replace(changed.find("row number 290"), 14, "row NUMBER 290");
  Replace(path, changed);
  EXPECT_TRUE(Run(path, &stored, &open).empty());
  EXPECT_EQ(open.code(), StatusCode::kFailedPrecondition) << open.ToString();
  EXPECT_NE(open.message().find("changed"), std::string::npos) << open.message();
  // A tiny file truncated in place (shorter than the hashed head) is refused too.
  const std::string small = Write("s.csv", "id,text\n" + Rows(0, 3));
  std::map<int32_t, int64_t> small_stored;
  EXPECT_EQ(Run(small, &small_stored).size(), 3u);
  ASSERT_EQ(::truncate(small.c_str(), 10), 0);
  EXPECT_TRUE(Run(small, &small_stored, &open).empty());
  EXPECT_EQ(open.code(), StatusCode::kFailedPrecondition) << open.ToString();
}

TEST_F(FileSourceTest, IdentityHashesCoverTheBytesBeforeThePositionAcrossBufferMoves) {
  // Several MB, read in small batches, so the read buffer is compacted many times.
  std::string text = "id,text\n";
  for (int i = 0; i < 120000; ++i) text += std::to_string(i) + ",some text to make the line longer " + std::to_string(i * 7) + "\n";
  const std::string path = Write("big.csv", text);
  std::map<int32_t, int64_t> stored;
  auto src = Make(path);
  ASSERT_TRUE(src->Open(Stored(stored)).ok());
  RawBatch batch;
  size_t records = 0;
  int checked = 0;
  while (true) {
    batch.Clear();
    auto st = src->Poll(&batch, 997, std::chrono::milliseconds(10));
    ASSERT_TRUE(st.ok());
    records += batch.size();
    if (!batch.empty()) {
      std::map<int32_t, int64_t> p;
      for (const auto& [k, v] : src->PositionsAfterBatch()) p[k] = v;
      const int64_t pos = p.at(0);
      ASSERT_EQ(pos, batch.record(batch.size() - 1).next_offset);
      // Independently: the hash of the 1 KiB before the position, and of the first 1 KiB.
      const size_t tail = static_cast<size_t>(std::min<int64_t>(pos, 1024));
      ASSERT_EQ(p.at(kIdentityPartitionBase + 3), Fingerprint64(std::string_view(text).substr(static_cast<size_t>(pos) - tail, tail)));
      ASSERT_EQ(p.at(kIdentityPartitionBase + 2), Fingerprint64(std::string_view(text).substr(0, std::min<size_t>(static_cast<size_t>(pos), 1024))));
      struct stat st_buf;
      ASSERT_EQ(::stat(path.c_str(), &st_buf), 0);
      ASSERT_EQ(p.at(kIdentityPartitionBase + 1), static_cast<int64_t>(st_buf.st_ino));
      ++checked;
    }
    if (*st == PollState::kEnd) break;
  }
  EXPECT_EQ(records, 120000u);
  EXPECT_GT(checked, 100);
}

TEST_F(FileSourceTest, NotAFileFailsAtMakeWithInvalidArgument) {
  SourceConfig cfg;
  cfg.uri = (dir_ / "adir.csv").string();
  fs::create_directories(cfg.uri);
  auto dir = FileSource::Make(cfg, 1);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), StatusCode::kInvalidArgument);  // exit 2, not a retry loop
  EXPECT_NE(dir.status().message().find("is a directory"), std::string::npos) << dir.status().message();
  cfg.uri = (dir_ / "fifo.csv").string();
  ASSERT_EQ(::mkfifo(cfg.uri.c_str(), 0600), 0);
  auto fifo = FileSource::Make(cfg, 1);
  ASSERT_FALSE(fifo.ok());
  EXPECT_EQ(fifo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fifo.status().message().find("not a regular file"), std::string::npos) << fifo.status().message();
  if (::geteuid() != 0) {  // root reads anything
    cfg.uri = Write("secret.csv", "a\n1\n");
    fs::permissions(cfg.uri, fs::perms::none);
    auto unreadable = FileSource::Make(cfg, 1);
    ASSERT_FALSE(unreadable.ok());
    EXPECT_EQ(unreadable.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(unreadable.status().message().find("Permission denied"), std::string::npos);
  }
}

// One stray quote used to swallow the rest of the file into a single record (dead-lettered
// whole). Now the broken line alone is dead-lettered, with the reason, and reading resumes.
TEST_F(FileSourceTest, StrayQuoteCostsOneLine) {
  const std::string path = Write("q.csv", "a,b\n1,\"x\n2,y\n3,ab\"c\n4,z\n5,\"multi\nline\"\n6,\"open");
  auto src = Make(path);
  ASSERT_TRUE(src->Open(Context()).ok());
  std::vector<std::string> records;
  std::vector<SourceDeadLetter> letters;
  RawBatch batch;
  for (int i = 0; i < 100; ++i) {
    batch.Clear();
    auto st = src->Poll(&batch, 100, std::chrono::milliseconds(10));
    ASSERT_TRUE(st.ok());
    for (size_t k = 0; k < batch.size(); ++k) records.emplace_back(batch.payload(k));
    for (const auto& d : batch.dead_letters()) letters.push_back(d);
    if (*st == PollState::kEnd) break;
  }
  // The last line's open quote ends at the end of the file: one line, left to the decoder
  // (which dead-letters it as an unterminated quoted field).
  EXPECT_EQ(records, (std::vector<std::string>{"2,y", "4,z", "5,\"multi\nline\"", "6,\"open"}));
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].payload, "1,\"x");
  EXPECT_EQ(letters[0].offset, 4);
  EXPECT_NE(letters[0].reason.find("stray quote"), std::string::npos) << letters[0].reason;
  EXPECT_EQ(letters[1].payload, "3,ab\"c");
  EXPECT_NE(letters[1].reason.find("stray quote in unquoted field"), std::string::npos) << letters[1].reason;
}

TEST_F(FileSourceTest, QuotedFieldsAreCappedAtMaxQuotedBytes) {
  // A legitimate field over lines, longer than the cap: dead-lettered line by line is the price.
  std::string text = "a,b\n1,\"";
  for (int i = 0; i < 50; ++i) text += "line " + std::to_string(i) + "\n";
  text += "end\"\n2,y\n";
  const std::string path = Write("cap.csv", text);
  auto src = Make(path, 100);
  ASSERT_TRUE(src->Open(Context()).ok());
  RawBatch batch;
  auto st = src->Poll(&batch, 1, std::chrono::milliseconds(10));
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(batch.dead_letters().size(), 1u);
  EXPECT_EQ(batch.dead_letters()[0].payload, "1,\"line 0");
  EXPECT_NE(batch.dead_letters()[0].reason.find("runs past 100 bytes (max_quoted_bytes)"), std::string::npos)
      << batch.dead_letters()[0].reason;
  // Under the default cap the same file is one record and then "2,y".
  auto whole = Make(path);
  ASSERT_TRUE(whole->Open(Context()).ok());
  auto records = ReadAll(*whole);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1], "2,y");
}

}  // namespace
}  // namespace sluice
