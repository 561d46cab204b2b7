#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

/// Locates one undecoded record: its partition, where it starts, and the position to resume
/// from once it has been processed (the source's checkpoint unit).
struct RawRecord {
  uint32_t begin = 0;  ///< offset of the payload in RawBatch::data
  uint32_t length = 0;
  int32_t partition = 0;
  int64_t offset = 0;       ///< source position of the record itself (byte offset, sequence, ...)
  int64_t next_offset = 0;  ///< source position just after it
  int64_t timestamp_micros = -1;  ///< broker/append time when the source knows one, else -1
};

/// Input a source could not turn into records (an HTTP page that failed for good): the worker
/// dead-letters it with the batch's records, so it is counted and committed with the positions.
struct SourceDeadLetter {
  std::string reason;
  std::string payload;
  int32_t partition = 0;
  int64_t offset = 0;
};

/// Holds a batch of undecoded records in one contiguous buffer, reused across polls.
class RawBatch {
 public:
  void Clear() {
    data_.clear();
    records_.clear();
    dead_letters_.clear();
  }
  /// Appends a record's payload and returns its descriptor for the caller to fill in.
  RawRecord& Append(std::string_view payload) {
    RawRecord r;
    r.begin = static_cast<uint32_t>(data_.size());
    r.length = static_cast<uint32_t>(payload.size());
    data_.append(payload);
    records_.push_back(r);
    return records_.back();
  }
  /// Removes the records for which `drop(record)` is true, keeping the others in order.
  template <typename Pred>
  void RemoveIf(Pred drop) {
    std::string data;
    std::vector<RawRecord> records;
    for (size_t i = 0; i < records_.size(); ++i) {
      if (drop(records_[i])) continue;
      RawRecord r = records_[i];
      r.begin = static_cast<uint32_t>(data.size());
      data.append(payload(i));
      records.push_back(r);
    }
    data_.swap(data);
    records_.swap(records);
  }

  /// Adds input that the source could not read (the source moves on past it).
  void AddDeadLetter(SourceDeadLetter letter) { dead_letters_.push_back(std::move(letter)); }
  const std::vector<SourceDeadLetter>& dead_letters() const { return dead_letters_; }

  size_t size() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  size_t bytes() const { return data_.size(); }
  const RawRecord& record(size_t i) const { return records_[i]; }
  std::string_view payload(size_t i) const {
    const RawRecord& r = records_[i];
    return std::string_view(data_).substr(r.begin, r.length);
  }

 private:
  std::string data_;
  std::vector<RawRecord> records_;
  std::vector<SourceDeadLetter> dead_letters_;
};

}  // namespace sluice
