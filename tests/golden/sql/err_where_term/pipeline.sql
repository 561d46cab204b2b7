-- A type error in the second WHERE term: at its operator (not at the term's start plus an
-- offset into the generated text).
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, amount
FROM pay
WHERE amount > 0
  AND   kind - 1 > 0;
