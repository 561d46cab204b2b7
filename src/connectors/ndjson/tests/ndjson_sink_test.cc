#include "connectors/ndjson/ndjson_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/registry.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using Row = std::vector<Value>;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class NdjsonSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltins();
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("sluice_ndjson_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(dir_);
    path_ = (dir_ / "sub" / "out.ndjson").string();
    ctx_.pipeline = "users";
    ctx_.output = Schema({{"id", Type::kInt64, ""}, {"name", Type::kString, ""}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  static SinkConfig Config(const std::string& uri) {
    SinkConfig c;
    c.uri = uri;
    c.options.section_location = {"test.toml", 1, 1};
    return c;
  }

  /// Makes and opens `ndjson:path_` for `ctx_`; fails the test on error.
  std::unique_ptr<Sink> Open() {
    auto s = NdjsonSink::MakeFile(Config("ndjson:" + path_));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    Status st = (*s)->Open(ctx_);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return st.ok() ? std::move(s).value() : nullptr;
  }

  static Status Commit(Sink* sink, const std::vector<Row>& rows,
                       std::vector<StoredPosition> positions, const std::string* state = nullptr) {
    Checkpoint cp;
    cp.rows = &rows;
    cp.positions = std::move(positions);
    cp.state = state;
    return sink->Commit(cp);
  }

  fs::path dir_;
  std::string path_;
  SinkContext ctx_;
};

TEST(NdjsonRowTest, RendersEachTypeAsJson) {
  Schema schema({{"n", Type::kString, ""}, {"b", Type::kBool, ""}, {"i", Type::kInt64, ""},
                 {"d", Type::kDouble, ""}, {"s", Type::kString, ""}, {"t", Type::kTimestamp, ""},
                 {"nan", Type::kDouble, ""}, {"u", Type::kTimestamp, ""}});
  std::string out;
  // 2024-03-01 12:34:56 UTC is 1709296496 s since the epoch.
  AppendNdjsonRow(schema,
                  {Value::Null(), Value::Bool(true), Value::Int(-42), Value::Double(2.5),
                   Value::String("a \"q\"\n\\"), Value::TimeMicros(1709296496LL * 1000000),
                   Value::Double(std::nan("")), Value::TimeMicros(1709296496LL * 1000000 + 250000)},
                  &out);
  EXPECT_EQ(out,
            "{\"n\":null,\"b\":true,\"i\":-42,\"d\":2.5,\"s\":\"a \\\"q\\\"\\n\\\\\","
            "\"t\":\"2024-03-01 12:34:56\",\"nan\":null,\"u\":\"2024-03-01 12:34:56.250000\"}\n");
}

TEST_F(NdjsonSinkTest, CommitsLinesAndPositionsAndReloadsThem) {
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(sink->LoadPositions()->empty());
    ASSERT_TRUE(Commit(sink.get(), {{Value::Int(1), Value::String("ann")}}, {{"api", 0, 10}}).ok());
    ASSERT_TRUE(Commit(sink.get(),
                       {{Value::Int(2), Value::Null()}, {Value::Int(3), Value::String("c")}},
                       {{"api", 1, 7}})
                    .ok());
  }
  EXPECT_EQ(Slurp(path_),
            "{\"id\":1,\"name\":\"ann\"}\n{\"id\":2,\"name\":null}\n{\"id\":3,\"name\":\"c\"}\n");
  auto sink = Open();
  ASSERT_TRUE(sink);
  auto positions = sink->LoadPositions();
  ASSERT_TRUE(positions.ok());
  // Partition 0 was only in the first checkpoint: positions merge, as a table's upsert does.
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"api", 0, 10}, {"api", 1, 7}}));
  EXPECT_EQ(Slurp(path_).size(), 63u);
}

TEST_F(NdjsonSinkTest, LinesWithoutCommittedPositionsAreCutOnStart) {
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(Commit(sink.get(), {{Value::Int(1), Value::String("a")}}, {{"api", 0, 1}}).ok());
  }
  const std::string committed = Slurp(path_);
  {
    // A crash after the lines were written but before the sidecar was replaced.
    std::ofstream out(path_, std::ios::app | std::ios::binary);
    out << "{\"id\":2,\"name\":\"b\"}\n{\"id\":3,";
  }
  auto sink = Open();
  ASSERT_TRUE(sink);
  EXPECT_EQ(Slurp(path_), committed);
  EXPECT_EQ(*sink->LoadPositions(), (std::vector<StoredPosition>{{"api", 0, 1}}));
  // The replay appends after the committed lines.
  ASSERT_TRUE(Commit(sink.get(), {{Value::Int(2), Value::String("b")}}, {{"api", 0, 2}}).ok());
  EXPECT_EQ(Slurp(path_), committed + "{\"id\":2,\"name\":\"b\"}\n");
}

TEST_F(NdjsonSinkTest, StoresTheEngineState) {
  const std::string state("open\0windows", 12);
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    EXPECT_TRUE(sink->SupportsState());
    EXPECT_EQ(*sink->LoadState(), "");
    ASSERT_TRUE(Commit(sink.get(), {}, {{"api", 0, 5}}, &state).ok());
  }
  auto sink = Open();
  ASSERT_TRUE(sink);
  EXPECT_EQ(*sink->LoadState(), state);
}

TEST_F(NdjsonSinkTest, RefusesAFileItDidNotWrite) {
  fs::create_directories(fs::path(path_).parent_path());
  std::ofstream(path_) << "{\"precious\":true}\n";
  auto s = NdjsonSink::MakeFile(Config("ndjson:" + path_));
  ASSERT_TRUE(s.ok());
  Status st = (*s)->Open(ctx_);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find(".sluice-positions"), std::string::npos) << st.ToString();
  EXPECT_EQ(Slurp(path_), "{\"precious\":true}\n");
}

TEST_F(NdjsonSinkTest, RefusesAnotherPipelinesFileAndATruncatedOne) {
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(Commit(sink.get(), {{Value::Int(1), Value::String("a")}}, {{"api", 0, 1}}).ok());
  }
  ctx_.pipeline = "other";
  auto s = NdjsonSink::MakeFile(Config("ndjson:" + path_));
  ASSERT_TRUE(s.ok());
  Status st = (*s)->Open(ctx_);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("pipeline 'users'"), std::string::npos) << st.ToString();

  ctx_.pipeline = "users";
  fs::resize_file(path_, 3);
  s = NdjsonSink::MakeFile(Config("ndjson:" + path_));
  ASSERT_TRUE(s.ok());
  st = (*s)->Open(ctx_);
  EXPECT_EQ(st.code(), StatusCode::kInternal) << st.ToString();
}

TEST_F(NdjsonSinkTest, OneProcessAtATime) {
  auto first = Open();
  ASSERT_TRUE(first);
  auto s = NdjsonSink::MakeFile(Config("ndjson:" + path_));
  ASSERT_TRUE(s.ok());
  Status st = (*s)->Open(ctx_);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

TEST_F(NdjsonSinkTest, RefusesUpdateModeAndBadUris) {
  AggregateSpec spec;
  spec.append_mode = false;
  ctx_.aggregate = &spec;
  for (const char* uri : {"ndjson:x.ndjson", "stdout:"}) {
    auto s = ConnectorRegistry::Instance().MakeSink(Config(uri));
    ASSERT_TRUE(s.ok()) << uri << ": " << s.status().ToString();
    Status st = (*s)->Check(ctx_);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << uri;
    EXPECT_NE(st.message().find("mode = \"append\""), std::string::npos) << st.ToString();
  }
  spec.append_mode = true;
  EXPECT_TRUE((*NdjsonSink::MakeFile(Config("ndjson:x.ndjson")))->Check(ctx_).ok());
  EXPECT_FALSE(NdjsonSink::MakeFile(Config("ndjson:")).ok());
  EXPECT_FALSE(NdjsonSink::MakeStdout(Config("stdout:somewhere")).ok());
  // stdout: takes a pipeline written for another sink; ndjson: does not.
  SinkConfig other = Config("stdout:");
  other.table = "t";
  other.options.Set("key", Option{"id", {"test.toml", 2, 1}});
  other.options.Set("partition_by", Option{"id", {"test.toml", 3, 1}});
  EXPECT_TRUE(NdjsonSink::MakeStdout(other).ok());
  other.uri = "ndjson:x.ndjson";
  EXPECT_FALSE(NdjsonSink::MakeFile(other).ok());
  other.options.Set("compression", Option{"zstd", {"test.toml", 4, 1}});
  other.uri = "stdout:";
  EXPECT_FALSE(NdjsonSink::MakeStdout(other).ok());
}

TEST_F(NdjsonSinkTest, StdoutStoresNothing) {
  auto s = NdjsonSink::MakeStdout(Config("stdout:"));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Open(ctx_).ok());
  // Every run starts from the beginning, so its engine state starts empty too.
  EXPECT_TRUE((*s)->SupportsState());
  EXPECT_EQ(*(*s)->LoadState(), "");
  testing::internal::CaptureStdout();
  ASSERT_TRUE(Commit(s->get(), {{Value::Int(7), Value::String("x")}}, {{"api", 0, 1}}).ok());
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "{\"id\":7,\"name\":\"x\"}\n");
  EXPECT_TRUE((*s)->LoadPositions()->empty());
}

}  // namespace
}  // namespace sluice
