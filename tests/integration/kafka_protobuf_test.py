#!/usr/bin/env python3
"""Kafka source with format = "protobuf": records written by independent producers — confluent-kafka's
ProtobufSerializer with its SchemaRegistryClient, and bodies serialized by the Python protobuf
library behind a Confluent header written here by hand — against the schema registry of
`make services` (127.0.0.1:8081) and the broker (127.0.0.1:9092). The message classes are built at
test time from FileDescriptorProtos (descriptor_pb2, message_factory); no generated code.

    kafka_protobuf_test.py --sluice build/sluice [--keep]

 1. recruitment: the seed tracking.csv (as NDJSON, tests/tools/csv_to_ndjson.py) published once
    as JSON and once as Protobuf through ProtobufSerializer (message Tracking: the pipeline's
    fields, each proto3 `optional`, int64 for the ids; a null or blank value is left unset, as
    the JSON decoder reads blank as null; the rows that are not JSON objects are published as their
    raw bytes), to topics proto_<run>_json and proto_<run>_pb; `sluice run --until-caught-up` of
    examples/recruitment.toml on each into SQLite, and on the Protobuf topic once more into MySQL
    (database proto_<run> on 127.0.0.1:3306, read back with the mariadb client; without MariaDB
    only a note, a FAIL when CI=true). Every `events` table equals the independent recomputation
    (tests/tools/recompute_recruitment.py); the Protobuf runs dead-letter as many records as the
    recomputation, each non-JSON row with "decode: not the Confluent wire format: magic byte 0x..".
 2. evolution and bad records: one topic, a small pipeline (job_id, campaign, kind (an enum),
    score (a DoubleValue wrapper), city by path loc.city (Loc from a referenced file), ts (a
    google.protobuf.Timestamp) and ts_text (the same, as a string)). v1 is registered by hand as
    .proto text with a reference to the text of common.proto, and its records framed by hand
    (message indexes [1]: Event is the second message of its file); v2 adds `campaign` and is
    written by ProtobufSerializer, which registers its schema and common.proto as base64
    FileDescriptorProtos with a reference. Then a record with an unknown schema id, one with a
    corrupt body and one with message index [7]. The sink holds exactly the expected rows (v1
    records have campaign null); the three bad records are dead letters with exactly the
    expected reasons.
 3. registry down: a private registry (tests/tools/schema_registry.py on a free port) is stopped
    after the producer registered its schema; sluice starts with --until-caught-up and the
    registry comes back 4 s later. The run must retry (not dead-letter, not crash) and exit 0
    with every record in the sink.

Topics proto_*. Without the broker or the registry: SKIP (exit 77), a FAIL when CI=true. Prints
PASS/FAIL per check and 'N passed, M failed' last.
"""

import argparse
import datetime
import json
import os
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import csv_to_ndjson  # noqa: E402
import dead_letters  # noqa: E402
import harness  # noqa: E402
import kafka_util  # noqa: E402
import mysql_client  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
import registry_util  # noqa: E402
from harness import BROKER, KAFKA, REGISTRY as REGISTRY_SERVER, SEED_TRACKING  # noqa: E402
from registry_util import publish, serialize  # noqa: E402

JOBS = os.path.join(REPO, "examples", "data", "job.csv")
REGISTRY = harness.REGISTRY_URL

T = harness.Checks()
check = T.check


def run_sluice(sluice, pipeline, variables, timeout=180):
    """--until-caught-up --quiet; (rc, stdout+stderr)."""
    return harness.run(harness.sluice_args(sluice, "run", pipeline, variables,
                                           ["--until-caught-up", "--quiet"]), timeout)


def serializer(url, cls):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    return ProtobufSerializer(cls, SchemaRegistryClient({"url": url}))


# ------------------------------------------------------------------------- message classes

def new_pool():
    """A private descriptor pool holding the well-known types the schemas import."""
    from google.protobuf import descriptor_pool, timestamp_pb2, wrappers_pb2
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    return pool


def field(msg, name, number, ftype, type_name=None, optional=False):
    from google.protobuf import descriptor_pb2 as d
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=d.FieldDescriptorProto.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if optional:  # proto3 `optional`: a synthetic oneof of its own
        f.proto3_optional = True
        f.oneof_index = len(msg.oneof_decl)
        msg.oneof_decl.add(name="_" + name)
    return f


def message_class(pool, full_name):
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


# ------------------------------------------------------------------------------ scenario 1

INT_FIELDS = ("job_id", "bid", "publisher_id", "campaign_id", "group_id")
STRING_FIELDS = ("create_time", "ts", "custom_track")


def tracking_class(run_id):
    from google.protobuf import descriptor_pb2 as d
    fdp = d.FileDescriptorProto(name=f"proto_{run_id}/tracking.proto", package="sluice.prototest",
                                syntax="proto3")
    m = fdp.message_type.add(name="Tracking")
    n = 1
    for name in STRING_FIELDS:
        field(m, name, n, d.FieldDescriptorProto.TYPE_STRING, optional=True)
        n += 1
    for name in INT_FIELDS:
        field(m, name, n, d.FieldDescriptorProto.TYPE_INT64, optional=True)
        n += 1
    pool = new_pool()
    pool.Add(fdp)
    return message_class(pool, "sluice.prototest.Tracking")


def scenario_recruitment(sluice, work, run_id):
    ndjson = os.path.join(work, "tracking.ndjson")
    csv_to_ndjson.convert(SEED_TRACKING, ndjson)
    with open(ndjson, "a", encoding="utf-8") as f:
        f.write('not json at all\n{"job_id": 12, "custom_track": "click"\n')
    with open(ndjson, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    cls = tracking_class(run_id)
    t_json, t_pb = f"proto_{run_id}_json", f"proto_{run_id}_pb"
    ser = serializer(REGISTRY, cls)
    publish(t_json, [ln.encode() for ln in lines])
    pb_values, n_raw = [], 0
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError:
            o = None
        if not isinstance(o, dict):
            pb_values.append(ln.encode())  # not JSON: raw bytes, no Confluent header
            n_raw += 1
            continue
        msg = cls()
        for k in STRING_FIELDS:
            v = o.get(k)
            if v is not None and v != "":
                setattr(msg, k, str(v))
        for k in INT_FIELDS:
            v = o.get(k)
            if v is not None and v != "":
                setattr(msg, k, int(v))  # every such value is an integer or its text
        pb_values.append(serialize(ser, t_pb, msg))
    publish(t_pb, pb_values)

    expected_db = os.path.join(work, "expected.db")
    expected_dlq = os.path.join(work, "expected_dlq.ndjson")
    stats = rr.recompute(ndjson, JOBS, expected_db, "kafka", expected_dlq)
    n_expected_dlq = sum(1 for _ in open(expected_dlq, encoding="utf-8"))
    database = f"proto_{run_id}"
    server = mysql_client.Server()
    why = server.reachable()
    runs = [("json", t_json, "sqlite"), ("protobuf", t_pb, "sqlite")]
    if why is None:
        server.run(f"CREATE DATABASE `{database}`")
        runs.append(("protobuf", t_pb, "mysql"))
    else:
        T.skip("recruitment protobuf mysql", why)
    for kind, topic, sink in runs:
        label = kind if sink == "sqlite" else f"{kind} mysql"
        name = f"proto_{run_id}_{kind}" + ("" if sink == "sqlite" else "_mysql")
        extra = ['format = "protobuf"', f'schema_registry = "{REGISTRY}"'] if kind == "protobuf" else []
        pipe = kafka_util.pipeline_copy(os.path.join(work, f"{name}.toml"), name, name, sink,
                                        "events", extra)
        db = os.path.join(work, f"{name}.db")
        dlq = os.path.join(work, f"{name}_dlq.ndjson")
        uri = f"sqlite:{db}" if sink == "sqlite" else server.uri(database)
        rc, out = run_sluice(sluice, pipe, {"TRACKING": f"kafka://{BROKER}/{topic}",
                                            "SINK": uri, "DLQ": dlq, "JOBS": JOBS})
        check(f"recruitment {label}: exit 0", rc == 0, out[-2000:])
        if rc != 0:
            continue
        if sink == "mysql":
            db = os.path.join(work, f"{name}.csv")
            mysql_client.dump_csv(server, database, "events", db)
        problems = compare_tables.compare(expected_db, db, list(rr.EVENTS_KEY))
        check(f"recruitment {label}: events == recomputation ({stats})", not problems,
              "\n".join(problems[:10]) if problems else "")
        entries, bad = dead_letters.load_dlq(dlq)
        check(f"recruitment {label}: {n_expected_dlq} dead letters",
              n_expected_dlq >= 2 and len(entries) == n_expected_dlq and not bad,
              f"got {len(entries)}, problems {bad[:3]}")
        if kind == "protobuf" and sink == "sqlite":
            raw = [e for e in entries if e.get("reason", "").startswith(
                "decode: not the Confluent wire format: magic byte 0x")]
            check(f"recruitment protobuf: {n_raw} non-JSON rows dead-lettered as 'not the Confluent "
                  "wire format'", len(raw) == n_raw == 2,
                  f"got {len(raw)}: {[e.get('reason') for e in entries][:5]}")
    if why is None:
        server.run(f"DROP DATABASE IF EXISTS `{database}`")


# ------------------------------------------------------------------------------ scenario 2

EVOLVE_PIPELINE = """
[pipeline]
name = "{name}"
checkpoint_interval = "1s"

[source]
name = "events"
uri = "kafka://{broker}/{topic}"
group = "{name}"
format = "protobuf"
schema_registry = "{registry}"

[source.fields]
job_id = "int64"
campaign = "string"
kind = "string"
score = "double"
city = {{ type = "string", path = "loc.city" }}
ts = "timestamp"
ts_text = {{ type = "string", path = "ts" }}

[sink]
uri = "sqlite:{db}"
table = "rows"
key = "job_id"

[dead_letter]
path = "{dlq}"
"""

COMMON_NAME = "sluice_prototest/common.proto"
COMMON_TEXT = """syntax = "proto3";
package sluice.prototest;

message Loc {
  string city = 1;
  int32 zip = 2;
}

enum Kind {
  KIND_UNSPECIFIED = 0;
  CLICK = 1;
  APPLY = 2;
}
"""
# Event is the second message of its file: message indexes [1].
EVENT_V1_TEXT = """syntax = "proto3";
package sluice.prototest;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "sluice_prototest/common.proto";

message Note {
  string text = 1;
}

message Event {
  int64 job_id = 1;
  google.protobuf.Timestamp ts = 2;
  Loc loc = 3;
  Kind kind = 4;
  google.protobuf.DoubleValue score = 5;
}
"""


def event_classes(version):
    """The Event class of schema v1 or v2 (v2 adds `string campaign = 6`), with common.proto
    as a file of its own, built from FileDescriptorProtos equal to the texts above."""
    from google.protobuf import descriptor_pb2 as d
    F = d.FieldDescriptorProto
    common = d.FileDescriptorProto(name=COMMON_NAME, package="sluice.prototest", syntax="proto3")
    loc = common.message_type.add(name="Loc")
    field(loc, "city", 1, F.TYPE_STRING)
    field(loc, "zip", 2, F.TYPE_INT32)
    kind = common.enum_type.add(name="Kind")
    for i, n in enumerate(("KIND_UNSPECIFIED", "CLICK", "APPLY")):
        kind.value.add(name=n, number=i)
    ev = d.FileDescriptorProto(name=f"sluice_prototest/event_v{version}.proto",
                               package="sluice.prototest", syntax="proto3",
                               dependency=["google/protobuf/timestamp.proto",
                                           "google/protobuf/wrappers.proto", COMMON_NAME])
    note = ev.message_type.add(name="Note")
    field(note, "text", 1, F.TYPE_STRING)
    m = ev.message_type.add(name="Event")
    field(m, "job_id", 1, F.TYPE_INT64)
    field(m, "ts", 2, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    field(m, "loc", 3, F.TYPE_MESSAGE, ".sluice.prototest.Loc")
    field(m, "kind", 4, F.TYPE_ENUM, ".sluice.prototest.Kind")
    field(m, "score", 5, F.TYPE_MESSAGE, ".google.protobuf.DoubleValue")
    if version == 2:
        field(m, "campaign", 6, F.TYPE_STRING)
    pool = new_pool()
    pool.Add(common)
    pool.Add(ev)
    return message_class(pool, "sluice.prototest.Event")


def framed(schema_id, indexes, body):
    """The Confluent framing, written here from its specification: magic byte 0, the id in 4
    big-endian bytes, the message indexes as zigzag varints (count, then each; [0] as one 0)."""
    def varint(v):
        z = (v << 1) ^ (v >> 63)
        out = b""
        while z >= 0x80:
            out += bytes([(z & 0x7F) | 0x80])
            z >>= 7
        return out + bytes([z])
    head = b"\x00" + schema_id.to_bytes(4, "big")
    if indexes == [0]:
        return head + b"\x00" + body
    return head + varint(len(indexes)) + b"".join(varint(i) for i in indexes) + body


def event(cls, job, base_s, i, campaign=None):
    msg = cls(job_id=job, kind=(job % 3))
    msg.ts.seconds = base_s + job
    msg.ts.nanos = 250_000_000
    if i != 1:
        msg.loc.city = f"c{job}"
    if i != 2:
        msg.score.value = job / 4
    if campaign is not None:
        msg.campaign = campaign
    return msg


def scenario_evolution(sluice, work, run_id):
    from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
    topic = f"proto_{run_id}_evolve"
    client = SchemaRegistryClient({"url": REGISTRY})
    common_subject = f"proto_{run_id}_common"
    client.register_schema(common_subject, Schema(COMMON_TEXT, "PROTOBUF"))
    v1_id = client.register_schema(f"{topic}-value", Schema(
        EVENT_V1_TEXT, "PROTOBUF", [SchemaReference(COMMON_NAME, common_subject, 1)]))
    v1, v2 = event_classes(1), event_classes(2)
    ser = serializer(REGISTRY, v2)
    base_s = 1767225600  # 2026-01-01T00:00:00Z
    kinds = ("KIND_UNSPECIFIED", "CLICK", "APPLY")
    values, expected = [], []
    for version in (1, 2):
        for i in range(3):
            job = version * 100 + i
            if version == 1:
                values.append(framed(v1_id, [1], event(v1, job, base_s, i).SerializeToString()))
            else:
                values.append(serialize(ser, topic, event(v2, job, base_s, i, f"k{job}")))
            expected.append((job, f"k{job}" if version == 2 else None, kinds[job % 3],
                             None if i == 2 else job / 4, None if i == 1 else f"c{job}",
                             base_s + job))
    v2_value = values[-1]
    v2_id = int.from_bytes(v2_value[1:5], "big")
    check("evolution: ProtobufSerializer framed v2 with message indexes [1] (02 02)",
          v2_value[5:7] == b"\x02\x02" and v2_id != v1_id, repr(v2_value[:8]))
    bad = [framed(999999, [1], event(v1, 1, base_s, 0).SerializeToString()),
           framed(v2_id, [1], b"\x08\x01\x1a\x32ab"),  # job_id 1, then loc claiming 50 bytes
           framed(v2_id, [7], event(v2, 2, base_s, 0).SerializeToString())]
    publish(topic, values + bad)
    db = os.path.join(work, "evolve.db")
    dlq = os.path.join(work, "evolve_dlq.ndjson")
    pipe = os.path.join(work, "evolve.toml")
    with open(pipe, "w", encoding="utf-8") as f:
        f.write(EVOLVE_PIPELINE.format(name=f"proto_{run_id}_evolve", broker=BROKER, topic=topic,
                                       registry=REGISTRY, db=db, dlq=dlq))
    rc, out = run_sluice(sluice, pipe, {})
    check("evolution: exit 0", rc == 0, out[-2000:])
    if rc != 0:
        return
    con = sqlite3.connect(db)
    got = sorted(con.execute(
        "SELECT job_id, campaign, kind, score, city, ts, ts_text FROM rows").fetchall())
    con.close()

    def fmt(s):  # the SQLite sink stores timestamps to the second; the text has the fraction
        return datetime.datetime.fromtimestamp(s, tz=datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S")
    want = sorted([(j, c, k, sc, city, fmt(ts), fmt(ts) + ".250000")
                   for j, c, k, sc, city, ts in expected])
    got_norm = [tuple(r) for r in got]
    check("evolution: rows of v1 (text schema) and v2 (serializer) with enums, wrappers, "
          "Timestamps and nested fields", got_norm == want, f"\n got {got_norm}\nwant {want}")
    entries, problems = dead_letters.load_dlq(dlq)
    reasons = sorted(e.get("reason") for e in entries)
    want_reasons = sorted([
        "decode: unknown schema id 999999 (registry: Schema 999999 not found)",
        f"decode: body does not match schema id {v2_id} (message sluice.prototest.Event): not a "
        "valid Protobuf encoding of it",
        f"decode: schema id {v2_id} has no message at index [7]",
    ])
    check("evolution: unknown id, corrupt body and bad message index dead-lettered with their "
          "reasons", reasons == want_reasons and not problems, f"got {reasons}")


# ------------------------------------------------------------------------------ scenario 3

def scenario_registry_down(sluice, work, run_id):
    def publish_records(url, topic):
        cls = event_classes(2)
        ser = serializer(url, cls)
        publish(topic, [serialize(ser, topic, event(cls, i, 1767225600, 0, "x")) for i in range(20)])

    registry_util.scenario_registry_down(T, sluice, work, f"proto_{run_id}_down",
                                         f"proto_{run_id}_down", publish_records, EVOLVE_PIPELINE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    try:
        import confluent_kafka  # noqa: F401
        import confluent_kafka.schema_registry.protobuf  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as e:
        return T.missing(f"confluent-kafka[protobuf] is not installed ({e}): make deps")
    missing = [s.why_down() for s in (KAFKA, REGISTRY_SERVER) if not s.up()]
    if missing:
        return T.missing("; ".join(missing))
    run_id = f"{int(time.time())}_{os.getpid()}"
    work = tempfile.mkdtemp(prefix="sluice-protobuf-")
    try:
        scenario_recruitment(args.sluice, work, run_id)
        scenario_evolution(args.sluice, work, run_id)
        scenario_registry_down(args.sluice, work, run_id)
    finally:
        harness.keep_or_remove(work, args.keep)
    if not T.passed and not T.failed:
        check("at least one scenario ran", False)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
