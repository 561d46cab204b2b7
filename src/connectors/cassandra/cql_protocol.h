#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

/// The CQL native protocol, version 4: frame layout, message bodies, value encodings and the
/// decoding of responses. Pure functions over bytes, no I/O (the connection is in cql_client.h).
namespace sluice::cassandra {

inline constexpr uint8_t kRequestVersion = 0x04;
inline constexpr uint8_t kResponseVersion = 0x84;
inline constexpr size_t kHeaderSize = 9;
/// Frames are limited to 256 MB by the protocol.
inline constexpr uint32_t kMaxBodySize = 256u << 20;

enum class Opcode : uint8_t {
  kError = 0x00,
  kStartup = 0x01,
  kReady = 0x02,
  kAuthenticate = 0x03,
  kOptions = 0x05,
  kSupported = 0x06,
  kQuery = 0x07,
  kResult = 0x08,
  kPrepare = 0x09,
  kExecute = 0x0A,
  kRegister = 0x0B,
  kEvent = 0x0C,
  kBatch = 0x0D,
  kAuthChallenge = 0x0E,
  kAuthResponse = 0x0F,
  kAuthSuccess = 0x10,
};

/// Frame header flags.
inline constexpr uint8_t kFlagCompression = 0x01;
inline constexpr uint8_t kFlagTracing = 0x02;
inline constexpr uint8_t kFlagCustomPayload = 0x04;
inline constexpr uint8_t kFlagWarning = 0x08;

enum class Consistency : uint16_t {
  kAny = 0x0000,
  kOne = 0x0001,
  kTwo = 0x0002,
  kThree = 0x0003,
  kQuorum = 0x0004,
  kAll = 0x0005,
  kLocalQuorum = 0x0006,
  kEachQuorum = 0x0007,
  kSerial = 0x0008,
  kLocalSerial = 0x0009,
  kLocalOne = 0x000A,
};

/// Returns "LOCAL_QUORUM" etc.
std::string_view ConsistencyName(Consistency c);
/// Parses "one", "quorum", "local_quorum", ... (case-insensitive).
bool ParseConsistency(std::string_view name, Consistency* out);

/// Column type option ids.
enum class CqlType : uint16_t {
  kCustom = 0x0000,
  kAscii = 0x0001,
  kBigint = 0x0002,
  kBlob = 0x0003,
  kBoolean = 0x0004,
  kCounter = 0x0005,
  kDecimal = 0x0006,
  kDouble = 0x0007,
  kFloat = 0x0008,
  kInt = 0x0009,
  kTimestamp = 0x000B,
  kUuid = 0x000C,
  kVarchar = 0x000D,  ///< also "text"
  kVarint = 0x000E,
  kTimeuuid = 0x000F,
  kInet = 0x0010,
  kDate = 0x0011,
  kTime = 0x0012,
  kSmallint = 0x0013,
  kTinyint = 0x0014,
  kDuration = 0x0015,
  kList = 0x0020,
  kMap = 0x0021,
  kSet = 0x0022,
  kUdt = 0x0030,
  kTuple = 0x0031,
};

/// Returns the CQL name of a type ("text", "bigint", ...; "custom" etc. for the others).
std::string_view CqlTypeName(CqlType type);

/// A 16-byte UUID (uuid and timeuuid columns).
struct Uuid {
  std::array<uint8_t, 16> bytes{};

  /// Parses the canonical 36-character form (either case).
  static std::optional<Uuid> Parse(std::string_view text);
  /// Returns the canonical lower-case 8-4-4-4-12 form.
  std::string ToString() const;
  int version() const { return bytes[6] >> 4; }
  /// Returns the 60-bit timestamp of a version-1 UUID: 100-ns ticks since 1582-10-15.
  uint64_t TimeTicks() const;
  /// Returns the low 64 bits (clock sequence and node), as an unsigned big-endian number.
  uint64_t LowBits() const;
  /// Returns the time of a version-1 UUID in microseconds since the Unix epoch (floor).
  int64_t UnixMicros() const;
  friend bool operator==(const Uuid&, const Uuid&) = default;
};

/// One decoded (or to-be-encoded) value of a supported type, or null. Values of other types are
/// kept as raw bytes with their type (kRaw) so a row can still be read.
class CqlValue {
 public:
  enum class Kind : uint8_t {
    kNull,
    kBoolean,
    kInt,
    kBigint,
    kDouble,
    kText,
    kTimestamp,
    kUuid,
    kRaw
  };

  CqlValue() = default;
  static CqlValue Null() { return {}; }
  static CqlValue Boolean(bool v);
  static CqlValue Int(int32_t v);
  static CqlValue Bigint(int64_t v);
  static CqlValue Double(double v);
  /// text, varchar and ascii.
  static CqlValue Text(std::string v);
  /// Milliseconds since the Unix epoch.
  static CqlValue Timestamp(int64_t millis);
  /// uuid and timeuuid.
  static CqlValue FromUuid(const Uuid& v);
  static CqlValue Raw(CqlType type, std::string bytes);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool boolean() const { return i_ != 0; }
  int32_t int32() const { return static_cast<int32_t>(i_); }
  /// bigint, or the milliseconds of a timestamp.
  int64_t int64() const { return i_; }
  double dbl() const { return d_; }
  /// The text of kText, the bytes of kRaw.
  const std::string& text() const { return s_; }
  const Uuid& uuid() const { return uuid_; }
  CqlType raw_type() const { return raw_type_; }

  /// Renders for messages and JSON: null "", uuids canonical, timestamps ISO-8601 UTC
  /// ("2026-01-02T03:04:05.678Z"), doubles shortest round-trip, raw bytes as 0x-hex.
  std::string ToString() const;

  friend bool operator==(const CqlValue&, const CqlValue&) = default;

 private:
  Kind kind_ = Kind::kNull;
  CqlType raw_type_ = CqlType::kCustom;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  Uuid uuid_;
};

/// Describes one column of a result or one bind marker.
struct ColumnSpec {
  std::string keyspace;
  std::string table;
  std::string name;
  CqlType type = CqlType::kVarchar;
  friend bool operator==(const ColumnSpec&, const ColumnSpec&) = default;
};

/// The parameters of QUERY and EXECUTE (and the consistency of BATCH).
struct QueryOptions {
  Consistency consistency = Consistency::kLocalQuorum;
  /// Rows per page; 0 or less asks for everything at once (no paging).
  int32_t page_size = 5000;
  /// Where to continue: the paging_state of the previous page, empty for the first page.
  std::string paging_state;
  /// Asks the server to omit the column metadata of rows (EXECUTE only: the client then uses the
  /// result metadata of the prepared statement).
  bool skip_metadata = false;
};

enum class ResultKind : int32_t {
  kVoid = 0x0001,
  kRows = 0x0002,
  kSetKeyspace = 0x0003,
  kPrepared = 0x0004,
  kSchemaChange = 0x0005,
};

/// A prepared statement: its id and what it binds and returns.
struct Prepared {
  std::string id;
  std::string query;
  std::vector<ColumnSpec> bind_columns;
  /// Indexes into bind_columns of the partition key columns.
  std::vector<uint16_t> pk_indexes;
  std::vector<ColumnSpec> result_columns;
};

/// A RESULT message.
struct QueryResult {
  ResultKind kind = ResultKind::kVoid;
  /// kRows: the columns (from the prepared statement when the server skipped them), the rows,
  /// and the state to pass to fetch the next page (has_more_pages), else nullopt.
  std::vector<ColumnSpec> columns;
  std::vector<std::vector<CqlValue>> rows;
  std::optional<std::string> paging_state;
  /// kSetKeyspace: the keyspace.
  std::string keyspace;
  /// kPrepared.
  Prepared prepared;
  /// kSchemaChange: "CREATED"/"UPDATED"/"DROPPED", "KEYSPACE"/"TABLE"/..., keyspace, name.
  std::string change_type, change_target, change_keyspace, change_name;
};

/// Error codes of ERROR messages.
enum class ErrorCode : int32_t {
  kServerError = 0x0000,
  kProtocolError = 0x000A,
  kBadCredentials = 0x0100,
  kUnavailable = 0x1000,
  kOverloaded = 0x1001,
  kIsBootstrapping = 0x1002,
  kTruncateError = 0x1003,
  kWriteTimeout = 0x1100,
  kReadTimeout = 0x1200,
  kReadFailure = 0x1300,
  kFunctionFailure = 0x1400,
  kWriteFailure = 0x1500,
  kSyntaxError = 0x2000,
  kUnauthorized = 0x2100,
  kInvalid = 0x2200,
  kConfigError = 0x2300,
  kAlreadyExists = 0x2400,
  kUnprepared = 0x2500,
};

/// Returns the lower-case name of an error code ("write_timeout", "syntax_error", ...).
std::string_view ErrorCodeName(int32_t code);

/// A decoded ERROR message.
struct CqlError {
  int32_t code = 0;
  std::string message;
  /// Unavailable, timeouts and failures: the consistency and the replica counts.
  Consistency consistency = Consistency::kOne;
  int32_t required = 0;  ///< unavailable: required; timeouts/failures: block_for
  int32_t alive = 0;     ///< unavailable: alive; timeouts/failures: received
  int32_t failures = 0;
  bool data_present = false;
  std::string write_type;
  /// already_exists: keyspace and table; function_failure: keyspace and function.
  std::string keyspace, table;
  /// unprepared: the unknown statement id.
  std::string unprepared_id;

  /// Returns the Status for this error: "cassandra write_timeout (0x1100): message ..." with the
  /// code kUnavailable for errors worth retrying with backoff (unavailable, overloaded,
  /// is_bootstrapping, read/write timeouts, truncate_error), kInvalidArgument for errors in the
  /// request or configuration (syntax, invalid, unauthorized, bad credentials, config,
  /// already_exists), kInternal for protocol and server errors and the rest.
  Status ToStatus() const;
};

/// Returns the CQL error code named at the start of a Status made by CqlError::ToStatus(), or
/// nullopt for other statuses.
std::optional<int32_t> ErrorCodeOf(const Status& status);

struct FrameHeader {
  uint8_t version = kResponseVersion;
  uint8_t flags = 0;
  int16_t stream = 0;
  Opcode opcode = Opcode::kError;
  uint32_t length = 0;
};

/// Decodes the 9-byte header; fails for a wrong version, a compressed frame or a body over
/// kMaxBodySize.
Result<FrameHeader> DecodeHeader(std::string_view bytes);

/// A decoded response frame.
struct Response {
  FrameHeader header;
  std::vector<std::string> warnings;
  /// kAuthenticate: the authenticator class.
  std::string authenticator;
  /// kAuthChallenge / kAuthSuccess: the token (may be empty).
  std::string token;
  /// kSupported: the options and their values.
  std::map<std::string, std::vector<std::string>> supported;
  /// kResult.
  QueryResult result;
  /// kError.
  CqlError error;
  /// kEvent: the event type ("SCHEMA_CHANGE", ...); the rest is ignored.
  std::string event_type;
};

/// Decodes the body of a response frame. `prepared_result_columns` supplies the columns when
/// the rows carry no metadata (skip_metadata). Any truncated or inconsistent body is a
/// kParseError, never a crash or an over-read.
Result<Response> DecodeResponse(const FrameHeader& header, std::string_view body,
                                const std::vector<ColumnSpec>* prepared_result_columns = nullptr);

/// Decodes one cell's bytes as `type`.
Result<CqlValue> DecodeValue(CqlType type, std::string_view bytes);
/// Appends the [value] encoding (length then bytes; -1 for null) of `value` bound to a column
/// of `type`: fails when the value does not fit the type (an int64 beyond int range, a text for
/// a uuid column that is not a UUID, ...). Int and Bigint convert to each other when exact;
/// Text converts to uuid/timeuuid.
Status AppendValue(CqlType type, const CqlValue& value, std::string* out);

/// One statement of a BATCH: a query string (kind 0) or a prepared id (kind 1) with values.
struct BatchEntry {
  std::string query;  ///< used when prepared is null
  const Prepared* prepared = nullptr;
  std::vector<CqlValue> values;
};

enum class BatchType : uint8_t { kLogged = 0, kUnlogged = 1, kCounter = 2 };

/// Request encoders: each returns a whole frame (header and body).
std::string EncodeStartup(int16_t stream, const std::map<std::string, std::string>& options);
std::string EncodeOptions(int16_t stream);
std::string EncodeAuthResponse(int16_t stream, std::string_view token);
/// SASL PLAIN token for PasswordAuthenticator: "\0user\0password".
std::string PlainSaslToken(std::string_view user, std::string_view password);
/// QUERY with positional values (values are encoded by their own kind: Int as int, ...).
Result<std::string> EncodeQuery(int16_t stream, std::string_view cql,
                                std::span<const CqlValue> values, const QueryOptions& options);
std::string EncodePrepare(int16_t stream, std::string_view cql);
/// EXECUTE; values are checked and encoded against prepared.bind_columns.
Result<std::string> EncodeExecute(int16_t stream, const Prepared& prepared,
                                  std::span<const CqlValue> values, const QueryOptions& options);
Result<std::string> EncodeBatch(int16_t stream, BatchType type, std::span<const BatchEntry> entries,
                                Consistency consistency);

/// Hex helpers for tests and messages ("0a1b...", whitespace ignored when parsing).
std::string ToHex(std::string_view bytes);
std::optional<std::string> FromHex(std::string_view hex);

}  // namespace sluice::cassandra
