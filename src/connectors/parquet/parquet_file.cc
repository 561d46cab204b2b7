#include "connectors/parquet/parquet_file.h"

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <fcntl.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>
#include <parquet/exception.h>
#include <parquet/properties.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>

namespace sluice {
namespace {

Status FromArrow(const arrow::Status& s, const std::string& what) {
  return Status::IOError(what + ": " + s.ToString());
}

std::shared_ptr<arrow::DataType> ArrowType(Type t) {
  switch (t) {
    case Type::kBool:
      return arrow::boolean();
    case Type::kInt64:
      return arrow::int64();
    case Type::kDouble:
      return arrow::float64();
    case Type::kTimestamp:
      return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
    case Type::kString:
    case Type::kNull:
      return arrow::utf8();
  }
  return arrow::utf8();
}

Status WrongType(const Field& f, const Value& v) {
  return Status::Internal("parquet column " + f.name + " is " + std::string(TypeName(f.type)) +
                          " but a row holds a " + std::string(TypeName(v.type())) + " value");
}

template <typename Builder, typename Get>
Result<std::shared_ptr<arrow::Array>> BuildColumn(
    Builder& b, const Field& f, size_t slot, const std::vector<const std::vector<Value>*>& rows,
    Get get) {
  arrow::Status st = b.Reserve(static_cast<int64_t>(rows.size()));
  for (const auto* row : rows) {
    if (!st.ok()) break;
    const Value& v = (*row)[slot];
    if (v.is_null()) {
      st = b.AppendNull();
      continue;
    }
    bool ok = true;
    auto x = get(v, &ok);
    if (!ok) return WrongType(f, v);
    st = b.Append(x);
  }
  std::shared_ptr<arrow::Array> out;
  if (st.ok()) st = b.Finish(&out);
  if (!st.ok()) return FromArrow(st, "building parquet column " + f.name);
  return out;
}

Result<std::shared_ptr<arrow::Array>> Column(const Field& f, size_t slot,
                                             const std::vector<const std::vector<Value>*>& rows,
                                             arrow::MemoryPool* pool) {
  switch (f.type) {
    case Type::kBool: {
      arrow::BooleanBuilder b(pool);
      return BuildColumn(b, f, slot, rows, [](const Value& v, bool* ok) {
        *ok = v.type() == Type::kBool;
        return *ok && v.bool_value();
      });
    }
    case Type::kInt64: {
      arrow::Int64Builder b(pool);
      return BuildColumn(b, f, slot, rows, [](const Value& v, bool* ok) {
        *ok = v.type() == Type::kInt64;
        return *ok ? v.int_value() : int64_t{0};
      });
    }
    case Type::kDouble: {
      arrow::DoubleBuilder b(pool);
      return BuildColumn(b, f, slot, rows, [](const Value& v, bool* ok) {
        if (v.type() == Type::kInt64) return static_cast<double>(v.int_value());
        *ok = v.type() == Type::kDouble;
        return *ok ? v.double_value() : 0.0;
      });
    }
    case Type::kTimestamp: {
      arrow::TimestampBuilder b(ArrowType(Type::kTimestamp), pool);
      return BuildColumn(b, f, slot, rows, [](const Value& v, bool* ok) {
        *ok = v.type() == Type::kTimestamp;
        return *ok ? v.time_value().micros : int64_t{0};
      });
    }
    case Type::kString:
    case Type::kNull: {
      arrow::StringBuilder b(pool);
      return BuildColumn(b, f, slot, rows, [](const Value& v, bool* ok) -> std::string_view {
        *ok = v.type() == Type::kString;
        return *ok ? std::string_view(v.string_value()) : std::string_view();
      });
    }
  }
  return Status::Internal("unknown column type");
}

parquet::Compression::type Codec(ParquetCompression c) {
  switch (c) {
    case ParquetCompression::kZstd:
      return parquet::Compression::ZSTD;
    case ParquetCompression::kSnappy:
      return parquet::Compression::SNAPPY;
    case ParquetCompression::kGzip:
      return parquet::Compression::GZIP;
    case ParquetCompression::kNone:
      return parquet::Compression::UNCOMPRESSED;
  }
  return parquet::Compression::UNCOMPRESSED;
}

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("open " + path + " to fsync: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError("fsync " + path + ": " + std::strerror(err));
  return Status::OK();
}

Status Write(const std::string& path, const Schema& schema, const std::vector<size_t>& columns,
             const std::vector<const std::vector<Value>*>& rows, ParquetCompression compression,
             bool sync_file) {
  // The system allocator: no allocator threads or caches of Arrow's own in the engine's process.
  arrow::MemoryPool* pool = arrow::system_memory_pool();
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (size_t slot : columns) {
    const Field& f = schema.field(slot);
    fields.push_back(arrow::field(f.name, ArrowType(f.type), /*nullable=*/true));
    ASSIGN_OR_RETURN(auto array, Column(f, slot, rows, pool));
    arrays.push_back(std::move(array));
  }
  auto table = arrow::Table::Make(arrow::schema(std::move(fields)), std::move(arrays),
                                  static_cast<int64_t>(rows.size()));

  auto out = arrow::io::FileOutputStream::Open(path);
  if (!out.ok()) return FromArrow(out.status(), "cannot create " + path);
  std::shared_ptr<parquet::WriterProperties> props = parquet::WriterProperties::Builder()
                                                         .compression(Codec(compression))
                                                         ->memory_pool(pool)
                                                         ->build();
  const int64_t row_group = std::max<int64_t>(1, static_cast<int64_t>(rows.size()));
  arrow::Status st = parquet::arrow::WriteTable(*table, pool, *out, row_group, props);
  arrow::Status closed = (*out)->Close();
  if (!st.ok()) return FromArrow(st, "writing " + path);
  if (!closed.ok()) return FromArrow(closed, "closing " + path);
  return sync_file ? FsyncPath(path) : Status::OK();
}

}  // namespace

bool ParseParquetCompression(std::string_view name, ParquetCompression* out) {
  if (name == "zstd")
    *out = ParquetCompression::kZstd;
  else if (name == "snappy")
    *out = ParquetCompression::kSnappy;
  else if (name == "gzip")
    *out = ParquetCompression::kGzip;
  else if (name == "none")
    *out = ParquetCompression::kNone;
  else
    return false;
  return true;
}

Status WriteParquetFile(const std::string& path, const Schema& schema,
                        const std::vector<size_t>& columns,
                        const std::vector<const std::vector<Value>*>& rows,
                        ParquetCompression compression, bool sync_file) {
  // Arrow reports errors as Status, but parquet:: code paths may still throw.
  try {
    return Write(path, schema, columns, rows, compression, sync_file);
  } catch (const std::exception& e) {
    return Status::IOError("writing " + path + ": " + e.what());
  }
}

Result<std::vector<std::vector<Value>>> ReadParquetFile(const std::string& path, const Schema& schema,
                                                        const std::vector<size_t>& columns) {
  auto file = arrow::io::ReadableFile::Open(path);
  if (!file.ok()) return FromArrow(file.status(), "open " + path);
  auto reader = parquet::arrow::OpenFile(*file, arrow::default_memory_pool());
  if (!reader.ok()) return FromArrow(reader.status(), "read " + path);
  std::shared_ptr<arrow::Table> table;
  try {
    auto t = (*reader)->ReadTable();
    if (!t.ok()) return FromArrow(t.status(), "read " + path);
    table = *t;
  } catch (const std::exception& e) {
    return Status::IOError("read " + path + ": " + e.what());
  }
  const int64_t n = table->num_rows();
  std::vector<std::vector<Value>> rows(static_cast<size_t>(n), std::vector<Value>(schema.size()));
  for (size_t slot : columns) {
    const Field& f = schema.field(slot);
    auto column = table->GetColumnByName(f.name);
    if (!column) return Status::InvalidArgument(path + " has no column " + f.name);
    int64_t row = 0;
    for (const auto& chunk : column->chunks()) {
      for (int64_t i = 0; i < chunk->length(); ++i, ++row) {
        Value& out = rows[static_cast<size_t>(row)][slot];
        if (chunk->IsNull(i)) continue;
        switch (chunk->type_id()) {
          case arrow::Type::INT64:
            out = Value::Int(static_cast<const arrow::Int64Array&>(*chunk).Value(i));
            break;
          case arrow::Type::DOUBLE:
            out = Value::Double(static_cast<const arrow::DoubleArray&>(*chunk).Value(i));
            break;
          case arrow::Type::BOOL:
            out = Value::Bool(static_cast<const arrow::BooleanArray&>(*chunk).Value(i));
            break;
          case arrow::Type::STRING:
            out = Value::String(static_cast<const arrow::StringArray&>(*chunk).GetView(i));
            break;
          case arrow::Type::TIMESTAMP: {
            const auto& ts = static_cast<const arrow::TimestampArray&>(*chunk);
            const auto unit = static_cast<const arrow::TimestampType&>(*ts.type()).unit();
            int64_t v = ts.Value(i);
            if (unit == arrow::TimeUnit::SECOND) v *= 1'000'000;
            if (unit == arrow::TimeUnit::MILLI) v *= 1'000;
            if (unit == arrow::TimeUnit::NANO) v /= 1'000;
            out = Value::TimeMicros(v);
            break;
          }
          default:
            return Status::InvalidArgument(path + ": column " + f.name + " has type " +
                                           chunk->type()->ToString() + ", not one sluice writes");
        }
      }
    }
  }
  return rows;
}

}  // namespace sluice
