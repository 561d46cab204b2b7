#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/source.h"

namespace sluice {

/// A Kafka source that reads several topics (a list, or a pattern) keeps one partition id space
/// for all of them: every topic has a slot, and partition p of the topic in slot s is the id
/// `s << 12 | p`. Positions, held records, dead letters and event-time progress are keyed by
/// that id as they were by the partition number.
///
/// Slot 0 is the topic of a one-topic source, and the first topic of a list: so a source that
/// reads one topic has ids equal to its partition numbers, and everything stored before it read
/// several topics keeps its meaning. Every other topic's slot is derived from its name
/// (DefaultTopicSlot), the same in every process, unless the pipeline pins it (topic_slots).
inline constexpr int kKafkaPartitionBits = 12;
/// Partitions per topic the id space has room for; a topic with more is refused.
inline constexpr int32_t kMaxKafkaPartitions = 1 << kKafkaPartitionBits;
/// Slots are 0 .. kTopicSlots - 1, so ids stay below 2^29 (and kGenerationPartitionBase + id
/// fits an int32).
inline constexpr int32_t kTopicSlots = 1 << 17;
/// The identity partition kTopicSlotBase + slot holds Fingerprint64(topic) of the topic a slot
/// was first committed for, so a slot that would change topics (another topic hashed or pinned
/// there, the list reordered) is refused instead of reading one topic from another's positions.
inline constexpr int32_t kTopicSlotBase = kIdentityPartitionBase + (1 << 28);

inline int32_t KafkaPartitionId(int32_t slot, int32_t partition) {
  return (slot << kKafkaPartitionBits) | partition;
}
inline int32_t SlotOfId(int32_t id) { return id >> kKafkaPartitionBits; }
inline int32_t KafkaPartitionOfId(int32_t id) { return id & (kMaxKafkaPartitions - 1); }

/// The slot a topic takes unless pinned: 1 + Fingerprint64(topic) mod (kTopicSlots - 1), never 0.
int32_t DefaultTopicSlot(const std::string& topic);

/// The topics of one Kafka source and their slots.
class TopicSlots {
 public:
  /// `topics`: a list (the first takes slot 0), or empty with a pattern. `slot0_topic`: with a
  /// pattern, the topic whose positions were stored by the one-topic source it replaced (slot 0);
  /// empty: slot 0 stays unused. `pins`: topic -> slot, overriding DefaultTopicSlot. Fails when
  /// two topics would share a slot, naming both and the pin option.
  static Result<TopicSlots> Make(const std::vector<std::string>& topics, const std::string& slot0_topic,
                                 const std::map<std::string, int32_t>& pins);

  /// The slot of `topic`, giving it one when it is new (a pattern matched it): fails when that
  /// slot already belongs to another topic.
  Result<int32_t> SlotFor(const std::string& topic);
  /// The slot of a known topic, or nullopt.
  std::optional<int32_t> Find(const std::string& topic) const;
  /// The topic in `slot`, or empty.
  const std::string& TopicOf(int32_t slot) const;
  const std::map<int32_t, std::string>& topics() const { return topic_of_slot_; }

  /// "topic[p]" for an id (the id itself when its slot has no topic).
  std::string Label(int32_t id) const;

 private:
  Result<int32_t> Place(const std::string& topic, int32_t slot);

  std::map<std::string, int32_t> pins_;
  std::map<std::string, int32_t> slot_of_topic_;
  std::map<int32_t, std::string> topic_of_slot_;
};

/// Parses topic_slots entries "TOPIC=SLOT" (1 <= SLOT < kTopicSlots).
Result<std::map<std::string, int32_t>> ParseTopicSlotPins(const std::vector<std::string>& entries);

/// "slot S[p]" / "[p]" for an id when the topic names are not known (sluice inspect without the
/// pipeline's topics): ids below kMaxKafkaPartitions are the partitions of a one-topic source.
std::string DescribeKafkaPartition(int32_t id, const std::map<int32_t, std::string>& topic_of_slot);

}  // namespace sluice
