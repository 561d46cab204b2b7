#!/usr/bin/env python3
"""examples/viewlog.sql and its TOML twin viewlog.toml give the same Parquet output and dead
letters, and both are right.

    sql_viewlog_test.py --sluice build/sluice     (the project venv's python: pyarrow)

Runs examples/viewlog.sql and examples/viewlog.toml on the same input into two parquet:DIR
datasets: the seed sample_view_logs.json (../shared/seed-data) with its own campaigns
(sample_compaign.csv, another column order) and with campaigns1.csv (no campaign for any view:
four dead letters), then view logs of `sluice generate --profile viewlog` (out-of-order, late
and invalid records). Each run's rows and dead letters (per reason, and their payloads) must
equal the independent recomputation tests/tools/recompute_viewlog.py, as viewlog_test.py checks
the TOML file alone; and the two datasets, read with pyarrow, must have the same schema and the
same rows sorted by (network_id, minute_timestamp, campaign_id), and the two dead-letter folders
the same records (offset, reason, payload hash). The SQL file's reasons come from its CHECK
constraint names and its JOIN's on_missing = 'dead_letter'. A missing seed file is a SKIP (a
FAIL under CI=true) of that part. Exit 1 on any failure.
"""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import dead_letters  # noqa: E402
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
from viewlog_output import compare_output  # noqa: E402

REPO = harness.REPO
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
SEED = os.path.join(harness.SEED_DATA, "HassanAli-star__big_data_pipeline")
COUNT = 4000
KEY = ["network_id", "minute_timestamp", "campaign_id"]


def dataset(out):
    """(schema text, rows sorted by KEY) of a parquet:DIR dataset (hive partitions), or
    (None, []) when nothing was written."""
    import pyarrow.dataset as ds  # noqa: PLC0415
    if not os.path.isdir(out):
        return None, []
    d = ds.dataset(out, format="parquet", partitioning="hive",
                   exclude_invalid_files=False, ignore_prefixes=[".", "_"])
    table = d.to_table()
    names = table.column_names
    rows = [tuple(r[c] for c in names) for r in table.to_pylist()]
    order = [names.index(k) for k in KEY if k in names]
    return str(table.schema), sorted(rows, key=lambda r: (tuple(str(r[i]) for i in order), str(r)))


def letters(folder):
    entries, problems = dead_letters.load_dlq(folder)
    return collections.Counter((e.get("partition"), e.get("offset"), e.get("generation"),
                                e.get("reason"), e.get("payload_sha256"))
                               for e in entries), problems


def twins(t, sluice, tmp, label, views, campaigns, expected):
    """Both files on `views`: each == the recomputation, and the same dataset and dead letters."""
    got, dl = {}, {}
    for lang in ("sql", "toml"):
        out = os.path.join(tmp, f"{label}-{lang}")
        variables = {"VIEWS": views, "OUT": f"parquet:{out}"}
        if campaigns:
            variables["CAMPAIGNS"] = campaigns
        # A run of a file to its end closes every window (--until-caught-up would leave the
        # ones the watermark has not passed open, as for a stream).
        r = harness.run_sluice(sluice, os.path.join("examples", f"viewlog.{lang}"), variables,
                               timeout=240)
        t.check(f"{label}: viewlog.{lang} runs to the end (exit 0)", r.returncode == 0,
                f"rc={r.returncode}\n{r.stdout[-800:]}\n{r.stderr[-1200:]}")
        folder = os.path.join(out, "_sluice", "dead_letters")
        problems, _ = compare_output(f"viewlog.{lang}", out, folder, expected)
        t.result(f"{label}: viewlog.{lang}: Parquet rows and dead letters == recompute "
                 f"({len(expected['rows'])} rows, {len(expected['dead_letters'])} dead letters)",
                 problems)
        got[lang] = dataset(out)
        dl[lang], problems = letters(folder)
        t.result(f"{label}: viewlog.{lang}: the dead letters are well formed", problems)
    t.check(f"{label}: viewlog.sql and viewlog.toml write datasets of the same schema",
            got["sql"][0] == got["toml"][0], f"sql {got['sql'][0]}\ntoml {got['toml'][0]}")
    t.check(f"{label}: viewlog.sql and viewlog.toml write the same rows, sorted by "
            f"{', '.join(KEY)} ({len(got['sql'][1])})", got["sql"][1] == got["toml"][1],
            f"sql only {sorted(set(got['sql'][1]) - set(got['toml'][1]), key=str)[:2]}\n"
            f"toml only {sorted(set(got['toml'][1]) - set(got['sql'][1]), key=str)[:2]}")
    t.check(f"{label}: viewlog.sql and viewlog.toml dead-letter the same records for the same "
            f"reasons ({sum(dl['sql'].values())})", dl["sql"] == dl["toml"],
            f"sql only {list((dl['sql'] - dl['toml']).elements())[:3]}\n"
            f"toml only {list((dl['toml'] - dl['sql']).elements())[:3]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    sluice = os.path.abspath(a.sluice)
    t = harness.Checks()
    with harness.temp_dir("sluice-sqlviewlog-", keep=a.keep, checks=t) as tmp:
        sample = os.path.join(SEED, "sample_view_logs.json")
        if not os.path.exists(sample):
            t.skip("seed view_log sample", f"{sample} not found")
        else:
            own = os.path.join(SEED, "sample_compaign.csv")
            expected = rv.recompute(sample, own)
            t.check("seed: the sample makes rows with its own campaigns",
                    len(expected["rows"]) > 0, "")
            twins(t, sluice, tmp, "seed with sample_compaign.csv", sample, own, expected)
            expected = rv.recompute(sample, os.path.join(SEED, "campaigns1.csv"))
            t.check("seed: with campaigns1.csv every view is dead-lettered (no campaign)",
                    not expected["rows"] and len(expected["dead_letters"]) == 4, "")
            twins(t, sluice, tmp, "seed with campaigns1.csv", sample,
                  os.path.join(SEED, "campaigns1.csv"), expected)

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
        twins(t, sluice, tmp, "generated", views, None, expected)
    return t.finish()


if __name__ == "__main__":
    harness.main_guard(main)
