-- An inner JOIN on a dimension CSV: a record without a match is dropped (ignored); the
-- dimension's columns are read by the SELECT.
CREATE TABLE orders (id bigint, shop_id bigint, qty bigint) WITH (uri = '${IN}');

CREATE TABLE shops (id bigint PRIMARY KEY, name text, city text) WITH (uri = '${DIM}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT o.id, s.name, s.city || ':' || o.qty::text AS label
FROM orders AS o
JOIN shops AS s ON s.id = o.shop_id;
