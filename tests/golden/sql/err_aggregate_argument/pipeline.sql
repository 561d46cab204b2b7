-- A type error inside an aggregate's argument: at the operator inside avg(...).
CREATE TABLE sales (ts timestamp, shop text, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, shop, count(*) AS n, avg(  amount  + upper(shop) ) AS a
FROM tumble(sales, ts, INTERVAL '10 minutes')
GROUP BY window_start, shop;
