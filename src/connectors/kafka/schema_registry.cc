#include "connectors/kafka/schema_registry.h"

#include <httplib.h>
#include <simdjson.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "operators/protobuf_decoder.h"

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

/// `text` percent-encoded for one path segment (a reference's subject may hold '/').
std::string PathSegment(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
  return out;
}

/// A Protobuf schema of a registry answer: its text and its references (name, subject, version).
struct ProtobufAnswer {
  std::string schema;
  std::vector<std::pair<std::string, std::pair<std::string, std::string>>> references;
};

Result<ProtobufAnswer> ProtobufSchemaOf(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  std::string_view schema;
  if (parser.parse(body).get(e) || e["schema"].get(schema) != simdjson::SUCCESS) {
    return Status::Unavailable("schema registry: an answer without \"schema\"");
  }
  std::string_view type;
  if (e["schemaType"].get(type) != simdjson::SUCCESS) type = "AVRO";
  if (type != "PROTOBUF") return Status::NotFound("registry: the schema is " + std::string(type) + ", not Protobuf");
  ProtobufAnswer out;
  out.schema = std::string(schema);
  simdjson::dom::array refs;
  if (e["references"].get(refs) == simdjson::SUCCESS) {
    for (simdjson::dom::element r : refs) {
      std::string_view name, subject;
      int64_t version = 0;
      if (r["name"].get(name) != simdjson::SUCCESS || r["subject"].get(subject) != simdjson::SUCCESS ||
          r["version"].get(version) != simdjson::SUCCESS) {
        return Status::NotFound("registry: a reference without name, subject or version");
      }
      out.references.push_back({std::string(name), {std::string(subject), std::to_string(version)}});
    }
  }
  return out;
}

}  // namespace

std::vector<OptionSpec> SchemaRegistryOptions() {
  return {
      {.name = "schema_registry",
       .help = "`format = \"avro\"` (or `\"protobuf\"`): the schema registry, `http://HOST:PORT` (no "
               "credentials); empty: none."},
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
                                   ": format = \"avro\" or \"protobuf\" needs schema_registry = \"http://HOST:PORT\"");
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

std::shared_ptr<AvroSchemaCache> MakeRegistryProtobufSchemaCache(const SchemaRegistrySettings& settings) {
  const size_t authority = settings.url.find("://") + 3;
  const size_t slash = settings.url.find('/', authority);
  const std::string base = slash == std::string::npos ? "" : settings.url.substr(slash);
  return std::make_shared<AvroSchemaCache>(
      [settings, base](int32_t id) -> Result<std::string> {
        ASSIGN_OR_RETURN(std::string body, Get(settings, base, "/schemas/ids/" + std::to_string(id)));
        ASSIGN_OR_RETURN(ProtobufAnswer root, ProtobufSchemaOf(body));
        if (root.references.empty()) return root.schema;
        // The references and theirs, each import path once.
        std::vector<std::pair<std::string, std::string>> files;
        std::set<std::string> seen;
        std::vector<std::pair<std::string, std::pair<std::string, std::string>>> todo = root.references;
        while (!todo.empty()) {
          auto [name, where] = std::move(todo.back());
          todo.pop_back();
          if (!seen.insert(name).second) continue;
          if (seen.size() > 1000) return Status::NotFound("registry: more than 1000 references");
          Result<std::string> ref = Get(settings, base, "/subjects/" + PathSegment(where.first) + "/versions/" +
                                                            PathSegment(where.second));
          if (!ref.ok()) {
            if (ref.status().code() != StatusCode::kNotFound) return ref.status();
            return Status::NotFound("registry: reference " + name + " (subject " + where.first + " version " +
                                    where.second + "): " + ref.status().message());
          }
          ASSIGN_OR_RETURN(ProtobufAnswer dep, ProtobufSchemaOf(*ref));
          files.emplace_back(name, std::move(dep.schema));
          for (auto& r : dep.references) todo.push_back(std::move(r));
        }
        return ProtobufSchemaBundle(root.schema, files);
      },
      nullptr);
}

}  // namespace sluice
