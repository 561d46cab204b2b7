#!/usr/bin/env python3
"""Kafka source acceptance test for the recruitment pipeline: exact results against a real broker.

    kafka_recruitment_test.py --sluice build/sluice [--sink sqlite|mysql|all] [--seed N]
                              [--kills 10] [--only 1,2,3,4] [--keep]

Needs the local servers of `make services` (scripts/services.sh): Kafka on 127.0.0.1:9092 and, for
--sink mysql, MariaDB on 127.0.0.1:3306 (root, no password, database `sluice`); SLUICE_TEST_KAFKA
and SLUICE_TEST_MYSQL override the addresses (tests/tools/harness.py). A server that does not
answer is a FAIL under CI=true (or 1, yes), otherwise a loud SKIP (exit 77).

Records are published by an independent client, kcat (Debian package; installed through
scripts/install-deps.sh when missing), keyed by job_id (`kcat -P -K '\\t'`), to fresh topics
created with scripts/kafka-topics.sh. Expected results come from the independent recomputation
(tests/tools/recompute_recruitment.py, with sources = 'kafka') over exactly the records
published. Each scenario uses a copy of examples/recruitment.toml with its own consumer group
(`group` under [source]), its own pipeline name (the positions key) and its own sink (a fresh
SQLite file, or a fresh MySQL table); the SQLite variant drops the [sink] column_types line.

 1. produce + catch up: the seed tracking.csv (as NDJSON, tests/tools/csv_to_ndjson.py) and
    --gen-count `sluice generate` records on a 4-partition topic; `sluice run --until-caught-up`
    exits 0 and `events` equals the recomputation, the dead-letter file holds the recomputation's
    dead letters; a second --until-caught-up run changes nothing (full table dump including the
    `_` columns, positions, dead-letter file).
 2. kill -9: --kill-count generated records on a 4-partition topic; sluice runs as a service
    (no --until-caught-up) and is killed with SIGKILL --kills times, each a random delay (seeded
    RNG, 0.2-2 s) after it was assigned its partitions, and restarted each time. If the work runs
    out before all kills landed, another chunk of records is appended to the topic. Then a last
    run is left to finish (committed positions, polled in `_sluice_positions`, sum to the records
    published) and stopped with SIGTERM (exit 0). Table == recomputation; dead-letter file ==
    the recomputation's dead letters (line count, and the payloads as a multiset).
    This copy of the pipeline sets kafka.session.timeout.ms = 6000 (the broker's minimum: a
    restarted member waits that long for the killed one to time out), reads through a slow
    consumer (see slow_consumer(): the runs must last long enough for kills to land mid-work)
    and runs with --workers 1 (a process whose members join one after the other rebalances
    among them, which is scenario 3's subject).
 3. scale-out: --scale-count records on an 8-partition topic, slow consumer; process A starts;
    ~1 s after A got its partitions, and once it has committed positions, process B (same
    pipeline, group and sink) starts (rebalance); ~1 s after B got partitions A is stopped with
    SIGTERM (rebalance: A must checkpoint before giving its partitions up, and exit 0); B
    finishes and is stopped with SIGTERM (exit 0). Table == recomputation; the dead-letter file
    (the pipeline's one file, written by both) is checked on its own line.
 4. broker restart: --broker-count records on a 4-partition topic; while sluice consumes, the
    broker is restarted with scripts/services.sh (SLUICE_SERVICES_DIR taken from the running
    broker's command line); sluice must carry on by itself, finish, and stop with SIGTERM
    (exit 0). Table == recomputation.
In every scenario the committed positions are read while sluice runs and must never go back.

MySQL variant (--sink mysql): SINK=mysql://root@127.0.0.1:3306/sluice, a table per scenario, read
back with the `mariadb` client (--batch). When the binary has no MySQL sink (`sluice validate`
says unknown sink 'mysql') the variant is NOT AVAILABLE: a FAIL when --sink mysql was asked for,
a note with --sink all.

Prints PASS/FAIL per check with timings and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import csv_to_ndjson  # noqa: E402
import dead_letters  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from harness import BROKER, IN_CI, MYSQL, SEED_TRACKING, loud, run  # noqa: E402
from kafka_util import (JOBS, KEY, SOURCE, check_keying, concat, create_topic,  # noqa: E402
                        delete_topics, ensure_kcat, kafka_missing, kafka_ready, pipeline_copy,
                        keyed_file, produce, restart_broker, restart_mariadb, slow_consumer)

MYSQL_HOST, MYSQL_PORT, MYSQL_DB = MYSQL.host, MYSQL.port, "sluice"
MYSQL_URI = f"{harness.MYSQL_URI}/{MYSQL_DB}"
ASSIGNED = re.compile(r"assigned \S+\[\d+\]")
SUMMARY = re.compile(r": ([\d,]+) records in [\d.]+s \(")  # the one-line summary at exit


# ------------------------------------------------------------------------------------ sinks

class PositionWatch:
    """Committed positions, read at every poll: their sum tells how far the pipeline is, and a
    committed position must never go back (the owner of a partition only moves it forward;
    going back means work already counted will be counted again)."""

    def __init__(self):
        self.seen = {}         # partition -> highest committed offset seen
        self.regressions = []  # messages

    def committed(self):
        """Sum of the committed next-offsets of source 'tracking' (None when none/unreadable)."""
        pos = self.positions()
        if not pos:
            return None
        for p, o in pos.items():
            hi = self.seen.get(p)
            msg = f"partition {p}: the committed position went back from {hi} to {o}"
            if hi is not None and o < hi and msg not in self.regressions \
                    and len(self.regressions) < 20:
                self.regressions.append(msg)
            if hi is None or o > hi:
                self.seen[p] = o
        return sum(pos.values())


class SqliteSink(PositionWatch):
    kind = "sqlite"

    def __init__(self, workdir, scenario, pipeline):
        super().__init__()
        self.path = os.path.join(workdir, f"{scenario}.db")
        self.pipeline = pipeline
        self.uri = f"sqlite:{self.path}"
        self.table = "events"

    def positions(self):
        """{partition: committed next offset} of source 'tracking'; None when unreadable."""
        if not os.path.exists(self.path):
            return None
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)
            try:
                rows = con.execute("SELECT partition, offset FROM _sluice_positions WHERE "
                                   "pipeline = ? AND source = ?", (self.pipeline, SOURCE)).fetchall()
            finally:
                con.close()
            return {int(p): int(o) for p, o in rows}
        except sqlite3.Error:
            return None

    def dump(self):
        """(events rows incl. '_' columns, positions rows, updated_at values), sorted."""
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            # The table behind the view: the '_' columns are out of sight of `SELECT *` on it.
            ev = con.execute(f'SELECT * FROM "_sluice_table_{self.table}" ORDER BY '
                             + ", ".join(f'"{k}"' for k in KEY)).fetchall()
            pos = con.execute("SELECT pipeline, source, partition, offset FROM _sluice_positions "
                              "ORDER BY 1, 2, 3").fetchall()
            upd = con.execute("SELECT updated_at FROM _sluice_positions ORDER BY pipeline, "
                              "source, partition").fetchall()
        finally:
            con.close()
        return ev, pos, upd

    def comparable(self, workdir):
        """A path compare_tables can load (the table is read as 'events')."""
        return self.path

    def cleanup(self):
        pass


class MysqlSink(PositionWatch):
    kind = "mysql"

    def __init__(self, workdir, scenario, pipeline):
        super().__init__()
        self.pipeline = pipeline
        self.table = pipeline  # unique per scenario and test run
        self.uri = MYSQL_URI

    @staticmethod
    def query(sql, timeout=30):
        """Runs SQL with the mariadb client (--batch); returns (header, rows) of text, NULL as None."""
        rc, out = run(["mariadb", "--no-defaults", f"-h{MYSQL_HOST}", f"-P{MYSQL_PORT}", "-uroot",
                       "--batch", "-e", sql, MYSQL_DB],
                      timeout=timeout)
        if rc != 0:
            raise RuntimeError(f"mariadb: {out.strip()[-800:]}")
        lines = out.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            return [], []

        def unescape(v):
            if v == "NULL":
                return None
            return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1),
                                                                                   m.group(1)), v)
        header = lines[0].split("\t")
        rows = [tuple(unescape(v) for v in ln.split("\t")) for ln in lines[1:]]
        return header, rows

    def positions(self):
        try:
            _, rows = self.query("SELECT `partition`, `offset` FROM `_sluice_positions` WHERE "
                                 f"`pipeline` = '{self.pipeline}' AND `source` = '{SOURCE}'",
                                 timeout=10)
        except RuntimeError:
            return None
        return {int(p): int(o) for p, o in rows}

    def dump(self):
        _, ev = self.query(f"SELECT * FROM `_sluice_table_{self.table}` ORDER BY "
                           + ", ".join(f"`{k}`" for k in KEY), timeout=60)
        _, pos = self.query("SELECT `pipeline`, `source`, `partition`, `offset` FROM "
                            f"`_sluice_positions` WHERE `pipeline` = '{self.pipeline}' ORDER BY 1, 2, 3")
        _, upd = self.query("SELECT `updated_at` FROM `_sluice_positions` WHERE `pipeline` = "
                            f"'{self.pipeline}' ORDER BY `pipeline`, `source`, `partition`")
        return ev, pos, upd

    def comparable(self, workdir):
        import csv
        header, rows = self.query(f"SELECT * FROM `{self.table}`", timeout=60)
        path = os.path.join(workdir, f"{self.table}.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            for r in rows:
                w.writerow(["" if v is None else v for v in r])
        return path

    def cleanup(self):
        try:
            self.query(f"DROP TABLE IF EXISTS `{self.table}`")
            self.query(f"DELETE FROM `_sluice_positions` WHERE `pipeline` = '{self.pipeline}'")
        except RuntimeError as e:
            print(f"     note: mysql cleanup of {self.table}: {e}")


# ------------------------------------------------------------------------------------ helpers


def load_dlq_payloads(path):
    c = Counter()
    bad = 0
    if not os.path.exists(path):
        return c, 0, 0
    lines = 0
    with open(path, "rb") as f:
        for ln in f:
            if not ln.strip():
                continue
            lines += 1
            try:
                # A JSON payload is stored as a JSON value, a CSV line as a string: compare
                # both forms by content.
                c[dead_letters.payload_key(json.loads(ln.decode("utf-8")))] += 1
            except (ValueError, TypeError):
                bad += 1
    return c, lines, bad


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        for ln in f:
            if ln.strip():
                n += 1
    return n


class Proc:
    """One sluice process; stdout+stderr go to a log file."""

    def __init__(self, test, pipe, variables, label, until_caught_up=False, extra_args=()):
        test.attempt += 1
        self.logpath = os.path.join(test.tmp, f"{test.attempt:03d}-{label}.log")
        self.log = open(self.logpath, "wb")
        cmd = [test.args.sluice, "run", pipe]
        for k, v in variables.items():
            cmd += ["--var", f"{k}={v}"]
        if until_caught_up:
            cmd.append("--until-caught-up")
        cmd += list(extra_args)
        self.p = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self.label = label
        test.procs.append(self)

    def text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=12):
        return "\n".join("      | " + ln for ln in self.text().strip().splitlines()[-n:])

    def records(self):
        m = SUMMARY.findall(self.text())
        return int(m[-1].replace(",", "")) if m else None

    def alive(self):
        return self.p.poll() is None

    def wait_assigned(self, timeout, tick=None):
        """Waits for the first 'assigned TOPIC[p]' log line; returns seconds waited or None.
        tick() is called while waiting (to watch the committed positions)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ASSIGNED.search(self.text()):
                return time.monotonic() - self.started
            if not self.alive():
                return None
            if tick:
                tick()
            time.sleep(0.05)
        return None

    def wait(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.log.close()
        return rc

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, timeout=30, tick=None):
        """SIGTERM, then waits; returns the exit code (None: killed after timeout)."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        rc = None
        while rc is None and time.monotonic() < deadline:
            rc = self.wait(0.1)
            if tick:
                tick()
        if rc is None:
            self.signal(signal.SIGKILL)
            self.p.wait()
            self.log.close()
        return rc


# ------------------------------------------------------------------------------------ test

class Test(harness.SluiceTest):
    def __init__(self, args, tmp):
        harness.SluiceTest.__init__(self, args, tmp)  # self.procs: Proc objects here
        self.rng = random.Random(args.seed)
        self.attempt = 0
        self.timings = []
        self.gen_seed = args.seed

    def kill_leftovers(self):
        for pr in self.procs:
            if pr.alive():
                pr.signal(signal.SIGKILL)
                pr.p.wait()
            if not pr.log.closed:
                pr.log.close()

    # -------------------------------------------------------------------- building blocks
    def generate(self, count, name):
        self.gen_seed += 1
        out = os.path.join(self.tmp, name)
        rc, text = run([self.args.sluice, "generate", "--profile", "recruitment", "--to", out,
                        "--count", str(count), "--rate", "0", "--seed", str(self.gen_seed),
                        "--jobs", JOBS], timeout=120)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {text[-800:]}")
        n = count_lines(out)
        if n != count:
            raise RuntimeError(f"sluice generate wrote {n} records to {out}, asked for {count}")
        return out

    def topic(self, scenario):
        return f"sluice-kt-{self.token}-{self.sink_kind}-{scenario}"

    def setup_scenario(self, scenario, partitions, ndjson_paths, extra_source=(), batch=None):
        """Topic with the records, pipeline copy, sink, and the recomputation."""
        topic = self.topic(scenario)
        name = f"kt_{self.sink_kind}_{scenario}_{self.token}"
        sink = (SqliteSink if self.sink_kind == "sqlite" else MysqlSink)(self.tmp, scenario, name)
        self.sinks.append(sink)
        pipe = pipeline_copy(os.path.join(self.tmp, f"{scenario}.toml"), name, name,
                             self.sink_kind, sink.table, extra_source)
        create_topic(topic, partitions)
        keyed = os.path.join(self.tmp, f"{scenario}.keyed")
        n = keyed_file(ndjson_paths, keyed)
        produce(topic, partitions, keyed, n, batch)
        variables = {"TRACKING": f"kafka://{BROKER}/{topic}", "JOBS": JOBS, "SINK": sink.uri,
                     "DLQ": os.path.join(self.tmp, f"{scenario}.dlq.ndjson")}
        return topic, pipe, sink, variables, n

    def recompute(self, scenario, ndjson_paths):
        src = concat(ndjson_paths, os.path.join(self.tmp, f"{scenario}-all.ndjson"))
        db = os.path.join(self.tmp, f"{scenario}-expected.db")
        dlq = os.path.join(self.tmp, f"{scenario}-expected.dlq.ndjson")
        stats = rr.recompute(src, JOBS, db, "kafka", dlq)
        self.say(f"recompute {scenario}: read={stats['read']} rows={stats['rows']} "
                 f"ignored={stats['ignored']} dead-lettered={stats['dead_lettered']} "
                 f"clicks={stats['clicks']}")
        return db, dlq, stats

    def check_results(self, label, sink, variables, expected_db, expected_dlq, stats,
                      dlq_files=None):
        problems = [f"{label}: {x}" for x in sink.regressions]
        try:
            got = sink.comparable(self.tmp)
            problems += [f"{label} vs recompute: {x}"
                         for x in compare_tables.compare(got, expected_db, KEY)]
        except (ValueError, RuntimeError) as e:
            problems.append(f"{label}: cannot read the sink table: {e}")
        got_dlq, lines, bad = Counter(), 0, 0
        for path in dlq_files or [variables["DLQ"]]:
            c, n, b = load_dlq_payloads(path)
            got_dlq += c
            lines += n
            bad += b
        exp_dlq, _, _ = load_dlq_payloads(expected_dlq)
        if lines != stats["dead_lettered"]:
            problems.append(f"{label}: dead-letter file has {lines} lines, the recomputation "
                            f"dead-letters {stats['dead_lettered']} records")
        if bad:
            problems.append(f"{label}: {bad} dead-letter lines are not JSON")
        if got_dlq != exp_dlq:
            problems.append(f"{label}: dead-letter payloads differ from the recomputation's: "
                            f"{sum((got_dlq - exp_dlq).values())} extra, "
                            f"{sum((exp_dlq - got_dlq).values())} missing")
        return problems

    @staticmethod
    def watch_sleep(sink, secs):
        """Sleeps secs, reading the committed positions every 0.1 s (see PositionWatch)."""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            sink.committed()
            time.sleep(max(0.0, min(0.1, end - time.monotonic())))

    def wait_done(self, sink, total, timeout, procs):
        """Polls the committed positions until they sum to total. Returns (ok, problem)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = sink.committed()
            if last == total:
                return True, None
            if last is not None and last > total:
                return False, f"committed positions sum to {last}, more than the {total} records"
            for pr in procs:
                if not pr.alive():
                    return False, (f"{pr.label} exited {pr.p.returncode} on its own before "
                                   f"finishing\n{pr.tail()}")
            time.sleep(0.2)
        return False, f"positions did not reach {total} within {timeout}s (last {last})"

    # -------------------------------------------------------------------- scenarios
    def scenario_produce(self):
        t0 = time.monotonic()
        paths, notes = [], []
        if os.path.exists(SEED_TRACKING):
            seed_nd = os.path.join(self.tmp, "seed-tracking.ndjson")
            csv_to_ndjson.convert(SEED_TRACKING, seed_nd)
            paths.append(seed_nd)
        elif IN_CI:
            self.result("1 produce + catch up: seed data", [f"{SEED_TRACKING} not found (CI=true)"])
        else:
            loud(f"SKIP the seed part of scenario 1: {SEED_TRACKING} not found")
        paths.append(self.generate(self.args.gen_count, "s1-gen.ndjson"))
        topic, pipe, sink, variables, n = self.setup_scenario("s1", 4, paths)
        self.say(f"s1: {n} records published to {topic} (4 partitions) with kcat")
        problems = check_keying(topic, n)
        exp_db, exp_dlq, stats = self.recompute("s1", paths)
        t_setup = time.monotonic() - t0

        t1 = time.monotonic()
        pr = Proc(self, pipe, variables, "s1-run1", until_caught_up=True)
        rc = pr.wait(self.args.run_timeout)
        secs1 = time.monotonic() - t1
        if rc != 0:
            problems.append(f"--until-caught-up run exited {rc}\n{pr.tail()}")
            if rc is None:
                pr.stop(5)
        else:
            problems += self.check_results("run 1", sink, variables, exp_db, exp_dlq, stats)
            committed = sink.committed()
            if committed != n:
                problems.append(f"committed positions sum to {committed}, expected {n}")
        self.result(f"1 produce with kcat ({n} records) + --until-caught-up == recompute "
                    f"(run {secs1:.2f}s)", problems)
        if problems:
            self.timings.append(("1 produce + catch up", time.monotonic() - t0))
            return

        problems, notes = [], []
        before = sink.dump()
        with open(variables["DLQ"], "rb") as f:
            dlq_before = f.read()
        t2 = time.monotonic()
        pr = Proc(self, pipe, variables, "s1-run2", until_caught_up=True)
        rc = pr.wait(self.args.run_timeout)
        secs2 = time.monotonic() - t2
        if rc != 0:
            problems.append(f"second --until-caught-up run exited {rc}\n{pr.tail()}")
            if rc is None:
                pr.stop(5)
        after = sink.dump()
        if after[0] != before[0]:
            changed = len(set(after[0]) ^ set(before[0]))
            problems.append(f"the second run changed the events table ({len(before[0])} -> "
                            f"{len(after[0])} rows, {changed} rows differ, '_' columns included)")
        if after[1] != before[1]:
            problems.append(f"the second run changed the positions: {before[1]} -> {after[1]}")
        if after[2] != before[2]:
            notes.append("the second run rewrote the positions' updated_at (offsets unchanged)")
        sink.committed()
        problems += sink.regressions
        with open(variables["DLQ"], "rb") as f:
            if f.read() != dlq_before:
                problems.append("the second run changed the dead-letter file")
        if pr.records() not in (0, None):
            notes.append(f"the second run reported {pr.records()} records in")
        self.result(f"1 second --until-caught-up run changes nothing (run {secs2:.2f}s)",
                    problems, notes)
        self.timings.append(("1 produce + catch up", time.monotonic() - t0))
        self.say(f"s1 timing: setup {t_setup:.1f}s, run 1 {secs1:.2f}s, run 2 {secs2:.2f}s")

    def scenario_kill(self):
        t0 = time.monotonic()
        paths = [self.generate(self.args.kill_count, "s2-gen.ndjson")]
        extra = ('"kafka.session.timeout.ms" = "6000"',) + slow_consumer(50)
        topic, pipe, sink, variables, total = self.setup_scenario("s2", 4, paths, extra, batch=1000)
        # One group member per process: a process's members that join one after the other
        # rebalance among themselves, which is scenario 3's subject, not this one's.
        workers = ["--workers", "1"]
        self.say(f"s2: {total} records published to {topic} (4 partitions, batches of 1000; "
                 "consumer fetches throttled; --workers 1)")
        problems, notes = [], []
        landed = idle_kills = attempts = appended = 0
        deadline = time.monotonic() + self.args.kill_budget
        waits = []
        while landed < self.args.kills and time.monotonic() < deadline \
                and attempts < 3 * self.args.kills:
            attempts += 1
            pr = Proc(self, pipe, variables, f"s2-k{attempts}", extra_args=workers)
            waited = pr.wait_assigned(40)
            if waited is None:
                problems.append(f"run {attempts} got no partitions within 40s (or exited "
                                f"{pr.p.poll()})\n{pr.tail()}")
                pr.signal(signal.SIGKILL)
                pr.wait(10)
                break
            waits.append(waited)
            delay = self.rng.uniform(0.2, 2.0)
            rc = pr.wait(delay)
            if rc is not None:
                problems.append(f"run {attempts} exited {rc} on its own\n{pr.tail()}")
                break
            pr.signal(signal.SIGKILL)
            pr.wait(10)
            pos = sink.committed()
            if pos is not None and pos >= total:
                idle_kills += 1
                msg = f"kill -9 after {delay:.2f}s landed after the work was done ({pos}/{total})"
                if appended < self.args.max_appends:
                    appended += 1
                    more = self.generate(self.args.append_count, f"s2-more{appended}.ndjson")
                    keyed = os.path.join(self.tmp, f"s2-more{appended}.keyed")
                    n_more = keyed_file([more], keyed)
                    produce(topic, 4, keyed, total + n_more, batch=1000)
                    paths.append(more)
                    total += n_more
                    msg += f"; appended {n_more} records (topic now {total})"
                self.say(f"s2: {msg}")
                continue
            landed += 1
            self.say(f"s2: kill -9 #{landed}, {delay:.2f}s after assignment (joined in "
                     f"{waited:.1f}s), committed {pos}/{total}")
        if landed < self.args.kills:
            problems.append(f"only {landed} of {self.args.kills} SIGKILLs landed mid-run "
                            f"({attempts} runs, {idle_kills} after the work was done)")
        notes.append(f"{landed} SIGKILLs landed mid-run; {idle_kills} landed when idle; "
                     f"{appended} chunks appended; partition assignment took "
                     f"{min(waits, default=0):.1f}-{max(waits, default=0):.1f}s after start")
        exp = None
        if not problems:
            t_fin = time.monotonic()
            pr = Proc(self, pipe, variables, "s2-final", extra_args=workers)
            ok, why = self.wait_done(sink, total, self.args.run_timeout, [pr])
            if not ok:
                problems.append(f"last run: {why}")
            rc = pr.stop(30, sink.committed)
            if rc != 0:
                problems.append(f"last run: exit {rc} after SIGTERM (expected 0)\n{pr.tail()}")
            notes.append(f"last run finished the remaining work in {time.monotonic() - t_fin:.1f}s")
            exp = self.recompute("s2", paths)
            problems += self.check_results("after kills", sink, variables, *exp)
        self.result(f"2 kill -9 x{landed} + restart, SIGTERM at the end ({total} records) "
                    f"== recompute", problems, notes)
        self.timings.append(("2 kill -9", time.monotonic() - t0))

    def scenario_scale_out(self):
        t0 = time.monotonic()
        paths = [self.generate(self.args.scale_count, "s3-gen.ndjson")]
        # A slow consumer, so that both rebalances happen with work left and records in flight:
        # producer batches of 1000 records, and every fetch waits 50 ms on the broker for more
        # data than it may return (fetch.min.bytes above what one fetch can carry).
        topic, pipe, sink, variables, total = self.setup_scenario("s3", 8, paths,
                                                                  slow_consumer(50), batch=1000)
        self.say(f"s3: {total} records published to {topic} (8 partitions, batches of 1000; "
                 "consumer fetches throttled)")
        problems, notes = [], []
        tick = sink.committed
        variables_b = dict(variables, DLQ=variables["DLQ"].replace(".dlq.ndjson", "-B.dlq.ndjson"))
        a = Proc(self, pipe, variables, "s3-A")
        wa = a.wait_assigned(40, tick)
        b = None
        if wa is None:
            problems.append(f"A got no partitions within 40s\n{a.tail()}")
        else:
            self.watch_sleep(sink, 1.0)
            # B starts once A has committed positions, so that B finds them in the sink.
            deadline = time.monotonic() + 15
            while sink.committed() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            before_b = sink.committed()
            # Each process of a pipeline keeps its own dead-letter file (sluice refuses to share
            # one); together they must hold every dead letter exactly once.
            b = Proc(self, pipe, variables_b, "s3-B")
            wb = b.wait_assigned(40, tick)
            if wb is None:
                problems.append(f"B got no partitions within 40s\n{b.tail()}")
            self.watch_sleep(sink, 1.0)  # A and B share the topic for a while
            at_stop = sink.committed()
            rc = a.stop(30, tick)
            if rc != 0:
                problems.append(f"A: exit {rc} after SIGTERM (expected 0)\n{a.tail()}")
            after_a = sink.committed()
            notes.append(f"committed when B started {before_b}, when A was stopped {at_stop}, "
                         f"after A exited {after_a} (of {total}); B assigned {wb and round(wb, 1)}s "
                         "after its start")
            if at_stop is not None and at_stop >= total:
                problems.append("A was stopped after all the work was done: the test did not "
                                "exercise the hand-over (use a larger --scale-count)")
            if "checkpoint before giving up partitions failed" in a.text():
                problems.append(f"A logged a failed checkpoint before a rebalance\n{a.tail()}")
            ok, why = self.wait_done(sink, total, self.args.run_timeout, [b])
            if not ok:
                problems.append(f"B: {why}")
            rc = b.stop(30, tick)
            if rc != 0:
                problems.append(f"B: exit {rc} after SIGTERM (expected 0)\n{b.tail()}")
            ra, rb = a.records(), b.records()
            notes.append(f"records processed: A {ra}, B {rb}"
                         + (f" (sum {ra + rb}, {ra + rb - total:+d} vs the topic)"
                            if ra is not None and rb is not None else ""))
        if a.alive():
            a.stop(10)
        if b is not None and b.alive():
            b.stop(10)
        exp_db, exp_dlq, stats = self.recompute("s3", paths)
        checked = self.check_results("A+B", sink, variables, exp_db, exp_dlq, stats,
                                     dlq_files=[variables["DLQ"], variables_b["DLQ"]])
        # The dead-letter files are reported on their own line.
        dlq_problems = [x for x in checked if "dead-letter" in x]
        problems += [x for x in checked if "dead-letter" not in x]
        self.result(f"3 scale-out: B joins, A leaves with SIGTERM, B finishes ({total} records, "
                    "8 partitions): table == recompute", problems, notes)
        self.result("3 scale-out: A's and B's dead-letter files == the recomputation's",
                    dlq_problems)
        self.timings.append(("3 scale-out", time.monotonic() - t0))

    def restart_mid_run(self, scenario, server, restart, count, throttled, wait_for_commit):
        """Runs sluice over `count` records and calls `restart` (which stops and starts `server`)
        mid-run; sluice must carry on by itself and end equal to the recomputation."""
        t0 = time.monotonic()
        paths = [self.generate(count, f"{scenario}-gen.ndjson")]
        if throttled:
            topic, pipe, sink, variables, total = self.setup_scenario(
                scenario, 4, paths, slow_consumer(50), batch=1000)
        else:
            topic, pipe, sink, variables, total = self.setup_scenario(scenario, 4, paths)
        self.say(f"{scenario}: {total} records published to {topic} (4 partitions"
                 + (", consumer throttled)" if throttled else ")"))
        exp = self.recompute(scenario, paths)
        problems, notes = [], []
        pr = Proc(self, pipe, variables, f"{scenario}-run")
        w = pr.wait_assigned(40)
        if w is None:
            problems.append(f"no partitions within 40s\n{pr.tail()}")
        else:
            if wait_for_commit:
                # Restart once something is committed, so that work before and after is checked.
                deadline = time.monotonic() + 20
                while sink.committed() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
            else:
                self.watch_sleep(sink, 0.5)
            at_stop = sink.committed()
            t_r = time.monotonic()
            self.say(f"{scenario}: restarting {server}")
            problems += restart()
            restart_secs = time.monotonic() - t_r
            self.say(f"{scenario}: {server} restart took {restart_secs:.1f}s; committed {at_stop} "
                     f"before, {sink.committed()} after (of {total})")
            if at_stop is not None and at_stop >= total:
                problems.append(f"the work was done before {server} was stopped (use a larger "
                                "--broker-count)")
            if not pr.alive():
                problems.append(f"sluice exited {pr.p.returncode} during the {server} restart "
                                f"(it must carry on by itself)\n{pr.tail()}")
            else:
                t_rec = time.monotonic()
                ok, why = self.wait_done(sink, total, self.args.run_timeout, [pr])
                if not ok:
                    problems.append(why)
                notes.append(f"{server} restart took {restart_secs:.1f}s; committed {at_stop} of "
                             f"{total} before it; sluice finished "
                             f"{time.monotonic() - t_rec:.1f}s after it was back")
            rc = pr.stop(30, sink.committed)
            if rc != 0:
                problems.append(f"exit {rc} after SIGTERM (expected 0)\n{pr.tail()}")
            problems += self.check_results(f"after {server} restart", sink, variables, *exp)
        if pr.alive():
            pr.stop(10)
        return problems, notes, total, time.monotonic() - t0

    def scenario_broker_restart(self):
        problems, notes, total, secs = self.restart_mid_run(
            "s4", "the Kafka broker", restart_broker, self.args.broker_count, throttled=False,
            wait_for_commit=False)
        self.result(f"4 broker restart mid-run ({total} records) == recompute", problems, notes)
        self.timings.append(("4 broker restart", secs))

    def scenario_csv_payloads(self):
        """The seed tracking log published as CSV lines without a header (format = "csv" with
        the column list); --until-caught-up must equal the recomputation over the CSV file."""
        t0 = time.monotonic()
        problems = []
        if not os.path.exists(SEED_TRACKING):
            self.result("6 CSV payloads", [f"{SEED_TRACKING} not found"] if IN_CI else [])
            return
        import csv as csvmod
        with open(SEED_TRACKING, encoding="utf-8", newline="") as f:
            text = f.read()
        lines = text.split("\n")
        header, rows = lines[0], [ln for ln in lines[1:] if ln]
        job_col = header.split(",").index("job_id")
        keyed = os.path.join(self.tmp, "s6.keyed")
        with open(keyed, "w", encoding="utf-8") as out:
            for ln in rows:
                # The seed log has no quoted newlines, so one line is one record.
                fields = next(csvmod.reader([ln]))
                out.write(f"{fields[job_col]}\t{ln}\n")
        topic = self.topic("s6")
        name = f"kt_{self.sink_kind}_s6_{self.token}"
        sink = (SqliteSink if self.sink_kind == "sqlite" else MysqlSink)(self.tmp, "s6", name)
        self.sinks.append(sink)
        pipe = pipeline_copy(os.path.join(self.tmp, "s6.toml"), name, name, self.sink_kind,
                             sink.table, ['format = "csv"', f'columns = "{header}"'])
        create_topic(topic, 4)
        produce(topic, 4, keyed, len(rows))
        variables = {"TRACKING": f"kafka://{BROKER}/{topic}", "JOBS": JOBS, "SINK": sink.uri,
                     "DLQ": os.path.join(self.tmp, "s6.dlq.ndjson")}
        db = os.path.join(self.tmp, "s6-expected.db")
        dlq = os.path.join(self.tmp, "s6-expected.dlq.ndjson")
        stats = rr.recompute(SEED_TRACKING, JOBS, db, "kafka", dlq)
        pr = Proc(self, pipe, variables, "s6-run", until_caught_up=True)
        rc = pr.wait(120)
        if rc != 0:
            problems.append(f"--until-caught-up exited {rc}\n{pr.tail()}")
        problems += self.check_results("CSV payloads", sink, variables, db, dlq, stats)
        self.result(f"6 CSV payloads ({len(rows)} seed records) + --until-caught-up == recompute",
                    problems)
        self.timings.append(("6 CSV payloads", time.monotonic() - t0))

    def scenario_mariadb_restart(self):
        """The sink's server goes away mid-run: checkpoints fail and are retried whole until
        MariaDB is back; nothing is lost or applied twice."""
        problems, notes, total, secs = self.restart_mid_run(
            "s5", "MariaDB", restart_mariadb, self.args.broker_count, throttled=True,
            wait_for_commit=True)
        self.result(f"5 MariaDB restart mid-run ({total} records) == recompute", problems, notes)
        self.timings.append(("5 MariaDB restart", secs))

    # -------------------------------------------------------------------- per sink
    def run_sink(self, kind):
        self.sink_kind = kind
        self.sinks = []
        only = self.args.only
        scenarios = [("1", self.scenario_produce), ("2", self.scenario_kill),
                     ("3", self.scenario_scale_out), ("4", self.scenario_broker_restart)]
        if kind == "mysql":
            scenarios.append(("5", self.scenario_mariadb_restart))
        scenarios.append(("6", self.scenario_csv_payloads))
        t0 = time.monotonic()
        print(f"---- sink: {kind} ----", flush=True)
        try:
            for key, fn in scenarios:
                if only and key not in only:
                    continue
                if not kafka_ready() and not self._restore_kafka():
                    self.result(f"scenario {key} ({kind}): Kafka at {BROKER}",
                                ["the broker does not answer (scripts/services.sh up kafka failed)"])
                    continue
                try:
                    fn()
                except RuntimeError as e:
                    self.result(f"scenario {key} ({kind})", [f"setup error: {e}"])
                except Exception:  # a bug in this test, or an unexpected environment
                    import traceback
                    self.result(f"scenario {key} ({kind})", [traceback.format_exc()])
                finally:
                    self.kill_leftovers()
        finally:
            if not self.args.keep:
                for s in self.sinks:
                    s.cleanup()
        print(f"     sink {kind}: {time.monotonic() - t0:.1f}s in all; "
              + ", ".join(f"{n} {s:.1f}s" for n, s in self.timings), flush=True)
        self.timings = []

    def _restore_kafka(self):
        run([os.path.join(REPO, "scripts", "services.sh"), "up", "kafka"], timeout=180)
        return kafka_ready()


def mysql_sink_available(sluice, tmp):
    pipe = pipeline_copy(os.path.join(tmp, "probe.toml"), "kt_probe", "kt_probe", "mysql",
                         "kt_probe")
    rc, out = run([sluice, "validate", pipe, "--var", f"TRACKING=kafka://{BROKER}/probe",
                   "--var", f"SINK={MYSQL_URI}", "--var", f"JOBS={JOBS}"], timeout=60)
    if "unknown sink 'mysql" in out:
        return False, "the binary has no MySQL sink (sluice validate: unknown sink 'mysql')"
    if rc != 0:
        return False, f"sluice validate with a mysql sink failed (rc {rc}): {out.strip()[-600:]}"
    return True, ""


def main(argv=None):
    ap = argparse.ArgumentParser(description="Kafka source acceptance test for recruitment.")
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--sink", choices=["sqlite", "mysql", "all"], default=None,
                    help="sink variant(s) to run (default sqlite; 'all': sqlite, then mysql when "
                         "the binary has it)")
    ap.add_argument("--seed", type=int, default=20240611, help="RNG seed (kill delays, generator)")
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs that must land mid-run")
    ap.add_argument("--gen-count", type=int, default=50000, help="scenario 1 generated records")
    ap.add_argument("--kill-count", type=int, default=200000, help="scenario 2 records")
    ap.add_argument("--append-count", type=int, default=50000,
                    help="scenario 2: records appended when the work runs out before the kills")
    ap.add_argument("--max-appends", type=int, default=4)
    ap.add_argument("--kill-budget", type=float, default=120,
                    help="scenario 2: seconds for the kill/restart cycles")
    ap.add_argument("--scale-count", type=int, default=200000, help="scenario 3 records")
    ap.add_argument("--broker-count", type=int, default=300000, help="scenario 4 records")
    ap.add_argument("--run-timeout", type=float, default=90, help="seconds a run may take")
    ap.add_argument("--only", help="comma-separated scenario numbers (1-6; 5 is mysql only) to run")
    ap.add_argument("--keep", action="store_true", help="keep the work dir, topics and tables")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    args.only = set(x.strip() for x in args.only.split(",")) if args.only else None
    explicit_mysql = args.sink == "mysql"
    kinds = {"sqlite": ["sqlite"], "mysql": ["mysql"], "all": ["sqlite", "mysql"],
             None: ["sqlite"]}[args.sink]

    tmp = tempfile.mkdtemp(prefix="sluice-kafka-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, RNG seed {args.seed}, run id {t.token}", flush=True)
    try:
        if not os.access(args.sluice, os.X_OK):
            t.result("sluice binary", [f"not an executable: {args.sluice}"])
            kinds = []
        missing_tool = ensure_kcat() if kinds else None
        if missing_tool:
            t.result("kcat", [missing_tool])
            kinds = []
        why = kafka_missing() if kinds else None
        if why:
            t.skip("Kafka broker", why)
            kinds = []
        if "mysql" in kinds:
            ok, why = mysql_sink_available(args.sluice, tmp)
            if not ok:
                kinds.remove("mysql")
                if explicit_mysql:
                    t.result("mysql variant NOT AVAILABLE", [why])
                else:
                    loud(f"mysql variant: NOT AVAILABLE: {why}")
            elif not MYSQL.up() or \
                    run(["mariadb", "--no-defaults", f"-h{MYSQL_HOST}", f"-P{MYSQL_PORT}",
                         "-uroot", "-e", "SELECT 1", MYSQL_DB], timeout=15)[0] != 0:
                kinds.remove("mysql")
                t.skip("MariaDB server (the mysql variant)",
                       f"MariaDB does not answer on {MYSQL.address} (database {MYSQL_DB}; "
                       f"{MYSQL.env} overrides the address)")
        elif args.sink is None:
            ok, why = mysql_sink_available(args.sluice, tmp)
            print(f"     (mysql variant: {'available, run it with --sink mysql' if ok else 'NOT AVAILABLE: ' + why})",
                  flush=True)
        for kind in kinds:
            t.run_sink(kind)
    finally:
        t.kill_leftovers()
        if kinds and not args.keep:
            delete_topics(f"sluice-kt-{t.token}-.*")
        if args.keep or t.failed:
            print(f"     kept {tmp}" + (f" (topics sluice-kt-{t.token}-*)" if args.keep else ""))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
