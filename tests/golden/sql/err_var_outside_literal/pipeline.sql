-- A variable outside a string literal does not parse; the error says where it may be written.
CREATE TABLE t (id bigint) WITH (uri = ${IN});

CREATE MATERIALIZED VIEW out WITH (uri = '${OUT}') AS
SELECT id FROM t;
