-- Hopping windows of 10 minutes every 5 minutes (slide first, then size): each record is in two
-- windows.
CREATE TABLE sales (ts timestamp, shop text, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, window_end, shop, count(*) AS n, sum(amount) AS total
FROM hop(sales, ts, INTERVAL '5 minutes', INTERVAL '10 minutes')
GROUP BY window_start, window_end, shop;
