-- round(avg(x)) with one argument: to a whole number, as PostgreSQL's round(numeric); also inside
-- coalesce() (the value of a window whose FILTER kept no record).
CREATE TABLE sales (ts timestamp, shop text, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, shop,
       round(avg(amount)) AS avg_whole,
       coalesce(round(avg(amount) FILTER (WHERE amount > 100)), -1) AS big_avg
FROM tumble(sales, ts, INTERVAL '10 minutes')
GROUP BY window_start, shop;
