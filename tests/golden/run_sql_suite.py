#!/usr/bin/env python3
"""Runs the SQL golden cases (tests/golden/sql/, see its README.md) against a sluice binary.

    run_sql_suite.py --sluice build/sluice [--case NAME ...] [--keep]

Every directory under tests/golden/sql/ is a case holding pipeline.sql and either
  * an input (input.ndjson or input.csv; optional dim.csv) and expected.csv, the sink's rows
    worked out by hand (the case's README.md shows the arithmetic), optionally
    expected_summary.json (counts of the run summary, e.g. ignored / dead_lettered), optionally
    expected_steps.txt (the steps `sluice explain --format json` lists, one a line: the kind and
    the field, dimension or reason, e.g. `derive start_time`): the case runs
    `sluice run pipeline.sql --var IN=<input> [--var DIM=dim.csv] --var OUT=sqlite:<tmp>/<case>.db`
    and the table `out` must equal expected.csv (tests/tools/compare_tables.py rules, every
    column a key, so rows are compared as a multiset); or
  * expected_error.txt, one line `pipeline.sql:LINE:COL: message` counted by hand: then
    `sluice validate pipeline.sql` (run in the case's directory, with the same variables) must
    exit 2 and print exactly that line, after the CLI's `sluice: ` prefix, on stderr.
Prints PASS/FAIL per check and a final 'N passed, M failed'. Exit 1 if any failed.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402

CASES = os.path.join(HERE, "sql")

# Cases whose expected output sluice does not give yet (a bug, reported): name -> why.
KNOWN_FAILURES = {}


class Collect:
    """Stands in for harness.Checks while a known failure runs: records whether all passed."""

    def __init__(self):
        self.ok, self.details = True, []

    def check(self, name, ok, detail=""):
        if not ok:
            self.ok = False
            self.details.append(f"{name}: {detail}")
        return ok

    def result(self, name, problems, notes=(), limit=25):
        return self.check(name, not problems, "\n".join(problems[:limit]))


def variables(case, db):
    out = []
    for name in ("input.ndjson", "input.csv"):
        if os.path.exists(os.path.join(case, name)):
            out += ["--var", f"IN={name}"]
    if os.path.exists(os.path.join(case, "dim.csv")):
        out += ["--var", "DIM=dim.csv"]
    return out + ["--var", f"OUT=sqlite:{db}"]


def run_case(checks, sluice, name, tmp):
    case = os.path.join(CASES, name)
    db = os.path.join(tmp, name + ".db")
    label = name + (" (known failure: " + KNOWN_FAILURES[name] + ")" if name in KNOWN_FAILURES else "")
    error_file = os.path.join(case, "expected_error.txt")
    if os.path.exists(error_file):
        with open(error_file) as f:
            expected = f.read().strip("\n")
        p = subprocess.run([sluice, "validate", "pipeline.sql", *variables(case, db)], cwd=case,
                           capture_output=True, text=True, timeout=60)
        lines = p.stderr.splitlines()
        ok = p.returncode == 2 and "sluice: " + expected in lines
        return checks.check(f"{label}: validate exits 2 with the expected error", ok,
                            f"exit {p.returncode}\nexpected: {expected}\nstderr:   {p.stderr}")

    steps_file = os.path.join(case, "expected_steps.txt")
    if os.path.exists(steps_file):
        with open(steps_file) as f:
            want = [line.rstrip("\n") for line in f if line.strip()]
        p = subprocess.run([sluice, "explain", "pipeline.sql", *variables(case, db), "--format",
                            "json"], cwd=case, capture_output=True, text=True, timeout=60)
        got = []
        if p.returncode == 0:
            for step in json.loads(p.stdout)["steps"]:
                what = step.get("field") or step.get("dimension") or step.get("reason", "")
                got.append(f"{step['kind']} {what}")
        checks.check(f"{label}: explain lists the steps of expected_steps.txt", got == want,
                     f"exit {p.returncode} {p.stderr[-400:]}\ngot:  {got}\nwant: {want}")

    summary = os.path.join(tmp, name + ".summary.json")
    p = subprocess.run([sluice, "run", "pipeline.sql", *variables(case, db), "--summary-json",
                        summary, "--quiet"], cwd=case, capture_output=True, text=True, timeout=120)
    if not checks.check(f"{label}: sluice run exits 0", p.returncode == 0,
                        f"exit {p.returncode}: {p.stdout[-800:]}{p.stderr[-800:]}"):
        return
    expected_csv = os.path.join(case, "expected.csv")
    with open(expected_csv, newline="") as f:
        header = next(csv.reader(f))
    try:
        problems = compare_tables.compare(db, expected_csv, header, "out", "out")
    except ValueError as e:
        problems = [str(e)]
    checks.result(f"{label}: table out equals expected.csv", problems)
    summary_file = os.path.join(case, "expected_summary.json")
    if os.path.exists(summary_file):
        with open(summary_file) as f:
            want = json.load(f)
        with open(summary) as f:
            got = json.load(f)
        got = {k: got.get(k) for k in want}
        checks.check(f"{label}: summary counts", got == want, f"{got} vs {want}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--case", action="append")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sluice = os.path.abspath(args.sluice)
    checks = harness.Checks("golden_sql")
    tmp = tempfile.mkdtemp(prefix="sluice_sql_")
    for name in args.case or sorted(os.listdir(CASES)):
        if os.path.isdir(os.path.join(CASES, name)):
            if name in KNOWN_FAILURES:
                c = Collect()
                run_case(c, sluice, name, tmp)
                print("XFAIL " + "\n      ".join(c.details) if not c.ok else "", flush=True)
                checks.check(f"{name}: still fails as known, else remove it from KNOWN_FAILURES",
                             not c.ok)
            else:
                run_case(checks, sluice, name, tmp)
    checks.keep_or_remove(tmp, args.keep)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
