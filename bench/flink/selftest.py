#!/usr/bin/env python3
"""Checks the pieces of `make bench-flink` that run without Flink, Kafka or MariaDB (standard
library only, nothing downloaded; registered as ctest bench_flink_pieces):

  * the TimeUUID expression of the Flink job: the 15 (position, weight) terms are read back
    out of the generated SQL text and summed over UUID texts; the sum must be the 60-bit
    timestamp Python's uuid module gives (the independent computation);
  * the job dimension loader gives what tests/tools/recompute_recruitment.py's does for
    examples/data/job.csv;
  * the connector options: bounded mode only with --bounded, the user in the URL only without a
    password, both columns lists of the sink the same length as the query's select list;
  * `recruitment_flink.py --print-sql` works without pyflink installed;
  * the harness's side-by-side table: each other engine's ratio to sluice, in the right
    direction (sluice 10x better per CPU-s prints 10.0x; a fifth of the RSS prints 1/5.0x).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the checkout

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
sys.path.insert(0, os.path.join(REPO, "bench", "spark"))
import recruitment_flink as rf  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}")


def eval_ticks(sql, text):
    """Evaluates the generated TimeUUID sum on `text` from the SQL text itself."""
    terms = re.findall(r"CAST\(POSITION\(SUBSTRING\(LOWER\(create_time\) FROM (\d+) FOR 1\) IN "
                       r"'0123456789abcdef'\) - 1 AS BIGINT\)(?: \* (\d+))?", sql)
    check(len(terms) == 15, f"15 hex digit terms in the TimeUUID expression, found {len(terms)}")
    s = text.lower()
    return sum("0123456789abcdef".index(s[int(p) - 1]) * int(w or 1) for p, w in terms)


def test_timeuuid():
    sql = rf.event_time_expr()
    samples = [str(uuid.uuid1()), str(uuid.uuid1(node=0x0123456789AB, clock_seq=0x1FFF)),
               "00000000-0000-1000-8000-000000000000", "FFFFFFFF-FFFF-1FFF-BFFF-FFFFFFFFFFFF",
               "c232ab00-9414-11ec-b3c8-9f6bdeced846"]
    for s in samples:
        check(eval_ticks(sql, s) == uuid.UUID(s).time, f"TimeUUID ticks of {s}")
    check(str(rf.GREGORIAN_OFFSET_TICKS) in sql, "the Gregorian offset is subtracted")


def test_jobs():
    import recompute_recruitment as rr
    path = os.path.join(REPO, "examples", "data", "job.csv")
    mine = rf.load_jobs(path)
    theirs = rr.load_jobs(path)
    check(len(mine) > 1000 and mine == theirs,
          f"job dimension: {len(mine)} rows, equal to the recomputation's: {mine == theirs}")


def args_for(*extra):
    ap = argparse.Namespace(topic="t", database="d", brokers="b:1", mysql="m:2", user="u",
                            group=None, bounded=False, flush_rows=10000, flush_interval="1 s")
    for k, v in extra:
        setattr(ap, k, v)
    return ap


def test_sql():
    unbounded = "\n".join(s for _, s in rf.job_sql(args_for()))
    bounded = "\n".join(s for _, s in rf.job_sql(args_for(("bounded", True))))
    check("scan.bounded.mode" not in unbounded and
          "'scan.bounded.mode' = 'latest-offset'" in bounded, "bounded mode only with --bounded")
    check("'username'" not in unbounded and "&user=u'" in unbounded,
          "no password: the user goes in the URL")
    with_pw = "\n".join(s for _, s in rf.job_sql(args_for(), password="pw"))
    check("'username' = 'u'" in with_pw and "'password' = 'pw'" in with_pw
          and "&user=" not in with_pw, "a password: username and password options")
    stmts = dict((s.split(" ")[3], s) for k, s in rf.job_sql(args_for()) if k == "ddl"
                 and s.startswith("CREATE TEMPORARY TABLE"))
    sink_cols = re.findall(r"(\w+) (?:BIGINT|DATE|DECIMAL\(10, 2\)|STRING|TIMESTAMP\(0\))",
                           stmts["events_sink"].split("PRIMARY KEY")[0])
    insert = [s for k, s in rf.job_sql(args_for()) if k == "insert"][0]
    outer = insert.split(" FROM (")[0].split("SELECT ", 1)[1]
    depth, items, cur = 0, [], ""
    for ch in outer:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    check(len(sink_cols) == 17 and len(items) == 17,
          f"sink columns {len(sink_cols)} and select items {len(items)}, both 17")


def test_print_sql():
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, os.path.join(HERE, "recruitment_flink.py"), "--topic",
                        "t", "--database", "d", "--print-sql", "--bounded"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                       timeout=60)
    check(r.returncode == 0 and "INSERT INTO events_sink" in r.stdout
          and "SET 'table.local-time-zone' = 'UTC';" in r.stdout,
          f"--print-sql without pyflink (rc {r.returncode}: {r.stderr.strip()[-300:]})")


def test_report():
    import run_bench
    with tempfile.TemporaryDirectory() as d:
        ns = argparse.Namespace(build_dir=d, spark_python="p", flink_python="p",
                                engines="sluice,spark,flink", name_prefix="x",
                                sluice_interval="200ms")
        b = run_bench.Bench(ns)

        def eng(cpu, rss):
            return {"wall_s": 1.0, "events_per_s": 1000, "processing_s": 1.0,
                    "events_per_s_processing": 1000, "cpu_s_per_million": cpu,
                    "events_per_cpu_s": round(1e6 / cpu), "peak_rss_mib": rss}
        b.throughput = {"events": 1000, "sluice": eng(2.0, 100.0), "spark": eng(40.0, 1000.0),
                        "flink": eng(20.0, 500.0)}
        text = b.report()
    cpu = [line for line in text.split("\n") if "events per CPU-s" in line][0].split()
    rss = [line for line in text.split("\n") if "peak RSS" in line][0].split()
    check(cpu[-2:] == ["20.0x", "10.0x"], f"per CPU-s ratios sluice/Spark, sluice/Flink: {cpu}")
    check(rss[-2:] == ["1/10.0x", "1/5.0x"], f"RSS ratios: {rss}")


def main():
    for t in (test_timeuuid, test_jobs, test_sql, test_print_sql, test_report):
        t()
    if FAILURES:
        print(f"{len(FAILURES)} failed")
        return 1
    print("bench/flink selftest: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
