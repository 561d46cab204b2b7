-- A source table's GENERATED columns and NOT NULL / CHECK constraints run in the order they are
-- written: a CHECK on raw fields written above a generated column dead-letters before that column
-- is computed. "too long" reads `minutes`, written below it, so it waits for that column, and
-- "missing end_timestamp", written after it, waits behind it (checks keep their written order).
CREATE TABLE views (
  view_id text NOT NULL,
  start_timestamp text,
  CONSTRAINT "missing start_timestamp"
    CHECK (start_timestamp IS NOT NULL AND trim(start_timestamp) <> ''),
  start_time timestamp GENERATED ALWAYS AS (parse_time(start_timestamp, 'iso')) STORED,
  CONSTRAINT "unparseable start_timestamp" CHECK (start_time IS NOT NULL),
  CONSTRAINT "too long" CHECK (minutes <= 60),
  end_timestamp text,
  CONSTRAINT "missing end_timestamp" CHECK (end_timestamp IS NOT NULL),
  minutes double precision
    GENERATED ALWAYS AS (seconds_between(start_time, parse_time(end_timestamp, 'iso')) / 60) STORED
) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT view_id, minutes
FROM views
WHERE view_id <> 'test';
