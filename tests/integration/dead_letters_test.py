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
4. A replaced file (issue 13: dead letters keyed by the input's generation): the input at one
   path is replaced (a new file `mv`d over it) by one with its bad row at the same byte offset.
   Each run's bad row must be stored and counted: 2 rows in the SQLite table (before, the second
   one had the first one's key, (pipeline, source, partition, offset, seq), and was dropped),
   in `sluice inspect --json`, and 2 lines in an NDJSON dead-letter file, with generations 0
   and 1; against MariaDB too (INSERT ... ON DUPLICATE KEY kept only the first). Then
   `--reset-source` reads the second file again: its bad row is stored once more (generation 2).

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
import subprocess
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
KEYS = {"pipeline": str, "source": str, "partition": int, "offset": int, "generation": int, "reason": str,
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


def replaced_input(marker, start):
    """A CSV with 20 good rows and one bad row (bid `bad-<marker>`, markers of equal length) at
    the same byte offset for every marker; the uuids differ by `start`, so the files differ."""
    rows = [f"{start + i:08x}-0132-11ed-8601-7cd44fe229db,1,1,click,10,1,1,01:00.0,ua\n" for i in range(20)]
    rows[7] = rows[7].replace(",1,1,click", f",bad-{marker},1,click", 1)
    return HEADER + "".join(rows)


def replaced_file(sluice, tmp, server=None, database=None):
    label = "replaced file" + (" (MariaDB)" if server else "")
    work = os.path.join(tmp, "replaced-mysql" if server else "replaced")
    os.makedirs(work)
    path = os.path.join(work, "t.csv")
    first, second = replaced_input("R1", 0x5000000), replaced_input("R2", 0x6000000)
    check(f"{label}: both inputs have their bad row at the same byte offset",
          first.index("bad-R1") == second.index("bad-R2") and len(first) == len(second))
    dlq = os.path.join(work, "dlq.ndjson")
    sink = server.uri(database) if server else "sqlite:out.db"
    variables = {"TRACKING": "t.csv", "SINK": sink}
    if not server:
        variables_file = {"TRACKING": "t.csv", "SINK": "sqlite:file.db", "DLQ": f"file:{dlq}"}

    def stored():
        """(bad marker, generation) of each stored letter; generation None in a table without the
        column (a sluice before generations, which this test must fail)."""
        if server:
            cols = server.run("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                              f"'{database}' AND TABLE_NAME = '_sluice_dead_letters' AND COLUMN_NAME = "
                              "'generation'")[1][0]
            g = "generation" if cols != "0" else "NULL"
            rows = server.run(f"SELECT payload, {g} FROM _sluice_dead_letters WHERE pipeline = "
                              "'recruitment'", database)[1:]
            return sorted((json.loads(p).split(",")[1], None if g == "NULL" else int(n)) for p, n in rows)
        con = sqlite3.connect(os.path.join(work, "out.db"))
        try:
            cols = [r[1] for r in con.execute("PRAGMA table_info(_sluice_dead_letters)")]
            g = "generation" if "generation" in cols else "NULL"
            return sorted((json.loads(p).split(",")[1], n) for p, n in con.execute(
                f"SELECT payload, {g} FROM _sluice_dead_letters WHERE pipeline = 'recruitment'"))
        finally:
            con.close()

    def inspect_total():
        r = subprocess.run([sluice, "inspect", sink, "--json"], cwd=work, capture_output=True, text=True,
                           timeout=120)
        try:
            return json.loads(r.stdout)["pipelines"][0]["dead_letters"]["total"]
        except (ValueError, KeyError, IndexError, TypeError):
            return f"rc={r.returncode} {r.stdout[:200]} {r.stderr[-300:]}"

    with open(path, "w") as f:
        f.write(first)
    runs = [run(sluice, work, variables)]
    if not server:
        runs.append(run(sluice, work, variables_file))
    with open(path + ".new", "w") as f:
        f.write(second)
    os.rename(path + ".new", path)
    runs.append(run(sluice, work, variables))
    if not server:
        runs.append(run(sluice, work, variables_file))
    check(f"{label}: every run exits 0", all(r.returncode == 0 for r in runs),
          " / ".join(r.stderr[-300:] for r in runs if r.returncode != 0))
    want = [("bad-R1", 0), ("bad-R2", 1)]
    check(f"{label}: both files' bad rows are stored", [m for m, _ in stored()] == ["bad-R1", "bad-R2"],
          str(stored()))
    check(f"{label}: ... with generations 0 and 1", stored() == want, str(stored()))
    check(f"{label}: sluice inspect counts both", inspect_total() == 2, str(inspect_total()))
    if not server:
        with open(dlq, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        got = sorted((d["payload"].split(",")[1], d.get("generation")) for d in lines)
        check(f"{label}: the NDJSON dead-letter file holds both, generations 0 and 1", got == want, str(got))
        same_offset = len({d["offset"] for d in lines}) == 1 and len(lines) == 2
        check(f"{label}: ... at the same offset", same_offset, str([d["offset"] for d in lines]))
    r = subprocess.run([sluice, "run", PIPELINE, "--var", f"JOBS={JOBS}", "--var", "TRACKING=t.csv",
                        "--var", f"SINK={sink}", "--reset-source", "tracking"],
                       cwd=work, capture_output=True, text=True, timeout=120)
    check(f"{label}: --reset-source exits 0", r.returncode == 0, r.stderr[-600:])
    check(f"{label}: after --reset-source the second file's bad row is stored again (generation 2)",
          stored() == want + [("bad-R2", 2)], str(stored()))
    r = run(sluice, work, variables)
    check(f"{label}: a run after that stores nothing twice", r.returncode == 0 and
          stored() == want + [("bad-R2", 2)], f"rc={r.returncode} {stored()}")


def replaced_file_mysql(sluice, tmp, server):
    db = f"sluice_dlq_r_{os.getpid()}"
    server.run(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4")
    try:
        replaced_file(sluice, tmp, server, db)
    finally:
        server.run(f"DROP DATABASE IF EXISTS {db}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--server", default=harness.MYSQL_URI)
    args = ap.parse_args(argv)
    sluice = os.path.abspath(args.sluice)
    tmp = tempfile.mkdtemp(prefix="sluice-dlq-")
    try:
        for part in (binary_input, shared_file, replaced_file):
            try:
                part(sluice, tmp)
            except Exception as e:  # a crash of one part is a failure, not the end of the test
                check(part.__name__, False, f"{type(e).__name__}: {e}")
        server = Server(args.server)
        why = server.reachable()
        if why:
            T.skip("A, B, A against MariaDB", why + "; start it with `make services`")
        else:
            for part in (a_b_a, replaced_file_mysql):
                try:
                    part(sluice, tmp, server)
                except Exception as e:
                    check(part.__name__, False, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
