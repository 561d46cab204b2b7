#include "connectors/kafka/kafka_ids.h"

#include <charconv>

namespace sluice {

int32_t DefaultTopicSlot(const std::string& topic) {
  const uint64_t h = static_cast<uint64_t>(Fingerprint64(topic));
  return static_cast<int32_t>(1 + h % static_cast<uint64_t>(kTopicSlots - 1));
}

Result<TopicSlots> TopicSlots::Make(const std::vector<std::string>& topics,
                                    const std::string& slot0_topic,
                                    const std::map<std::string, int32_t>& pins) {
  TopicSlots slots;
  slots.pins_ = pins;
  for (const auto& [topic, slot] : pins) {
    if (slot < 1 || slot >= kTopicSlots) {
      return Status::InvalidArgument("topic_slots: slot " + std::to_string(slot) + " of topic " + topic +
                                     " is outside 1.." + std::to_string(kTopicSlots - 1));
    }
  }
  if (!topics.empty() && pins.count(topics.front())) {
    return Status::InvalidArgument("topic_slots: " + topics.front() +
                                   " is the first topic of the list, which always takes slot 0");
  }
  if (!slot0_topic.empty()) RETURN_IF_ERROR(slots.Place(slot0_topic, 0).status());
  for (size_t i = 0; i < topics.size(); ++i) {
    if (slots.slot_of_topic_.count(topics[i])) {
      return Status::InvalidArgument("topic " + topics[i] + " is listed twice");
    }
    RETURN_IF_ERROR((i == 0 ? slots.Place(topics[i], 0) : slots.SlotFor(topics[i])).status());
  }
  return slots;
}

Result<int32_t> TopicSlots::SlotFor(const std::string& topic) {
  if (auto it = slot_of_topic_.find(topic); it != slot_of_topic_.end()) return it->second;
  auto pin = pins_.find(topic);
  return Place(topic, pin != pins_.end() ? pin->second : DefaultTopicSlot(topic));
}

Result<int32_t> TopicSlots::Place(const std::string& topic, int32_t slot) {
  auto [it, inserted] = topic_of_slot_.emplace(slot, topic);
  if (!inserted && it->second != topic) {
    return Status::InvalidArgument(
        "topics " + it->second + " and " + topic + " both take slot " + std::to_string(slot) +
        " of the source's partition ids; pin one of them to a free slot, e.g. topic_slots = [\"" + topic +
        "=" + std::to_string(slot == kTopicSlots - 1 ? 1 : slot + 1) + "\"] (1.." +
        std::to_string(kTopicSlots - 1) + ", never changed afterwards)");
  }
  slot_of_topic_[topic] = slot;
  return slot;
}

std::optional<int32_t> TopicSlots::Find(const std::string& topic) const {
  auto it = slot_of_topic_.find(topic);
  if (it == slot_of_topic_.end()) return std::nullopt;
  return it->second;
}

const std::string& TopicSlots::TopicOf(int32_t slot) const {
  static const std::string kNone;
  auto it = topic_of_slot_.find(slot);
  return it == topic_of_slot_.end() ? kNone : it->second;
}

std::string TopicSlots::Label(int32_t id) const { return DescribeKafkaPartition(id, topic_of_slot_); }

Result<std::map<std::string, int32_t>> ParseTopicSlotPins(const std::vector<std::string>& entries) {
  std::map<std::string, int32_t> pins;
  for (const std::string& e : entries) {
    const size_t eq = e.rfind('=');
    int32_t slot = 0;
    const char* begin = e.data() + (eq == std::string::npos ? 0 : eq + 1);
    auto [end, ec] = std::from_chars(begin, e.data() + e.size(), slot);
    if (eq == std::string::npos || eq == 0 || ec != std::errc() || end != e.data() + e.size()) {
      return Status::InvalidArgument("topic_slots: expected \"TOPIC=SLOT\", got \"" + e + "\"");
    }
    if (slot < 1 || slot >= kTopicSlots) {
      return Status::InvalidArgument("topic_slots: slot " + std::to_string(slot) + " in \"" + e +
                                     "\" is outside 1.." + std::to_string(kTopicSlots - 1));
    }
    pins[e.substr(0, eq)] = slot;
  }
  return pins;
}

std::string DescribeKafkaPartition(int32_t id, const std::map<int32_t, std::string>& topic_of_slot) {
  if (id < 0 || id >= kIdentityPartitionBase) return std::to_string(id);
  const int32_t slot = SlotOfId(id);
  const std::string p = std::to_string(KafkaPartitionOfId(id));
  if (auto it = topic_of_slot.find(slot); it != topic_of_slot.end()) return it->second + "[" + p + "]";
  if (slot == 0) return "[" + p + "]";
  return "slot " + std::to_string(slot) + "[" + p + "]";
}

}  // namespace sluice
