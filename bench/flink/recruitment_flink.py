#!/usr/bin/env python3
"""The recruitment job of examples/recruitment.toml in Flink SQL (PyFlink, local mini-cluster).

    recruitment_flink.py --topic T --database D [--brokers 127.0.0.1:9092]
                         [--mysql 127.0.0.1:3306] [--user root] [--jobs examples/data/job.csv]
                         [--group G] [--bounded] [--parallelism 2]
                         [--checkpoint-interval 1s] [--flush-interval 1s]
                         [--checkpoint-dir DIR] [--jars-dir build/bench-flink/jars]
    recruitment_flink.py --print-sql ...     the SQL it would run, without Flink

Reads the tracking records (one JSON object per Kafka message) from topic T, applies the rules of
examples/recruitment.toml and keeps table `events` of MariaDB/MySQL database D current: one row
per (job_id, dates, hours, publisher_id, campaign_id, group_id), the same visible columns and
types as the sluice MySQL sink and the Spark job, the exact average's sum and count in the
hidden `_bid_set_sum` / `_bid_set_count` columns.

The Flink way, not a port of the Spark job: a continuous GROUP BY keeps every group's totals in
Flink state (heap state backend, checkpoints to --checkpoint-dir), mini-batch aggregation
(local + global) with a latency of --flush-interval, and the JDBC connector's upsert sink writes
each changed group's full row (INSERT ... ON DUPLICATE KEY UPDATE col = VALUES(col)), buffered
for at most --flush-interval. The job dimension (job_id -> company_id) is table `_flink_jobs` of
D, loaded from the CSV before the job starts and read through a JDBC lookup join with a cache.

Delivery: the upserts are idempotent (whole rows of totals), so after a failure the replay from
the last checkpoint converges to the exact table; rows are visible when flushed, before the
checkpoint that covers them completes (at-least-once writes of exact totals, not a transactional
sink). Parallelism --parallelism (2, as Spark's local[2]).

All rules are Flink SQL built-in functions (no Python UDF, so no Python worker process; the same
expressions as the Spark job):
  * int fields are read as text (the json format renders a number in a STRING column as its JSON
    text): blank/null -> null; strict integers (optional sign, up to 18 digits; an integral JSON
    number such as 3.0) -> BIGINT; anything else drops the record (sluice dead-letters it);
  * custom_track not in click/conversion/qualified/unqualified, then a null job_id: ignored;
  * event time, computed from the TimeUUID inside the job (not a precomputed field): the 60-bit
    timestamp of create_time when it is a canonical version-1 UUID (RFC 4122 variant), summed
    from its 15 hex digits (Flink SQL has no base conversion); else ts as 'yyyy-MM-dd HH:mm:ss',
    "yyyy-MM-dd'T'HH:mm:ss" or 'M/d/yyyy H:mm' (UTC), a parse that does not give back the same
    fields (Feb 30) being no time; else dropped (dead letter);
  * null bid/publisher_id/campaign_id/group_id -> 0; company_id from the job CSV (0 if absent);
  * clicks, bid_set = round(avg(bid), 2) half away from zero (exact decimal), spend_hour =
    sum(bid) over clicks, counts of conversion/qualified/unqualified, sources = 'kafka',
    latest_update_time = max(event time) to the second.

Records with custom_track 'alive' are also counted into table `_flink_ready` (one row), so a
harness knows when the job has read and written its warm-up records.

--bounded reads the topic up to the end offsets it has at start and stops (scan.bounded.mode
latest-offset); otherwise the job runs until SIGTERM/SIGINT (then cancelled). Prints
`done: job J finished, net runtime S s, ...` at the end.
"""

import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from recruitment_job import COUNTED, EVENTS_DDL, INT_FIELDS, KEYS, STR_FIELDS, load_jobs  # noqa: E402

# 100 ns ticks from 1582-10-15 (the UUID epoch) to 1970-01-01.
GREGORIAN_OFFSET_TICKS = 12219292800 * 10_000_000

JOBS_DDL = """CREATE TABLE IF NOT EXISTS `_flink_jobs` (
  `id` BIGINT NOT NULL PRIMARY KEY, `company_id` BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

READY_DDL = """CREATE TABLE IF NOT EXISTS `_flink_ready` (
  `name` VARCHAR(64) NOT NULL PRIMARY KEY, `warmup_records` BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


# ------------------------------------------------------------------------- the SQL text

def quote(s):
    return "'" + str(s).replace("'", "''") + "'"


def timeuuid_digits():
    """(1-based position in the canonical UUID text, weight) of the 15 hex digits of the 60-bit
    timestamp: time_hi (3 digits after the version digit), time_mid, time_low, most significant
    first."""
    positions = list(range(16, 19)) + list(range(10, 14)) + list(range(1, 9))
    return [(p, 16 ** (14 - i)) for i, p in enumerate(positions)]


def timeuuid_ticks_expr(col):
    """Flink SQL BIGINT: the 60-bit timestamp of the canonical UUID text `col` (lower case)."""
    terms = [f"CAST(POSITION(SUBSTRING({col} FROM {p} FOR 1) IN '0123456789abcdef') - 1 AS BIGINT)"
             + (f" * {w}" if w != 1 else "")
             for p, w in timeuuid_digits()]
    return "(" + " + ".join(terms) + ")"


def as_int_expr(c):
    return (f"CASE WHEN {c} IS NULL OR {c} = '' THEN CAST(NULL AS BIGINT) "
            f"WHEN REGEXP({c}, '^[+-]?[0-9]{{1,18}}$') THEN CAST({c} AS BIGINT) "
            f"WHEN REGEXP({c}, '^-?[0-9]{{1,18}}\\.0*$') "
            f"THEN CAST(REGEXP_EXTRACT({c}, '^(-?[0-9]+)', 1) AS BIGINT) "
            f"ELSE CAST(NULL AS BIGINT) END")


def bad_int_expr(c):
    return (f"({c} IS NOT NULL AND {c} <> '' AND NOT REGEXP({c}, '^[+-]?[0-9]{{1,18}}$') "
            f"AND NOT REGEXP({c}, '^-?[0-9]{{1,18}}\\.0*$'))")


def event_time_expr():
    """TIMESTAMP(3) (UTC wall time; the session time zone is UTC) or NULL."""
    ct = "LOWER(create_time)"
    is_v1 = ("REGEXP(create_time, '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-1[0-9a-fA-F]{3}-"
             "[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$')")
    millis = (f"(({timeuuid_ticks_expr(ct)} - {GREGORIAN_OFFSET_TICKS}) / 10000)")
    uuid_time = f"CAST(TO_TIMESTAMP_LTZ({millis}, 3) AS TIMESTAMP(3))"
    iso = "REPLACE(ts, 'T', ' ')"
    iso_ok = ("REGEXP(ts, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$')")
    iso_time = f"TO_TIMESTAMP({iso}, 'yyyy-MM-dd HH:mm:ss')"
    # A lenient parse turns 2022-02-30 into 2022-02-28: keep only a parse that prints back.
    iso_checked = (f"CASE WHEN DATE_FORMAT({iso_time}, 'yyyy-MM-dd HH:mm:ss') = {iso} "
                   f"THEN {iso_time} END")
    us_ok = "REGEXP(ts, '^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}$')"
    us_time = "TO_TIMESTAMP(ts, 'M/d/yyyy H:mm')"
    us_re = "'^([0-9]+)/([0-9]+)/([0-9]+) ([0-9]+):([0-9]+)$'"
    us_fields = [f"CAST(REGEXP_EXTRACT(ts, {us_re}, {i}) AS INT)" for i in range(1, 6)]
    us_back = [f"MONTH({us_time})", f"DAYOFMONTH({us_time})", f"YEAR({us_time})",
               f"HOUR({us_time})", f"MINUTE({us_time})"]
    us_checked = ("CASE WHEN " + " AND ".join(f"{a} = {b}" for a, b in zip(us_fields, us_back))
                  + f" THEN {us_time} END")
    return (f"CASE WHEN create_time IS NOT NULL AND {is_v1} THEN {uuid_time} "
            f"WHEN ts IS NOT NULL AND {iso_ok} THEN {iso_checked} "
            f"WHEN ts IS NOT NULL AND {us_ok} THEN {us_checked} "
            f"ELSE CAST(NULL AS TIMESTAMP(3)) END")


def job_sql(args, password=""):
    """The statements: [(kind, sql)], kind 'ddl' (executed one by one) or 'insert' (run as one
    statement set)."""
    group = args.group or f"flink-{args.topic}"
    kafka = [("connector", "kafka"), ("topic", args.topic),
             ("properties.bootstrap.servers", args.brokers), ("properties.group.id", group),
             ("scan.startup.mode", "earliest-offset"), ("format", "json"),
             ("json.ignore-parse-errors", "true"), ("json.fail-on-missing-field", "false")]
    if args.bounded:
        kafka.append(("scan.bounded.mode", "latest-offset"))
    url = (f"jdbc:mysql://{args.mysql}/{args.database}?permitMysqlScheme"
           "&useBulkStmtsForInserts=true")
    # The connector takes a user only with a password; without one the user goes in the URL.
    jdbc = [("connector", "jdbc"), ("driver", "org.mariadb.jdbc.Driver")] + (
        [("url", url), ("username", args.user), ("password", password)] if password else
        [("url", f"{url}&user={args.user}")])

    def with_(opts):
        return "WITH (" + ", ".join(f"{quote(k)} = {quote(v)}" for k, v in opts) + ")"

    cols = ", ".join(f"`{c}` STRING" for c in STR_FIELDS + INT_FIELDS)
    stmts = [
        ("ddl", f"CREATE TEMPORARY TABLE tracking ({cols}, proc_time AS PROCTIME()) "
                + with_(kafka)),
        ("ddl", "CREATE TEMPORARY TABLE jobs (id BIGINT, company_id BIGINT, "
                "PRIMARY KEY (id) NOT ENFORCED) "
                + with_(jdbc + [("table-name", "_flink_jobs"), ("lookup.cache", "PARTIAL"),
                                ("lookup.partial-cache.max-rows", "1000000"),
                                ("lookup.partial-cache.cache-missing-key", "true")])),
        ("ddl", "CREATE TEMPORARY TABLE events_sink (job_id BIGINT, dates DATE, hours BIGINT, "
                "publisher_id BIGINT, campaign_id BIGINT, group_id BIGINT, company_id BIGINT, "
                "clicks BIGINT, bid_set DECIMAL(10, 2), spend_hour BIGINT, conversion BIGINT, "
                "qualified_application BIGINT, disqualified_application BIGINT, sources STRING, "
                "latest_update_time TIMESTAMP(0), _bid_set_sum BIGINT, _bid_set_count BIGINT, "
                "PRIMARY KEY (" + ", ".join(KEYS) + ") NOT ENFORCED) "
                + with_(jdbc + [("table-name", "events"),
                                ("sink.buffer-flush.max-rows", str(args.flush_rows)),
                                ("sink.buffer-flush.interval", args.flush_interval)])),
        ("ddl", "CREATE TEMPORARY TABLE ready_sink (name STRING, warmup_records BIGINT, "
                "PRIMARY KEY (name) NOT ENFORCED) "
                + with_(jdbc + [("table-name", "_flink_ready"),
                                ("sink.buffer-flush.interval", args.flush_interval)])),
    ]
    decode_error = " OR ".join(bad_int_expr(f) for f in INT_FIELDS)
    parsed = ("SELECT custom_track, " + as_int_expr("job_id") + " AS job_id, "
              + ", ".join(f"COALESCE({as_int_expr(f)}, CAST(0 AS BIGINT)) AS {f}"
                          for f in INT_FIELDS[1:])
              + f", {event_time_expr()} AS event_time, ({decode_error}) AS decode_error, "
              "proc_time FROM tracking")
    stmts.append(("ddl", f"CREATE TEMPORARY VIEW parsed AS {parsed}"))
    counted = ", ".join(quote(t) for t in COUNTED)
    stmts.append(("ddl", "CREATE TEMPORARY VIEW counted AS SELECT p.*, "
                         "COALESCE(j.company_id, CAST(0 AS BIGINT)) AS company_id FROM parsed AS p "
                         "LEFT JOIN jobs FOR SYSTEM_TIME AS OF p.proc_time AS j "
                         "ON p.job_id = j.id "
                         f"WHERE NOT p.decode_error AND p.custom_track IN ({counted}) "
                         "AND p.job_id IS NOT NULL AND p.event_time IS NOT NULL"))

    def count_of(track):
        return f"SUM(CASE WHEN custom_track = {quote(track)} THEN 1 ELSE 0 END)"
    click_bid = "CASE WHEN custom_track = 'click' THEN bid ELSE CAST(0 AS BIGINT) END"
    agg = ("SELECT job_id, CAST(event_time AS DATE) AS dates, HOUR(event_time) AS hours, "
           "publisher_id, campaign_id, group_id, MAX(company_id) AS company_id, "
           f"CAST({count_of('click')} AS BIGINT) AS clicks, SUM({click_bid}) AS bid_sum, "
           f"CAST({count_of('conversion')} AS BIGINT) AS conversion, "
           f"CAST({count_of('qualified')} AS BIGINT) AS qualified_application, "
           f"CAST({count_of('unqualified')} AS BIGINT) AS disqualified_application, "
           "MAX(event_time) AS latest FROM counted "
           "GROUP BY job_id, CAST(event_time AS DATE), HOUR(event_time), publisher_id, "
           "campaign_id, group_id")
    avg = ("CASE WHEN clicks > 0 THEN CAST(ROUND(CAST(bid_sum AS DECIMAL(19, 0)) / "
           "CAST(clicks AS DECIMAL(19, 0)), 2) AS DECIMAL(10, 2)) "
           "ELSE CAST(0 AS DECIMAL(10, 2)) END")
    insert = ("INSERT INTO events_sink SELECT job_id, dates, hours, publisher_id, campaign_id, "
              f"group_id, company_id, clicks, {avg}, bid_sum, conversion, qualified_application, "
              "disqualified_application, 'kafka', CAST(latest AS TIMESTAMP(0)), bid_sum, clicks "
              f"FROM ({agg})")
    ready = ("INSERT INTO ready_sink SELECT 'warmup', COUNT(*) FROM tracking "
             "WHERE custom_track = 'alive' GROUP BY 'warmup'")
    stmts += [("insert", insert), ("insert", ready)]
    return stmts


def flink_config(args):
    """Configuration of the table environment (strings, as Flink reads them)."""
    conf = {
        "parallelism.default": str(args.parallelism),
        "table.local-time-zone": "UTC",
        "pipeline.object-reuse": "true",
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": args.flush_interval,
        "table.exec.mini-batch.size": "5000",
        "table.optimizer.agg-phase-strategy": "TWO_PHASE",
        "table.exec.source.idle-timeout": "1 s",
        "execution.checkpointing.interval": args.checkpoint_interval,
        "state.backend.type": "hashmap",
        "pipeline.name": f"recruitment-{args.topic}",
    }
    if args.checkpoint_dir:
        conf["execution.checkpointing.dir"] = "file://" + os.path.abspath(args.checkpoint_dir)
    return conf


# ------------------------------------------------------------------------- running it

class Jdbc:
    """A JDBC connection in the PyFlink gateway JVM (through py4j), for DDL and the dimension."""

    def __init__(self, jvm, url, user, password):
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        driver = jvm.java.lang.Class.forName("org.mariadb.jdbc.Driver", True, loader) \
            .getDeclaredConstructor(None).newInstance(None)
        props = jvm.java.util.Properties()
        props.setProperty("user", user)
        if password:
            props.setProperty("password", password)
        self.conn = driver.connect(url, props)

    def execute(self, sql):
        st = self.conn.createStatement()
        try:
            st.execute(sql)
        finally:
            st.close()

    def close(self):
        self.conn.close()


def prepare(jdbc, jobs):
    for ddl in (EVENTS_DDL, JOBS_DDL, READY_DDL):
        jdbc.execute(ddl)
    jdbc.execute("DELETE FROM `_flink_jobs`")
    items = sorted(jobs.items())
    for i in range(0, len(items), 1000):
        values = ", ".join(f"({k}, {v})" for k, v in items[i:i + 1000])
        jdbc.execute(f"INSERT INTO `_flink_jobs` (`id`, `company_id`) VALUES {values}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topic", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--mysql", default="127.0.0.1:3306")
    ap.add_argument("--user", default="root")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--jobs", default=os.path.join(here, "..", "..", "examples", "data", "job.csv"))
    ap.add_argument("--group", help="Kafka consumer group (default flink-TOPIC)")
    ap.add_argument("--bounded", action="store_true")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--checkpoint-interval", default="1 s")
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--flush-interval", default="1 s",
                    help="mini-batch latency and JDBC sink flush interval")
    ap.add_argument("--flush-rows", type=int, default=10000)
    ap.add_argument("--jars-dir", default=os.path.join(here, "..", "..", "build", "bench-flink",
                                                        "jars"),
                    help="the jars bench/flink/setup.sh copied (connectors, JDBC driver)")
    ap.add_argument("--jvm-heap", default="2g",
                    help="-Xmx of the JVM (the mini-cluster runs in it); the Spark job's driver "
                         "memory is 2g too")
    ap.add_argument("--print-sql", action="store_true")
    args = ap.parse_args(argv)
    password = os.environ.get("SLUICE_MYSQL_PASSWORD", "")
    stmts = job_sql(args, password)
    if args.print_sql:
        for k, v in sorted(flink_config(args).items()):
            print(f"SET '{k}' = '{v}';")
        for _, s in stmts:
            print(s + ";")
        return 0

    jars = sorted(os.path.join(os.path.abspath(args.jars_dir), j)
                  for j in os.listdir(args.jars_dir)
                  if j.endswith(".jar")) if os.path.isdir(args.jars_dir) else []
    if not any("flink-connector-kafka" in j for j in jars) or \
            not any("flink-connector-jdbc" in j for j in jars):
        print(f"no Kafka / JDBC connector jars in {args.jars_dir}: run bench/flink/setup.sh",
              file=sys.stderr)
        return 2

    os.environ["JVM_ARGS"] = (os.environ.get("JVM_ARGS", "") + f" -Xmx{args.jvm_heap}").strip()
    from pyflink.java_gateway import get_gateway
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_start = time.monotonic()
    settings = EnvironmentSettings.in_streaming_mode()
    t_env = TableEnvironment.create(settings)
    config = t_env.get_config()
    config.set("pipeline.jars", ";".join("file://" + j for j in jars))
    for k, v in flink_config(args).items():
        config.set(k, v)

    url = f"jdbc:mysql://{args.mysql}/{args.database}?permitMysqlScheme"
    jdbc = Jdbc(get_gateway().jvm, url, args.user, password)
    prepare(jdbc, load_jobs(args.jobs))
    jdbc.close()

    statement_set = t_env.create_statement_set()
    for kind, sql in stmts:
        if kind == "ddl":
            t_env.execute_sql(sql)
        else:
            statement_set.add_insert_sql(sql)
    result = statement_set.execute()
    client = result.get_job_client()
    job_id = client.get_job_id()
    print(f"job {job_id} submitted {time.monotonic() - t_start:.2f} s after start", flush=True)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # The mini-cluster shuts down with its job, so the job is followed through the future of its
    # result (kept in this process), not through status calls.
    future = client.get_job_execution_result()
    while not future.done():
        if stop.is_set():
            client.cancel().result()
            print(f"done: job {job_id} cancelled on a signal, "
                  f"{time.monotonic() - t_start:.2f} s since start", flush=True)
            return 0
        time.sleep(0.1)
    try:
        runtime = future.result().get_net_runtime()
    except Exception as e:  # the job's failure
        print(f"job failed: {e}", file=sys.stderr)
        return 1
    print(f"done: job {job_id} finished, net runtime {runtime / 1000.0:.3f} s, "
          f"{time.monotonic() - t_start:.2f} s since start", flush=True)
    rc = 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
