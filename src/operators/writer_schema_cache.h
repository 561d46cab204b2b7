#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/status.h"
#include "operators/avro_decoder.h"

namespace sluice {

/// One decoder's writer schemas, built once per schema id from the shared `AvroSchemaCache`
/// (which holds the registry's JSON text). `W` is the decoder's compiled form of a writer schema:
/// default-constructible, with `Status Init(const std::string& json)`.
///
/// An id the registry does not know, or whose schema cannot be used, is remembered with its
/// reason: every record written with it is dead-lettered with that reason, and the registry is not
/// asked again. A registry that cannot answer now is not remembered (the record fails with the
/// registry's error; the next one asks again). Not thread-safe: one per decoder, as decoders are.
template <class W>
class WriterSchemaCache {
 public:
  explicit WriterSchemaCache(std::shared_ptr<AvroSchemaCache> schemas) : schemas_(std::move(schemas)) {}

  /// The writer schema of `id`; a ParseError (the record's dead-letter reason) when it has none.
  Result<W*> Get(int32_t id) {
    if (auto it = writers_.find(id); it != writers_.end()) {
      if (!it->second) return Status::ParseError(bad_[id]);
      return it->second.get();
    }
    std::optional<AvroSchemaCache::Entry> e = schemas_->Get(id);
    if (!e) {
      // The source fetches every id before handing a record over; a decoder used on its own
      // fetches here, and a registry that cannot answer dead-letters the record.
      Status s = schemas_->Ensure(id);
      if (!s.ok()) return Status::ParseError("schema id " + std::to_string(id) + ": registry: " + s.message());
      e = schemas_->Get(id);
    }
    if (!e->found) return Unusable(id, "unknown schema id " + std::to_string(id) + " (" + e->error + ")");
    auto w = std::make_unique<W>();
    if (Status s = w->Init(e->json); !s.ok()) {
      return Unusable(id, "schema id " + std::to_string(id) + " cannot be used: " + s.message());
    }
    W* raw = w.get();
    writers_[id] = std::move(w);
    return raw;
  }

 private:
  Status Unusable(int32_t id, std::string why) {
    writers_[id] = nullptr;
    bad_[id] = std::move(why);
    return Status::ParseError(bad_[id]);
  }

  std::shared_ptr<AvroSchemaCache> schemas_;
  std::unordered_map<int32_t, std::unique_ptr<W>> writers_;  ///< null: unusable, reason in bad_
  std::unordered_map<int32_t, std::string> bad_;
};

}  // namespace sluice
