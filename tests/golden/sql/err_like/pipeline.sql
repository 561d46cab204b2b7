-- LIKE is refused at its operator.
CREATE TABLE people (id bigint, name text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id FROM people
WHERE name LIKE 'a%';
