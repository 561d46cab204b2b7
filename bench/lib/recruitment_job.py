"""What the other engines' recruitment jobs (bench/spark/recruitment_spark.py,
bench/flink/recruitment_flink.py) share: the fields they read, the keys they group by, the
`events` table both upsert into (the table examples/recruitment.toml writes) and the job
dimension as the dimension contract reads it. Plain Python: it runs under each engine's venv."""
import csv

KEYS = ("job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id")
INT_FIELDS = ("job_id", "bid", "publisher_id", "campaign_id", "group_id")
STR_FIELDS = ("create_time", "ts", "custom_track")
COUNTED = ("click", "conversion", "qualified", "unqualified")

EVENTS_DDL = """CREATE TABLE IF NOT EXISTS `events` (
  `job_id` BIGINT NOT NULL, `dates` DATE NOT NULL, `hours` TINYINT NOT NULL,
  `publisher_id` BIGINT NOT NULL, `campaign_id` BIGINT NOT NULL, `group_id` BIGINT NOT NULL,
  `company_id` BIGINT NULL, `clicks` BIGINT NOT NULL DEFAULT 0, `bid_set` DECIMAL(10,2) NULL,
  `spend_hour` BIGINT NOT NULL DEFAULT 0, `conversion` BIGINT NOT NULL DEFAULT 0,
  `qualified_application` BIGINT NOT NULL DEFAULT 0,
  `disqualified_application` BIGINT NOT NULL DEFAULT 0, `sources` TEXT NULL,
  `latest_update_time` DATETIME NULL,
  `_bid_set_sum` BIGINT NOT NULL DEFAULT 0, `_bid_set_count` BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (`job_id`, `dates`, `hours`, `publisher_id`, `campaign_id`, `group_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


def load_jobs(path):
    """job_id -> company_id from the job CSV (',' or ';'), the last row of a duplicate id
    winning and a blank company_id giving 0, as the dimension contract says."""
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
    delim = ";" if first.count(";") > first.count(",") else ","
    jobs = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delim)
        if reader.fieldnames and reader.fieldnames[0].startswith("\ufeff"):
            reader.fieldnames[0] = reader.fieldnames[0][1:]
        for row in reader:
            i = (row.get("id") or "").strip()
            c = (row.get("company_id") or "").strip()
            if i.lstrip("+-").isdigit():
                jobs[int(i)] = int(c) if c.lstrip("+-").isdigit() else 0
    return jobs
