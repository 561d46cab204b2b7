SET pipeline.name = 'x';
CREATE TABLE src (a bigint) WITH (uri = 'in.csv');
CREATE MATERIALIZED VIEW v WITH (uri = 'o') AS SELECT DISTINCT a FROM src, src2 WHERE a LIKE 'x' ORDER BY a LIMIT 1;
