-- Tumbling 10-minute windows per shop: every metric of the grammar, FILTER (WHERE ...), round,
-- and window_start / window_end selected.
CREATE TABLE sales (ts timestamp, shop text, amount bigint, status text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT window_start, window_end, shop,
       count(*) AS n,
       count(amount) AS n_amount,
       sum(amount) AS total,
       avg(amount) AS mean,
       min(amount) AS smallest,
       max(amount) AS biggest,
       last(status) AS last_status,
       count(*) FILTER (WHERE status = 'ok') AS oks,
       round(avg(amount) FILTER (WHERE status = 'ok'), 2) AS ok_mean
FROM tumble(sales, ts, INTERVAL '10 minutes')
GROUP BY window_start, window_end, shop;
