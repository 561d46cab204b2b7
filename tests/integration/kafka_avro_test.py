#!/usr/bin/env python3
"""Kafka source with format = "avro": records written by an independent producer, confluent-kafka's
AvroSerializer with its SchemaRegistryClient, against the schema registry of `make services`
(127.0.0.1:8081) and the broker (127.0.0.1:9092).

    kafka_avro_test.py --sluice build/sluice [--keep]

 1. recruitment: the seed tracking.csv (as NDJSON, tests/tools/csv_to_ndjson.py) published once
    as JSON and once as Avro (every field a union of null, long, double and string, so each
    value keeps its JSON kind; the rows that are not JSON objects are published as their raw
    bytes, which have no Confluent header), to topics avro_<run>_json and avro_<run>_avro;
    `sluice run --until-caught-up` of examples/recruitment.toml on each. Both `events` tables
    equal the independent recomputation (tests/tools/recompute_recruitment.py); the Avro run
    dead-letters as many records as the recomputation, each non-JSON row with the reason
    "decode: not the Confluent wire format: magic byte 0x.., expected 0x00".
 2. evolution and bad records: one topic, a small pipeline (fields job_id, campaign, note,
    city by path loc.city, ts as timestamp-millis); records of schema v1, then v2 (adds
    `campaign` with default "none"), then v3 (drops `note`), then a record with an unknown
    schema id, one with a corrupt body (a string length past its end) and one with magic byte 1.
    The sink holds exactly the expected rows (v1 records get campaign "none", the reader
    default of the subject's latest schema; v3 records get note null); the three bad records
    are dead letters with exactly the expected reasons.
 3. registry down: a private registry (tests/tools/schema_registry.py on a free port, with its
    own state) is stopped after the producer registered its schema; sluice starts with
    --until-caught-up and the registry comes back 4 s later. The run must retry (not dead-letter,
    not crash), exit 0 with every record in the sink.

 4. Kafka sink format = "avro": 50 NDJSON rows (nulls, doubles, booleans, microsecond
    timestamps) through a pipeline into topic avro_<run>_out; read back with a read_committed
    consumer and AvroDeserializer, every row equals its input, keyed by job_id, and the value
    schema is registered under the subject avro_<run>_out-value.

 5. `sluice generate --format avro`: 400 recruitment events (seed 3) to topic avro_<run>_gen,
    read back with AvroDeserializer, equal to the same seed's NDJSON events typed independently
    (ids, bid and tz as long: an integer or a string of digits, a blank string null; the other
    fields strings as sent); the value schema is registered under avro_<run>_gen-value.

Without the broker or the registry: SKIP (exit 77), a FAIL when CI=true. Prints PASS/FAIL per
check and 'N passed, M failed' last.
"""

import argparse
import json
import os
import sqlite3
import subprocess
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


def avro_serializer(url, schema):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    return AvroSerializer(SchemaRegistryClient({"url": url}), json.dumps(schema))


# ------------------------------------------------------------------------------ scenario 1

TRACKING_FIELDS = None


def tracking_schema(fields):
    union = ["null", "long", "double", "string"]
    return {"type": "record", "name": "Tracking", "namespace": "sluice.test",
            "fields": [{"name": f, "type": union, "default": None} for f in fields]}


def scenario_recruitment(sluice, work, run_id):
    ndjson = os.path.join(work, "tracking.ndjson")
    csv_to_ndjson.convert(SEED_TRACKING, ndjson)
    # Two records that are not JSON objects: dead letters in both runs (as malformed JSON, and as
    # Avro messages without the Confluent header).
    with open(ndjson, "a", encoding="utf-8") as f:
        f.write('not json at all\n{"job_id": 12, "custom_track": "click"\n')
    with open(ndjson, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    fields = []
    objects = []
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError:
            o = None
        if isinstance(o, dict):
            for k in o:
                if k not in fields:
                    fields.append(k)
        objects.append(o if isinstance(o, dict) else None)
    schema = tracking_schema(fields)
    t_json, t_avro = f"avro_{run_id}_json", f"avro_{run_id}_avro"
    ser = avro_serializer(REGISTRY, schema)
    publish(t_json, [ln.encode() for ln in lines])
    avro_values = []
    for ln, o in zip(lines, objects):
        if o is None:
            avro_values.append(ln.encode())  # not JSON: raw bytes, no Confluent header
        else:
            avro_values.append(serialize(ser, t_avro, {k: o.get(k) for k in fields}))
    publish(t_avro, avro_values)

    expected_db = os.path.join(work, "expected.db")
    expected_dlq = os.path.join(work, "expected_dlq.ndjson")
    stats = rr.recompute(ndjson, JOBS, expected_db, "kafka", expected_dlq)
    n_expected_dlq = sum(1 for _ in open(expected_dlq, encoding="utf-8"))
    for kind, topic in (("json", t_json), ("avro", t_avro)):
        extra = ['format = "avro"', f'schema_registry = "{REGISTRY}"'] if kind == "avro" else []
        pipe = kafka_util.pipeline_copy(os.path.join(work, f"{kind}.toml"), f"avro_{run_id}_{kind}",
                                        f"avro_{run_id}_{kind}", "sqlite", "events", extra)
        db = os.path.join(work, f"{kind}.db")
        dlq = os.path.join(work, f"{kind}_dlq.ndjson")
        rc, out = run_sluice(sluice, pipe, {"TRACKING": f"kafka://{BROKER}/{topic}",
                                            "SINK": f"sqlite:{db}", "DLQ": dlq, "JOBS": JOBS})
        check(f"recruitment {kind}: exit 0", rc == 0, out[-2000:])
        if rc != 0:
            continue
        problems = compare_tables.compare(expected_db, db, list(rr.EVENTS_KEY))
        check(f"recruitment {kind}: events == recomputation ({stats})", not problems,
              "\n".join(problems[:10]) if problems else "")
        entries, bad = dead_letters.load_dlq(dlq)
        check(f"recruitment {kind}: {n_expected_dlq} dead letters",
              n_expected_dlq >= 2 and len(entries) == n_expected_dlq and not bad,
              f"got {len(entries)}, problems {bad[:3]}")
        if kind == "avro":
            raw = [e for e in entries if e.get("reason", "").startswith("decode: not the Confluent")]
            n_raw = sum(1 for o in objects if o is None)
            check(f"recruitment avro: {n_raw} non-JSON rows dead-lettered as 'not the Confluent wire "
                  "format'", len(raw) == n_raw, f"got {len(raw)}: {[e.get('reason') for e in entries][:5]}")


# ------------------------------------------------------------------------------ scenario 2

EVOLVE_PIPELINE = """
[pipeline]
name = "{name}"
checkpoint_interval = "1s"

[source]
name = "events"
uri = "kafka://{broker}/{topic}"
group = "{name}"
format = "avro"
schema_registry = "{registry}"

[source.fields]
job_id = "int64"
campaign = "string"
note = "string"
city = {{ type = "string", path = "loc.city" }}
ts = "timestamp"

[sink]
uri = "sqlite:{db}"
table = "rows"
key = "job_id"

[dead_letter]
path = "{dlq}"
"""


def v_schema(version):
    loc = {"type": "record", "name": "Loc", "fields": [{"name": "city", "type": "string"}]}
    fields = [{"name": "job_id", "type": "long"},
              {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
              {"name": "loc", "type": ["null", loc], "default": None}]
    if version in (1, 2):
        fields.append({"name": "note", "type": ["null", "string"], "default": None})
    if version in (2, 3):
        fields.append({"name": "campaign", "type": "string", "default": "none"})
    return {"type": "record", "name": "Event", "namespace": "sluice.test", "fields": fields}


def scenario_evolution(sluice, work, run_id):
    topic = f"avro_{run_id}_evolve"
    values, expected = [], []
    base_ms = 1767225600000  # 2026-01-01T00:00:00Z
    for version, n in ((1, 3), (2, 3), (3, 3)):
        ser = avro_serializer(REGISTRY, v_schema(version))
        for i in range(n):
            job = version * 100 + i
            rec = {"job_id": job, "ts": base_ms + job * 1000,
                   "loc": None if i == 1 else {"city": f"c{job}"}}
            if version in (1, 2):
                rec["note"] = f"n{job}"
            if version in (2, 3):
                rec["campaign"] = f"k{job}"
            import datetime
            rec["ts"] = datetime.datetime.fromtimestamp(rec["ts"] / 1000, tz=datetime.timezone.utc)
            values.append(serialize(ser, topic, rec))
            expected.append((job, f"k{job}" if version > 1 else "none",
                             f"n{job}" if version < 3 else None,
                             None if i == 1 else f"c{job}",
                             base_ms + job * 1000))
    good = values[0]
    v1_id = int.from_bytes(good[1:5], "big")
    # unknown id 999999, a corrupt body, a wrong magic byte
    bad = [b"\x00" + (999999).to_bytes(4, "big") + good[5:],
           good[:5] + b"\x02\x00\x02\x7f",  # job_id 1, ts 0, loc branch 1 then a string of length -64
           b"\x01" + good[1:]]
    publish(topic, values + bad)
    db = os.path.join(work, "evolve.db")
    dlq = os.path.join(work, "evolve_dlq.ndjson")
    pipe = os.path.join(work, "evolve.toml")
    with open(pipe, "w", encoding="utf-8") as f:
        f.write(EVOLVE_PIPELINE.format(name=f"avro_{run_id}_evolve", broker=BROKER, topic=topic,
                                       registry=REGISTRY, db=db, dlq=dlq))
    rc, out = run_sluice(sluice, pipe, {})
    check("evolution: exit 0", rc == 0, out[-2000:])
    if rc != 0:
        return
    con = sqlite3.connect(db)
    got = sorted(con.execute("SELECT job_id, campaign, note, city, ts FROM rows").fetchall(),
                 key=lambda r: r[0])
    con.close()
    import datetime

    def fmt(ms):
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S")
    want = sorted([(j, c, n, city, fmt(ts)) for j, c, n, city, ts in expected], key=lambda r: r[0])
    got_norm = [(r[0], r[1], r[2], r[3], str(r[4])[:19]) for r in got]
    check("evolution: rows of v1, v2, v3 with reader defaults", got_norm == want,
          f"\n got {got_norm}\nwant {want}")
    entries, problems = dead_letters.load_dlq(dlq)
    reasons = sorted(e.get("reason") for e in entries)
    want_reasons = sorted([
        "decode: unknown schema id 999999 (registry: Schema 999999 not found)",
        f"decode: body does not match schema id {v1_id}: Cannot read string value: Cannot "
        "allocate buffer for string value",
        "decode: not the Confluent wire format: magic byte 0x01, expected 0x00",
    ])
    check("evolution: unknown id, corrupt body and wrong magic byte dead-lettered with their "
          "reasons", reasons == want_reasons and not problems, f"got {reasons}")


# ------------------------------------------------------------------------------ scenario 3

def scenario_registry_down(sluice, work, run_id):
    import datetime

    def publish_records(url, topic):
        ser = avro_serializer(url, v_schema(3))
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        publish(topic, [serialize(ser, topic, {"job_id": i, "ts": when, "loc": None,
                                               "campaign": "x"}) for i in range(20)])

    registry_util.scenario_registry_down(T, sluice, work, f"avro_{run_id}_down",
                                         f"avro_{run_id}_down", publish_records, EVOLVE_PIPELINE)


# ------------------------------------------------------------------------------ scenario 4

SINK_PIPELINE = """
[pipeline]
name = "{name}"
checkpoint_interval = "1s"

[source]
name = "rows"
uri = "{input}"

[source.fields]
job_id = "int64"
campaign = "string"
score = "double"
ok = "bool"
ts = "timestamp"

[sink]
uri = "kafka://{broker}/{topic}"
key = "job_id"
format = "avro"
schema_registry = "{registry}"
"""


def scenario_sink(sluice, work, run_id):
    import datetime
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    topic = f"avro_{run_id}_out"
    src = os.path.join(work, "sink_input.ndjson")
    expected = {}
    with open(src, "w", encoding="utf-8") as f:
        for i in range(50):
            rec = {"job_id": i, "campaign": None if i % 7 == 0 else f"c{i % 3}",
                   "score": i / 4, "ok": i % 2 == 0,
                   "ts": f"2026-01-0{1 + i % 5}T0{i % 10}:00:0{i % 6}.{i:06d}Z"}
            if i % 11 == 0:
                del rec["score"]
            f.write(json.dumps(rec) + "\n")
            ts = datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc)
            expected[i] = {"job_id": i, "campaign": rec["campaign"], "score": rec.get("score"),
                           "ok": rec["ok"], "ts": ts}
    pipe = os.path.join(work, "sink.toml")
    with open(pipe, "w", encoding="utf-8") as f:
        f.write(SINK_PIPELINE.format(name=f"avro_{run_id}_sink", input=src, broker=BROKER,
                                     topic=topic, registry=REGISTRY))
    p = subprocess.run([sluice, "run", pipe, "--quiet"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=180, cwd=REPO)
    check("avro sink: exit 0", p.returncode == 0, p.stdout.decode("utf-8", "replace")[-2000:])
    if p.returncode != 0:
        return
    de = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY}))
    c = Consumer({"bootstrap.servers": BROKER, "group.id": f"avro_{run_id}_reader",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, keys, deadline = {}, {}, time.monotonic() + 30
    while len(got) < len(expected) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        v = de(m.value(), SerializationContext(topic, MessageField.VALUE))
        got[v["job_id"]] = v
        keys[v["job_id"]] = m.key()
    c.close()
    check("avro sink: every row read back by AvroDeserializer, equal to the input",
          got == expected, f"got {len(got)} rows; first difference: "
          f"{next(((k, got.get(k), expected[k]) for k in expected if got.get(k) != expected[k]), None)}")
    check("avro sink: keyed by job_id", all(keys[k] == str(k).encode() for k in keys),
          str(list(keys.items())[:3]))
    subject = SchemaRegistryClient({"url": REGISTRY}).get_latest_version(f"{topic}-value")
    check("avro sink: value schema registered under TOPIC-value",
          json.loads(subject.schema.schema_str)["name"] == "Row", subject.schema.schema_str)


INT_FIELDS = ("bid", "campaign_id", "group_id", "job_id", "publisher_id", "tz")
STR_FIELDS = ("create_time", "bn", "custom_track", "ts", "ua", "dl")


def typed_event(o):
    """A generated JSON event with the field types `sluice generate --format avro` declares, or
    None when a field does not fit them (such an event is written as its JSON text)."""
    import re
    if not isinstance(o, dict):
        return None
    out = {}
    for k in INT_FIELDS:
        v = o.get(k)
        if isinstance(v, str):
            if v.strip() == "":
                v = None
            elif re.fullmatch(r"\s*[+-]?[0-9]+\s*", v):
                v = int(v)
            else:
                return None
        elif isinstance(v, bool) or not (v is None or isinstance(v, int)):
            return None
        out[k] = v
    for k in STR_FIELDS:
        v = o.get(k)
        if not (v is None or isinstance(v, str)):
            return None
        out[k] = v
    return out


def scenario_generate(sluice, work, run_id):
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    topic, n = f"avro_{run_id}_gen", 400
    ndjson = os.path.join(work, "gen.ndjson")
    base = [sluice, "generate", "--profile", "recruitment", "--seed", "3", "--count", str(n),
            "--rate", "0"]
    p1 = subprocess.run(base + ["--to", ndjson], capture_output=True, timeout=120, cwd=REPO)
    p2 = subprocess.run(base + ["--to", f"kafka://{BROKER}/{topic}", "--format", "avro",
                                "--schema-registry", REGISTRY],
                        capture_output=True, timeout=120, cwd=REPO)
    check("generate --format avro: exit 0", p1.returncode == 0 and p2.returncode == 0,
          (p1.stderr + p2.stderr).decode("utf-8", "replace")[-1500:])
    if p1.returncode or p2.returncode:
        return
    expected = []
    with open(ndjson, encoding="utf-8") as f:
        for ln in f:
            try:
                o = json.loads(ln)
            except ValueError:
                o = None
            t = typed_event(o)
            expected.append(json.dumps(t, sort_keys=True) if t is not None else ln.rstrip("\n"))
    de = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY}))
    c = Consumer({"bootstrap.servers": BROKER, "group.id": f"avro_{run_id}_gen_reader",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        v = m.value()
        if v[:1] == b"\x00":
            got.append(json.dumps(de(v, SerializationContext(topic, MessageField.VALUE)),
                                  sort_keys=True))
        else:
            got.append(v.decode("utf-8", "replace"))
    c.close()
    avro_count = sum(1 for e in expected if e.startswith("{") and '"tz"' in e)
    check(f"generate --format avro: {n} events read back by AvroDeserializer equal the NDJSON "
          f"events of the same seed, typed ({avro_count} in Avro)",
          sorted(got) == sorted(expected),
          f"got {len(got)}; first missing: {next((e for e in expected if e not in got), None)}")
    subject = SchemaRegistryClient({"url": REGISTRY}).get_latest_version(f"{topic}-value")
    fields = {f["name"]: f["type"] for f in json.loads(subject.schema.schema_str)["fields"]}
    check("generate --format avro: value schema under TOPIC-value, ids long, text string",
          all(fields.get(k) == ["null", "long"] for k in INT_FIELDS) and
          all(fields.get(k) == ["null", "string"] for k in STR_FIELDS), str(fields))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    try:
        import confluent_kafka  # noqa: F401
        import confluent_kafka.schema_registry.avro  # noqa: F401
    except ImportError as e:
        return T.missing(f"confluent-kafka[avro] is not installed ({e}): make deps")
    missing = [s.why_down() for s in (KAFKA, REGISTRY_SERVER) if not s.up()]
    if missing:
        return T.missing("; ".join(missing))
    run_id = f"{int(time.time())}_{os.getpid()}"
    work = tempfile.mkdtemp(prefix="sluice-avro-")
    try:
        scenario_recruitment(args.sluice, work, run_id)
        scenario_evolution(args.sluice, work, run_id)
        scenario_registry_down(args.sluice, work, run_id)
        scenario_sink(args.sluice, work, run_id)
        scenario_generate(args.sluice, work, run_id)
    finally:
        harness.keep_or_remove(work, args.keep)
    if not T.passed and not T.failed:
        check("at least one scenario ran", False)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
