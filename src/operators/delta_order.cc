#include "operators/delta_order.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "operators/aggregate_function.h"

namespace sluice {

namespace {

/// Returns <0, 0 or >0 as `a` orders before, with or after `b` (type first, then value), as
/// Value's operator< orders them, without a variant visit.
int ValueCompare(const Value& a, const Value& b) {
  auto three_way = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (a.type() != b.type()) return a.type() < b.type() ? -1 : 1;
  switch (a.type()) {
    case Type::kNull: return 0;
    case Type::kBool: return three_way(a.bool_value(), b.bool_value());
    case Type::kInt64: return three_way(a.int_value(), b.int_value());
    case Type::kDouble: return three_way(a.double_value(), b.double_value());
    case Type::kString: return a.string_value().compare(b.string_value());
    case Type::kTimestamp: return three_way(a.time_value().micros, b.time_value().micros);
  }
  return 0;
}

/// Writes a signed integer so that unsigned byte order is numeric order (sign bit flipped,
/// big-endian).
void PutOrderedInt(int64_t v, char* b) {
  const uint64_t u = static_cast<uint64_t>(v) ^ 0x8000000000000000ULL;
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(u >> (56 - 8 * i));
}

void AppendOrderedInt(int64_t v, std::string* out) {
  char b[8];
  PutOrderedInt(v, b);
  out->append(b, 8);
}

/// Appends an encoding of `v` whose unsigned byte order is ValueCompare's order and which no
/// other value's encoding starts with (so a row's concatenated keys compare lexicographically).
/// Returns false for a double, whose order this encoding does not keep.
bool AppendOrdered(const Value& v, std::string* out) {
  char b[9];
  b[0] = static_cast<char>(v.type());  // Type's order is Value's order of types
  switch (v.type()) {
    case Type::kNull: out->append(b, 1); return true;
    case Type::kBool:
      b[1] = v.bool_value() ? 1 : 0;
      out->append(b, 2);
      return true;
    case Type::kInt64:
      PutOrderedInt(v.int_value(), b + 1);
      out->append(b, 9);
      return true;
    case Type::kTimestamp:
      PutOrderedInt(v.time_value().micros, b + 1);
      out->append(b, 9);
      return true;
    case Type::kDouble: return false;
    case Type::kString: {
      // std::string::compare orders by unsigned bytes, then the shorter first: each 0 byte is
      // written as 0 0xff and the end as 0 0, which orders before every continuation.
      out->append(b, 1);
      const std::string& s = v.string_value();
      size_t from = 0;
      while (const void* zero = std::memchr(s.data() + from, 0, s.size() - from)) {
        const size_t at = static_cast<size_t>(static_cast<const char*>(zero) - s.data());
        out->append(s, from, at - from);
        out->append("\0\xff", 2);
        from = at + 1;
      }
      out->append(s, from, std::string::npos);
      out->append("\0\0", 2);
      return true;
    }
  }
  return false;
}

/// The first bytes of a row's encoding as big-endian words (zero-padded), so most comparisons
/// are three integer comparisons.
constexpr size_t kPrefixWords = 3;

struct SortEntry {
  uint64_t prefix[kPrefixWords];
  uint32_t offset;  ///< of the full encoding in the arena
  uint32_t size;
  uint32_t part;
  uint32_t row;
};

/// Encodes the window start and keys of every row of `parts` into `arena`, one entry per row.
/// Returns false when a key is a double (or the rows are too many for 32-bit entries).
bool Encode(const std::vector<std::vector<DeltaRow>*>& parts, std::string* arena,
            std::vector<SortEntry>* entries) {
  size_t total = 0;
  for (const auto* p : parts) total += p->size();
  if (total > UINT32_MAX) return false;
  entries->resize(total);
  arena->reserve(total * 48);
  size_t n = 0;
  for (size_t part = 0; part < parts.size(); ++part) {
    const std::vector<DeltaRow>& v = *parts[part];
    for (size_t r = 0; r < v.size(); ++r) {
      const size_t begin = arena->size();
      AppendOrderedInt(v[r].window_start, arena);
      for (const Value& k : v[r].keys) {
        if (!AppendOrdered(k, arena)) return false;
      }
      if (arena->size() > UINT32_MAX) return false;
      SortEntry& e = (*entries)[n++];
      e.offset = static_cast<uint32_t>(begin);
      e.size = static_cast<uint32_t>(arena->size() - begin);
      e.part = static_cast<uint32_t>(part);
      e.row = static_cast<uint32_t>(r);
    }
  }
  for (SortEntry& e : *entries) {
    unsigned char bytes[kPrefixWords * 8] = {};
    std::memcpy(bytes, arena->data() + e.offset, std::min<size_t>(e.size, sizeof(bytes)));
    for (size_t w = 0; w < kPrefixWords; ++w) {
      uint64_t word = 0;
      for (size_t i = 0; i < 8; ++i) word = (word << 8) | bytes[w * 8 + i];
      e.prefix[w] = word;
    }
  }
  return true;
}

/// Returns <0, 0 or >0 as the encodings of `a` and `b` order (memcmp, the shorter first).
int CompareEncoded(const char* base, const SortEntry& a, const SortEntry& b) {
  for (size_t w = 0; w < kPrefixWords; ++w) {
    if (a.prefix[w] != b.prefix[w]) return a.prefix[w] < b.prefix[w] ? -1 : 1;
  }
  // Zero padding of a short encoding orders it as memcmp orders a proper prefix: compare the
  // whole encodings when the prefixes tie.
  const int c = std::memcmp(base + a.offset, base + b.offset, std::min(a.size, b.size));
  if (c != 0) return c;
  return a.size < b.size ? -1 : (a.size > b.size ? 1 : 0);
}

/// Sorts entries by encoding, then part, then row (so rows of one group are in the order they
/// were added).
void SortEntries(const std::string& arena, std::vector<SortEntry>* entries) {
  const char* base = arena.data();
  std::sort(entries->begin(), entries->end(), [base](const SortEntry& a, const SortEntry& b) {
    if (int c = CompareEncoded(base, a, b); c != 0) return c < 0;
    return a.part != b.part ? a.part < b.part : a.row < b.row;
  });
}

}  // namespace

bool DeltaLess(const DeltaRow& a, const DeltaRow& b) {
  if (a.window_start != b.window_start) return a.window_start < b.window_start;
  // Lexicographic, as std::vector's operator<.
  const size_t n = std::min(a.keys.size(), b.keys.size());
  for (size_t i = 0; i < n; ++i) {
    if (int c = ValueCompare(a.keys[i], b.keys[i]); c != 0) return c < 0;
  }
  return a.keys.size() < b.keys.size();
}

void SortDeltas(std::vector<DeltaRow>* rows) {
  std::vector<DeltaRow>& v = *rows;
  if (v.size() < 2) return;
  std::string arena;
  std::vector<SortEntry> entries;
  if (!Encode({rows}, &arena, &entries)) {
    std::sort(v.begin(), v.end(), DeltaLess);
    return;
  }
  SortEntries(arena, &entries);
  // Position i takes row from[i]: permuted in place, one cycle at a time, so no second array
  // of rows is held beside the first.
  std::vector<uint32_t> from(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) from[i] = entries[i].row;
  std::vector<SortEntry>().swap(entries);
  std::string().swap(arena);
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] == i) continue;
    DeltaRow held = std::move(v[i]);
    size_t j = i;
    while (true) {
      const size_t k = from[j];
      from[j] = static_cast<uint32_t>(j);
      if (k == i) {
        v[j] = std::move(held);
        break;
      }
      v[j] = std::move(v[k]);
      j = k;
    }
  }
}

bool MergeDeltasInOrder(const AggregateSpec& spec, std::vector<std::vector<DeltaRow>>* parts,
                        std::vector<DeltaRow>* out) {
  std::vector<std::vector<DeltaRow>*> views;
  for (auto& p : *parts) views.push_back(&p);
  std::string arena;
  std::vector<SortEntry> entries;
  if (!Encode(views, &arena, &entries)) return false;
  SortEntries(arena, &entries);
  std::vector<bool> numeric;
  for (const MetricSpec& m : spec.metrics) {
    const AggregateFunction::State kind = FunctionOf(m).state;
    numeric.push_back(kind == AggregateFunction::State::kCount ||
                      kind == AggregateFunction::State::kCountSum);
  }
  out->clear();
  out->reserve(entries.size());
  const char* base = arena.data();
  for (size_t i = 0; i < entries.size();) {
    size_t end = i + 1;
    while (end < entries.size() && CompareEncoded(base, entries[i], entries[end]) == 0) ++end;
    // As Aggregator::Merge then TakeAll: the first row's keys and value states, the others
    // merged into it in order; count/sum states summed from zero, without their other fields.
    DeltaRow& first = (*parts)[entries[i].part][entries[i].row];
    for (size_t m = 0; m < spec.metrics.size() && m < first.metrics.size(); ++m) {
      if (numeric[m]) {
        MetricState sum;
        for (size_t j = i; j < end; ++j) {
          MergeCountSum(sum, (*parts)[entries[j].part][entries[j].row].metrics[m]);
        }
        first.metrics[m] = sum;
      } else {
        for (size_t j = i + 1; j < end; ++j) {
          MergeMetric(spec.metrics[m], first.metrics[m], (*parts)[entries[j].part][entries[j].row].metrics[m]);
        }
      }
    }
    out->push_back(std::move(first));
    i = end;
  }
  return true;
}

}  // namespace sluice
