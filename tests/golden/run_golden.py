#!/usr/bin/env python3
"""Runs the recruitment golden cases and the seed acceptance against a sluice binary.

    run_golden.py --sluice build/sluice [--case NAME ...] [--no-seed] [--keep] [--timeout 60]

For every case directory under tests/golden/recruitment/ (one with an expected.csv):
    sluice run examples/recruitment.toml --var TRACKING=<input> --var JOBS=<jobs>
           --var SINK=sqlite:<tmp>/out.db
is run from the repository root; then
  * table `events` must equal expected.csv (multiset of rows, '_' columns ignored);
  * the sink's table `_sluice_dead_letters` (where dead letters go by default) must hold exactly
    the expected dead letters (expected_dead_letters.txt, none when absent), each a record of
    the dead-letter schema (tests/tools/dead_letters.py) whose payload is at its offset;
  * running the same command again on the same sink must change nothing (positions resume at
    the end of the input: no double counting, no duplicated dead letters).
Seed acceptance: the real seed tracking.csv with its job.csv, and the NDJSON conversion of it
(tests/tools/csv_to_ndjson.py), must each give the same table as tests/tools/recompute_recruitment.py
and the same number of dead letters (the CSV run writes them to an NDJSON file, DLQ=file:...,
the NDJSON run to the sink's table). A missing seed directory is a FAIL when CI=true, else a SKIP.

Prints PASS/FAIL/SKIP per case and, last, a line 'N passed, M failed'. Exit 1 if any failed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(REPO, "tests", "tools")
sys.path.insert(0, TOOLS)
import compare_tables  # noqa: E402
import csv_to_ndjson  # noqa: E402
import dead_letters  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

GOLDEN = os.path.join(HERE, "recruitment")
PIPELINE = "examples/recruitment.toml"
SEED = os.path.normpath(os.path.join(REPO, "..", "shared", "seed-data",
                                     "TrannXuanTien__ETL-streaming-project"))
KEY = list(rr.EVENTS_KEY)


def letters(location):
    """The stored dead letters as a sorted list of comparable records."""
    entries, _ = dead_letters.load_dlq(location)
    return sorted(json.dumps(e, sort_keys=True) for e in entries)


def run_sluice(sluice, tracking, jobs, db, dlq, timeout, extra_vars=()):
    """Runs the pipeline; `dlq` is an NDJSON file for the dead letters, or None for the default
    (the sink's table)."""
    cmd = [sluice, "run", PIPELINE,
           "--var", f"TRACKING={tracking}", "--var", f"JOBS={jobs}",
           "--var", f"SINK=sqlite:{db}", *extra_vars]
    if dlq:
        cmd += ["--var", f"DLQ=file:{dlq}"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, f"timed out after {timeout}s: {' '.join(cmd)}\n" \
            + tail((e.stderr or b"").decode("utf-8", "replace")), time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    return p.returncode, out, time.monotonic() - t0


def tail(text, n=15):
    lines = text.strip().splitlines()
    return "\n".join("      | " + ln for ln in lines[-n:])


class Runner(harness.Checks):
    def __init__(self, args):
        harness.Checks.__init__(self)
        self.args = args

    def result(self, name, problems, secs=None, notes=()):
        tag = "PASS" if not problems else "FAIL"
        if problems:
            self.failed += 1
        else:
            self.passed += 1
        t = f" ({secs:.2f}s)" if secs is not None else ""
        print(f"{tag} {name}{t}", flush=True)
        for n in notes:
            print(f"    note: {n}")
        for p in problems[:25]:
            print(f"    {p}")
        if len(problems) > 25:
            print(f"    ... {len(problems) - 25} more")
        sys.stdout.flush()

    # ------------------------------------------------------------------ golden cases
    def golden_case(self, name, d):
        inp = None
        for n in ("input.csv", "input.ndjson"):
            if os.path.exists(os.path.join(d, n)):
                inp = os.path.join(d, n)
        if inp is None:
            self.result(f"golden/{name}", ["no input.csv or input.ndjson"])
            return
        jobs = os.path.join(d, "jobs.csv")
        if not os.path.exists(jobs):
            jobs = os.path.join(GOLDEN, "jobs.csv")
        tmp = tempfile.mkdtemp(prefix=f"golden-{name}-")
        db = os.path.join(tmp, "out.db")
        dlq = f"sqlite:{db}"  # the default location: the sink's table
        problems, notes = [], []
        rc, out, secs = run_sluice(self.args.sluice, inp, jobs, db, None, self.args.timeout)
        if rc != 0:
            problems.append(f"sluice exited {rc}\n{tail(out)}")
        else:
            problems += compare_tables.compare(db, os.path.join(d, "expected.csv"), KEY)
            p, w = dead_letters.check(dlq, os.path.join(d, "expected_dead_letters.txt"), inp)
            problems += p
            notes += w
            if not problems and not self.args.no_rerun:
                before = letters(dlq)
                rc2, out2, _ = run_sluice(self.args.sluice, inp, jobs, db, None, self.args.timeout)
                if rc2 != 0:
                    problems.append(f"second run on the same sink exited {rc2}\n{tail(out2)}")
                else:
                    p = compare_tables.compare(db, os.path.join(d, "expected.csv"), KEY)
                    problems += [f"after a second run on the same sink: {x}" for x in p]
                    after = letters(dlq)
                    if after != before:
                        problems.append(f"second run on the same sink changed the dead letters "
                                        f"({len(before)} -> {len(after)})")
        self.result(f"golden/{name}", problems, secs, notes)
        if self.args.keep or problems:
            print(f"    kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ seed acceptance
    def seed(self):
        tracking = os.path.join(SEED, "tracking.csv")
        jobs = os.path.join(SEED, "job.csv")
        if not (os.path.exists(tracking) and os.path.exists(jobs)):
            why = f"seed data not found at {SEED}"
            for name in ("seed/tracking.csv", "seed/tracking.ndjson"):
                self.skip(name, why)
            return
        tmp = tempfile.mkdtemp(prefix="golden-seed-")
        expected_db = os.path.join(tmp, "recompute.db")
        stats = rr.recompute(tracking, jobs, expected_db, "file", os.path.join(tmp, "re-dlq.ndjson"))
        print(f"     seed recompute: read={stats['read']} ignored={stats['ignored']} "
              f"dead-lettered={stats['dead_lettered']} rows={stats['rows']} "
              f"clicks={stats['clicks']} spend={stats['spend']}", flush=True)
        ndjson = os.path.join(tmp, "tracking.ndjson")
        csv_to_ndjson.convert(tracking, ndjson)
        keep = self.args.keep
        for label, inp in (("seed/tracking.csv", tracking), ("seed/tracking.ndjson", ndjson)):
            sub = os.path.join(tmp, os.path.basename(inp).replace(".", "_"))
            os.makedirs(sub)
            db = os.path.join(sub, "out.db")
            dlq = os.path.join(sub, "dlq.ndjson") if inp == tracking else None
            problems = []
            rc, out, secs = run_sluice(self.args.sluice, inp, jobs, db, dlq, self.args.timeout)
            if rc != 0:
                problems.append(f"sluice exited {rc}\n{tail(out)}")
            else:
                problems += compare_tables.compare(db, expected_db, KEY)
                if inp == ndjson:
                    re_nd = os.path.join(sub, "recompute-ndjson.db")
                    rr.recompute(ndjson, jobs, re_nd, "file")
                    problems += [f"tooling: recompute(ndjson) != recompute(csv): {x}"
                                 for x in compare_tables.compare(re_nd, expected_db, KEY)]
                entries, p = dead_letters.load_dlq(dlq or f"sqlite:{db}")
                problems += p
                if len(entries) != stats["dead_lettered"]:
                    problems.append(f"dead letters: recompute has {stats['dead_lettered']}, "
                                    f"sluice wrote {len(entries)}")
            self.result(label, problems, secs)
            keep = keep or bool(problems)
        if keep:
            print(f"    kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run the recruitment golden tests against sluice.")
    ap.add_argument("--sluice", required=True, help="path to the sluice binary")
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--no-seed", action="store_true", help="skip the seed acceptance")
    ap.add_argument("--no-rerun", action="store_true", help="skip the second-run (resume) check")
    ap.add_argument("--keep", action="store_true", help="keep temporary directories")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per sluice run")
    ap.add_argument("--seed-dir", help="seed data directory (default: "
                    "<repo>/../shared/seed-data/TrannXuanTien__ETL-streaming-project)")
    args = ap.parse_args(argv)
    if args.seed_dir:
        global SEED
        SEED = os.path.abspath(args.seed_dir)
    args.sluice = os.path.abspath(args.sluice)
    r = Runner(args)
    if not os.access(args.sluice, os.X_OK):
        r.result("sluice binary", [f"not an executable: {args.sluice}"])
    else:
        for name in sorted(os.listdir(GOLDEN)):
            d = os.path.join(GOLDEN, name)
            if not os.path.isfile(os.path.join(d, "expected.csv")):
                continue
            if args.case and name not in args.case:
                continue
            r.golden_case(name, d)
        if not args.no_seed and not args.case:
            r.seed()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
