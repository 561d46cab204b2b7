-- A subquery in WHERE: refused where PostgreSQL puts the SubLink (the IN keyword).
CREATE TABLE t (id bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id FROM t
WHERE id IN (SELECT 1);
