-- A declared length would be ignored (sluice keeps no length): refused at the type.
CREATE TABLE pay (id bigint, amount bigint,
  kind varchar(4)) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, kind FROM pay;
