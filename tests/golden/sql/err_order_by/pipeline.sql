-- ORDER BY has no meaning for a stream: refused at the ORDER keyword.
CREATE TABLE t (id bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id FROM t
ORDER BY id;
