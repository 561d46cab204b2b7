-- viewlog: banner view logs -> per-minute view reports as Parquet, partitioned by network and
-- minute (network_id=N/minute_timestamp=YYYY-MM-DD-HH-MM/). The SQL twin of viewlog.toml: the
-- same variables, the same output and dead letters.
--
--   sluice run examples/viewlog.sql --var VIEWS=path/to/view_logs.ndjson --var OUT=parquet:out
--
-- Variables (see viewlog.toml for every form they take): VIEWS and OUT are required; CAMPAIGNS
-- (default: data/campaigns1.csv here), DLQ (default: OUT's _sluice/dead_letters/ folder), and
-- with VIEWS=generator: RATE, COUNT, START, SPACING, OUT_OF_ORDER, LATE, INVALID.
--
-- A view whose fields are missing or unreadable is dead-lettered by the first CHECK it fails,
-- with the CHECK's name as the reason; one without a campaign by the JOIN (on_missing).

SET pipeline.name = 'viewlog';
SET pipeline.checkpoint_interval = '1s';

CREATE TABLE views (
  view_id text,
  start_timestamp text,
  end_timestamp text,
  campaign_id bigint,
  start_time timestamp GENERATED ALWAYS AS (parse_time(start_timestamp, 'iso')) STORED,
  end_time timestamp GENERATED ALWAYS AS (parse_time(end_timestamp, 'iso')) STORED,
  view_duration double precision GENERATED ALWAYS AS (seconds_between(start_time, end_time)) STORED,
  CONSTRAINT "missing view_id" CHECK (view_id IS NOT NULL AND trim(view_id) <> ''),
  CONSTRAINT "missing start_timestamp" CHECK (start_timestamp IS NOT NULL AND trim(start_timestamp) <> ''),
  CONSTRAINT "missing end_timestamp" CHECK (end_timestamp IS NOT NULL AND trim(end_timestamp) <> ''),
  CONSTRAINT "missing campaign_id" CHECK (campaign_id IS NOT NULL),
  CONSTRAINT "unparseable start_timestamp" CHECK (start_time IS NOT NULL),
  CONSTRAINT "unparseable end_timestamp" CHECK (end_time IS NOT NULL),
  CONSTRAINT "end_timestamp before start_timestamp" CHECK (view_duration >= 0)
) WITH (
  uri = '${VIEWS}',
  -- A window is written once, when the watermark (the latest start seen minus 10 s) has passed
  -- its end; a view arriving after that is late.
  watermark_delay = '10s', allowed_lateness = '0s',
  -- Generator settings, used when uri is generator:
  profile = 'viewlog', rate = '${RATE:-2000}', seed = 11, count = '${COUNT:-}',
  start = '${START:-2026-01-01T00:00:00Z}', spacing = '${SPACING:-}',
  campaigns = '${CAMPAIGNS:-data/campaigns1.csv}', out_of_order = '${OUT_OF_ORDER:-0.05}',
  late = '${LATE:-0.01}', invalid = '${INVALID:-0.02}'
);

CREATE TABLE campaign (
  campaign_id bigint PRIMARY KEY,
  network_id bigint
) WITH (uri = '${CAMPAIGNS:-data/campaigns1.csv}', on_missing = 'dead_letter');

CREATE MATERIALIZED VIEW view_report WITH (
  uri = '${OUT}', mode = 'append', partition_by = 'network_id, minute_timestamp',
  dead_letter = '${DLQ:-}'
) AS
SELECT window_start, window_end,
       c.network_id,
       format_time(window_start, '%Y-%m-%d-%H-%M') AS minute_timestamp,
       v.campaign_id,
       avg(view_duration) AS avg_duration,
       count(*) AS total_count
FROM tumble(views, start_time, INTERVAL '1 minute') AS v
JOIN campaign AS c ON c.campaign_id = v.campaign_id
GROUP BY window_start, window_end, c.network_id, minute_timestamp, v.campaign_id;
