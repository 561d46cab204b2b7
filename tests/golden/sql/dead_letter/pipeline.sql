-- dead_letter_if in WHERE, after a filter term: records the filter drops are ignored, the ones
-- the condition holds for are dead-lettered, the rest written.
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, amount + 1 AS next_amount, upper(kind) AS kind
FROM pay
WHERE kind <> 'test'
  AND dead_letter_if(amount IS NULL OR amount < 0, 'bad amount');
