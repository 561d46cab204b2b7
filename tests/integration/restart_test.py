#!/usr/bin/env python3
"""Crash/restart test for the recruitment pipeline: results must be exact after kill -9.

    restart_test.py --sluice build/sluice [--copies 30] [--kills 6] [--seed 20240607] [--keep]

File source:
  1. Builds a large tracking CSV: the seed tracking.csv repeated --copies times (~200k records).
     In copy k every valid v1 create_time is rewritten to a TimeUUID k*(3 days 1 h 7 min) later
     (same clock sequence and node), so copies partly overlap in keys and partly add new ones;
     each copy also gets two bad rows (a non-integer bid; a wrong field count), so dead letters
     are exercised too.
  2. Runs sluice uninterrupted into database A.
  3. Kill/restart cycles, each on a fresh database B<i>: sluice is started and, after a random
     delay (seeded RNG, 0.05 s .. ~1 s, capped below the work left so signals land mid-run), stopped
     -- the very first time with SIGINT (graceful stop), then with SIGKILL -- and restarted, up to
     --kills-per-cycle kills; then it is restarted until a run exits 0. Cycles repeat until
     --kills (>= 5) SIGKILLs have landed mid-run. Cycle i uses checkpoint_interval
     --checkpoint-intervals[i] (default 100ms, the example's own 1s, 25ms, in turn) through a copy
     of examples/recruitment.toml with only that line changed, so kills also hit runs that have
     committed part of their input, and commits in progress.
  4. A and every B<i> (all non-'_' columns) must be equal, both must equal the independent recomputation
     (tests/tools/recompute_recruitment.py), and A's and B's dead letters (in the sink's table
     `_sluice_dead_letters`, the default) must be the same multiset, as many as the
     recomputation has.
Generator source: TRACKING=generator: with COUNT=200000 (--gen-count) and RATE=0: an
uninterrupted run and a killed/restarted run must give equal tables and dead letters (these in
an NDJSON file, DLQ=file:PATH).

The seed data is needed for the file part (missing: FAIL under CI=true, else SKIP).
Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import dead_letters  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from recruitment_input import build_input  # noqa: E402

PIPELINE = "examples/recruitment.toml"
SEED = os.path.normpath(os.path.join(REPO, "..", "shared", "seed-data",
                                     "TrannXuanTien__ETL-streaming-project"))
KEY = list(rr.EVENTS_KEY)


def load_dlq_multiset(location):
    """Dead letters as a multiset of (reason, payload, partition, offset): from the sink's table
    (`sqlite:DB`) or an NDJSON file. A malformed record counts as one '<bad record>' entry."""
    c = Counter()
    entries, problems = dead_letters.load_dlq(location)
    for o in entries:
        c[(o.get("reason"), dead_letters.payload_key(o), o.get("partition"), o.get("offset"))] += 1
    for p in problems:
        c[("<bad record>", p, None, None)] += 1
    return c


class Test(harness.Checks):
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        harness.Checks.__init__(self)
        self.attempt = 0

    def cmd(self, variables):
        c = [self.args.sluice, "run", variables.get("_pipeline", PIPELINE)]
        for k, v in variables.items():
            if not k.startswith("_"):
                c += ["--var", f"{k}={v}"]
        return c

    def start(self, variables, logdir):
        self.attempt += 1
        log = open(os.path.join(logdir, f"run-{self.attempt:03d}.log"), "wb")
        p = subprocess.Popen(self.cmd(variables), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        p._log = log  # closed when the run is over
        p._logpath = log.name
        return p

    @staticmethod
    def finish_run(p, timeout):
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        p._log.close()
        return rc

    @staticmethod
    def log_tail(p, n=12):
        try:
            with open(p._logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            return "\n".join("      | " + ln for ln in lines[-n:])
        except OSError:
            return ""

    def clean_run(self, variables, logdir, timeout):
        t0 = time.monotonic()
        p = self.start(variables, logdir)
        rc = self.finish_run(p, timeout)
        return rc, time.monotonic() - t0, p

    def pipeline_with_interval(self, interval):
        """The example pipeline, or a copy of it with another checkpoint_interval."""
        if not interval:
            return PIPELINE
        path = os.path.join(self.tmp, f"recruitment-{interval}.toml")
        if not os.path.exists(path):
            with open(os.path.join(REPO, PIPELINE), encoding="utf-8") as f:
                text = f.read()
            text2, n = re.subn(r'(?m)^checkpoint_interval\s*=\s*"[^"]*"',
                               f'checkpoint_interval = "{interval}"', text)
            if n != 1:
                raise RuntimeError(f"{PIPELINE}: cannot find checkpoint_interval to override")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text2)
        return path

    @staticmethod
    def committed(db_path):
        """Sum of the committed positions of source 'tracking' (None if unreadable), without the
        file identity the source stores next to them (partitions from 2^30 up)."""
        try:
            import sqlite3
            con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                r = con.execute("SELECT SUM(offset) FROM _sluice_positions "
                                "WHERE source = 'tracking' AND partition < 1073741824").fetchone()
            finally:
                con.close()
            return r[0]
        except Exception:  # no table yet, locked, ...
            return None

    def kill_loop(self, make_vars, clean_secs, timeout, total=None):
        """Kill/restart cycles. Each cycle starts on a fresh sink, is interrupted by signals at
        random moments (the first cycle starts with one SIGINT stop, then SIGKILLs), and ends
        with a run that exits 0; cycles repeat until --kills SIGKILLs have landed mid-run.
        Returns (problems, notes, finished cycle dirs)."""
        problems, notes, cycles = [], [], []
        landed = finished_early = 0
        sigint_done = False
        max_cycles = 8
        intervals = self.args.checkpoint_intervals
        while (landed < self.args.kills or not sigint_done) and len(cycles) < max_cycles:
            d, variables = make_vars(f"B{len(cycles) + 1}")
            interval = intervals[len(cycles) % len(intervals)]
            variables["_pipeline"] = self.pipeline_with_interval(interval)
            print(f"     cycle {len(cycles) + 1}: checkpoint_interval {interval or '(as in the example)'}",
                  flush=True)
            db_path = variables["SINK"].split(":", 1)[1]
            spent = 0.0  # sum of the delays survived by the killed runs of this cycle
            kills_this_cycle = 0
            done = False
            while not done:
                est_remaining = clean_secs - spent
                if est_remaining < 0.1 or landed >= self.args.kills and sigint_done \
                        or kills_this_cycle >= self.args.kills_per_cycle:
                    break  # enough for this cycle, or too little work left: run to the end
                hi = min(1.0, max(0.06, 0.9 * est_remaining))
                delay = self.rng.uniform(0.05, hi)
                sig = signal.SIGKILL if sigint_done else signal.SIGINT
                p = self.start(variables, d)
                try:
                    rc = p.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    rc = None
                if rc is not None:
                    p._log.close()
                    if rc != 0:
                        problems.append(f"run exited {rc} before it was signalled\n"
                                        f"{self.log_tail(p)}")
                        return problems, notes, cycles
                    finished_early += 1
                    print(f"     cycle {len(cycles) + 1}: run finished (rc 0) before the signal "
                          f"at {delay:.3f}s", flush=True)
                    done = True
                    break
                os.kill(p.pid, sig)
                if sig == signal.SIGINT:
                    try:
                        rc = p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        os.kill(p.pid, signal.SIGKILL)
                        p.wait()
                        problems.append(f"did not exit within 20s of SIGINT (killed)\n"
                                        f"{self.log_tail(p)}")
                        rc = "killed"
                    sigint_done = True
                    notes.append(f"SIGINT after {delay:.3f}s: exited {rc}")
                    what = f"SIGINT (exit {rc})"
                else:
                    p.wait()
                    landed += 1
                    kills_this_cycle += 1
                    what = f"kill -9 #{landed}"
                p._log.close()
                spent += delay
                pos = self.committed(db_path)
                frac = f", committed position {pos}" + (f" ({100.0 * pos / total:.0f}%)"
                                                         if pos is not None and total else "")
                print(f"     cycle {len(cycles) + 1}: {what} after {delay:.3f}s{frac}",
                      flush=True)
            if not done:
                for _ in range(3):
                    rc, secs, p = self.clean_run(variables, d, timeout)
                    if rc == 0:
                        print(f"     cycle {len(cycles) + 1}: restarted, ran to the end in "
                              f"{secs:.2f}s", flush=True)
                        break
                    problems.append(f"restart exited {rc}\n{self.log_tail(p)}")
                else:
                    problems.append("no restart exited 0")
                    return problems, notes, cycles
            cycles.append(d)
        if landed < self.args.kills:
            problems.append(f"only {landed} of {self.args.kills} SIGKILLs landed mid-run in "
                            f"{len(cycles)} cycles")
        if not sigint_done:
            problems.append("the SIGINT stop never landed mid-run")
        notes.append(f"{landed} SIGKILLs landed mid-run over {len(cycles)} cycle(s); "
                     f"{finished_early} runs finished before their signal")
        return problems, notes, cycles

    # ------------------------------------------------------------------------------------
    def file_part(self, tmp):
        tracking_seed = os.path.join(SEED, "tracking.csv")
        jobs = os.path.join(SEED, "job.csv")
        if not os.path.exists(tracking_seed):
            self.skip("file source: kill -9 / restart", f"seed data not found at {SEED}")
            return
        big = os.path.join(tmp, "tracking-big.csv")
        n = build_input(tracking_seed, self.args.copies, big)
        expected = os.path.join(tmp, "recompute.db")
        stats = rr.recompute(big, jobs, expected, "file")
        print(f"     input: {n} records ({os.path.getsize(big)} bytes); recompute: "
              f"rows={stats['rows']} ignored={stats['ignored']} "
              f"dead-lettered={stats['dead_lettered']} clicks={stats['clicks']}  "
              f"[{time.monotonic() - self.t0:.1f}s]", flush=True)

        def vars_for(name):
            d = os.path.join(tmp, name)
            os.makedirs(d, exist_ok=True)
            # Dead letters in the sink's table (the default).
            return d, {"TRACKING": big, "JOBS": jobs, "SINK": f"sqlite:{d}/out.db"}

        da, va = vars_for("A")
        rc, secs, p = self.clean_run(va, da, self.args.run_timeout)
        problems = [] if rc == 0 else [f"uninterrupted run exited {rc}\n{self.log_tail(p)}"]
        if not problems:
            problems += [f"A vs recompute: {x}" for x in
                         compare_tables.compare(f"{da}/out.db", expected, KEY)]
            dl = sum(load_dlq_multiset(f"sqlite:{da}/out.db").values())
            if dl != stats["dead_lettered"]:
                problems.append(f"A dead letters: {dl}, recompute: {stats['dead_lettered']}")
        self.result(f"file source: uninterrupted run == recompute ({secs:.2f}s)", problems)
        if problems:
            return

        problems, notes, cycles = self.kill_loop(vars_for, secs, self.args.run_timeout,
                                                 total=os.path.getsize(big))
        ma = load_dlq_multiset(f"sqlite:{da}/out.db")
        for i, db in enumerate(cycles, start=1):
            problems += [f"B{i} vs A: {x}" for x in
                         compare_tables.compare(f"{db}/out.db", f"{da}/out.db", KEY)]
            problems += [f"B{i} vs recompute: {x}" for x in
                         compare_tables.compare(f"{db}/out.db", expected, KEY)]
            mb = load_dlq_multiset(f"sqlite:{db}/out.db")
            if ma != mb:
                problems.append(f"B{i}: dead letters differ from the uninterrupted run: "
                                f"{sum((mb - ma).values())} extra (duplicated?), "
                                f"{sum((ma - mb).values())} missing; A {sum(ma.values())}, "
                                f"B {sum(mb.values())}")
        self.result("file source: kill -9 x N + SIGINT + restart == uninterrupted == recompute",
                    problems, notes)

    def generator_part(self, tmp):
        jobs = os.path.join(REPO, "examples", "data", "job.csv")

        def vars_for(name):
            d = os.path.join(tmp, name)
            os.makedirs(d, exist_ok=True)
            return d, {"TRACKING": "generator:", "COUNT": str(self.args.gen_count), "RATE": "0",
                       "JOBS": jobs, "SINK": f"sqlite:{d}/out.db", "DLQ": f"file:{d}/dlq.ndjson"}

        da, va = vars_for("GA")
        rc, secs, p = self.clean_run(va, da, self.args.run_timeout)
        problems = [] if rc == 0 else [f"uninterrupted generator run exited {rc}\n{self.log_tail(p)}"]
        rows = 0
        if not problems:
            try:
                t = compare_tables.load(f"{da}/out.db", "events")
                rows = len(t.rows)
                if rows == 0:
                    problems.append("uninterrupted generator run wrote no rows")
            except ValueError as e:
                problems.append(str(e))
        self.result(f"generator: uninterrupted run, COUNT={self.args.gen_count} "
                    f"({secs:.2f}s, {rows} rows)", problems)
        if problems:
            return
        problems, notes, cycles = self.kill_loop(lambda n: vars_for("G" + n), secs,
                                                 self.args.run_timeout, total=self.args.gen_count)
        ma = load_dlq_multiset(f"{da}/dlq.ndjson")
        for i, db in enumerate(cycles, start=1):
            problems += [f"GB{i} vs GA: {x}" for x in
                         compare_tables.compare(f"{db}/out.db", f"{da}/out.db", KEY)]
            mb = load_dlq_multiset(f"{db}/dlq.ndjson")
            if ma != mb:
                problems.append(f"GB{i}: dead letters differ: A {sum(ma.values())}, "
                                f"B {sum(mb.values())}")
        self.result("generator: kill -9 x N + SIGINT + restart == uninterrupted", problems, notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description="kill -9 / restart exactness test for recruitment.")
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--copies", type=int, default=30, help="seed copies in the big input")
    ap.add_argument("--kills", type=int, default=6, help="SIGKILLs that must land mid-run (>= 5)")
    ap.add_argument("--seed", type=int, default=20240607, help="RNG seed for the kill delays")
    ap.add_argument("--kills-per-cycle", type=int, default=3,
                    help="SIGKILLs before a cycle is let run to the end")
    ap.add_argument("--checkpoint-intervals", default="100ms,,25ms",
                    help="checkpoint_interval per kill cycle, comma-separated, used in turn; "
                         "empty = the example's own value (a copy of the pipeline file with only "
                         "that line changed is used otherwise)")
    ap.add_argument("--gen-count", type=int, default=200000)
    ap.add_argument("--run-timeout", type=float, default=60, help="seconds per sluice run")
    ap.add_argument("--skip-file", action="store_true")
    ap.add_argument("--skip-generator", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--seed-dir", help="seed data directory (default: "
                    "<repo>/../shared/seed-data/TrannXuanTien__ETL-streaming-project)")
    args = ap.parse_args(argv)
    if args.seed_dir:
        global SEED
        SEED = os.path.abspath(args.seed_dir)
    args.sluice = os.path.abspath(args.sluice)
    args.checkpoint_intervals = [x.strip() for x in args.checkpoint_intervals.split(",")]
    t = Test(args)
    tmp = tempfile.mkdtemp(prefix="sluice-restart-")
    t.tmp = tmp
    print(f"     work dir {tmp}, RNG seed {args.seed}", flush=True)
    try:
        if not os.access(args.sluice, os.X_OK):
            t.result("sluice binary", [f"not an executable: {args.sluice}"])
        else:
            if not args.skip_file:
                t.file_part(tmp)
            if not args.skip_generator:
                t.generator_part(tmp)
    finally:
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
