#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/option_spec.h"
#include "config/pipeline_config.h"
#include "core/status.h"
#include "operators/avro_decoder.h"

namespace sluice {

/// Where a Confluent-compatible schema registry is and how to log in to it.
struct SchemaRegistrySettings {
  std::string url;       ///< http://HOST:PORT or https://HOST:PORT, maybe with a base path
  std::string user;      ///< basic auth, empty for none
  std::string password;
  std::string subject;   ///< the value subject (TopicNameStrategy: "<topic>-value")
};

/// Reads schema_registry, schema_registry_auth_env / schema_registry_auth_file ("USER:PASSWORD"
/// from an environment variable or the first line of a file; never in the URL) and
/// schema_registry_subject from a source's options. Fails for a URL with credentials in it.
Result<SchemaRegistrySettings> ReadSchemaRegistrySettings(const Options& options, const std::string& topic);
/// The options ReadSchemaRegistrySettings reads, for the option tables of the source and sink.
std::vector<OptionSpec> SchemaRegistryOptions();

/// A schema cache whose fetches are HTTP GETs to the registry: /schemas/ids/ID (404 with the
/// registry's error code 40403 means an unknown id) and /subjects/SUBJECT/versions/latest for the
/// reader schema. Connection failures and 5xx answers are Unavailable: the caller retries.
std::shared_ptr<AvroSchemaCache> MakeRegistrySchemaCache(const SchemaRegistrySettings& settings);

/// The same for format = "protobuf": /schemas/ids/ID must be a PROTOBUF schema (another type is
/// NotFound: dead-lettered); its references ({"name", "subject", "version"}, and theirs in turn)
/// are fetched from /subjects/SUBJECT/versions/VERSION, and the entry is a ProtobufSchemaBundle
/// (operators/protobuf_decoder.h) when there are any. No reader schema is fetched.
std::shared_ptr<AvroSchemaCache> MakeRegistryProtobufSchemaCache(const SchemaRegistrySettings& settings);

}  // namespace sluice
