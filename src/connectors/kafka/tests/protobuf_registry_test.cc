#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/schema_registry.h"
#include "core/schema.h"
#include "core/value.h"
#include "operators/decoder.h"
#include "operators/protobuf_decoder.h"

namespace sluice {
namespace {

// A registry on a free port answering as Confluent's does (JSON written here by hand): id 1 is a
// Protobuf schema importing a.proto (subject "dep/a", version 2), which imports b.proto (subject
// "b", version 1); id 2 is an Avro schema; id 3 references a subject that does not exist.
class FakeRegistry {
 public:
  FakeRegistry() {
    server_.Get(R"(/schemas/ids/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++by_id_;
      const std::string id = req.matches[1];
      if (id == "1") {
        res.set_content(R"({"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";\nimport \"a.proto\";\nmessage E { A a = 1; int64 n = 2; }\n","references":[{"name":"a.proto","subject":"dep/a","version":2}]})",
                        "application/json");
      } else if (id == "2") {
        res.set_content(R"({"schema":"\"long\""})", "application/json");
      } else if (id == "3") {
        res.set_content(R"({"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";\nimport \"x.proto\";\nmessage E { X x = 1; }\n","references":[{"name":"x.proto","subject":"nobody","version":1}]})",
                        "application/json");
      } else {
        res.status = 404;
        res.set_content(R"({"error_code":40403,"message":"Schema )" + id + R"( not found"})", "application/json");
      }
    });
    server_.Get(R"(/subjects/(.+)/versions/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      paths_.push_back(req.target);  // as sent (the path is matched decoded)
      const std::string subject = req.matches[1];
      const std::string version = req.matches[2];
      if (subject == "dep/a" && version == "2") {
        res.set_content(R"({"subject":"dep/a","version":2,"id":7,"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";\nimport \"b.proto\";\nmessage A { B b = 1; }\n","references":[{"name":"b.proto","subject":"b","version":1}]})",
                        "application/json");
      } else if (subject == "b" && version == "1") {
        res.set_content(R"({"subject":"b","version":1,"id":8,"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";\nmessage B { string city = 1; }\n"})",
                        "application/json");
      } else {
        res.status = 404;
        res.set_content(R"({"error_code":40401,"message":"Subject 'nobody' not found."})", "application/json");
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    listener_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeRegistry() {
    server_.stop();
    listener_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int by_id() const { return by_id_.load(); }
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  httplib::Server server_;
  std::thread listener_;
  int port_ = 0;
  std::atomic<int> by_id_{0};
  std::vector<std::string> paths_;
};

TEST(ProtobufRegistryTest, FetchesTheSchemaAndItsReferencesOncePerId) {
  FakeRegistry reg;
  SchemaRegistrySettings settings;
  settings.url = reg.url();
  auto cache = MakeRegistryProtobufSchemaCache(settings);
  DecoderOptions o;
  o.format = DecoderOptions::Format::kProtobuf;
  o.avro_schemas = cache;
  Schema schema({{"city", Type::kString, "a.b.city"}, {"n", Type::kInt64, ""}});
  auto d = MakeDecoder(o, schema);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::vector<Value> row(2);
  // id 1, message indexes [0]; E { a: { b: { city: "Natal" } }, n: 5 }, encoded by hand.
  const std::string b = std::string("\x0a\x05", 2) + "Natal";
  const std::string a = "\x0a" + std::string(1, static_cast<char>(b.size())) + b;
  const std::string body = "\x0a" + std::string(1, static_cast<char>(a.size())) + a + "\x10\x05";
  const std::string msg = std::string("\0\0\0\0\1\0", 6) + body;
  for (int i = 0; i < 3; ++i) {
    Status s = (*d)->Decode(msg, row);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(row[0], Value::String("Natal"));
    EXPECT_EQ(row[1], Value::Int(5));
  }
  EXPECT_EQ(reg.by_id(), 1);
  // The reference's subject is one path segment ('/' escaped), fetched once each.
  EXPECT_EQ(reg.paths(), (std::vector<std::string>{"/subjects/dep%2Fa/versions/2", "/subjects/b/versions/1"}));

  // An Avro schema and a missing reference are unknown ids (dead letters), with the reason.
  Status s = (*d)->Decode(std::string("\0\0\0\0\2\0", 6), row);
  EXPECT_EQ(s.message(), "unknown schema id 2 (registry: the schema is AVRO, not Protobuf)");
  s = (*d)->Decode(std::string("\0\0\0\0\3\0", 6), row);
  EXPECT_EQ(s.message(), "unknown schema id 3 (registry: reference x.proto (subject nobody version 1): registry: "
                         "Subject 'nobody' not found.)");
  s = (*d)->Decode(std::string("\0\0\0\0\4\0", 6), row);
  EXPECT_EQ(s.message(), "unknown schema id 4 (registry: Schema 4 not found)");
}

}  // namespace
}  // namespace sluice
