#include "connectors/file/file_dimension.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sluice {
namespace {

namespace fs = std::filesystem;

Result<std::shared_ptr<Dimension>> LoadDimension(const DimensionConfig& config) {
  RegisterBuiltins();
  return ConnectorRegistry::Instance().LoadDimension(config);
}

std::unique_ptr<DimensionPoller> MakeCsvDimensionPoller(std::shared_ptr<Dimension> dim) {
  return std::move(CsvDimensionFactory().poller(std::move(dim))).value();
}

class CsvDimensionRefreshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sluice_dimrefresh_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "job.csv").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteCsv(const std::string& text) {
    // A new file renamed over the old one, as editors and exports do; the size or mtime changes.
    const std::string tmp = path_ + ".tmp";
    std::ofstream(tmp, std::ios::binary) << text;
    fs::rename(tmp, path_);
  }

  DimensionConfig Config() const {
    DimensionConfig c;
    c.name = "job";
    c.uri = path_;
    c.key = "id";
    c.fields = {{"id", Type::kInt64, ""}, {"company_id", Type::kInt64, ""}};
    return c;
  }

  fs::path dir_;
  std::string path_;
};

Value Company(const Dimension& dim, int64_t id) {
  auto snapshot = dim.snapshot();
  const auto* row = snapshot->Find(Value::Int(id));
  return row ? (*row)[1] : Value::String("missing");
}

TEST_F(CsvDimensionRefreshTest, ReloadsWhenTheFileChanges) {
  WriteCsv("id;company_id\n1;10\n2;20\n");
  auto dim = LoadDimension(Config());
  ASSERT_TRUE(dim.ok()) << dim.status().ToString();
  EXPECT_EQ((*dim)->refresh().interval_micros, 5'000'000);  // the default
  auto before = (*dim)->snapshot();
  auto poller = MakeCsvDimensionPoller(*dim);
  ASSERT_TRUE(poller->Poll().ok());
  EXPECT_EQ((*dim)->stats().versions, 0);

  WriteCsv("id;company_id\n1;11\n3;30\n");  // 1 changed, 2 removed, 3 added
  ASSERT_TRUE(poller->Poll().ok());
  EXPECT_EQ(Company(**dim, 1), Value::Int(11));
  EXPECT_EQ(Company(**dim, 2), Value::String("missing"));
  EXPECT_EQ(Company(**dim, 3), Value::Int(30));
  EXPECT_EQ((*dim)->stats().versions, 1);
  EXPECT_EQ((*dim)->stats().changes, 3);
  EXPECT_GT((*dim)->stats().last_update_micros, 0);
  // A snapshot taken before the reload is unchanged: a batch in progress keeps its version.
  EXPECT_EQ((*before->Find(Value::Int(1)))[1], Value::Int(10));
}

TEST_F(CsvDimensionRefreshTest, AMissingFileKeepsTheCurrentSnapshot) {
  WriteCsv("id,company_id\n1,10\n");
  auto dim = LoadDimension(Config());
  ASSERT_TRUE(dim.ok());
  auto poller = MakeCsvDimensionPoller(*dim);
  fs::remove(path_);
  Status s = poller->Poll();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.message();
  EXPECT_EQ(Company(**dim, 1), Value::Int(10));
  WriteCsv("id,company_id\n1,12\n");
  ASSERT_TRUE(poller->Poll().ok());
  EXPECT_EQ(Company(**dim, 1), Value::Int(12));
}

TEST_F(CsvDimensionRefreshTest, RefreshCanBeTurnedOffAndIsValidated) {
  WriteCsv("id,company_id\n1,10\n");
  DimensionConfig c = Config();
  c.options.Set("refresh", {"0", {}});
  auto dim = LoadDimension(c);
  ASSERT_TRUE(dim.ok());
  EXPECT_EQ((*dim)->refresh().interval_micros, 0);
  c.options.Set("refresh", {"soon", {}});
  auto bad = LoadDimension(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("duration"), std::string::npos) << bad.status().message();
  c.options.Set("refresh", {"1s", {}});
  c.options.Set("updated_column", {"updated_at", {}});  // MySQL only
  auto unknown = LoadDimension(c);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("updated_column"), std::string::npos) << unknown.status().message();
}

}  // namespace
}  // namespace sluice
