#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/value.h"

namespace sluice {

/// Appends values to a compact little-endian binary buffer: the format of checkpointed engine
/// state (open windows, watermarks) and of rows a sink buffers across checkpoints. Not a wire
/// format between versions: a state written by one build is read by the same build.
class BinaryWriter {
 public:
  void PutU8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void PutI64(int64_t v);
  void PutF64(double v);
  void PutString(std::string_view s);
  void PutValue(const Value& v);
  void PutRow(const std::vector<Value>& row);

  const std::string& data() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

/// Reads what BinaryWriter wrote. Every Get* returns false once the input is exhausted or
/// malformed; status() then says where.
class BinaryReader {
 public:
  explicit BinaryReader(std::string_view in) : in_(in) {}

  bool GetU8(uint8_t* v);
  bool GetI64(int64_t* v);
  bool GetF64(double* v);
  bool GetString(std::string* s);
  bool GetValue(Value* v);
  bool GetRow(std::vector<Value>* row);

  bool done() const { return pos_ == in_.size(); }
  /// OK while every read succeeded; otherwise an Internal error naming the byte offset.
  Status status() const;

 private:
  bool Fail();
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace sluice
