#!/usr/bin/env python3
"""Dimensions that follow their source of truth, against the real MariaDB and Kafka.

    dimension_cdc_test.py --sluice build/sluice [--only mysql,jdbc,debezium,envelope]

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

Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import json
import os
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

    def __init__(self, sluice, tmp, name, dimension, options=""):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.events = os.path.join(self.dir, "events.ndjson")
        self.db = os.path.join(self.dir, "out.db")
        open(self.events, "w").close()
        self.pipeline = os.path.join(self.dir, "cdc.toml")
        with open(self.pipeline, "w") as f:
            f.write(PIPELINE.format(events=self.events, dimension=dimension, options=options, db=self.db))
        self.log = open(os.path.join(self.dir, "sluice.log"), "w")
        self.proc = subprocess.Popen([sluice, "run", self.pipeline, "--follow"], cwd=REPO,
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


def follow_change(run, name, before, after, change, changed_jobs):
    """Feeds events, applies `change`, feeds more; checks old/new companies per event.

    before/after: job -> company_id expected before/after the change (0: no such job).
    """
    jobs = sorted(before)
    run.append(jobs * 3)
    rows = run.wait_rows(run.seq)
    first = {s: r for s, r in rows.items()}
    wrong = [(s, j, c) for s, (j, c) in first.items() if c != before[j]]
    check(f"{name}: events before the change carry the snapshot", not wrong, f"wrong rows {wrong[:5]}")
    changed_at = time.monotonic()
    change()
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default="mysql,jdbc,debezium,envelope")
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
    if only & {"jdbc", "debezium", "envelope"}:
        why = kafka_util.ensure_kcat() or kafka_util.kafka_missing()
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
