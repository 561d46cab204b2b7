// The Kafka sink against the broker of `make services` (127.0.0.1:9092, or $SLUICE_KAFKA_BROKERS).
// librdkafka 2.0's mock cluster accepts transactions but writes no transaction markers and does
// not hide aborted records from read_committed consumers, so it cannot check what matters here.
// Without a broker these tests skip loudly; with CI=true they fail.

#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_ids.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/tests/ci_rule.h"
#include "connectors/kafka/kafka_uri.h"
#include "operators/aggregate_spec.h"

namespace sluice {
namespace {

std::string Brokers() {
  const char* b = std::getenv("SLUICE_KAFKA_BROKERS");
  return b && *b ? b : "127.0.0.1:9092";
}

#define REQUIRE_BROKER()                                                                       \
  do {                                                                                         \
    if (!BrokerUp()) {                                                                         \
      SLUICE_SKIP_OR_FAIL("no Kafka broker at " + Brokers() + " (run `make services`)");       \
    }                                                                                          \
  } while (0)

bool BrokerUp() {
  static int up = -1;
  if (up < 0) {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    conf->set("bootstrap.servers", Brokers(), err);
    conf->set("log_level", "0", err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    RdKafka::Metadata* md = nullptr;
    up = p && p->metadata(true, nullptr, &md, 5000) == RdKafka::ERR_NO_ERROR ? 1 : 0;
    delete md;
  }
  return up == 1;
}

std::string UniqueTopic(const std::string& what) {
  std::random_device rd;
  return "ksink-gtest-" + what + "-" + std::to_string(rd() % 100000000);
}

SinkConfig Config(const std::string& uri, std::map<std::string, std::string> options = {}) {
  SinkConfig c;
  c.uri = uri;
  for (auto& [k, v] : options) c.options.Set(k, {v, {}});
  return c;
}

SinkContext Context(const std::string& pipeline) {
  SinkContext ctx;
  ctx.pipeline = pipeline;
  ctx.output = Schema({{"id", Type::kInt64, ""},
                       {"name", Type::kString, ""},
                       {"score", Type::kDouble, ""},
                       {"ok", Type::kBool, ""},
                       {"at", Type::kTimestamp, ""}});
  return ctx;
}

std::unique_ptr<KafkaSink> OpenSink(const std::string& topic, const std::string& pipeline,
                                    std::map<std::string, std::string> options = {}) {
  if (!options.count("key")) options["key"] = "id";
  if (!options.count("timeout")) options["timeout"] = "15s";
  auto made = KafkaSink::Make(Config("kafka://" + Brokers() + "/" + topic, options));
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  if (!made.ok()) return nullptr;
  std::unique_ptr<KafkaSink> sink(static_cast<KafkaSink*>(made->release()));
  Status s = sink->Open(Context(pipeline));
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return nullptr;
  return sink;
}

struct Record {
  std::string key;
  std::string value;
  bool has_key = false;
};

/// Reads every record of `topic` visible to a read_committed consumer.
std::vector<Record> ReadCommitted(const std::string& topic) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("group.id", "ksink-gtest-reader", err);
  conf->set("isolation.level", "read_committed", err);
  conf->set("enable.partition.eof", "true", err);
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  int n = KafkaPartitionCount(Brokers(), topic);
  std::vector<RdKafka::TopicPartition*> parts;
  for (int p = 0; p < n; ++p) {
    parts.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  c->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  std::vector<Record> out;
  int eofs = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (eofs < n && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(c->consume(500));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      ++eofs;
    } else if (m->err() == RdKafka::ERR_NO_ERROR) {
      Record r;
      r.has_key = m->key() != nullptr;
      if (m->key()) r.key = *m->key();
      r.value.assign(static_cast<const char*>(m->payload()), m->len());
      out.push_back(std::move(r));
    }
  }
  EXPECT_EQ(eofs, n) << "did not reach the end of " << topic;
  c->close();
  return out;
}

std::vector<std::vector<Value>> Rows(int from, int count) {
  std::vector<std::vector<Value>> rows;
  for (int i = from; i < from + count; ++i) {
    rows.push_back({Value::Int(i), Value::String("n\"" + std::to_string(i)), Value::Double(i + 0.5),
                    Value::Bool(i % 2 == 0), Value::TimeMicros(1'700'000'000'000'000LL + i)});
  }
  return rows;
}

std::string ExpectedJson(int i) {
  // Written by hand from the row above: escaped quote, shortest double, UTC timestamp text.
  char at[64];
  if (i == 0) {
    std::snprintf(at, sizeof(at), "2023-11-14 22:13:20");
  } else {
    std::snprintf(at, sizeof(at), "2023-11-14 22:13:20.%06d", i);
  }
  return "{\"id\":" + std::to_string(i) + ",\"name\":\"n\\\"" + std::to_string(i) +
         "\",\"score\":" + std::to_string(i) + ".5,\"ok\":" + (i % 2 == 0 ? "true" : "false") +
         ",\"at\":\"" + at + "\"}";
}

TEST(KafkaSinkConfig, RejectsBadUriAndOptions) {
  auto bad = KafkaSink::Make(Config("kafka://127.0.0.1:9092"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("expected kafka://HOST:PORT/TOPIC"), std::string::npos);
  auto unknown = KafkaSink::Make(Config("kafka://h:1/t", {{"keys", "id"}}));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("keys"), std::string::npos)
      << unknown.status().ToString();
  auto half = KafkaSink::Make(Config("kafka://h:1/t", {{"consumer_group", "g"}}));
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("consumer_topic"), std::string::npos);
  auto acks = KafkaSink::Make(Config("kafka://h:1/t", {{"kafka.acks", "1"}}));
  ASSERT_FALSE(acks.ok());
  EXPECT_NE(acks.status().message().find("acks"), std::string::npos);
  auto typo = KafkaSink::Make(Config("kafka://h:1/t", {{"kafka.linger.mss", "1"}}));
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("linger.mss"), std::string::npos);
  auto timeout = KafkaSink::Make(Config("kafka://h:1/t", {{"timeout", "soon"}}));
  EXPECT_FALSE(timeout.ok());
}

TEST(KafkaSinkConfig, RejectsUpdateModeAndUnknownKeyColumn) {
  auto made =
      KafkaSink::Make(Config("kafka://127.0.0.1:1/t", {{"key", "nope"}, {"timeout", "1s"}}));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Status s = (*made)->Open(Context("p"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("key 'nope' is not an output column (id, name, score, ok, at)"),
            std::string::npos)
      << s.ToString();
  AggregateSpec update;
  update.append_mode = false;
  SinkContext ctx = Context("p");
  ctx.aggregate = &update;
  s = (*made)->Open(ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mode = \"append\""), std::string::npos) << s.ToString();
}

// The HTTP server asks where the dead letters go from its own thread, also before (and while)
// the sink opens: the answer is fixed when the sink is made.
TEST(KafkaSinkConfig, DeadLetterLocationIsKnownBeforeOpen) {
  auto made = KafkaSink::Make(Config("kafka://127.0.0.1:1/t"));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ((*made)->DeadLetterLocation(), "topic t.sluice-dead-letters");
  auto named = KafkaSink::Make(Config("kafka://127.0.0.1:1/t", {{"dead_letter_topic", "dl"}}));
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ((*named)->DeadLetterLocation(), "topic dl");
}

TEST(KafkaSinkConfig, UnreachableBrokerFailsWithinTimeout) {
  auto made = KafkaSink::Make(Config("kafka://127.0.0.1:1/t", {{"timeout", "2s"}}));
  ASSERT_TRUE(made.ok());
  const auto start = std::chrono::steady_clock::now();
  Status s = (*made)->Open(Context("p"));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("no broker of 127.0.0.1:1 answered within 2s"), std::string::npos)
      << s.ToString();
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_FALSE((*made)->Healthy());
}

TEST(KafkaSink, RowsPositionsAndStateCommitTogether) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("rows");
  auto sink = OpenSink(topic, "pipe1");
  ASSERT_TRUE(sink);
  auto stored = sink->LoadPositions();
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_TRUE(stored->empty());
  auto rows = Rows(0, 3);
  std::string state = std::string("bin\0ary", 7);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 10}, {"src", 1, 7}, {"__dead_letters:/x/y", 0, 42}};
  cp.state = &state;
  ASSERT_TRUE(sink->Commit(cp).ok());
  auto rows2 = Rows(3, 2);
  Checkpoint cp2;
  cp2.id = 2;
  cp2.rows = &rows2;
  cp2.positions = {{"src", 0, 12}};
  ASSERT_TRUE(sink->Commit(cp2).ok());
  sink->Close();

  // A new process (another sink, another pipeline sharing the topics) reads them back.
  auto other = OpenSink(topic, "pipe2");
  ASSERT_TRUE(other);
  auto none = other->LoadPositions();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "positions of another pipeline must not leak";
  auto again = OpenSink(topic, "pipe1");
  ASSERT_TRUE(again);
  auto loaded = again->LoadPositions();
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  std::vector<StoredPosition> want = {
      {"__dead_letters:/x/y", 0, 42}, {"src", 0, 12}, {"src", 1, 7}};
  EXPECT_EQ(*loaded, want);
  auto loaded_state = again->LoadState();
  ASSERT_TRUE(loaded_state.ok());
  EXPECT_EQ(*loaded_state, state);

  auto records = ReadCommitted(topic);
  ASSERT_EQ(records.size(), 5u);
  std::map<std::string, std::string> by_key;
  for (const auto& r : records) {
    ASSERT_TRUE(r.has_key);
    by_key[r.key] = r.value;
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(by_key[std::to_string(i)], ExpectedJson(i));
}

TEST(KafkaSink, AbortedTransactionIsInvisibleAndRetryWritesOnce) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("abort");
  auto sink = OpenSink(topic, "p", {{"key", ""}});
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  auto rows = Rows(0, 4);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 4}};
  int failures = 1;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage == "before_commit" && failures-- > 0)
      return Status::Unavailable("injected broker loss");
    return Status::OK();
  });
  Status s = sink->Commit(cp);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(ReadCommitted(topic).empty()) << "records of an aborted transaction are visible";
  {
    auto fresh = OpenSink(topic, "p");
    ASSERT_TRUE(fresh);
    auto loaded = fresh->LoadPositions();
    ASSERT_TRUE(loaded.ok());
    EXPECT_TRUE(loaded->empty()) << "positions of an aborted transaction are visible";
  }
  // The opening of `fresh` fenced `sink` (same transactional.id): the retry must fail clearly.
  s = sink->Commit(cp);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("fenced"), std::string::npos) << s.ToString();
  EXPECT_FALSE(sink->Healthy());
  sink.reset();

  auto restarted = OpenSink(topic, "p", {{"key", ""}});
  ASSERT_TRUE(restarted);
  ASSERT_TRUE(restarted->Commit(cp).ok());
  auto records = ReadCommitted(topic);
  std::multiset<std::string> values, want;
  for (const auto& r : records) {
    EXPECT_FALSE(r.has_key);
    values.insert(r.value);
  }
  for (int i = 0; i < 4; ++i) want.insert(ExpectedJson(i));
  EXPECT_EQ(values, want);
}

TEST(KafkaSink, DeadLettersGoToTheirTopicInTheTransaction) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("dead");
  auto sink = OpenSink(topic, "p", {{"key", ""}});
  ASSERT_TRUE(sink);
  EXPECT_TRUE(sink->StoresDeadLetters());
  ASSERT_TRUE(sink->LoadPositions().ok());
  // The third is the first's record in the next input at that place (a replaced file): the
  // generation in its key keeps it from replacing the first in a compacted topic.
  std::vector<DeadLetter> letters = {{"late", "{\"a\": [1]}", "src", 0, 3, 0, 0},
                                     {"decode: x", std::string("b\xff", 2), "src", 1, 4, 0, 0},
                                     {"late", "{\"a\": [1]}", "src", 0, 3, 0, 0}};
  letters[2].generation = 1;
  auto rows = Rows(0, 1);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 4}};
  cp.dead_letters = &letters;
  // An aborted transaction shows none of them; the retry shows each once.
  int failures = 1;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage == "before_commit" && failures-- > 0) return Status::Unavailable("injected");
    return Status::OK();
  });
  ASSERT_FALSE(sink->Commit(cp).ok());
  EXPECT_TRUE(ReadCommitted(topic + ".sluice-dead-letters").empty());
  ASSERT_TRUE(sink->Commit(cp).ok()) << "retry";
  auto records = ReadCommitted(topic + ".sluice-dead-letters");
  std::map<std::string, std::string> by_key;
  for (const auto& r : records) by_key[r.key] = r.value;
  EXPECT_EQ(records.size(), 3u);
  EXPECT_EQ(by_key["[\"p\",\"src\",0,3,1,0]"],
            "{\"pipeline\":\"p\",\"source\":\"src\",\"partition\":0,\"offset\":3,\"generation\":1,\"reason\":"
            "\"late\",\"time\":\"1970-01-01T00:00:00.000000Z\",\"payload\":{\"a\":[1]},"
            "\"payload_bytes\":10,\"truncated\":false,\"payload_sha256\":"
            "\"2147dbdb56c4868b170810adc6478ded3311f12987ec1f614a5ff54a4442e792\"}");
  EXPECT_EQ(by_key["[\"p\",\"src\",0,3,0,0]"],
            "{\"pipeline\":\"p\",\"source\":\"src\",\"partition\":0,\"offset\":3,\"generation\":0,\"reason\":"
            "\"late\",\"time\":\"1970-01-01T00:00:00.000000Z\",\"payload\":{\"a\":[1]},"
            "\"payload_bytes\":10,\"truncated\":false,\"payload_sha256\":"
            "\"2147dbdb56c4868b170810adc6478ded3311f12987ec1f614a5ff54a4442e792\"}");
  EXPECT_EQ(by_key["[\"p\",\"src\",1,4,0,0]"],
            "{\"pipeline\":\"p\",\"source\":\"src\",\"partition\":1,\"offset\":4,\"generation\":0,\"reason\":"
            "\"decode: x\",\"time\":\"1970-01-01T00:00:00.000000Z\",\"payload\":\"b\\u00ff\","
            "\"payload_base64\":\"Yv8=\",\"payload_bytes\":2,\"truncated\":false,"
            "\"payload_sha256\":\"7d1016b8ca164152081d146beee2d283458686459be947524a721f88e255c88e\"}");
}

TEST(KafkaSink, ADeadLetterOverTheMessageSizeIsStoredTruncatedWithItsHash) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("bigdead");
  auto sink = OpenSink(topic, "p", {{"key", ""}, {"kafka.message.max.bytes", "20000"}});
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  const std::string big(60000, '\xff');  // escaped as \u00ff: 6 bytes each, plus base64
  const std::vector<DeadLetter> letters = {{"decode: x", big, "src", 0, 1, 0, 0}};
  Checkpoint cp;
  cp.id = 1;
  cp.positions = {{"src", 0, 2}};
  cp.dead_letters = &letters;
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto records = ReadCommitted(topic + ".sluice-dead-letters");
  ASSERT_EQ(records.size(), 1u);
  const std::string& v = records[0].value;
  EXPECT_LE(v.size(), 20000u);
  EXPECT_NE(v.find("\"payload_bytes\":60000,\"truncated\":true,\"payload_sha256\":\"e8a220abf2a0ce5e5b1ef94ca5330dfcfdbfa956ba3d9bd1effbda9ed050222e\""),
            std::string::npos)
      << v.substr(v.size() - 200);
}

TEST(KafkaSink, CommitInDoubtIsNotWrittenTwice) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("doubt");
  auto sink = OpenSink(topic, "p");
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  auto rows = Rows(0, 3);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 3}};
  bool fail_after = true;
  sink->SetTestHook([&](std::string_view stage) {
    if (stage == "after_commit" && fail_after) {
      fail_after = false;
      return Status::Unavailable("injected: connection lost during commit");
    }
    return Status::OK();
  });
  ASSERT_FALSE(sink->Commit(cp).ok());
  ASSERT_TRUE(sink->Commit(cp).ok()) << "the retry after a commit in doubt";
  auto rows2 = Rows(3, 1);
  Checkpoint cp2;
  cp2.id = 2;
  cp2.rows = &rows2;
  cp2.positions = {{"src", 0, 4}};
  ASSERT_TRUE(sink->Commit(cp2).ok());
  auto records = ReadCommitted(topic);
  std::multiset<std::string> keys;
  for (const auto& r : records) keys.insert(r.key);
  EXPECT_EQ(keys, (std::multiset<std::string>{"0", "1", "2", "3"}));
  auto loaded = sink->LoadPositions();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].offset, 4);
}

/// Checks that `topic` holds exactly the rows `want` (by key) and that its dead-letter topic
/// holds one letter per `refused` row id, refused by the sink for being too large.
void ExpectRowsAndRefused(const std::string& topic, const std::vector<int>& want,
                          const std::vector<int>& refused, const std::string& limit_text,
                          size_t refused_bytes) {
  std::multiset<std::string> keys, want_keys;
  for (const auto& r : ReadCommitted(topic)) {
    keys.insert(r.key);
    if (r.key == "0" || r.key == "2") {
      EXPECT_EQ(r.value, ExpectedJson(std::stoi(r.key)));
    }
  }
  for (int i : want) want_keys.insert(std::to_string(i));
  EXPECT_EQ(keys, want_keys);
  auto letters = ReadCommitted(topic + ".sluice-dead-letters");
  ASSERT_EQ(letters.size(), refused.size());
  for (size_t i = 0; i < letters.size(); ++i) {
    const std::string& v = letters[i].value;
    EXPECT_NE(v.find("\"source\":\"_sink\""), std::string::npos) << v.substr(0, 300);
    EXPECT_NE(v.find("\"reason\":\"sink_rejected: row refused by the sink: kafka error "
                     "MSG_SIZE_TOO_LARGE: " +
                     std::to_string(refused_bytes) + " bytes"),
              std::string::npos)
        << v.substr(0, 400);
    EXPECT_NE(v.find(limit_text), std::string::npos) << v.substr(0, 400);
    // The row itself, as its columns: the payload starts with the refused row's id.
    EXPECT_NE(v.find("\"payload\":\"{\\\"id\\\":" + std::to_string(refused[i]) + ","),
              std::string::npos)
        << v.substr(0, 400);
    EXPECT_NE(v.find("\"truncated\":true"), std::string::npos);
  }
}

TEST(KafkaSink, RowOverTheProducersLimitIsDeadLetteredAndTheRestCommitted) {
  // issue 14: a row over message.max.bytes stopped the pipeline for good. Now it is
  // dead-lettered with the reason in the same transaction as the other rows and positions.
  REQUIRE_BROKER();
  const std::string topic = "poison_ksink_" + UniqueTopic("producer");
  auto sink = OpenSink(topic, "p", {{"kafka.message.max.bytes", "100000"}});
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  auto rows = Rows(0, 3);
  rows[1][1] = Value::String(std::string(200000, 'x'));
  // Its JSON, written out by hand from Rows(): {"id":1,"name":"xx...","score":1.5,"ok":false,
  // "at":"2023-11-14 22:13:20.000001"}
  const size_t json_bytes = std::string("{\"id\":1,\"name\":\"\",\"score\":1.5,\"ok\":false,"
                                        "\"at\":\"2023-11-14 22:13:20.000001\"}")
                                .size() +
                            200000;
  Checkpoint cp;
  cp.id = 7;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 3}};
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectRowsAndRefused(topic, {0, 2}, {1}, "over the producer's message.max.bytes", json_bytes);
  auto loaded = sink->LoadPositions();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].offset, 3);
}

TEST(KafkaSink, RowOverTheBrokersLimitIsDeadLetteredAndTheRestCommitted) {
  // The producer allows 16 MiB, the broker's default topic limit is about 1 MB: the broker
  // refuses the row at delivery, the transaction is aborted, and written again without it.
  REQUIRE_BROKER();
  const std::string topic = "poison_ksink_" + UniqueTopic("broker");
  auto sink = OpenSink(topic, "p");
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  auto rows = Rows(0, 4);
  rows[1][1] = Value::String(std::string(3 << 20, 'x'));
  rows[3][1] = Value::String(std::string(2 << 20, 'y'));
  Checkpoint cp;
  cp.id = 3;
  cp.rows = &rows;
  cp.positions = {{"src", 0, 4}};
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::multiset<std::string> keys;
  for (const auto& r : ReadCommitted(topic)) keys.insert(r.key);
  EXPECT_EQ(keys, (std::multiset<std::string>{"0", "2"}));
  auto letters = ReadCommitted(topic + ".sluice-dead-letters");
  ASSERT_EQ(letters.size(), 2u);
  std::set<int> refused;
  for (const auto& l : letters) {
    EXPECT_NE(l.value.find("sink_rejected: row refused by the sink: kafka error "
                           "MSG_SIZE_TOO_LARGE"),
              std::string::npos)
        << l.value.substr(0, 400);
    EXPECT_NE(l.value.find("over the broker's limit"), std::string::npos);
    for (int id : {1, 3}) {
      if (l.value.find("\"payload\":\"{\\\"id\\\":" + std::to_string(id) + ",") !=
          std::string::npos) {
        refused.insert(id);
      }
    }
  }
  EXPECT_EQ(refused, (std::set<int>{1, 3}));
  auto loaded = sink->LoadPositions();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].offset, 4);
}

TEST(KafkaSink, ConsumedOffsetsGoToTheGroupInTheTransaction) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("offsets");
  const std::string input = UniqueTopic("offsets-in");
  const std::string group = UniqueTopic("group");
  {
    // The input topic must exist for the group's offsets.
    auto in = OpenSink(input, "seed");
    ASSERT_TRUE(in);
  }
  auto sink = OpenSink(topic, "p", {{"consumer_group", group}, {"consumer_topic", input}});
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  auto rows = Rows(0, 1);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"in", 0, 5}, {"__dead_letters:/d", 0, 0}};
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();

  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("group.id", group, err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  std::vector<RdKafka::TopicPartition*> parts = {RdKafka::TopicPartition::create(input, 0)};
  ASSERT_EQ(c->committed(parts, 10000), RdKafka::ERR_NO_ERROR);
  EXPECT_EQ(parts[0]->offset(), 5);
  RdKafka::TopicPartition::destroy(parts);
  c->close();
}

/// Positions that are no partition of consumer_topic (a generation, a topic slot's record, the
/// partitions of a second topic in its slot) stay out of the group's offsets: sending them made
/// the transaction fail (no such partition).
TEST(KafkaSink, ConsumedOffsetsLeaveOutWhatIsNoPartitionOfTheTopic) {
  REQUIRE_BROKER();
  const std::string topic = UniqueTopic("offsets-ids");
  const std::string input = UniqueTopic("offsets-ids-in");
  const std::string group = UniqueTopic("group");
  {
    auto in = OpenSink(input, "seed");
    ASSERT_TRUE(in);
  }
  auto sink = OpenSink(topic, "p", {{"consumer_group", group}, {"consumer_topic", input}});
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->LoadPositions().ok());
  auto rows = Rows(0, 1);
  Checkpoint cp;
  cp.id = 1;
  cp.rows = &rows;
  cp.positions = {{"in", 0, 7},
                  {"in", KafkaPartitionId(5, 0), 3},
                  {"in", kTopicSlotBase + 5, 12345},
                  {"in", kGenerationPartitionBase, 1}};
  Status s = sink->Commit(cp);
  ASSERT_TRUE(s.ok()) << s.ToString();

  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", Brokers(), err);
  conf->set("group.id", group, err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  std::vector<RdKafka::TopicPartition*> parts = {RdKafka::TopicPartition::create(input, 0)};
  ASSERT_EQ(c->committed(parts, 10000), RdKafka::ERR_NO_ERROR);
  EXPECT_EQ(parts[0]->offset(), 7);
  RdKafka::TopicPartition::destroy(parts);
  c->close();
}

}  // namespace
}  // namespace sluice
