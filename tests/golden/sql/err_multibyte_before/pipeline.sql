-- Multi-byte characters ('é', 'ñandú') before the error on its line: the column counts
-- characters, not bytes, and the error's token is found through them.
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, kind || 'é' AS k, length('ñandú') + kind AS bad
FROM pay;
