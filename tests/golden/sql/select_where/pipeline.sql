-- A SELECT without GROUP BY: one row per record kept. WHERE terms are filters (a record where
-- one is not true is ignored); CASE, coalesce, IN, IS NULL, casts, || and ${VAR:-default}.
CREATE TABLE orders (id bigint, shop text, qty bigint, price text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id,
       shop || '-' || id::text AS tag,
       CASE WHEN qty >= 10 THEN 'big' WHEN qty IS NULL THEN 'none' ELSE 'small' END AS size,
       coalesce(qty, 0) * 2 AS double_qty,
       price::double precision AS price_num,
       '${REGION:-eu}' AS region
FROM orders
WHERE shop IN ('a', 'b') AND id IS NOT NULL;
