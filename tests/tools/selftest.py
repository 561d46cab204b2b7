#!/usr/bin/env python3
"""Checks the test tooling against itself, without the engine:

  * every golden case's hand-written expected.csv / expected_dead_letters.txt equals the
    independent recomputation (recompute_recruitment.py) of its input;
  * the NDJSON conversion of every CSV golden input and of the seed tracking.csv recomputes to
    the same table as the CSV;
  * the seed totals agree with SOURCES.md (6766 records; raw custom_track counts);
  * compare_tables.py detects a changed, a missing and an extra row.

    selftest.py            prints PASS/FAIL per check and 'N passed, M failed'; exit 1 on failure
"""

import csv
import os
import shutil
import sqlite3
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_tables  # noqa: E402
import csv_to_ndjson  # noqa: E402
import dead_letters  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(REPO, "tests", "golden", "recruitment")
SEED = os.path.join(os.path.dirname(REPO), "shared", "seed-data", "TrannXuanTien__ETL-streaming-project")
KEY = list(rr.EVENTS_KEY)


def case_dirs():
    for name in sorted(os.listdir(GOLDEN)):
        d = os.path.join(GOLDEN, name)
        if os.path.isfile(os.path.join(d, "expected.csv")):
            yield name, d


def case_input(d):
    for n in ("input.csv", "input.ndjson"):
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    raise FileNotFoundError(f"{d}: no input.csv or input.ndjson")


def case_jobs(d):
    p = os.path.join(d, "jobs.csv")
    return p if os.path.exists(p) else os.path.join(GOLDEN, "jobs.csv")


def main():
    results = []
    tmp = tempfile.mkdtemp(prefix="sluice-selftest-")

    def report(name, problems):
        results.append(not problems)
        print(f"{'PASS' if not problems else 'FAIL'} {name}")
        for p in problems[:20]:
            print(f"    {p}")

    try:
        for name, d in case_dirs():
            inp = case_input(d)
            db = os.path.join(tmp, f"{name}.db")
            dlq = os.path.join(tmp, f"{name}.dlq")
            rr.recompute(inp, case_jobs(d), db, "file", dlq)
            problems = compare_tables.compare(db, os.path.join(d, "expected.csv"), KEY)
            p2, _ = dead_letters.check(dlq, os.path.join(d, "expected_dead_letters.txt"),
                                       require_keys=False)
            report(f"golden/{name}: recompute == expected", problems + p2)
            if inp.endswith(".csv"):
                nd = os.path.join(tmp, f"{name}.ndjson")
                csv_to_ndjson.convert(inp, nd)
                db2 = os.path.join(tmp, f"{name}-nd.db")
                s = rr.recompute(nd, case_jobs(d), db2, "file")
                problems = compare_tables.compare(db2, os.path.join(d, "expected.csv"), KEY)
                s_csv = rr.recompute(inp, case_jobs(d), os.path.join(tmp, "x.db"), "file")
                for k in ("read", "ignored", "dead_lettered"):
                    if s[k] != s_csv[k]:
                        problems.append(f"{k}: csv {s_csv[k]} != ndjson {s[k]}")
                report(f"golden/{name}: ndjson conversion recomputes the same", problems)

        tracking = os.path.join(SEED, "tracking.csv")
        if os.path.exists(tracking):
            db = os.path.join(tmp, "seed.db")
            s = rr.recompute(tracking, os.path.join(SEED, "job.csv"), db)
            problems = []
            with open(tracking, newline="", encoding="utf-8") as f:
                raw = Counter(r["custom_track"] for r in csv.DictReader(f))
            expect_raw = {"": 3515, "click": 2167, "alive": 815, "conversion": 133,
                          "unqualified": 79, "interview_scheduled": 31, "qualified": 19,
                          "redirect": 6, "superpixel": 1}
            if dict(raw) != expect_raw:
                problems.append(f"raw custom_track counts {dict(raw)} != SOURCES.md {expect_raw}")
            if s["read"] != 6766:
                problems.append(f"read {s['read']} != 6766")
            if s["read"] != s["ignored"] + s["dead_lettered"] + s["counted"]:
                problems.append("read != ignored + dead-lettered + counted")
            if s["ignored_by_reason"].get("custom_track not counted") != 3515 + 815 + 31 + 6 + 1:
                problems.append(f"ignored by custom_track: {s['ignored_by_reason']}")
            con = sqlite3.connect(db)
            n_rec = con.execute("SELECT COUNT(*) FROM _records").fetchone()[0]
            con.close()
            if n_rec != s["counted"] or s["clicks"] + s["conversions"] + s["qualified"] \
                    + s["unqualified"] != n_rec:
                problems.append("metric totals do not add up to the counted records")
            report(f"seed: totals agree with SOURCES.md (rows={s['rows']} clicks={s['clicks']} "
                   f"ignored={s['ignored']} dead-lettered={s['dead_lettered']})", problems)
            nd = os.path.join(tmp, "seed.ndjson")
            csv_to_ndjson.convert(tracking, nd)
            db2 = os.path.join(tmp, "seed-nd.db")
            rr.recompute(nd, os.path.join(SEED, "job.csv"), db2)
            report("seed: ndjson conversion recomputes the same", compare_tables.compare(db, db2, KEY))
        else:
            print(f"SKIP seed checks: {SEED} not found")

        # compare_tables must notice differences.
        base = os.path.join(tmp, "seed.db") if os.path.exists(os.path.join(tmp, "seed.db")) \
            else os.path.join(tmp, "aggregation.db")
        other = os.path.join(tmp, "mutated.db")
        problems = []
        for mutation in ("UPDATE events SET bid_set = bid_set + 0.01 WHERE rowid = 1",
                         "DELETE FROM events WHERE rowid = 2",
                         "INSERT INTO events SELECT job_id, dates, hours, publisher_id, "
                         "campaign_id, group_id + 1000, company_id, clicks, bid_set, spend_hour, "
                         "conversion, qualified_application, disqualified_application, sources, "
                         "latest_update_time FROM events WHERE rowid = 3",
                         "UPDATE events SET latest_update_time = '2000-01-01 00:00:00' "
                         "WHERE rowid = 4"):
            shutil.copy(base, other)
            con = sqlite3.connect(other)
            con.execute(mutation)
            con.commit()
            con.close()
            if not compare_tables.compare(base, other, KEY):
                problems.append(f"not detected: {mutation}")
        shutil.copy(base, other)
        con = sqlite3.connect(other)
        con.execute("ALTER TABLE events ADD COLUMN _hidden INTEGER DEFAULT 5")
        con.commit()
        con.close()
        if compare_tables.compare(base, other, KEY):
            problems.append("a '_' column was not ignored")
        report("compare_tables detects differences and ignores '_' columns", problems)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
