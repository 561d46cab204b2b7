#include "core/serialize.h"

#include <cstring>

namespace sluice {
namespace {

// Row lengths and strings are bounded so a corrupt length cannot ask for gigabytes.
constexpr int64_t kMaxLength = int64_t{1} << 32;

}  // namespace

void BinaryWriter::PutI64(int64_t v) {
  char buf[8];
  uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out_.append(buf, 8);
}

void BinaryWriter::PutF64(double v) {
  int64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  PutI64(bits);
}

void BinaryWriter::PutString(std::string_view s) {
  PutI64(static_cast<int64_t>(s.size()));
  out_.append(s.data(), s.size());
}

void BinaryWriter::PutValue(const Value& v) {
  PutU8(static_cast<uint8_t>(v.type()));
  switch (v.type()) {
    case Type::kNull:
      break;
    case Type::kBool:
      PutU8(v.bool_value() ? 1 : 0);
      break;
    case Type::kInt64:
      PutI64(v.int_value());
      break;
    case Type::kDouble:
      PutF64(v.double_value());
      break;
    case Type::kString:
      PutString(v.string_value());
      break;
    case Type::kTimestamp:
      PutI64(v.time_value().micros);
      break;
  }
}

void BinaryWriter::PutRow(const std::vector<Value>& row) {
  PutI64(static_cast<int64_t>(row.size()));
  for (const auto& v : row) PutValue(v);
}

bool BinaryReader::Fail() {
  failed_ = true;
  return false;
}

bool BinaryReader::GetU8(uint8_t* v) {
  if (failed_ || pos_ + 1 > in_.size()) return Fail();
  *v = static_cast<uint8_t>(in_[pos_++]);
  return true;
}

bool BinaryReader::GetI64(int64_t* v) {
  if (failed_ || pos_ + 8 > in_.size()) return Fail();
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
  pos_ += 8;
  *v = static_cast<int64_t>(u);
  return true;
}

bool BinaryReader::GetF64(double* v) {
  int64_t bits;
  if (!GetI64(&bits)) return false;
  std::memcpy(v, &bits, sizeof bits);
  return true;
}

bool BinaryReader::GetString(std::string* s) {
  int64_t n;
  if (!GetI64(&n)) return false;
  if (n < 0 || n > kMaxLength || pos_ + static_cast<size_t>(n) > in_.size()) return Fail();
  s->assign(in_.data() + pos_, static_cast<size_t>(n));
  pos_ += static_cast<size_t>(n);
  return true;
}

bool BinaryReader::GetValue(Value* v) {
  uint8_t tag;
  if (!GetU8(&tag)) return false;
  switch (static_cast<Type>(tag)) {
    case Type::kNull:
      *v = Value::Null();
      return true;
    case Type::kBool: {
      uint8_t b;
      if (!GetU8(&b)) return false;
      *v = Value::Bool(b != 0);
      return true;
    }
    case Type::kInt64: {
      int64_t i;
      if (!GetI64(&i)) return false;
      *v = Value::Int(i);
      return true;
    }
    case Type::kDouble: {
      double d;
      if (!GetF64(&d)) return false;
      *v = Value::Double(d);
      return true;
    }
    case Type::kString: {
      std::string s;
      if (!GetString(&s)) return false;
      *v = Value::String(std::move(s));
      return true;
    }
    case Type::kTimestamp: {
      int64_t t;
      if (!GetI64(&t)) return false;
      *v = Value::TimeMicros(t);
      return true;
    }
  }
  return Fail();
}

bool BinaryReader::GetRow(std::vector<Value>* row) {
  int64_t n;
  if (!GetI64(&n)) return false;
  if (n < 0 || n > kMaxLength / 8 || static_cast<size_t>(n) > in_.size() - pos_) return Fail();
  row->assign(static_cast<size_t>(n), Value());
  for (auto& v : *row) {
    if (!GetValue(&v)) return false;
  }
  return true;
}

Status BinaryReader::status() const {
  if (!failed_) return Status::OK();
  return Status::Internal("truncated or corrupt state at byte " + std::to_string(pos_) + " of " +
                          std::to_string(in_.size()));
}

}  // namespace sluice
