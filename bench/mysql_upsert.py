#!/usr/bin/env python3
"""How fast MariaDB applies one checkpoint of the recruitment pipeline, by several SQL paths,
outside sluice. Not part of `make bench`: numbers are printed (BENCHMARKS.md, "Bulk upserts").

    .venv/bin/python bench/mysql_upsert.py --rows-db ROWS.db [--mysql 127.0.0.1:3306]
        [--database fresh_bench] [--repeat 3] [--methods a,b,...]

ROWS.db is a SQLite file written by the SQLite sink for examples/recruitment.toml (its table
`_sluice_table_events` has the columns of the MySQL sink's `_sluice_table_events`); its rows
stand for one checkpoint's merged deltas (e.g. the 55,290 groups of the freshness run's 2M
events: `sluice run examples/recruitment.toml --var TRACKING=fresh-clean-2000000.ndjson
--var SINK=sqlite:ROWS.db`).

Each method applies all rows in one transaction (START TRANSACTION ... COMMIT) to the table the
MySQL sink creates, in two states: empty (every row inserted) and holding the same keys (every
row updated: the steady state of a freshness run, where nearly every group of the hour already
has a row). Times are wall-clock seconds of the client around the transaction; the statements
are built beforehand. The client is MariaDB Connector/C (the library the sink links), through
ctypes: the standard library only.
"""

import argparse
import ctypes
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time

COLUMNS = ["job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id", "company_id",
           "_company_id_at", "clicks", "bid_set", "_bid_set_sum", "_bid_set_count", "spend_hour",
           "conversion", "qualified_application", "disqualified_application", "sources",
           "_sources_at", "latest_update_time"]
KEYS = COLUMNS[:6]
# The staging table holds what a delta carries (the insert tuple without the computed average).
STAGE = [c for c in COLUMNS if c != "bid_set"]

DDL = ("CREATE TABLE `_sluice_table_events` (`job_id` BIGINT NOT NULL, `dates` DATE NOT NULL, "
       "`hours` TINYINT NOT NULL, `publisher_id` BIGINT NOT NULL, `campaign_id` BIGINT NOT NULL, "
       "`group_id` BIGINT NOT NULL, `company_id` BIGINT, `clicks` BIGINT NOT NULL DEFAULT 0, "
       "`bid_set` DECIMAL(10,2), `spend_hour` BIGINT NOT NULL DEFAULT 0, `conversion` BIGINT NOT "
       "NULL DEFAULT 0, `qualified_application` BIGINT NOT NULL DEFAULT 0, "
       "`disqualified_application` BIGINT NOT NULL DEFAULT 0, `sources` TEXT, `latest_update_time` "
       "DATETIME, `_company_id_at` BIGINT, `_bid_set_sum` BIGINT NOT NULL DEFAULT 0, "
       "`_bid_set_count` BIGINT NOT NULL DEFAULT 0, `_sources_at` BIGINT, PRIMARY KEY (`job_id`, "
       "`dates`, `hours`, `publisher_id`, `campaign_id`, `group_id`)) ENGINE=InnoDB DEFAULT "
       "CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin")


def q(name):
    return "`" + name + "`"


def last_sql(c, at):
    v, a, vc, va = q(c), q(at), "VALUES(%s)" % q(c), "VALUES(%s)" % q(at)
    return [
        "%s = CASE WHEN %s IS NOT NULL AND (%s IS NULL OR %s > %s OR (%s = %s AND %s IS NOT NULL "
        "AND (%s IS NULL OR %s > %s))) THEN %s ELSE %s END" % (v, va, a, va, a, va, a, vc, v, vc, v,
                                                               vc, v),
        "%s = CASE WHEN %s IS NOT NULL AND (%s IS NULL OR %s > %s) THEN %s ELSE %s END" % (
            a, va, a, va, a, va, a)]


UPDATE = ", ".join(
    last_sql("company_id", "_company_id_at") +
    ["`clicks` = `clicks` + VALUES(`clicks`)",
     "`_bid_set_sum` = `_bid_set_sum` + VALUES(`_bid_set_sum`)",
     "`_bid_set_count` = `_bid_set_count` + VALUES(`_bid_set_count`)",
     "`bid_set` = CASE WHEN `_bid_set_count` > 0 THEN ROUND(CAST(`_bid_set_sum` AS "
     "DECIMAL(65,20)) / `_bid_set_count`, 2) ELSE 0e0 END"] +
    ["%s = %s + VALUES(%s)" % (q(c), q(c), q(c)) for c in
     ("spend_hour", "conversion", "qualified_application", "disqualified_application")] +
    last_sql("sources", "_sources_at") +
    ["`latest_update_time` = CASE WHEN VALUES(`latest_update_time`) IS NOT NULL AND "
     "(`latest_update_time` IS NULL OR VALUES(`latest_update_time`) > `latest_update_time`) "
     "THEN VALUES(`latest_update_time`) ELSE `latest_update_time` END"])
INSERT_PREFIX = "INSERT INTO `_sluice_table_events` (%s) VALUES " % ", ".join(q(c) for c in COLUMNS)
ODKU = " ON DUPLICATE KEY UPDATE " + UPDATE


def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def tuple_today(r):
    """The tuple the sink writes today: the average computed by the server from literals."""
    vals = []
    for c in COLUMNS:
        if c == "bid_set":
            s, n = r["_bid_set_sum"], r["_bid_set_count"]
            vals.append("ROUND(CAST(%d AS DECIMAL(65,20)) / %d, 2)" % (s, n) if n > 0 else "0e0")
        else:
            vals.append(lit(r[c]))
    return "(" + ", ".join(vals) + ")"


def tuple_stage(r):
    return "(" + ", ".join(lit(r[c]) for c in STAGE) + ")"


def tsv_field(v):
    if v is None:
        return "\\N"
    s = str(v)
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n"))


class Client:
    """The few Connector/C calls this needs."""

    def __init__(self, host, port, user, database):
        lib = ctypes.CDLL("libmariadb.so.3")
        lib.mysql_init.restype = ctypes.c_void_p
        lib.mysql_init.argtypes = [ctypes.c_void_p]
        lib.mysql_options.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.mysql_real_connect.restype = ctypes.c_void_p
        lib.mysql_real_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint,
                                           ctypes.c_char_p, ctypes.c_ulong]
        lib.mysql_real_query.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong]
        lib.mysql_error.restype = ctypes.c_char_p
        lib.mysql_error.argtypes = [ctypes.c_void_p]
        lib.mysql_errno.argtypes = [ctypes.c_void_p]
        lib.mysql_store_result.restype = ctypes.c_void_p
        lib.mysql_store_result.argtypes = [ctypes.c_void_p]
        lib.mysql_free_result.argtypes = [ctypes.c_void_p]
        lib.mysql_field_count.argtypes = [ctypes.c_void_p]
        lib.mysql_num_fields.argtypes = [ctypes.c_void_p]
        lib.mysql_fetch_row.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.mysql_fetch_row.argtypes = [ctypes.c_void_p]
        lib.mysql_affected_rows.restype = ctypes.c_ulonglong
        lib.mysql_affected_rows.argtypes = [ctypes.c_void_p]
        lib.mysql_info.restype = ctypes.c_char_p
        lib.mysql_info.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.m = lib.mysql_init(None)
        one = ctypes.c_uint(1)
        lib.mysql_options(self.m, 8, ctypes.byref(one))  # MYSQL_OPT_LOCAL_INFILE
        lib.mysql_options(self.m, 7, b"utf8mb4")          # MYSQL_SET_CHARSET_NAME
        if not lib.mysql_real_connect(self.m, host.encode(), user.encode(), b"", None, port,
                                      None, 0):
            raise RuntimeError(lib.mysql_error(self.m).decode())
        self.execute("CREATE DATABASE IF NOT EXISTS " + q(database))
        self.execute("USE " + q(database))
        self.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                     "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'")

    def execute(self, sql):
        b = sql.encode() if isinstance(sql, str) else sql
        if self.lib.mysql_real_query(self.m, b, len(b)) != 0:
            raise RuntimeError("%s: %s" % (self.lib.mysql_error(self.m).decode(), b[:120]))
        rows = []
        if self.lib.mysql_field_count(self.m) > 0:
            res = self.lib.mysql_store_result(self.m)
            n = self.lib.mysql_num_fields(res)
            while True:
                r = self.lib.mysql_fetch_row(res)
                if not r:
                    break
                rows.append([r[i].decode() if r[i] is not None else None for i in range(n)])
            self.lib.mysql_free_result(res)
        return rows

    def affected(self):
        return self.lib.mysql_affected_rows(self.m)


def load_rows(path):
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM _sluice_table_events")]
    db.close()
    return rows


def chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def insert_select(order_by_key):
    sel = []
    for c in COLUMNS:
        if c == "bid_set":
            sel.append("CASE WHEN %s > 0 THEN ROUND(CAST(%s AS DECIMAL(65,20)) / %s, 2) ELSE 0e0 "
                       "END" % (sq("_bid_set_count"), sq("_bid_set_sum"), sq("_bid_set_count")))
        else:
            sel.append(sq(c))
    return ("INSERT INTO `_sluice_table_events` (%s) SELECT %s FROM `_stage` s%s%s" % (
        ", ".join(q(c) for c in COLUMNS), ", ".join(sel),
        " ORDER BY " + ", ".join(sq(k) for k in KEYS) if order_by_key else "", ODKU))


STAGE_TYPES = {"job_id": "BIGINT", "dates": "DATE", "hours": "TINYINT", "publisher_id": "BIGINT",
               "campaign_id": "BIGINT", "group_id": "BIGINT", "company_id": "BIGINT",
               "_company_id_at": "BIGINT", "clicks": "BIGINT", "_bid_set_sum": "BIGINT",
               "_bid_set_count": "BIGINT", "spend_hour": "BIGINT", "conversion": "BIGINT",
               "qualified_application": "BIGINT", "disqualified_application": "BIGINT",
               "sources": "TEXT", "_sources_at": "BIGINT", "latest_update_time": "DATETIME"}


def sq(c):
    """A staging column's name: unlike the table's, so ON DUPLICATE KEY UPDATE names only those."""
    return "`v%d`" % STAGE.index(c)


def create_stage(engine, key):
    cols = ", ".join("%s %s" % (sq(c), STAGE_TYPES[c]) for c in STAGE)
    if engine == "MEMORY":
        cols = cols.replace("TEXT", "VARCHAR(255)")
    pk = ", PRIMARY KEY (%s)" % ", ".join(sq(k) for k in KEYS) if key else ""
    return ("CREATE TEMPORARY TABLE `_stage` (%s%s) ENGINE=%s DEFAULT CHARSET=utf8mb4 "
            "COLLATE=utf8mb4_nopad_bin" % (cols, pk, engine))


def make_methods(rows, tmpdir):
    """name -> (statements before, statements timed); the timed ones run inside the transaction."""
    today = [tuple_today(r) for r in rows]
    stage = [tuple_stage(r) for r in rows]
    tsv_path = os.path.join(tmpdir, "stage.tsv")
    with open(tsv_path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write("\t".join(tsv_field(r[c]) for c in STAGE) + "\n")
    load = ("LOAD DATA LOCAL INFILE '%s' INTO TABLE `_stage` CHARACTER SET utf8mb4 FIELDS "
            "TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (%s)" % (
                tsv_path, ", ".join(sq(c) for c in STAGE)))
    stage_insert = "INSERT INTO `_stage` (%s) VALUES " % ", ".join(sq(c) for c in STAGE)

    def values(n, tuples=today):
        return [INSERT_PREFIX + ", ".join(c) + ODKU for c in chunks(tuples, n)]

    def staged(fill, engine="InnoDB", key=False, order=False):
        size = ["SET SESSION max_heap_table_size = 1073741824"] if engine == "MEMORY" else []
        return size + [create_stage(engine, key)] + fill + [insert_select(order),
                                                      "DROP TEMPORARY TABLE `_stage`"]

    stage_values = [stage_insert + ", ".join(c) for c in chunks(stage, 1000)]
    stage_values_10k = [stage_insert + ", ".join(c) for c in chunks(stage, 10000)]
    shuffled = list(today)
    random.Random(1).shuffle(shuffled)
    return {
        "a_values_1000": values(1000),
        "a_values_250": values(250),
        "a_values_5000": values(5000),
        "a_values_1000_shuffled": values(1000, shuffled),
        "b_stage_values_1000": staged(stage_values),
        "b_stage_values_10000": staged(stage_values_10k),
        "b_stage_values_1000_pk_ordered": staged(stage_values, key=True, order=True),
        "b_stage_values_1000_memory": staged(stage_values, engine="MEMORY"),
        "c_stage_load": staged([load]),
        "c_stage_load_memory": staged([load], engine="MEMORY"),
        "c_stage_load_aria": staged([load], engine="Aria"),
        "d_stage_load_only": [create_stage("InnoDB", False), load, "DROP TEMPORARY TABLE `_stage`"],
        "d_values_1000_rc": ["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"] + values(1000)
        + ["SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"],
    }


def server_pid(c):
    """The server's process id when it runs on this machine (its pid file is readable), else None."""
    try:
        with open(c.execute("SELECT @@pid_file")[0][0]) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def server_cpu(pid):
    """CPU seconds (user + system) the server process has used so far; 0 when unknown."""
    if pid is None:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kind(sql):
    """What a statement does, for the breakdown of a method's time."""
    if sql.startswith("INSERT INTO `_stage`") or sql.startswith("LOAD DATA"):
        return "fill"
    if sql.startswith("INSERT INTO `_sluice_table_events`"):
        return "merge"
    return "other"


def refill(c, rows, state):
    c.execute("DROP TABLE IF EXISTS `_sluice_table_events`")
    c.execute(DDL)
    if state == "update":
        for chunk in chunks([tuple_today(r) for r in rows], 1000):
            c.execute(INSERT_PREFIX + ", ".join(chunk))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows-db", required=True)
    ap.add_argument("--mysql", default="127.0.0.1:3306")
    ap.add_argument("--user", default="root")
    ap.add_argument("--database", default="fresh_bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--methods", default="")
    ap.add_argument("--states", default="update,insert")
    ap.add_argument("--no-refill", action="store_true",
                    help="fill the table once for the update state (the values keep growing), "
                    "so that a profile of the server sees only the methods")
    args = ap.parse_args()
    host, port = args.mysql.split(":")
    rows = load_rows(args.rows_db)
    c = Client(host, int(port), args.user, args.database)
    tmp = tempfile.mkdtemp(prefix="fresh_bench_")
    methods = make_methods(rows, tmp)
    wanted = [m for m in args.methods.split(",") if m] or list(methods)
    pid = server_pid(c)
    print("%d rows; load average %s; server pid %s" % (len(rows), os.getloadavg(), pid), flush=True)
    results = {}
    for state in args.states.split(","):
        for rep in range(args.repeat):
            for name in wanted:
                stmts = methods[name]
                if not (args.no_refill and state == "update" and (rep or name != wanted[0])):
                    refill(c, rows, state)
                c.execute("START TRANSACTION")
                t0 = time.monotonic()
                parts = {}
                for s in stmts:
                    t1, cpu1 = time.monotonic(), server_cpu(pid)
                    c.execute(s)
                    k = kind(s)
                    parts[k] = parts.get(k, 0.0) + time.monotonic() - t1
                    parts[k + " cpu"] = parts.get(k + " cpu", 0.0) + server_cpu(pid) - cpu1
                t1 = time.monotonic()
                c.execute("COMMIT")
                parts["commit"] = time.monotonic() - t1
                dt = time.monotonic() - t0
                results.setdefault((state, name), []).append(dt)
                print("%-7s %-32s %6.3f s  %7.0f rows/s  (%s)" % (
                    state, name, dt, len(rows) / dt,
                    ", ".join("%s %.3f" % kv for kv in parts.items())), flush=True)
    print("\nmedian of %d, load average now %s" % (args.repeat, os.getloadavg()))
    for (state, name), ts in results.items():
        m = statistics.median(ts)
        print("%-7s %-32s %6.3f s  %7.0f rows/s  (min %.3f, max %.3f)" % (
            state, name, m, len(rows) / m, min(ts), max(ts)))


if __name__ == "__main__":
    sys.exit(main())
