#include "connectors/parquet/parquet_sink.h"

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "connectors/parquet/parquet_naming.h"
#include "connectors/parquet/parquet_state.h"
#include "core/serialize.h"
#include "operators/dimension.h"
#include "runtime/registry.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

using Row = std::vector<Value>;

class ParquetSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("sluice_parquet_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }

  /// Builds a [sink] config; each option sits on its own line of "test.toml", from line 2.
  static SinkConfig Config(const std::string& uri,
                           const std::vector<std::pair<std::string, std::string>>& options = {}) {
    SinkConfig c;
    c.uri = uri;
    c.options.section_location = {"test.toml", 1, 1};
    int line = 2;
    for (const auto& [k, v] : options) c.options.Set(k, Option{v, {"test.toml", line++, 1}});
    return c;
  }

  Result<std::unique_ptr<Sink>> Make(
      const std::vector<std::pair<std::string, std::string>>& options = {}) {
    return ParquetSink::Make(Config("parquet:" + dir_.string(), options));
  }

  /// Makes and opens a sink; fails the test on error.
  std::unique_ptr<Sink> Open(const std::vector<std::pair<std::string, std::string>>& options = {},
                             const std::string& pipeline = "views") {
    auto sink = Make(options);
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    if (!sink.ok()) return nullptr;
    Status s = (*sink)->Open(Context(pipeline));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::move(*sink);
  }

  static SinkContext Context(const std::string& pipeline = "views") {
    SinkContext ctx;
    ctx.pipeline = pipeline;
    ctx.output = Schema({{"network_id", Type::kInt64, ""},
                         {"minute", Type::kString, ""},
                         {"avg_duration", Type::kDouble, ""},
                         {"valid", Type::kBool, ""},
                         {"window_start", Type::kTimestamp, ""}});
    return ctx;
  }

  static Row MakeRow(int64_t network, const std::string& minute, double avg, bool valid,
                     int64_t micros) {
    return {Value::Int(network), Value::String(minute), Value::Double(avg), Value::Bool(valid),
            Value::TimeMicros(micros)};
  }

  /// Returns the relative paths of every regular file under dir_ except _sluice/, sorted.
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    if (!fs::exists(dir_)) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      const std::string rel = fs::relative(e.path(), dir_).string();
      if (e.is_regular_file() && rel.rfind("_sluice", 0) != 0) out.push_back(rel);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static Result<std::shared_ptr<arrow::Table>> ReadTable(const fs::path& path) {
    auto in = arrow::io::ReadableFile::Open(path.string());
    if (!in.ok()) return Status::IOError(in.status().ToString());
    auto reader = parquet::arrow::OpenFile(*in, arrow::default_memory_pool());
    if (!reader.ok()) return Status::IOError(reader.status().ToString());
    auto table = (*reader)->ReadTable();
    if (!table.ok()) return Status::IOError(table.status().ToString());
    return *table;
  }

  static parquet::Compression::type Codec(const fs::path& path) {
    auto reader = parquet::ParquetFileReader::OpenFile(path.string());
    return reader->metadata()->RowGroup(0)->ColumnChunk(0)->compression();
  }

  static int64_t RowsIn(const fs::path& path) {
    auto t = ReadTable(path);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? (*t)->num_rows() : -1;
  }

  int64_t TotalRows() const {
    int64_t n = 0;
    for (const auto& f : Files()) n += RowsIn(dir_ / f);
    return n;
  }

  static Checkpoint Cp(const std::vector<Row>* rows, int64_t offset, bool final = false,
                       const std::string* state = nullptr) {
    Checkpoint cp;
    cp.rows = rows;
    cp.positions = {{"views", 0, offset}, {"_dead_letters:x", 0, 0}};
    cp.final = final;
    cp.state = state;
    return cp;
  }

  fs::path dir_;
};

TEST_F(ParquetSinkTest, WritesEveryTypeWithNullsAsZstdByDefault) {
  auto sink = Open();
  ASSERT_TRUE(sink);
  EXPECT_TRUE(sink->SupportsState());
  const int64_t t0 = 1696766460000000;  // 2023-10-08 12:01:00 UTC
  std::vector<Row> rows = {
      MakeRow(3, "2023-10-08-12-01", 12.5, true, t0),
      {Value::Null(), Value::Null(), Value::Null(), Value::Null(), Value::Null()},
      {Value::Int(-7), Value::String("caf\xc3\xa9"), Value::Int(4), Value::Bool(false),
       Value::TimeMicros(t0 + 123456)},
  };
  ASSERT_TRUE(sink->Commit(Cp(&rows, 10, /*final=*/true)).ok());
  auto files = Files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0].starts_with("part-views-0000000001-")) << files[0];
  EXPECT_TRUE(files[0].ends_with(".parquet")) << files[0];

  auto table = ReadTable(dir_ / files[0]);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  auto expected = arrow::schema(
      {arrow::field("network_id", arrow::int64()), arrow::field("minute", arrow::utf8()),
       arrow::field("avg_duration", arrow::float64()), arrow::field("valid", arrow::boolean()),
       arrow::field("window_start", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"))});
  EXPECT_TRUE((*table)->schema()->Equals(*expected, /*check_metadata=*/false))
      << (*table)->schema()->ToString();
  ASSERT_EQ((*table)->num_rows(), 3);
  auto combined = (*table)->CombineChunks();
  ASSERT_TRUE(combined.ok());
  auto col = [&](int i) { return (*combined)->column(i)->chunk(0); };
  auto ints = std::static_pointer_cast<arrow::Int64Array>(col(0));
  auto strs = std::static_pointer_cast<arrow::StringArray>(col(1));
  auto dbls = std::static_pointer_cast<arrow::DoubleArray>(col(2));
  auto bools = std::static_pointer_cast<arrow::BooleanArray>(col(3));
  auto times = std::static_pointer_cast<arrow::TimestampArray>(col(4));
  EXPECT_EQ(ints->Value(0), 3);
  EXPECT_EQ(strs->GetString(0), "2023-10-08-12-01");
  EXPECT_DOUBLE_EQ(dbls->Value(0), 12.5);
  EXPECT_TRUE(bools->Value(0));
  EXPECT_EQ(times->Value(0), t0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(col(i)->IsNull(1)) << "column " << i;
  EXPECT_EQ(ints->Value(2), -7);
  EXPECT_EQ(strs->GetString(2), "caf\xc3\xa9");
  EXPECT_DOUBLE_EQ(dbls->Value(2), 4.0);  // an int64 value in a double column
  EXPECT_FALSE(bools->Value(2));
  EXPECT_EQ(times->Value(2), t0 + 123456);
  EXPECT_EQ(Codec(dir_ / files[0]), parquet::Compression::ZSTD);
}

TEST_F(ParquetSinkTest, CompressionOption) {
  for (const auto& [name, codec] : std::vector<std::pair<std::string, parquet::Compression::type>>{
           {"snappy", parquet::Compression::SNAPPY},
           {"gzip", parquet::Compression::GZIP},
           {"none", parquet::Compression::UNCOMPRESSED}}) {
    fs::remove_all(dir_);
    auto sink = Open({{"compression", name}});
    ASSERT_TRUE(sink);
    std::vector<Row> rows = {MakeRow(1, "m", 1, true, 0)};
    ASSERT_TRUE(sink->Commit(Cp(&rows, 1, true)).ok());
    auto files = Files();
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(Codec(dir_ / files[0]), codec) << name;
  }
  auto bad = Make({{"compression", "lzma"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("test.toml:2:1"), std::string::npos)
      << bad.status().message();
}

TEST_F(ParquetSinkTest, HivePartitionDirectoriesLeavePartitionColumnsOutOfTheFiles) {
  auto sink = Open({{"partition_by", "[\"network_id\", \"minute\"]"}});
  ASSERT_TRUE(sink);
  std::vector<Row> rows = {
      MakeRow(3, "2023-10-08-12-01", 1, true, 0),
      MakeRow(3, "2023-10-08-12-01", 2, true, 0),
      MakeRow(3, "2023-10-08 12:02", 3, true, 0),
      MakeRow(4, "a/b=c%", 4, false, 0),
      {Value::Null(), Value::String(""), Value::Double(5), Value::Bool(true), Value::Null()},
  };
  ASSERT_TRUE(sink->Commit(Cp(&rows, 5, true)).ok());
  auto files = Files();
  ASSERT_EQ(files.size(), 4u);
  std::map<std::string, std::string> by_dir;
  for (const auto& f : files) by_dir[fs::path(f).parent_path().string()] = f;
  const std::vector<std::string> dirs = {
      "network_id=3/minute=2023-10-08 12%3A02",
      "network_id=3/minute=2023-10-08-12-01",
      "network_id=4/minute=a%2Fb%3Dc%25",
      "network_id=__HIVE_DEFAULT_PARTITION__/minute=__HIVE_DEFAULT_PARTITION__",
  };
  for (const auto& d : dirs) ASSERT_TRUE(by_dir.count(d)) << d;
  auto table = ReadTable(dir_ / by_dir["network_id=3/minute=2023-10-08-12-01"]);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ((*table)->num_rows(), 2);
  std::vector<std::string> names;
  for (const auto& f : (*table)->schema()->fields()) names.push_back(f->name());
  EXPECT_EQ(names, (std::vector<std::string>{"avg_duration", "valid", "window_start"}));
  EXPECT_EQ(RowsIn(dir_ / by_dir[dirs[3]]), 1);
}

TEST_F(ParquetSinkTest, HiveEscaping) {
  EXPECT_EQ(HiveEscape("plain-value_1.5 x"), "plain-value_1.5 x");
  EXPECT_EQ(HiveEscape("a/b"), "a%2Fb");
  EXPECT_EQ(HiveEscape("k=v:1?#%*'\"\\{[]^"), "k%3Dv%3A1%3F%23%25%2A%27%22%5C%7B%5B%5D%5E");
  EXPECT_EQ(HiveEscape(std::string("\n\x7f", 2)), "%0A%7F");
  EXPECT_EQ(HivePartitionSegment("t", Value::TimeMicros(60000000)), "t=1970-01-01 00%3A01%3A00");
  EXPECT_EQ(HivePartitionSegment("n", Value::Null()), "n=__HIVE_DEFAULT_PARTITION__");
  EXPECT_EQ(HivePartitionSegment("b", Value::Bool(true)), "b=true");
}

TEST_F(ParquetSinkTest, FileNamesOfOnePipelineOnly) {
  const std::string hash = "0123456789abcdef";
  EXPECT_EQ(PartFileName("views", 7, hash), "part-views-0000000007-0123456789abcdef.parquet");
  EXPECT_EQ(ParsePartFileName("views", PartFileName("views", 7, hash)), 7);
  EXPECT_EQ(ParsePartFileName("a", PartFileName("a-b", 7, hash)), std::nullopt);
  EXPECT_EQ(ParsePartFileName("a", PartFileName("a-0000000001", 7, hash)), std::nullopt);
  EXPECT_EQ(ParsePartFileName("a-b", PartFileName("a", 7, hash)), std::nullopt);
  EXPECT_EQ(ParsePartFileName("views", PartTempFileName("views", 7, hash)), std::nullopt);
  EXPECT_TRUE(IsPartTempFileName("views", PartTempFileName("views", 7, hash)));
  EXPECT_FALSE(IsPartTempFileName("view", PartTempFileName("views", 7, hash)));
  EXPECT_EQ(PartFileName("a/b", 1, hash), "part-a%2Fb-0000000001-0123456789abcdef.parquet");
  // The hash depends on the partition directory and the positions, and on nothing else.
  const std::vector<StoredPosition> p1 = {{"s", 0, 10}}, p2 = {{"s", 0, 11}};
  EXPECT_EQ(PartFileHash("v", "d=1", p1), PartFileHash("v", "d=1", p1));
  EXPECT_NE(PartFileHash("v", "d=1", p1), PartFileHash("v", "d=2", p1));
  EXPECT_NE(PartFileHash("v", "d=1", p1), PartFileHash("v", "d=1", p2));
  EXPECT_EQ(PartFileHash("v", "", p1).size(), 16u);
}

TEST_F(ParquetSinkTest, PositionsAndEngineStateSurviveARestart) {
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    auto positions = sink->LoadPositions();
    ASSERT_TRUE(positions.ok());
    EXPECT_TRUE(positions->empty());
    EXPECT_EQ(*sink->LoadState(), "");
    std::vector<Row> rows = {MakeRow(1, "m", 1, true, 0)};
    const std::string state("windows\0and watermarks", 22);
    ASSERT_TRUE(sink->Commit(Cp(&rows, 42, true, &state)).ok());
    // A later checkpoint carries only some partitions and no state: the others are kept.
    Checkpoint cp;
    std::vector<Row> none;
    cp.rows = &none;
    cp.positions = {{"views", 1, 7}};
    ASSERT_TRUE(sink->Commit(cp).ok());
    sink->Close();
  }
  auto sink = Open();
  ASSERT_TRUE(sink);
  auto positions = sink->LoadPositions();
  ASSERT_TRUE(positions.ok());
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{
                            {"_dead_letters:x", 0, 0}, {"views", 0, 42}, {"views", 1, 7}}));
  EXPECT_EQ(*sink->LoadState(), std::string("windows\0and watermarks", 22));
  // Another pipeline in the same directory has its own state.
  auto other = Open({}, "clicks");
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->LoadPositions()->empty());
}

TEST_F(ParquetSinkTest, OpenRemovesUncommittedFilesButNotCommittedOrOtherPipelines) {
  const std::string hash = "00000000deadbeef";
  {
    auto sink = Open({{"partition_by", "network_id"}});
    ASSERT_TRUE(sink);
    std::vector<Row> rows = {MakeRow(3, "m", 1, true, 0), MakeRow(4, "m", 2, true, 0)};
    ASSERT_TRUE(sink->Commit(Cp(&rows, 2, true)).ok());
  }
  const auto committed = Files();
  ASSERT_EQ(committed.size(), 2u);
  // A crash between the renames of checkpoint 2 and its state file leaves part files of
  // sequence 2 and temporary files; another pipeline's files sit beside them.
  const fs::path part = dir_ / "network_id=3";
  const std::vector<fs::path> orphans = {
      part / PartFileName("views", 2, hash),
      dir_ / "network_id=9" / PartFileName("views", 2, hash),
      part / PartTempFileName("views", 2, hash),
      part / PartTempFileName("views", 1, hash),
      dir_ / "_sluice" / "views.state.tmp",
  };
  const std::vector<fs::path> foreign = {
      part / PartFileName("clicks", 5, hash),
      part / PartTempFileName("clicks", 5, hash),
      part / "notes.txt",
  };
  fs::create_directories(dir_ / "network_id=9");
  for (const auto& p : orphans) std::ofstream(p) << "x";
  for (const auto& p : foreign) std::ofstream(p) << "x";

  auto sink = Open({{"partition_by", "network_id"}});
  ASSERT_TRUE(sink);
  for (const auto& p : orphans) EXPECT_FALSE(fs::exists(p)) << p;
  for (const auto& p : foreign) EXPECT_TRUE(fs::exists(p)) << p;
  for (const auto& f : committed) EXPECT_TRUE(fs::exists(dir_ / f)) << f;
}

TEST_F(ParquetSinkTest, RetriedCheckpointRewritesTheSameNames) {
  auto sink = Open({{"partition_by", "network_id"}});
  ASSERT_TRUE(sink);
  std::vector<Row> first = {MakeRow(3, "m", 1, true, 0)};
  ASSERT_TRUE(sink->Commit(Cp(&first, 1, true)).ok());

  // The state file cannot be written (its temporary name is a directory): the part files are
  // renamed, then the commit fails.
  const fs::path blocker = dir_ / "_sluice" / "views.state.tmp";
  fs::create_directories(blocker / "x");
  std::vector<Row> rows = {MakeRow(3, "m", 2, true, 0), MakeRow(4, "m", 3, true, 0),
                           MakeRow(5, "m", 4, true, 0)};
  const Checkpoint cp = Cp(&rows, 4, true);
  Status failed = sink->Commit(cp);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), StatusCode::kIOError) << failed.ToString();
  const auto after_failure = Files();
  EXPECT_EQ(after_failure.size(), 4u);
  EXPECT_EQ(sink->LoadPositions()->at(1).offset, 1) << "positions move only on success";
  ASSERT_FALSE(sink->Commit(cp).ok());
  EXPECT_EQ(Files(), after_failure);

  fs::remove_all(blocker);
  ASSERT_TRUE(sink->Commit(cp).ok());
  EXPECT_EQ(Files(), after_failure);
  EXPECT_EQ(TotalRows(), 4);
  EXPECT_EQ(sink->LoadPositions()->at(1).offset, 4);

  // A crash after the renames: the next run removes them and its replay writes the same names.
  fs::create_directories(blocker / "x");
  std::vector<Row> more = {MakeRow(6, "m", 5, true, 0)};
  const Checkpoint cp3 = Cp(&more, 9, true);
  ASSERT_FALSE(sink->Commit(cp3).ok());
  const auto crashed = Files();
  ASSERT_EQ(crashed.size(), 5u);
  sink.reset();
  fs::remove_all(blocker);
  sink = Open({{"partition_by", "network_id"}});
  ASSERT_TRUE(sink);
  EXPECT_EQ(Files().size(), 4u);
  EXPECT_EQ(TotalRows(), 4);
  ASSERT_TRUE(sink->Commit(cp3).ok());
  EXPECT_EQ(Files(), crashed);
  EXPECT_EQ(TotalRows(), 5);
}

TEST_F(ParquetSinkTest, AFailedRollFollowedByAnotherCheckpointLeavesNoDuplicates) {
  auto sink = Open({{"partition_by", "network_id"}});
  ASSERT_TRUE(sink);
  const fs::path blocker = dir_ / "_sluice" / "views.state.tmp";
  fs::create_directories(blocker / "x");
  std::vector<Row> rows = {MakeRow(3, "m", 1, true, 0)};
  ASSERT_FALSE(sink->Commit(Cp(&rows, 1, true)).ok());
  ASSERT_EQ(Files().size(), 1u);
  fs::remove_all(blocker);
  // Not a retry: more rows and other positions, so other names. The failed roll's file goes.
  std::vector<Row> more = {MakeRow(3, "m", 1, true, 0), MakeRow(3, "m", 2, true, 0)};
  ASSERT_TRUE(sink->Commit(Cp(&more, 2, true)).ok());
  ASSERT_EQ(Files().size(), 1u);
  EXPECT_EQ(TotalRows(), 2);
}

TEST_F(ParquetSinkTest, BufferedRowsSurviveARestartAndRollLater) {
  const std::vector<std::pair<std::string, std::string>> options = {{"roll_rows", "5"},
                                                                    {"roll_interval", "1h"}};
  {
    auto sink = Open(options);
    ASSERT_TRUE(sink);
    std::vector<Row> rows = {MakeRow(1, "a", 1, true, 0), MakeRow(2, "b", 2, false, 1)};
    ASSERT_TRUE(sink->Commit(Cp(&rows, 2)).ok());
    std::vector<Row> more = {MakeRow(3, "c", 3, true, 2)};
    ASSERT_TRUE(sink->Commit(Cp(&more, 3)).ok());
    EXPECT_TRUE(Files().empty());
    EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 3u);
  }  // a crash: nothing but the state file holds the three rows
  {
    auto sink = Open(options);
    ASSERT_TRUE(sink);
    EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 3u);
    EXPECT_EQ(sink->LoadPositions()->at(1).offset, 3);
    std::vector<Row> rows = {MakeRow(4, "d", 4, true, 3)};
    ASSERT_TRUE(sink->Commit(Cp(&rows, 4)).ok());
    EXPECT_TRUE(Files().empty());
    // roll_rows reached: all five rows go into one file.
    std::vector<Row> fifth = {MakeRow(5, "e", 5, true, 4)};
    ASSERT_TRUE(sink->Commit(Cp(&fifth, 5)).ok());
    ASSERT_EQ(Files().size(), 1u);
    EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 0u);
    auto table = ReadTable(dir_ / Files()[0]);
    ASSERT_TRUE(table.ok());
    ASSERT_EQ((*table)->num_rows(), 5);
    auto ids = std::static_pointer_cast<arrow::Int64Array>(
        (*(*table)->CombineChunks())->column(0)->chunk(0));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ids->Value(i), i + 1);
    // A final checkpoint writes what is buffered.
    std::vector<Row> sixth = {MakeRow(6, "f", 6, true, 5)};
    ASSERT_TRUE(sink->Commit(Cp(&sixth, 6)).ok());
    EXPECT_EQ(Files().size(), 1u);
    std::vector<Row> none;
    ASSERT_TRUE(sink->Commit(Cp(&none, 6, /*final=*/true)).ok());
    ASSERT_EQ(Files().size(), 2u);
    EXPECT_TRUE(Files()[1].starts_with("part-views-0000000002-")) << Files()[1];
  }
  EXPECT_EQ(TotalRows(), 6);
}

TEST_F(ParquetSinkTest, RollIntervalOnAFakeClock) {
  auto made = Make({{"roll_interval", "1m"}});
  ASSERT_TRUE(made.ok());
  auto* sink = static_cast<ParquetSink*>(made->get());
  int64_t now = 1'000'000'000;
  sink->SetClockForTesting([&] { return now; });
  ASSERT_TRUE(sink->Open(Context()).ok());
  std::vector<Row> rows = {MakeRow(1, "a", 1, true, 0)};
  ASSERT_TRUE(sink->Commit(Cp(&rows, 1)).ok());
  now += 59'000'000;
  ASSERT_TRUE(sink->Commit(Cp(&rows, 2)).ok());
  EXPECT_TRUE(Files().empty());
  now += 1'000'000;
  std::vector<Row> none;
  ASSERT_TRUE(sink->Commit(Cp(&none, 2)).ok());
  EXPECT_EQ(Files().size(), 1u);
  EXPECT_EQ(TotalRows(), 2);
  // After an idle stretch the interval counts from when rows start waiting again.
  now += 600'000'000;
  ASSERT_TRUE(sink->Commit(Cp(&none, 2)).ok());
  ASSERT_TRUE(sink->Commit(Cp(&rows, 3)).ok());
  EXPECT_EQ(Files().size(), 1u);
}

TEST_F(ParquetSinkTest, CorruptStateFileIsAnErrorNotAFreshStart) {
  {
    auto sink = Open({{"roll_rows", "100"}});
    ASSERT_TRUE(sink);
    std::vector<Row> rows = {MakeRow(1, "a", 1, true, 0)};
    ASSERT_TRUE(sink->Commit(Cp(&rows, 1)).ok());
  }
  const fs::path state = dir_ / "_sluice" / "views.state";
  std::string bytes;
  {
    std::ifstream in(state, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  auto expect_error = [&](const std::string& content, const std::string& words) {
    std::ofstream(state, std::ios::binary | std::ios::trunc) << content;
    auto sink = Make();
    ASSERT_TRUE(sink.ok());
    Status s = (*sink)->Open(Context());
    ASSERT_FALSE(s.ok()) << words;
    EXPECT_NE(s.message().find(state.string()), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x5a;
  expect_error(flipped, "checksum");
  expect_error(bytes.substr(0, bytes.size() - 3), "checksum");
  expect_error("PAR1 not a state file at all", "bad magic");
  std::string version = bytes;
  version[8] = 9;
  expect_error(version, "version 9");
  // The intact file still opens.
  std::ofstream(state, std::ios::binary | std::ios::trunc) << bytes;
  auto sink = Open();
  ASSERT_TRUE(sink);
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 1u);
}

TEST_F(ParquetSinkTest, BufferedRowsOfAnotherLayoutAreRefused) {
  {
    auto sink = Open({{"roll_rows", "100"}});
    ASSERT_TRUE(sink);
    std::vector<Row> rows = {MakeRow(1, "a", 1, true, 0)};
    ASSERT_TRUE(sink->Commit(Cp(&rows, 1)).ok());
  }
  auto sink = Make();
  ASSERT_TRUE(sink.ok());
  SinkContext ctx = Context();
  ctx.output = Schema({{"network_id", Type::kInt64, ""}});
  Status s = (*sink)->Open(ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("buffered rows"), std::string::npos) << s.message();
}

TEST_F(ParquetSinkTest, UnwritableDirectoryIsAClearError) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "file") << "x";
  auto sink = ParquetSink::Make(Config("parquet:" + (dir_ / "file" / "out").string()));
  ASSERT_TRUE(sink.ok());
  Status s = (*sink)->Open(Context());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot create directory"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find((dir_ / "file").string()), std::string::npos) << s.message();

  if (::geteuid() == 0) return;  // root writes anywhere
  const fs::path ro = dir_ / "readonly";
  fs::create_directories(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  auto sink2 = ParquetSink::Make(Config("parquet:" + ro.string()));
  ASSERT_TRUE(sink2.ok());
  Status s2 = (*sink2)->Open(Context());
  fs::permissions(ro, fs::perms::owner_all);
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find(ro.string()), std::string::npos) << s2.message();
}

TEST_F(ParquetSinkTest, ConfigErrorsNameFileAndLine) {
  auto unknown = Make({{"roll_rows", "10"}, {"partition", "x"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("test.toml:3:1: unknown key 'partition' in [sink]"),
            std::string::npos)
      << unknown.status().message();

  auto bad_rows = Make({{"roll_rows", "0"}});
  ASSERT_FALSE(bad_rows.ok());
  EXPECT_NE(bad_rows.status().message().find("test.toml:2:1"), std::string::npos);
  auto bad_interval = Make({{"roll_interval", "soon"}});
  ASSERT_FALSE(bad_interval.ok());
  EXPECT_NE(bad_interval.status().message().find("test.toml:2:1"), std::string::npos);

  auto sink = Make({{"compression", "zstd"}, {"partition_by", "network_id, nope"}});
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  Status s = (*sink)->Open(Context());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("test.toml:3:1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'nope'"), std::string::npos) << s.message();

  auto all = Make({{"partition_by", "network_id,minute,avg_duration,valid,window_start"}});
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE((*all)->Open(Context()).ok());
  auto twice = Make({{"partition_by", "network_id, network_id"}});
  ASSERT_FALSE(twice.ok());

  auto no_dir = ParquetSink::Make(Config("parquet:"));
  ASSERT_FALSE(no_dir.ok());
  EXPECT_NE(no_dir.status().message().find("test.toml:1:1"), std::string::npos);
}

TEST_F(ParquetSinkTest, UpdateModeIsRefused) {
  const std::string want =
      "the parquet sink needs [aggregate] mode = \"append\" (or a pipeline without [aggregate])";
  AggregateSpec update;
  update.append_mode = false;
  auto sink = Make();
  ASSERT_TRUE(sink.ok());
  SinkContext ctx = Context();
  ctx.aggregate = &update;
  // Check() (what `sluice validate` runs, no directory touched) and Open() refuse it alike.
  Status checked = (*sink)->Check(ctx);
  ASSERT_FALSE(checked.ok());
  EXPECT_NE(checked.message().find(want), std::string::npos) << checked.message();
  Status s = (*sink)->Open(ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), checked.message());

  AggregateSpec append;
  append.append_mode = true;
  ctx.aggregate = &append;
  ASSERT_TRUE((*sink)->Open(ctx).ok());
  std::vector<DeltaRow> deltas(1);
  std::vector<Row> none;
  Checkpoint cp = Cp(&none, 1);
  cp.deltas = &deltas;
  Status c = (*sink)->Commit(cp);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.message(), want);
  // An empty delta list is what a select pipeline's checkpoint carries.
  deltas.clear();
  EXPECT_TRUE((*sink)->Commit(cp).ok());
}

TEST_F(ParquetSinkTest, WrongValueTypeIsRefusedAndNotBuffered) {
  auto sink = Open({{"roll_rows", "100"}});
  ASSERT_TRUE(sink);
  std::vector<Row> rows = {
      MakeRow(1, "a", 1, true, 0),
      {Value::String("x"), Value::Null(), Value::Null(), Value::Null(), Value::Null()}};
  Status s = sink->Commit(Cp(&rows, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("network_id"), std::string::npos) << s.message();
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 0u);
}

TEST_F(ParquetSinkTest, OneProcessPerPipelineAndDirectory) {
  auto first = Open();
  ASSERT_TRUE(first);
  auto second = Make();
  ASSERT_TRUE(second.ok());
  Status s = (*second)->Open(Context());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("in use by another process"), std::string::npos) << s.message();
  first->Close();
  EXPECT_TRUE((*second)->Open(Context()).ok());
}

TEST_F(ParquetSinkTest, RegisteredAsParquetScheme) {
  RegisterBuiltins();
  auto sink = ConnectorRegistry::Instance().MakeSink(Config("parquet:" + dir_.string()));
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  EXPECT_TRUE((*sink)->SupportsState());
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST_F(ParquetSinkTest, DeadLettersAreCommittedFilesUnderTheSluiceFolder) {
  const fs::path dl_dir = dir_ / "_sluice" / "dead_letters";
  const std::vector<DeadLetter> letters = {{"decode: x", "{\"a\": 1}", "views", 0, 3, 0, 0},
                                           {"late", "1,2", "views", 0, 5, 0, 0}};
  const std::vector<DeadLetter> later = {{"late", "3,4", "views", 0, 9, 0, 0}};
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    EXPECT_TRUE(sink->StoresDeadLetters());
    std::vector<Row> rows = {MakeRow(1, "m", 1, true, 0)};
    Checkpoint cp = Cp(&rows, 6);
    cp.dead_letters = &letters;
    ASSERT_TRUE(sink->Commit(cp).ok());
  }
  const fs::path first = dl_dir / "dead-letters-views-0000000001.ndjson";
  auto text = ReadFile(first.string());
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text,
            "{\"pipeline\":\"views\",\"source\":\"views\",\"partition\":0,\"offset\":3,\"generation\":0,"
            "\"reason\":\"decode: x\",\"time\":\"1970-01-01T00:00:00.000000Z\",\"payload\":{\"a\":1},"
            "\"payload_bytes\":8,\"truncated\":false,\"payload_sha256\":"
            "\"f9d86028c6e0d64e225186f96acb69338b2c59764df79162107f5c4bb34d1310\"}\n"
            "{\"pipeline\":\"views\",\"source\":\"views\",\"partition\":0,\"offset\":5,\"generation\":0,"
            "\"reason\":\"late\",\"time\":\"1970-01-01T00:00:00.000000Z\",\"payload\":\"1,2\","
            "\"payload_bytes\":3,\"truncated\":false,\"payload_sha256\":"
            "\"17f8af97ad4a7f7639a4c9171d5185cbafb85462877a4746c21bdb0a4f940ca0\"}\n");
  // A crash after the next checkpoint wrote its dead letters but before its state file: the
  // reopened sink removes them (and a temporary file), keeps the committed one and another
  // pipeline's.
  const fs::path orphan = dl_dir / "dead-letters-views-0000000002.ndjson";
  const fs::path temp = dl_dir / ".dead-letters-views-0000000002.ndjson.tmp";
  const fs::path foreign = dl_dir / "dead-letters-clicks-0000000007.ndjson";
  for (const auto& p : {orphan, temp, foreign}) std::ofstream(p) << "x\n";
  {
    auto sink = Open();
    ASSERT_TRUE(sink);
    EXPECT_FALSE(fs::exists(orphan));
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_TRUE(fs::exists(foreign));
    EXPECT_EQ(*ReadFile(first.string()), *text);
    // The replay writes number 2 again, and a checkpoint without dead letters writes none.
    std::vector<Row> none;
    Checkpoint cp = Cp(&none, 10);
    cp.dead_letters = &later;
    ASSERT_TRUE(sink->Commit(cp).ok());
    ASSERT_TRUE(sink->Commit(Cp(&none, 11)).ok());
  }
  EXPECT_TRUE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(dl_dir / "dead-letters-views-0000000003.ndjson"));
  // The dead-letter count survives a restart: the next file is number 3.
  auto sink = Open();
  ASSERT_TRUE(sink);
  std::vector<Row> none;
  Checkpoint cp = Cp(&none, 12);
  cp.dead_letters = &later;
  ASSERT_TRUE(sink->Commit(cp).ok());
  EXPECT_TRUE(fs::exists(dl_dir / "dead-letters-views-0000000003.ndjson"));
  // The data files are not mixed with them.
  for (const auto& f : Files()) EXPECT_EQ(f.find("dead-letters"), std::string::npos) << f;
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST_F(ParquetSinkTest, ARowWhosePartitionFolderCannotExistIsDeadLettered) {
  // issue 14: a partition_by value longer than a folder name can be (255 bytes) failed every
  // attempt of the checkpoint (ENAMETOOLONG), for good. Now that row alone is dead-lettered.
  auto sink = Open({{"partition_by", "minute"}});
  ASSERT_TRUE(sink);
  const std::string long_minute(300, 'm');
  std::vector<Row> rows = {MakeRow(1, "a", 1, true, 0), MakeRow(2, long_minute, 2, true, 0),
                           MakeRow(3, "b", 3, false, 0)};
  Checkpoint cp = Cp(&rows, 3, true);
  cp.id = 4;
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Files().size(), 2u);
  EXPECT_EQ(TotalRows(), 2);
  auto text = ReadFile((dir_ / "_sluice" / "dead_letters" / "dead-letters-views-0000000001.ndjson")
                           .string());
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  // One line: "minute=" and 300 bytes make a 307-byte folder name.
  EXPECT_EQ(std::count(text->begin(), text->end(), '\n'), 1);
  EXPECT_NE(text->find("\"source\":\"_sink\",\"partition\":0,"), std::string::npos) << *text;
  EXPECT_NE(text->find("\"reason\":\"sink_rejected: row refused by the sink: parquet sink: "
                       "partition_by column minute makes a folder name of 307 bytes, over the "
                       "255 a file system allows\""),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("\"payload\":{\"network_id\":2,\"minute\":\"" + long_minute + "\","),
            std::string::npos)
      << *text;
}

// --- Bounded checkpoints (max_files_per_checkpoint, one sync per checkpoint) ---

/// Returns, per sequence number, the partition directories of the part files of `files`.
std::map<int64_t, std::vector<std::string>> DirsBySeq(const std::vector<std::string>& files) {
  std::map<int64_t, std::vector<std::string>> out;
  for (const auto& f : files) {
    const fs::path p(f);
    auto seq = ParsePartFileName("views", p.filename().string());
    if (seq) out[*seq].push_back(p.parent_path().string());
  }
  return out;
}

/// Rows in `dirs` directories network_id=1..dirs, `per_dir` rows each, interleaved so that every
/// directory's rows are spread over the whole checkpoint; avg_duration numbers the rows.
std::vector<Row> Spread(int dirs, int per_dir, int first = 0) {
  std::vector<Row> rows;
  for (int k = 0; k < per_dir; ++k) {
    for (int d = 1; d <= dirs; ++d) {
      rows.push_back({Value::Int(d), Value::String("m"), Value::Double(first + k * dirs + d),
                      Value::Bool(true), Value::TimeMicros(0)});
    }
  }
  return rows;
}

TEST_F(ParquetSinkTest, AtMostOneFilePerPartitionDirectoryPerCheckpoint) {
  auto sink = Open({{"partition_by", "network_id"}, {"roll_rows", "1"}});
  ASSERT_TRUE(sink);
  std::vector<Row> rows = Spread(4, 25);  // 100 rows, 4 directories
  ASSERT_TRUE(sink->Commit(Cp(&rows, 100)).ok());
  std::vector<Row> more = Spread(4, 5, 100);
  ASSERT_TRUE(sink->Commit(Cp(&more, 120, true)).ok());
  const auto by_seq = DirsBySeq(Files());
  ASSERT_EQ(by_seq.size(), 2u);
  for (const auto& [seq, dirs] : by_seq) {
    EXPECT_EQ(dirs.size(), 4u) << "sequence " << seq;
    EXPECT_EQ(std::set<std::string>(dirs.begin(), dirs.end()).size(), dirs.size())
        << "two files in one directory in sequence " << seq;
  }
  EXPECT_EQ(TotalRows(), 120);
}

TEST_F(ParquetSinkTest, TheFileCapCarriesTheRestToTheNextCheckpointInTheState) {
  const std::vector<std::pair<std::string, std::string>> options = {
      {"partition_by", "network_id"}, {"roll_rows", "3"}, {"roll_interval", "1h"},
      {"max_files_per_checkpoint", "2"}};
  std::vector<Row> rows = Spread(5, 2);  // directories 1..5, first rows in that order
  {
    auto sink = Open(options);
    ASSERT_TRUE(sink);
    // roll_rows is reached: the roll writes the two directories of the oldest rows.
    ASSERT_TRUE(sink->Commit(Cp(&rows, 10)).ok());
    auto by_seq = DirsBySeq(Files());
    ASSERT_EQ(by_seq.size(), 1u);
    EXPECT_EQ(by_seq[1], (std::vector<std::string>{"network_id=1", "network_id=2"}));
    EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 6u);
    EXPECT_EQ(sink->LoadPositions()->at(1).offset, 10) << "the carried rows are in the state";
  }  // a crash: the six carried rows live in the state file only
  auto sink = Open(options);
  ASSERT_TRUE(sink);
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 6u);
  // Fewer rows than roll_rows and no interval passed: the carried rows still roll at once.
  std::vector<Row> none;
  ASSERT_TRUE(sink->Commit(Cp(&none, 10)).ok());
  auto by_seq = DirsBySeq(Files());
  ASSERT_EQ(by_seq.size(), 2u);
  EXPECT_EQ(by_seq[2], (std::vector<std::string>{"network_id=3", "network_id=4"}));
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 2u);
  // New rows of an already written directory wait behind the carried one (oldest first).
  std::vector<Row> later = {MakeRow(1, "m", 100, true, 0)};
  ASSERT_TRUE(sink->Commit(Cp(&later, 11)).ok());
  by_seq = DirsBySeq(Files());
  ASSERT_EQ(by_seq.size(), 3u);
  EXPECT_EQ(by_seq[3], (std::vector<std::string>{"network_id=1", "network_id=5"}));
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 0u);
  // Nothing carried any more: back to roll_rows and roll_interval.
  std::vector<Row> one = {MakeRow(2, "m", 101, true, 0)};
  ASSERT_TRUE(sink->Commit(Cp(&one, 12)).ok());
  EXPECT_EQ(DirsBySeq(Files()).size(), 3u);
  // Every row exactly once.
  auto read = static_cast<ParquetSink*>(sink.get())->ReadOutput();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  std::multiset<double> got, want;
  for (const auto& r : *read) got.insert(r[2].AsDouble());
  for (const auto& r : rows) want.insert(r[2].AsDouble());
  want.insert(100);
  want.insert(101);
  EXPECT_EQ(got, want);
}

TEST_F(ParquetSinkTest, AFinalCheckpointWritesEverythingInBoundedCommits) {
  auto sink = Open({{"partition_by", "network_id"}, {"max_files_per_checkpoint", "2"}});
  ASSERT_TRUE(sink);
  std::vector<Row> rows = Spread(5, 3);
  ASSERT_TRUE(sink->Commit(Cp(&rows, 15, true)).ok());
  const auto by_seq = DirsBySeq(Files());
  ASSERT_EQ(by_seq.size(), 3u) << "ceil(5 / 2) commits";
  for (const auto& [seq, dirs] : by_seq) EXPECT_LE(dirs.size(), 2u) << "sequence " << seq;
  EXPECT_EQ(Files().size(), 5u);
  EXPECT_EQ(TotalRows(), 15);
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 0u);
}

TEST_F(ParquetSinkTest, AFinalDrainThatFailsGoesOnFromItsLastCommit) {
  const std::vector<std::pair<std::string, std::string>> options = {
      {"partition_by", "network_id"}, {"max_files_per_checkpoint", "2"}};
  std::vector<Row> rows = Spread(5, 2);
  // Directory network_id=3 cannot be created (a file has its name): the first commit of the
  // final checkpoint (directories 1, 2) succeeds, the second fails.
  fs::create_directories(dir_);
  std::ofstream(dir_ / "network_id=3") << "x";
  {
    auto sink = Open(options);
    ASSERT_TRUE(sink);
    Checkpoint cp = Cp(&rows, 10, true);
    cp.id = 7;
    ASSERT_FALSE(sink->Commit(cp).ok());
    EXPECT_EQ(Files().size(), 3u);  // two part files and the blocker
    EXPECT_EQ(sink->LoadPositions()->at(1).offset, 10) << "the checkpoint itself is committed";
    EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 6u);
    // The runner retries the same checkpoint: it drains, never taking its rows twice.
    fs::remove(dir_ / "network_id=3");
    ASSERT_TRUE(sink->Commit(cp).ok());
    EXPECT_EQ(TotalRows(), 10);
  }
  // The same, killed instead of retried: the next run's final checkpoint writes the rest.
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  std::ofstream(dir_ / "network_id=3") << "x";
  {
    auto sink = Open(options);
    ASSERT_TRUE(sink);
    ASSERT_FALSE(sink->Commit(Cp(&rows, 10, true)).ok());
  }
  fs::remove(dir_ / "network_id=3");
  auto sink = Open(options);
  ASSERT_TRUE(sink);
  EXPECT_EQ(static_cast<ParquetSink*>(sink.get())->buffered_rows(), 6u);
  std::vector<Row> none;
  ASSERT_TRUE(sink->Commit(Cp(&none, 10, true)).ok());
  EXPECT_EQ(Files().size(), 5u);
  EXPECT_EQ(TotalRows(), 10);
}

TEST_F(ParquetSinkTest, OneSyncPerCheckpointNotOnePerFile) {
  auto sink = Open({{"partition_by", "network_id, minute"}, {"roll_rows", "1"}});
  ASSERT_TRUE(sink);
  std::vector<Row> rows;
  for (int n = 1; n <= 10; ++n) {
    for (int m = 0; m < 5; ++m) rows.push_back(MakeRow(n, "m" + std::to_string(m), n, true, 0));
  }
  const int64_t before = ParquetSink::SyncCountForTesting();
  ASSERT_TRUE(sink->Commit(Cp(&rows, 50)).ok());
  EXPECT_EQ(Files().size(), 50u);
  // One syncfs for the 50 files and 60 new directories, then the state file's fsync and that
  // of its directory.
  EXPECT_EQ(ParquetSink::SyncCountForTesting() - before, 3);
}

TEST_F(ParquetSinkTest, AReplayUnderTheCapRewritesTheSameNames) {
  const std::vector<std::pair<std::string, std::string>> options = {
      {"partition_by", "network_id"}, {"roll_rows", "1"}, {"max_files_per_checkpoint", "2"}};
  std::vector<Row> rows = Spread(5, 2);
  const fs::path blocker = dir_ / "_sluice" / "views.state.tmp";
  std::vector<std::string> crashed;
  {
    auto sink = Open(options);
    ASSERT_TRUE(sink);
    // The files are renamed, the state file cannot be written: a crash before the commit.
    fs::create_directories(blocker / "x");
    ASSERT_FALSE(sink->Commit(Cp(&rows, 10)).ok());
    crashed = Files();
    ASSERT_EQ(crashed.size(), 2u);
  }
  fs::remove_all(blocker);
  auto sink = Open(options);
  ASSERT_TRUE(sink);
  EXPECT_TRUE(Files().empty()) << "the uncommitted files are removed";
  ASSERT_TRUE(sink->Commit(Cp(&rows, 10)).ok());
  EXPECT_EQ(Files(), crashed);
  std::vector<Row> none;
  ASSERT_TRUE(sink->Commit(Cp(&none, 10, true)).ok());
  EXPECT_EQ(Files().size(), 5u);
  EXPECT_EQ(TotalRows(), 10);
}

TEST_F(ParquetSinkTest, MaxFilesPerCheckpointMustBePositive) {
  auto made = Make({{"max_files_per_checkpoint", "0"}});
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("test.toml:2:1"), std::string::npos)
      << made.status().message();
}

TEST_F(ParquetSinkTest, AStateFileOfFormatVersion2ReadsAsCarryingNothing) {
  // Written by the build before max_files_per_checkpoint: version 2, no carried flag.
  const std::vector<StoredPosition> positions = {{"views", 0, 7}};
  const std::vector<Field> columns = Context().output.fields();
  BinaryWriter rows;
  rows.PutRow(MakeRow(1, "a", 1, true, 0));
  std::string v3 = EncodeParquetSinkState("views", 4, 0, positions, "engine", columns, 1,
                                          rows.data(), /*carried=*/true);
  // magic (8), version (8), pipeline (8 + 5), seq (8), dead-letter count (8), carried (8).
  const size_t carried_at = 8 + 8 + 8 + 5 + 8 + 8;
  std::string v2 = v3.substr(0, carried_at) + v3.substr(carried_at + 8, v3.size() - carried_at - 16);
  v2[8] = 2;
  uint64_t h = 0xcbf29ce484222325ull;  // the state file's checksum: FNV-1a of what precedes it
  for (unsigned char c : v2) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  BinaryWriter sum;
  sum.PutI64(static_cast<int64_t>(h));
  v2 += sum.data();
  auto decoded = DecodeParquetSinkState(v2, "views");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_FALSE(decoded->carried);
  EXPECT_EQ(decoded->seq, 4);
  EXPECT_EQ(decoded->positions.size(), 1u);
  EXPECT_EQ(decoded->rows.size(), 1u);
  auto v3_decoded = DecodeParquetSinkState(v3, "views");
  ASSERT_TRUE(v3_decoded.ok()) << v3_decoded.status().ToString();
  EXPECT_TRUE(v3_decoded->carried);
}

}  // namespace
}  // namespace sluice
