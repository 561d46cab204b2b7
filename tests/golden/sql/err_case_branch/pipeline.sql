-- CASE branches of two types: at the ELSE branch (a CASE is if() in sluice's language).
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id,
       CASE WHEN amount > 5 THEN 'big' ELSE   amount END AS size
FROM pay;
