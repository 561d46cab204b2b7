#include "runtime/repartition_record.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/serialize.h"
#include "runtime/delta_codec.h"
#include "runtime/source.h"

namespace sluice {
namespace {

constexpr char kMagic0 = 'S';
constexpr char kMagic1 = 'R';
constexpr uint8_t kVersion = 1;
constexpr std::string_view kWhat = "repartition record";

// Control flags: bit 0 idle, bit 1 end; any other bit is refused (a newer writer's meaning).
constexpr uint8_t kIdleFlag = 1;
constexpr uint8_t kEndFlag = 2;

// The key's own type tags. They are part of the stored form (and so of the partition a key goes
// to): never renumber them, even when core's Type enum changes.
constexpr char kKeyNull = 'n';
constexpr char kKeyBool = 'b';
constexpr char kKeyInt = 'i';
constexpr char kKeyDouble = 'd';
constexpr char kKeyString = 's';
constexpr char kKeyTime = 't';

void AppendLittleEndian64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// LEB128: 7 bits a byte, low first, high bit set on every byte but the last.
void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Doubles that compare equal group together, so they must give the same bytes: -0.0 is 0.0, and
// every NaN is the one quiet NaN.
uint64_t CanonicalDoubleBits(double d) {
  if (d == 0) d = 0.0;
  if (std::isnan(d)) return 0x7ff8000000000000ULL;
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

void WriteHeader(const AggregateSpec& spec, BinaryWriter* w) {
  w->PutU8(static_cast<uint8_t>(kMagic0));
  w->PutU8(static_cast<uint8_t>(kMagic1));
  w->PutU8(kVersion);
  w->PutI64(Fingerprint64(AggregateFingerprint(&spec)));
}

Status Corrupt(const std::string& why) {
  return Status::Internal("the repartition record is corrupt: " + why);
}

bool GetInt32(BinaryReader* r, int32_t* out) {
  int64_t v = 0;
  if (!r->GetI64(&v)) return false;
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
    return false;
  }
  *out = static_cast<int32_t>(v);
  return true;
}

void EncodeDeadLetter(const DeadLetter& d, BinaryWriter* w) {
  w->PutString(d.reason);
  w->PutString(d.payload);
  w->PutString(d.source);
  w->PutI64(d.partition);
  w->PutI64(d.offset);
  w->PutI64(d.time_micros);
  w->PutI64(d.seq);
  w->PutI64(d.generation);
}

Status DecodeDeadLetter(BinaryReader* r, DeadLetter* d) {
  if (!r->GetString(&d->reason) || !r->GetString(&d->payload) || !r->GetString(&d->source)) {
    return r->status();
  }
  if (!GetInt32(r, &d->partition) || !r->GetI64(&d->offset) || !r->GetI64(&d->time_micros) ||
      !GetInt32(r, &d->seq) || !r->GetI64(&d->generation)) {
    RETURN_IF_ERROR(r->status());
    return Corrupt("a dead letter's partition or seq is outside the 32-bit range");
  }
  return Status::OK();
}

}  // namespace

std::string EncodeRepartitionKey(const std::vector<Value>& keys) {
  std::string out;
  for (const auto& v : keys) {
    switch (v.type()) {
      case Type::kNull:
        out.push_back(kKeyNull);
        break;
      case Type::kBool:
        out.push_back(kKeyBool);
        out.push_back(v.bool_value() ? 1 : 0);
        break;
      case Type::kInt64:
        out.push_back(kKeyInt);
        AppendLittleEndian64(static_cast<uint64_t>(v.int_value()), &out);
        break;
      case Type::kDouble:
        out.push_back(kKeyDouble);
        AppendLittleEndian64(CanonicalDoubleBits(v.double_value()), &out);
        break;
      case Type::kString:
        out.push_back(kKeyString);
        AppendVarint(v.string_value().size(), &out);
        out.append(v.string_value());
        break;
      case Type::kTimestamp:
        out.push_back(kKeyTime);
        AppendLittleEndian64(static_cast<uint64_t>(v.time_value().micros), &out);
        break;
    }
  }
  return out;
}

uint64_t RepartitionKeyHash(std::string_view encoded_key) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  for (char c : encoded_key) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
  // MurmurHash3's fmix64: FNV-1a's low bits depend only on the low bits of each byte, so "a"
  // and "q" would share a partition of 8; the finalizer spreads every bit over all of them.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

int32_t RepartitionPartitionOf(std::string_view encoded_key, int32_t partitions) {
  if (partitions <= 1) return 0;
  return static_cast<int32_t>(RepartitionKeyHash(encoded_key) % static_cast<uint64_t>(partitions));
}

std::string RepartitionValueHeader(const AggregateSpec& spec) {
  BinaryWriter w;
  WriteHeader(spec, &w);
  return w.Take();
}

std::string EncodeRepartitionValue(const RepartitionRecord& record, const AggregateSpec& spec) {
  BinaryWriter w;
  WriteHeader(spec, &w);
  w.PutU8(static_cast<uint8_t>(record.kind));
  switch (record.kind) {
    case RepartitionRecord::Kind::kPartial:
      EncodeDeltaRows({record.partial}, &w);
      break;
    case RepartitionRecord::Kind::kControl: {
      const RepartitionControl& c = record.control;
      w.PutI64(c.upstream.topic_index);
      w.PutI64(c.upstream.partition);
      w.PutI64(c.watermark);
      w.PutI64(c.max_event_time);
      w.PutU8(static_cast<uint8_t>((c.idle ? kIdleFlag : 0) | (c.end ? kEndFlag : 0)));
      break;
    }
    case RepartitionRecord::Kind::kDeadLetter:
      EncodeDeadLetter(record.dead_letter, &w);
      break;
  }
  return w.Take();
}

Result<RepartitionRecord> DecodeRepartitionValue(std::string_view value,
                                                 const AggregateSpec& spec) {
  BinaryReader r(value);
  uint8_t magic0 = 0, magic1 = 0, version = 0;
  int64_t fingerprint = 0;
  if (!r.GetU8(&magic0) || !r.GetU8(&magic1) || magic0 != kMagic0 || magic1 != kMagic1) {
    return Status::Internal("the " + std::string(kWhat) + " is not a sluice repartition record");
  }
  if (!r.GetU8(&version)) return r.status();
  if (version != kVersion) {
    return Status::Internal("the " + std::string(kWhat) + " has version " + std::to_string(version) +
                            "; this build reads version " + std::to_string(kVersion));
  }
  if (!r.GetI64(&fingerprint)) return r.status();
  if (fingerprint != Fingerprint64(AggregateFingerprint(&spec))) {
    // The old records sit in the topic: say what clears them too.
    return Status::InvalidArgument(
        "a record of the repartition topic was written for a different [aggregate] (window, "
        "slide, keys or metrics changed since it was written); reset the pipeline: stop all its "
        "processes, delete the topics <pipeline>-repartition and "
        "<pipeline>-repartition.sluice-positions and clear the sink's output and stored positions, "
        "or give the changed pipeline a new name");
  }
  uint8_t kind = 0;
  if (!r.GetU8(&kind)) return r.status();
  RepartitionRecord record;
  switch (kind) {
    case static_cast<uint8_t>(RepartitionRecord::Kind::kPartial): {
      record.kind = RepartitionRecord::Kind::kPartial;
      std::vector<DeltaRow> rows;
      RETURN_IF_ERROR(DecodeDeltaRows(&r, &spec, &rows));
      if (rows.size() != 1) {
        return Corrupt("a partial holds " + std::to_string(rows.size()) + " groups, not 1");
      }
      record.partial = std::move(rows[0]);
      break;
    }
    case static_cast<uint8_t>(RepartitionRecord::Kind::kControl): {
      record.kind = RepartitionRecord::Kind::kControl;
      RepartitionControl& c = record.control;
      uint8_t flags = 0;
      if (!GetInt32(&r, &c.upstream.topic_index) || !GetInt32(&r, &c.upstream.partition) ||
          !r.GetI64(&c.watermark) || !r.GetI64(&c.max_event_time) || !r.GetU8(&flags)) {
        RETURN_IF_ERROR(r.status());
        return Corrupt("a control's topic index or partition is outside the 32-bit range");
      }
      if (flags & ~(kIdleFlag | kEndFlag)) {
        return Corrupt("a control has unknown flags " + std::to_string(flags));
      }
      c.idle = (flags & kIdleFlag) != 0;
      c.end = (flags & kEndFlag) != 0;
      break;
    }
    case static_cast<uint8_t>(RepartitionRecord::Kind::kDeadLetter):
      record.kind = RepartitionRecord::Kind::kDeadLetter;
      RETURN_IF_ERROR(DecodeDeadLetter(&r, &record.dead_letter));
      break;
    default:
      return Corrupt("unknown kind " + std::to_string(kind));
  }
  if (!r.done()) return Corrupt("trailing bytes after the record");
  return record;
}

}  // namespace sluice
