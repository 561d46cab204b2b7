#!/usr/bin/env python3
"""The recruitment job of examples/recruitment.toml in PySpark Structured Streaming.

    recruitment_spark.py --topic T --database D [--brokers 127.0.0.1:9092]
                         [--mysql 127.0.0.1:3306] [--user root] [--jobs examples/data/job.csv]
                         [--checkpoint DIR] [--available-now] [--ready-file F]
                         [--shuffle-partitions 2] [--max-offsets-per-trigger N]

Reads the tracking records (one JSON object per Kafka message) from topic T, applies the rules of
examples/recruitment.toml and keeps table `events` of MariaDB/MySQL database D current, the way
the sluice MySQL sink does: one row per (job_id, dates, hours, publisher_id, campaign_id,
group_id), the same visible columns and types, and the exact average's sum and count in hidden
`_bid_set_sum` / `_bid_set_count` columns.

Every micro-batch is aggregated on its own (no streaming state) and merged into `events` in
foreachBatch: the batch's deltas go to a staging table through Spark's JDBC writer, then one
transaction upserts them (INSERT ... SELECT ... ON DUPLICATE KEY UPDATE clicks = clicks +
VALUES(clicks), ...) and records the batch id in `_spark_batches`; a batch whose id is already
recorded (a replay after a crash between the commit and Spark's own commit log) is skipped.
So each batch is applied exactly once.

All rules are Spark SQL expressions (no Python UDF, so no Python worker processes):
  * int fields are read as text: blank/null -> null; strict integers (optional sign, up to 18
    digits; an integral JSON number such as 3.0) -> bigint; anything else drops the record
    (sluice dead-letters it; this job keeps no dead-letter output);
  * custom_track not in click/conversion/qualified/unqualified, then a null job_id: ignored;
  * event time: the time of create_time when it is a canonical version-1 UUID (RFC 4122
    variant), from its hex fields with conv(); else ts as 'yyyy-MM-dd HH:mm:ss',
    "yyyy-MM-dd'T'HH:mm:ss" or 'M/d/yyyy H:mm' (UTC); else dropped (dead letter);
  * null bid/publisher_id/campaign_id/group_id -> 0; company_id from the job CSV (0 if absent);
  * clicks, bid_set = round(avg(bid), 2) and spend_hour = sum(bid) over clicks, counts of
    conversion/qualified/unqualified, sources = 'kafka', latest_update_time = max(event time)
    to the second.

--available-now processes what the topic holds and stops (trigger(availableNow=True));
otherwise micro-batches run back to back until SIGTERM/SIGINT. --ready-file is written once the
first batch is committed (for the benchmark's freshness runs, which pre-load records that are
ignored so that the query's planning and first execution happen before the measurement).
The log line `batch N: R records, K rows upserted in S s` is printed per batch, and
`done: ...` at the end.
"""

import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from recruitment_job import COUNTED, EVENTS_DDL, INT_FIELDS, KEYS, STR_FIELDS, load_jobs  # noqa: E402

GREGORIAN_OFFSET_MICROS = 12219292800 * 1000000  # 1582-10-15 -> 1970-01-01

STAGE_DDL = """CREATE TABLE IF NOT EXISTS `_spark_stage` (
  `job_id` BIGINT NOT NULL, `dates` DATE NOT NULL, `hours` TINYINT NOT NULL,
  `publisher_id` BIGINT NOT NULL, `campaign_id` BIGINT NOT NULL, `group_id` BIGINT NOT NULL,
  `company_id` BIGINT NULL, `clicks` BIGINT NOT NULL, `bid_sum` BIGINT NOT NULL,
  `bid_count` BIGINT NOT NULL, `spend_hour` BIGINT NOT NULL, `conversion` BIGINT NOT NULL,
  `qualified_application` BIGINT NOT NULL, `disqualified_application` BIGINT NOT NULL,
  `sources` VARCHAR(32) NOT NULL, `latest_update_time` DATETIME NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

BATCHES_DDL = """CREATE TABLE IF NOT EXISTS `_spark_batches` (
  `query` VARCHAR(255) NOT NULL PRIMARY KEY, `batch_id` BIGINT NOT NULL,
  `updated_at` DATETIME NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

# The average is computed by the server from the exact sum and count, rounded half away from
# zero in DECIMAL arithmetic, as the sluice MySQL sink does.
AVG_SQL = ("IF({c} > 0, ROUND(CAST({s} AS DECIMAL(65,20)) / {c}, 2), 0)")

UPSERT_SQL = """INSERT INTO `events` (`job_id`, `dates`, `hours`, `publisher_id`, `campaign_id`,
  `group_id`, `company_id`, `clicks`, `_bid_set_sum`, `_bid_set_count`, `bid_set`, `spend_hour`,
  `conversion`, `qualified_application`, `disqualified_application`, `sources`,
  `latest_update_time`)
SELECT s.`job_id`, s.`dates`, s.`hours`, s.`publisher_id`, s.`campaign_id`, s.`group_id`,
  s.`company_id`, s.`clicks`, s.`bid_sum`, s.`bid_count`, """ + AVG_SQL.format(
    s="s.`bid_sum`", c="s.`bid_count`") + """, s.`spend_hour`, s.`conversion`,
  s.`qualified_application`, s.`disqualified_application`, s.`sources`, s.`latest_update_time`
FROM `_spark_stage` s
ON DUPLICATE KEY UPDATE
  `company_id` = VALUES(`company_id`),
  `clicks` = `events`.`clicks` + VALUES(`clicks`),
  `_bid_set_sum` = `events`.`_bid_set_sum` + VALUES(`_bid_set_sum`),
  `_bid_set_count` = `events`.`_bid_set_count` + VALUES(`_bid_set_count`),
  `bid_set` = """ + AVG_SQL.format(s="`events`.`_bid_set_sum`", c="`events`.`_bid_set_count`") + """,
  `spend_hour` = `events`.`spend_hour` + VALUES(`spend_hour`),
  `conversion` = `events`.`conversion` + VALUES(`conversion`),
  `qualified_application` = `events`.`qualified_application` + VALUES(`qualified_application`),
  `disqualified_application` =
      `events`.`disqualified_application` + VALUES(`disqualified_application`),
  `sources` = VALUES(`sources`),
  `latest_update_time` = GREATEST(`events`.`latest_update_time`, VALUES(`latest_update_time`))"""


def build_parsed(spark, raw, jobs_df):
    """Kafka rows -> (every record with its status: counted / ignored / dead, the counted
    records with their company_id)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    # Every field as text: Spark renders a JSON number in a string field as its JSON text, so
    # 712, "712" and 3.0 all arrive as text and are checked the same way.
    schema = StructType([StructField(f, StringType()) for f in STR_FIELDS + INT_FIELDS])
    j = raw.select(F.from_json(F.col("value").cast("string"), schema).alias("r")).select("r.*")

    def as_int(name):
        c = F.col(name)
        strict = c.rlike(r"^[+-]?[0-9]{1,18}$")
        integral_float = c.rlike(r"^-?[0-9]{1,18}\.0*$")
        return (F.when(c.isNull() | (c == ""), F.lit(None).cast("bigint"))
                 .when(strict, c.cast("bigint"))
                 .when(integral_float, F.regexp_extract(c, r"^(-?[0-9]+)", 1).cast("bigint")))

    def bad_int(name):
        c = F.col(name)
        return (c.isNotNull() & (c != "") & ~c.rlike(r"^[+-]?[0-9]{1,18}$")
                & ~c.rlike(r"^-?[0-9]{1,18}\.0*$"))

    decode_error = F.lit(False)
    for f in INT_FIELDS:
        decode_error = decode_error | bad_int(f)

    ct = F.col("create_time")
    is_v1 = ct.rlike(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-1[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-"
                     r"[0-9a-fA-F]{12}$")
    # 60-bit count of 100 ns ticks since 1582-10-15: time_hi (3 hex digits after the version),
    # time_mid, time_low.
    # Divided by 10 in integers (`div`): `/` gives a double, whose 53 bits cannot hold the
    # 60-bit count, and a time a few microseconds before a second boundary was rounded into the
    # next second (one latest_update_time of 200k events, seen by the result check).
    micros = F.expr("CAST(conv(concat(substring(create_time, 16, 3), "
                    "substring(create_time, 10, 4), substring(create_time, 1, 8)), 16, 10) "
                    "AS BIGINT) div 10")
    uuid_time = F.timestamp_micros(micros - F.lit(GREGORIAN_OFFSET_MICROS))
    ts = F.col("ts")
    ts_time = F.coalesce(
        F.when(ts.rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"),
               F.to_timestamp(ts, "yyyy-MM-dd HH:mm:ss")),
        F.when(ts.rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$"),
               F.to_timestamp(ts, "yyyy-MM-dd'T'HH:mm:ss")),
        F.when(ts.rlike(r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}$"),
               F.to_timestamp(ts, "M/d/yyyy H:mm")))
    event_time = F.when(is_v1, uuid_time).otherwise(ts_time)

    track = F.col("custom_track")
    d = j.select(
        decode_error.alias("decode_error"),
        track.alias("custom_track"),
        as_int("job_id").alias("job_id"),
        F.coalesce(as_int("bid"), F.lit(0)).alias("bid"),
        F.coalesce(as_int("publisher_id"), F.lit(0)).alias("publisher_id"),
        F.coalesce(as_int("campaign_id"), F.lit(0)).alias("campaign_id"),
        F.coalesce(as_int("group_id"), F.lit(0)).alias("group_id"),
        event_time.alias("event_time"))
    d = d.withColumn("status", F.when(F.col("decode_error"), F.lit("dead"))
                     .when(~F.col("custom_track").isin(*COUNTED) | F.col("custom_track").isNull()
                           | F.col("job_id").isNull(), F.lit("ignored"))
                     .when(F.col("event_time").isNull(), F.lit("dead"))
                     .otherwise(F.lit("counted")))
    good = (d.where(F.col("status") == "counted")
             .join(F.broadcast(jobs_df), "job_id", "left")
             .withColumn("company_id", F.coalesce(F.col("company_id"), F.lit(0))))
    return d, good


def aggregate(good):
    from pyspark.sql import functions as F
    is_click = F.col("custom_track") == "click"

    def count_of(track):
        return F.sum(F.when(F.col("custom_track") == track, 1).otherwise(0)).cast("bigint")

    return (good
            .withColumn("dates", F.date_format("event_time", "yyyy-MM-dd"))
            .withColumn("hours", F.hour("event_time"))
            .groupBy(*KEYS)
            .agg(F.max("company_id").alias("company_id"),
                 count_of("click").alias("clicks"),
                 F.sum(F.when(is_click, F.col("bid")).otherwise(0)).cast("bigint")
                  .alias("bid_sum"),
                 count_of("click").alias("bid_count"),
                 F.sum(F.when(is_click, F.col("bid")).otherwise(0)).cast("bigint")
                  .alias("spend_hour"),
                 count_of("conversion").alias("conversion"),
                 count_of("qualified").alias("qualified_application"),
                 count_of("unqualified").alias("disqualified_application"),
                 F.lit("kafka").alias("sources"),
                 F.date_format(F.max("event_time"), "yyyy-MM-dd HH:mm:ss")
                  .alias("latest_update_time")))


class Jdbc:
    """A JDBC connection held by the driver JVM, used through py4j for DDL and the upsert."""

    def __init__(self, spark, url, user, password):
        jvm = spark.sparkContext._jvm
        jvm.java.lang.Class.forName("org.mariadb.jdbc.Driver")
        props = jvm.java.util.Properties()
        props.setProperty("user", user)
        if password:
            props.setProperty("password", password)
        self.conn = jvm.java.sql.DriverManager.getConnection(url, props)

    def execute(self, sql):
        st = self.conn.createStatement()
        try:
            st.execute(sql)
            return st.getUpdateCount()
        finally:
            st.close()

    def query_long(self, sql):
        st = self.conn.createStatement()
        try:
            rs = st.executeQuery(sql)
            return rs.getLong(1) if rs.next() else None
        finally:
            st.close()

    def close(self):
        self.conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topic", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--mysql", default="127.0.0.1:3306")
    ap.add_argument("--user", default="root")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--jobs", default=os.path.join(here, "..", "..", "examples", "data", "job.csv"))
    ap.add_argument("--checkpoint", help="checkpoint directory (default: under /tmp per topic)")
    ap.add_argument("--query-name", default="recruitment")
    ap.add_argument("--available-now", action="store_true")
    ap.add_argument("--ready-file")
    ap.add_argument("--shuffle-partitions", type=int, default=2)
    ap.add_argument("--max-offsets-per-trigger", type=int, default=0)
    ap.add_argument("--jars-dir", default=os.path.join(here, "..", "..", "build", "bench-spark",
                                                        "jars"),
                    help="the jars bench/spark/setup.sh copied (Kafka source, JDBC driver)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="2g")
    args = ap.parse_args(argv)
    password = os.environ.get("SLUICE_MYSQL_PASSWORD", "")
    checkpoint = args.checkpoint or f"/tmp/spark-checkpoint-{args.topic}"

    jars = sorted(os.path.join(args.jars_dir, j) for j in os.listdir(args.jars_dir)
                  if j.endswith(".jar")) if os.path.isdir(args.jars_dir) else []
    if not any("spark-sql-kafka" in j for j in jars) or not any("mariadb" in j for j in jars):
        print(f"no Kafka source / MariaDB driver jars in {args.jars_dir}: run "
              "bench/spark/setup.sh", file=sys.stderr)
        return 2

    from pyspark.sql import SparkSession

    t_start = time.monotonic()
    spark = (SparkSession.builder
             .appName("recruitment")
             .master(args.master)
             .config("spark.driver.memory", args.driver_memory)
             .config("spark.jars", ",".join(jars))
             .config("spark.driver.extraClassPath", ":".join(jars))
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
             .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
             .config("spark.sql.ansi.enabled", "false")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.streaming.metricsEnabled", "false")
             .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")

    url = (f"jdbc:mysql://{args.mysql}/{args.database}?permitMysqlScheme"
           "&useBulkStmtsForInserts=true")
    jdbc = Jdbc(spark, url, args.user, password)
    for ddl in (EVENTS_DDL, STAGE_DDL, BATCHES_DDL):
        jdbc.execute(ddl)

    jobs = load_jobs(args.jobs)
    jobs_df = spark.createDataFrame(list(jobs.items()), "job_id BIGINT, company_id BIGINT")
    jobs_df = jobs_df.cache()
    jobs_df.count()

    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", args.brokers)
              .option("subscribe", args.topic)
              .option("startingOffsets", "earliest")
              .option("failOnDataLoss", "false"))
    if args.max_offsets_per_trigger > 0:
        reader = reader.option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
    raw = reader.load()

    totals = {"records": 0, "rows": 0, "batches": 0, "skipped": 0}
    # The staging rows of one task are written in one transaction (Spark's default isolation
    # level), in batches of 10000 rows (the driver sends each batch as one bulk command).
    jdbc_props = {"user": args.user, "password": password, "driver": "org.mariadb.jdbc.Driver",
                  "batchsize": "10000"}

    def apply_batch(batch_df, batch_id):
        t0 = time.monotonic()
        last = jdbc.query_long("SELECT `batch_id` FROM `_spark_batches` WHERE `query` = "
                               f"'{args.query_name}'")
        if last is not None and last >= batch_id:
            totals["skipped"] += 1
            print(f"batch {batch_id}: already applied (last {last}), skipped", flush=True)
            return
        _, good = build_parsed(spark, batch_df, jobs_df)
        jdbc.execute("TRUNCATE TABLE `_spark_stage`")
        aggregate(good).write.jdbc(url, "_spark_stage", mode="append", properties=jdbc_props)
        t_staged = time.monotonic()
        jdbc.conn.setAutoCommit(False)
        try:
            # The batch id row is locked first: a second writer of the same query waits here.
            last = jdbc.query_long("SELECT `batch_id` FROM `_spark_batches` WHERE `query` = "
                                   f"'{args.query_name}' FOR UPDATE")
            if last is not None and last >= batch_id:
                jdbc.conn.rollback()
                totals["skipped"] += 1
                return
            rows = jdbc.execute(UPSERT_SQL)
            jdbc.execute("INSERT INTO `_spark_batches` (`query`, `batch_id`, `updated_at`) "
                         f"VALUES ('{args.query_name}', {int(batch_id)}, UTC_TIMESTAMP()) "
                         "ON DUPLICATE KEY UPDATE `batch_id` = VALUES(`batch_id`), "
                         "`updated_at` = VALUES(`updated_at`)")
            jdbc.conn.commit()
        except Exception:
            jdbc.conn.rollback()
            raise
        finally:
            jdbc.conn.setAutoCommit(True)
        totals["rows"] += rows
        totals["batches"] += 1
        t1 = time.monotonic()
        print(f"batch {batch_id}: {rows} row changes upserted in {t1 - t0:.2f} s (aggregate and "
              f"stage {t_staged - t0:.2f} s, upsert transaction {t1 - t_staged:.2f} s)",
              flush=True)

    writer = (raw.writeStream.foreachBatch(apply_batch)
              .option("checkpointLocation", checkpoint)
              .queryName(args.query_name))
    if args.available_now:
        writer = writer.trigger(availableNow=True)
    query = writer.start()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ready_written = False
    err = None
    try:
        while query.isActive and not stop.is_set():
            if args.ready_file and not ready_written and totals["batches"] >= 1:
                with open(args.ready_file, "w") as f:
                    f.write(f"{time.time()}\n")
                ready_written = True
            query.awaitTermination(0.05)
        if query.isActive:
            query.stop()
        err = query.exception()
    except Exception as e:  # awaitTermination raises the query's failure
        err = e
    progress = query.recentProgress
    totals["records"] = sum(int(p.get("numInputRows", 0)) for p in progress)
    batch_ms = sum(int(p.get("durationMs", {}).get("triggerExecution", 0)) for p in progress)
    print(f"done: {totals['records']} records in {totals['batches']} batches "
          f"({totals['skipped']} replayed batches skipped), {totals['rows']} row changes, "
          f"batches {batch_ms / 1000.0:.3f} s, {time.monotonic() - t_start:.2f} s since start",
          flush=True)
    jdbc.close()
    spark.stop()
    if err is not None:
        print(f"query failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
