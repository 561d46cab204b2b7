#!/usr/bin/env python3
"""SIGTERM always ends a run, within the pipeline's shutdown_timeout, and loses nothing.

    sigterm_test.py --sluice build/sluice [--rounds 1] [--bound 10] [--seed N] [--only a,b]
                    [--prefix sluice-st] [--keep]

Each case runs an example pipeline (a copy with `shutdown_timeout = "<bound>s"` under
[pipeline]) on one source kind it can use here, sends SIGTERM at a random moment (seeded RNG),
and requires the process to end within bound + 5 s: exit 0 for a healthy run (a clean stop),
exit 1 when the sink cannot take the final checkpoint. --rounds signals per case (the suite
runs 1; `make sigterm-long` runs 10). Where the test can check results, the stopped runs are
followed by an --until-caught-up run and the table must equal the independent recomputation
(tests/tools/recompute_recruitment.py): a stop loses or doubles nothing.

Cases (name: pipeline / source -> sink):
  recruitment-file       recruitment / generated NDJSON file -> SQLite; exact after restarts
  recruitment-generator  recruitment / generator (unbounded) -> SQLite
  recruitment-kafka      recruitment / 4-partition topic, 2 workers, slow consumer -> SQLite;
                         exact after restarts
  recruitment-kafka-rebalance
                         recruitment / the same topic, two processes: A is stopped while B
                         joins the group (a rebalance under way), then B; exact after restarts
  startup                recruitment / file -> SQLite with a large job dimension: SIGTERM while
                         the run is being prepared ends it at once with exit 0; exact after
                         restarts
  recruitment-table      recruitment / SQLite table source (generated records in a table) ->
                         SQLite; exact after restarts
  viewlog-file, viewlog-generator, viewlog-kafka
                         viewlog / file, generator, 4-partition topic (4 workers) -> Parquet
  ysb-generator          ysb / generator -> SQLite
  users-ingest-http      users-ingest / `sluice fake-api` -> Kafka topic
  mysql-gone             recruitment / generator -> MariaDB reached through a TCP proxy that
                         the test shuts once a checkpoint is committed (a server that is gone):
                         SIGTERM must end the run with exit 1 within the bound, and nothing
                         after the last commit is committed.
  mysql-frozen           the same, but the proxy stops answering and keeps the connections open
                         (a commit blocked in I/O): the signal watcher's backstop ends the
                         process 3 s after shutdown_timeout.
(examples/users.toml reads Kafka into Cassandra; its Kafka source is covered by the other Kafka
cases and the test does not use the shared Cassandra.)

Kafka or MariaDB missing: their cases are skipped (a FAIL under CI=true). Exit 1 on any failure.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import kafka_util as kr  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

REPO = kr.REPO
MYSQL = harness.MYSQL
EX = os.path.join(REPO, "examples")
LEGACY = False  # --legacy: binaries without shutdown_timeout (to hunt hangs in older builds)


def blocks_sigterm(pid):
    """Whether process `pid`'s main thread blocks SIGTERM (its SigBlk mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


def with_bound(src, dst, bound, extra_source=()):
    """A copy of pipeline `src` with shutdown_timeout under [pipeline] (and lines under
    [source]); relative paths in the copy resolve from the repository (runs use cwd=REPO)."""
    with open(src, encoding="utf-8") as f:
        text = f.read()
    if not LEGACY:
        text = re.sub(r"(?m)^\[pipeline\]\s*$", f'[pipeline]\nshutdown_timeout = "{bound}s"',
                      text, count=1)
    if extra_source:
        text = re.sub(r"(?m)^\[source\]\s*$", "[source]\n" + "\n".join(extra_source), text,
                      count=1)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)
    return dst


class Proxy:
    """A TCP proxy to a server; shut() closes every connection and stops listening, as if the
    server were gone."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.open = True
        self.frozen = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.open:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                return
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            self.conns += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                while self.frozen and self.open:
                    time.sleep(0.1)  # a server that stopped answering: hold everything
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def freeze(self):
        """Stops forwarding but keeps every connection open (a server that hangs)."""
        self.frozen = True

    def shut(self):
        self.open = False
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


def mysql(sql, db=None):
    cmd = ["mariadb", "--no-defaults", f"-h{MYSQL.host}", f"-P{MYSQL.port}", f"-u{MYSQL.user}",
           "--batch", "-N", "-e", sql]
    if db:
        cmd.append(db)
    return harness.run(cmd, timeout=30)


class Test(harness.SluiceTest):
    def __init__(self, args, tmp):
        harness.SluiceTest.__init__(self, args, tmp)
        self.rng = random.Random(args.seed)
        self.kafka = shutil.which("kcat") is not None and kr.kafka_ready()
        self.mariadb = MYSQL.up() and mysql("SELECT 1")[0] == 0
        self.topics = []

    def start(self, pipe, variables, label, args=()):
        return self.start_run(pipe, variables, label, args)

    def tail(self, p, n=10):
        return harness.log_tail(p.logpath, n)

    def term(self, p, expect_rc=0):
        """SIGTERM; returns (problems, seconds to exit)."""
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        limit = self.args.bound + 5
        try:
            rc = p.wait(limit)
        except subprocess.TimeoutExpired:
            stack = ""
            if shutil.which("gdb"):
                out = harness.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt"],
                             timeout=60)[1]
                path = p.logpath + ".gdb"
                with open(path, "w") as f:
                    f.write(out)
                stack = f" (threads: {path})"
            p.kill()
            p.wait()
            return [f"still running {limit}s after SIGTERM (shutdown_timeout {self.args.bound}s)"
                    f"{stack}\n{self.tail(p)}"], None
        secs = time.monotonic() - t
        if rc != expect_rc:
            return [f"exit {rc} after SIGTERM (expected {expect_rc}), {secs:.1f}s\n{self.tail(p)}"], secs
        return [], secs

    def generate(self, profile, count, name, extra=()):
        out = os.path.join(self.tmp, name)
        rc, text = harness.run([self.args.sluice, "generate", "--profile", profile, "--to", out,
                           "--count", str(count), "--rate", "0", "--seed", "9"] + list(extra),
                          timeout=180)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {text[-600:]}")
        return out

    def topic(self, case, partitions, paths, keyed_by_job=True):
        topic = f"{self.args.prefix}-{self.token}-{case}"
        kr.create_topic(topic, partitions)
        self.topics.append(topic)
        if keyed_by_job:
            keyed = os.path.join(self.tmp, f"{case}.keyed")
            n = kr.keyed_file(paths, keyed)
            kr.produce(topic, partitions, keyed, n, batch=1000)
        else:
            for path in paths:
                with open(path, "rb") as f:
                    subprocess.run(["kcat", "-P", "-b", kr.BROKER, "-t", topic, "-z", "none",
                                    "-X", "batch.num.messages=500"], stdin=f, check=True,
                                   timeout=120)
        return topic

    # ------------------------------------------------------------------ the loop
    def stop_at_random(self, case, pipe, variables, max_delay, args=(), expect_rc=0,
                       rounds=None):
        """Starts, waits a random delay, SIGTERMs; `rounds` times. Returns (problems, notes)."""
        problems, times, early = [], [], 0
        for i in range(rounds or self.args.rounds):
            p = self.start(pipe, variables, f"{case}-{i}", args)
            delay = self.rng.uniform(0.2, max_delay)
            time.sleep(delay)
            if p.poll() is not None:
                if p.returncode != 0:
                    problems.append(f"run {i} exited {p.returncode} by itself\n{self.tail(p)}")
                early += 1
                continue  # finished before the signal: nothing to stop
            pr, secs = self.term(p, expect_rc)
            problems += [f"run {i} (SIGTERM {delay:.1f}s after start): {x}" for x in pr]
            if secs is not None:
                times.append(secs)
        notes = [f"{len(times)} stop(s), exit after {min(times):.1f}-{max(times):.1f}s"] if times else []
        if early:
            notes.append(f"{early} run(s) finished before the signal")
        return problems, notes

    def finish_and_compare(self, pipe, variables, db, tracking, sources, case):
        p = self.start(pipe, variables, f"{case}-finish", ["--until-caught-up"])
        try:
            rc = p.wait(300)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return [f"the final --until-caught-up run did not end within 300s\n{self.tail(p)}"]
        if rc != 0:
            return [f"the final --until-caught-up run exited {rc}\n{self.tail(p)}"]
        exp = os.path.join(self.tmp, f"{case}-expected.db")
        rr.recompute(tracking, kr.JOBS, exp, sources, os.path.join(self.tmp, f"{case}-exp.dlq"))
        return [f"vs recompute: {x}" for x in compare_tables.compare(db, exp, kr.KEY)]

    # ------------------------------------------------------------------ cases
    def case_recruitment_file(self):
        src = self.generate("recruitment", 100000, "rec.ndjson", ["--jobs", kr.JOBS])
        pipe = with_bound(os.path.join(EX, "recruitment.toml"), os.path.join(self.tmp, "rf.toml"),
                          self.args.bound)
        db = os.path.join(self.tmp, "rf.db")
        v = {"TRACKING": src, "JOBS": kr.JOBS, "SINK": f"sqlite:{db}",
             "DLQ": os.path.join(self.tmp, "rf.dlq")}
        problems, notes = self.stop_at_random("recruitment-file", pipe, v, 1.0)
        problems += self.finish_and_compare(pipe, v, db, src, "file", "rf")
        return problems, notes

    def case_recruitment_generator(self):
        pipe = with_bound(os.path.join(EX, "recruitment.toml"), os.path.join(self.tmp, "rg.toml"),
                          self.args.bound)
        v = {"TRACKING": "generator:", "JOBS": kr.JOBS,
             "SINK": f"sqlite:{os.path.join(self.tmp, 'rg.db')}",
             "DLQ": os.path.join(self.tmp, "rg.dlq")}
        return self.stop_at_random("recruitment-generator", pipe, v, 4.0)

    def case_recruitment_kafka(self):
        src = self.generate("recruitment", 50000, "rk.ndjson", ["--jobs", kr.JOBS])
        topic = self.topic("rk", 4, [src])
        name = f"st_rk_{self.token}"
        pipe = kr.pipeline_copy(os.path.join(self.tmp, "rk0.toml"), name, name, "sqlite", "events",
                                kr.slow_consumer(100) + ('"kafka.session.timeout.ms" = "6000"',))
        pipe = with_bound(pipe, os.path.join(self.tmp, "rk.toml"), self.args.bound)
        db = os.path.join(self.tmp, "rk.db")
        v = {"TRACKING": f"kafka://{kr.BROKER}/{topic}", "JOBS": kr.JOBS, "SINK": f"sqlite:{db}",
             "DLQ": os.path.join(self.tmp, "rk.dlq")}
        problems, notes = self.stop_at_random("recruitment-kafka", pipe, v, 8.0,
                                              ["--workers", "2"])
        problems += self.finish_and_compare(pipe, v, db, src, "kafka", "rk")
        return problems, notes

    def case_recruitment_kafka_rebalance(self):
        """Two processes of one pipeline on one topic: A runs, B joins (a rebalance: A
        checkpoints before giving partitions up) and A is stopped while the group rebalances;
        then B is stopped. Both must end within the bound; the results are then exact."""
        src = self.generate("recruitment", 50000, "rr.ndjson", ["--jobs", kr.JOBS])
        topic = self.topic("rr", 4, [src])
        name = f"st_rr_{self.token}"
        pipe = kr.pipeline_copy(os.path.join(self.tmp, "rr0.toml"), name, name, "sqlite", "events",
                                kr.slow_consumer(100) + ('"kafka.session.timeout.ms" = "6000"',))
        pipe = with_bound(pipe, os.path.join(self.tmp, "rr.toml"), self.args.bound)
        db = os.path.join(self.tmp, "rr.db")
        v = {"TRACKING": f"kafka://{kr.BROKER}/{topic}", "JOBS": kr.JOBS, "SINK": f"sqlite:{db}"}
        problems, times = [], []
        for i in range(self.args.rounds):
            a = self.start(pipe, dict(v, DLQ=os.path.join(self.tmp, "rr-a.dlq")), f"rr-a{i}",
                           ["--workers", "2"])
            time.sleep(self.rng.uniform(1.0, 3.0))
            b = self.start(pipe, dict(v, DLQ=os.path.join(self.tmp, "rr-b.dlq")), f"rr-b{i}",
                           ["--workers", "2"])
            time.sleep(self.rng.uniform(0.0, 3.0))
            for label, p in (("A (while B joins)", a), ("B", b)):
                if p.poll() is not None:
                    if p.returncode != 0:
                        problems.append(f"round {i}: {label} exited {p.returncode} by itself\n"
                                        f"{self.tail(p)}")
                    continue
                pr, secs = self.term(p)
                problems += [f"round {i}: {label}: {x}" for x in pr]
                if secs is not None:
                    times.append(secs)
        problems += self.finish_and_compare(pipe, dict(v, DLQ=os.path.join(self.tmp, "rr-a.dlq")),
                                            db, src, "kafka", "rr")
        notes = [f"{len(times)} stop(s), exit after {min(times):.1f}-{max(times):.1f}s"] if times else []
        return problems, notes

    def case_startup(self):
        """SIGTERM while the run is still being prepared (a large job dimension loading, as a
        pipeline's start-up takes on a loaded machine): the process ends at once with exit 0
        and says so, instead of dying by the signal's default action; nothing is committed, and
        a later run is exact. The signal is sent once `sluice run` has blocked it (its first
        step, read from /proc), so it always lands in the start-up, never before main()."""
        src = self.generate("recruitment", 20000, "su.ndjson", ["--jobs", kr.JOBS])
        jobs = os.path.join(self.tmp, "su-jobs.csv")
        with open(kr.JOBS, encoding="utf-8") as f:
            header, *rows = f.read().splitlines()
        with open(jobs, "w", encoding="utf-8") as f:
            f.write(header + "\n")
            f.write("\n".join(rows) + "\n")  # the real jobs, then copies under other ids
            for k in range(1, 150):
                for r in rows:
                    first, rest = r.split(";", 1)
                    f.write(f"{int(first) + k * 1_000_000};{rest}\n")
        pipe = with_bound(os.path.join(EX, "recruitment.toml"), os.path.join(self.tmp, "su.toml"),
                          self.args.bound)
        db = os.path.join(self.tmp, "su.db")
        v = {"TRACKING": src, "JOBS": jobs, "SINK": f"sqlite:{db}",
             "DLQ": os.path.join(self.tmp, "su.dlq")}
        problems, during, times = [], 0, []
        for i in range(max(2, self.args.rounds)):
            p = self.start(pipe, v, f"startup-{i}")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not blocks_sigterm(p.pid) and p.poll() is None:
                time.sleep(0.001)
            time.sleep(self.rng.uniform(0.0, 0.05))
            pr, secs = self.term(p)
            problems += [f"run {i}: {x}" for x in pr]
            if secs is not None:
                times.append(secs)
            if "received while starting" in self.text(p):
                during += 1
        if during == 0:
            problems.append("no signal landed in the start-up (the dimension loaded too fast?)")
        if os.path.exists(db) and sqlite3.connect(db).execute(
                "SELECT count(*) FROM sqlite_master WHERE name = '_sluice_positions'").fetchone()[0]:
            if sqlite3.connect(db).execute("SELECT count(*) FROM _sluice_positions").fetchone()[0]:
                if during == max(2, self.args.rounds):
                    problems.append("positions were committed by runs stopped in their start-up")
        problems += self.finish_and_compare(pipe, dict(v, JOBS=kr.JOBS), db, src, "file", "su")
        notes = [f"{during} of {max(2, self.args.rounds)} signal(s) in the start-up, exit after "
                 f"{min(times):.1f}-{max(times):.1f}s"] if times else []
        return problems, notes

    def case_recruitment_table(self):
        import json
        src = self.generate("recruitment", 40000, "rt.ndjson", ["--jobs", kr.JOBS])
        table_db = os.path.join(self.tmp, "tracking-table.db")
        with open(src, encoding="utf-8") as f:
            records = [json.loads(ln) for ln in f if ln.strip()]
        cols = sorted({k for r in records for k in r})
        con = sqlite3.connect(table_db)
        con.execute("CREATE TABLE tracking (id INTEGER PRIMARY KEY, "
                    + ", ".join(f'"{c}"' for c in cols) + ")")
        con.executemany("INSERT INTO tracking (" + ", ".join(f'"{c}"' for c in cols) + ") VALUES ("
                        + ", ".join("?" for _ in cols) + ")",
                        [[r.get(c) for c in cols] for r in records])
        con.commit()
        con.close()
        pipe = with_bound(os.path.join(EX, "recruitment.toml"), os.path.join(self.tmp, "rt.toml"),
                          self.args.bound)
        db = os.path.join(self.tmp, "rt.db")
        v = {"TRACKING": f"sqlite:{table_db}?table=tracking&order_by=id&page_rows=500",
             "JOBS": kr.JOBS, "SINK": f"sqlite:{db}", "DLQ": os.path.join(self.tmp, "rt.dlq")}
        problems, notes = self.stop_at_random("recruitment-table", pipe, v, 0.8,
                                              ["--until-caught-up"])
        problems += self.finish_and_compare(pipe, v, db, src, "sqlite", "rt")
        return problems, notes

    def viewlog(self, case, views, max_delay, args=()):
        pipe = with_bound(os.path.join(EX, "viewlog.toml"), os.path.join(self.tmp, f"{case}.toml"),
                          self.args.bound)
        if views.startswith("kafka://"):
            # A name of its own: viewlog repartitions over several partitions, and its stage one
            # keeps its positions in the Kafka topic <name>-repartition.sluice-positions (deleted
            # with the test's topics), where the shipped name would meet other runs'.
            with open(pipe, encoding="utf-8") as f:
                text = f.read()
            text = re.sub(r'(?m)^name = "viewlog"$', f'name = "{self.args.prefix}-{self.token}-viewlog"', text)
            with open(pipe, "w", encoding="utf-8") as f:
                f.write(text)
        v = {"VIEWS": views, "OUT": f"parquet:{os.path.join(self.tmp, case + '-out')}",
             "CAMPAIGNS": os.path.join(EX, "data", "campaigns1.csv"),
             "DLQ": os.path.join(self.tmp, f"{case}.dlq")}
        return self.stop_at_random(case, pipe, v, max_delay, args)

    def case_viewlog_file(self):
        return self.viewlog("viewlog-file", self.generate("viewlog", 100000, "views.ndjson"), 1.5)

    def case_viewlog_generator(self):
        return self.viewlog("viewlog-generator", "generator:", 3.0)

    def case_viewlog_kafka(self):
        src = self.generate("viewlog", 100000, "views-k.ndjson")
        topic = self.topic("vk", 4, [src], keyed_by_job=False)
        return self.viewlog("viewlog-kafka", f"kafka://{kr.BROKER}/{topic}", 8.0,
                            ["--workers", "4"])

    def case_ysb_generator(self):
        pipe = with_bound(os.path.join(EX, "ysb.toml"), os.path.join(self.tmp, "ysb.toml"),
                          self.args.bound)
        v = {"EVENTS": "generator:", "SINK": f"sqlite:{os.path.join(self.tmp, 'ysb.db')}",
             "ADS": os.path.join(EX, "data", "ysb_ads.csv"),
             "DLQ": os.path.join(self.tmp, "ysb.dlq")}
        return self.stop_at_random("ysb-generator", pipe, v, 3.0)

    def case_users_ingest_http(self):
        api = subprocess.Popen([self.args.sluice, "fake-api", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            m = re.search(r"http://127\.0\.0\.1:\d+/api/", api.stdout.readline())
            if not m:
                return ["sluice fake-api did not print its URL"], []
            topic = f"{self.args.prefix}-{self.token}-users"
            kr.create_topic(topic, 1)
            self.topics.append(topic)
            pipe = with_bound(os.path.join(EX, "users-ingest.toml"),
                              os.path.join(self.tmp, "ui.toml"), self.args.bound)
            v = {"API": m.group(0), "PROFILES": f"kafka://{kr.BROKER}/{topic}",
                 "INTERVAL": "50ms", "DLQ": os.path.join(self.tmp, "ui.dlq")}
            return self.stop_at_random("users-ingest-http", pipe, v, 4.0)
        finally:
            api.terminate()
            api.wait()

    def case_mysql_gone(self):
        return self.mysql_case("gone", lambda proxy: proxy.shut())

    def case_mysql_frozen(self):
        return self.mysql_case("frozen", lambda proxy: proxy.freeze())

    def mysql_case(self, how, fault):
        database = f"{self.args.prefix.replace('-', '_')}_{how}_{self.token}"
        rc, out = mysql(f"CREATE DATABASE `{database}`")
        if rc != 0:
            return [f"cannot create database {database}: {out}"], []
        proxy = Proxy(MYSQL.host, MYSQL.port)
        try:
            pipe = with_bound(os.path.join(EX, "recruitment.toml"),
                              os.path.join(self.tmp, "mg.toml"), self.args.bound)
            v = {"TRACKING": "generator:", "RATE": "5000", "JOBS": kr.JOBS,
                 "SINK": f"mysql://{MYSQL.user}@127.0.0.1:{proxy.port}/{database}",
                 "DLQ": os.path.join(self.tmp, f"mg-{how}.dlq")}
            p = self.start(pipe, v, f"mysql-{how}")
            deadline = time.monotonic() + 60
            committed = None
            while time.monotonic() < deadline and p.poll() is None:
                rc, out = mysql("SELECT COALESCE(SUM(`offset`), -1) FROM `_sluice_positions` WHERE "
                                "`source` = 'tracking'", database)
                if rc == 0 and out.strip() not in ("", "-1", "NULL"):
                    committed = out.strip()
                    break
                time.sleep(0.2)
            if committed is None:
                return [f"no checkpoint was committed within 60 s\n{self.tail(p)}"], []
            fault(proxy)
            time.sleep(self.rng.uniform(0.5, 1.5))  # checkpoints now fail, or hang
            _, before = mysql("SELECT SUM(`offset`) FROM `_sluice_positions` WHERE "
                              "`source` = 'tracking'", database)
            problems, secs = self.term(p, expect_rc=1)
            _, after = mysql("SELECT SUM(`offset`) FROM `_sluice_positions` WHERE "
                             "`source` = 'tracking'", database)
            if before != after:
                problems.append(f"positions changed after the server was gone: {before!r} -> {after!r}")
            if not problems and "shutdown_timeout" not in self.text(p):  # either path says it
                problems.append("the output does not say shutdown_timeout\n" + self.tail(p))
            return problems, [f"exit 1 {secs:.1f}s after SIGTERM"] if secs else []
        finally:
            proxy.shut()
            mysql(f"DROP DATABASE IF EXISTS `{database}`")


CASES = [
    ("recruitment-file", "case_recruitment_file", None),
    ("recruitment-generator", "case_recruitment_generator", None),
    ("recruitment-table", "case_recruitment_table", None),
    ("startup", "case_startup", None),
    ("recruitment-kafka", "case_recruitment_kafka", "kafka"),
    ("recruitment-kafka-rebalance", "case_recruitment_kafka_rebalance", "kafka"),
    ("viewlog-file", "case_viewlog_file", None),
    ("viewlog-generator", "case_viewlog_generator", None),
    ("viewlog-kafka", "case_viewlog_kafka", "kafka"),
    ("ysb-generator", "case_ysb_generator", None),
    ("users-ingest-http", "case_users_ingest_http", "kafka"),
    ("mysql-gone", "case_mysql_gone", "mariadb"),
    ("mysql-frozen", "case_mysql_frozen", "mariadb"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rounds", type=int, default=1, help="SIGTERMs per case")
    ap.add_argument("--bound", type=int, default=10, help="shutdown_timeout in seconds")
    ap.add_argument("--seed", type=int, default=1406)
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--prefix", default="sluice-st", help="topic and database name prefix")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--legacy", action="store_true",
                    help="do not set shutdown_timeout (a build that does not know it)")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    global LEGACY
    LEGACY = args.legacy
    only = set(args.only.split(",")) if args.only else None
    tmp = tempfile.mkdtemp(prefix="sluice-sigterm-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, seed {args.seed}, {args.rounds} round(s), bound {args.bound}s",
          flush=True)
    try:
        for name, method, needs in CASES:
            if only and name not in only:
                continue
            if needs == "kafka" and not t.kafka:
                t.skip(name, f"Kafka (and kcat) on {kr.BROKER} not available")
                continue
            if needs == "mariadb" and not t.mariadb:
                t.skip(name, f"MariaDB on {MYSQL.address} not available")
                continue
            try:
                problems, notes = getattr(t, method)()
            except Exception:  # a setup error or a bug in this test
                import traceback
                problems, notes = [traceback.format_exc()], []
            finally:
                t.kill_leftovers()
            t.result(f"{name}: SIGTERM ends the run within {args.bound}s + 5s", problems, notes)
    finally:
        t.kill_leftovers()
        if t.topics and not args.keep:
            kr.delete_topics(f"{args.prefix}-{t.token}-.*")
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
