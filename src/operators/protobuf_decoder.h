#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/schema.h"
#include "core/status.h"
#include "operators/avro_decoder.h"
#include "operators/decoder.h"

namespace sluice {

/// Creates the decoder for format = "protobuf": each payload is the Confluent wire format (magic
/// byte 0, the writer schema's id as 4 big-endian bytes, the message indexes, then the Protobuf
/// body). The message indexes are a zigzag varint count followed by that many zigzag varints:
/// the path to the message type in the schema's file (the first index among the top-level
/// messages, each further one among the nested messages of the previous); a count of 0 means
/// [0], the first message.
///
/// `schemas` holds the writer schemas by id (fetched once per id; see AvroSchemaCache, whose
/// reader schema is not used here). An entry is either the .proto text of a schema without
/// references, or a bundle made by ProtobufSchemaBundle() holding the schema and the files it
/// imports. Each file is .proto text, parsed by protoc's compiler library
/// (google::protobuf::compiler::Parser), or a base64 serialized FileDescriptorProto (what
/// confluent-kafka's Python serializer registers; a registry may hand it back as given). Imports
/// of the well-known types (google/protobuf/timestamp.proto, wrappers.proto, ...) need no
/// reference: libprotobuf's own copies are used. Bodies are parsed into dynamic messages
/// (google::protobuf::DynamicMessageFactory).
///
/// Each schema field is found by its dotted source path through singular message fields, by
/// proto field name. Values:
///   - a field the writer's message does not have, or a path through an unset message: null;
///   - a field with presence (proto3 `optional`, proto2 `optional`, a oneof member, a message)
///     that is unset: null (a proto2 field with an explicit [default = ...] gives that default);
///   - a proto3 scalar without presence that is unset: its default (0, "", false, the first enum
///     value) — on the wire it is indistinguishable from a written default;
///   - google.protobuf.Timestamp: a timestamp (epoch milliseconds for int64 fields, the
///     formatted time for string fields); the wrappers (Int64Value, StringValue, ...): their
///     value, null when unset;
///   - an enum: its value's name (its number for int64 fields; a number the schema does not
///     name gives the number's text);
///   - numbers, booleans and strings convert as in the Avro decoder (a string is parsed as text
///     for non-string fields; an integer read into a timestamp field is epoch milliseconds);
///     bytes only into string fields; a repeated field, a map or another message is an error.
///
/// Errors (ParseError, dead-lettered): a wrong magic byte, a payload shorter than 5 bytes, an id
/// the registry does not know or whose schema does not parse, truncated or out-of-range message
/// indexes, an index path naming no message, a body the Protobuf parser rejects (or missing a
/// proto2 required field).
Result<std::unique_ptr<Decoder>> MakeProtobufDecoder(const Schema& schema,
                                                     std::shared_ptr<AvroSchemaCache> schemas);

/// The names of the top-level fields of the message type a Confluent Protobuf payload is
/// written with (its writer schema from `schemas`, fetched when not there yet, and its message
/// indexes). Fails when the header, the schema or the indexes do not name a message.
Result<std::vector<std::string>> ProtobufMessageFieldNames(std::string_view payload, AvroSchemaCache& schemas);

/// The cache entry for a Protobuf schema with references: a JSON object {"schema": TEXT,
/// "references": [{"name": IMPORT_PATH, "schema": TEXT}, ...]}, each reference named by the path
/// the schema imports it as.
std::string ProtobufSchemaBundle(std::string_view schema,
                                 const std::vector<std::pair<std::string, std::string>>& references);

}  // namespace sluice
