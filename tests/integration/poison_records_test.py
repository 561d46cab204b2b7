#!/usr/bin/env python3
"""Poison records (issue 14 item 2): one row the sink refuses must not stop a pipeline.

A small aggregate pipeline (NDJSON file -> count and sum per key `k`, key column VARCHAR(512))
and a select pipeline (rows upserted by `k`) are run with inputs that hold rows the sink cannot
store, each run checked against a recomputation here:

1. MariaDB (`--mysql`, database poison_mysql): a record whose key is 1 MB and two whose key is
   600 bytes (error 1406, data too long). Before, every checkpoint failed with 1406, nothing was
   written and every restart failed the same way. Now the run exits 0, the table holds every
   other key with exact counts and sums, and `_sluice_dead_letters` holds the refused groups'
   deltas (source `_sink`, reason `sink_rejected: ... mysql error 1406: Data too long for column
   'k' ...`) whose counts and sums add up to the refused records'; the 1 MB one is stored
   truncated with the SHA-256 of its whole payload, computed here. A restart with more input
   (one more oversized key) continues. A checkpoint that fails for a reason that is not a row's
   (a trigger that breaks the positions update) fails the run with exit 1, nothing of it stored;
   the next run writes it.
   Without a server this part is skipped (exit 77), a FAIL under CI=true.
2. MariaDB, statements over max_allowed_packet (database poison_packet; the server's value is
   read, 16 MiB by default, and not changed): a select pipeline into a LONGTEXT column with
   batch_bytes four times the packet. One record whose value alone is longer than the packet:
   before, the statement failed with error 1153 (the server also drops the connection) and the
   run failed, and every restart the same way; now that row is dead-lettered (source `_sink`,
   reason `sink_rejected: row refused by the sink: mysql error 1153: Got a packet bigger than
   'max_allowed_packet' bytes ...`, truncated, with the whole payload's size and SHA-256) and
   the rest stored. Three records of 40 % of the packet each fit alone but not in one statement
   (which batch_bytes alone would make): they must be split into statements that fit and be
   stored, not dead-lettered.
3. SQLite: a select pipeline whose key `k` is null in some records (a key cannot be null).
   Before, the run failed at its first checkpoint and every restart again; now those rows are
   dead-lettered and the others upserted.

Databases used: poison_mysql and poison_packet (MariaDB) and files in a temporary folder.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import harness  # noqa: E402
from mysql_client import Server  # noqa: E402

KEY_LIMIT = 512  # VARCHAR(512) of the key column, in characters (the keys here are ASCII)

AGGREGATE = """
[pipeline]
name = "poison"
checkpoint_interval = "1s"

[source]
name = "events"
uri = "${INPUT}"

[source.fields]
k = "string"
ts = "string"
v = "int64"

[[step]]
let = "t"
expr = "parse_time(ts)"

[aggregate]
time = "t"
window = "1h"
mode = "update"
window_columns = []
keys = ["k"]
metrics = ["n = count()", "total = sum(v)"]

[sink]
uri = "${SINK}"
table = "results"
column_types = "k:VARCHAR(512)"
"""

ROWS = """
[pipeline]
name = "poison_rows"
checkpoint_interval = "1s"

[source]
name = "events"
uri = "${INPUT}"

[source.fields]
k = "string"
v = "int64"

[sink]
uri = "${SINK}"
table = "rows"
key = "k"
"""

T = harness.Checks(skip_on_any=True)  # without MariaDB the test is a SKIP, not a pass
check = T.check


def run(sluice, pipeline, variables, timeout=180):
    return harness.run_sluice(sluice, pipeline, variables, timeout=timeout, cwd=None)


def write_records(path, records, mode="w"):
    with open(path, mode) as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def make_records(rnd, count, poison):
    """`count` ordinary records over 25 keys in one hour, with `poison` (key, index) inserted."""
    out = []
    for i in range(count):
        out.append({"k": f"job-{rnd.randrange(25)}",
                    "ts": f"2026-01-01T00:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z",
                    "v": rnd.randrange(1, 1000)})
    for key, at in poison:
        out.insert(at, {"k": key, "ts": "2026-01-01T00:30:00Z", "v": rnd.randrange(1, 1000)})
    return out


def expected_groups(records):
    """key -> (count, sum) of every record, computed here."""
    out = {}
    for r in records:
        n, s = out.get(r["k"], (0, 0))
        out[r["k"]] = (n + 1, s + r["v"])
    return out


def mysql_part(sluice, server, tmp):
    why = server.reachable()
    if why:
        return why
    db = "poison_mysql"
    server.run(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4")
    sink = server.uri(db)
    pipeline = os.path.join(tmp, "poison.toml")
    with open(pipeline, "w") as f:
        f.write(AGGREGATE)
    rnd = random.Random(1406)
    huge, long_key, longer = "x" * (1 << 20), "y" * 600, "z" * 513
    first = make_records(rnd, 400, [(huge, 100), (long_key, 200), (long_key, 300)])
    later = make_records(rnd, 200, [(longer, 50), (long_key, 120)])
    last = make_records(rnd, 50, [])
    data = os.path.join(tmp, "events.ndjson")

    def table():
        rows = server.run("SELECT k, n, total FROM results", db)[1:]
        return {k: (int(n), int(t)) for k, n, t in rows}

    def letters():
        rows = server.run(
            "SELECT source, reason, payload, payload_bytes, truncated, payload_sha256 FROM "
            "_sluice_dead_letters WHERE pipeline = 'poison'", db)[1:]
        return [{"source": s, "reason": r, "payload": p, "payload_bytes": int(b),
                 "truncated": t == "1", "sha256": h} for s, r, p, b, t, h in rows]

    def check_state(label, records):
        want = expected_groups(records)
        good = {k: v for k, v in want.items() if len(k) <= KEY_LIMIT}
        bad = {k: v for k, v in want.items() if len(k) > KEY_LIMIT}
        got = table()
        check(f"{label}: the table holds every storable key with its exact count and sum "
              f"({len(good)} keys)", got == good,
              f"missing {sorted(set(good) - set(got))[:5]}, extra {sorted(set(got) - set(good))[:5]}, "
              f"wrong {[k for k in good if k in got and got[k] != good[k]][:5]}")
        dl = letters()
        check(f"{label}: every dead letter of a refused row comes from the sink",
              all(d["source"] == "_sink" for d in dl), [d["source"] for d in dl])
        reason = ("sink_rejected: delta of group refused by the sink: mysql error 1406: "
                  "Data too long for column 'k' at row 1")
        check(f"{label}: each names the server's reason", dl and all(d["reason"] == reason for d in dl),
              [d["reason"][:200] for d in dl])
        # Deltas of a refused group add up to the refused records (a group can be refused in
        # several checkpoints; each letter holds that checkpoint's delta).
        sums = {}
        for d in dl:
            if d["truncated"]:
                continue
            p = json.loads(d["payload"])
            n, s = sums.get(p["k"], (0, 0))
            sums[p["k"]] = (n + p["n"], s + p["total"])
        small_bad = {k: v for k, v in bad.items() if k != huge}
        check(f"{label}: the refused groups' letters add up to their records {small_bad and '(counts, sums)'}",
              sums == small_bad, f"{ {k[:3] + '...': v for k, v in sums.items()} } vs "
                                 f"{ {k[:3] + '...': v for k, v in small_bad.items()} }")
        # The 1 MB key: stored truncated, with its size and the SHA-256 of the whole payload.
        n, s = want[huge]
        whole = json.dumps({"k": huge, "n": n, "total": s}, separators=(",", ":")).encode()
        big = [d for d in dl if d["truncated"]]
        check(f"{label}: the 1 MB key's letter is truncated, with the whole payload's size and hash",
              len(big) == 1 and big[0]["payload_bytes"] == len(whole)
              and big[0]["sha256"] == hashlib.sha256(whole).hexdigest()
              and len(big[0]["payload"]) < 70 * 1024,
              [(d["payload_bytes"], d["sha256"]) for d in big])

    write_records(data, first)
    r = run(sluice, pipeline, {"INPUT": data, "SINK": sink})
    check("mysql, first run with a 1 MB key and 600-byte keys: exit 0", r.returncode == 0,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    check("the log names each dead-lettered group and the server's message",
          'dead-lettered a delta of group the server refused: {"k":"' + "y" * 150 in r.stderr
          and "(mysql error 1406: Data too long for column 'k' at row 1)" in r.stderr,
          r.stderr[-800:])
    check_state("after the first run", first)
    check("the summary counts them as dead-lettered by the sink",
          f"sink_rejected: {len(letters())}" in r.stdout, r.stdout[-800:])

    write_records(data, later, "a")
    r = run(sluice, pipeline, {"INPUT": data, "SINK": sink})
    check("mysql, restart with more input (another oversized key): exit 0", r.returncode == 0,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    check_state("after the restart", first + later)

    # A checkpoint that fails for a reason that is not a row's: the positions update breaks.
    # It is not isolated as a poison row: the run fails with exit 1 and stores nothing of it.
    server.run("CREATE TRIGGER poison_break BEFORE INSERT ON _sluice_positions FOR EACH ROW "
               "SET NEW.`offset` = 'not a number'", db)
    before = table()
    write_records(data, last, "a")
    r = run(sluice, pipeline, {"INPUT": data, "SINK": sink})
    check("a checkpoint failing for good (not a row): exit 1, not 2", r.returncode == 1,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    check("  its message names the server's error", "1366" in r.stderr, r.stderr[-600:])
    check("  and nothing of it was stored", table() == before)
    server.run("DROP TRIGGER poison_break", db)
    r = run(sluice, pipeline, {"INPUT": data, "SINK": sink})
    check("the next run, the trigger gone: exit 0", r.returncode == 0,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    check_state("after the failed run and a good one", first + later + last)
    return None


PACKET = """
[pipeline]
name = "poison_packet"
checkpoint_interval = "1s"

[source]
name = "events"
uri = "${INPUT}"

[source.fields]
k = "string"
s = "string"

[sink]
uri = "${SINK}"
table = "big"
column_types = "s:LONGTEXT"
batch_bytes = BATCH_BYTES
"""


def packet_part(sluice, server, tmp):
    """Rows over max_allowed_packet: the one too large alone is dead-lettered, the batch that
    is too large together is split."""
    why = server.reachable()
    if why:
        return why
    db = "poison_packet"
    packet = int(server.run("SELECT @@global.max_allowed_packet")[1][0])
    if packet > 64 << 20:
        print(f"NOTE: max_allowed_packet is {packet} bytes; the packet part needs records that "
              "large, left out")
        return None
    server.run(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4")
    pipeline = os.path.join(tmp, "packet.toml")
    with open(pipeline, "w") as f:
        f.write(PACKET.replace("BATCH_BYTES", str(4 * packet)))
    records = [{"k": f"small-{i}", "s": f"value {i}"} for i in range(6)]
    records.insert(2, {"k": "too-large", "s": "h" * (packet + 1024)})
    for i in range(3):
        records.insert(4 + i, {"k": f"together-{i}", "s": chr(ord("a") + i) * (packet * 2 // 5)})
    data = os.path.join(tmp, "packet.ndjson")
    write_records(data, records)
    r = run(sluice, pipeline, {"INPUT": data, "SINK": server.uri(db)}, timeout=300)
    check("mysql, a row larger than max_allowed_packet: exit 0", r.returncode == 0,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    rows = [tuple(r) for r in server.run("SELECT k, LENGTH(s), MD5(s) FROM big", db)[1:]]
    want = sorted((rec["k"], str(len(rec["s"])), hashlib.md5(rec["s"].encode()).hexdigest())
                  for rec in records if rec["k"] != "too-large")
    check("  every other row stored, the three that only fit one by one too", sorted(rows) == want,
          f"{sorted((k, n) for k, n, _ in rows)} vs {[(k, n) for k, n, _ in want]}")
    dl = server.run("SELECT source, reason, payload_bytes, truncated, payload_sha256 FROM "
                    "_sluice_dead_letters WHERE pipeline = 'poison_packet'", db)[1:]
    whole = json.dumps(records[2], separators=(",", ":")).encode()
    reason = ("sink_rejected: row refused by the sink: mysql error 1153: Got a packet bigger than "
              "'max_allowed_packet' bytes")
    check("  one dead letter, the too-large row, from the sink with the server's reason, "
          "truncated with the whole payload's size and hash",
          len(dl) == 1 and dl[0][0] == "_sink" and dl[0][1].startswith(reason)
          and int(dl[0][2]) == len(whole) and dl[0][3] == "1"
          and dl[0][4] == hashlib.sha256(whole).hexdigest(),
          [(d[0], d[1][:160], d[2], d[3]) for d in dl])
    return None


def sqlite_part(sluice, tmp):
    pipeline = os.path.join(tmp, "rows.toml")
    with open(pipeline, "w") as f:
        f.write(ROWS)
    rnd = random.Random(19)
    records = []
    for i in range(300):
        records.append({"k": None if i % 37 == 5 else f"key-{rnd.randrange(40)}", "v": i})
    data = os.path.join(tmp, "rows.ndjson")
    db = os.path.join(tmp, "rows.db")

    def expect(recs):
        # Upsert by key: the last record of each key wins.
        return {r["k"]: r["v"] for r in recs if r["k"] is not None}

    def state():
        c = sqlite3.connect(db)
        try:
            rows = dict(c.execute("SELECT k, v FROM rows").fetchall())
            dl = c.execute("SELECT source, reason, payload FROM _sluice_dead_letters "
                           "WHERE pipeline = 'poison_rows'").fetchall()
        finally:
            c.close()
        return rows, dl

    write_records(data, records[:200])
    r = run(sluice, pipeline, {"INPUT": data, "SINK": f"sqlite:{db}"})
    check("sqlite, rows with a null key: exit 0", r.returncode == 0,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    rows, dl = state()
    nulls = [rec for rec in records[:200] if rec["k"] is None]
    check("sqlite: every other row upserted", rows == expect(records[:200]),
          f"{len(rows)} rows vs {len(expect(records[:200]))}")
    reason = "sink_rejected: row refused by the sink: sqlite error 19: key column k is null"
    check("sqlite: one dead letter per null-key row, from the sink, with the reason",
          sorted(json.loads(p)["v"] for s, rs, p in dl if s == "_sink" and rs == reason)
          == sorted(rec["v"] for rec in nulls), dl[:3])
    write_records(data, records[200:], "a")
    r = run(sluice, pipeline, {"INPUT": data, "SINK": f"sqlite:{db}"})
    check("sqlite: a restart with more input continues: exit 0", r.returncode == 0,
          f"exit {r.returncode}: {r.stderr[-1500:]}")
    rows, dl = state()
    check("sqlite: after the restart, every storable row", rows == expect(records),
          f"{len(rows)} rows vs {len(expect(records))}")
    check("sqlite: after the restart, one dead letter per null-key row",
          sorted(json.loads(p)["v"] for s, rs, p in dl if s == "_sink")
          == sorted(rec["v"] for rec in records if rec["k"] is None), len(dl))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--mysql", default=harness.MYSQL_URI)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="poison_")
    try:
        sqlite_part(args.sluice, tmp)
        why = mysql_part(args.sluice, Server(args.mysql), tmp)
        if why:
            T.skip("the MySQL part", why)
        why = packet_part(args.sluice, Server(args.mysql), tmp)
        if why:
            T.skip("the max_allowed_packet part", why)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
