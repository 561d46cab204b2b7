-- A scale in a cast would be dropped (numbers are double precision): refused at the cast.
CREATE TABLE pay (id bigint, amount bigint, kind text) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, amount::numeric(10,2) AS amount FROM pay;
