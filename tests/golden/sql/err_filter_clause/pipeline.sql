-- A type error in an aggregate's FILTER (WHERE ...): at the comparison.
CREATE TABLE sales (ts timestamp, shop text, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, shop,
       sum(amount) FILTER (WHERE amount > 0 AND shop   >   5) AS big
FROM tumble(sales, ts, INTERVAL '10 minutes')
GROUP BY window_start, shop;
