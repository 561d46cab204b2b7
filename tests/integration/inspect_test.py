#!/usr/bin/env python3
"""`sluice inspect SINK` and the stored dead letters on /metrics, checked against independent readers.

Parts (--part, comma-separated; default all):
  sqlite   the recruitment pipeline (a CSV this test writes, with bad rows it knows) and a
           copy of it with lateness (so it stores engine state) into one SQLite file; then
           `sluice inspect sqlite:...` (text and --json) must say what Python's sqlite3 module
           reads from _sluice_positions, _sluice_state and _sluice_dead_letters: the pipelines,
           every position (the file identity rows shown as device/inode from os.stat, not as
           partition numbers), state size, last checkpoint time, dead letters by reason (also
           equal to the bad rows the test wrote) and the newest samples, payloads cut.
  mysql    the same into MariaDB (database inspect_<pid>, read with the mysql client; the state
           of recruitment_late is in _sluice_tasks, per partition); a
           database that does not exist exits 2. Needs `make services`: a SKIP (exit 77)
           without the server, a FAIL when CI=true.
  parquet  the viewlog pipeline on the generator (invalid and late records) into parquet:DIR;
           inspect must match the dead-letter NDJSON files read with Python's json, the part
           files pyarrow's dataset lists, the generator's count and the state file's mtime.
  cassandra  a pipeline from `sluice init` (append mode) into a keyspace inspect_<pid>; inspect
           must match what cassandra-driver reads (positions, dead letters by reason, the
           newest samples, the newest WRITETIME); a keyspace that does not exist exits 2.
           SKIP (exit 77) without the server or the driver, a FAIL when CI=true.
  errors   exit 2 for a URI that names no sink, a missing SQLite file or Parquet folder, a
           file that is no SQLite database, an unknown --pipeline and a sink inspect does not
           read (stdout:); exit 1 when the MySQL server cannot be reached. (kafka:// is read:
           tests/integration/explain_test.py, part kafka-inspect.)
  metrics  run 1 writes dead letters; run 2 (a new process, new input with more bad rows)
           serves /metrics and /api/status: sluice_dead_letters_stored{reason} and the
           status's stored_dead_letters must equal SQLite's GROUP BY over both runs (and the
           rows the test wrote), while sluice_records_dead_lettered_total counts run 2 only;
           with Chromium, the dashboard's "Dead letters in the store" table shows the same.
"""

import argparse
import collections
import datetime
import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import cassandra_util  # noqa: E402
import harness  # noqa: E402
from harness import CASSANDRA, Checks, free_port, wait_for  # noqa: E402
from http_util import get, get_json  # noqa: E402
from mysql_client import Server  # noqa: E402

PIPELINE = os.path.join(ROOT, "examples", "recruitment.toml")
VIEWLOG = os.path.join(ROOT, "examples", "viewlog.toml")
JOBS = os.path.join(ROOT, "examples", "data", "job.csv")
HEADER = "create_time,bid,campaign_id,custom_track,group_id,job_id,publisher_id,ts,ua\n"
IDENTITY = 1 << 30
GENERATION = IDENTITY + (1 << 29)  # the generation of partition p is stored at GENERATION + p
NO_TIME = "no event time: create_time is not a version-1 TimeUUID and ts is not a timestamp"

checks = Checks()
check = checks.check


def bid_reason(value):
    return f"decode: field bid: '{value}' is not an int64"


def time_uuid(micros):
    """A version-1 TimeUUID for `micros` since the Unix epoch (as the tracking log holds)."""
    ticks = micros * 10 + 0x01B21DD213814000
    low, mid, high = ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, (ticks >> 48) & 0x0FFF
    return f"{low:08x}-{mid:04x}-{high | 0x1000:04x}-8601-7cd44fe229db"


def write_csv(path, good, bad, start_micros, ua_long=False):
    """Writes recruitment rows: `good` clicks and `bad` = {bid value or None: n} rows whose
    bid is not a number (None: a row without any event time). Returns the expected dead
    letters by reason."""
    rows, expected = [], collections.Counter()
    t = start_micros
    for i in range(good):
        t += 1_000_000
        rows.append(f"{time_uuid(t)},3,1,click,10,{1 + i % 5},1,,ua\n")
    for value, n in bad.items():
        for i in range(n):
            t += 1_000_000
            ua = "u" * 600 if ua_long and i == 0 else "ua"
            if value is None:
                rows.append(f"not-a-uuid,1,1,click,10,1,1,not-a-time,{ua}\n")
                expected[NO_TIME] += 1
            else:
                rows.append(f"{time_uuid(t)},{value},1,click,10,1,1,,{ua}\n")
                expected[bid_reason(value)] += 1
    with open(path, "w") as f:
        f.write(HEADER + "".join(rows))
    return expected


def run(sluice, pipeline, variables, extra=(), timeout=180):
    return harness.run_sluice(sluice, pipeline, {"JOBS": JOBS, **variables}, extra,
                              timeout=timeout, cwd=None)


def inspect(sluice, *args):
    return subprocess.run([sluice, "inspect", *args], capture_output=True, text=True, timeout=120)


def late_pipeline(tmp):
    """The recruitment pipeline under another name and table, with lateness: it stores state."""
    with open(PIPELINE) as f:
        text = f.read()
    text = text.replace('name = "recruitment"', 'name = "recruitment_late"', 1)
    text = text.replace('table = "events"', 'table = "events_late"', 1)
    text = text.replace('mode = "update"', 'mode = "update"\nallowed_lateness = "1h"', 1)
    path = os.path.join(tmp, "recruitment_late.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def iso_seconds(text):
    """'YYYY-MM-DD HH:MM:SS' (UTC) -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    return text.replace(" ", "T") + "Z" if text else None


def iso_micros(micros):
    """Microseconds since the epoch -> UTC ISO 8601 as sluice shows a time: with the six digits
    of the fraction only when it is not zero."""
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=micros)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ" if micros % 1_000_000 == 0 else "%Y-%m-%dT%H:%M:%S.%fZ")


def json_positions(p):
    """Every (source, partition, offset) the inspect JSON of pipeline `p` describes."""
    out = set()
    for s in p["sources"]:
        for part in s["partitions"]:
            out.add((s["source"], part["partition"],
                     -(1 << 63) if part["forgotten"] else part["offset"]))
        if s["file_identity"]:
            fi = s["file_identity"]
            for k, name in enumerate(["device", "inode", "head_hash", "tail_hash"]):
                out.add((s["source"], IDENTITY + k, fi[name]))
        if s["table_cursor"]:
            tc = s["table_cursor"]
            out |= {(s["source"], 0, tc["order_by_value"]), (s["source"], 1, tc["key"]),
                    (s["source"], IDENTITY, tc["last_row_hash"])}
        for ip in s["identity_partitions"]:
            out.add((s["source"], ip["partition"], ip["value"]))
        for g in s["generations"]:
            out.add((s["source"], GENERATION + g["partition"], g["generation"]))
    for f in p["dead_letter_files"]:
        out.add(("__dead_letters:" + f["path"], 0, f["committed_bytes"]))
    return out


def check_samples(label, p, rows_by_reason, payload_bytes=200, samples=3):
    """The samples of each reason are its newest stored letters, payloads cut at payload_bytes.
    rows_by_reason: reason -> [(source, partition, offset, time, payload, payload_bytes)]."""
    problems = []
    for r in p["dead_letters"]["by_reason"]:
        rows = rows_by_reason.get(r["reason"], [])
        got = r["samples"]
        if len(got) != min(samples, len(rows)):
            problems.append(f"{r['reason']}: {len(got)} samples of {len(rows)} letters")
            continue
        picked = set()
        for s in got:
            match = [x for x in rows if x[:3] == (s["source"], s["partition"], s["offset"])]
            if not match:
                problems.append(f"{r['reason']}: sample at offset {s['offset']} is not stored")
                continue
            x = match[0]
            picked.add(x[:3])
            want = x[4].encode()[:payload_bytes].decode(errors="ignore")
            if s["payload_json"] != want or s["payload_cut"] != (len(x[4].encode()) > payload_bytes) \
                    or s["payload_bytes"] != x[5] or s["time"] != x[3]:
                problems.append(f"{r['reason']}: sample at offset {s['offset']} differs "
                                f"({s['payload_json'][:40]!r} vs {want[:40]!r}, time {s['time']} vs {x[3]})")
        others = [x[3] for x in rows if x[:3] not in picked]
        if got and others and min(s["time"] for s in got) < max(others):
            problems.append(f"{r['reason']}: a sample is older than a letter left out")
    check(f"{label}: samples are the newest letters of each reason, payload cut at {payload_bytes} bytes",
          not problems, "; ".join(problems[:4]))


def check_text(label, text, p, input_path):
    """The text output says the same as the JSON in words; identity rows are no numbers."""
    st = os.stat(input_path)
    check(f"{label} text: pipeline {p['pipeline']} listed", f"\npipeline {p['pipeline']}\n" in text, text[:300])
    check(f"{label} text: the file identity is shown as device and inode (os.stat)",
          f"file identity    device {st.st_dev}, inode {st.st_ino}," in text, text[:1500])
    check(f"{label} text: no identity partition number (2^30 = {IDENTITY}) is shown",
          str(IDENTITY) not in text and str(IDENTITY + 1) not in text)
    check(f"{label} text: the file offset is the input's size ({st.st_size:,} bytes)",
          f"partition 0      offset {st.st_size:,}\n" in text, text[:1500])
    missing = [r["reason"] for r in p["dead_letters"]["by_reason"][:10]
               if f"\n    {r['count']:,}  {r['reason']}\n" not in text]
    check(f"{label} text: each reason with its count", not missing, missing[:3])
    long_lines = [ln for ln in text.split("\n") if ln.startswith("      ") and " bytes)" in ln]
    check(f"{label} text: a long payload is cut and says its size",
          any(re.search(r"\.\.\. \([\d,]+ bytes\)$", ln) for ln in long_lines), long_lines[:2])


# ---------------------------------------------------------------------------------------------
# SQLite

def part_sqlite(sluice, tmp):
    db = os.path.join(tmp, "inspect.db")
    csv1 = os.path.join(tmp, "tracking.csv")
    start = 1_767_225_600_000_000  # 2026-01-01
    expected = write_csv(csv1, 200, {"abc": 7, "xyz": 3, None: 4}, start, ua_long=True)
    r = run(sluice, PIPELINE, {"TRACKING": csv1, "SINK": f"sqlite:{db}"})
    check("sqlite: recruitment run exits 0", r.returncode == 0, r.stderr[-600:])
    csv2 = os.path.join(tmp, "tracking2.csv")
    expected2 = write_csv(csv2, 50, {"qq": 2}, start + 3_600_000_000)
    r = run(sluice, late_pipeline(tmp), {"TRACKING": csv2, "SINK": f"sqlite:{db}"})
    check("sqlite: the late copy exits 0", r.returncode == 0, r.stderr[-600:])

    r = inspect(sluice, f"sqlite:{db}", "--json")
    check("sqlite: inspect --json exits 0", r.returncode == 0, r.stderr[-600:])
    if r.returncode != 0:
        return
    got = json.loads(r.stdout)
    con = sqlite3.connect(db)
    q = lambda sql, *a: con.execute(sql, a).fetchall()  # noqa: E731
    names = sorted({x[0] for x in q("SELECT pipeline FROM _sluice_positions UNION SELECT pipeline "
                                   "FROM _sluice_state UNION SELECT pipeline FROM _sluice_dead_letters")})
    check("sqlite: the pipelines sqlite3 finds", [p["pipeline"] for p in got["pipelines"]] == names,
          f"{[p['pipeline'] for p in got['pipelines']]} vs {names}")
    for p in got["pipelines"]:
        name = p["pipeline"]
        label = f"sqlite {name}"
        stored = set(q("SELECT source, partition, offset FROM _sluice_positions WHERE pipeline = ?", name))
        check(f"{label}: every stored position, identity rows included", json_positions(p) == stored,
              f"{sorted(json_positions(p))} vs {sorted(stored)}")
        # The state is one row of _sluice_state, or (issue 16) one row per source partition in
        # _sluice_tasks: its size is then the sum of theirs.
        has_tasks = bool(q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sluice_tasks'"))
        state = q("SELECT length(state) FROM _sluice_state WHERE pipeline = ?", name)
        want_state = state[0][0] if state else None
        tasks = q("SELECT count(*), sum(length(state)) FROM _sluice_tasks WHERE pipeline = ?",
                  name) if has_tasks else [(0, None)]
        if tasks[0][0]:
            want_state = (want_state or 0) + (tasks[0][1] or 0)
        check(f"{label}: state size", p["state_bytes"] == want_state,
              f"{p['state_bytes']} vs {state} + tasks {tasks}")
        last = q("SELECT max(t) FROM (SELECT updated_at AS t FROM _sluice_positions WHERE pipeline = ?1 "
                 "UNION ALL SELECT updated_at FROM _sluice_state WHERE pipeline = ?1"
                 + (" UNION ALL SELECT updated_at FROM _sluice_tasks WHERE pipeline = ?1" if has_tasks else "")
                 + ")", name)[0][0]
        check(f"{label}: last checkpoint time", p["last_checkpoint"] == iso_seconds(last),
              f"{p['last_checkpoint']} vs {last}")
        counts = dict(q("SELECT reason, count(*) FROM _sluice_dead_letters WHERE pipeline = ? "
                        "GROUP BY reason", name))
        by_reason = {x["reason"]: x["count"] for x in p["dead_letters"]["by_reason"]}
        check(f"{label}: dead letters by reason (sqlite3 GROUP BY)", by_reason == counts,
              f"{by_reason} vs {counts}")
        want = expected if name == "recruitment" else expected2
        check(f"{label}: dead letters by reason = the bad rows written", by_reason == dict(want),
              f"{by_reason} vs {dict(want)}")
        check(f"{label}: total", p["dead_letters"]["total"] == sum(counts.values()))
        rows = collections.defaultdict(list)
        for row in q("SELECT source, partition, offset, time, payload, payload_bytes, reason FROM "
                     "_sluice_dead_letters WHERE pipeline = ?", name):
            rows[row[6]].append(row[:6])
        check_samples(label, p, rows)
    # Identity as os.stat sees the input file.
    rec = next(p for p in got["pipelines"] if p["pipeline"] == "recruitment")
    fi = rec["sources"][0]["file_identity"] if rec["sources"] else None
    st = os.stat(csv1)
    check("sqlite: file identity = os.stat of the input (device, inode)",
          fi is not None and fi["device"] == st.st_dev and fi["inode"] == st.st_ino, fi)

    r = inspect(sluice, f"sqlite:{db}")
    check("sqlite: inspect (text) exits 0", r.returncode == 0, r.stderr[-600:])
    check_text("sqlite", r.stdout, rec, csv1)
    r = inspect(sluice, f"sqlite:{db}", "--pipeline", "recruitment_late", "--json")
    only = json.loads(r.stdout)["pipelines"] if r.returncode == 0 else []
    check("sqlite: --pipeline shows that pipeline only",
          [p["pipeline"] for p in only] == ["recruitment_late"], r.stdout[:200] + r.stderr[-300:])
    r = inspect(sluice, f"sqlite:{db}", "--json", "--samples", "1", "--payload-bytes", "20")
    if r.returncode == 0:
        p = next(p for p in json.loads(r.stdout)["pipelines"] if p["pipeline"] == "recruitment")
        rows = collections.defaultdict(list)
        for row in q("SELECT source, partition, offset, time, payload, payload_bytes, reason FROM "
                     "_sluice_dead_letters WHERE pipeline = 'recruitment'"):
            rows[row[6]].append(row[:6])
        check_samples("sqlite --samples 1 --payload-bytes 20", p, rows, payload_bytes=20, samples=1)
    else:
        check("sqlite: --samples 1 --payload-bytes 20 exits 0", False, r.stderr[-300:])
    # Inspecting writes nothing: the file is unchanged.
    con.close()


# ---------------------------------------------------------------------------------------------
# MySQL

def mysql_server(args):
    server = Server(args.mysql)
    why = server.reachable()
    return server, why


def part_mysql(sluice, tmp, args):
    server, why = mysql_server(args)
    if why:
        return checks.skip("mysql part", why)
    database = f"inspect_{os.getpid()}"
    server.run(f"DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database} CHARACTER SET utf8mb4")
    try:
        _part_mysql(sluice, tmp, server, database)
    finally:
        server.run(f"DROP DATABASE IF EXISTS {database}")


def _part_mysql(sluice, tmp, server, database):
    uri = server.uri(database)
    csv1 = os.path.join(tmp, "m-tracking.csv")
    start = 1_767_225_600_000_000
    expected = write_csv(csv1, 150, {"abc": 5, "zz": 2, None: 3}, start, ua_long=True)
    r = run(sluice, PIPELINE, {"TRACKING": csv1, "SINK": uri})
    check("mysql: recruitment run exits 0", r.returncode == 0, r.stderr[-600:])
    csv2 = os.path.join(tmp, "m-tracking2.csv")
    expected2 = write_csv(csv2, 40, {"qq": 2}, start + 3_600_000_000)
    r = run(sluice, late_pipeline(tmp), {"TRACKING": csv2, "SINK": uri})
    check("mysql: the late copy exits 0", r.returncode == 0, r.stderr[-600:])

    r = inspect(sluice, uri, "--json")
    check("mysql: inspect --json exits 0", r.returncode == 0, r.stderr[-600:])
    if r.returncode != 0:
        return
    got = json.loads(r.stdout)
    q = lambda sql: server.run(sql, database)[1:]  # noqa: E731
    names = sorted(x[0] for x in q("SELECT pipeline FROM _sluice_positions UNION SELECT pipeline "
                                   "FROM _sluice_state UNION SELECT pipeline FROM _sluice_dead_letters"))
    check("mysql: the pipelines the mysql client finds", [p["pipeline"] for p in got["pipelines"]] == names,
          f"{[p['pipeline'] for p in got['pipelines']]} vs {names}")
    for p in got["pipelines"]:
        name = p["pipeline"]
        label = f"mysql {name}"
        stored = {(s, int(part), int(off)) for s, part, off in
                  q(f"SELECT source, `partition`, `offset` FROM _sluice_positions WHERE pipeline = '{name}'")}
        check(f"{label}: every stored position, identity rows included", json_positions(p) == stored,
              f"{sorted(json_positions(p))} vs {sorted(stored)}")
        # The state is one row of _sluice_state, or (issue 16) one row per source partition in
        # _sluice_tasks: its size is then the sum of theirs.
        state = q(f"SELECT LENGTH(state) FROM _sluice_state WHERE pipeline = '{name}'")
        want_state = int(state[0][0]) if state else None
        tasks = q(f"SELECT COUNT(*), COALESCE(SUM(LENGTH(state)), 0) FROM _sluice_tasks WHERE pipeline = '{name}'")
        if int(tasks[0][0]):
            want_state = (want_state or 0) + int(tasks[0][1])
        check(f"{label}: state size", p["state_bytes"] == want_state,
              f"{p['state_bytes']} vs {state} + tasks {tasks}")
        last = q("SELECT DATE_FORMAT(MAX(t), '%Y-%m-%d %H:%i:%s') FROM (SELECT updated_at AS t FROM "
                 f"_sluice_positions WHERE pipeline = '{name}' UNION ALL SELECT updated_at FROM "
                 f"_sluice_state WHERE pipeline = '{name}' UNION ALL SELECT updated_at FROM "
                 f"_sluice_tasks WHERE pipeline = '{name}') x")[0][0]
        check(f"{label}: last checkpoint time", p["last_checkpoint"] == iso_seconds(last),
              f"{p['last_checkpoint']} vs {last}")
        counts = {reason: int(n) for reason, n in
                  q(f"SELECT reason, COUNT(*) FROM _sluice_dead_letters WHERE pipeline = '{name}' GROUP BY reason")}
        by_reason = {x["reason"]: x["count"] for x in p["dead_letters"]["by_reason"]}
        check(f"{label}: dead letters by reason (mysql client GROUP BY)", by_reason == counts,
              f"{by_reason} vs {counts}")
        want = expected if name == "recruitment" else expected2
        check(f"{label}: dead letters by reason = the bad rows written", by_reason == dict(want),
              f"{by_reason} vs {dict(want)}")
        rows = collections.defaultdict(list)
        for src, part, off, t, payload, nbytes, reason in q(
                "SELECT source, `partition`, `offset`, DATE_FORMAT(`time`, '%Y-%m-%dT%H:%i:%s.%fZ'), "
                f"payload, payload_bytes, reason FROM _sluice_dead_letters WHERE pipeline = '{name}'"):
            rows[reason].append((src, int(part), int(off), t, payload, int(nbytes)))
        check_samples(label, p, rows)
    rec = next(p for p in got["pipelines"] if p["pipeline"] == "recruitment")
    r = inspect(sluice, uri)
    check("mysql: inspect (text) exits 0", r.returncode == 0, r.stderr[-600:])
    check_text("mysql", r.stdout, rec, csv1)
    r = inspect(sluice, server.uri(f"inspect_missing_{os.getpid()}"))
    check("mysql: a database that does not exist exits 2", r.returncode == 2, (r.returncode, r.stderr[-300:]))


# ---------------------------------------------------------------------------------------------
# Parquet

def part_parquet(sluice, tmp):
    try:
        import pyarrow.dataset as ds  # noqa: F401
    except ImportError:
        return checks.skip("parquet part", "no pyarrow (run with the project venv)")
    out = os.path.join(tmp, "views")
    count = 4000
    r = subprocess.run([sluice, "run", VIEWLOG, "--var", "VIEWS=generator:", "--var", f"OUT=parquet:{out}",
                        "--var", f"COUNT={count}", "--var", "RATE=0", "--var", "INVALID=0.05",
                        "--var", "LATE=0.02", "--var", "SPACING=50ms"],
                       capture_output=True, text=True, timeout=180)
    check("parquet: viewlog run exits 0", r.returncode == 0, r.stderr[-600:])
    r = inspect(sluice, f"parquet:{out}", "--json")
    check("parquet: inspect --json exits 0", r.returncode == 0, r.stderr[-600:])
    if r.returncode != 0:
        return
    got = json.loads(r.stdout)
    states = sorted(os.path.basename(f)[:-6] for f in glob.glob(os.path.join(out, "_sluice", "*.state")))
    check("parquet: the pipelines with a state file", [p["pipeline"] for p in got["pipelines"]] == states,
          f"{got['pipelines'] and [p['pipeline'] for p in got['pipelines']]} vs {states}")
    if not got["pipelines"]:
        return
    p = got["pipelines"][0]
    # Dead letters: the NDJSON files, read with Python's json, in file order.
    records = []
    files = sorted(glob.glob(os.path.join(out, "_sluice", "dead_letters", "dead-letters-viewlog-*.ndjson")))
    for f in files:
        with open(f, encoding="utf-8") as fh:
            records += [json.loads(ln) for ln in fh if ln.strip()]
    counts = collections.Counter(d["reason"] for d in records)
    by_reason = {x["reason"]: x["count"] for x in p["dead_letters"]["by_reason"]}
    check(f"parquet: dead letters by reason = the files' records ({len(records)} in {len(files)} files)",
          by_reason == dict(counts) and len(counts) >= 2, f"{by_reason} vs {dict(counts)}")
    problems = []
    for rank, r_ in enumerate(p["dead_letters"]["by_reason"]):
        mine = [d for d in records if d["reason"] == r_["reason"]]
        newest = list(reversed(mine))[:3] if rank < 10 else []  # samples for the top 10 reasons
        want = [(d["source"], d["partition"], d["offset"]) for d in newest]
        have = [(s["source"], s["partition"], s["offset"]) for s in r_["samples"]]
        if have != want:
            problems.append(f"{r_['reason']}: {have} vs {want}")
        for s, d in zip(r_["samples"], newest):
            text = json.dumps(d["payload"], ensure_ascii=False, separators=(",", ":"))
            if s["payload_json"] != text.encode()[:200].decode(errors="ignore"):
                problems.append(f"{r_['reason']}: payload {s['payload_json'][:40]!r} vs {text[:40]!r}")
    check("parquet: samples are each reason's newest records (last in file order), payloads as stored",
          not problems, "; ".join(problems[:3]))
    positions = {(s["source"], part["partition"]): part["offset"] for s in p["sources"] for part in s["partitions"]}
    check(f"parquet: the generator's position is the count asked for ({count})",
          positions == {("views", 0): count}, positions)
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    sizes = sum(os.path.getsize(f) for f in dataset.files)
    want = f"{len(dataset.files):,} ({sizes:,} bytes)"
    check("parquet: part files = what pyarrow's dataset lists", p["details"].get("part files") == want,
          f"{p['details']} vs {want}")
    check("parquet: dead-letter files counted", p["details"].get("dead-letter files") == f"{len(files):,}",
          p["details"])
    state_file = os.path.join(out, "_sluice", "viewlog.state")
    mtime = os.stat(state_file).st_mtime_ns // 1000
    check("parquet: last checkpoint = the state file's mtime (to the microsecond)",
          p["last_checkpoint"] == iso_micros(mtime) and p["last_checkpoint_micros"] == mtime,
          (p["last_checkpoint"], p["last_checkpoint_micros"], mtime))
    check("parquet: state size within the state file",
          p["state_bytes"] is not None and 0 < p["state_bytes"] < os.path.getsize(state_file), p["state_bytes"])
    r = inspect(sluice, f"parquet:{out}", "--reasons", "100")
    check("parquet: inspect (text) exits 0 and lists the reasons",
          r.returncode == 0 and all(f"\n    {n:,}  {reason}\n" in r.stdout for reason, n in counts.items()),
          r.stdout[:800] + r.stderr[-300:])


# ---------------------------------------------------------------------------------------------
# Cassandra

def part_cassandra(sluice, tmp):
    try:
        cluster, session = cassandra_util.session()
        why = None
    except harness.Missing as e:
        why = str(e)
    if why:
        return checks.skip("cassandra part", why)
    ks = f"inspect_{os.getpid()}"
    try:
        _part_cassandra(sluice, tmp, session, ks)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()


def _part_cassandra(sluice, tmp, session, ks):
    csv = os.path.join(tmp, "values.csv")
    rows, expected = ["key,ts,value\n"], collections.Counter()
    for i in range(120):
        if i % 15 == 3:
            rows.append(f"k{i % 4},not a time,{i}\n")
            expected["ts is not a timestamp"] += 1
        elif i % 25 == 7:
            rows.append(f"k{i % 4},2026-01-01 00:{i % 60:02d}:00,abc\n")
            expected["decode: field value: 'abc' is not a double"] += 1
        else:
            rows.append(f"k{i % 4},2026-01-01 00:{i % 60:02d}:00,{i}.5\n")
    with open(csv, "w") as f:
        f.write("".join(rows))
    pipeline = os.path.join(tmp, "cass.toml")
    r = subprocess.run([sluice, "init", "--source", csv, "--sink", f"cassandra://{CASSANDRA.address}/{ks}",
                        "-o", pipeline, "--name", "cass_inspect"], capture_output=True, text=True)
    check("cassandra: init writes the pipeline", r.returncode == 0, r.stderr[-300:])
    # The Cassandra sink takes finished windows only (init's skeleton says update).
    with open(pipeline) as f:
        text = f.read()
    with open(pipeline, "w") as f:
        f.write(text.replace('mode = "update"', 'mode = "append"'))
    r = subprocess.run([sluice, "run", pipeline], capture_output=True, text=True, timeout=180)
    check("cassandra: run exits 0", r.returncode == 0, r.stderr[-600:])
    r = inspect(sluice, f"cassandra://{CASSANDRA.address}/{ks}", "--json")
    check("cassandra: inspect --json exits 0", r.returncode == 0, r.stderr[-600:])
    if r.returncode != 0:
        return
    got = json.loads(r.stdout)
    check("cassandra: one pipeline", [p["pipeline"] for p in got["pipelines"]] == ["cass_inspect"],
          [p["pipeline"] for p in got["pipelines"]])
    if not got["pipelines"]:
        return
    p = got["pipelines"][0]
    stored = {(x.source, x.partition, x.offset) for x in session.execute(
        f'SELECT source, "partition", "offset" FROM {ks}."_sluice_positions" WHERE pipeline = %s', ["cass_inspect"])}
    check("cassandra: every stored position (cassandra-driver)", json_positions(p) == stored,
          f"{sorted(json_positions(p))} vs {sorted(stored)}")
    st = os.stat(csv)
    check("cassandra: the file offset is the input's size", (p["sources"][0]["partitions"] or [{}])[0].get("offset")
          == st.st_size and p["sources"][0]["file_identity"]["inode"] == st.st_ino, p["sources"])
    letters = list(session.execute(f"SELECT reason, source, \"partition\", \"offset\", time, payload FROM "
                                   f"{ks}.\"_sluice_dead_letters\""))
    counts = collections.Counter(x.reason for x in letters)
    by_reason = {x["reason"]: x["count"] for x in p["dead_letters"]["by_reason"]}
    check("cassandra: dead letters by reason (cassandra-driver)", by_reason == dict(counts), f"{by_reason} vs {dict(counts)}")
    check("cassandra: dead letters by reason = the bad rows written", by_reason == dict(expected),
          f"{by_reason} vs {dict(expected)}")
    rows_by_reason = collections.defaultdict(list)
    for x in letters:
        payload = json.loads(x.payload)
        rows_by_reason[x.reason].append((x.source, x.partition, x.offset, x.time, x.payload,
                                         len(payload.encode()) if isinstance(payload, str) else len(x.payload)))
    problems = []
    for r_ in p["dead_letters"]["by_reason"]:
        mine = rows_by_reason[r_["reason"]]
        newest = sorted(mine, key=lambda x: (x[3], x[2]), reverse=True)[:3]
        if [(s["source"], s["partition"], s["offset"], s["payload_json"]) for s in r_["samples"]] != \
                [(x[0], x[1], x[2], x[4][:200]) for x in newest]:
            problems.append(r_["reason"])
    check("cassandra: samples are each reason's newest letters", not problems, problems)
    times = [x[0] for x in session.execute(f'SELECT WRITETIME("offset") FROM {ks}."_sluice_positions" '
                                           "WHERE pipeline = %s", ["cass_inspect"])]
    check("cassandra: last checkpoint = the newest WRITETIME of its positions (to the microsecond)",
          p["last_checkpoint"] == iso_micros(max(times)), (p["last_checkpoint"], max(times)))
    r = inspect(sluice, f"cassandra://{CASSANDRA.address}/{ks}_missing")
    check("cassandra: a keyspace that does not exist exits 2", r.returncode == 2, (r.returncode, r.stderr[-300:]))


# ---------------------------------------------------------------------------------------------
# Errors

def part_errors(sluice, tmp):
    notdb = os.path.join(tmp, "not-a-db.txt")
    with open(notdb, "w") as f:
        f.write("this is no database\n" * 100)
    empty_dir = os.path.join(tmp, "no-such-dir")
    db = os.path.join(tmp, "e.db")
    csv1 = os.path.join(tmp, "e.csv")
    write_csv(csv1, 5, {"abc": 1}, 1_767_225_600_000_000)
    r = run(sluice, PIPELINE, {"TRACKING": csv1, "SINK": f"sqlite:{db}"})
    check("errors: setup run exits 0", r.returncode == 0, r.stderr[-300:])
    cases = [
        ("an unknown scheme", ["nosuch:x"], 2, "unknown sink"),
        ("a bare path", [db], 2, "not a sink URI"),
        ("a missing SQLite file", [f"sqlite:{os.path.join(tmp, 'missing.db')}"], 2, "does not exist"),
        ("a file that is no SQLite database", [f"sqlite:{notdb}"], 2, "not an SQLite database"),
        ("a missing Parquet folder", [f"parquet:{empty_dir}"], 2, "does not exist"),
        ("a sink inspect does not read", ["stdout:"], 2, "not supported for this sink yet"),
        ("an unknown --pipeline", [f"sqlite:{db}", "--pipeline", "nosuch"], 2, "holds no pipeline named nosuch"),
        ("a MySQL server that cannot be reached", ["mysql://root@127.0.0.1:1/x"], 1, "127.0.0.1"),
    ]
    for what, argv, code, text in cases:
        r = inspect(sluice, *argv)
        check(f"errors: {what} exits {code} and says why", r.returncode == code and text in r.stderr
              and r.stdout == "", (r.returncode, r.stderr[-300:], r.stdout[:100]))
    before = os.path.getsize(db), os.path.getmtime(db)
    inspect(sluice, f"sqlite:{db}")
    check("errors: inspect leaves the database file as it was", (os.path.getsize(db), os.path.getmtime(db)) == before)


# ---------------------------------------------------------------------------------------------
# Metrics across a restart

def scrape(text, name):
    """{labels: value} of a metric in the Prometheus text format."""
    out = {}
    for ln in text.split("\n"):
        if ln.startswith(name + "{") or ln.startswith(name + " "):
            head, value = ln.rsplit(" ", 1)
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head))
            out[labels.get("reason", "")] = float(value)
    return out


def dashboard_dom(url, tmp):
    """The dashboard's DOM after its scripts ran (headless Chromium), or None without Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("note: no chromium, the dashboard panel is not checked", flush=True)
        return None
    from html.parser import HTMLParser  # noqa: PLC0415

    class Dom(HTMLParser):
        def __init__(self):
            super().__init__()
            self.by_id, self.stored_rows, self._in = {}, [], False

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "id" in a:
                self.by_id[a["id"]] = a
            if tag == "table":
                self._in = a.get("id") == "stored-dead"
            if tag == "tr" and self._in and "data-reason" in a:
                self.stored_rows.append(a)

    profile = os.path.join(tmp, "chromium-profile")
    r = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                        f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    dom = Dom()
    dom.feed(r.stdout)
    return dom


def part_metrics(sluice, tmp):
    db = os.path.join(tmp, "m.db")
    start = 1_767_225_600_000_000
    csv1 = os.path.join(tmp, "run1.csv")
    exp1 = write_csv(csv1, 100, {"abc": 5, None: 2}, start)
    r = run(sluice, PIPELINE, {"TRACKING": csv1, "SINK": f"sqlite:{db}"})
    check("metrics: run 1 exits 0", r.returncode == 0, r.stderr[-300:])
    csv2 = os.path.join(tmp, "run2.csv")
    # More good rows first: run 2's bad rows lie past every offset of run 1's file, so none has
    # the key (source, partition, offset) of a letter already stored.
    exp2 = write_csv(csv2, 200, {"abc": 3, "xyz": 1}, start + 7_200_000_000)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sluice, "run", PIPELINE, "--var", f"JOBS={JOBS}", "--var", f"TRACKING={csv2}",
           "--var", f"SINK=sqlite:{db}", "--http", f"127.0.0.1:{port}", "--http-linger", "30"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The run is bounded: once it is finished, the lingering server shows the final counts.
        status = wait_for(lambda: (lambda s: s if s and s.get("state") == "finished" else None)(
            get_json(url + "/api/status")), 60)
        check("metrics: run 2 finishes and keeps serving", status is not None)
        metrics = get(url + "/metrics")[1]
        dom = dashboard_dom(url + "/", tmp)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    check("metrics: run 2 exits 0 on SIGTERM while lingering", proc.returncode == 0, err[-300:])
    con = sqlite3.connect(db)
    stored = dict(con.execute("SELECT reason, count(*) FROM _sluice_dead_letters WHERE pipeline = "
                              "'recruitment' GROUP BY reason").fetchall())
    con.close()
    both = dict(exp1 + exp2)
    check("metrics: SQLite holds both runs' dead letters", stored == both, f"{stored} vs {both}")
    gauge = scrape(metrics, "sluice_dead_letters_stored")
    check("metrics: sluice_dead_letters_stored{reason} = SQLite's GROUP BY over both runs",
          gauge == {k: float(v) for k, v in stored.items()}, f"{gauge} vs {stored}")
    check("metrics: the family is a gauge with HELP",
          "# TYPE sluice_dead_letters_stored gauge" in metrics and "# HELP sluice_dead_letters_stored " in metrics)
    local = scrape(metrics, "sluice_records_dead_lettered_total")
    check("metrics: sluice_records_dead_lettered_total counts this process's letters only",
          local == {"": float(sum(exp2.values()))}, local)
    if dom is not None:
        rows = {a.get("data-reason"): int(a.get("data-count")) for a in dom.stored_rows}
        check("metrics: the dashboard's stored dead-letter table = SQLite's counts", rows == stored,
              f"{rows} vs {stored}")
        note = dom.by_id.get("stored-dead-note", {}).get("data-total")
        check("metrics: the dashboard's stored total", note == str(sum(stored.values())), note)
    sd = status and status.get("stored_dead_letters")
    check("metrics: /api/status stored_dead_letters = SQLite's counts",
          sd is not None and {x["reason"]: x["count"] for x in sd["by_reason"]} == stored
          and sd["total"] == sum(stored.values()) and "_sluice_dead_letters" in sd["location"], sd)


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--part", default="sqlite,errors,metrics,parquet,mysql,cassandra")
    ap.add_argument("--mysql", default=harness.MYSQL_URI)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sluice = os.path.abspath(args.sluice)
    tmp = tempfile.mkdtemp(prefix="sluice-inspect-")
    try:
        for part in args.part.split(","):
            sub = os.path.join(tmp, part)
            os.makedirs(sub)
            if part == "sqlite":
                part_sqlite(sluice, sub)
            elif part == "mysql":
                part_mysql(sluice, sub, args)
            elif part == "parquet":
                part_parquet(sluice, sub)
            elif part == "cassandra":
                part_cassandra(sluice, sub)
            elif part == "errors":
                part_errors(sluice, sub)
            elif part == "metrics":
                part_metrics(sluice, sub)
            else:
                raise SystemExit(f"unknown part {part}")
    finally:
        harness.keep_or_remove(tmp, args.keep)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
