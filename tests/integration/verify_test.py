#!/usr/bin/env python3
"""`sluice verify` against injected corruption, on SQLite, MySQL/MariaDB and Parquet.

    verify_test.py --sluice build/sluice --backend sqlite|mysql|parquet
                   [--server mysql://root@127.0.0.1:3306] [--keep]

sqlite and mysql: examples/recruitment.toml over a copy of the seed tracking.csv (plus an
appended second part read by a second run) with a copy of examples/data/job.csv. The expected
report of each check follows from the corruption the test makes by hand, never from sluice:
  1. after the runs, verify exits 0, every row of the table matches, nothing else is reported;
  2. a value edited by hand (clicks + 7 in one row): exit 1, exactly that row differs, in clicks,
     with both values;
  3. a row deleted by hand: exit 1, exactly that row is missing from the sink;
  4. a row inserted by hand (an unknown job_id): exit 1, exactly that row is only in the sink;
  5. the job dimension file changed since (another company_id for one job): exit 0, the rows
     of that job (counted in the table) are reported as "dimension changed since", none differ;
  6. (sqlite) the tracking file rewritten before the committed position: exit 1, "input changed";
  7. a checkpoint applied twice: the positions of the first run are put back after the second,
     the second part is run again (its deltas applied a second time), the second run's positions
     restored: exit 1, and the rows that differ are exactly those the second part touched (the
     rows that changed or appeared between the table after the first run and after the second);
  8. (sqlite) the text report of that state: the counts, the first --show rows, `NOT equal`;
  9. (sqlite) an unused --var: exit 2.
parquet: a small append-mode pipeline (1-minute windows per user, partitioned by user) over a
generated NDJSON file:
  1. clean: exit 0, all rows match; 2. a part file deleted: exit 1, exactly its rows (read with
  pyarrow) are missing from the sink; 3. a part file duplicated under another part-file name:
  exit 1, exactly its rows are only in the sink.
kafka: the generator's tracking events in a fresh topic verify_<pid>_<n>, a run
--until-caught-up into SQLite, then more events produced: verify reads every partition only up
to its committed offset (exactly the records the run read) and is equal; a value edited by hand
is then found.
MySQL server or client, or Kafka, missing: SKIP (exit 77), FAIL under CI=true; pyarrow likewise.
Prints PASS/FAIL per check; exit 1 on any failure.
"""

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
from harness import SEED_TRACKING as SEED  # noqa: E402
from mysql_client import Server  # noqa: E402

PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
JOBS_CSV = os.path.join(REPO, "examples", "data", "job.csv")
KEY = ["job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id"]
# The recruitment pipeline keeps internal merge columns (avg, last), so `events` is a view of the
# declared columns and the rows live in this table; corruptions are made there.
STORE = "_sluice_table_events"
COLUMNS = KEY + ["company_id", "clicks", "bid_set", "spend_hour", "conversion",
                 "qualified_application", "disqualified_application", "sources",
                 "latest_update_time"]


def skip_or_fail(reason):
    """A missing prerequisite ends the test: exit 77, or 1 under CI (harness.Checks.missing)."""
    sys.exit(harness.Checks().missing(reason))


def sluice(args, exe, timeout=300):
    p = subprocess.run([exe] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def verify(exe, pipeline, variables):
    args = ["verify", pipeline, "--json", "--show", "100000"]
    for k, v in variables.items():
        args += ["--var", f"{k}={v}"]
    rc, out, err = sluice(args, exe)
    report = None
    try:
        report = json.loads(out) if out.strip() else None
    except ValueError:
        pass
    return rc, report, err


def key_of(obj):
    """A row key from a verify report's row object (or a dict of column -> value)."""
    return tuple("" if obj.get(k) is None else str(obj[k]) for k in KEY)


def summary(report):
    if not report:
        return "no report"
    return ", ".join(f"{k} {report[k]['count']}" for k in
                     ("differ", "dimension_changed", "missing_from_sink", "only_in_sink")) + \
        f", matching {report['matching']}"


# --- SQL backends -----------------------------------------------------------------------------

class SqliteDb:
    def __init__(self, path):
        self.path = path
        self.uri = "sqlite:" + path

    def rows(self, sql, params=()):
        with sqlite3.connect(self.path) as c:
            return [tuple(None if v is None else str(v) for v in r) for r in c.execute(sql, params)]

    def execute(self, sql):
        with sqlite3.connect(self.path) as c:
            c.executescript(sql)

    def drop(self):
        pass


class MysqlDb:
    def __init__(self, server, database):
        self.server, self.database = server, database
        self.uri = server.uri(database)
        server.run(f"DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`")

    def rows(self, sql):
        return [tuple(r) for r in self.server.run(sql, self.database)[1:]]

    def execute(self, sql):
        self.server.run(sql, self.database)

    def drop(self):
        self.server.run(f"DROP DATABASE IF EXISTS `{self.database}`")


def lit(v):
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def where_key(row_key):
    return " AND ".join(f"{k} = {lit(v)}" for k, v in zip(KEY, row_key))


def table(db):
    cols = ", ".join(COLUMNS)
    return {r[:len(KEY)]: r for r in db.rows(f"SELECT {cols} FROM events")}


def positions(db):
    return db.rows("SELECT source, partition, offset FROM _sluice_positions "
                   "WHERE pipeline = 'recruitment'") if isinstance(db, SqliteDb) else \
        db.rows("SELECT `source`, `partition`, `offset` FROM _sluice_positions "
                "WHERE pipeline = 'recruitment'")


def set_positions(db, rows):
    q = '"' if isinstance(db, SqliteDb) else "`"
    col, off, src = (q + name + q for name in ("partition", "offset", "source"))
    db.execute(";\n".join(
        f"UPDATE _sluice_positions SET {off} = {o} WHERE pipeline = 'recruitment' AND {src} = {lit(s)} "
        f"AND {col} = {p}" for s, p, o in rows) + ";")


def sql_checks(args, checks, db, tmp):
    exe = args.sluice
    tracking = os.path.join(tmp, "tracking.csv")
    jobs = os.path.join(tmp, "job.csv")
    shutil.copyfile(SEED, tracking)
    shutil.copyfile(JOBS_CSV, jobs)
    variables = {"TRACKING": tracking, "JOBS": jobs, "SINK": db.uri}

    def run():
        a = ["run", PIPELINE]
        for k, v in variables.items():
            a += ["--var", f"{k}={v}"]
        rc, out, err = sluice(a, exe)
        if rc != 0:
            raise RuntimeError(f"sluice run exited {rc}: {err[-2000:]}")

    run()
    table_a, positions_a = table(db), positions(db)
    # The second part: the seed's lines from the second on, up to ~300 KB, appended.
    with open(SEED, "rb") as f:
        lines = f.read().split(b"\n")[1:]
    part, size = [], 0
    for ln in lines:
        if size > 300_000:
            break
        part.append(ln)
        size += len(ln) + 1
    with open(tracking, "ab") as f:
        f.write(b"\n".join(part) + b"\n")
    run()
    table_b, positions_b = table(db), positions(db)

    rc, report, err = verify(exe, PIPELINE, variables)
    checks.check("clean sink verifies (exit 0, every row matches)",
                 rc == 0 and report and report["equal"] and report["matching"] == len(table_b) and
                 report["differ"]["count"] == 0 and report["missing_from_sink"]["count"] == 0 and
                 report["only_in_sink"]["count"] == 0 and report["dimension_changed"]["count"] == 0,
                 f"exit {rc}, table {len(table_b)} rows, {summary(report)}; {err[-500:]}")

    rng = random.Random(7)
    # Jobs whose line in the job file is plain (no quoted ';'), so the test can edit it.
    with open(jobs, encoding="utf-8") as f:
        job_lines = f.read().split("\n")
    header = job_lines[0].split(";")
    id_at, company_at = header.index("id"), header.index("company_id")
    plain_jobs = {ln.split(";")[id_at] for ln in job_lines[1:]
                  if len(ln.split(";")) == len(header) and '"' not in ln}
    # A row with clicks and a job the job file knows (its company_id is not the default 0).
    candidates = sorted(k for k, r in table_b.items()
                        if r[COLUMNS.index("clicks")] not in (None, "0") and
                        r[COLUMNS.index("company_id")] not in (None, "0") and k[0] in plain_jobs)
    victim = rng.choice(candidates)
    clicks = int(table_b[victim][COLUMNS.index("clicks")])

    db.execute(f"UPDATE {STORE} SET clicks = clicks + 7 WHERE {where_key(victim)}")
    rc, report, err = verify(exe, PIPELINE, variables)
    ok = rc == 1 and report and report["differ"]["count"] == 1 and \
        report["missing_from_sink"]["count"] == 0 and report["only_in_sink"]["count"] == 0
    if ok:
        row = report["differ"]["rows"][0]
        ok = key_of(row["key"]) == victim and row["columns"] == {
            "clicks": {"sink": clicks + 7, "recomputed": clicks}}
    checks.check("a value edited by hand: exit 1, that row differs in clicks (sink +7)", ok,
                 f"exit {rc}, {summary(report)}, victim {victim}: "
                 f"{report['differ']['rows'][:2] if report else err[-500:]}")
    db.execute(f"UPDATE {STORE} SET clicks = clicks - 7 WHERE {where_key(victim)}")

    db.execute(f"DROP TABLE IF EXISTS verify_saved; CREATE TABLE verify_saved AS SELECT * FROM {STORE} "
               f"WHERE {where_key(victim)}; DELETE FROM {STORE} WHERE {where_key(victim)}")
    rc, report, err = verify(exe, PIPELINE, variables)
    checks.check("a row deleted by hand: exit 1, that row is missing from the sink",
                 rc == 1 and report and report["missing_from_sink"]["count"] == 1 and
                 key_of(report["missing_from_sink"]["rows"][0]) == victim and
                 report["differ"]["count"] == 0 and report["only_in_sink"]["count"] == 0,
                 f"exit {rc}, {summary(report)}; {err[-500:]}")
    db.execute(f"INSERT INTO {STORE} SELECT * FROM verify_saved; DROP TABLE verify_saved")

    extra = ("987654321",) + victim[1:]
    db.execute(f"INSERT INTO {STORE} ({', '.join(KEY)}, clicks) VALUES "
               f"({', '.join(lit(v) for v in extra)}, 3)")
    rc, report, err = verify(exe, PIPELINE, variables)
    checks.check("a row inserted by hand: exit 1, that row is only in the sink",
                 rc == 1 and report and report["only_in_sink"]["count"] == 1 and
                 key_of(report["only_in_sink"]["rows"][0]) == extra and
                 report["differ"]["count"] == 0 and report["missing_from_sink"]["count"] == 0,
                 f"exit {rc}, {summary(report)}; {err[-500:]}")
    db.execute(f"DELETE FROM {STORE} WHERE {where_key(extra)}")

    # The job file changes: job J now belongs to another company.
    job = victim[0]
    changed = []
    for ln in job_lines[1:]:
        fields = ln.split(";")
        if len(fields) == len(header) and fields[id_at] == job:
            fields[company_at] = "999777"
        changed.append(";".join(fields))
    with open(jobs, "w", encoding="utf-8") as f:
        f.write("\n".join([job_lines[0]] + changed))
    of_job = sum(1 for k in table_b if k[0] == job)
    rc, report, err = verify(exe, PIPELINE, variables)
    ok = rc == 0 and report and report["dimension_changed"]["count"] == of_job and \
        report["differ"]["count"] == 0 and report["missing_from_sink"]["count"] == 0 and \
        report["only_in_sink"]["count"] == 0 and report["dimension_columns"] == ["company_id"]
    if ok:
        ok = all(key_of(r["key"])[0] == job and list(r["columns"]) == ["company_id"] and
                 r["columns"]["company_id"]["recomputed"] == 999777
                 for r in report["dimension_changed"]["rows"])
    checks.check(f"the job file changed since (job {job}, {of_job} rows): exit 0, reported as "
                 "dimension changed since, nothing differs", ok,
                 f"exit {rc}, {summary(report)}; {err[-500:]}")
    shutil.copyfile(JOBS_CSV, jobs)

    if isinstance(db, SqliteDb):
        saved = tracking + ".saved"
        shutil.copyfile(tracking, saved)
        with open(tracking, "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(b"x" if b != b"x" else b"y")
        rc, report, err = verify(exe, PIPELINE, variables)
        checks.check("the input rewritten before the committed position: exit 1, input changed",
                     rc == 1 and "input changed" in err, f"exit {rc}: {err[-500:]}")
        shutil.move(saved, tracking)

    # A checkpoint applied twice: back to the first run's positions, run the second part again.
    set_positions(db, positions_a)
    run()
    set_positions(db, positions_b)
    touched = {k for k, r in table_b.items() if table_a.get(k) != r}
    rc, report, err = verify(exe, PIPELINE, variables)
    got = {key_of(r["key"]) for r in report["differ"]["rows"]} if report else set()
    checks.check(f"a checkpoint applied twice: exit 1, exactly the {len(touched)} rows the second "
                 "part touched differ",
                 rc == 1 and report and report["differ"]["count"] == len(touched) and got == touched and
                 report["missing_from_sink"]["count"] == 0 and report["only_in_sink"]["count"] == 0,
                 f"exit {rc}, {summary(report)}, {len(got - touched)} unexpected, "
                 f"{len(touched - got)} not reported; {err[-500:]}")

    if isinstance(db, SqliteDb):
        a = ["verify", PIPELINE, "--show", "2"]
        for k, v in variables.items():
            a += ["--var", f"{k}={v}"]
        rc, out, err = sluice(a, exe)
        lines = out.split("\n")
        checks.check("the text report: counts, the first --show rows with both values, NOT equal, exit 1",
                     rc == 1 and f"  {len(touched)} differ" in lines and
                     f"differ (2 of {len(touched)}):" in lines and "recomputed" in out and
                     lines[-2] == "NOT equal", f"exit {rc}: {out[-1500:]}")
        rc, out, err = sluice(a + ["--var", "UNUSED=1"], exe)
        checks.check("an unused --var: exit 2", rc == 2 and "UNUSED" in err, f"exit {rc}: {err[-500:]}")


# --- Parquet ----------------------------------------------------------------------------------

PARQUET_PIPELINE = """
[pipeline]
name = "verify_pq"
checkpoint_interval = "1s"

[source]
name = "events"
uri = "${INPUT}"

[source.fields]
t = "string"
user = "string"
n = "int64"

[[step]]
let = "event_time"
expr = "parse_time(t)"

[aggregate]
time = "event_time"
window = "1m"
mode = "append"
watermark_delay = "0s"
keys = ["user"]
metrics = ["events = count()", "total = sum(n)"]

[sink]
uri = "${SINK}"
partition_by = "user"
"""


def parquet_checks(args, checks, tmp):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        skip_or_fail("pyarrow is not installed for " + sys.executable)
    exe = args.sluice
    pipeline = os.path.join(tmp, "verify_pq.toml")
    with open(pipeline, "w") as f:
        f.write(PARQUET_PIPELINE)
    data = os.path.join(tmp, "events.ndjson")
    rng = random.Random(3)
    with open(data, "w") as f:
        for i in range(3000):
            minute, second = divmod(i // 3, 60)
            f.write(json.dumps({"t": f"2026-01-01T{minute // 60:02d}:{minute % 60:02d}:{second:02d}Z",
                                "user": rng.choice(["ann", "bob", "cy"]), "n": rng.randint(1, 9)}) + "\n")
    out = os.path.join(tmp, "pq")
    variables = {"INPUT": data, "SINK": "parquet:" + out}
    a = ["run", pipeline]
    for k, v in variables.items():
        a += ["--var", f"{k}={v}"]
    rc, _, err = sluice(a, exe)
    if rc != 0:
        raise RuntimeError(f"sluice run exited {rc}: {err[-2000:]}")
    files = sorted(os.path.join(d, n) for d, _, names in os.walk(out) for n in names
                   if n.startswith("part-") and n.endswith(".parquet"))
    total = sum(pq.read_table(p).num_rows for p in files)

    rc, report, err = verify(exe, pipeline, variables)
    checks.check(f"parquet: clean output verifies (exit 0, {total} rows in {len(files)} files match)",
                 rc == 0 and report and report["equal"] and report["matching"] == total and total > 0,
                 f"exit {rc}, {summary(report)}; {err[-500:]}")

    def rows_of(path):
        user = os.path.basename(os.path.dirname(path)).split("=", 1)[1]
        t = pq.read_table(path).to_pylist()
        return sorted((r["window_start"].strftime("%Y-%m-%d %H:%M:%S"), user) for r in t)

    def report_rows(rows):
        return sorted((r["window_start"], r["user"]) for r in rows)

    victim = files[len(files) // 2]
    expected = rows_of(victim)
    saved = os.path.join(tmp, "saved.parquet")
    shutil.move(victim, saved)
    rc, report, err = verify(exe, pipeline, variables)
    checks.check(f"parquet: a part file deleted: exit 1, its {len(expected)} rows missing from the sink",
                 rc == 1 and report and report["missing_from_sink"]["count"] == len(expected) and
                 report_rows(report["missing_from_sink"]["rows"]) == expected and
                 report["only_in_sink"]["count"] == 0 and report["differ"]["count"] == 0,
                 f"exit {rc}, {summary(report)}; {err[-500:]}")
    shutil.move(saved, victim)

    name = os.path.basename(victim)
    copy = os.path.join(os.path.dirname(victim), name[:name.rindex("-") + 1] + "f" * 16 + ".parquet")
    shutil.copyfile(victim, copy)
    rc, report, err = verify(exe, pipeline, variables)
    checks.check(f"parquet: a part file duplicated: exit 1, its {len(expected)} rows only in the sink",
                 rc == 1 and report and report["only_in_sink"]["count"] == len(expected) and
                 report_rows(report["only_in_sink"]["rows"]) == expected and
                 report["missing_from_sink"]["count"] == 0 and report["differ"]["count"] == 0,
                 f"exit {rc}, {summary(report)}; {err[-500:]}")
    os.remove(copy)


# --- Kafka -------------------------------------------------------------------------------------

def kafka_checks(args, checks, tmp):
    import socket
    host, port = args.broker.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        skip_or_fail(f"Kafka not reachable at {args.broker} ({e})")
    exe = args.sluice
    topic = f"verify_{os.getpid()}_{random.randrange(1 << 30)}"
    uri = f"kafka://{args.broker}/{topic}"

    def generate(count, seed):
        rc, _, err = sluice(["generate", "--profile", "recruitment", "--to", uri, "--count", str(count),
                             "--rate", "0", "--seed", str(seed)], exe)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {err[-2000:]}")

    db = SqliteDb(os.path.join(tmp, "out.db"))
    variables = {"TRACKING": uri, "SINK": db.uri}
    generate(4000, 1)
    a = ["run", PIPELINE, "--until-caught-up"]
    for k, v in variables.items():
        a += ["--var", f"{k}={v}"]
    rc, _, err = sluice(a, exe)
    if rc != 0:
        raise RuntimeError(f"sluice run exited {rc}: {err[-2000:]}")
    generate(2500, 2)  # after the run: past the committed offsets, not in the sink
    rows = table(db)
    rc, report, err = verify(exe, PIPELINE, variables)
    checks.check("kafka: verify reads each partition up to its committed offset (the 4000 records the "
                 "run read, not the 2500 produced since) and the sink is equal",
                 rc == 0 and report and report["equal"] and report["records"] == 4000 and
                 report["matching"] == len(rows), f"exit {rc}, {summary(report)}; {err[-500:]}")
    victim = sorted(rows)[len(rows) // 2]
    db.execute(f"UPDATE {STORE} SET spend_hour = spend_hour + 1 WHERE {where_key(victim)}")
    rc, report, err = verify(exe, PIPELINE, variables)
    checks.check("kafka: a value edited by hand: exit 1, that row differs in spend_hour",
                 rc == 1 and report and report["differ"]["count"] == 1 and
                 key_of(report["differ"]["rows"][0]["key"]) == victim and
                 list(report["differ"]["rows"][0]["columns"]) == ["spend_hour"],
                 f"exit {rc}, {summary(report)}; {err[-500:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--backend", choices=["sqlite", "mysql", "parquet", "kafka"], required=True)
    ap.add_argument("--broker", default=harness.BROKER)
    ap.add_argument("--server", default=harness.MYSQL_URI)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    if args.backend in ("sqlite", "mysql") and not os.path.exists(SEED):
        skip_or_fail(f"seed data missing: {SEED}")
    checks = harness.Checks()
    tmp = tempfile.mkdtemp(prefix="verify_test_")
    db = None
    try:
        if args.backend == "parquet":
            parquet_checks(args, checks, tmp)
        elif args.backend == "kafka":
            kafka_checks(args, checks, tmp)
        elif args.backend == "sqlite":
            db = SqliteDb(os.path.join(tmp, "out.db"))
            sql_checks(args, checks, db, tmp)
        else:
            server = Server(args.server)
            why = server.reachable()
            if why:
                skip_or_fail(why)
            db = MysqlDb(server, f"verify_{os.getpid()}")
            sql_checks(args, checks, db, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            if db:
                db.drop()
        else:
            print("kept", tmp)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
