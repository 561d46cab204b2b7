#!/usr/bin/env python3
"""End-to-end test of the MySQL/MariaDB sink and job dimension on the recruitment pipeline.

    mysql_recruitment_test.py --sluice build/sluice [--server mysql://root@127.0.0.1:3306]
                              [--copies 30] [--kills 3] [--seed 7] [--keep]

Needs a MariaDB/MySQL server (default: root without a password on 127.0.0.1:3306, as started
by `make services`; a password comes from SLUICE_MYSQL_PASSWORD) and its command-line client
(`mariadb` or `mysql`, used with --batch to create, fill and dump tables). Every run works in a
fresh database sluice_e2e_<pid>, dropped at the end unless --keep.

Checks (the expected table is always tests/tools/recompute_recruitment.py's, compared on all
columns not starting with '_' by tests/tools/compare_tables.py):
  1. the seed tracking.csv with JOBS=examples/data/job.csv into SINK=mysql://.../DB: table
     `events` == recomputation; dead letters (in `_sluice_dead_letters`, the default) as many
     as the recomputation's; the committed
     position of `tracking` is the file's size; the column types are DATE, TINYINT,
     DECIMAL(10,2) and DATETIME as examples/recruitment.toml's column_types asks;
  2. a second run over the same input resumes from the committed positions and changes nothing;
  3. the job dimension read from a MySQL table (JOBS=mysql://.../DB/job, NULL company_id where
     the CSV has none) gives the same table;
  4. a larger input (the seed repeated --copies times, as restart_test.py builds it), run with a
     50 ms checkpoint interval: uninterrupted == recomputation; then --kills cycles, each on a
     fresh database, kill -9 the run at one or two random moments and restart it to the end:
     == recomputation, with as many dead letters.
Server or client missing: FAIL under CI=true (or 1, yes), else SKIP (exit 77). Seed data missing: the same.
Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
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
from mysql_client import Server, dump_csv  # noqa: E402
from recruitment_input import build_input  # noqa: E402

PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
SEED = os.path.normpath(os.path.join(REPO, "..", "shared", "seed-data",
                                     "TrannXuanTien__ETL-streaming-project"))
JOBS_CSV = os.path.join(REPO, "examples", "data", "job.csv")
KEY = list(rr.EVENTS_KEY)


def dead_letters(server, database):
    """Counts the dead letters in the database's `_sluice_dead_letters` (where they go by
    default), each distinct by its key, and checks every payload is JSON text."""
    rows = server.run("SELECT `source`, `partition`, `offset`, `seq`, `payload` FROM "
                      "_sluice_dead_letters", database)[1:]
    keys = {tuple(r[:4]) for r in rows}
    for r in rows:
        json.loads(r[4])
    return len(keys) if len(keys) == len(rows) else -len(rows)


def pipeline_copy(tmp, interval):
    with open(PIPELINE, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r'(?m)^checkpoint_interval\s*=\s*"[^"]*"',
                      f'checkpoint_interval = "{interval}"', text)
    if n != 1:
        raise RuntimeError(f"{PIPELINE}: cannot find checkpoint_interval to override")
    path = os.path.join(tmp, f"recruitment-{interval}.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Test(harness.Checks):
    def __init__(self, args, server, tmp):
        self.args, self.server, self.tmp = args, server, tmp
        harness.Checks.__init__(self)
        self.runs = 0
        self.databases = []

    def database(self, name):
        db = f"sluice_e2e_{os.getpid()}_{name}"
        self.server.run(f"DROP DATABASE IF EXISTS `{db}`; "
                        f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        self.databases.append(db)
        return db

    def start(self, tracking, jobs, db, pipeline=PIPELINE):
        self.runs += 1
        log = os.path.join(self.tmp, f"run-{self.runs:03d}.log")
        cmd = [self.args.sluice, "run", pipeline, "--var", f"TRACKING={tracking}",
               "--var", f"JOBS={jobs}", "--var", f"SINK={self.server.uri(db)}"]
        f = open(log, "wb")
        p = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        p.log_file, p.log_path = f, log
        return p

    @staticmethod
    def wait(p, timeout):
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "timeout"
        p.log_file.close()
        return rc

    @staticmethod
    def log_text(p):
        with open(p.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def tail(self, p, n=12):
        return "\n".join("      | " + ln for ln in self.log_text(p).strip().splitlines()[-n:])

    def run(self, tracking, jobs, db, pipeline=PIPELINE):
        p = self.start(tracking, jobs, db, pipeline)
        rc = self.wait(p, self.args.run_timeout)
        return rc, p

    def compare(self, db, expected_db, label):
        out = os.path.join(self.tmp, f"{db}.events.csv")
        dump_csv(self.server, db, "events", out)
        return [f"{label}: {d}" for d in compare_tables.compare(out, expected_db, KEY, "events",
                                                                 "events")]

    def committed(self, db, source="tracking"):
        try:
            # Partitions from 2^30 up hold the file's identity, not positions.
            rows = self.server.run(f"SELECT SUM(`offset`) FROM _sluice_positions WHERE "
                                   f"source = '{source}' AND `partition` < 1073741824", db)
            return int(rows[1][0]) if rows[1][0] is not None else None
        except (RuntimeError, IndexError, ValueError):
            return None

    # -------------------------------------------------------------------------------------
    def seed_checks(self):
        tracking = os.path.join(SEED, "tracking.csv")
        expected = os.path.join(self.tmp, "seed-recompute.db")
        stats = rr.recompute(tracking, JOBS_CSV, expected, "file")
        db = self.database("seed")

        rc, p = self.run(tracking, JOBS_CSV, db)
        problems = [] if rc == 0 else [f"run exited {rc}\n{self.tail(p)}"]
        if not problems:
            problems += self.compare(db, expected, "MySQL events vs recompute")
            n = dead_letters(self.server, db)
            if n != stats["dead_lettered"]:
                problems.append(f"dead letters: {n}, recompute: {stats['dead_lettered']}")
            pos = self.committed(db)
            if pos != os.path.getsize(tracking):
                problems.append(f"committed position {pos}, file size {os.path.getsize(tracking)}")
        self.result(f"seed tracking.csv -> MySQL events == recompute ({stats['rows']} rows)",
                    problems)
        if problems:
            return

        rows = self.server.run(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
            "DATABASE() AND TABLE_NAME = 'events' AND COLUMN_NAME IN ('dates', 'hours', "
            "'bid_set', 'latest_update_time') ORDER BY ORDINAL_POSITION", db)
        got = {r[0]: r[1] for r in rows[1:]}
        want = {"dates": "date", "hours": "tinyint", "bid_set": "decimal(10,2)",
                "latest_update_time": "datetime"}
        problems = [f"{c}: {got.get(c)}, want {t}" for c, t in want.items()
                    if not (got.get(c) or "").startswith(t)]
        self.result("column types DATE / TINYINT / DECIMAL(10,2) / DATETIME", problems)

        before = os.path.join(self.tmp, "before-rerun.csv")
        dump_csv(self.server, db, "events", before)
        rc, p = self.run(tracking, JOBS_CSV, db)
        problems = [] if rc == 0 else [f"second run exited {rc}\n{self.tail(p)}"]
        if not problems:
            # It found the first run's positions in the sink and read nothing again.
            log = self.log_text(p)
            if not re.search(r"[1-9][0-9]* committed position", log) or \
                    not re.search(r"\b0 records in", log):
                problems.append("the second run did not resume from committed positions:\n" +
                                self.tail(p))
            after = os.path.join(self.tmp, "after-rerun.csv")
            dump_csv(self.server, db, "events", after)
            problems += [f"after the second run: {d}" for d in
                         compare_tables.compare(after, before, KEY)]
            problems += self.compare(db, expected, "after the second run vs recompute")
        self.result("second run over the same input resumes and changes nothing", problems)

        # The job dimension from MySQL, with NULL where the CSV has no company_id.
        jdb = self.database("dim")
        values = []
        with open(JOBS_CSV, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter=rr.sniff_delimiter(JOBS_CSV))
            for row in reader:
                job_id = (row.get("id") or "").strip()
                company = (row.get("company_id") or "").strip()
                if not re.fullmatch(r"[+-]?[0-9]+", job_id):
                    continue
                company = int(company) if re.fullmatch(r"[+-]?[0-9]+", company) else "NULL"
                values.append(f"({int(job_id)}, {company})")
        self.server.run("CREATE TABLE job (id BIGINT PRIMARY KEY, company_id BIGINT NULL, "
                        "note VARCHAR(20) DEFAULT 'x'); INSERT INTO job (id, company_id) VALUES " +
                        ", ".join(values) + " ON DUPLICATE KEY UPDATE company_id = "
                        "VALUES(company_id)", jdb)
        rc, p = self.run(tracking, self.server.uri(jdb, "job"), jdb)
        problems = [] if rc == 0 else [f"run exited {rc}\n{self.tail(p)}"]
        if not problems:
            if not re.search(r"dimension job: [0-9]+ keys from .*/job", self.log_text(p)):
                problems.append("no 'dimension job: N keys from ...' line:\n" + self.tail(p))
            problems += self.compare(jdb, expected, "JOBS from MySQL: events vs recompute")
        self.result(f"job dimension from a MySQL table ({len(values)} jobs) gives the same table",
                    problems)

    def kill_checks(self):
        big = os.path.join(self.tmp, "tracking-big.csv")
        n = build_input(os.path.join(SEED, "tracking.csv"), self.args.copies, big)
        expected = os.path.join(self.tmp, "big-recompute.db")
        stats = rr.recompute(big, JOBS_CSV, expected, "file")
        pipeline = pipeline_copy(self.tmp, "50ms")
        print(f"     input: {n} records, {os.path.getsize(big)} bytes; recompute: "
              f"{stats['rows']} rows, {stats['dead_lettered']} dead letters", flush=True)

        a = self.database("clean")
        t = time.monotonic()
        rc, p = self.run(big, JOBS_CSV, a, pipeline)
        secs = time.monotonic() - t
        problems = [] if rc == 0 else [f"run exited {rc}\n{self.tail(p)}"]
        if not problems:
            problems += self.compare(a, expected, "uninterrupted vs recompute")
        self.result(f"larger input, 50 ms checkpoints: uninterrupted run == recompute "
                    f"({secs:.2f}s)", problems)
        if problems:
            return

        # Cycles on fresh databases: up to two kills at random moments within the time an
        # uninterrupted run takes (a restarted run has less to do and may finish first), then a
        # restart that must exit 0.
        rng = random.Random(self.args.seed)
        problems, notes, landed = [], [], 0
        for cycle in range(1, self.args.kills + 1):
            # A run can end before its kill (a fast, idle machine): the cycle starts again on a
            # fresh database with earlier kills, at most three times.
            scale = 1.0
            for attempt in range(3):
                b = self.database(f"killed{cycle}" + (f"_{attempt}" if attempt else ""))
                finished = False
                for _ in range(2):
                    # Early kills would mostly hit start-up (loading the dimension, connecting).
                    delay = rng.uniform(0.3 * secs, 0.9 * secs) * scale
                    p = self.start(big, JOBS_CSV, b, pipeline)
                    try:
                        rc = p.wait(timeout=delay)
                    except subprocess.TimeoutExpired:
                        rc = None
                    if rc is not None:
                        p.log_file.close()
                        if rc != 0:
                            problems.append(f"cycle {cycle}: run exited {rc} before the kill\n"
                                            f"{self.tail(p)}")
                        else:
                            notes.append(f"cycle {cycle}: a run finished before its kill at "
                                         f"{delay:.2f}s")
                        finished = True
                        break
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
                    p.log_file.close()
                    landed += 1
                    print(f"     cycle {cycle}: kill -9 after {delay:.2f}s, committed position "
                          f"{self.committed(b)} of {os.path.getsize(big)}", flush=True)
                if not finished or problems:
                    break
                scale *= 0.5
            rc, p = self.run(big, JOBS_CSV, b, pipeline)
            if rc != 0:
                problems.append(f"cycle {cycle}: restart exited {rc}\n{self.tail(p)}")
                continue
            problems += self.compare(b, expected,
                                     f"cycle {cycle}: killed and restarted vs recompute")
            n = dead_letters(self.server, b)
            if n != stats["dead_lettered"]:
                problems.append(f"cycle {cycle}: dead letters: {n}, recompute: "
                                f"{stats['dead_lettered']}")
        if landed < self.args.kills:
            problems.append(f"only {landed} kills landed mid-run (want at least {self.args.kills})")
        self.result(f"kill -9 x {landed} in {self.args.kills} cycles + restart == recompute",
                    problems, notes)

    def cleanup(self):
        if self.args.keep:
            print(f"kept databases {', '.join(self.databases)} and {self.tmp}")
            return
        for db in self.databases:
            try:
                self.server.run(f"DROP DATABASE IF EXISTS `{db}`")
            except RuntimeError as e:
                print(f"note: could not drop {db}: {e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True, help="the sluice binary")
    ap.add_argument("--server", default=harness.MYSQL_URI,
                    help="default: harness.MYSQL_URI (SLUICE_TEST_MYSQL overrides it)")
    ap.add_argument("--copies", type=int, default=30, help="seed copies in the larger input")
    ap.add_argument("--kills", type=int, default=3,
                    help="kill cycles (up to two kill -9s each); at least this many must land")
    ap.add_argument("--seed", type=int, default=7, help="RNG seed for the kill delays")
    ap.add_argument("--run-timeout", type=float, default=120, help="seconds per sluice run")
    ap.add_argument("--keep", action="store_true", help="keep the databases and temp files")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)

    server = Server(args.server)
    why = server.reachable()
    if why is None and not os.path.exists(os.path.join(SEED, "tracking.csv")):
        why = f"seed data not found at {SEED}"
    if why:
        return harness.Checks().missing(why + "; start it with `make services`")

    tmp = tempfile.mkdtemp(prefix="sluice_mysql_e2e_")
    t = Test(args, server, tmp)
    try:
        t.seed_checks()
        t.kill_checks()
    finally:
        t.cleanup()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
