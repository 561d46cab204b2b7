#!/usr/bin/env python3
"""The incremental MySQL table source: exact across re-runs, shared timestamps and late commits.

    table_source_test.py --sluice build/sluice

Needs the MariaDB of `make services` (root@127.0.0.1:3306, database `sluice`); a server that does
not answer is a FAIL under CI=true (or 1, yes), otherwise a loud SKIP (exit 77); SLUICE_TEST_MYSQL
overrides the address (tests/tools/harness.py).

The seed tracking log (../shared/seed-data/.../tracking.csv, 6,766 rows) is loaded into a MariaDB
table with an AUTO_INCREMENT `id` and an `inserted_at DATETIME(6)`, and the recruitment pipeline
reads it with TRACKING=mysql://root@127.0.0.1:3306/sluice/TABLE?order_by=inserted_at&key=id
into SQLite. Expected results: the independent recomputation (tests/tools/recompute_recruitment.py)
over the same rows.

 1. bursts: the first 5,000 rows in bursts of 500 that share one inserted_at, read with
    page_rows=300 so pages end inside a run of equal timestamps; `--until-caught-up` equals the
    recomputation over those rows.
 2. idempotent: a second `--until-caught-up` reads nothing and changes nothing.
 3. late commit: sluice runs continuously (grace 2 s) while transaction A inserts rows stamped
    NOW(6) and stays open, transaction B inserts rows stamped later and commits, then A commits
    one second later (an out-of-order commit within the grace period). After a stop and a last
    `--until-caught-up`, the table equals the recomputation over all 6,766 rows.
 4. recreated: the table is dropped and recreated with 1,000 rows (ids from 1 again). The next
    run is refused with exit 1, naming --reset-source and the table's CREATE_TIME, and changes
    nothing (before, it resumed after the old cursor and read nothing, exit 0); then
    `--reset-source tracking` reads the new table from its beginning.
"""

import argparse
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from harness import MYSQL, SEED_TRACKING as SEED  # noqa: E402
from mysql_client import Server  # noqa: E402

JOBS = os.path.join(REPO, "examples", "data", "job.csv")
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
COLUMNS = ["create_time", "ts", "custom_track", "job_id", "bid", "publisher_id", "campaign_id", "group_id"]
INTS = {"job_id", "bid", "publisher_id", "campaign_id", "group_id"}

T = harness.Checks()
check = T.check


def literal(v, integer):
    if v is None or v == "":
        return "NULL"
    if integer:
        try:
            return str(int(v))
        except ValueError:
            pass
    return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"


def insert_sql(table, rows, stamp):
    values = []
    for r in rows:
        values.append("(" + ", ".join(literal(r.get(c), c in INTS) for c in COLUMNS) + f", {stamp})")
    return (f"INSERT INTO {table} ({', '.join(COLUMNS)}, inserted_at) VALUES " + ", ".join(values) + ";\n")


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def sluice_run(sluice, table, db, extra, timeout=180):
    uri = f"{harness.MYSQL_URI}/sluice/{table}?order_by=inserted_at&key=id&page_rows=300&grace=2s"
    cmd = [sluice, "run", PIPELINE, "--var", f"TRACKING={uri}", "--var", f"SINK=sqlite:{db}",
           "--var", f"DLQ={db}.dlq", "--var", f"JOBS={JOBS}"] + extra
    return cmd


def expected_db(tmp, header, rows, name):
    path = os.path.join(tmp, name + ".csv")
    write_csv(path, header, rows)
    out = os.path.join(tmp, name + ".expected.db")
    rr.recompute(path, JOBS, out, "mysql")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sluice = os.path.abspath(args.sluice)
    server = Server()
    problems = [p for p in (server.reachable(),) if p]
    if not os.path.exists(SEED):
        problems.append(f"seed data missing: {SEED}")
    if problems:
        return T.missing("; ".join(problems))

    tmp = tempfile.mkdtemp(prefix="sluice_table_")
    table = f"tracking_src_{os.getpid()}"
    with open(SEED, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    key = list(rr.EVENTS_KEY)
    db = os.path.join(tmp, "out.db")
    try:
        create = (f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                  "create_time VARCHAR(64), ts VARCHAR(64), custom_track VARCHAR(64), job_id BIGINT, bid BIGINT, "
                  "publisher_id BIGINT, campaign_id BIGINT, group_id BIGINT, inserted_at DATETIME(6) NOT NULL, "
                  "KEY (inserted_at, id))")
        server.run(create, "sluice")
        # 1. bursts of 500 rows sharing one timestamp, an hour ago (well outside the grace).
        first = rows[:5000]
        sql = ""
        for b in range(0, len(first), 500):
            sql += insert_sql(table, first[b:b + 500], f"NOW(6) - INTERVAL 1 HOUR + INTERVAL {b // 500} SECOND")
        server.run(sql, "sluice")
        p = subprocess.run(sluice_run(sluice, table, db, ["--until-caught-up"]), cwd=REPO, capture_output=True,
                           text=True, timeout=180)
        check("bursts: --until-caught-up exits 0", p.returncode == 0, p.stderr[-2000:])
        want = expected_db(tmp, header, first, "first")
        diffs = compare_tables.compare(db, want, key)
        check("bursts: events == recomputation over the 5,000 rows (pages end inside equal timestamps)",
              not diffs, "\n".join(diffs[:10]))

        # 2. a re-run reads nothing and changes nothing.
        before = compare_tables.load(db, "events")
        p = subprocess.run(sluice_run(sluice, table, db, ["--until-caught-up"]), cwd=REPO, capture_output=True,
                           text=True, timeout=180)
        check("re-run: exits 0 having read 0 records", p.returncode == 0 and ": 0 records in" in p.stdout,
              p.stdout + p.stderr[-1500:])
        after = compare_tables.load(db, "events")
        check("re-run: the table is unchanged", sorted(before.rows) == sorted(after.rows), "rows differ")

        # 3. an out-of-order commit within the grace period, while sluice runs.
        log = open(os.path.join(tmp, "follow.log"), "w")
        proc = subprocess.Popen(sluice_run(sluice, table, db, []), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.0)
        late_a, late_b = rows[5000:5900], rows[5900:]
        client = subprocess.Popen([server.client, f"--host={MYSQL.host}", f"--port={MYSQL.port}", f"--user={MYSQL.user}", "--protocol=TCP",
                                   "sluice"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        client.stdin.write("START TRANSACTION;\n" + insert_sql(table, late_a, "NOW(6)"))
        client.stdin.flush()
        time.sleep(0.3)
        server.run(insert_sql(table, late_b, "NOW(6) + INTERVAL 100000 MICROSECOND"), "sluice")
        time.sleep(1.0)
        client.stdin.write("COMMIT;\n")
        client.stdin.close()
        client.wait(timeout=60)
        check("late commit: transaction A committed", client.returncode == 0, client.stderr.read()[-500:])
        time.sleep(4.0)  # beyond the grace: both transactions' rows are readable now
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        log.close()
        check("late commit: the running sluice stops on SIGTERM with exit 0", rc == 0, open(log.name).read()[-1500:])
        p = subprocess.run(sluice_run(sluice, table, db, ["--until-caught-up"]), cwd=REPO, capture_output=True,
                           text=True, timeout=180)
        check("late commit: the last --until-caught-up exits 0", p.returncode == 0, p.stderr[-1500:])
        want = expected_db(tmp, header, rows, "all")
        diffs = compare_tables.compare(db, want, key)
        check("late commit: events == recomputation over all 6,766 rows (none skipped, none twice)",
              not diffs, "\n".join(diffs[:10]))
        with sqlite3.connect(db) as c:
            stored = dict(((s, p), o) for s, p, o in c.execute(
                "SELECT source, partition, offset FROM _sluice_positions WHERE source = 'tracking'"))
        check("positions hold the (inserted_at, id) cursor of the last row", stored.get(("tracking", 1)) == len(rows),
              f"stored {stored}")

        # 4. dropped and recreated with other rows: refused until --reset-source.
        server.run(create, "sluice")
        reloaded = rows[:1000]
        server.run(insert_sql(table, reloaded, "NOW(6) - INTERVAL 1 HOUR"), "sluice")
        before = compare_tables.load(db, "events")
        p = subprocess.run(sluice_run(sluice, table, db, ["--until-caught-up"]), cwd=REPO, capture_output=True,
                           text=True, timeout=180)
        check("recreated: refused with exit 1 naming --reset-source and CREATE_TIME",
              p.returncode == 1 and "--reset-source tracking" in p.stderr and "CREATE_TIME" in p.stderr,
              f"rc={p.returncode} {p.stderr[-1500:]}")
        after = compare_tables.load(db, "events")
        check("recreated: the refused run changes nothing", sorted(before.rows) == sorted(after.rows), "rows differ")
        p = subprocess.run(sluice_run(sluice, table, db, ["--until-caught-up", "--reset-source", "tracking"]),
                           cwd=REPO, capture_output=True, text=True, timeout=180)
        check("recreated: --reset-source tracking exits 0", p.returncode == 0, p.stderr[-1500:])
        want = expected_db(tmp, header, rows + reloaded, "reloaded")
        diffs = compare_tables.compare(db, want, key)
        check("recreated: events == recomputation over the 6,766 rows and the 1,000 reloaded ones",
              not diffs, "\n".join(diffs[:10]))
    except Exception as e:  # noqa: BLE001
        check("scenario ran", False, repr(e)[:1500])
    finally:
        try:
            server.run(f"DROP TABLE IF EXISTS {table}", "sluice")
        except Exception:  # noqa: BLE001
            pass
        harness.keep_or_remove(tmp, args.keep)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
