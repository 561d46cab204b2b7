-- ysb: the Yahoo Streaming Benchmark workload -> view counts per campaign in 10-second windows.
-- The SQL twin of ysb.toml: the same variables, the same table campaign_windows.
--
--   sluice run examples/ysb.sql --var EVENTS=generator: --var SINK=sqlite:ysb.db  # generated, unthrottled
--   sluice run examples/ysb.sql --var EVENTS=events.ndjson --var SINK=sqlite:ysb.db
--
-- Variables (see ysb.toml for every form they take): EVENTS and SINK are required; ADS
-- (default: data/ysb_ads.csv here), DLQ (default: the sink's table _sluice_dead_letters), and
-- with EVENTS=generator: RATE, COUNT, START.
--
-- As in YSB: keep the views, find each ad's campaign, count the views per campaign in 10-second
-- tumbling event-time windows, kept exact with delta upserts at each checkpoint.
-- tests/tools/recompute_ysb.py recomputes the table.

SET pipeline.name = 'ysb';
SET pipeline.checkpoint_interval = '1s';

-- The source: the fields read from each event (event_time is epoch milliseconds or ISO 8601;
-- any other value dead-letters the event).
CREATE TABLE events (
  ad_id text,
  event_type text,
  event_time timestamp
) WITH (
  uri = '${EVENTS}',
  -- Generator settings, used when uri is generator: events 10 us apart in event time.
  profile = 'ysb', rate = '${RATE:-0}', seed = 1, count = '${COUNT:-10000000}',
  start = '${START:-2026-01-01T00:00:00Z}', spacing = '10us',
  campaigns = '${ADS:-data/ysb_ads.csv}'
);

-- The ads, looked up by their primary key. An ad that is not in the CSV dead-letters the event
-- ("no ads for key ...").
CREATE TABLE ads (
  ad_id text PRIMARY KEY,
  campaign_id text
) WITH (uri = '${ADS:-data/ysb_ads.csv}', on_missing = 'dead_letter');

-- The sink: one row per (window_start, campaign_id), updated at each checkpoint.
CREATE MATERIALIZED VIEW campaign_windows WITH (
  uri = '${SINK}', mode = 'update',
  -- Column types of the MySQL/MariaDB table; the SQLite sink ignores them.
  column_types = 'campaign_id:VARCHAR(36),window_start:DATETIME',
  dead_letter = '${DLQ:-}'
) AS
SELECT window_start,
       a.campaign_id,
       count(*) AS views
FROM tumble(events, event_time, INTERVAL '10 seconds') AS e
JOIN ads AS a ON a.ad_id = e.ad_id
WHERE keep_if(event_type = 'view', 'not a view')
  AND dead_letter_if(event_time IS NULL, 'no event_time')
GROUP BY window_start, a.campaign_id;
