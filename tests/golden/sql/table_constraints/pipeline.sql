-- The source table's own steps: DEFAULT, a GENERATED column, NOT NULL and a named CHECK
-- (dead letters; a NULL passes a CHECK), and BETWEEN / nullif in the SELECT.
CREATE TABLE readings (
  id bigint NOT NULL,
  temp double precision,
  unit text DEFAULT 'C',
  temp_f double precision GENERATED ALWAYS AS (temp * 9 / 5 + 32) STORED,
  CONSTRAINT "temp out of range" CHECK (temp BETWEEN -50 AND 60)
) WITH (uri = '${IN}');

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id, unit, temp_f, nullif(unit, 'C') AS other_unit
FROM readings;
