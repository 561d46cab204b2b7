-- A LEFT JOIN keeps a record without a match: the dimension's columns are their DEFAULT, else
-- NULL.
CREATE TABLE orders (id bigint, shop_id bigint, qty bigint) WITH (uri = '${IN}');

CREATE TABLE shops (id bigint PRIMARY KEY, name text DEFAULT 'unknown', rank bigint)
  WITH (uri = '${DIM}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT o.id, s.name, s.rank, coalesce(s.rank, 0) + o.qty AS score
FROM orders AS o
LEFT JOIN shops AS s ON s.id = o.shop_id;
