#include "connectors/kafka/schema_registry.h"

#include <httplib.h>
#include <simdjson.h>

#include <cstdlib>
#include <fstream>

namespace sluice {
namespace {

Status SplitCredentials(const std::string& text, const std::string& where, SchemaRegistrySettings* s) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return Status::InvalidArgument(where + ": expected USER:PASSWORD");
  s->user = text.substr(0, colon);
  s->password = text.substr(colon + 1);
  return Status::OK();
}

/// The registry's answer to a GET: the body of a 200, NotFound for a 404 (with the registry's
/// message), Unavailable for anything a retry may fix.
Result<std::string> Get(const SchemaRegistrySettings& s, const std::string& base, const std::string& path) {
  httplib::Client client(s.url.substr(0, s.url.size() - base.size()));
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  if (!s.user.empty()) client.set_basic_auth(s.user, s.password);
  auto res = client.Get(base + path, {{"Accept", "application/vnd.schemaregistry.v1+json"}});
  if (!res) return Status::Unavailable("schema registry " + s.url + ": " + httplib::to_string(res.error()));
  if (res->status == 200) return res->body;
  std::string message;
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  std::string_view m;
  if (!parser.parse(res->body).get(e) && e["message"].get(m) == simdjson::SUCCESS) message = std::string(m);
  if (message.empty()) message = "HTTP " + std::to_string(res->status);
  if (res->status == 404) return Status::NotFound("registry: " + message);
  return Status::Unavailable("schema registry " + s.url + path + ": HTTP " + std::to_string(res->status) +
                             " " + message);
}

/// The "schema" member of a registry answer.
Result<std::string> SchemaOf(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  std::string_view schema;
  if (parser.parse(body).get(e) || e["schema"].get(schema) != simdjson::SUCCESS) {
    return Status::Unavailable("schema registry: an answer without \"schema\"");
  }
  std::string_view type;
  if (e["schemaType"].get(type) == simdjson::SUCCESS && type != "AVRO") {
    return Status::NotFound("registry: the schema is " + std::string(type) + ", not Avro");
  }
  return std::string(schema);
}

}  // namespace

std::vector<OptionSpec> SchemaRegistryOptions() {
  return {
      {.name = "schema_registry", .help = "`format = \"avro\"`: the schema registry, `http://HOST:PORT` (no credentials)."},
      {.name = "schema_registry_auth_env", .help = "Environment variable holding `USER:PASSWORD` for the registry."},
      {.name = "schema_registry_auth_file", .help = "File whose first line is `USER:PASSWORD` for the registry."},
      {.name = "schema_registry_subject", .default_note = "`TOPIC-value`", .help = "The subject of the value schema."},
  };
}

Result<SchemaRegistrySettings> ReadSchemaRegistrySettings(const Options& options, const std::string& topic) {
  static const OptionTable kTable{.options = SchemaRegistryOptions()};
  OptionReader o(options, kTable, "source");
  SchemaRegistrySettings s;
  s.url = o.String("schema_registry");
  while (!s.url.empty() && s.url.back() == '/') s.url.pop_back();
  if (s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0) {
    return Status::InvalidArgument(o.Where("schema_registry") +
                                   ": format = \"avro\" needs schema_registry = \"http://HOST:PORT\"");
  }
  const size_t authority = s.url.find("://") + 3;
  const size_t slash = s.url.find('/', authority);
  if (s.url.substr(authority, slash - authority).find('@') != std::string::npos) {
    return Status::InvalidArgument(o.Where("schema_registry") +
                                   ": no credentials in the URL; use schema_registry_auth_env or "
                                   "schema_registry_auth_file (USER:PASSWORD)");
  }
  std::string env = o.String("schema_registry_auth_env");
  std::string file = o.String("schema_registry_auth_file");
  if (!env.empty()) {
    const char* v = std::getenv(env.c_str());
    if (!v) return Status::InvalidArgument(o.Where("schema_registry_auth_env") + ": $" + env + " is not set");
    RETURN_IF_ERROR(SplitCredentials(v, o.Where("schema_registry_auth_env") + ": $" + env, &s));
  } else if (!file.empty()) {
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return Status::InvalidArgument(o.Where("schema_registry_auth_file") + ": cannot read " + file);
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    RETURN_IF_ERROR(SplitCredentials(line, o.Where("schema_registry_auth_file") + ": " + file, &s));
  }
  s.subject = o.String("schema_registry_subject", topic + "-value");
  return s;
}

std::shared_ptr<AvroSchemaCache> MakeRegistrySchemaCache(const SchemaRegistrySettings& settings) {
  const size_t authority = settings.url.find("://") + 3;
  const size_t slash = settings.url.find('/', authority);
  const std::string base = slash == std::string::npos ? "" : settings.url.substr(slash);
  return std::make_shared<AvroSchemaCache>(
      [settings, base](int32_t id) -> Result<std::string> {
        ASSIGN_OR_RETURN(std::string body, Get(settings, base, "/schemas/ids/" + std::to_string(id)));
        return SchemaOf(body);
      },
      [settings, base]() -> Result<std::string> {
        ASSIGN_OR_RETURN(std::string body,
                         Get(settings, base, "/subjects/" + settings.subject + "/versions/latest"));
        return SchemaOf(body);
      });
}

}  // namespace sluice
