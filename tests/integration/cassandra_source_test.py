#!/usr/bin/env python3
"""The Cassandra raw store read incrementally by the recruitment pipeline, in both layouts, with
null cells (tombstones) in every row the way the usual loaders write blanks.

    cassandra_source_test.py --sluice build/sluice [--only single,bucket,give_up] [--rows N] [--keep]

Needs Cassandra (127.0.0.1:9042 of `make services`) and the Python cassandra-driver (run with
the project venv's python). Without them a loud SKIP (exit 77), a FAIL when CI=true. Keyspaces
are named cass_src_<pid>_<time> and dropped at the end.

The rows are the seed tracking log, repeated until --rows (default 30,000: more than 100,000
null cells among the pipeline's fields, the server's default tombstone_failure_threshold, so
one read over the whole table fails). Copy c of seed row i keeps the row's values and the clock
sequence and node of its create_time, with the time moved c * 200 days later: times stay
unique, and the copies leave gaps of months between them. The same rows are written to a CSV
file, which tests/tools/recompute_recruitment.py turns into the expected `events` table:
nothing expected comes from sluice.

Scenarios:
  single   PRIMARY KEY (create_time), the seeds' layout, read by scanning the table in bounded
           pages: a run with small reads killed (-9) after its first commit, then a run to the
           end (--until-caught-up, exit 0): events == recomputation; a re-run changes nothing.
  bucket   PRIMARY KEY ((day), create_time), day = the create_time's UTC date as text, read
           bucket by bucket (bucket=day, bucket_width=1d, bucket_format=%Y-%m-%d): the same
           kill and restart, events == recomputation; the log shows the month-long gaps are
           skipped; a re-run changes nothing.
  give_up  reads that keep failing (consistency=two on a one-node cluster: every read is
           refused as unavailable) under --until-caught-up: exit 1 within give_up_after plus a
           margin, with the server's message.
"""

import argparse
import csv
import datetime as dt
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import cassandra_util  # noqa: E402
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

HOST, PORT = harness.CASSANDRA.host, harness.CASSANDRA.port
RECRUITMENT = os.path.join(REPO, "examples", "recruitment.toml")
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
SEED_TRACKING = harness.SEED_TRACKING
INTS = {"bid", "campaign_id", "cd", "ev", "group_id", "job_id", "publisher_id", "tz", "v"}
KEY = ["job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id"]
TICKS_PER_DAY = 864_000_000_000  # 100-ns ticks
GREGORIAN = dt.datetime(1582, 10, 15, tzinfo=dt.timezone.utc)


def session():
    return cassandra_util.session(timeout=120)


def shifted(u, copy, days=200):
    """The TimeUUID `u` moved copy * days later (same clock sequence and node)."""
    if copy == 0:
        return u
    ticks = u.time + copy * days * TICKS_PER_DAY
    return uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF,
                             ((ticks >> 48) & 0x0FFF) | 0x1000, u.clock_seq_hi_variant,
                             u.clock_seq_low, u.node))


def day_of(u):
    return (GREGORIAN + dt.timedelta(microseconds=u.time // 10)).strftime("%Y-%m-%d")


def seed_rows():
    """Returns (header, rows) of the seed tracking log, as dicts of CSV text."""
    with open(SEED_TRACKING, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def gen_rows(seed, n, days=200):
    """Yields n rows: the seed rows repeated, copy c moved c * days later."""
    for k in range(n):
        copy, r = divmod(k, len(seed))
        row = dict(seed[r])
        row["create_time"] = str(shifted(uuid.UUID(row["create_time"]), copy, days))
        yield row


def make_rows(n):
    """Returns (header, rows as dicts of CSV text) — the seed rows repeated to n rows."""
    header, seed = seed_rows()
    return header, list(gen_rows(seed, n))


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def create_table(s, ks, table, header, bucketed):
    """Creates ks.table for the tracking rows, keyed by create_time or by (day, create_time),
    and returns the prepared INSERT (columns: day first when bucketed, then `header`)."""
    cols = ", ".join(f"{c} {'timeuuid' if c == 'create_time' else 'int' if c in INTS else 'text'}"
                     for c in header)
    if bucketed:
        s.execute(f"CREATE TABLE {ks}.{table} (day text, {cols}, "
                  "PRIMARY KEY ((day), create_time))")
        names = ["day", *header]
    else:
        s.execute(f"CREATE TABLE {ks}.{table} ({cols}, PRIMARY KEY (create_time))")
        names = list(header)
    return s.prepare(f"INSERT INTO {ks}.{table} ({', '.join(names)}) "
                     f"VALUES ({', '.join('?' for _ in names)})")


def load(s, ks, tables, header, rows, concurrency=64, progress=None, batch_rows=1):
    """Creates the tables [(name, bucketed)] and inserts `rows` (any iterable) into each, blanks
    as null (a tombstone each). With batch_rows > 1, rows go in unlogged batches of up to that
    many (of one day in a bucketed table; any rows otherwise, which a one-node cluster applies
    locally). Returns (rows inserted, seconds spent inserting)."""
    from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args  # noqa: PLC0415
    from cassandra.query import BatchStatement, BatchType  # noqa: PLC0415
    inserts = [(create_table(s, ks, t, header, b), b) for t, b in tables]
    at = header.index("create_time")

    def value(c, v):
        if v == "":
            return None
        if c == "create_time":
            return uuid.UUID(v)
        return int(v) if c in INTS else v

    def check(results):
        for ok, res in results:
            if not ok:
                raise RuntimeError(f"insert failed: {res}")

    def flush(chunk):
        for insert, bucketed in inserts:
            params = [(day_of(t[at]), *t) if bucketed else t for t in chunk]
            if batch_rows <= 1:
                check(execute_concurrent_with_args(s, insert, params, concurrency=concurrency,
                                                   raise_on_first_error=False))
                continue
            groups = {}
            for p in params:
                groups.setdefault(p[0] if bucketed else 0, []).append(p)
            statements = []
            for group in groups.values():
                for i in range(0, len(group), batch_rows):
                    b = BatchStatement(batch_type=BatchType.UNLOGGED)
                    for p in group[i:i + batch_rows]:
                        b.add(insert, p)
                    statements.append((b, ()))
            check(execute_concurrent(s, statements, concurrency=concurrency,
                                     raise_on_first_error=False))

    start, n, chunk = time.time(), 0, []
    for r in rows:
        chunk.append(tuple(value(c, r[c]) for c in header))
        if len(chunk) == 20000:
            flush(chunk)
            n += len(chunk)
            chunk = []
            if progress:
                progress(n, time.time() - start)
    flush(chunk)
    n += len(chunk)
    return n, time.time() - start


def count_rows(s, ks, table):
    return s.execute(f"SELECT count(*) FROM {ks}.{table}", timeout=300).one()[0]


def committed(db):
    """The committed positions in the SQLite sink (empty before the first commit)."""
    if not os.path.exists(db):
        return []
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT partition, offset FROM _sluice_positions").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


class Test(harness.Checks):
    def __init__(self, args):
        self.args = args
        self.sluice = os.path.abspath(args.sluice)
        self.tmp = tempfile.mkdtemp(prefix="sluice-cassandra-source-")
        self.ks = args.keyspace or f"cass_src_{os.getpid()}_{int(time.time()) % 100000}"
        harness.Checks.__init__(self)
        self.cluster = self.session = None
        self.rows = self.header = None
        self.expected = None

    def cmd(self, uri, db, *extra, pipeline=RECRUITMENT):
        return [self.sluice, "run", pipeline, "--until-caught-up", "--var", f"TRACKING={uri}",
                "--var", f"SINK=sqlite:{db}", "--var", f"JOBS={JOBS}",
                "--var", f"DLQ={db}.dlq", *extra]

    def run(self, cmd, log, timeout):
        with open(log, "wb") as f:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        with open(log, encoding="utf-8", errors="replace") as f:
            return p.returncode, f.read()

    def prepare(self):
        self.session.execute(f"DROP KEYSPACE IF EXISTS {self.ks}", timeout=120)
        self.header, self.rows = make_rows(self.args.rows)
        csv_path = os.path.join(self.tmp, "tracking.csv")
        write_csv(csv_path, self.header, self.rows)
        self.expected = os.path.join(self.tmp, "expected.db")
        rr.recompute(csv_path, JOBS, self.expected, "cassandra")
        nulls = sum(1 for r in self.rows for c in ("ts", "custom_track", "job_id", "bid",
                                                   "publisher_id", "campaign_id", "group_id")
                    if r[c] == "")
        print(f"     {len(self.rows)} rows, {nulls} null cells among the pipeline's fields",
              flush=True)
        self.session.execute(f"CREATE KEYSPACE {self.ks} WITH replication = "
                             "{'class': 'SimpleStrategy', 'replication_factor': 1}")

    def killed_then_finished(self, name, table, uri, slow):
        """Loads the table, runs the pipeline with the option `slow` (small reads, so that it
        is still running), kills it -9 after its first commit, runs it again to the end with
        `uri`, compares with the recomputation, and re-runs it."""
        _, secs = load(self.session, self.ks, [(table, name == "bucket")], self.header,
                       self.rows)
        n = count_rows(self.session, self.ks, table)
        if n != len(self.rows):
            self.result(f"{name}: load", [f"{n} rows in the table, {len(self.rows)} inserted"])
            return
        print(f"     {name}: loaded {n} rows in {secs:.1f}s", flush=True)
        db = os.path.join(self.tmp, f"{name}.db")
        cmd = self.cmd(uri, db)
        problems = []
        # The killed run checkpoints every 50 ms, so its first commit comes long before its
        # small reads could reach the end of the table, however fast the machine is.
        with open(RECRUITMENT, encoding="utf-8") as f:
            text = f.read()
        often = re.sub(r'(?m)^checkpoint_interval = ".*"$', 'checkpoint_interval = "50ms"', text, count=1)
        if often == text:
            raise RuntimeError(f"{RECRUITMENT} sets no checkpoint_interval to shorten")
        fast_pipe = os.path.join(self.tmp, f"{name}-often.toml")
        with open(fast_pipe, "w", encoding="utf-8") as f:
            f.write(often)
        with open(os.path.join(self.tmp, f"{name}.1.log"), "wb") as log:
            p = subprocess.Popen(self.cmd(uri + "&" + slow, db, pipeline=fast_pipe), stdout=log,
                                 stderr=subprocess.STDOUT)
            deadline = time.time() + 120
            while time.time() < deadline and p.poll() is None and not committed(db):
                time.sleep(0.05)
            first = committed(db)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            rc1 = p.wait()
        if not first:
            problems.append("the first run committed nothing within 120 s")
        elif rc1 != -signal.SIGKILL:
            problems.append(f"the first run ended (exit {rc1}) before it was killed: make its "
                            f"reads smaller than {slow}")
        rc, out = self.run(cmd, os.path.join(self.tmp, f"{name}.2.log"), timeout=600)
        if rc != 0:
            problems.append(f"the second run exited {rc}:\n{out[-2500:]}")
        else:
            problems += compare_tables.compare(db, self.expected, KEY)
        self.result(f"{name}: killed after its first commit, then run to the end: events == "
                    "recompute_recruitment.py", problems)
        if problems:
            return None
        before = compare_tables.load(db, "events")
        rc, out3 = self.run(cmd, os.path.join(self.tmp, f"{name}.3.log"), timeout=300)
        after = compare_tables.load(db, "events")
        problems = [] if rc == 0 else [f"the re-run exited {rc}:\n{out3[-2000:]}"]
        if before.rows != after.rows:
            problems.append("the re-run changed the events table")
        self.result(f"{name}: a re-run reads nothing new and changes nothing", problems)
        return out

    def scenario_single(self):
        uri = (f"cassandra://{HOST}:{PORT}/{self.ks}/tracking_single?order_by=create_time"
               f"&page_rows={self.args.page_rows}")
        out = self.killed_then_finished("single", "tracking_single", uri, "page_rows=300")
        if out is not None:
            problems = []
            if "scans the whole table" not in out:
                problems.append("no warning that each poll scans the whole table")
            self.result("single: the log warns that the layout costs a table scan per poll",
                        problems)

    def scenario_bucket(self):
        uri = (f"cassandra://{HOST}:{PORT}/{self.ks}/tracking_bucket?order_by=create_time"
               f"&bucket=day&bucket_width=1d&bucket_format=%Y-%m-%d")
        out = self.killed_then_finished("bucket", "tracking_bucket", uri, "fetch_size=16")
        if out is not None:
            problems = []
            if "scans the whole table" in out:
                problems.append("the bucket layout warns about table scans")
            if "skipping empty buckets" not in out:
                problems.append("no log line shows the gaps between buckets being skipped")
            self.result("bucket: read bucket by bucket, gaps skipped, no table-scan warning",
                        problems)

    def scenario_give_up(self):
        table = "tracking_give_up"
        self.session.execute(f"CREATE TABLE {self.ks}.{table} (create_time timeuuid PRIMARY KEY, "
                             "ts text, custom_track text, job_id int, bid int, publisher_id int, "
                             "campaign_id int, group_id int)")
        self.session.execute(f"INSERT INTO {self.ks}.{table} (create_time, custom_track, job_id) "
                             "VALUES (now(), 'click', 1)")
        db = os.path.join(self.tmp, "give_up.db")
        uri = (f"cassandra://{HOST}:{PORT}/{self.ks}/{table}?order_by=create_time"
               "&consistency=two&give_up_after=3s")
        start = time.time()
        problems = []
        try:
            rc, out = self.run(self.cmd(uri, db), os.path.join(self.tmp, "give_up.log"),
                               timeout=60)
        except subprocess.TimeoutExpired:
            rc, out = None, ""
            problems.append("still running after 60 s: failing reads are retried forever")
        took = time.time() - start
        if rc is not None:
            if rc != 1:
                problems.append(f"exit {rc}, want 1:\n{out[-1500:]}")
            if "consistency level TWO" not in out:
                problems.append(f"the server's message is not in the output:\n{out[-1500:]}")
            if "give_up_after" not in out:
                problems.append(f"the message does not name give_up_after:\n{out[-1500:]}")
            if took > 30:
                problems.append(f"took {took:.0f}s to give up after 3s of failures")
        self.result("give_up: reads failing for give_up_after end --until-caught-up with exit 1 "
                    "and the server's message", problems)

    def main(self):
        if not os.path.exists(SEED_TRACKING):
            raise harness.Missing(f"seed tracking log missing: {SEED_TRACKING}")
        self.cluster, self.session = session()
        only = set(self.args.only.split(",")) if self.args.only else None
        if only is None or only & {"single", "bucket"}:
            self.prepare()
        else:
            self.session.execute(f"DROP KEYSPACE IF EXISTS {self.ks}", timeout=120)
            self.session.execute(f"CREATE KEYSPACE {self.ks} WITH replication = "
                                 "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        for name in ("single", "bucket", "give_up"):
            if only and name not in only:
                continue
            try:
                getattr(self, "scenario_" + name)()
            except Exception as e:  # one broken scenario must not hide the others
                import traceback  # noqa: PLC0415
                self.result(f"{name}: unexpected error",
                            [f"{type(e).__name__}: {e}", traceback.format_exc()[-1500:]])

    def cleanup(self):
        if self.args.keep:
            print(f"kept {self.tmp} and keyspace {self.ks}")
            return
        if self.session is not None:
            try:
                self.session.execute(f"DROP KEYSPACE IF EXISTS {self.ks}", timeout=120)
            except Exception:  # noqa: BLE001 - best effort
                pass
        if self.cluster is not None:
            self.cluster.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    global SEED_TRACKING  # noqa: PLW0603 - read by seed_rows()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default="", help="comma-separated scenarios")
    ap.add_argument("--rows", type=int, default=30000)
    ap.add_argument("--keyspace", default="", help="(dropped and) created for the test")
    ap.add_argument("--seed-tracking", default=SEED_TRACKING,
                    help="the seed tracking.csv (default: <repo>/../shared/seed-data/...)")
    ap.add_argument("--page-rows", type=int, default=2000, help="page_rows of the scan layout")
    ap.add_argument("--keep", action="store_true", help="keep the keyspace and files")
    args = ap.parse_args()
    SEED_TRACKING = args.seed_tracking
    t = Test(args)
    return t.run_main(t.main, t.cleanup)


if __name__ == "__main__":
    sys.exit(main())
