#!/usr/bin/env python3
"""`sluice takeover`: sluice goes on with an `events` table the Spark job filled.

    takeover_test.py --sluice build/sluice [--only sqlite,mysql] [--server mysql://root@127.0.0.1:3306]
                     [--database sluice_takeover] [--keep]

A tracking file of two hours is cut at the first record of the second hour (a byte offset). The
"Spark" table holds the first hour as the old job left it: the seed's `events` columns (no
latest_update_time, an `impressions` column the tracking log has no source for), values from the
independent recomputation (tests/tools/recompute_recruitment.py) of the first part, impressions
made up by the test. Then, for SQLite and MySQL:

  1. takeover without --from-position: exit 2, nothing changed;
  2. the plan (no --apply): exit 0, says latest_update_time is added, impressions has no source
     and is left as it is, the internal columns, the start offset; the table is unchanged;
  3. --apply: exit 0; `SELECT *` on events shows the declared columns and impressions, no
     internal column; the position is stored;
  4. `sluice run --until-caught-up`: the first hour's rows are exactly the old rows (impressions
     kept, latest_update_time NULL), the second hour's rows equal the recomputation of the whole
     file, with impressions NULL; the summary counts them all as inserted;
  5. takeover again: exit 1 (already taken over).
Without a MySQL server the mysql scenario is skipped (exit 77 when it was the only one).
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from mysql_client import Server  # noqa: E402

PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
KEY = ["job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id"]
DECLARED = ["job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id", "company_id",
            "clicks", "bid_set", "spend_hour", "conversion", "qualified_application",
            "disqualified_application", "sources", "latest_update_time"]
# The seed's events.csv columns (the Spark job's table), in its order.
SPARK = ["job_id", "dates", "hours", "disqualified_application", "qualified_application",
         "conversion", "company_id", "group_id", "campaign_id", "publisher_id", "bid_set",
         "clicks", "impressions", "spend_hour", "sources"]
T = harness.Checks()
check = T.check


def write_tracking(path):
    """Two hours of events; returns the byte offset of the first record of the second hour."""
    tracks = ["click", "click", "conversion", "qualified", "unqualified", "click", "other"]
    lines = ["ts,custom_track,job_id,bid,publisher_id,campaign_id,group_id,create_time"]
    cut_line = None
    n = 0
    for hour in (10, 11):
        if hour == 11:
            cut_line = len(lines)
        for minute in range(0, 60, 3):
            for job in (1, 2, 3):
                t = tracks[n % len(tracks)]
                n += 1
                lines.append(f"2024-03-05 {hour:02d}:{minute:02d}:{n % 60:02d},{t},{job},"
                             f"{(n * 7) % 5},{job % 2},{10 + job},,")
    data = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(data)
    return len(("\n".join(lines[:cut_line]) + "\n").encode())


def recompute(tracking_part, out_db):
    rr.recompute(tracking_part, JOBS, out_db)
    con = sqlite3.connect(out_db)
    rows = con.execute(f"SELECT {', '.join(DECLARED)} FROM events").fetchall()
    con.close()
    return [dict(zip(DECLARED, r)) for r in rows]


def norm(v):
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return round(float(v), 2)
    s = str(v)
    try:
        return round(float(s), 2)
    except ValueError:
        return s


def key_of(row):
    return tuple(norm(row[k]) for k in KEY)


def sluice(args, sink, tracking):
    cmd = [ARGS.sluice] + args[:1] + [PIPELINE, "--var", f"TRACKING={tracking}", "--var",
                                     f"SINK={sink}", "--var", f"JOBS={JOBS}"] + args[1:]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


def scenario(kind, tmp, db):
    """db: object with create_spark(rows), columns(), rows(), positions()."""
    tracking = os.path.join(tmp, "tracking.csv")
    cut = write_tracking(tracking)
    first = os.path.join(tmp, "first.csv")
    with open(tracking, "rb") as f:
        data = f.read()
    with open(first, "wb") as f:
        f.write(data[:cut])
    old = recompute(first, os.path.join(tmp, "first.db"))
    whole = recompute(tracking, os.path.join(tmp, "whole.db"))
    for i, r in enumerate(sorted(old, key=key_of)):
        r["impressions"] = 1000 + i
        r["sources"] = "Cassandra"
    db.create_spark(old)
    sink = db.sink_uri

    r = sluice(["takeover"], sink, tracking)
    check(f"{kind}: takeover without --from-position exits 2", r.returncode == 2 and
          "--from-position" in r.stderr, r.stderr + r.stdout)

    r = sluice(["takeover", "--from-position", str(cut)], sink, tracking)
    out = r.stdout
    check(f"{kind}: the plan exits 0", r.returncode == 0, r.stderr + out)
    check(f"{kind}: the plan adds latest_update_time",
          "columns the pipeline writes, added: latest_update_time" in out, out)
    check(f"{kind}: the plan leaves impressions as it is",
          "columns with no source in this pipeline, left as they are: impressions" in out, out)
    check(f"{kind}: the plan names the internal columns and the view",
          "_company_id_at, _bid_set_sum, _bid_set_count, _sources_at added" in out and
          "_sluice_table_events" in out, out)
    check(f"{kind}: the plan says where reading starts",
          f"start: source tracking ({tracking}) partition 0 at offset {cut}" in out, out)
    check(f"{kind}: the plan changes nothing", "Nothing changed" in out and
          db.columns() == SPARK and len(db.rows()) == len(old) and db.positions() == [],
          (db.columns(), db.positions()))

    r = sluice(["takeover", "--from-position", str(cut), "--apply"], sink, tracking)
    check(f"{kind}: --apply exits 0", r.returncode == 0, r.stderr + r.stdout)
    cols = db.columns()
    check(f"{kind}: SELECT * shows the declared columns and impressions, nothing internal",
          sorted(cols) == sorted(DECLARED + ["impressions"]) and
          not any(c.startswith("_") for c in cols), cols)
    check(f"{kind}: the start position is stored", db.positions() == [("tracking", 0, cut)],
          db.positions())

    summary = os.path.join(tmp, f"{kind}-summary.json")
    r = sluice(["run", "--until-caught-up", "--summary-json", summary], sink, tracking)
    check(f"{kind}: the run after the takeover exits 0", r.returncode == 0, r.stderr[-2000:])
    got = {key_of(row): row for row in db.rows()}
    old_by_key = {key_of(row): row for row in old}
    whole_by_key = {key_of(row): row for row in whole}
    new_keys = set(whole_by_key) - set(old_by_key)
    check(f"{kind}: one row per key of both hours", set(got) == set(whole_by_key),
          (len(got), len(whole_by_key)))
    bad_old = [k for k in old_by_key if k in got and (
        any(norm(got[k][c]) != norm(old_by_key[k][c]) for c in SPARK) or
        got[k]["latest_update_time"] is not None)]
    check(f"{kind}: the first hour's rows are the old rows, untouched", not bad_old,
          bad_old[:3])
    bad_new = [k for k in new_keys if k in got and (
        any(norm(got[k][c]) != norm(whole_by_key[k][c]) for c in DECLARED if c != "sources") or
        got[k]["impressions"] is not None)]
    check(f"{kind}: the second hour's rows equal the recomputation, impressions NULL",
          not bad_new and len(new_keys) > 0, bad_new[:3])
    try:
        s = json.load(open(summary))
    except (OSError, ValueError) as e:
        s = {"error": str(e)}
    # Each new key is inserted once (a key met again in a later checkpoint is an update).
    check(f"{kind}: the summary counts the new rows as inserted",
          s.get("rows_inserted") == len(new_keys) and
          s.get("rows_inserted", 0) + s.get("rows_updated", 0) + s.get("rows_unchanged", 0)
          == s.get("rows_upserted"), s)

    r = sluice(["takeover", "--from-position", str(cut)], sink, tracking)
    check(f"{kind}: a second takeover exits 1", r.returncode == 1 and "already" in r.stderr,
          r.stderr + r.stdout)


class SqliteDb:
    def __init__(self, tmp):
        self.path = os.path.join(tmp, "results.db")
        self.sink_uri = f"sqlite:{self.path}"

    def con(self):
        return sqlite3.connect(self.path)

    def create_spark(self, rows):
        con = self.con()
        con.execute("CREATE TABLE events (job_id INTEGER, dates TEXT, hours INTEGER, "
                    "disqualified_application INTEGER, qualified_application INTEGER, "
                    "conversion INTEGER, company_id INTEGER, group_id INTEGER, campaign_id "
                    "INTEGER, publisher_id INTEGER, bid_set REAL, clicks INTEGER, impressions "
                    "INTEGER, spend_hour INTEGER, sources TEXT)")
        con.executemany(f"INSERT INTO events ({', '.join(SPARK)}) VALUES "
                        f"({', '.join('?' for _ in SPARK)})",
                        [[r[c] for c in SPARK] for r in rows])
        con.commit()
        con.close()

    def columns(self):
        con = self.con()
        cur = con.execute("SELECT * FROM events")
        names = [d[0] for d in cur.description]
        con.close()
        return names

    def rows(self):
        con = self.con()
        cur = con.execute("SELECT * FROM events")
        names = [d[0] for d in cur.description]
        out = [dict(zip(names, r)) for r in cur.fetchall()]
        con.close()
        return out

    def positions(self):
        con = self.con()
        try:
            return [tuple(r) for r in con.execute(
                "SELECT source, partition, offset FROM _sluice_positions WHERE pipeline = "
                "'recruitment' AND partition < 1073741824")]
        except sqlite3.Error:
            return []
        finally:
            con.close()


class MysqlDb:
    def __init__(self, server, database):
        self.server, self.database = server, database
        server.run(f"DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}` "
                   "CHARACTER SET utf8mb4")
        self.sink_uri = server.uri(database)

    def create_spark(self, rows):
        def lit(v):
            return "NULL" if v is None else (f"'{v}'" if isinstance(v, str) else repr(v))
        values = ", ".join("(" + ", ".join(lit(r[c]) for c in SPARK) + ")" for r in rows)
        self.server.run(
            "CREATE TABLE events (job_id BIGINT, dates DATE, hours TINYINT, "
            "disqualified_application BIGINT, qualified_application BIGINT, conversion BIGINT, "
            "company_id BIGINT, group_id BIGINT, campaign_id BIGINT, publisher_id BIGINT, "
            "bid_set DECIMAL(10,2), clicks BIGINT, impressions BIGINT, spend_hour BIGINT, "
            f"sources TEXT); INSERT INTO events ({', '.join(SPARK)}) VALUES {values}",
            self.database)

    def columns(self):
        return self.server.run("SELECT * FROM events LIMIT 1", self.database)[0]  # header

    def rows(self):
        out = self.server.run("SELECT * FROM events", self.database)
        return [dict(zip(out[0], [None if v == "NULL" else v for v in r])) for r in out[1:]]

    def positions(self):
        try:
            out = self.server.run("SELECT source, `partition`, `offset` FROM _sluice_positions "
                                  "WHERE pipeline = 'recruitment' AND `partition` < 1073741824",
                                  self.database)
        except RuntimeError:
            return []
        return [(r[0], int(r[1]), int(r[2])) for r in out[1:]]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default="sqlite,mysql")
    ap.add_argument("--server", default=harness.MYSQL_URI)
    ap.add_argument("--database", default="sluice_takeover")
    ap.add_argument("--keep", action="store_true")
    ARGS = ap.parse_args()
    ARGS.sluice = os.path.abspath(ARGS.sluice)
    only = ARGS.only.split(",")
    tmp = tempfile.mkdtemp(prefix="sluice_takeover_")
    try:
        if "sqlite" in only:
            os.makedirs(os.path.join(tmp, "s"))
            scenario("sqlite", os.path.join(tmp, "s"), SqliteDb(os.path.join(tmp, "s")))
        if "mysql" in only:
            server = Server(ARGS.server)
            why = server.reachable()
            if why:
                T.skip("mysql", why)
            else:
                os.makedirs(os.path.join(tmp, "m"))
                scenario("mysql", os.path.join(tmp, "m"), MysqlDb(server, ARGS.database))
                if not ARGS.keep:
                    server.run(f"DROP DATABASE IF EXISTS `{ARGS.database}`")
    finally:
        if not ARGS.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
