-- An error in a GENERATED column's expression: at the argument it is about.
CREATE TABLE views (
  id bigint,
  ts text,
  start_time timestamp GENERATED ALWAYS AS (parse_time(ts,   'isoo')) STORED
) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, start_time
FROM views;
