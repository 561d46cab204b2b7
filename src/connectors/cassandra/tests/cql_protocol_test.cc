#include "connectors/cassandra/cql_protocol.h"

#include <gtest/gtest.h>

#include <random>

#include "connectors/cassandra/cql_client.h"
#include "core/time.h"

namespace sluice::cassandra {
namespace {

// Response frames recorded from Apache Cassandra 5.0 (CQL 3.4.7), protocol v4, keyspace
// cql_fixture with `t (id int PRIMARY KEY, name text)` holding (1,'a'), (2,null), (3,'ccc').

// OPTIONS -> SUPPORTED.
constexpr const char* kSupported =
    "8400000006000000660003001150524f544f434f4c5f56455253494f4e5300040004332f76330004342f7634"
    "0004352f76350009362f76362d62657461000b434f4d5052455353494f4e00020006736e6170707900036c7a"
    "34000b43514c5f56455253494f4e00010005332e342e37";
// STARTUP -> READY (stream 1).
constexpr const char* kReady = "840000010200000000";
// SELECT id, name FROM cql_fixture.t with page_size 2 -> two rows and a paging state.
constexpr const char* kRowsPage =
    "8400000508000000570000000200000003000000020000000c040000000200f07ffffffd00000b63716c5f66"
    "69787475726500017400026964000900046e616d65000d00000002000000040000000100000001610000000400"
    "000002ffffffff";
// PREPARE SELECT id, name FROM cql_fixture.t WHERE id = ?
constexpr const char* kPrepared =
    "840000060800000060000000040010374025e2beb0e2d7df109f494288ab1800000001000000010000000100"
    "00000b63716c5f666978747572650001740002696400090000000100000002000b63716c5f66697874757265"
    "00017400026964000900046e616d65000d";
// SELEC * FROM nowhere -> syntax error.
constexpr const char* kSyntaxError =
    "84000007000000004200002000003c6c696e6520313a30206e6f20766961626c6520616c7465726e61746976"
    "6520617420696e707574202753454c45432720285b53454c45435d2e2e2e29";
// SELECT * FROM cql_fixture.missing_table -> invalid.
constexpr const char* kInvalid =
    "8400000800000000280000220000227461626c65206d697373696e675f7461626c6520646f6573206e6f7420"
    "6578697374";
// USE cql_fixture -> set_keyspace.
constexpr const char* kSetKeyspace = "84000009080000001100000003000b63716c5f66697874757265";
// EXECUTE of an unknown id 01020304 -> unprepared.
constexpr const char* kUnprepared =
    "8400000a00000000e10000250000d550726570617265642071756572792077697468204944203031303230333034"
    "206e6f7420666f756e6420286569746865722074686520717565727920776173206e6f74207072657061726564"
    "206f6e207468697320686f737420286d617962652074686520686f737420686173206265656e207265737461"
    "727465643f29206f7220796f75206861766520707265706172656420746f6f206d616e79207175657269657320"
    "616e6420697420686173206265656e20657669637465642066726f6d2074686520696e7465726e616c2063616368"
    "6529000401020304";
// CREATE TABLE cql_fixture.t again -> already_exists.
constexpr const char* kAlreadyExists =
    "8400000b000000005500002400003f43616e6e6f742061646420616c7265616479206578697374696e672074"
    "61626c652022742220746f206b65797370616365202263716c5f6669787475726522000b63716c5f6669787475"
    "7265000174";
// CREATE TABLE IF NOT EXISTS cql_fixture.t -> schema_change CREATED TABLE.
constexpr const char* kSchemaChange =
    "8400000308000000240000000500074352454154454400055441424c45000b63716c5f666978747572650001"
    "74";
// One row of every supported type: k text 'k1', a ascii 'asc', i int -7, b bigint
// 9007199254740993, d double 0.1, f boolean true, ts timestamp 2026-01-02T03:04:05.678Z,
// u uuid 123e4567-e89b-42d3-a456-426614174000, tu timeuuid 5b6962dc-e8a7-11f0-8000-0123456789ab,
// n int null.
constexpr const char* kTypesRow =
    "8400000508000000c200000002000000010000000a000b63716c5f666978747572650005747970657300016b"
    "000d0001610001000169000900016200020001640007000166000400027473000b000175000c00027475000f"
    "00016e000900000001000000026b310000000361736300000004fffffff9000000080020000000000001000000"
    "083fb999999999999a0000000101000000080000019b7ca98f2e00000010123e4567e89b42d3a45642661417"
    "4000000000105b6962dce8a711f080000123456789abffffffff";
// An unlogged batch over 5 KiB -> void RESULT with the warning flag and one warning.
constexpr const char* kBatchWarning =
    "84080006080000006100010059426174636820666f72205b63716c5f666978747572652e745d206973206f6620"
    "73697a6520363134312c20657863656564696e6720737065636966696564207468726573686f6c64206f662035"
    "31323020627920313032312e00000001";

// Built by hand from the spec (the test server runs without authentication):
// AUTHENTICATE with org.apache.cassandra.auth.PasswordAuthenticator.
constexpr const char* kAuthenticate =
    "840000000300000031002f6f72672e6170616368652e63617373616e6472612e617574682e50617373776f72"
    "6441757468656e74696361746f72";
// AUTH_SUCCESS with a null token.
constexpr const char* kAuthSuccess = "840000001000000004ffffffff";
// ERROR bad_credentials.
constexpr const char* kBadCredentials =
    "84000000000000003f00000100003950726f766964656420757365726e616d652063617373616e6472612061"
    "6e642f6f722070617373776f72642061726520696e636f7272656374";
// ERROR unavailable "x", LOCAL_QUORUM, required 3, alive 1.
constexpr const char* kUnavailable = "8400000c00000000110000100000017800060000000300000001";

std::string Bytes(const char* hex) {
  auto b = FromHex(hex);
  EXPECT_TRUE(b.has_value()) << hex;
  return b.value_or("");
}

Result<Response> Decode(const char* hex, const std::vector<ColumnSpec>* columns = nullptr) {
  std::string frame = Bytes(hex);
  auto h = DecodeHeader(frame);
  if (!h.ok()) return h.status();
  return DecodeResponse(*h, std::string_view(frame).substr(kHeaderSize), columns);
}

TEST(CqlProtocol, EncodesStartupAsInTheSpec) {
  // Request v4, no flags, stream 0, STARTUP, 22-byte body: a string map with one pair.
  EXPECT_EQ(ToHex(EncodeStartup(0, {{"CQL_VERSION", "3.0.0"}})),
            ToHex(Bytes("04 00 0000 01 00000016 0001 000b 43514c5f56455253494f4e "
                        "0005 332e302e30")));
}

TEST(CqlProtocol, EncodesOptionsAndAuthResponse) {
  EXPECT_EQ(ToHex(EncodeOptions(5)), "040000050500000000");
  // SASL PLAIN: authzid empty, then user and password, NUL separated.
  EXPECT_EQ(ToHex(EncodeAuthResponse(0, PlainSaslToken("cassandra", "secret"))),
            ToHex(Bytes("04 00 0000 0f 00000015 00000011 00 63617373616e647261 00 736563726574")));
}

TEST(CqlProtocol, EncodesQueryWithPageSize) {
  QueryOptions o;
  o.consistency = Consistency::kOne;
  o.page_size = 100;
  auto frame = EncodeQuery(1, "SELECT 1", {}, o);
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(ToHex(*frame),
            ToHex(Bytes("04 00 0001 07 00000013 00000008 53454c4543542031 0001 04 00000064")));
}

TEST(CqlProtocol, EncodesExecuteWithValuesPagingStateAndSkipMetadata) {
  Prepared p;
  p.id = Bytes("1234");
  p.bind_columns = {{"ks", "t", "i", CqlType::kInt},
                    {"ks", "t", "s", CqlType::kVarchar},
                    {"ks", "t", "b", CqlType::kBigint}};
  QueryOptions o;
  o.page_size = 5000;
  o.paging_state = "xy";
  o.skip_metadata = true;
  std::vector<CqlValue> values = {CqlValue::Int(7), CqlValue::Text("ab"), CqlValue::Null()};
  auto frame = EncodeExecute(2, p, values, o);
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  // id; LOCAL_QUORUM; flags values|skip_metadata|page_size|paging_state; 3 values; page size
  // 5000; paging state "xy".
  EXPECT_EQ(ToHex(*frame),
            ToHex(Bytes("04 00 0002 0a 00000025 0002 1234 0006 0f 0003 00000004 00000007 "
                        "00000002 6162 ffffffff 00001388 00000002 7879")));
  // The arity and the types are checked against the prepared metadata.
  EXPECT_FALSE(EncodeExecute(2, p, std::vector<CqlValue>{CqlValue::Int(1)}, o).ok());
  std::vector<CqlValue> wrong = {CqlValue::Text("x"), CqlValue::Text("ab"), CqlValue::Null()};
  auto bad = EncodeExecute(2, p, wrong, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bind marker 0 (i)"), std::string::npos);
}

TEST(CqlProtocol, EncodesUnloggedBatchOfPreparedAndQuery) {
  Prepared p;
  p.id = Bytes("1234");
  p.bind_columns = {{"ks", "t", "i", CqlType::kInt}};
  std::vector<BatchEntry> entries = {{"", &p, {CqlValue::Int(5)}}, {"Q", nullptr, {}}};
  auto frame = EncodeBatch(3, BatchType::kUnlogged, entries, Consistency::kOne);
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(ToHex(*frame),
            ToHex(Bytes("04 00 0003 0d 0000001d 01 0002 01 0002 1234 0001 00000004 00000005 "
                        "00 00000001 51 0000 0001 00")));
  EXPECT_FALSE(EncodeBatch(3, BatchType::kUnlogged, {}, Consistency::kOne).ok());
}

TEST(CqlProtocol, EncodesEveryTypeAsTheSpecSays) {
  auto enc = [](CqlType t, const CqlValue& v) {
    std::string out;
    Status s = AppendValue(t, v, &out);
    return s.ok() ? ToHex(out) : "error: " + s.message();
  };
  EXPECT_EQ(enc(CqlType::kVarchar, CqlValue::Text("é")), "00000002c3a9");
  EXPECT_EQ(enc(CqlType::kAscii, CqlValue::Text("A")), "0000000141");
  EXPECT_NE(enc(CqlType::kAscii, CqlValue::Text("é")).find("not ASCII"), std::string::npos);
  EXPECT_EQ(enc(CqlType::kInt, CqlValue::Int(-2)), "00000004fffffffe");
  EXPECT_EQ(enc(CqlType::kInt, CqlValue::Bigint(70000)), "0000000400011170");
  EXPECT_NE(enc(CqlType::kInt, CqlValue::Bigint(1LL << 40)).find("int range"), std::string::npos);
  EXPECT_EQ(enc(CqlType::kBigint, CqlValue::Bigint(9007199254740993LL)),
            "000000080020000000000001");
  EXPECT_EQ(enc(CqlType::kDouble, CqlValue::Double(0.1)), "000000083fb999999999999a");
  EXPECT_EQ(enc(CqlType::kBoolean, CqlValue::Boolean(true)), "0000000101");
  EXPECT_EQ(enc(CqlType::kTimestamp, CqlValue::Timestamp(1767323045678)),
            "000000080000019b7ca98f2e");
  EXPECT_EQ(enc(CqlType::kUuid, CqlValue::Text("123E4567-E89B-42D3-A456-426614174000")),
            "00000010123e4567e89b42d3a456426614174000");
  EXPECT_NE(enc(CqlType::kTimeuuid, CqlValue::Text("123e4567-e89b-42d3-a456-426614174000"))
                .find("version-1"),
            std::string::npos);
  EXPECT_NE(enc(CqlType::kUuid, CqlValue::Text("not-a-uuid")).find("not a UUID"),
            std::string::npos);
  EXPECT_EQ(enc(CqlType::kInt, CqlValue::Null()), "ffffffff");
  EXPECT_NE(enc(CqlType::kBoolean, CqlValue::Int(1)).find("cannot bind"), std::string::npos);
}

TEST(CqlProtocol, DecodesRecordedSupported) {
  auto r = Decode(kSupported);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->header.opcode, Opcode::kSupported);
  EXPECT_EQ(r->supported["CQL_VERSION"], std::vector<std::string>{"3.4.7"});
  const auto& versions = r->supported["PROTOCOL_VERSIONS"];
  EXPECT_NE(std::find(versions.begin(), versions.end(), "4/v4"), versions.end());
  EXPECT_EQ(r->supported["COMPRESSION"], (std::vector<std::string>{"snappy", "lz4"}));
}

TEST(CqlProtocol, DecodesRecordedReadyAndSetKeyspace) {
  auto ready = Decode(kReady);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->header.opcode, Opcode::kReady);
  EXPECT_EQ(ready->header.stream, 1);
  auto ks = Decode(kSetKeyspace);
  ASSERT_TRUE(ks.ok());
  EXPECT_EQ(ks->result.kind, ResultKind::kSetKeyspace);
  EXPECT_EQ(ks->result.keyspace, "cql_fixture");
}

TEST(CqlProtocol, DecodesRecordedRowsWithPagingState) {
  auto r = Decode(kRowsPage);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const QueryResult& q = r->result;
  ASSERT_EQ(q.kind, ResultKind::kRows);
  ASSERT_EQ(q.columns.size(), 2u);
  EXPECT_EQ(q.columns[0], (ColumnSpec{"cql_fixture", "t", "id", CqlType::kInt}));
  EXPECT_EQ(q.columns[1], (ColumnSpec{"cql_fixture", "t", "name", CqlType::kVarchar}));
  ASSERT_TRUE(q.paging_state.has_value());
  EXPECT_EQ(ToHex(*q.paging_state), "040000000200f07ffffffd00");
  ASSERT_EQ(q.rows.size(), 2u);
  EXPECT_EQ(q.rows[0][0], CqlValue::Int(1));
  EXPECT_EQ(q.rows[0][1], CqlValue::Text("a"));
  EXPECT_EQ(q.rows[1][0], CqlValue::Int(2));
  EXPECT_TRUE(q.rows[1][1].is_null());
}

TEST(CqlProtocol, DecodesRecordedPrepared) {
  auto r = Decode(kPrepared);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Prepared& p = r->result.prepared;
  ASSERT_EQ(r->result.kind, ResultKind::kPrepared);
  EXPECT_EQ(ToHex(p.id), "374025e2beb0e2d7df109f494288ab18");
  ASSERT_EQ(p.bind_columns.size(), 1u);
  EXPECT_EQ(p.bind_columns[0].name, "id");
  EXPECT_EQ(p.bind_columns[0].type, CqlType::kInt);
  EXPECT_EQ(p.pk_indexes, std::vector<uint16_t>{0});
  ASSERT_EQ(p.result_columns.size(), 2u);
  EXPECT_EQ(p.result_columns[1].name, "name");
  EXPECT_EQ(p.result_columns[1].type, CqlType::kVarchar);
}

TEST(CqlProtocol, RowsWithoutMetadataTakeThePreparedColumns) {
  // The rows frame above with flag no_metadata (0x0004) instead of global spec, column specs
  // left out: 0x0006 = has_more_pages | no_metadata.
  std::string body =
      Bytes("00000002 00000006 00000002 00000002 abcd 00000001 00000004 00000009 00000001 62");
  FrameHeader h;
  h.opcode = Opcode::kResult;
  h.length = static_cast<uint32_t>(body.size());
  EXPECT_FALSE(DecodeResponse(h, body).ok());  // no columns to decode with
  std::vector<ColumnSpec> cols = {{"k", "t", "id", CqlType::kInt},
                                  {"k", "t", "name", CqlType::kVarchar}};
  auto r = DecodeResponse(h, body, &cols);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->result.columns, cols);
  EXPECT_EQ(r->result.rows[0][0], CqlValue::Int(9));
  EXPECT_EQ(r->result.rows[0][1], CqlValue::Text("b"));
  EXPECT_EQ(ToHex(r->result.paging_state.value_or("")), "abcd");
}

TEST(CqlProtocol, DecodesRecordedRowOfEveryType) {
  auto r = Decode(kTypesRow);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->result.rows.size(), 1u);
  const auto& row = r->result.rows[0];
  ASSERT_EQ(row.size(), 10u);
  EXPECT_EQ(row[0], CqlValue::Text("k1"));
  EXPECT_EQ(row[1], CqlValue::Text("asc"));
  EXPECT_EQ(row[2], CqlValue::Int(-7));
  EXPECT_EQ(row[3], CqlValue::Bigint(9007199254740993LL));
  EXPECT_EQ(row[4], CqlValue::Double(0.1));
  EXPECT_EQ(row[5], CqlValue::Boolean(true));
  EXPECT_EQ(row[6], CqlValue::Timestamp(1767323045678));
  EXPECT_EQ(row[6].ToString(), "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(row[7].ToString(), "123e4567-e89b-42d3-a456-426614174000");
  EXPECT_EQ(row[8].ToString(), "5b6962dc-e8a7-11f0-8000-0123456789ab");
  EXPECT_TRUE(row[9].is_null());
  EXPECT_EQ(r->result.columns[8].type, CqlType::kTimeuuid);
  // The time of the TimeUUID agrees with the engine's own TimeUUID parser.
  EXPECT_EQ(row[8].uuid().UnixMicros(), ParseTimeUuid(row[8].ToString()).value());
  EXPECT_EQ(row[8].uuid().UnixMicros(), 1767446593930108);
  EXPECT_EQ(row[8].uuid().LowBits(), 0x800001234567'89abULL);
}

TEST(CqlProtocol, DecodesRecordedErrorsIntoStatuses) {
  auto syntax = Decode(kSyntaxError);
  ASSERT_TRUE(syntax.ok());
  Status s = syntax->error.ToStatus();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "cassandra syntax_error (0x2000): line 1:0 no viable alternative at input 'SELEC' "
            "([SELEC]...)");
  EXPECT_EQ(ErrorCodeOf(s), 0x2000);

  auto invalid = Decode(kInvalid);
  ASSERT_TRUE(invalid.ok());
  EXPECT_EQ(invalid->error.code, 0x2200);
  EXPECT_EQ(invalid->error.ToStatus().message(),
            "cassandra invalid (0x2200): table missing_table does not exist");

  auto unprepared = Decode(kUnprepared);
  ASSERT_TRUE(unprepared.ok());
  EXPECT_EQ(unprepared->error.code, static_cast<int32_t>(ErrorCode::kUnprepared));
  EXPECT_EQ(ToHex(unprepared->error.unprepared_id), "01020304");

  auto exists = Decode(kAlreadyExists);
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->error.keyspace, "cql_fixture");
  EXPECT_EQ(exists->error.table, "t");

  auto unavailable = Decode(kUnavailable);
  ASSERT_TRUE(unavailable.ok()) << unavailable.status().ToString();
  Status u = unavailable->error.ToStatus();
  EXPECT_EQ(u.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(IsRetryable(u));
  EXPECT_EQ(u.message(),
            "cassandra unavailable (0x1000): x (consistency LOCAL_QUORUM, required 3, alive 1)");
  EXPECT_FALSE(IsRetryable(s));
  EXPECT_EQ(ErrorCodeOf(Status::Unavailable("other")), std::nullopt);
}

TEST(CqlProtocol, DecodesSchemaChangeAndWarnings) {
  auto r = Decode(kSchemaChange);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result.kind, ResultKind::kSchemaChange);
  EXPECT_EQ(r->result.change_type, "CREATED");
  EXPECT_EQ(r->result.change_target, "TABLE");
  EXPECT_EQ(r->result.change_keyspace, "cql_fixture");
  EXPECT_EQ(r->result.change_name, "t");
  auto w = Decode(kBatchWarning);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->result.kind, ResultKind::kVoid);
  ASSERT_EQ(w->warnings.size(), 1u);
  EXPECT_EQ(w->warnings[0],
            "Batch for [cql_fixture.t] is of size 6141, exceeding specified threshold of 5120 "
            "by 1021.");
}

TEST(CqlProtocol, DecodesAuthenticationFrames) {
  auto a = Decode(kAuthenticate);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->header.opcode, Opcode::kAuthenticate);
  EXPECT_EQ(a->authenticator, "org.apache.cassandra.auth.PasswordAuthenticator");
  auto ok = Decode(kAuthSuccess);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->header.opcode, Opcode::kAuthSuccess);
  EXPECT_TRUE(ok->token.empty());
  auto bad = Decode(kBadCredentials);
  ASSERT_TRUE(bad.ok());
  Status s = bad->error.ToStatus();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("cassandra bad_credentials (0x0100): Provided username", 0), 0u);
  EXPECT_NE(s.message().find("SLUICE_CASSANDRA_PASSWORD"), std::string::npos);
}

TEST(CqlProtocol, RejectsBadHeaders) {
  EXPECT_FALSE(DecodeHeader(Bytes("8400")).ok());
  EXPECT_FALSE(DecodeHeader(Bytes("830000010200000000")).ok());  // v3
  EXPECT_FALSE(DecodeHeader(Bytes("040000010200000000")).ok());  // a request
  auto compressed = DecodeHeader(Bytes("840100010800000004"));
  ASSERT_FALSE(compressed.ok());
  EXPECT_NE(compressed.status().message().find("compress"), std::string::npos);
  EXPECT_FALSE(DecodeHeader(Bytes("84000001081fffffff")).ok());  // > 256 MB
}

TEST(CqlProtocol, TruncatedFramesFailCleanly) {
  for (const char* hex : {kSupported, kRowsPage, kPrepared, kSyntaxError, kUnprepared, kTypesRow,
                          kBatchWarning, kAuthenticate, kSchemaChange, kAlreadyExists}) {
    const std::string frame = Bytes(hex);
    auto h = DecodeHeader(frame);
    ASSERT_TRUE(h.ok());
    const std::string_view body = std::string_view(frame).substr(kHeaderSize);
    for (size_t len = 0; len < body.size(); ++len) {
      // The header promises the full body, but fewer bytes arrived.
      EXPECT_FALSE(DecodeResponse(*h, body.substr(0, len)).ok());
      // The header itself is consistent with the cut body: the content is then truncated.
      FrameHeader cut = *h;
      cut.length = static_cast<uint32_t>(len);
      auto r = DecodeResponse(cut, body.substr(0, len));
      if (r.ok()) {
        EXPECT_NE(h->opcode, Opcode::kResult) << hex << " cut at " << len;
      }
    }
  }
}

TEST(CqlProtocol, CorruptFramesNeverCrash) {
  std::mt19937 rng(42);
  int failures = 0;
  for (const char* hex : {kRowsPage, kPrepared, kTypesRow, kSupported, kUnprepared}) {
    const std::string frame = Bytes(hex);
    auto h = DecodeHeader(frame);
    ASSERT_TRUE(h.ok());
    for (int i = 0; i < 2000; ++i) {
      std::string body = frame.substr(kHeaderSize);
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) body[rng() % body.size()] = static_cast<char>(rng());
      auto r = DecodeResponse(*h, body);
      if (!r.ok()) {
        ++failures;
        EXPECT_EQ(r.status().code(), StatusCode::kParseError) << r.status().ToString();
      }
    }
  }
  EXPECT_GT(failures, 0);
}

TEST(CqlProtocol, HugeCountsAreRejectedWithoutAllocating) {
  // Rows with 2^31-1 rows of 1 column in a 20-byte body.
  std::string body = Bytes("00000002 00000001 00000001 0000 0000 0001 61 0009 7fffffff");
  FrameHeader h;
  h.opcode = Opcode::kResult;
  h.length = static_cast<uint32_t>(body.size());
  auto r = DecodeResponse(h, body);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kParseError);
  // A column count far beyond the body.
  body = Bytes("00000002 00000001 7fffffff");
  h.length = static_cast<uint32_t>(body.size());
  EXPECT_FALSE(DecodeResponse(h, body).ok());
}

// Found by tests/fuzz/cql_fuzz.cc (corpus rows_without_columns): a rows result of zero columns
// and 2^31-1 rows passed the size check (0 bytes per row) and reserved 2^31 rows.
TEST(CqlProtocol, RowsWithoutColumnsAreRejected) {
  FrameHeader h;
  h.opcode = Opcode::kResult;
  for (const char* hex : {"00000002 00000000 00000000 7fffffff", "00000002 00000000 00000000 00000001"}) {
    std::string body = Bytes(hex);
    h.length = static_cast<uint32_t>(body.size());
    auto r = DecodeResponse(h, body);
    ASSERT_FALSE(r.ok()) << hex;
    EXPECT_EQ(r.status().code(), StatusCode::kParseError);
  }
  // No rows of no columns is a valid (empty) result.
  std::string body = Bytes("00000002 00000000 00000000 00000000");
  h.length = static_cast<uint32_t>(body.size());
  auto r = DecodeResponse(h, body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->result.rows.empty());
}

TEST(CqlProtocol, DecodesValuesStrictly) {
  EXPECT_FALSE(DecodeValue(CqlType::kInt, Bytes("000001")).ok());
  EXPECT_FALSE(DecodeValue(CqlType::kUuid, Bytes("00")).ok());
  EXPECT_TRUE(DecodeValue(CqlType::kInt, "")->is_null());  // CQL "empty"
  auto blob = DecodeValue(CqlType::kBlob, Bytes("cafe"));
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->kind(), CqlValue::Kind::kRaw);
  EXPECT_EQ(blob->ToString(), "0xcafe");
}

TEST(CqlProtocol, UuidParsesAndOrdersByTime) {
  auto u = Uuid::Parse("5b6962dc-e8a7-11f0-8000-0123456789ab");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->version(), 1);
  EXPECT_EQ(u->TimeTicks(), 0x1f0e8a75b6962dcULL);
  EXPECT_FALSE(Uuid::Parse("5b6962dc-e8a7-11f0-8000-0123456789a"));
  EXPECT_FALSE(Uuid::Parse("5b6962dc+e8a7-11f0-8000-0123456789ab"));
  EXPECT_FALSE(Uuid::Parse("zb6962dc-e8a7-11f0-8000-0123456789ab"));
  // A UUID formatted by the engine round-trips with the same time.
  std::string text = FormatTimeUuid(1767323045678123, 7, 0x1234, 0xabcdef012345ULL);
  auto t = Uuid::Parse(text);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->ToString(), text);
  EXPECT_EQ(t->UnixMicros(), 1767323045678123);
  EXPECT_EQ(t->TimeTicks() % 10, 7u);
}

TEST(CqlProtocol, ConsistencyNames) {
  Consistency c;
  ASSERT_TRUE(ParseConsistency("local_quorum", &c));
  EXPECT_EQ(c, Consistency::kLocalQuorum);
  ASSERT_TRUE(ParseConsistency("ONE", &c));
  EXPECT_EQ(c, Consistency::kOne);
  EXPECT_FALSE(ParseConsistency("most", &c));
}

TEST(CassandraUri, ParsesAndRejectsPasswords) {
  auto u = ParseCassandraUri("cassandra://127.0.0.1:9142/ks", false);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 9142);
  EXPECT_EQ(u->keyspace, "ks");
  auto d = ParseCassandraUri("cassandra://app@db/ks/tracking", true);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->user, "app");
  EXPECT_EQ(d->port, 9042);
  EXPECT_EQ(d->table, "tracking");
  auto secret = ParseCassandraUri("cassandra://app:hunter2@db/ks", false);
  ASSERT_FALSE(secret.ok());
  EXPECT_EQ(secret.status().message().find("hunter2"), std::string::npos);
  EXPECT_FALSE(ParseCassandraUri("cassandra://db/ks/t", false).ok());
  EXPECT_FALSE(ParseCassandraUri("cassandra://db/ks", true).ok());
  EXPECT_FALSE(ParseCassandraUri("cassandra://db:0/ks", false).ok());
  EXPECT_FALSE(ParseCassandraUri("cassandra:///ks", false).ok());
  EXPECT_FALSE(ParseCassandraUri("mysql://db/ks", false).ok());
}

}  // namespace
}  // namespace sluice::cassandra
