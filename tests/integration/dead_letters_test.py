#!/usr/bin/env python3
"""Dead letters end to end: the record is always valid JSON, and they live with the results.

1. binary input (issue 14 item 6): 200 kB of random bytes (fixed seed) as the recruitment
   pipeline's NDJSON input, once with the dead letters in the SQLite sink (the default) and once
   in an NDJSON file (`DLQ=file:...`). Every file line is decoded as strict UTF-8 and parsed by
   Python's json; every record has the schema's keys; its payload (payload_base64 when present,
   else the string) is exactly the input's bytes at the record's offset, and payload_sha256 is
   their SHA-256 (hashlib). Both stores hold the same letters.
2. A, B, A (issue 13 item 4): from one working directory, the pipeline into MariaDB database A,
   then B (another input), then A again after more rows were appended to A's input. Every run
   exits 0, and each database's `_sluice_dead_letters` holds exactly its own input's bad rows,
   once each. (Before, both databases shared one dead-letter file in the working directory and
   the third run was refused: "dead-letter file ... is shorter ... than the committed length".)
   Needs the server of `make services`: without it this part is skipped (a FAIL under CI=true).
3. Two SQLite sinks given one explicit dead-letter file: the second run is refused (exit 2) and
   the first run's file is left as it was.

Expected dead letters come from the inputs this test writes (each bad row carries a marker), never
from sluice's output.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import dead_letters  # noqa: E402
import harness  # noqa: E402
from mysql_client import Server  # noqa: E402

PIPELINE = os.path.join(ROOT, "examples", "recruitment.toml")
JOBS = os.path.join(ROOT, "examples", "data", "job.csv")
HEADER = "create_time,bid,campaign_id,custom_track,group_id,job_id,publisher_id,ts,ua\n"
KEYS = {"pipeline": str, "source": str, "partition": int, "offset": int, "reason": str,
        "time": str, "payload_bytes": int, "truncated": bool, "payload_sha256": str}

T = harness.Checks(skip_on_any=True)  # without MariaDB the test is a SKIP, not a pass
check = T.check


def run(sluice, cwd, variables, timeout=120):
    return harness.run_sluice(sluice, PIPELINE, {"JOBS": JOBS, **variables}, timeout=timeout,
                              cwd=cwd)


def exact_payload(d):
    b64 = d.get("payload_base64")
    if b64 is not None:
        return base64.b64decode(b64, validate=True)
    if isinstance(d["payload"], str):
        return d["payload"].encode("utf-8")
    return None


def binary_input(sluice, tmp):
    rnd = random.Random(20261206)
    data = bytes(rnd.getrandbits(8) for _ in range(200_000))
    path = os.path.join(tmp, "binary.ndjson")
    with open(path, "wb") as f:
        f.write(data)
    # The records a line-based reader sees: every non-blank line (with a trailing \r dropped or
    # not, the payload must be the bytes at its offset).
    lines = [ln for ln in data.split(b"\n") if ln.strip()]

    db = os.path.join(tmp, "binary.db")
    r = run(sluice, tmp, {"TRACKING": path, "SINK": f"sqlite:{db}"})
    check("binary input into SQLite: exit 0", r.returncode == 0, r.stderr[-800:])
    dlq = os.path.join(tmp, "binary.dlq.ndjson")
    r2 = run(sluice, tmp, {"TRACKING": path, "SINK": f"sqlite:{os.path.join(tmp, 'b2.db')}",
                           "DLQ": f"file:{dlq}"})
    check("binary input, dead letters to a file: exit 0", r2.returncode == 0, r2.stderr[-800:])

    # The file: every line strict UTF-8 and JSON, parsed here without sluice's help.
    if not os.path.exists(dlq):
        check("binary input: DLQ=file:PATH writes the dead letters to PATH", False, dlq)
        return
    bad_lines, records = [], []
    with open(dlq, "rb") as f:
        for n, raw in enumerate(f.read().split(b"\n"), start=1):
            if not raw:
                continue
            try:
                records.append(json.loads(raw.decode("utf-8", errors="strict")))
            except (UnicodeDecodeError, ValueError) as e:
                bad_lines.append(f"line {n}: {e}")
    check(f"binary input: every dead-letter line is valid UTF-8 and JSON ({len(records)} lines)",
          not bad_lines and records, "; ".join(bad_lines[:5]) or "no lines")
    check("binary input: about one dead letter per input line",
          abs(len(records) - len(lines)) <= len(lines) // 50 + 2,
          f"{len(records)} dead letters for {len(lines)} lines")
    wrong = []
    for d in records:
        for k, t in KEYS.items():
            if not isinstance(d.get(k), t) or (t is int and isinstance(d.get(k), bool)):
                wrong.append(f"{k}={d.get(k)!r}")
        raw = exact_payload(d)
        if raw is None:
            try:
                same = json.loads(data[d["offset"]:data.index(b"\n", d["offset"])]) == d["payload"]
            except ValueError:
                same = False
            if not same:
                wrong.append(f"JSON payload at {d['offset']} differs from the input")
            continue
        if not data[d["offset"]:].startswith(raw):
            wrong.append(f"payload at offset {d['offset']} is not the input's bytes there")
        if not d["truncated"] and (hashlib.sha256(raw).hexdigest() != d["payload_sha256"]
                                   or len(raw) != d["payload_bytes"]):
            wrong.append(f"sha256/bytes of the payload at {d['offset']}")
    check("binary input: records have the schema and give back the exact input bytes",
          not wrong, "; ".join(wrong[:5]))

    # The SQLite store: the same letters (time aside), read through the test tools.
    entries, problems = dead_letters.load_dlq(f"sqlite:{db}")
    check("binary input: the sink's _sluice_dead_letters rows are well-formed", not problems,
          "; ".join(problems[:5]))

    def key(d):
        return (d["source"], d["partition"], d["offset"], d["reason"],
                d["payload_sha256"], exact_payload(d))
    check("binary input: the sink's table holds the same dead letters as the file",
          sorted(map(key, entries)) == sorted(map(key, records)),
          f"{len(entries)} rows vs {len(records)} lines")


def csv_rows(marker, good, bad, start):
    """CSV rows: `good` clicks and `bad` rows whose bid is not a number (carrying `marker`)."""
    out = []
    for i in range(good + bad):
        t = start + i
        uuid = f"{t:08x}-0132-11ed-8601-7cd44fe229db"
        bid = f"bad-{marker}-{i}" if i % ((good + bad) // bad) == 0 else "1"
        out.append(f"{uuid},{bid},1,click,10,1,1,01:00.0,ua\n")
    return out


def markers(rows):
    return sorted(r.split(",")[1] for r in rows if r.split(",")[1].startswith("bad-"))


def stored_markers(server, database):
    rows = server.run("SELECT payload, payload_base64, reason FROM _sluice_dead_letters "
                      "WHERE pipeline = 'recruitment'", database)[1:]
    found = []
    for payload, b64, reason in rows:
        text = base64.b64decode(b64).decode() if b64 else json.loads(payload)
        found.append(text.split(",")[1] if isinstance(text, str) else str(text))
    return sorted(found)


def a_b_a(sluice, tmp, server):
    dbs = {"A": f"sluice_dlq_a_{os.getpid()}", "B": f"sluice_dlq_b_{os.getpid()}"}
    try:
        _a_b_a(sluice, tmp, server, dbs)
    finally:
        for db in dbs.values():
            server.run(f"DROP DATABASE IF EXISTS {db}")


def _a_b_a(sluice, tmp, server, dbs):
    for db in dbs.values():
        server.run(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4")
    work = os.path.join(tmp, "aba")
    os.makedirs(work)
    a1 = csv_rows("A1", 300, 10, 0x1000000)
    b = csv_rows("B", 200, 7, 0x2000000)
    a2 = csv_rows("A2", 100, 5, 0x3000000)
    with open(os.path.join(work, "a.csv"), "w") as f:
        f.write(HEADER + "".join(a1))
    with open(os.path.join(work, "b.csv"), "w") as f:
        f.write(HEADER + "".join(b))
    runs = []
    runs.append(run(sluice, work, {"TRACKING": "a.csv", "SINK": server.uri(dbs["A"])}))
    runs.append(run(sluice, work, {"TRACKING": "b.csv", "SINK": server.uri(dbs["B"])}))
    with open(os.path.join(work, "a.csv"), "a") as f:
        f.write("".join(a2))
    runs.append(run(sluice, work, {"TRACKING": "a.csv", "SINK": server.uri(dbs["A"])}))
    for name, r in zip(("A", "B", "A again"), runs):
        check(f"A, B, A: run {name} exits 0", r.returncode == 0, r.stderr[-600:])
    check("A, B, A: A's table holds A's bad rows of both runs, once each",
          stored_markers(server, dbs["A"]) == markers(a1 + a2),
          f"{stored_markers(server, dbs['A'])[:6]}...")
    check("A, B, A: B's table holds B's bad rows, once each",
          stored_markers(server, dbs["B"]) == markers(b), f"{stored_markers(server, dbs['B'])[:6]}...")
    check("A, B, A: no dead-letter file left in the working directory",
          not [n for n in os.listdir(work) if "dead-letter" in n], str(os.listdir(work)))


def shared_file(sluice, tmp):
    work = os.path.join(tmp, "shared")
    os.makedirs(work)
    with open(os.path.join(work, "a.csv"), "w") as f:
        f.write(HEADER + "".join(csv_rows("S", 50, 5, 0x4000000)))
    dlq = os.path.join(work, "shared.ndjson")
    r1 = run(sluice, work, {"TRACKING": "a.csv", "SINK": "sqlite:one.db", "DLQ": f"file:{dlq}"})
    check("shared file: the first sink's run exits 0", r1.returncode == 0, r1.stderr[-600:])
    with open(dlq, "rb") as f:
        before = f.read()
    r2 = run(sluice, work, {"TRACKING": "a.csv", "SINK": "sqlite:two.db", "DLQ": f"file:{dlq}"})
    check("shared file: a second sink on the same file is refused with exit 2",
          r2.returncode == 2 and "belongs to another pipeline or sink" in r2.stderr,
          f"rc={r2.returncode} {r2.stderr[-600:]}")
    with open(dlq, "rb") as f:
        check("shared file: the first sink's dead letters are untouched", f.read() == before)
    r3 = run(sluice, work, {"TRACKING": "a.csv", "SINK": "sqlite:one.db", "DLQ": f"file:{dlq}"})
    check("shared file: the first sink runs again (exit 0)", r3.returncode == 0, r3.stderr[-600:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--server", default=harness.MYSQL_URI)
    args = ap.parse_args(argv)
    sluice = os.path.abspath(args.sluice)
    tmp = tempfile.mkdtemp(prefix="sluice-dlq-")
    try:
        for part in (binary_input, shared_file):
            try:
                part(sluice, tmp)
            except Exception as e:  # a crash of one part is a failure, not the end of the test
                check(part.__name__, False, f"{type(e).__name__}: {e}")
        server = Server(args.server)
        why = server.reachable()
        if why:
            T.skip("A, B, A against MariaDB", why + "; start it with `make services`")
        else:
            try:
                a_b_a(sluice, tmp, server)
            except Exception as e:
                check("A, B, A", False, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
