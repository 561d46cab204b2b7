#!/usr/bin/env python3
"""Runs the hopping-window golden cases against a sluice binary.

    run_hop.py --sluice build/sluice [--case NAME ...] [--keep]

Every directory under tests/golden/hop/ is a case: pipeline.toml, input.ndjson, expected.csv
(rows worked out by hand, see README.md) and expected_summary.json (late, late_windows and
dead_lettered of the run summary). For each case:
  * expected.csv must equal an independent recomputation from input.ndjson and the pipeline's
    window, slide, watermark delay and lateness (a few lines below, not sluice), so a slip in
    the hand-worked rows is caught;
  * `sluice run pipeline.toml --var IN=input.ndjson --var OUT=sqlite:<tmp>/out.db` must exit 0
    and leave table `sales` equal to expected.csv (tests/tools/compare_tables.py rules);
  * its --summary-json must carry the expected counts;
  * `sluice verify` with the same variables must find the table equal to its recomputation.
Prints PASS/FAIL per check and a final 'N passed, M failed'. Exit 1 if any failed.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402

CASES = os.path.join(HERE, "hop")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text):
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * UNITS[unit]
    return float(text)


def recompute(config, records):
    """Each record goes into every window [s, s + size) with s a multiple of the slide and
    s <= t < s + size. With a lateness (append mode: 0), a window whose end + lateness is at or
    before the watermark before the record (highest event time so far - delay) misses it; a
    record that every window misses is late. Returns (rows keyed by (start, shop), counts)."""
    a = config["aggregate"]
    size, slide = seconds(a["window"]), seconds(a.get("slide", a["window"]))
    delay = seconds(a.get("watermark_delay", "10s"))
    lateness = seconds(a["allowed_lateness"]) if "allowed_lateness" in a else \
        (0 if a.get("mode") == "append" else None)
    groups, late, late_windows, highest = {}, 0, 0, None
    for r in records:
        t = datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()
        starts = [s for s in (slide * (t // slide) - k * slide for k in range(int(size // slide)))
                  if s <= t < s + size]
        open_ = [s for s in starts if lateness is None or highest is None
                 or s + size + lateness > highest - delay]
        if not open_:
            late += 1
        late_windows += len(starts) - len(open_) if open_ else 0
        for s in open_:
            g = groups.setdefault((s, r["shop"]), {"n": 0, "total": 0, "biggest": None, "big": 0})
            g["n"] += 1
            x = r.get("amount")
            if x is not None:
                g["total"] += x
                g["biggest"] = x if g["biggest"] is None else max(g["biggest"], x)
                g["big"] += x >= 5
        highest = t if highest is None else max(highest, t)
    return groups, {"late": late, "late_windows": late_windows, "dead_lettered": late}


def fmt(s):
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S")


def run_case(checks, sluice, name, tmp):
    case = os.path.join(CASES, name)
    with open(os.path.join(case, "pipeline.toml"), "rb") as f:
        config = tomllib.load(f)
    with open(os.path.join(case, "input.ndjson")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(case, "expected.csv")) as f:
        expected = list(csv.DictReader(f))
    with open(os.path.join(case, "expected_summary.json")) as f:
        expected_counts = json.load(f)

    groups, counts = recompute(config, records)
    oracle = sorted((fmt(s), fmt(s + seconds(config["aggregate"]["window"])), shop,
                     *(str(g[c]) for c in expected[0] if c in g))
                    for (s, shop), g in groups.items())
    hand = sorted(tuple(row.values()) for row in expected)
    checks.check(f"{name}: hand-worked expected.csv equals the recomputation", hand == oracle,
                 f"hand {hand}\noracle {oracle}")
    checks.check(f"{name}: expected_summary.json equals the recomputation", expected_counts == counts,
                 f"{expected_counts} vs {counts}")

    db = os.path.join(tmp, name + ".db")
    summary = os.path.join(tmp, name + ".summary.json")
    cmd = [sluice, "run", os.path.join(case, "pipeline.toml"),
           "--var", f"IN={os.path.join(case, 'input.ndjson')}", "--var", f"OUT=sqlite:{db}",
           "--summary-json", summary, "--quiet"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    if not checks.check(f"{name}: sluice run exits 0", p.returncode == 0,
                        f"exit {p.returncode}: {p.stdout[-800:]}{p.stderr[-800:]}"):
        return
    problems = compare_tables.compare(db, os.path.join(case, "expected.csv"),
                                      ["window_start", "window_end", "shop"], "sales", "sales")
    checks.result(f"{name}: table sales equals expected.csv", problems)
    verify = subprocess.run([sluice, "verify", *cmd[2:7]], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    checks.check(f"{name}: sluice verify recomputes the same table", verify.returncode == 0 and
                 "equal" in verify.stdout, f"exit {verify.returncode}: {verify.stdout[-800:]}{verify.stderr[-800:]}")
    with open(summary) as f:
        got = json.load(f)
    got_counts = {k: got.get(k) for k in expected_counts}
    checks.check(f"{name}: summary counts", got_counts == expected_counts, f"{got_counts} vs {expected_counts}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--case", action="append")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    checks = harness.Checks("golden_hop")
    tmp = tempfile.mkdtemp(prefix="sluice_hop_")
    for name in args.case or sorted(os.listdir(CASES)):
        if os.path.isdir(os.path.join(CASES, name)):
            run_case(checks, args.sluice, name, tmp)
    checks.keep_or_remove(tmp, args.keep)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
