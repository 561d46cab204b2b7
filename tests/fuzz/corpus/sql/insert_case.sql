CREATE TABLE src (a bigint, b text, t timestamp DEFAULT '2020-01-01', c bigint GENERATED ALWAYS AS (a * 2) STORED NOT NULL, CHECK (a > -1)) WITH (uri = '${TRACKING}', format = 'csv');
CREATE TABLE out (a bigint PRIMARY KEY, x text) WITH (uri = 'sqlite:o.db');
INSERT INTO out SELECT a, CASE WHEN a BETWEEN 1 AND 3 THEN b::text WHEN a IS NULL THEN nullif(b, '') ELSE upper(trim(b)) || '!' END FROM src WHERE (a > 1) IS TRUE;
