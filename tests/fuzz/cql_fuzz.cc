// libFuzzer target for the CQL native-protocol decoder (src/connectors/cassandra/cql_protocol):
// the input is what a server (or anything on port 9042) could send. The first byte picks what
// is decoded:
//   even: a response frame, the 9-byte header then its body (DecodeHeader, DecodeResponse,
//         also with the columns of a prepared statement for rows without metadata);
//   odd:  one cell, the next byte picking the column type (DecodeValue), then re-encoded.
// Decoding must fail with a parse error on anything truncated or inconsistent, never crash or
// read past the input. Built by tests/fuzz/CMakeLists.txt; see tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/cassandra/cql_protocol.h"

namespace cql = sluice::cassandra;

namespace {

/// Every type the decoder knows, and a few it does not.
constexpr cql::CqlType kTypes[] = {
    cql::CqlType::kCustom, cql::CqlType::kAscii,    cql::CqlType::kBigint,   cql::CqlType::kBlob,
    cql::CqlType::kBoolean, cql::CqlType::kCounter, cql::CqlType::kDecimal,  cql::CqlType::kDouble,
    cql::CqlType::kFloat,  cql::CqlType::kInt,      cql::CqlType::kTimestamp, cql::CqlType::kUuid,
    cql::CqlType::kVarchar, cql::CqlType::kVarint,  cql::CqlType::kTimeuuid, cql::CqlType::kInet,
    cql::CqlType::kDate,   cql::CqlType::kTime,     cql::CqlType::kSmallint, cql::CqlType::kTinyint,
    cql::CqlType::kDuration, cql::CqlType::kList,   cql::CqlType::kMap,      cql::CqlType::kSet,
    cql::CqlType::kUdt,    cql::CqlType::kTuple,    static_cast<cql::CqlType>(0x7777)};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    if (input.size() < cql::kHeaderSize) return 0;
    auto header = cql::DecodeHeader(input.substr(0, cql::kHeaderSize));
    if (!header.ok()) return 0;
    // Copied so that a read past the body is a heap overflow that ASan sees.
    const std::string body(input.substr(cql::kHeaderSize));
    (void)cql::DecodeResponse(header.value(), body);
    static const std::vector<cql::ColumnSpec> prepared = [] {
      std::vector<cql::ColumnSpec> columns(3);
      columns[0].name = "id";
      columns[0].type = cql::CqlType::kInt;
      columns[1].name = "name";
      columns[1].type = cql::CqlType::kVarchar;
      columns[2].name = "at";
      columns[2].type = cql::CqlType::kTimestamp;
      return columns;
    }();
    (void)cql::DecodeResponse(header.value(), body, &prepared);
  } else {
    const cql::CqlType type = kTypes[static_cast<uint8_t>(input[0]) % std::size(kTypes)];
    const std::string bytes(input.substr(1));
    auto value = cql::DecodeValue(type, bytes);
    if (value.ok()) {
      std::string encoded;
      (void)cql::AppendValue(type, value.value(), &encoded);
    }
  }
  return 0;
}
