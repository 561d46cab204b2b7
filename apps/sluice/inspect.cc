// `sluice inspect SINK_URI`: what a sink holds, without running a pipeline.

#include <iostream>
#include <map>
#include <sstream>

#include "commands.h"
#include "logging.h"
#include "progress.h"
#include "connectors/file/file_source.h"
#include "connectors/kafka/kafka_ids.h"
#include "connectors/table/table_util.h"
#include "core/iso_time.h"
#include "core/json_writer.h"
#include "core/time.h"
#include "core/uri.h"
#include "core/json_builder.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/sink_inventory.h"
#include "runtime/source.h"

namespace sluice::cli {
namespace {

/// One source's stored positions, split into what they mean.
struct SourcePositions {
  std::string source;
  std::map<int32_t, int64_t> partitions;  ///< the input's partitions (below 2^30)
  std::map<int32_t, int64_t> identity;    ///< identity partitions (2^30 and up)
  std::map<int32_t, int64_t> all;         ///< partitions and identity partitions
  /// The input's generation by partition (kGenerationPartitionBase + p; not in `all`).
  std::map<int32_t, int64_t> generations;
};

struct DeadLetterFileLength {
  std::string path;
  int64_t bytes = 0;
};

/// A Kafka source that reads several topics records each slot's topic (the FNV-1a hash of its
/// name) at kTopicSlotBase + slot: slot -> hash; empty for every other source.
std::map<int32_t, int64_t> TopicSlotRecords(const SourcePositions& s) {
  std::map<int32_t, int64_t> out;
  for (auto it = s.identity.lower_bound(kTopicSlotBase);
       it != s.identity.end() && it->first < kTopicSlotBase + kTopicSlots; ++it) {
    out[it->first - kTopicSlotBase] = it->second;
  }
  return out;
}

/// A partition as shown: its number, or with several topics "[p]" (slot 0) / "slot S[p]".
std::string PartitionText(int32_t partition, const std::map<int32_t, int64_t>& slots) {
  return slots.empty() ? std::to_string(partition) : DescribeKafkaPartition(partition, {});
}

void SplitPositions(const PipelineInventory& p, std::vector<SourcePositions>* sources,
                    std::vector<DeadLetterFileLength>* files) {
  std::map<std::string, SourcePositions> by_source;
  const std::string file_prefix = std::string(kDeadLetterPositionSource) + ":";
  for (const auto& pos : p.positions) {
    if (pos.source.rfind(file_prefix, 0) == 0) {
      files->push_back({pos.source.substr(file_prefix.size()), pos.offset});
      continue;
    }
    SourcePositions& s = by_source[pos.source];
    s.source = pos.source;
    if (pos.partition >= kGenerationPartitionBase) {
      s.generations[pos.partition - kGenerationPartitionBase] = pos.offset;
      continue;
    }
    s.all[pos.partition] = pos.offset;
    (pos.partition >= kIdentityPartitionBase ? s.identity : s.partitions)[pos.partition] = pos.offset;
  }
  for (auto& [name, s] : by_source) sources->push_back(std::move(s));
}

/// Cuts `text` to at most `max` bytes at a UTF-8 character boundary.
std::string Cut(const std::string& text, size_t max, bool* cut) {
  *cut = text.size() > max;
  if (!*cut) return text;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return text.substr(0, n);
}

std::string Ago(int64_t micros, int64_t now) {
  int64_t s = (now - micros) / 1'000'000;
  if (s < 0) return "in the future";
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  if (s < 172800) return std::to_string(s / 3600) + " h ago";
  return std::to_string(s / 86400) + " days ago";
}

/// Says what a source's positions are: a file's offset with its identity, a table cursor, or
/// partitions with offsets.
void DescribeSourceText(const SourcePositions& s, std::ostream& out) {
  out << "    source " << s.source << "\n";
  if (auto cursor = DescribeTableCursor(s.all)) {
    out << "      table cursor     " << *cursor << "\n";
    return;
  }
  const std::map<int32_t, int64_t> slots = TopicSlotRecords(s);
  for (const auto& [partition, offset] : s.partitions) {
    out << "      partition " << PartitionText(partition, slots) << "      ";
    if (offset == kForgottenPosition) {
      out << "forgotten by --reset-source (read from its beginning next)\n";
    } else {
      out << "offset " << Thousands(offset) << "\n";
    }
  }
  for (const auto& [partition, generation] : s.generations) {
    out << "      partition " << PartitionText(partition, slots) << "      input generation " << generation
        << " (another input was found there " << generation << " time" << (generation == 1 ? "" : "s")
        << " and read from its start)\n";
  }
  if (s.identity.empty()) return;
  if (auto file = DescribeFileIdentity(s.all)) {
    out << "      file identity    " << *file << "\n";
    return;
  }
  for (const auto& [slot, hash] : slots) {
    out << "      topic slot " << slot << "     the topic whose name hashes to " << hash
        << " (Fingerprint64)\n";
  }
  for (const auto& [partition, value] : s.identity) {
    if (slots.count(partition - kTopicSlotBase)) continue;
    out << "      identity 2^30+" << partition - kIdentityPartitionBase << "  " << value << "\n";
  }
}

void RenderText(const SinkInventory& inv, const InspectCliOptions& o, std::ostream& out) {
  const int64_t now = WallClockMicros();
  out << "sink " << inv.location << ": " << inv.pipelines.size() << " pipeline"
      << (inv.pipelines.size() == 1 ? "" : "s") << "\n";
  for (const auto& p : inv.pipelines) {
    out << "\npipeline " << p.pipeline << "\n";
    out << "  last checkpoint    ";
    if (p.last_checkpoint_micros > 0) {
      out << FormatIsoTimestamp(p.last_checkpoint_micros) << " (" << Ago(p.last_checkpoint_micros, now)
          << ")\n";
    } else {
      out << "unknown\n";
    }
    out << "  state              "
        << (p.state_bytes < 0 ? std::string("none stored") : Thousands(p.state_bytes) + " bytes")
        << "\n";
    for (const auto& [key, value] : p.details) {
      out << "  " << key << std::string(key.size() < 19 ? 19 - key.size() : 1, ' ') << value << "\n";
    }
    std::vector<SourcePositions> sources;
    std::vector<DeadLetterFileLength> files;
    SplitPositions(p, &sources, &files);
    out << "  committed positions";
    if (sources.empty()) out << "  none";
    out << "\n";
    for (const auto& s : sources) DescribeSourceText(s, out);
    for (const auto& f : files) {
      out << "  dead-letter file   " << f.path << ": " << Thousands(f.bytes) << " bytes committed\n";
    }
    if (!p.dead_letters_stored) continue;
    const auto ranked = p.dead_letters.Ranked();
    out << "  dead letters       " << Thousands(p.dead_letters.total()) << " in "
        << inv.dead_letter_location << "\n";
    for (size_t i = 0; i < ranked.size(); ++i) {
      if (i == o.reasons && ranked.size() > o.reasons) {
        int64_t rest = 0;
        for (size_t j = i; j < ranked.size(); ++j) rest += ranked[j].second;
        const size_t others = ranked.size() - i;
        out << "    " << Thousands(rest) << " more with " << others << " other reason"
            << (others == 1 ? "" : "s") << " (--reasons N shows more, --json all)\n";
        break;
      }
      const auto& [reason, count] = ranked[i];
      out << "    " << Thousands(count) << "  " << ToValidUtf8(reason) << "\n";
      auto it = p.dead_letters.samples.find(reason);
      if (it == p.dead_letters.samples.end()) continue;
      for (const auto& d : it->second) {
        bool cut = false;
        const std::string shown = Cut(d.payload, o.payload_bytes, &cut);
        out << "      " << d.source << " partition " << d.partition << " offset " << d.offset;
        if (!d.time.empty()) out << " at " << d.time;
        out << ": " << shown;
        if (cut || d.truncated) {
          out << " ... (" << Thousands(d.payload_bytes) << " bytes"
              << (d.truncated ? ", stored truncated to 64 KiB" : "") << ")";
        }
        out << "\n";
      }
    }
  }
}

void RenderJson(const SinkInventory& inv, const InspectCliOptions& o, std::ostream& out) {
  JsonBuilder j;
  j.BeginObject();
  j.Key("sink").String(inv.location);
  j.Key("dead_letter_location").String(inv.dead_letter_location);
  j.Key("pipelines").BeginArray();
  for (const auto& p : inv.pipelines) {
    j.BeginObject();
    j.Key("pipeline").String(p.pipeline);
    j.Key("last_checkpoint");
    p.last_checkpoint_micros > 0 ? j.String(FormatIsoTimestamp(p.last_checkpoint_micros)) : j.Null();
    j.Key("last_checkpoint_micros");
    p.last_checkpoint_micros > 0 ? j.Int(p.last_checkpoint_micros) : j.Null();
    j.Key("state_bytes");
    p.state_bytes >= 0 ? j.Int(p.state_bytes) : j.Null();
    j.Key("details").BeginObject();
    for (const auto& [key, value] : p.details) j.Key(key).String(value);
    j.EndObject();
    std::vector<SourcePositions> sources;
    std::vector<DeadLetterFileLength> files;
    SplitPositions(p, &sources, &files);
    j.Key("sources").BeginArray();
    for (const auto& s : sources) {
      j.BeginObject();
      j.Key("source").String(s.source);
      const auto cursor = DescribeTableCursor(s.all);
      const std::map<int32_t, int64_t> slots = TopicSlotRecords(s);
      j.Key("partitions").BeginArray();
      if (!cursor) {
        for (const auto& [partition, offset] : s.partitions) {
          j.BeginObject().Key("partition").Int(partition);
          // Several topics: the id's slot and the topic's partition number.
          if (!slots.empty()) {
            j.Key("topic_slot").Int(SlotOfId(partition)).Key("topic_partition").Int(KafkaPartitionOfId(partition));
          }
          j.Key("offset");
          offset == kForgottenPosition ? j.Null() : j.Int(offset);
          j.Key("forgotten").Bool(offset == kForgottenPosition).EndObject();
        }
      }
      j.EndArray();
      j.Key("table_cursor");
      if (cursor) {
        j.BeginObject()
            .Key("order_by_value").Int(s.all.at(0))
            .Key("key").Int(s.all.at(1))
            .Key("last_row_hash").Int(s.all.at(kCursorRowPartition))
            .Key("description").String(*cursor)
            .EndObject();
      } else {
        j.Null();
      }
      const auto file = DescribeFileIdentity(s.all);
      j.Key("file_identity");
      if (file) {
        j.BeginObject()
            .Key("device").Int(s.all.at(kIdentityPartitionBase))
            .Key("inode").Int(s.all.at(kIdentityPartitionBase + 1))
            .Key("head_hash").Int(s.all.at(kIdentityPartitionBase + 2))
            .Key("tail_hash").Int(s.all.at(kIdentityPartitionBase + 3))
            .Key("description").String(*file)
            .EndObject();
      } else {
        j.Null();
      }
      j.Key("generations").BeginArray();
      for (const auto& [partition, generation] : s.generations) {
        j.BeginObject().Key("partition").Int(partition).Key("generation").Int(generation).EndObject();
      }
      j.EndArray();
      j.Key("topic_slots").BeginArray();
      for (const auto& [slot, hash] : slots) {
        j.BeginObject().Key("slot").Int(slot).Key("topic_fingerprint").Int(hash).EndObject();
      }
      j.EndArray();
      // Identity rows neither shape explains, as stored.
      j.Key("identity_partitions").BeginArray();
      if (!file && !cursor) {
        for (const auto& [partition, value] : s.identity) {
          if (slots.count(partition - kTopicSlotBase)) continue;
          j.BeginObject().Key("partition").Int(partition).Key("value").Int(value).EndObject();
        }
      }
      j.EndArray();
      j.EndObject();
    }
    j.EndArray();
    j.Key("dead_letter_files").BeginArray();
    for (const auto& f : files) {
      j.BeginObject().Key("path").String(f.path).Key("committed_bytes").Int(f.bytes).EndObject();
    }
    j.EndArray();
    j.Key("dead_letters");
    if (p.dead_letters_stored) {
      j.BeginObject();
      j.Key("location").String(inv.dead_letter_location);
      j.Key("total").Int(p.dead_letters.total());
      j.Key("by_reason").BeginArray();
      for (const auto& [reason, count] : p.dead_letters.Ranked()) {
        j.BeginObject().Key("reason").String(ToValidUtf8(reason)).Key("count").Int(count);
        j.Key("samples").BeginArray();
        auto it = p.dead_letters.samples.find(reason);
        if (it != p.dead_letters.samples.end()) {
          for (const auto& d : it->second) {
            bool cut = false;
            const std::string shown = Cut(d.payload, o.payload_bytes, &cut);
            j.BeginObject()
                .Key("source").String(d.source)
                .Key("partition").Int(d.partition)
                .Key("offset").Int(d.offset)
                .Key("time").String(d.time)
                .Key("payload_json").String(shown)
                .Key("payload_cut").Bool(cut)
                .Key("payload_bytes").Int(d.payload_bytes)
                .Key("truncated").Bool(d.truncated)
                .EndObject();
          }
        }
        j.EndArray().EndObject();
      }
      j.EndArray();
      j.EndObject();
    } else {
      j.Null();
    }
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  out << j.str() << "\n";
}

}  // namespace

int RunInspect(const InspectCliOptions& o) {
  // Exit codes as in main.cc: 2 for a URI that names no sink (or one inspect cannot read), 1
  // for a sink that cannot be read now (a server that is down).
  SinkConfig config;
  config.uri = o.uri;
  auto [scheme, rest] = SplitUri(o.uri);
  if (scheme == "file") {
    ReportError("inspect: '" + o.uri + "' is not a sink URI: use sqlite:PATH, mysql://USER@HOST:PORT/DB, "
                "parquet:DIR, cassandra://HOST:PORT/KEYSPACE or kafka://HOST:PORT/TOPIC");
    return 2;
  }
  auto sink = ConnectorRegistry::Instance().MakeSink(config);
  if (!sink.ok()) {
    ReportError("inspect: " + sink.status().message());
    return 2;
  }
  auto* reader = dynamic_cast<SinkReader*>(sink->get());
  if (!reader) {
    ReportError("inspect: not supported for this sink yet (" + scheme +
                ":); sluice inspect reads sqlite:PATH, mysql://USER@HOST:PORT/DB, parquet:DIR, "
                "cassandra://HOST:PORT/KEYSPACE and kafka://HOST:PORT/TOPIC");
    return 2;
  }
  InventoryOptions options;
  options.pipeline = o.pipeline;
  options.samples_per_reason = o.samples;
  options.sample_reasons = o.reasons;
  auto inv = reader->Inventory(options);
  if (!inv.ok()) {
    const StatusCode c = inv.status().code();
    ReportError("inspect " + o.uri + ": " + inv.status().message());
    return c == StatusCode::kInvalidArgument || c == StatusCode::kNotFound ||
                   c == StatusCode::kParseError
               ? 2
               : 1;
  }
  if (!o.pipeline.empty() && inv->pipelines.empty()) {
    ReportError("inspect: " + inv->location + " holds no pipeline named " + o.pipeline +
                " (sluice inspect " + o.uri + " lists the pipelines it holds)");
    return 2;
  }
  std::ostringstream out;
  if (o.json) {
    RenderJson(*inv, o, out);
  } else {
    RenderText(*inv, o, out);
  }
  std::cout << out.str() << std::flush;
  return 0;
}

}  // namespace sluice::cli
