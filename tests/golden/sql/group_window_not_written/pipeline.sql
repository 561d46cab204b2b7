-- window_start only grouped (so not written), an expression of it selected and grouped by its
-- output name; a CSV input.
CREATE TABLE plays (ts timestamp, player text, points bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT player, hour(window_start) AS hr, sum(points) AS points, count(*) AS n
FROM tumble(plays, ts, INTERVAL '1 hour')
GROUP BY window_start, player, hr;
