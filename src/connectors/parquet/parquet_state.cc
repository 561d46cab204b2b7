#include "connectors/parquet/parquet_state.h"

#include "core/serialize.h"

namespace sluice {
namespace {

constexpr std::string_view kMagic = "SLUICEPQ";
constexpr int64_t kFormatVersion = 3;
constexpr int64_t kFirstFormatVersion = 1;  ///< without dead_letter_seq
constexpr int64_t kCarryVersion = 3;        ///< the first with `carried`
/// A state that moved into task files: never written by a pipeline without tasks, and refused
/// by the sluice versions from before tasks, so an older process cannot start over it.
constexpr int64_t kMovedVersion = 4;
constexpr std::string_view kTaskMagic = "SLUICEPT";
constexpr int64_t kTaskFormatVersion = 1;
constexpr std::string_view kIntentMagic = "SLUICEPI";
constexpr size_t kChecksumSize = 8;

uint64_t Checksum(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::string EncodeParquetSinkState(std::string_view pipeline, int64_t seq, int64_t dead_letter_seq,
                                   const std::vector<StoredPosition>& positions,
                                   std::string_view engine_state, const std::vector<Field>& columns,
                                   int64_t row_count, std::string_view encoded_rows, bool carried,
                                   bool moved) {
  BinaryWriter w;
  w.PutI64(moved ? kMovedVersion : kFormatVersion);
  w.PutString(pipeline);
  w.PutI64(seq);
  w.PutI64(dead_letter_seq);
  w.PutI64(carried ? 1 : 0);
  w.PutI64(static_cast<int64_t>(positions.size()));
  for (const auto& p : positions) {
    w.PutString(p.source);
    w.PutI64(p.partition);
    w.PutI64(p.offset);
  }
  w.PutString(engine_state);
  w.PutI64(static_cast<int64_t>(columns.size()));
  for (const auto& f : columns) {
    w.PutString(f.name);
    w.PutU8(static_cast<uint8_t>(f.type));
  }
  w.PutI64(row_count);
  std::string out(kMagic);
  out += w.data();
  out += encoded_rows;
  BinaryWriter sum;
  sum.PutI64(static_cast<int64_t>(Checksum(out)));
  out += sum.data();
  return out;
}

Result<ParquetSinkState> DecodeParquetSinkState(std::string_view data, std::string_view pipeline) {
  if (data.size() < kMagic.size() + 8 + kChecksumSize || data.substr(0, kMagic.size()) != kMagic) {
    return Status::Internal("not a sluice parquet sink state file (bad magic)");
  }
  std::string_view body = data.substr(kMagic.size(), data.size() - kMagic.size() - kChecksumSize);
  BinaryReader r(body);
  int64_t version = 0;
  if (!r.GetI64(&version)) return r.status();
  if (version < kFirstFormatVersion || version > kMovedVersion) {
    return Status::Internal("state file format version " + std::to_string(version) +
                            ", but this build reads version " + std::to_string(kFormatVersion));
  }
  BinaryReader sum_reader(data.substr(data.size() - kChecksumSize));
  int64_t stored_sum = 0;
  if (!sum_reader.GetI64(&stored_sum) ||
      static_cast<uint64_t>(stored_sum) != Checksum(data.substr(0, data.size() - kChecksumSize))) {
    return Status::Internal("checksum mismatch: the file is truncated or corrupt");
  }

  ParquetSinkState s;
  s.moved = version == kMovedVersion;
  std::string stored_pipeline;
  int64_t n = 0;
  if (!r.GetString(&stored_pipeline) || !r.GetI64(&s.seq)) return r.status();
  if (version >= 2 && !r.GetI64(&s.dead_letter_seq)) return r.status();
  if (version >= kCarryVersion) {
    int64_t carried = 0;
    if (!r.GetI64(&carried)) return r.status();
    if (carried != 0 && carried != 1) {
      return Status::Internal("bad carried flag " + std::to_string(carried));
    }
    s.carried = carried == 1;
  }
  if (!r.GetI64(&n)) return r.status();
  if (stored_pipeline != pipeline) {
    return Status::Internal("the state belongs to pipeline '" + stored_pipeline + "', not '" +
                            std::string(pipeline) + "'");
  }
  if (s.seq < 0 || s.dead_letter_seq < 0 || n < 0) return Status::Internal("negative sequence number or count");
  for (int64_t i = 0; i < n; ++i) {
    StoredPosition p;
    int64_t partition = 0;
    if (!r.GetString(&p.source) || !r.GetI64(&partition) || !r.GetI64(&p.offset)) return r.status();
    p.partition = static_cast<int32_t>(partition);
    s.positions.push_back(std::move(p));
  }
  if (!r.GetString(&s.engine_state) || !r.GetI64(&n)) return r.status();
  if (n < 0) return Status::Internal("negative column count");
  for (int64_t i = 0; i < n; ++i) {
    Field f;
    uint8_t type = 0;
    if (!r.GetString(&f.name) || !r.GetU8(&type)) return r.status();
    if (type > static_cast<uint8_t>(Type::kTimestamp)) {
      return Status::Internal("unknown column type tag " + std::to_string(type));
    }
    f.type = static_cast<Type>(type);
    s.columns.push_back(std::move(f));
  }
  if (!r.GetI64(&n)) return r.status();
  if (n < 0) return Status::Internal("negative row count");
  for (int64_t i = 0; i < n; ++i) {
    std::vector<Value> row;
    if (!r.GetRow(&row)) return r.status();
    if (row.size() != s.columns.size()) {
      return Status::Internal("buffered row " + std::to_string(i) + " has " +
                              std::to_string(row.size()) + " values for " +
                              std::to_string(s.columns.size()) + " columns");
    }
    s.rows.push_back(std::move(row));
  }
  if (!r.done()) return Status::Internal("unexpected bytes after the buffered rows");
  return s;
}

std::string EncodeParquetTaskFile(std::string_view pipeline, const ParquetTaskFile& f) {
  BinaryWriter w;
  w.PutI64(kTaskFormatVersion);
  w.PutString(pipeline);
  w.PutString(f.task.source);
  w.PutI64(f.task.partition);
  w.PutI64(f.fence);
  w.PutString(f.owner);
  w.PutI64(f.commit_number);
  w.PutI64(f.seq);
  w.PutI64(f.dead_letter_seq);
  w.PutI64(static_cast<int64_t>(f.positions.size()));
  for (const auto& p : f.positions) {
    w.PutString(p.source);
    w.PutI64(p.partition);
    w.PutI64(p.offset);
  }
  w.PutI64(f.progress.max_event_time);
  w.PutI64(f.progress.watermark);
  w.PutI64(f.progress.enforced);
  w.PutI64(f.progress.idle ? 1 : 0);
  w.PutI64(f.updated_micros);
  w.PutString(f.state);
  std::string out(kTaskMagic);
  out += w.data();
  BinaryWriter sum;
  sum.PutI64(static_cast<int64_t>(Checksum(out)));
  out += sum.data();
  return out;
}

Result<ParquetTaskFile> DecodeParquetTaskFile(std::string_view data, std::string_view pipeline) {
  if (data.size() < kTaskMagic.size() + 8 + kChecksumSize ||
      data.substr(0, kTaskMagic.size()) != kTaskMagic) {
    return Status::Internal("not a sluice parquet task file (bad magic)");
  }
  BinaryReader sum_reader(data.substr(data.size() - kChecksumSize));
  int64_t stored_sum = 0;
  if (!sum_reader.GetI64(&stored_sum) ||
      static_cast<uint64_t>(stored_sum) != Checksum(data.substr(0, data.size() - kChecksumSize))) {
    return Status::Internal("checksum mismatch: the file is truncated or corrupt");
  }
  BinaryReader r(data.substr(kTaskMagic.size(), data.size() - kTaskMagic.size() - kChecksumSize));
  int64_t version = 0;
  if (!r.GetI64(&version)) return r.status();
  if (version != kTaskFormatVersion) {
    return Status::Internal("task file format version " + std::to_string(version) +
                            ", but this build reads version " + std::to_string(kTaskFormatVersion));
  }
  ParquetTaskFile f;
  std::string stored_pipeline;
  int64_t partition = 0, n = 0, idle = 0;
  if (!r.GetString(&stored_pipeline) || !r.GetString(&f.task.source) || !r.GetI64(&partition) ||
      !r.GetI64(&f.fence) || !r.GetString(&f.owner) || !r.GetI64(&f.commit_number) ||
      !r.GetI64(&f.seq) || !r.GetI64(&f.dead_letter_seq) || !r.GetI64(&n)) {
    return r.status();
  }
  if (stored_pipeline != pipeline) {
    return Status::Internal("the task belongs to pipeline '" + stored_pipeline + "', not '" +
                            std::string(pipeline) + "'");
  }
  f.task.partition = static_cast<int32_t>(partition);
  if (f.seq < 0 || f.dead_letter_seq < 0 || n < 0) {
    return Status::Internal("negative sequence number or count");
  }
  for (int64_t i = 0; i < n; ++i) {
    StoredPosition p;
    int64_t q = 0;
    if (!r.GetString(&p.source) || !r.GetI64(&q) || !r.GetI64(&p.offset)) return r.status();
    p.partition = static_cast<int32_t>(q);
    f.positions.push_back(std::move(p));
  }
  if (!r.GetI64(&f.progress.max_event_time) || !r.GetI64(&f.progress.watermark) ||
      !r.GetI64(&f.progress.enforced) || !r.GetI64(&idle) || !r.GetI64(&f.updated_micros) ||
      !r.GetString(&f.state)) {
    return r.status();
  }
  if (idle != 0 && idle != 1) return Status::Internal("bad idle flag " + std::to_string(idle));
  f.progress.idle = idle == 1;
  if (!r.done()) return Status::Internal("unexpected bytes after the task's state");
  return f;
}

std::string EncodeParquetCommitIntent(std::string_view pipeline,
                                      const std::vector<ParquetTaskFile>& files) {
  BinaryWriter w;
  w.PutI64(kTaskFormatVersion);
  w.PutString(pipeline);
  w.PutI64(static_cast<int64_t>(files.size()));
  for (const auto& f : files) w.PutString(EncodeParquetTaskFile(pipeline, f));
  std::string out(kIntentMagic);
  out += w.data();
  BinaryWriter sum;
  sum.PutI64(static_cast<int64_t>(Checksum(out)));
  out += sum.data();
  return out;
}

Result<std::vector<ParquetTaskFile>> DecodeParquetCommitIntent(std::string_view data,
                                                               std::string_view pipeline) {
  if (data.size() < kIntentMagic.size() + 8 + kChecksumSize ||
      data.substr(0, kIntentMagic.size()) != kIntentMagic) {
    return Status::Internal("not a sluice parquet commit intent (bad magic)");
  }
  BinaryReader sum_reader(data.substr(data.size() - kChecksumSize));
  int64_t stored_sum = 0;
  if (!sum_reader.GetI64(&stored_sum) ||
      static_cast<uint64_t>(stored_sum) != Checksum(data.substr(0, data.size() - kChecksumSize))) {
    return Status::Internal("checksum mismatch: the file is truncated or corrupt");
  }
  BinaryReader r(
      data.substr(kIntentMagic.size(), data.size() - kIntentMagic.size() - kChecksumSize));
  int64_t version = 0, n = 0;
  std::string stored_pipeline;
  if (!r.GetI64(&version) || !r.GetString(&stored_pipeline) || !r.GetI64(&n)) return r.status();
  if (version != kTaskFormatVersion) {
    return Status::Internal("commit intent format version " + std::to_string(version) +
                            ", but this build reads version " + std::to_string(kTaskFormatVersion));
  }
  if (stored_pipeline != pipeline || n < 0)
    return Status::Internal("a commit intent of another pipeline");
  std::vector<ParquetTaskFile> out;
  for (int64_t i = 0; i < n; ++i) {
    std::string entry;
    if (!r.GetString(&entry)) return r.status();
    ASSIGN_OR_RETURN(ParquetTaskFile f, DecodeParquetTaskFile(entry, pipeline));
    out.push_back(std::move(f));
  }
  if (!r.done()) return Status::Internal("unexpected bytes after the commit intent's tasks");
  return out;
}

}  // namespace sluice
