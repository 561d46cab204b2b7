#!/usr/bin/env python3
"""File positions belong to the file they were read from (issue 13, item 1; issue 14, item 5).

    file_identity_test.py --sluice build/sluice

The recruitment pipeline (examples/recruitment.toml) reads a CSV of the seed tracking log into
SQLite, then the file at the same path changes and the pipeline runs again. Expected results:
the independent recomputation (tests/tools/recompute_recruitment.py) over the rows that the
second run must have added to the first.

 1. replaced by a longer file with the remaining rows (written elsewhere, `mv`d over): all rows.
    Before file identities, the second run resumed at the old byte offset: rows lost, exit 0.
 2. replaced by a shorter file: its rows are read (before: "0 records").
 3. appended to: the new rows only.
 4. replaced by a file that keeps the old content as its prefix: the new rows only.
 5. truncated in place: refused with exit 1, naming --reset-source, results untouched; then
    `--reset-source tracking` reads the file from its start (results = both passes).
 6. --reset-source with a name that is not the pipeline's source: exit 2.
 7. a directory, or an unreadable file, as the source file: exit 2 at once (before: retried
    forever).
"""

import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from harness import SEED_TRACKING as SEED  # noqa: E402
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")

T = harness.Checks()
check = T.check


def csv_text(header, rows, with_header=True):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    if with_header:
        w.writeheader()
    for r in rows:
        w.writerow(r)
    return out.getvalue()


def write(path, text, mode="w"):
    with open(path, mode, newline="", encoding="utf-8") as f:
        f.write(text)


def replace(path, text):
    """Writes a new file and renames it over `path`, as a daily export does."""
    write(path + ".new", text)
    os.rename(path + ".new", path)


def run(sluice, tracking, db, extra=(), timeout=120):
    return harness.run_sluice(sluice, PIPELINE, {"TRACKING": tracking, "JOBS": JOBS,
                                                 "SINK": f"sqlite:{db}", "DLQ": f"{db}.dlq"},
                              extra, timeout=timeout)


def expect(tmp, header, rows, name):
    path = os.path.join(tmp, name + ".expected.csv")
    write(path, csv_text(header, rows))
    out = os.path.join(tmp, name + ".expected.db")
    rr.recompute(path, JOBS, out, "file")
    return out


def same(db, want):
    diffs = compare_tables.compare(db, want, list(rr.EVENTS_KEY))
    return not diffs, "\n".join(diffs[:10])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sluice = os.path.abspath(args.sluice)
    if not os.path.exists(SEED):
        return T.missing(f"seed data missing: {SEED}")
    with open(SEED, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    first, rest = rows[:3000], rows[3000:]
    tmp = tempfile.mkdtemp(prefix="sluice_file_identity_")
    try:
        def first_run(name):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            path, db = os.path.join(d, "tracking.csv"), os.path.join(d, "out.db")
            write(path, csv_text(header, first))
            p = run(sluice, path, db)
            check(f"{name}: the first run over 3,000 rows exits 0", p.returncode == 0, p.stderr[-1500:])
            return path, db

        # 1. replaced by a longer file holding the remaining rows.
        path, db = first_run("replace_more")
        replace(path, csv_text(header, rest))
        p = run(sluice, path, db)
        check("replace_more: exits 0", p.returncode == 0, p.stderr[-1500:])
        check("replace_more: logs that the file is new and read from its start",
              "reading it from its start as a new file" in p.stderr, p.stderr[-1500:])
        ok, detail = same(db, expect(tmp, header, rows, "all"))
        check(f"replace_more: events == recomputation over all {len(rows)} rows", ok, detail)

        # 2. replaced by a shorter file.
        path, db = first_run("replace_fewer")
        replace(path, csv_text(header, rest[:500]))
        p = run(sluice, path, db)
        check("replace_fewer: exits 0", p.returncode == 0, p.stderr[-1500:])
        ok, detail = same(db, expect(tmp, header, rows[:3500], "first3500"))
        check("replace_fewer: events == recomputation over the 3,000 + 500 rows", ok, detail)

        # 3. appended to.
        path, db = first_run("append")
        write(path, csv_text(header, rest, with_header=False), mode="a")
        p = run(sluice, path, db)
        check("append: exits 0", p.returncode == 0, p.stderr[-1500:])
        ok, detail = same(db, expect(tmp, header, rows, "all_append"))
        check("append: events == recomputation over all rows (each once)", ok, detail)

        # 4. replaced by a file that keeps the old content as its prefix.
        path, db = first_run("prefix_rewrite")
        replace(path, csv_text(header, rows))
        p = run(sluice, path, db)
        check("prefix_rewrite: exits 0", p.returncode == 0, p.stderr[-1500:])
        check("prefix_rewrite: logs that it continues", "continuing there" in p.stderr, p.stderr[-1500:])
        ok, detail = same(db, expect(tmp, header, rows, "all_prefix"))
        check("prefix_rewrite: events == recomputation over all rows (none twice)", ok, detail)

        # 5. truncated in place: refused, then --reset-source.
        path, db = first_run("shrink")
        before = compare_tables.load(db, "events")
        with open(path, "r+b") as f:
            f.truncate(len(csv_text(header, first[:2000]).encode("utf-8")))
        p = run(sluice, path, db)
        check("shrink: exits 1", p.returncode == 1, f"rc={p.returncode} {p.stderr[-1500:]}")
        check("shrink: the error names --reset-source tracking", "--reset-source tracking" in p.stderr,
              p.stderr[-1500:])
        after = compare_tables.load(db, "events")
        check("shrink: the results are untouched", sorted(before.rows) == sorted(after.rows), "rows differ")
        p = run(sluice, path, db, ["--reset-source", "tracking"])
        check("shrink: --reset-source tracking exits 0", p.returncode == 0, p.stderr[-1500:])
        check("shrink: --reset-source logs what it forgets", "--reset-source tracking: forgetting" in p.stderr,
              p.stderr[-1500:])
        ok, detail = same(db, expect(tmp, header, first + first[:2000], "both_passes"))
        check("shrink: after the reset, events == recomputation over 3,000 + the 2,000 rows again", ok, detail)
        p = run(sluice, path, db)
        check("shrink: the next run reads nothing", p.returncode == 0 and ": 0 records in" in p.stdout,
              p.stdout + p.stderr[-1000:])

        # 6. a reset of a source the pipeline does not have.
        p = run(sluice, path, db, ["--reset-source", "trackin"])
        check("reset_unknown: exits 2 naming the pipeline's source",
              p.returncode == 2 and "source is named 'tracking'" in p.stderr, f"rc={p.returncode} {p.stderr[-800:]}")

        # 7. not a readable file: exit 2 at once (an .ndjson directory used to be retried forever).
        for name in ("adir.csv", "adir.ndjson"):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            started = time.monotonic()
            try:
                p = run(sluice, d, os.path.join(tmp, name + ".db"), timeout=30)
                rc, err = p.returncode, p.stderr
            except subprocess.TimeoutExpired:
                rc, err = None, "still running after 30 s"
            check(f"directory {name}: exits 2 at once with a clear message",
                  rc == 2 and "is a directory" in err and time.monotonic() - started < 30, f"rc={rc} {err[-800:]}")
        if os.geteuid() != 0:
            secret = os.path.join(tmp, "secret.csv")
            write(secret, csv_text(header, first[:10]))
            os.chmod(secret, 0)
            p = run(sluice, secret, os.path.join(tmp, "secret.db"), timeout=60)
            check("unreadable: exits 2 with the reason", p.returncode == 2 and "Permission denied" in p.stderr,
                  f"rc={p.returncode} {p.stderr[-800:]}")
    except Exception as e:  # noqa: BLE001
        check("scenarios ran", False, repr(e)[:1500])
    finally:
        harness.keep_or_remove(tmp, args.keep)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
