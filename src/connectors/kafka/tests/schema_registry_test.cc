#include "connectors/kafka/schema_registry.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "connectors/kafka/avro_encoder.h"
#include "core/schema.h"

namespace sluice {
namespace {

Options Make(std::initializer_list<std::pair<std::string, std::string>> kv) {
  Options o;
  for (const auto& [k, v] : kv) o.Set(k, Option{v, {}});
  return o;
}

TEST(SchemaRegistrySettingsTest, ReadsUrlSubjectAndCredentialsFromEnvOrFile) {
  auto s = ReadSchemaRegistrySettings(Make({{"schema_registry", "http://127.0.0.1:8081/"}}), "clicks");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->url, "http://127.0.0.1:8081");
  EXPECT_EQ(s->subject, "clicks-value");
  EXPECT_TRUE(s->user.empty());

  setenv("SLUICE_TEST_REGISTRY_AUTH", "ana:s3:cret", 1);
  s = ReadSchemaRegistrySettings(Make({{"schema_registry", "https://reg.example/api"},
                                       {"schema_registry_auth_env", "SLUICE_TEST_REGISTRY_AUTH"},
                                       {"schema_registry_subject", "shared"}}),
                                 "clicks");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->user, "ana");
  EXPECT_EQ(s->password, "s3:cret");
  EXPECT_EQ(s->subject, "shared");

  const std::string file = ::testing::TempDir() + "registry_auth";
  std::ofstream(file) << "bob:pw\r\n";
  s = ReadSchemaRegistrySettings(Make({{"schema_registry", "http://h:1"},
                                       {"schema_registry_auth_file", file}}),
                                 "t");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->user, "bob");
  EXPECT_EQ(s->password, "pw");
  std::remove(file.c_str());
}

TEST(SchemaRegistrySettingsTest, RefusesCredentialsInTheUrlAndAMissingUrl) {
  auto s = ReadSchemaRegistrySettings(Make({{"schema_registry", "http://u:p@h:8081"}}), "t");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("no credentials in the URL"), std::string::npos);
  s = ReadSchemaRegistrySettings(Make({}), "t");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("needs schema_registry"), std::string::npos);
  unsetenv("SLUICE_TEST_REGISTRY_UNSET");
  s = ReadSchemaRegistrySettings(Make({{"schema_registry", "http://h:1"},
                                       {"schema_registry_auth_env", "SLUICE_TEST_REGISTRY_UNSET"}}),
                                 "t");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("$SLUICE_TEST_REGISTRY_UNSET is not set"), std::string::npos);
}

TEST(AvroRowEncoderTest, DerivesANullableFieldPerColumn) {
  Schema columns({{"id", Type::kInt64, ""}, {"name", Type::kString, ""}, {"at", Type::kTimestamp, ""},
                  {"ok", Type::kBool, ""}, {"x", Type::kDouble, ""}});
  EXPECT_EQ(AvroRowEncoder::SchemaJson(columns, "sluice.Row"),
            R"({"type":"record","name":"Row","namespace":"sluice","fields":[)"
            R"({"name":"id","type":["null","long"],"default":null},)"
            R"({"name":"name","type":["null","string"],"default":null},)"
            R"({"name":"at","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},)"
            R"({"name":"ok","type":["null","boolean"],"default":null},)"
            R"({"name":"x","type":["null","double"],"default":null}]})");
}

}  // namespace
}  // namespace sluice
