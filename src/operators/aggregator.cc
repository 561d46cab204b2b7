#include "operators/aggregator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>

#include "core/time.h"
#include "expr/shape.h"
#include "operators/aggregate_function.h"

namespace sluice {

namespace {

constexpr size_t kWindowCacheSize = 16;  // power of two
constexpr size_t kMinTableSize = 1024;   // power of two
constexpr uint64_t kTagMask = 0xffffffff00000000ULL;

uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

uint64_t HashKey(int64_t window_start, std::string_view bytes) {
  uint64_t h = static_cast<uint64_t>(window_start) * 0x9e3779b97f4a7c15ULL ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 32;
  }
  if (i < bytes.size()) {
    uint64_t w = 0;
    std::memcpy(&w, bytes.data() + i, bytes.size() - i);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
  }
  return Mix(h);
}

void AppendWord(uint64_t w, std::string* out) {
  char b[8];
  std::memcpy(b, &w, 8);
  out->append(b, 8);
}

/// Appends a self-delimiting encoding of a non-null value: equal values (as Value's ==, with
/// 0.0 equal to -0.0, and every NaN equal to every other, as GROUP BY has it) encode to equal
/// bytes, and different values to different bytes.
void EncodeKeyValue(const Value& v, std::string* out) {
  out->push_back(static_cast<char>(v.type()));
  switch (v.type()) {
    case Type::kNull: break;
    case Type::kBool: out->push_back(v.bool_value() ? 1 : 0); break;
    case Type::kInt64: AppendWord(static_cast<uint64_t>(v.int_value()), out); break;
    case Type::kTimestamp: AppendWord(static_cast<uint64_t>(v.time_value().micros), out); break;
    case Type::kDouble: {
      double d = v.double_value();
      if (d == 0) d = 0;  // -0.0 == 0.0
      if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();  // one group for every NaN
      uint64_t w;
      std::memcpy(&w, &d, 8);
      AppendWord(w, out);
      break;
    }
    case Type::kString: {
      const std::string& s = v.string_value();
      AppendWord(s.size(), out);
      out->append(s);
      break;
    }
  }
}

/// Returns true when `x` and `y` are the same comparison of a string field with constants
/// (`f = 'a'`, `f <> 'a'`, `f in (...)`, `f not in (...)` of the same field and constants), so
/// that they are true, false or null on the same rows.
bool SameFieldCondition(const expr::Expr& x, const expr::Expr& y) {
  using Kind = expr::Shape::Kind;
  const expr::Shape a = expr::Describe(x), b = expr::Describe(y);
  if (a.kind != b.kind || (a.kind != Kind::kStringEq && a.kind != Kind::kStringIn)) return false;
  if (a.negate != b.negate || a.has_null != b.has_null || a.strings != b.strings) return false;
  if (a.a == nullptr || b.a == nullptr) return false;
  const expr::Shape fa = expr::Describe(*a.a), fb = expr::Describe(*b.a);
  return fa.kind == Kind::kField && fb.kind == Kind::kField && fa.slot == fb.slot;
}

}  // namespace

Aggregator::Aggregator(const AggregateSpec* spec)
    : spec_(spec), num_keys_(spec->keys.size()), num_metrics_(spec->metrics.size()) {
  value_scratch_.resize(num_keys_);
  key_pointers_.resize(num_keys_);
  windows_per_record_ = std::max<int64_t>(spec_->windows_per_record(), 1);
  bool any_uses_window = false;
  for (const KeySpec& k : spec_->keys) {
    if (k.window_expr) has_window_keys_ = true;
    if (k.uses_window) any_uses_window = true;
  }
  check_window_keys_first_ = any_uses_window && windows_per_record_ > 1;
  if (has_window_keys_) {
    // Room for every window of two records, so a record's windows do not evict each other.
    size_t cache_size = kWindowCacheSize;
    while (cache_size < 2 * static_cast<size_t>(windows_per_record_)) cache_size *= 2;
    window_cache_.resize(cache_size);
    window_cache_mask_ = cache_size - 1;
  }
  matched_.resize(num_metrics_);
  metric_args_.resize(num_metrics_);
  metric_scratch_.resize(num_metrics_);
  table_.assign(kMinTableSize, 0);
  stage_capacity_ = std::max(kStageSize, static_cast<size_t>(windows_per_record_));
  staged_.reserve(stage_capacity_);
  stage_keys_.resize(stage_capacity_ * num_keys_);
  stage_matched_.resize(stage_capacity_ * num_metrics_);
  stage_args_.resize(stage_capacity_ * num_metrics_);
  fold_keys_.resize(num_keys_);
  fold_args_.resize(num_metrics_);
  for (size_t i = 0; i < num_metrics_; ++i) {
    where_from_.push_back(i);
    const MetricSpec& m = spec_->metrics[i];
    if (!m.where) continue;
    for (size_t j = 0; j < i; ++j) {
      const MetricSpec& earlier = spec_->metrics[j];
      if (earlier.where && where_from_[j] == j && SameFieldCondition(*m.where, *earlier.where)) {
        where_from_[i] = j;
        break;
      }
    }
  }
  for (const MetricSpec& m : spec_->metrics) {
    const AggregateFunction::State kind = FunctionOf(m).state;
    const bool numeric =
        kind == AggregateFunction::State::kCount || kind == AggregateFunction::State::kCountSum;
    numeric_.push_back(numeric);
    sums_.push_back(kind == AggregateFunction::State::kCountSum);
    state_slot_.push_back(numeric ? num_numeric_++ : num_values_++);
  }
}

MetricState Aggregator::StateOf(size_t g, size_t i) const {
  if (IsNumeric(i)) {
    const NumState& n = nums_[g * num_numeric_ + state_slot_[i]];
    MetricState s;
    s.count = n.count;
    s.isum = n.isum;
    s.dsum = n.dsum;
    return s;
  }
  return states_[g * num_values_ + state_slot_[i]];
}

const std::vector<Value>& Aggregator::KeysOfWindow(int64_t window_start) {
  const uint64_t n = static_cast<uint64_t>(window_start / std::max<int64_t>(spec_->slide(), 1));
  WindowKeys& entry = window_cache_[n & window_cache_mask_];
  if (entry.valid && entry.window_start == window_start) return entry.values;
  entry.valid = true;
  entry.window_start = window_start;
  entry.values.resize(num_keys_);
  window_row_[0] = Value::TimeMicros(window_start);
  window_row_[1] = Value::TimeMicros(window_start + spec_->window_micros);
  for (size_t i = 0; i < num_keys_; ++i) {
    const KeySpec& k = spec_->keys[i];
    entry.values[i] = k.window_expr ? k.window_expr->Eval(std::span<const Value>(window_row_, 2))
                                    : Value::Null();
  }
  return entry.values;
}

void Aggregator::Rehash(size_t capacity) {
  table_.assign(capacity, 0);
  const size_t mask = capacity - 1;
  for (size_t g = 0; g < groups_.size(); ++g) {
    size_t pos = groups_[g].hash & mask;
    while (table_[pos] != 0) pos = (pos + 1) & mask;
    table_[pos] = (groups_[g].hash & 0xffffffff00000000ULL) | (g + 1);
  }
}

size_t Aggregator::FindOrAdd(int64_t window_start, uint64_t hash, std::string_view key,
                             const Value* const* keys) {
  const size_t mask = table_.size() - 1;
  const uint64_t tag = hash & kTagMask;
  size_t pos = hash & mask;
  while (true) {
    const uint64_t e = table_[pos];
    if (e == 0) break;
    if ((e & kTagMask) == tag) {
      const size_t g = static_cast<size_t>(e & 0xffffffffULL) - 1;
      const Group& group = groups_[g];
      if (group.hash == hash && group.window_start == window_start && group.key_size == key.size() &&
          std::memcmp(group.KeyData(key_bytes_), key.data(), key.size()) == 0) {
        return g;
      }
    }
    pos = (pos + 1) & mask;
  }
  const size_t g = groups_.size();
  Group& group = groups_.emplace_back();
  group.window_start = window_start;
  group.hash = hash;
  group.key_size = static_cast<uint32_t>(key.size());
  if (key.size() <= kInlineKey) {
    std::memcpy(group.key, key.data(), key.size());
  } else {
    const size_t offset = key_bytes_.size();
    std::memcpy(group.key, &offset, sizeof offset);
    key_bytes_.append(key);
  }
  for (size_t i = 0; i < num_keys_; ++i) key_values_.push_back(*keys[i]);
  nums_.resize(nums_.size() + num_numeric_);
  states_.resize(states_.size() + num_values_);
  table_[pos] = tag | (g + 1);
  if (groups_.size() * 2 > table_.size()) Rehash(table_.size() * 2);
  return g;
}

std::vector<int64_t> Aggregator::WindowStarts(int64_t event_time) const {
  std::vector<int64_t> starts;
  const int64_t last = WindowStart(event_time);
  for (int64_t k = windows_per_record_ - 1; k >= 0; --k) starts.push_back(last - k * spec_->slide());
  return starts;
}

bool Aggregator::WindowKeyValues(std::span<Value> row, int64_t start, std::string* null_key_name) {
  row[spec_->window_start_slot] = Value::TimeMicros(start);
  row[spec_->window_end_slot] = Value::TimeMicros(start + spec_->window_micros);
  const std::vector<Value>* window_keys = has_window_keys_ ? &KeysOfWindow(start) : nullptr;
  for (size_t i = 0; i < num_keys_; ++i) {
    const KeySpec& k = spec_->keys[i];
    if (!k.uses_window) continue;
    const Value* v;
    if (k.window_expr) {
      v = &(*window_keys)[i];
    } else if (k.slot >= 0) {
      v = &row[k.slot];
    } else {
      v = &k.expr->EvalRef(row, value_scratch_[i]);
    }
    if (v->is_null()) {
      *null_key_name = k.name;
      return false;
    }
    key_pointers_[i] = v;
  }
  return true;
}

bool Aggregator::Windows(int64_t event_time, int64_t late_before, int64_t* first_out,
                         int64_t* last_out, int64_t* skipped_out) const {
  // The record's windows, oldest first; the oldest are the ones that can be late.
  const int64_t slide = spec_->slide();
  const int64_t last = WindowStart(event_time);
  int64_t first = last - (windows_per_record_ - 1) * slide;
  int64_t skipped = 0;
  if (late_before != kNoLateness && spec_->allowed_lateness_micros >= 0) {
    while (first <= last &&
           first + spec_->window_micros + spec_->allowed_lateness_micros <= late_before) {
      first += slide;
      ++skipped;
    }
  }
  *first_out = first;
  *last_out = last;
  *skipped_out = skipped;
  return first <= last;
}

Aggregator::AddResult Aggregator::Add(std::span<Value> row, int64_t late_before,
                                      int64_t* event_time_out, std::string* null_key_name,
                                      int64_t* late_windows) {
  Value time_scratch;
  const Value& t = spec_->time->EvalRef(row, time_scratch);
  if (t.type() != Type::kTimestamp) return AddResult::kNoTime;
  const int64_t event_time = t.time_value().micros;
  *event_time_out = event_time;
  if (late_windows) *late_windows = 0;
  int64_t first, last, skipped;
  if (!Windows(event_time, late_before, &first, &last, &skipped)) return AddResult::kLate;

  // Keys that do not read the window have one value for all of the record's windows.
  for (size_t i = 0; i < num_keys_; ++i) {
    const KeySpec& k = spec_->keys[i];
    if (k.uses_window) continue;
    const Value* v = k.slot >= 0 ? &row[k.slot] : &k.expr->EvalRef(row, value_scratch_[i]);
    if (v->is_null()) {
      *null_key_name = k.name;
      return AddResult::kNullKey;
    }
    key_pointers_[i] = v;
  }
  if (check_window_keys_first_) {
    for (int64_t start = first; start <= last; start += spec_->slide()) {
      if (!WindowKeyValues(row, start, null_key_name)) return AddResult::kNullKey;
    }
  }
  // The window slots hold the first window while metrics are evaluated: a tumbling pipeline's
  // metrics may read them (hopping ones may not; the planner rejects it).
  if (!WindowKeyValues(row, first, null_key_name)) return AddResult::kNullKey;
  for (size_t i = 0; i < num_metrics_; ++i) {
    const MetricSpec& m = spec_->metrics[i];
    const size_t from = where_from_[i];
    matched_[i] = !m.where || (from != i ? matched_[from] : m.where->EvalTrue(row));
    metric_args_[i] = matched_[i] && m.arg ? &m.arg->EvalRef(row, metric_scratch_[i]) : &null_;
  }
  if (!Stage(row, first, last, event_time, null_key_name)) return AddResult::kNullKey;
  if (late_windows) *late_windows = skipped;
  return AddResult::kAdded;
}

bool Aggregator::Stage(std::span<Value> row, int64_t first, int64_t last, int64_t event_time,
                       std::string* null_key_name) {
  const int64_t slide = spec_->slide();
  const size_t windows = static_cast<size_t>((last - first) / slide + 1);
  if (staged_.size() + windows > stage_capacity_) FoldStaged();
  const size_t record = staged_records_++;
  char* matched = stage_matched_.data() + record * num_metrics_;
  Value* args = stage_args_.data() + record * num_metrics_;
  for (size_t i = 0; i < num_metrics_; ++i) {
    matched[i] = matched_[i];
    if (matched_[i] && spec_->metrics[i].arg) args[i] = *metric_args_[i];
  }
  const size_t mask = table_.size() - 1;
  for (int64_t start = first; start <= last; start += slide) {
    if (start != first && !WindowKeyValues(row, start, null_key_name)) return false;
    Value* keys = stage_keys_.data() + staged_.size() * num_keys_;
    const size_t key_begin = stage_key_bytes_.size();
    for (size_t i = 0; i < num_keys_; ++i) {
      if (spec_->keys[i].window_expr) continue;
      keys[i] = *key_pointers_[i];
      EncodeKeyValue(*key_pointers_[i], &stage_key_bytes_);
    }
    const size_t key_size = stage_key_bytes_.size() - key_begin;
    const uint64_t hash =
        HashKey(start, std::string_view(stage_key_bytes_.data() + key_begin, key_size));
    __builtin_prefetch(&table_[hash & mask]);
    staged_.push_back(Staged{start, hash, event_time, static_cast<uint32_t>(key_begin),
                             static_cast<uint32_t>(key_size), static_cast<uint32_t>(record), 0});
  }
  return true;
}

Aggregator::AddResult Aggregator::AddColumns(const ColumnBatch& batch, size_t r,
                                             const AggregateColumns& in, int64_t late_before,
                                             int64_t* event_time_out, std::string* null_key_name,
                                             int64_t* late_windows) {
  const Column& time = batch.column(in.time);
  if (!time.valid[r]) return AddResult::kNoTime;
  const int64_t event_time = time.ints[r];
  *event_time_out = event_time;
  if (late_windows) *late_windows = 0;
  int64_t first, last, skipped;
  if (!Windows(event_time, late_before, &first, &last, &skipped)) return AddResult::kLate;
  // Null keys in Add()'s order: the keys that do not read the window in key order (a column,
  // or a constant, whose value every window shares), then the window keys of each window.
  for (size_t i = 0; i < num_keys_; ++i) {
    bool null = false;
    if (in.keys[i] >= 0) {
      null = !batch.column(static_cast<size_t>(in.keys[i])).valid[r];
    } else if (!spec_->keys[i].uses_window && spec_->keys[i].window_expr) {
      null = KeysOfWindow(first)[i].is_null();
    }
    if (null) {
      *null_key_name = spec_->keys[i].name;
      return AddResult::kNullKey;
    }
  }
  const int64_t slide = spec_->slide();
  if (has_window_keys_) {
    for (int64_t start = first; start <= last; start += slide) {
      const std::vector<Value>& window_keys = KeysOfWindow(start);
      for (size_t i = 0; i < num_keys_; ++i) {
        if (in.keys[i] < 0 && window_keys[i].is_null()) {
          *null_key_name = spec_->keys[i].name;
          return AddResult::kNullKey;
        }
      }
    }
  }
  const size_t windows = static_cast<size_t>((last - first) / slide + 1);
  if (staged_.size() + windows > stage_capacity_) FoldStaged();
  const size_t record = staged_records_++;
  char* matched = stage_matched_.data() + record * num_metrics_;
  Value* args = stage_args_.data() + record * num_metrics_;
  for (size_t i = 0; i < num_metrics_; ++i) {
    const size_t from = where_from_[i];
    const ColumnCondition* where = in.where[i].get();
    matched[i] = where == nullptr || (from != i ? matched[from] : where->True(batch, r));
    if (!matched[i] || !spec_->metrics[i].arg) continue;
    if (in.args[i] >= 0) {
      batch.column(static_cast<size_t>(in.args[i])).Load(r, &args[i]);
    } else {
      args[i] = in.constants[i];
    }
  }
  // The key bytes are the same in every window of the record: encoded once, from the columns.
  const size_t key_begin = stage_key_bytes_.size();
  for (size_t i = 0; i < num_keys_; ++i) {
    if (in.keys[i] < 0) continue;
    const Column& c = batch.column(static_cast<size_t>(in.keys[i]));
    stage_key_bytes_.push_back(static_cast<char>(c.type));
    switch (c.type) {
      case Type::kNull: break;
      case Type::kBool: stage_key_bytes_.push_back(c.ints[r] != 0 ? 1 : 0); break;
      case Type::kInt64:
      case Type::kTimestamp: AppendWord(static_cast<uint64_t>(c.ints[r]), &stage_key_bytes_); break;
      case Type::kDouble: {
        double d = c.doubles[r];
        if (d == 0) d = 0;  // -0.0 == 0.0
        if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();  // one group for every NaN
        uint64_t w;
        std::memcpy(&w, &d, 8);
        AppendWord(w, &stage_key_bytes_);
        break;
      }
      case Type::kString:
        AppendWord(c.strings[r].size(), &stage_key_bytes_);
        stage_key_bytes_.append(c.strings[r]);
        break;
    }
  }
  const size_t key_size = stage_key_bytes_.size() - key_begin;
  const std::string_view key(stage_key_bytes_.data() + key_begin, key_size);
  const size_t mask = table_.size() - 1;
  for (int64_t start = first; start <= last; start += slide) {
    Value* keys = stage_keys_.data() + staged_.size() * num_keys_;
    for (size_t i = 0; i < num_keys_; ++i) {
      if (in.keys[i] >= 0) batch.column(static_cast<size_t>(in.keys[i])).Load(r, &keys[i]);
    }
    const uint64_t hash = HashKey(start, key);
    __builtin_prefetch(&table_[hash & mask]);
    staged_.push_back(Staged{start, hash, event_time, static_cast<uint32_t>(key_begin),
                             static_cast<uint32_t>(key_size), static_cast<uint32_t>(record), 0});
  }
  if (late_windows) *late_windows = skipped;
  return AddResult::kAdded;
}

void Aggregator::FoldStaged() {
  // The table slots were prefetched when the records were staged. The first group along a
  // record's probe sequence with its hash's tag is most likely its group (a 32-bit tag): its
  // entry and states are prefetched kFar records
  // ahead of the one being folded, its key bytes (which need the entry) kNear records ahead.
  constexpr size_t kFar = 16;
  constexpr size_t kNear = 8;
  const size_t n = staged_.size();
  auto prefetch_range = [](const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
    if (bytes > 0) __builtin_prefetch(c + bytes - 1);
  };
  auto prefetch_group = [&](size_t e) {
    Staged& s = staged_[e];
    s.candidate = 0;
    const size_t mask = table_.size() - 1;
    size_t pos = s.hash & mask;
    uint64_t t;
    while ((t = table_[pos]) != 0 && (t & kTagMask) != (s.hash & kTagMask)) pos = (pos + 1) & mask;
    if (t == 0) return;
    const size_t g = static_cast<size_t>(t & 0xffffffffULL) - 1;
    s.candidate = static_cast<uint32_t>(g + 1);
    __builtin_prefetch(&groups_[g]);
    prefetch_range(nums_.data() + g * num_numeric_, num_numeric_ * sizeof(NumState));
    prefetch_range(states_.data() + g * num_values_, num_values_ * sizeof(MetricState));
  };
  auto prefetch_key = [&](size_t e) {
    const Staged& s = staged_[e];
    if (s.candidate == 0 || s.candidate > groups_.size()) return;
    const Group& group = groups_[s.candidate - 1];
    if (group.key_size > kInlineKey) prefetch_range(key_bytes_.data() + group.KeyOffset(), group.key_size);
  };
  for (size_t e = 0; e < std::min(kFar, n); ++e) prefetch_group(e);
  for (size_t e = 0; e < std::min(kNear, n); ++e) prefetch_key(e);
  size_t args_of = staged_records_;  // the record whose arguments fold_args_ points at
  const std::vector<Value>* window_keys = nullptr;
  int64_t window_keys_of = 0;
  for (size_t e = 0; e < n; ++e) {
    if (e + kFar < n) prefetch_group(e + kFar);
    if (e + kNear < n) prefetch_key(e + kNear);
    const Staged& s = staged_[e];
    const std::string_view key(stage_key_bytes_.data() + s.key_begin, s.key_size);
    const Value* keys = stage_keys_.data() + e * num_keys_;
    if (has_window_keys_ && (window_keys == nullptr || window_keys_of != s.window_start)) {
      window_keys = &KeysOfWindow(s.window_start);
      window_keys_of = s.window_start;
    }
    for (size_t i = 0; i < num_keys_; ++i) {
      fold_keys_[i] = spec_->keys[i].window_expr ? &(*window_keys)[i] : &keys[i];
    }
    const size_t g = FindOrAdd(s.window_start, s.hash, key, fold_keys_.data());
    if (s.record != args_of) {
      args_of = s.record;
      const Value* args = stage_args_.data() + s.record * num_metrics_;
      for (size_t i = 0; i < num_metrics_; ++i) {
        fold_args_[i] = spec_->metrics[i].arg ? &args[i] : &null_;
      }
    }
    UpdateGroup(g, s.event_time, stage_matched_.data() + s.record * num_metrics_, fold_args_.data());
  }
  staged_.clear();
  stage_key_bytes_.clear();
  staged_records_ = 0;
}

void Aggregator::UpdateGroup(size_t g, int64_t event_time, const char* matched,
                             const Value* const* args) {
  NumState* nums = nums_.data() + g * num_numeric_;
  MetricState* states = states_.data() + g * num_values_;
  for (size_t i = 0; i < num_metrics_; ++i) {
    const MetricSpec& m = spec_->metrics[i];
    if (!matched[i]) continue;
    const Value& arg = *args[i];
    if (!IsNumeric(i)) {
      UpdateMetric(m, states[state_slot_[i]], arg, event_time);
      continue;
    }
    // The catalog's count/sum rule, inlined on the compact state.
    UpdateCountSum(sums_[i], m.arg != nullptr, nums[state_slot_[i]], arg);
  }
}

DeltaRow Aggregator::MoveOut(size_t g) {
  DeltaRow row;
  row.window_start = groups_[g].window_start;
  auto keys = key_values_.begin() + static_cast<std::ptrdiff_t>(g * num_keys_);
  row.keys.assign(std::make_move_iterator(keys),
                  std::make_move_iterator(keys + static_cast<std::ptrdiff_t>(num_keys_)));
  row.metrics.reserve(num_metrics_);
  for (size_t i = 0; i < num_metrics_; ++i) {
    row.metrics.push_back(IsNumeric(i) ? StateOf(g, i)
                                       : std::move(states_[g * num_values_ + state_slot_[i]]));
  }
  return row;
}

void Aggregator::Clear() {
  groups_.clear();
  key_bytes_.clear();
  key_values_.clear();
  nums_.clear();
  states_.clear();
  std::fill(table_.begin(), table_.end(), 0);
}

std::vector<DeltaRow> Aggregator::TakeAll() {
  Flush();
  std::vector<DeltaRow> out;
  out.reserve(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) out.push_back(MoveOut(g));
  Clear();
  return out;
}

void Aggregator::Compact(const std::vector<bool>& keep) {
  std::vector<Group> groups;
  std::string key_bytes;
  std::vector<Value> key_values;
  std::vector<NumState> nums;
  std::vector<MetricState> states;
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!keep[g]) continue;
    Group group = groups_[g];
    if (group.key_size > kInlineKey) {
      const size_t offset = key_bytes.size();
      std::memcpy(group.key, &offset, sizeof offset);
      key_bytes.append(key_bytes_, groups_[g].KeyOffset(), groups_[g].key_size);
    }
    groups.push_back(group);
    for (size_t i = 0; i < num_keys_; ++i) key_values.push_back(std::move(key_values_[g * num_keys_ + i]));
    for (size_t i = 0; i < num_numeric_; ++i) nums.push_back(nums_[g * num_numeric_ + i]);
    for (size_t i = 0; i < num_values_; ++i) states.push_back(std::move(states_[g * num_values_ + i]));
  }
  groups_.swap(groups);
  key_bytes_.swap(key_bytes);
  key_values_.swap(key_values);
  nums_.swap(nums);
  states_.swap(states);
  size_t capacity = kMinTableSize;
  while (groups_.size() * 2 > capacity) capacity *= 2;
  Rehash(capacity);
}

std::vector<DeltaRow> Aggregator::TakeClosed(int64_t watermark) {
  Flush();
  std::vector<DeltaRow> out;
  std::vector<bool> keep(groups_.size(), true);
  bool any = false;
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].window_start + spec_->window_micros <= watermark) {
      out.push_back(MoveOut(g));
      keep[g] = false;
      any = true;
    }
  }
  if (any) Compact(keep);
  return out;
}

void Aggregator::Merge(std::vector<DeltaRow>&& rows) {
  Flush();
  for (auto& r : rows) {
    key_scratch_.clear();
    for (size_t i = 0; i < num_keys_; ++i) {
      key_pointers_[i] = &r.keys[i];
      if (!spec_->keys[i].window_expr) EncodeKeyValue(r.keys[i], &key_scratch_);
    }
    const size_t before = groups_.size();
    const size_t g = FindOrAdd(r.window_start, HashKey(r.window_start, key_scratch_), key_scratch_,
                               key_pointers_.data());
    const bool added = groups_.size() > before;
    NumState* nums = nums_.data() + g * num_numeric_;
    MetricState* states = states_.data() + g * num_values_;
    for (size_t i = 0; i < num_metrics_; ++i) {
      MetricState& from = r.metrics[i];
      if (IsNumeric(i)) {
        MergeCountSum(nums[state_slot_[i]], from);
      } else if (added) {
        states[state_slot_[i]] = std::move(from);
      } else {
        MergeMetric(spec_->metrics[i], states[state_slot_[i]], from);
      }
    }
  }
}

std::vector<DeltaRow> Aggregator::Snapshot() {
  Flush();
  std::vector<DeltaRow> out;
  out.reserve(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    DeltaRow row;
    row.window_start = groups_[g].window_start;
    row.keys.assign(key_values_.begin() + static_cast<std::ptrdiff_t>(g * num_keys_),
                    key_values_.begin() + static_cast<std::ptrdiff_t>((g + 1) * num_keys_));
    row.metrics.reserve(num_metrics_);
    for (size_t i = 0; i < num_metrics_; ++i) {
      row.metrics.push_back(StateOf(g, i));
    }
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<DeltaRow> MergeDeltas(const AggregateSpec& spec,
                                  std::vector<std::vector<DeltaRow>>&& parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  Aggregator merged(&spec);
  for (auto& p : parts) merged.Merge(std::move(p));
  std::vector<DeltaRow> out = merged.TakeAll();
  return out;
}

}  // namespace sluice
