#!/usr/bin/env python3
"""sluice, Spark Structured Streaming and Flink side by side on the recruitment job
(`make bench-spark`: sluice and Spark; `make bench-flink`: sluice and Flink; `make bench-compare`:
all three in one run).

  bench/spark/run_bench.py [--engines sluice,spark,flink] [--build-dir build-bench] [--quick]
                           [--events N] [--rates 10000,100000] [--duration S]
                           [--sluice-interval 200ms] [--only throughput,freshness]
                           [--out-dir bench/results] [--keep] [--name-prefix bench_cmp]

The engines read the same Kafka topic (tracking records as JSON, from `sluice generate
--profile recruitment`) and keep table `events` of their own MariaDB database current:
sluice with examples/recruitment.toml, Spark with bench/spark/recruitment_spark.py (local[2],
foreachBatch upsert, exactly once per batch), Flink with bench/flink/recruitment_flink.py
(Flink SQL on a local mini-cluster, parallelism 2, continuous GROUP BY into the JDBC upsert
sink).

1. Throughput: N events published to a 2-partition topic with kcat, then each engine processes
   them to the end and exits (sluice `run --until-caught-up`, Spark trigger(availableNow=True),
   Flink scan.bounded.mode latest-offset). Measured from outside, for the whole process tree
   (Spark, Flink: the Python driver and its JVM):
     wall         process start to exit (start-up included: the JVM, the Spark session, the
                  Flink mini-cluster)
     processing   the engine's own time for the data (sluice: its summary line; Spark: the
                  sum of its batches' triggerExecution; Flink: the job's net runtime),
                  start-up excluded
     CPU-s        user + sys of every process of the tree, exact (this script is a child
                  subreaper, so every descendant is waited for and counted)
     peak RSS     the largest sum of VmRSS over the tree, sampled every 50 ms
2. Freshness: for each offered rate, a 1-partition topic holding 2000 warm-up records that
   every engine ignores (custom_track 'alive'); the engine is started, reads them (Spark plans,
   compiles and commits its first batch; Flink counts them into `_flink_ready`) and is left
   consuming; bench/lib/freshness.py (sluice_bench_fresh produce + poll) sends clean records
   (each counts once in SUM(clicks + conversion + qualified_application +
   disqualified_application)) at the rate for S seconds and reports p50/p99/max of production
   -> visible in MySQL. sluice runs with checkpoint_interval = --sluice-interval; Spark runs
   micro-batches back to back (the default trigger); Flink checkpoints, closes mini-batches and
   flushes its JDBC sink every --sluice-interval too.

Every `events` table (every engine, every run) is compared with the independent recomputation
(tests/tools/recompute_recruitment.py over exactly the records published, sources = 'kafka')
by tests/tools/compare_tables.py before any number is kept; a difference aborts with the
differing rows (exit 1). Results: a table with the ratios on stdout and
bench/results/<UTC time>-<host>-<spark|flink|compare>[-quick].json/.csv. Topics and databases:
<name prefix>_* (bench_spark, bench_flink or bench_cmp by the engines; --name-prefix).
Kafka 127.0.0.1:9092 and MariaDB 127.0.0.1:3306 (root) come from `make services`.
"""

import argparse
import csv
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import freshness  # noqa: E402
import machine  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

BROKER = "127.0.0.1:9092"
MYSQL_HOST, MYSQL_PORT = "127.0.0.1", 3306
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
SPARK_JOB = os.path.join(HERE, "recruitment_spark.py")
FLINK_JOB = os.path.join(REPO, "bench", "flink", "recruitment_flink.py")
ENGINES = ("sluice", "spark", "flink")
TITLE = {"sluice": "sluice", "spark": "Spark", "flink": "Flink"}
KEY = list(rr.EVENTS_KEY)
COUNT_SQL = ("SELECT SUM(clicks + conversion + qualified_application + disqualified_application) "
             "FROM events")
PR_SET_CHILD_SUBREAPER = 36


class WrongResult(Exception):
    """An engine's table differs from the recomputation: no number may be reported."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, timeout=600, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed ({r.returncode}): "
                           f"{r.stderr.strip()[-800:]}")
    return r.stdout


def mysql(sql, database=None):
    client = shutil.which("mariadb") or shutil.which("mysql")
    cmd = [client, f"--host={MYSQL_HOST}", f"--port={MYSQL_PORT}", "--user=root",
           "--protocol=TCP", "--batch", "--connect-timeout=5"]
    if database:
        cmd.append(database)
    r = subprocess.run(cmd, input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise RuntimeError("mariadb: " + r.stderr.strip())
    return [line.split("\t") for line in r.stdout.split("\n") if line]


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------- process trees

def _proc_table():
    """pid -> (ppid, rss bytes) for every process."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/statm") as f:
                rss_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = (int(fields[1]), rss_pages * page)
    return out


def tree_rss(roots):
    """Sum of RSS over `roots` and all their descendants."""
    table = _proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack, total = set(), [r for r in roots if r in table], 0
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        stack.extend(children.get(pid, ()))
    return total


class RssSampler(threading.Thread):
    """Peak of tree_rss(roots()) sampled every `interval` seconds until stop()."""

    def __init__(self, roots, interval=0.05):
        super().__init__(daemon=True)
        self.roots, self.interval, self.peak = roots, interval, 0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, tree_rss(self.roots()))
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()
        return self.peak


def become_subreaper():
    """Orphaned descendants (a JVM whose Python parent exited first) are re-parented to this
    process, so that waiting for them adds their CPU time to RUSAGE_CHILDREN."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_all(timeout):
    """Waits for every child (including adopted orphans); kills what is left after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                for p, (ppid, _) in _proc_table().items():
                    if ppid == os.getpid():
                        try:
                            os.kill(p, signal.SIGKILL)
                        except OSError:
                            pass
            time.sleep(0.02)


def run_measured(cmd, log_path, timeout, env=None, cwd=REPO):
    """Runs cmd to its end as the only child; returns wall, user, sys, peak RSS (bytes)."""
    before = os.times()
    with open(log_path, "w") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = RssSampler(lambda: [proc.pid] + [p for p, (pp, _) in _proc_table().items()
                                                   if pp == os.getpid() and p != proc.pid])
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            rc = f"killed after {timeout} s"
        wall = time.monotonic() - start
        reap_all(60)
        peak = sampler.stop()
    after = os.times()
    user = after.children_user - before.children_user
    sys_ = after.children_system - before.children_system
    if rc != 0:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-2500:]
        raise RuntimeError(f"{os.path.basename(cmd[0])} {os.path.basename(cmd[1])} exited {rc}:"
                           f"\n{tail}")
    return wall, user, sys_, peak


# ------------------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.sluice = os.path.join(self.build, "sluice")
        self.fresh_tool = os.path.join(self.build, "sluice_bench_fresh")
        self.python = os.path.abspath(args.spark_python)
        self.flink_python = os.path.abspath(args.flink_python)
        self.engines = [e for e in args.engines.split(",") if e]
        self.name_prefix = args.name_prefix
        self.work = os.path.join(self.build, "bench-spark-work")
        self.stamp = time.strftime("%Y%m%d%H%M%S")
        self.databases, self.topics = [], []
        self.warmup_count = 2000
        self.throughput, self.freshness = {}, []
        os.makedirs(self.work, exist_ok=True)

    # ----------------------------------------------------------------- helpers
    def topic(self, name, partitions):
        t = f"{self.name_prefix}_{name}_{self.stamp}"
        sh([os.path.join(REPO, "scripts", "kafka-topics.sh"), "--create", "--topic", t,
            "--partitions", str(partitions), "--replication-factor", "1"], timeout=120)
        self.topics.append(t)
        return t

    def database(self, name):
        db = f"{self.name_prefix}_{name}"
        mysql(f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4;")
        self.databases.append(db)
        return db

    def generate(self, count, path, seed):
        if os.path.exists(path) and os.path.exists(path + ".done"):
            return path
        log(f"generating {count} recruitment events -> {os.path.relpath(path, REPO)}")
        sh([self.sluice, "generate", "--profile", "recruitment", "--count", str(count),
            "--rate", "0", "--seed", str(seed), "--to", path], cwd=REPO, timeout=900)
        open(path + ".done", "w").close()
        return path

    def publish(self, path, topic, partitions):
        """Every line of path as one message (no key: spread over the partitions)."""
        n = sum(1 for line in open(path, "rb") if line.strip())
        log(f"publishing {n} records to {topic}")
        sh(["kcat", "-P", "-b", BROKER, "-t", topic, "-l", "-X", "linger.ms=20",
            "-X", "batch.num.messages=10000", path], timeout=900)
        out = sh(["kcat", "-Q", "-b", BROKER] +
                 sum([["-t", f"{topic}:{p}:-1"] for p in range(partitions)], []), timeout=60)
        ends = [int(x) for x in re.findall(r"offset (\d+)", out)]
        if len(ends) != partitions or sum(ends) != n:
            raise RuntimeError(f"{topic}: end offsets {ends}, published {n}")
        return n

    def expected(self, tracking, label):
        db = os.path.join(self.work, f"expected-{label}.db")
        t = time.monotonic()
        stats = rr.recompute(tracking, JOBS, db, "kafka")
        log(f"recomputation of {label}: {stats['rows']} rows, {stats['counted']} counted, "
            f"{stats['ignored']} ignored, {stats['dead_lettered']} dead-lettered "
            f"({time.monotonic() - t:.1f} s)")
        return db, stats

    def check(self, database, expected_db, label):
        """events of `database` == the recomputation, or WrongResult with the differences."""
        rows = mysql("SELECT * FROM events", database)
        path = os.path.join(self.work, f"{database}.events.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            for r in rows:
                w.writerow(["" if v == "NULL" else v for v in r])
        diffs = compare_tables.compare(path, expected_db, KEY, "events", "events", max_report=20)
        if diffs:
            raise WrongResult(f"{label}: `{database}`.events differs from the recomputation "
                              f"(left: MySQL, right: recompute):\n    " + "\n    ".join(diffs))
        log(f"{label}: events == recomputation ({len(rows) - 1} rows)")
        return f"== recomputation ({len(rows) - 1} rows)"

    def pipeline(self, group, interval=None):
        """examples/recruitment.toml with its own consumer group (and checkpoint interval)."""
        with open(PIPELINE) as f:
            text = f.read()
        text, n = re.subn(r'(?m)^(name = "tracking")$', r'\1' + f'\ngroup = "{group}"', text)
        if n != 1:
            raise RuntimeError(f"{PIPELINE}: no `name = \"tracking\"` line under [source]")
        if interval:
            text, n = re.subn(r'(?m)^checkpoint_interval\s*=\s*"[^"]*"',
                              f'checkpoint_interval = "{interval}"', text)
            if n != 1:
                raise RuntimeError(f"{PIPELINE}: no checkpoint_interval line")
        path = os.path.join(self.work, f"recruitment-{group}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def sluice_cmd(self, pipeline, topic, database, label):
        return [self.sluice, "run", pipeline, "--var", f"TRACKING=kafka://{BROKER}/{topic}",
                "--var", f"JOBS={JOBS}",
                "--var", f"SINK=mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{database}",
                "--var", "DLQ=" + os.path.join(self.work, f"{label}-{self.stamp}.dlq.ndjson")]

    def spark_cmd(self, topic, database, label):
        ckpt = os.path.join(self.work, f"checkpoint-{label}-{self.stamp}")
        shutil.rmtree(ckpt, ignore_errors=True)
        return [self.python, SPARK_JOB, "--topic", topic, "--database", database,
                "--brokers", BROKER, "--mysql", f"{MYSQL_HOST}:{MYSQL_PORT}", "--jobs", JOBS,
                "--checkpoint", ckpt, "--jars-dir", self.args.jars_dir,
                "--shuffle-partitions", str(self.args.spark_shuffle_partitions)]

    def flink_cmd(self, topic, database, label, interval):
        ckpt = os.path.join(self.work, f"checkpoint-{label}-{self.stamp}")
        shutil.rmtree(ckpt, ignore_errors=True)
        return [self.flink_python, FLINK_JOB, "--topic", topic, "--database", database,
                "--brokers", BROKER, "--mysql", f"{MYSQL_HOST}:{MYSQL_PORT}", "--jobs", JOBS,
                "--group", f"{self.name_prefix}_{label}_{self.stamp}", "--checkpoint-dir", ckpt,
                "--jars-dir", self.args.flink_jars_dir,
                "--parallelism", str(self.args.flink_parallelism),
                "--checkpoint-interval", interval, "--flush-interval", interval]

    @staticmethod
    def env():
        env = dict(os.environ)
        env.pop("SLUICE_MYSQL_PASSWORD", None)
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        return env

    # ----------------------------------------------------------------- 1. throughput
    def run_throughput(self):
        n = self.args.events
        src = self.generate(n, os.path.join(self.work, f"tracking-{n}.ndjson"), 7)
        topic = self.topic("tp", 2)
        published = self.publish(src, topic, 2)
        expected_db, stats = self.expected(src, f"tp-{n}")

        def one(engine, cmd, parse):
            database_label = f"{engine}_tp"
            log(f"throughput: {engine} over {published} records")
            wall, user, sys_, rss = run_measured(cmd, os.path.join(self.work,
                                                                   f"{database_label}.log"),
                                                 timeout=self.args.run_timeout, env=self.env())
            with open(os.path.join(self.work, f"{database_label}.log"), errors="replace") as f:
                processing = parse(f.read())
            cpu = user + sys_
            r = {"engine": engine, "events": published, "wall_s": round(wall, 3),
                 "processing_s": round(processing, 3) if processing else None,
                 "cpu_user_s": round(user, 3), "cpu_sys_s": round(sys_, 3),
                 "events_per_s": round(published / wall),
                 "events_per_s_processing": round(published / processing) if processing else None,
                 "events_per_cpu_s": round(published / cpu) if cpu else None,
                 "cpu_s_per_million": round(cpu / published * 1e6, 2),
                 "peak_rss_mib": round(rss / 2**20, 1)}
            log(f"  {engine}: wall {wall:.2f} s, processing {processing or 0:.2f} s, "
                f"CPU {cpu:.2f} s, peak RSS {r['peak_rss_mib']} MiB")
            return r

        def sluice_time(text):
            m = re.search(r"([\d,]+) records in ([\d.]+)s", text)
            return float(m.group(2)) if m else None

        def spark_time(text):
            m = re.search(r"batches ([\d.]+) s", text)
            return float(m.group(1)) if m else None

        def flink_time(text):
            m = re.search(r"net runtime ([\d.]+) s", text)
            return float(m.group(1)) if m else None

        self.throughput = {"topic_partitions": 2, "events": published,
                           "recompute": {k: stats[k] for k in ("rows", "counted", "ignored",
                                                               "dead_lettered")}}
        for engine in self.engines:
            db = self.database(f"{engine}_tp")
            if engine == "sluice":
                cmd = self.sluice_cmd(self.pipeline(f"{self.name_prefix}_tp_{self.stamp}"), topic,
                                      db, "sluice_tp") + ["--until-caught-up"]
                parse = sluice_time
            elif engine == "spark":
                cmd, parse = self.spark_cmd(topic, db, "spark_tp") + ["--available-now"], \
                    spark_time
            else:
                # The checkpoint interval of examples/recruitment.toml, as sluice runs it here.
                cmd = self.flink_cmd(topic, db, "flink_tp", "1 s") + ["--bounded"]
                parse = flink_time
            r = one(engine, cmd, parse)
            r["check"] = self.check(db, expected_db, f"throughput {engine}")
            self.throughput[engine] = r

    # ----------------------------------------------------------------- 2. freshness
    def clean_records(self, count):
        """`count` generated records that each count exactly once in COUNT_SQL: custom_track
        one of the counted four, a job_id, a version-1 TimeUUID, no decoding problem (checked
        with the recomputation's own decoder)."""
        path = os.path.join(self.work, f"fresh-clean-{count}.ndjson")
        if os.path.exists(path + ".done"):
            return path
        raw = self.generate(int(count * 1.3) + 1000,
                            os.path.join(self.work, f"fresh-raw-{count}.ndjson"), 23)
        kept = 0
        with open(raw, "rb") as f, open(path, "wb") as out:
            for line in f:
                try:
                    rec = rr.decode_json_record(line.decode())
                except rr.DeadLetter:
                    continue
                if rec["custom_track"] not in rr.COUNTED_TRACKS or rec["job_id"] is None:
                    continue
                if rr.timeuuid_time(rec["create_time"]) is None:
                    continue
                out.write(line)
                kept += 1
                if kept == count:
                    break
        if kept < count:
            raise RuntimeError(f"only {kept} clean records in {raw}")
        open(path + ".done", "w").close()
        return path

    def warmup_records(self, count=2000):
        """`count` generated records that both engines read and ignore (custom_track 'alive'):
        published before the engine starts, they make it run its first batch (Spark plans and
        compiles its query then) without changing `events` or the freshness sum."""
        path = os.path.join(self.work, f"warmup-{count}.ndjson")
        if os.path.exists(path + ".done"):
            return path
        raw = self.generate(count * 30, os.path.join(self.work, f"warmup-raw-{count}.ndjson"), 5)
        kept = 0
        with open(raw, "rb") as f, open(path, "wb") as out:
            for line in f:
                if json.loads(line).get("custom_track") == "alive":
                    out.write(line)
                    kept += 1
                    if kept == count:
                        break
        open(path + ".done", "w").close()
        return path

    def prefix(self, path, n):
        out = f"{path}.first-{n}.ndjson"
        with open(path, "rb") as f, open(out, "wb") as o:
            for i, line in enumerate(f):
                if i >= n:
                    break
                o.write(line)
        return out

    def start_sluice(self, rate, database, topic, log_path):
        port = 19500 + os.getpid() % 400
        pipeline = self.pipeline(f"{self.name_prefix}_fresh_{rate}_{self.stamp}",
                                 self.args.sluice_interval)
        cmd = self.sluice_cmd(pipeline, topic, database, f"sluice_fresh_{rate}") + [
            "--http", f"127.0.0.1:{port}"]
        out = open(log_path, "w")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=self.env())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sluice exited {proc.returncode} before consuming "
                                   f"(see {log_path})")
            # Ready: it has read the warm-up records.
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status",
                                            timeout=2) as r:
                    st = json.loads(r.read())
                if st.get("counts", {}).get("records_in", 0) >= self.warmup_count:
                    time.sleep(1.0)  # its checkpoint of the warm-up records
                    return proc, out
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("sluice did not read the warm-up records within 120 s")

    def start_spark(self, rate, database, topic, log_path):
        ready = os.path.join(self.work, f"spark-fresh-{rate}.ready")
        if os.path.exists(ready):
            os.remove(ready)
        cmd = self.spark_cmd(topic, database, f"spark_fresh_{rate}") + ["--ready-file", ready]
        out = open(log_path, "w")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=self.env())
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Spark job exited {proc.returncode} before consuming "
                                   f"(see {log_path})")
            if os.path.exists(ready):  # its first batch (the warm-up records) is committed
                return proc, out
            time.sleep(0.2)
        raise RuntimeError("the Spark query did not start within 300 s")

    def start_flink(self, rate, database, topic, log_path):
        cmd = self.flink_cmd(topic, database, f"flink_fresh_{rate}", self.args.sluice_interval)
        out = open(log_path, "w")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=self.env())
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Flink job exited {proc.returncode} before consuming "
                                   f"(see {log_path})")
            # Ready: the job has read the warm-up records and its JDBC sink has written.
            try:
                rows = mysql("SELECT `warmup_records` FROM `_flink_ready`", database)
                if len(rows) > 1 and int(rows[1][0]) >= self.warmup_count:
                    time.sleep(1.0)  # a checkpoint of the warm-up records
                    return proc, out
            except (RuntimeError, ValueError):
                pass  # the table does not exist yet
            time.sleep(0.5)
        raise RuntimeError("the Flink job did not read the warm-up records within 300 s")

    def run_freshness(self):
        duration = self.args.duration
        rates = [int(r) for r in self.args.rates.split(",") if r]
        clean = self.clean_records(max(rates) * duration)
        warmup = self.warmup_records(self.warmup_count)
        expected = {}
        for rate in rates:
            for engine in self.engines:
                start = getattr(self, "start_" + engine)
                label = f"{engine}_fresh_{rate // 1000}k"
                topic = self.topic(f"fresh_{engine}_{rate}", 1)
                self.publish(warmup, topic, 1)
                database = self.database(label)
                log_path = os.path.join(self.work, f"{label}.log")
                log(f"freshness: {engine}, {rate} records/s for {duration} s")
                t0 = time.monotonic()
                before = os.times()
                proc, out = start(rate, database, topic, log_path)
                sampler = RssSampler(lambda: [proc.pid], interval=0.1)
                sampler.start()
                try:
                    r = freshness.measure(self.fresh_tool, BROKER, topic, clean, rate, duration,
                                          COUNT_SQL, os.path.join(self.work, "fresh"),
                                          mysql=f"{MYSQL_HOST}:{MYSQL_PORT}", user="root",
                                          database=database,
                                          settle_timeout=self.args.settle_timeout)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    reap_all(60)
                    out.close()
                    peak = sampler.stop()
                after = os.times()
                row = {"engine": engine, "offered_rate": rate, "duration_s": duration,
                       "produced": r["produced"], "visible": r["visible"],
                       "missing": r["missing"], "producer_max_behind_ms": r["max_behind_ms"],
                       "engine_peak_rss_mib": round(peak / 2**20, 1),
                       "engine_cpu_s": round((after.children_user - before.children_user) +
                                             (after.children_system - before.children_system),
                                             2),
                       "engine_wall_s": round(time.monotonic() - t0, 1)}
                if engine == "sluice":
                    row["checkpoint_interval"] = self.args.sluice_interval
                elif engine == "spark":
                    row["trigger"] = "default (micro-batches back to back)"
                else:
                    row["checkpoint_interval"] = self.args.sluice_interval
                    row["flush_interval"] = self.args.sluice_interval
                if r["missing"] or r["poll_rc"] != 0:
                    # Not a wrong result: the engine did not keep up within the settle time.
                    row["kept_up"] = False
                    row["note"] = (f"{r['missing']} of {r['produced']} records not visible "
                                   f"{self.args.settle_timeout} s after the producer finished")
                    log(f"  {engine} at {rate}/s did not keep up: {row['note']}")
                else:
                    row["kept_up"] = True
                    n = r["produced"]
                    if n not in expected:
                        expected[n] = self.expected(self.prefix(clean, n), f"fresh-{n}")[0]
                    row["check"] = self.check(database, expected[n], f"freshness {label}")
                    row.update({k: round(r[k], 1) for k in ("p50_ms", "p99_ms", "max_ms",
                                                            "mean_ms")})
                    log(f"  {engine} at {rate}/s: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} "
                        f"ms, max {row['max_ms']} ms ({n} records)")
                self.freshness.append(row)

    # ----------------------------------------------------------------- report
    def report(self):
        """The side-by-side text: one column per engine, then each other engine's ratio to
        sluice (how many times better sluice is; above 1 means sluice is better)."""
        lines = []
        engines = [e for e in self.engines if e in self.throughput] or self.engines
        others = [e for e in engines if e != "sluice"]

        def ratio(a, b):
            return f"{a / b:.1f}x" if a and b else "n/a"

        def row(name, cells):
            lines.append(f"  {name:28}" + "".join(f"{c:>14}" for c in cells))
        t = self.throughput
        if t:
            lines.append(f"Throughput, Kafka (2 partitions, {t['events']:,} events) -> MySQL "
                         "events, caught up and exit:")
            row("", [TITLE[e] for e in engines] + [f"sluice/{TITLE[e]}" for e in others])
            s = t.get("sluice")

            def line(name, key, fmt, better="higher"):
                cells = [fmt(t[e][key]) if t[e].get(key) is not None else "-" for e in engines]
                for e in others:
                    if not s:
                        cells.append("")
                    elif better == "higher":
                        cells.append(ratio(s[key], t[e][key]))
                    elif better == "lower":
                        cells.append("1/" + ratio(t[e][key], s[key]))
                    else:
                        cells.append("")
                row(name, cells)
            line("wall time (s)", "wall_s", lambda v: f"{v:.2f}", None)
            line("events/s (wall)", "events_per_s", lambda v: f"{v:,}")
            line("processing time (s)", "processing_s", str, None)
            line("events/s (processing)", "events_per_s_processing", lambda v: f"{v:,}")
            line("CPU-s per million events", "cpu_s_per_million", str, "lower")
            line("events per CPU-s", "events_per_cpu_s", lambda v: f"{v:,}")
            line("peak RSS (MiB)", "peak_rss_mib", str, "lower")
            row("check", ["ok" for _ in engines])
        if self.freshness:
            lines.append("Freshness, Kafka (1 partition) -> visible in MySQL (ms), "
                         f"sluice checkpoint_interval {self.args.sluice_interval}, "
                         "Spark default trigger, Flink checkpoint, mini-batch and sink flush "
                         f"{self.args.sluice_interval}:")
            lines.append(f"  {'rate/s':>8} {'engine':8}{'p50':>10}{'p99':>10}{'max':>10}"
                         f"{'RSS MiB':>10}{'CPU-s':>8}  note")
            for r in self.freshness:
                def v(x):
                    return f"{r[x]:.0f}" if r.get(x) is not None else "-"
                lines.append(f"  {r['offered_rate']:>8} {r['engine']:8}{v('p50_ms'):>10}"
                             f"{v('p99_ms'):>10}{v('max_ms'):>10}"
                             f"{r['engine_peak_rss_mib']:>10}{r['engine_cpu_s']:>8}  "
                             f"{r.get('note', '')}")
            by = {(r["offered_rate"], r["engine"]): r for r in self.freshness}
            for rate in sorted({r["offered_rate"] for r in self.freshness}):
                a = by.get((rate, "sluice"))
                for e in others:
                    b = by.get((rate, e))
                    if a and b and a.get("p50_ms") and b.get("p50_ms"):
                        lines.append(f"  {rate}/s: {TITLE[e]}/sluice p50 "
                                     f"{b['p50_ms'] / a['p50_ms']:.1f}x, p99 "
                                     f"{b['p99_ms'] / a['p99_ms']:.1f}x, "
                                     f"max {b['max_ms'] / a['max_ms']:.1f}x")
        return "\n".join(lines)

    def cleanup(self):
        if self.args.keep:
            log(f"kept databases {', '.join(self.databases)} and topics {', '.join(self.topics)}")
            return
        for db in self.databases:
            try:
                mysql(f"DROP DATABASE IF EXISTS `{db}`")
            except RuntimeError as e:
                log(f"could not drop {db}: {e}")
        for d in os.listdir(self.work):
            if d.startswith("checkpoint-") and d.endswith(self.stamp):
                shutil.rmtree(os.path.join(self.work, d), ignore_errors=True)
        for t in self.topics:
            try:
                sh([os.path.join(REPO, "scripts", "kafka-topics.sh"), "--delete", "--topic", t],
                   timeout=120)
            except (RuntimeError, subprocess.SubprocessError) as e:
                log(f"could not delete topic {t}: {e}")

    def main(self):
        for what, ok in (("Kafka at " + BROKER, port_open("127.0.0.1", 9092)),
                         (f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT}",
                          port_open(MYSQL_HOST, MYSQL_PORT)),
                         ("kcat", shutil.which("kcat")),
                         ("the mariadb client", shutil.which("mariadb") or shutil.which("mysql")),
                         (self.sluice, os.access(self.sluice, os.X_OK)),
                         (self.fresh_tool, "freshness" not in self.args.only
                          or os.access(self.fresh_tool, os.X_OK)),
                         (f"pyspark in {self.python} (bench/spark/setup.sh)",
                          "spark" not in self.engines or os.access(self.python, os.X_OK)),
                         (f"apache-flink in {self.flink_python} (bench/flink/setup.sh)",
                          "flink" not in self.engines or os.access(self.flink_python, os.X_OK)),
                         (f"engines {self.args.engines} (from {', '.join(ENGINES)})",
                          self.engines and set(self.engines) <= set(ENGINES))):
            if not ok:
                print(f"bench: {what} not available (make services; bench/spark/setup.sh, "
                      "bench/flink/setup.sh)", file=sys.stderr)
                return 2
        # A stopped benchmark still drops its databases and topics (the finally below).
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
        if not become_subreaper():
            log("note: not a child subreaper; CPU of orphaned descendants may be missed")
        desc = machine.describe(REPO, self.build)
        log(f"machine: {desc['cpu_model']}, {desc['cores']} cores, {desc['ram_gib']} GiB, "
            f"load {desc['load_average_at_start']}")
        started = time.monotonic()
        aborted = None
        steps = [s for s in ("throughput", "freshness") if s in self.args.only.split(",")]
        try:
            for s in steps:
                getattr(self, "run_" + s)()
        except WrongResult as e:
            aborted = str(e)
        finally:
            self.cleanup()
        if aborted:
            print(f"WRONG RESULT, no numbers reported:\n{aborted}")
            return 1
        java = subprocess.run(["java", "-version"], stderr=subprocess.PIPE,
                              text=True).stderr.split("\n")[0]
        doc = {"date": datetime.datetime.now(datetime.timezone.utc)
                       .strftime("%Y-%m-%dT%H:%M:%SZ"),
               "command": " ".join(sys.argv), "quick": self.args.quick, "machine": desc,
               "engines": self.engines,
               "duration_s": round(time.monotonic() - started, 1),
               "throughput": self.throughput, "freshness": self.freshness}
        if "spark" in self.engines:
            pyspark_version = sh([self.python, "-c",
                                  "import pyspark; print(pyspark.__version__)"])
            doc["spark"] = {"pyspark": pyspark_version.strip(), "master": "local[2]",
                            "shuffle_partitions": self.args.spark_shuffle_partitions,
                            "java": java}
        if "flink" in self.engines:
            flink_version = sh([self.flink_python, "-c", "from importlib.metadata import "
                                "version; print(version('apache-flink'))"])
            doc["flink"] = {"apache-flink": flink_version.strip(), "mode": "local mini-cluster",
                            "parallelism": self.args.flink_parallelism,
                            "state_backend": "hashmap", "java": java,
                            "event_time": "from the TimeUUID in Flink SQL built-ins, in the job"}
        text = self.report()
        os.makedirs(self.args.out_dir, exist_ok=True)
        kind = ("compare" if len(self.engines) > 2 else
                [e for e in self.engines if e != "sluice"][0] if len(self.engines) > 1 else
                self.engines[0])
        base = os.path.join(self.args.out_dir, "%s-%s-%s%s" % (
            time.strftime("%Y%m%d-%H%M%S", time.gmtime()), desc["host"], kind,
            "-quick" if self.args.quick else ""))
        with open(base + ".json", "w") as f:
            json.dump(doc, f, indent=2)
        with open(base + ".csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["kind", "engine", "events_or_rate", "wall_s", "processing_s",
                        "events_per_s", "cpu_s_per_million", "peak_rss_mib", "p50_ms", "p99_ms",
                        "max_ms", "check"])
            for e in self.engines:
                r = self.throughput.get(e) if self.throughput else None
                if r:
                    w.writerow(["throughput", e, r["events"], r["wall_s"], r["processing_s"],
                                r["events_per_s"], r["cpu_s_per_million"], r["peak_rss_mib"],
                                "", "", "", r["check"]])
            for r in self.freshness:
                w.writerow(["freshness", r["engine"], r["offered_rate"], "", "", "", "",
                            r["engine_peak_rss_mib"], r.get("p50_ms", ""), r.get("p99_ms", ""),
                            r.get("max_ms", ""), r.get("check", r.get("note", ""))])
        print(text)
        print(f"results: {os.path.relpath(base, REPO)}.json (and .csv), "
              f"{doc['duration_s']:.0f} s")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--spark-python", default=os.path.join(REPO, "build", "bench-venv", "bin",
                                                           "python"))
    ap.add_argument("--jars-dir", default=os.path.join(REPO, "build", "bench-spark", "jars"))
    ap.add_argument("--engines", default="sluice,spark",
                    help="comma-separated, from sluice, spark, flink (in this order of runs)")
    ap.add_argument("--flink-python", default=os.path.join(REPO, "build", "bench-flink", "venv",
                                                           "bin", "python"))
    ap.add_argument("--flink-jars-dir", default=os.path.join(REPO, "build", "bench-flink",
                                                             "jars"))
    ap.add_argument("--flink-parallelism", type=int, default=2)
    ap.add_argument("--name-prefix", help="of topics and databases (default bench_spark, "
                                          "bench_flink or bench_cmp, by the engines)")
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--events", type=int, help="throughput input (default 1000000; quick 100000)")
    ap.add_argument("--rates", default="10000,100000", help="freshness offered rates, events/s")
    ap.add_argument("--duration", type=int, help="freshness seconds per run (default 15; quick 5)")
    ap.add_argument("--settle-timeout", type=int, default=60,
                    help="seconds an engine may take to show the last record after the producer")
    ap.add_argument("--sluice-interval", default="200ms",
                    help="sluice checkpoint_interval for the freshness runs")
    ap.add_argument("--spark-shuffle-partitions", type=int, default=2)
    ap.add_argument("--only", default="throughput,freshness")
    ap.add_argument("--run-timeout", type=int, default=900)
    ap.add_argument("--out-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--keep", action="store_true", help="keep the databases and topics")
    args = ap.parse_args()
    if args.events is None:
        args.events = 100_000 if args.quick else 1_000_000
    if args.duration is None:
        args.duration = 5 if args.quick else 15
    if args.name_prefix is None:
        engines = set(args.engines.split(","))
        args.name_prefix = ("bench_cmp" if {"spark", "flink"} <= engines else
                            "bench_flink" if "flink" in engines else "bench_spark")
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
