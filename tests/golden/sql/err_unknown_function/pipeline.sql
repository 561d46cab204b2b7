-- A function the expression language does not have, with the closest name as a hint.
CREATE TABLE people (id bigint, name text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, uper(name) AS label
FROM people;
