-- An unknown column, with the closest column's name as a hint.
CREATE TABLE sales (id bigint, amount bigint) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, amout + 1 AS next
FROM sales;
