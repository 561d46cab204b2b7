#!/usr/bin/env python3
"""Scale-out of an append-mode pipeline over several processes of one consumer group, with
`[source] keyed_by` (issue 16, "Tests"): each window written exactly once, with the same values
whoever reads which partition.

    scale_out_append_test.py --sluice build/sluice [--sink sqlite|mysql|parquet|cassandra]
                             [--only a,b,c,d]
                             [--repartition] [--seed N] [--per-partition 5000]
                             [--storm-seconds 30] [--extra-campaigns N] [--keep]

Pipeline: tests/integration/scale_out_viewlog.toml, the viewlog pipeline (examples/viewlog.toml)
in append mode with allowed_lateness 30s, watermark_delay 10s, idle_timeout 1h (no partition
ever counts as idle) and `keyed_by = ["campaign_id"]`, into the sink's table `events` (dead
letters in the sink). --sink parquet replaces the [sink] section by a Parquet dataset
partitioned by network_id and minute_timestamp (as examples/viewlog.toml), read back with
pyarrow (the project venv's interpreter; ctest scale_out_append_parquet).

Input (seeded, written here, produced once with kcat -p to each of the 8 partitions of a fresh
topic scaleview_<run>_views, in batches of 100, keyed by campaign_id): campaigns 1-40 (network
1 + c % 5) and 88 (no network) are in the test's campaigns CSV, 77 is not; campaign c always goes
to partition c % 8 (what keyed_by promises). Per partition, start times run over 30 minutes
(partition p 7p s later), each record up to 8 s behind the partition's running time (out of
order, never late); 2% are 15-150 s behind (late or not, by the rule below); about 4% are
invalid (not JSON, campaign_id "abc", a blank view_id, no end_timestamp, no campaign_id, an
unparseable start, the end before the start, campaign 77 unknown, 88 without a network).
Durations are multiples of 1/8 s, so every sum (and so avg_duration) is exact in binary
floating point whatever the order of the additions: tables are compared exactly.

Expected results: an independent recomputation from the records read back from the topic
(kcat -f '%p %o %s'), per partition in offset order, with tests/tools/recompute_viewlog.py's
decoding and checks (its --by-partition mode): a record is late iff its window's end plus
allowed_lateness is at or before its own partition's watermark (the highest start time of the
partition's records aggregated before it, minus watermark_delay); a window is written iff its
end plus allowed_lateness is at or before the minimum of all partitions' final watermarks (the
others stay open in the tasks' state). Checks: the sink's table has exactly one row per
(network_id, minute_timestamp, campaign_id), equal to the recomputation; each of those rows was
written by exactly one committed transaction (SQL sinks: triggers on `events` count the
inserts and upserts into a table of the test's, in the sink's transaction; a rolled-back commit
counts nothing; Parquet: every row is in one file); the dead letters are exactly the
recomputation's, as a set of (partition, offset, reason) with no duplicates; committed
positions never went back.

Scenarios (all on the one topic; each with its own consumer group, pipeline name and sink):
 a  3 processes with a slow consumer: A starts; B joins; C joins; B is killed with -9 0.2-2 s
    (seeded) after a commit of its own (its positions moved, watched in the sink); C is killed
    the same way; B rejoins; A leaves with SIGTERM; B after a commit with SIGTERM; then a
    scheduler-style `--until-caught-up` run (unthrottled) finishes (exit 0). Checks above, and
    that claims handed over open windows (the task state moved between processes).
 b  differential: the same topic through 1 process (--until-caught-up, unthrottled) into a
    fresh sink: the table equals scenario a's row for row and the recomputation.
 c  rebalance storm: 2 processes read throttled (half as fast as in a) while a third joins and
    leaves every 2-5 s (seeded; SIGTERM, every third time kill -9) for --storm-seconds; then the
    two go on until every window the final watermarks close is written, and are stopped with
    SIGTERM: checks above, exits 0.
 d  a scheduler's batches: a fresh topic scaleview_<run>_batches gets the first half of each
    partition's records (another seed, half as many); two throttled --until-caught-up runs start
    at once and must both exit 0; then the second half is produced and two more run. After each
    pair: checks above against the recomputation of what the topic held then (windows the first
    pair wrote are written once; their records in the second half are late).

--repartition (ctests scale_out_repartition_*): the same pipeline WITHOUT its keyed_by line, over
a topic whose producers do not key by the group key: every record keyed by its view id, every
campaign (and 77, 88) in every partition (checked on what the broker holds). `sluice run` then
repartitions: in every process stage one reads the source's partitions (its positions, task
records and watermarks in the Kafka topic <pipeline>-repartition.sluice-positions) and writes
partials and watermark records to <pipeline>-repartition; stage two merges them and writes each
window once into the sink with stage one's dead letters. The same scenarios and checks, with
the same recomputation (the rule is per source partition, whoever reads it); the committed
positions the scenarios watch ("a commit of its own", "every record committed", "never went
back") are stage one's, read back with kcat; the status check reads stage one's task records
(every partition at its end, released, its watermark the recomputation's) and wants stage
two's tasks in an SQL sink released. Scenario a also kills -9 a fourth process D 0.5-3 s after
its start (a member that dies while joining the groups and claiming) and measures how long stage
one's committed positions stood still after each kill -9 (a process killed in a commit holds
the positions topic's last stable offset until its transaction times out): over STALL_LIMIT is
a failure. Defaults then: 2,500 records per partition, one batch per partition per 2 s
(scenario c: per 1 s; d: per 0.67 s). --extra-campaigns N (with --repartition) sends 90% of the
records to one of N more campaigns (1001.., in the CSV): many groups, so stage two's task states
grow (N = 8000 with 5,000 records a partition: 24-31 KB a task, past the Cassandra sink's 16 KiB
inline limit, so written in chunks; the Cassandra check says how many task rows name chunks).

--sink mysql runs the same against MariaDB (127.0.0.1:3306, root; a fresh database
scaleview_<run>_<scenario> each). A sink that wrote no _sluice_tasks rows fails (its state must
be per partition).

--sink cassandra (the project venv's interpreter, for cassandra-driver; ctest
scale_out_repartition_cassandra) runs the same into the Cassandra of `make services`
(127.0.0.1:9042; SLUICE_TEST_CASSANDRA), the pipeline file's own [sink] with
SINK=cassandra://HOST:PORT/scaleview_<run>_<scenario>: a keyspace of its own per scenario,
made by the sink, dropped at the end unless --keep. Read back with the driver: `events`, the
dead letters from `_sluice_dead_letters`, positions and owners from `_sluice_tasks` (with
--repartition stage two's tasks, which must all be released). What cannot be checked there:
Cassandra has no triggers and the sink's rows are upserts by primary key, so the table cannot
show which window was written twice (a second write of the same values leaves the same row).
Instead the node's own count of mutations of `events` (system_views.local_write_latency; each
row is a partition of its own, and an unlogged batch of one partition counts once) must equal
the number of windows written: more is a window written more than once, fewer cannot be with
the rows right. That count says how many extra writes there were, not which windows; it is
exact only on a single node with a fresh keyspace (with more nodes the check is skipped and
says so), and after a kill -9 it may legitimately exceed the windows — the sink is exactly
once by idempotence, so rows written before a commit that never landed are written again by
the next owner (same values, checked) — so in scenarios with a kill -9 (a, c) an excess is
reported in the log, not a failure. Shown able to fail (scenario b, by hand): one window
upserted again with the same values (the count), one with another total_count (the rows), one
dead letter deleted, one stage-two task given an owner — each reported; with stage two's claim
dropping the task's open windows (runner.cc, by hand) scenario a fails on the rows and the count.

Needs the broker of `make services` (127.0.0.1:9092; SLUICE_TEST_KAFKA) and kcat (and for
--sink mysql MariaDB and its client, for --sink parquet pyarrow, for --sink cassandra
Cassandra and cassandra-driver): without them a loud SKIP
(exit 77), a FAIL when CI=true. Prints PASS/FAIL per check; exit 1 on any failure.
"""

import argparse
import datetime as dt
import glob
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import dead_letters  # noqa: E402
import harness  # noqa: E402
import mysql_client  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
import scale_out  # noqa: E402
from harness import BROKER  # noqa: E402
from kafka_util import create_topic, delete_topics, end_offsets, ensure_kcat, kafka_missing  # noqa: E402

PIPELINE = os.path.join(HERE, "scale_out_viewlog.toml")
PARTITIONS = 8
SOURCE = "views"
IDENTITY_BASE = 1 << 30           # position partitions from here up are not Kafka partitions
T0 = dt.datetime(2026, 2, 1, 6, 0, 0)
SPAN = dt.timedelta(minutes=30)   # start times of a partition's records
LATENESS = 30.0                   # allowed_lateness of the pipeline file, seconds
DELAY = 10.0                      # watermark_delay, seconds
CAMPAIGNS = list(range(1, 41))    # in the CSV, each with a network
EXTRA_BASE = 1001                 # --extra-campaigns N: campaigns 1001..1000+N, in the CSV too
NO_NETWORK = 88                   # in the CSV with a blank network_id
UNKNOWN = 77                      # not in the CSV
BATCH = 100                       # records per producer batch (the throttled fetch unit)
KEY = list(rv.KEY)
KEYED_BY = 'keyed_by = ["campaign_id"]\n'
STALL_LIMIT = 40.0                # --repartition: longest stand-still of stage one after a kill -9
CLAIM_WINDOWS = re.compile(r"task claimed \(fence \d+\): \d+ held record\(s\), (\d+) open window")


def network(c):
    return 1 + c % 5


def partition_of(c):
    return c % PARTITIONS


# ------------------------------------------------------------------------------ input

def iso(t, rng):
    """A start or end time as the producers write it: mostly UTC with Z, some without a zone,
    some in +01:00 (the same instant)."""
    r = rng.random()
    if r < 0.7:
        s = t.strftime("%Y-%m-%dT%H:%M:%S")
        frac = t.microsecond
        return s + (f".{frac:06d}".rstrip("0") if frac else "") + "Z"
    if r < 0.85:
        return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "")
    return (t + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{t.microsecond:06d}" if t.microsecond else "") + "+01:00"


def make_records(rng, per_partition, spread=False, extra=0):
    """{partition: [(key, payload text), ...]} in produce order (see the module docstring).
    spread (--repartition): every campaign in every partition, each record keyed by its view id
    (producers that do not key by the group key). extra (--repartition only): 90% of the records
    go to one of campaigns EXTRA_BASE.. instead (many groups: large task states)."""
    more = list(range(EXTRA_BASE, EXTRA_BASE + extra))
    out = {p: [] for p in range(PARTITIONS)}
    n = 0
    for p in range(PARTITIONS):
        mine = [c for c in CAMPAIGNS if spread or partition_of(c) == p]
        specials = [c for c in (NO_NETWORK, UNKNOWN) if spread or partition_of(c) == p]
        for i in range(per_partition):
            n += 1
            base = T0 + dt.timedelta(seconds=7 * p) + (i / per_partition) * SPAN
            campaign = rng.choice(more if more and rng.random() < 0.9 else mine)
            start = base - dt.timedelta(seconds=rng.randint(0, 8), milliseconds=125 * rng.randint(0, 7))
            r = rng.random()
            if r < 0.02:
                start = base - dt.timedelta(seconds=rng.randint(15, 150))  # late or not
            end = start + dt.timedelta(milliseconds=125 * rng.randint(0, 4800))
            obj = {"view_id": f"v{p}-{i}", "start_timestamp": iso(start, rng),
                   "end_timestamp": iso(end, rng), "campaign_id": campaign}
            if 0.02 <= r < 0.045:
                kind = rng.randrange(9)
                if kind == 0:
                    out[p].append((f"v{p}-{i}" if spread else str(campaign), f"not JSON {n}"))
                    continue
                if kind == 1:
                    obj["campaign_id"] = "abc"                  # decode
                elif kind == 2:
                    obj["view_id"] = "  "                       # missing view_id
                elif kind == 3:
                    del obj["end_timestamp"]                    # missing end_timestamp
                elif kind == 4:
                    obj["campaign_id"] = None                   # missing campaign_id
                elif kind == 5:
                    obj["start_timestamp"] = "yesterday"        # unparseable start
                elif kind == 6:
                    obj["end_timestamp"] = iso(start - dt.timedelta(seconds=3), rng)  # end < start
                elif specials:
                    obj["campaign_id"] = rng.choice(specials)   # unknown / no network
                else:
                    obj["view_id"] = None
            if spread:
                key = f"v{p}-{i}"
            else:
                key = (str(obj["campaign_id"]) if isinstance(obj.get("campaign_id"), int)
                       else str(campaign))
            out[p].append((key, json.dumps(obj, separators=(",", ":"))))
    return out


def campaigns_csv(path, extra=0):
    with open(path, "w", encoding="utf-8") as f:
        f.write("campaign_id,network_id,campaign_name\n")
        for c in CAMPAIGNS + list(range(EXTRA_BASE, EXTRA_BASE + extra)):
            f.write(f"{c},{network(c)},campaign {c}\n")
        f.write(f"{NO_NETWORK},,campaign without a network\n")


def kcat_produce(topic, partition, records, batch=BATCH):
    """Produces (key, payload) pairs to one partition, in order."""
    scale_out.kcat_produce(topic, partition, [v for _, v in records], batch,
                           keys=[k for k, _ in records])


def read_topic(topic):
    """[(partition, offset, key, payload)] of every record, read back with kcat."""
    return scale_out.read_topic(topic, keys=True)


# ------------------------------------------------------------------------------ sinks
# A sink class gives: uri, pipeline, kind, positions() {partition: committed offset} (None:
# unreadable), owned_positions(pid) (the positions of the tasks process pid owns; None: unknown),
# has_tasks(), letters() [(partition, offset, reason)], rows() (recompute_viewlog row dicts, one
# per stored row), writes() (Counter of window key -> committed writes, or None when the rows
# themselves show a double write), prepare(test) (before the first process starts),
# section() (the [sink] section of the pipeline file, None: the file's own), cleanup().

def micros_of(text):
    us = rv.parse_iso(str(text))
    if us is None:
        raise ValueError(f"not a time: {text!r}")
    return us


def row_dict(r):
    """A stored row (columns in ROW order) as a recompute_viewlog row dict."""
    return {"network_id": int(r[0]), "minute_timestamp": str(r[1]), "campaign_id": int(r[2]),
            "window_start": micros_of(r[3]), "window_end": micros_of(r[4]),
            "avg_duration": float(r[5]), "total_count": int(r[6])}


ROW_SQL = ", ".join(rv.ROW_COLUMNS)
AUDIT = "_test_window_writes"


class SqliteSink(scale_out.SqliteTasks):
    def __init__(self, workdir, name):
        scale_out.SqliteTasks.__init__(self, workdir, name, SOURCE, IDENTITY_BASE)

    def section(self):
        return None

    def prepare(self, test):
        """The table as sluice creates it (a run of the pipeline under another name over an
        empty topic), then the audit triggers."""
        test.probe(self)
        con = sqlite3.connect(self.path, timeout=30)
        try:
            keys = ", ".join(KEY)
            con.executescript(
                f"CREATE TABLE {AUDIT} (network_id, minute_timestamp, campaign_id, how TEXT);"
                f"CREATE TRIGGER {AUDIT}_i AFTER INSERT ON events BEGIN INSERT INTO {AUDIT} "
                f"SELECT {', '.join('NEW.' + k for k in KEY)}, 'insert'; END;"
                f"CREATE TRIGGER {AUDIT}_u AFTER UPDATE ON events BEGIN INSERT INTO {AUDIT} "
                f"SELECT {', '.join('NEW.' + k for k in KEY)}, 'update'; END;")
            n = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            if n:
                raise RuntimeError(f"the probe run wrote {n} rows into events ({keys})")
        finally:
            con.close()

    def rows(self):
        rows = self._query(f"SELECT {ROW_SQL} FROM events")
        if rows is None:
            raise RuntimeError(f"cannot read events in {self.path}")
        return [row_dict(r) for r in rows]

    def row_count(self):
        rows = self._query("SELECT COUNT(*) FROM events")
        return None if rows is None else rows[0][0]

    def writes(self):
        rows = self._query(f"SELECT {', '.join(KEY)}, COUNT(*) FROM {AUDIT} GROUP BY {', '.join(KEY)}")
        if rows is None:
            raise RuntimeError(f"cannot read {AUDIT} in {self.path}")
        return Counter({(int(r[0]), str(r[1]), int(r[2])): int(r[3]) for r in rows})


class MysqlSink(scale_out.MysqlTasks):
    def __init__(self, server, token, scenario, name):
        scale_out.MysqlTasks.__init__(self, server, f"scaleview_{token}_{scenario}", name, SOURCE,
                                      IDENTITY_BASE)

    def section(self):
        return None

    def prepare(self, test):
        test.probe(self)
        new = ", ".join(f"NEW.`{k}`" for k in KEY)
        cols = ", ".join(f"`{k}`" for k in KEY)
        # BEFORE UPDATE: ON DUPLICATE KEY UPDATE takes the update path even when no value
        # changes (AFTER UPDATE may not fire then); AFTER INSERT: only rows really inserted.
        self.server.run(
            f"CREATE TABLE `{AUDIT}` (`network_id` BIGINT, `minute_timestamp` VARCHAR(64), "
            "`campaign_id` BIGINT, `how` VARCHAR(8)) ENGINE=InnoDB;\n"
            f"CREATE TRIGGER `{AUDIT}_i` AFTER INSERT ON `events` FOR EACH ROW INSERT INTO "
            f"`{AUDIT}` ({cols}, `how`) VALUES ({new}, 'insert');\n"
            f"CREATE TRIGGER `{AUDIT}_u` BEFORE UPDATE ON `events` FOR EACH ROW INSERT INTO "
            f"`{AUDIT}` ({cols}, `how`) VALUES ({new}, 'update');\n", self.db)
        n = int(self.server.run("SELECT COUNT(*) FROM `events`", self.db)[1][0])
        if n:
            raise RuntimeError(f"the probe run wrote {n} rows into events")

    def rows(self):
        rows = self.server.run(f"SELECT {ROW_SQL} FROM `events`", self.db)
        return [row_dict(r) for r in rows[1:]]

    def row_count(self):
        rows = self._rows("SELECT COUNT(*) FROM `events`")
        return None if rows is None else int(rows[1][0])

    def writes(self):
        rows = self.server.run(f"SELECT {', '.join(KEY)}, COUNT(*) FROM `{AUDIT}` GROUP BY "
                               f"{', '.join(KEY)}", self.db)
        return Counter({(int(r[0]), str(r[1]), int(r[2])): int(r[3]) for r in rows[1:]})



class ParquetSink:
    """A Parquet dataset (parquet:DIR, partitioned as examples/viewlog.toml), read with pyarrow;
    positions and owners from `sluice status --format json` (the task files are the sink's
    own format). A double write shows as a window key twice in the dataset."""
    kind = "parquet"

    def __init__(self, test, workdir, name):
        self.test = test
        self.dir = os.path.join(workdir, name)
        self.pipeline = name
        self.uri = f"parquet:{self.dir}"
        self.tasks_seen = False
        self._status_at = 0.0
        self._status = None

    def section(self):
        return '[sink]\nuri = "${SINK}"\npartition_by = ["network_id", "minute_timestamp"]\n'

    def prepare(self, test):
        pass

    def _partitions(self):
        # `sluice status` starts a process and asks the group: at most twice a second.
        if time.monotonic() - self._status_at < 0.5:
            return self._status
        self._status_at = time.monotonic()
        rc, out, _ = harness.run_split(harness.sluice_args(
            self.test.args.sluice, "status", self.test.pipeline_for(self),
            self.test.variables(self, throttled=False), ["--format", "json"]), timeout=30)
        try:
            self._status = json.loads(out)["partitions"] if rc == 0 else None
        except (ValueError, KeyError):
            self._status = None
        return self._status

    def positions(self):
        parts = self._partitions()
        if parts is None:
            return None
        return {int(x["partition"]): int(x["committed"]) for x in parts
                if isinstance(x.get("committed"), int)}

    def owned_positions(self, pid):
        parts = self._partitions()
        if parts is None:
            return None
        return {int(x["partition"]): int(x["committed"]) for x in parts
                if isinstance(x.get("committed"), int) and x.get("task")
                and str((x["task"] or {}).get("owner") or "").endswith(f" pid {pid}")}

    def has_tasks(self):
        if not self.tasks_seen:
            self.tasks_seen = bool(glob.glob(os.path.join(self.dir, "_sluice", self.pipeline,
                                                          "task-*.state")))
        return self.tasks_seen

    def letters(self):
        entries, problems = dead_letters.load_dlq(os.path.join(self.dir, "_sluice", "dead_letters"))
        if problems:
            raise RuntimeError("; ".join(problems[:5]))
        return [(e["partition"], e["offset"], e["reason"]) for e in entries]

    def rows(self):
        import viewlog_output
        rows, problems, _ = viewlog_output.read_parquet_output(self.dir)
        if problems:
            raise RuntimeError("; ".join(problems[:5]))
        return rows

    def row_count(self):
        try:
            return len(self.rows())
        except Exception:  # a file being renamed into place: asked again
            return None

    def writes(self):
        return None

    def cleanup(self):
        pass


class CassandraSink:
    """A Cassandra keyspace of its own (cassandra://HOST:PORT/scaleview_<run>_<scenario>, made by
    the sink, dropped at the end unless --keep), read with the project venv's cassandra-driver:
    the table `events` (the aggregate's keys and window columns are its primary key, all of it
    the partition key: each row a partition of its own), `_sluice_dead_letters`, and the task
    rows `_sluice_tasks` (positions, owners).

    Cassandra has no triggers and the sink's rows are upserts by primary key, so a second write
    of a window with the same values leaves no trace in the table. What is checked instead is the
    node's own count of writes into `events`: the virtual table
    system_views.local_write_latency counts every mutation of one partition (an unlogged batch
    of one partition counts once; every row of `events` is a partition of its own), so on a
    single node, with the keyspace fresh, the count is the number of window writes the server
    applied (write_count; None when the cluster has more than one node or the table is not
    listed). A crash between a checkpoint's rows and its tasks' conditional batch makes the next
    owner write those rows again (the sink's exactly-once is by idempotence, README "Exactly
    once"), so after a kill -9 the count may exceed the windows, but not without one."""
    kind = "cassandra"

    def __init__(self, test, token, scenario, name):
        self.test = test
        self.keyspace = f"scaleview_{token}_{scenario}"[:48]
        self.pipeline = name
        self.uri = f"cassandra://{harness.CASSANDRA.address}/{self.keyspace}"
        self.tasks_seen = False

    def section(self):
        return None   # the file's own [sink]: uri = "${SINK}", table = "events"

    def prepare(self, test):
        # No probe: nothing is added to the table; the sink makes the keyspace.
        test.say(f"{self.pipeline}: keyspace {self.keyspace}")

    def _query(self, cql, args=()):
        """Rows of cql, None when the keyspace or table does not exist (yet) or the read failed."""
        try:
            return list(self.test.cassandra().execute(cql, args))
        except Exception:  # noqa: BLE001 - the driver raises InvalidRequest, timeouts and more
            return None

    def _tasks(self):
        return self._query(f'SELECT source, "partition", owner, "position" FROM '
                           f'{self.keyspace}."_sluice_tasks" WHERE pipeline = %s', (self.pipeline,))

    def positions(self):
        """{partition: committed position} from the task rows (the sink's positions: the mirror
        _sluice_positions may lag them after a crash)."""
        rows = self._tasks()
        if rows is None:
            return None
        return {int(r.partition): int(r.position) for r in rows
                if r.source == SOURCE and r.position is not None and r.partition < IDENTITY_BASE}

    def owned_positions(self, pid):
        rows = self._tasks()
        if rows is None:
            return None
        return {int(r.partition): int(r.position) for r in rows
                if r.source == SOURCE and r.position is not None and r.partition < IDENTITY_BASE
                and str(r.owner or "").endswith(f" pid {pid}")}

    def chunked_tasks(self):
        """How many of the pipeline's task rows name a state in chunks (None: unreadable)."""
        rows = self._query(f'SELECT state_chunks FROM {self.keyspace}."_sluice_tasks" WHERE '
                           'pipeline = %s', (self.pipeline,))
        return None if rows is None else sum(1 for r in rows if r.state_chunks)

    def owned_tasks(self):
        """How many of the pipeline's task rows still name an owner (None: unreadable)."""
        rows = self._tasks()
        return None if rows is None else sum(1 for r in rows if r.owner)

    def has_tasks(self):
        if not self.tasks_seen:
            self.tasks_seen = bool(self._tasks())
        return self.tasks_seen

    def letters(self):
        rows = self._query(f'SELECT pipeline, "partition", "offset", reason FROM '
                           f'{self.keyspace}."_sluice_dead_letters"')
        if rows is None:
            raise RuntimeError(f"cannot read {self.keyspace}._sluice_dead_letters")
        return [(int(r.partition), int(r.offset), r.reason) for r in rows
                if r.pipeline == self.pipeline]

    def rows(self):
        rows = self._query(f"SELECT {ROW_SQL} FROM {self.keyspace}.events")
        if rows is None:
            raise RuntimeError(f"cannot read {self.keyspace}.events")
        # timestamps come back as naive UTC datetimes (milliseconds)
        return [row_dict([r[0], r[1], r[2], r[3].isoformat() + "Z", r[4].isoformat() + "Z",
                          r[5], r[6]]) for r in rows]

    def row_count(self):
        rows = self._query(f"SELECT COUNT(*) FROM {self.keyspace}.events")
        return None if rows is None else int(rows[0][0])

    def writes(self):
        return None   # per window: not observable (an upsert hides a second write); write_count

    def write_count(self):
        """Mutations of `events` the node applied (see the class), None when not countable."""
        if self._query("SELECT peer FROM system.peers"):
            return None   # several nodes: this node's count is only its share
        rows = self._query("SELECT count FROM system_views.local_write_latency WHERE "
                           "keyspace_name = %s AND table_name = 'events'", (self.keyspace,))
        return int(rows[0].count) if rows else None

    def cleanup(self):
        try:
            self.test.cassandra().execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")
        except Exception as e:  # noqa: BLE001 - best effort
            print(f"     note: dropping keyspace {self.keyspace}: {e}")


SINKS = ("sqlite", "mysql", "parquet", "cassandra")


class StageOneView:
    """A sink of a repartitioning run (--repartition) as the scenarios watch it: the committed
    positions and the owners of the source's partitions are stage one's, read back from its
    Kafka positions topic <pipeline>-repartition.sluice-positions (kcat, read_committed: what
    is committed; a position key ["position", pipeline, "views", p] holds the offset, a task key
    ["task", pipeline, "views", p] a JSON line with the owner and the progress [max event time,
    watermark, enforced, idle], then the task's state); everything else (rows, dead letters,
    task rows, the audit) is the sink's, where stage two writes. Each time the committed
    positions grew is kept (moves): how long they stood still after a kill -9 is the stall."""

    def __init__(self, sink):
        self.sink = sink
        self.topic_ready = False
        self._at = 0.0
        self._last = None
        self._sum = None
        self.moves = []

    def __getattr__(self, name):
        return getattr(self.sink, name)

    def positions_topic(self):
        return f"{self.sink.pipeline}-repartition.sluice-positions"

    def read(self, fresh=False):
        """({partition: offset}, {partition: task record dict}) of stage one, None when the
        topic is not there (yet) or kcat failed. At most twice a second unless fresh."""
        if not fresh and time.monotonic() - self._at < 0.5:
            return self._last
        self._at = time.monotonic()
        topic = self.positions_topic()
        if not self.topic_ready:
            # Only a topic that exists is read: reading a missing one could make the broker
            # (auto.create.topics.enable) create it, not compacted, before the sink does.
            rc, out = harness.run(["kcat", "-b", BROKER, "-L"], timeout=30)
            if rc != 0 or f'topic "{topic}"' not in out:
                return self._last
            self.topic_ready = True
        try:
            p = subprocess.run(["kcat", "-C", "-b", BROKER, "-t", topic, "-e", "-q",
                                "-X", "isolation.level=read_committed",
                                "-f", "%p %o %K %S\\n%k%s\\n"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            return self._last
        if p.returncode != 0:
            return self._last
        data, at = p.stdout, 0
        latest = {}
        while at < len(data):
            nl = data.index(b"\n", at)
            _, _, klen, vlen = (int(x) for x in data[at:nl].split())
            at = nl + 1
            key = data[at:at + max(klen, 0)]
            at += max(klen, 0)
            value = data[at:at + vlen] if vlen >= 0 else None
            at += max(vlen, 0) + 1
            latest[key] = value   # in offset order per partition: the last one wins
        positions, tasks = {}, {}
        for key, value in latest.items():
            try:
                k = json.loads(key.decode("utf-8"))
            except ValueError:
                continue
            if not isinstance(k, list) or len(k) != 4 or k[1] != self.sink.pipeline or k[2] != SOURCE:
                continue
            if value is None or k[3] >= IDENTITY_BASE:
                continue
            if k[0] == "position":
                positions[int(k[3])] = int(value.decode("ascii"))
            elif k[0] == "task":
                tasks[int(k[3])] = json.loads(value.split(b"\n", 1)[0].decode("utf-8"))
        self._last = (positions, tasks)
        total = sum(positions.values())
        if self._sum is not None and total > self._sum:
            self.moves.append(time.monotonic())
        if self._sum is None or total > self._sum:
            self._sum = total
        return self._last

    def positions(self):
        got = self.read()
        return None if got is None else dict(got[0])

    def owned_positions(self, pid):
        got = self.read()
        if got is None:
            return None
        positions, tasks = got
        return {p: o for p, o in positions.items()
                if str((tasks.get(p) or {}).get("owner") or "").endswith(f" pid {pid}")}

    def stall_after(self, at):
        """Seconds from monotonic time `at` to the first growth of the committed positions after
        it (None: none seen)."""
        later = [t for t in self.moves if t > at]
        return later[0] - at if later else None

    def stage_two_owned(self):
        """How many of stage two's tasks in an SQL sink are still owned (None: not an SQL sink
        or unreadable)."""
        if self.sink.kind == "sqlite":
            rows = self.sink._query("SELECT COUNT(*) FROM _sluice_tasks WHERE pipeline = ? AND "
                                    "owner IS NOT NULL AND owner != ''", (self.sink.pipeline,))
            return None if rows is None else int(rows[0][0])
        if self.sink.kind == "mysql":
            rows = self.sink._rows("SELECT COUNT(*) FROM `_sluice_tasks` WHERE `pipeline` = "
                                   f"'{self.sink.pipeline}' AND `owner` IS NOT NULL AND `owner` != ''")
            return None if rows is None or len(rows) < 2 else int(rows[1][0])
        if self.sink.kind == "cassandra":
            return self.sink.owned_tasks()
        return None


# ------------------------------------------------------------------------------ recomputation

def recompute(records, campaigns_path):
    """The expected rows and dead letters {(partition, offset): reason class} from the records
    read back from the topic, by recompute_viewlog.recompute_by_partition."""
    by_part = {}
    for p, o, _, payload in records:
        by_part.setdefault(p, []).append((o, payload.encode("utf-8")))
    res = rv.recompute_by_partition(by_part, campaigns_path, watermark_delay=DELAY,
                                    allowed_lateness=LATENESS)
    dead = {(p, o): rv.reason_class(reason) for reason, _, p, o in res["dead_letters"]}
    return res, dead


# ------------------------------------------------------------------------------ the test

class Test(scale_out.ScaleOutSteps, harness.SluiceTest):
    def __init__(self, args, tmp):
        harness.SluiceTest.__init__(self, args, tmp)
        self.rng = random.Random(args.seed)
        self.sinks = []
        self.rows_a = None   # scenario a's rows, for the differential
        self.mode = "repartitioned (no keyed_by)" if args.repartition else "keyed_by"
        self.pipelines = {}
        self.cassandra_cluster = None
        self.cassandra_session = None

    def cassandra(self):
        """The driver's session (--sink cassandra), made on first use."""
        if self.cassandra_session is None:
            import cassandra_util  # noqa: PLC0415 - only --sink cassandra needs the driver
            self.cassandra_cluster, self.cassandra_session = cassandra_util.session()
        return self.cassandra_session

    # ---------------------------------------------------------------- setup
    def setup(self):
        self.topic = f"scaleview_{self.token}_views"
        self.probe_topic = f"scaleview_{self.token}_probe"
        create_topic(self.topic, PARTITIONS)
        create_topic(self.probe_topic, 1)
        self.campaigns = os.path.join(self.tmp, "campaigns.csv")
        campaigns_csv(self.campaigns, self.args.extra_campaigns)
        records = make_records(random.Random(self.args.seed), self.args.per_partition,
                               self.args.repartition, self.args.extra_campaigns)
        for p, recs in records.items():
            kcat_produce(self.topic, p, recs)
        total = sum(len(v) for v in records.values())
        ends = end_offsets(self.topic, PARTITIONS)
        if sum(ends.values()) != total:
            raise RuntimeError(f"{self.topic} holds {sum(ends.values())} records, produced {total}")
        self.total = total
        recs = read_topic(self.topic)
        if len(recs) != total:
            raise RuntimeError(f"read back {len(recs)} records of {self.topic}, produced {total}")
        if self.args.repartition:
            # The producers do not key by the group key: every campaign is in every partition.
            where = {}
            for p, _, _, payload in recs:
                try:
                    c = json.loads(payload).get("campaign_id")
                except ValueError:
                    continue
                if c in CAMPAIGNS:
                    where.setdefault(c, set()).add(p)
            narrow = {c: v for c, v in where.items() if len(v) < PARTITIONS}
            if narrow or len(where) != len(CAMPAIGNS):
                raise RuntimeError(f"campaigns not in every partition: {dict(list(narrow.items())[:5])}")
        else:
            # keyed_by's promise, checked on what the broker holds: a campaign in one partition.
            where = {}
            for p, _, key, _ in recs:
                where.setdefault(key, set()).add(p)
            split = {k: v for k, v in where.items() if len(v) > 1}
            if split:
                raise RuntimeError(f"keys in more than one partition: {dict(list(split.items())[:5])}")
        res, self.expected_dead = recompute(recs, self.campaigns)
        self.expected_rows = res["rows"]
        self.expected_watermarks = res["watermarks"]
        self.expected = (self.expected_rows, self.expected_dead, self.expected_watermarks)
        st = Counter(self.expected_dead.values())
        self.say(f"{total} records on {self.topic} ({PARTITIONS} partitions); recomputation: "
                 f"{res['aggregated']} aggregated into {len(res['rows'])} rows written and "
                 f"{res['open_windows']} windows left open ({res['open_records']} records), "
                 f"dead letters {dict(sorted(st.items()))}")
        if min(st["late"], st["decode:"], st["no campaign for key 77"],
               st["group key network_id is null"]) == 0 or res["open_windows"] == 0:
            raise RuntimeError(f"the input lacks a kind of record the test must exercise: {dict(st)}, "
                               f"open windows {res['open_windows']}")
        near = res["not_late_behind"]
        if near == 0:
            raise RuntimeError("no record behind its partition's watermark was counted (not late): "
                               "the lateness rule's boundary is not exercised")
        self.say(f"records behind their partition's watermark but not late: {near}")

    def pipeline_for(self, sink):
        """The pipeline file for sink: the repository's, or a copy with the sink kind's [sink]
        section (which names its sink ${SINK} too)."""
        section = sink.section()
        if section is None and not self.args.repartition:
            return PIPELINE
        if sink.kind not in self.pipelines:
            with open(PIPELINE, encoding="utf-8") as f:
                text = f.read()
            if self.args.repartition:
                # Without keyed_by: sluice run repartitions (both stages in every process).
                if KEYED_BY not in text:
                    raise RuntimeError(f"{PIPELINE} has no line {KEYED_BY!r} to drop")
                text = text.replace(KEYED_BY, "")
            if section is not None:
                head, sep, _ = text.partition("\n[sink]\n")
                if not sep:
                    raise RuntimeError(f"{PIPELINE} has no [sink] section to replace")
                text = head + "\n" + section
            path = os.path.join(self.tmp, f"scale_out_viewlog_{sink.kind}.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            self.pipelines[sink.kind] = path
        return self.pipelines[sink.kind]

    def new_sink(self, scenario):
        name = f"scaleview_{self.args.sink}_{scenario}_{self.token}"
        if self.args.sink == "sqlite":
            sink = SqliteSink(self.tmp, name)
        elif self.args.sink == "mysql":
            sink = MysqlSink(self.mysql, self.token, scenario, name)
        elif self.args.sink == "cassandra":
            sink = CassandraSink(self, self.token, scenario, name)
        else:
            sink = ParquetSink(self, self.tmp, name)
        self.sinks.append(sink)
        sink.prepare(self)
        return StageOneView(sink) if self.args.repartition else sink

    def variables(self, sink, throttled, name=None, topic=None):
        name = name or sink.pipeline
        topic = topic or getattr(sink, "topic", None) or self.topic
        v = {"NAME": name, "GROUP": name, "VIEWS": f"kafka://{BROKER}/{topic}",
             "CAMPAIGNS": self.campaigns, "SINK": sink.uri}
        if throttled:
            v.update({"FETCH_WAIT_MS": str(self.args.fetch_wait_ms),
                      "FETCH_MIN_BYTES": "100000000", "PARTITION_FETCH_BYTES": "1"})
        return v

    def probe(self, sink):
        """Opens sink once with this pipeline (another name, an empty topic), so that its table
        exists as sluice creates it before the test adds its triggers."""
        v = self.variables(sink, throttled=False, name=f"{sink.pipeline}_probe",
                           topic=self.probe_topic)
        p = self.start_run(self.pipeline_for(sink), v, f"probe-{sink.pipeline}", ["--until-caught-up"])
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            raise RuntimeError(f"the probe run over an empty topic exited {rc}\n{self.tail(p)}")

    def start(self, sink, variables, label, extra=()):
        p = self.start_run(self.pipeline_for(sink), variables, label, extra)
        p.started = time.monotonic()
        self.say(f"{label} started (pid {p.pid})")
        return p

    # ---------------------------------------------------------------- waiting
    def wait_rows(self, sink, watch, timeout):
        """Waits until the sink holds as many rows as the recomputation writes (the processes
        close windows by each other's committed progress, a checkpoint interval apart)."""
        want = len(self.expected_rows)
        return harness.wait_for(lambda: (watch.committed(), sink.row_count())[1] == want or None,
                                timeout, 0.5)

    # ---------------------------------------------------------------- checks
    def check_sink(self, label, sink, watch, expected=None, killed=False):
        """Problems of sink's rows, writes and dead letters against expected (rows, dead
        letters, watermarks; default: the whole topic's recomputation). killed: a process was
        killed -9 (a Cassandra sink may then have written a window again, see CassandraSink)."""
        exp_rows, exp, _ = expected or self.expected
        problems = [f"{label}: {x}" for x in watch.regressions]
        if sink.kind == "cassandra":
            problems += self.check_write_count(label, sink, len(exp_rows), killed)
        try:
            rows = sink.rows()
            problems += [f"{label}: {x}" for x in
                         rv.compare_rows(rows, exp_rows, rel_tol=0, label=label)]
        except (ValueError, RuntimeError, sqlite3.Error) as e:
            problems.append(f"{label}: cannot read the sink's rows: {e}")
        try:
            writes = sink.writes()
            if writes is not None:
                twice = sorted(k for k, n in writes.items() if n > 1)
                if twice:
                    problems.append(f"{label}: {len(twice)} windows written more than once "
                                    "(committed inserts and upserts), e.g. "
                                    + ", ".join(f"{k} x{writes[k]}" for k in twice[:5]))
                want = {tuple(r[c] for c in KEY) for r in exp_rows}
                if set(writes) != want:
                    problems.append(f"{label}: the audit saw writes of {len(writes)} windows, "
                                    f"expected {len(want)}")
        except (ValueError, RuntimeError, sqlite3.Error) as e:
            problems.append(f"{label}: cannot read the audit of the writes: {e}")
        try:
            got = sink.letters()
        except (RuntimeError, sqlite3.Error) as e:
            return problems + [f"{label}: cannot read the dead letters: {e}"]
        seen = Counter((p, o) for p, o, _ in got)
        dups = [k for k, n in seen.items() if n > 1]
        if dups:
            problems.append(f"{label}: {len(dups)} records dead-lettered more than once, e.g. "
                            f"{sorted(dups)[:5]}")
        have = {(p, o): rv.reason_class(r) for p, o, r in got}
        missing = sorted(k for k in exp if k not in have)
        extra = sorted(k for k in have if k not in exp)
        wrong = sorted(k for k in have if k in exp and have[k] != exp[k])
        if missing:
            problems.append(f"{label}: {len(missing)} expected dead letters missing "
                            f"({dict(Counter(exp[k] for k in missing))}), e.g. "
                            + ", ".join(f"{k} {exp[k]}" for k in missing[:5]))
        if extra:
            problems.append(f"{label}: {len(extra)} unexpected dead letters "
                            f"({dict(Counter(have[k] for k in extra))}), e.g. "
                            + ", ".join(f"{k} {have[k]}" for k in extra[:5]))
        if wrong:
            problems.append(f"{label}: {len(wrong)} dead letters with another reason, e.g. "
                            + ", ".join(f"{k} {have[k]} (expected {exp[k]})" for k in wrong[:5]))
        return problems

    def check_write_count(self, label, sink, windows, killed):
        """Cassandra: the node's count of writes into `events` against the windows written. Fewer
        cannot be (the rows are checked too); more is a window written more than once: a failure
        when no process was killed -9, else (a replay after a crash between a checkpoint's rows
        and its tasks' batch) said in the log."""
        self.say(f"{label}: {sink.chunked_tasks()} task rows name a state in chunks "
                 "(_sluice_task_state)")
        n = sink.write_count()
        if n is None:
            self.say(f"{label}: the writes into {sink.keyspace}.events cannot be counted (more "
                     "than one node, or the table is not in system_views.local_write_latency)")
            return []
        if n == windows:
            self.say(f"{label}: {n} writes into events == {windows} windows (each written once)")
            return []
        if n > windows and killed:
            self.say(f"{label}: {n} writes into events for {windows} windows: {n - windows} "
                     "written again after a kill -9 (a replay of rows written before a commit "
                     "that did not land; the values are checked)")
            return []
        return [f"{label}: the node counted {n} writes into events for {windows} windows "
                f"({'more' if n > windows else 'fewer'} than one write per window"
                + (", with no process killed -9)" if n > windows else ")")]

    def check_status(self, label, sink, expected=None):
        """`sluice status --format json` after the last process stopped: every partition
        committed to its end, its task released, with the recomputation's watermark.
        --repartition: the same of stage one's tasks, from its positions topic, and stage two's
        tasks in an SQL sink released."""
        if self.args.repartition:
            return self.check_stage_one(label, sink, expected)
        rc, out, err = harness.run_split(harness.sluice_args(
            self.args.sluice, "status", self.pipeline_for(sink), self.variables(sink, False),
            ["--format", "json"]), timeout=60)
        try:
            parts = json.loads(out)["partitions"]
        except (ValueError, KeyError):
            return [f"{label}: sluice status exited {rc}: {(out + err)[-600:]}"]
        problems = []
        if sorted(x["partition"] for x in parts) != list(range(PARTITIONS)):
            problems.append(f"{label}: sluice status shows partitions "
                            f"{sorted(x['partition'] for x in parts)}")
        for x in sorted(parts, key=lambda x: x["partition"]):
            p, task = x["partition"], x.get("task") or {}
            want = (expected or self.expected)[2].get(p)
            if x.get("committed") != x.get("end"):
                problems.append(f"{label}: partition {p} committed {x.get('committed')} of {x.get('end')}")
            if task.get("owner") is not None:
                problems.append(f"{label}: partition {p}'s task is still owned by {task['owner']} "
                                "after every process stopped")
            if task.get("watermark_micros") != want:
                problems.append(f"{label}: partition {p}'s committed watermark "
                                f"{task.get('watermark')} != the recomputation's "
                                f"{rv.format_micros(want) if want is not None else None}")
        return problems

    def check_stage_one(self, label, view, expected=None):
        got = view.read(fresh=True)
        if got is None:
            return [f"{label}: cannot read stage one's positions topic {view.positions_topic()}"]
        positions, tasks = got
        topic = getattr(view, "topic", None) or self.topic
        ends = end_offsets(topic, PARTITIONS)
        problems = []
        for p in range(PARTITIONS):
            task = tasks.get(p)
            want = (expected or self.expected)[2].get(p)
            if positions.get(p) != ends[p]:
                problems.append(f"{label}: stage one committed partition {p} up to {positions.get(p)} "
                                f"of {ends[p]}")
            if task is None:
                problems.append(f"{label}: stage one has no task record of partition {p}")
                continue
            if task.get("owner"):
                problems.append(f"{label}: stage one's task of partition {p} is still owned by "
                                f"{task['owner']} after every process stopped")
            progress = task.get("progress") or [None, None]
            if progress[1] != want:
                problems.append(f"{label}: stage one's committed watermark of partition {p} "
                                f"{rv.format_micros(progress[1]) if isinstance(progress[1], int) else progress[1]}"
                                f" != the recomputation's "
                                f"{rv.format_micros(want) if want is not None else None}")
        owned = view.stage_two_owned()
        if owned:
            problems.append(f"{label}: {owned} of stage two's tasks are still owned after every "
                            "process stopped")
        return problems

    def report(self, name, problems, notes, sink):
        """A result; a sink that kept no task rows cannot have been exact by design: a failure."""
        if not sink.has_tasks():
            problems = list(problems) + [f"the {sink.kind} sink wrote no task rows (append mode "
                                         f"{self.mode} must keep its state per partition)"]
        self.result(name, problems, notes)

    def two_stages(self, proc):
        """--repartition: proc ran the pipeline as its two stages (not one, with a warning)."""
        if not self.args.repartition:
            return []
        text = self.text(proc)
        if "repartitions through topic" in text and "(stage two)" in text:
            return []
        return [f"{proc.label} did not run the pipeline as two stages\n{self.tail(proc)}"]

    def stalls(self, view, kills, notes):
        """--repartition: how long stage one's committed positions stood still after each kill
        -9 (a process killed in a commit holds the positions topic's last stable offset until its
        transaction times out); problems when longer than STALL_LIMIT."""
        problems, seen = [], []
        for label, at in kills:
            stall = view.stall_after(at)
            seen.append(f"{label} {stall:.1f}s" if stall is not None else f"{label} never")
            if stall is None or stall > STALL_LIMIT:
                problems.append(f"stage one's committed positions stood still "
                                f"{'to the end' if stall is None else f'{stall:.1f}s'} after the kill "
                                f"-9 of {label} (limit {STALL_LIMIT:.0f}s)")
        notes.append("stage one's positions moved again after the kills -9: " + ", ".join(seen))
        return problems

    def claims_with_windows(self, procs):
        counts = [int(n) for pr in procs for n in CLAIM_WINDOWS.findall(self.text(pr))]
        return sum(1 for n in counts if n), sum(counts)

    # ---------------------------------------------------------------- scenarios
    def scenario_a(self):
        t0 = time.monotonic()
        sink = self.new_sink("a")
        watch = scale_out.Watch(sink)
        problems, notes = [], []
        v = self.variables(sink, throttled=True)
        a = self.start(sink, v, "a-A")
        if not self.wait_commit_of(a, sink, watch, 40):
            raise RuntimeError(f"A committed nothing within 40s\n{self.tail(a)}")
        self.dwell(watch, 2)
        b = self.start(sink, v, "a-B")
        if not self.wait_commit_of(b, sink, watch, 40):
            problems.append(f"B committed nothing within 40s\n{self.tail(b)}")
        self.dwell(watch, 2)
        c = self.start(sink, v, "a-C")
        self.dwell(watch, 3)
        kills = []
        self.kill_after_commit(b, sink, watch, problems, notes)
        kills.append(("B", time.monotonic()))
        self.dwell(watch, 2)
        self.kill_after_commit(c, sink, watch, problems, notes)
        kills.append(("C", time.monotonic()))
        self.dwell(watch, 2)
        if self.args.repartition:
            # A member that dies while it starts (joining both groups, creating its producers,
            # claiming): the group keeps it until its session times out, and a claim it had
            # begun stays an open transaction until its timeout.
            d = self.start(sink, v, "a-D")
            delay = self.rng.uniform(0.5, 3.0)
            landed = harness.kill9_at_random(d, self.rng, delay, delay + 0.001)
            kills.append(("D (start-up)", time.monotonic()))
            notes.append(f"D killed -9 {delay:.2f}s after its start" + ("" if landed else
                         " (it had exited already)") + f"; the log's last line: "
                         f"{(self.text(d).strip().splitlines() or [''])[-1][:160]}")
            if not landed:
                problems.append(f"D exited before its kill -9 during start-up\n{self.tail(d)}")
            self.dwell(watch, 2)
        b2 = self.start(sink, v, "a-B2")
        if not self.wait_commit_of(b2, sink, watch, 40):
            problems.append(f"B2 (B rejoining) committed nothing within 40s\n{self.tail(b2)}")
        self.dwell(watch, 3)
        self.stop_proc(a, problems)
        notes.append(f"A left with SIGTERM (committed {watch.committed()} of {self.total})")
        self.wait_commit_of(b2, sink, watch, 20)
        self.stop_proc(b2, problems)
        notes.append(f"B2 left with SIGTERM (committed {watch.committed()} of {self.total})")
        if (watch.committed() or 0) >= self.total:
            problems.append("every record was committed before the --until-caught-up run: the "
                            "scenario did not leave it work (raise --per-partition)")
        # A scheduler's run: unthrottled, until caught up.
        final = self.start(sink, self.variables(sink, throttled=False), "a-final", ["--until-caught-up"])
        try:
            rc = final.wait(timeout=self.args.run_timeout)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            problems.append(f"the --until-caught-up run exited {rc} (expected 0)\n{self.tail(final)}")
        problems += self.two_stages(final)
        if (watch.committed() or 0) != self.total:
            problems.append(f"committed {watch.committed()} of {self.total} records at the end")
        n, windows = self.claims_with_windows(self.procs)
        notes.append(f"claims that handed over open windows: {n} ({windows} open window rows)")
        if self.args.repartition:
            problems += self.stalls(sink, kills, notes)
        if sink.has_tasks() and n == 0:
            problems.append("no claim handed over an open window: the test did not exercise open "
                            "windows moving between processes")
        problems += self.check_sink("a", sink, watch, killed=True)
        problems += self.check_status("a", sink)
        if not problems:
            self.rows_a = sorted(sink.rows(), key=lambda r: tuple(r[k] for k in KEY))
        self.report(f"a: 3 processes (join, kill -9 x2 after commits, rejoin, SIGTERM) + "
                    f"--until-caught-up, append mode {self.mode} == recomputation "
                    f"({time.monotonic() - t0:.0f}s)", problems, notes, sink)

    def scenario_b(self):
        t0 = time.monotonic()
        sink = self.new_sink("b")
        watch = scale_out.Watch(sink)
        problems = []
        pr = self.start(sink, self.variables(sink, throttled=False), "b-one", ["--until-caught-up"])
        try:
            rc = pr.wait(timeout=self.args.run_timeout)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            problems.append(f"one process --until-caught-up exited {rc}\n{self.tail(pr)}")
        problems += self.two_stages(pr)
        watch.committed()
        problems += self.check_sink("b", sink, watch)
        problems += self.check_status("b", sink)
        if self.rows_a is not None:
            rows_b = sorted(sink.rows(), key=lambda r: tuple(r[k] for k in KEY))
            if rows_b != self.rows_a:
                diff = [r for r in self.rows_a if r not in rows_b][:3]
                problems.append(f"the tables differ ({len(self.rows_a)} rows through 3 processes, "
                                f"{len(rows_b)} through 1), e.g. {diff}")
        elif self.args.only is None or "a" in self.args.only:
            problems.append("scenario a gave no table to compare with (it failed)")
        self.report(f"b: differential, 1 process == 3 processes == recomputation "
                    f"({time.monotonic() - t0:.0f}s)", problems, [], sink)

    def scenario_c(self):
        t0 = time.monotonic()
        sink = self.new_sink("c")
        watch = scale_out.Watch(sink)
        problems, notes = [], []
        # Slower than scenario a: the work must outlast the storm (--repartition: half scenario
        # a's wait; the rebalances of two groups per join or leave slow it enough: 1 s left 9,200
        # of 20,000 records to do after a 15-s storm, 0.67 s none, 1.5 s took 157 s).
        wait = self.args.fetch_wait_ms // 2 if self.args.repartition else 2 * self.args.fetch_wait_ms
        v = dict(self.variables(sink, throttled=True), FETCH_WAIT_MS=str(max(1, wait)))
        steady = [self.start(sink, v, "c-S1")]
        if not self.wait_commit_of(steady[0], sink, watch, 40):
            raise RuntimeError(f"S1 committed nothing within 40s\n{self.tail(steady[0])}")
        steady.append(self.start(sink, v, "c-S2"))
        end = time.monotonic() + self.args.storm_seconds
        n, kills, at_end = 0, 0, None
        while time.monotonic() < end:
            n += 1
            flap = self.start(sink, v, f"c-F{n}")
            self.dwell(watch, self.rng.uniform(2, 5))
            if n % 3 == 0:
                harness.kill9(flap)
                kills += 1
            else:
                self.stop_proc(flap, problems)
            at_end = watch.committed()
        notes.append(f"{n} joins and leaves in {self.args.storm_seconds:.0f}s ({kills} by kill -9); "
                     f"committed {at_end} of {self.total} when the storm ended")
        if at_end is not None and at_end >= self.total:
            problems.append("the work was done before the storm ended (raise --per-partition)")
        if not self.wait_done(watch, steady, self.args.run_timeout):
            problems.append(f"the two processes did not commit every record within "
                            f"{self.args.run_timeout}s (committed {watch.committed()} of {self.total})")
        elif not self.wait_rows(sink, watch, 30):
            problems.append(f"the two processes did not write the {len(self.expected_rows)} windows "
                            f"the final watermarks close within 30s of the last commit "
                            f"({sink.row_count()} rows)")
        for pr in steady:
            self.stop_proc(pr, problems)
        problems += self.check_sink("c", sink, watch, killed=kills > 0)
        problems += self.check_status("c", sink)
        self.report(f"c: rebalance storm (2 processes + one joining and leaving every 2-5 s) "
                    f"loses nothing ({time.monotonic() - t0:.0f}s)", problems, notes, sink)


    def scenario_d(self):
        """A scheduler running two --until-caught-up processes at once, twice: over the first
        half of each partition of a fresh topic, then, after the second half is produced, over
        all of it. Both runs of each pair exit 0; after each pair the sink == the recomputation
        of what the topic held (windows the first pair wrote are not written again; records of
        them that come with the second half are late by their own partition's watermark)."""
        t0 = time.monotonic()
        topic = f"scaleview_{self.token}_batches"
        create_topic(topic, PARTITIONS)
        records = make_records(random.Random(self.args.seed + 1), self.args.per_partition // 2,
                               self.args.repartition, self.args.extra_campaigns)
        half = {p: len(v) // 2 for p, v in records.items()}
        sink = self.new_sink("d")
        sink.topic = topic
        watch = scale_out.Watch(sink)
        problems, notes = [], []
        v = self.variables(sink, throttled=True)
        if self.args.repartition:
            # Two runs at once need only read at the same time, not as slowly as scenario a.
            v["FETCH_WAIT_MS"] = str(max(1, self.args.fetch_wait_ms // 3))
        for stage, (label, part) in enumerate([("first half", lambda p: records[p][:half[p]]),
                                               ("second half", lambda p: records[p][half[p]:])]):
            for p in range(PARTITIONS):
                kcat_produce(topic, p, part(p))
            recs = read_topic(topic)
            res, dead = recompute(recs, self.campaigns)
            expected = (res["rows"], dead, res["watermarks"])
            runs = [self.start(sink, v, f"d-{stage + 1}{x}", ["--until-caught-up"]) for x in "PQ"]
            for pr in runs:
                try:
                    rc = pr.wait(timeout=self.args.run_timeout)
                except subprocess.TimeoutExpired:
                    rc = None
                if rc != 0:
                    problems.append(f"{pr.label} (--until-caught-up, {label}) exited {rc}\n"
                                    f"{self.tail(pr)}")
            watch.committed()
            if (watch.committed() or 0) != len(recs):
                problems.append(f"{label}: committed {watch.committed()} of {len(recs)} records")
            notes.append(f"{label}: {len(recs)} records, {len(res['rows'])} windows written, "
                         f"{res['open_windows']} open; runs took "
                         + ", ".join(f"{pr.label} {time.monotonic() - pr.started:.0f}s" for pr in runs))
            problems += self.check_sink(f"d {label}", sink, watch, expected)
            problems += self.check_status(f"d {label}", sink, expected)
        n, windows = self.claims_with_windows(self.procs[-2:])
        notes.append(f"claims of the second pair that took over open windows: {n} ({windows} rows)")
        self.report(f"d: two --until-caught-up runs at once, twice (a scheduler's batches) == "
                    f"recomputation ({time.monotonic() - t0:.0f}s)", problems, notes, sink)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--sink", choices=SINKS, default="sqlite")
    ap.add_argument("--only", help="comma-separated scenarios (a, b, c, d)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--repartition", action="store_true",
                    help="the pipeline without keyed_by, producers keyed by view id: sluice run "
                    "repartitions (stage one and stage two in every process)")
    ap.add_argument("--per-partition", type=int, default=None,
                    help="records per partition (default 5000; 2500 with --repartition)")
    ap.add_argument("--fetch-wait-ms", type=int, default=None,
                    help="throttled consumers read one batch of 100 records per partition this "
                    "often (default 250 ms; 2000 with --repartition)")
    ap.add_argument("--storm-seconds", type=float, default=30)
    ap.add_argument("--extra-campaigns", type=int, default=0,
                    help="with --repartition: 90%% of the records go to one of N more campaigns "
                    "(many groups, so stage two's task states grow past the Cassandra sink's "
                    "16 KiB inline limit: about 8000 for chunked states)")
    ap.add_argument("--run-timeout", type=float, default=150)
    ap.add_argument("--keep", action="store_true", help="keep the work dir, topics and sinks")
    args = ap.parse_args(argv)
    if args.extra_campaigns and not args.repartition:
        ap.error("--extra-campaigns needs --repartition (keyed_by puts a campaign in one partition)")
    if args.per_partition is None:
        args.per_partition = 2500 if args.repartition else 5000
    if args.fetch_wait_ms is None:
        args.fetch_wait_ms = 2000 if args.repartition else 250
    args.sluice = os.path.abspath(args.sluice)
    args.only = [x.strip() for x in args.only.split(",")] if args.only else None
    tmp = tempfile.mkdtemp(prefix="sluice-scaleview-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, seed {args.seed}, run {t.token}, sink {args.sink}"
          + (", repartitioned" if args.repartition else ""), flush=True)
    try:
        why = ensure_kcat() or kafka_missing()
        if why:
            return t.missing(why)
        if args.sink == "mysql":
            t.mysql = mysql_client.Server()
            why = t.mysql.reachable()
            if why:
                return t.missing(why)
        if args.sink == "cassandra":
            try:
                t.cassandra()
            except harness.Missing as e:
                return t.missing(str(e))
        if args.sink == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                return t.missing("pyarrow is missing (run with the project venv: scripts/venv.sh)")
        try:
            t.setup()
        except RuntimeError as e:
            t.result("setup", [str(e)])
            return t.finish()
        t.run_scenarios(["a", "b", "c", "d"], args.only)
    finally:
        t.kill_leftovers()
        if not args.keep:
            for s in t.sinks:
                s.cleanup()
            if getattr(t, "topic", None):
                # The source topics, and with --repartition each pipeline's
                # scaleview_<sink>_<scenario>_<run>-repartition and its positions topic.
                delete_topics(f"scaleview_.*{t.token}.*")
        t.keep_or_remove(tmp, args.keep)
        if t.cassandra_cluster is not None:
            t.cassandra_cluster.shutdown()
    return t.finish()


if __name__ == "__main__":
    harness.main_guard(main)
