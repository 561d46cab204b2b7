// Shared by the libFuzzer targets of the decoders that read the Confluent wire format with
// writer schemas from a schema registry (avro_fuzz.cc, protobuf_fuzz.cc): the decoder, with the
// registry's answers served from a table, and one fuzz input framed and decoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/schema.h"
#include "core/value.h"
#include "operators/avro_decoder.h"
#include "operators/decoder.h"

namespace sluice::fuzz {

/// A decoder of `format` that reads `fields`, its writer schemas fetched by id from `schemas`
/// (an unknown id answers NotFound, as the registry does) and the reader schema, if any, from
/// `reader`. Null when the decoder cannot be made (a broken target: the caller traps).
inline std::unique_ptr<Decoder> MakeRegistryDecoder(DecoderOptions::Format format,
                                                    const std::map<int32_t, std::string>* schemas,
                                                    AvroSchemaCache::FetchReader reader,
                                                    std::vector<Field> fields) {
  auto cache = std::make_shared<AvroSchemaCache>(
      [schemas](int32_t id) -> Result<std::string> {
        auto it = schemas->find(id);
        if (it == schemas->end()) return Status::NotFound("registry: not found");
        return it->second;
      },
      std::move(reader));
  DecoderOptions options;
  options.format = format;
  options.avro_schemas = cache;
  auto decoder = MakeDecoder(options, Schema(std::move(fields)));
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

/// One fuzz input: data[0] % ids picks the schema id of a Confluent header (magic byte 0, the
/// 4-byte id) put before the rest, or for 0 that the rest is the whole message, header included.
/// A decoded record must have every field null or of the field's declared type (else a trap).
inline int DecodeFramed(Decoder& decoder, const std::vector<Field>& fields, const uint8_t* data,
                        size_t size, uint8_t ids) {
  if (size == 0) return 0;
  std::string payload;
  const uint8_t pick = data[0] % ids;
  if (pick != 0) payload = std::string("\0\0\0\0", 4) + static_cast<char>(pick);
  payload.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  // A copy without spare bytes after it, so that a read past the message is seen by ASan.
  const std::string message(payload);
  std::vector<Value> row(fields.size());
  if (decoder.Decode(message, row).ok()) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (!row[i].is_null() && row[i].type() != fields[i].type) __builtin_trap();
    }
  }
  return 0;
}

}  // namespace sluice::fuzz
