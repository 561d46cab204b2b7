#!/usr/bin/env python3
"""End-to-end benchmark of sluice (`make bench`): throughput, CPU, peak RSS and freshness.

  bench/run.py [--build-dir build-bench] [--quick] [--only NAME,...] [--skip-micro]
               [--fresh-intervals 1s,200ms] [--out-dir bench/results]

Every run executes the shipped example pipeline (examples/*.toml) with the `sluice` binary of
the build directory, as its own process, and measures it from outside:
  events/s          input records / wall time of the process (start to exit, so it includes
                    start-up, dimension loading and the final checkpoint)
  events/CPU-s      input records / (user + sys CPU seconds of the process and its threads)
  peak RSS          peak VmHWM of the process (/proc/PID/status, sampled every 5 ms)
Before a number is kept the run's output is checked against the independent recomputation
(tests/tools/recompute_*.py); a wrong result aborts the benchmark (exit 1).

Freshness (Kafka -> MySQL, recruitment): see bench/README.md and bench/lib/freshness.py.

Environment: BENCH_QUICK=1 is --quick. Kafka (127.0.0.1:9092) and MariaDB (127.0.0.1:3306, root)
come from `make services`; without them those runs are reported as skipped.
"""

import argparse
import csv
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import freshness  # noqa: E402
import machine  # noqa: E402
import compare_tables  # noqa: E402
import recompute_recruitment  # noqa: E402
import recompute_ysb  # noqa: E402

BROKER = "127.0.0.1:9092"
REGISTRY = "http://127.0.0.1:8081"
MYSQL = "127.0.0.1:3306"
SEED_CSV = os.path.normpath(os.path.join(REPO, "..", "shared", "seed-data",
                                         "TrannXuanTien__ETL-streaming-project", "tracking.csv"))
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
ADS = os.path.join(REPO, "examples", "data", "ysb_ads.csv")
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
RECRUITMENT_KEY = list(recompute_recruitment.EVENTS_KEY)
COUNT_SQL = ("SELECT SUM(clicks + conversion + qualified_application + disqualified_application) "
             "FROM events")

# Sizes: (full, quick).
SIZES = {
    "recruitment": (1_000_000, 100_000),
    "recruitment_csv": (1_000_000, 100_000),
    "viewlog": (1_000_000, 100_000),
    "parquet_files": (2_000_000, 200_000),  # a week of view_log (bench/parquet_files.py)
    "ysb_file": (5_000_000, 500_000),
    "ysb_generator": (5_000_000, 500_000),  # the same events as ysb_file: one recomputation
    "ysb_kafka": (1_000_000, 100_000),
    "recruitment_kafka": (1_000_000, 100_000),
    "recruitment_avro": (1_000_000, 100_000),
}
FRESH_RATES = (10_000, 100_000)
FRESH_DURATION = (20, 5)
FRESH_SETTLE = 120  # seconds after the producer's end for every record to become visible


class WrongResult(Exception):
    """The engine's output differs from the recomputation: no number may be reported."""


class Skipped(Exception):
    pass


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def sh(cmd, timeout=600, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(map(str, cmd[:3])), r.returncode,
                                                   r.stderr.strip()[-800:]))
    return r.stdout


def mysql(sql, database=None):
    client = shutil.which("mariadb") or shutil.which("mysql")
    cmd = [client, "--host=127.0.0.1", "--port=3306", "--user=root", "--protocol=TCP", "--batch",
           "--skip-column-names", "--connect-timeout=5"]
    if database:
        cmd.append(database)
    r = subprocess.run(cmd, input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise RuntimeError("mariadb: " + r.stderr.strip())
    return [line.split("\t") for line in r.stdout.split("\n") if line]


def port_open(hostport):
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


class PeakRss:
    """Follows a process's peak RSS (VmHWM of /proc/PID/status) until stop().

    ru_maxrss from wait4() cannot be used: Linux carries the forking Python process's own peak
    into the child's across exec, so every run would report at least this script's size."""

    def __init__(self, pid, interval=0.01, name="sluice"):
        import threading
        self.path = "/proc/%d/status" % pid
        self.name = name[:15]  # before exec the child is still a copy of this process
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self):
        try:
            with open(self.path) as f:
                for line in f:
                    if line.startswith("Name:") and line.split()[1] != self.name:
                        return
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        return
        except (OSError, ValueError):
            pass

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024.0


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = os.path.abspath(args.build_dir)
        self.sluice = os.path.abspath(args.sluice) if args.sluice else os.path.join(self.build, "sluice")
        self.fresh_tool = os.path.join(self.build, "sluice_bench_fresh")
        self.work = os.path.join(self.build, "bench-work")
        self.stamp = time.strftime("%Y%m%d%H%M%S")
        self.results = []
        self.freshness = []
        self.micro = []
        self.parquet_files = []
        self.scale_out_freshness = []
        self.skipped = {}
        self.ysb_expected = {}
        self.topics = []
        os.makedirs(self.work, exist_ok=True)

    def log(self, msg):
        log(msg)

    @staticmethod
    def peak_rss(pid):
        return PeakRss(pid, interval=0.05)

    def size(self, name):
        return SIZES[name][1 if self.quick else 0]

    def wanted(self, name):
        return not self.args.only or any(name.startswith(o) for o in self.args.only.split(","))

    # ---------------------------------------------------------------- measuring one process
    def measure(self, cmd, timeout=900, env=None):
        """Runs `cmd` to its end; returns (wall s, user s, sys s, peak RSS MiB, stdout)."""
        out_path = os.path.join(self.work, "last.stdout")
        err_path = os.path.join(self.work, "last.stderr")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            start = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, env=env)
            peak = PeakRss(proc.pid, name=os.path.basename(cmd[0]))
            deadline = start + timeout
            while True:
                peak.sample()
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    _, status, ru = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
            wall = time.monotonic() - start
            rss = peak.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        with open(out_path) as f:
            stdout = f.read()
        if proc.returncode != 0:
            with open(err_path) as f:
                raise RuntimeError("%s exited %d: %s" % (os.path.basename(cmd[0]), proc.returncode,
                                                         f.read()[-1500:]))
        return wall, ru.ru_utime, ru.ru_stime, rss, stdout

    def record(self, name, source, sink, events, wall, user, sys_, rss, check, note=""):
        cpu = user + sys_
        r = {"name": name, "source": source, "sink": sink, "events": events,
             "wall_s": round(wall, 3), "cpu_user_s": round(user, 3), "cpu_sys_s": round(sys_, 3),
             "events_per_s": round(events / wall) if wall > 0 else None,
             "events_per_cpu_s": round(events / cpu) if cpu > 0 else None,
             "peak_rss_mib": round(rss, 1), "check": check, "note": note}
        self.results.append(r)
        log("%-26s %10d events %8.2f s  %12s ev/s  %12s ev/CPU-s  RSS %7.1f MiB  [%s]" % (
            name, events, wall, r["events_per_s"], r["events_per_cpu_s"], rss, check))

    @staticmethod
    def warm(path):
        """Reads a file once so that the run measures the engine, not a cold disk."""
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass

    def run_pipeline(self, pipeline, variables, extra=()):
        for v in variables.values():
            if os.path.isfile(v) and v.endswith((".ndjson", ".csv")):
                self.warm(v)
        path = pipeline if os.path.isabs(pipeline) else os.path.join(REPO, "examples", pipeline + ".toml")
        cmd = [self.sluice, "run", path]
        for k, v in variables.items():
            cmd += ["--var", "%s=%s" % (k, v)]
        cmd += list(extra)
        env = dict(os.environ)
        env.pop("SLUICE_MYSQL_PASSWORD", None)
        return self.measure(cmd, env=env)

    # ---------------------------------------------------------------- inputs
    def generate(self, profile, count, path, seed, extra=()):
        if os.path.exists(path) and os.path.exists(path + ".done"):
            return path
        log("generating %d %s events -> %s" % (count, profile, os.path.relpath(path, REPO)))
        sh([self.sluice, "generate", "--profile", profile, "--count", str(count), "--rate", "0",
            "--seed", str(seed), "--to", path] + list(extra), cwd=REPO)
        open(path + ".done", "w").close()
        return path

    def recruitment_json(self):
        n = self.size("recruitment")
        return self.generate("recruitment", n, os.path.join(self.work, "recruitment-%d.ndjson" % n), 7)

    def recruitment_csv(self):
        """The seed tracking log (29 columns, real and messy) repeated to the wanted size."""
        n = self.size("recruitment_csv")
        path = os.path.join(self.work, "tracking-%d.csv" % n)
        if os.path.exists(path + ".done"):
            return path, n
        if not os.path.exists(SEED_CSV):
            raise Skipped("seed tracking.csv not found at " + SEED_CSV)
        with open(SEED_CSV, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], [r for r in rows[1:] if r]
        written = 0
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            while written < n:
                chunk = body[: n - written]
                w.writerows(chunk)
                written += len(chunk)
        open(path + ".done", "w").close()
        return path, written

    def expected_recruitment(self, tracking, key):
        """recompute_recruitment.py's table for `tracking` (cached per input)."""
        db = os.path.join(self.work, "expected-%s.db" % key)
        if not os.path.exists(db + ".done"):
            log("recomputing the recruitment table of %s" % os.path.basename(tracking))
            if os.path.exists(db):
                os.remove(db)
            recompute_recruitment.recompute(tracking, JOBS, db, sources="file")
            open(db + ".done", "w").close()
        return db

    def check_sqlite(self, got_db, expected_db, label, sources=None):
        if sources:
            # The `sources` column is the source kind; the recomputation writes 'file'.
            tmp = os.path.join(self.work, "expected-%s.db" % sources)
            shutil.copyfile(expected_db, tmp)
            import sqlite3
            con = sqlite3.connect(tmp)
            con.execute("UPDATE events SET sources = ?", (sources,))
            con.commit()
            con.close()
            expected_db = tmp
        diffs = compare_tables.compare(got_db, expected_db, RECRUITMENT_KEY, "events", "events")
        if diffs:
            raise WrongResult("%s: events differs from the recomputation:\n  %s" %
                              (label, "\n  ".join(diffs[:10])))
        return "== recompute_recruitment"

    # ---------------------------------------------------------------- throughput runs
    def run_recruitment_json(self):
        src = self.recruitment_json()
        n = count_lines(src)
        db = os.path.join(self.work, "out-recruitment-json.db")
        for p in (db, db + ".dlq"):
            if os.path.exists(p):
                os.remove(p)
        wall, u, s, rss, _ = self.run_pipeline("recruitment", {
            "TRACKING": src, "JOBS": JOBS, "SINK": "sqlite:" + db, "DLQ": db + ".dlq"})
        check = self.check_sqlite(db, self.expected_recruitment(src, os.path.basename(src)),
                                  "recruitment json")
        self.record("recruitment_json_file", "file (NDJSON)", "sqlite", n, wall, u, s, rss, check)

    def run_limits(self):
        """The limits of this machine on the recruitment_json_file input: a bare simdjson loop
        reading the pipeline's 8 fields (the reference), sluice's own decoder alone (parse
        limit), and the whole run with its sink discarded (engine limit); see
        bench/tools/limits.cc. Each a process measured like `sluice run`."""
        tool = os.path.join(self.build, "sluice_bench_limits")
        if not os.path.exists(tool):
            raise Skipped("%s not built" % os.path.relpath(tool, REPO))
        src = self.recruitment_json()
        n = count_lines(src)
        pipeline = os.path.join(REPO, "examples", "recruitment.toml")
        expected = self.expected_recruitment(src, os.path.basename(src))
        import sqlite3
        con = sqlite3.connect(expected)
        counted = con.execute("SELECT SUM(clicks + conversion + qualified_application + "
                              "disqualified_application) FROM events").fetchone()[0]
        con.close()
        runs = (("simdjson", "recruitment_limit_simdjson", "none (bare simdjson loop, 8 fields)"),
                ("parse", "recruitment_limit_parse", "none (sluice decoder only)"),
                ("engine", "recruitment_limit_engine", "none (whole run, commits discarded)"))
        for mode, name, sink in runs:
            self.warm(src)
            wall, u, s, rss, out = self.measure([tool, mode, pipeline, src])
            got = json.loads(out.strip().splitlines()[-1])
            if got["records"] != n:
                raise WrongResult("%s: %d records read, the file has %d" % (name, got["records"], n))
            if got["failed"]:
                raise WrongResult("%s: %d records failed to parse" % (name, got["failed"]))
            check = "%d records read" % n
            if mode == "engine":
                # Every record that reaches the aggregate adds 1 to exactly one of the four
                # counters the recomputation sums.
                if got["aggregated"] != counted:
                    raise WrongResult("%s: %d records aggregated, the recomputation counts %d" %
                                      (name, got["aggregated"], counted))
                check = "aggregated == recompute_recruitment (%d)" % counted
            self.record(name, "file (NDJSON)", sink, n, wall, u, s, rss, check,
                        note="loop CPU %.3f s" % got["loop_cpu_s"])

    def run_recruitment_csv(self):
        src, n = self.recruitment_csv()
        db = os.path.join(self.work, "out-recruitment-csv.db")
        for p in (db, db + ".dlq"):
            if os.path.exists(p):
                os.remove(p)
        wall, u, s, rss, _ = self.run_pipeline("recruitment", {
            "TRACKING": src, "JOBS": JOBS, "SINK": "sqlite:" + db, "DLQ": db + ".dlq"})
        check = self.check_sqlite(db, self.expected_recruitment(src, os.path.basename(src)),
                                  "recruitment csv")
        self.record("recruitment_csv_file", "file (CSV, seed log x%d)" % (n // 6766 + 1), "sqlite",
                    n, wall, u, s, rss, check)

    def run_viewlog(self):
        try:
            import recompute_viewlog
            import viewlog_test
            import pyarrow  # noqa: F401
        except ImportError as e:
            raise Skipped("viewlog check needs pyarrow (run with .venv/bin/python): %s" % e)
        n = self.size("viewlog")
        src = self.generate("viewlog", n, os.path.join(self.work, "viewlog-%d.ndjson" % n), 11,
                            ["--set", "campaigns=" + CAMPAIGNS])
        out = os.path.join(self.work, "out-viewlog")
        shutil.rmtree(out, ignore_errors=True)
        dlq = out + ".dlq"
        if os.path.exists(dlq):
            os.remove(dlq)
        wall, u, s, rss, _ = self.run_pipeline("viewlog", {
            "VIEWS": src, "CAMPAIGNS": CAMPAIGNS, "OUT": "parquet:" + out, "DLQ": dlq})
        expected = recompute_viewlog.recompute([src], CAMPAIGNS)
        rows, problems, _files = viewlog_test.read_parquet_output(out)
        problems += recompute_viewlog.compare_rows(rows, expected["rows"])
        if problems:
            raise WrongResult("viewlog: parquet output differs from recompute_viewlog:\n  " +
                              "\n  ".join(problems[:10]))
        self.record("viewlog_file", "file (NDJSON)", "parquet", n, wall, u, s, rss,
                    "== recompute_viewlog (%d rows)" % len(rows))

    def run_parquet_files(self):
        """Files per 1M events and commit times of the Parquet sink, shipped (minute) and hourly
        directories (bench/parquet_files.py; commit times need strace)."""
        try:
            import parquet_files
            import recompute_viewlog
            import pyarrow  # noqa: F401
        except ImportError as e:
            raise Skipped("parquet_files needs pyarrow (run with .venv/bin/python): %s" % e)
        n = self.size("parquet_files")
        views = parquet_files.generate(self.sluice, os.path.join(
            self.work, "viewlog-week-%d.ndjson" % n), n, 24 * 7)
        expected = recompute_viewlog.recompute([views], CAMPAIGNS)
        for layout in ("minute", "hour"):
            r = parquet_files.measure(self.sluice, views, n, layout, self.work, expected)
            r["binary"] = os.path.relpath(self.sluice, REPO)
            if not r["check"].startswith("=="):
                raise WrongResult("parquet_files (%s): %s" % (layout, r["check"]))
            self.parquet_files.append(r)
            log("parquet_files %-6s %6d files  %8.1f files/1M events  longest commit %s s  "
                "all commits %s s  [%s]" % (layout, r["files"], r["files_per_1m_events"],
                                            r.get("max_commit_s", "-"), r.get("total_commit_s", "-"),
                                            r["check"]))
        print(parquet_files.table(self.parquet_files))

    def ysb_file(self):
        n = self.size("ysb_file")
        return self.generate("ysb", n, os.path.join(self.work, "ysb-%d.ndjson" % n), 1,
                             ["--set", "spacing=10us", "--set", "campaigns=" + ADS]), n

    def check_ysb(self, db, src, label):
        if src not in self.ysb_expected:
            log("recomputing the YSB table of %s" % os.path.basename(src))
            self.ysb_expected[src] = recompute_ysb.recompute([src], recompute_ysb.load_ads(ADS))[0]
        expected = self.ysb_expected[src]
        d = recompute_ysb.diff(expected, recompute_ysb.read_sqlite(db))
        if d:
            raise WrongResult("%s: campaign_windows differs from recompute_ysb:\n  %s" %
                              (label, "\n  ".join(d)))
        return "== recompute_ysb (%d rows)" % len(expected)

    def run_ysb_file(self):
        src, n = self.ysb_file()
        db = os.path.join(self.work, "out-ysb-file.db")
        if os.path.exists(db):
            os.remove(db)
        wall, u, s, rss, _ = self.run_pipeline("ysb", {"EVENTS": src, "ADS": ADS, "SINK": "sqlite:" + db,
                                                       "DLQ": db + ".dlq"})
        self.record("ysb_file", "file (NDJSON)", "sqlite", n, wall, u, s, rss,
                    self.check_ysb(db, src, "ysb file"))

    def run_ysb_generator(self):
        n = self.size("ysb_generator")
        db = os.path.join(self.work, "out-ysb-gen.db")
        if os.path.exists(db):
            os.remove(db)
        wall, u, s, rss, _ = self.run_pipeline("ysb", {
            "EVENTS": "generator:", "ADS": ADS, "SINK": "sqlite:" + db, "DLQ": db + ".dlq",
            "COUNT": str(n), "RATE": "0"})
        # The in-process generator makes the same events as `sluice generate` with the same
        # seed, spacing and count (tests/integration/ysb_test.py checks it): the file's
        # recomputation is the expected table.
        src, src_n = self.ysb_file()
        if src_n != n:
            raise RuntimeError("ysb_generator and ysb_file sizes differ")
        check = self.check_ysb(db, src, "ysb generator")
        self.record("ysb_generator", "in-process generator", "sqlite", n, wall, u, s, rss, check)

    # ---------------------------------------------------------------- Kafka
    def kafka_topic(self, name, partitions):
        topic = "%s_%s_%s" % (self.args.prefix, name, self.stamp)
        sh([os.path.join(REPO, "scripts", "kafka-topics.sh"), "--create", "--topic", topic,
            "--partitions", str(partitions), "--replication-factor", "1"], timeout=120)
        self.topics.append(topic)
        return topic

    def delete_topics(self):
        """Deletes this run's topics (<prefix>_*_<stamp>): the freshness ones hold GBs."""
        if not self.topics:
            return
        try:
            sh([os.path.join(REPO, "scripts", "kafka-topics.sh"), "--delete", "--topic",
                "%s_.*_%s" % (self.args.prefix, self.stamp)], timeout=120)
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            log("could not delete the topics bench_*_%s: %s" % (self.stamp, e))

    def preload(self, profile, count, topic, seed, extra=()):
        log("pre-loading %d %s events into %s" % (count, profile, topic))
        sh([self.sluice, "generate", "--profile", profile, "--count", str(count), "--rate", "0",
            "--seed", str(seed), "--to", "kafka://%s/%s" % (BROKER, topic)] + list(extra),
           cwd=REPO, timeout=900)

    def need_kafka(self):
        if not port_open(BROKER):
            raise Skipped("no Kafka broker at %s (make services)" % BROKER)

    def need_mysql(self):
        if not port_open(MYSQL) or not (shutil.which("mariadb") or shutil.which("mysql")):
            raise Skipped("no MariaDB at %s or no client (make services)" % MYSQL)

    def run_ysb_kafka(self):
        self.need_kafka()
        n = self.size("ysb_kafka")
        topic = self.kafka_topic("ysb", 2)
        self.preload("ysb", n, topic, 1, ["--set", "spacing=10us", "--set", "campaigns=" + ADS])
        src = self.generate("ysb", n, os.path.join(self.work, "ysb-kafka-%d.ndjson" % n), 1,
                            ["--set", "spacing=10us", "--set", "campaigns=" + ADS])
        db = os.path.join(self.work, "out-ysb-kafka.db")
        if os.path.exists(db):
            os.remove(db)
        wall, u, s, rss, _ = self.run_pipeline(
            "ysb", {"EVENTS": "kafka://%s/%s" % (BROKER, topic), "ADS": ADS,
                    "SINK": "sqlite:" + db, "DLQ": db + ".dlq"}, ["--until-caught-up"])
        self.record("ysb_kafka", "kafka (2 partitions, --until-caught-up)", "sqlite", n, wall, u,
                    s, rss, self.check_ysb(db, src, "ysb kafka"))

    def mysql_database(self, name):
        db = "%s_%s" % (self.args.prefix, name)
        mysql("DROP DATABASE IF EXISTS `%s`; CREATE DATABASE `%s`;" % (db, db))
        return db

    def check_mysql(self, database, expected_db, label, sources):
        """Dumps `events` of `database` to CSV and compares it with the recomputation."""
        client = shutil.which("mariadb") or shutil.which("mysql")
        r = subprocess.run([client, "--host=127.0.0.1", "--port=3306", "--user=root",
                            "--protocol=TCP", "--batch", database],
                           input="SELECT * FROM events", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        if r.returncode != 0:
            raise WrongResult("%s: cannot read events: %s" % (label, r.stderr.strip()))
        path = os.path.join(self.work, "mysql-%s.csv" % database)
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            for line in r.stdout.split("\n"):
                if line:
                    w.writerow(["" if v == "NULL" else v for v in line.split("\t")])
        return self.check_sqlite(path, expected_db, label, sources=sources)

    def run_recruitment_kafka(self):
        self.need_kafka()
        self.need_mysql()
        n = self.size("recruitment_kafka")
        topic = self.kafka_topic("recruitment", 2)
        self.preload("recruitment", n, topic, 7)
        src = self.generate("recruitment", n, os.path.join(self.work, "recruitment-%d.ndjson" % n), 7)
        database = self.mysql_database("recruitment_kafka")
        wall, u, s, rss, _ = self.run_pipeline(
            "recruitment", {"TRACKING": "kafka://%s/%s" % (BROKER, topic), "JOBS": JOBS,
                            "SINK": "mysql://root@%s/%s" % (MYSQL, database),
                            "DLQ": os.path.join(self.work, "recruitment-kafka.dlq")},
            ["--until-caught-up"])
        check = self.check_mysql(database, self.expected_recruitment(src, os.path.basename(src)),
                                 "recruitment kafka->mysql", "kafka")
        self.record("recruitment_kafka_mysql", "kafka (2 partitions, --until-caught-up)", "mysql",
                    n, wall, u, s, rss, check)

    def run_recruitment_avro(self):
        """The same recruitment events (seed 7) from a JSON topic and from an Avro topic (written
        by `sluice generate --format avro` through the registry), each read by the recruitment
        pipeline into SQLite with --until-caught-up; both checked against the recomputation of
        the same events as NDJSON."""
        self.need_kafka()
        try:
            urllib.request.urlopen(REGISTRY + "/subjects", timeout=5).read()
        except OSError as e:
            raise Skipped("no schema registry at %s (make services): %s" % (REGISTRY, e))
        n = self.size("recruitment_avro")
        src = self.generate("recruitment", n, os.path.join(self.work, "recruitment-%d.ndjson" % n), 7)
        expected = self.expected_recruitment(src, os.path.basename(src))
        avro_pipeline = os.path.join(self.work, "recruitment-avro.toml")
        with open(os.path.join(REPO, "examples", "recruitment.toml")) as f:
            text = f.read()
        with open(avro_pipeline, "w") as f:
            f.write(text.replace("[source]\n", '[source]\nformat = "avro"\nschema_registry = "%s"\n'
                                 % REGISTRY, 1))
        for fmt in ("json", "avro"):
            topic = self.kafka_topic("recruitment_%s" % fmt, 2)
            extra = ["--format", "avro", "--schema-registry", REGISTRY] if fmt == "avro" else []
            self.preload("recruitment", n, topic, 7, extra)
            db = os.path.join(self.work, "out-recruitment-kafka-%s.db" % fmt)
            for p in (db, db + ".dlq"):
                if os.path.exists(p):
                    os.remove(p)
            wall, u, s, rss, _ = self.run_pipeline(
                avro_pipeline if fmt == "avro" else "recruitment",
                {"TRACKING": "kafka://%s/%s" % (BROKER, topic), "JOBS": JOBS,
                 "SINK": "sqlite:" + db, "DLQ": db + ".dlq"}, ["--until-caught-up"])
            check = self.check_sqlite(db, expected, "recruitment kafka %s" % fmt, sources="kafka")
            self.record("recruitment_kafka_%s" % fmt, "kafka (%s, 2 partitions, --until-caught-up)"
                        % ("Avro, registry" if fmt == "avro" else "JSON"), "sqlite", n, wall, u, s,
                        rss, check)

    def run_viewlog_scale_out(self):
        """The viewlog pipeline from Kafka over 1, 2 and 3 processes of one group: catch-up
        throughput and window freshness, each run checked (bench/viewlog_scale_out.py)."""
        self.need_kafka()
        if shutil.which("kcat") is None:
            raise Skipped("kcat is needed to produce and read back the keyed topic")
        try:
            import pyarrow  # noqa: F401
            import viewlog_scale_out as scale_out
        except ImportError as e:
            raise Skipped("viewlog_scale_out needs pyarrow (run with .venv/bin/python): %s" % e)
        try:
            n_procs = [int(x) for x in self.args.scale_out_processes.split(",")]
            for name, why in scale_out.NOT_BUILT.items():
                self.skipped["viewlog_scale_out_" + name] = why
            so = scale_out.ScaleOut(self, fault=self.args.scale_out_fault)
            so.prepare_load()
            for variant in scale_out.VARIANTS:
                so.throughput(n_procs, variant)
            self.scale_out_freshness += so.freshness(n_procs)
        except scale_out.CheckFailed as e:
            raise WrongResult(str(e))

    # ---------------------------------------------------------------- freshness
    def clean_recruitment(self, count):
        """`count` generated recruitment events that each count exactly once in COUNT_SQL
        (custom_track one of the four counted values, a job_id, a version-1 TimeUUID), and the
        totals an independent reading of them gives, per produced prefix."""
        path = os.path.join(self.work, "fresh-clean-%d.ndjson" % count)
        raw = self.generate("recruitment", int(count * 1.25) + 1000,
                            os.path.join(self.work, "fresh-raw-%d.ndjson" % count), 23)
        kept = 0
        with open(raw, "rb") as f, open(path, "wb") as out:
            for line in f:
                ev = json.loads(line)
                if ev.get("custom_track") not in ("click", "conversion", "qualified", "unqualified"):
                    continue
                if ev.get("job_id") in ("", None):
                    continue
                ct = ev.get("create_time") or ""
                if len(ct) != 36 or ct[14] != "1":  # only version-1 TimeUUIDs
                    continue
                out.write(line)
                kept += 1
                if kept == count:
                    break
        if kept < count:
            raise RuntimeError("only %d clean records" % kept)
        return path

    @staticmethod
    def expected_totals(path, n):
        t = {"clicks": 0, "spend": 0, "conversion": 0, "qualified": 0, "unqualified": 0}
        with open(path, "rb") as f:
            for i, line in enumerate(f):
                if i >= n:
                    break
                ev = json.loads(line)
                track = ev["custom_track"]
                if track == "click":
                    t["clicks"] += 1
                    t["spend"] += int(ev["bid"] or 0)
                else:
                    t[track] += 1
        return t

    def pipeline_with_interval(self, interval):
        src = os.path.join(REPO, "examples", "recruitment.toml")
        with open(src) as f:
            text = f.read()
        if 'checkpoint_interval = "1s"' not in text:
            raise RuntimeError("examples/recruitment.toml has no checkpoint_interval = \"1s\" line")
        path = os.path.join(self.work, "recruitment-%s.toml" % interval)
        with open(path, "w") as f:
            f.write(text.replace('checkpoint_interval = "1s"',
                                 'checkpoint_interval = "%s"' % interval))
        return path

    def wait_ready(self, port, proc, timeout=60, settle=6.0):
        """Waits for /api/status to say running and ready, then `settle` seconds more for the
        consumer group to assign the partition (the broker delays a new group's first
        rebalance by 3 s). Records produced earlier would still be read (from the earliest
        offset) but their freshness would include the start-up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("sluice exited %d before consuming (see %s)" % (
                    proc.returncode, getattr(proc, "stderr_path", "its stderr")))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/api/status" % port, timeout=2) as r:
                    st = json.loads(r.read())
                if st.get("state") == "running" and st.get("ready"):
                    time.sleep(settle)
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("sluice was not ready within %d s" % timeout)

    @staticmethod
    def checkpoint_stats(port):
        """The run's checkpoint count and mean duration, from /api/status."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/status" % port, timeout=5) as r:
                return json.loads(r.read()).get("checkpoints", {})
        except (OSError, ValueError):
            return {}

    def run_freshness(self):
        self.need_kafka()
        self.need_mysql()
        duration = FRESH_DURATION[1 if self.quick else 0]
        intervals = self.args.fresh_intervals.split(",")
        clean = self.clean_recruitment(max(int(r) for r in self.args.fresh_rates.split(",")) * duration)
        for interval in intervals:
            pipeline = self.pipeline_with_interval(interval)
            for rate in [int(r) for r in self.args.fresh_rates.split(",")]:
                label = "fresh_%dk_%s" % (rate // 1000, interval)
                topic = self.kafka_topic("fresh_%d_%s" % (rate, interval), 1)
                database = self.mysql_database("fresh")
                port = 19000 + (os.getpid() % 1000)
                # A dead-letter file belongs to one sink (sluice refuses another's): the file of
                # an earlier run (another --prefix, or this database before it was made again)
                # goes.
                dlq = os.path.join(self.work, label + ".dlq")
                for stale in (dlq, dlq + ".owner"):
                    if os.path.exists(stale):
                        os.remove(stale)
                cmd = [self.sluice, "run", pipeline, "--var", "TRACKING=kafka://%s/%s" % (BROKER, topic),
                       "--var", "JOBS=" + JOBS, "--var", "SINK=mysql://root@%s/%s" % (MYSQL, database),
                       "--var", "DLQ=" + dlq,
                       "--http", "127.0.0.1:%d" % port] + self.args.sluice_arg
                err = open(os.path.join(self.work, label + ".stderr"), "w")
                start = time.monotonic()
                proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
                proc.stderr_path = err.name
                peak = PeakRss(proc.pid, interval=0.05)
                try:
                    self.wait_ready(port, proc)
                    log("%s: producing %d records/s for %d s" % (label, rate, duration))
                    r = freshness.measure(self.fresh_tool, BROKER, topic, clean, rate, duration,
                                          COUNT_SQL, os.path.join(self.work, "fresh"),
                                          database=database, settle_timeout=FRESH_SETTLE,
                                          interval_ms=self.args.fresh_poll_ms)
                    checkpoints = self.checkpoint_stats(port)
                finally:
                    if proc.returncode is None:  # else reaped by wait_ready, which says why
                        proc.send_signal(signal.SIGTERM)
                        _, status, ru = os.wait4(proc.pid, 0)
                    rss = peak.stop()
                    err.close()
                wall = time.monotonic() - start
                if r["poll_rc"] == 3:
                    raise RuntimeError("%s: sluice did not catch up: %d of %d records visible "
                                       "%d s after the producer finished" % (
                                           label, r["visible"], r["produced"], FRESH_SETTLE))
                if r["missing"] or r["poll_rc"] != 0:
                    raise WrongResult("%s: %d of %d records never became visible (poll rc %s)" %
                                      (label, r["missing"], r["produced"], r["poll_rc"]))
                got = mysql("SELECT SUM(clicks), SUM(spend_hour), SUM(conversion), "
                            "SUM(qualified_application), SUM(disqualified_application) FROM events",
                            database)[0]
                exp = self.expected_totals(clean, r["produced"])
                want = [exp["clicks"], exp["spend"], exp["conversion"], exp["qualified"],
                        exp["unqualified"]]
                if [int(float(x)) for x in got] != want:
                    raise WrongResult("%s: totals %s != expected %s" % (label, got, want))
                cpu = ru.ru_utime + ru.ru_stime
                row = {"name": label, "offered_rate": rate, "duration_s": duration,
                       "checkpoint_interval": interval, "poll_ms": self.args.fresh_poll_ms,
                       "produced": r["produced"],
                       "p50_ms": round(r["p50_ms"], 1), "p99_ms": round(r["p99_ms"], 1),
                       "max_ms": round(r["max_ms"], 1), "mean_ms": round(r["mean_ms"], 1),
                       "producer_max_behind_ms": r["max_behind_ms"],
                       "sluice_cpu_s": round(cpu, 2), "sluice_wall_s": round(wall, 1),
                       "cpu_share": round(cpu / wall, 3),
                       "peak_rss_mib": round(rss, 1),
                       "checkpoints": checkpoints.get("count"),
                       "checkpoint_mean_s": checkpoints.get("mean_duration_seconds"),
                       "check": "totals == independent sums"}
                self.freshness.append(row)
                log("%s: p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%d records, sluice %.2f CPU-s, "
                    "RSS %.1f MiB, %s checkpoints of %s s on average)" % (
                        label, r["p50_ms"], r["p99_ms"], r["max_ms"], r["produced"], cpu,
                        row["peak_rss_mib"], row["checkpoints"], row["checkpoint_mean_s"]))

    # ---------------------------------------------------------------- micro
    def run_micro(self):
        exe = os.path.join(self.build, "sluice_bench_micro")
        out = os.path.join(self.work, "micro.json")
        min_time = "0.05" if self.quick else "0.5"
        log("micro-benchmarks (min time %s s each)" % min_time)
        sh([exe, "--benchmark_format=console", "--benchmark_out=" + out,
            "--benchmark_out_format=json", "--benchmark_min_time=" + min_time], timeout=900)
        with open(out) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            self.micro.append({"name": b["name"],
                               "items_per_s": round(b["items_per_second"]) if "items_per_second" in b else None,
                               "bytes_per_s": round(b["bytes_per_second"]) if "bytes_per_second" in b else None,
                               "cpu_time_ns": round(b["cpu_time"], 1) if b.get("time_unit") == "ns" else None})

    # ---------------------------------------------------------------- driver
    def main(self):
        desc = machine.describe(REPO, self.build)
        log("machine: %s, %s cores, %s GiB, %s, %s, commit %s%s" % (
            desc["cpu_model"], desc["cores"], desc["ram_gib"], desc["os"], desc["kernel"],
            desc["git_commit"][:10], " (dirty)" if desc["git_dirty"] else ""))
        steps = [("micro", self.run_micro), ("recruitment_json", self.run_recruitment_json),
                 ("recruitment_limits", self.run_limits),
                 ("recruitment_csv", self.run_recruitment_csv), ("viewlog", self.run_viewlog),
                 ("parquet_files", self.run_parquet_files),
                 ("ysb_generator", self.run_ysb_generator), ("ysb_file", self.run_ysb_file),
                 ("ysb_kafka", self.run_ysb_kafka), ("recruitment_kafka", self.run_recruitment_kafka),
                 ("recruitment_avro", self.run_recruitment_avro),
                 ("freshness", self.run_freshness),
                 ("viewlog_scale_out", self.run_viewlog_scale_out)]
        aborted = None
        started = time.monotonic()
        for name, fn in steps:
            if not self.wanted(name) or (name == "micro" and self.args.skip_micro):
                continue
            try:
                fn()
            except Skipped as e:
                self.skipped[name] = str(e)
                log("SKIP %s: %s" % (name, e))
            except WrongResult as e:
                aborted = str(e)
                log("WRONG RESULT, aborting: %s" % e)
                break
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                self.skipped[name] = "failed: %s" % e
                log("FAILED %s: %s" % (name, e))
        self.delete_topics()
        doc = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "command": " ".join(sys.argv), "quick": self.quick, "machine": desc,
               "duration_s": round(time.monotonic() - started, 1),
               "throughput": self.results, "freshness": self.freshness, "micro": self.micro,
               "parquet_files": self.parquet_files,
               "scale_out_freshness": self.scale_out_freshness,
               "skipped": self.skipped, "aborted": aborted}
        os.makedirs(self.args.out_dir, exist_ok=True)
        base = os.path.join(self.args.out_dir, "%s-%s%s" % (
            time.strftime("%Y%m%d-%H%M%S", time.gmtime()), desc["host"], "-quick" if self.quick else ""))
        with open(base + ".json", "w") as f:
            json.dump(doc, f, indent=2)
        with open(base + ".csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["kind", "name", "events", "events_per_s", "events_per_cpu_s",
                        "peak_rss_mib", "p50_ms", "p99_ms", "max_ms", "check"])
            for r in self.results:
                w.writerow(["throughput", r["name"], r["events"], r["events_per_s"],
                            r["events_per_cpu_s"], r["peak_rss_mib"], "", "", "", r["check"]])
            for r in self.freshness:
                w.writerow(["freshness", r["name"], r["produced"], r["offered_rate"], "",
                            r["peak_rss_mib"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["check"]])
            for r in self.scale_out_freshness:
                w.writerow(["scale_out_freshness", r["name"], r["produced"], r["offered_rate"], "",
                            r["peak_rss_mib"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["check"]])
            for r in self.micro:
                w.writerow(["micro", r["name"], "", r["items_per_s"], "", "", "", "", "", ""])
        import report
        print(report.render(doc))
        print("results: %s.json (and .csv)" % os.path.relpath(base, REPO))
        if aborted:
            print("ABORTED: " + aborted)
            return 1
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--only", default="", help="comma-separated run names (prefixes)")
    ap.add_argument("--skip-micro", action="store_true")
    ap.add_argument("--fresh-intervals", default=None,
                    help="checkpoint intervals for the freshness runs (default 1s,200ms; quick 200ms)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--sluice", default=None,
                    help="the sluice binary to measure (default: BUILD_DIR/sluice), e.g. an older build")
    ap.add_argument("--prefix", default="bench",
                    help="prefix of the Kafka topics and MariaDB databases used (default bench)")
    ap.add_argument("--fresh-poll-ms", type=int, default=10,
                    help="how often the freshness poller runs its query, ms (default 10; each poll "
                    "sums the whole results table, a few ms of MariaDB CPU at ~55k rows)")
    ap.add_argument("--fresh-rates", default=",".join(str(r) for r in FRESH_RATES),
                    help="offered rates of the freshness runs, events/s (default 10000,100000)")
    ap.add_argument("--sluice-arg", action="append", default=[],
                    help="an extra argument for sluice in the freshness runs (repeatable), "
                         "e.g. --sluice-arg=--log-level --sluice-arg=debug")
    ap.add_argument("--scale-out-processes", default="1,2,3",
                    help="process counts of the viewlog_scale_out runs (default 1,2,3)")
    ap.add_argument("--scale-out-fault", choices=("drop-row", "drop-dead-letter"),
                    help="damage each viewlog_scale_out output before its check, to show the "
                         "check fails (the run then aborts: exit 1)")
    args = ap.parse_args()
    if args.fresh_intervals is None:
        args.fresh_intervals = "200ms" if args.quick else "1s,200ms"
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
