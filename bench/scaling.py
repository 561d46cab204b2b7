#!/usr/bin/env python3
"""How cost grows with input size and group cardinality (`make bench-scaling`).

  bench/scaling.py [--matrix smoke|default|full] [--events 1M,10M] [--groups 1k,100k]
                   [--fixed-groups 100k] [--fixed-events 10M] [--sluice PATH]
                   [--work-dir DIR] [--out-dir bench/results] [--no-save]

For each (events, groups) of the matrix: `sluice generate --profile keyed` writes the events
(key of `groups` keys, value, event_time; about 50 bytes each) into a temporary directory,
`sluice run bench/scaling.toml` reads that file into SQLite (count and sum per key, one row per
group), and the directory is deleted before the next run, so at most one input is on disk at a
time. Measured from outside the process:
  events/CPU-s     events / (user + sys CPU seconds of the sluice process, from wait4)
  wall             spawn to the summary being written (start-up and the final commit included;
                   the process then serves /metrics for 1.5 s more, not counted)
  peak RSS         peak VmHWM of /proc/PID/status, sampled every 10 ms (ru_maxrss of wait4
                   cannot be used: Linux carries the forking Python process's own peak into
                   the child's across exec; see bench/run.py)
  sink bytes/group pages of the result table and its primary-key index (SQLite dbstat) /
                   groups; the engine state row (_sluice_state) is reported too, in bytes
  checkpoints      count, mean and largest duration, from sluice's own /metrics
                   (sluice_checkpoint_duration_seconds _sum and _count polled every 0.2 s: the
                   largest is exact when no two checkpoints end between two polls)
The result is checked against an independent computation: the generated file read back with
pyarrow's JSON reader, counted and summed per key with pyarrow's group_by, compared row by row
with the table. A wrong result stops the run (exit 1). Nothing is asserted about the numbers.

Matrices (events x groups; "k" = 1,000, "M" = 1,000,000):
  smoke    100k events at 1k and 100k groups (the ctest case scaling_smoke, --no-save)
  default  1M and 10M events at 100k groups; 1k, 10k, 100k and 1M groups at 10M events
  full     1M, 10M, 100M events at 100k groups; 1k .. 10M groups at 10M events
The memory check: peak RSS at the most events / at the fewest, at the fixed cardinality
(`rss_ratio` in the results; about 1 when memory is bounded by state rather than by input).
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
import machine  # noqa: E402

PIPELINE = os.path.join(HERE, "scaling.toml")
BYTES_PER_EVENT = 60  # upper bound of a keyed line (about 50 bytes), for the disk check
MATRICES = {
    "smoke": ([100_000], 1_000, [1_000, 100_000], 100_000),
    "default": ([1_000_000, 10_000_000], 100_000, [1_000, 10_000, 100_000, 1_000_000], 10_000_000),
    "full": ([1_000_000, 10_000_000, 100_000_000], 100_000,
             [1_000, 10_000, 100_000, 1_000_000, 10_000_000], 10_000_000),
}


class WrongResult(Exception):
    pass


def log(msg):
    print("[scaling %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def parse_count(text):
    text = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def short(n):
    for unit, v in (("M", 1_000_000), ("k", 1_000)):
        if n >= v and n % v == 0:
            return "%d%s" % (n // v, unit)
    return str(n)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    """The checkpoint figures of /metrics: {'sum', 'count', 'last'} (missing ones absent)."""
    out = {}
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return out
    names = {"sluice_checkpoint_duration_seconds_sum": "sum",
             "sluice_checkpoint_duration_seconds_count": "count",
             "sluice_last_checkpoint_duration_seconds": "last"}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            try:
                out[names[name]] = float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return out


class Watch:
    """Follows a running sluice: peak VmHWM every 10 ms, /metrics every 0.2 s."""

    def __init__(self, pid, port):
        self.status = "/proc/%d/status" % pid
        self.port = port
        self.peak_kib = 0
        self.last_seen = {}
        self.largest_checkpoint = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample_rss(self):
        try:
            with open(self.status) as f:
                for line in f:
                    # Before exec the child is still a copy of this process.
                    if line.startswith("Name:") and line.split()[1] != "sluice":
                        return
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        return
        except (OSError, ValueError):
            pass

    def sample_metrics(self):
        """Between two polls that saw the count go up by d, the checkpoints took (sum delta)
        in all: the largest is exact when d is 1, else the mean of those d."""
        m = metrics(self.port)
        if m:
            before = self.last_seen
            d = m.get("count", 0) - before.get("count", 0)
            if d > 0:
                self.largest_checkpoint = max(self.largest_checkpoint,
                                              (m.get("sum", 0) - before.get("sum", 0)) / d)
            self.last_seen = m

    def _run(self):
        n = 0
        while not self._stop.is_set():
            self.sample_rss()
            if n % 20 == 0:
                self.sample_metrics()
            n += 1
            self._stop.wait(0.01)

    def stop(self):
        self._stop.set()
        self._thread.join()


def run_sluice(sluice, events_path, sink_uri, work, linger=1.5):
    """Runs the scaling pipeline to its end; returns the measurements."""
    port = free_port()
    summary = os.path.join(work, "summary.json")
    if os.path.exists(summary):
        os.remove(summary)
    err_path = os.path.join(work, "sluice.stderr")
    cmd = [sluice, "run", PIPELINE, "--var", "EVENTS=" + events_path, "--var", "SINK=" + sink_uri,
           "--summary-json", summary, "--http", "127.0.0.1:%d" % port,
           "--http-linger", str(linger), "-q"]
    with open(err_path, "w") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        watch = Watch(proc.pid, port)
        wall = None
        while True:
            # The file is created at start and written at the end of the run.
            if wall is None and os.path.exists(summary) and os.path.getsize(summary) > 0:
                wall = time.monotonic() - start
                watch.sample_metrics()  # the final figures, while the server lingers
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.005)
        watch.stop()
    if wall is None:
        wall = time.monotonic() - start
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        with open(err_path) as f:
            raise RuntimeError("sluice exited %d: %s" % (rc, f.read()[-1500:]))
    with open(summary) as f:
        s = json.load(f)
    m = watch.last_seen
    count = int(m.get("count", 0))
    return {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "peak_rss_mib": watch.peak_kib / 1024.0, "summary": s,
            "checkpoints": count if count else s.get("checkpoints"),
            "checkpoint_mean_s": (m["sum"] / count) if count else None,
            "checkpoint_max_s": watch.largest_checkpoint if count else None,
            "checkpoint_last_s": m.get("last")}


def expected_groups(path):
    """Per key: events and sum of value, from the file itself (pyarrow JSON reader and
    group_by; nothing of sluice). Returns a pyarrow table (key, events, total) sorted by key."""
    import pyarrow as pa
    import pyarrow.json as pj
    reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=32 << 20),
                          parse_options=pj.ParseOptions(explicit_schema=pa.schema(
                              [("key", pa.string()), ("value", pa.int64()),
                               ("event_time", pa.int64())])))
    partials = []
    rows = 0

    def combine(tables):
        t = pa.concat_tables(tables)
        t = t.group_by("key").aggregate([("events", "sum"), ("total", "sum")])
        return t.select(["key", "events_sum", "total_sum"]).rename_columns(["key", "events", "total"])

    for batch in reader:
        rows += batch.num_rows
        t = pa.Table.from_batches([batch])
        if t.column("key").null_count or t.column("value").null_count:
            raise WrongResult("a generated line without key or value")
        g = t.group_by("key").aggregate([("key", "count"), ("value", "sum")])
        g = g.select(["key", "key_count", "value_sum"]).rename_columns(["key", "events", "total"])
        partials.append(g)
        if len(partials) >= 16:
            partials = [combine(partials)]
    if not partials:
        return pa.table({"key": pa.array([], pa.string()), "events": pa.array([], pa.int64()),
                         "total": pa.array([], pa.int64())}), 0
    result = combine(partials).select(["key", "events", "total"])
    return result.sort_by("key"), rows


class SqliteSink:
    name = "sqlite"

    def __init__(self, work):
        self.db = os.path.join(work, "scaling.db")
        self.uri = "sqlite:" + self.db

    def totals(self):
        con = sqlite3.connect(self.db)
        try:
            return con.execute("SELECT COUNT(*), SUM(events), SUM(total) FROM groups").fetchone()
        finally:
            con.close()

    def chunks(self):
        con = sqlite3.connect(self.db)
        try:
            cur = con.execute("SELECT key, events, total FROM groups ORDER BY key")
            while True:
                rows = cur.fetchmany(500_000)
                if not rows:
                    return
                yield rows
        finally:
            con.close()

    def size(self):
        """Bytes of the result table and its key index (dbstat page sizes), the engine state
        row, and the whole file."""
        con = sqlite3.connect(self.db)
        try:
            table = index = None
            try:
                sizes = dict(con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
                table = sizes.get("groups", 0)
                index = sum(v for k, v in sizes.items() if k.startswith("sqlite_autoindex_groups"))
            except sqlite3.OperationalError:  # an SQLite built without dbstat
                pass
            state = con.execute("SELECT COALESCE(SUM(LENGTH(state)), 0) FROM _sluice_state").fetchone()[0]
        finally:
            con.close()
        return {"table_bytes": table, "index_bytes": index, "state_blob_bytes": state,
                "file_bytes": os.path.getsize(self.db)}

    def drop(self):
        pass


class MysqlSink:
    """The MariaDB/MySQL of `make services` (root, no password), database bench_scaling_<pid>,
    dropped after the run."""
    name = "mysql"

    def __init__(self, hostport):
        self.host, self.port = hostport.rsplit(":", 1)
        self.database = "bench_scaling_%d" % os.getpid()
        self.uri = "mysql://root@%s/%s" % (hostport, self.database)
        self.sql("DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (self.database, self.database))

    def client(self, database=True):
        c = shutil.which("mariadb") or shutil.which("mysql")
        if not c:
            raise RuntimeError("no mariadb/mysql client on PATH")
        cmd = [c, "--host=" + self.host, "--port=" + self.port, "--user=root", "--protocol=TCP",
               "--batch", "--skip-column-names", "--quick"]
        return cmd + ([self.database] if database else [])

    def sql(self, text):
        r = subprocess.run(self.client(False), input=text, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("mariadb: " + r.stderr.strip())
        return [line.split("\t") for line in r.stdout.split("\n") if line]

    def totals(self):
        n, ev, tot = self.sql("SELECT COUNT(*), SUM(events), SUM(total) FROM %s.`groups`" % self.database)[0]
        return int(n), (None if ev == "NULL" else int(ev)), (None if tot == "NULL" else int(tot))

    def chunks(self):
        proc = subprocess.Popen(self.client(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        proc.stdin.write("SELECT `key`, events, total FROM `groups` ORDER BY CAST(`key` AS BINARY)")
        proc.stdin.close()
        rows = []
        for line in proc.stdout:
            k, e, t = line.rstrip("\n").split("\t")
            rows.append((k, int(e), int(t)))
            if len(rows) == 500_000:
                yield rows
                rows = []
        if rows:
            yield rows
        if proc.wait() != 0:
            raise RuntimeError("mariadb: reading the table failed")

    def size(self):
        """InnoDB's data_length (the clustered primary key: the rows) and index_length after
        ANALYZE TABLE; both are page counts times 16 KiB, estimates for large tables."""
        self.sql("ANALYZE TABLE %s.`groups`" % self.database)
        d, i = self.sql("SELECT data_length, index_length FROM information_schema.tables WHERE "
                        "table_schema = '%s' AND table_name = 'groups'" % self.database)[0]
        state = self.sql("SELECT COALESCE(SUM(LENGTH(state)), 0) FROM %s._sluice_state" % self.database)[0][0]
        return {"table_bytes": int(d), "index_bytes": int(i), "state_blob_bytes": int(state),
                "file_bytes": None}

    def drop(self):
        self.sql("DROP DATABASE IF EXISTS %s" % self.database)


def check_table(sink, expected, events):
    """Compares the sink's table with `expected` row by row (both in key order)."""
    import pyarrow as pa
    n, ev, tot = sink.totals()
    if n != expected.num_rows:
        raise WrongResult("%d groups in the table, %d expected" % (n, expected.num_rows))
    want_total = pa.compute.sum(expected.column("total")).as_py() or 0
    if ev != events or tot != want_total:
        raise WrongResult("table sums events %s total %s; expected %d and %d" % (
            ev, tot, events, want_total))
    at = 0
    for rows in sink.chunks():
        got = pa.table({"key": pa.array([r[0] for r in rows], pa.string()),
                        "events": pa.array([r[1] for r in rows], pa.int64()),
                        "total": pa.array([r[2] for r in rows], pa.int64())})
        want = expected.slice(at, len(rows))
        if not got.equals(want):
            for i in range(min(len(rows), want.num_rows)):
                w = (want.column(0)[i].as_py(), want.column(1)[i].as_py(), want.column(2)[i].as_py())
                if tuple(rows[i]) != w:
                    raise WrongResult("row %d: table has %s, expected %s" % (at + i, rows[i], w))
            raise WrongResult("rows %d..%d differ" % (at, at + len(rows)))
        at += len(rows)
    if at != n:
        raise WrongResult("read %d rows of %d" % (at, n))
    return n


def self_check(sink, expected, events):
    """The check must fail on a table with a row missing, a sum off, or one event moved from
    one key to another (the sums unchanged: only the row-by-row comparison sees it)."""
    for change in ("DELETE FROM groups WHERE rowid = 1;",
                   "UPDATE groups SET total = total + 1 WHERE rowid = 1;",
                   "UPDATE groups SET events = events + 1 WHERE rowid = 1;"
                   "UPDATE groups SET events = events - 1 WHERE rowid = 2;"):
        con = sqlite3.connect(sink.db)
        con.executescript(change)
        con.commit()
        try:
            check_table(sink, expected, events)
        except WrongResult:
            pass
        else:
            raise RuntimeError("the result check passed a table changed by: " + change)
        finally:
            con.close()
        shutil.copyfile(sink.db + ".good", sink.db)
    log("self-check: the check fails on a changed table")


def one_run(args, events, groups, base):
    """One (events, groups) point: one generated input, one run per sink. Returns the rows."""
    need = events * BYTES_PER_EVENT + groups * 200 + (64 << 20)
    free = shutil.disk_usage(base).free
    if free < need * 1.5:
        return [{"events": events, "groups_setting": groups, "skipped":
                 "needs about %.1f GB on %s, %.1f GB free" % (need / 1e9, base, free / 1e9)}]
    work = tempfile.mkdtemp(prefix="sluice-scaling-", dir=base)
    out = []
    try:
        path = os.path.join(work, "events.ndjson")
        log("%s events, %s keys: generating" % (short(events), short(groups)))
        t0 = time.monotonic()
        subprocess.run([args.sluice, "generate", "--profile", "keyed", "--set", "groups=%d" % groups,
                        "--set", "spacing=1us", "--count", str(events), "--rate", "0", "--seed", "5",
                        "--to", path], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        gen_s = time.monotonic() - t0
        input_bytes = os.path.getsize(path)
        expected = None
        for sink_name in args.sinks:
            sink = SqliteSink(work) if sink_name == "sqlite" else MysqlSink(args.mysql)
            try:
                with open(path, "rb") as f:  # warm the page cache: the run measures the engine
                    while f.read(1 << 24):
                        pass
                log("%s events, %s keys: running sluice into %s (%.1f MB input)" % (
                    short(events), short(groups), sink.name, input_bytes / 1e6))
                m = run_sluice(args.sluice, path, sink.uri, work)
                if m["summary"].get("records_in") != events:
                    raise WrongResult("sluice read %s records of %d" % (
                        m["summary"].get("records_in"), events))
                if expected is None:
                    log("%s events, %s keys: computing the expected table from the file" % (
                        short(events), short(groups)))
                    expected, rows = expected_groups(path)
                    if rows != events:
                        raise WrongResult("the file has %d lines, %d generated" % (rows, events))
                    if expected.num_rows != min(events, groups):
                        raise WrongResult("%d distinct keys in the file, the profile promises %d" % (
                            expected.num_rows, min(events, groups)))
                n = check_table(sink, expected, events)
                size = sink.size()
                if args.self_check and sink_name == "sqlite":
                    shutil.copyfile(sink.db, sink.db + ".good")
                    self_check(sink, expected, events)
            finally:
                sink.drop()
            out.append(result_row(events, groups, n, input_bytes, gen_s, sink_name, m, size))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def result_row(events, groups, n, input_bytes, gen_s, sink_name, m, size):
    cpu = m["user_s"] + m["sys_s"]
    state = (size["table_bytes"] or 0) + (size["index_bytes"] or 0)
    r = {"events": events, "groups_setting": groups, "groups": n, "sink": sink_name,
         "input_bytes": input_bytes,
         "generate_s": round(gen_s, 2), "wall_s": round(m["wall_s"], 3),
         "cpu_user_s": round(m["user_s"], 3), "cpu_sys_s": round(m["sys_s"], 3),
         "events_per_cpu_s": round(events / cpu) if cpu > 0 else None,
         "events_per_s": round(events / m["wall_s"]) if m["wall_s"] > 0 else None,
         "peak_rss_mib": round(m["peak_rss_mib"], 1),
         "sink_table_bytes": size["table_bytes"], "sink_index_bytes": size["index_bytes"],
         "sink_file_bytes": size["file_bytes"], "state_blob_bytes": size["state_blob_bytes"],
         "sink_bytes_per_group": round(state / n, 1) if n and size["table_bytes"] is not None else None,
         "checkpoints": m["checkpoints"],
         "rows_upserted": m["summary"].get("rows_upserted"),
         "checkpoint_mean_s": None if m["checkpoint_mean_s"] is None else round(m["checkpoint_mean_s"], 4),
         "checkpoint_max_s": None if m["checkpoint_max_s"] is None else round(m["checkpoint_max_s"], 4),
         "checkpoint_last_s": None if m["checkpoint_last_s"] is None else round(m["checkpoint_last_s"], 4),
         "check": "table == per-key counts and sums of the file (pyarrow)"}
    log("%8s events %8s groups %-6s %10s ev/CPU-s  wall %7.2f s  RSS %7.1f MiB  %6s B/group  "
        "%s checkpoints (mean %s s, max %s s)  [ok]" % (
            short(events), short(n), sink_name, r["events_per_cpu_s"], r["wall_s"],
            r["peak_rss_mib"], r["sink_bytes_per_group"], r["checkpoints"],
            r["checkpoint_mean_s"], r["checkpoint_max_s"]))
    return r


def markdown(results):
    lines = ["| sink | events | groups | events/CPU-s | wall s | peak RSS MiB | sink B/group | state blob B "
             "| checkpoints | rows written | checkpoint mean / max s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "skipped" in r:
            lines.append("| | %s | %s | skipped: %s | | | | | | | |" % (
                short(r["events"]), short(r["groups_setting"]), r["skipped"]))
            continue
        lines.append("| %s | %s | %s | %s | %.2f | %.1f | %s | %s | %s | %s | %s / %s |" % (
            r["sink"], short(r["events"]), short(r["groups"]), "{:,}".format(r["events_per_cpu_s"]),
            r["wall_s"], r["peak_rss_mib"], r["sink_bytes_per_group"], r["state_blob_bytes"],
            r["checkpoints"], "{:,}".format(r["rows_upserted"] or 0), r["checkpoint_mean_s"],
            r["checkpoint_max_s"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matrix", default=os.environ.get("SCALING", "default") or "default",
                    choices=sorted(MATRICES))
    ap.add_argument("--events", help="event counts at the fixed cardinality (e.g. 1M,10M)")
    ap.add_argument("--groups", help="cardinalities at the fixed event count (e.g. 1k,1M)")
    ap.add_argument("--fixed-groups", help="the cardinality of the events axis")
    ap.add_argument("--fixed-events", help="the event count of the cardinality axis")
    ap.add_argument("--sluice", default=os.path.join(REPO, "build-bench", "sluice"))
    ap.add_argument("--work-dir", default=tempfile.gettempdir(),
                    help="where each run's input and database live (deleted after the run)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--sinks", default="sqlite",
                    help="sqlite, mysql or both (sqlite,mysql): each input goes through each")
    ap.add_argument("--mysql", default="127.0.0.1:3306", help="the MariaDB/MySQL of --sinks mysql")
    ap.add_argument("--no-save", action="store_true", help="print only, write no results file")
    ap.add_argument("--self-check", action="store_true",
                    help="also show that the result check fails on a changed table (smoke test)")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    args.sinks = [x for x in args.sinks.split(",") if x]
    if not args.sinks or any(x not in ("sqlite", "mysql") for x in args.sinks):
        ap.error("--sinks takes sqlite, mysql or both")
    ev_axis, fixed_groups, group_axis, fixed_events = MATRICES[args.matrix]
    if args.events:
        ev_axis = [parse_count(x) for x in args.events.split(",") if x]
    if args.groups is not None:
        group_axis = [parse_count(x) for x in args.groups.split(",") if x]
    if args.fixed_groups:
        fixed_groups = parse_count(args.fixed_groups)
    if args.fixed_events:
        fixed_events = parse_count(args.fixed_events)
    plan = [(e, fixed_groups) for e in ev_axis]
    plan += [(fixed_events, g) for g in group_axis if (fixed_events, g) not in plan]

    load = os.getloadavg()
    log("sluice %s; %d runs; load average %.2f %.2f %.2f" % (args.sluice, len(plan), *load))
    results = []
    failed = None
    for events, groups in plan:
        try:
            results.extend(one_run(args, events, groups, args.work_dir))
        except WrongResult as e:
            failed = "%s events, %s groups: WRONG RESULT: %s" % (short(events), short(groups), e)
            log(failed)
            break
    done = [r for r in results if "skipped" not in r and r["groups_setting"] == fixed_groups
            and r["sink"] == args.sinks[0]]
    bounded = None
    if len(done) >= 2:
        lo = min(done, key=lambda r: r["events"])
        hi = max(done, key=lambda r: r["events"])
        bounded = {"sink": args.sinks[0], "groups": fixed_groups, "events_low": lo["events"], "events_high": hi["events"],
                   "rss_low_mib": lo["peak_rss_mib"], "rss_high_mib": hi["peak_rss_mib"],
                   "rss_ratio": round(hi["peak_rss_mib"] / lo["peak_rss_mib"], 2)}
    out = {"kind": "scaling", "matrix": args.matrix,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": " ".join(sys.argv), "sluice": args.sluice,
           "load_average_start": [round(x, 2) for x in load],
           "load_average_end": [round(x, 2) for x in os.getloadavg()],
           "machine": machine.describe(REPO, os.path.dirname(args.sluice)), "results": results, "memory_bounded": bounded,
           "aborted": failed}
    print(markdown(results))
    if bounded:
        print("\npeak RSS at %s groups: %.1f MiB at %s events, %.1f MiB at %s events (ratio %.2f)" % (
            short(fixed_groups), bounded["rss_low_mib"], short(bounded["events_low"]),
            bounded["rss_high_mib"], short(bounded["events_high"]), bounded["rss_ratio"]))
    print("load average: start %s, end %s" % (out["load_average_start"], out["load_average_end"]))
    if not args.no_save:
        os.makedirs(args.out_dir, exist_ok=True)
        path = os.path.join(args.out_dir, "%s-%s-scaling.json" % (
            time.strftime("%Y%m%d%H%M%S", time.gmtime()), socket.gethostname()))
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        log("results in %s" % os.path.relpath(path, REPO))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
