-- A JOIN whose key expression has another type than the dimension's key: at that expression
-- (not at the FROM table).
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');
CREATE TABLE kinds (code bigint PRIMARY KEY, label text) WITH (uri = '${DIM}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT p.id, k.label
FROM pay AS p
JOIN kinds AS k ON k.code =   upper(p.kind);
