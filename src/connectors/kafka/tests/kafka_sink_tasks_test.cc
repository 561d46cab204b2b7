// The Kafka sink's tasks (per-partition state in `["task", pipeline, source, p]` records of the
// positions topic) against the broker of `make services` (127.0.0.1:9092, or
// $SLUICE_KAFKA_BROKERS). Two sink instances with their own transactional ids stand for two
// processes. Without a broker these tests skip loudly; with CI=true they fail.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/kafka/kafka_uri.h"
#include "connectors/kafka/kafka_admin.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/tests/kafka_test_broker.h"
#include "runtime/window_state.h"

namespace sluice {
namespace {

using kafkatest::Brokers;
using namespace std::string_literals;

SinkContext TaskContext(const std::string& pipeline) {
  SinkContext ctx;
  ctx.pipeline = pipeline;
  ctx.output = Schema({{"id", Type::kInt64, ""}});
  ctx.source = "src";
  ctx.tasks = true;
  return ctx;
}

/// A sink on `topic` with its own transactional id `tid` (one process of the pipeline), told to
/// keep state per task unless `legacy` (an older sluice: one state record).
std::unique_ptr<KafkaSink> OpenTaskSink(const std::string& topic, const std::string& tid, bool legacy = false) {
  SinkConfig c;
  c.uri = "kafka://" + Brokers() + "/" + topic;
  c.options.Set("key", {"id", {}});
  c.options.Set("timeout", {"15s", {}});
  c.options.Set("transactional_id", {tid, {}});
  auto made = KafkaSink::Make(c);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  if (!made.ok()) return nullptr;
  std::unique_ptr<KafkaSink> sink(static_cast<KafkaSink*>(made->release()));
  SinkContext ctx = TaskContext("p");
  ctx.tasks = !legacy;
  Status s = sink->Open(ctx);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return nullptr;
  return sink;
}

OwnerInfo Owner(const std::string& name) {
  OwnerInfo o;
  o.host = "test";
  o.pid = 1;
  o.client_id = name;
  return o;
}

std::vector<std::vector<Value>> Ids(std::initializer_list<int64_t> ids) {
  std::vector<std::vector<Value>> rows;
  for (int64_t id : ids) rows.push_back({Value::Int(id)});
  return rows;
}

TaskProgress Progress(int64_t max_event_time) {
  TaskProgress p;
  p.max_event_time = max_event_time;
  p.watermark = max_event_time - 10;
  p.enforced = max_event_time - 20;
  return p;
}

/// A checkpoint of task (src, 0) under `fence`: `rows`, position `offset`, its state and progress.
struct TaskCheckpoint {
  std::vector<std::vector<Value>> rows;
  std::string state;
  Checkpoint cp;
  TaskCheckpoint(int64_t id, std::initializer_list<int64_t> ids, int64_t offset, int64_t fence,
                 std::string s, int64_t max_event_time)
      : rows(Ids(ids)), state(std::move(s)) {
    cp.id = id;
    cp.rows = &rows;
    cp.positions = {{"src", 0, offset}};
    TaskCommit t;
    t.task = TaskId{"src", 0};
    t.fence = fence;
    t.progress = Progress(max_event_time);
    t.state = &state;
    cp.tasks.push_back(t);
  }
};

/// The message keys (the rows' ids) a read_committed consumer sees in `topic`.
std::multiset<std::string> CommittedKeys(const std::string& topic) {
  std::string error;
  kafkatest::Handle c = kafkatest::NewHandle(RD_KAFKA_CONSUMER,
                                             {{"group.id", kafkatest::Unique("ksink_tasks_reader")},
                                              {"isolation.level", "read_committed"},
                                              {"enable.partition.eof", "true"},
                                              {"enable.auto.commit", "false"}},
                                             &error);
  EXPECT_TRUE(c) << error;
  std::multiset<std::string> keys;
  if (!c) return keys;
  const int n = KafkaPartitionCount(Brokers(), topic);
  EXPECT_GT(n, 0) << topic;
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(c.get(), parts);
  rd_kafka_topic_partition_list_destroy(parts);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int eofs = 0;
  while (eofs < n && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 500);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eofs;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key) {
      keys.insert(std::string(static_cast<const char*>(m->key), m->key_len));
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_EQ(eofs, n) << "did not reach the end of " << topic;
  rd_kafka_consumer_close(c.get());
  return keys;
}

// A task moved to another process loads exactly what its last commit stored (state with bytes a
// text format would break, positions, progress), not an aborted attempt; the process it moved
// from is fenced when it commits again, and nothing of that commit is visible.
TEST(KafkaSinkTasks, ATaskMovedToAnotherInstanceLoadsExactlyTheCommittedStateAndTheOldOwnerIsFenced) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_move");
  auto a = OpenTaskSink(topic, topic + "-a");
  ASSERT_TRUE(a);
  auto claim = a->ClaimTask(TaskId{"src", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ(claim->fence, 1);
  EXPECT_EQ(claim->state, "");
  EXPECT_TRUE(claim->positions.empty());

  const std::string s1 = "one\n\0held"s, s2 = "two\n\0\xff held records"s;
  TaskCheckpoint c1(1, {0, 1, 2}, 3, claim->fence, s1, 1000);
  ASSERT_TRUE(a->Commit(c1.cp).ok());
  TaskCheckpoint c2(2, {3}, 4, claim->fence, s2, 2000);
  ASSERT_TRUE(a->Commit(c2.cp).ok());
  // A third checkpoint is aborted (a broker error before commit): B must not see it.
  TaskCheckpoint c3(3, {4, 5}, 6, claim->fence, "three", 3000);
  a->SetTestHook([](std::string_view stage) {
    return stage == "before_commit" ? Status::Unavailable("injected before commit") : Status::OK();
  });
  ASSERT_FALSE(a->Commit(c3.cp).ok());
  a->SetTestHook(nullptr);

  auto b = OpenTaskSink(topic, topic + "-b");
  ASSERT_TRUE(b);
  auto moved = b->ClaimTask(TaskId{"src", 0}, Owner("b"));
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->fence, 2);
  EXPECT_EQ(moved->state, s2);
  EXPECT_EQ(moved->positions, (std::map<int32_t, int64_t>{{0, 4}}));
  auto rows = b->LoadTaskProgress();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].fence, 2);
  EXPECT_EQ((*rows)[0].owner, Owner("b").ToString());
  EXPECT_EQ((*rows)[0].progress, Progress(2000));

  // The old owner retries its checkpoint: fenced, nothing of it visible.
  Status retried = a->Commit(c3.cp);
  EXPECT_EQ(retried.code(), StatusCode::kFenced) << retried.ToString();
  TaskCheckpoint c4(4, {4, 5}, 6, moved->fence, "four", 3000);
  ASSERT_TRUE(b->Commit(c4.cp).ok());
  EXPECT_EQ(CommittedKeys(topic), (std::multiset<std::string>{"0", "1", "2", "3", "4", "5"}));

  // What `sluice status` reads: a third instance opened for reading only.
  auto made = KafkaSink::Make([&] {
    SinkConfig c;
    c.uri = "kafka://" + Brokers() + "/" + topic;
    return c;
  }());
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE((*made)->OpenForReading(TaskContext("p")).ok());
  auto read = (*made)->LoadTaskProgress();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].fence, 2);
  EXPECT_EQ((*read)[0].progress, Progress(3000));
  auto positions = (*made)->LoadPositions();
  ASSERT_TRUE(positions.ok());
  EXPECT_EQ(*positions, (std::vector<StoredPosition>{{"src", 0, 6}}));
}

// A claim made while another process's commit of the task is open (it passed its fence check
// but has not committed yet: a zombie, or a revoke's last commit) waits for that transaction,
// and returns what it committed.
TEST(KafkaSinkTasks, AClaimDuringAnOpenCommitOfTheTaskReturnsWhatThatCommitStored) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_claimwaits");
  auto a = OpenTaskSink(topic, topic + "-a");
  auto b = OpenTaskSink(topic, topic + "-b");
  ASSERT_TRUE(a && b);
  auto claim = a->ClaimTask(TaskId{"src", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  TaskCheckpoint c1(1, {0}, 1, claim->fence, "first", 1000);
  ASSERT_TRUE(a->Commit(c1.cp).ok());

  Result<TaskClaim> moved = Status::Internal("not claimed");
  std::thread claimer;
  a->SetTestHook([&](std::string_view stage) {
    if (stage == "before_commit") {
      claimer = std::thread([&] { moved = b->ClaimTask(TaskId{"src", 0}, Owner("b")); });
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the claim reads meanwhile
    }
    return Status::OK();
  });
  TaskCheckpoint c2(2, {1, 2}, 3, claim->fence, "second", 2000);
  ASSERT_TRUE(a->Commit(c2.cp).ok());
  claimer.join();
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->fence, 2);
  EXPECT_EQ(moved->state, "second");
  EXPECT_EQ(moved->positions, (std::map<int32_t, int64_t>{{0, 3}}));
  a->SetTestHook(nullptr);
  TaskCheckpoint c3(3, {3}, 4, claim->fence, "third", 3000);
  EXPECT_EQ(a->Commit(c3.cp).code(), StatusCode::kFenced);
  EXPECT_EQ(CommittedKeys(topic), (std::multiset<std::string>{"0", "1", "2"}));
  // The claim's own record carries what that commit stored: the next claim finds it too.
  auto c = OpenTaskSink(topic, topic + "-c");
  ASSERT_TRUE(c);
  auto again = c->ClaimTask(TaskId{"src", 0}, Owner("c"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->fence, 3);
  EXPECT_EQ(again->state, "second");
}

// A claim whose record lands between a commit's own records in partition 0 (here between its
// task record and its positions) reads the commit's task record but not its positions. The
// commit sees the other record among its own, aborts and is written again after the claim,
// which fences it: the claim returns the positions committed, never half of a commit.
TEST(KafkaSinkTasks, AClaimBetweenTheRecordsOfACommitSeesAllOfItOrNone) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_between");
  auto a = OpenTaskSink(topic, topic + "-a");
  auto b = OpenTaskSink(topic, topic + "-b");
  ASSERT_TRUE(a && b);
  auto claim = a->ClaimTask(TaskId{"src", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  TaskCheckpoint c1(1, {0}, 1, claim->fence, "first", 1000);
  ASSERT_TRUE(a->Commit(c1.cp).ok());

  Result<TaskClaim> moved = Status::Internal("not claimed");
  std::thread claimer;
  a->SetTestHook([&](std::string_view stage) {
    if (stage == "after_task_records" && !claimer.joinable()) {
      // The task record leaves in a batch of its own (linger.ms), then the claim's record
      // lands after it, before this commit's positions.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      claimer = std::thread([&] { moved = b->ClaimTask(TaskId{"src", 0}, Owner("b")); });
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    }
    return Status::OK();
  });
  // Progress and state as before: only the positions tell this commit from the last one.
  TaskCheckpoint c2(2, {1, 2}, 3, claim->fence, "first", 1000);
  const Status second = a->Commit(c2.cp);
  claimer.join();
  a->SetTestHook(nullptr);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->fence, 2);
  EXPECT_EQ(second.code(), StatusCode::kFenced) << second.ToString();
  EXPECT_EQ(moved->positions, (std::map<int32_t, int64_t>{{0, 1}}));
  EXPECT_EQ(CommittedKeys(topic), (std::multiset<std::string>{"0"}));
}

// A commit that starts while another process's claim of the task is open (the claim's record
// comes first in the positions topic) is fenced, even when it reads before the claim commits:
// a zombie's transaction never lands after the task moved.
TEST(KafkaSinkTasks, ACommitRacingAClaimOfItsTaskIsFenced) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_zombie");
  auto a = OpenTaskSink(topic, topic + "-a");
  auto b = OpenTaskSink(topic, topic + "-b");
  ASSERT_TRUE(a && b);
  auto claim = a->ClaimTask(TaskId{"src", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  TaskCheckpoint c1(1, {0}, 1, claim->fence, "first", 1000);
  ASSERT_TRUE(a->Commit(c1.cp).ok());

  Status zombie = Status::Internal("not committed");
  std::thread committer;
  TaskCheckpoint c2(2, {1, 2}, 3, claim->fence, "zombie", 2000);
  b->SetTestHook([&](std::string_view stage) {
    if (stage == "claim_before_commit") {
      committer = std::thread([&] { zombie = a->Commit(c2.cp); });
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the commit reads meanwhile
    }
    return Status::OK();
  });
  auto moved = b->ClaimTask(TaskId{"src", 0}, Owner("b"));
  committer.join();
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->fence, 2);
  EXPECT_EQ(moved->state, "first");
  EXPECT_EQ(moved->positions, (std::map<int32_t, int64_t>{{0, 1}}));
  EXPECT_EQ(zombie.code(), StatusCode::kFenced) << zombie.ToString();
  EXPECT_EQ(CommittedKeys(topic), (std::multiset<std::string>{"0"}));
  auto rows = b->LoadTaskProgress();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].progress, Progress(1000));
}

// Two claims of one task at once each get their own fence, ordered by the positions topic.
TEST(KafkaSinkTasks, ClaimsRacingForOneTaskEachGetTheirOwnFence) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_claims");
  auto a = OpenTaskSink(topic, topic + "-a");
  auto b = OpenTaskSink(topic, topic + "-b");
  ASSERT_TRUE(a && b);
  std::vector<int64_t> fences;
  for (int round = 0; round < 3; ++round) {
    Result<TaskClaim> ca = Status::Internal(""), cb = Status::Internal("");
    std::thread ta([&] { ca = a->ClaimTask(TaskId{"src", 0}, Owner("a")); });
    std::thread tb([&] { cb = b->ClaimTask(TaskId{"src", 0}, Owner("b")); });
    ta.join();
    tb.join();
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    ASSERT_TRUE(cb.ok()) << cb.status().ToString();
    fences.push_back(ca->fence);
    fences.push_back(cb->fence);
  }
  std::sort(fences.begin(), fences.end());
  EXPECT_EQ(fences, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  auto rows = a->LoadTaskProgress();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].fence, 6);
}

/// What compaction of `topic`'s positions topic would leave (the latest record of each key,
/// tombstones dropped), copied into a new compacted topic; a new sink instance reading that copy
/// as its positions topic then claims task (src, 0) (fence, state and positions).
Result<TaskClaim> ClaimFromACompactedCopy(const std::string& topic, const std::string& copy) {
  const std::string positions = topic + ".sluice-positions";
  std::string error;
  kafkatest::Handle c = kafkatest::NewHandle(RD_KAFKA_CONSUMER,
                                             {{"group.id", kafkatest::Unique("ksink_tasks_copy")},
                                              {"isolation.level", "read_committed"},
                                              {"enable.partition.eof", "true"},
                                              {"enable.auto.commit", "false"}},
                                             &error);
  if (!c) return Status::Internal(error);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, positions.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c.get(), parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::map<std::string, std::optional<std::string>> latest;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool eof = false;
  while (!eof && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.get(), 500);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      eof = true;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key) {
      std::string key(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) {
        latest[key] = std::string(static_cast<const char*>(m->payload), m->len);
      } else {
        latest[key] = std::nullopt;
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c.get());
  if (!eof) return Status::Internal("did not reach the end of " + positions);
  // A sink on another output topic with the copy as its positions topic creates it (compacted).
  auto open = [&](const std::string& tid) -> std::unique_ptr<KafkaSink> {
    SinkConfig sc;
    sc.uri = "kafka://" + Brokers() + "/" + copy;
    sc.options.Set("timeout", {"15s", {}});
    sc.options.Set("transactional_id", {tid, {}});
    sc.options.Set("positions_topic", {copy + ".positions", {}});
    auto made = KafkaSink::Make(sc);
    if (!made.ok()) return nullptr;
    std::unique_ptr<KafkaSink> sink(static_cast<KafkaSink*>(made->release()));
    if (!sink->Open(TaskContext("p")).ok()) return nullptr;
    return sink;
  };
  if (!open(copy + "-create")) return Status::Internal("cannot create " + copy + ".positions");
  kafkatest::Handle p = kafkatest::NewHandle(RD_KAFKA_PRODUCER, {}, &error);
  if (!p) return Status::Internal(error);
  const std::string target = copy + ".positions";
  for (const auto& [key, value] : latest) {
    if (!value) continue;
    if (rd_kafka_producev(p.get(), RD_KAFKA_V_TOPIC(target.c_str()), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_KEY(key.data(), key.size()),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value->data()), value->size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Internal("produce to " + target);
    }
  }
  if (rd_kafka_flush(p.get(), 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Internal("flush " + target);
  auto reader = open(copy + "-claim");
  if (!reader) return Status::Internal("cannot open a sink on " + target);
  return reader->ClaimTask(TaskId{"src", 0}, Owner("c"));
}

// Compaction keeps only the latest record of each key: every task record (a commit whose state
// did not change, a claim) carries the task's whole state and progress, so what compaction
// leaves claims exactly as the whole topic does.
TEST(KafkaSinkTasks, EveryTaskRecordHoldsTheWholeStateSoCompactionLosesNothing) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_compact");
  auto a = OpenTaskSink(topic, topic + "-a");
  ASSERT_TRUE(a);
  auto claim = a->ClaimTask(TaskId{"src", 0}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  TaskCheckpoint c1(1, {0}, 1, claim->fence, "held state", 1000);
  ASSERT_TRUE(a->Commit(c1.cp).ok());
  // A commit that does not change the state (TaskCommit::state null).
  TaskCheckpoint c2(2, {1}, 2, claim->fence, "", 2000);
  c2.cp.tasks[0].state = nullptr;
  ASSERT_TRUE(a->Commit(c2.cp).ok());
  auto copied = ClaimFromACompactedCopy(topic, topic + "-copy1");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(copied->fence, 2);
  EXPECT_EQ(copied->state, "held state");
  EXPECT_EQ(copied->positions, (std::map<int32_t, int64_t>{{0, 2}}));
  // Another process claims the task: its claim record is now the latest.
  auto b = OpenTaskSink(topic, topic + "-b");
  ASSERT_TRUE(b);
  auto moved = b->ClaimTask(TaskId{"src", 0}, Owner("b"));
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->state, "held state");
  copied = ClaimFromACompactedCopy(topic, topic + "-copy2");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(copied->fence, 3);
  EXPECT_EQ(copied->state, "held state");
  auto rows = b->LoadTaskProgress();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].progress, Progress(2000));
}

// A state record of an older sluice is moved into task records (held records and event-time
// progress by partition) at the first Open on tasks; an older sluice's state record written next
// to task records afterwards is refused at the next commit of tasks and at Open.
TEST(KafkaSinkTasks, TheLegacyStateMovesIntoTaskRecordsAndALaterOneIsRefused) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_legacy");
  WindowState ws;
  ws.closed_before = 70;
  ws.max_event_times[{"src", 0}] = 100;
  ws.max_event_times[{"src", 1}] = 90;
  ws.held.push_back(HeldRecord{"held-in-1", 1, 4, 0});
  const std::string blob = ws.Serialize(nullptr);
  {
    auto old = OpenTaskSink(topic, topic + "-old", /*legacy=*/true);
    ASSERT_TRUE(old);
    Checkpoint cp;
    cp.id = 1;
    cp.positions = {{"src", 0, 8}, {"src", 1, 6}};
    cp.state = &blob;
    ASSERT_TRUE(old->Commit(cp).ok());
  }
  auto a = OpenTaskSink(topic, topic + "-a");
  ASSERT_TRUE(a);
  auto rows = a->LoadTaskProgress();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].task, (TaskId{"src", 0}));
  EXPECT_EQ((*rows)[0].fence, 0);
  EXPECT_EQ((*rows)[0].progress.max_event_time, 100);
  EXPECT_EQ((*rows)[0].progress.enforced, 70);
  EXPECT_EQ((*rows)[1].progress.max_event_time, 90);
  auto claim = a->ClaimTask(TaskId{"src", 1}, Owner("a"));
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ(claim->fence, 1);
  EXPECT_EQ(claim->positions, (std::map<int32_t, int64_t>{{1, 6}}));
  auto state = TaskState::Parse(claim->state, nullptr);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  ASSERT_EQ(state->held.size(), 1u);
  EXPECT_EQ(state->held[0].payload, "held-in-1");
  EXPECT_EQ(state->held[0].offset, 4);
  // The state record is gone: a legacy sink reads none.
  {
    auto old = OpenTaskSink(topic, topic + "-old2", /*legacy=*/true);
    ASSERT_TRUE(old);
    EXPECT_EQ(old->LoadState().value(), "");
    // ...and then an older sluice, still running, commits its one state record.
    Checkpoint cp;
    cp.id = 2;
    cp.positions = {{"src", 1, 7}};
    cp.state = &blob;
    ASSERT_TRUE(old->Commit(cp).ok());
  }
  TaskCheckpoint next(2, {9}, 7, claim->fence, "s", 200);
  next.cp.positions = {{"src", 1, 7}};
  next.cp.tasks[0].task = TaskId{"src", 1};
  Status s = a->Commit(next.cp);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("stop them all, then start"), std::string::npos) << s.message();
  SinkConfig c;
  c.uri = "kafka://" + Brokers() + "/" + topic;
  c.options.Set("transactional_id", {topic + "-b", {}});
  auto b = KafkaSink::Make(c);
  ASSERT_TRUE(b.ok());
  Status opened = (*b)->Open(TaskContext("p"));
  EXPECT_EQ(opened.code(), StatusCode::kFailedPrecondition) << opened.ToString();
}

// Claims and commits are ordered by partition 0 of the positions topic: a pipeline on tasks
// refuses one with more partitions (one the sink did not create), naming it.
TEST(KafkaSinkTasks, APositionsTopicOfSeveralPartitionsIsRefused) {
  SLUICE_REQUIRE_KAFKA();
  const std::string topic = kafkatest::Unique("ksink_tasks_parts");
  auto admin = KafkaAdmin::Make(Brokers(), 10000);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  ASSERT_TRUE((*admin)->CreateTopic(topic + ".sluice-positions", 2, {{"cleanup.policy", "compact"}}).ok());
  SinkConfig c;
  c.uri = "kafka://" + Brokers() + "/" + topic;
  c.options.Set("transactional_id", {topic + "-a", {}});
  auto sink = KafkaSink::Make(c);
  ASSERT_TRUE(sink.ok());
  Status opened = (*sink)->Open(TaskContext("p"));
  EXPECT_EQ(opened.code(), StatusCode::kFailedPrecondition) << opened.ToString();
  EXPECT_NE(opened.message().find("has 2 partitions"), std::string::npos) << opened.message();
  // Without tasks it is used as before.
  SinkContext legacy = TaskContext("p");
  legacy.tasks = false;
  EXPECT_TRUE((*sink)->Open(legacy).ok());
}

}  // namespace
}  // namespace sluice
