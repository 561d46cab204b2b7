#!/usr/bin/env python3
"""Checks the test tooling against itself, without the engine:

  * every golden case's hand-written expected.csv / expected_dead_letters.txt equals the
    independent recomputation (recompute_recruitment.py) of its input;
  * the NDJSON conversion of every CSV golden input and of the seed tracking.csv recomputes to
    the same table as the CSV;
  * the seed totals agree with SOURCES.md (6766 records; raw custom_track counts);
  * compare_tables.py detects a changed, a missing and an extra row;
  * viewlog: recompute_viewlog.py equals every hand-worked tests/golden/viewlog case (rows to
    the end of the input, rows with --open-at-end, dead letters), the hand-computed results of
    the seed view_log sample (with both campaign CSVs), and its timestamp parser and row
    comparison behave as documented;
  * harness.py: the one CI rule (CI=true, 1 or yes), the exit codes of Checks.finish() (0, 1,
    77), and server discovery with its SLUICE_TEST_* overrides.

    selftest.py            prints PASS/FAIL per check and 'N passed, M failed'; exit 1 on failure
"""

import csv
import json
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
import recompute_viewlog as rv  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(REPO, "tests", "golden", "recruitment")
SEED = os.path.join(os.path.dirname(REPO), "shared", "seed-data", "TrannXuanTien__ETL-streaming-project")
KEY = list(rr.EVENTS_KEY)
GOLDEN_VIEWLOG = os.path.join(REPO, "tests", "golden", "viewlog")
SEED_VIEWLOG = os.path.join(os.path.dirname(REPO), "shared", "seed-data",
                            "HassanAli-star__big_data_pipeline")


def harness_checks(report):
    """tests/tools/harness.py: the CI rule, the exit codes, server discovery."""
    import contextlib
    import io
    import subprocess
    import harness
    problems = []
    saved = os.environ.get("CI")
    try:
        for value, want in (("true", True), ("1", True), ("yes", True), ("TRUE", True),
                            ("Yes", True), ("", False), ("false", False), ("0", False),
                            ("no", False)):
            os.environ["CI"] = value
            if harness.in_ci() != want:
                problems.append(f"in_ci() with CI={value!r} is {not want}")

        def code(ci, steps, **kw):
            os.environ["CI"] = ci
            c = harness.Checks("selftest", **kw)
            with contextlib.redirect_stdout(io.StringIO()):
                for step in steps:
                    if step == "pass":
                        c.check("a", True)
                    elif step == "fail":
                        c.check("a", False)
                    else:
                        c.skip("a", "missing")
                return c.finish()
        for ci, steps, kw, want in (("", [], {}, 0), ("", ["pass"], {}, 0), ("", ["fail"], {}, 1),
                                    ("", ["skip"], {}, 77), ("true", ["skip"], {}, 1),
                                    ("1", ["skip"], {}, 1), ("yes", ["pass", "skip"], {}, 1),
                                    ("", ["pass", "skip"], {}, 0),
                                    ("", ["pass", "skip"], {"skip_on_any": True}, 77),
                                    ("", ["fail", "skip"], {"skip_on_any": True}, 1)):
            got = code(ci, steps, **kw)
            if got != want:
                problems.append(f"CI={ci!r}, {steps} {kw}: finish() {got}, want {want}")
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved
    probe = ("import harness as h; print(h.KAFKA.address, h.BROKER, h.MYSQL_URI, "
             "h.CASSANDRA.address, h.REGISTRY_URL)")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_TEST_")
            and k != "SLUICE_KAFKA_BROKERS"}
    for env, want in (({}, "127.0.0.1:9092 127.0.0.1:9092 mysql://root@127.0.0.1:3306 "
                            "127.0.0.1:9042 http://127.0.0.1:8081"),
                      ({"SLUICE_TEST_KAFKA": "127.0.0.1:1", "SLUICE_TEST_MYSQL": "db:3307",
                        "SLUICE_TEST_CASSANDRA": "c:1", "SLUICE_TEST_REGISTRY": "r:2"},
                       "127.0.0.1:1 127.0.0.1:1 mysql://root@db:3307 c:1 http://r:2"),
                      ({"SLUICE_TEST_MYSQL": "mysql://bob@h:33", "SLUICE_KAFKA_BROKERS": "k:9,l:9"},
                       "k:9 k:9 mysql://bob@h:33 127.0.0.1:9042 http://127.0.0.1:8081")):
        p = subprocess.run([sys.executable, "-c", probe], cwd=HERE, env=dict(base, **env),
                           capture_output=True, text=True, timeout=60)
        if p.stdout.strip() != want:
            problems.append(f"discovery with {env}: {p.stdout.strip() or p.stderr[-300:]!r}, "
                            f"want {want!r}")
    report("harness: the CI rule (true/1/yes), exit codes 0/1/77, server discovery", problems)


def viewlog_checks(report, tmp):
    """The viewlog recomputation against hand-worked expectations."""
    for name in sorted(os.listdir(GOLDEN_VIEWLOG)):
        d = os.path.join(GOLDEN_VIEWLOG, name)
        if not os.path.isfile(os.path.join(d, "expected.csv")):
            continue
        inp, camp = os.path.join(d, "input.ndjson"), os.path.join(d, "campaigns.csv")
        res = rv.recompute(inp, camp)
        problems = rv.compare_rows(res["rows"], rv.read_rows(os.path.join(d, "expected.csv")),
                                   label="recompute")
        dlq = os.path.join(tmp, f"viewlog-{name}.dlq")
        with open(dlq, "w", encoding="utf-8") as f:
            for reason, payload, _, offset in res["dead_letters"]:
                f.write(json.dumps({"reason": reason, "payload": payload, "offset": offset}) + "\n")
        p2, _ = dead_letters.check(dlq, os.path.join(d, "expected_dead_letters.txt"),
                                   require_keys=False)
        report(f"golden viewlog/{name}: recompute == expected (rows, dead letters)", problems + p2)
        open_path = os.path.join(d, "expected_open_at_end.csv")
        if os.path.exists(open_path):
            res2 = rv.recompute(inp, camp, open_at_end=True)
            problems = rv.compare_rows(res2["rows"], rv.read_rows(open_path), label="recompute")
            if res2["reasons"] != res["reasons"]:
                problems.append(f"dead letters differ with --open-at-end: {res2['reasons']}")
            report(f"golden viewlog/{name}: recompute --open-at-end == expected", problems)

    sample = os.path.join(SEED_VIEWLOG, "sample_view_logs.json")
    if os.path.exists(sample):
        # Hand-computed: v1 12:00-12:01 and v2 12:00-12:00:40 (campaign 1), and the same view
        # 12:01:00-12:01:30 twice (campaign 2); campaigns 1 and 2 are in network 1.
        def row(minute, campaign, avg, n):
            ws = (1696766400 + 60 * minute) * rv.MICROS  # 2023-10-08 12:MM:00 UTC
            return {"network_id": 1, "minute_timestamp": f"2023-10-08-12-{minute:02d}",
                    "campaign_id": campaign, "window_start": ws, "window_end": ws + rv.WINDOW,
                    "avg_duration": avg, "total_count": n}
        res = rv.recompute(sample, os.path.join(SEED_VIEWLOG, "sample_compaign.csv"))
        problems = rv.compare_rows(res["rows"], [row(0, 1, 50.0, 2), row(1, 2, 30.0, 2)])
        if res["read"] != 4 or res["dead_letters"]:
            problems.append(f"read {res['read']}, dead letters {res['dead_letters']}")
        # Caught up after 12:01:00, W = 12:00:50: both windows are still open.
        res = rv.recompute(sample, os.path.join(SEED_VIEWLOG, "sample_compaign.csv"),
                           open_at_end=True)
        if res["rows"] or res["open_windows"] != 2:
            problems.append(f"--open-at-end: rows {res['rows']}, open {res['open_windows']}")
        res = rv.recompute(sample, os.path.join(SEED_VIEWLOG, "campaigns1.csv"))
        if res["rows"] or res["reasons"] != Counter({"no campaign for key 1": 2,
                                                    "no campaign for key 2": 2}):
            problems.append(f"with campaigns1.csv: rows {res['rows']}, reasons {res['reasons']}")
        report("seed view_log sample: recompute == hand-computed (both campaign CSVs)", problems)
    else:
        print(f"SKIP seed view_log checks: {SEED_VIEWLOG} not found")

    by_partition_checks(report, tmp)

    t0 = 1696766400 * rv.MICROS  # 2023-10-08 12:00:00 UTC
    cases = {
        "2023-10-08T12:00:00Z": t0, "2023-10-08t12:00:00z": t0, "2023-10-08 12:00": t0,
        "2023-10-08 14:00:00+02:00": t0, "2023-10-08T14:00:00+0200": t0,
        "2023-10-08T14:00:00+02": t0, "2023-10-08 06:30:00-05:30": t0,
        "2023-10-08 12:00:00 +00:00": t0, " 2023-10-08 12:00:00\t": t0,
        "2023-10-08": t0 - 12 * 3600 * rv.MICROS,
        "2023-10-08 12:00:00.5": t0 + 500000, "2023-10-08 12:00:00,25": t0 + 250000,
        "2023-10-08 12:00:00.1234567": t0 + 123456, "2023-10-08 12:00:60": t0 + 60 * rv.MICROS,
        "2023-02-29 12:00:00": None, "2024-02-29 12:00:00": 1709208000 * rv.MICROS,
        "2023-10-08 24:00:00": None, "2023-10-08 12:60:00": None, "2023-10-08 12:00:00.": None,
        "2023-10-08T": None, "2023-10-08 12": None, "2023-10-08 12:00:00+24:00": None,
        "2023-10-08 12:00:00 UTC": None, "10/08/2023 12:00": None, "yesterday": None, "": None,
        "2023-1-08 12:00:00": None, "1696766400": None, "2023-10-08 12:00:00Z ": t0,
    }
    problems = [f"parse_iso({k!r}) = {rv.parse_iso(k)!r}, expected {v!r}"
                for k, v in cases.items() if rv.parse_iso(k) != v]
    if rv.parse_iso("2024-02-29") - rv.parse_iso("2024-02-28") != 86400 * rv.MICROS:
        problems.append("leap day arithmetic")
    report("viewlog: the timestamp parser reads what the contract says", problems)

    base = [{"network_id": 1, "minute_timestamp": "m", "campaign_id": c, "window_start": 0,
             "window_end": 60, "avg_duration": 1.0 / 3, "total_count": 3} for c in (10, 20)]
    problems = []
    if rv.compare_rows([dict(r) for r in base], base):
        problems.append("equal rows reported as different")
    if rv.compare_rows([dict(base[0], avg_duration=1.0 / 3 + 1e-15), base[1]], base):
        problems.append("a difference within the tolerance was reported")
    for mutated in ([dict(base[0], avg_duration=0.3334), base[1]], [base[0]],
                    [base[0], base[1], base[1]], [dict(base[0], total_count=4), base[1]],
                    [base[0], dict(base[1], campaign_id=30)]):
        if not rv.compare_rows(mutated, base):
            problems.append(f"not detected: {mutated}")
    report("viewlog: compare_rows detects changed, missing, duplicated and extra rows", problems)


def by_partition_checks(report, tmp):
    """recompute_viewlog --by-partition on a hand-worked topic of two partitions
    (allowed_lateness 30 s, watermark_delay 10 s; campaigns 1 and 2 in network 1, campaign 3
    in none)."""
    camp = os.path.join(tmp, "by-partition-campaigns.csv")
    with open(camp, "w", encoding="utf-8") as f:
        f.write("campaign_id,network_id\n1,1\n2,1\n3,\n")

    def view(c, start, dur):
        t = f"2023-10-08T12:{start}Z"
        end = rv.format_micros(rv.parse_iso(t) + dur * rv.MICROS, "%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps({"view_id": "v", "campaign_id": c, "start_timestamp": t,
                           "end_timestamp": end})
    # Partition 0 (campaign 1), W after each: 12:00:00, 12:02:50, 12:02:50 (o2 12:01:50 late:
    # 12:02:00 + 30 s <= 12:02:50), 12:02:50 (o3 counted), 12:03:30, 12:03:30 (o5 late: its
    # window ends 12:03:00 + 30 s = W exactly), 12:04:15, 12:04:15 (o7 12:03:20 counted: its
    # window ended 12:04:00 <= W, but 12:04:30 > W). Partition 1 (campaign 2): 11:59:50,
    # 12:01:20, o2 not JSON, o3 12:00:40 counted (12:01:30 > 12:01:20, a single stream's W of
    # 12:04:15 would make it late), 12:03:00. Emitted: window end + 30 s <= min(12:04:15,
    # 12:03:00): the windows 12:00 and 12:01; open: 12:02-12:04 of campaign 1 (o1, o3, o4,
    # o6, o7) and 12:03 of campaign 2 (o4). Campaign 3 has no network: partition 1's o5 (12:00:05,
    # window end 12:01:00 + 30 s <= 12:03:00) is late, not a null group key, as sluice judges the
    # window first; o6 (12:03:15) is the null group key and does not move W (else 12:03:05).
    lines = [(0, 0, view(1, "00:10", 4)), (0, 1, view(1, "03:00", 2)), (0, 2, view(1, "01:50", 1)),
             (0, 3, view(1, "02:30", 8)), (0, 4, view(1, "03:40", 1)), (0, 5, view(1, "02:59.5", 1)),
             (0, 6, view(1, "04:25", 1)), (0, 7, view(1, "03:20", 1)),
             (1, 0, view(2, "00:00", 1)), (1, 1, view(2, "01:30", 3)), (1, 2, "not JSON"),
             (1, 3, view(2, "00:40", 5)), (1, 4, view(2, "03:10", 2)),
             (1, 5, view(3, "00:05", 1)), (1, 6, view(3, "03:15", 1))]
    topic = os.path.join(tmp, "by-partition.tsv")
    with open(topic, "w", encoding="utf-8") as f:  # kcat's order need not be offset order
        f.write("".join(f"{p}\t{o}\t{s}\n" for p, o, s in reversed(lines)))
    res = rv.recompute_by_partition(rv.read_partitioned([topic]), camp, 10, 30)

    def row(minute, campaign, avg, n):
        ws = (1696766400 + 60 * minute) * rv.MICROS
        return {"network_id": 1, "minute_timestamp": f"2023-10-08-12-{minute:02d}",
                "campaign_id": campaign, "window_start": ws, "window_end": ws + rv.WINDOW,
                "avg_duration": avg, "total_count": n}
    problems = rv.compare_rows(res["rows"], [row(0, 1, 4.0, 1), row(0, 2, 3.0, 2),
                                             row(1, 2, 3.0, 1)], rel_tol=0)
    dead = sorted((p, o, rv.reason_class(r)) for r, _, p, o in res["dead_letters"])
    if dead != [(0, 2, "late"), (0, 5, "late"), (1, 2, "decode:"), (1, 5, "late"),
                (1, 6, "group key network_id is null")]:
        problems.append(f"dead letters {dead}")
    at = rv.parse_iso
    if res["watermarks"] != {0: at("2023-10-08T12:04:15Z"), 1: at("2023-10-08T12:03:00Z")}:
        problems.append(f"watermarks {res['watermarks']}")
    got = (res["open_windows"], res["open_records"], res["not_late_behind"], res["late"])
    if got != (4, 6, 2, 3):
        problems.append(f"(open windows, open records, counted behind W, late) = {got}, "
                        "expected (4, 6, 2, 3)")
    # A partition without a watermark holds every window open.
    parts = rv.read_partitioned([topic])
    parts[2] = []
    if rv.recompute_by_partition(parts, camp, 10, 30)["rows"]:
        problems.append("rows emitted while a partition had no watermark")
    report("viewlog: recompute --by-partition == hand-worked (own partition's W, min to emit)",
           problems)


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

        viewlog_checks(report, tmp)
        harness_checks(report)

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
