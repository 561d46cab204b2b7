#!/usr/bin/env python3
"""Dimensions that follow their source of truth, against the real MariaDB and Kafka.

    dimension_cdc_test.py --sluice build/sluice [--only mysql,jdbc,debezium,envelope,connect,avro,avro_jdbc,
                                                       avro_down,protobuf,protobuf_jdbc,protobuf_down]

Needs the servers of `make services`: MariaDB on 127.0.0.1:3306 (root, no password, database
`sluice`) and Kafka on 127.0.0.1:9092, plus kcat (installed through scripts/install-deps.sh when
missing); SLUICE_TEST_MYSQL and SLUICE_TEST_KAFKA override the addresses (tests/tools/harness.py).
A server that does not answer is a FAIL under CI=true (or 1, yes), otherwise a loud SKIP (exit 77).

Each scenario runs a small pipeline with `sluice run --follow` over an NDJSON file of events
`{"seq": N, "job_id": J}`; a lookup step adds `company_id` from the `job` dimension, and every
event lands as one row (seq, job_id, company_id) in a SQLite table. The test appends events,
changes the dimension at its source, appends more events, and checks per event:
- events that reached the sink before the change carry the old company;
- events appended two refresh intervals (plus the time to read them) after the change carry the
  new one; events in between may carry either, never anything else.

 mysql     `job` table (id, company_id, updated_at) polled by updated_at every second: an UPDATE
           moving job 3 to company 999, two rows updated in one statement with one timestamp.
 jdbc      a Kafka Connect JDBC-style topic (flat JSON rows): a new version of job 3.
 debezium  Debezium change events without the envelope: r snapshot, u of job 3, d of job 4
           (then its tombstone), c of job 6.
 envelope  the same events inside the schema envelope ({"schema":…, "payload":…}).
 connect   format jdbc with Kafka Connect's JsonConverter envelope (schemas.enable=true, its
           default: {"schema": {...}, "payload": {row}}) mixed with flat rows, and two messages in
           neither shape (a JSON array, an envelope whose payload is a string): those are counted
           (sluice_dimension_refresh_errors_total == 2 on /metrics) and the first is logged with
           its reason.
 avro      format avro: Debezium envelopes (before/after unions of null and the row record, op)
           written by confluent-kafka's AvroSerializer against the registry of `make services`
           (127.0.0.1:8081): r snapshot, u of job 3, d of job 4, its tombstone, c of job 6, plus
           one message without the Confluent header (counted, logged with its reason).
 avro_jdbc format avro: rows as the JDBC source connector writes them with the AvroConverter
           (a flat record with optional fields): a new version of job 3.
 avro_down format avro with a private registry (tests/tools/schema_registry.py on a free port)
           that is down when sluice starts (the snapshot waits for it, then is complete) and down
           again when an event with a new schema id arrives: the event is held back, not skipped
           (counted as failed refreshes, "waiting for the schema registry" in the log), and
           applied once the registry is back.
 protobuf  format protobuf: the same Debezium events as `avro` (r snapshot, u of job 3, d of job
           4, its tombstone, c of job 6, one message without the header) as messages Envelope
           {Value before, Value after, Source source, string op, optional int64 ts_ms}, the
           third message of their file, written by confluent-kafka's ProtobufSerializer (classes
           built at test time from a FileDescriptorProto); topics protocdc_*.
 protobuf_jdbc format protobuf: rows as the JDBC source connector writes them with the
           ProtobufConverter (message Value, optional fields): a new version of job 3.
 protobuf_down the same as avro_down in Protobuf: the update comes with a new schema (Value
           gains an optional note) while the private registry is down; it waits, then applies.

Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import json
import os
import re
import socket
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
import kafka_util  # noqa: E402  (broker helpers: kcat, topics)
from harness import BROKER  # noqa: E402
from mysql_client import Server  # noqa: E402

REFRESH_S = 1.0
REGISTRY = harness.REGISTRY_URL

PIPELINE = """
select = ["seq", "job_id", "company_id"]

[pipeline]
name = "cdc"
checkpoint_interval = "200ms"

[source]
name = "events"
uri = "{events}"

[source.fields]
seq = "int64"
job_id = "int64"

[dimension.job]
uri = "{dimension}"
key = "id"
fields = {{ id = "int64", company_id = "int64" }}
refresh = "1s"
{options}

[[step]]
lookup = "job"
key = "job_id"
fields = ["company_id"]
on_missing = "default"
defaults = {{ company_id = 0 }}

[sink]
uri = "sqlite:{db}"
table = "events"

[dead_letter]
path = "{db}.dlq"
"""

T = harness.Checks()
check = T.check


class Run:
    """One `sluice run --follow` over an events file, with helpers to feed and read it."""

    def __init__(self, sluice, tmp, name, dimension, options="", extra_args=()):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.events = os.path.join(self.dir, "events.ndjson")
        self.db = os.path.join(self.dir, "out.db")
        open(self.events, "w").close()
        self.pipeline = os.path.join(self.dir, "cdc.toml")
        with open(self.pipeline, "w") as f:
            f.write(PIPELINE.format(events=self.events, dimension=dimension, options=options, db=self.db))
        self.log = open(os.path.join(self.dir, "sluice.log"), "w")
        self.proc = subprocess.Popen([sluice, "run", self.pipeline, "--follow", *extra_args], cwd=REPO,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.seq = 0
        self.appended = {}  # seq -> monotonic time it was written

    def append(self, jobs):
        with open(self.events, "a") as f:
            for j in jobs:
                self.seq += 1
                f.write(json.dumps({"seq": self.seq, "job_id": j}) + "\n")
                self.appended[self.seq] = time.monotonic()
            f.flush()

    def rows(self):
        if not os.path.exists(self.db):
            return {}
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as c:
                return {s: (j, comp) for s, j, comp in c.execute("SELECT seq, job_id, company_id FROM events")}
        except sqlite3.OperationalError:
            return {}

    def wait_rows(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode}; see {self.log.name}")
            rows = self.rows()
            if len(rows) >= n:
                return rows
            time.sleep(0.1)
        raise RuntimeError(f"only {len(self.rows())} of {n} events reached the sink in {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def follow_change(run, name, before, after, change, changed_jobs, at_end=None, timed_after=False):
    """Feeds events, applies `change`, feeds more; checks old/new companies per event.

    before/after: job -> company_id expected before/after the change (0: no such job).
    at_end: called (with the run) after the checks, before the run is stopped.
    timed_after: the change counts from when change() returns (it waits for something itself).
    """
    jobs = sorted(before)
    run.append(jobs * 3)
    rows = run.wait_rows(run.seq)
    first = {s: r for s, r in rows.items()}
    wrong = [(s, j, c) for s, (j, c) in first.items() if c != before[j]]
    check(f"{name}: events before the change carry the snapshot", not wrong, f"wrong rows {wrong[:5]}")
    changed_at = time.monotonic()
    change()
    if timed_after:
        changed_at = time.monotonic()
    # Events every 200 ms for 4 refresh intervals.
    end = changed_at + 4 * REFRESH_S
    while time.monotonic() < end:
        run.append(jobs)
        time.sleep(0.2)
    rows = run.wait_rows(run.seq)
    late_bound = changed_at + 2 * REFRESH_S
    bad, stale = [], []
    for s, (j, c) in rows.items():
        if s in first:
            continue
        if c not in (before[j], after[j]):
            bad.append((s, j, c))
        elif run.appended[s] >= late_bound and c != after[j]:
            stale.append((s, j, c, round(run.appended[s] - changed_at, 2)))
    check(f"{name}: every event carries the old or the new value", not bad, f"rows {bad[:5]}")
    check(f"{name}: events from two refresh intervals after the change carry the new value",
          not stale, f"stale rows (seq, job, company, seconds after the change): {stale[:5]}")
    seen_new = {j for s, (j, c) in rows.items() if s not in first and c == after[j] and j in changed_jobs}
    check(f"{name}: the changed jobs were seen with their new values", seen_new == set(changed_jobs),
          f"saw {sorted(seen_new)} of {sorted(changed_jobs)}")
    if at_end:
        at_end(run)
    rc = run.stop()
    check(f"{name}: sluice stops on SIGTERM with exit 0", rc == 0, f"rc {rc}; log {run.log.name}")


def scenario_mysql(sluice, tmp, server):
    table = f"cdc_job_{os.getpid()}"
    server.run(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT PRIMARY KEY, "
               f"company_id BIGINT, updated_at DATETIME(6) NOT NULL); INSERT INTO {table} VALUES "
               "(1, 101, '2024-01-01 00:00:00'), (2, 102, '2024-01-01 00:00:00'), "
               "(3, 103, '2024-01-01 00:00:00'), (4, 104, '2024-01-01 00:00:01');", "sluice")
    run = Run(sluice, tmp, "mysql", server.uri("sluice", table))
    before = {1: 101, 2: 102, 3: 103, 4: 104}
    after = {1: 101, 2: 102, 3: 999, 4: 998}

    def change():
        # Two jobs in one statement: one timestamp for both rows.
        server.run(f"UPDATE {table} SET company_id = IF(id = 3, 999, 998), updated_at = NOW(6) "
                   "WHERE id IN (3, 4)", "sluice")

    try:
        follow_change(run, "mysql updated_at", before, after, change, [3, 4])
    finally:
        run.stop()
        server.run(f"DROP TABLE IF EXISTS {table}", "sluice")


def produce(topic, lines):
    p = subprocess.run(["kcat", "-b", BROKER, "-P", "-t", topic, "-p", "0", "-Z"],
                       input=("\n".join(lines) + "\n").encode(), capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"kcat -P failed: {p.stderr.decode(errors='replace')}")


def debezium(op, before, after, envelope):
    event = {"before": before, "after": after, "op": op, "ts_ms": int(time.time() * 1000),
             "source": {"connector": "mysql", "table": "job"}}
    if envelope:
        return json.dumps({"schema": {"type": "struct", "optional": False, "name": "job.Envelope"},
                           "payload": event})
    return json.dumps(event)


def scenario_kafka(sluice, tmp, fmt, envelope=False):
    name = fmt + (" envelope" if envelope else "")
    topic = f"cdc_{fmt}{'_env' if envelope else ''}_{os.getpid()}"
    kafka_util.create_topic(topic, 1)
    rows = {1: 101, 2: 102, 3: 103, 4: 104}
    if fmt == "jdbc":
        produce(topic, [json.dumps({"id": i, "company_id": c, "created_by": "x"}) for i, c in rows.items()])
        before = {**rows, 6: 0}
        after = {**before, 3: 999}

        def change():
            produce(topic, [json.dumps({"id": 3, "company_id": 999, "created_by": "y"})])
        changed = [3]
    else:
        produce(topic, [debezium("r", None, {"id": i, "company_id": c}, envelope) for i, c in rows.items()])
        before = {**rows, 6: 0}
        after = {1: 101, 2: 102, 3: 999, 4: 0, 6: 106}

        def change():
            produce(topic, [debezium("u", {"id": 3, "company_id": 103}, {"id": 3, "company_id": 999}, envelope),
                            debezium("d", {"id": 4, "company_id": 104}, None, envelope),
                            "",  # the tombstone after a delete: an empty message
                            debezium("c", None, {"id": 6, "company_id": 106}, envelope)])
        changed = [3, 6]
    options = 'format = "debezium"' if fmt == "debezium" else 'format = "jdbc"'
    run = Run(sluice, tmp, topic, f"kafka://{BROKER}/{topic}", options)
    try:
        follow_change(run, f"kafka {name}", before, after, change, changed)
    finally:
        run.stop()
        kafka_util.delete_topics(topic)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refresh_errors(port):
    """sluice_dimension_refresh_errors_total of dimension job on the run's /metrics."""
    import urllib.request  # noqa: PLC0415
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'^sluice_dimension_refresh_errors_total\{[^}]*dimension="job"[^}]*\} (\d+)', text, re.M)
    return int(m.group(1)) if m else None


def check_skipped(name, run, port, count, reason):
    """The run counted `count` skipped change records and logged the first one's reason."""
    got = refresh_errors(port)
    check(f"{name}: the {count} change record(s) that do not decode counted as refresh errors", got == count,
          f"sluice_dimension_refresh_errors_total = {got}")
    run.log.flush()
    with open(run.log.name, encoding="utf-8", errors="replace") as f:
        log = f.read()
    check(f"{name}: the log says why a change record was skipped",
          "skipped a change record" in log and reason in log, f"no '{reason}' in {run.log.name}")


def connect_envelope(row):
    """A row as Kafka Connect's JsonConverter writes it with schemas.enable=true."""
    fields = [{"type": "int64", "optional": False, "field": "id"},
              {"type": "int64", "optional": True, "field": "company_id"},
              {"type": "string", "optional": True, "field": "created_by"}]
    return json.dumps({"schema": {"type": "struct", "fields": fields, "optional": False, "name": "job"},
                       "payload": row})


def scenario_connect(sluice, tmp):
    topic = f"avro2_cdc_connect_{os.getpid()}"
    kafka_util.create_topic(topic, 1)
    rows = {1: 101, 2: 102, 3: 103, 4: 104}
    # Both shapes in one topic (a connector restarted with schemas.enable changed), and two
    # messages in neither shape.
    lines = [connect_envelope({"id": i, "company_id": c, "created_by": "x"}) if i % 2 else
             json.dumps({"id": i, "company_id": c, "created_by": "x"}) for i, c in rows.items()]
    lines += ['[{"id": 5, "company_id": 105}]',
              json.dumps({"schema": {"type": "string"}, "payload": "id=5 company_id=105"})]
    produce(topic, lines)
    before = {**rows, 5: 0, 6: 0}
    after = {**before, 3: 999, 6: 106}

    def change():
        produce(topic, [connect_envelope({"id": 3, "company_id": 999, "created_by": "y"}),
                        json.dumps({"id": 6, "company_id": 106, "created_by": "y"})])
    port = free_port()
    run = Run(sluice, tmp, topic, f"kafka://{BROKER}/{topic}", 'format = "jdbc"',
              ["--http", f"127.0.0.1:{port}"])
    try:
        follow_change(run, "kafka jdbc connect envelope", before, after, change, [3, 6],
                      lambda r: check_skipped("kafka jdbc connect envelope", r, port, 2,
                                              "neither a row nor a Kafka Connect envelope: an array"))
    finally:
        run.stop()
        kafka_util.delete_topics(topic)


DEBEZIUM_SCHEMA = {
    "type": "record", "name": "Envelope", "namespace": "dbserver1.inventory.job",
    "fields": [
        {"name": "before", "type": ["null", {
            "type": "record", "name": "Value", "fields": [
                {"name": "id", "type": "long"},
                {"name": "company_id", "type": ["null", "long"], "default": None},
                {"name": "created_by", "type": ["null", "string"], "default": None}]}],
         "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "source", "type": {"type": "record", "name": "Source",
                                    "namespace": "io.debezium.connector.mysql",
                                    "fields": [{"name": "connector", "type": "string"},
                                               {"name": "table", "type": ["null", "string"],
                                                "default": None}]}},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": None}]}

JDBC_AVRO_SCHEMA = {
    "type": "record", "name": "job", "fields": [
        {"name": "id", "type": "long"},
        {"name": "company_id", "type": ["null", "long"], "default": None},
        {"name": "created_by", "type": ["null", "string"], "default": None}]}


def avro_producer(topic, schema):
    """Returns produce(values): each value (a dict, None for a tombstone, bytes as they are)
    serialized by confluent-kafka's AvroSerializer and written to partition 0 of `topic`."""
    from confluent_kafka import Producer  # noqa: PLC0415
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415
    ser = AvroSerializer(SchemaRegistryClient({"url": REGISTRY}), json.dumps(schema))
    p = Producer({"bootstrap.servers": BROKER, "enable.idempotence": True})

    def produce_values(values):
        for v in values:
            if isinstance(v, dict):
                v = ser(v, SerializationContext(topic, MessageField.VALUE))
            p.produce(topic, value=v, partition=0)
        if p.flush(30):
            raise RuntimeError(f"records to {topic} not delivered")
    return produce_values


def debezium_avro(op, before, after):
    def row(r):
        return None if r is None else {"id": r["id"], "company_id": r.get("company_id"),
                                       "created_by": r.get("created_by")}
    return {"before": row(before), "after": row(after), "op": op, "ts_ms": int(time.time() * 1000),
            "source": {"connector": "mysql", "table": "job"}}


def scenario_avro(sluice, tmp, jdbc):
    name = "kafka avro " + ("jdbc rows" if jdbc else "debezium")
    topic = f"avro2_cdc_{'jdbc' if jdbc else 'debezium'}_{os.getpid()}"
    kafka_util.create_topic(topic, 1)
    produce_values = avro_producer(topic, JDBC_AVRO_SCHEMA if jdbc else DEBEZIUM_SCHEMA)
    rows = {1: 101, 2: 102, 3: 103, 4: 104}
    if jdbc:
        produce_values([{"id": i, "company_id": c, "created_by": "x"} for i, c in rows.items()])
        before = {**rows, 6: 0}
        after = {**before, 3: 999}

        def change():
            produce_values([{"id": 3, "company_id": 999, "created_by": "y"}])
        changed = [3]
    else:
        produce_values([debezium_avro("r", None, {"id": i, "company_id": c}) for i, c in rows.items()]
                       + [b'{"id": 5, "company_id": 105}'])  # no Confluent header: skipped
        before = {**rows, 5: 0, 6: 0}
        after = {1: 101, 2: 102, 3: 999, 4: 0, 5: 0, 6: 106}

        def change():
            produce_values([debezium_avro("u", {"id": 3, "company_id": 103}, {"id": 3, "company_id": 999}),
                            debezium_avro("d", {"id": 4, "company_id": 104}, None),
                            None,  # the tombstone after a delete
                            debezium_avro("c", None, {"id": 6, "company_id": 106})])
        changed = [3, 6]
    port = free_port()
    options = f'format = "avro"\nschema_registry = "{REGISTRY}"'
    run = Run(sluice, tmp, topic, f"kafka://{BROKER}/{topic}", options, ["--http", f"127.0.0.1:{port}"])
    at_end = None
    if not jdbc:
        at_end = lambda r: check_skipped(name, r, port, 1,  # noqa: E731
                                         "not the Confluent wire format: magic byte 0x7b")
    try:
        follow_change(run, name, before, after, change, changed, at_end)
    finally:
        run.stop()
        kafka_util.delete_topics(topic)


def protobuf_classes(topic, note=False):
    """Message classes built at test time (no generated code), in the file protocdc/<topic>.proto:
    Value (the row: int64 id, optional int64 company_id, optional string created_by), Source,
    and Envelope (Value before, Value after, Source source, string op, optional int64 ts_ms) —
    Debezium's envelope as its ProtobufConverter shapes it; `note`: Value gains an optional string
    note (a new schema). Returns (Value, Envelope)."""
    from google.protobuf import descriptor_pb2 as d  # noqa: PLC0415
    from google.protobuf import descriptor_pool, message_factory  # noqa: PLC0415
    F = d.FieldDescriptorProto

    def field(msg, name, number, ftype, type_name=None, optional=False):
        f = msg.field.add(name=name, number=number, type=ftype, label=F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name
        if optional:  # proto3 `optional`: a synthetic oneof of its own
            f.proto3_optional = True
            f.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name="_" + name)
    pkg = "protocdc." + re.sub(r"\W", "_", topic)
    fdp = d.FileDescriptorProto(name=f"protocdc/{topic}.proto", package=pkg, syntax="proto3")
    value = fdp.message_type.add(name="Value")
    field(value, "id", 1, F.TYPE_INT64)
    field(value, "company_id", 2, F.TYPE_INT64, optional=True)
    field(value, "created_by", 3, F.TYPE_STRING, optional=True)
    if note:
        field(value, "note", 4, F.TYPE_STRING, optional=True)
    source = fdp.message_type.add(name="Source")
    field(source, "connector", 1, F.TYPE_STRING)
    field(source, "table", 2, F.TYPE_STRING, optional=True)
    env = fdp.message_type.add(name="Envelope")
    field(env, "before", 1, F.TYPE_MESSAGE, f".{pkg}.Value")
    field(env, "after", 2, F.TYPE_MESSAGE, f".{pkg}.Value")
    field(env, "source", 3, F.TYPE_MESSAGE, f".{pkg}.Source")
    field(env, "op", 4, F.TYPE_STRING)
    field(env, "ts_ms", 5, F.TYPE_INT64, optional=True)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{pkg}.Value")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{pkg}.Envelope")))


def protobuf_producer(topic, cls):
    """Returns produce(values): each value (a message, None for a tombstone, bytes as they are)
    serialized by confluent-kafka's ProtobufSerializer and written to partition 0 of `topic`."""
    from confluent_kafka import Producer  # noqa: PLC0415
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415
    ser = ProtobufSerializer(cls, SchemaRegistryClient({"url": REGISTRY}))
    p = Producer({"bootstrap.servers": BROKER, "enable.idempotence": True})

    def produce_values(values):
        for v in values:
            if v is not None and not isinstance(v, bytes):
                v = ser(v, SerializationContext(topic, MessageField.VALUE))
            p.produce(topic, value=v, partition=0)
        if p.flush(30):
            raise RuntimeError(f"records to {topic} not delivered")
    return produce_values


def scenario_protobuf(sluice, tmp, jdbc):
    name = "kafka protobuf " + ("jdbc rows" if jdbc else "debezium")
    topic = f"protocdc_{'jdbc' if jdbc else 'debezium'}_{os.getpid()}"
    kafka_util.create_topic(topic, 1)
    Value, Envelope = protobuf_classes(topic)

    def row(r):
        v = Value(id=r["id"])
        if r.get("company_id") is not None:
            v.company_id = r["company_id"]
        if r.get("created_by") is not None:
            v.created_by = r["created_by"]
        return v

    def event(op, before, after):
        e = Envelope(op=op, ts_ms=int(time.time() * 1000))
        e.source.connector = "mysql"
        e.source.table = "job"
        if before is not None:
            e.before.CopyFrom(row(before))
        if after is not None:
            e.after.CopyFrom(row(after))
        return e
    produce_values = protobuf_producer(topic, Value if jdbc else Envelope)
    rows = {1: 101, 2: 102, 3: 103, 4: 104}
    if jdbc:
        produce_values([row({"id": i, "company_id": c, "created_by": "x"}) for i, c in rows.items()])
        before = {**rows, 6: 0}
        after = {**before, 3: 999}

        def change():
            produce_values([row({"id": 3, "company_id": 999, "created_by": "y"})])
        changed = [3]
    else:
        produce_values([event("r", None, {"id": i, "company_id": c}) for i, c in rows.items()]
                       + [b'{"id": 5, "company_id": 105}'])  # no Confluent header: skipped
        before = {**rows, 5: 0, 6: 0}
        after = {1: 101, 2: 102, 3: 999, 4: 0, 5: 0, 6: 106}

        def change():
            produce_values([event("u", {"id": 3, "company_id": 103}, {"id": 3, "company_id": 999}),
                            event("d", {"id": 4, "company_id": 104}, None),
                            None,  # the tombstone after a delete
                            event("c", None, {"id": 6, "company_id": 106})])
        changed = [3, 6]
    port = free_port()
    options = f'format = "protobuf"\nschema_registry = "{REGISTRY}"'
    run = Run(sluice, tmp, topic, f"kafka://{BROKER}/{topic}", options, ["--http", f"127.0.0.1:{port}"])
    at_end = None
    if not jdbc:
        at_end = lambda r: check_skipped(name, r, port, 1,  # noqa: E731
                                         "not the Confluent wire format: magic byte 0x7b")
    try:
        follow_change(run, name, before, after, change, changed, at_end)
    finally:
        run.stop()
        kafka_util.delete_topics(topic)


class PrivateRegistry:
    """tests/tools/schema_registry.py on a free port with its own state file, to stop and start."""

    def __init__(self, tmp):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, os.path.join(REPO, "tests", "tools", "schema_registry.py"),
                    "--port", str(self.port), "--state", os.path.join(tmp, "private_registry.json")]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the private schema registry did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def protobuf_down_events(client, topic, rows):
    """The snapshot (r events, schema v1) and the update of job 3 (schema v2: Value gains note),
    serialized by ProtobufSerializer against `client`."""
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415
    ctx = SerializationContext(topic, MessageField.VALUE)
    _, env1 = protobuf_classes(topic)
    _, env2 = protobuf_classes(topic, note=True)
    ser1, ser2 = ProtobufSerializer(env1, client), ProtobufSerializer(env2, client)
    snapshot = []
    for i, c in rows.items():
        e = env1(op="r")
        e.after.id, e.after.company_id = i, c
        snapshot.append(ser1(e, ctx))
    e = env2(op="u")
    e.before.id, e.before.company_id, e.before.note = 3, 103, "moved"
    e.after.id, e.after.company_id, e.after.note = 3, 999, "moved"
    return snapshot, ser2(e, ctx)


def scenario_registry_down(sluice, tmp, fmt):
    from confluent_kafka import Producer  # noqa: PLC0415
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415
    name = f"kafka {fmt} registry down"
    topic = f"avro2_cdc_down_{os.getpid()}" if fmt == "avro" else f"protocdc_down_{os.getpid()}"
    kafka_util.create_topic(topic, 1)
    reg = PrivateRegistry(tmp)
    reg.start()
    rows = {1: 101, 2: 102, 3: 103, 4: 104}
    try:
        client = SchemaRegistryClient({"url": reg.url})
        if fmt == "protobuf":
            snapshot, update = protobuf_down_events(client, topic, rows)
        else:
            # v2: the row record gains a field (a new schema id the running dimension has not seen).
            v2 = json.loads(json.dumps(DEBEZIUM_SCHEMA))
            v2["fields"][0]["type"][1]["fields"].append({"name": "note", "type": ["null", "string"],
                                                         "default": None})
            ctx = SerializationContext(topic, MessageField.VALUE)
            ser1 = AvroSerializer(client, json.dumps(DEBEZIUM_SCHEMA))
            ser2 = AvroSerializer(client, json.dumps(v2))
            snapshot = [ser1(debezium_avro("r", None, {"id": i, "company_id": c}), ctx) for i, c in rows.items()]
            ev = debezium_avro("u", {"id": 3, "company_id": 103}, {"id": 3, "company_id": 999})
            for side in ("before", "after"):
                ev[side]["note"] = "moved"
            update = ser2(ev, ctx)
    finally:
        reg.stop()
    p = Producer({"bootstrap.servers": BROKER, "enable.idempotence": True})

    def produce_raw(values):
        for v in values:
            p.produce(topic, value=v, partition=0)
        if p.flush(30):
            raise RuntimeError(f"records to {topic} not delivered")
    produce_raw(snapshot)
    port = free_port()
    options = f'format = "{fmt}"\nschema_registry = "{reg.url}"'
    run = Run(sluice, tmp, topic, f"kafka://{BROKER}/{topic}", options, ["--http", f"127.0.0.1:{port}"])
    try:
        time.sleep(3)  # the snapshot waits for the registry
        reg.start()
        before = {**rows, 6: 0}
        after = {**before, 3: 999}

        def change():
            reg.stop()
            produce_raw([update])
            time.sleep(3)  # a few refreshes meet the registry down
            reg.start()

        def at_end(r):
            got = refresh_errors(port)
            check(f"{name}: the refreshes that met the registry down are counted, nothing skipped",
                  got is not None and got >= 1, f"sluice_dimension_refresh_errors_total = {got}")
            r.log.flush()
            with open(r.log.name, encoding="utf-8", errors="replace") as f:
                log = f.read()
            check(f"{name}: the log says it waits for the registry, and skipped nothing",
                  "waiting for the schema registry" in log and "skipped a change record" not in log,
                  f"see {r.log.name}")
        follow_change(run, name, before, after, change, [3], at_end, timed_after=True)
    finally:
        run.stop()
        reg.stop()
        kafka_util.delete_topics(topic)


def registry_ready():
    import urllib.request  # noqa: PLC0415
    try:
        import confluent_kafka.schema_registry.avro  # noqa: F401, PLC0415
        import confluent_kafka.schema_registry.protobuf  # noqa: F401, PLC0415
    except ImportError as e:
        return f"confluent-kafka with Avro and Protobuf support is missing ({e}; scripts/venv.sh)"
    try:
        urllib.request.urlopen(REGISTRY + "/subjects", timeout=5).read()
    except OSError as e:
        return f"the schema registry does not answer on {REGISTRY} ({e}; make services)"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default="mysql,jdbc,debezium,envelope,connect,avro,avro_jdbc,avro_down,"
                                      "protobuf,protobuf_jdbc,protobuf_down")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(","))
    sluice = os.path.abspath(args.sluice)
    tmp = tempfile.mkdtemp(prefix="sluice_cdc_")
    server = Server()
    problems = []
    if "mysql" in only:
        why = server.reachable()
        if why:
            problems.append(why)
    if only & {"jdbc", "debezium", "envelope", "connect", "avro", "avro_jdbc", "avro_down", "protobuf",
               "protobuf_jdbc", "protobuf_down"}:
        why = kafka_util.ensure_kcat() or kafka_util.kafka_missing()
        if why:
            problems.append(why)
    if only & {"avro", "avro_jdbc", "avro_down", "protobuf", "protobuf_jdbc", "protobuf_down"}:
        why = registry_ready()
        if why:
            problems.append(why)
    if problems:
        shutil.rmtree(tmp, ignore_errors=True)
        return T.missing("; ".join(problems))
    try:
        if "mysql" in only:
            scenario_mysql(sluice, tmp, server)
        if "jdbc" in only:
            scenario_kafka(sluice, tmp, "jdbc")
        if "debezium" in only:
            scenario_kafka(sluice, tmp, "debezium")
        if "envelope" in only:
            scenario_kafka(sluice, tmp, "debezium", envelope=True)
        if "connect" in only:
            scenario_connect(sluice, tmp)
        if "avro" in only:
            scenario_avro(sluice, tmp, jdbc=False)
        if "avro_jdbc" in only:
            scenario_avro(sluice, tmp, jdbc=True)
        if "avro_down" in only:
            scenario_registry_down(sluice, tmp, "avro")
        if "protobuf" in only:
            scenario_protobuf(sluice, tmp, jdbc=False)
        if "protobuf_jdbc" in only:
            scenario_protobuf(sluice, tmp, jdbc=True)
        if "protobuf_down" in only:
            scenario_registry_down(sluice, tmp, "protobuf")
    except Exception as e:  # noqa: BLE001 — a broken scenario is a failure with its reason
        check("scenario ran", False, repr(e))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
