-- recruitment: tracking events -> hourly job metrics (clicks, spend, conversions, applications).
-- The SQL twin of recruitment.toml: the same variables, the same sink contents.
--
--   sluice run examples/recruitment.sql --var TRACKING=path/to/tracking.csv --var SINK=sqlite:out.db
--
-- Variables (see recruitment.toml for every form they take): TRACKING and SINK are required;
-- JOBS (default: data/job.csv here), DLQ (default: the sink's table _sluice_dead_letters), and
-- with TRACKING=generator: RATE, COUNT, START.

SET pipeline.name = 'recruitment';
SET pipeline.checkpoint_interval = '1s';

-- The source: the fields read from each tracking record. A value that is not of the declared
-- type (job_id = 'abc') dead-letters the record; blank means null.
CREATE TABLE tracking (
  create_time text,
  ts text,
  custom_track text,
  job_id bigint,
  bid bigint DEFAULT 0,
  publisher_id bigint DEFAULT 0,
  campaign_id bigint DEFAULT 0,
  group_id bigint DEFAULT 0,
  -- Event time comes from the create_time TimeUUID; ts is a fallback (it is often corrupt).
  event_time timestamp GENERATED ALWAYS AS (coalesce(timeuuid_time(create_time), parse_time(ts))) STORED
) WITH (
  uri = '${TRACKING}',
  -- Generator settings, used when uri is generator:
  profile = 'recruitment', rate = '${RATE:-20000}', seed = 7, count = '${COUNT:-}',
  jobs = '${JOBS:-data/job.csv}', start = '${START:-2026-01-01T00:00:00Z}'
);

-- The job dimension, looked up by its primary key (re-read every 5 s).
CREATE TABLE job (
  id bigint PRIMARY KEY,
  company_id bigint DEFAULT 0
) WITH (uri = '${JOBS:-data/job.csv}');

-- The sink: one row per hour, job and publisher/campaign/group, kept up to date.
CREATE MATERIALIZED VIEW events WITH (
  uri = '${SINK}',
  -- Column types of the MySQL/MariaDB table; the SQLite sink ignores them.
  column_types = 'dates:DATE,hours:TINYINT,bid_set:DECIMAL(10,2),latest_update_time:DATETIME',
  dead_letter = '${DLQ:-}'
) AS
SELECT t.job_id,
       date(window_start) AS dates,
       hour(window_start) AS hours,
       t.publisher_id,
       t.campaign_id,
       t.group_id,
       last(coalesce(j.company_id, 0)) AS company_id,
       count(*) FILTER (WHERE custom_track = 'click') AS clicks,
       coalesce(round(avg(bid) FILTER (WHERE custom_track = 'click'), 2), 0) AS bid_set,
       sum(bid) FILTER (WHERE custom_track = 'click') AS spend_hour,
       count(*) FILTER (WHERE custom_track = 'conversion') AS conversion,
       count(*) FILTER (WHERE custom_track = 'qualified') AS qualified_application,
       count(*) FILTER (WHERE custom_track = 'unqualified') AS disqualified_application,
       last(_source) AS sources,
       max(event_time) AS latest_update_time
FROM tumble(tracking, event_time, INTERVAL '1 hour') AS t
LEFT JOIN job AS j ON j.id = t.job_id
WHERE keep_if(custom_track IN ('click', 'conversion', 'qualified', 'unqualified'),
              'custom_track not counted')
  AND keep_if(job_id IS NOT NULL, 'blank job_id')
  AND dead_letter_if(event_time IS NULL,
                     'no event time: create_time is not a version-1 TimeUUID and ts is not a timestamp')
GROUP BY window_start, t.job_id, dates, hours, t.publisher_id, t.campaign_id, t.group_id;
