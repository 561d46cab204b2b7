#!/usr/bin/env python3
"""The business dashboard's SQL against the real MariaDB schema, with the numbers checked.

    grafana_mysql_test.py --sluice build/sluice [--server mysql://root@127.0.0.1:3306] [--keep]

Builds the `events` table the way production does: `sluice generate` writes 5000 tracking
events 30 s apart (about 42 hours of event time) and the recruitment pipeline runs over them
into a fresh MariaDB database (sluice_deploy_<pid>) and, for the expected numbers, into SQLite.
Then every query of deploy/grafana/dashboards/recruitment-business.json (panels and the
`company` variable) is interpolated as Grafana's frontend does, its MySQL macros expanded as
Grafana's MySQL data source does, and run with the data source's session time zone; for two
time ranges, two `bucket` values and company = All / two companies:
  - each query runs and returns rows; time-series results have a `time` column of bucket
    starts; a bar chart's x field is a column of its result;
  - the numbers equal what Python computes from the SQLite table: totals, per bucket, per
    company / campaign / publisher / job (top-N lists: each row's values and the order).
Server or client missing: FAIL under CI=true, else SKIP (exit 77).
Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import calendar
import collections
import datetime
import decimal
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import grafana_model as gm  # noqa: E402
import harness  # noqa: E402
import mysql_client  # noqa: E402

REPO = gm.REPO
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
DASHBOARD = "recruitment-business.json"

# Result columns -> the events column they sum.
SUMS = {"clicks": "clicks", "spend": "spend_hour", "conversions": "conversion",
        "qualified": "qualified_application", "disqualified": "disqualified_application",
        "qualified_applications": "qualified_application",
        "disqualified_applications": "disqualified_application"}
# Result columns that name a dimension -> the events column.
DIMS = {"company_id": "company_id", "campaign": "campaign_id", "publisher": "publisher_id",
        "job_id": "job_id"}


def epoch(s):
    return calendar.timegm(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M").timetuple())


class Server(mysql_client.Server):
    def run(self, sql, database=None):
        """Runs SQL; returns (header, rows) of the last result, NULL as None."""
        rows = mysql_client.Server.run(self, sql, database)
        return (rows[0], rows[1:]) if rows else ([], [])


class Expected:
    """The events rows (from the SQLite sink) and the dashboard's numbers computed in Python."""

    def __init__(self, db):
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        self.rows = []
        for r in con.execute("SELECT * FROM events"):
            d = dict(r)
            d["t"] = epoch(d["dates"] + "T00:00") + 3600 * d["hours"]
            self.rows.append(d)
        con.close()

    def select(self, t_from, t_to, companies):
        return [r for r in self.rows if t_from <= r["t"] <= t_to
                and (companies is None or r["company_id"] in companies)]

    @staticmethod
    def total(rows, col):
        if col == "average_bid" or col == "avg_bid":
            clicks = sum(r["clicks"] for r in rows)
            if not clicks:
                return None
            # MySQL's ROUND of an exact decimal quotient: half away from zero.
            avg = decimal.Decimal(sum(r["spend_hour"] for r in rows)) / decimal.Decimal(clicks)
            return float(avg.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))
        if col == "rows":
            return len(rows)
        return sum(r[SUMS[col]] for r in rows)


def number(v):
    return None if v is None else float(v)


def compare(where, got, want, problems):
    if want is None or got is None:
        if not (want is None and got in (None, 0.0)) and not (got is None and want in (None, 0)):
            problems.append(f"{where}: got {got}, want {want}")
    elif abs(got - want) > 0.006:
        problems.append(f"{where}: got {got}, want {want}")


def check_result(q, header, rows, sel, bucket, problems):
    """The numbers of one panel query's result against the expectation `sel` (rows)."""
    where = q["where"]
    panel, target = q["panel"], q["target"]
    if not rows:
        problems.append(f"{where}: no rows")
        return
    cols = [c.lower() for c in header]
    if target.get("format") == "time_series":
        if cols[0] != "time":
            problems.append(f"{where}: first column {header[0]!r}, want time")
            return
        has_metric = "metric" in cols
        groups = collections.defaultdict(list)
        for r in sel:
            key = r["t"] // bucket * bucket
            groups[(key, str(r["company_id"])) if has_metric else key].append(r)
        seen_companies = set()
        for row in rows:
            t = int(row[0])
            if t % bucket:
                problems.append(f"{where}: time {t} is not a {bucket} s bucket start")
            key = (t, row[cols.index("metric")]) if has_metric else t
            if has_metric:
                seen_companies.add(row[cols.index("metric")])
            for c, v in zip(cols[1:], row[1:]):
                if c == "metric":
                    continue
                compare(f"{where} t={t} {c}", number(v), Expected.total(groups.get(key, []), c),
                        problems)
        missing = set(groups) - {((int(r[0]), r[cols.index("metric")]) if has_metric
                                  else int(r[0])) for r in rows}
        if has_metric:
            # Only the top companies are shown: check that they are the top ones.
            spend = collections.Counter()
            for r in sel:
                spend[str(r["company_id"])] += r["spend_hour"]
            ranked = sorted(spend.values(), reverse=True)
            cutoff = ranked[min(len(ranked), 8) - 1] if ranked else 0
            for c in seen_companies:
                if spend[c] < cutoff:
                    problems.append(f"{where}: company {c} (spend {spend[c]}) is not in the top 8")
            missing = {k for k in missing if k[1] in seen_companies}
        if missing:
            problems.append(f"{where}: buckets missing: {sorted(missing)[:5]}")
        return

    dims = [c for c in cols if c in DIMS]
    if panel and panel.get("type") == "barchart":
        xf = panel.get("options", {}).get("xField")
        if xf and xf.lower() not in cols:
            problems.append(f"{where}: xField {xf!r} is not a column of {header}")
    if not dims:  # a single row of totals
        for c, v in zip(cols, rows[0]):
            if c in SUMS or c in ("average_bid", "rows"):
                compare(f"{where} {c}", number(v), Expected.total(sel, c), problems)
        return
    dim = dims[0]
    per = collections.defaultdict(list)
    for r in sel:
        per[str(r[DIMS[dim]])].append(r)
    order_col = None
    for row in rows:
        key = row[cols.index(dim)]
        for c, v in zip(cols, row):
            if c in SUMS or c == "avg_bid":
                compare(f"{where} {dim}={key} {c}", number(v), Expected.total(per[key], c),
                        problems)
            elif c == "jobs":
                compare(f"{where} {dim}={key} jobs", number(v),
                        len({r["job_id"] for r in per[key]}), problems)
            elif c == "company_id" and dim != "company_id":
                compare(f"{where} {dim}={key} company_id", number(v),
                        max(r["company_id"] for r in per[key]), problems)
    # Top-N lists: ordered by their first metric, and nothing larger left out.
    for c in ("spend", "clicks"):
        if c in cols and f"ORDER BY {c} DESC" in q["text"]:
            order_col = c
            break
    if order_col:
        got = [number(r[cols.index(order_col)]) for r in rows]
        if got != sorted(got, reverse=True):
            problems.append(f"{where}: not ordered by {order_col}")
        if len(rows) < len(per):
            best_left = max(Expected.total(v, order_col) for k, v in per.items()
                            if k not in {r[cols.index(dim)] for r in rows})
            if best_left > got[-1]:
                problems.append(f"{where}: a {dim} with {order_col}={best_left} is left out")
    elif len(rows) != len(per):
        problems.append(f"{where}: {len(rows)} rows, want {len(per)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--server", default=harness.MYSQL_URI)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    t = harness.Checks()

    def result(name, problems):
        t.result(name, problems, limit=30)

    server = Server(args.server)
    why = server.reachable()
    if why:
        return t.missing(f"{why} (start it with `make services`)")

    why = gm.ensure_yaml()
    if why:
        result("PyYAML", [why])
        return t.finish()
    ds = gm.datasources([])
    model = dict(gm.dashboards()).get(DASHBOARD)
    if model is None:
        result(DASHBOARD, ["not found"])
        return t.finish()
    mysql_ds = next((d for d in ds.values() if d.get("type") == "mysql"), {})
    tz = (mysql_ds.get("jsonData") or {}).get("timezone") or "+00:00"

    tmp = tempfile.mkdtemp(prefix="sluice-grafana-")
    db = f"sluice_deploy_{os.getpid()}"
    try:
        tracking = os.path.join(tmp, "tracking.ndjson")
        subprocess.run([args.sluice, "generate", "--profile", "recruitment", "--to", tracking,
                        "--count", "5000", "--rate", "0", "--seed", "11", "--set",
                        "spacing=30s"], cwd=REPO, check=True, capture_output=True, timeout=120)
        server.run(f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        sqlite_db = os.path.join(tmp, "events.db")
        for sink, dlq in ((server.uri(db), "mysql.dlq"), (f"sqlite:{sqlite_db}", "sqlite.dlq")):
            p = subprocess.run([args.sluice, "run", PIPELINE, "--until-caught-up",
                                "--var", f"TRACKING={tracking}", "--var", f"SINK={sink}",
                                "--var", f"DLQ={os.path.join(tmp, dlq)}"],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                result(f"sluice run into {sink}", [f"exit {p.returncode}: {p.stderr[-2000:]}"])
                return 1
        header, _ = server.run("SELECT * FROM events LIMIT 0", db)
        types, rows = server.run(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{db}' AND table_name = 'events'")
        coltypes = {r[0]: r[1] for r in rows}
        problems = [f"{c} is {coltypes.get(c)}, want {w}" for c, w in
                    (("dates", "date"), ("hours", "tinyint"), ("latest_update_time", "datetime"))
                    if coltypes.get(c) != w]
        result(f"events table in MariaDB ({db}): dates DATE, hours TINYINT", problems)
        expected = Expected(sqlite_db)

        queries = gm.queries(model)
        variables = {v["name"]: v for v in model.get("templating", {}).get("list", [])}
        company_var = variables["company"]
        buckets = [o["value"] for o in variables["bucket"].get("options", [])] or ["1h"]

        def execute(q, t_from, t_to, values):
            sql = gm.mysql_macros(gm.interpolate(q["text"], values), t_from, t_to)
            return server.run(f"SET time_zone = '{tz}';\n{sql}", db)

        ranges = [("2026-01-01T00:00", "2026-01-03T00:00"), ("2026-01-01T05:00", "2026-01-01T11:30")]
        for r_from, r_to in ranges:
            t_from, t_to = epoch(r_from), epoch(r_to)
            base = gm.builtin_sql_values(t_from, t_to)
            # The company variable: its query gives the choices.
            var_q = next(q for q in queries if q["where"] == "variable company")
            problems = []
            try:
                _, crow = execute(var_q, t_from, t_to, base)
                companies = [r[0] for r in crow]
                want = sorted({str(r["company_id"]) for r in expected.select(t_from, t_to, None)},
                              key=int)
                if companies != want:
                    problems.append(f"company choices {companies[:10]}..., want {want[:10]}...")
            except (RuntimeError, ValueError) as e:
                problems.append(f"variable company: {e}")
                companies = []
            result(f"[{r_from} .. {r_to}] variable company lists the companies in range "
                   f"({len(companies)})", problems)
            # Two companies with the most rows, to filter by.
            count = collections.Counter(r["company_id"] for r in expected.select(t_from, t_to, None))
            two = [c for c, _ in count.most_common(2)]
            selections = [("All", company_var["allValue"], None),
                          (f"{two}", gm.sql_value([str(c) for c in two]), set(two))]
            for sel_name, company_value, company_set in selections:
                for bucket in (buckets if sel_name == "All" and r_from == ranges[0][0] else ["1h"]):
                    values = dict(base, company=company_value, bucket=bucket)
                    secs = int(gm.parse_interval(bucket))
                    sel = expected.select(t_from, t_to, company_set)
                    problems = []
                    ran = 0
                    for q in queries:
                        if q["panel"] is None:
                            continue
                        try:
                            hdr, res = execute(q, t_from, t_to, values)
                            ran += 1
                        except (RuntimeError, ValueError) as e:
                            problems.append(f"{q['where']}: {e}")
                            continue
                        if "Latest event" in q["where"]:
                            if not res or res[0][0] is None:
                                problems.append(f"{q['where']}: no value")
                            continue
                        check_result(q, hdr, res, sel, secs, problems)
                    result(f"[{r_from} .. {r_to}] company={sel_name} bucket={bucket}: {ran} panel "
                           f"queries run, numbers == Python over the SQLite sink", problems)
    finally:
        if not args.keep:
            try:
                server.run(f"DROP DATABASE IF EXISTS `{db}`")
            except RuntimeError:
                pass
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept database {db} and {tmp}")
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
