-- sum() of a text column: a type error, found by the planner.
CREATE TABLE sales (ts timestamp, shop text, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, shop, sum(shop) AS total
FROM tumble(sales, ts, INTERVAL '10 minutes')
GROUP BY window_start, shop;
