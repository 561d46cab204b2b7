#!/usr/bin/env python3
"""The Cassandra raw store at scale: the recruitment pipeline reading a tracking table of
--rows rows (default 1,000,000) whose blank fields were written as nulls (tombstones), once
keyed by create_time alone (the scan layout) and once by (day, create_time) (the bucket
layout). Not a test and not part of `make test` or `make bench`: numbers are reported.

    .venv/bin/python bench/cassandra_source.py --sluice build/sluice [--rows N]
        [--keyspace bench_cassandra] [--layouts single,bucket] [--increment 10000] [--keep]

Needs Cassandra on 127.0.0.1:9042 (`make services`) and the venv's cassandra-driver. The rows
are the seed tracking log repeated, copy c moved c * 7 days later (tests/integration/
cassandra_source_test.py makes and loads them); they are written to a CSV file too, and
tests/tools/recompute_recruitment.py computes the expected events table from it: a run whose
events differ aborts the benchmark (exit 1).

For each layout: one `sluice run --until-caught-up` over the whole table (rows/s = rows /
wall seconds of the run, start-up included), then --increment new rows (later times) and a
second run that reads only those: the cost of an incremental poll. Scan cost comes from the
source's own log: whole-table scans, rows the server returned, reads (pages or bucket reads).
Prints a JSON summary at the end.
"""

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import cassandra_source_test as cst  # noqa: E402
import compare_tables  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

FIELDS = ("ts", "custom_track", "job_id", "bid", "publisher_id", "campaign_id", "group_id")
SUMMARY_RE = re.compile(r"source cassandra \S+: (\d+) reads returned (\d+) rows \((\d+) "
                        r"(whole-table scans|buckets done)\), (\d+) failed reads")
SCAN_RE = re.compile(r"scanned the table: (\d+) rows in (\d+) pages, (\d+) ms; (\d+) to read")


def run(cmd, log):
    start = time.time()
    with open(log, "wb") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    took = time.time() - start
    with open(log, encoding="utf-8", errors="replace") as f:
        out = f.read()
    if p.returncode != 0:
        sys.exit(f"{cmd[:3]} exited {p.returncode}:\n{out[-3000:]}")
    return took, out


def cost(out):
    m = SUMMARY_RE.findall(out)
    if not m:
        sys.exit("no read summary in the log (is this the sluice of this tree?)")
    reads, rows, units, kind, failures = m[-1]
    scans = [tuple(int(x) for x in s) for s in SCAN_RE.findall(out)]
    return {"reads": int(reads), "rows_read": int(rows),
            ("scans" if kind.startswith("whole") else "buckets"): int(units),
            "failed_reads": int(failures),
            "scan_ms": [s[2] for s in scans], "rows_per_scan": sorted({s[0] for s in scans})}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keyspace", default="bench_cassandra")
    ap.add_argument("--layouts", default="single,bucket")
    ap.add_argument("--increment", type=int, default=10000)
    ap.add_argument("--page-rows", type=int, default=100000, help="page_rows of the scan layout")
    ap.add_argument("--fetch-size", type=int, default=5000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--seed-tracking", default=cst.SEED_TRACKING)
    args = ap.parse_args()
    cst.SEED_TRACKING = args.seed_tracking
    layouts = args.layouts.split(",")
    work = tempfile.mkdtemp(prefix="sluice-bench-cassandra-")
    cluster, s = cst.session()
    s.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}", timeout=300)
    s.execute(f"CREATE KEYSPACE {args.keyspace} WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    header, seed = cst.seed_rows()
    def first_rows():  # copies a week apart: times up to ~2025 at 1M rows
        return cst.gen_rows(seed, args.rows, days=7)

    # The increment: later copies, 30 weeks after the last one (the seed spans 192 days), so
    # every new row is newer than all the loaded ones.
    copies = -(-args.rows // len(seed))
    later = []
    for k in range(args.increment):
        copy, i = divmod(k, len(seed))
        row = dict(seed[i])
        row["create_time"] = str(cst.shifted(cst.uuid.UUID(row["create_time"]),
                                             copies + 30 + copy, 7))
        later.append(row)
    first_csv = os.path.join(work, "first.csv")
    csv_all = os.path.join(work, "tracking.csv")
    nulls = 0
    with open(first_csv, "w", newline="", encoding="utf-8") as f1, \
            open(csv_all, "w", newline="", encoding="utf-8") as f2:
        w1, w2 = csv.DictWriter(f1, fieldnames=header), csv.DictWriter(f2, fieldnames=header)
        w1.writeheader()
        w2.writeheader()
        for r in first_rows():
            nulls += sum(1 for c in FIELDS if r[c] == "")
            w1.writerow(r)
            w2.writerow(r)
        w2.writerows(later)
    tables = {"single": ("tracking_single", False), "bucket": ("tracking_bucket", True)}
    print(f"loading {args.rows} rows ({nulls} null cells among the pipeline's fields) into "
          f"{', '.join(tables[l][0] for l in layouts)}", flush=True)
    loaded, load_secs = cst.load(
        s, args.keyspace, [tables[l] for l in layouts], header, first_rows(), concurrency=32,
        batch_rows=20,
        progress=lambda n, t: print(f"  {n} rows, {n / t:.0f} rows/s", flush=True))
    print(f"loaded {loaded} rows x {len(layouts)} tables in {load_secs:.0f}s", flush=True)
    expected_first = os.path.join(work, "expected_first.db")
    rr.recompute(first_csv, cst.JOBS, expected_first, "cassandra")
    expected_all = os.path.join(work, "expected_all.db")
    rr.recompute(csv_all, cst.JOBS, expected_all, "cassandra")
    results = {"rows": args.rows, "null_cells": nulls, "increment": len(later),
               "load_rows_per_s": round(loaded * len(layouts) / load_secs), "layouts": {}}
    for layout in layouts:
        table, bucketed = tables[layout]
        uri = (f"cassandra://{cst.HOST}:{cst.PORT}/{args.keyspace}/{table}?order_by=create_time"
               f"&fetch_size={args.fetch_size}")
        uri += ("&bucket=day&bucket_width=1d&bucket_format=%Y-%m-%d" if bucketed
                else f"&page_rows={args.page_rows}")
        db = os.path.join(work, f"{layout}.db")
        cmd = [args.sluice, "run", cst.RECRUITMENT, "--until-caught-up",
               "--var", f"TRACKING={uri}", "--var", f"SINK=sqlite:{db}",
               "--var", f"JOBS={cst.JOBS}", "--var", f"DLQ={db}.dlq"]
        print(f"{layout}: reading {args.rows} rows", flush=True)
        took, out = run(cmd, os.path.join(work, f"{layout}.1.log"))
        problems = compare_tables.compare(db, expected_first, cst.KEY)
        if problems:
            sys.exit(f"{layout}: events differ from the recomputation: {problems[:5]}")
        r = {"batch": {"seconds": round(took, 1), "rows_per_s": round(args.rows / took),
                       **cost(out)}}
        print(f"  {json.dumps(r['batch'])}", flush=True)
        ins = s.prepare(f"INSERT INTO {args.keyspace}.{table} "
                        f"({'day, ' if bucketed else ''}{', '.join(header)}) VALUES "
                        f"({', '.join('?' for _ in range(len(header) + bucketed))})")
        from cassandra.concurrent import execute_concurrent_with_args  # noqa: PLC0415
        params = []
        for row in later:
            t = tuple(None if row[c] == "" else cst.uuid.UUID(row[c]) if c == "create_time"
                      else int(row[c]) if c in cst.INTS else row[c] for c in header)
            params.append((cst.day_of(t[header.index("create_time")]), *t) if bucketed else t)
        for ok, res in execute_concurrent_with_args(s, ins, params, concurrency=128,
                                                    raise_on_first_error=False):
            if not ok:
                sys.exit(f"insert failed: {res}")
        print(f"{layout}: {len(later)} new rows, reading them", flush=True)
        took, out = run(cmd, os.path.join(work, f"{layout}.2.log"))
        problems = compare_tables.compare(db, expected_all, cst.KEY)
        if problems:
            sys.exit(f"{layout}: events differ after the increment: {problems[:5]}")
        r["increment"] = {"seconds": round(took, 1), **cost(out)}
        print(f"  {json.dumps(r['increment'])}", flush=True)
        results["layouts"][layout] = r
    if not args.keep:
        s.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}", timeout=300)
        shutil.rmtree(work, ignore_errors=True)
    cluster.shutdown()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
