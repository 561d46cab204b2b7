-- The same type error with spaces inside the call: the location should still be the argument.
CREATE TABLE sales (ts timestamp, shop text, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, shop, sum(  shop ) AS total
FROM tumble(sales, ts, INTERVAL '10 minutes')
GROUP BY window_start, shop;
