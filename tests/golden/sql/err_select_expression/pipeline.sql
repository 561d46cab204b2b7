-- A type error in a SELECT expression: at the operator.
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, amount * (kind || 'x') AS bad
FROM pay;
