#!/usr/bin/env python3
"""examples/viewlog.sql, the SQL twin of viewlog.toml, gives the right Parquet output and dead
letters.

    sql_viewlog_test.py --sluice build/sluice     (the project venv's python: pyarrow)

Generates view logs with `sluice generate --profile viewlog` (out-of-order, late and invalid
records), runs examples/viewlog.sql on them into parquet:DIR, and compares the rows and the dead
letters (per reason, and their payloads) with the independent recomputation
tests/tools/recompute_viewlog.py, as viewlog_test.py does for the TOML file. The reasons come
from the SQL file's CHECK constraint names and its JOIN's on_missing = 'dead_letter'.
Exit 1 on any failure.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
from viewlog_output import compare_output  # noqa: E402

REPO = harness.REPO
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
COUNT = 4000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    sluice = os.path.abspath(a.sluice)
    t = harness.Checks()
    with harness.temp_dir("sluice-sqlviewlog-", keep=a.keep, checks=t) as tmp:
        views = os.path.join(tmp, "views.ndjson")
        rc, text = harness.run([sluice, "generate", "--profile", "viewlog", "--count", str(COUNT),
                                "--rate", "0", "--seed", "5", "--start", "2026-01-01T00:00:00Z",
                                "--set", "spacing=100ms", "--set", "out_of_order=0.05",
                                "--set", "late=0.01", "--set", "invalid=0.05", "--to", views],
                               timeout=120)
        t.check("sluice generate writes the view logs", rc == 0, text[-800:])
        expected = rv.recompute(views, CAMPAIGNS)
        for reason in ("late", "missing view_id", "no campaign for key 999",
                       "end_timestamp before start_timestamp", "unparseable start_timestamp"):
            t.check(f"the input has a {reason!r} record (else the test would not exercise it)",
                    expected["reasons"][reason] > 0, "")
        out = os.path.join(tmp, "out")
        r = harness.run_sluice(sluice, os.path.join("examples", "viewlog.sql"),
                               {"VIEWS": views, "OUT": f"parquet:{out}"}, timeout=240)
        # A run of a file to its end closes every window (--until-caught-up would leave the
        # ones the watermark has not passed open, as for a stream).
        t.check("viewlog.sql runs to the end (exit 0)", r.returncode == 0,
                f"rc={r.returncode}\n{r.stdout[-800:]}\n{r.stderr[-1200:]}")
        problems, _ = compare_output("viewlog.sql", out, os.path.join(out, "_sluice", "dead_letters"),
                                     expected)
        t.result(f"viewlog.sql: Parquet rows and dead letters == recompute "
                 f"({len(expected['rows'])} rows, {len(expected['dead_letters'])} dead letters)",
                 problems)
    return t.finish()


if __name__ == "__main__":
    harness.main_guard(main)
