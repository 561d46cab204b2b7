// The records of the repartition topic (issue 16, docs/notes-16/repartition.md "Records"): the
// value codec of partials, controls and dead letters, the key encoding and the partition of a
// key. Expected bytes and hashes are worked by hand or by the Python lines quoted next to them.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "core/serialize.h"
#include "runtime/delta_codec.h"
#include "runtime/repartition_record.h"
#include "sluice_test_paths.h"

namespace sluice {
namespace {

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();

MetricSpec Metric(const std::string& name, AggFn fn, Type arg_type, Type result_type) {
  MetricSpec m;
  m.name = name;
  m.fn = fn;
  m.arg_type = arg_type;
  m.result_type = result_type;
  return m;
}

// Two keys (an int and a string) and one metric of every function the catalog has, sum and avg
// over both an int and a double argument.
AggregateSpec EveryMetricSpec() {
  AggregateSpec spec;
  spec.window_micros = 60 * kSec;
  spec.append_mode = true;
  KeySpec network;
  network.name = "network_id";
  network.type = Type::kInt64;
  spec.keys.push_back(std::move(network));
  KeySpec campaign;
  campaign.name = "campaign";
  campaign.type = Type::kString;
  spec.keys.push_back(std::move(campaign));
  spec.metrics.push_back(Metric("views", AggFn::kCount, Type::kNull, Type::kInt64));
  spec.metrics.push_back(Metric("clicks", AggFn::kSum, Type::kInt64, Type::kInt64));
  spec.metrics.push_back(Metric("spend", AggFn::kSum, Type::kDouble, Type::kDouble));
  spec.metrics.push_back(Metric("avg_bid", AggFn::kAvg, Type::kDouble, Type::kDouble));
  spec.metrics.push_back(Metric("avg_n", AggFn::kAvg, Type::kInt64, Type::kDouble));
  spec.metrics.push_back(Metric("first_seen", AggFn::kMin, Type::kTimestamp, Type::kTimestamp));
  spec.metrics.push_back(Metric("top_name", AggFn::kMax, Type::kString, Type::kString));
  spec.metrics.push_back(Metric("last_price", AggFn::kLast, Type::kDouble, Type::kDouble));
  return spec;
}

AggregateSpec CountSpec(const std::string& key) {
  AggregateSpec spec;
  spec.window_micros = 60 * kSec;
  KeySpec k;
  k.name = key;
  k.type = Type::kString;
  spec.keys.push_back(std::move(k));
  spec.metrics.push_back(Metric("n", AggFn::kCount, Type::kNull, Type::kInt64));
  return spec;
}

MetricState State(int64_t count, int64_t isum, double dsum, Value value, int64_t at) {
  MetricState s;
  s.count = count;
  s.isum = isum;
  s.dsum = dsum;
  s.value = std::move(value);
  s.at = at;
  return s;
}

void ExpectSameMetric(const MetricState& a, const MetricState& b, size_t i) {
  EXPECT_EQ(a.count, b.count) << "metric " << i;
  EXPECT_EQ(a.isum, b.isum) << "metric " << i;
  EXPECT_EQ(a.dsum, b.dsum) << "metric " << i;
  EXPECT_EQ(a.value, b.value) << "metric " << i;
  EXPECT_EQ(a.at, b.at) << "metric " << i;
}

RepartitionRecord Partial(DeltaRow row) {
  RepartitionRecord r;
  r.kind = RepartitionRecord::Kind::kPartial;
  r.partial = std::move(row);
  return r;
}

RepartitionRecord Control(RepartitionControl c) {
  RepartitionRecord r;
  r.kind = RepartitionRecord::Kind::kControl;
  r.control = c;
  return r;
}

DeltaRow EveryMetricRow() {
  DeltaRow row;
  row.window_start = -90 * kSec;  // before the epoch
  row.keys = {Value::Null(), Value::String("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80")};
  row.metrics = {
      State(7, 0, 0, Value::Null(), kMin64),                              // count
      State(3, -12, 0, Value::Null(), kMin64),                            // sum int
      State(2, 0, -0.125, Value::Null(), kMin64),                         // sum double
      State(4, 0, 1e300, Value::Null(), kMin64),                          // avg double
      State(5, kMax64, 0, Value::Null(), kMin64),                         // avg int
      State(1, 0, 0, Value::TimeMicros(-1), kMin64),                      // min timestamp
      State(2, 0, 0, Value::String(std::string("z\0y", 3)), kMin64),      // max string
      State(6, 0, 0, Value::Double(-std::numeric_limits<double>::infinity()), 59 * kSec),  // last
  };
  return row;
}

// Byte positions in a value: the header is the magic "SR" (2 bytes), the version (1 byte) and
// the aggregate's fingerprint hash (8 bytes); then the kind byte.
constexpr size_t kVersionAt = 2;
constexpr size_t kKindAt = 11;

TEST(RepartitionRecordTest, APartialRoundTripsWithNullAndUnicodeKeysAndEveryMetric) {
  const AggregateSpec spec = EveryMetricSpec();
  const DeltaRow row = EveryMetricRow();
  auto decoded = DecodeRepartitionValue(EncodeRepartitionValue(Partial(row), spec), spec);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_EQ(decoded->kind, RepartitionRecord::Kind::kPartial);
  EXPECT_EQ(decoded->partial.window_start, -90 * kSec);
  EXPECT_EQ(decoded->partial.keys, row.keys);
  ASSERT_EQ(decoded->partial.metrics.size(), spec.metrics.size());
  for (size_t i = 0; i < row.metrics.size(); ++i) ExpectSameMetric(decoded->partial.metrics[i], row.metrics[i], i);
}

// The layout of src/runtime/repartition_record.h, written out by hand for one control.
TEST(RepartitionRecordTest, AControlHasTheDocumentedBytes) {
  auto le = [](uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
    return s;
  };
  const std::string fingerprint = "60000000|k:user|m:n:count";
  // FNV-1a 64 of the fingerprint, by Python:
  //   h = 14695981039346656037
  //   for c in b"60000000|k:user|m:n:count": h = ((h ^ c) * 1099511628211) % 2**64
  //   hex(h) == '0x89669ba30a72e875'
  const std::string expected = std::string("SR\x01", 3) + le(0x89669ba30a72e875ULL) + "C" + le(2) + le(3) +
                               le(0x8000000000000000ULL) + le(300) + "\x02";
  const AggregateSpec spec = CountSpec("user");
  ASSERT_EQ(AggregateFingerprint(&spec), fingerprint);
  EXPECT_EQ(RepartitionValueHeader(spec), expected.substr(0, 11));
  EXPECT_EQ(EncodeRepartitionValue(Control({UpstreamId{2, 3}, kNoWatermark, 300, false, true}), spec), expected);
}

TEST(RepartitionRecordTest, AGroupOfTheWrongWidthIsRefused) {
  const AggregateSpec spec = EveryMetricSpec();
  DeltaRow row = EveryMetricRow();
  row.keys.pop_back();
  auto decoded = DecodeRepartitionValue(EncodeRepartitionValue(Partial(row), spec), spec);
  EXPECT_FALSE(decoded.ok());
}

TEST(RepartitionRecordTest, ControlsRoundTripWithEveryFlagAndNoWatermark) {
  const AggregateSpec spec = CountSpec("user");
  const std::vector<RepartitionControl> controls = {
      {UpstreamId{0, 0}, kNoWatermark, kNoWatermark, false, false},
      {UpstreamId{3, std::numeric_limits<int32_t>::max()}, -5 * kSec, 5 * kSec, true, false},
      {UpstreamId{std::numeric_limits<int32_t>::max(), 7}, 120 * kSec, 130 * kSec, false, true},
      {UpstreamId{1, 2}, kMax64, kMax64, true, true},
  };
  for (const auto& c : controls) {
    auto decoded = DecodeRepartitionValue(EncodeRepartitionValue(Control(c), spec), spec);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    ASSERT_EQ(decoded->kind, RepartitionRecord::Kind::kControl);
    EXPECT_EQ(decoded->control, c);
  }
}

TEST(RepartitionRecordTest, ADeadLetterRoundTripsByItsFields) {
  const AggregateSpec spec = CountSpec("user");
  RepartitionRecord r;
  r.kind = RepartitionRecord::Kind::kDeadLetter;
  r.dead_letter.reason = "late: window 2026-01-01 00:01:00 closed";
  r.dead_letter.payload = std::string("{\"u\":\"\xff\xfe\"}\0tail", 16);  // not UTF-8, a NUL
  r.dead_letter.source = "view_log";
  r.dead_letter.partition = 5;
  r.dead_letter.offset = kMax64;
  r.dead_letter.time_micros = -1;
  r.dead_letter.seq = 2;
  r.dead_letter.generation = 3;
  auto decoded = DecodeRepartitionValue(EncodeRepartitionValue(r, spec), spec);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_EQ(decoded->kind, RepartitionRecord::Kind::kDeadLetter);
  const DeadLetter& d = decoded->dead_letter;
  EXPECT_EQ(d.reason, r.dead_letter.reason);
  EXPECT_EQ(d.payload, r.dead_letter.payload);
  EXPECT_EQ(d.payload.size(), 16u);
  EXPECT_EQ(d.source, "view_log");
  EXPECT_EQ(d.partition, 5);
  EXPECT_EQ(d.offset, kMax64);
  EXPECT_EQ(d.time_micros, -1);
  EXPECT_EQ(d.seq, 2);
  EXPECT_EQ(d.generation, 3);
}

TEST(RepartitionRecordTest, ARecordOfAnotherAggregateIsRefusedSayingToResetThePipeline) {
  const AggregateSpec a = CountSpec("user");
  const AggregateSpec b = CountSpec("country");
  auto decoded = DecodeRepartitionValue(
      EncodeRepartitionValue(Control({UpstreamId{0, 1}, 10, 20, false, false}), a), b);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = decoded.status().message();
  EXPECT_NE(m.find("different [aggregate]"), std::string::npos) << m;
  EXPECT_NE(m.find("reset the pipeline"), std::string::npos) << m;
  EXPECT_NE(m.find("-repartition"), std::string::npos) << m;
}

TEST(RepartitionRecordTest, EveryTruncationAndATrailingByteAreRefused) {
  const AggregateSpec spec = EveryMetricSpec();
  RepartitionRecord dead;
  dead.kind = RepartitionRecord::Kind::kDeadLetter;
  dead.dead_letter.payload = "xyz";
  for (const auto& r : {Partial(EveryMetricRow()), Control({UpstreamId{2, 3}, 1, 2, true, false}), dead}) {
    const std::string v = EncodeRepartitionValue(r, spec);
    ASSERT_TRUE(DecodeRepartitionValue(v, spec).ok());
    for (size_t n = 0; n < v.size(); ++n) {
      EXPECT_FALSE(DecodeRepartitionValue(std::string_view(v).substr(0, n), spec).ok())
          << "prefix of " << n << " of " << v.size() << " bytes";
    }
    auto trailing = DecodeRepartitionValue(v + '\0', spec);
    ASSERT_FALSE(trailing.ok());
    EXPECT_NE(trailing.status().message().find("trailing"), std::string::npos) << trailing.status().ToString();
  }
}

TEST(RepartitionRecordTest, AnUnknownKindVersionOrFlagIsRefused) {
  const AggregateSpec spec = CountSpec("user");
  const std::string v = EncodeRepartitionValue(Control({UpstreamId{0, 0}, 1, 2, false, false}), spec);
  ASSERT_EQ(v[kKindAt], 'C');

  std::string kind = v;
  kind[kKindAt] = 'X';
  auto unknown = DecodeRepartitionValue(kind, spec);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown kind 88"), std::string::npos) << unknown.status().ToString();

  std::string version = v;
  ASSERT_EQ(version[kVersionAt], 1);
  version[kVersionAt] = 2;
  auto newer = DecodeRepartitionValue(version, spec);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("version 2"), std::string::npos) << newer.status().ToString();

  std::string magic = v;
  magic[1] = 'X';
  EXPECT_FALSE(DecodeRepartitionValue(magic, spec).ok());

  std::string flags = v;
  flags.back() = 4;
  auto unknown_flag = DecodeRepartitionValue(flags, spec);
  ASSERT_FALSE(unknown_flag.ok());
  EXPECT_NE(unknown_flag.status().message().find("flags"), std::string::npos);
}

TEST(RepartitionRecordTest, HostileCountsAndLengthsAreRefused) {
  const AggregateSpec spec = CountSpec("user");
  auto header = [&](char kind) {
    BinaryWriter w;
    for (char c : RepartitionValueHeader(spec)) w.PutU8(static_cast<uint8_t>(c));
    w.PutU8(static_cast<uint8_t>(kind));
    return w;
  };
  // A partial of two groups, and one of 2^62 groups with one group's bytes.
  DeltaRow row;
  row.keys = {Value::String("a")};
  row.metrics.resize(1);
  {
    BinaryWriter w = header('P');
    EncodeDeltaRows({row, row}, &w);
    auto two = DecodeRepartitionValue(w.data(), spec);
    ASSERT_FALSE(two.ok());
    EXPECT_NE(two.status().message().find("2 groups"), std::string::npos) << two.status().ToString();
  }
  {
    BinaryWriter body;
    EncodeDeltaRows({row}, &body);
    std::string bytes = body.data();
    bytes[7] = 0x40;  // count 1 + 2^62
    BinaryWriter w = header('P');
    std::string v = w.data() + bytes;
    EXPECT_FALSE(DecodeRepartitionValue(v, spec).ok());
  }
  // A dead letter whose reason claims 2^40 bytes; a partition outside int32.
  {
    BinaryWriter w = header('D');
    w.PutI64(int64_t{1} << 40);
    w.PutString("short");
    EXPECT_FALSE(DecodeRepartitionValue(w.data(), spec).ok());
  }
  {
    BinaryWriter w = header('C');
    w.PutI64(0);
    w.PutI64(int64_t{1} << 31);
    w.PutI64(0);
    w.PutI64(0);
    w.PutU8(0);
    auto wide = DecodeRepartitionValue(w.data(), spec);
    ASSERT_FALSE(wide.ok());
    EXPECT_NE(wide.status().message().find("32-bit"), std::string::npos) << wide.status().ToString();
  }
}

TEST(RepartitionRecordTest, KeysAreTypeTaggedAndSelfDelimiting) {
  // By hand: 'i' then 1 as 8 bytes little-endian; 's', length 1 as LEB128, "1"; 'n'.
  EXPECT_EQ(EncodeRepartitionKey({Value::Int(1)}), std::string("i\x01\0\0\0\0\0\0\0", 9));
  EXPECT_EQ(EncodeRepartitionKey({Value::String("1")}), "s\x01" "1");
  EXPECT_EQ(EncodeRepartitionKey({Value::Null()}), "n");
  EXPECT_EQ(EncodeRepartitionKey({}), "");
  EXPECT_EQ(EncodeRepartitionKey({Value::Bool(true)}), std::string("b\x01", 2));
  // 1.0 is 0x3ff0000000000000.
  EXPECT_EQ(EncodeRepartitionKey({Value::Double(1.0)}), std::string("d\0\0\0\0\0\0\xf0\x3f", 9));
  // A 200-byte string: LEB128 200 = 0xc8 0x01.
  EXPECT_EQ(EncodeRepartitionKey({Value::String(std::string(200, 'x'))}).substr(0, 3), "s\xc8\x01");

  const std::vector<std::vector<Value>> distinct = {
      {Value::Int(1)},         {Value::String("1")},  {Value::TimeMicros(1)},
      {Value::Double(1.0)},    {Value::Bool(true)},   {Value::Null()},
      {Value::String("")},     {},                    {Value::String("ab"), Value::String("c")},
      {Value::String("a"), Value::String("bc")},      {Value::Null(), Value::Null()},
  };
  std::set<std::string> seen;
  for (const auto& k : distinct) EXPECT_TRUE(seen.insert(EncodeRepartitionKey(k)).second);

  // Values that compare equal group together, so they have the same key.
  EXPECT_EQ(EncodeRepartitionKey({Value::Double(-0.0)}), EncodeRepartitionKey({Value::Double(0.0)}));
  EXPECT_EQ(EncodeRepartitionKey({Value::Double(std::nan("1"))}),
            EncodeRepartitionKey({Value::Double(-std::nan(""))}));
}

// The fuzz target's seeds are written by tests/fuzz/make_repartition_seeds.py from the documented
// layout, not by this encoder: the valid ones decode to what that script wrote, for the
// [aggregate] of repartition_fuzz.cc, and the refused ones are refused.
TEST(RepartitionRecordTest, TheFuzzSeedsWrittenInPythonDecode) {
  AggregateSpec spec;
  spec.window_micros = 60 * kSec;
  for (const auto& [name, type] : {std::pair{"network_id", Type::kInt64}, std::pair{"campaign", Type::kString}}) {
    KeySpec k;
    k.name = name;
    k.type = type;
    spec.keys.push_back(std::move(k));
  }
  spec.metrics.push_back(Metric("views", AggFn::kCount, Type::kNull, Type::kInt64));
  spec.metrics.push_back(Metric("spend", AggFn::kSum, Type::kDouble, Type::kDouble));
  spec.metrics.push_back(Metric("top", AggFn::kMax, Type::kString, Type::kString));
  spec.metrics.push_back(Metric("price", AggFn::kLast, Type::kDouble, Type::kDouble));
  auto read = [&](const std::string& name) {
    std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/tests/fuzz/corpus/repartition/" + name, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    EXPECT_FALSE(bytes.str().empty()) << name;
    return DecodeRepartitionValue(bytes.str(), spec);
  };

  auto partial = read("partial_every_metric");
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  EXPECT_EQ(partial->partial.window_start, 120 * kSec);
  EXPECT_EQ(partial->partial.keys, (std::vector<Value>{Value::Int(7), Value::String("caf\xc3\xa9 \xe2\x82\xac")}));
  ExpectSameMetric(partial->partial.metrics[1], State(2, 0, -1.25, Value::Null(), kMin64), 1);
  ExpectSameMetric(partial->partial.metrics[2], State(1, 0, 0, Value::String("zeta"), kMin64), 2);
  ExpectSameMetric(partial->partial.metrics[3], State(4, 0, 0, Value::Double(9.5), 59 * kSec), 3);
  auto nulls = read("partial_null_keys_negative_window");
  ASSERT_TRUE(nulls.ok()) << nulls.status().ToString();
  EXPECT_EQ(nulls->partial.window_start, -60 * kSec);
  EXPECT_EQ(nulls->partial.keys, (std::vector<Value>{Value::Null(), Value::Null()}));
  EXPECT_TRUE(read("partial_time_and_bool_values").ok());

  auto idle = read("control_idle");
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  EXPECT_EQ(idle->control, (RepartitionControl{UpstreamId{1, 0}, 50 * kSec, 60 * kSec, true, false}));
  auto end = read("control_end_no_watermark");
  ASSERT_TRUE(end.ok()) << end.status().ToString();
  EXPECT_EQ(end->control, (RepartitionControl{UpstreamId{0, 7}, kNoWatermark, kNoWatermark, false, true}));
  EXPECT_TRUE(read("control_plain").ok());

  auto dead = read("dead_letter");
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  EXPECT_EQ(dead->dead_letter.reason, "late: window closed");
  EXPECT_EQ(dead->dead_letter.payload, "{\"a\":1}");
  EXPECT_EQ(dead->dead_letter.source, "view_log");
  EXPECT_EQ(dead->dead_letter.partition, 5);
  EXPECT_EQ(dead->dead_letter.offset, 123);
  EXPECT_EQ(dead->dead_letter.time_micros, 1'700'000'000'000'000);
  EXPECT_EQ(dead->dead_letter.seq, 0);
  EXPECT_EQ(dead->dead_letter.generation, 1);
  auto binary = read("dead_letter_binary_payload");
  ASSERT_TRUE(binary.ok()) << binary.status().ToString();
  EXPECT_EQ(binary->dead_letter.payload, std::string("\xff\0\xfe", 3));

  EXPECT_EQ(read("other_aggregate").status().code(), StatusCode::kInvalidArgument);
  for (const char* refused : {"newer_version", "truncated_partial", "unknown_kind"}) {
    EXPECT_FALSE(read(refused).ok()) << refused;
  }
}

// The pinned values come from this independent Python (3) computation:
//   M = 2**64 - 1
//   def h(b):
//       x = 0xcbf29ce484222325
//       for c in b: x = ((x ^ c) * 0x100000001b3) & M
//       x ^= x >> 33; x = (x * 0xff51afd7ed558ccd) & M; x ^= x >> 33
//       x = (x * 0xc4ceb9fe1a85ec53) & M; x ^= x >> 33
//       return x
//   h(b''), h(b'i' + struct.pack('<q', 1)), h(b's\x011'), h(b'n'),
//   h(b's\x03ann' + b'i' + struct.pack('<q', 42)), h(b's\x01a'), h(b's\x01q')   (and each % 8, % 6)
TEST(RepartitionRecordTest, ThePartitionOfAKeyIsPinned) {
  struct Case {
    std::vector<Value> keys;
    uint64_t hash;
    int32_t of8, of6;
  };
  const std::vector<Case> cases = {
      {{}, 0xefd01f60ba992926ULL, 6, 2},
      {{Value::Int(1)}, 0x4c131ef12b4020e1ULL, 1, 1},
      {{Value::String("1")}, 0xcb63d0162a4c2ec3ULL, 3, 3},
      {{Value::Null()}, 0x0b3f11e5051d8d0bULL, 3, 5},
      {{Value::String("ann"), Value::Int(42)}, 0xd4a5888e7b6e0960ULL, 0, 0},
      // Plain FNV-1a would put these two in one partition of 8 (they differ in bit 4 only).
      {{Value::String("a")}, 0xc77ac2a82f16f628ULL, 0, 0},
      {{Value::String("q")}, 0x43b49a507f60dd05ULL, 5, 3},
  };
  for (const auto& c : cases) {
    const std::string key = EncodeRepartitionKey(c.keys);
    EXPECT_EQ(RepartitionKeyHash(key), c.hash);
    EXPECT_EQ(RepartitionPartitionOf(key, 8), c.of8);
    EXPECT_EQ(RepartitionPartitionOf(key, 6), c.of6);
    EXPECT_EQ(RepartitionPartitionOf(key, 1), 0);
    EXPECT_EQ(RepartitionPartitionOf(key, 0), 0);
    EXPECT_EQ(RepartitionPartitionOf(key, -3), 0);
    EXPECT_EQ(RepartitionPartitionOf(key, std::numeric_limits<int32_t>::min()), 0);
    const int32_t big = RepartitionPartitionOf(key, std::numeric_limits<int32_t>::max());
    EXPECT_EQ(big, static_cast<int32_t>(c.hash % 2147483647ULL));
  }
}

TEST(RepartitionRecordTest, KeysSpreadEvenlyOverEightPartitions) {
  // 10,000 keys of each shape: 1,250 expected per partition, a standard deviation of about 33;
  // within 10% is nearly 4 deviations.
  for (int shape = 0; shape < 2; ++shape) {
    std::vector<int> counts(8, 0);
    for (int i = 0; i < 10000; ++i) {
      std::vector<Value> keys = shape == 0 ? std::vector<Value>{Value::Int(i)}
                                           : std::vector<Value>{Value::Int(i % 7), Value::String("campaign-" + std::to_string(i))};
      ++counts[RepartitionPartitionOf(EncodeRepartitionKey(keys), 8)];
    }
    for (int p = 0; p < 8; ++p) {
      EXPECT_GE(counts[p], 1125) << "shape " << shape << " partition " << p;
      EXPECT_LE(counts[p], 1375) << "shape " << shape << " partition " << p;
    }
  }
}

}  // namespace
}  // namespace sluice
